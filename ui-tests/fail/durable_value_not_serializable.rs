// A flow whose step provides a value that is not `Serialize + DeserializeOwned` runs in memory,
// but attaching a store to it is a compile error that names the type.
use std::sync::Arc;
use taskflow::prelude::*;
use taskflow::store::MemoryStore;

pub struct Connection {
    pub fd: i32,
}

#[task(provides = conn)]
fn connect(host: String) -> Connection {
    Connection { fd: host.len() as i32 }
}

#[task(provides = bytes)]
fn send(conn: &Connection) -> u64 {
    conn.fd as u64
}

flow! {
    flow Upload(host: String) -> (bytes) {
        linear [ connect, send ]
    }
}

fn main() {
    // In memory: fine.
    let out = Engine::serial().run(Upload, UploadInputs { host: "db".into() }).blocking().unwrap();
    assert_eq!(out.bytes, 2);
    // With a store: `Connection` cannot be stored.
    let store = Arc::new(MemoryStore::new());
    let _ = Engine::serial().run(Upload, UploadInputs { host: "db".into() }).durable(store, "u-1").blocking();
}
