// `provides = (low, high)` on a task that returns one `u32`, not a tuple of two.
use taskflow::prelude::*;

#[task(provides = (low, high))]
fn split(total: u32) -> u32 {
    total
}

fn main() {}
