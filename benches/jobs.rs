//! Jobs through PostgreSQL at `DATABASE_URL`, in one run with their baseline:
//!
//! - `pgbench`: `benches/jobs_pgbench.sh` runs the plain single-row post, claim and complete
//!   statements of a job queue with N clients, just before the benchmarks of N claimers and N
//!   conductors, for N = 1, 2, 4 (printed; skipped with a note when `pgbench` is not
//!   installed);
//! - `jobs/post_claim_complete/N`: the board's own cost, empty jobs posted, claimed and
//!   completed through `JobBoard` by N claimers at once (each posts its share, then claims in
//!   batches of up to 32 and completes each batch with one `complete_many`); no flow runs;
//! - `jobs/conductors/N`: the whole path, N `Conductor`s (each with its own store and pool, as
//!   on N machines, started once) claiming and running jobs of a one-step flow durably; a
//!   sample posts its jobs (N posters, one job per statement, as pgbench's clients post theirs)
//!   and ends when all of them ran to SUCCESS.
//!
//! Per element: one job. Results in docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use std::sync::atomic::{AtomicU64, Ordering};

use taskflow::conductor::{Conductor, ConductorOptions, Drain};
use taskflow::prelude::*;
use taskflow::store::{FlowKey, JobBoard, NewJob, Owner, PostgresOptions, PostgresStore};
use taskflow::{FlowEvent, Listener};

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

/// The baseline, in the same run: pgbench's figure with `clients` clients, printed before the
/// benchmarks of as many claimers and conductors.
fn pgbench(clients: u64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/jobs_pgbench.sh");
    match std::process::Command::new("bash")
        .args([script, "10", &clients.to_string()])
        .output()
    {
        Ok(out) if out.status.success() => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        Ok(out) => println!(
            "pgbench baseline not measured: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("pgbench baseline not measured: {e}"),
    }
}

/// Counts the runs that ended SUCCESS, and wakes the bench when `target` did.
struct Finished {
    done: AtomicU64,
    target: AtomicU64,
    all: tokio::sync::Notify,
}

impl Listener for Finished {
    fn on_flow(&self, event: &FlowEvent<'_>) {
        if event.state == FlowState::Success && event.flow == "Empty" {
            let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            if done == self.target.load(Ordering::SeqCst) {
                self.all.notify_one();
            }
        }
    }
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
            ..Default::default()
        };
        Arc::new(PostgresStore::connect_with(&url(), options).await.unwrap())
    });
    let board = JobBoard::new(store.clone());
    let job = NewJob::of::<Empty>(&EmptyInputs { x: 1 }).unwrap();
    let keys = [FlowKey::of::<Empty>()];

    let finished = Arc::new(Finished {
        done: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        all: tokio::sync::Notify::new(),
    });
    let mut group = c.benchmark_group("jobs");
    group.throughput(Throughput::Elements(JOBS));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    // For each number of clients: the baseline first, then the board alone, then conductors,
    // so that each ratio is of figures measured within a minute of each other.
    for n in [1u64, 2, 4] {
        pgbench(n);
        let claimers = n;
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
        // Conductors: each with its own store (its own pool and LISTEN connection), as on machines
        // of their own, started once per group and running the jobs' one-step flow durably. Each
        // sample posts its jobs — one poster per conductor, one job per statement, as each pgbench
        // client posts its own — and ends when every one of them ran to SUCCESS.
        let conductors = n;
        let (stop, _) = tokio::sync::watch::channel(());
        let runs: Vec<_> = rt.block_on(async {
            let mut runs = Vec::new();
            for _ in 0..conductors {
                let options = PostgresOptions {
                    schema: schema.clone(),
                    pool_size: 10,
                    ..Default::default()
                };
                let store = Arc::new(PostgresStore::connect_with(&url(), options).await.unwrap());
                let engine = Engine::serial().listener(finished.clone());
                let conductor = Conductor::new(store, engine)
                    .options(ConductorOptions {
                        concurrency: 8,
                        drain: Drain::Finish,
                        ..Default::default()
                    })
                    .register(|| Empty);
                let mut stopped = stop.subscribe();
                runs.push(tokio::spawn(async move {
                    conductor
                        .run(async move {
                            let _ = stopped.changed().await;
                        })
                        .await
                        .unwrap()
                }));
            }
            runs
        });
        let posted = AtomicU64::new(0);
        group.bench_with_input(
            BenchmarkId::new("conductors", conductors),
            &conductors,
            |b, &conductors| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut elapsed = Duration::ZERO;
                        for _ in 0..iters {
                            finished.done.store(0, Ordering::SeqCst);
                            finished.target.store(JOBS, Ordering::SeqCst);
                            let start = Instant::now();
                            let posters: Vec<_> = (0..conductors)
                                .map(|i| {
                                    let (board, job) = (board.clone(), job.clone());
                                    let share =
                                        JOBS / conductors + u64::from(i < JOBS % conductors);
                                    tokio::spawn(async move {
                                        for _ in 0..share {
                                            board.post(&job).await.unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for poster in posters {
                                poster.await.unwrap();
                            }
                            finished.all.notified().await;
                            elapsed += start.elapsed();
                            posted.fetch_add(JOBS, Ordering::SeqCst);
                        }
                        elapsed
                    })
                })
            },
        );
        drop(stop);
        let ended: u64 = rt.block_on(async {
            let mut ended = 0;
            for run in runs {
                ended += run.await.unwrap().done;
            }
            ended
        });
        assert_eq!(ended, posted.load(Ordering::SeqCst), "every job ended once");
        eprintln!("conductors/{conductors}: {ended} jobs, each ended once");
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
