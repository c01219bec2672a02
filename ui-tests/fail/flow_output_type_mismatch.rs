// A flow output declared with a type other than what its step provides: one error, naming the
// output, the step and both types.
use taskflow::prelude::*;

#[task(provides = volume_id)]
fn create_volume(size_gb: u32) -> u64 {
    u64::from(size_gb)
}

flow! {
    pub flow Provision(size_gb: u32) -> (volume_id: u32) {
        linear [ create_volume ]
    }
}

fn main() {}
