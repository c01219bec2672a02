// A revert hook reads a task's input through its binding check: by `&P` anything the input
// dereferences to (`&str` of a `String`, `&[u32]` of a `Vec<u32>`), by value an owned copy.
use std::sync::Mutex;

use taskflow::prelude::*;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

#[task(provides = server_id, revert = delete_server)]
fn launch_server(image: String, sizes: &Vec<u32>, zone: &str) -> u64 {
    image.len() as u64 + sizes.len() as u64 + zone.len() as u64
}

#[revert]
fn delete_server(image: &str, sizes: &[u32], zone: String, result: TaskOutcome<&u64>) {
    LOG.lock()
        .unwrap()
        .push(format!("delete {} {image} {sizes:?} {zone}", result.unwrap()));
}

#[task]
fn fail(server_id: &u64) -> Result<(), Refused> {
    let _ = server_id;
    Err(Refused)
}

flow! {
    flow Boot(image: String, sizes: Vec<u32>, zone: String) {
        linear [ launch_server, fail ]
    }
}

fn main() {
    for engine in [Engine::serial(), Engine::parallel()] {
        LOG.lock().unwrap().clear();
        let inputs = BootInputs { image: "debian".into(), sizes: vec![1, 2], zone: "eu".into() };
        assert!(engine.run(Boot, inputs).blocking().is_err());
        assert_eq!(*LOG.lock().unwrap(), ["delete 10 debian [1, 2] eu"]);
    }
}
