//! The error a flow run ends with.

use std::error::Error as StdError;
use std::fmt;

use crate::failure::Failure;
use crate::state::FlowState;

/// Why a flow run did not succeed.
///
/// It names the step that failed ([`FlowError::failed_step`]), keeps that step's typed error as
/// [`source`](StdError::source) (downcast it with `downcast_ref`), and lists every revert that
/// failed while the flow was being undone. When every revert succeeded the flow ended
/// [`FlowState::Reverted`]; otherwise it ended [`FlowState::Failure`].
///
/// ```
/// use std::error::Error;
/// use taskflow::prelude::*;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("quota exceeded")]
/// struct Quota;
///
/// #[task(provides = id)]
/// fn reserve() -> Result<u32, Quota> {
///     Err(Quota)
/// }
///
/// flow! {
///     flow Reserve() -> (id) { linear [ reserve ] }
/// }
///
/// fn main() {
///     let err = Engine::serial().run(Reserve, ReserveInputs {}).blocking().unwrap_err();
///     assert_eq!(err.failed_step(), "reserve");
///     assert!(err.source().unwrap().downcast_ref::<Quota>().is_some());
///     assert_eq!(err.state(), FlowState::Reverted);
///     assert!(err.revert_failures().is_empty());
/// }
/// ```
#[derive(Debug, Clone)]
pub struct FlowError {
    failures: Vec<Failure>,
    revert_failures: Vec<Failure>,
    /// A controller decided `RevertAll`: enclosing flows revert everything too.
    revert_all: bool,
}

impl FlowError {
    #[doc(hidden)]
    pub fn __new(failures: Vec<Failure>, revert_failures: Vec<Failure>) -> Self {
        debug_assert!(!failures.is_empty());
        FlowError {
            failures,
            revert_failures,
            revert_all: false,
        }
    }

    pub(crate) fn with_revert_all(mut self, revert_all: bool) -> Self {
        self.revert_all = revert_all;
        self
    }

    pub(crate) fn revert_all(&self) -> bool {
        self.revert_all
    }

    /// The name of the step whose failure stopped the flow (`SubFlow/step` inside a sub-flow).
    pub fn failed_step(&self) -> &str {
        self.failures.first().map_or("", Failure::step)
    }

    /// Every step failure, the one that stopped the flow first.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Every revert hook that failed (returned an error or panicked) while the flow was undone.
    pub fn revert_failures(&self) -> &[Failure] {
        &self.revert_failures
    }

    /// The state the flow ended in: `Reverted` when every revert succeeded, else `Failure`.
    pub fn state(&self) -> FlowState {
        if self.revert_failures.is_empty() {
            FlowState::Reverted
        } else {
            FlowState::Failure
        }
    }

    /// Takes the failures apart: (step failures, revert failures).
    pub fn into_parts(self) -> (Vec<Failure>, Vec<Failure>) {
        (self.failures, self.revert_failures)
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut failures = self.failures.iter();
        if let Some(first) = failures.next() {
            write!(f, "{first}")?;
        }
        for other in failures {
            write!(f, "; also {other}")?;
        }
        match self.revert_failures.len() {
            0 => write!(f, "; every completed step was reverted"),
            n => {
                write!(f, "; {n} revert{} failed (", if n == 1 { "" } else { "s" })?;
                for (i, r) in self.revert_failures.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "revert of {r}")?;
                }
                write!(f, "), the flow ended in FAILURE")
            }
        }
    }
}

impl StdError for FlowError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.failures
            .first()
            .map(|f| f.error() as &(dyn StdError + 'static))
    }
}
