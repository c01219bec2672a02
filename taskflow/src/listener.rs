//! Listeners see every transition of a run and every progress report.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::failure::Failure;
use crate::state::{FlowState, StepState};

/// A flow (or sub-flow) changed state. See [`Listener`] for a listener that records events.
///
/// ```
/// use taskflow::{FlowEvent, FlowState};
/// let e = FlowEvent { flow: "BootVm/storage", state: FlowState::Running, at: std::time::SystemTime::now() };
/// assert!(e.flow.ends_with("storage"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FlowEvent<'a> {
    /// The flow's path: its name, or `Parent/step` for a sub-flow run as step `step`.
    pub flow: &'a str,
    /// The new state.
    pub state: FlowState,
    /// When it happened.
    pub at: SystemTime,
}

/// A step changed state. See [`Listener`] for a listener that records events.
///
/// ```
/// use taskflow::{StepEvent, StepState};
/// let e = StepEvent { flow: "BootVm", step: "attach", state: StepState::Retrying, attempt: 2, failure: None, at: std::time::SystemTime::now() };
/// assert_eq!(format!("{}/{} {} #{}", e.flow, e.step, e.state, e.attempt), "BootVm/attach RETRYING #2");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// The path of the flow the step belongs to (see [`FlowEvent::flow`]).
    pub flow: &'a str,
    /// The step's name in its flow.
    pub step: &'a str,
    /// The new state.
    pub state: StepState,
    /// Which attempt this is (1 unless a retry controller runs the step again).
    pub attempt: u32,
    /// The failure, for `Failure` and `RevertFailure` (for a sub-flow step, the sub-flow's first
    /// failure, named within the sub-flow).
    pub failure: Option<&'a Failure>,
    /// When it happened.
    pub at: SystemTime,
}

/// A task reported progress with [`TaskContext::progress`](crate::TaskContext::progress); the
/// `TaskContext` example shows a listener receiving them.
///
/// ```
/// use taskflow::ProgressEvent;
/// let e = ProgressEvent { flow: "Copy", step: "copy", progress: 0.5, at: std::time::SystemTime::now() };
/// assert_eq!(format!("{:.0}%", e.progress * 100.0), "50%");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProgressEvent<'a> {
    /// The path of the flow the step belongs to.
    pub flow: &'a str,
    /// The step's name in its flow.
    pub step: &'a str,
    /// How far along the step is, from 0.0 to 1.0.
    pub progress: f32,
    /// When it was reported.
    pub at: SystemTime,
}

/// Sees every flow and step transition and every progress report of the runs of an engine it is
/// attached to ([`Engine::listener`](crate::Engine::listener)). Every method has an empty default.
///
/// Listeners are called on the engine's thread, or on a worker thread for progress reports of
/// sync steps; keep them quick. A listener that panics does not break the run: the panic is
/// caught and the listener is called again for the next event.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskflow::prelude::*;
/// use taskflow::{Listener, StepEvent};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
///
/// impl Listener for Log {
///     fn on_step(&self, e: &StepEvent<'_>) {
///         self.0.lock().unwrap().push(format!("{}/{} {}", e.flow, e.step, e.state));
///     }
/// }
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     let log = Arc::new(Log::default());
///     Engine::serial().listener(log.clone()).run(Inc, IncInputs { x: 1 }).blocking().unwrap();
///     assert_eq!(*log.0.lock().unwrap(), ["Inc/inc RUNNING", "Inc/inc SUCCESS"]);
/// }
/// ```
pub trait Listener: Send + Sync + 'static {
    /// A flow changed state.
    fn on_flow(&self, event: &FlowEvent<'_>) {
        let _ = event;
    }

    /// A step changed state.
    fn on_step(&self, event: &StepEvent<'_>) {
        let _ = event;
    }

    /// A step reported progress.
    fn on_progress(&self, event: &ProgressEvent<'_>) {
        let _ = event;
    }
}

/// Logs every run through [`tracing`]: a span per step (`taskflow.step`, with `flow` and `step`
/// fields) from RUNNING to its last state, and an event per transition and progress report.
///
/// ```
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::TracingListener;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     // With a subscriber installed (tracing-subscriber, say), each step shows up as a span.
///     let engine = Engine::serial().listener(Arc::new(TracingListener::default()));
///     assert_eq!(engine.run(Inc, IncInputs { x: 1 }).blocking().unwrap().y, 2);
/// }
/// ```
#[derive(Debug, Default)]
pub struct TracingListener {
    spans: Mutex<HashMap<(String, String), tracing::Span>>,
}

impl Listener for TracingListener {
    fn on_flow(&self, e: &FlowEvent<'_>) {
        tracing::info!(target: "taskflow", flow = e.flow, state = %e.state, "flow {}", e.state);
    }

    fn on_step(&self, e: &StepEvent<'_>) {
        let key = (e.flow.to_owned(), e.step.to_owned());
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let span = spans
            .entry(key.clone())
            .or_insert_with(|| tracing::info_span!(target: "taskflow", "taskflow.step", flow = e.flow, step = e.step))
            .clone();
        let _entered = span.enter();
        match e.failure {
            Some(failure) => {
                tracing::warn!(target: "taskflow", state = %e.state, attempt = e.attempt, error = %failure.error(), "step {}", e.state)
            }
            None => {
                tracing::info!(target: "taskflow", state = %e.state, attempt = e.attempt, "step {}", e.state)
            }
        }
        if matches!(
            e.state,
            StepState::Reverted | StepState::RevertFailure | StepState::Ignore
        ) {
            spans.remove(&key);
        }
    }

    fn on_progress(&self, e: &ProgressEvent<'_>) {
        tracing::info!(target: "taskflow", flow = e.flow, step = e.step, progress = e.progress, "progress");
    }
}

/// Measures how long each step ran (RUNNING to SUCCESS or FAILURE, per attempt); read the
/// [`report`](TimingListener::report) after the run.
///
/// ```
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::TimingListener;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     let timing = Arc::new(TimingListener::default());
///     Engine::serial().listener(timing.clone()).run(Inc, IncInputs { x: 1 }).blocking().unwrap();
///     let report = timing.report();
///     assert_eq!(report.len(), 1);
///     assert_eq!(report[0].step, "Inc/inc");
///     println!("{}", timing); // a table: step, state, attempt, duration
/// }
/// ```
#[derive(Debug, Default)]
pub struct TimingListener {
    inner: Mutex<Timing>,
}

#[derive(Debug, Default)]
struct Timing {
    started: HashMap<String, Instant>,
    done: Vec<StepTiming>,
}

/// One step's measured run, from [`TimingListener::report`] (whose example shows one).
///
/// ```
/// use std::time::Duration;
/// use taskflow::{StepState, StepTiming};
/// let t = StepTiming { step: "Flow/step".into(), state: StepState::Success, attempt: 1, duration: Duration::from_millis(3) };
/// assert!(t.duration < Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    /// `flow/step`.
    pub step: String,
    /// How it ended: `Success` or `Failure`.
    pub state: StepState,
    /// Which attempt.
    pub attempt: u32,
    /// From RUNNING to its end.
    pub duration: Duration,
}

impl TimingListener {
    /// Every finished step run, in the order they finished.
    pub fn report(&self) -> Vec<StepTiming> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .done
            .clone()
    }
}

impl Listener for TimingListener {
    fn on_step(&self, e: &StepEvent<'_>) {
        let key = format!("{}/{}", e.flow, e.step);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match e.state {
            StepState::Running => {
                inner.started.insert(key, Instant::now());
            }
            StepState::Success | StepState::Failure => {
                if let Some(start) = inner.started.remove(&key) {
                    inner.done.push(StepTiming {
                        step: key,
                        state: e.state,
                        attempt: e.attempt,
                        duration: start.elapsed(),
                    });
                }
            }
            _ => {}
        }
    }
}

impl fmt::Display for TimingListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.report();
        let width = report
            .iter()
            .map(|t| t.step.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:<8}  {:>7}  {:>12}",
            "step", "state", "attempt", "duration"
        )?;
        for t in &report {
            writeln!(
                f,
                "{:<width$}  {:<8}  {:>7}  {:>12?}",
                t.step,
                t.state.to_string(),
                t.attempt,
                t.duration
            )?;
        }
        Ok(())
    }
}
