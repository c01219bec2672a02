//! Stores and the async runtime: an `AsyncStore` (a network backend) is awaited, and a blocking
//! `Store` (SQLite, a directory) is called off the thread that drives the run when the run is
//! awaited, so other tasks of the runtime go on while a checkpoint waits for the disk.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskflow::prelude::*;
use taskflow::store::{
    AnyStore, AsyncStore, Checkpoint, FlowRecord, MemoryStore, Owner, SqliteStore, Store,
    StoreError, StoreFuture, StoredFlow,
};
use taskflow::{DurableError, StepState};

mod common;
use common::{HookedStore, TempDir};

#[task(provides = a)]
fn first(x: u32) -> u32 {
    x + 1
}

#[task(provides = b)]
fn second(a: u32) -> u32 {
    a * 10
}

#[task(provides = c)]
fn third(b: u32) -> u32 {
    b + 3
}

flow! { flow Three(x: u32) -> (c) { linear [ first, second, third ] } }

/// A store that answers over a "network": every call waits on the runtime's timer before it
/// reaches `inner`, and checkpoint `fail_at` (1-based) fails with a backend error.
struct Remote {
    inner: MemoryStore,
    checkpoints: AtomicUsize,
    fail_at: Option<usize>,
    in_flight: AtomicBool,
}

impl Remote {
    fn new(fail_at: Option<usize>) -> Self {
        Remote {
            inner: MemoryStore::new(),
            checkpoints: AtomicUsize::new(0),
            fail_at,
            in_flight: AtomicBool::new(false),
        }
    }

    async fn network(&self) {
        assert!(
            !self.in_flight.swap(true, Ordering::SeqCst),
            "a run never has two store calls in flight"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.in_flight.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset by peer")]
struct ConnectionReset;

impl AsyncStore for Remote {
    fn create_flow<'a>(&'a self, flow: &'a FlowRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.network().await;
            self.inner.create_flow(flow)
        })
    }

    fn checkpoint<'a>(&'a self, flow_id: &'a str, cp: &'a Checkpoint) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.network().await;
            let n = self.checkpoints.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_at == Some(n) {
                return Err(StoreError::Backend {
                    store: "remote".into(),
                    source: Box::new(ConnectionReset),
                });
            }
            self.inner.checkpoint(flow_id, cp)
        })
    }

    fn load_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, Option<StoredFlow>> {
        Box::pin(async move {
            self.network().await;
            self.inner.load_flow(flow_id)
        })
    }

    fn list_flows(&self) -> StoreFuture<'_, Vec<FlowRecord>> {
        Box::pin(async move { self.inner.list_flows() })
    }

    fn delete_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.inner.delete_flow(flow_id) })
    }

    fn acquire<'a>(
        &'a self,
        flow_id: &'a str,
        owner: &'a Owner,
        until: u64,
    ) -> StoreFuture<'a, StoredFlow> {
        Box::pin(async move {
            self.network().await;
            self.inner.acquire(flow_id, owner, until)
        })
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_run_on_an_async_store_is_recorded_like_one_on_a_blocking_store() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let remote = Arc::new(Remote::new(None));
        let store: Arc<dyn AsyncStore> = remote.clone();
        let out = current_thread().block_on(async {
            engine
                .run(Three, ThreeInputs { x: 1 })
                .durable(store.clone(), "remote-1")
                .await
        });
        assert_eq!(out.unwrap().c, 23);
        let stored = remote.inner.load_flow("remote-1").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Success);
        for (step, result) in [("first", 2), ("second", 20), ("third", 23)] {
            let atom = stored.atom(step).unwrap();
            assert_eq!(atom.state, StepState::Success, "{step}");
            assert_eq!(atom.result, Some(serde_json::json!(result)), "{step}");
        }
        // `.blocking()` drives an async store on the run's own runtime.
        let again = engine.resume(Three, AnyStore::from_async(remote.clone()), "remote-1");
        assert_eq!(again.blocking().unwrap().c, 23);
    }
}

#[test]
fn a_failed_async_checkpoint_stops_the_run_and_it_resumes_once_the_store_works() {
    // Checkpoint 2 carries `first`'s SUCCESS and `second`'s RUNNING: it fails, so `second`
    // never starts.
    let remote = Arc::new(Remote::new(Some(2)));
    let store: Arc<dyn AsyncStore> = remote.clone();
    let error = current_thread()
        .block_on(async {
            Engine::serial()
                .run(Three, ThreeInputs { x: 1 })
                .durable(store.clone(), "remote-2")
                .await
        })
        .unwrap_err();
    let DurableError::Store(StoreError::Backend {
        store: which,
        source,
    }) = &error
    else {
        panic!("expected the store's error, got {error:?}");
    };
    assert_eq!(
        (which.as_str(), source.to_string()),
        ("remote", "connection reset by peer".into())
    );
    assert_eq!(
        error.to_string(),
        "store error: remote error: connection reset by peer"
    );
    let stored = remote.inner.load_flow("remote-2").unwrap().unwrap();
    assert_eq!(stored.atom("first").unwrap().state, StepState::Running);
    assert_eq!(stored.atom("second").unwrap().state, StepState::Pending);

    // The store works again (checkpoint 2 is behind us): the run resumes and finishes.
    let out = Engine::serial().resume(Three, store, "remote-2").blocking();
    assert_eq!(out.unwrap().c, 23);
    let stored = remote.inner.load_flow("remote-2").unwrap().unwrap();
    assert_eq!(stored.flow.state, FlowState::Success);
}

/// A blocking store whose checkpoints wait (up to 10 s) for `released`: if a checkpoint ran on
/// the thread that drives the run, on a current-thread runtime, the task that releases it could
/// never run and the checkpoint would fail.
fn waiting_store(inner: Arc<dyn Store>, released: Arc<AtomicBool>) -> HookedStore {
    HookedStore::new(inner, move |_, _, write| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !released.load(Ordering::SeqCst) {
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Invalid {
                    what: "checkpoint".into(),
                    detail: "the runtime's other task never ran while the store worked".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        write()
    })
}

#[test]
fn an_awaited_run_does_not_block_its_runtime_while_sqlite_writes() {
    let dir = TempDir::new();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("runs.db")).unwrap());
    let released = Arc::new(AtomicBool::new(false));
    let store = Arc::new(waiting_store(sqlite.clone(), released.clone()));
    for (engine, id) in [(Engine::serial(), "s"), (Engine::parallel(), "p")] {
        released.store(false, Ordering::SeqCst);
        let out = current_thread().block_on(async {
            // On the same single thread as the run: it can only run while the run's checkpoint
            // waits off this thread.
            let release = {
                let released = released.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    released.store(true, Ordering::SeqCst);
                })
            };
            let out = engine
                .run(Three, ThreeInputs { x: 1 })
                .durable(store.clone(), id)
                .await;
            release.await.unwrap();
            out
        });
        assert_eq!(out.unwrap().c, 23, "{id}");
        let stored = sqlite.load_flow(id).unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Success, "{id}");
    }
}

#[test]
fn an_awaited_run_does_not_block_a_multi_thread_runtime_while_sqlite_writes() {
    // One worker: while the run's checkpoint waits, the releasing task can only run if the
    // worker's other tasks were handed to another thread.
    let dir = TempDir::new();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("runs.db")).unwrap());
    let released = Arc::new(AtomicBool::new(false));
    let store = Arc::new(waiting_store(sqlite.clone(), released.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for (engine, id) in [(Engine::serial(), "ms"), (Engine::parallel(), "mp")] {
        released.store(false, Ordering::SeqCst);
        let run = {
            let store = store.clone();
            let engine = engine.clone();
            runtime.spawn(async move {
                engine
                    .run(Three, ThreeInputs { x: 1 })
                    .durable(store, id)
                    .await
                    .map(|out| out.c)
            })
        };
        let release = {
            let released = released.clone();
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                released.store(true, Ordering::SeqCst);
            })
        };
        let out = runtime.block_on(run).unwrap();
        runtime.block_on(release).unwrap();
        assert_eq!(out.unwrap(), 23, "{id}");
        let stored = sqlite.load_flow(id).unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Success, "{id}");
    }
}

#[test]
fn a_blocking_run_calls_its_store_on_its_own_thread() {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = threads.clone();
    let store = Arc::new(HookedStore::new(
        Arc::new(MemoryStore::new()),
        move |_, _, write| {
            seen.lock().unwrap().push(std::thread::current().id());
            write()
        },
    ));
    let out = Engine::serial()
        .run(Three, ThreeInputs { x: 1 })
        .durable(store, "here")
        .blocking();
    assert_eq!(out.unwrap().c, 23);
    let threads = threads.lock().unwrap();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|t| *t == std::thread::current().id()),
        "no hand-off: nothing else shares a blocking run's thread"
    );
}
