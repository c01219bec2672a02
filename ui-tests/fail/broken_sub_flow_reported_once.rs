// A sub-flow with a wiring mistake is reported once; the flow that uses it adds no error.
use taskflow::prelude::*;

#[task(provides = server_id)]
fn launch_server(image: String) -> u64 {
    image.len() as u64
}

flow! {
    flow Launch(image: String) -> (server_id, nothing) {
        linear [ launch_server ]
    }
}

flow! {
    flow Boot(image: String) -> (server_id) {
        linear [ Launch ]
    }
}

fn main() {
    let _ = Engine::serial().run(Boot, BootInputs { image: "debian".into() }).blocking();
}
