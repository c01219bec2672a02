//! The job board's own cost: empty jobs posted, claimed and completed through `JobBoard` by 1, 2
//! and 4 claimers at once (each claimer posts its share, then claims in batches of up to 32 and
//! completes each batch with one `complete_many`), on PostgreSQL at `DATABASE_URL`. Per element: one job through its
//! three statements. No flow runs: this is the board, not a conductor's durable run (for that,
//! see `benches/postgres.rs`). The baseline, pgbench running the plain single-row post, claim
//! and complete statements with 1, 2 and 4 clients, is `benches/jobs_pgbench.sh`; both are in
//! docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use taskflow::prelude::*;
use taskflow::store::{FlowKey, JobBoard, NewJob, Owner, PostgresOptions, PostgresStore};

const JOBS: u64 = 400;

#[task(provides = y)]
fn noop(x: u32) -> u32 {
    x
}

flow! { flow Empty(x: u32) -> (y) { linear [ noop ] } }

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn jobs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("bench_jobs_{}", std::process::id());
    let store = rt.block_on(async {
        let options = PostgresOptions {
            schema: schema.clone(),
            pool_size: 8,
        };
        Arc::new(PostgresStore::connect_with(&url(), options).await.unwrap())
    });
    let board = JobBoard::new(store.clone());
    let job = NewJob::of::<Empty>(&EmptyInputs { x: 1 }).unwrap();
    let keys = [FlowKey::of::<Empty>()];

    let mut group = c.benchmark_group("jobs");
    group.throughput(Throughput::Elements(JOBS));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    for claimers in [1u64, 2, 4] {
        group.bench_with_input(
            BenchmarkId::new("post_claim_complete", claimers),
            &claimers,
            |b, &claimers| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let tasks: Vec<_> = (0..claimers)
                                .map(|i| {
                                    let (board, job, keys) =
                                        (board.clone(), job.clone(), keys.clone());
                                    tokio::spawn(async move {
                                        let owner = Owner {
                                            pid: i as u32,
                                            ..Owner::current()
                                        };
                                        for _ in 0..JOBS / claimers {
                                            board.post(&job).await.unwrap();
                                        }
                                        loop {
                                            let claims = board
                                                .claim(&owner, &keys, 32, Duration::from_secs(60))
                                                .await
                                                .unwrap();
                                            if claims.is_empty() {
                                                return;
                                            }
                                            let ended: Vec<_> = claims
                                                .iter()
                                                .map(|c| (c, FlowState::Success))
                                                .collect();
                                            for done in board.complete_many(&ended).await.unwrap() {
                                                done.unwrap();
                                            }
                                        }
                                    })
                                })
                                .collect();
                            for t in tasks {
                                t.await.unwrap();
                            }
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    group.finish();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    });
}

criterion_group!(benches, jobs);
criterion_main!(benches);
