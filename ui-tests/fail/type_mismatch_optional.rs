// A step that may read a skipped value takes it as an Option: `Option<&P>` or `Option<T>` of
// another type than the value's is one error each, in our words, on the step.
use taskflow::prelude::*;

#[task(provides = size)]
fn measure(n: u32) -> u64 {
    u64::from(n)
}

#[task(provides = backup_id)]
fn backup(size: u64) -> u64 {
    size
}

#[task(provides = summary)]
fn summarize(backup_id: Option<&str>, size: Option<u32>) -> String {
    format!("{backup_id:?} {size:?}")
}

#[task]
fn big_enough(size: &u64) -> bool {
    *size > 10
}

flow! {
    flow Backup(n: u32) -> (summary) {
        graph [ measure, backup, summarize, measure -> backup if big_enough ]
    }
}

fn main() {}
