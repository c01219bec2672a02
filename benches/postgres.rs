//! A durable step on PostgreSQL against a bare single-row `INSERT` + `COMMIT` round trip on the
//! same pool, in one run (issue 9, acceptance 5, first half). Both run on PostgreSQL at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a schema of their own
//! that is dropped at the end.
//!
//! - `pg/bare_insert_commit`: per element, `BEGIN; INSERT INTO bare (v) VALUES ($1); COMMIT`
//!   with the INSERT prepared once, on a connection of its own — the least a durable
//!   transaction costs (three round trips and one WAL flush).
//! - `pg/chain1000_step`: a 1000-step linear chain of no-op steps run durably by the serial
//!   engine on a `PostgresStore`, awaited on a multi-thread runtime; per element, one step (its
//!   checkpoint: the next step's RUNNING written with the SUCCESS of the step before it, in one
//!   transaction that locks the run's row and checks the fence).
//!
//! See docs/BENCHMARKS.md for the numbers.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use taskflow::prelude::*;
use taskflow::store::{AsyncStore, PostgresOptions, PostgresStore};

const STEPS: u64 = 1000;

#[task(provides = y)]
fn add_one(x: u64) -> u64 {
    black_box(x) + 1
}

// `Chain1000`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/chain1000.rs"));

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("bench_{}", std::process::id());
    let store = rt.block_on(async {
        let options = PostgresOptions {
            schema: schema.clone(),
            pool_size: 4,
            ..Default::default()
        };
        Arc::new(PostgresStore::connect_with(&url(), options).await.unwrap())
    });
    let (client, conn) = rt
        .block_on(tokio_postgres::connect(&url(), tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(conn);
    let mut client = client;
    rt.block_on(client.batch_execute(&format!(
        "CREATE TABLE \"{schema}\".bare (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)"
    )))
    .unwrap();
    let insert = rt
        .block_on(client.prepare(&format!("INSERT INTO \"{schema}\".bare (v) VALUES ($1)")))
        .unwrap();

    let mut group = c.benchmark_group("pg");
    group.throughput(Throughput::Elements(STEPS));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("bare_insert_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters * STEPS {
                    let tx = client.transaction().await.unwrap();
                    tx.execute(&insert, &[&"step result"]).await.unwrap();
                    tx.commit().await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    let engine = Engine::serial();
    let mut runs = 0u64;
    group.bench_function("chain1000_step", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                runs += 1;
                let id = format!("run-{runs}");
                rt.block_on(async {
                    let start = Instant::now();
                    let out = engine
                        .run(Chain1000, Chain1000Inputs { v0: black_box(0) })
                        .durable(store.clone(), &id)
                        .await
                        .unwrap();
                    timed += start.elapsed();
                    assert_eq!(out.v1000, STEPS);
                    store.delete_flow(&id).await.unwrap();
                });
            }
            timed
        })
    });
    group.finish();
    rt.block_on(client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .unwrap();
}

criterion_group!(benches, postgres);
criterion_main!(benches);
