// Two values that cannot be stored: one error, on the first (rustc reports one unmet bound).
use std::sync::Arc;
use taskflow::prelude::*;
use taskflow::store::MemoryStore;

pub struct Connection {
    pub fd: i32,
}

#[task(provides = primary)]
fn connect(host: String) -> Connection {
    Connection { fd: host.len() as i32 }
}

#[task(provides = replica)]
fn connect_replica(host: String) -> Connection {
    Connection { fd: host.len() as i32 + 1 }
}

#[task(provides = bytes)]
fn send(primary: &Connection, replica: &Connection) -> u64 {
    (primary.fd + replica.fd) as u64
}

flow! {
    flow Upload(host: String) -> (bytes) {
        linear [ connect, connect_replica, send ]
    }
}

fn main() {
    let store = Arc::new(MemoryStore::new());
    let _ = Engine::serial().run(Upload, UploadInputs { host: "db".into() }).durable(store, "u-1").blocking();
}
