// `on_takeover = revert_then_rerun` undoes the step with its revert hook: a task without one is
// an error on the policy, and a flow using the task adds none.
use taskflow::prelude::*;

#[task(provides = id, on_takeover = revert_then_rerun)]
fn create(name: String) -> String {
    format!("vm-{name}")
}

flow! {
    flow Boot(name: String) -> (id) { linear [ create ] }
}

fn main() {}
