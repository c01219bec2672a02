// `split` provides two values, but `->` gives it three names.
use taskflow::prelude::*;

#[task(provides = (low, high))]
fn split(total: u32) -> (u32, u32) {
    (total % 10, total / 10)
}

flow! {
    flow Digits(total: u32) -> (lo, hi) {
        linear [ split -> (lo, hi, rest) ]
    }
}

fn main() {}
