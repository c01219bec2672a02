//! What one checkpoint costs in each store, against the bare cost of one single-row
//! INSERT + COMMIT on the same SQLite settings (WAL, `synchronous=FULL`), in the same run.
//!
//! This measures the storage layer alone: the engines do not checkpoint yet, so the issue's
//! 1000-step durable flow comes with that integration. Each checkpoint here is what a linear flow
//! will write per step: one step's SUCCESS with its result and the next step's RUNNING.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FlowRecord, MemoryStore, SqliteStore, Store,
};
use taskflow::{FlowState, StepState};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskflow-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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
    let dir = scratch("bare");
    let conn = rusqlite::Connection::open(dir.join("bare.db")).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let mut i = 0u64;
    c.bench_function("checkpoint/bare_sqlite_insert_commit", |b| {
        b.iter(|| {
            i += 1;
            conn.execute("INSERT INTO t (v) VALUES (?1)", [i.to_string()])
                .unwrap();
        })
    });

    bench_store(c, "memory", &MemoryStore::new());
    let sqlite_dir = scratch("sqlite");
    bench_store(
        c,
        "sqlite",
        &SqliteStore::open(sqlite_dir.join("flows.db")).unwrap(),
    );
    let dir_dir = scratch("dir");
    bench_store(c, "dir", &DirStore::open(&dir_dir).unwrap());

    for d in [dir, sqlite_dir, dir_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = checkpoints
}
criterion_main!(benches);
