// `launch_server` provides `server_id: u64`, but `attach_volume` takes `server_id: u32` by value.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = volume_id)]
fn attach_volume(server_id: u32) -> u32 {
    server_id * 10
}

flow! {
    flow Boot(image: String) -> (volume_id) {
        linear [ launch_server, attach_volume ]
    }
}

fn main() {}
