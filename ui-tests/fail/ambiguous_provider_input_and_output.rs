// The flow takes `server_id` as an input and a step provides `server_id` too.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task]
fn notify(server_id: u64) {
    let _ = server_id;
}

flow! {
    flow Boot(image: String, server_id: u64) {
        linear [ launch_server, notify ]
    }
}

fn main() {}
