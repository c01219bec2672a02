// `map t over xs` where `xs` holds the wrong element type and the task has a revert hook (which
// reads each element too): still one error, naming both types.
use taskflow::prelude::*;

#[task(provides = sizes)]
fn list(n: u32) -> Vec<u64> {
    (0..n as u64).collect()
}

#[task(provides = tagged, revert = untag)]
fn tag(name: &str) -> String {
    format!("#{name}")
}

#[revert]
fn untag(name: &str, result: TaskOutcome<&String>) {
    let _ = (name, result);
}

flow! {
    flow Tag(n: u32) -> (tagged) {
        linear [ list, map tag over sizes -> tagged ]
    }
}

fn main() {}
