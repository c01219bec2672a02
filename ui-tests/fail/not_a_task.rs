// `launch_server` is a plain function, not a #[task].
use taskflow::prelude::*;

fn launch_server(image: String) -> u64 {
    image.len() as u64
}

flow! {
    flow Boot(image: String) {
        linear [ launch_server ]
    }
}

fn main() {}
