// `add` is used twice without `as`, so the two steps have the same name.
use taskflow::prelude::*;

#[task(provides = total)]
fn add(x: u32, y: u32) -> u32 {
    x + y
}

flow! {
    flow Sum(a: u32, b: u32, c: u32) -> (sum) {
        linear [ add(x = a, y = b) -> ab, add(x = ab, y = c) -> sum ]
    }
}

fn main() {}
