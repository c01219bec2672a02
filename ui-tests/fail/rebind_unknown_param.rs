// `launch_server(flavour = ..)` rebinds a parameter the task does not have (it has `flavor`).
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String, flavor: u32) -> u64 {
    image.len() as u64 + u64::from(flavor)
}

flow! {
    flow Boot(image: String, size: u32) -> (server_id) {
        linear [ launch_server(flavour = size) ]
    }
}

fn main() {}
