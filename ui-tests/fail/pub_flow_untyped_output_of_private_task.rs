// A `pub` flow outputs a value of a private task without writing its type.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

flow! {
    pub flow Boot(image: String) -> (server_id) {
        linear [ launch_server ]
    }
}

fn main() {}
