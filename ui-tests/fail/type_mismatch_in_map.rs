// A `map` step's other parameter reads a value of the wrong type: one error, naming it.
use taskflow::prelude::*;

#[task(provides = names)]
fn list(n: u32) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[task(provides = tagged)]
fn tag(name: &str, prefix: &str) -> String {
    format!("{prefix}{name}")
}

flow! {
    flow Tag(n: u32, prefix: u64) -> (tagged) {
        linear [ list, map tag over names -> tagged ]
    }
}

fn main() {}
