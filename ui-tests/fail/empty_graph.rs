// A `graph` with no steps in it.
use taskflow::prelude::*;

flow! {
    flow Nothing() {
        graph []
    }
}

fn main() {}
