//! The storage layer through its public API: every behaviour of the `Store` trait is one function
//! run against every backend (memory, directory, SQLite, and PostgreSQL at `DATABASE_URL`, each
//! test in a schema of its own); then what only one backend has (files, SQLite's schema and
//! transactions).
mod common;
use common::{Mount, PgStore, TempDir};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FailureRecord, FlowRecord, MemoryStore, RetryRecord,
    SqliteStore, Store, StoreError, StoredFlow,
};
use taskflow::{FlowState, StepState};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A fresh directory under the system's temp dir, removed when dropped.
fn memory() -> (MemoryStore, ()) {
    (MemoryStore::new(), ())
}

fn dir() -> (DirStore, TempDir) {
    let tmp = TempDir::new();
    (DirStore::open(tmp.0.join("flows")).unwrap(), tmp)
}

fn sqlite() -> (SqliteStore, TempDir) {
    let tmp = TempDir::new();
    (SqliteStore::open(tmp.0.join("flows.db")).unwrap(), tmp)
}

/// One `#[test]` per backend for each shared behaviour.
macro_rules! for_each_backend {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $behaviour() { let (store, _tmp) = super::memory(); super::$behaviour(&store); } )*
        }
        mod dir {
            $( #[test] fn $behaviour() { let (store, _tmp) = super::dir(); super::$behaviour(&store); } )*
        }
        mod sqlite {
            $( #[test] fn $behaviour() { let (store, _tmp) = super::sqlite(); super::$behaviour(&store); } )*
        }
        mod postgres {
            $( #[test] fn $behaviour() { let store = super::PgStore::new(); super::$behaviour(&store); } )*
        }
    };
}

for_each_backend!(
    round_trip,
    later_records_replace_earlier_ones,
    invalid_checkpoint_changes_nothing,
    unknown_flow_is_not_found,
    create_twice_is_already_exists,
    created_with_its_first_checkpoint_all_or_nothing,
    list_flows_in_creation_order_with_states,
    delete_removes_one_flow,
    unsafe_flow_id_is_refused,
    concurrent_checkpoints_all_land,
    graph_is_kept_with_the_flow,
    retry_scopes_of_sub_flows_are_kept_apart,
);

/// A sub-flow's retry scope 0 and the flow's own scope 0 are two records.
fn retry_scopes_of_sub_flows_are_kept_apart(store: &dyn Store) {
    let record = flow("Nested");
    store.create_flow(&record).unwrap();
    let retry = |flow: &str, attempt| RetryRecord {
        scope: 0,
        flow: flow.into(),
        attempt,
        history: Vec::new(),
        failure: None,
    };
    let cp = Checkpoint {
        retries: vec![retry("Inner", 2), retry("", 3), retry("Inner/Deeper", 5)],
        ..Default::default()
    };
    store.checkpoint(&record.id, &cp).unwrap();
    let cp = Checkpoint {
        retries: vec![retry("Inner", 4)],
        ..Default::default()
    };
    store.checkpoint(&record.id, &cp).unwrap();
    let stored = load(store, &record.id);
    assert_eq!(
        stored.retries,
        [retry("", 3), retry("Inner", 4), retry("Inner/Deeper", 5)]
    );
}

fn flow(name: &str) -> FlowRecord {
    FlowRecord::new(
        "nightly",
        name,
        "fp-1",
        json!({ "image": "debian", "size_gb": 20 }),
    )
}

fn failure(step: &str, message: &str, is_panic: bool) -> FailureRecord {
    FailureRecord {
        step: step.into(),
        message: message.into(),
        is_panic,
    }
}

fn atom(name: &str, state: StepState) -> AtomRecord {
    AtomRecord {
        state,
        ..AtomRecord::new(name)
    }
}

fn load(store: &dyn Store, id: &str) -> StoredFlow {
    store.load_flow(id).unwrap().expect("the flow is stored")
}

// ---------------------------------------------------------------------------------------------
// Shared behaviours

/// Everything a checkpoint carries comes back as it was written: flow state, every atom field
/// (a `Some(Null)` result stays distinct from `None`), retry histories; `updated_at` moves.
fn round_trip(store: &dyn Store) {
    let mut record = flow("BootVm");
    record.created_at -= 10_000;
    record.updated_at = record.created_at;
    store.create_flow(&record).unwrap();
    assert_eq!(
        load(store, &record.id),
        StoredFlow {
            flow: record.clone(),
            atoms: vec![],
            retries: vec![]
        }
    );

    let launch = AtomRecord {
        result: Some(json!({ "server_id": 7, "tags": ["a", "b"] })),
        progress: 1.0,
        started_at: Some(1_700_000_000_000),
        finished_at: Some(1_700_000_000_250),
        ..atom("launch", StepState::Success)
    };
    let notify = AtomRecord {
        result: Some(serde_json::Value::Null),
        ..atom("Boot/notify", StepState::Success)
    };
    let attach = AtomRecord {
        attempt: 3,
        failure: Some(failure("Boot/attach", "disk full", false)),
        revert_failure: Some(failure("Boot/attach", "index out of bounds", true)),
        progress: 0.25,
        started_at: Some(1_700_000_000_300),
        ..atom("Boot/attach", StepState::RevertFailure)
    };
    let retry = RetryRecord {
        scope: 2,
        flow: String::new(),
        attempt: 3,
        history: vec![
            vec![failure("Boot/attach", "busy", false)],
            vec![
                failure("Boot/attach", "busy", false),
                failure("Boot/other", "boom", true),
            ],
        ],
        failure: None,
    };
    // A controller that failed: its own failure is on its record.
    let failed_controller = RetryRecord {
        scope: 0,
        flow: "Boot".into(),
        attempt: 1,
        history: vec![],
        failure: Some(failure(
            "retry [attach..other]",
            "index out of bounds",
            true,
        )),
    };
    store
        .checkpoint(
            &record.id,
            &Checkpoint {
                flow_state: Some(FlowState::Failure),
                atoms: vec![launch.clone(), notify.clone(), attach.clone()],
                retries: vec![retry.clone(), failed_controller.clone()],
                ..Checkpoint::default()
            },
        )
        .unwrap();

    let stored = load(store, &record.id);
    assert_eq!(stored.flow.state, FlowState::Failure);
    assert!(stored.flow.updated_at > record.updated_at);
    assert_eq!(
        stored.flow,
        FlowRecord {
            state: FlowState::Failure,
            updated_at: stored.flow.updated_at,
            ..record.clone()
        }
    );
    assert_eq!(stored.atoms, [launch, notify, attach]);
    assert_eq!(stored.retries, [retry, failed_controller]);
    assert_eq!(
        stored.atom("launch").unwrap().duration(),
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(stored.atom("Boot/attach").unwrap().duration(), None);
    assert_eq!(
        stored.atom("Boot/notify").unwrap().result,
        Some(serde_json::Value::Null)
    );
    assert_eq!(stored.atom("Boot/attach").unwrap().result, None);
}

/// The latest record of a step wins (also within one checkpoint), steps keep the order in which
/// they were first recorded, retry records are replaced per scope (a controller's failure with
/// them) and kept by scope, and `flow_state: None` keeps the flow's state.
fn later_records_replace_earlier_ones(store: &dyn Store) {
    let record = flow("F");
    store.create_flow(&record).unwrap();
    let cp = |state, atoms, retries| Checkpoint {
        flow_state: state,
        atoms,
        retries,
        ..Checkpoint::default()
    };
    let retry = |scope, attempt| RetryRecord {
        scope,
        flow: String::new(),
        attempt,
        history: vec![],
        failure: None,
    };
    store
        .checkpoint(
            &record.id,
            &cp(
                Some(FlowState::Running),
                vec![atom("b", StepState::Running), atom("a", StepState::Running)],
                // A controller that failed; the later record (it was started afresh) has no
                // failure, and replaces it.
                vec![RetryRecord {
                    failure: Some(failure("retry [a]", "boom", true)),
                    ..retry(5, 1)
                }],
            ),
        )
        .unwrap();
    let a_done = AtomRecord {
        result: Some(json!(1)),
        ..atom("a", StepState::Success)
    };
    store
        .checkpoint(
            &record.id,
            &cp(
                None,
                vec![
                    atom("a", StepState::Failure),
                    a_done.clone(),
                    atom("c", StepState::Running),
                ],
                vec![retry(1, 1), retry(5, 2)],
            ),
        )
        .unwrap();

    let stored = load(store, &record.id);
    assert_eq!(stored.flow.state, FlowState::Running);
    assert_eq!(
        stored.atoms,
        [
            atom("b", StepState::Running),
            a_done,
            atom("c", StepState::Running)
        ]
    );
    assert_eq!(stored.retries, [retry(1, 1), retry(5, 2)]);
}

/// A checkpoint whose second atom is invalid (a NaN progress) changes nothing — neither the flow
/// state nor the first, valid atom. What this proves: every backend checks a whole checkpoint
/// before writing any of it. (That a write failing half-way is rolled back is proved per backend
/// below: `sqlite_failed_write_rolls_back`, `dir_failed_write_keeps_previous_file`.)
fn invalid_checkpoint_changes_nothing(store: &dyn Store) {
    let record = flow("F");
    store.create_flow(&record).unwrap();
    let first = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("a", StepState::Running)],
        retries: vec![],
        ..Checkpoint::default()
    };
    store.checkpoint(&record.id, &first).unwrap();
    let before = load(store, &record.id);

    for bad_progress in [f32::NAN, 1.5, -0.1, f32::INFINITY] {
        let bad = Checkpoint {
            flow_state: Some(FlowState::Success),
            atoms: vec![
                atom("a", StepState::Success),
                AtomRecord {
                    progress: bad_progress,
                    ..atom("b", StepState::Running)
                },
            ],
            retries: vec![RetryRecord {
                scope: 0,
                flow: String::new(),
                attempt: 2,
                history: vec![],
                failure: None,
            }],
            ..Checkpoint::default()
        };
        match store.checkpoint(&record.id, &bad) {
            Err(StoreError::Invalid { what, .. }) => assert!(what.contains("`b`"), "{what}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(load(store, &record.id), before);
    }
}

/// Unknown ids: loading gives `None`, checkpointing and deleting give `NotFound` naming the id,
/// and a failed checkpoint of an unknown flow leaves nothing behind.
fn unknown_flow_is_not_found(store: &dyn Store) {
    assert!(store.load_flow("nope").unwrap().is_none());
    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("a", StepState::Running)],
        retries: vec![RetryRecord {
            scope: 0,
            flow: String::new(),
            attempt: 1,
            history: vec![],
            failure: None,
        }],
        ..Checkpoint::default()
    };
    match store.checkpoint("nope", &cp) {
        Err(e @ StoreError::NotFound { .. }) => {
            assert_eq!(e.to_string(), "no flow `nope` in the store")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.delete_flow("nope"),
        Err(StoreError::NotFound { flow_id }) if flow_id == "nope"
    ));
    assert!(store.load_flow("nope").unwrap().is_none());
    assert!(store.list_flows().unwrap().is_empty());
}

/// Creating an id twice is refused and keeps the first record.
fn create_twice_is_already_exists(store: &dyn Store) {
    let first = flow("First");
    store.create_flow(&first).unwrap();
    let second = FlowRecord {
        flow_name: "Second".into(),
        ..first.clone()
    };
    match store.create_flow(&second) {
        Err(StoreError::AlreadyExists { flow_id }) => assert_eq!(flow_id, first.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(load(store, &first.id).flow, first);
    assert_eq!(store.list_flows().unwrap(), [first]);
}

/// A run recorded with its first checkpoint is stored as that checkpoint leaves it; an id in
/// use, a checkpoint that is invalid or whose fence is not the run's, records nothing.
fn created_with_its_first_checkpoint_all_or_nothing(store: &dyn Store) {
    use taskflow::store::{LeaseUpdate, Owner};
    let owner = Owner::current();
    let mut run = flow("First");
    let fence = run.lease_to(&owner, u64::MAX / 2);
    let mut first = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("a", StepState::Running), atom("b", StepState::Pending)],
        fence: Some(fence.clone()),
        lease: LeaseUpdate::Renew {
            until: u64::MAX / 3,
        },
        ..Checkpoint::default()
    };
    store.create_with(&run, &first).unwrap();
    let stored = load(store, &run.id);
    assert_eq!(stored.flow.state, FlowState::Running);
    assert_eq!(
        stored.flow.lease.as_ref().map(|l| l.until),
        Some(u64::MAX / 3)
    );
    assert_eq!(stored.atoms, first.atoms);
    // Then it is checkpointed like any run.
    let next = Checkpoint {
        atoms: vec![atom("a", StepState::Success)],
        fence: Some(fence.clone()),
        lease: LeaseUpdate::Keep,
        ..Checkpoint::default()
    };
    store.checkpoint(&run.id, &next).unwrap();
    assert_eq!(
        load(store, &run.id).atom("a").unwrap().state,
        StepState::Success
    );
    // The id in use: refused, the stored run unchanged.
    let before = load(store, &run.id);
    match store.create_with(&run, &first) {
        Err(StoreError::AlreadyExists { flow_id }) => assert_eq!(flow_id, run.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(load(store, &run.id), before);
    // A checkpoint with another writer's fence, and an invalid one: no run.
    run = flow("Second");
    run.lease_to(&owner, u64::MAX / 2);
    first.fence = Some(taskflow::store::Fence {
        epoch: fence.epoch + 1,
        ..fence.clone()
    });
    assert!(store.create_with(&run, &first).is_err());
    first.fence = Some(fence);
    first.atoms[1].progress = f32::NAN;
    assert!(matches!(
        store.create_with(&run, &first),
        Err(StoreError::Invalid { .. })
    ));
    assert!(store.load_flow(&run.id).unwrap().is_none());
    assert_eq!(store.list_flows().unwrap().len(), 1);
}

/// `list_flows` gives every flow with its current state, oldest first.
fn list_flows_in_creation_order_with_states(store: &dyn Store) {
    assert!(store.list_flows().unwrap().is_empty());
    let mut flows: Vec<FlowRecord> = ["C", "A", "B"].into_iter().map(flow).collect();
    for (f, created_at) in flows.iter_mut().zip([3_000, 1_000, 2_000]) {
        f.created_at = created_at;
    }
    for f in &flows {
        store.create_flow(f).unwrap();
    }
    for (f, state) in
        flows
            .iter()
            .zip([FlowState::Success, FlowState::Running, FlowState::Reverted])
    {
        let cp = Checkpoint {
            flow_state: Some(state),
            ..Default::default()
        };
        store.checkpoint(&f.id, &cp).unwrap();
    }
    let listed: Vec<(String, FlowState)> = store
        .list_flows()
        .unwrap()
        .into_iter()
        .map(|f| (f.flow_name, f.state))
        .collect();
    assert_eq!(
        listed,
        [
            ("A".to_owned(), FlowState::Running),
            ("B".to_owned(), FlowState::Reverted),
            ("C".to_owned(), FlowState::Success),
        ]
    );
}

/// Deleting a flow removes it with its atoms and retries; other flows stay; its id can be reused.
fn delete_removes_one_flow(store: &dyn Store) {
    let (gone, kept) = (flow("Gone"), flow("Kept"));
    for f in [&gone, &kept] {
        store.create_flow(f).unwrap();
        let cp = Checkpoint {
            atoms: vec![atom("a", StepState::Success)],
            retries: vec![RetryRecord {
                scope: 0,
                flow: String::new(),
                attempt: 1,
                history: vec![],
                failure: None,
            }],
            ..Default::default()
        };
        store.checkpoint(&f.id, &cp).unwrap();
    }
    store.delete_flow(&gone.id).unwrap();
    assert!(store.load_flow(&gone.id).unwrap().is_none());
    assert_eq!(load(store, &kept.id).atoms.len(), 1);
    assert_eq!(store.list_flows().unwrap().len(), 1);
    assert!(matches!(
        store.delete_flow(&gone.id),
        Err(StoreError::NotFound { .. })
    ));

    // Nothing of the deleted flow survives into a new flow with the same id.
    store.create_flow(&gone).unwrap();
    let again = load(store, &gone.id);
    assert!(again.atoms.is_empty() && again.retries.is_empty());
}

/// Ids that could name a path (or nothing) are refused by every backend, not just by the one that
/// uses them as file names.
fn unsafe_flow_id_is_refused(store: &dyn Store) {
    for id in [
        "",
        "../escape",
        "a/b",
        "a.json",
        "with space",
        &"x".repeat(129),
    ] {
        let record = FlowRecord {
            id: id.to_owned(),
            ..flow("F")
        };
        assert!(
            matches!(store.create_flow(&record), Err(StoreError::Invalid { .. })),
            "{id:?}"
        );
        assert!(store.load_flow(id).unwrap().is_none());
    }
    assert!(store.list_flows().unwrap().is_empty());
}

/// Checkpoints from several threads into one flow all land (no lost update).
fn concurrent_checkpoints_all_land(store: &dyn Store) {
    let record = flow("F");
    store.create_flow(&record).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let id = &record.id;
            s.spawn(move || {
                for i in 0..10 {
                    let cp = Checkpoint {
                        atoms: vec![atom(&format!("t{t}/s{i}"), StepState::Success)],
                        ..Default::default()
                    };
                    store.checkpoint(id, &cp).unwrap();
                }
            });
        }
    });
    assert_eq!(load(store, &record.id).atoms.len(), 40);
}

/// A flow's recorded structure (nested JSON) comes back as it was written, through checkpoints
/// and listings; a flow without one has `Value::Null`.
fn graph_is_kept_with_the_flow(store: &dyn Store) {
    let graph = json!({
        "name": "Outer", "inputs": ["x"], "outputs": ["y"], "edges": [[0, 1]],
        "steps": [
            { "name": "a", "kind": "task", "requires": ["x"], "provides": ["m"], "subflow": null },
            { "name": "Sub", "kind": "flow", "requires": ["m"], "provides": ["y"],
              "subflow": { "name": "Inner", "inputs": ["m"], "outputs": ["y"], "edges": [],
                           "steps": [{ "name": "b", "kind": "task", "requires": ["m"],
                                       "provides": ["y"], "subflow": null }] } },
        ],
    });
    let with = flow("Outer").with_graph(graph.clone());
    let without = flow("Plain");
    assert_eq!(without.graph, serde_json::Value::Null);
    for f in [&with, &without] {
        store.create_flow(f).unwrap();
    }
    assert_eq!(load(store, &with.id).flow, with);
    assert_eq!(load(store, &without.id).flow, without);

    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("Sub/b", StepState::Running)],
        ..Default::default()
    };
    store.checkpoint(&with.id, &cp).unwrap();
    assert_eq!(load(store, &with.id).flow.graph, graph);
    let listed: Vec<serde_json::Value> = store
        .list_flows()
        .unwrap()
        .into_iter()
        .map(|f| f.graph)
        .collect();
    assert!(listed.contains(&graph) && listed.contains(&serde_json::Value::Null));
}

// ---------------------------------------------------------------------------------------------
// Not backend-specific

#[test]
fn states_serialize_as_their_display_names() {
    use FlowState as F;
    use StepState as S;
    for state in [
        F::Pending,
        F::Running,
        F::Success,
        F::Failure,
        F::Reverting,
        F::Reverted,
        F::Suspending,
        F::Suspended,
        F::Resuming,
    ] {
        let json = serde_json::to_value(state).unwrap();
        assert_eq!(json, json!(state.to_string()));
        assert_eq!(serde_json::from_value::<F>(json).unwrap(), state);
    }
    for state in [
        S::Pending,
        S::Running,
        S::Success,
        S::Failure,
        S::Reverting,
        S::Reverted,
        S::RevertFailure,
        S::Ignore,
        S::Retrying,
    ] {
        let json = serde_json::to_value(state).unwrap();
        assert_eq!(json, json!(state.to_string()));
        assert_eq!(serde_json::from_value::<S>(json).unwrap(), state);
    }
}

#[test]
fn generated_ids_are_unique_across_threads() {
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..5000)
                        .map(|_| taskflow::store::new_flow_id())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn stores_are_usable_as_shared_trait_objects() {
    let (dir_store, _tmp) = dir();
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(MemoryStore::new()), Arc::new(dir_store)];
    for store in stores {
        let record = flow("F");
        let shared = Arc::clone(&store);
        let id = record.id.clone();
        std::thread::spawn(move || shared.create_flow(&record).unwrap())
            .join()
            .unwrap();
        assert!(store.load_flow(&id).unwrap().is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Durable backends: a reopened store holds what the closed one wrote

fn checkpointed(store: &dyn Store) -> StoredFlow {
    let record = flow("F").with_graph(json!({ "name": "F", "steps": [] }));
    store.create_flow(&record).unwrap();
    let cp = Checkpoint {
        flow_state: Some(FlowState::Suspended),
        atoms: vec![AtomRecord {
            result: Some(json!([1, 2, 3])),
            ..atom("a", StepState::Success)
        }],
        retries: vec![
            RetryRecord {
                scope: 0,
                flow: String::new(),
                attempt: 2,
                history: vec![vec![failure("a", "flaky", false)]],
                failure: None,
            },
            RetryRecord {
                scope: 1,
                flow: String::new(),
                attempt: 1,
                history: vec![vec![failure("b", "flaky", false)]],
                failure: Some(failure("retry [b]", "controller exploded", true)),
            },
        ],
        ..Checkpoint::default()
    };
    store.checkpoint(&record.id, &cp).unwrap();
    load(store, &record.id)
}

#[test]
fn dir_reopened_store_resumes_where_it_was() {
    let (store, tmp) = dir();
    let stored = checkpointed(&store);
    drop(store);
    let store = DirStore::open(tmp.0.join("flows")).unwrap();
    assert_eq!(load(&store, &stored.flow.id), stored);
}

#[test]
fn sqlite_reopened_store_resumes_where_it_was() {
    let (store, tmp) = sqlite();
    let stored = checkpointed(&store);
    drop(store);
    let store = SqliteStore::open(tmp.0.join("flows.db")).unwrap();
    assert_eq!(load(&store, &stored.flow.id), stored);
}

// ---------------------------------------------------------------------------------------------
// DirStore

fn flow_file(store: &DirStore, id: &str) -> PathBuf {
    store.path().join(format!("{id}.json"))
}

/// The file is readable JSON with its format version, the flow, its atoms and retries, each
/// record with its checksum (`"sum"`, 16 hex digits) as its last key.
#[test]
fn dir_file_is_versioned_json() {
    let (store, _tmp) = dir();
    let stored = checkpointed(&store);
    let text = fs::read_to_string(flow_file(&store, &stored.flow.id)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["format"], 2);
    let records = [
        &value["flow"],
        &value["atoms"][0],
        &value["retries"][0],
        &value["retries"][1],
    ];
    for record in records {
        let sum = record["sum"].as_str().unwrap();
        assert!(
            sum.len() == 16 && sum.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sum}"
        );
    }
    assert!(
        text.contains("\"is_panic\": true\n      },\n      \"sum\": \""),
        "{text}"
    );
    assert_eq!(value["flow"]["state"], "SUSPENDED");
    assert_eq!(value["atoms"][0]["result"], json!([1, 2, 3]));
    assert_eq!(value["retries"][0]["history"][0][0]["message"], "flaky");
    // A retry record whose controller did not fail has no `failure` key: files stay as an
    // older taskflow wrote them.
    assert!(value["retries"][0].get("failure").is_none(), "{text}");
    assert_eq!(
        value["retries"][1]["failure"]["message"],
        "controller exploded"
    );
    assert_eq!(value["retries"][1]["failure"]["is_panic"], true);
}

/// A file written before flows recorded their graph (no `graph` key) loads with `Value::Null`,
/// its retry records (no `flow` or `failure` key) with the run's own flow and no controller
/// failure, and checkpoints go on.
#[test]
fn dir_file_without_a_graph_loads() {
    let (store, _tmp) = dir();
    let old = r#"{
  "format": 1,
  "flow": {
    "id": "old-run",
    "logbook": "nightly",
    "flow_name": "BootVm",
    "fingerprint": "fp-1",
    "state": "RUNNING",
    "inputs": { "image": "debian" },
    "created_at": 1700000000000,
    "updated_at": 1700000061000
  },
  "atoms": [
    { "name": "launch", "state": "SUCCESS", "attempt": 1, "result": "srv-1", "failure": null,
      "revert_failure": null, "progress": 1.0, "started_at": 1700000000000,
      "finished_at": 1700000001000 }
  ],
  "retries": [ { "scope": 0, "attempt": 2, "history": [] } ]
}"#;
    fs::write(flow_file(&store, "old-run"), old).unwrap();
    let stored = load(&store, "old-run");
    assert_eq!(stored.flow.graph, serde_json::Value::Null);
    assert_eq!(
        (stored.flow.flow_name.as_str(), stored.flow.state),
        ("BootVm", FlowState::Running)
    );
    assert_eq!(stored.atom("launch").unwrap().result, Some(json!("srv-1")));
    assert_eq!(
        stored.retries,
        [RetryRecord {
            scope: 0,
            flow: String::new(),
            attempt: 2,
            history: vec![],
            failure: None,
        }]
    );
    assert_eq!(
        store.list_flows().unwrap(),
        std::slice::from_ref(&stored.flow)
    );

    let cp = Checkpoint {
        flow_state: Some(FlowState::Success),
        ..Default::default()
    };
    store.checkpoint("old-run", &cp).unwrap();
    let after = load(&store, "old-run");
    assert_eq!(after.flow.state, FlowState::Success);
    assert_eq!(after.atoms, stored.atoms);
}

/// A truncated file and a file of garbage are each `Corrupt` naming the file; other flows still
/// load; `list_flows` lists the good flows and `scan` also reports the bad ones, by name; a checkpoint of a corrupt flow is refused and does not overwrite the file.
#[test]
fn dir_corrupt_files_are_named_and_left_alone() {
    let (store, _tmp) = dir();
    let (truncated, garbage, good) = (flow("Truncated"), flow("Garbage"), flow("Good"));
    for f in [&truncated, &garbage, &good] {
        store.create_flow(f).unwrap();
    }
    let truncated_path = flow_file(&store, &truncated.id);
    let full = fs::read(&truncated_path).unwrap();
    fs::write(&truncated_path, &full[..full.len() / 2]).unwrap();
    let garbage_path = flow_file(&store, &garbage.id);
    fs::write(&garbage_path, "\0\0 not json at all").unwrap();

    let names_file = |e: &StoreError, path: &Path| match e {
        StoreError::Corrupt { what, .. } => what.contains(&path.display().to_string()),
        _ => false,
    };
    for (f, path) in [(&truncated, &truncated_path), (&garbage, &garbage_path)] {
        let e = store.load_flow(&f.id).unwrap_err();
        assert!(names_file(&e, path), "{e}");
    }
    assert_eq!(load(&store, &good.id).flow, good);

    // Unreadable files do not hide the readable runs (`scan` names them).
    assert_eq!(store.list_flows().unwrap(), std::slice::from_ref(&good));
    let scan = store.scan().unwrap();
    assert_eq!(scan.flows, [good]);
    assert_eq!(scan.errors.len(), 2);
    assert!(scan.errors.iter().any(|e| names_file(e, &truncated_path)));
    assert!(scan.errors.iter().any(|e| names_file(e, &garbage_path)));

    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        ..Default::default()
    };
    assert!(matches!(
        store.checkpoint(&truncated.id, &cp),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&truncated_path).unwrap(), &full[..full.len() / 2]);
}

/// A file that is valid JSON but not a flow, or holds another flow than its name says, is
/// `Corrupt`; a file from a newer format is `SchemaTooNew`. Stray files are ignored by listings.
#[test]
fn dir_wrong_content_and_newer_format_are_refused() {
    let (store, _tmp) = dir();
    let f = flow("F");
    store.create_flow(&f).unwrap();
    let path = flow_file(&store, &f.id);
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();

    let mut newer = original.clone();
    newer["format"] = json!(3);
    fs::write(&path, newer.to_string()).unwrap();
    assert!(matches!(
        store.load_flow(&f.id),
        Err(StoreError::SchemaTooNew {
            found: 3,
            supported: 2
        })
    ));

    let mut no_format = original.clone();
    no_format.as_object_mut().unwrap().remove("format");
    let mut bad_state = original.clone();
    bad_state["flow"]["state"] = json!("HALF_DONE");
    for bad in [no_format, bad_state, json!({ "format": 1 }), json!([1, 2])] {
        fs::write(&path, bad.to_string()).unwrap();
        assert!(
            matches!(store.load_flow(&f.id), Err(StoreError::Corrupt { .. })),
            "{bad}"
        );
    }

    // The right content under another flow's name.
    fs::write(&path, original.to_string()).unwrap();
    let other = store.path().join("other-id.json");
    fs::copy(&path, &other).unwrap();
    match store.load_flow("other-id") {
        Err(StoreError::Corrupt { detail, .. }) => assert!(detail.contains(&f.id), "{detail}"),
        r => panic!("expected Corrupt, got {r:?}"),
    }
    fs::remove_file(other).unwrap();

    fs::write(store.path().join("notes.txt"), "not a flow").unwrap();
    fs::write(store.path().join(format!("{}.json.tmp", f.id)), "{").unwrap();
    assert_eq!(store.list_flows().unwrap(), [f]);
}

/// A checkpoint whose write fails (here: its temp file cannot be created, because a directory
/// stands in its place — an injection that works even as root) returns an `Io` error naming the
/// file and leaves the previous checkpoint in place; once the obstacle is gone the run goes on.
/// What this proves: a failed write never replaces the flow's file. (A crash between the temp
/// file's write and the rename is covered by the same construction but is not simulated.)
#[test]
fn dir_failed_write_keeps_previous_file() {
    let (store, _tmp) = dir();
    let stored = checkpointed(&store);
    let id = &stored.flow.id;
    let before = fs::read(flow_file(&store, id)).unwrap();
    let blocker = store
        .path()
        .join(format!("{id}.json.{}.tmp", std::process::id()));
    fs::create_dir(&blocker).unwrap();

    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("a", StepState::Running), atom("b", StepState::Running)],
        ..Default::default()
    };
    match store.checkpoint(id, &cp) {
        Err(StoreError::Io { path, .. }) => assert_eq!(path, blocker),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(fs::read(flow_file(&store, id)).unwrap(), before);
    assert_eq!(load(&store, id), stored);

    fs::remove_dir(&blocker).unwrap();
    store.checkpoint(id, &cp).unwrap();
    assert_eq!(load(&store, id).flow.state, FlowState::Running);
}

/// A read-only directory: the checkpoint fails with `Io` and the run is as it was. The store is
/// opened through a bind mount that is then made read-only (root ignores directory permissions,
/// so a `0o555` directory would not do).
#[test]
fn dir_read_only_directory_fails_cleanly() {
    let tmp = TempDir::new();
    let real = tmp.path().join("real");
    fs::create_dir_all(&real).unwrap();
    let Some(view) = Mount::new(
        &["--bind", real.to_str().unwrap()],
        &tmp.path().join("view"),
    ) else {
        return;
    };
    let store = DirStore::open(&view.0).unwrap();
    let stored = checkpointed(&store);
    let id = &stored.flow.id;
    view.remount("remount,bind,ro");
    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        ..Default::default()
    };
    let result = store.checkpoint(id, &cp);
    let after = store.load_flow(id);
    view.remount("remount,bind,rw");
    assert!(
        matches!(&result, Err(StoreError::Io { source, .. }) if source.raw_os_error() == Some(30)),
        "{result:?}"
    );
    assert_eq!(after.unwrap().unwrap(), stored);
    store.checkpoint(id, &cp).unwrap();
}

// ---------------------------------------------------------------------------------------------
// SqliteStore

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// Two handles of one database writing the same run in turn (as two processes of one owner
/// would, or one process that reopened its store): each checkpoint replaces rows the other
/// handle wrote last, and every load verifies — a handle does not reuse what it remembers of
/// the run once another wrote to it.
#[test]
fn sqlite_two_handles_writing_one_run_in_turn_keep_it_verified() {
    let (a, tmp) = sqlite();
    let b = SqliteStore::open(tmp.0.join("flows.db")).unwrap();
    let flow = FlowRecord::new("book", "Flow", "fp", json!({ "n": 1 }));
    a.create_flow(&flow).unwrap();
    let step = |name: &str, state, runs| AtomRecord {
        state,
        runs,
        ..AtomRecord::new(name)
    };
    let retry = |attempt| RetryRecord {
        scope: 0,
        flow: String::new(),
        attempt,
        history: Vec::new(),
        failure: None,
    };
    let writes = [
        (&a, StepState::Pending, 0),
        (&a, StepState::Running, 1),
        (&b, StepState::Success, 1),
        (&a, StepState::Running, 2),
        (&a, StepState::Failure, 2),
        (&b, StepState::Reverted, 2),
        (&b, StepState::Running, 3),
        (&a, StepState::Success, 3),
    ];
    for (n, (store, state, runs)) in writes.into_iter().enumerate() {
        let attempt = u32::try_from(n).unwrap() + 1;
        let cp = Checkpoint {
            atoms: vec![
                step("one", state, runs),
                step("two", StepState::Pending, n as u32),
            ],
            retries: vec![retry(attempt)],
            ..Default::default()
        };
        store.checkpoint(&flow.id, &cp).unwrap();
        for reader in [&a, &b] {
            let stored = reader.load_flow(&flow.id).unwrap().unwrap();
            assert_eq!(stored.atom("one").unwrap().state, state, "write {n}");
            assert_eq!(stored.atom("two").unwrap().runs, n as u32, "write {n}");
            assert_eq!(stored.retries[0].attempt, attempt, "write {n}");
        }
    }
    let fresh = SqliteStore::open(tmp.0.join("flows.db")).unwrap();
    assert_eq!(
        fresh
            .load_flow(&flow.id)
            .unwrap()
            .unwrap()
            .atom("one")
            .unwrap()
            .state,
        StepState::Success
    );
}

/// A run's `flows` row damaged between two checkpoints is never sealed anew. A handle that did
/// not write the run's last checkpoint reads and verifies the row, and refuses a damaged one,
/// writing nothing. The handle that did write it last does not read the row again (it knows
/// what it committed): its checkpoint writes the columns it changes and their checksum as it
/// committed them, so a damaged column it does not write still fails the checksum at every load.
#[test]
fn sqlite_a_damaged_flows_row_is_never_sealed_by_a_checkpoint() {
    let (store, tmp) = sqlite();
    let flow = FlowRecord::new("book", "Flow", "fp", json!(null));
    store.create_flow(&flow).unwrap();
    let cp = |state| Checkpoint {
        atoms: vec![AtomRecord {
            state,
            ..AtomRecord::new("one")
        }],
        ..Default::default()
    };
    let edit = || {
        raw(store.path())
            .execute(
                "UPDATE flows SET fingerprint = 'edited' WHERE id = ?1",
                [&flow.id],
            )
            .unwrap()
    };
    let stored_state = || -> String {
        raw(store.path())
            .query_row("SELECT state FROM atoms WHERE name = 'one'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    store.checkpoint(&flow.id, &cp(StepState::Running)).unwrap();
    edit();
    assert!(matches!(
        store.load_flow(&flow.id),
        Err(StoreError::Corrupt { .. })
    ));
    // The writer of the last checkpoint: the damage stays detected.
    store.checkpoint(&flow.id, &cp(StepState::Success)).unwrap();
    match store.load_flow(&flow.id) {
        Err(StoreError::Corrupt { what, .. }) => assert!(what.contains("flows row"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_state(), "SUCCESS");

    // Another handle: refused, naming the row, and nothing is written.
    let other = SqliteStore::open(tmp.0.join("flows.db")).unwrap();
    edit();
    for (n, state) in [StepState::Failure, StepState::Reverted]
        .into_iter()
        .enumerate()
    {
        match other.checkpoint(&flow.id, &cp(state)) {
            Err(StoreError::Corrupt { what, .. }) => {
                assert!(what.contains("flows row"), "{n}: {what}")
            }
            other => panic!("{n}: {other:?}"),
        }
    }
    assert_eq!(stored_state(), "SUCCESS");
}

/// A new database gets WAL and schema version 5, which has the `graphs` table (version 2),
/// `retries.failure` (version 3), the lease columns (version 4) and the checksums (version 5).
#[test]
fn sqlite_new_database_is_wal_with_schema_version_5() {
    let (store, _tmp) = sqlite();
    let conn = raw(store.path());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: u32 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    assert!(has_graphs_table(store.path()));
    assert!(has_retry_failures(store.path()));
    assert!(has_leases(store.path()));
    assert!(has_checksums(store.path()));
}

/// Whether the database at `path` has the checksum columns of version 5: `sum` in `flows`,
/// `atoms` and `retries`, and `flows.graph_sum` and `flows.tally`.
fn has_checksums(path: &Path) -> bool {
    holds(
        path,
        "SELECT (SELECT count(*) FROM pragma_table_info('flows') \
                 WHERE name IN ('sum', 'graph_sum', 'tally')) = 3 \
            AND (SELECT count(*) FROM pragma_table_info('atoms') WHERE name = 'sum') = 1 \
            AND (SELECT count(*) FROM pragma_table_info('retries') WHERE name = 'sum') = 1",
    )
}

/// Whether the database at `path` has the `flows.epoch`, `flows.lease` and `atoms.runs` columns
/// of version 4.
fn has_leases(path: &Path) -> bool {
    holds(
        path,
        "SELECT (SELECT count(*) FROM pragma_table_info('flows') \
                 WHERE name IN ('epoch', 'lease')) = 2 \
            AND (SELECT count(*) FROM pragma_table_info('atoms') WHERE name = 'runs') = 1",
    )
}

/// Whether the database at `path` has the `graphs` table of version 2.
fn has_graphs_table(path: &Path) -> bool {
    holds(
        path,
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'graphs'",
    )
}

/// Whether the query `sql` (one boolean) holds for the database at `path`.
fn holds(path: &Path, sql: &str) -> bool {
    raw(path).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Whether the database at `path` has the `retries.failure` column of version 3.
fn has_retry_failures(path: &Path) -> bool {
    holds(
        path,
        "SELECT count(*) > 0 FROM pragma_table_info('retries') WHERE name = 'failure'",
    )
}

fn schema_version(path: &Path) -> u32 {
    raw(path)
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap()
}

/// The schema of version 1, as taskflow 0.1 created it: a frozen copy, so that these tests keep
/// making real version-1 databases whatever the library's schema becomes.
const SCHEMA_V1: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE flows (
    id          TEXT PRIMARY KEY NOT NULL,
    logbook     TEXT NOT NULL,
    flow_name   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE atoms (
    id             INTEGER PRIMARY KEY,
    flow_id        TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    result         TEXT,
    failure        TEXT,
    revert_failure TEXT,
    progress       REAL NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    UNIQUE (flow_id, name)
);
CREATE TABLE retries (
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    scope   INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (flow_id, scope)
);
INSERT INTO schema_version (version) VALUES (1);
";

/// A version-1 database at `path` as taskflow 0.1 left it (WAL, closed), holding one suspended
/// run with two steps and a retry record; returns that run as it must load.
fn version_1_database(path: &Path) -> StoredFlow {
    let conn = raw(path);
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute_batch(
        r#"
        INSERT INTO flows VALUES ('v1-run', 'nightly', 'BootVm', 'fp-1', 'SUSPENDED',
            '{"image":"debian"}', 1700000000000, 1700000061000);
        INSERT INTO atoms (flow_id, name, state, attempt, result, failure, revert_failure,
                           progress, started_at, finished_at)
        VALUES ('v1-run', 'launch', 'SUCCESS', 1, '"srv-1"', NULL, NULL, 1.0,
                1700000000000, 1700000001000),
               ('v1-run', 'Storage/attach', 'FAILURE', 2, NULL,
                '{"step":"Storage/attach","message":"busy","is_panic":false}', NULL, 0.5,
                1700000002000, NULL);
        INSERT INTO retries VALUES ('v1-run', 0, 2,
            '[[{"step":"Storage/attach","message":"busy","is_panic":false}]]');
        "#,
    )
    .unwrap();
    drop(conn);
    StoredFlow {
        flow: FlowRecord {
            id: "v1-run".into(),
            logbook: "nightly".into(),
            flow_name: "BootVm".into(),
            fingerprint: "fp-1".into(),
            state: FlowState::Suspended,
            inputs: json!({ "image": "debian" }),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_061_000,
            graph: serde_json::Value::Null,
            epoch: 0,
            lease: None,
        },
        atoms: vec![
            AtomRecord {
                result: Some(json!("srv-1")),
                progress: 1.0,
                started_at: Some(1_700_000_000_000),
                finished_at: Some(1_700_000_001_000),
                ..atom("launch", StepState::Success)
            },
            AtomRecord {
                attempt: 2,
                failure: Some(failure("Storage/attach", "busy", false)),
                progress: 0.5,
                started_at: Some(1_700_000_002_000),
                ..atom("Storage/attach", StepState::Failure)
            },
        ],
        retries: vec![RetryRecord {
            scope: 0,
            flow: String::new(),
            attempt: 2,
            history: vec![vec![failure("Storage/attach", "busy", false)]],
            failure: None,
        }],
    }
}

/// `open` migrates a version-1 database to version 5 (every migration, in one transaction): every
/// flow, atom and retry record is intact, the flows have no graph, the retry records no
/// controller failure, and the store works on (checkpoints, new flows with a graph, reopening).
#[test]
fn sqlite_version_1_database_is_migrated_by_open() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v1.db");
    let expected = version_1_database(&path);
    assert_eq!(schema_version(&path), 1);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert!(has_graphs_table(&path));
    assert!(has_retry_failures(&path));
    assert_eq!(load(&store, "v1-run"), expected);
    assert_eq!(
        store.list_flows().unwrap(),
        std::slice::from_ref(&expected.flow)
    );

    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![atom("Storage/attach", StepState::Running)],
        ..Default::default()
    };
    store.checkpoint("v1-run", &cp).unwrap();
    let after = load(&store, "v1-run");
    assert_eq!(after.flow.state, FlowState::Running);
    assert_eq!(after.atoms[0], expected.atoms[0]);
    assert_eq!(after.atoms[1], atom("Storage/attach", StepState::Running));
    assert_eq!(after.flow.graph, serde_json::Value::Null);

    // Retry scopes of sub-flows are kept apart from the flow's own (a version 2 key), and keep
    // their controller's failure (version 3).
    let sub_retry = RetryRecord {
        scope: 0,
        flow: "Storage".into(),
        attempt: 4,
        history: Vec::new(),
        failure: Some(failure("retry [attach]", "controller exploded", true)),
    };
    let cp = Checkpoint {
        retries: vec![sub_retry.clone()],
        ..Default::default()
    };
    store.checkpoint("v1-run", &cp).unwrap();
    let after = load(&store, "v1-run");
    assert_eq!(after.retries.len(), expected.retries.len() + 1);
    assert_eq!(after.retries.last(), Some(&sub_retry));
    assert!(expected.retries.iter().all(|r| after.retries.contains(r)));

    let new = flow("New").with_graph(json!({ "name": "New", "steps": [] }));
    store.create_flow(&new).unwrap();
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert_eq!(load(&again, &new.id).flow, new);
    assert_eq!(load(&again, "v1-run"), after);
}

/// `open_read_only` reads a version-1 database as it is: flows with no graph, and nothing written
/// (the version stays 1, no column is added, the file is byte for byte the same).
#[test]
fn sqlite_version_1_database_is_read_by_open_read_only() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v1.db");
    let expected = version_1_database(&path);
    let before = fs::read(&path).unwrap();

    let store = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(load(&store, "v1-run"), expected);
    assert_eq!(
        store.list_flows().unwrap(),
        std::slice::from_ref(&expected.flow)
    );
    assert!(store.checkpoint("v1-run", &Checkpoint::default()).is_err());
    drop(store);

    assert_eq!(schema_version(&path), 1);
    assert!(!has_graphs_table(&path));
    assert!(!has_retry_failures(&path));
    assert_eq!(fs::read(&path).unwrap(), before);
}

/// The migration is one transaction: when its last statement fails (here a trigger refuses the
/// version bump, after the column was added), nothing of it stays and the database is still a
/// readable version 1; once the obstacle is gone, `open` migrates it.
#[test]
fn sqlite_failed_migration_changes_nothing() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v1.db");
    let expected = version_1_database(&path);
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER no_bump BEFORE UPDATE ON schema_version
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    match SqliteStore::open(&path) {
        Err(e @ StoreError::Sqlite { .. }) => assert!(e.to_string().contains("injected failure")),
        other => panic!("expected Sqlite, got {other:?}"),
    }
    assert_eq!(schema_version(&path), 1);
    assert!(!has_graphs_table(&path));
    assert!(!has_retry_failures(&path));
    assert_eq!(
        load(&SqliteStore::open_read_only(&path).unwrap(), "v1-run"),
        expected
    );

    raw(&path).execute_batch("DROP TRIGGER no_bump").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert_eq!(load(&store, "v1-run"), expected);
}

/// The schema of version 2, as taskflow created it (version 1, then the migration to 2): a frozen
/// copy, like [`SCHEMA_V1`].
const MIGRATION_V1_TO_V2: &str = "
CREATE TABLE graphs (
    flow_id TEXT PRIMARY KEY NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    graph   TEXT NOT NULL
);
CREATE TABLE retries_v2 (
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    flow    TEXT NOT NULL DEFAULT '',
    scope   INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (flow_id, flow, scope)
);
INSERT INTO retries_v2 (flow_id, flow, scope, attempt, history)
    SELECT flow_id, '', scope, attempt, history FROM retries;
DROP TABLE retries;
ALTER TABLE retries_v2 RENAME TO retries;
UPDATE schema_version SET version = 2;
";

/// A version-2 database at `path` as the previous taskflow left it (WAL, closed): the run of
/// [`version_1_database`] with a graph and a sub-flow's retry record; returns it as it must
/// load.
fn version_2_database(path: &Path) -> StoredFlow {
    let mut expected = version_1_database(path);
    raw(path).execute_batch(MIGRATION_V1_TO_V2).unwrap();
    raw(path)
        .execute_batch(
            r#"
            INSERT INTO graphs VALUES ('v1-run', '{"name":"BootVm","steps":[]}');
            INSERT INTO retries VALUES ('v1-run', 'Storage', 1, 3,
                '[[{"step":"attach","message":"gone","is_panic":true}]]');
            "#,
        )
        .unwrap();
    expected.flow.graph = json!({ "name": "BootVm", "steps": [] });
    expected.retries.push(RetryRecord {
        scope: 1,
        flow: "Storage".into(),
        attempt: 3,
        history: vec![vec![failure("attach", "gone", true)]],
        failure: None,
    });
    expected
}

/// `open` migrates a version-2 database to version 5: everything is intact (its retry records
/// have no controller failure), and a controller's failure can then be recorded and read back,
/// also after reopening.
#[test]
fn sqlite_version_2_database_is_migrated_by_open() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v2.db");
    let expected = version_2_database(&path);
    assert_eq!(schema_version(&path), 2);
    assert!(!has_retry_failures(&path));

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert!(has_retry_failures(&path));
    assert_eq!(load(&store, "v1-run"), expected);

    let failed = RetryRecord {
        failure: Some(failure("retry [attach]", "controller exploded", true)),
        ..expected.retries[1].clone()
    };
    let cp = Checkpoint {
        retries: vec![failed.clone()],
        ..Default::default()
    };
    store.checkpoint("v1-run", &cp).unwrap();
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(
        load(&again, "v1-run").retries,
        [expected.retries[0].clone(), failed.clone()]
    );
    // Written again without it, the record has none.
    let cp = Checkpoint {
        retries: vec![expected.retries[1].clone()],
        ..Default::default()
    };
    again.checkpoint("v1-run", &cp).unwrap();
    let after = load(&again, "v1-run");
    assert_eq!(
        (after.atoms, after.retries),
        (expected.atoms, expected.retries)
    );
}

/// `open_read_only` reads a version-2 database as it is: its retry records without a controller
/// failure, nothing written (the version stays 2, no column is added, the file is byte for byte
/// the same).
#[test]
fn sqlite_version_2_database_is_read_by_open_read_only() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v2.db");
    let expected = version_2_database(&path);
    let before = fs::read(&path).unwrap();

    let store = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(load(&store, "v1-run"), expected);
    assert!(store.checkpoint("v1-run", &Checkpoint::default()).is_err());
    drop(store);

    assert_eq!(schema_version(&path), 2);
    assert!(!has_retry_failures(&path));
    assert_eq!(fs::read(&path).unwrap(), before);
}

/// The migration from version 2 is one transaction too: a refused version bump leaves a
/// readable version 2 without the new column.
#[test]
fn sqlite_failed_migration_from_version_2_changes_nothing() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v2.db");
    let expected = version_2_database(&path);
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER no_bump BEFORE UPDATE ON schema_version
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Sqlite { .. })
    ));
    assert_eq!(schema_version(&path), 2);
    assert!(!has_retry_failures(&path));
    assert_eq!(
        load(&SqliteStore::open_read_only(&path).unwrap(), "v1-run"),
        expected
    );

    raw(&path).execute_batch("DROP TRIGGER no_bump").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert_eq!(load(&store, "v1-run"), expected);
}

/// Versions 2 to 4, as taskflow migrated them: a frozen copy, like [`SCHEMA_V1`].
const MIGRATION_V2_TO_V4: &str = "
ALTER TABLE retries ADD COLUMN failure TEXT;
ALTER TABLE flows ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN lease TEXT;
ALTER TABLE atoms ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
UPDATE schema_version SET version = 4;
";

/// A version-4 database at `path` (the last before checksums), as the previous taskflow left it:
/// the run of [`version_2_database`] with a step that ran twice and a retry controller's
/// failure; returns it as it must load.
fn version_4_database(path: &Path) -> StoredFlow {
    let mut expected = version_2_database(path);
    raw(path).execute_batch(MIGRATION_V2_TO_V4).unwrap();
    raw(path)
        .execute_batch(
            r#"
            UPDATE flows SET epoch = 3;
            UPDATE atoms SET runs = 2 WHERE name = 'launch';
            UPDATE retries SET failure = '{"step":"retry [attach]","message":"boom","is_panic":true}'
                WHERE flow = 'Storage';
            "#,
        )
        .unwrap();
    expected.flow.epoch = 3;
    expected.atoms[0].runs = 2;
    expected.retries[1].failure = Some(failure("retry [attach]", "boom", true));
    expected
}

/// `open` migrates a version-4 database to version 5 and gives every row its checksum in the
/// migration (a version-5 row without one is corrupt): the run loads as it was, and a row
/// edited afterwards fails its checksum. `open_read_only` reads a version-4 database as it is,
/// without checksums, and writes nothing.
#[test]
fn sqlite_version_4_database_gets_checksums_when_migrated() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v4.db");
    let expected = version_4_database(&path);
    assert_eq!(schema_version(&path), 4);
    let before = fs::read(&path).unwrap();
    assert_eq!(
        load(&SqliteStore::open_read_only(&path).unwrap(), "v1-run"),
        expected
    );
    assert_eq!(fs::read(&path).unwrap(), before);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(schema_version(&path), 5);
    assert!(has_checksums(&path));
    let unsealed: i64 = raw(&path)
        .query_row(
            "SELECT (SELECT count(*) FROM flows WHERE sum IS NULL OR tally IS NULL \
                        OR graph_sum IS NULL) \
                  + (SELECT count(*) FROM atoms WHERE sum IS NULL) \
                  + (SELECT count(*) FROM retries WHERE sum IS NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unsealed, 0);
    assert_eq!(load(&store, "v1-run"), expected);
    drop(store);
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(load(&again, "v1-run"), expected);

    raw(&path)
        .execute_batch("UPDATE atoms SET state = 'PENDING' WHERE name = 'launch'")
        .unwrap();
    match again.load_flow("v1-run") {
        Err(StoreError::Corrupt { what, detail }) => {
            assert!(what.contains("name=\"launch\""), "{what}");
            assert!(detail.contains("checksum does not match"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Version 6 is newer than this taskflow: both opens refuse it and leave it alone.
#[test]
fn sqlite_version_6_is_too_new_for_both_opens() {
    let tmp = TempDir::new();
    let path = tmp.0.join("v6.db");
    version_1_database(&path);
    raw(&path)
        .execute_batch("UPDATE schema_version SET version = 6")
        .unwrap();
    let before = fs::read(&path).unwrap();
    for opened in [SqliteStore::open(&path), SqliteStore::open_read_only(&path)] {
        assert!(
            matches!(
                opened,
                Err(StoreError::SchemaTooNew {
                    found: 6,
                    supported: 5
                })
            ),
            "{opened:?}"
        );
    }
    assert_eq!(fs::read(&path).unwrap(), before);
}

/// A database written by a newer taskflow (schema_version 99) is refused with `SchemaTooNew`,
/// and the file is byte for byte as it was, with no WAL file left beside it.
#[test]
fn sqlite_newer_schema_is_refused_and_untouched() {
    let tmp = TempDir::new();
    let path = tmp.0.join("newer.db");
    {
        let conn = raw(&path);
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (99);
             CREATE TABLE flows (id TEXT, shape_of_the_future BLOB);",
        )
        .unwrap();
    }
    let before = fs::read(&path).unwrap();
    match SqliteStore::open(&path) {
        Err(e @ StoreError::SchemaTooNew { .. }) => {
            assert!(matches!(
                e,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: 5
                }
            ));
            assert!(e.to_string().contains("upgrade taskflow"), "{e}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists());
}

/// Invalid JSON, an unknown state or a wrongly typed value in a row is `Corrupt` naming the table,
/// the row and the column; other flows still load.
#[test]
fn sqlite_bad_rows_are_corrupt_naming_the_row() {
    let (store, _tmp) = sqlite();
    let stored = checkpointed(&store);
    let good = checkpointed(&store);
    let id = &stored.flow.id;
    let conn = raw(store.path());
    let cases = [
        (
            "atoms",
            "result",
            "'{not json'",
            "name = 'a'",
            vec!["atoms", "\"a\"", "result"],
        ),
        (
            "atoms",
            "state",
            "'HALF_DONE'",
            "name = 'a'",
            vec!["atoms", "\"a\"", "state"],
        ),
        (
            "atoms",
            "attempt",
            "-1",
            "name = 'a'",
            vec!["atoms", "attempt"],
        ),
        (
            "atoms",
            "progress",
            "'lots'",
            "name = 'a'",
            vec!["atoms", "progress"],
        ),
        (
            "retries",
            "history",
            "'[[{'",
            "scope = 0",
            vec!["retries", "history"],
        ),
        (
            "retries",
            "failure",
            "'{\"step\": 1}'",
            "scope = 1",
            vec!["retries", "scope=Some(1)", "failure"],
        ),
        (
            "flows",
            "inputs",
            "'{'",
            "id = ?1",
            vec!["flows", id.as_str(), "inputs"],
        ),
        (
            "graphs",
            "graph",
            "'{\"name\": '",
            "1 = 1",
            vec!["flows", id.as_str(), "graphs.graph"],
        ),
    ];
    for (table, column, bad, row, names) in cases {
        let key = if table == "flows" { "id" } else { "flow_id" };
        let (good_value, rowid): (rusqlite::types::Value, i64) = conn
            .query_row(
                &format!("SELECT {column}, rowid FROM {table} WHERE {key} = ?1 AND {row}"),
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        conn.execute(
            &format!("UPDATE {table} SET {column} = {bad} WHERE rowid = {rowid}"),
            [],
        )
        .unwrap();
        match store.load_flow(id) {
            Err(StoreError::Corrupt { what, .. }) => {
                for name in names {
                    assert!(what.contains(name), "{what} should name {name}");
                }
            }
            other => panic!("{table}.{column} = {bad}: expected Corrupt, got {other:?}"),
        }
        if table == "flows" {
            assert!(matches!(
                store.list_flows(),
                Err(StoreError::Corrupt { .. })
            ));
        }
        assert_eq!(load(&store, &good.flow.id), good);
        conn.execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = {rowid}"),
            [good_value],
        )
        .unwrap();
        assert_eq!(load(&store, id), stored);
    }
}

/// A checkpoint whose second write fails inside SQLite (a trigger aborts the insert of atom `b`,
/// after the flow's state and atom `a` were written in the same transaction) returns a `Sqlite`
/// error and leaves nothing of itself: what this proves is that a checkpoint is one transaction
/// that is rolled back on any error. Without the trigger the same checkpoint goes through.
#[test]
fn sqlite_failed_write_rolls_back() {
    let (store, _tmp) = sqlite();
    let stored = checkpointed(&store);
    let id = &stored.flow.id;
    let conn = raw(store.path());
    conn.execute_batch(
        "CREATE TRIGGER fail_b BEFORE INSERT ON atoms WHEN NEW.name = 'b'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();

    let cp = Checkpoint {
        flow_state: Some(FlowState::Failure),
        atoms: vec![
            AtomRecord {
                failure: Some(failure("a", "late", false)),
                ..atom("a", StepState::Failure)
            },
            atom("b", StepState::Running),
        ],
        retries: vec![],
        ..Checkpoint::default()
    };
    match store.checkpoint(id, &cp) {
        Err(e @ StoreError::Sqlite { .. }) => assert!(e.to_string().contains("injected failure")),
        other => panic!("expected Sqlite, got {other:?}"),
    }
    assert_eq!(load(&store, id), stored);

    conn.execute_batch("DROP TRIGGER fail_b").unwrap();
    store.checkpoint(id, &cp).unwrap();
    let after = load(&store, id);
    assert_eq!(after.flow.state, FlowState::Failure);
    assert_eq!(after.atoms.len(), 2);
}

/// A file that is not an SQLite database is `Corrupt` naming the file, and is not overwritten.
#[test]
fn sqlite_not_a_database_is_corrupt() {
    let tmp = TempDir::new();
    let path = tmp.0.join("notes.db");
    let text = "these are my notes, not a database. ".repeat(100);
    fs::write(&path, &text).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt { what, .. }) => assert!(what.contains("notes.db"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

/// Two stores on one file (as two processes would be) see each other's writes.
#[test]
fn sqlite_two_connections_share_the_file() {
    let (first, tmp) = sqlite();
    let second = SqliteStore::open(tmp.0.join("flows.db")).unwrap();
    let stored = checkpointed(&first);
    assert_eq!(load(&second, &stored.flow.id), stored);
    second.delete_flow(&stored.flow.id).unwrap();
    assert!(first.load_flow(&stored.flow.id).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// A full disk (a small tmpfs: needs root, or a small file system named by TASKFLOW_TEST_SMALL_FS)

/// Checkpoints growing a run until the file system is full: the failing checkpoint is an `Io`
/// (directory) or `Sqlite` (database) error, the run loads as the last successful checkpoint left
/// it — also after reopening the store — and once space is freed the run goes on.
///
/// The small file system is a 1 MiB tmpfs the test mounts (as root, like CI), or the directory
/// `TASKFLOW_TEST_SMALL_FS` names, e.g. on Linux without root:
/// `unshare -rm sh -c 'mkdir -p /tmp/small && mount -t tmpfs -o size=1m tmpfs /tmp/small &&
/// TASKFLOW_TEST_SMALL_FS=/tmp/small cargo test --test store full_disk'`.
#[test]
fn full_disk_checkpoint_fails_cleanly() {
    let tmp = TempDir::new();
    let mount;
    let small = match std::env::var_os("TASKFLOW_TEST_SMALL_FS") {
        Some(small) => PathBuf::from(small),
        None => {
            let Some(m) = Mount::new(
                &["-t", "tmpfs", "-o", "size=1m", "tmpfs"],
                &tmp.path().join("small"),
            ) else {
                return;
            };
            mount = m;
            mount.0.clone()
        }
    };
    let ballast = small.join(format!("ballast-{}", std::process::id()));
    type Open = fn(&Path) -> Box<dyn Store>;
    let backends: [(&str, Open); 2] = [
        ("dir", |p| Box::new(DirStore::open(p).unwrap())),
        ("sqlite", |p| {
            Box::new(SqliteStore::open(p.join("flows.db")).unwrap())
        }),
    ];
    for (name, open) in backends {
        let root = small.join(format!("{name}-{}", taskflow::store::new_flow_id()));
        fs::create_dir_all(&root).unwrap();
        let store = open(&root);
        let record = flow("Big");
        store.create_flow(&record).unwrap();
        // Fill most of the space up front, so a checkpoint is what hits the limit.
        let mut fill = fs::File::create(&ballast).unwrap();
        let chunk = vec![7u8; 4096];
        while std::io::Write::write_all(&mut fill, &chunk).is_ok() {}
        drop(fill);
        let free_some = fs::metadata(&ballast)
            .unwrap()
            .len()
            .saturating_sub(96 * 1024);
        fs::OpenOptions::new()
            .write(true)
            .open(&ballast)
            .unwrap()
            .set_len(free_some)
            .unwrap();

        let mut last_ok = load(&*store, &record.id);
        let big = json!("x".repeat(8 * 1024));
        let mut failed = None;
        for i in 0..10_000 {
            let cp = Checkpoint {
                flow_state: Some(FlowState::Running),
                atoms: vec![AtomRecord {
                    result: Some(big.clone()),
                    ..atom(&format!("s{i}"), StepState::Success)
                }],
                ..Default::default()
            };
            match store.checkpoint(&record.id, &cp) {
                Ok(()) => last_ok = load(&*store, &record.id),
                Err(e) => {
                    failed = Some((e, cp));
                    break;
                }
            }
        }
        let (error, cp) = failed.expect("the file system never filled up");
        eprintln!("{name}: after {} steps: {error}", last_ok.atoms.len());
        assert!(
            matches!(error, StoreError::Io { .. } | StoreError::Sqlite { .. }),
            "{name}: {error:?}"
        );
        assert_eq!(load(&*store, &record.id), last_ok, "{name}");
        drop(store);
        let store = open(&root);
        assert_eq!(load(&*store, &record.id), last_ok, "{name} reopened");

        fs::remove_file(&ballast).unwrap();
        store.checkpoint(&record.id, &cp).unwrap();
        assert_eq!(
            load(&*store, &record.id).atoms.len(),
            last_ok.atoms.len() + 1
        );
        drop(store);
        fs::remove_dir_all(&root).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// SqliteStore::open_read_only: inspecting without writing

#[test]
fn a_read_only_sqlite_store_reads_while_another_writes_and_refuses_writes() {
    let dir = TempDir::new();
    let path = dir.0.join("flows.db");
    let writer = SqliteStore::open(&path).unwrap();
    let flow = FlowRecord::new("book", "BootVm", "fp", json!({ "size_gb": 1 }));
    writer.create_flow(&flow).unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.list_flows().unwrap().len(), 1);
    // The writer goes on; the reader sees it.
    let mut atom = AtomRecord::new("launch");
    atom.state = StepState::Success;
    writer
        .checkpoint(
            &flow.id,
            &Checkpoint {
                flow_state: Some(FlowState::Running),
                atoms: vec![atom],
                ..Checkpoint::default()
            },
        )
        .unwrap();
    assert_eq!(
        reader.load_flow(&flow.id).unwrap().unwrap().flow.state,
        FlowState::Running
    );
    // The reader cannot write, and says where.
    let refused = reader.checkpoint(
        &flow.id,
        &Checkpoint {
            flow_state: Some(FlowState::Success),
            ..Checkpoint::default()
        },
    );
    match refused {
        Err(StoreError::Sqlite { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an SQLite error, got {other:?}"),
    }
    assert_eq!(
        writer.load_flow(&flow.id).unwrap().unwrap().flow.state,
        FlowState::Running
    );
}

#[test]
fn a_read_only_open_refuses_what_is_not_a_store_and_leaves_it_alone() {
    let dir = TempDir::new();
    let other = dir.0.join("other.db");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello');")
            .unwrap();
    }
    let before = fs::read(&other).unwrap();
    match SqliteStore::open_read_only(&other) {
        Err(StoreError::NotAStore { path, .. }) => assert_eq!(path, other),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert_eq!(
        fs::read(&other).unwrap(),
        before,
        "the file is byte for byte unchanged"
    );

    let missing = dir.0.join("missing.db");
    assert!(matches!(
        SqliteStore::open_read_only(&missing),
        Err(StoreError::Sqlite { .. })
    ));
    assert!(!missing.exists(), "a read-only open creates nothing");
}

/// Three stores opened on one directory (as three processes would: each its own open files, so
/// only the directory's lock file orders them) checkpoint one run at the same time: no update is
/// lost, the file always parses, and no temporary file is left. Before the lock and the
/// per-process temporary files, writers shared `<id>.json.tmp` and overwrote each other's
/// read-modify-write.
#[test]
fn dir_stores_on_one_directory_never_lose_or_tear_each_others_writes() {
    let (first, tmp) = dir();
    let run = flow("Shared");
    first.create_flow(&run).unwrap();
    let stores: Vec<DirStore> = (0..3)
        .map(|_| DirStore::open(first.path()).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for (w, store) in stores.iter().enumerate() {
            let id = run.id.clone();
            scope.spawn(move || {
                for i in 0..60 {
                    let cp = Checkpoint {
                        atoms: vec![atom(&format!("w{w}-{i}"), StepState::Success)],
                        ..Default::default()
                    };
                    store.checkpoint(&id, &cp).unwrap();
                    // A reader in between always finds a whole file.
                    load(store, &id);
                }
            });
        }
    });
    let stored = load(&first, &run.id);
    assert_eq!(
        stored.atoms.len(),
        3 * 60,
        "every checkpoint's atom is there"
    );
    let left: Vec<_> = fs::read_dir(first.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(tmp);
}

/// `open` creates a store only in a new or empty database: one with tables of its own is refused,
/// naming them, and left byte for byte as it was (not switched to WAL, no tables added); a
/// `schema_version` table of someone else's is not taken for ours, by either open.
#[test]
fn sqlite_open_refuses_a_database_that_is_not_a_store_and_leaves_it_alone() {
    let dir = TempDir::new();
    let notes = dir.0.join("notes.db");
    let versioned = dir.0.join("versioned.db");
    for (path, sql) in [
        (
            &notes,
            "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello');",
        ),
        (
            &versioned,
            "CREATE TABLE schema_version (version INTEGER NOT NULL); \
             INSERT INTO schema_version VALUES (1); CREATE TABLE users (name TEXT);",
        ),
    ] {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
    let found = |r: Result<SqliteStore, StoreError>, path: &Path| match r {
        Err(StoreError::NotAStore { path: p, found }) => {
            assert_eq!(&p, path);
            found
        }
        other => panic!("expected NotAStore, got {other:?}"),
    };
    let before = fs::read(&notes).unwrap();
    let e = found(SqliteStore::open(&notes), &notes);
    assert_eq!(e, "it has no `schema_version` table; its tables: `notes`");
    assert_eq!(fs::read(&notes).unwrap(), before, "byte for byte unchanged");
    assert!(
        !notes.with_extension("db-wal").exists(),
        "not switched to WAL"
    );

    let before = fs::read(&versioned).unwrap();
    for open in [SqliteStore::open, SqliteStore::open_read_only] {
        let e = found(open(versioned.as_path()), &versioned);
        assert_eq!(
            e,
            "it has a `schema_version` table but not taskflow's `flows`; its tables: \
             `schema_version`, `users`"
        );
    }
    assert_eq!(fs::read(&versioned).unwrap(), before);

    // An empty file (say from `mktemp`) becomes a store.
    let empty = dir.0.join("empty.db");
    fs::write(&empty, "").unwrap();
    SqliteStore::open(&empty).unwrap();
}

/// A FIFO, a symlink to a device and a directory under run names are refused by name, unread —
/// listing never hangs on a FIFO nor reads `/dev/zero` forever — and the real run is listed.
#[cfg(unix)]
#[test]
fn dir_special_files_under_run_names_are_refused_without_being_read() {
    let (store, _tmp) = dir();
    let good = flow("Good");
    store.create_flow(&good).unwrap();
    let root = store.path().to_path_buf();
    let fifo = root.join("fifo.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.json")).unwrap();
    fs::create_dir(root.join("folder.json")).unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let store = DirStore::open(&root).unwrap();
        let _ = tx.send((store.scan(), store.list_flows(), store.load_flow("fifo")));
    });
    let (scan, listed, fifo_load) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("reading the store does not hang");
    let scan = scan.unwrap();
    assert_eq!(scan.flows, std::slice::from_ref(&good));
    assert_eq!(listed.unwrap(), [good]);
    assert_eq!(scan.errors.len(), 3, "{:?}", scan.errors);
    for name in ["fifo.json", "zero.json", "folder.json"] {
        assert!(
            scan.errors.iter().any(|e| matches!(e,
                StoreError::Corrupt { what, detail }
                    if what.contains(name) && detail.contains("not a regular file"))),
            "{name}: {:?}",
            scan.errors
        );
    }
    assert!(matches!(fifo_load, Err(StoreError::Corrupt { .. })));
}
