// Two steps provide `server_id`.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = server_id)]
fn find_server() -> u64 {
    7
}

flow! {
    flow Boot(image: String) -> (server_id) {
        linear [ launch_server, find_server ]
    }
}

fn main() {}
