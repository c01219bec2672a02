// Flow input `size_gb` is a `String`, but `create_volume` takes `size_gb: u32`.
use taskflow::prelude::*;

#[task(provides = volume_id)]
fn create_volume(size_gb: u32) -> u64 {
    u64::from(size_gb)
}

flow! {
    flow Provision(size_gb: String) -> (volume_id) {
        linear [ create_volume ]
    }
}

fn main() {}
