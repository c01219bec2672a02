//! The states of flows and steps (TaskFlow's names).

use std::fmt;

/// The state of a flow run.
///
/// ```
/// use taskflow::FlowState;
/// assert_eq!(FlowState::Reverted.to_string(), "REVERTED");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        })
    }
}
