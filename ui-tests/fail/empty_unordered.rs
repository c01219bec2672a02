// An `unordered` with no steps in it, nested in a `linear` that has a step.
use taskflow::prelude::*;

#[task]
fn fetch() {}

flow! {
    flow Ci() {
        linear [ fetch, unordered [] ]
    }
}

fn main() {}
