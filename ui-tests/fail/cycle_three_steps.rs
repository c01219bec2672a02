// In a `graph`, each of three steps reads what the next one provides: a data-dependency cycle.
use taskflow::prelude::*;

#[task(provides = a)]
fn make_a(c: u32) -> u32 {
    c
}

#[task(provides = b)]
fn make_b(a: u32) -> u32 {
    a
}

#[task(provides = c)]
fn make_c(b: u32) -> u32 {
    b
}

flow! {
    flow Loop() -> (c) {
        graph [ make_a, make_b, make_c ]
    }
}

fn main() {}
