// A task parameter is misspelled (`sever_id` for `server_id`): the error suggests the close name.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[task(provides = volume_id)]
fn attach_volume(sever_id: u64) -> u64 {
    sever_id * 10
}

flow! {
    flow Boot(image: String) -> (volume_id) {
        linear [ launch_server, attach_volume ]
    }
}

fn main() {}
