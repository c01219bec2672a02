//! Durable records of flow runs, and the stores that keep them.
//!
//! The model follows TaskFlow's: a **log book** (a name that groups runs) holds **flows**
//! ([`FlowRecord`]: one run of a flow, with its inputs, its state and the flow's structure as
//! [`FlowGraph::to_json`](crate::FlowGraph::to_json) gives it), and a flow holds one **atom**
//! per step ([`AtomRecord`]: state, attempt, result, failure, progress, timings) and one
//! [`RetryRecord`] per retry scope (its attempt, the failures of each failed attempt, and its
//! controller's own failure, if any). Values are JSON ([`serde_json::Value`]).
//!
//! Every backend implements [`Store`] (blocking I/O) or [`AsyncStore`] (the same contract with
//! futures, for a network database); a run is given either ([`AnyStore`], [`IntoStore`]) and
//! never blocks the thread that drives it on either (see [`AnyStore`]). A run writes through
//! [`Store::checkpoint`], which applies a [`Checkpoint`] — a new flow state, any number of atoms,
//! any number of retry records — all or nothing. Backends:
//!
//! | backend | keeps | a checkpoint is atomic because |
//! | --- | --- | --- |
//! | [`MemoryStore`] | a map in memory (tests, runs that need no durability) | it is checked, then applied under one lock |
//! | [`DirStore`] | one JSON file per flow in a directory | the whole file is rewritten: temp file, fsync, rename, fsync of the directory |
//! | [`SqliteStore`] | one SQLite database file (WAL, `synchronous=FULL`) | it is one transaction |
//! | `PostgresStore` (feature `postgres`) | tables in a PostgreSQL schema, shared by many processes | it is one transaction, which locks the run's row and checks the writer's fence first |
//!
//! Bad data is refused with an error that names it — a file or row that does not parse is
//! [`StoreError::Corrupt`], a store written by a newer taskflow is [`StoreError::SchemaTooNew`] —
//! and a checkpoint that fails (a full or read-only disk, an I/O error) leaves the flow as the last
//! successful checkpoint left it, so the run can be resumed from there.
//!
//! ```
//! use taskflow::store::{AtomRecord, Checkpoint, FlowRecord, MemoryStore, Store};
//! use taskflow::{FlowState, StepState};
//!
//! let store = MemoryStore::new();
//! let flow = FlowRecord::new("nightly", "BootVm", "fp-1", serde_json::json!({ "size_gb": 20 }));
//! store.create_flow(&flow).unwrap();
//!
//! let mut launch = AtomRecord::new("launch_server");
//! launch.state = StepState::Success;
//! launch.result = Some(serde_json::json!(7));
//! store
//!     .checkpoint(&flow.id, &Checkpoint {
//!         flow_state: Some(FlowState::Running),
//!         atoms: vec![launch],
//!         ..Checkpoint::default()
//!     })
//!     .unwrap();
//!
//! let stored = store.load_flow(&flow.id).unwrap().unwrap();
//! assert_eq!(stored.flow.state, FlowState::Running);
//! assert_eq!(stored.atom("launch_server").unwrap().result, Some(serde_json::json!(7)));
//! ```
//!
//! # Checksums
//!
//! The durable stores keep a checksum with every record they write — FNV-1a, 64 bits, over the
//! record's canonical JSON (`serde_json`'s compact form of the record, its fields in their
//! declared order; for an SQLite row, of its columns as stored), as 16 hex digits — and verify it
//! on every load. A record whose content
//! no longer gives its checksum (a flipped bit, a torn or stale write, an edit by hand) is
//! [`StoreError::Corrupt`] naming the run and the record (``record of step `Parent/step` of flow
//! `id` ``, `atoms row flow_id="id" name="Parent/step"`), never a different run handed to the
//! engine — in particular never a recorded step run again. [`DirStore`] writes a `"sum"` in each
//! record of its files (format 2); [`SqliteStore`] a `sum` column in each row, and with each run a
//! tally of its rows' checksums, so that a row lost, doubled or read in an older version is caught
//! too (schema version 5). Records written before checksums (format 1 files) load as they are;
//! a database is given its checksums when it is migrated. A checksum guards against damage, not
//! against a malicious writer: anyone who can write the store can write a matching checksum.
//! [`MemoryStore`] keeps nothing on disk and has none.

mod asynchronous;
mod checksum;
mod dir;
#[cfg(feature = "postgres")]
mod jobs;
mod lease;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{Failure, FlowState, PanicError, StepState};

pub use asynchronous::{AnyStore, AsyncStore, IntoStore, StoreFuture};
pub use dir::{DirScan, DirStore};
#[cfg(feature = "postgres")]
pub use jobs::{Claim, FlowKey, Job, JobBoard, JobId, JobState, NewJob, Posted};
pub(crate) use lease::{abandon, forget};
pub use lease::{utc, Fence, Lease, LeaseUpdate, Owner};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteError, SqliteStore};

/// One run of a flow: what was run, with which inputs, and where it is.
///
/// Times are milliseconds since the Unix epoch.
///
/// ```
/// use taskflow::store::FlowRecord;
/// use taskflow::FlowState;
///
/// let flow = FlowRecord::new("nightly", "BootVm", "fp-1", serde_json::json!({ "image": "debian" }));
/// assert_eq!(flow.state, FlowState::Pending);
/// assert_eq!(flow.inputs["image"], "debian");
/// assert!(flow.graph.is_null());
/// assert_eq!(flow.created_at, flow.updated_at);
/// assert_ne!(flow.id, FlowRecord::new("nightly", "BootVm", "fp-1", serde_json::json!({})).id);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// The run's id, unique in its store: 1 to 128 ASCII letters, digits, `-` or `_`.
    pub id: String,
    /// The log book the run belongs to (a name that groups runs).
    pub logbook: String,
    /// The name of the flow that was run.
    pub flow_name: String,
    /// The flow's structure when the run started; a run is resumed only by the same structure.
    pub fingerprint: String,
    /// The run's state.
    pub state: FlowState,
    /// The run's inputs.
    pub inputs: Value,
    /// When the run was created (Unix milliseconds).
    pub created_at: u64,
    /// When the run was last checkpointed (Unix milliseconds); set by the store.
    pub updated_at: u64,
    /// The flow's structure, as [`FlowGraph::to_json`](crate::FlowGraph::to_json) gives it (what
    /// `taskflow graph` draws); `Value::Null` when it was not recorded, as in runs stored by a
    /// taskflow that did not record it. See [`with_graph`](Self::with_graph).
    #[serde(default)]
    pub graph: Value,
    /// How many times the run was taken ([`Store::acquire`], or started with a lease): the
    /// fence's epoch. 0 for a run never held.
    #[serde(default)]
    pub epoch: u64,
    /// Who holds the run, until when; `None` when nobody does (never held, or released at its
    /// end). See [`Lease`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

impl FlowRecord {
    /// A new PENDING run with a fresh id (see [`new_flow_id`]), created now, with no recorded
    /// graph (`Value::Null`).
    pub fn new(
        logbook: impl Into<String>,
        flow_name: impl Into<String>,
        fingerprint: impl Into<String>,
        inputs: Value,
    ) -> Self {
        let now = unix_millis(SystemTime::now());
        FlowRecord {
            id: new_flow_id(),
            logbook: logbook.into(),
            flow_name: flow_name.into(),
            fingerprint: fingerprint.into(),
            state: FlowState::Pending,
            inputs,
            created_at: now,
            updated_at: now,
            graph: Value::Null,
            epoch: 0,
            lease: None,
        }
    }

    /// The record with `graph` as the flow's structure: what a durable run records, from
    /// [`FlowGraph::to_json`](crate::FlowGraph::to_json).
    ///
    /// ```
    /// use taskflow::prelude::*;
    /// use taskflow::store::{FlowRecord, MemoryStore, Store};
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// fn main() {
    ///     let flow = FlowRecord::new("book", "Double", "fp", serde_json::json!({ "x": 2 }))
    ///         .with_graph(Double::graph().to_json());
    ///     let store = MemoryStore::new();
    ///     store.create_flow(&flow).unwrap();
    ///     let stored = store.load_flow(&flow.id).unwrap().unwrap();
    ///     assert_eq!(stored.flow.graph["steps"][0]["name"], "double");
    /// }
    /// ```
    pub fn with_graph(mut self, graph: Value) -> Self {
        self.graph = graph;
        self
    }
}

/// One step of a run (TaskFlow's atom detail): its latest state, attempt, result, failures,
/// progress and timings.
///
/// `name` is the step's path: `Parent/step` for a step of a sub-flow. Times are milliseconds since
/// the Unix epoch.
///
/// ```
/// use std::time::Duration;
/// use taskflow::store::AtomRecord;
/// use taskflow::StepState;
///
/// let mut atom = AtomRecord::new("Boot/launch");
/// assert_eq!((atom.state, atom.attempt, atom.duration()), (StepState::Pending, 1, None));
/// atom.started_at = Some(1_000);
/// atom.finished_at = Some(1_250);
/// assert_eq!(atom.duration(), Some(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtomRecord {
    /// The step's path, like `Parent/step`.
    pub name: String,
    /// The step's state.
    pub state: StepState,
    /// The attempt of the step's innermost retry scope (1 outside any).
    pub attempt: u32,
    /// How many times this attempt was started: more than 1 when the step ran again after its
    /// run was interrupted (a crash, a take-over) while it was RUNNING. 0 before it starts.
    #[serde(default)]
    pub runs: u32,
    /// The step's outputs, once it succeeded. `Some(Value::Null)` (a step whose output is `()`)
    /// stays distinct from `None` in every backend.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_value"
    )]
    pub result: Option<Value>,
    /// Why the step failed.
    pub failure: Option<FailureRecord>,
    /// Why its revert hook failed.
    pub revert_failure: Option<FailureRecord>,
    /// The last progress the step reported, from 0.0 to 1.0.
    #[serde(deserialize_with = "progress")]
    pub progress: f32,
    /// When the step's latest attempt started (Unix milliseconds).
    pub started_at: Option<u64>,
    /// When the step's latest attempt finished (Unix milliseconds).
    pub finished_at: Option<u64>,
}

fn some_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A progress read back as the `f32` that was written. JSON holds it as the `f32`'s shortest
/// decimal form, and a reader that takes the number as an `f64` first (as one does through a
/// `serde_json::Value`) rounds twice, which can give the neighbouring `f32`: in 0..=1, for
/// 7.038531e-26. The `f32` written is the one whose shortest form reads as the same `f64`; so a
/// record reads back exactly, and verifies against its checksum (store/checksum.rs).
fn progress<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let wide = f64::deserialize(d)?;
    let near = wide as f32;
    let written = [near, near.next_down(), near.next_up()]
        .into_iter()
        .find(|candidate| candidate.to_string().parse::<f64>() == Ok(wide));
    Ok(written.unwrap_or(near))
}

impl AtomRecord {
    /// A PENDING step at attempt 1, with nothing recorded yet.
    pub fn new(name: impl Into<String>) -> Self {
        AtomRecord {
            name: name.into(),
            state: StepState::Pending,
            attempt: 1,
            runs: 0,
            result: None,
            failure: None,
            revert_failure: None,
            progress: 0.0,
            started_at: None,
            finished_at: None,
        }
    }

    /// How long the latest attempt took, when it has started and finished.
    pub fn duration(&self) -> Option<Duration> {
        let (start, end) = (self.started_at?, self.finished_at?);
        Some(Duration::from_millis(end.saturating_sub(start)))
    }
}

/// A failure as stored: the step, the error's message, and whether it was a panic.
///
/// The typed error does not survive storage; its `Display` text does (a panic's message without
/// the `panicked: ` prefix).
///
/// ```
/// use taskflow::store::FailureRecord;
/// use taskflow::{Failure, PanicError};
///
/// let record = FailureRecord::from(&Failure::from_error("attach", std::io::Error::other("disk full")));
/// assert_eq!(record, FailureRecord { step: "attach".into(), message: "disk full".into(), is_panic: false });
///
/// let panic = FailureRecord::from(&Failure::from_error("attach", PanicError::new("oops")));
/// assert_eq!((panic.message.as_str(), panic.is_panic), ("oops", true));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The step that failed (its path).
    pub step: String,
    /// The error's message, or the panic's.
    pub message: String,
    /// Whether the step panicked rather than returning an error.
    pub is_panic: bool,
}

impl From<&Failure> for FailureRecord {
    fn from(failure: &Failure) -> Self {
        let message = match failure.downcast_ref::<PanicError>() {
            Some(panic) => panic.message().to_owned(),
            None => failure.error().to_string(),
        };
        FailureRecord {
            step: failure.step().to_owned(),
            message,
            is_panic: failure.is_panic(),
        }
    }
}

/// A retry scope's progress in a run: its current attempt, the failures of each failed one, and
/// the failure of its controller if the controller itself failed (TaskFlow records a retry
/// controller as an atom with its own failure).
///
/// `scope` is the scope's index in the flow (its position in the flow's graph).
///
/// ```
/// use taskflow::store::{FailureRecord, RetryRecord};
///
/// let failed = FailureRecord { step: "attach".into(), message: "busy".into(), is_panic: false };
/// let retry = RetryRecord {
///     scope: 0,
///     flow: String::new(),
///     attempt: 2,
///     history: vec![vec![failed]],
///     failure: None,
/// };
/// assert_eq!(retry.history.len() as u32, retry.attempt - 1);
///
/// // Its controller panicked when asked what to do after attempt 2 failed.
/// let exploded = FailureRecord {
///     step: "retry [reserve..attach]".into(),
///     message: "index out of bounds".into(),
///     is_panic: true,
/// };
/// let failed = RetryRecord { failure: Some(exploded), ..retry };
/// assert!(failed.failure.as_ref().is_some_and(|f| f.is_panic));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRecord {
    /// The scope's index in its flow.
    pub scope: usize,
    /// The (sub-)flow the scope belongs to: `""` for the run's own flow, the sub-flow step's path
    /// (like `Parent/step`) for a sub-flow's.
    #[serde(default)]
    pub flow: String,
    /// The attempt in progress (1-based).
    pub attempt: u32,
    /// The failures of each failed attempt, oldest first.
    pub history: Vec<Vec<FailureRecord>>,
    /// Why the controller itself failed in the current attempt (it panicked in `item`,
    /// `on_failure` or `delay`), named after the steps it covers (`retry [first..last]`, within
    /// the record's `flow`); `None` when it did not, and in records of a taskflow that did not
    /// record it. A resume does not ask such a controller again, and a reverted run's error
    /// reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

/// What one [`Store::checkpoint`] writes, all or nothing.
///
/// Atoms and retry records replace the stored ones of the same name (or scope) and are added when
/// new; a name given twice in one checkpoint keeps the later record. `flow_state: None` keeps the
/// flow's state. Every checkpoint sets the flow's `updated_at`.
///
/// ```
/// use taskflow::store::{AtomRecord, Checkpoint};
/// use taskflow::{FlowState, StepState};
///
/// let mut step = AtomRecord::new("launch");
/// step.state = StepState::Running;
/// let cp = Checkpoint { flow_state: Some(FlowState::Running), atoms: vec![step], ..Default::default() };
/// assert!(cp.retries.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// The flow's new state, if it changed.
    pub flow_state: Option<FlowState>,
    /// Steps whose records changed.
    pub atoms: Vec<AtomRecord>,
    /// Retry scopes whose records changed.
    pub retries: Vec<RetryRecord>,
    /// The writer's fence: the checkpoint is applied only if the run's epoch and lease holder
    /// are still these ([`StoreError::LostLease`] otherwise). `None` for a writer that holds no
    /// lease (a tool, a test), refused with [`StoreError::RunBusy`] while a live lease is held.
    pub fence: Option<Fence>,
    /// What the checkpoint does to the writer's lease (applied only with a valid fence).
    pub lease: LeaseUpdate,
}

/// A run as stored: the flow, the latest record of each step (in the order the steps were first
/// checkpointed) and the retry records (by scope).
///
/// ```
/// use taskflow::store::{AtomRecord, Checkpoint, FlowRecord, MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::Value::Null);
/// store.create_flow(&flow).unwrap();
/// let cp = Checkpoint { atoms: vec![AtomRecord::new("b"), AtomRecord::new("a")], ..Default::default() };
/// store.checkpoint(&flow.id, &cp).unwrap();
///
/// let stored = store.load_flow(&flow.id).unwrap().unwrap();
/// let names: Vec<&str> = stored.atoms.iter().map(|a| a.name.as_str()).collect();
/// assert_eq!(names, ["b", "a"]);
/// assert!(stored.atom("a").is_some() && stored.atom("c").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFlow {
    /// The flow.
    pub flow: FlowRecord,
    /// The latest record of each step, in the order the steps were first checkpointed.
    pub atoms: Vec<AtomRecord>,
    /// The retry records, by scope.
    pub retries: Vec<RetryRecord>,
}

impl StoredFlow {
    /// The record of the step named `name`.
    pub fn atom(&self, name: &str) -> Option<&AtomRecord> {
        self.atoms.iter().find(|a| a.name == name)
    }
}

/// Where runs are recorded. Every method either does all it says or nothing, and reports why.
///
/// Implemented by [`MemoryStore`], [`DirStore`] and [`SqliteStore`]. Methods are synchronous:
/// each is one short write or read.
///
/// ```
/// use taskflow::store::{FlowRecord, MemoryStore, Store, StoreError};
///
/// fn states(store: &dyn Store) -> Result<Vec<String>, StoreError> {
///     Ok(store.list_flows()?.iter().map(|f| format!("{} {}", f.flow_name, f.state)).collect())
/// }
///
/// let store = MemoryStore::new();
/// store.create_flow(&FlowRecord::new("book", "BootVm", "fp", serde_json::json!({}))).unwrap();
/// assert_eq!(states(&store).unwrap(), ["BootVm PENDING"]);
/// ```
pub trait Store: Send + Sync {
    /// Records a new run.
    ///
    /// Fails with [`StoreError::AlreadyExists`] when a run with that id is stored (the stored one
    /// is kept), and [`StoreError::Invalid`] when the id is not 1 to 128 ASCII letters, digits,
    /// `-` or `_`.
    ///
    /// ```
    /// use taskflow::store::{FlowRecord, MemoryStore, Store, StoreError};
    ///
    /// let store = MemoryStore::new();
    /// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
    /// store.create_flow(&flow).unwrap();
    /// assert!(matches!(store.create_flow(&flow), Err(StoreError::AlreadyExists { .. })));
    /// ```
    fn create_flow(&self, flow: &FlowRecord) -> Result<(), StoreError>;

    /// Applies `checkpoint` to the run `flow_id`, all or nothing.
    ///
    /// Fails with [`StoreError::NotFound`] for an unknown run and [`StoreError::Invalid`] for a
    /// progress outside 0.0..=1.0; on any error the stored run is as it was.
    ///
    /// ```
    /// use taskflow::store::{AtomRecord, Checkpoint, FlowRecord, MemoryStore, Store, StoreError};
    /// use taskflow::FlowState;
    ///
    /// let store = MemoryStore::new();
    /// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
    /// store.create_flow(&flow).unwrap();
    ///
    /// let mut bad = AtomRecord::new("b");
    /// bad.progress = f32::NAN;
    /// let cp = Checkpoint {
    ///     flow_state: Some(FlowState::Success),
    ///     atoms: vec![AtomRecord::new("a"), bad],
    ///     ..Default::default()
    /// };
    /// assert!(matches!(store.checkpoint(&flow.id, &cp), Err(StoreError::Invalid { .. })));
    /// let stored = store.load_flow(&flow.id).unwrap().unwrap();
    /// assert_eq!((stored.flow.state, stored.atoms.len()), (FlowState::Pending, 0));
    /// ```
    fn checkpoint(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Records the new run `flow` with its first checkpoint `first`: what
    /// [`create_flow`](Self::create_flow) and then [`checkpoint`](Self::checkpoint) do, with
    /// their errors. A durable run is recorded this way when its first steps are written ahead,
    /// so a store that can do both in one write saves a commit per run. Every store of this
    /// crate does, all or nothing: an id in use, or a checkpoint refused, records nothing. This
    /// provided method (for other stores) does one after the other; when its checkpoint fails,
    /// the run stays recorded as created.
    ///
    /// ```
    /// use taskflow::store::{AtomRecord, Checkpoint, FlowRecord, MemoryStore, Store, StoreError};
    /// use taskflow::FlowState;
    ///
    /// let store = MemoryStore::new();
    /// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
    /// let first = Checkpoint {
    ///     flow_state: Some(FlowState::Running),
    ///     atoms: vec![AtomRecord::new("a")],
    ///     ..Default::default()
    /// };
    /// store.create_with(&flow, &first).unwrap();
    /// let stored = store.load_flow(&flow.id).unwrap().unwrap();
    /// assert_eq!((stored.flow.state, stored.atoms.len()), (FlowState::Running, 1));
    /// assert!(matches!(store.create_with(&flow, &first), Err(StoreError::AlreadyExists { .. })));
    /// ```
    fn create_with(&self, flow: &FlowRecord, first: &Checkpoint) -> Result<(), StoreError> {
        self.create_flow(flow)?;
        self.checkpoint(&flow.id, first)
    }

    /// The run `flow_id` with the latest record of each step, or `None` when there is none.
    ///
    /// ```
    /// use taskflow::store::{MemoryStore, Store};
    /// assert!(MemoryStore::new().load_flow("nope").unwrap().is_none());
    /// ```
    fn load_flow(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError>;

    /// Every run in the store, oldest first (by `created_at`, then id).
    ///
    /// ```
    /// use taskflow::store::{FlowRecord, MemoryStore, Store};
    ///
    /// let store = MemoryStore::new();
    /// let mut older = FlowRecord::new("book", "First", "fp", serde_json::json!(null));
    /// older.created_at -= 1000;
    /// store.create_flow(&FlowRecord::new("book", "Second", "fp", serde_json::json!(null))).unwrap();
    /// store.create_flow(&older).unwrap();
    /// let names: Vec<String> = store.list_flows().unwrap().into_iter().map(|f| f.flow_name).collect();
    /// assert_eq!(names, ["First", "Second"]);
    /// ```
    fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError>;

    /// Removes the run `flow_id` with its steps and retry records.
    ///
    /// ```
    /// use taskflow::store::{FlowRecord, MemoryStore, Store, StoreError};
    ///
    /// let store = MemoryStore::new();
    /// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
    /// store.create_flow(&flow).unwrap();
    /// store.delete_flow(&flow.id).unwrap();
    /// assert!(matches!(store.delete_flow(&flow.id), Err(StoreError::NotFound { .. })));
    /// ```
    fn delete_flow(&self, flow_id: &str) -> Result<(), StoreError>;

    /// Takes the run `flow_id` for `owner` until `until` (Unix milliseconds), atomically, and
    /// returns it as stored after the taking: its epoch raised by one, its lease `owner`'s.
    ///
    /// Fails with [`StoreError::RunBusy`] while another owner holds a live lease (one not run
    /// out and whose owner is not [known dead](Owner::is_known_dead)), and with
    /// [`StoreError::NotFound`] for an unknown run; then nothing changes. A run in a final state
    /// (SUCCESS, REVERTED, FAILURE) is not taken: it is returned as stored, without a lease, so
    /// a taker killed before it lets go cannot leave a finished run leased.
    ///
    /// ```
    /// use taskflow::store::{FlowRecord, MemoryStore, Owner, Store, StoreError};
    ///
    /// let store = MemoryStore::new();
    /// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
    /// store.create_flow(&flow).unwrap();
    ///
    /// let first = store.acquire(&flow.id, &Owner::current(), u64::MAX).unwrap();
    /// assert_eq!(first.flow.epoch, 1);
    /// let busy = store.acquire(&flow.id, &Owner::current(), u64::MAX);
    /// assert!(matches!(busy, Err(StoreError::RunBusy { .. })));
    /// ```
    fn acquire(&self, flow_id: &str, owner: &Owner, until: u64) -> Result<StoredFlow, StoreError>;
}

/// Why a store refused or failed an operation. Each variant names the problem and where it is.
///
/// ```
/// use taskflow::store::StoreError;
///
/// let e = StoreError::SchemaTooNew { found: 4, supported: 3 };
/// assert_eq!(
///     e.to_string(),
///     "the store's schema version 4 is newer than the newest this taskflow supports (3): \
///      upgrade taskflow to use this store"
/// );
/// let e = StoreError::Corrupt { what: "flow file `/tmp/x.json`".into(), detail: "EOF".into() };
/// assert_eq!(e.to_string(), "corrupt flow file `/tmp/x.json`: EOF");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing a file failed (a full or read-only disk, missing permissions, ...).
    #[error("i/o error on `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// SQLite reported an error (a full disk, a locked database, ...).
    #[cfg(feature = "sqlite")]
    #[error("SQLite error in `{}`: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: SqliteError,
    },
    /// Stored data does not parse or fails its checksum: a truncated, damaged or edited file, a
    /// row with invalid JSON, a record whose content no longer matches its checksum, a file or
    /// database that is not a store. Nothing of it is handed to a run.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which file, or which table and row (and column).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The store was written by a newer taskflow; it is left untouched.
    #[error(
        "the store's schema version {found} is newer than the newest this taskflow supports \
         ({supported}): upgrade taskflow to use this store"
    )]
    SchemaTooNew {
        /// The store's version.
        found: u32,
        /// The newest version this library reads.
        supported: u32,
    },
    /// An SQLite database that is not a taskflow store: it has tables, but not ours. It is left
    /// untouched (neither converted nor written to).
    #[error("`{}` is an SQLite database but not a taskflow store ({found})", path.display())]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What it has instead, like ``it has no `schema_version` table; its tables: `notes` ``.
        found: String,
    },
    /// No run with this id is stored.
    #[error("no flow `{flow_id}` in the store")]
    NotFound {
        /// The id asked for.
        flow_id: String,
    },
    /// A run with this id is already stored.
    #[error("flow `{flow_id}` is already in the store")]
    AlreadyExists {
        /// The id.
        flow_id: String,
    },
    /// A store of another kind failed (a network database, a store of the user's own): which
    /// store, and its error.
    #[error("{store} error: {source}")]
    Backend {
        /// What kind of store, like `PostgreSQL`.
        store: String,
        /// What it reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another owner holds the run under a live lease: skip it, or try again after `until`.
    #[error(
        "flow `{flow_id}` is held by {owner} until {}: another process runs it",
        lease::utc(*until)
    )]
    RunBusy {
        /// The run.
        flow_id: String,
        /// Who holds it.
        owner: Owner,
        /// Until when (Unix milliseconds), unless renewed.
        until: u64,
    },
    /// The writer no longer holds the run (its lease ran out and another owner took the run, or
    /// it was released): nothing was written, and the writer must stop.
    #[error(
        "lost the lease on flow `{flow_id}` (taken at epoch {epoch}){}: nothing more is written",
        match holder { Some(o) => format!(", now held by {o}"), None => String::new() }
    )]
    LostLease {
        /// The run.
        flow_id: String,
        /// The epoch the writer held it at.
        epoch: u64,
        /// Who holds it now, if anyone.
        holder: Option<Owner>,
    },
    /// A job board's claimer no longer holds the job (another claim raised its epoch, or the
    /// job ended): nothing was written, and the claimer must stop.
    #[error(
        "lost the claim on job {job} (claimed at epoch {epoch}){}{}: nothing more is written",
        match state { Some(s) => format!(", which is now {s}"), None => String::new() },
        match holder { Some(o) => format!(" held by {o}"), None => String::new() }
    )]
    LostClaim {
        /// The job's number.
        job: i64,
        /// The claim epoch the writer held it at.
        epoch: u64,
        /// The job's state now, if it could be read.
        state: Option<String>,
        /// Who holds it now, if anyone.
        holder: Option<Owner>,
    },
    /// The caller handed the store something it cannot keep (a bad id, a progress that is not
    /// between 0 and 1); nothing was written.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was refused.
        what: String,
        /// Why.
        detail: String,
    },
}

/// A fresh run id: the creation time in milliseconds and 64 random bits, in hex (29 characters,
/// sorting by creation time).
///
/// Unique across processes and machines with overwhelming probability (the random part comes from
/// the standard library's per-process random hash keys, mixed with the process id, the time and a
/// counter); no UUID dependency.
///
/// ```
/// let (a, b) = (taskflow::store::new_flow_id(), taskflow::store::new_flow_id());
/// assert_ne!(a, b);
/// assert_eq!(a.len(), 29);
/// assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
/// ```
pub fn new_flow_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(now.as_nanos());
    format!(
        "{:012x}-{:016x}",
        now.as_millis() & 0xffff_ffff_ffff,
        h.finish()
    )
}

/// Milliseconds since the Unix epoch (0 for earlier times).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn validate_flow_id(id: &str) -> Result<(), StoreError> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("flow id {id:?}"),
            detail: "a flow id is 1 to 128 ASCII letters, digits, `-` or `_`".into(),
        })
    }
}

pub(crate) fn validate_checkpoint(cp: &Checkpoint) -> Result<(), StoreError> {
    for atom in &cp.atoms {
        if !(0.0..=1.0).contains(&atom.progress) {
            return Err(StoreError::Invalid {
                what: format!("progress of step `{}`", atom.name),
                detail: format!("{} is not between 0.0 and 1.0", atom.progress),
            });
        }
    }
    Ok(())
}

/// Whether `cp`'s writer may write to `flow` now (see [`Checkpoint::fence`]).
pub(crate) fn check_fence(flow: &FlowRecord, cp: &Checkpoint, now: u64) -> Result<(), StoreError> {
    lease::check(
        &flow.id,
        flow.epoch,
        flow.lease.as_ref(),
        cp.fence.as_ref(),
        now,
    )
}

/// Applies a checkpoint that passed [`validate_checkpoint`] (and [`check_fence`]) to an in-memory copy of a run; cannot
/// fail, which is what makes the memory and directory stores all-or-nothing.
pub(crate) fn apply_checkpoint(stored: &mut StoredFlow, cp: &Checkpoint, now: u64) {
    let mut index = atom_index(stored);
    apply_checkpoint_indexed(stored, &mut index, cp, now);
}

/// The new run `flow` as its first checkpoint `first` leaves it (see [`Store::create_with`]),
/// or why it cannot be recorded: a bad id, a bad checkpoint, a fence that is not the run's.
pub(crate) fn created_with(
    flow: &FlowRecord,
    first: &Checkpoint,
) -> Result<StoredFlow, StoreError> {
    validate_flow_id(&flow.id)?;
    validate_checkpoint(first)?;
    let now = unix_millis(SystemTime::now());
    check_fence(flow, first, now)?;
    let mut stored = StoredFlow {
        flow: flow.clone(),
        atoms: Vec::new(),
        retries: Vec::new(),
    };
    apply_checkpoint(&mut stored, first, now);
    Ok(stored)
}

/// Where each atom of `stored` is, by name.
pub(crate) fn atom_index(stored: &StoredFlow) -> HashMap<String, usize> {
    stored
        .atoms
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.clone(), i))
        .collect()
}

/// [`apply_checkpoint`] with the run's [`atom_index`] kept up to date by the caller (the memory
/// store keeps it between checkpoints, so a checkpoint costs the same at step 1000 as at step 1).
pub(crate) fn apply_checkpoint_indexed(
    stored: &mut StoredFlow,
    index: &mut HashMap<String, usize>,
    cp: &Checkpoint,
    now: u64,
) {
    if let Some(state) = cp.flow_state {
        stored.flow.state = state;
    }
    lease::update(&mut stored.flow.lease, cp.lease);
    stored.flow.updated_at = now;
    for atom in &cp.atoms {
        match index.get(&atom.name) {
            Some(&i) => stored.atoms[i] = atom.clone(),
            None => {
                index.insert(atom.name.clone(), stored.atoms.len());
                stored.atoms.push(atom.clone());
            }
        }
    }
    for retry in &cp.retries {
        match stored
            .retries
            .binary_search_by(|r| (&r.flow, r.scope).cmp(&(&retry.flow, retry.scope)))
        {
            Ok(i) => stored.retries[i] = retry.clone(),
            Err(i) => stored.retries.insert(i, retry.clone()),
        }
    }
}

/// `value` as the JSON text a database column keeps; a value serde refuses is
/// [`StoreError::Invalid`] naming `what`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn column_json<T: Serialize + ?Sized>(
    value: &T,
    what: &str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: what.into(),
        detail: e.to_string(),
    })
}

/// A run's lease as its column keeps it (`None`: SQL NULL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn lease_column(lease: Option<&Lease>) -> Result<Option<String>, StoreError> {
    lease.map(|l| column_json(l, "lease")).transpose()
}

/// `n` as a database's 64-bit integer; one that does not fit is [`StoreError::Invalid`]
/// naming `what`, saying what it did not fit `into`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn column_i64<T: TryInto<i64> + Copy + std::fmt::Display>(
    n: T,
    what: &str,
    into: &str,
) -> Result<i64, StoreError> {
    n.try_into().map_err(|_| StoreError::Invalid {
        what: what.into(),
        detail: format!("{n} does not fit {into}"),
    })
}

/// The order of [`Store::list_flows`].
pub(crate) fn sort_flows(flows: &mut [FlowRecord]) {
    flows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
}
