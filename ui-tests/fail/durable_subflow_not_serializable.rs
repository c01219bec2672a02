// A sub-flow with a value that is not serializable makes its parent non-durable too.
use std::sync::Arc;
use taskflow::prelude::*;
use taskflow::store::MemoryStore;

pub struct Handle(u32);

#[task(provides = handle)]
fn open(name: String) -> Handle {
    Handle(name.len() as u32)
}

#[task(provides = size)]
fn measure(handle: &Handle) -> u32 {
    handle.0
}

flow! {
    flow Measure(name: String) -> (size) { linear [ open, measure ] }
}

#[task(provides = report)]
fn report(size: u32) -> String {
    size.to_string()
}

flow! {
    flow Report(name: String) -> (report) { linear [ Measure, report ] }
}

fn main() {
    let store = Arc::new(MemoryStore::new());
    let _ = Engine::serial().run(Report, ReportInputs { name: "x".into() }).durable(store, "r-1").blocking();
}
