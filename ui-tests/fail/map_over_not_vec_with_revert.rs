// `map t over xs` where `xs` is not a `Vec` and the task has a revert hook: still one error
// (the hook reads the elements too).
use taskflow::prelude::*;

#[task(provides = names)]
fn list(n: u32) -> String {
    n.to_string()
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
        linear [ list, map tag over names -> tagged ]
    }
}

fn main() {}
