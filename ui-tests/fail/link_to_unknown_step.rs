// A link in a `graph` names a step that the graph does not have.
use taskflow::prelude::*;

#[task]
fn first() {}

#[task]
fn second() {}

flow! {
    flow Linked() {
        graph [ first, second, first -> secnod ]
    }
}

fn main() {}
