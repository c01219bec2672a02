//! Durable runs: a flow run attached to a [`Store`] writes ahead every transition, and a run whose
//! process died is resumed from the store.
//!
//! The gate is [`DurableFlow`]: `flow!` implements it for a flow whose every stored value (the
//! inputs and each step's outputs, and those of its sub-flows) is `Serialize + DeserializeOwned`.
//! The engine's durable entry points ([`Engine::run_durable`], [`Engine::resume_durable`]) take
//! only such flows, so attaching a store to any other flow is a compile error.
//!
//! What is written, and when (write-ahead): a step is recorded RUNNING before it starts; a
//! finished step's outputs must be storable (see [`ValueError`]: if not, the step fails, like any
//! failed step); its SUCCESS and result are recorded before anything that depends on it starts (the
//! serial engine writes one step's SUCCESS and the next step's RUNNING in one checkpoint; the
//! parallel engine writes, per scheduling round, those of the steps that finished and of the
//! steps it starts together in one); REVERTING before a
//! revert hook runs; a retry scope's new attempt and history when it is set up again; the flow's
//! final state at the end. A checkpoint that fails stops the run at once: nothing new starts,
//! and the store keeps what the last successful checkpoint wrote, from where the run can be
//! resumed once the store works again.
//!
//! On resume: SUCCESS steps are not run again (their results are loaded); RUNNING ones run again
//! (so tasks must be idempotent, or check for their own earlier effects); a failure whose
//! handling was interrupted is handled again from the stored failures and retry histories
//! (controllers decide from the history, so they decide the same); a REVERTING flow finishes
//! reverting. A run can also be stopped gracefully between steps ([`Engine::run_durable_until`])
//! and resumed the same way.

pub(crate) mod journal;
pub(crate) mod value;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::{drive, end, engine_error, internal_error, Engine};
use crate::failure::Failure;
use crate::flow::{unbuilt, Flow};
use crate::graph::{Exec, FlowGraph};
use crate::retry::History;
use crate::runtime::failed::Stop;
use crate::runtime::failed::{Failed, StepFailed};
use crate::runtime::failure::{finish_revert, Handled};
use crate::runtime::{Run, RunContext, SuspendHandle};
use crate::state::{FlowState, StepState};
use crate::store::{
    AtomRecord, FailureRecord, FlowRecord, RetryRecord, Store, StoreError, StoredFlow,
};
use crate::{FlowError, PanicError};
use journal::{Journal, Registry};
pub use value::ValueError;

/// A flow whose every stored value is `Serialize + DeserializeOwned`: it can be run with a
/// store ([`Engine::run_durable`]). `flow!` implements it; the bounds are checked where a flow
/// is run with a store, so a flow with other values still compiles and runs in memory.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = doubled)]
/// fn double(x: u32) -> u32 { x * 2 }
///
/// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
///
/// fn stored<F: taskflow::DurableFlow>(_: F) {}
///
/// fn main() {
///     stored(Double); // u32 is Serialize + DeserializeOwned
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "flow `{Self}` cannot be run with a store: not every value it stores is `Serialize + DeserializeOwned`",
    label = "this flow has a value that is not `Serialize + DeserializeOwned`",
    note = "a store keeps the inputs and every step's outputs as JSON: derive `serde::Serialize` and `serde::Deserialize` for the types named above, or run the flow in memory with `Engine::run`"
)]
// Like `Flow`'s, each hidden method has a default: `__restore_sub` and `__register` are those of a
// flow without sub-flows, the others only the fallback of a `flow!` that reported errors keeps.
pub trait DurableFlow: Flow {
    /// Step `step`'s outputs as JSON (its result in a store): `null` for none, the value for
    /// one, an object by name for several. `Err` when a value cannot be stored.
    #[doc(hidden)]
    fn __save_step(values: &Self::Values, step: usize) -> Result<Value, ValueError> {
        let _ = (values, step);
        unbuilt(Self::NAME)
    }

    /// Puts a stored result of step `step` back in its slots.
    #[doc(hidden)]
    fn __load_step(
        values: &mut Self::Values,
        step: usize,
        result: &Value,
    ) -> Result<(), ValueError> {
        let _ = (values, step, result);
        unbuilt(Self::NAME)
    }

    /// The inputs as a JSON object by name.
    #[doc(hidden)]
    fn __save_inputs(inputs: &Self::Inputs) -> Result<Value, ValueError> {
        let _ = inputs;
        unbuilt(Self::NAME)
    }

    /// The inputs back from [`__save_inputs`](Self::__save_inputs)'s JSON.
    #[doc(hidden)]
    fn __load_inputs(inputs: &Value) -> Result<Self::Inputs, ValueError> {
        let _ = inputs;
        unbuilt(Self::NAME)
    }

    /// Rebuilds sub-flow step `step`'s values from the store (its inputs from ours).
    #[doc(hidden)]
    fn __restore_sub(
        values: &mut Self::Values,
        step: usize,
        stored: &Restore<'_>,
        cx: &RunContext,
    ) -> Result<(), StoreError> {
        let _ = (values, step, stored, cx);
        Ok(()) // a flow without sub-flows
    }

    /// Adds this flow and its sub-flows to `registry`.
    #[doc(hidden)]
    fn __register(registry: &mut Registry) {
        registry.add::<Self::Values>(Self::__save_step); // a flow with sub-flows adds theirs
    }
}

/// A failure read back from a store: its message survives, its type does not.
///
/// ```
/// use taskflow::RecordedError;
/// let e = RecordedError::new("disk full");
/// assert_eq!(e.to_string(), "disk full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordedError {
    message: String,
}

impl RecordedError {
    /// A recorded error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        RecordedError {
            message: message.into(),
        }
    }
}

impl FailureRecord {
    /// The failure back, named `step`: a [`PanicError`] for a panic, else a [`RecordedError`].
    pub(crate) fn to_failure(&self, step: &str) -> Failure {
        if self.is_panic {
            Failure::from_error(step, PanicError::new(self.message.clone()))
        } else {
            Failure::from_error(step, RecordedError::new(self.message.clone()))
        }
    }
}

/// Why a durable run or resume stopped without the flow's outputs.
///
/// ```
/// use taskflow::DurableError;
/// let e = DurableError::FingerprintMismatch {
///     flow_id: "vm-1".into(),
///     stored: "0123".into(),
///     compiled: "4567".into(),
/// };
/// assert!(e.to_string().contains("vm-1"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The flow failed and was reverted (or its revert failed); the store says so too.
    #[error(transparent)]
    Failed(#[from] FlowError),
    /// The store failed (a full or read-only disk, corrupt data, an unknown flow id, ...). A run
    /// stopped at once: the store keeps what its last successful checkpoint wrote, and the run
    /// can be resumed from there once the store works again.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// The stored run belongs to a different flow.
    #[error("flow `{flow_id}` was stored by flow `{stored}`, not `{compiled}`: resume it with `{stored}`")]
    WrongFlow {
        /// The run's id.
        flow_id: String,
        /// The flow name in the store.
        stored: String,
        /// The flow asked to resume it.
        compiled: String,
    },
    /// The flow's steps, wiring or value types changed since the run was stored.
    #[error(
        "flow `{flow_id}` was stored with fingerprint {stored}, but this build of the flow has \
         fingerprint {compiled}: its steps, wiring or value types changed; finish the run with \
         the build that started it"
    )]
    FingerprintMismatch {
        /// The run's id.
        flow_id: String,
        /// The stored fingerprint.
        stored: String,
        /// This build's.
        compiled: String,
    },
}

/// The fingerprint of a flow: a hash of its steps, their names and kinds, what each reads and
/// provides, the edges, the retry scopes, and the names of its value types (with its sub-flows'),
/// as 16 hex digits. Two builds with the same fingerprint store the same things in the same
/// places.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
/// #[task(provides = y)]
/// fn wide(x: u64) -> u64 { x + 1 }
///
/// flow! { flow A(x: u32) -> (y) { linear [ inc ] } }
/// flow! { flow B(x: u64) -> (y) { linear [ wide as inc ] } }
///
/// fn main() {
///     assert_eq!(taskflow::fingerprint::<A>().len(), 16);
///     assert_eq!(taskflow::fingerprint::<A>(), taskflow::fingerprint::<A>());
///     assert_ne!(taskflow::fingerprint::<A>(), taskflow::fingerprint::<B>());
/// }
/// ```
pub fn fingerprint<F: Flow>() -> String {
    let mut text = String::new();
    describe(F::graph(), &mut text);
    let mut types = Vec::new();
    F::__types(&mut types);
    for t in types {
        text.push_str(t);
        text.push('\n');
    }
    // FNV-1a, 64 bits: stable across builds and platforms (std's hashers promise neither).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn describe(graph: &FlowGraph, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "flow {} {:?} {:?}",
        graph.name(),
        graph.inputs(),
        graph.outputs()
    );
    for step in graph.steps() {
        let _ = writeln!(
            out,
            "step {} {:?} {:?} {:?}",
            step.name(),
            step.exec(),
            step.requires(),
            step.provides()
        );
        if let Some(sub) = step.subflow() {
            describe(sub, out);
            out.push_str("end\n");
        }
    }
    let _ = writeln!(out, "edges {:?}", graph.edges());
    for scope in graph.scopes() {
        let _ = writeln!(out, "scope {:?} {:?}", scope.parent, scope.steps);
    }
    let _ = writeln!(out, "guarded {:?}", graph.guarded());
}

// ---- restoring a run's values from the store

/// A stored run, seen from one (sub-)flow of it. Generated code passes it along to restore
/// sub-flows.
#[doc(hidden)]
pub struct Restore<'a> {
    atoms: &'a HashMap<&'a str, &'a AtomRecord>,
    retries: &'a [RetryRecord],
    flow_id: &'a str,
    /// `""` for the root flow, `Sub/` for the steps of sub-flow step `Sub`.
    prefix: String,
    /// The run is recorded SUCCESS: every step of it (sub-flows' too) must be recorded SUCCESS,
    /// with its result, or IGNORE.
    finished: bool,
}

impl<'a> Restore<'a> {
    #[doc(hidden)]
    pub fn within(&self, step: &str) -> Restore<'a> {
        Restore {
            atoms: self.atoms,
            retries: self.retries,
            flow_id: self.flow_id,
            prefix: format!("{}{step}/", self.prefix),
            finished: self.finished,
        }
    }

    fn corrupt(&self, path: &str, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what: format!("record of step `{path}` of flow `{}`", self.flow_id),
            detail: detail.into(),
        }
    }
}

/// Puts a stored run back in `values`: each step's state and attempt, the results of the steps
/// that succeeded, the retry scopes' attempts and histories, sub-flows recursively; failures whose
/// handling was interrupted are kept for the driver to handle again. A step without a record has
/// not started — unless the run is recorded SUCCESS, whose every step must be recorded SUCCESS
/// (with its result) or IGNORE: anything else is a corrupt store, naming the step.
#[doc(hidden)]
pub fn restore_into<F: DurableFlow>(
    run: &mut Run<F>,
    stored: &Restore<'_>,
    cx: &RunContext,
) -> Result<(), StoreError> {
    let graph = F::graph();
    let flow = stored.prefix.trim_end_matches('/');
    let status = &mut run.status;
    for record in stored.retries.iter().filter(|r| r.flow == flow) {
        let Some(scope) = status.scopes.get_mut(record.scope) else {
            return Err(StoreError::Corrupt {
                what: format!("retry record {} of flow `{}`", record.scope, stored.flow_id),
                detail: format!("the flow has {} retry scopes", status.scopes.len()),
            });
        };
        scope.attempt = record.attempt.max(1);
        scope.history = History::from_attempts(
            record
                .history
                .iter()
                .map(|fs| fs.iter().map(|f| f.to_failure(&f.step)).collect())
                .collect(),
        );
    }
    // A scope whose attempt had begun provides its value again, before any step is restored:
    // its steps' reverts, a sub-flow in it (whose inputs are rebuilt below) and the steps still
    // to run in it read it.
    for (s, scope) in graph.scopes().iter().enumerate() {
        let begun = scope.steps.iter().any(|&step| {
            let path = format!("{}{}", stored.prefix, graph.steps()[step].name());
            stored
                .atoms
                .get(path.as_str())
                .is_some_and(|a| !matches!(a.state, StepState::Pending | StepState::Retrying))
        });
        if begun {
            let status = &mut run.status;
            status.scopes[s].entered = true;
            let attempt = status.scopes[s].attempt;
            F::__retry_enter(&mut run.values, s, attempt);
        }
    }
    for (k, info) in graph.steps().iter().enumerate() {
        let path = format!("{}{}", stored.prefix, info.name());
        let Some(atom) = stored.atoms.get(path.as_str()) else {
            if stored.finished {
                // Its outputs would be missing from the flow's.
                return Err(stored.corrupt(
                    &path,
                    "the run is recorded SUCCESS, but this step has no record",
                ));
            }
            continue; // not started yet
        };
        if stored.finished && !matches!(atom.state, StepState::Success | StepState::Ignore) {
            return Err(stored.corrupt(
                &path,
                format!(
                    "the run is recorded SUCCESS, but this step is recorded {}",
                    atom.state
                ),
            ));
        }
        let is_flow = info.exec() == Exec::Flow;
        let load = |values: &mut F::Values| -> Result<(), StoreError> {
            let result = atom
                .result
                .as_ref()
                .ok_or_else(|| stored.corrupt(&path, "a finished step without its result"))?;
            F::__load_step(values, k, result)
                .map_err(|e| stored.corrupt(&path, format!("its result does not load: {e}")))?;
            if is_flow {
                F::__restore_sub(values, k, stored, cx)?;
            }
            Ok(())
        };
        let failed_task = atom.failure.is_some();
        let state = match atom.state {
            StepState::Pending | StepState::Retrying => StepState::Pending,
            StepState::Running => {
                if is_flow {
                    F::__restore_sub(&mut run.values, k, stored, cx)?;
                }
                StepState::Pending
            }
            StepState::Success => {
                load(&mut run.values)?;
                StepState::Success
            }
            // Its revert was interrupted: it is undone again.
            StepState::Reverting if failed_task => StepState::Failure,
            StepState::Reverting => {
                load(&mut run.values)?;
                StepState::Success
            }
            other => other,
        };
        // Loading a run is not a transition: the states are what the store says.
        let status = &mut run.status;
        status.steps[k] = state;
        status.attempts[k] = atom.attempt.max(1);
        if let Some(record) = &atom.revert_failure {
            status.prior_reverts.push(record.to_failure(&path));
        }
        if let Some(record) = &atom.failure {
            if state != StepState::Pending && state != StepState::Success {
                let failure = record.to_failure(&record.step);
                // As the driver saw it: a sub-flow's failure, a task's, or one of a step that
                // never started (after a resume, a failed decider counts as that too).
                let why = if is_flow {
                    StepFailed::Flow(FlowError::__new(vec![failure], Vec::new()))
                } else if atom.started_at.is_none() {
                    StepFailed::NotAttempted(failure)
                } else {
                    StepFailed::Task(failure)
                };
                status.unhandled.push(Failed { step: k, why });
            }
        }
    }
    Ok(())
}

// ---- the engine's durable entry points

impl Engine {
    /// Runs `flow` with `inputs`, recording every transition in `store` under `flow_id` (a new
    /// run: [`StoreError::AlreadyExists`] when the id is taken). If the process dies, the run
    /// continues with [`resume_durable`](Self::resume_durable).
    ///
    /// Only a flow whose values are all `Serialize + DeserializeOwned` can be run this way
    /// ([`DurableFlow`]); anything else is a compile error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::{MemoryStore, Store};
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let out = Engine::serial().run_durable(Double, DoubleInputs { x: 21 }, store.clone(), "job-1").await.unwrap();
    /// assert_eq!(out.doubled, 42);
    /// let stored = store.load_flow("job-1").unwrap().unwrap();
    /// assert_eq!(stored.flow.state, FlowState::Success);
    /// assert_eq!(stored.atom("double").unwrap().result, Some(serde_json::json!(42)));
    /// # });
    /// ```
    pub async fn run_durable<F: DurableFlow>(
        &self,
        flow: F,
        inputs: F::Inputs,
        store: Arc<dyn Store>,
        flow_id: &str,
    ) -> Result<F::Outputs, DurableError> {
        let end = self
            .run_durable_until(flow, inputs, store, flow_id, &SuspendHandle::new())
            .await?;
        Ok(end.expect_done())
    }

    /// [`run_durable`](Self::run_durable) that `suspend` can stop between steps: the steps in
    /// flight finish and are recorded, the run is recorded SUSPENDED, and it returns
    /// [`DurableEnd::Suspended`]. [`resume_durable`](Self::resume_durable) (or
    /// [`resume_durable_until`](Self::resume_durable_until)) continues it, in this process or
    /// another — the way to stop a service gracefully instead of killing it mid-step.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::{MemoryStore, Store};
    /// use taskflow::{DurableEnd, SuspendHandle};
    ///
    /// #[task(provides = a)]
    /// fn first(n: u32) -> u32 { n + 1 }
    /// #[task(provides = b)]
    /// fn second(a: u32) -> u32 { a * 10 }
    ///
    /// flow! { flow Two(n: u32) -> (b) { linear [ first, second ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let shutdown = SuspendHandle::new();
    /// shutdown.suspend(); // e.g. SIGTERM arrived
    /// let end = Engine::serial().run_durable_until(Two, TwoInputs { n: 1 }, store.clone(), "t", &shutdown).await.unwrap();
    /// assert!(matches!(end, DurableEnd::Suspended));
    /// assert_eq!(store.load_flow("t").unwrap().unwrap().flow.state, FlowState::Suspended);
    /// // After the restart:
    /// let out = Engine::serial().resume_durable(Two, store, "t").await.unwrap();
    /// assert_eq!(out.b, 20);
    /// # });
    /// ```
    pub async fn run_durable_until<F: DurableFlow>(
        &self,
        flow: F,
        inputs: F::Inputs,
        store: Arc<dyn Store>,
        flow_id: &str,
        suspend: &SuspendHandle,
    ) -> Result<DurableEnd<F::Outputs>, DurableError> {
        let _ = flow;
        let json = F::__save_inputs(&inputs).map_err(|e| StoreError::Invalid {
            what: format!("inputs of flow `{flow_id}`"),
            detail: e.to_string(),
        })?;
        let logbook = self.logbook.as_deref().unwrap_or(F::NAME);
        let mut record = FlowRecord::new(logbook, F::NAME, fingerprint::<F>(), json)
            .with_graph(F::graph().to_json());
        record.id = flow_id.to_owned();
        store.create_flow(&record)?;
        let journal = Arc::new(Journal::new(store, flow_id, None, registry::<F>()));
        journal.pending_run(F::graph());
        let cx = self.context(suspend, F::NAME, Some(journal.clone()));
        let run = Run::<F>::new(F::__values(inputs));
        finish(run, &cx, &journal, false).await
    }

    /// Continues the run `flow_id` of `flow` from `store`, in this process or any other: steps
    /// recorded SUCCESS are not run again, steps recorded RUNNING run again, an interrupted
    /// failure is handled again (a retry controller keeps its attempt count), and a run that was
    /// reverting finishes reverting. A run that already finished returns its outcome again
    /// (its outputs from the store, or its failure) without running anything.
    ///
    /// Refused, with nothing written: an unknown id ([`StoreError::NotFound`]), a run of another
    /// flow ([`DurableError::WrongFlow`]), a flow whose steps, wiring or types changed since
    /// ([`DurableError::FingerprintMismatch`]), stored data that does not load
    /// ([`StoreError::Corrupt`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::MemoryStore;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let engine = Engine::serial();
    /// engine.run_durable(Double, DoubleInputs { x: 21 }, store.clone(), "job-1").await.unwrap();
    /// // Finished: resuming hands back the stored outputs.
    /// let again = engine.resume_durable(Double, store, "job-1").await.unwrap();
    /// assert_eq!(again.doubled, 42);
    /// # });
    /// ```
    pub async fn resume_durable<F: DurableFlow>(
        &self,
        flow: F,
        store: Arc<dyn Store>,
        flow_id: &str,
    ) -> Result<F::Outputs, DurableError> {
        let end = self
            .resume_durable_until(flow, store, flow_id, &SuspendHandle::new())
            .await?;
        Ok(end.expect_done())
    }

    /// [`resume_durable`](Self::resume_durable) that `suspend` can stop between steps, like
    /// [`run_durable_until`](Self::run_durable_until).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::MemoryStore;
    /// use taskflow::{DurableEnd, SuspendHandle};
    ///
    /// #[task(provides = y)]
    /// fn inc(x: u32) -> u32 { x + 1 }
    ///
    /// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let stop = SuspendHandle::new();
    /// stop.suspend();
    /// let engine = Engine::serial();
    /// engine.run_durable_until(Inc, IncInputs { x: 1 }, store.clone(), "i", &stop).await.unwrap();
    /// // Still shutting down: nothing runs.
    /// let end = engine.resume_durable_until(Inc, store.clone(), "i", &stop).await.unwrap();
    /// assert!(matches!(end, DurableEnd::Suspended));
    /// let end = engine.resume_durable_until(Inc, store, "i", &SuspendHandle::new()).await.unwrap();
    /// assert!(matches!(end, DurableEnd::Done(out) if out.y == 2));
    /// # });
    /// ```
    pub async fn resume_durable_until<F: DurableFlow>(
        &self,
        flow: F,
        store: Arc<dyn Store>,
        flow_id: &str,
        suspend: &SuspendHandle,
    ) -> Result<DurableEnd<F::Outputs>, DurableError> {
        let _ = flow;
        let stored = store
            .load_flow(flow_id)?
            .ok_or_else(|| StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            })?;
        if stored.flow.flow_name != F::NAME {
            return Err(DurableError::WrongFlow {
                flow_id: flow_id.to_owned(),
                stored: stored.flow.flow_name,
                compiled: F::NAME.to_owned(),
            });
        }
        let compiled = fingerprint::<F>();
        if stored.flow.fingerprint != compiled {
            return Err(DurableError::FingerprintMismatch {
                flow_id: flow_id.to_owned(),
                stored: stored.flow.fingerprint,
                compiled,
            });
        }
        let inputs = F::__load_inputs(&stored.flow.inputs).map_err(|e| StoreError::Corrupt {
            what: format!("inputs of flow `{flow_id}`"),
            detail: e.to_string(),
        })?;
        match stored.flow.state {
            FlowState::Reverted | FlowState::Failure => {
                return Err(DurableError::Failed(recorded_error(&stored)));
            }
            _ => {}
        }
        let journal = Arc::new(Journal::new(store, flow_id, Some(&stored), registry::<F>()));
        let cx = self.context(suspend, F::NAME, Some(journal.clone()));
        let mut run = Run::<F>::new(F::__values(inputs));
        let atoms: HashMap<&str, &AtomRecord> =
            stored.atoms.iter().map(|a| (a.name.as_str(), a)).collect();
        let view = Restore {
            atoms: &atoms,
            retries: &stored.retries,
            flow_id,
            prefix: String::new(),
            finished: stored.flow.state == FlowState::Success,
        };
        restore_into::<F>(&mut run, &view, &cx)?;
        match stored.flow.state {
            FlowState::Success => Ok(DurableEnd::Done(F::__outputs(run.values))),
            state => finish(run, &cx, &journal, state == FlowState::Reverting).await,
        }
    }

    /// [`run_durable`](Self::run_durable) from code that has no async runtime (see
    /// [`run_blocking`](Self::run_blocking)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::MemoryStore;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// fn main() {
    ///     let store = Arc::new(MemoryStore::new());
    ///     let out = Engine::serial().run_durable_blocking(Double, DoubleInputs { x: 2 }, store, "a").unwrap();
    ///     assert_eq!(out.doubled, 4);
    /// }
    /// ```
    pub fn run_durable_blocking<F: DurableFlow>(
        &self,
        flow: F,
        inputs: F::Inputs,
        store: Arc<dyn Store>,
        flow_id: &str,
    ) -> Result<F::Outputs, DurableError> {
        self.blocking(|| self.run_durable(flow, inputs, store, flow_id))
            .map_err(|e| DurableError::Failed(engine_error(e)))?
    }

    /// [`resume_durable`](Self::resume_durable) from code that has no async runtime.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::MemoryStore;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// fn main() {
    ///     let store = Arc::new(MemoryStore::new());
    ///     let err = Engine::serial().resume_durable_blocking(Double, store, "nope").unwrap_err();
    ///     assert_eq!(err.to_string(), "store error: no flow `nope` in the store");
    /// }
    /// ```
    pub fn resume_durable_blocking<F: DurableFlow>(
        &self,
        flow: F,
        store: Arc<dyn Store>,
        flow_id: &str,
    ) -> Result<F::Outputs, DurableError> {
        self.blocking(|| self.resume_durable(flow, store, flow_id))
            .map_err(|e| DurableError::Failed(engine_error(e)))?
    }
}

/// Drives a durable run to its end — or, for a run that was `reverting`, finishes its revert —
/// and reports how it ended; a failed checkpoint wins.
async fn finish<F: Flow>(
    mut run: Run<F>,
    cx: &RunContext,
    journal: &Journal,
    reverting: bool,
) -> Result<DurableEnd<F::Outputs>, DurableError> {
    let result = if reverting {
        match finish_revert(&mut run, cx).await {
            Handled::Failed(error) => Err(Stop::Failed(error)),
            Handled::Retry => unreachable!("finishing a revert retries nothing"),
            Handled::Suspended => {
                let stopped = Err(Stop::Suspended);
                end(&mut run, cx, &stopped);
                stopped
            }
        }
    } else {
        drive(&mut run, cx).await
    };
    if let Some(e) = journal.take_error() {
        return Err(e.into());
    }
    if let Some(e) = cx.take_internal_error() {
        return Err(internal_error(e).into());
    }
    match result {
        Ok(()) => Ok(DurableEnd::Done(F::__outputs(run.values))),
        Err(Stop::Failed(e)) => Err(e.into()),
        Err(Stop::Suspended) => Ok(DurableEnd::Suspended),
    }
}

/// The serialization of flow `F` and its sub-flows, by the type of their values.
fn registry<F: DurableFlow>() -> Registry {
    let mut registry = Registry::default();
    F::__register(&mut registry);
    registry
}

/// How a durable run that can be suspended ended ([`Engine::run_durable_until`] has an example).
///
/// ```
/// let end: taskflow::DurableEnd<u32> = taskflow::DurableEnd::Done(7);
/// assert!(matches!(end, taskflow::DurableEnd::Done(7)));
/// ```
#[derive(Debug)]
pub enum DurableEnd<O> {
    /// Every step succeeded: the outputs.
    Done(O),
    /// Suspended between steps and recorded SUSPENDED: resume it from the store.
    Suspended,
}

impl<O> DurableEnd<O> {
    /// The outputs of a run that nothing could suspend.
    fn expect_done(self) -> O {
        match self {
            DurableEnd::Done(out) => out,
            DurableEnd::Suspended => unreachable!("nothing can ask this run to suspend"),
        }
    }
}

/// The error of a run that ended reverted or failed, from its records.
fn recorded_error(stored: &StoredFlow) -> FlowError {
    let mut failures = Vec::new();
    let mut reverts = Vec::new();
    for atom in &stored.atoms {
        if atom.name.contains('/') {
            continue; // a sub-flow's: its step in the parent has the failure too
        }
        if let Some(f) = &atom.failure {
            let name = if f.step == atom.name {
                f.step.clone()
            } else {
                format!("{}/{}", atom.name, f.step)
            };
            failures.push(f.to_failure(&name));
        }
        if let Some(f) = &atom.revert_failure {
            reverts.push(f.to_failure(&atom.name));
        }
    }
    if failures.is_empty() {
        failures.push(Failure::from_error(
            "<store>",
            RecordedError::new(format!(
                "flow `{}` ended {} with no failure recorded",
                stored.flow.id, stored.flow.state
            )),
        ));
    }
    FlowError::__new(failures, reverts)
}
