// A task takes a parameter by `&mut`: flow values are shared between steps.
use taskflow::prelude::*;

#[task]
fn append(log: &mut Vec<String>) {
    log.push("appended".to_owned());
}

fn main() {}
