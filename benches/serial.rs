//! The serial engine's per-step overhead: a 100-step linear chain of no-op steps (each adds 1 to
//! its input) on the engine, against the same chain as direct function calls and as a chain of
//! `&dyn Fn` calls, in the same run; and the engine with a listener attached against none. See
//! docs/BENCHMARKS.md for the numbers and how to read them.

use std::future::IntoFuture;
use std::hint::black_box;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use taskflow::prelude::*;
use taskflow::{Listener, StepEvent};

#[task(provides = y)]
fn add_one(x: u64) -> u64 {
    black_box(x) + 1
}

// `Chain100`: `add_one` 100 times in a `linear` chain, v0 -> v1 -> .. -> v100, steps s0..s99;
// written by build.rs, like `direct_chain`'s body.
include!(concat!(env!("OUT_DIR"), "/chain100.rs"));

/// The baseline: the same 100 calls written out, with an optimisation barrier between steps so
/// the compiler cannot fold the chain into one addition.
#[inline(never)]
fn direct_chain(mut v: u64) -> u64 {
    include!(concat!(env!("OUT_DIR"), "/direct_chain100.rs"))
}

#[inline(never)]
fn dyn_chain(steps: &[&dyn Fn(u64) -> u64], mut v: u64) -> u64 {
    for step in steps {
        v = step(black_box(v));
    }
    v
}

fn serial(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = Engine::serial();
    let steps: Vec<&dyn Fn(u64) -> u64> = vec![&add_one; 100];
    assert_eq!(direct_chain(0), 100);
    assert_eq!(dyn_chain(&steps, 0), 100);
    assert_eq!(
        runtime
            .block_on(engine.run(Chain100, Chain100Inputs { v0: 0 }).into_future())
            .unwrap()
            .v100,
        100
    );

    let mut group = c.benchmark_group("chain100");
    group.bench_function("direct_calls", |b| b.iter(|| direct_chain(black_box(0))));
    group.bench_function("dyn_fn_calls", |b| {
        b.iter(|| dyn_chain(&steps, black_box(0)))
    });
    group.bench_function("serial_engine", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    engine
                        .run(Chain100, Chain100Inputs { v0: black_box(0) })
                        .into_future(),
                )
                .unwrap()
                .v100
        })
    });
    // The same chain with a listener attached: every step reports RUNNING and SUCCESS.
    let counted = Arc::new(Counting::default());
    let listened = Engine::serial().listener(counted.clone());
    group.bench_function("serial_engine_with_listener", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    listened
                        .run(Chain100, Chain100Inputs { v0: black_box(0) })
                        .into_future(),
                )
                .unwrap()
                .v100
        });
        // Checked inside the benchmark, so that a run filtered to other benchmarks does not
        // trip over it.
        assert!(
            counted.0.load(Ordering::Relaxed) >= 200,
            "the listener saw the steps"
        );
    });
    group.finish();
}

/// A listener that counts what it sees (the cheapest one that still does something).
#[derive(Default)]
struct Counting(AtomicU64);

impl Listener for Counting {
    fn on_step(&self, _: &StepEvent<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

criterion_group!(benches, serial);
criterion_main!(benches);
