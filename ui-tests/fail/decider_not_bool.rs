// A decider says yes or no: one that returns something else is one error on it.
use taskflow::prelude::*;

#[task(provides = size)]
fn measure(n: u32) -> u64 {
    n as u64
}

#[task]
fn backup(size: u64) {
    let _ = size;
}

#[task]
fn big_enough(size: &u64) -> u64 {
    *size
}

flow! {
    flow Backup(n: u32) {
        graph [ measure, backup, measure -> backup if big_enough ]
    }
}

fn main() {}
