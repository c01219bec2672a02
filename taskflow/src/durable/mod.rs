//! Durable runs: a flow run attached to a [`Store`] writes ahead every transition, and a run whose
//! process died is resumed from the store.
//!
//! The gate is [`DurableFlow`]: `flow!` implements it for a flow whose every stored value (the
//! inputs and each step's outputs, and those of its sub-flows) is `Serialize + DeserializeOwned`.
//! The engine's durable entry points ([`RunBuilder::durable`](crate::RunBuilder::durable), [`Engine::resume`]) take
//! only such flows, so attaching a store to any other flow is a compile error.
//!
//! What is written, and when (write-ahead): a step is recorded RUNNING before it starts; a
//! finished step's outputs must be storable (see [`ValueError`]: if not, the step fails, like any
//! failed step); its SUCCESS and result are recorded before anything that depends on it starts (the
//! serial engine writes one step's SUCCESS and the next step's RUNNING in one checkpoint; the
//! parallel engine writes, per scheduling round, those of the steps that finished and of the
//! steps it starts together in one); REVERTING before a revert hook runs; a retry scope's new
//! attempt and history when it is set up again, and its controller's failure when the controller
//! panics; the flow's final state at the end. A checkpoint that fails stops the run at once:
//! nothing new starts, and the store keeps what the last successful checkpoint wrote, from where
//! the run can be resumed once the store works again.
//!
//! On resume: SUCCESS steps are not run again (their results are loaded); RUNNING ones run again
//! (so tasks must be idempotent, or check for their own earlier effects); a failure whose
//! handling was interrupted is handled again from the stored failures and retry histories
//! (controllers decide from the history, so they decide the same; one that failed is not asked
//! again); a REVERTING flow finishes reverting. A run can also be stopped gracefully between
//! steps ([`RunBuilder::until`](crate::RunBuilder::until)) and resumed the same way.

mod fingerprint;
mod gate;
pub(crate) mod journal;
pub(crate) mod lease;
pub(crate) mod takeover;
pub(crate) mod value;

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::{drive, end, internal_error, Engine};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::Exec;
use crate::retry::History;
use crate::runtime::controller;
use crate::runtime::failed::Stop;
use crate::runtime::failed::{Failed, StepFailed};
use crate::runtime::failure::{add_failure, finish_revert, Handled};
use crate::runtime::{Run, RunContext, SuspendHandle};
use crate::state::{FlowState, StepState};
use crate::store::{
    validate_flow_id, AnyStore, AtomRecord, Checkpoint, FailureRecord, Fence, FlowRecord,
    LeaseUpdate, Owner, RetryRecord, StoreError, StoredFlow,
};
use crate::{FlowError, PanicError};
pub use fingerprint::fingerprint;
pub use gate::DurableFlow;
use journal::Journal;
use lease::Hold;
pub use takeover::{release_held, HeldStep, OnTakeover, OutcomeUnknown, Release};
pub use value::ValueError;

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
    /// The run is held for a person: a step whose task says `on_takeover = hold` was RUNNING
    /// when the run was interrupted (or its undo failed after a take-over; see
    /// [`OnTakeover`]). Nothing of it ran; it is recorded SUSPENDED, and stays held until
    /// [`release_held`] (`taskflow release`) records what a person decided.
    #[error(
        "flow `{flow_id}` is held for a person, with nothing run: {}; once you know what the \
         step did, release it with `taskflow release <store> {flow_id} --rerun` (or `--fail`)",
        held_list(.steps)
    )]
    Held {
        /// The run's id.
        flow_id: String,
        /// The held steps, with why.
        steps: Vec<HeldStep>,
    },
}

fn held_list(steps: &[HeldStep]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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
/// that succeeded, the retry scopes' attempts, histories and controller failures (and the value
/// of each begun attempt, from its controller), sub-flows recursively; failures whose handling
/// was interrupted are kept for the driver to handle again. A step without a record has not
/// started — unless the run is recorded SUCCESS, whose every step must be recorded SUCCESS (with
/// its result) or IGNORE: anything else is a corrupt store, naming the step. A controller that
/// panics when asked again for a begun attempt's value is a corrupt store too, naming the scope.
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
        // A controller that failed is not asked again.
        scope.failure = record.failure.as_ref().map(|f| f.to_failure(&f.step));
    }
    // A scope whose attempt had begun (a step of it started) provides its value again, before
    // any step is restored: its steps' reverts, a sub-flow in it (whose inputs are rebuilt below)
    // and the steps still to run in it read it. A step that never started (it could not, or a
    // decider said no) did not begin the scope's attempt, so a controller whose `item` failed is
    // not asked again.
    for (s, scope) in graph.scopes().iter().enumerate() {
        let begun = scope.steps.iter().any(|&step| {
            let path = format!("{}{}", stored.prefix, graph.steps()[step].name());
            stored.atoms.get(path.as_str()).is_some_and(|a| {
                a.started_at.is_some()
                    && !matches!(a.state, StepState::Pending | StepState::Retrying)
            })
        });
        if !begun {
            continue;
        }
        let status = &mut run.status.scopes[s];
        status.entered = true;
        let attempt = status.attempt;
        let entered = controller::call::<F, _>(s, || F::__retry_enter(&mut run.values, s, attempt));
        // It panicked now, though it did not when the attempt began: the value cannot be
        // rebuilt, and the scope's steps (their reverts too) read it. Like a stored value that
        // does not load: the resume is refused, nothing run or written.
        if let Err(failure) = entered {
            let name = format!("{}{}", stored.prefix, controller::name::<F>(s));
            return Err(StoreError::Corrupt {
                what: format!("retry scope `{name}` of flow `{}`", stored.flow_id),
                detail: format!(
                    "its controller panicked when the resume asked it again for the value of \
                     attempt {attempt}: {}",
                    failure.error()
                ),
            });
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
            StepState::Running if is_flow => {
                F::__restore_sub(&mut run.values, k, stored, cx)?;
                StepState::Pending
            }
            // Held for a person by an earlier resume: held still, until a person releases it.
            StepState::Running if takeover::is_held(atom) => {
                let reason = atom.failure.as_ref().map(|f| f.message.clone());
                cx.hold(path.clone(), reason.unwrap_or_default());
                StepState::Pending
            }
            // Interrupted while it ran: what it did is unknown; its task says what to do.
            StepState::Running => match info.on_takeover() {
                OnTakeover::Rerun => StepState::Pending,
                OnTakeover::Hold => {
                    cx.hold(path.clone(), takeover::hold_reason(&path));
                    StepState::Pending
                }
                // Its items' outcomes are unknown one by one, and a hook undoes one item it
                // knows: a person decides.
                OnTakeover::RevertThenRerun if info.is_map() => {
                    cx.hold(path.clone(), takeover::map_reason(&path));
                    StepState::Pending
                }
                OnTakeover::RevertThenRerun => {
                    run.status.unknown.push(k);
                    StepState::Failure
                }
            },
            // Its undo after a take-over was interrupted: it is undone again.
            StepState::Reverting if takeover::is_undoing_unknown(atom) && !is_flow => {
                run.status.unknown.push(k);
                StepState::Failure
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
        if state == StepState::Failure {
            // A map step that failed part-way: what it finished, to revert it item by item.
            if let Some(finished) = &atom.result {
                F::__load_finished(&mut run.values, k, finished).map_err(|e| {
                    stored.corrupt(&path, format!("its finished items do not load: {e}"))
                })?;
            }
        }
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
                // never started, or one whose decider failed.
                let why = if is_flow {
                    // With the failures of its controllers (only its first failure is on its
                    // record).
                    let mut failures = vec![failure];
                    for f in controller_failures(stored.retries, &path) {
                        add_failure(&mut failures, &f);
                    }
                    StepFailed::Flow(FlowError::__new(failures, Vec::new()))
                } else if atom.started_at.is_none() {
                    // It never ran: a decider on a link into it panicked (a guarded step, no
                    // failed controller around it: handled like any failure in its scope), or it
                    // could not start (its controller had nothing to attempt, or failed).
                    let controller_failed = graph
                        .scopes()
                        .iter()
                        .zip(&status.scopes)
                        .any(|(scope, s)| scope.steps.contains(&k) && s.failure.is_some());
                    if record.is_panic && graph.guarded().contains(&k) && !controller_failed {
                        StepFailed::Decider(failure)
                    } else {
                        StepFailed::NotAttempted(failure)
                    }
                } else {
                    StepFailed::Task(failure)
                };
                status.unhandled.push(Failed { step: k, why });
            }
        }
    }
    Ok(())
}

// ---- the engine's durable entry points (reached through `Engine::run(..).durable(..)` and
// `Engine::resume`)

/// Starts the new durable run `flow_id` of `F` in `store`: records it, then drives it. The
/// outputs, or `None` when `suspend` stopped it (recorded SUSPENDED).
pub(crate) async fn start<F: DurableFlow>(
    engine: &Engine,
    inputs: F::Inputs,
    store: &AnyStore,
    flow_id: &str,
    suspend: &SuspendHandle,
    inline: bool,
) -> Result<Option<F::Outputs>, DurableError> {
    let json = F::__save_inputs(&inputs).map_err(|e| StoreError::Invalid {
        what: format!("inputs of flow `{flow_id}`"),
        detail: e.to_string(),
    })?;
    let logbook = engine.logbook.as_deref().unwrap_or(F::NAME);
    let mut record = FlowRecord::new(logbook, F::NAME, fingerprint::<F>(), json)
        .with_graph(F::graph().to_json());
    record.id = flow_id.to_owned();
    // The run is recorded with its starter's lease: nobody else can take it in between.
    let owner = Owner::current();
    // It is recorded with its first checkpoint, which writes its first steps ahead: one
    // commit where the store can (`Store::create_with`). An id in use fails that checkpoint,
    // before any step starts.
    let fence = record.lease_to(&owner, engine.lease.until());
    validate_flow_id(flow_id)?;
    let hold = Hold::new(store.clone(), flow_id, fence, engine.lease, false);
    let journal = Arc::new(Journal::starting(store.clone(), record, inline, hold));
    journal.pending_run(F::graph());
    let cx = engine.context(suspend, F::NAME, Some(journal.clone()));
    let run = Run::<F>::new(F::__values(inputs));
    finish(run, &cx, &journal, false).await
}

/// Continues the stored run `flow_id` of `F` from `store` (see [`Engine::resume`]). The outputs,
/// or `None` when `suspend` stopped it again.
pub(crate) async fn resume<F: DurableFlow>(
    engine: &Engine,
    store: &AnyStore,
    flow_id: &str,
    suspend: &SuspendHandle,
    inline: bool,
) -> Result<Option<F::Outputs>, DurableError> {
    // A look first, without taking the run: a finished run is answered from the store, and a
    // run that cannot be resumed (another flow's, a corrupt one) is refused with nothing
    // written, its lease untouched.
    let stored = store
        .load_flow(flow_id, inline)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        })?;
    let looked = restored::<F>(&stored, flow_id, &engine.context(suspend, F::NAME, None))?;
    if stored.flow.state.is_final() {
        return Ok(Some(F::__outputs(*looked.values)));
    }
    drop(looked);
    // Then the run is taken: `RunBusy` while another owner's lease is live.
    let owner = Owner::current();
    let stored = store
        .acquire(flow_id, &owner, engine.lease.until(), inline)
        .await?;
    if stored.flow.state.is_final() {
        // It finished since the look; a finished run is not taken (there is no lease to let go).
        let cx = engine.context(suspend, F::NAME, None);
        return restored::<F>(&stored, flow_id, &cx).map(|run| Some(F::__outputs(*run.values)));
    }
    let fence = Fence {
        owner: owner.id.clone(),
        epoch: stored.flow.epoch,
    };
    let hold = Hold::new(store.clone(), flow_id, fence.clone(), engine.lease, true);
    let journal = Arc::new(Journal::new(
        store.clone(),
        flow_id,
        Some(&stored),
        inline,
        hold,
    ));
    let cx = engine.context(suspend, F::NAME, Some(journal.clone()));
    // From what the taking read (the run may have moved on since the look, and may not restore).
    let run = match restored::<F>(&stored, flow_id, &cx) {
        Ok(run) => run,
        Err(e) => {
            if release(store, flow_id, fence, inline).await {
                journal.hold().held().set_released();
            }
            return Err(e);
        }
    };
    finish(
        run,
        &cx,
        &journal,
        stored.flow.state == FlowState::Reverting,
    )
    .await
}

/// Gives up the lease `fence` of run `flow_id` at once (a resume that found nothing to do);
/// false when the store could not (the keeper tries again when the run lets go).
async fn release(store: &AnyStore, flow_id: &str, fence: Fence, inline: bool) -> bool {
    let cp = Checkpoint {
        fence: Some(fence),
        lease: LeaseUpdate::Release,
        ..Checkpoint::default()
    };
    match store.checkpoint(&Arc::from(flow_id), cp, inline).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%flow_id, %error, "taskflow: could not release a run's lease");
            false
        }
    }
}

/// The stored run `flow_id` of `F`, restored (see [`restore_into`]) — or why it cannot be: it is
/// another flow's or another build's, it ended reverted or failed, or its records are corrupt.
fn restored<F: DurableFlow>(
    stored: &StoredFlow,
    flow_id: &str,
    cx: &RunContext,
) -> Result<Run<F>, DurableError> {
    if stored.flow.flow_name != F::NAME {
        return Err(DurableError::WrongFlow {
            flow_id: flow_id.to_owned(),
            stored: stored.flow.flow_name.clone(),
            compiled: F::NAME.to_owned(),
        });
    }
    let compiled = fingerprint::<F>();
    if stored.flow.fingerprint != compiled {
        return Err(DurableError::FingerprintMismatch {
            flow_id: flow_id.to_owned(),
            stored: stored.flow.fingerprint.clone(),
            compiled,
        });
    }
    let inputs = F::__load_inputs(&stored.flow.inputs).map_err(|e| StoreError::Corrupt {
        what: format!("inputs of flow `{flow_id}`"),
        detail: e.to_string(),
    })?;
    if matches!(stored.flow.state, FlowState::Reverted | FlowState::Failure) {
        return Err(DurableError::Failed(recorded_error(stored)));
    }
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
    restore_into::<F>(&mut run, &view, cx)?;
    Ok(run)
}

/// Drives a durable run to its end — or, for a run that was `reverting`, finishes its revert —
/// and reports how it ended; a failed checkpoint wins.
async fn finish<F: Flow>(
    mut run: Run<F>,
    cx: &RunContext,
    journal: &Journal,
    reverting: bool,
) -> Result<Option<F::Outputs>, DurableError> {
    let result = if reverting {
        match finish_revert(&mut run, cx).await {
            Handled::Failed(error) => Err(Stop::Failed(error)),
            Handled::Retry => unreachable!("finishing a revert retries nothing"),
            Handled::Suspended => {
                let stopped = Err(Stop::Suspended);
                end(&mut run, cx, &stopped).await;
                stopped
            }
        }
    } else {
        drive(&mut run, cx).await
    };
    // A run that stopped on a store error did not write its last checkpoint, which releases
    // the lease: it is released here (if the store works again), so a resume need not wait.
    let held = journal.hold().held();
    if !held.is_released() && !held.is_lost() {
        let (store, id) = journal.store();
        if release(store, id, held.fence().clone(), journal.inline()).await {
            held.set_released();
        }
    }
    if let Some(e) = journal.take_error() {
        return Err(e.into());
    }
    if let Some(e) = cx.take_internal_error() {
        return Err(internal_error(e).into());
    }
    let held = cx.take_held();
    if !held.is_empty() {
        let (_, flow_id) = journal.store();
        return Err(DurableError::Held {
            flow_id: flow_id.to_owned(),
            steps: held,
        });
    }
    match result {
        Ok(()) => Ok(Some(F::__outputs(*run.values))),
        Err(Stop::Failed(e)) => Err(e.into()),
        Err(Stop::Suspended) => Ok(None),
    }
}

/// The failures of the retry controllers recorded in `retries` for the (sub-)flow at path
/// `flow` (`""` for the run's own) and the sub-flows inside it, named within it: `retry [..]`,
/// `Sub/retry [..]`.
fn controller_failures(retries: &[RetryRecord], flow: &str) -> Vec<Failure> {
    retries
        .iter()
        .filter_map(|r| {
            let f = r.failure.as_ref()?;
            let within = if flow.is_empty() || r.flow == flow {
                r.flow.strip_prefix(flow)?
            } else {
                r.flow.strip_prefix(flow)?.strip_prefix('/')?
            };
            let name = if within.is_empty() {
                f.step.clone()
            } else {
                format!("{within}/{}", f.step)
            };
            Some(f.to_failure(&name))
        })
        .collect()
}

/// The error of a run that ended reverted or failed, from its records: the steps' failures,
/// then those of the retry controllers that failed (a controller whose `item` failed is the
/// failure of the step that could not start, too).
fn recorded_error(stored: &StoredFlow) -> FlowError {
    let mut failures = Vec::new();
    let mut reverts = Vec::new();
    for atom in &stored.atoms {
        if atom.name.contains('/') {
            continue; // a sub-flow's: its step in the parent has the failure too
        }
        if let Some(f) = &atom.failure {
            // The failure of a controller of the run's own flow, as the step that could not start.
            let own_controller = || {
                let mut own = stored.retries.iter().filter(|r| r.flow.is_empty());
                own.any(|r| r.failure.as_ref() == Some(f))
            };
            let name = if f.step == atom.name || own_controller() {
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
    for f in controller_failures(&stored.retries, "") {
        add_failure(&mut failures, &f);
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
