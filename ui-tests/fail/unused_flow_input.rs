// Flow input `flavor` is read by no step.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

flow! {
    flow Boot(image: String, flavor: u32) -> (server_id) {
        linear [ launch_server ]
    }
}

fn main() {}
