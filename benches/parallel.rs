//! The parallel engine's overhead, against plain Tokio, in the same run (see docs/BENCHMARKS.md):
//!
//! - `fanout1024`: one flow of 1024 independent no-op steps (each returns its input plus 1), once
//!   with a sync task (the steps run on the engine's worker pool) and once with an async task (the
//!   steps are polled together on the caller's task), against 1024 `tokio::spawn` of the same
//!   no-op work, joined. Throughput is set to 1024 elements, so criterion also reports steps/s;
//!   divide a median by 1024 for the cost per step.
//! - `sleep64`: one flow of 64 independent async steps that each sleep 10 ms, against a single
//!   10 ms sleep (the ideal: every sleep overlaps).
//!
//! Everything runs in one multi-thread Tokio runtime with 2 worker threads, one
//! `Runtime::block_on` per iteration; the engine has 2 pool workers to match. The flows are written
//! by the root package's build.rs.

use std::future::IntoFuture;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use taskflow::prelude::*;

/// Steps in each fan-out flow.
const FAN_OUT: u64 = 1024;
/// Steps in the sleep flow, and how long each sleeps.
const SLEEPERS: u64 = 64;
const NAP: Duration = Duration::from_millis(10);

#[task(provides = y)]
fn noop(x: u64) -> u64 {
    black_box(x) + 1
}

#[task(provides = y)]
async fn noop_async(x: u64) -> u64 {
    black_box(x) + 1
}

#[task(provides = z)]
async fn nap(x: u64) -> u64 {
    tokio::time::sleep(NAP).await;
    x + 1
}

// `FanOutSync`: `noop` 1024 times in one `unordered`, step s{i} reading `x` and providing y{i};
// outputs y0 and y1023. `FanOutAsync`: the same with `noop_async`. `Sleep64`: `nap` 64 times,
// step n{i} providing z{i}; outputs z0 and z63.
include!(concat!(env!("OUT_DIR"), "/fan_out_sync.rs"));
include!(concat!(env!("OUT_DIR"), "/fan_out_async.rs"));
include!(concat!(env!("OUT_DIR"), "/sleep64.rs"));

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn engine() -> Engine {
    Engine::parallel().workers(2)
}

/// The baseline: the same no-op work as 1024 Tokio tasks, spawned and then joined in order.
async fn spawn_join(x: u64) -> u64 {
    let handles: Vec<_> = (0..FAN_OUT)
        .map(|_| tokio::spawn(async move { noop(x) }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    sum
}

fn fanout(c: &mut Criterion) {
    let runtime = runtime();
    let engine = engine();

    // Check once, outside the timing loops, that each benchmark does what it claims.
    for graph in [FanOutSync::graph(), FanOutAsync::graph()] {
        assert_eq!(graph.steps().len(), FAN_OUT as usize);
        assert!(
            graph.edges().is_empty(),
            "the fan-out steps must be independent"
        );
    }
    assert_eq!(runtime.block_on(spawn_join(7)), FAN_OUT * 8);
    let out = runtime
        .block_on(
            engine
                .run(FanOutSync, FanOutSyncInputs { x: 7 })
                .into_future(),
        )
        .unwrap();
    assert_eq!((out.y0, out.y1023), (8, 8));
    let out = runtime
        .block_on(
            engine
                .run(FanOutAsync, FanOutAsyncInputs { x: 7 })
                .into_future(),
        )
        .unwrap();
    assert_eq!((out.y0, out.y1023), (8, 8));

    let mut group = c.benchmark_group("fanout1024");
    group.throughput(Throughput::Elements(FAN_OUT));
    group.bench_function("tokio_spawn_join", |b| {
        b.iter(|| runtime.block_on(spawn_join(black_box(7))))
    });
    group.bench_function("parallel_engine_sync", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    engine
                        .run(FanOutSync, FanOutSyncInputs { x: black_box(7) })
                        .into_future(),
                )
                .unwrap()
                .y0
        })
    });
    group.bench_function("parallel_engine_async", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    engine
                        .run(FanOutAsync, FanOutAsyncInputs { x: black_box(7) })
                        .into_future(),
                )
                .unwrap()
                .y0
        })
    });
    group.finish();
}

fn sleep(c: &mut Criterion) {
    let runtime = runtime();
    let engine = engine();

    assert_eq!(Sleep64::graph().steps().len(), SLEEPERS as usize);
    assert!(Sleep64::graph().edges().is_empty());
    let start = Instant::now();
    let out = runtime
        .block_on(engine.run(Sleep64, Sleep64Inputs { x: 7 }).into_future())
        .unwrap();
    let took = start.elapsed();
    assert_eq!((out.z0, out.z63), (8, 8));
    // Run one after another, the sleeps would take 640 ms: they must overlap.
    assert!(
        took >= NAP && took < NAP * 16,
        "64 concurrent 10 ms sleeps took {took:?}"
    );

    let mut group = c.benchmark_group("sleep64");
    group.sample_size(20);
    group.bench_function("single_sleep_10ms", |b| {
        b.iter(|| runtime.block_on(async { tokio::time::sleep(black_box(NAP)).await }))
    });
    group.bench_function("parallel_engine_64_sleeps", |b| {
        b.iter(|| {
            runtime
                .block_on(
                    engine
                        .run(Sleep64, Sleep64Inputs { x: black_box(7) })
                        .into_future(),
                )
                .unwrap()
                .z0
        })
    });
    group.finish();
}

criterion_group!(benches, fanout, sleep);
criterion_main!(benches);
