//! Real storage faults during a durable run: a disk that fills up, a file system that turns
//! read-only. Each run fails with the store's error, the store stays readable and consistent, and
//! once the disk works again the run resumes and finishes without re-running a step recorded
//! SUCCESS.
//!
//! The faults are real: a small tmpfs mounted for the test (a full disk), and a read-only bind
//! mount. That needs root (CAP_SYS_ADMIN), which CI has; elsewhere each test says it was skipped.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use taskflow::prelude::*;
use taskflow::store::{DirStore, SqliteStore, Store, StoreError};
use taskflow::{DurableError, StepState};

mod common;
use common::{Mount, TempDir};

/// How many times each step ran, across the failed run and the resume.
static RUNS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

/// A step with a big result (64 KiB of text), so that a small disk fills up.
fn big(step: usize, seed: &str) -> String {
    RUNS[step].fetch_add(1, Ordering::SeqCst);
    format!("{step}:{seed}:{}", "x".repeat(64 * 1024))
}

#[task(provides = a)]
fn s0(seed: String) -> String {
    big(0, &seed)
}
#[task(provides = b)]
fn s1(a: &str) -> String {
    big(1, &a[..3])
}
#[task(provides = c)]
fn s2(b: &str) -> String {
    big(2, &b[..3])
}
#[task(provides = d)]
fn s3(c: &str) -> String {
    big(3, &c[..3])
}
#[task(provides = e)]
fn s4(d: &str) -> String {
    big(4, &d[..3])
}
#[task(provides = f)]
fn s5(e: &str) -> usize {
    RUNS[5].fetch_add(1, Ordering::SeqCst);
    e.len()
}

flow! {
    flow Bulky(seed: String) -> (f) { linear [ s0, s1, s2, s3, s4, s5 ] }
}

/// The disk fills up part-way: the run fails with the store's error, the store still reads as
/// the last checkpoint left it, and after space is freed the run resumes to the end.
fn full_disk(open: impl Fn(&Path) -> Arc<dyn Store>, expect: impl Fn(&StoreError) -> bool) {
    let tmp = TempDir::new();
    let Some(disk) = Mount::new(
        &["-t", "tmpfs", "-o", "size=256k", "tmpfs"],
        &tmp.path().join("disk"),
    ) else {
        return;
    };
    for r in &RUNS {
        r.store(0, Ordering::SeqCst);
    }
    let store = open(&disk.0);
    let err = Engine::serial()
        .run(Bulky, BulkyInputs { seed: "z".into() })
        .durable(store.clone(), "b")
        .blocking()
        .unwrap_err();
    let DurableError::Store(e) = &err else {
        panic!("expected a storage error, got {err:?}")
    };
    assert!(expect(e), "{e:?}");

    // Readable and consistent: the flow with the steps of the last good checkpoint.
    let stored = store.load_flow("b").unwrap().unwrap();
    let done: Vec<usize> = (0..6)
        .filter(|&i| {
            stored
                .atom(&format!("s{i}"))
                .is_some_and(|a| a.state == StepState::Success)
        })
        .collect();
    assert!(!done.is_empty() && done.len() < 6, "{done:?}");
    assert_ne!(stored.flow.state, FlowState::Success);
    let runs_then: Vec<usize> = RUNS.iter().map(|r| r.load(Ordering::SeqCst)).collect();

    disk.remount("remount,size=16m");
    let store = open(&disk.0);
    let out = Engine::serial()
        .resume(Bulky, store.clone(), "b")
        .blocking()
        .unwrap();
    assert_eq!(out.f, 64 * 1024 + 6);
    for &i in &done {
        assert_eq!(
            RUNS[i].load(Ordering::SeqCst),
            runs_then[i],
            "s{i} was recorded SUCCESS before the disk filled, but ran again"
        );
    }
    assert_eq!(
        store.load_flow("b").unwrap().unwrap().flow.state,
        FlowState::Success
    );
    drop(store);
}

// One test runs both, one after the other: they share the step counters.
#[test]
fn a_full_disk_fails_the_run_and_it_resumes_once_there_is_space() {
    full_disk(
        |dir| Arc::new(SqliteStore::open(dir.join("flows.db")).unwrap()),
        |e| matches!(e, StoreError::Sqlite { source, .. } if source.is_full()),
    );
    full_disk(
        |dir| Arc::new(DirStore::open(dir.join("flows")).unwrap()),
        |e| matches!(e, StoreError::Io { source, .. } if source.raw_os_error() == Some(28)),
    );
}

/// The directory store's file system turns read-only while a step runs: the next checkpoint
/// fails with the OS's error and the run stops; writable again, the run resumes.
#[test]
fn a_read_only_file_system_fails_the_run_and_it_resumes() {
    let tmp = TempDir::new();
    let real = tmp.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let Some(view) = Mount::new(
        &["--bind", real.to_str().unwrap()],
        &tmp.path().join("view"),
    ) else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(DirStore::open(&view.0).unwrap());

    #[task(provides = first)]
    fn lock_disk(path: String) -> u32 {
        // Once: the file system goes read-only under the run.
        let marker = Path::new(&path).with_extension("locked");
        if !marker.exists() {
            std::fs::write(&marker, "").unwrap();
            let ok = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(&path)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
        1
    }
    #[task(provides = second)]
    fn after(first: u32) -> u32 {
        first + 1
    }
    flow! { flow Locked(path: String) -> (second) { linear [ lock_disk, after ] } }

    let inputs = LockedInputs {
        path: view.0.to_str().unwrap().to_owned(),
    };
    let err = Engine::serial()
        .run(Locked, inputs)
        .durable(store.clone(), "l")
        .blocking()
        .unwrap_err();
    let DurableError::Store(StoreError::Io { source, .. }) = &err else {
        panic!("expected an I/O error, got {err:?}")
    };
    assert_eq!(source.raw_os_error(), Some(30), "EROFS: {err}"); // read-only file system
    let stored = store.load_flow("l").unwrap().unwrap();
    assert_eq!(stored.atom("lock_disk").unwrap().state, StepState::Running);

    view.remount("remount,bind,rw");
    let out = Engine::serial()
        .resume(Locked, store.clone(), "l")
        .blocking()
        .unwrap();
    assert_eq!(out.second, 2);
}

/// A store that cannot be written at all refuses the run before anything starts.
#[test]
fn a_read_only_store_refuses_a_new_run() {
    let tmp = TempDir::new();
    let path = tmp.path().join("flows.db");
    drop(SqliteStore::open(&path).unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_read_only(&path).unwrap());
    let err = Engine::serial()
        .run(Bulky, BulkyInputs { seed: "r".into() })
        .durable(store.clone(), "r")
        .blocking()
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::Store(StoreError::Sqlite { source, .. }) if source.is_read_only())
            && err.to_string().contains("readonly"),
        "{err}"
    );
    assert!(store.list_flows().unwrap().is_empty());
}
