// Each take-over policy on a task (sync and async, with and without a hook), in a flow, in a
// sub-flow and in a `map`.
use taskflow::prelude::*;
use taskflow::OnTakeover;

#[task(provides = a, on_takeover = rerun)]
fn first(x: u32) -> u32 {
    x + 1
}

#[task(provides = b, revert = undo, on_takeover = revert_then_rerun)]
async fn second(a: u32) -> u32 {
    a * 2
}

#[revert]
async fn undo(result: TaskOutcome<&u32>) {
    let _ = result;
}

#[task(provides = c, on_takeover = hold)]
fn third(b: u32) -> u32 {
    b + 3
}

#[task(provides = d, on_takeover = hold)]
fn each(x: u32) -> u32 {
    x
}

flow! { flow Inner(b: u32) -> (c) { linear [ third ] } }

flow! {
    flow Outer(x: u32, xs: Vec<u32>) -> (c, ds) {
        linear [ first, second, Inner, map each over xs -> ds ]
    }
}

fn main() {
    let policies: Vec<OnTakeover> = Outer::graph().steps().iter().map(|s| s.on_takeover()).collect();
    assert_eq!(
        policies,
        [OnTakeover::Rerun, OnTakeover::RevertThenRerun, OnTakeover::Rerun, OnTakeover::Hold]
    );
    assert_eq!(Inner::graph().steps()[0].on_takeover(), OnTakeover::Hold);
    let out = Engine::serial().run(Outer, OuterInputs { x: 1, xs: vec![4] }).blocking().unwrap();
    assert_eq!((out.c, out.ds), (7, vec![4]));
}
