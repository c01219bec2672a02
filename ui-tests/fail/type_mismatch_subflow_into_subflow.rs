// One sub-flow's output read by another sub-flow as an input of another type, and a flow input
// of the wrong type into a sub-flow: one error each, naming the sub-flow and its input.
use taskflow::prelude::*;

#[task(provides = size_gb)]
fn choose(plan: String) -> u32 {
    plan.len() as u32
}

#[task(provides = volume)]
fn attach(size_gb: u64, zone: &str) -> u64 {
    size_gb * zone.len() as u64
}

flow! {
    flow Choose(plan: String) -> (size_gb) {
        linear [ choose ]
    }
}

flow! {
    flow Attach(size_gb: u64, zone: String) -> (volume) {
        linear [ attach ]
    }
}

flow! {
    flow Provision(plan: String, zone: u8) -> (volume) {
        linear [ Choose, Attach ]
    }
}

fn main() {}
