// Several mistakes in one flow!, all reported in one build: an unbound input, a rebind of a missing parameter, an unused input and an unknown output.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String, flavor: u32) -> u64 {
    image.len() as u64 + u64::from(flavor)
}

#[task(provides = volume_id)]
fn attach_volume(server_id: u64, size_gb: u32) -> u64 {
    server_id * 1000 + u64::from(size_gb)
}

flow! {
    flow Boot(image: String, size_gb: u32, zone: String) -> (volume_id, ip) {
        linear [ launch_server, attach_volume(disk = size_gb) ]
    }
}

fn main() {}
