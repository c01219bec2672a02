// `servers` is a module, not a #[task]. rustc's name resolution reports it (see docs/design.md,
// "Known limitation: a path that is not a task").
use taskflow::prelude::*;

mod servers {
    pub fn launch(image: String) -> u64 {
        image.len() as u64
    }
}

flow! {
    flow Boot(image: String) {
        linear [ servers ]
    }
}

fn main() {}
