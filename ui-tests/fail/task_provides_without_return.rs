// `provides = server_id` on a task that returns nothing.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) {
    let _ = image;
}

fn main() {}
