// A link `a -> b` written inside a `linear`: links belong in a `graph`.
use taskflow::prelude::*;

#[task]
fn fetch() {}

#[task]
fn build() {}

flow! {
    flow Ci() {
        linear [ fetch, build, fetch -> build ]
    }
}

fn main() {}
