// An unknown take-over policy names the three there are.
use taskflow::prelude::*;

#[task(provides = id, on_takeover = retry)]
fn create(name: String) -> String {
    format!("vm-{name}")
}

fn main() {}
