// A generic task: a flow needs concrete types.
use taskflow::prelude::*;

#[task(provides = id)]
fn identity<T: Clone>(value: T) -> T {
    value
}

fn main() {}
