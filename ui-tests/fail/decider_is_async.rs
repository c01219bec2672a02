// A decider must be a plain (not async) task that returns `bool`.
use taskflow::prelude::*;

#[task(provides = size_gb)]
fn measure(requested: u32) -> u32 {
    requested
}

#[task]
async fn big_enough(size_gb: &u32) -> bool {
    *size_gb >= 10
}

#[task(provides = backup_id)]
fn backup(size_gb: u32) -> String {
    format!("bk-{size_gb}")
}

flow! {
    flow Backup(requested: u32) -> (backup_id) {
        graph [ measure, backup, measure -> backup if big_enough ]
    }
}

fn main() {}
