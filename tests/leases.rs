//! Run ownership in one process, through the public API: the lease contract every store keeps
//! (taking a run, fencing, renewing, releasing), and what the engine does with it — a run held by
//! a live owner is refused, a long step keeps its lease renewed, a run that lost its lease starts
//! nothing more, a dropped parallel run holds its lease until its steps on the pool finish, and a
//! dead owner on this host frees its runs at once. tests/ownership.rs does the same with real
//! processes killed and paused.

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use taskflow::prelude::*;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FlowRecord, LeaseUpdate, MemoryStore, Owner, SqliteStore,
    Store, StoreError, StoredFlow,
};
use taskflow::{DurableError, Outcome, StepState, SuspendHandle};

mod common;
use common::{HookedStore, PgStore, Refused, TempDir};

// ---- helpers

/// An owner on another machine: never known dead, so only its lease's expiry frees its runs.
fn elsewhere() -> Owner {
    Owner {
        host: "elsewhere".into(),
        pid: 1,
        process: String::new(),
        ..Owner::current()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn backends(tmp: &TempDir) -> Vec<(&'static str, Arc<dyn Store>)> {
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "dir",
            Arc::new(DirStore::open(tmp.path().join("dir")).unwrap()),
        ),
        (
            "sqlite",
            Arc::new(SqliteStore::open(tmp.path().join("flows.db")).unwrap()),
        ),
        ("postgres", Arc::new(PgStore::new())),
    ]
}

fn running(name: &str) -> AtomRecord {
    AtomRecord {
        state: StepState::Running,
        runs: 1,
        ..AtomRecord::new(name)
    }
}

fn load(store: &dyn Store, id: &str) -> StoredFlow {
    store.load_flow(id).unwrap().unwrap()
}

// ---- the store contract, on every backend

#[test]
fn every_store_takes_fences_renews_and_releases_runs() {
    let tmp = TempDir::new();
    for (backend, store) in backends(&tmp) {
        let store = &*store;
        let (a, b) = (elsewhere(), elsewhere());

        assert!(
            matches!(
                store.acquire("missing", &a, u64::MAX),
                Err(StoreError::NotFound { .. })
            ),
            "{backend}"
        );

        // Started by `a`: its lease is recorded with the run, at epoch 1.
        let mut flow = FlowRecord::new("book", "Flow", "fp", json!(null));
        let fence_a = flow.lease_to(&a, now() + 60_000);
        store.create_flow(&flow).unwrap();
        let stored = load(store, &flow.id);
        assert_eq!(stored.flow.epoch, 1, "{backend}");
        assert_eq!(stored.flow.lease.as_ref().unwrap().owner, a, "{backend}");

        // `b` cannot take it while `a`'s lease is live; the refusal names `a` and its expiry.
        let until_a = stored.flow.lease.as_ref().unwrap().until;
        match store.acquire(&flow.id, &b, now() + 60_000) {
            Err(e @ StoreError::RunBusy { .. }) => {
                let StoreError::RunBusy { owner, until, .. } = &e else {
                    unreachable!()
                };
                assert_eq!((owner, *until), (&a, until_a), "{backend}");
                let message = e.to_string();
                assert!(message.contains(&a.id), "{backend}: {message}");
                assert!(message.contains("host elsewhere"), "{backend}: {message}");
                assert!(
                    message.contains(&taskflow::store::utc(until_a)),
                    "{backend}: {message}"
                );
            }
            other => panic!("{backend}: {other:?}"),
        }
        assert_eq!(
            load(store, &flow.id),
            stored,
            "{backend}: a refusal changes nothing"
        );

        // A writer without a fence is refused while the lease is live, and writes nothing.
        let unfenced = Checkpoint {
            atoms: vec![running("step")],
            ..Checkpoint::default()
        };
        assert!(
            matches!(
                store.checkpoint(&flow.id, &unfenced),
                Err(StoreError::RunBusy { .. })
            ),
            "{backend}"
        );
        assert_eq!(load(store, &flow.id), stored, "{backend}");

        // `a` writes with its fence and renews its lease in the same checkpoint.
        store
            .checkpoint(
                &flow.id,
                &Checkpoint {
                    atoms: vec![running("step")],
                    fence: Some(fence_a.clone()),
                    lease: LeaseUpdate::Renew {
                        until: until_a + 1_000,
                    },
                    ..Checkpoint::default()
                },
            )
            .unwrap();
        let stored = load(store, &flow.id);
        assert_eq!(stored.flow.lease.as_ref().unwrap().until, until_a + 1_000);
        assert_eq!(stored.atom("step").unwrap().state, StepState::Running);

        // `a`'s lease runs out (renewed into the past); `b` takes the run over at epoch 2.
        store
            .checkpoint(
                &flow.id,
                &Checkpoint {
                    fence: Some(fence_a.clone()),
                    lease: LeaseUpdate::Renew { until: now() - 1 },
                    ..Checkpoint::default()
                },
            )
            .unwrap();
        let taken = store.acquire(&flow.id, &b, now() + 60_000).unwrap();
        assert_eq!(taken.flow.epoch, 2, "{backend}");
        assert_eq!(taken.flow.lease.as_ref().unwrap().owner, b, "{backend}");
        assert_eq!(
            taken,
            load(store, &flow.id),
            "{backend}: acquire returns the run as stored"
        );

        // `a` is fenced off: LostLease naming the new holder, and nothing of it is written.
        let stale = Checkpoint {
            flow_state: Some(FlowState::Success),
            atoms: vec![AtomRecord {
                state: StepState::Success,
                result: Some(json!(1)),
                ..running("step")
            }],
            fence: Some(fence_a.clone()),
            lease: LeaseUpdate::Release,
            ..Checkpoint::default()
        };
        match store.checkpoint(&flow.id, &stale) {
            Err(StoreError::LostLease { epoch, holder, .. }) => {
                assert_eq!(epoch, 1, "{backend}");
                assert_eq!(holder.as_ref(), Some(&b), "{backend}");
            }
            other => panic!("{backend}: {other:?}"),
        }
        assert_eq!(
            load(store, &flow.id),
            taken,
            "{backend}: a stale write lands nowhere"
        );

        // `b` releases the run when it ends: no owner, and anyone may write or take it again.
        let fence_b = taskflow::store::Fence {
            owner: b.id.clone(),
            epoch: 2,
        };
        store
            .checkpoint(
                &flow.id,
                &Checkpoint {
                    flow_state: Some(FlowState::Suspended),
                    fence: Some(fence_b.clone()),
                    lease: LeaseUpdate::Release,
                    ..Checkpoint::default()
                },
            )
            .unwrap();
        let released = load(store, &flow.id);
        assert_eq!(released.flow.lease, None, "{backend}");
        assert_eq!(released.flow.state, FlowState::Suspended, "{backend}");
        // Its old fence does not write after the release either.
        assert!(
            matches!(
                store.checkpoint(
                    &flow.id,
                    &Checkpoint {
                        fence: Some(fence_b),
                        ..Checkpoint::default()
                    }
                ),
                Err(StoreError::LostLease { holder: None, .. })
            ),
            "{backend}"
        );
        store.checkpoint(&flow.id, &unfenced).unwrap();
        let again = store.acquire(&flow.id, &a, now() + 60_000).unwrap();
        assert_eq!(
            again.flow.epoch, 3,
            "{backend}: every taking raises the epoch"
        );

        // A finished run is not taken: returned as stored, no lease, the epoch unchanged (a
        // taker killed before it let go would otherwise leave a finished run leased).
        let fence_a = taskflow::store::Fence {
            owner: a.id.clone(),
            epoch: 3,
        };
        store
            .checkpoint(
                &flow.id,
                &Checkpoint {
                    flow_state: Some(FlowState::Success),
                    fence: Some(fence_a),
                    lease: LeaseUpdate::Release,
                    ..Checkpoint::default()
                },
            )
            .unwrap();
        let finished = load(store, &flow.id);
        let looked = store.acquire(&flow.id, &b, now() + 60_000).unwrap();
        assert_eq!(looked, finished, "{backend}");
        assert_eq!(looked.flow.lease, None, "{backend}");
        assert_eq!(
            load(store, &flow.id),
            finished,
            "{backend}: nothing written"
        );
    }
}

/// The child process `sleep 60` as an owner: its pid and start time, on this host.
fn owner_of(child: &std::process::Child) -> Owner {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let start = after_name.split_ascii_whitespace().nth(19).unwrap();
    let me = Owner::current();
    let (machine, _) = me
        .process
        .rsplit_once('/')
        .expect("a Linux process identity");
    Owner {
        pid: child.id(),
        process: format!("{machine}/{start}"),
        ..me
    }
}

#[test]
fn a_dead_owner_on_this_host_holds_nothing() {
    let tmp = TempDir::new();
    for (backend, store) in backends(&tmp) {
        // A live owner process: its unexpired lease holds.
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let owner = owner_of(&child);
        assert!(!owner.is_known_dead());
        let mut flow = FlowRecord::new("book", "Flow", "fp", json!(null));
        flow.lease_to(&owner, u64::MAX);
        store.create_flow(&flow).unwrap();
        assert!(
            matches!(
                store.acquire(&flow.id, &elsewhere(), u64::MAX),
                Err(StoreError::RunBusy { .. })
            ),
            "{backend}"
        );

        // Killed and not yet reaped (a zombie): dead already.
        child.kill().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !owner.is_known_dead() {
            assert!(
                Instant::now() < deadline,
                "a killed child never looked dead"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert!(owner.is_known_dead());
        // Its lease said "forever"; the run is free at once.
        let taken = store.acquire(&flow.id, &elsewhere(), u64::MAX).unwrap();
        assert_eq!(taken.flow.epoch, 2, "{backend}");
    }

    // The same pid with another start time is another process: pid reuse does not revive it.
    let mut reused = Owner::current();
    let (machine, start) = reused.process.rsplit_once('/').unwrap();
    reused.process = format!("{machine}/{}", start.parse::<u64>().unwrap() + 1);
    assert!(reused.is_known_dead());
    // An owner elsewhere is never known dead, whatever its pid.
    assert!(!elsewhere().is_known_dead());
}

// ---- a flow whose steps record when they run

/// Step starts and ends, by test tag: (tag, event, when).
static EVENTS: Mutex<Vec<(String, String, Instant)>> = Mutex::new(Vec::new());

fn mark(tag: &str, event: &str) {
    EVENTS
        .lock()
        .unwrap()
        .push((tag.to_owned(), event.to_owned(), Instant::now()));
}

fn events(tag: &str) -> Vec<(String, Instant)> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, ..)| t == tag)
        .map(|(_, e, at)| (e.clone(), *at))
        .collect()
}

fn names(tag: &str) -> Vec<String> {
    events(tag).into_iter().map(|(e, _)| e).collect()
}

#[task(provides = a)]
fn slow(tag: &str, ms: u64) -> u64 {
    mark(tag, "slow start");
    std::thread::sleep(Duration::from_millis(ms));
    mark(tag, "slow end");
    ms
}

#[task(provides = b)]
fn next(tag: &str, a: u64) -> u64 {
    mark(tag, "next");
    a + 1
}

#[task(provides = c)]
fn last(tag: &str, b: u64, fail: bool) -> Result<u64, Refused> {
    mark(tag, "last");
    if fail {
        Err(Refused(3))
    } else {
        Ok(b + 1)
    }
}

flow! {
    flow Owned(tag: String, ms: u64, fail: bool) -> (c) {
        linear [ slow, next, last ]
    }
}

fn inputs(tag: &str, ms: u64, fail: bool) -> OwnedInputs {
    OwnedInputs {
        tag: tag.into(),
        ms,
        fail,
    }
}

/// Waits (at most 10 s) until `check` holds for the stored run.
fn wait_for(store: &dyn Store, id: &str, what: &str, check: impl Fn(&StoredFlow) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(stored)) = store.load_flow(id) {
            if check(&stored) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn slow_is_running(stored: &StoredFlow) -> bool {
    stored
        .atom("slow")
        .is_some_and(|a| a.state == StepState::Running)
}

// ---- the engine holds its runs

#[test]
fn a_run_held_by_a_live_run_of_this_process_is_busy_and_nothing_is_written() {
    for engine in [Engine::serial(), Engine::parallel().workers(2)] {
        let tag = format!("busy {engine:?}");
        let tmp = TempDir::new();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("f.db")).unwrap());
        let run = {
            let (engine, store, tag) = (engine.clone(), store.clone(), tag.clone());
            std::thread::spawn(move || {
                engine
                    .run(Owned, inputs(&tag, 600, false))
                    .durable(store, "r")
                    .blocking()
            })
        };
        wait_for(&*store, "r", "the slow step", slow_is_running);
        let before = load(&*store, "r");

        match engine.resume(Owned, store.clone(), "r").blocking() {
            Err(DurableError::Store(StoreError::RunBusy { owner, flow_id, .. })) => {
                assert_eq!(flow_id, "r");
                assert_eq!(owner.pid, std::process::id(), "{engine:?}");
                assert_eq!(
                    Some(&owner),
                    before.flow.lease.as_ref().map(|l| &l.owner),
                    "{engine:?}"
                );
            }
            other => panic!("{engine:?}: {:?}", other.map(|o| o.c)),
        }
        assert_eq!(load(&*store, "r").flow.epoch, before.flow.epoch);

        assert_eq!(run.join().unwrap().unwrap().c, 602);
        let done = load(&*store, "r");
        assert_eq!(done.flow.state, FlowState::Success);
        assert_eq!(done.flow.lease, None, "a finished run holds no lease");
        assert_eq!(done.atom("slow").unwrap().runs, 1);
        assert_eq!(names(&tag), ["slow start", "slow end", "next", "last"]);
    }
}

#[test]
fn a_long_step_keeps_its_lease_renewed() {
    let tag = "renewed";
    let tmp = TempDir::new();
    let store: Arc<dyn Store> = Arc::new(DirStore::open(tmp.path()).unwrap());
    // The lease has room for a slow renewal: under a loaded machine (the whole suite runs at
    // once) a directory-store write has taken over 250 ms, and a 300 ms lease ran out.
    let engine = Engine::serial().lease(Duration::from_millis(1000), Duration::from_millis(50));
    let run = {
        let (engine, store) = (engine.clone(), store.clone());
        std::thread::spawn(move || {
            engine
                .run(Owned, inputs(tag, 3000, false))
                .durable(store, "r")
                .blocking()
        })
    };
    wait_for(&*store, "r", "the slow step", slow_is_running);
    let first = load(&*store, "r").flow.lease.unwrap();
    let mut latest = first.until;
    // For the whole step, well past the 1 s the lease was first taken for, the run stays
    // held: another owner is refused every time, and the lease's end keeps moving.
    while !names(tag).contains(&"slow end".to_owned()) {
        match store.acquire("r", &elsewhere(), u64::MAX) {
            Err(StoreError::RunBusy { until, owner, .. }) => {
                assert_eq!(owner, first.owner);
                assert!(until >= latest);
                latest = until;
            }
            other => panic!("the run was taken while its step ran: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        latest >= first.until + 1000,
        "renewed to {latest}, first {}",
        first.until
    );
    assert_eq!(run.join().unwrap().unwrap().c, 3002);
    let done = load(&*store, "r");
    assert_eq!(done.flow.lease, None);
    assert_eq!(done.flow.epoch, 1, "nobody else ever took it");
}

#[test]
fn a_run_that_cannot_renew_loses_its_run_and_starts_nothing_more() {
    let tag = "lost";
    let tmp = TempDir::new();
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("f.db")).unwrap());
    // Renewals (a checkpoint that only renews) fail, as on a store that is unreachable for a
    // while; the run's own checkpoints go through.
    let hooked = Arc::new(HookedStore::new(inner.clone(), |_, cp, write| {
        let renewal_only = cp.atoms.is_empty()
            && cp.retries.is_empty()
            && cp.flow_state.is_none()
            && matches!(cp.lease, LeaseUpdate::Renew { .. });
        if renewal_only {
            return Err(StoreError::Io {
                path: "unreachable".into(),
                source: std::io::Error::other("network is unreachable"),
            });
        }
        write()
    }));
    let engine = Engine::serial().lease(Duration::from_millis(200), Duration::from_millis(40));
    let run = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            engine
                .run(Owned, inputs(tag, 1000, false))
                .durable(hooked, "r")
                .blocking()
        })
    };
    wait_for(&*inner, "r", "the slow step", slow_is_running);
    // Once the lease runs out, another owner takes the run over.
    let thief = elsewhere();
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        match inner.acquire("r", &thief, u64::MAX) {
            Ok(taken) => break taken,
            Err(StoreError::RunBusy { .. }) => {}
            Err(other) => panic!("{other}"),
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        !names(tag).contains(&"slow end".to_owned()),
        "taken while the step still ran"
    );

    match run.join().unwrap() {
        Err(DurableError::Store(StoreError::LostLease { flow_id, epoch, .. })) => {
            assert_eq!((flow_id.as_str(), epoch), ("r", 1));
        }
        other => panic!("{:?}", other.map(|o| o.c)),
    }
    assert_eq!(
        names(tag),
        ["slow start", "slow end"],
        "nothing started after the loss"
    );
    assert_eq!(
        load(&*inner, "r"),
        taken,
        "nothing the old owner did after the loss landed"
    );
}

#[test]
fn a_dropped_parallel_run_holds_its_lease_until_its_steps_on_the_pool_finish() {
    let tag = "dropped";
    let tmp = TempDir::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("f.db")).unwrap());
    let engine = Engine::parallel().workers(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let timed_out = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(150),
            engine
                .run(Owned, inputs(tag, 700, false))
                .durable(store.clone(), "r")
                .into_future(),
        )
        .await
    });
    assert!(
        timed_out.is_err(),
        "the run was meant to be dropped mid-step"
    );
    assert_eq!(
        names(tag),
        ["slow start"],
        "the step still runs on the pool"
    );

    // While the dropped run's step runs, its run stays held by it.
    match engine.resume(Owned, store.clone(), "r").blocking() {
        Err(DurableError::Store(StoreError::RunBusy { owner, .. })) => {
            assert_eq!(owner.pid, std::process::id());
        }
        other => panic!(
            "resumed while the first run's step ran: {:?}",
            other.map(|o| o.c)
        ),
    }

    // Once it finished, the run is free (at once in this process) and resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        match engine.resume(Owned, store.clone(), "r").blocking() {
            Ok(out) => break out,
            Err(DurableError::Store(StoreError::RunBusy { .. })) => {}
            Err(other) => panic!("{other}"),
        }
        assert!(Instant::now() < deadline, "the run was never freed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(out.c, 702);
    let seen = events(tag);
    let starts: Vec<Instant> = seen
        .iter()
        .filter(|(e, _)| e == "slow start")
        .map(|(_, t)| *t)
        .collect();
    let ends: Vec<Instant> = seen
        .iter()
        .filter(|(e, _)| e == "slow end")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!((starts.len(), ends.len()), (2, 2), "{seen:?}");
    assert!(starts[1] >= ends[0], "the step ran twice at the same time");
    let done = load(&*store, "r");
    assert_eq!(done.flow.state, FlowState::Success);
    assert_eq!(done.flow.lease, None);
    assert_eq!(
        done.atom("slow").unwrap().runs,
        2,
        "the store shows the step ran twice"
    );
    assert_eq!(done.flow.epoch, 2);
}

#[test]
fn a_run_that_reverted_or_suspended_releases_its_lease() {
    let tmp = TempDir::new();
    for (backend, store) in backends(&tmp) {
        let engine = Engine::serial();
        let failed = engine
            .run(Owned, inputs("reverted", 0, true))
            .durable(store.clone(), "failed")
            .blocking();
        assert!(matches!(failed, Err(DurableError::Failed(_))), "{backend}");
        let stored = load(&*store, "failed");
        assert_eq!(stored.flow.state, FlowState::Reverted, "{backend}");
        assert_eq!(stored.flow.lease, None, "{backend}");

        let stop = SuspendHandle::new();
        stop.suspend();
        let paused = engine
            .run(Owned, inputs("suspended", 0, false))
            .durable(store.clone(), "paused")
            .until(&stop)
            .blocking()
            .unwrap();
        assert!(matches!(paused, Outcome::Suspended(_)), "{backend}");
        let stored = load(&*store, "paused");
        assert_eq!(stored.flow.state, FlowState::Suspended, "{backend}");
        assert_eq!(stored.flow.lease, None, "{backend}");
        // Anyone can resume it now.
        assert_eq!(
            engine
                .resume(Owned, store.clone(), "paused")
                .blocking()
                .unwrap()
                .c,
            2
        );
    }
}

#[test]
fn a_resume_refused_by_another_owner_writes_nothing_and_works_once_released() {
    let tmp = TempDir::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(tmp.path().join("f.db")).unwrap());
    let stop = SuspendHandle::new();
    stop.suspend();
    Engine::serial()
        .run(Owned, inputs("refused", 0, false))
        .durable(store.clone(), "r")
        .until(&stop)
        .blocking()
        .unwrap();
    // Another service took it and is running it.
    let other = elsewhere();
    let held = store.acquire("r", &other, now() + 60_000).unwrap();

    match Engine::serial()
        .resume(Owned, store.clone(), "r")
        .blocking()
    {
        Err(e @ DurableError::Store(StoreError::RunBusy { .. })) => {
            let message = e.to_string();
            assert!(message.contains(&other.id), "{message}");
            assert!(message.contains("another process runs it"), "{message}");
        }
        other => panic!("{:?}", other.map(|o| o.c)),
    }
    assert_eq!(load(&*store, "r"), held);
    assert!(names("refused").is_empty());

    // It gives the run up; now this one runs it.
    store
        .checkpoint(
            "r",
            &Checkpoint {
                fence: Some(taskflow::store::Fence {
                    owner: other.id.clone(),
                    epoch: held.flow.epoch,
                }),
                lease: LeaseUpdate::Release,
                ..Checkpoint::default()
            },
        )
        .unwrap();
    assert_eq!(
        Engine::serial()
            .resume(Owned, store.clone(), "r")
            .blocking()
            .unwrap()
            .c,
        2
    );
    assert_eq!(load(&*store, "r").flow.epoch, held.flow.epoch + 1);
}
