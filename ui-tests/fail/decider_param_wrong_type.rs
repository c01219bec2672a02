// A decider reads flow values like a step: a parameter of another type than the value's is one
// error in our words, on the decider, by reference or by value.
use taskflow::prelude::*;

#[task(provides = size)]
fn measure(n: u32) -> u64 {
    u64::from(n)
}

#[task]
fn backup(size: u64) {
    let _ = size;
}

#[task]
fn report(size: u64) {
    let _ = size;
}

#[task]
fn big_enough(size: &str) -> bool {
    size.len() > 10
}

#[task]
fn small_enough(size: u32) -> bool {
    size < 10
}

flow! {
    flow Backup(n: u32) {
        graph [ measure, backup, report, measure -> backup if big_enough, measure -> report if small_enough ]
    }
}

fn main() {}
