// `attach_volume` reads `server_id`, which only the step after it provides.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = volume_id)]
fn attach_volume(server_id: u64) -> u64 {
    server_id * 10
}

flow! {
    flow Boot(image: String) -> (volume_id) {
        linear [ attach_volume, launch_server ]
    }
}

fn main() {}
