// `map t over xs`: each element of `xs` goes to the task's item parameter; a `Vec` of the wrong
// element type is one error naming both types.
use taskflow::prelude::*;

#[task(provides = sizes)]
fn list(n: u32) -> Vec<u64> {
    (0..n as u64).collect()
}

#[task(provides = tagged)]
fn tag(name: &str) -> String {
    format!("#{name}")
}

flow! {
    flow Tag(n: u32) -> (tagged) {
        linear [ list, map tag over sizes -> tagged ]
    }
}

fn main() {}
