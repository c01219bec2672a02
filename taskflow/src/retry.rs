//! Retry controllers: what to do when a step inside a `retry(..)` sub-flow fails.
//!
//! ```text
//! flow! {
//!     flow Attach(server_id: u32, sizes: Vec<u32>) -> (volume_id) {
//!         linear [
//!             retry(Times(3)) linear [ reserve, attach ],                   // 3 attempts in all
//!             retry(ParameterizedForEach(sizes) -> size) linear [ format ],  // one attempt per size
//!             retry(ForEach(vec![1, 2]) -> zone: u8) linear [ pick ],        // items written inline
//!         ]
//!     }
//! }
//! ```
//!
//! A controller wraps a sub-flow. When a step inside fails, the controller's
//! [`on_failure`](Retry::on_failure) sees the [`History`] of the attempts so far and decides:
//! [`Decision::Retry`] reverts just the sub-flow and runs it again; [`Decision::Revert`] reverts
//! the sub-flow and lets the enclosing controller decide (the whole flow is reverted when there is
//! none); [`Decision::RevertAll`] reverts the whole flow. A controller may provide a value to its
//! sub-flow each attempt (`-> name`), and may wait between attempts ([`Backoff`]).

use std::fmt;
use std::time::Duration;

use crate::failure::Failure;

/// What a controller decides after an attempt of its sub-flow failed.
///
/// ```
/// use taskflow::{Decision, History, Retry, Times};
/// assert_eq!(Times(1).on_failure(&History::default()), Decision::Retry); // no attempt failed yet
/// assert_eq!(Decision::RevertAll.to_string(), "REVERT_ALL");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Revert the sub-flow and run it again.
    Retry,
    /// Revert the sub-flow and defer to the enclosing controller (the whole flow when none).
    Revert,
    /// Revert the whole flow.
    RevertAll,
}

/// The failed attempts of one controller's sub-flow so far (for the current run of the
/// controller: an enclosing retry starts it afresh).
///
/// ```
/// use taskflow::{Decision, History, Retry, Times};
/// let history = History::default();
/// assert_eq!(history.attempts(), 0);
/// assert_eq!(Times(3).on_failure(&history), Decision::Retry);
/// ```
#[derive(Debug, Clone, Default)]
pub struct History {
    attempts: Vec<Vec<Failure>>,
}

impl History {
    /// How many attempts have failed.
    pub fn attempts(&self) -> u32 {
        self.attempts.len() as u32
    }

    /// The failures of failed attempt `n` (1-based).
    pub fn failures_of(&self, n: u32) -> &[Failure] {
        n.checked_sub(1)
            .and_then(|i| self.attempts.get(i as usize))
            .map_or(&[], Vec::as_slice)
    }

    /// The failures of the last failed attempt.
    pub fn last_failures(&self) -> &[Failure] {
        self.attempts.last().map_or(&[], Vec::as_slice)
    }

    /// Every failure of every attempt, oldest first.
    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.attempts.iter().flatten()
    }

    pub(crate) fn from_attempts(attempts: Vec<Vec<Failure>>) -> Self {
        History { attempts }
    }

    pub(crate) fn each_attempt(&self) -> &[Vec<Failure>] {
        &self.attempts
    }

    pub(crate) fn record(&mut self, failures: Vec<Failure>) {
        self.attempts.push(failures);
    }

    /// The failures of the last failed attempt, to add to.
    pub(crate) fn last_mut(&mut self) -> Option<&mut Vec<Failure>> {
        self.attempts.last_mut()
    }

    pub(crate) fn clear(&mut self) {
        self.attempts.clear();
    }
}

/// A retry controller. Implement it for your own policies; the built-ins are [`Times`],
/// [`ForEach`] (and `ParameterizedForEach(name)` in `flow!`), [`AlwaysRevert`] and
/// [`AlwaysRevertAll`].
///
/// A controller is a policy: `flow!` evaluates its expression when it needs it, and the engine
/// keeps the attempt count and the [`History`].
///
/// ```
/// use taskflow::{Decision, History, Retry};
///
/// /// Retries only failures whose message says "busy", at most 5 attempts.
/// struct WhileBusy;
///
/// impl Retry for WhileBusy {
///     type Item = ();
///     fn item(&self, attempt: u32) -> Option<()> { (attempt <= 5).then_some(()) }
///     fn on_failure(&self, history: &History) -> Decision {
///         let busy = history.last_failures().iter().all(|f| f.error().to_string().contains("busy"));
///         if busy && history.attempts() < 5 { Decision::Retry } else { Decision::Revert }
///     }
/// }
/// assert_eq!(WhileBusy.on_failure(&History::default()), Decision::Retry);
/// ```
pub trait Retry: Send + Sync + 'static {
    /// What the controller provides to its sub-flow each attempt (`()` for nothing).
    type Item: Send + Sync + 'static;

    /// The value for attempt `attempt` (1-based), or `None` when there is nothing to attempt
    /// (an empty [`ForEach`]): then the sub-flow fails without running.
    fn item(&self, attempt: u32) -> Option<Self::Item>;

    /// What to do now that attempt `history.attempts()` failed.
    fn on_failure(&self, history: &History) -> Decision;

    /// How long to wait before attempt `attempt` (2 and later). None by default.
    fn delay(&self, attempt: u32) -> Option<Duration> {
        let _ = attempt;
        None
    }

    /// The same controller, waiting per `backoff` before each retry (`Times(3).backoff(..)`).
    fn backoff(self, backoff: Backoff) -> WithBackoff<Self>
    where
        Self: Sized,
    {
        WithBackoff {
            inner: self,
            backoff,
        }
    }
}

/// `n` attempts in all (TaskFlow's `Times`): retries while fewer than `n` attempts failed, then
/// reverts (deferring to the enclosing controller).
///
/// ```
/// use taskflow::{Backoff, Retry, Times};
/// use std::time::Duration;
/// let times = Times(3).backoff(Backoff::fixed(Duration::from_millis(5)));
/// assert_eq!(times.delay(2), Some(Duration::from_millis(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times(pub u32);

impl Retry for Times {
    type Item = ();

    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }

    fn on_failure(&self, history: &History) -> Decision {
        if history.attempts() < self.0 {
            Decision::Retry
        } else {
            Decision::Revert
        }
    }
}

/// One attempt per value, in order (TaskFlow's `ForEach`); each attempt's value is provided to
/// the sub-flow (`retry(ForEach(vec![..]) -> name: Type)`). When every value failed, it reverts.
/// `ParameterizedForEach(values)` in `flow!` builds one from a flow value `values: Vec<T>`.
///
/// ```
/// use taskflow::{Decision, ForEach, History, Retry};
/// let each = ForEach(vec!["a", "b"]);
/// assert_eq!(each.item(1), Some("a"));
/// assert_eq!(each.item(3), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEach<T>(pub Vec<T>);

impl<T: Clone + Send + Sync + 'static> Retry for ForEach<T> {
    type Item = T;

    fn item(&self, attempt: u32) -> Option<T> {
        attempt
            .checked_sub(1)
            .and_then(|i| self.0.get(i as usize))
            .cloned()
    }

    fn on_failure(&self, history: &History) -> Decision {
        if (history.attempts() as usize) < self.0.len() {
            Decision::Retry
        } else {
            Decision::Revert
        }
    }
}

/// Never retries: reverts the sub-flow and defers to the enclosing controller.
///
/// ```
/// use taskflow::{AlwaysRevert, Decision, History, Retry};
/// assert_eq!(AlwaysRevert.on_failure(&History::default()), Decision::Revert);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlwaysRevert;

impl Retry for AlwaysRevert {
    type Item = ();

    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }

    fn on_failure(&self, _history: &History) -> Decision {
        Decision::Revert
    }
}

/// Never retries: reverts the whole flow, whatever enclosing controllers would say.
///
/// ```
/// use taskflow::{AlwaysRevertAll, Decision, History, Retry};
/// assert_eq!(AlwaysRevertAll.on_failure(&History::default()), Decision::RevertAll);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlwaysRevertAll;

impl Retry for AlwaysRevertAll {
    type Item = ();

    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }

    fn on_failure(&self, _history: &History) -> Decision {
        Decision::RevertAll
    }
}

/// Waiting between attempts: `base * factor^(attempt - 2)`, at most `max`, then spread by up to
/// `jitter` (a fraction: 0.1 is ±10%) so that many runs do not retry in lockstep.
///
/// ```
/// use std::time::Duration;
/// use taskflow::Backoff;
/// let b = Backoff::exponential(Duration::from_millis(100), 2.0).max(Duration::from_secs(1));
/// assert_eq!(b.delay(2), Duration::from_millis(100));
/// assert_eq!(b.delay(4), Duration::from_millis(400));
/// assert_eq!(b.delay(10), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// The same delay before every retry.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }

    /// `base` before the first retry, multiplied by `factor` before each next one.
    pub fn exponential(base: Duration, factor: f64) -> Self {
        Backoff {
            base,
            factor: factor.max(1.0),
            max: Duration::MAX,
            jitter: 0.0,
        }
    }

    /// Caps the delay.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Spreads each delay by up to ±`fraction` of itself (clamped to 0..=1).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The delay before attempt `attempt` (2 and later), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(2).min(1000) as i32;
        let secs = self.base.as_secs_f64() * self.factor.powi(exp);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(Duration::MAX)
            .min(self.max)
    }

    /// The delay with jitter applied.
    pub(crate) fn jittered(&self, attempt: u32) -> Duration {
        let delay = self.delay(attempt);
        if self.jitter == 0.0 {
            return delay;
        }
        let spread = (random_unit() * 2.0 - 1.0) * self.jitter;
        Duration::try_from_secs_f64(delay.as_secs_f64() * (1.0 + spread)).unwrap_or(delay)
    }
}

/// A number in [0, 1) from the clock and a counter: jitter needs spread, not cryptography.
fn random_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A controller with a [`Backoff`] between attempts: what [`Retry::backoff`] returns.
///
/// ```
/// use std::time::Duration;
/// use taskflow::{Backoff, Retry, Times};
/// let times = Times(4).backoff(Backoff::exponential(Duration::from_millis(10), 3.0));
/// assert_eq!(times.delay(3), Some(Duration::from_millis(30)));
/// assert_eq!(times.item(2), Some(()));
/// ```
#[derive(Debug, Clone)]
pub struct WithBackoff<R> {
    inner: R,
    backoff: Backoff,
}

impl<R: Retry> Retry for WithBackoff<R> {
    type Item = R::Item;

    fn item(&self, attempt: u32) -> Option<R::Item> {
        self.inner.item(attempt)
    }

    fn on_failure(&self, history: &History) -> Decision {
        self.inner.on_failure(history)
    }

    fn delay(&self, attempt: u32) -> Option<Duration> {
        Some(self.backoff.jittered(attempt))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Retry => "RETRY",
            Decision::Revert => "REVERT",
            Decision::RevertAll => "REVERT_ALL",
        })
    }
}
