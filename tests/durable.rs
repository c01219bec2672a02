//! Durable runs through the public API, in one process: what is recorded, and every refusal.
//! A "crash" here is a store whose n-th checkpoint fails: the run stops where the previous
//! checkpoint left it, exactly as if the process had died there (tests/crash.rs kills real
//! processes).

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{
    Checkpoint, DirStore, MemoryStore, SqliteStore, Store, StoreError, StoredFlow,
};
use taskflow::{DurableError, StepState};

mod common;
use common::{Attempts, HookedStore, TempDir};

// ---- a store that fails from its n-th checkpoint on, and keeps what it wrote

struct Flaky {
    store: HookedStore,
    written: Arc<Mutex<Vec<Checkpoint>>>,
}

impl Flaky {
    fn failing_from(inner: Arc<dyn Store>, fail_from: usize) -> Arc<HookedStore> {
        Self::recording(inner, fail_from).store.into()
    }

    fn recording(inner: Arc<dyn Store>, fail_from: usize) -> Flaky {
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = written.clone();
        let store = HookedStore::new(inner, move |n, checkpoint, write| {
            if n >= fail_from {
                return Err(StoreError::Io {
                    path: "flaky".into(),
                    source: std::io::Error::other("no space left on device"),
                });
            }
            log.lock().unwrap().push(checkpoint.clone());
            write()
        });
        Flaky { store, written }
    }
}

// ---- flows

/// Counts the runs of each step, across "processes".
#[derive(Clone, Default, Debug)]
pub struct Runs(Arc<Mutex<HashMap<String, usize>>>);

impl Runs {
    fn ran(&self, step: &str) {
        *self.0.lock().unwrap().entry(step.to_owned()).or_default() += 1;
    }
    fn count(&self, step: &str) -> usize {
        self.0.lock().unwrap().get(step).copied().unwrap_or(0)
    }
}

// `Runs` is shared through a global (it is not a stored value); the tests that use it take
// turns.
static RUNS: Mutex<Option<Runs>> = Mutex::new(None);
static TURN: Mutex<()> = Mutex::new(());

fn my_turn() -> std::sync::MutexGuard<'static, ()> {
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *RUNS.lock().unwrap() = Some(Runs::default());
    UNDONE.lock().unwrap().clear();
    turn
}

fn runs() -> Runs {
    RUNS.lock()
        .unwrap()
        .get_or_insert_with(Runs::default)
        .clone()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    id: u32,
    name: String,
}

#[task(provides = server)]
fn create(name: String) -> Server {
    runs().ran(&format!("create {name}"));
    Server { id: 7, name }
}

#[task(provides = (ip, port))]
async fn address(server: &Server) -> (String, u16) {
    runs().ran(&format!("address {}", server.name));
    (format!("10.0.0.{}", server.id), 8000 + server.id as u16)
}

#[task(provides = url)]
fn publish(ip: &str, port: u16, ctx: &TaskContext) -> String {
    ctx.progress(0.5);
    runs().ran(&format!("publish {ip}"));
    format!("http://{ip}:{port}")
}

flow! {
    flow Publish(name: String) -> (server: Server, url: String) {
        linear [ create, address, publish ]
    }
}

const URL: &str = "http://10.0.0.7:8007";

fn sqlite(tmp: &TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(tmp.path().join("flows.db")).unwrap())
}

fn engines() -> [Engine; 2] {
    [Engine::serial(), Engine::parallel().workers(2)]
}

#[test]
fn a_durable_run_records_every_step_with_its_result_and_timings() {
    let _turn = my_turn();
    for engine in engines() {
        let tmp = TempDir::new();
        let store = sqlite(&tmp);
        let out = engine
            .run(Publish, PublishInputs { name: "web".into() })
            .durable(store.clone(), "p1")
            .blocking()
            .unwrap();
        assert_eq!(out.url, URL);
        let stored = store.load_flow("p1").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Success);
        assert_eq!(stored.flow.flow_name, "Publish");
        assert_eq!(stored.flow.fingerprint, taskflow::fingerprint::<Publish>());
        assert_eq!(stored.flow.inputs, serde_json::json!({ "name": "web" }));
        assert_eq!(stored.flow.graph, Publish::graph().to_json());
        let create = stored.atom("create").unwrap();
        assert_eq!(create.state, StepState::Success);
        assert_eq!(
            create.result,
            Some(serde_json::json!({ "id": 7, "name": "web" }))
        );
        assert!(create.started_at.is_some() && create.duration().is_some());
        // Two outputs: an object by name.
        let address = stored.atom("address").unwrap();
        assert_eq!(
            address.result,
            Some(serde_json::json!({ "ip": "10.0.0.7", "port": 8007 }))
        );
        let publish = stored.atom("publish").unwrap();
        assert_eq!((publish.progress, publish.attempt), (1.0, 1));
    }
}

/// About one transaction per step on the serial engine: one step's SUCCESS and the next step's
/// RUNNING share one.
#[test]
fn the_serial_engine_commits_once_per_step() {
    let _turn = my_turn();
    let Flaky { store, written } = Flaky::recording(Arc::new(MemoryStore::new()), usize::MAX);
    Engine::serial()
        .run(Publish, PublishInputs { name: "a".into() })
        .durable(Arc::new(store), "p")
        .blocking()
        .unwrap();
    let written = written.lock().unwrap();
    // RUNNING create | SUCCESS create + RUNNING address | ... | SUCCESS publish + flow SUCCESS
    assert_eq!(written.len(), 4, "{written:#?}");
    let states = |cp: &Checkpoint| -> Vec<(String, StepState)> {
        let mut last: Vec<(String, StepState)> = Vec::new();
        for a in &cp.atoms {
            last.retain(|(n, _)| n != &a.name);
            last.push((a.name.clone(), a.state));
        }
        last
    };
    // The first also records every other step PENDING.
    assert_eq!(
        states(&written[0]),
        [
            ("create".into(), StepState::Running),
            ("address".into(), StepState::Pending),
            ("publish".into(), StepState::Pending)
        ]
    );
    assert_eq!(
        states(&written[1]),
        [
            ("create".into(), StepState::Success),
            ("address".into(), StepState::Running)
        ]
    );
    assert_eq!(written[3].flow_state, Some(FlowState::Success));
}

/// A checkpoint that fails stops the run at once with the store's error; the store keeps what the
/// last good checkpoint wrote, and the run resumes from there without re-running a step recorded
/// SUCCESS.
#[test]
fn a_failed_checkpoint_stops_the_run_and_it_resumes() {
    let _turn = my_turn();
    for engine in engines() {
        for fail_from in 1..=4 {
            *RUNS.lock().unwrap() = Some(Runs::default());
            let tmp = TempDir::new();
            let store = sqlite(&tmp);
            let flaky = Flaky::failing_from(store.clone(), fail_from);
            let err = engine
                .run(Publish, PublishInputs { name: "db".into() })
                .durable(flaky, "p")
                .blocking()
                .unwrap_err();
            assert!(
                matches!(&err, DurableError::Store(StoreError::Io { .. })),
                "{err:?}"
            );
            assert!(err.to_string().contains("no space left on device"), "{err}");
            let at_crash = store.load_flow("p").unwrap().unwrap();
            assert_ne!(at_crash.flow.state, FlowState::Success);
            let succeeded: Vec<String> = at_crash
                .atoms
                .iter()
                .filter(|a| a.state == StepState::Success)
                .map(|a| a.name.clone())
                .collect();
            assert_eq!(succeeded.len(), fail_from.saturating_sub(2).min(3));

            let out = engine
                .resume(Publish, store.clone(), "p")
                .blocking()
                .unwrap();
            assert_eq!(out.url, URL);
            assert_eq!(
                out.server,
                Server {
                    id: 7,
                    name: "db".into()
                }
            );
            let runs = runs();
            for (step, key) in [
                ("create", "create db"),
                ("address", "address db"),
                ("publish", "publish 10.0.0.7"),
            ] {
                if succeeded.iter().any(|s| s == step) {
                    assert_eq!(
                        runs.count(key),
                        1,
                        "{step} ran again (fail_from {fail_from})"
                    );
                }
            }
            assert_eq!(
                store.load_flow("p").unwrap().unwrap().flow.state,
                FlowState::Success
            );
        }
    }
}

/// A memory store holding run `p` of `Publish`, finished.
fn published(name: &str) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let inputs = PublishInputs { name: name.into() };
    Engine::serial()
        .run(Publish, inputs)
        .durable(store.clone(), "p")
        .blocking()
        .unwrap();
    store
}

#[test]
fn a_finished_run_resumes_to_its_stored_outcome_without_running() {
    let _turn = my_turn();
    let (engine, store) = (Engine::serial(), published("x"));
    let before = runs().count("create x");
    let again = engine
        .resume(Publish, store.clone(), "p")
        .blocking()
        .unwrap();
    assert_eq!(again.url, URL);
    assert_eq!(runs().count("create x"), before);
}

/// A run recorded SUCCESS must hold every step's SUCCESS record, its sub-flows' too: one missing
/// inside a sub-flow, or left PENDING, is a corrupt store naming the step (the sub-flow step's own
/// result would otherwise have made up the outputs).
#[test]
fn a_finished_run_missing_a_sub_flow_steps_record_is_a_corrupt_store() {
    let _turn = my_turn();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let inputs = NestedInputs { size: 1, tries: 0 };
    Engine::serial()
        .run(Nested, inputs)
        .durable(store.clone(), "n")
        .blocking()
        .unwrap();
    let done = store.load_flow("n").unwrap().unwrap();
    assert!(done.atom("Storage/attach").is_some());
    for pending in [false, true] {
        let copy: Arc<dyn Store> = Arc::new(MemoryStore::new());
        copy.create_flow(&done.flow).unwrap();
        let mut atoms = done.atoms.clone();
        if pending {
            let attach = atoms.iter_mut().find(|a| a.name == "Storage/attach");
            attach.unwrap().state = StepState::Pending;
        } else {
            atoms.retain(|a| a.name != "Storage/attach");
        }
        let checkpoint = Checkpoint {
            flow_state: Some(FlowState::Success),
            atoms,
            retries: done.retries.clone(),
            ..Checkpoint::default()
        };
        copy.checkpoint("n", &checkpoint).unwrap();
        let before = copy.load_flow("n").unwrap().unwrap();
        let err = Engine::serial()
            .resume(Nested, copy.clone(), "n")
            .blocking()
            .unwrap_err();
        assert!(
            matches!(err, DurableError::Store(StoreError::Corrupt { .. })),
            "{err:?}"
        );
        let want = if pending {
            "this step is recorded PENDING"
        } else {
            "this step has no record"
        };
        assert_eq!(
            err.to_string(),
            format!(
                "store error: corrupt record of step `Storage/attach` of flow `n`: the run is \
                 recorded SUCCESS, but {want}"
            )
        );
        assert_eq!(copy.load_flow("n").unwrap().unwrap(), before);
    }
}

#[test]
fn an_id_in_use_is_refused() {
    let _turn = my_turn();
    let (engine, store) = (Engine::serial(), published("x"));
    let err = engine
        .run(Publish, PublishInputs { name: "y".into() })
        .durable(store.clone(), "p")
        .blocking()
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Store(StoreError::AlreadyExists { .. })),
        "{err:?}"
    );
    let err = engine
        .resume(Publish, store, "missing")
        .blocking()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "store error: no flow `missing` in the store"
    );
}

// ---- refusals: another flow, a changed flow, corrupt data

mod v1 {
    use super::*;

    #[task(provides = doubled)]
    pub fn double(n: u32) -> u32 {
        n * 2
    }

    flow! {
        pub flow Deploy(n: u32) -> (doubled: u32) { linear [ double ] }
    }
}

mod v2 {
    use super::*;

    #[task(provides = doubled)]
    pub fn double(n: u64) -> u64 {
        n * 2
    }

    flow! {
        pub flow Deploy(n: u64) -> (doubled: u64) { linear [ double ] }
    }
}

/// Stops a run of `v1::Deploy` before its step finished (its first checkpoint lands, the second
/// fails), returning the store and what it holds.
fn interrupted_v1(tmp: &TempDir) -> (Arc<dyn Store>, StoredFlow) {
    let store = sqlite(tmp);
    let flaky = Flaky::failing_from(store.clone(), 2);
    Engine::serial()
        .run(v1::Deploy, v1::DeployInputs { n: 21 })
        .durable(flaky, "d")
        .blocking()
        .unwrap_err();
    let stored = store.load_flow("d").unwrap().unwrap();
    (store, stored)
}

#[test]
fn a_changed_flow_is_refused_and_nothing_is_written() {
    let tmp = TempDir::new();
    let (store, before) = interrupted_v1(&tmp);
    assert_ne!(
        taskflow::fingerprint::<v1::Deploy>(),
        taskflow::fingerprint::<v2::Deploy>()
    );
    let err = Engine::serial()
        .resume(v2::Deploy, store.clone(), "d")
        .blocking()
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::FingerprintMismatch { flow_id, .. } if flow_id == "d"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("steps, wiring or value types changed"),
        "{err}"
    );
    assert_eq!(store.load_flow("d").unwrap().unwrap(), before);
    // The build that started it finishes it.
    let out = Engine::serial()
        .resume(v1::Deploy, store, "d")
        .blocking()
        .unwrap();
    assert_eq!(out.doubled, 42);
}

#[test]
fn a_run_of_another_flow_is_refused() {
    let _turn = my_turn();
    let tmp = TempDir::new();
    let (store, before) = interrupted_v1(&tmp);
    let err = Engine::serial()
        .resume(Publish, store.clone(), "d")
        .blocking()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "flow `d` was stored by flow `Deploy`, not `Publish`: resume it with `Deploy`"
    );
    assert_eq!(store.load_flow("d").unwrap().unwrap(), before);
}

/// Run `id` of `store` recorded again, as `edit` makes it: deleted, created and checkpointed
/// through the store, so that every record keeps a valid checksum (a row edited in the database
/// itself is refused as corrupt by the store before the engine sees it).
fn rewritten(store: &dyn Store, id: &str, edit: impl FnOnce(&mut StoredFlow)) {
    let mut stored = store.load_flow(id).unwrap().unwrap();
    edit(&mut stored);
    store.delete_flow(id).unwrap();
    store.create_flow(&stored.flow).unwrap();
    let cp = Checkpoint {
        atoms: stored.atoms,
        retries: stored.retries,
        ..Checkpoint::default()
    };
    store.checkpoint(id, &cp).unwrap();
}

/// A stored result or input that does not load as the flow's type is refused with the place it
/// is in; the store is left as it was.
#[test]
fn corrupt_stored_values_are_refused_naming_them() {
    let _turn = my_turn();
    let tmp = TempDir::new();
    let store = sqlite(&tmp);
    let flaky = Flaky::failing_from(store.clone(), 3);
    Engine::serial()
        .run(Publish, PublishInputs { name: "c".into() })
        .durable(flaky, "p")
        .blocking()
        .unwrap_err();
    rewritten(&*store, "p", |run| {
        let create = run.atoms.iter_mut().find(|a| a.name == "create").unwrap();
        create.result = Some(serde_json::json!({ "id": "seven", "name": "c" }));
    });
    drop(store);
    let store = sqlite(&tmp);
    let before = store.load_flow("p").unwrap().unwrap();
    let err = Engine::serial()
        .resume(Publish, store.clone(), "p")
        .blocking()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, DurableError::Store(StoreError::Corrupt { .. })),
        "{text}"
    );
    assert!(
        text.contains("record of step `create` of flow `p`") && text.contains("invalid type"),
        "{text}"
    );
    assert_eq!(store.load_flow("p").unwrap().unwrap(), before);

    // Inputs that do not load.
    rewritten(&*store, "p", |run| {
        run.flow.inputs = serde_json::json!({ "nom": "c" });
    });
    drop(store);
    let store = sqlite(&tmp);
    let err = Engine::serial()
        .resume(Publish, store, "p")
        .blocking()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "store error: corrupt inputs of flow `p`: `name` is missing"
    );
}

/// A truncated flow file of the directory store: refused as corrupt, the file untouched.
#[test]
fn a_truncated_flow_file_is_refused() {
    let _turn = my_turn();
    let tmp = TempDir::new();
    let store: Arc<dyn Store> = Arc::new(DirStore::open(tmp.path()).unwrap());
    let flaky = Flaky::failing_from(store.clone(), 3);
    Engine::serial()
        .run(Publish, PublishInputs { name: "t".into() })
        .durable(flaky, "p")
        .blocking()
        .unwrap_err();
    let file = tmp.path().join("p.json");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = Engine::serial()
        .resume(Publish, store, "p")
        .blocking()
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Store(StoreError::Corrupt { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("p.json"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), &bytes[..bytes.len() / 2]);
}

/// A value whose serialization fails at run time (a map with non-string keys) stops the run,
/// naming the step and the problem: the step failed (it is not left RUNNING, to run again on
/// every resume), and the run is reverted.
#[test]
fn a_result_that_does_not_serialize_stops_the_run() {
    #[task(provides = table)]
    fn tabulate() -> HashMap<(u8, u8), u8> {
        HashMap::from([((1, 2), 3)])
    }
    flow! { flow Tabulate() -> (table) { linear [ tabulate ] } }

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let err = Engine::serial()
        .run(Tabulate, TabulateInputs {})
        .durable(store.clone(), "t")
        .blocking()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`tabulate`") && text.contains("key must be a string"),
        "{err}"
    );
    let DurableError::Failed(err) = err else {
        panic!("a failure of the step, not of the store: {err:?}")
    };
    let why = err.failures()[0].downcast_ref::<taskflow::ValueError>();
    assert_eq!(
        why,
        Some(&taskflow::ValueError::Serialize(
            "key must be a string".into()
        ))
    );
    let stored = store.load_flow("t").unwrap().unwrap();
    assert_eq!(stored.flow.state, FlowState::Reverted);
    assert_eq!(stored.atom("tabulate").unwrap().state, StepState::Reverted);
}

// ---- failures, reverts and retries across a "crash"

#[derive(Debug, thiserror::Error)]
#[error("quota exceeded")]
struct Quota;

static UNDONE: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[task(provides = volume, revert = undo_volume)]
fn volume(size: u32) -> String {
    format!("vol-{size}")
}
#[revert]
fn undo_volume(result: TaskOutcome<&String>) {
    if let Ok(v) = result {
        UNDONE.lock().unwrap().push(v.clone());
    }
}

/// Fails its first `tries` attempts (the attempt number comes from its controller).
#[task(provides = attached)]
fn attach(volume: &str, attempt: u32, tries: u32) -> Result<String, Quota> {
    runs().ran("attach");
    if attempt <= tries {
        Err(Quota)
    } else {
        Ok(format!("{volume} attached"))
    }
}

flow! {
    flow Storage(size: u32, tries: u32) -> (attached: String) {
        linear [ retry(Attempts(3) -> attempt: u32) linear [ volume, attach ] ]
    }
}

flow! {
    flow Nested(size: u32, tries: u32) -> (attached: String) {
        linear [ Storage ]
    }
}

/// A retry inside a sub-flow, stopped at every checkpoint in turn: the attempt count lives in
/// the sub-flow's own retry record, and the resumed run does not start the count afresh.
#[test]
fn a_sub_flows_retry_count_survives_every_stop() {
    let _turn = my_turn();
    for engine in engines() {
        for fail_from in 1..=12 {
            *RUNS.lock().unwrap() = Some(Runs::default());
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let flaky = Flaky::failing_from(store.clone(), fail_from);
            let first = engine
                .run(Nested, NestedInputs { size: 5, tries: 2 })
                .durable(flaky, "n")
                .blocking();
            let out = match first {
                Ok(out) => out, // fewer checkpoints than fail_from
                Err(DurableError::Store(_)) => engine
                    .resume(Nested, store.clone(), "n")
                    .blocking()
                    .unwrap(),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(out.attached, "vol-5 attached");
            // Two failed attempts, one that worked: never more, whatever the stop.
            assert!(runs().count("attach") <= 4, "fail_from {fail_from}");
            let stored = store.load_flow("n").unwrap().unwrap();
            let retry = stored
                .retries
                .iter()
                .find(|r| r.flow == "Storage")
                .expect("the sub-flow's retry record");
            assert_eq!(
                (retry.scope, retry.attempt),
                (0, 3),
                "fail_from {fail_from}"
            );
            assert_eq!(retry.history.len(), 2);
            assert_eq!(retry.history[0][0].message, "quota exceeded");
            assert_eq!(stored.atom("Storage/attach").unwrap().attempt, 3);
        }
    }
}

/// A flow that fails ends REVERTED in the store; resuming it hands back its failure, without
/// running or reverting anything again.
#[test]
fn a_reverted_run_resumes_to_its_failure() {
    let _turn = my_turn();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = Engine::serial();
    let err = engine
        .run(Storage, StorageInputs { size: 9, tries: 99 })
        .durable(store.clone(), "s")
        .blocking()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("step `attach` failed: quota exceeded"),
        "{err}"
    );
    let stored = store.load_flow("s").unwrap().unwrap();
    assert_eq!(stored.flow.state, FlowState::Reverted);
    assert_eq!(UNDONE.lock().unwrap().len(), 3); // once per attempt
    let again = engine.resume(Storage, store, "s").blocking().unwrap_err();
    let DurableError::Failed(e) = again else {
        panic!("{again:?}")
    };
    assert_eq!(e.failed_step(), "attach");
    assert_eq!(e.failures()[0].error().to_string(), "quota exceeded");
    assert!(e.failures()[0]
        .downcast_ref::<taskflow::RecordedError>()
        .is_some());
    assert_eq!(UNDONE.lock().unwrap().len(), 3);
    assert_eq!(runs().count("attach"), 3);
}

// ---- the parallel engine batches its checkpoints

#[task(provides = part)]
async fn part(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n
}

#[task(provides = total)]
fn join(a: u32, b: u32, c: u32, d: u32) -> u32 {
    a + b + c + d
}

flow! {
    flow FanIn(n: u32) -> (total) {
        graph [
            part -> a as p1, part -> b as p2, part -> c as p3, part -> d as p4,
            join,
        ]
    }
}

/// Four steps started together are recorded RUNNING in one transaction; steps that finish
/// together are recorded SUCCESS in one, with the RUNNING of what they let start.
#[test]
fn the_parallel_engine_commits_steps_that_start_or_finish_together_at_once() {
    let Flaky { store, written } = Flaky::recording(Arc::new(MemoryStore::new()), usize::MAX);
    let out = Engine::parallel()
        .run(FanIn, FanInInputs { n: 5 })
        .durable(Arc::new(store), "f")
        .blocking()
        .unwrap();
    assert_eq!(out.total, 20);
    let written = written.lock().unwrap();
    let states: Vec<Vec<String>> = written
        .iter()
        .map(|cp| {
            cp.atoms
                .iter()
                .map(|a| format!("{} {}", a.name, a.state))
                .collect()
        })
        .collect();
    let parts = ["p1", "p2", "p3", "p4"];
    // The first also records the step not started yet PENDING.
    let mut first: Vec<String> = parts.map(|p| format!("{p} RUNNING")).to_vec();
    first.push("join PENDING".into());
    assert_eq!(states[0], first, "{states:?}");
    assert_eq!(states.last().unwrap(), &["join SUCCESS"], "{states:?}");
    // `join` starts in the checkpoint that records the last part's SUCCESS, and every part's
    // SUCCESS is written exactly once, in at most four checkpoints (fewer when parts finish
    // together).
    let join = states
        .iter()
        .position(|cp| cp.iter().any(|a| a == "join RUNNING"))
        .unwrap();
    let middle: Vec<&String> = states[1..=join].iter().flatten().collect();
    for p in parts {
        assert_eq!(
            middle
                .iter()
                .filter(|a| **a == &format!("{p} SUCCESS"))
                .count(),
            1,
            "{states:?}"
        );
    }
    assert!(join <= 4 && states.len() == join + 2, "{states:?}");
    assert!(
        !states[join].iter().all(|a| a == "join RUNNING"),
        "{states:?}"
    );
}

// ---- graceful suspension

static STOP: Mutex<Option<taskflow::SuspendHandle>> = Mutex::new(None);

#[task(provides = checked)]
fn check_in(name: String) -> String {
    runs().ran("check_in");
    // A shutdown arrives while this step runs.
    STOP.lock().unwrap().as_ref().unwrap().suspend();
    format!("{name} checked in")
}

#[task(provides = boarded)]
async fn board(checked: &str) -> String {
    runs().ran("board");
    format!("{checked}, boarded")
}

flow! {
    flow Travel(name: String) -> (boarded) { linear [ check_in, board ] }
}

/// A suspended durable run lets the step in flight finish, records it, ends SUSPENDED, and is
/// resumed from the store without running that step again.
#[test]
fn a_suspended_durable_run_is_recorded_and_resumes() {
    let _turn = my_turn();
    for engine in engines() {
        *RUNS.lock().unwrap() = Some(Runs::default());
        let stop = taskflow::SuspendHandle::new();
        *STOP.lock().unwrap() = Some(stop.clone());
        let tmp = TempDir::new();
        let store = sqlite(&tmp);
        let end = engine
            .run(Travel, TravelInputs { name: "ada".into() })
            .durable(store.clone(), "t")
            .until(&stop)
            .blocking();
        assert!(
            matches!(end, Ok(taskflow::Outcome::Suspended(_))),
            "{end:?}"
        );
        let stored = store.load_flow("t").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Suspended);
        assert_eq!(stored.atom("check_in").unwrap().state, StepState::Success);
        // Every step is recorded from the start (TaskFlow records each atom PENDING).
        assert_eq!(stored.atom("board").unwrap().state, StepState::Pending);

        let out = engine
            .resume(Travel, store.clone(), "t")
            .blocking()
            .unwrap();
        assert_eq!(out.boarded, "ada checked in, boarded");
        assert_eq!(runs().count("check_in"), 1);
    }
}

// ---- every step is recorded PENDING when the run is created

#[task(provides = booked)]
fn book(name: String) -> String {
    // A shutdown arrives while the first step runs.
    STOP.lock().unwrap().as_ref().unwrap().suspend();
    format!("{name} booked")
}

#[task(provides = seat)]
fn pick_seat(booked: &str) -> u32 {
    booked.len() as u32
}

#[task(provides = meal)]
fn order_meal(seat: u32) -> String {
    format!("meal for seat {seat}")
}

flow! {
    flow Cabin(booked: String) -> (meal: String) { linear [ pick_seat, order_meal ] }
}

#[task(provides = ticket)]
fn print_ticket(booked: &str, meal: &str) -> String {
    format!("{booked}, {meal}")
}

flow! {
    flow Trip(name: String) -> (ticket: String) { linear [ book, Cabin, print_ticket ] }
}

/// TaskFlow records every atom of a flow, sub-flows' included, PENDING when the run is
/// created: a run suspended after its first step lists every step in the store.
#[test]
fn a_durable_run_records_every_step_when_it_is_created() {
    let _turn = my_turn();
    for engine in engines() {
        let stop = taskflow::SuspendHandle::new();
        *STOP.lock().unwrap() = Some(stop.clone());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let end = engine
            .run(Trip, TripInputs { name: "ada".into() })
            .durable(store.clone(), "trip")
            .until(&stop)
            .blocking();
        assert!(
            matches!(end, Ok(taskflow::Outcome::Suspended(_))),
            "{end:?}"
        );
        let stored = store.load_flow("trip").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Suspended);
        let mut states: Vec<(String, StepState)> = stored
            .atoms
            .iter()
            .map(|a| (a.name.clone(), a.state))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                ("Cabin".to_owned(), StepState::Pending),
                ("Cabin/order_meal".to_owned(), StepState::Pending),
                ("Cabin/pick_seat".to_owned(), StepState::Pending),
                ("book".to_owned(), StepState::Success),
                ("print_ticket".to_owned(), StepState::Pending),
            ],
            "{engine:?}"
        );
        *STOP.lock().unwrap() = Some(taskflow::SuspendHandle::new());
        let out = engine.resume(Trip, store, "trip").blocking().unwrap();
        assert_eq!(out.ticket, "ada booked, meal for seat 10");
    }
}

// ---- maps and deciders across a stop

#[task(provides = volume_id)]
fn make_volume(size: u32) -> String {
    runs().ran(&format!("make_volume {size}"));
    format!("vol-{size}")
}

#[task]
fn worth_a_backup(sizes: &[u32]) -> bool {
    sizes.iter().sum::<u32>() >= 10
}

#[task(provides = backup_id)]
fn backup(volume_ids: &[String]) -> String {
    runs().ran("backup");
    format!("bk-{}", volume_ids.len())
}

#[task(provides = report)]
fn report(volume_ids: &[String], backup_id: Option<&String>) -> String {
    format!(
        "{} backup {}",
        volume_ids.join(","),
        backup_id.map_or("skipped", String::as_str)
    )
}

flow! {
    flow Volumes(sizes: Vec<u32>) -> (report, backup_id) {
        graph [
            map make_volume over sizes -> volume_ids,
            backup,
            report,
            make_volume -> backup if worth_a_backup,
        ]
    }
}

/// A `map` step's outputs and a skipped (IGNORE) step survive a stop at every checkpoint.
#[test]
fn maps_and_skipped_steps_resume_from_every_stop() {
    let _turn = my_turn();
    let mut resumed = 0;
    for engine in engines() {
        for (sizes, want) in [
            (vec![1, 2], ("vol-1,vol-2 backup skipped", None)),
            (
                vec![5, 6, 7],
                ("vol-5,vol-6,vol-7 backup bk-3", Some("bk-3")),
            ),
        ] {
            for fail_from in 1..=5 {
                *RUNS.lock().unwrap() = Some(Runs::default());
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let flaky = Flaky::failing_from(store.clone(), fail_from);
                let inputs = VolumesInputs {
                    sizes: sizes.clone(),
                };
                let out = match engine.run(Volumes, inputs).durable(flaky, "v").blocking() {
                    Ok(out) => out,
                    Err(DurableError::Store(_)) => {
                        resumed += 1;
                        let stored = store.load_flow("v").unwrap().unwrap();
                        let mapped = stored
                            .atom("make_volume")
                            .is_some_and(|a| a.state == StepState::Success);
                        let before = runs().count(&format!("make_volume {}", sizes[0]));
                        let out = engine
                            .resume(Volumes, store.clone(), "v")
                            .blocking()
                            .unwrap();
                        if mapped {
                            let after = runs().count(&format!("make_volume {}", sizes[0]));
                            assert_eq!(before, after, "the map ran again (fail_from {fail_from})");
                        }
                        out
                    }
                    Err(e) => panic!("{e}"),
                };
                assert_eq!((out.report.as_str(), out.backup_id.as_deref()), want);
                let stored = store.load_flow("v").unwrap().unwrap();
                let backup = stored.atom("backup").map(|a| a.state);
                if want.1.is_none() {
                    assert_eq!(backup, Some(StepState::Ignore), "fail_from {fail_from}");
                    assert_eq!(runs().count("backup"), 0);
                }
            }
        }
    }
    assert!(resumed >= 12, "only {resumed} runs stopped part-way");
}

// ---- a sub-flow that reads its retry controller's value

#[task(provides = placed)]
fn place(zone: String, size: u32) -> Result<String, Quota> {
    runs().ran(&format!("place {zone}"));
    if zone == "a" {
        Err(Quota)
    } else {
        Ok(format!("{size} GB in zone {zone}"))
    }
}

flow! {
    flow Placement(zone: String, size: u32) -> (placed: String) { linear [ place ] }
}

flow! {
    flow Zoned(size: u32) -> (placed: String) {
        linear [ retry(taskflow::ForEach(vec!["a".to_owned(), "b".to_owned()]) -> zone: String) linear [ Placement ] ]
    }
}

/// The sub-flow's inputs are rebuilt on resume from the controller's value for the stored
/// attempt: zone `a` is never tried again once zone `b` has begun.
#[test]
fn a_sub_flow_fed_by_its_retry_controller_resumes_from_every_stop() {
    let _turn = my_turn();
    let mut resumed = 0;
    for engine in engines() {
        for fail_from in 1..=8 {
            *RUNS.lock().unwrap() = Some(Runs::default());
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let flaky = Flaky::failing_from(store.clone(), fail_from);
            let out = match engine
                .run(Zoned, ZonedInputs { size: 8 })
                .durable(flaky, "z")
                .blocking()
            {
                Ok(out) => out,
                Err(DurableError::Store(_)) => {
                    resumed += 1;
                    engine.resume(Zoned, store.clone(), "z").blocking().unwrap()
                }
                Err(e) => panic!("{e}"),
            };
            assert_eq!(out.placed, "8 GB in zone b", "fail_from {fail_from}");
            assert!(runs().count("place a") <= 2, "fail_from {fail_from}");
            let stored = store.load_flow("z").unwrap().unwrap();
            assert_eq!(stored.atom("Placement/place").unwrap().attempt, 1);
            assert_eq!(stored.retries[0].attempt, 2);
        }
    }
    assert!(resumed >= 8, "only {resumed} runs stopped part-way");
}

/// A run file written by a newer taskflow (its format is newer than this library's): refused
/// before anything is written, and the file is left as it was.
#[test]
fn a_run_from_a_newer_taskflow_is_refused() {
    let _turn = my_turn();
    let tmp = TempDir::new();
    let store: Arc<dyn Store> = Arc::new(DirStore::open(tmp.path()).unwrap());
    let flaky = Flaky::failing_from(store.clone(), 3);
    Engine::serial()
        .run(Publish, PublishInputs { name: "n".into() })
        .durable(flaky, "p")
        .blocking()
        .unwrap_err();
    let file = tmp.path().join("p.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    json["format"] = serde_json::json!(99);
    let newer = serde_json::to_vec_pretty(&json).unwrap();
    std::fs::write(&file, &newer).unwrap();
    let err = Engine::serial()
        .resume(Publish, store, "p")
        .blocking()
        .unwrap_err();
    assert!(
        matches!(
            err,
            DurableError::Store(StoreError::SchemaTooNew { found: 99, .. })
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), newer);
}

// ---- a retried sub-flow with its own retry scope starts its count afresh

#[task(provides = done)]
fn nested_step(outer: u32, inner: u32) -> Result<String, Quota> {
    runs().ran(&format!("x o{outer} i{inner}"));
    if outer == 1 || inner == 1 {
        Err(Quota)
    } else {
        Ok(format!("ok o{outer} i{inner}"))
    }
}

flow! {
    flow InnerRetry(outer: u32) -> (done: String) {
        linear [ retry(Attempts(3) -> inner: u32) linear [ nested_step ] ]
    }
}

flow! {
    flow OuterRetry() -> (done: String) {
        linear [ retry(Attempts(2) -> outer: u32) linear [ InnerRetry ] ]
    }
}

/// The outer controller's second attempt runs the sub-flow again from scratch: its own
/// controller starts at attempt 1 again — also when the run stops part-way and resumes.
#[test]
fn a_retried_sub_flows_own_retry_count_restarts_across_stops() {
    let _turn = my_turn();
    let mut resumed = 0;
    for engine in engines() {
        for fail_from in 1..=20 {
            *RUNS.lock().unwrap() = Some(Runs::default());
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let flaky = Flaky::failing_from(store.clone(), fail_from);
            let out = match engine
                .run(OuterRetry, OuterRetryInputs {})
                .durable(flaky, "o")
                .blocking()
            {
                Ok(out) => out,
                Err(DurableError::Store(_)) => {
                    resumed += 1;
                    engine
                        .resume(OuterRetry, store.clone(), "o")
                        .blocking()
                        .unwrap()
                }
                Err(e) => panic!("{e}"),
            };
            assert_eq!(out.done, "ok o2 i2", "fail_from {fail_from}");
            let stored = store.load_flow("o").unwrap().unwrap();
            let attempts: Vec<(&str, u32)> = stored
                .retries
                .iter()
                .map(|r| (r.flow.as_str(), r.attempt))
                .collect();
            assert_eq!(
                attempts,
                [("", 2), ("InnerRetry", 2)],
                "fail_from {fail_from}"
            );
        }
    }
    assert!(resumed >= 20, "only {resumed} runs stopped part-way");
}

// ---- two stops in a row

/// Runs `flow` stopped at checkpoint `first`, resumes it stopped at checkpoint `second` of the
/// resume, and resumes it again to the end: the outcome and the final states of the steps must
/// be those of a run that was never stopped, whatever the two stops were.
fn twice_stopped_matches_unstopped<F: taskflow::DurableFlow>(
    name: &str,
    flow: impl Fn() -> F,
    inputs: impl Fn() -> F::Inputs,
    show: impl Fn(&F::Outputs) -> String,
    stops: usize,
) {
    let outcome = |r: Result<F::Outputs, DurableError>| match r {
        Ok(out) => show(&out),
        Err(DurableError::Failed(e)) => format!("failed at {}", e.failed_step()),
        Err(e) => panic!("{name}: {e}"),
    };
    let states = |store: &Arc<dyn Store>| {
        let stored = store.load_flow("x").unwrap().unwrap();
        let mut atoms: Vec<String> = stored
            .atoms
            .iter()
            .map(|a| format!("{} {} #{}", a.name, a.state, a.attempt))
            .collect();
        atoms.sort();
        (stored.flow.state, atoms)
    };
    for engine in engines() {
        let reference: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let want = outcome(
            engine
                .run(flow(), inputs())
                .durable(reference.clone(), "x")
                .blocking(),
        );
        let want_states = states(&reference);
        for first in 1..=stops {
            for second in 1..=stops {
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let flaky = Flaky::failing_from(store.clone(), first);
                let got = match engine.run(flow(), inputs()).durable(flaky, "x").blocking() {
                    Err(DurableError::Store(_)) => {
                        let flaky = Flaky::failing_from(store.clone(), second);
                        match engine.resume(flow(), flaky, "x").blocking() {
                            Err(DurableError::Store(_)) => {
                                outcome(engine.resume(flow(), store.clone(), "x").blocking())
                            }
                            other => outcome(other),
                        }
                    }
                    other => outcome(other),
                };
                let at = format!("{name}, {engine:?}, stops at {first} then {second}");
                assert_eq!(got, want, "{at}");
                assert_eq!(states(&store), want_states, "{at}");
            }
        }
    }
}

#[task(provides = lock, revert = unlock)]
fn take_lock() -> u32 {
    1
}
#[revert]
fn unlock() -> Result<(), Quota> {
    Err(Quota)
}
#[task(provides = never)]
fn explode(lock: u32) -> Result<u32, Quota> {
    let _ = lock;
    Err(Quota)
}

flow! {
    flow Stuck() -> (never: u32) { linear [ take_lock, explode ] }
}

#[test]
fn two_stops_in_a_row_change_nothing() {
    let _turn = my_turn();
    twice_stopped_matches_unstopped(
        "Publish",
        || Publish,
        || PublishInputs { name: "w".into() },
        |o| o.url.clone(),
        6,
    );
    twice_stopped_matches_unstopped(
        "Nested",
        || Nested,
        || NestedInputs { size: 3, tries: 2 },
        |o| o.attached.clone(),
        12,
    );
    twice_stopped_matches_unstopped(
        "Storage (reverts)",
        || Storage,
        || StorageInputs { size: 3, tries: 99 },
        |o| o.attached.clone(),
        14,
    );
    twice_stopped_matches_unstopped(
        "OuterRetry",
        || OuterRetry,
        || OuterRetryInputs {},
        |o| o.done.clone(),
        22,
    );
    twice_stopped_matches_unstopped(
        "Zoned",
        || Zoned,
        || ZonedInputs { size: 1 },
        |o| o.placed.clone(),
        8,
    );
    twice_stopped_matches_unstopped(
        "Volumes",
        || Volumes,
        || VolumesInputs { sizes: vec![4, 9] },
        |o| format!("{} {:?}", o.report, o.backup_id),
        6,
    );
    twice_stopped_matches_unstopped(
        "FanIn",
        || FanIn,
        || FanInInputs { n: 2 },
        |o| o.total.to_string(),
        6,
    );
    // A revert hook that fails: the flow ends FAILURE, whichever process saw the hook fail.
    twice_stopped_matches_unstopped(
        "Stuck",
        || Stuck,
        || StuckInputs {},
        |o| o.never.to_string(),
        6,
    );
}

// ---- TaskFlow semantics: the acceptance tests of the fixes for the defects found against
// TaskFlow's behaviour (each failed before its fix)

mod defects {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;
    use taskflow::{FlowError, History, Retry, SuspendHandle};

    use common::{no_panic, within};

    /// What the steps and hooks of these flows did, in order (they take turns: `my_turn`).
    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn log(event: impl Into<String>) {
        LOG.lock().unwrap().push(event.into());
    }

    fn logged() -> Vec<String> {
        LOG.lock().unwrap().clone()
    }

    /// `my_turn`, with an empty log.
    fn turn() -> std::sync::MutexGuard<'static, ()> {
        let turn = my_turn();
        LOG.lock().unwrap().clear();
        turn
    }

    const LIMIT: Duration = Duration::from_secs(60);

    fn states(stored: &StoredFlow) -> Vec<(String, StepState)> {
        let mut atoms: Vec<(String, StepState)> = stored
            .atoms
            .iter()
            .map(|a| (a.name.clone(), a.state))
            .collect();
        atoms.sort_by(|a, b| a.0.cmp(&b.0));
        atoms
    }

    fn state_of(stored: &StoredFlow, step: &str) -> Option<StepState> {
        stored.atom(step).map(|a| a.state)
    }

    // ---- 3. a retry controller that panics fails its scope; it never escapes the engine

    /// Panics in `on_failure`.
    struct PanicsOnFailure;

    impl Retry for PanicsOnFailure {
        type Item = ();
        fn item(&self, _attempt: u32) -> Option<()> {
            Some(())
        }
        fn on_failure(&self, _history: &History) -> taskflow::Decision {
            panic!("controller exploded in on_failure")
        }
    }

    /// Panics in `item`.
    struct PanicsInItem;

    impl Retry for PanicsInItem {
        type Item = ();
        fn item(&self, _attempt: u32) -> Option<()> {
            panic!("controller exploded in item")
        }
        fn on_failure(&self, _history: &History) -> taskflow::Decision {
            taskflow::Decision::Revert
        }
    }

    /// Says retry, then panics in `delay`.
    struct PanicsInDelay;

    impl Retry for PanicsInDelay {
        type Item = ();
        fn item(&self, _attempt: u32) -> Option<()> {
            Some(())
        }
        fn on_failure(&self, _history: &History) -> taskflow::Decision {
            taskflow::Decision::Retry
        }
        fn delay(&self, _attempt: u32) -> Option<Duration> {
            panic!("controller exploded in delay")
        }
    }

    #[task(provides = base, revert = unbase)]
    fn base_step() -> u32 {
        log("base");
        1
    }

    #[revert]
    fn unbase() {
        log("unbase");
    }

    #[task(provides = grip, revert = ungrip)]
    fn grip_step(base: u32) -> u32 {
        log("grip");
        base + 1
    }

    #[revert]
    fn ungrip() {
        log("ungrip");
    }

    #[task(revert = unslip)]
    fn slip(grip: u32) -> Result<(), Quota> {
        let _ = grip;
        log("slip");
        Err(Quota)
    }

    #[revert]
    fn unslip() {
        log("unslip");
    }

    flow! {
        flow CtlOnFailure() { linear [ base_step, retry(PanicsOnFailure) linear [ grip_step, slip ] ] }
    }

    flow! {
        flow CtlItem() { linear [ base_step, retry(PanicsInItem) linear [ grip_step, slip ] ] }
    }

    flow! {
        flow CtlDelay() { linear [ base_step, retry(PanicsInDelay) linear [ grip_step, slip ] ] }
    }

    /// How a durable run or resume ended; `Err(message)` when a panic escaped it.
    type Attempted = Result<Result<(), DurableError>, String>;

    /// Runs `flow` durably on a fresh store, then resumes it: (the run's outcome, the log after
    /// it, the resume's outcome, the log after it, the store).
    fn run_then_resume<F: taskflow::DurableFlow>(
        engine: Engine,
        flow: fn() -> F,
        inputs: fn() -> F::Inputs,
    ) -> (
        Attempted,
        Vec<String>,
        Attempted,
        Vec<String>,
        Arc<dyn Store>,
    ) {
        within(LIMIT, move || {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let first = no_panic(|| {
                engine
                    .run(flow(), inputs())
                    .durable(store.clone(), "x")
                    .blocking()
                    .map(drop)
            });
            let after_run = logged();
            let again = no_panic(|| {
                engine
                    .resume(flow(), store.clone(), "x")
                    .blocking()
                    .map(drop)
            });
            (first, after_run, again, logged(), store)
        })
    }

    /// TaskFlow: a retry controller that panics is a failure of its scope — reported, and the
    /// flow reverted. Durably, the run ends REVERTED in the store, and a resume hands back that
    /// failure without running (or panicking) again. Covers a panic in `on_failure`, `item` and
    /// `delay`.
    #[test]
    fn a_panicking_retry_controller_fails_its_scope_and_the_durable_run_ends_reverted() {
        let _turn = turn();
        let full = ["base", "grip", "slip", "unslip", "ungrip", "unbase"];
        for engine in engines() {
            for (case, want_log, panic) in [
                ("on_failure", &full[..], "controller exploded in on_failure"),
                (
                    "item",
                    &["base", "unbase"][..],
                    "controller exploded in item",
                ),
                ("delay", &full[..], "controller exploded in delay"),
            ] {
                LOG.lock().unwrap().clear();
                let at = format!("{engine:?}, panic in {case}");
                let (first, after_run, again, after_resume, store) = match case {
                    "on_failure" => {
                        run_then_resume(engine.clone(), || CtlOnFailure, || CtlOnFailureInputs {})
                    }
                    "item" => run_then_resume(engine.clone(), || CtlItem, || CtlItemInputs {}),
                    _ => run_then_resume(engine.clone(), || CtlDelay, || CtlDelayInputs {}),
                };
                let stored = store.load_flow("x").unwrap().unwrap();
                let first = match first {
                    Ok(Err(DurableError::Failed(e))) => e,
                    Ok(other) => panic!("{at}: the run must fail, got {other:?}"),
                    Err(p) => panic!(
                        "{at}: the controller's panic escaped the engine: {p}; the run was left \
                         {} in the store, and a resume then ended with {again:?}",
                        stored.flow.state
                    ),
                };
                let text = first.to_string();
                assert!(
                    text.contains(panic),
                    "{at}: the error reports the panic: {text}"
                );
                if case != "item" {
                    assert!(text.contains("quota exceeded"), "{at}: {text}");
                }
                assert_eq!(first.state(), FlowState::Reverted, "{at}: {text}");
                assert_eq!(after_run, want_log, "{at}: what ran and was reverted");
                assert_eq!(stored.flow.state, FlowState::Reverted, "{at}");
                assert_eq!(
                    state_of(&stored, "base_step"),
                    Some(StepState::Reverted),
                    "{at}"
                );
                if case == "on_failure" {
                    for step in ["grip_step", "slip"] {
                        assert_eq!(state_of(&stored, step), Some(StepState::Reverted), "{at}");
                    }
                }
                let again = match again {
                    Ok(Err(DurableError::Failed(e))) => e,
                    Ok(other) => panic!("{at}: the resume must fail, got {other:?}"),
                    Err(p) => panic!("{at}: the resume panicked: {p}"),
                };
                let again_text = again.to_string();
                assert!(again_text.contains(panic), "{at}: {again_text}");
                assert_eq!(after_resume, want_log, "{at}: the resume ran nothing");
            }
        }
    }

    // ---- 3b. a controller that failed, across a crash, in a sub-flow, and on resume

    /// How many times `CountsThenPanics` was asked what to do.
    static ASKED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    /// Counts each time it is asked what to do, then panics.
    struct CountsThenPanics;

    impl Retry for CountsThenPanics {
        type Item = ();
        fn item(&self, _attempt: u32) -> Option<()> {
            Some(())
        }
        fn on_failure(&self, _history: &History) -> taskflow::Decision {
            ASKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("controller exploded in on_failure")
        }
    }

    flow! {
        flow CtlAsked() { linear [ base_step, retry(CountsThenPanics) linear [ grip_step, slip ] ] }
    }

    /// A crash at any checkpoint after the one that recorded the controller's failure: the
    /// resume finishes the revert and reports the failure without asking the controller again
    /// (its failure is on its scope's record), on the SQLite and directory stores.
    #[test]
    fn a_controller_that_failed_is_not_asked_again_after_a_crash() {
        let _turn = turn();
        let Flaky { store, written } = Flaky::recording(Arc::new(MemoryStore::new()), usize::MAX);
        let run = Engine::serial()
            .run(CtlAsked, CtlAskedInputs {})
            .durable(Arc::new(store), "a")
            .blocking();
        assert!(matches!(run, Err(DurableError::Failed(_))), "{run:?}");
        let written = written.lock().unwrap().clone();
        let recorded = written
            .iter()
            .position(|cp| cp.retries.iter().any(|r| r.failure.is_some()))
            .expect("a checkpoint records the controller's failure")
            + 1;
        let failure = written[recorded - 1].retries[0].failure.clone().unwrap();
        assert_eq!(
            (
                failure.step.as_str(),
                failure.message.as_str(),
                failure.is_panic
            ),
            (
                "retry [grip_step..slip]",
                "controller exploded in on_failure",
                true
            )
        );
        assert!(recorded < written.len(), "{written:#?}");
        for engine in engines() {
            for fail_from in recorded + 1..=written.len() {
                let tmp = TempDir::new();
                let stores: [(&str, Arc<dyn Store>); 2] = [
                    ("sqlite", sqlite(&tmp)),
                    (
                        "dir",
                        Arc::new(DirStore::open(tmp.path().join("dir")).unwrap()),
                    ),
                ];
                for (kind, store) in stores {
                    let at = format!("{engine:?}, {kind}, checkpoints fail from {fail_from}");
                    LOG.lock().unwrap().clear();
                    ASKED.store(0, std::sync::atomic::Ordering::SeqCst);
                    let flaky = Flaky::failing_from(store.clone(), fail_from);
                    let first = engine
                        .run(CtlAsked, CtlAskedInputs {})
                        .durable(flaky, "a")
                        .blocking();
                    assert!(
                        matches!(first, Err(DurableError::Store(_))),
                        "{at}: {first:?}"
                    );
                    let again = {
                        let (engine, store) = (engine.clone(), store.clone());
                        within(LIMIT, move || {
                            no_panic(|| engine.resume(CtlAsked, store, "a").blocking())
                        })
                    };
                    let err = match again {
                        Ok(Err(DurableError::Failed(e))) => e,
                        other => panic!("{at}: {other:?}"),
                    };
                    assert_eq!(
                        err.to_string(),
                        "step `slip` failed: quota exceeded; also step `retry [grip_step..slip]` \
                         failed: panicked: controller exploded in on_failure; every completed \
                         step was reverted",
                        "{at}"
                    );
                    assert_eq!(ASKED.load(std::sync::atomic::Ordering::SeqCst), 1, "{at}");
                    let log = logged();
                    assert_eq!(log[..3], ["base", "grip", "slip"], "{at}: {log:?}");
                    assert_eq!(
                        log.iter().filter(|e| *e == "grip").count(),
                        1,
                        "{at}: {log:?}"
                    );
                    assert_eq!(
                        log.iter().filter(|e| *e == "slip").count(),
                        1,
                        "{at}: {log:?}"
                    );
                    assert_eq!(
                        log.last().map(String::as_str),
                        Some("unbase"),
                        "{at}: {log:?}"
                    );
                    let stored = store.load_flow("a").unwrap().unwrap();
                    assert_eq!(stored.flow.state, FlowState::Reverted, "{at}");
                    assert_eq!(stored.retries[0].failure.as_ref(), Some(&failure), "{at}");
                }
            }
        }
    }

    flow! {
        flow CtlInner(base: u32) { linear [ retry(PanicsOnFailure) linear [ grip_step, slip ] ] }
    }

    flow! {
        flow CtlOuter() { linear [ base_step, CtlInner ] }
    }

    /// The error a resume of a reverted run hands back is the run's, rebuilt from the records:
    /// the same failures with the same names, in the same order — a controller's failure inside
    /// a sub-flow included (only a sub-flow step's first failure is on its record; the
    /// controller's is on its scope's).
    #[test]
    fn a_resumed_reverted_run_reports_the_controllers_failure_as_the_run_did() {
        let _turn = turn();
        fn same_error<F: taskflow::DurableFlow>(
            flow: fn() -> F,
            inputs: fn() -> F::Inputs,
        ) -> Vec<String> {
            let mut seen = Vec::new();
            for engine in engines() {
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let run = match engine
                    .run(flow(), inputs())
                    .durable(store.clone(), "s")
                    .blocking()
                {
                    Err(DurableError::Failed(e)) => e,
                    other => panic!("{engine:?}: {:?}", other.map(drop)),
                };
                let again = match engine.resume(flow(), store, "s").blocking() {
                    Err(DurableError::Failed(e)) => e,
                    other => panic!("{engine:?}: {:?}", other.map(drop)),
                };
                let steps = |e: &FlowError| -> Vec<String> {
                    e.failures().iter().map(|f| f.step().to_owned()).collect()
                };
                assert_eq!(again.to_string(), run.to_string(), "{engine:?}");
                assert_eq!(steps(&again), steps(&run), "{engine:?}");
                seen = steps(&run);
            }
            seen
        }
        assert_eq!(
            same_error(|| CtlOuter, || CtlOuterInputs {}),
            ["CtlInner/slip", "CtlInner/retry [grip_step..slip]"]
        );
        assert_eq!(
            same_error(|| CtlOnFailure, || CtlOnFailureInputs {}),
            ["slip", "retry [grip_step..slip]"]
        );
        assert_eq!(
            same_error(|| CtlDelay, || CtlDelayInputs {}),
            ["slip", "retry [grip_step..slip]"]
        );
        assert_eq!(
            same_error(|| CtlItem, || CtlItemInputs {}),
            ["retry [grip_step..slip]"]
        );
    }

    /// Whether `PanicsInItemOnResume` panics.
    static ITEM_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Provides its attempt's value, until `ITEM_PANICS` says it panics (as a resume asks it
    /// again).
    struct PanicsInItemOnResume;

    impl Retry for PanicsInItemOnResume {
        type Item = u32;
        fn item(&self, attempt: u32) -> Option<u32> {
            if ITEM_PANICS.load(std::sync::atomic::Ordering::SeqCst) {
                panic!("controller exploded in item on resume");
            }
            Some(attempt)
        }
        fn on_failure(&self, _history: &History) -> taskflow::Decision {
            taskflow::Decision::Retry
        }
    }

    #[task(provides = held, revert = unhold)]
    fn hold(base: u32, try_no: u32) -> u32 {
        log(format!("hold #{try_no}"));
        // A shutdown arrives while the scope's first step runs.
        STOP.lock().unwrap().as_ref().unwrap().suspend();
        base + try_no
    }

    #[revert]
    fn unhold() {
        log("unhold");
    }

    #[task(provides = released)]
    fn release(held: u32) -> u32 {
        log("release");
        held
    }

    flow! {
        flow CtlResume() -> (released: u32) {
            linear [ base_step, retry(PanicsInItemOnResume -> try_no: u32) linear [ hold, release ] ]
        }
    }

    /// A resume asks a begun scope's controller for its value again (the scope's steps, and their
    /// reverts, read it). If it panics then, the run cannot be rebuilt: like a stored value that
    /// does not load, the resume is refused with an error that names the controller and carries
    /// the panic, nothing is run or written — and once the controller is fixed, the run resumes.
    #[test]
    fn a_controller_that_panics_when_a_resume_asks_for_its_value_refuses_the_resume() {
        let _turn = turn();
        for engine in engines() {
            let at = format!("{engine:?}");
            LOG.lock().unwrap().clear();
            ITEM_PANICS.store(false, std::sync::atomic::Ordering::SeqCst);
            let stop = SuspendHandle::new();
            *STOP.lock().unwrap() = Some(stop.clone());
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let end = engine
                .run(CtlResume, CtlResumeInputs {})
                .durable(store.clone(), "r")
                .until(&stop)
                .blocking();
            assert!(
                matches!(end, Ok(taskflow::Outcome::Suspended(_))),
                "{at}: {end:?}"
            );
            assert_eq!(logged(), ["base", "hold #1"], "{at}");
            let before = store.load_flow("r").unwrap().unwrap();

            ITEM_PANICS.store(true, std::sync::atomic::Ordering::SeqCst);
            *STOP.lock().unwrap() = Some(SuspendHandle::new());
            let again = {
                let (engine, store) = (engine.clone(), store.clone());
                within(LIMIT, move || {
                    no_panic(|| engine.resume(CtlResume, store, "r").blocking())
                })
            };
            let err = match again {
                Ok(Err(e @ DurableError::Store(StoreError::Corrupt { .. }))) => e,
                other => panic!("{at}: {:?}", other.map(|r| r.map(|o| o.released))),
            };
            assert_eq!(
                err.to_string(),
                "store error: corrupt retry scope `retry [hold..release]` of flow `r`: its \
                 controller panicked when the resume asked it again for the value of attempt 1: \
                 panicked: controller exploded in item on resume",
                "{at}"
            );
            assert_eq!(logged(), ["base", "hold #1"], "{at}: nothing ran");
            assert_eq!(store.load_flow("r").unwrap().unwrap(), before, "{at}");

            ITEM_PANICS.store(false, std::sync::atomic::Ordering::SeqCst);
            let out = engine.resume(CtlResume, store, "r").blocking();
            assert_eq!(out.map(|o| o.released).ok(), Some(2), "{at}");
            assert_eq!(logged(), ["base", "hold #1", "release"], "{at}");
        }
    }

    // ---- 4. a panic inside a stored value's Serialize or Deserialize

    /// Refuses to serialize 13 and to load 7, by panicking.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Touchy(u32);

    impl Serialize for Touchy {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 13 {
                panic!("Touchy refuses to serialize 13");
            }
            s.serialize_u32(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Touchy {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u32::deserialize(d)?;
            if n == 7 {
                panic!("Touchy refuses to load 7");
            }
            Ok(Touchy(n))
        }
    }

    #[task(provides = touchy)]
    fn make_touchy(n: u32) -> Touchy {
        log(format!("make_touchy {n}"));
        Touchy(n)
    }

    #[task(provides = shown)]
    fn show_touchy(touchy: &Touchy) -> String {
        format!("touchy {}", touchy.0)
    }

    flow! {
        flow Fragile(n: u32) -> (shown: String) { linear [ make_touchy, show_touchy ] }
    }

    /// A panic in a step output's `Serialize` ends the run with an error naming the step and
    /// the panic — it does not escape the engine — and the store stays loadable and resumable
    /// (the resume ends with an error too, without panicking).
    #[test]
    fn a_panic_in_serialize_ends_the_run_with_an_error() {
        let _turn = turn();
        for engine in engines() {
            let at = format!("{engine:?}");
            let (first, loaded, again) = within(LIMIT, move || {
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let first = no_panic(|| {
                    engine
                        .run(Fragile, FragileInputs { n: 13 })
                        .durable(store.clone(), "f")
                        .blocking()
                })
                .map(|r| r.map(|o| o.shown).map_err(|e| e.to_string()));
                let loaded = store.load_flow("f").map(|s| s.map(|s| s.flow.state));
                let again = no_panic(|| engine.resume(Fragile, store.clone(), "f").blocking())
                    .map(|r| r.map(|o| o.shown).map_err(|e| e.to_string()));
                (first, loaded, again)
            });
            let text = match first {
                Ok(Err(text)) => text,
                Ok(Ok(out)) => panic!("{at}: the run must fail, got {out:?}"),
                Err(p) => panic!("{at}: the panic escaped the engine: {p}"),
            };
            assert!(
                text.contains("make_touchy") && text.contains("Touchy refuses to serialize 13"),
                "{at}: {text}"
            );
            assert!(matches!(loaded, Ok(Some(_))), "{at}: {loaded:?}");
            assert!(
                matches!(again, Ok(Err(_))),
                "{at}: the resume ends with an error, without panicking: {again:?}"
            );
        }
    }

    /// A panic in a stored result's `Deserialize` on resume is refused as a corrupt record
    /// naming the step and the panic; the store is left as it was.
    #[test]
    fn a_panic_in_deserialize_on_resume_is_a_corrupt_record() {
        let _turn = turn();
        for engine in engines() {
            let at = format!("{engine:?}");
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            // `make_touchy` succeeds and is recorded with its result; the run stops after.
            let flaky = Flaky::failing_from(store.clone(), 3);
            let first = engine
                .run(Fragile, FragileInputs { n: 8 })
                .durable(flaky, "f")
                .blocking();
            assert!(matches!(first, Err(DurableError::Store(_))), "{first:?}");
            // A run checks that a result loads back before the step counts as done, so it cannot
            // record a 7 itself; a store written by a build whose `Deserialize` took it can.
            let stored = store.load_flow("f").unwrap().unwrap();
            let mut touchy = stored.atom("make_touchy").unwrap().clone();
            touchy.result = Some(serde_json::json!(7));
            let checkpoint = Checkpoint {
                atoms: vec![touchy],
                ..Checkpoint::default()
            };
            store.checkpoint("f", &checkpoint).unwrap();
            let before = store.load_flow("f").unwrap().unwrap();
            assert_eq!(
                state_of(&before, "make_touchy"),
                Some(StepState::Success),
                "{at}"
            );
            let resumed = {
                let (engine, store) = (engine.clone(), store.clone());
                within(LIMIT, move || {
                    no_panic(|| engine.resume(Fragile, store, "f").blocking())
                })
            };
            let err = match resumed {
                Ok(Err(e)) => e,
                Ok(Ok(out)) => panic!("{at}: the resume must be refused, got {out:?}"),
                Err(p) => panic!("{at}: the panic escaped the engine: {p}"),
            };
            let text = err.to_string();
            assert!(
                matches!(err, DurableError::Store(StoreError::Corrupt { .. })),
                "{at}: {err:?}"
            );
            assert!(
                text.contains("make_touchy") && text.contains("Touchy refuses to load 7"),
                "{at}: {text}"
            );
            assert_eq!(store.load_flow("f").unwrap().unwrap(), before, "{at}");
        }
    }

    // ---- 5. a value that does not round-trip through the store is a failure of its step

    #[task(provides = setup_id, revert = undo_setup)]
    fn setup_probe() -> u32 {
        log("setup");
        1
    }

    #[revert]
    fn undo_setup() {
        log("undo setup");
    }

    #[task(provides = ratio, revert = undo_ratio)]
    fn measure_ratio(setup_id: u32) -> f64 {
        log("measure");
        let _ = setup_id;
        f64::NAN
    }

    #[revert]
    fn undo_ratio() {
        log("undo measure");
    }

    flow! {
        flow Ratio() -> (ratio: f64) { linear [ setup_probe, measure_ratio ] }
    }

    #[task(provides = grid, revert = undo_grid)]
    fn make_grid(setup_id: u32) -> HashMap<(u32, u32), u32> {
        log("grid");
        HashMap::from([((setup_id, 2), 3)])
    }

    #[revert]
    fn undo_grid() {
        log("undo grid");
    }

    flow! {
        flow Grid() -> (grid: HashMap<(u32, u32), u32>) { linear [ setup_probe, make_grid ] }
    }

    #[task(provides = index, revert = undo_index)]
    fn make_index(setup_id: u32) -> BTreeMap<Vec<u8>, u32> {
        log("index");
        BTreeMap::from([(vec![1, 2], setup_id)])
    }

    #[revert]
    fn undo_index() {
        log("undo index");
    }

    flow! {
        flow Index() -> (index: BTreeMap<Vec<u8>, u32>) { linear [ setup_probe, make_index ] }
    }

    /// Checks a run whose step `step` produced a value the store cannot keep: the step failed
    /// (with `problem` in its failure) and was reverted with the steps before it, the run ended
    /// REVERTED, and a resume reports the same failure without running anything again.
    fn check_value_failure<F: taskflow::DurableFlow>(
        engine: &Engine,
        flow: fn() -> F,
        inputs: F::Inputs,
        step: &str,
        want_log: &[&str],
        problem: impl Fn(&str) -> bool,
    ) where
        F::Outputs: std::fmt::Debug,
    {
        let at = format!("{engine:?}, step {step}");
        LOG.lock().unwrap().clear();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let err = match engine
            .run(flow(), inputs)
            .durable(store.clone(), "v")
            .blocking()
        {
            Err(DurableError::Failed(e)) => e,
            other => panic!("{at}: the step must fail and the run be reverted, got {other:?}"),
        };
        assert_eq!(err.failed_step(), step, "{at}: {err}");
        let message = err.failures()[0].error().to_string();
        assert!(
            problem(&message),
            "{at}: the failure names the problem: {message}"
        );
        assert_eq!(err.state(), FlowState::Reverted, "{at}: {err}");
        assert_eq!(logged(), want_log, "{at}");
        let stored = store.load_flow("v").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Reverted, "{at}");
        assert_eq!(state_of(&stored, step), Some(StepState::Reverted), "{at}");
        assert_eq!(
            stored
                .atom(step)
                .unwrap()
                .failure
                .as_ref()
                .map(|f| f.step.as_str()),
            Some(step),
            "{at}"
        );
        assert_eq!(
            state_of(&stored, "setup_probe"),
            Some(StepState::Reverted),
            "{at}"
        );
        match engine.resume(flow(), store.clone(), "v").blocking() {
            Err(DurableError::Failed(e)) => assert_eq!(e.failed_step(), step, "{at}: {e}"),
            other => panic!("{at}: the resume reports the failure, got {other:?}"),
        }
        assert_eq!(logged(), want_log, "{at}: the resume ran nothing");
    }

    /// TaskFlow-correct rule: a checkpoint that fails because of the value (not the disk) is a
    /// failure of that step, checked before the step counts as done. A NaN `f64` serializes as
    /// `null` and would not load back: the step fails, its revert hook runs, the run ends
    /// REVERTED.
    #[test]
    fn a_nan_output_fails_its_step_and_the_run_is_reverted() {
        let _turn = turn();
        for engine in engines() {
            check_value_failure(
                &engine,
                || Ratio,
                RatioInputs {},
                "measure_ratio",
                &["setup", "measure", "undo measure", "undo setup"],
                |m| {
                    let m = m.to_lowercase();
                    m.contains("nan") || m.contains("null") || m.contains("finite")
                },
            );
        }
    }

    /// The same rule for an output that cannot be serialized at all (a map with non-string
    /// keys): the step fails and is reverted, the run ends REVERTED — never stuck RUNNING — and
    /// a resume does not run the step again.
    #[test]
    fn an_output_with_non_string_map_keys_fails_its_step_and_the_run_is_reverted() {
        let _turn = turn();
        for engine in engines() {
            check_value_failure(
                &engine,
                || Grid,
                GridInputs {},
                "make_grid",
                &["setup", "grid", "undo grid", "undo setup"],
                |m| m.contains("key must be a string"),
            );
            check_value_failure(
                &engine,
                || Index,
                IndexInputs {},
                "make_index",
                &["setup", "index", "undo index", "undo setup"],
                |m| m.contains("key must be a string"),
            );
        }
    }

    /// Reports a NaN progress last, and fails its first attempt.
    #[task(provides = copied)]
    fn copy_files(ctx: &TaskContext, files: u32, attempt: u32) -> Result<u32, Quota> {
        ctx.progress(0.5);
        ctx.progress(f32::NAN);
        if attempt == 1 {
            return Err(Quota);
        }
        Ok(files)
    }

    flow! {
        flow Copying(files: u32) -> (copied: u32) {
            linear [ retry(Attempts(2) -> attempt: u32) linear [ copy_files ] ]
        }
    }

    /// `ctx.progress(NaN)` is rejected or ignored; it does not fail a durable run, whatever the
    /// store — also when it is the last progress of a failed attempt, which is checkpointed
    /// before the retry.
    #[test]
    fn a_nan_progress_does_not_fail_a_durable_run() {
        for engine in engines() {
            let tmp = TempDir::new();
            let stores: [(&str, Arc<dyn Store>); 3] = [
                ("memory", Arc::new(MemoryStore::new())),
                (
                    "dir",
                    Arc::new(DirStore::open(tmp.path().join("dir")).unwrap()),
                ),
                ("sqlite", sqlite(&tmp)),
            ];
            for (kind, store) in stores {
                let out = engine
                    .run(Copying, CopyingInputs { files: 3 })
                    .durable(store.clone(), "c")
                    .blocking();
                assert!(
                    matches!(out, Ok(CopyingOutputs { copied: 3 })),
                    "{engine:?}, {kind} store: {out:?}"
                );
                let stored = store.load_flow("c").unwrap().unwrap();
                assert_eq!(stored.flow.state, FlowState::Success, "{kind}");
            }
        }
    }

    // ---- 6. a finished run that lacks a step's record is a corrupt store

    /// A run recorded SUCCESS whose store lacks one step's record (built through the public
    /// `Store` API from a real finished run) is refused on resume as a corrupt store naming the
    /// step — never a panic, never outputs made up without it.
    #[test]
    fn a_finished_run_without_a_steps_record_is_a_corrupt_store() {
        let _turn = turn();
        let done = published("x").load_flow("p").unwrap().unwrap();
        assert_eq!(done.flow.state, FlowState::Success);
        for missing in ["create", "address", "publish"] {
            let copy: Arc<dyn Store> = Arc::new(MemoryStore::new());
            copy.create_flow(&done.flow).unwrap();
            copy.checkpoint(
                "p",
                &Checkpoint {
                    flow_state: Some(FlowState::Success),
                    atoms: done
                        .atoms
                        .iter()
                        .filter(|a| a.name != missing)
                        .cloned()
                        .collect(),
                    retries: done.retries.clone(),
                    ..Checkpoint::default()
                },
            )
            .unwrap();
            let before = copy.load_flow("p").unwrap().unwrap();
            assert_eq!(before.flow.state, FlowState::Success);
            assert!(before.atom(missing).is_none());
            let resumed = {
                let copy = copy.clone();
                within(LIMIT, move || {
                    no_panic(|| Engine::serial().resume(Publish, copy, "p").blocking())
                })
            };
            let err = match resumed {
                Ok(Err(e)) => e,
                Ok(Ok(out)) => panic!("without `{missing}`: resumed to outputs {out:?}"),
                Err(p) => panic!("without `{missing}`: the resume panicked: {p}"),
            };
            let text = err.to_string();
            assert!(
                matches!(err, DurableError::Store(StoreError::Corrupt { .. })),
                "without `{missing}`: {err:?}"
            );
            assert!(text.contains(&format!("`{missing}`")), "{text}");
            assert_eq!(copy.load_flow("p").unwrap().unwrap(), before);
        }
    }

    // ---- 10. a suspend asked for while a durable run reverts

    #[task(provides = lease_a, revert = drop_lease_a)]
    fn take_lease_a() -> u32 {
        log("lease a");
        1
    }

    #[revert]
    fn drop_lease_a() {
        log("drop lease a");
    }

    #[task(provides = lease_b, revert = drop_lease_b)]
    fn take_lease_b(lease_a: u32) -> u32 {
        log("lease b");
        lease_a + 1
    }

    /// A shutdown arrives while the flow is being undone.
    #[revert]
    fn drop_lease_b() {
        log("drop lease b");
        STOP.lock().unwrap().as_ref().unwrap().suspend();
    }

    #[task(revert = drop_lease_c)]
    fn take_lease_c(lease_b: u32) -> Result<(), Quota> {
        let _ = lease_b;
        log("lease c");
        Err(Quota)
    }

    #[revert]
    fn drop_lease_c() {
        log("drop lease c");
    }

    flow! {
        flow Leases() { linear [ take_lease_a, take_lease_b, take_lease_c ] }
    }

    /// TaskFlow: a suspend asked for while a durable run reverts stops the revert after the
    /// reverts in flight; the run is recorded SUSPENDED (the steps not undone yet still
    /// SUCCESS), and a resume finishes the revert and reports the original failure.
    #[test]
    fn a_suspend_during_a_durable_revert_is_recorded_and_resume_finishes_the_revert() {
        let _turn = turn();
        for engine in engines() {
            LOG.lock().unwrap().clear();
            let at = format!("{engine:?}");
            let stop = SuspendHandle::new();
            *STOP.lock().unwrap() = Some(stop.clone());
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let end = {
                let (engine, store) = (engine.clone(), store.clone());
                within(LIMIT, move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    runtime.block_on(
                        engine
                            .run(Leases, LeasesInputs {})
                            .durable(store, "l")
                            .until(&stop)
                            .into_future(),
                    )
                })
            };
            let stored = store.load_flow("l").unwrap().unwrap();
            assert!(
                matches!(end, Ok(taskflow::Outcome::Suspended(_))),
                "{at}: expected SUSPENDED, got {end:?} (stored {})",
                stored.flow.state
            );
            assert_eq!(
                logged(),
                [
                    "lease a",
                    "lease b",
                    "lease c",
                    "drop lease c",
                    "drop lease b"
                ],
                "{at}"
            );
            assert_eq!(stored.flow.state, FlowState::Suspended, "{at}");
            assert_eq!(
                states(&stored),
                [
                    ("take_lease_a".to_owned(), StepState::Success),
                    ("take_lease_b".to_owned(), StepState::Reverted),
                    ("take_lease_c".to_owned(), StepState::Reverted),
                ],
                "{at}"
            );
            *STOP.lock().unwrap() = Some(SuspendHandle::new());
            let again = {
                let (engine, store) = (engine.clone(), store.clone());
                within(LIMIT, move || engine.resume(Leases, store, "l").blocking())
            };
            match again {
                Err(DurableError::Failed(e)) => {
                    assert_eq!(e.failed_step(), "take_lease_c", "{at}: {e}");
                    assert_eq!(e.failures()[0].error().to_string(), "quota exceeded");
                    assert_eq!(e.state(), FlowState::Reverted, "{at}: {e}");
                }
                other => panic!("{at}: the resume reports the original failure, got {other:?}"),
            }
            assert_eq!(
                logged(),
                [
                    "lease a",
                    "lease b",
                    "lease c",
                    "drop lease c",
                    "drop lease b",
                    "drop lease a"
                ],
                "{at}"
            );
            let stored = store.load_flow("l").unwrap().unwrap();
            assert_eq!(stored.flow.state, FlowState::Reverted, "{at}");
            assert_eq!(
                state_of(&stored, "take_lease_a"),
                Some(StepState::Reverted),
                "{at}"
            );
        }
    }
}

/// The fingerprint's scheme is pinned: it hashes the flow's structure and its stored types as
/// written (at `#[task]` and in `flow!`), so a compiler upgrade cannot change it — and a change
/// of the scheme, which would refuse every stored run, cannot go unnoticed.
#[test]
fn the_fingerprint_of_a_flow_is_pinned() {
    assert_eq!(taskflow::fingerprint::<Publish>(), "6fa822a7b91a240a");
}

/// A step output that only borrows (`&'static str`) cannot be stored, and its flow is no
/// `DurableFlow`; it must still compile and run in memory. (How a finished step's outputs are
/// saved is chosen by method resolution, which ignores lifetimes: a bound like `DeserializeOwned`
/// there would be picked for `&'static str` and then fail to compile at the flow.)
mod borrowed_outputs {
    use taskflow::prelude::*;

    #[task(provides = name)]
    fn pick() -> &'static str {
        "disk"
    }

    #[task(provides = names)]
    fn pick_all() -> Vec<&'static str> {
        vec!["disk", "nic"]
    }

    #[task(provides = count)]
    fn count(name: &'static str, names: Vec<&'static str>) -> usize {
        name.len() + names.len()
    }

    flow! { flow Borrowed() -> (count) { linear [ pick, pick_all, count ] } }

    #[test]
    fn a_flow_whose_outputs_borrow_static_data_runs_in_memory() {
        let out = Engine::serial().run(Borrowed, BorrowedInputs {}).blocking();
        assert_eq!(out.unwrap().count, 6);
    }
}

/// A decider that panicked fails its step inside the step's retry scope, and the scope's
/// controller decides (it retries here). A run stopped anywhere between that failure and the
/// retry (a checkpoint that fails, as after a crash) resumes to the same end: the restored
/// failure is a decider's, and the controller is asked again — not a step that could not start,
/// whose controller is not asked.
mod restored_decider_failure {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static DECIDED: AtomicU32 = AtomicU32::new(0);

    #[task(provides = base, revert = drop_base)]
    fn make_base() -> u32 {
        1
    }

    #[revert]
    fn drop_base() {}

    #[task]
    fn first_call_panics(base: u32) -> bool {
        if DECIDED.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the decider's service is down");
        }
        base > 0
    }

    #[task(provides = grown)]
    fn grow(base: u32) -> u32 {
        base + 1
    }

    flow! {
        flow Guarded() -> (grown) {
            retry(Times(3)) graph [ make_base, grow, make_base -> grow if first_call_panics ]
        }
    }

    #[test]
    fn a_restored_decider_failure_is_handled_by_its_retry_controller() {
        let _turn = my_turn();
        for engine in engines() {
            for fail_from in 1..=6 {
                DECIDED.store(0, Ordering::SeqCst);
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let flaky = Flaky::failing_from(store.clone(), fail_from);
                let out = match engine
                    .run(Guarded, GuardedInputs {})
                    .durable(flaky, "g")
                    .blocking()
                {
                    Ok(out) => out,
                    Err(DurableError::Store(_)) => engine
                        .resume(Guarded, store.clone(), "g")
                        .blocking()
                        .unwrap_or_else(|e| panic!("fail_from {fail_from}, {engine:?}: {e}")),
                    Err(e) => panic!("fail_from {fail_from}, {engine:?}: {e}"),
                };
                assert_eq!(out.grown, Some(2), "fail_from {fail_from}");
            }
        }
    }
}

// ---- a map step that failed part-way, then a crash before its revert

#[task(provides = disk, revert = drop_disk)]
fn make_disk(size: u32) -> Result<String, common::Refused> {
    runs().ran(&format!("make {size}"));
    if size == 13 {
        return Err(common::Refused(size));
    }
    Ok(format!("disk{size}"))
}

#[revert]
fn drop_disk(size: &u32, result: TaskOutcome<&String>) {
    let what = match result {
        Ok(disk) => format!("drop {disk}"),
        Err(failure) => format!("nothing for {size}: {}", failure.error()),
    };
    UNDONE.lock().unwrap().push(what);
}

flow! {
    flow Disks(sizes: Vec<u32>) -> (disks) {
        linear [ map make_disk over sizes -> disks ]
    }
}

/// A store whose checkpoint after the revert hooks ran fails: the run stops with its step
/// recorded FAILURE and REVERTING, as if the process had died while its hooks ran.
fn dies_while_reverting(inner: Arc<dyn Store>) -> Arc<HookedStore> {
    Arc::new(HookedStore::new(inner, |_, cp, write| {
        if cp.atoms.iter().any(|a| a.state == StepState::Reverted) {
            return Err(StoreError::Io {
                path: "crash".into(),
                source: std::io::Error::other("the process died here"),
            });
        }
        write()
    }))
}

#[test]
fn a_map_step_that_failed_part_way_reverts_its_finished_items_after_a_crash() {
    let _turn = my_turn();
    for (engine, done) in [
        (Engine::serial(), vec!["drop disk20", "drop disk10"]),
        (
            Engine::parallel().workers(2),
            vec!["drop disk40", "drop disk20", "drop disk10"],
        ),
    ] {
        UNDONE.lock().unwrap().clear();
        let tmp = TempDir::new();
        let store = sqlite(&tmp);
        let sizes = vec![10, 20, 13, 40];
        let stopped = engine
            .run(Disks, DisksInputs { sizes })
            .durable(dies_while_reverting(store.clone()), "d")
            .blocking();
        assert!(
            matches!(stopped, Err(DurableError::Store(_))),
            "{engine:?}: {:?}",
            stopped.map(|o| o.disks)
        );
        let mut expected: Vec<String> = done.iter().map(|s| s.to_string()).collect();
        expected.insert(
            expected.len() - 2,
            "nothing for 13: step 13 refused".to_owned(),
        );
        assert_eq!(
            *UNDONE.lock().unwrap(),
            expected,
            "{engine:?}: before the crash"
        );
        UNDONE.lock().unwrap().clear();

        // The store keeps each finished item with the step's failure.
        let stored = store.load_flow("d").unwrap().unwrap();
        let atom = stored.atom("make_disk").unwrap();
        assert_eq!(atom.state, StepState::Reverting);
        assert!(atom.failure.is_some());
        let items = atom
            .result
            .clone()
            .expect("the finished items are recorded");
        assert_eq!(items[0], serde_json::json!({ "done": "disk10" }));
        assert_eq!(items[1], serde_json::json!({ "done": "disk20" }));
        assert_eq!(items[2]["failed"]["message"], "step 13 refused");

        // A new process resumes the run: its interrupted revert runs again, for every finished
        // item (newest first) and the failed one with its failure, from what the store kept.
        let resumed = engine.resume(Disks, store.clone(), "d").blocking();
        assert!(
            matches!(resumed, Err(DurableError::Failed(_))),
            "{engine:?}"
        );
        assert_eq!(
            *UNDONE.lock().unwrap(),
            expected,
            "{engine:?}: after the resume"
        );
        let stored = store.load_flow("d").unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Reverted);
        assert_eq!(stored.atom("make_disk").unwrap().state, StepState::Reverted);
    }
}
