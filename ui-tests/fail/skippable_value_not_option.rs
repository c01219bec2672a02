// A step that can run without a skipped step (it also reads `size_gb`) takes that step's output
// plainly instead of as an `Option`.
use taskflow::prelude::*;

#[task(provides = size_gb)]
fn measure(requested: u32) -> u32 {
    requested
}

#[task]
fn big_enough(size_gb: &u32) -> bool {
    *size_gb >= 10
}

#[task(provides = backup_id)]
fn backup(size_gb: u32) -> String {
    format!("bk-{size_gb}")
}

#[task(provides = report)]
fn summarize(size_gb: u32, backup_id: String) -> String {
    format!("{size_gb}: {backup_id}")
}

flow! {
    flow Backup(requested: u32) -> (report) {
        graph [ measure, backup, summarize, measure -> backup if big_enough ]
    }
}

fn main() {}
