//! Shared test helpers: a trace that steps and revert hooks append to.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

/// A cloneable handle to an ordered list of events; flows take it as an input.
#[derive(Clone, Default, Debug)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A typed error for steps to fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {0} refused")]
pub struct Refused(pub u32);

/// A scratch directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "taskflow-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            taskflow::store::new_flow_id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// At most `.0` attempts in all, like `Times`; provides each attempt's number (1-based) to its
/// sub-flow, so steps can behave by attempt.
pub struct Attempts(pub u32);

impl taskflow::Retry for Attempts {
    type Item = u32;
    fn item(&self, attempt: u32) -> Option<u32> {
        Some(attempt)
    }
    fn on_failure(&self, history: &taskflow::History) -> taskflow::Decision {
        if history.attempts() < self.0 {
            taskflow::Decision::Retry
        } else {
            taskflow::Decision::Revert
        }
    }
}

/// A mount of the test's (a small tmpfs, a read-only bind mount: real storage faults), unmounted
/// when dropped.
pub struct Mount(pub std::path::PathBuf);

impl Mount {
    /// `mount <args> <at>`; `None` (with a note) when this process may not mount, which is an
    /// error when it runs as root.
    pub fn new(args: &[&str], at: &std::path::Path) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(args)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let root = std::process::Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
            assert!(!root, "mount {args:?} {} failed as root", at.display());
            eprintln!(
                "skipped: cannot mount (needs root): mount {args:?} {}",
                at.display()
            );
            return None;
        }
        Some(Mount(at.to_owned()))
    }

    pub fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", options])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "mount -o {options} {}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A store that passes everything to `inner`, calling `around(n, checkpoint, write)` for its
/// `n`-th checkpoint (1-based): the hook decides whether and when the write happens, so a test can
/// fail a checkpoint, record it, or die around it.
pub struct HookedStore {
    pub inner: std::sync::Arc<dyn taskflow::store::Store>,
    checkpoints: std::sync::atomic::AtomicUsize,
    #[allow(clippy::type_complexity)]
    around: Box<
        dyn Fn(
                usize,
                &taskflow::store::Checkpoint,
                &dyn Fn() -> Result<(), taskflow::store::StoreError>,
            ) -> Result<(), taskflow::store::StoreError>
            + Send
            + Sync,
    >,
}

impl HookedStore {
    pub fn new(
        inner: std::sync::Arc<dyn taskflow::store::Store>,
        around: impl Fn(
                usize,
                &taskflow::store::Checkpoint,
                &dyn Fn() -> Result<(), taskflow::store::StoreError>,
            ) -> Result<(), taskflow::store::StoreError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        HookedStore {
            inner,
            checkpoints: std::sync::atomic::AtomicUsize::new(0),
            around: Box::new(around),
        }
    }
}

impl taskflow::store::Store for HookedStore {
    fn create_flow(
        &self,
        flow: &taskflow::store::FlowRecord,
    ) -> Result<(), taskflow::store::StoreError> {
        self.inner.create_flow(flow)
    }
    fn checkpoint(
        &self,
        flow_id: &str,
        checkpoint: &taskflow::store::Checkpoint,
    ) -> Result<(), taskflow::store::StoreError> {
        let n = self
            .checkpoints
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        (self.around)(n, checkpoint, &|| {
            self.inner.checkpoint(flow_id, checkpoint)
        })
    }
    fn load_flow(
        &self,
        flow_id: &str,
    ) -> Result<Option<taskflow::store::StoredFlow>, taskflow::store::StoreError> {
        self.inner.load_flow(flow_id)
    }
    fn list_flows(&self) -> Result<Vec<taskflow::store::FlowRecord>, taskflow::store::StoreError> {
        self.inner.list_flows()
    }
    fn delete_flow(&self, flow_id: &str) -> Result<(), taskflow::store::StoreError> {
        self.inner.delete_flow(flow_id)
    }
    fn acquire(
        &self,
        flow_id: &str,
        owner: &taskflow::store::Owner,
        until: u64,
    ) -> Result<taskflow::store::StoredFlow, taskflow::store::StoreError> {
        self.inner.acquire(flow_id, owner, until)
    }
}

/// Runs `f` on its own thread and returns what it returns; panics (failing the test instead of
/// hanging it) when it takes longer than `limit`. A panic inside `f` is passed on as it is.
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sent nothing and did not panic"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("timed out after {limit:?}: the run hangs")
        }
    }
}

/// Calls `f`, turning a panic that escapes it into `Err(message)`: for runs that must end with
/// an error rather than a panic.
pub fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a payload that is not a string".to_owned())
    })
}

/// The start of a test file that is its own harness (`harness = false`) and its own child
/// process: run as `<test> child <args>`, calls `child(args)`; for `cargo test -- --list`, lists
/// the one test `name`. True when the caller has nothing more to do.
pub fn child_or_list(name: &str, child: impl FnOnce(&[String])) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child(&args[1..]);
        return true;
    }
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return true;
    }
    false
}

/// The database the PostgreSQL tests use: `DATABASE_URL` (`.ci/run` sets it), or this machine's
/// local server.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A `PostgresStore` in a schema of its own (so tests run in parallel, each on empty tables),
/// dropped with the schema; a blocking [`Store`](taskflow::store::Store) over it, so that one
/// test body serves every backend. Its runtime drives the pool's connections.
pub struct PgStore {
    pub store: std::sync::Arc<taskflow::store::PostgresStore>,
    pub rt: tokio::runtime::Runtime,
    pub schema: String,
    /// Whether dropping this drops the schema (not for a process that only uses it).
    pub owns_schema: bool,
}

impl PgStore {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let schema = format!(
            "test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            &taskflow::store::new_flow_id()[13..]
        );
        Self::in_schema(&schema)
    }

    pub fn in_schema(schema: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = taskflow::store::PostgresOptions {
            schema: schema.to_owned(),
            ..Default::default()
        };
        let url = database_url();
        let store = rt
            .block_on(taskflow::store::PostgresStore::connect_with(&url, options))
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {url} (set DATABASE_URL to another server): {e}")
            });
        PgStore {
            store: std::sync::Arc::new(store),
            rt,
            schema: schema.to_owned(),
            owns_schema: true,
        }
    }

    /// Runs `sql` on its own connection (to damage or inspect the store's tables).
    pub fn sql(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        let url = database_url();
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let conn = tokio::spawn(conn);
            let done = client.batch_execute(sql).await;
            drop(client);
            let _ = conn.await;
            done
        })
    }
}

impl PgStore {
    /// The store in `schema`, created if missing, which dropping this leaves in place (several
    /// processes share it; the test that made it drops it).
    pub fn attach(schema: &str) -> Self {
        let mut store = Self::in_schema(schema);
        store.owns_schema = false;
        store
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if !self.owns_schema {
            return;
        }
        let _ = self.sql(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ));
    }
}

impl PgStore {
    /// `fut` run to its end on the store's runtime: from this thread, or from a helper thread
    /// when this one is inside a runtime already (an engine calls a blocking store from its
    /// run's thread), where `block_on` may not be called.
    fn wait<T: Send>(&self, fut: impl std::future::Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| self.rt.block_on(fut)).join().unwrap())
        } else {
            self.rt.block_on(fut)
        }
    }
}

// The store's async methods, called through the blocking trait below.
use taskflow::store::AsyncStore as _;

impl taskflow::store::Store for PgStore {
    fn create_flow(
        &self,
        flow: &taskflow::store::FlowRecord,
    ) -> Result<(), taskflow::store::StoreError> {
        self.wait(self.store.create_flow(flow))
    }
    fn checkpoint(
        &self,
        flow_id: &str,
        checkpoint: &taskflow::store::Checkpoint,
    ) -> Result<(), taskflow::store::StoreError> {
        self.wait(self.store.checkpoint(flow_id, checkpoint))
    }
    fn create_with(
        &self,
        flow: &taskflow::store::FlowRecord,
        first: &taskflow::store::Checkpoint,
    ) -> Result<(), taskflow::store::StoreError> {
        self.wait(self.store.create_with(flow, first))
    }
    fn load_flow(
        &self,
        flow_id: &str,
    ) -> Result<Option<taskflow::store::StoredFlow>, taskflow::store::StoreError> {
        self.wait(self.store.load_flow(flow_id))
    }
    fn list_flows(&self) -> Result<Vec<taskflow::store::FlowRecord>, taskflow::store::StoreError> {
        self.wait(self.store.list_flows())
    }
    fn delete_flow(&self, flow_id: &str) -> Result<(), taskflow::store::StoreError> {
        self.wait(self.store.delete_flow(flow_id))
    }
    fn acquire(
        &self,
        flow_id: &str,
        owner: &taskflow::store::Owner,
        until: u64,
    ) -> Result<taskflow::store::StoredFlow, taskflow::store::StoreError> {
        self.wait(self.store.acquire(flow_id, owner, until))
    }
}

/// Kills `child` with SIGKILL (through the `kill` command: no `unsafe` in the tests) and reaps
/// it.
#[allow(dead_code)]
pub fn kill(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on this machine, for logs that
/// several processes write. (std's `Instant` is CLOCK_MONOTONIC on Linux and shows its fields
/// in its `Debug` output.)
#[allow(dead_code)]
pub fn mono() -> u64 {
    let text = format!("{:?}", std::time::Instant::now());
    let field = |name: &str| -> u64 {
        let at = text
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            + name.len();
        text[at..]
            .trim_start_matches([':', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("cannot read {name} of {text}"))
    };
    field("tv_sec") * 1_000_000_000 + field("tv_nsec")
}
