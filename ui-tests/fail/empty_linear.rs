// A `linear` with no steps in it.
use taskflow::prelude::*;

flow! {
    flow Nothing() {
        linear []
    }
}

fn main() {}
