// A flow that lists itself as one of its steps.
use taskflow::prelude::*;

#[task]
fn fetch() {}

flow! {
    flow Inner() {
        linear [ fetch, Inner ]
    }
}

fn main() {}
