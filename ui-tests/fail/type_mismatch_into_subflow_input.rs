// A step's output read by a sub-flow as an input of another type: the error names the sub-flow,
// its input and the step that provides the value.
use taskflow::prelude::*;

#[task(provides = size_gb)]
fn choose(plan: String) -> u32 {
    plan.len() as u32
}

#[task(provides = volume)]
fn attach(size_gb: u64) -> u64 {
    size_gb * 2
}

flow! {
    flow Attach(size_gb: u64) -> (volume) {
        linear [ attach ]
    }
}

flow! {
    flow Provision(plan: String) -> (volume) {
        linear [ choose, Attach ]
    }
}

fn main() {}
