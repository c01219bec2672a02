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
