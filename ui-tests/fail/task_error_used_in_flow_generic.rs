// A generic task is its own error, once; the flow that uses it adds none.
use taskflow::prelude::*;

#[task(provides = id)]
fn identity<T: Clone>(value: T) -> T {
    value
}

#[task(provides = shown)]
fn show(id: u32) -> String {
    id.to_string()
}

flow! {
    flow Show(value: u32) -> (shown) {
        linear [ identity, show ]
    }
}

fn main() {
    let _ = Engine::serial().run(Show, ShowInputs { value: 1 }).blocking();
}
