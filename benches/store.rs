//! What one checkpoint costs in each store, against the bare cost of one single-row
//! INSERT + COMMIT on the same SQLite settings (WAL, `synchronous=FULL`), in the same run.
//!
//! This measures the storage layer alone, without an engine; `benches/durable.rs` measures whole
//! durable runs. Each checkpoint here is the gist of what the serial engine writes per step of a
//! linear flow: one step's SUCCESS with its result and the next step's RUNNING.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FlowRecord, MemoryStore, SqliteStore, Store,
};
use taskflow::{FlowState, StepState};

mod common;
use common::{BareSqlite, Scratch};

/// The checkpoint a linear flow writes per step: step `n` succeeded, step `n + 1` runs.
fn step_checkpoint(n: u64) -> Checkpoint {
    let mut done = AtomRecord::new(format!("s{n}"));
    done.state = StepState::Success;
    done.result = Some(json!(n));
    let mut next = AtomRecord::new(format!("s{}", n + 1));
    next.state = StepState::Running;
    Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![done, next],
        ..Checkpoint::default()
    }
}

fn bench_store(c: &mut Criterion, name: &str, store: &dyn Store) {
    let flow = FlowRecord::new("bench", "Chain", "fp", json!({ "v0": 0 }));
    store.create_flow(&flow).unwrap();
    let n = AtomicU64::new(0);
    c.bench_function(&format!("checkpoint/{name}"), |b| {
        b.iter_batched(
            || step_checkpoint(n.fetch_add(1, Ordering::Relaxed) % 1000),
            |checkpoint| store.checkpoint(&flow.id, &checkpoint).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

fn checkpoints(c: &mut Criterion) {
    // The baseline: one row, one fsync'd commit, same pragmas as SqliteStore.
    let mut bare = BareSqlite::new();
    c.bench_function("checkpoint/bare_sqlite_insert_commit", |b| {
        b.iter(|| bare.insert_commit())
    });

    bench_store(c, "memory", &MemoryStore::new());
    let sqlite_dir = Scratch::new("sqlite");
    bench_store(
        c,
        "sqlite",
        &SqliteStore::open(sqlite_dir.0.join("flows.db")).unwrap(),
    );
    let dir_dir = Scratch::new("dir");
    bench_store(c, "dir", &DirStore::open(&dir_dir.0).unwrap());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = checkpoints
}
criterion_main!(benches);
