//! A 500-step flow compiles with the default recursion limit. Its `flow!` call is written by the
//! root package's build.rs, which benches/compile_time.sh also uses for the compile time of this
//! flow in docs/BENCHMARKS.md.
use taskflow::prelude::*;

#[task(provides = y)]
fn add_one(x: u64) -> u64 {
    x + 1
}

// `Chain500`: `add_one` 500 times in a `linear` chain, v0 -> v1 -> .. -> v500, steps s0..s499.
include!(concat!(env!("OUT_DIR"), "/chain500.rs"));

#[test]
fn a_500_step_flow_runs_every_step() {
    let out = Engine::serial()
        .run(Chain500, Chain500Inputs { v0: 7 })
        .blocking()
        .unwrap();
    assert_eq!(out.v500, 507);
    assert_eq!(Chain500::graph().steps().len(), 500);
}

mod common;

/// A durable run of the 500-step flow stopped by a failed checkpoint in its 400s resumes from
/// the store: the steps' results are saved and loaded through `flow!`'s dispatches on the step
/// number, which are in chunks of 64 steps in a flow of more than 256, on both engines.
#[test]
fn a_500_step_durable_run_resumes_past_the_first_chunks() {
    use std::sync::Arc;
    use taskflow::store::{MemoryStore, Store, StoreError};
    for engine in [Engine::serial(), Engine::parallel().workers(2)] {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let flaky = common::HookedStore::new(store.clone(), |n, _, write| {
            if n >= 400 {
                return Err(StoreError::Io {
                    path: "flaky".into(),
                    source: std::io::Error::other("no space left on device"),
                });
            }
            write()
        });
        engine
            .run(Chain500, Chain500Inputs { v0: 7 })
            .durable(Arc::new(flaky), "chain")
            .blocking()
            .unwrap_err();
        let stored = store.load_flow("chain").unwrap().unwrap();
        let done = stored
            .atoms
            .iter()
            .filter(|a| a.state == taskflow::StepState::Success)
            .count();
        assert!((257..500).contains(&done), "{done} steps recorded SUCCESS");
        let out = engine
            .resume(Chain500, store.clone(), "chain")
            .blocking()
            .unwrap();
        assert_eq!(out.v500, 507);
    }
}
