//! Why steps and runs stop: what the life-cycle, the failure handling and the drivers hand each
//! other.

use crate::failure::Failure;
use crate::FlowError;

/// Why a step stopped the flow.
#[derive(Debug, Clone)]
pub enum StepFailed {
    /// A task failed; it has not been reverted yet.
    Task(Failure),
    /// A sub-flow failed and already reverted its own steps.
    Flow(FlowError),
    /// A sub-flow was suspended; its values are back in the parent's.
    Suspended,
    /// The step could not start: a retry controller around it had nothing to attempt, or
    /// panicked when asked for the attempt's value (the controller's failure). That controller
    /// is not asked what to do: it would only be asked again.
    NotAttempted(Failure),
    /// A decider on a link into the step failed (it panicked): a failure inside the step's
    /// scope like any other, but the step never ran, so there is nothing of it to undo.
    Decider(Failure),
}

/// A task's failure fails its step (what `?` on a task's outcome does in generated code).
impl From<Failure> for StepFailed {
    fn from(failure: Failure) -> Self {
        StepFailed::Task(failure)
    }
}

/// Why a driver stopped before the end.
pub(crate) enum Stop {
    Failed(FlowError),
    Suspended,
}

/// A step that failed, and why.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) step: usize,
    pub(crate) why: StepFailed,
}
