// `map t over xs` iterates a `Vec`: a value of another type is one error naming it.
use taskflow::prelude::*;

#[task(provides = names)]
fn list(n: u32) -> String {
    n.to_string()
}

#[task(provides = tagged)]
fn tag(name: &str) -> String {
    format!("#{name}")
}

flow! {
    flow Tag(n: u32) -> (tagged) {
        linear [ list, map tag over names -> tagged ]
    }
}

fn main() {}
