//! What a resume does with a step that was RUNNING when its run stopped — its owner died, lost
//! its lease, or the machine went away — so that nobody knows whether the step did its work:
//! each task says, with `#[task(on_takeover = ..)]` ([`OnTakeover`]).
//!
//! How it is recorded, so that every later resume (in any process) decides the same:
//! - `revert_then_rerun`: the step goes RUNNING → REVERTING (no result, no failure: that pair
//!   marks an undo of an unknown outcome) → PENDING, then runs again. A crash during the undo
//!   leaves it REVERTING without result or failure, and the next resume undoes it again (revert
//!   hooks are idempotent, like steps). If the hook fails, the step is held.
//! - `hold`: the step stays RUNNING with a failure record that says why it is held; a resume of
//!   such a run starts nothing, records it SUSPENDED and returns [`DurableError::Held`]
//!   (`crate::DurableError::Held`) until a person releases it with [`release_held`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::{
    unix_millis, AtomRecord, Checkpoint, FailureRecord, Fence, IntoStore, LeaseUpdate, Owner,
    StoreError,
};
use crate::StepState;

/// What a resume does with a step of this task that was RUNNING when its run was interrupted
/// (its owner died or lost its lease), declared with `#[task(on_takeover = ..)]`. It applies to
/// every resume: a single process restarted after a crash, and a conductor taking over a job.
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::OnTakeover;
///
/// #[task(provides = id, revert = delete, on_takeover = revert_then_rerun)]
/// fn create(name: String) -> String { format!("vm-{name}") }
///
/// #[revert]
/// fn delete(name: String, result: TaskOutcome<&String>) {
///     // After a take-over `result` is `Err`: the outcome is unknown, so look the VM up by name.
///     let _ = (name, result);
/// }
///
/// flow! { flow Boot(name: String) -> (id) { linear [ create ] } }
///
/// fn main() {
///     assert_eq!(Boot::graph().steps()[0].on_takeover(), OnTakeover::RevertThenRerun);
///     assert_eq!(OnTakeover::default(), OnTakeover::Rerun);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnTakeover {
    /// Run it again (`rerun`, the default): for idempotent steps, and steps that check for
    /// their own earlier effects (see [`TaskContext::idempotency_key`](crate::TaskContext::idempotency_key)).
    #[default]
    Rerun,
    /// Undo it with its revert hook first, then run it again (`revert_then_rerun`; the task
    /// needs a hook). The hook's `result` is `Err` with an [`OutcomeUnknown`] failure: the step
    /// may have done all, part or none of its work. If the hook fails, the run is held; a `map`
    /// step of such a task is held too (its hook undoes one item from that item's result).
    RevertThenRerun,
    /// Hold the run for a person (`hold`): nothing more of it runs until someone looks at the
    /// world, decides, and releases it with [`release_held`] (`taskflow release`, or
    /// `taskflow jobs .. release` for a job).
    Hold,
}

/// The failure a revert hook gets after a take-over (with
/// [`OnTakeover::RevertThenRerun`]): the step was RUNNING when its run was interrupted, so
/// whether it did its work is unknown.
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::OutcomeUnknown;
///
/// #[revert]
/// fn undo(result: TaskOutcome<&u32>) {
///     match result {
///         Ok(id) => println!("delete {id}"),
///         Err(f) if f.downcast_ref::<OutcomeUnknown>().is_some() => println!("look it up"),
///         Err(_) => println!("it failed: nothing to delete"),
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outcome unknown: step `{step}` was running when its run was interrupted, and may have done \
     all, part or none of its work"
)]
pub struct OutcomeUnknown {
    step: String,
}

impl OutcomeUnknown {
    pub(crate) fn new(step: impl Into<String>) -> Self {
        OutcomeUnknown { step: step.into() }
    }

    /// The step's path in its run (`Sub/step` inside a sub-flow).
    pub fn step(&self) -> &str {
        &self.step
    }
}

/// A step of a run that is held for a person (see [`OnTakeover::Hold`]).
///
/// ```
/// let held = taskflow::HeldStep { step: "charge".into(), reason: "its outcome is unknown".into() };
/// assert_eq!(held.to_string(), "step `charge`: its outcome is unknown");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStep {
    /// The step's path in its run.
    pub step: String,
    /// Why it is held.
    pub reason: String,
}

impl std::fmt::Display for HeldStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step `{}`: {}", self.step, self.reason)
    }
}

/// What a person decided about a held step (see [`release_held`]).
///
/// ```
/// assert_ne!(taskflow::Release::Rerun, taskflow::Release::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// It did not do its work (or doing it again is safe): run it again.
    Rerun,
    /// Count it as failed: the run handles the failure like any other (a retry controller
    /// decides; the step's revert hook gets the failure).
    Fail,
}

/// Why a step is held, as recorded on it.
pub(crate) fn hold_reason(step: &str) -> String {
    format!(
        "held for a person: step `{step}` was RUNNING when its run was interrupted, and its task \
         says `on_takeover = hold`"
    )
}

/// Why a `map` step is held whose task says `on_takeover = revert_then_rerun`.
pub(crate) fn map_reason(step: &str) -> String {
    format!(
        "held for a person: map step `{step}` was RUNNING when its run was interrupted; its task \
         says `on_takeover = revert_then_rerun`, but the outcome of each of its items is unknown \
         and its hook undoes one item from that item's result"
    )
}

/// Why a step is held whose undo failed after a take-over.
pub(crate) fn revert_failed_reason(step: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "held for a person: step `{step}` was RUNNING when its run was interrupted, and its \
         revert hook failed to undo it ({error})"
    )
}

/// Whether a stored step is held: RUNNING with a failure, which only a hold records.
pub(crate) fn is_held(atom: &AtomRecord) -> bool {
    atom.state == StepState::Running && atom.failure.is_some()
}

/// Whether a stored step is being undone after a take-over: REVERTING with neither a result
/// (a step that succeeded has one) nor a failure (a failed one has one).
pub(crate) fn is_undoing_unknown(atom: &AtomRecord) -> bool {
    atom.state == StepState::Reverting && atom.result.is_none() && atom.failure.is_none()
}

/// Releases the held steps of run `flow_id` in `store` as a person decided: each is run again
/// ([`Release::Rerun`]) or counted as failed ([`Release::Fail`]) when the run is next resumed.
/// Returns the steps released: none when nothing is held (so releasing twice is harmless). It
/// takes the run's lease for the write ([`StoreError::RunBusy`] while another owner holds it)
/// and lets go at once.
///
/// ```
/// use taskflow::store::{AtomRecord, Checkpoint, FailureRecord, FlowRecord, MemoryStore, Store};
/// use taskflow::{Release, StepState};
/// use std::sync::Arc;
///
/// let store = Arc::new(MemoryStore::new());
/// let mut flow = FlowRecord::new("book", "Pay", "fp", serde_json::Value::Null);
/// flow.id = "pay-1".into();
/// store.create_flow(&flow).unwrap();
/// let mut charge = AtomRecord::new("charge");
/// charge.state = StepState::Running;
/// charge.failure = Some(FailureRecord { step: "charge".into(), message: "held".into(), is_panic: false });
/// store.checkpoint("pay-1", &Checkpoint { atoms: vec![charge], ..Default::default() }).unwrap();
///
/// let released = futures_executor_block_on(taskflow::release_held(store.clone(), "pay-1", Release::Rerun));
/// assert_eq!(released.unwrap(), ["charge"]);
/// let stored = store.load_flow("pay-1").unwrap().unwrap();
/// assert_eq!(stored.atoms[0].state, StepState::Pending);
/// # fn futures_executor_block_on<T>(f: impl std::future::Future<Output = T>) -> T {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn release_held(
    store: impl IntoStore,
    flow_id: &str,
    how: Release,
) -> Result<Vec<String>, StoreError> {
    let store = store.into_store();
    let stored = store
        .load_flow(flow_id, false)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        })?;
    if !stored.atoms.iter().any(is_held) {
        return Ok(Vec::new());
    }
    let owner = Owner::current();
    let until = unix_millis(SystemTime::now() + Duration::from_secs(30));
    let stored = store.acquire(flow_id, &owner, until, false).await?;
    let fence = Fence {
        owner: owner.id.clone(),
        epoch: stored.flow.epoch,
    };
    let now = unix_millis(SystemTime::now());
    let mut released = Vec::new();
    let atoms = stored
        .atoms
        .into_iter()
        .filter(is_held)
        .map(|mut atom| {
            released.push(atom.name.clone());
            let reason = atom.failure.take().map(|f| f.message).unwrap_or_default();
            match how {
                Release::Rerun => {
                    atom.state = StepState::Pending;
                    atom.runs = 0;
                    atom.revert_failure = None;
                    atom.progress = 0.0;
                    atom.started_at = None;
                    atom.finished_at = None;
                }
                Release::Fail => {
                    atom.state = StepState::Failure;
                    atom.finished_at = Some(now);
                    atom.started_at = atom.started_at.or(Some(now));
                    atom.failure = Some(FailureRecord {
                        step: atom.name.clone(),
                        message: format!("marked failed by a person after it was {reason}"),
                        is_panic: false,
                    });
                }
            }
            atom
        })
        .collect();
    let checkpoint = Checkpoint {
        atoms,
        fence: Some(fence),
        lease: LeaseUpdate::Release,
        ..Checkpoint::default()
    };
    store
        .checkpoint(&Arc::from(flow_id), checkpoint, false)
        .await?;
    Ok(released)
}
