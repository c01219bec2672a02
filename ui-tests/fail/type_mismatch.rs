// `launch_server` provides `server_id: u64`, but `attach_volume` takes `server_id: &str`.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = volume_id)]
fn attach_volume(server_id: &str) -> String {
    format!("{server_id}-vol")
}

flow! {
    flow Boot(image: String) -> (volume_id) {
        linear [ launch_server, attach_volume ]
    }
}

fn main() {}
