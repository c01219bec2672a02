// `delete_server` is meant as the revert hook of `launch_server` but lacks #[revert]. rustc's
// name resolution reports it (see docs/design.md, "Known limitation: a path that is not a task").
use taskflow::prelude::*;

fn delete_server(id: u64) {
    let _ = id;
}

#[task(provides = server_id, revert = delete_server)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

fn main() {}
