// A sub-flow's output read by a step as another type: the error names the sub-flow.
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
    flow Choose(plan: String) -> (size_gb) {
        linear [ choose ]
    }
}

flow! {
    flow Provision(plan: String) -> (volume) {
        linear [ Choose, attach ]
    }
}

fn main() {}
