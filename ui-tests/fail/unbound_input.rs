// A task requires `flavor`, which neither a flow input nor an earlier step provides.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String, flavor: u32) -> u64 {
    image.len() as u64 + u64::from(flavor)
}

flow! {
    flow Boot(image: String) -> (server_id) {
        linear [ launch_server ]
    }
}

fn main() {}
