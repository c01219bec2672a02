//! What went wrong in a step: an error it returned, or a panic it raised.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// The error type every task error is converted into.
///
/// ```
/// let e: taskflow::BoxError = std::io::Error::other("disk full").into();
/// assert_eq!(e.to_string(), "disk full");
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A step's failure: the step's name and the error it returned (or the panic it raised).
///
/// The typed error stays reachable: [`Failure::downcast_ref`] gives it back. Cloning a `Failure`
/// is cheap (the error is shared), which lets revert hooks receive it by value.
///
/// ```
/// use taskflow::Failure;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("disk full")]
/// struct DiskFull;
///
/// let failure = Failure::from_error("configure", DiskFull);
/// assert_eq!(failure.step(), "configure");
/// assert!(failure.downcast_ref::<DiskFull>().is_some());
/// assert!(!failure.is_panic());
/// assert_eq!(failure.to_string(), "step `configure` failed: disk full");
/// ```
#[derive(Clone)]
pub struct Failure {
    step: Arc<str>,
    error: Arc<dyn StdError + Send + Sync + 'static>,
}

impl Failure {
    /// A failure of `step` caused by `error`.
    pub fn from_error(step: impl Into<String>, error: impl Into<BoxError>) -> Self {
        Failure {
            step: Arc::from(step.into()),
            error: Arc::from(error.into()),
        }
    }

    pub(crate) fn from_panic(step: &str, payload: Box<dyn Any + Send>) -> Self {
        let message = panic_message(&*payload);
        Failure::from_error(step, PanicError { message })
    }

    /// The name of the step that failed; steps of a sub-flow are named `SubFlow/step`. A retry
    /// controller that failed (it panicked) is named after the steps it covers, in run order:
    /// `retry [first..last]`, or `retry [step]` for one step.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The error the step returned, or a [`PanicError`] when it panicked.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }

    /// The step's own error type, when it is `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        (*self.error).downcast_ref::<E>()
    }

    /// Whether the step panicked rather than returning an error.
    pub fn is_panic(&self) -> bool {
        (*self.error).is::<PanicError>()
    }

    pub(crate) fn within(mut self, parent_step: &str) -> Self {
        self.step = Arc::from(format!("{parent_step}/{}", self.step));
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step `{}` failed: {}", self.step, self.error)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("step", &self.step)
            .field("error", &self.error)
            .finish()
    }
}

/// The message of a panic, from its payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not a string".to_owned()
    }
}

/// Why a run that was cancelled ([`SuspendHandle::cancel`](crate::SuspendHandle::cancel)) was
/// reverted: the failure of its error, named after the flow.
///
/// ```
/// assert_eq!(
///     taskflow::Cancelled.to_string(),
///     "cancelled: the run was asked to stop and undo what it did"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled: the run was asked to stop and undo what it did")]
pub struct Cancelled;

/// The error recorded for a step (or a revert hook) that panicked.
///
/// ```
/// use taskflow::PanicError;
/// let e = PanicError::new("index out of bounds");
/// assert_eq!(e.to_string(), "panicked: index out of bounds");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
pub struct PanicError {
    message: String,
}

impl PanicError {
    /// A panic with this message.
    pub fn new(message: impl Into<String>) -> Self {
        PanicError {
            message: message.into(),
        }
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}
