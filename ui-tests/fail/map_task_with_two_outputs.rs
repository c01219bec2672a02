// `map` needs a task with exactly one output.
use taskflow::prelude::*;

#[task(provides = (low, high))]
fn split(n: u32) -> (u32, u32) {
    (n / 2, n - n / 2)
}

flow! {
    flow Halves(numbers: Vec<u32>) -> (halves) {
        linear [ map split over numbers -> halves ]
    }
}

fn main() {}
