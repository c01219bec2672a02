//! The states of flows and steps (TaskFlow's names and transitions).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of a flow run. Serialized (serde) as its upper-case name, like `Display`.
///
/// ```
/// use taskflow::FlowState;
/// assert_eq!(FlowState::Reverted.to_string(), "REVERTED");
/// assert_eq!(serde_json::to_string(&FlowState::Reverted).unwrap(), r#""REVERTED""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowState {
    /// Not started.
    Pending,
    /// Running its steps.
    Running,
    /// Every step succeeded.
    Success,
    /// A step failed and at least one revert failed too.
    Failure,
    /// Undoing the steps that ran.
    Reverting,
    /// A step failed and every step that ran was undone.
    Reverted,
    /// Asked to suspend: letting the steps in flight finish.
    Suspending,
    /// Stopped between steps; can be resumed.
    Suspended,
    /// Picking up a suspended run.
    Resuming,
}

impl FlowState {
    /// Whether a run in this state has ended — SUCCESS, REVERTED or FAILURE — so that resuming it
    /// runs nothing (a stored run in any other state is unfinished: resume it).
    ///
    /// ```
    /// use taskflow::FlowState;
    /// assert!(FlowState::Reverted.is_final());
    /// assert!(!FlowState::Suspended.is_final() && !FlowState::Running.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        matches!(
            self,
            FlowState::Success | FlowState::Reverted | FlowState::Failure
        )
    }
}

impl fmt::Display for FlowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlowState::Pending => "PENDING",
            FlowState::Running => "RUNNING",
            FlowState::Success => "SUCCESS",
            FlowState::Failure => "FAILURE",
            FlowState::Reverting => "REVERTING",
            FlowState::Reverted => "REVERTED",
            FlowState::Suspending => "SUSPENDING",
            FlowState::Suspended => "SUSPENDED",
            FlowState::Resuming => "RESUMING",
        })
    }
}

/// The state of one step (TaskFlow's atom states). Serialized (serde) as its upper-case name,
/// like `Display`.
///
/// ```
/// use taskflow::StepState;
/// assert_eq!(StepState::RevertFailure.to_string(), "REVERT_FAILURE");
/// let state: StepState = serde_json::from_str(r#""REVERT_FAILURE""#).unwrap();
/// assert_eq!(state, StepState::RevertFailure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Outcome; its outputs are stored.
    Success,
    /// Failed (returned an error or panicked).
    Failure,
    /// Its revert hook is running.
    Reverting,
    /// Undone.
    Reverted,
    /// Its revert hook failed.
    RevertFailure,
    /// Skipped by a decider: neither run nor reverted.
    Ignore,
    /// Reverted so that its retry controller can run it again.
    Retrying,
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepState::Pending => "PENDING",
            StepState::Running => "RUNNING",
            StepState::Success => "SUCCESS",
            StepState::Failure => "FAILURE",
            StepState::Reverting => "REVERTING",
            StepState::Reverted => "REVERTED",
            StepState::RevertFailure => "REVERT_FAILURE",
            StepState::Ignore => "IGNORE",
            StepState::Retrying => "RETRYING",
        })
    }
}
