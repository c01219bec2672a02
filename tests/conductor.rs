//! Conductors through the public API, on PostgreSQL at `DATABASE_URL`: two conductors share the
//! jobs of a board and run each once; a shutdown stops runs at a step boundary and gives their
//! jobs back, and another conductor resumes them; a conductor process killed with SIGKILL in
//! the middle of a job loses it to another, which resumes the run without running again what
//! was recorded SUCCESS; a cancelled job stops; a job of a flow nobody registered is left alone.
mod common;
use common::PgStore;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskflow::conductor::{Conductor, ConductorOptions};
use taskflow::prelude::*;
use taskflow::store::{
    AsyncStore, FlowKey, JobBoard, JobState, NewJob, PostgresOptions, PostgresStore,
};

/// Appends `line` to the side-effect log `log` (one `write` per line, so lines of several
/// processes do not mix).
fn note(log: &str, line: String) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{line} {}\n", std::process::id()).as_bytes())
        .unwrap();
}

#[task(provides = a)]
fn first(x: u32, log: String) -> u32 {
    note(&log, format!("first {x}"));
    x + 1
}

#[task(provides = b)]
fn slow(a: u32, ms: u64, log: String) -> u32 {
    note(&log, format!("slow-start {a}"));
    std::thread::sleep(Duration::from_millis(ms));
    note(&log, format!("slow {a}"));
    a * 10
}

#[task(provides = c)]
fn last(b: u32, log: String) -> u32 {
    note(&log, format!("last {b}"));
    b + 1
}

flow! {
    flow Work(x: u32, ms: u64, log: String) -> (c) {
        linear [ first, slow, last ]
    }
}

/// A payment: a person checks it when its conductor died while it ran.
#[task(provides = b, on_takeover = hold)]
fn charge(a: u32, ms: u64, log: String) -> u32 {
    note(&log, format!("charge-start {a}"));
    std::thread::sleep(Duration::from_millis(ms));
    a * 10
}

flow! {
    flow Pay(x: u32, ms: u64, log: String) -> (c) {
        linear [ first, charge, last ]
    }
}

#[task(provides = y)]
fn other(x: u32) -> u32 {
    x
}

flow! {
    flow Unknown(x: u32) -> (y) { linear [ other ] }
}

fn options(hold_ms: u64) -> ConductorOptions {
    ConductorOptions {
        concurrency: 4,
        claim_hold: Duration::from_millis(hold_ms),
        heartbeat_every: Duration::from_millis(hold_ms / 5),
        poll_every: Duration::from_millis(20),
        ..Default::default()
    }
}

fn conductor(store: &Arc<PostgresStore>, o: ConductorOptions) -> Conductor {
    Conductor::new(
        store.clone(),
        Engine::serial().lease(Duration::from_secs(2), Duration::from_millis(300)),
    )
    .options(o)
    .register(|| Work)
    .register(|| Pay)
}

fn post(board: &JobBoard, x: u32, ms: u64, log: &Path) -> taskflow::store::JobId {
    let job = NewJob::of::<Work>(&WorkInputs {
        x,
        ms,
        log: log.display().to_string(),
    })
    .unwrap();
    futures_block(board.post(&job)).unwrap().id()
}

/// Blocks on `fut` in a fresh current-thread runtime (the test's own runtime is elsewhere).
fn futures_block<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect()
}

/// Waits (up to 30 s) until every job of `board` is in a final state.
async fn all_final(board: &JobBoard) {
    all_final_except(board, None).await
}

#[test]
fn two_conductors_share_the_jobs_and_run_each_once() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    for x in 0..24 {
        post(&board, x, 5, &log);
    }
    let unknown =
        futures_block(board.post(&NewJob::of::<Unknown>(&UnknownInputs { x: 1 }).unwrap()))
            .unwrap()
            .id();
    let (a, b) = (
        conductor(&pg.store, options(2000)),
        conductor(&pg.store, options(2000)),
    );
    let reports = pg.rt.block_on(async {
        let done = all_final_except(&board, Some(unknown));
        let (stop_a, stop_b) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let (ra, rb, ()) =
            tokio::join!(a.run(stop_a.notified()), b.run(stop_b.notified()), async {
                done.await;
                stop_a.notify_one();
                stop_b.notify_one();
            });
        (ra.unwrap(), rb.unwrap())
    });
    assert_eq!(reports.0.done + reports.1.done, 24, "{reports:?}");
    assert_eq!(reports.0.lost + reports.1.lost, 0, "{reports:?}");
    let log = lines(&log);
    for x in 0..24 {
        for line in [
            format!("first {x}"),
            format!("slow {}", x + 1),
            format!("last {}", (x + 1) * 10),
        ] {
            assert_eq!(
                log.iter().filter(|l| **l == line).count(),
                1,
                "{line}: {log:?}"
            );
        }
    }
    pg.rt.block_on(async {
        for job in board.jobs().await.unwrap() {
            if job.id == unknown {
                assert_eq!(
                    job.state,
                    JobState::Posted,
                    "a flow nobody here runs is left alone"
                );
                continue;
            }
            assert_eq!(
                (job.state, job.outcome, job.claims),
                (JobState::Done, Some(FlowState::Success), 1)
            );
            let run = pg.store.load_flow(&job.id.run_id()).await.unwrap().unwrap();
            assert_eq!(run.flow.state, FlowState::Success);
        }
        let waiting = board
            .waiting_elsewhere(&[FlowKey::of::<Work>()])
            .await
            .unwrap();
        assert_eq!(waiting.len(), 1);
    });
}

/// Waits (up to 30 s) until every job but `except` has ended.
async fn all_final_except(board: &JobBoard, except: Option<taskflow::store::JobId>) {
    let start = Instant::now();
    loop {
        let jobs = board.jobs().await.unwrap();
        if jobs
            .iter()
            .filter(|j| Some(j.id) != except)
            .all(|j| j.state.is_final())
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "jobs did not end: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_shutdown_stops_runs_at_a_step_boundary_and_gives_their_jobs_back() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let id = post(&board, 1, 400, &log);
    let first = conductor(&pg.store, options(2000));
    let report = pg
        .rt
        .block_on(first.run(async {
            // Shut down while the slow step runs.
            while !lines(&log).contains(&"slow-start 2".to_owned()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }))
        .unwrap();
    assert_eq!(
        (report.claimed, report.released, report.done),
        (1, 1, 0),
        "{report:?}"
    );
    pg.rt.block_on(async {
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.takeovers), (JobState::Posted, 0));
        let run = pg.store.load_flow(&id.run_id()).await.unwrap().unwrap();
        assert_eq!(
            run.flow.state,
            FlowState::Suspended,
            "the slow step finished first"
        );
        assert_eq!(run.flow.lease, None);
    });
    // Another conductor resumes it from there: `first` and `slow` do not run again.
    let second = conductor(&pg.store, options(2000));
    pg.rt.block_on(async {
        let stop = all_final(&board);
        second.run(stop).await.unwrap();
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.outcome),
            (JobState::Done, Some(FlowState::Success))
        );
    });
    assert_eq!(
        lines(&log),
        ["first 1", "slow-start 2", "slow 2", "last 20"],
        "each step ran once"
    );
}

#[test]
fn a_cancelled_running_job_stops_at_its_next_step_and_is_reverted() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let id = post(&board, 1, 600, &log);
    let c = conductor(&pg.store, options(500));
    pg.rt.block_on(async {
        let cancel = async {
            while !lines(&log).contains(&"slow-start 2".to_owned()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(board.cancel(id).await.unwrap(), JobState::Claimed);
            all_final(&board).await;
        };
        let report = c.run(cancel).await.unwrap();
        assert_eq!(report.done, 1, "{report:?}");
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.outcome),
            (JobState::Cancelled, Some(FlowState::Reverted))
        );
        let run = pg.store.load_flow(&id.run_id()).await.unwrap().unwrap();
        assert_eq!(run.flow.state, FlowState::Reverted);
        for step in ["first", "slow"] {
            assert_eq!(
                run.atom(step).unwrap().state,
                taskflow::StepState::Reverted,
                "{step}"
            );
        }
    });
    assert!(
        !lines(&log).iter().any(|l| l.starts_with("last")),
        "nothing started after the cancel"
    );
}

/// The child of `a_killed_conductor_loses_its_job_to_another`: a conductor on the schema named
/// by `TF_CONDUCTOR_SCHEMA`, until it is killed.
#[test]
fn conductor_child() {
    let Ok(schema) = std::env::var("TF_CONDUCTOR_SCHEMA") else {
        return; // run as a test of its own: nothing to do
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pg_options = PostgresOptions {
            schema,
            ..Default::default()
        };
        let store = Arc::new(
            PostgresStore::connect_with(&common::database_url(), pg_options)
                .await
                .unwrap(),
        );
        conductor(&store, options(1000))
            .run(std::future::pending())
            .await
            .unwrap();
    });
}

/// Starts a conductor process (`conductor_child`) on `pg`'s schema and kills it with SIGKILL
/// once the side-effect log `log` has the line `line`.
fn kill_child_conductor_at(pg: &PgStore, log: &Path, line: &str) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "conductor_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TF_CONDUCTOR_SCHEMA", &pg.schema)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !lines(log).contains(&line.to_owned()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child never logged `{line}`"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    common::kill(&mut child);
}

#[test]
fn a_killed_conductor_loses_its_job_to_another_which_runs_only_what_was_not_recorded() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let id = post(&board, 1, 3000, &log);
    kill_child_conductor_at(&pg, &log, "slow-start 2");
    let killed_at = Instant::now();
    let other = conductor(&pg.store, options(1000));
    pg.rt.block_on(async {
        other.run(all_final(&board)).await.unwrap();
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.outcome),
            (JobState::Done, Some(FlowState::Success))
        );
        assert_eq!((job.claims, job.takeovers, job.epoch), (2, 1, 2));
    });
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "taken over in bounded time"
    );
    let log = lines(&log);
    // `first` was recorded SUCCESS before the kill: not run again. `slow` was RUNNING: run again.
    assert_eq!(log.iter().filter(|l| *l == "first 1").count(), 1, "{log:?}");
    assert_eq!(
        log.iter().filter(|l| *l == "slow-start 2").count(),
        2,
        "{log:?}"
    );
    assert_eq!(log.iter().filter(|l| *l == "last 20").count(), 1, "{log:?}");
}

#[test]
fn a_job_whose_hold_step_was_running_when_its_conductor_died_is_held_until_released() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let job = NewJob::of::<Pay>(&PayInputs {
        x: 1,
        ms: 3000,
        log: log.display().to_string(),
    })
    .unwrap();
    let id = futures_block(board.post(&job)).unwrap().id();
    kill_child_conductor_at(&pg, &log, "charge-start 2");
    let other = conductor(&pg.store, options(1000));
    pg.rt.block_on(async {
        let held = async {
            let start = Instant::now();
            while board.job(id).await.unwrap().unwrap().state != JobState::Held {
                assert!(start.elapsed() < Duration::from_secs(30), "never held");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let report = other.run(held).await.unwrap();
        assert_eq!((report.claimed, report.held), (1, 1));
        let job = board.job(id).await.unwrap().unwrap();
        let reason = job.reason.unwrap();
        assert!(
            reason.contains("step `charge`") && reason.contains("on_takeover = hold"),
            "{reason}"
        );
        assert_eq!(job.owner, None);
        // Held: no conductor claims it.
        let again = conductor(&pg.store, options(1000));
        let report = again
            .run(tokio::time::sleep(Duration::from_millis(300)))
            .await
            .unwrap();
        assert_eq!(report.claimed, 0);
        // A person releases it: the payment runs again, and the job ends.
        let released = board
            .release_held(id, taskflow::Release::Rerun)
            .await
            .unwrap();
        assert_eq!(released, ["charge"]);
        let done = conductor(&pg.store, options(1000));
        done.run(all_final(&board)).await.unwrap();
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.outcome),
            (JobState::Done, Some(FlowState::Success))
        );
        assert!(board
            .release_held(id, taskflow::Release::Rerun)
            .await
            .unwrap()
            .is_empty());
    });
    let log = lines(&log);
    assert_eq!(log.iter().filter(|l| *l == "first 1").count(), 1, "{log:?}");
    assert_eq!(
        log.iter().filter(|l| *l == "charge-start 2").count(),
        2,
        "once in the killed conductor, once after the release: {log:?}"
    );
    assert_eq!(log.iter().filter(|l| *l == "last 20").count(), 1, "{log:?}");
}

#[test]
fn a_posted_job_wakes_an_idle_conductor_long_before_its_next_poll() {
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let idle = conductor(
        &pg.store,
        ConductorOptions {
            poll_every: Duration::from_secs(60),
            ..options(2000)
        },
    );
    let took = pg.rt.block_on(async {
        let done = tokio::sync::Notify::new();
        let watch = async {
            // Let the conductor make its first (empty) claim and go idle, then post.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let posted = Instant::now();
            let job = NewJob::of::<Work>(&WorkInputs {
                x: 1,
                ms: 0,
                log: log.display().to_string(),
            })
            .unwrap();
            board.post(&job).await.unwrap();
            all_final(&board).await;
            let took = posted.elapsed();
            done.notify_one();
            took
        };
        let (report, took) = tokio::join!(idle.run(done.notified()), watch);
        assert_eq!(report.unwrap().done, 1);
        took
    });
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: the conductor waited for its poll"
    );
}

/// A step with a revert hook that takes its time, and a step that fails after it.
#[task(provides = d, revert = slow_undo)]
fn undoable(x: u32, ms: u64, log: String) -> u32 {
    note(&log, format!("undoable {x}"));
    std::thread::sleep(Duration::from_millis(ms));
    x
}

#[revert]
fn slow_undo(x: u32, ms: u64, log: String) {
    std::thread::sleep(Duration::from_millis(ms));
    note(&log, format!("undone {x}"));
}

#[derive(Debug, thiserror::Error)]
#[error("no")]
struct No;

#[task]
fn refuse(d: u32) -> Result<(), No> {
    let _ = d;
    Err(No)
}

flow! {
    flow Undo(x: u32, ms: u64, log: String) {
        linear [ undoable, refuse ]
    }
}

#[test]
fn long_sync_steps_and_hooks_do_not_hold_up_the_conductors_heartbeats() {
    // Twice as many runs as the runtime has workers, each in a sync step and then a sync revert
    // hook for three claim-holds: if they blocked the workers, the heartbeats would stop and
    // the second conductor, on a runtime of its own, would take the jobs over.
    let pg = PgStore::new();
    let tmp = common::TempDir::new();
    let log = tmp.path().join("log");
    let board = JobBoard::new(pg.store.clone());
    let hold = 400;
    let ids: Vec<_> = (0..4)
        .map(|x| {
            let job = NewJob::of::<Undo>(&UndoInputs {
                x,
                ms: 3 * hold,
                log: log.display().to_string(),
            })
            .unwrap();
            futures_block(board.post(&job)).unwrap().id()
        })
        .collect();
    let busy = Conductor::new(
        pg.store.clone(),
        Engine::serial().lease(Duration::from_secs(2), Duration::from_millis(300)),
    )
    .options(ConductorOptions {
        concurrency: 4,
        ..options(hold)
    })
    .register(|| Undo);
    let report = pg.rt.block_on(async {
        let all_claimed = async {
            // Let the rival start once every job is claimed by `busy`.
            loop {
                let jobs = board.jobs().await.unwrap();
                if jobs.iter().all(|j| j.state != JobState::Posted) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let schema = pg.schema.clone();
        let rival = std::thread::spawn(move || {
            let other = PgStore::attach(&schema);
            let rival = conductor(&other.store, options(hold)).register(|| Undo);
            let board = JobBoard::new(other.store.clone());
            other
                .rt
                .block_on(rival.run(async move { all_final(&board).await }))
                .unwrap()
        });
        let run = busy.run(async {
            all_claimed.await;
            all_final(&board).await;
        });
        let report = run.await.unwrap();
        let rival = tokio::task::spawn_blocking(move || rival.join().unwrap())
            .await
            .unwrap();
        assert_eq!(rival.claimed, 0, "the rival took a job over: {rival:?}");
        report
    });
    assert_eq!(
        (report.claimed, report.done, report.lost),
        (4, 4, 0),
        "{report:?}"
    );
    pg.rt.block_on(async {
        for id in ids {
            let job = board.job(id).await.unwrap().unwrap();
            assert_eq!(
                (job.state, job.outcome, job.claims, job.takeovers),
                (JobState::Done, Some(FlowState::Reverted), 1, 0)
            );
        }
    });
    let log = lines(&log);
    assert_eq!(
        log.iter().filter(|l| l.starts_with("undone")).count(),
        4,
        "{log:?}"
    );
}
