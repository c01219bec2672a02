// A revert hook's parameter named after a task input reads that input: one of another type is
// one error on that parameter, naming the hook, the input and both types, whether the hook
// takes it by reference or by value.
use taskflow::prelude::*;

#[task(provides = server_id, revert = delete_server)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[revert]
fn delete_server(image: &u32, result: TaskOutcome<&u64>) {
    let _ = (image, result);
}

#[task(provides = volume_id, revert = delete_volume)]
fn create_volume(size_gb: u32) -> u64 {
    u64::from(size_gb)
}

#[revert]
fn delete_volume(size_gb: String) {
    let _ = size_gb;
}

flow! {
    flow Boot(image: String, size_gb: u32) -> (server_id, volume_id) {
        linear [ launch_server, create_volume ]
    }
}

fn main() {}
