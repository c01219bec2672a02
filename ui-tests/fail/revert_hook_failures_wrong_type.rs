// A revert hook's `failures` is what failed in the flow, `&[Failure]`. Any other type is one
// error on that parameter, saying which type it must be.
use taskflow::prelude::*;

#[task(provides = server_id, revert = delete_server)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

#[revert]
fn delete_server(image: String, failures: Vec<String>) {
    let _ = (image, failures);
}

flow! {
    flow Boot(image: String) -> (server_id) {
        linear [ launch_server ]
    }
}

fn main() {
    let _ = Engine::serial().run(Boot, BootInputs { image: "debian".into() }).blocking();
}
