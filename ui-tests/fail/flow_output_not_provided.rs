// Flow output `volume_ids` is provided by nothing (a typo for `volume_id`).
use taskflow::prelude::*;

#[task(provides = volume_id)]
fn create_volume(size_gb: u32) -> u64 {
    u64::from(size_gb)
}

flow! {
    flow Provision(size_gb: u32) -> (volume_ids) {
        linear [ create_volume ]
    }
}

fn main() {}
