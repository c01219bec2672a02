// A task with a pattern parameter is its own error, once; the flow that uses it adds none.
use taskflow::prelude::*;

#[task(provides = total)]
fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

#[task(provides = shown)]
fn show(total: u32) -> String {
    total.to_string()
}

flow! {
    flow Show(pair: (u32, u32)) -> (shown) {
        linear [ add, show ]
    }
}

fn main() {
    let _ = Engine::serial().run(Show, ShowInputs { pair: (1, 2) }).blocking();
}
