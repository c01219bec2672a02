// Rebinding parameters, renaming one and several outputs, `as` labels for a task used twice, and #[default].
use taskflow::prelude::*;

#[task(provides = total)]
fn add(x: u32, y: u32) -> u32 {
    x + y
}

#[task(provides = (low, high))]
fn split(total: u32) -> (u32, u32) {
    (total % 10, total / 10)
}

// `factor` is `u32::default()` when nothing provides a name `factor`.
#[task(provides = scaled)]
fn scale(value: u32, #[default] factor: u32) -> u32 {
    value * factor.max(1)
}

flow! {
    flow Wiring(a: u32, b: u32, c: u32) -> (sum2, lo, hi, scaled, both) {
        linear [
            add(x = a, y = b) -> sum1 as first_add,
            add(x = sum1, y = c) -> sum2 as second_add,
            split(total = sum2) -> (lo, hi),
            scale(value = hi),
            scale(value = lo, factor = hi) -> both as scale_both,
        ]
    }
}

// A #[default] parameter reads its name when the flow provides it.
flow! {
    flow Scaled(value: u32, factor: u32) -> scaled {
        linear [ scale ]
    }
}

fn main() {
    let out = Engine::serial().run(Wiring, WiringInputs { a: 20, b: 3, c: 4 }).blocking().unwrap();
    assert_eq!((out.sum2, out.lo, out.hi, out.scaled, out.both), (27, 7, 2, 2, 14));
    let out = Engine::serial().run(Scaled, ScaledInputs { value: 5, factor: 3 }).blocking().unwrap();
    assert_eq!(out.scaled, 15);
    let labels: Vec<&str> = Wiring::graph().steps().iter().map(|s| s.name()).collect();
    assert_eq!(labels, ["first_add", "second_add", "split", "scale", "scale_both"]);
}
