//! Whole durable runs: a 1000-step linear chain of no-op steps (each adds 1 to its input) run by
//! the serial engine without a store, and with the memory, SQLite and directory stores; and, in
//! the same run, the bare cost of one single-row INSERT + COMMIT on `SqliteStore`'s settings (WAL,
//! `synchronous=FULL`), which a durable step on SQLite is compared with. The run on SQLite is
//! timed three ways: driven by `.blocking()` (the store's calls on the run's thread) and awaited on a
//! current-thread Tokio runtime (each call handed to the runtime's blocking pool) and on a
//! multi-thread one (each call inside `block_in_place`). See docs/BENCHMARKS.md
//! for the numbers and how to read them.
//!
//! Each iteration is one whole run under a new flow id (an id can be used once per store); the
//! run is deleted from its store after it is timed, so every run starts on the same store.

use std::future::IntoFuture;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Bencher, Criterion, SamplingMode, Throughput};
use taskflow::prelude::*;
use taskflow::store::{DirStore, MemoryStore, SqliteStore, Store};

mod common;
use common::{BareSqlite, Scratch};

const STEPS: u64 = 1000;

#[task(provides = y)]
fn add_one(x: u64) -> u64 {
    black_box(x) + 1
}

// `Chain1000`: `add_one` 1000 times in a `linear` chain, v0 -> v1 -> .. -> v1000, steps
// s0..s999; written by build.rs.
include!(concat!(env!("OUT_DIR"), "/chain1000.rs"));

/// How a benchmarked run is driven.
#[derive(Clone, Copy)]
enum Drive {
    /// `.blocking()`: the store's calls run on the run's own thread.
    Blocking,
    /// Awaited on a current-thread Tokio runtime: each of a blocking store's calls is handed to
    /// the runtime's blocking pool, so the runtime's thread is free while the disk works.
    Awaited,
    /// Awaited on a multi-thread Tokio runtime (2 workers): each call runs inside
    /// `block_in_place`.
    AwaitedMultiThread,
}

/// Times `iters` whole durable runs of the chain on `store`, each under a new id; deleting each
/// run afterwards is not timed.
fn durable_runs(b: &mut Bencher<'_>, store: &Arc<dyn Store>, runs: &mut u64, drive: Drive) {
    let engine = Engine::serial();
    let runtime = match drive {
        Drive::AwaitedMultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .unwrap();
    b.iter_custom(|iters| {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            *runs += 1;
            let id = format!("run-{runs}");
            let start = Instant::now();
            let run = engine
                .run(Chain1000, Chain1000Inputs { v0: black_box(0) })
                .durable(store.clone(), &id);
            let out = match drive {
                Drive::Blocking => run.blocking(),
                Drive::Awaited | Drive::AwaitedMultiThread => runtime.block_on(run.into_future()),
            }
            .unwrap();
            timed += start.elapsed();
            assert_eq!(out.v1000, STEPS);
            store.delete_flow(&id).unwrap();
        }
        timed
    });
}

fn durable(c: &mut Criterion) {
    let engine = Engine::serial();
    let mut runs = 0;

    let mut fast = c.benchmark_group("chain1000");
    fast.throughput(Throughput::Elements(STEPS));
    fast.sample_size(30);
    // The zero-storage baseline: the same chain in memory, not durable.
    fast.bench_function("no_store", |b| {
        b.iter(|| {
            engine
                .run(Chain1000, Chain1000Inputs { v0: black_box(0) })
                .blocking()
                .unwrap()
                .v1000
        })
    });
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    fast.bench_function("memory_store", |b| {
        durable_runs(b, &memory, &mut runs, Drive::Blocking)
    });
    fast.finish();

    // The bare commit, just before the runs on SQLite it is compared with.
    let mut bare = BareSqlite::new();
    c.benchmark_group("commit")
        .sample_size(30)
        .bench_function("bare_sqlite_insert_commit", |b| {
            b.iter(|| bare.insert_commit())
        });

    // About 0.17 s (SQLite) and 3 s (directory store) per run: two runs per sample on SQLite,
    // one on the directory store (criterion warns that its 10 samples take longer than 20 s).
    let mut slow = c.benchmark_group("chain1000");
    slow.throughput(Throughput::Elements(STEPS));
    slow.sampling_mode(SamplingMode::Flat);
    slow.warm_up_time(Duration::from_secs(1));
    slow.sample_size(30);
    slow.measurement_time(Duration::from_secs(10));
    let sqlite_dir = Scratch::new("durable-sqlite");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(sqlite_dir.0.join("flows.db")).unwrap());
    slow.bench_function("sqlite_store", |b| {
        durable_runs(b, &sqlite, &mut runs, Drive::Blocking)
    });
    slow.bench_function("sqlite_store_awaited", |b| {
        durable_runs(b, &sqlite, &mut runs, Drive::Awaited)
    });
    slow.bench_function("sqlite_store_awaited_multi_thread", |b| {
        durable_runs(b, &sqlite, &mut runs, Drive::AwaitedMultiThread)
    });
    slow.sample_size(10);
    slow.measurement_time(Duration::from_secs(20));
    let dir_dir = Scratch::new("durable-dir");
    let dir: Arc<dyn Store> = Arc::new(DirStore::open(&dir_dir.0).unwrap());
    slow.bench_function("dir_store", |b| {
        durable_runs(b, &dir, &mut runs, Drive::Blocking)
    });
    slow.finish();
}

criterion_group!(benches, durable);
criterion_main!(benches);
