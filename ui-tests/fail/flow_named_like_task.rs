// A flow named like one of its tasks: the flow and the task would be two items of one name.
use taskflow::prelude::*;

#[task(provides = artifact)]
fn build(source: String) -> String {
    format!("{source}.o")
}

flow! {
    flow build(source: String) -> (artifact) {
        linear [ build ]
    }
}

fn main() {}
