// A flow used as a step of another flow (inside `graph` and `unordered`), renamed and labelled like a task.
use taskflow::prelude::*;

#[task(provides = doubled)]
fn double(n: u32) -> u32 {
    n * 2
}

#[task(provides = sum)]
fn add(left: u32, right: u32) -> u32 {
    left + right
}

flow! {
    /// Doubles `n` twice.
    flow Quadruple(n: u32) -> (quad) {
        linear [ double, double(n = doubled) -> quad as double_again ]
    }
}

flow! {
    flow Outer(x: u32, y: u32) -> (sum) {
        graph [
            add,
            unordered [
                Quadruple(n = x) -> left as quad_x,
                Quadruple(n = y) -> right as quad_y,
            ],
        ]
    }
}

fn main() {
    let out = Engine::serial().run(Outer, OuterInputs { x: 1, y: 10 }).blocking().unwrap();
    assert_eq!(out.sum, 44);
    let steps = Outer::graph().steps();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().any(|s| s.name() == "quad_x" && s.subflow().is_some()));
}
