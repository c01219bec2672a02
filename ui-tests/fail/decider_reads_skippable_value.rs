// A decider reads the output of a step that another decider may skip, without an `Option`.
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

#[task]
fn worth_verifying(backup_id: &str) -> bool {
    !backup_id.is_empty()
}

#[task(provides = verified)]
fn verify(size_gb: u32) -> u32 {
    size_gb
}

flow! {
    flow Backup(requested: u32) -> (verified) {
        graph [
            measure,
            backup,
            verify,
            measure -> backup if big_enough,
            backup -> verify if worth_verifying,
        ]
    }
}

fn main() {}
