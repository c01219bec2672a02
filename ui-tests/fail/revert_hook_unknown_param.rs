// Revert hook parameter `server` is not an input of the task, `result` or `failures`.
use taskflow::prelude::*;

#[task(provides = server_id, revert = delete_server)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[revert]
fn delete_server(server: &u64) {
    let _ = server;
}

fn main() {}
