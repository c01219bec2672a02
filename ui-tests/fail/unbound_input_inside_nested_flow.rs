// `attach_volume` reads `server_id`, which is internal to sub-flow `Launch` (not one of its outputs).
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = ip)]
fn assign_ip(server_id: &u64) -> String {
    format!("10.0.0.{server_id}")
}

#[task(provides = volume_id)]
fn attach_volume(server_id: u64) -> u64 {
    server_id * 10
}

flow! {
    flow Launch(image: String) -> (ip) {
        linear [ launch_server, assign_ip ]
    }
}

flow! {
    flow Boot(image: String) -> (ip, volume_id) {
        linear [ Launch, attach_volume ]
    }
}

fn main() {}
