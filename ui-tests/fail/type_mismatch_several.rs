// Two parameters of one step read values of the wrong type: one error for each, naming the
// parameter and the step that provides the value.
use taskflow::prelude::*;

#[task(provides = (size_gb, zone))]
fn choose(plan: String) -> (u32, u8) {
    (plan.len() as u32, 1)
}

#[task(provides = volume)]
fn attach(size_gb: u64, zone: &str) -> String {
    format!("{zone}:{size_gb}")
}

flow! {
    flow Provision(plan: String) -> (volume) {
        linear [ choose, attach ]
    }
}

fn main() {}
