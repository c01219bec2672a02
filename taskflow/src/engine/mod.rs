//! Engines run flows: they decide when each step of a flow's static executor starts, and undo
//! what ran when a step fails.
//!
//! A flow's generated code knows how to start, finish and revert each of its steps (see
//! [`Flow`]); the drivers here walk those steps — one at a time in the compile-time order
//! ([`serial`]), or each as soon as its inputs exist ([`parallel`]).

mod parallel;
mod pool;
mod serial;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::durable::Journal;
use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::FlowGraph;
use crate::FlowError;

pub(crate) use pool::Pool;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::listener::{FlowEvent, Listener, ProgressEvent, StepEvent};
use crate::retry::Decision;
use crate::state::{FlowState, StepState};

/// Runs flows, serially or in parallel.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = sum)]
/// fn add(a: u32, b: u32) -> u32 { a + b }
///
/// #[task(provides = text)]
/// async fn render(sum: &u32) -> String { format!("sum = {sum}") }
///
/// flow! {
///     flow Add(a: u32, b: u32) -> (sum, text) { linear [ add, render ] }
/// }
///
/// // From plain code:
/// let out = Engine::serial().run_blocking(Add, AddInputs { a: 2, b: 3 }).unwrap();
/// assert_eq!((out.sum, out.text.as_str()), (5, "sum = 5"));
///
/// // From async code, on the parallel engine:
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = Engine::parallel().run(Add, AddInputs { a: 1, b: 1 }).await.unwrap();
/// assert_eq!(out.sum, 2);
/// # });
/// ```
#[derive(Clone)]
pub struct Engine {
    mode: Mode,
    listeners: Vec<Arc<dyn Listener>>,
    /// The log book durable runs are recorded in; the flow's name when `None`.
    pub(crate) logbook: Option<Arc<str>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("listeners", &self.listeners.len())
            .field("logbook", &self.logbook)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Mode {
    Serial,
    Parallel {
        workers: usize,
        max_in_flight: Option<usize>,
        pool: Arc<std::sync::OnceLock<Pool>>,
    },
}

impl Default for Engine {
    fn default() -> Self {
        Engine::serial()
    }
}

impl Engine {
    /// The serial engine: one step at a time, in the topological order `flow!` computed; after a
    /// failure nothing new starts and every step that ran is reverted, newest first.
    pub fn serial() -> Self {
        Engine {
            mode: Mode::Serial,
            listeners: Vec::new(),
            logbook: None,
        }
    }

    /// The parallel engine: a step starts as soon as every step it depends on has finished.
    /// Async steps run concurrently on the caller's task; sync steps run on a pool of worker
    /// threads owned by this engine (one per available core; see [`workers`](Self::workers)), so
    /// CPU-bound sync steps use every core. After a failure, steps already running finish (their
    /// results are kept so they can be reverted), nothing new starts, and every step that ran is
    /// reverted in reverse dependency order, independent reverts concurrently.
    pub fn parallel() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Engine {
            mode: Mode::Parallel {
                workers,
                max_in_flight: None,
                pool: Arc::default(),
            },
            listeners: Vec::new(),
            logbook: None,
        }
    }

    /// How many worker threads run sync steps (parallel engine; at least 1). The pool starts on
    /// the first run and lives as long as the engine and its clones.
    pub fn workers(mut self, n: usize) -> Self {
        if let Mode::Parallel { workers, pool, .. } = &mut self.mode {
            *workers = n.max(1);
            *pool = Arc::default();
        }
        self
    }

    /// At most `n` steps in flight at once, async and sync together (parallel engine; at least 1).
    /// Unlimited by default: async steps that mostly wait should all be able to wait together.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        if let Mode::Parallel { max_in_flight, .. } = &mut self.mode {
            *max_in_flight = Some(n.max(1));
        }
        self
    }

    /// The log book (a name that groups runs in a store) that this engine's durable runs are
    /// recorded in; by default each run's flow name.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::{MemoryStore, Store};
    ///
    /// #[task(provides = y)]
    /// fn inc(x: u32) -> u32 { x + 1 }
    ///
    /// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
    ///
    /// fn main() {
    ///     let store = Arc::new(MemoryStore::new());
    ///     let engine = Engine::serial().logbook("nightly");
    ///     engine.run_durable_blocking(Inc, IncInputs { x: 1 }, store.clone(), "i").unwrap();
    ///     assert_eq!(store.load_flow("i").unwrap().unwrap().flow.logbook, "nightly");
    /// }
    /// ```
    pub fn logbook(mut self, name: impl Into<String>) -> Self {
        self.logbook = Some(Arc::from(name.into()));
        self
    }

    /// Attaches a listener: it sees every flow and step transition and every progress report of
    /// the runs of this engine (and of its clones made afterwards).
    pub fn listener(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Runs `flow` with `inputs` to completion, or to a complete revert.
    pub async fn run<F: Flow>(&self, flow: F, inputs: F::Inputs) -> Result<F::Outputs, FlowError> {
        let _ = flow;
        let mut values = F::__values(inputs);
        let run = RunContext::new(self, SuspendHandle::new(), F::NAME);
        match drive::<F>(&mut values, &run).await {
            Ok(()) => Ok(F::__outputs(values)),
            Err(Stop::Failed(error)) => Err(error),
            Err(Stop::Suspended) => unreachable!("nothing can ask this run to suspend"),
        }
    }

    /// Runs `flow` with `inputs` until it completes, fails (and is reverted), or `suspend` asks it
    /// to stop: then the steps in flight finish and the run hands back its state, which
    /// [`resume`](Self::resume) continues without running finished steps again.
    ///
    /// ```
    /// use taskflow::prelude::*;
    /// use taskflow::{Finished, SuspendHandle, TaskContext};
    ///
    /// #[task(provides = a)]
    /// fn first(suspend: &SuspendHandle) -> u32 {
    ///     suspend.suspend(); // e.g. a shutdown signal arriving while the step runs
    ///     1
    /// }
    ///
    /// #[task(provides = b)]
    /// fn second(a: u32) -> u32 { a + 1 }
    ///
    /// flow! { flow Two(suspend: SuspendHandle) -> (b) { linear [ first, second ] } }
    ///
    /// fn main() {
    ///     let engine = Engine::serial();
    ///     let handle = SuspendHandle::new();
    ///     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    ///     let started = runtime.block_on(engine.start(Two, TwoInputs { suspend: handle.clone() }, &handle));
    ///     let Ok(Finished::Suspended(paused)) = started else { panic!("expected a suspended run") };
    ///     let resumed = runtime.block_on(engine.resume(paused, &SuspendHandle::new())).unwrap();
    ///     let Finished::Done(out) = resumed else { panic!("expected the end") };
    ///     assert_eq!(out.b, 2);
    /// }
    /// ```
    pub async fn start<F: Flow>(
        &self,
        flow: F,
        inputs: F::Inputs,
        suspend: &SuspendHandle,
    ) -> Result<Finished<F>, FlowError> {
        let _ = flow;
        self.resume(
            Paused {
                values: F::__values(inputs),
            },
            suspend,
        )
        .await
    }

    /// Continues a suspended run (see [`start`](Self::start)); finished steps are not run again.
    pub async fn resume<F: Flow>(
        &self,
        paused: Paused<F>,
        suspend: &SuspendHandle,
    ) -> Result<Finished<F>, FlowError> {
        let mut values = paused.values;
        let run = RunContext::new(self, suspend.clone(), F::NAME);
        match drive::<F>(&mut values, &run).await {
            Ok(()) => Ok(Finished::Done(F::__outputs(values))),
            Err(Stop::Suspended) => Ok(Finished::Suspended(Paused { values })),
            Err(Stop::Failed(error)) => Err(error),
        }
    }

    /// Runs `flow` from code that has no async runtime, on a fresh current-thread Tokio runtime
    /// (with every driver the Tokio features in the build provide, so async tasks may sleep).
    ///
    /// Called from inside a Tokio runtime, it runs the flow on a scoped helper thread instead of
    /// blocking the runtime's own thread (prefer [`run`](Self::run) there).
    pub fn run_blocking<F: Flow>(
        &self,
        flow: F,
        inputs: F::Inputs,
    ) -> Result<F::Outputs, FlowError> {
        self.blocking(|| self.run(flow, inputs))
            .map_err(engine_error)?
    }

    /// Runs the future `make` returns on a fresh current-thread Tokio runtime (on a scoped
    /// helper thread when called from inside a runtime). `Err` when the runtime cannot start.
    pub(crate) fn blocking<Fut>(
        &self,
        make: impl FnOnce() -> Fut + Send,
    ) -> std::io::Result<Fut::Output>
    where
        Fut: Future,
        Fut::Output: Send,
    {
        let go = move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(make()))
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| match scope.spawn(go).join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        } else {
            go()
        }
    }
}

/// The error of a run whose runtime could not start ([`Engine::blocking`]).
pub(crate) fn engine_error(e: std::io::Error) -> FlowError {
    FlowError::__new(vec![Failure::from_error("<engine>", e)], Vec::new())
}

/// What a run carries from step to step besides the flow's values: the engine's mode, its
/// listeners, the suspend handle, and which flow (or sub-flow) the steps belong to.
#[derive(Clone)]
pub struct RunContext {
    shared: Arc<Shared>,
    /// `Root` at the top, `Root/step` for the steps of sub-flow step `step`.
    flow: Arc<str>,
    /// The path of this (sub-)flow's steps in a store: `""` at the top, `step/` inside sub-flow
    /// step `step`.
    rel: Arc<str>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("flow", &self.flow)
            .finish_non_exhaustive()
    }
}

struct Shared {
    mode: Mode,
    listeners: Vec<Arc<dyn Listener>>,
    suspend: SuspendHandle,
    /// A durable run's write-ahead journal.
    journal: Option<Arc<Journal>>,
}

impl RunContext {
    fn new(engine: &Engine, suspend: SuspendHandle, flow: &str) -> Self {
        Self::with_journal(engine, suspend, flow, None)
    }

    /// The context of a durable run, which writes ahead to `journal`.
    pub(crate) fn durable(
        engine: &Engine,
        journal: Arc<Journal>,
        suspend: SuspendHandle,
        flow: &str,
    ) -> Self {
        Self::with_journal(engine, suspend, flow, Some(journal))
    }

    fn with_journal(
        engine: &Engine,
        suspend: SuspendHandle,
        flow: &str,
        journal: Option<Arc<Journal>>,
    ) -> Self {
        RunContext {
            shared: Arc::new(Shared {
                mode: engine.mode.clone(),
                listeners: engine.listeners.clone(),
                suspend,
                journal,
            }),
            flow: Arc::from(flow),
            rel: Arc::from(""),
        }
    }

    /// The context for the steps of sub-flow step `step`.
    pub(crate) fn within(&self, step: &str) -> RunContext {
        RunContext {
            shared: self.shared.clone(),
            flow: Arc::from(format!("{}/{step}", self.flow)),
            rel: Arc::from(format!("{}{step}/", self.rel)),
        }
    }

    /// A step's path in the store.
    fn path(&self, step: &str) -> String {
        format!("{}{step}", self.rel)
    }

    fn journal(&self) -> Option<&Journal> {
        self.shared.journal.as_deref()
    }

    /// Writes what the journal holds (a durable run); false when a checkpoint failed and the
    /// run must stop.
    #[inline]
    pub(crate) fn commit(&self) -> bool {
        self.journal().is_none_or(Journal::commit)
    }

    /// Records step `step`'s result, just after it succeeded (a durable run).
    #[inline]
    pub(crate) fn record_result<F: Flow>(&self, values: &F::Values, step: usize) {
        if let Some(journal) = self.journal() {
            let name = F::graph().steps()[step].name();
            journal.result::<F>(&self.path(name), values, step);
        }
    }

    /// Records a step's state in the journal only (a durable run; listeners are not told).
    pub(crate) fn record_step(&self, step: &str, state: StepState, attempt: u32) {
        if let Some(journal) = self.journal() {
            journal.step(self.path(step), state, attempt, None);
        }
    }

    /// Records retry scope `scope`'s attempt and history (a durable run).
    pub(crate) fn record_retry(&self, scope: usize, attempt: u32, history: &crate::retry::History) {
        if let Some(journal) = self.journal() {
            journal.retry(self.rel.trim_end_matches('/'), scope, attempt, history);
        }
    }

    /// Records every step of sub-flow `graph` (at `prefix`), recursively, as PENDING and its
    /// retry scopes at attempt 1: a retried sub-flow starts afresh.
    pub(crate) fn record_pending_within(&self, step: &str, graph: &FlowGraph) {
        if let Some(journal) = self.journal() {
            journal.pending_flow(&self.path(step), graph);
        }
    }

    pub(crate) fn flow(&self) -> &str {
        &self.flow
    }

    /// The parallel engine's worker pool (started on first use); none on the serial engine.
    pub(crate) fn pool(&self) -> Option<&Pool> {
        match &self.shared.mode {
            Mode::Serial => None,
            Mode::Parallel { workers, pool, .. } => Some(pool.get_or_init(|| Pool::new(*workers))),
        }
    }

    /// Whether the run must stop starting things: suspension was asked for, or a durable
    /// run's checkpoint failed.
    #[inline]
    pub(crate) fn suspend_requested(&self) -> bool {
        self.shared.suspend.is_requested() || self.journal().is_some_and(Journal::failed)
    }

    /// Calls every listener, each behind `catch_unwind`: a listener that panics breaks nothing.
    fn notify(&self, call: impl Fn(&dyn Listener)) {
        for listener in &self.shared.listeners {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&**listener)));
        }
    }

    #[inline]
    pub(crate) fn flow_event(&self, state: FlowState) {
        if let Some(journal) = self.journal() {
            if self.rel.is_empty() {
                journal.flow_state(state);
            }
        }
        if self.shared.listeners.is_empty() {
            return;
        }
        let event = FlowEvent {
            flow: &self.flow,
            state,
            at: SystemTime::now(),
        };
        self.notify(|l| l.on_flow(&event));
    }

    #[inline]
    pub(crate) fn step_event(
        &self,
        step: &str,
        state: StepState,
        attempt: u32,
        failure: Option<&Failure>,
    ) {
        if let Some(journal) = self.journal() {
            journal.step(self.path(step), state, attempt, failure);
        }
        if self.shared.listeners.is_empty() {
            return;
        }
        let event = StepEvent {
            flow: &self.flow,
            step,
            state,
            attempt,
            failure,
            at: SystemTime::now(),
        };
        self.notify(|l| l.on_step(&event));
    }

    pub(crate) fn progress(&self, step: &str, progress: f32) {
        if let Some(journal) = self.journal() {
            journal.progress(self.path(step), progress);
        }
        if self.shared.listeners.is_empty() {
            return;
        }
        let event = ProgressEvent {
            flow: &self.flow,
            step,
            progress,
            at: SystemTime::now(),
        };
        self.notify(|l| l.on_progress(&event));
    }
}

/// Asks a run to stop after the steps in flight ([`Engine::start`], [`Engine::resume`]).
/// Obtainable before a run and usable from anywhere during it (clones share the request).
///
/// ```
/// let handle = taskflow::SuspendHandle::new();
/// assert!(!handle.is_requested());
/// handle.clone().suspend();
/// assert!(handle.is_requested());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SuspendHandle(Arc<AtomicBool>);

impl SuspendHandle {
    /// A handle that has not asked for anything yet.
    pub fn new() -> Self {
        SuspendHandle::default()
    }

    /// Asks the run to stop after the steps in flight.
    pub fn suspend(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether suspension was asked for.
    #[inline]
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run that can be suspended ended ([`Engine::start`] has an example).
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::{Finished, SuspendHandle};
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
///     match rt.block_on(Engine::serial().start(Inc, IncInputs { x: 1 }, &SuspendHandle::new())).unwrap() {
///         Finished::Done(out) => assert_eq!(out.y, 2),
///         Finished::Suspended(_) => unreachable!("nobody asked"),
///     }
/// }
/// ```
#[derive(Debug)]
pub enum Finished<F: Flow> {
    /// Every step succeeded.
    Done(F::Outputs),
    /// Suspended between steps: hand it to [`Engine::resume`].
    Suspended(Paused<F>),
}

/// A suspended run: the flow's values and where each step is; [`Engine::resume`] continues it
/// (the [`Engine::start`] example suspends and resumes one).
///
/// ```
/// fn resume_later<F: taskflow::Flow>(paused: taskflow::Paused<F>) -> Vec<taskflow::Paused<F>> {
///     vec![paused] // e.g. kept until the service is back
/// }
/// ```
pub struct Paused<F: Flow> {
    values: F::Values,
}

impl<F: Flow> std::fmt::Debug for Paused<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paused")
            .field("flow", &F::NAME)
            .finish_non_exhaustive()
    }
}

/// Why a driver stopped before the end.
pub(crate) enum Stop {
    Failed(FlowError),
    Suspended,
}

/// Why a step stopped the flow.
#[derive(Debug)]
pub enum StepFailed {
    /// A task failed; it has not been reverted yet.
    Task(Failure),
    /// A sub-flow failed and already reverted its own steps.
    Flow(FlowError),
    /// A sub-flow was suspended; its values are back in the parent's.
    Suspended,
    /// The step could not start: a retry controller around it had nothing to attempt.
    NotAttempted(Failure),
}

/// How a sub-flow run as a step ended.
pub enum SubflowEnd<V> {
    /// Done: its values, for its outputs and a later revert.
    Done(V),
    /// Failed, and reverted itself.
    Failed(FlowError),
    /// Suspended: its values, to resume it.
    Suspended(V),
}

/// Runs every step of a flow's values that has not finished yet, with the run's engine; on
/// failure, reverts what ran and returns what went wrong.
pub(crate) async fn drive<F: Flow>(values: &mut F::Values, run: &RunContext) -> Result<(), Stop> {
    let resuming = F::__status(values).started();
    run.flow_event(if resuming {
        FlowState::Resuming
    } else {
        FlowState::Running
    });
    if resuming {
        run.flow_event(FlowState::Running);
    }
    let result = match handle_restored::<F>(values, run).await {
        Err(e) => Err(Stop::Failed(e)),
        Ok(()) => match &run.shared.mode {
            Mode::Serial => serial::drive::<F>(values, run).await,
            Mode::Parallel { max_in_flight, .. } => {
                let pool = run.pool().expect("the parallel engine has a pool");
                parallel::drive::<F>(values, run, pool, max_in_flight.unwrap_or(usize::MAX)).await
            }
        },
    };
    run.flow_event(match &result {
        Ok(()) => FlowState::Success,
        Err(Stop::Suspended) => FlowState::Suspended,
        Err(Stop::Failed(e)) => e.state(),
    });
    run.commit();
    result
}

/// A run restored from a store whose failure handling a crash interrupted: handles those
/// failures again (the controllers decide from the restored histories).
async fn handle_restored<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
) -> Result<(), FlowError> {
    if F::__status(values).unhandled.is_empty() {
        return Ok(());
    }
    let (failed, prior) = take_restored::<F>(values);
    on_failure::<F>(values, failed, prior, run).await
}

/// Takes the failures restored from a store (as the drivers would have seen them: a sub-flow's,
/// a task's, or one of a step that never started) and the reverts that already failed.
fn take_restored<F: Flow>(values: &mut F::Values) -> (Vec<(usize, StepFailed)>, Vec<Failure>) {
    let status = F::__status(values);
    let steps = F::graph().steps();
    let failed = std::mem::take(&mut status.unhandled)
        .into_iter()
        .map(|(step, failure, never_ran)| {
            let why = if steps[step].exec() == crate::graph::Exec::Flow {
                StepFailed::Flow(FlowError::__new(vec![failure], Vec::new()))
            } else if never_ran {
                StepFailed::NotAttempted(failure)
            } else {
                StepFailed::Task(failure)
            };
            (step, why)
        })
        .collect();
    (failed, std::mem::take(&mut status.prior_reverts))
}

/// Finishes the revert of a run restored from a store in REVERTING: undoes what is left and
/// returns the run's error.
pub(crate) async fn finish_revert<F: Flow>(values: &mut F::Values, run: &RunContext) -> FlowError {
    run.flow_event(FlowState::Reverting);
    let (failed, mut reverts) = take_restored::<F>(values);
    let mut own = HashMap::new();
    let mut failures = Vec::new();
    for (step, why) in failed {
        let (f, r, o) = failure_parts::<F>(step, why);
        failures.extend(f);
        reverts.extend(r);
        if let Some(o) = o {
            own.insert(step, o); // a failed task is undone with its own failure
        }
    }
    if failures.is_empty() {
        failures.push(Failure::from_error(
            run.flow(),
            crate::RecordedError::new("the run was reverting, with no failure recorded"),
        ));
    }
    let failures: Arc<[Failure]> = failures.into();
    reverts.extend(revert_ran::<F>(values, &mut own, None, &failures, run).await);
    let error = FlowError::__new(failures.to_vec(), reverts);
    run.flow_event(error.state());
    run.commit();
    error
}

/// Runs a sub-flow as a step of its parent: owns the sub-flow's values and hands them back
/// (they are needed to revert or resume it later), or the sub-flow's error after it reverted
/// itself.
pub async fn run_subflow<F: Flow>(
    mut values: F::Values,
    step: &'static str,
    run: RunContext,
) -> SubflowEnd<F::Values> {
    let run = run.within(step);
    match drive::<F>(&mut values, &run).await {
        Ok(()) => SubflowEnd::Done(values),
        Err(Stop::Suspended) => SubflowEnd::Suspended(values),
        Err(Stop::Failed(e)) => SubflowEnd::Failed(e),
    }
}

/// Reverts one step and reports its transitions.
async fn revert_step<F: Flow>(
    values: &mut F::Values,
    step: usize,
    own: Option<Failure>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let name = F::graph().steps()[step].name();
    let attempt = F::__status(values).attempts[step];
    F::__status(values).steps[step] = StepState::Reverting;
    run.step_event(name, StepState::Reverting, attempt, None);
    if !run.commit() {
        return Vec::new(); // the run stops: the store still says what to undo
    }
    let failed = F::__revert(values, step, own, failures.clone(), run).await;
    let state = if failed.is_empty() {
        StepState::Reverted
    } else {
        StepState::RevertFailure
    };
    F::__status(values).steps[step] = state;
    run.step_event(name, state, attempt, failed.first());
    failed
}

/// Reverts a completed (or suspended) sub-flow as a step of its parent.
pub async fn revert_subflow<F: Flow>(
    values: Option<F::Values>,
    step: &'static str,
    failures: Arc<[Failure]>,
    run: RunContext,
) -> Vec<Failure> {
    let Some(mut values) = values else {
        return Vec::new();
    };
    let run = run.within(step);
    run.flow_event(FlowState::Reverting);
    let failed = revert_ran::<F>(&mut values, &mut HashMap::new(), None, &failures, &run).await;
    run.flow_event(if failed.is_empty() {
        FlowState::Reverted
    } else {
        FlowState::Failure
    });
    crate::__private::within(step, failed)
}

/// Reverts every step that ran — those that succeeded, and failed tasks (with their own failure,
/// taken from `own`) — of the whole flow or only of `scope`: newest first (serial) or in reverse
/// dependency order (parallel).
async fn revert_ran<F: Flow>(
    values: &mut F::Values,
    own: &mut HashMap<usize, Failure>,
    scope: Option<usize>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let only = scope.map(|s| F::graph().scopes()[s].steps);
    match &run.shared.mode {
        Mode::Serial => serial::revert::<F>(values, own, only, failures, run).await,
        Mode::Parallel { .. } => parallel::revert::<F>(values, own, only, failures, run).await,
    }
}

/// Whether step `step` must be undone: it succeeded, or it is a task that failed.
fn to_undo<F: Flow>(values: &mut F::Values, own: &HashMap<usize, Failure>, step: usize) -> bool {
    match F::__status(values).steps[step] {
        StepState::Success => true,
        StepState::Failure => own.contains_key(&step),
        _ => false,
    }
}

/// Records that step `step` failed: FAILURE in the run's state and for the listeners.
fn mark_failed<F: Flow>(values: &mut F::Values, step: usize, why: &StepFailed, run: &RunContext) {
    let status = F::__status(values);
    status.steps[step] = StepState::Failure;
    let failure = match why {
        StepFailed::Task(f) | StepFailed::NotAttempted(f) => Some(f),
        StepFailed::Flow(e) => e.failures().first(),
        StepFailed::Suspended => None,
    };
    run.step_event(
        F::graph().steps()[step].name(),
        StepState::Failure,
        status.attempts[step],
        failure,
    );
}

/// Begins the attempt of every retry scope around `step` that has not begun yet, outermost
/// first. `Err(scope)` when that scope's controller has nothing to attempt.
fn enter_scopes<F: Flow>(values: &mut F::Values, step: usize) -> Result<(), usize> {
    for (s, scope) in F::graph().scopes().iter().enumerate() {
        if !scope.steps.contains(&step) {
            continue;
        }
        let status = &mut F::__status(values).scopes[s];
        if status.entered {
            continue;
        }
        status.entered = true;
        let attempt = status.attempt;
        if !F::__retry_enter(values, s, attempt) {
            return Err(s);
        }
    }
    Ok(())
}

/// Predecessors of each step, when the flow has deciders (only then can a step be skipped).
fn predecessors<F: Flow>() -> Option<Vec<Vec<usize>>> {
    let graph = F::graph();
    if graph.guarded().is_empty() {
        return None;
    }
    let mut preds = vec![Vec::new(); graph.steps().len()];
    for &(from, to) in graph.edges() {
        preds[to].push(from);
    }
    Some(preds)
}

/// Whether step `step` is skipped (IGNORE): a decider on a link into it said no, or every step it
/// depends on was skipped. A decider that panics fails the step.
fn skipped<F: Flow>(
    values: &mut F::Values,
    step: usize,
    preds: &[Vec<usize>],
) -> Result<bool, StepFailed> {
    let status = F::__status(values);
    if !preds[step].is_empty()
        && preds[step]
            .iter()
            .all(|&p| status.steps[p] == StepState::Ignore)
    {
        return Ok(true);
    }
    if F::graph().guarded().contains(&step) {
        return F::__decide(values, step)
            .map(|go| !go)
            .map_err(StepFailed::NotAttempted);
    }
    Ok(false)
}

/// A controller that has no value for its next attempt (an empty `ForEach`, say).
#[derive(Debug, thiserror::Error)]
#[error("its retry controller has nothing to attempt")]
pub struct NothingToAttempt;

/// The failure of a step that could not start because a controller had nothing to attempt.
fn not_attempted<F: Flow>(step: usize) -> StepFailed {
    StepFailed::NotAttempted(Failure::from_error(
        F::graph().steps()[step].name(),
        NothingToAttempt,
    ))
}

/// After steps failed (and everything in flight finished), asks their retry controllers what to
/// do. `Ok(())`: the scopes to retry were reverted and reset to PENDING, so the driver goes on.
/// `Err`: the run is over; everything that ran has been reverted.
async fn on_failure<F: Flow>(
    values: &mut F::Values,
    failed: Vec<(usize, StepFailed)>,
    prior_reverts: Vec<Failure>,
    run: &RunContext,
) -> Result<(), FlowError> {
    let graph = F::graph();
    let mut failures = Vec::new();
    let mut reverts = prior_reverts;
    let mut own = HashMap::new();
    let mut revert_all = false;
    // The failures of each innermost scope, and whether its controller must not be asked.
    let mut groups: Vec<(Option<usize>, Vec<Failure>, bool)> = Vec::new();
    for (step, why) in failed {
        let forced = matches!(why, StepFailed::NotAttempted(_));
        if let StepFailed::Flow(e) = &why {
            revert_all |= e.revert_all();
        }
        let (f, r, o) = failure_parts::<F>(step, why);
        if let Some(o) = o {
            own.insert(step, o);
        }
        reverts.extend(r);
        let scope = graph.scope_of(step);
        match groups.iter_mut().find(|g| g.0 == scope) {
            Some(group) => {
                group.1.extend(f.iter().cloned());
                group.2 |= forced;
            }
            None => groups.push((scope, f.clone(), forced)),
        }
        failures.extend(f);
    }
    let failures: Arc<[Failure]> = failures.into();
    let mut retry = Vec::new();
    let mut flow_fails = revert_all;
    if !revert_all {
        'groups: for (mut scope, group_failures, mut forced) in groups {
            while let Some(s) = scope {
                let status = &mut F::__status(values).scopes[s];
                status.history.record(group_failures.clone());
                let history = status.history.clone();
                let decision = if forced {
                    Decision::Revert
                } else {
                    F::__retry_decide(values, s, &history)
                };
                forced = false;
                match decision {
                    Decision::Retry => {
                        retry.push(s);
                        continue 'groups;
                    }
                    Decision::RevertAll => {
                        revert_all = true;
                        flow_fails = true;
                        break 'groups;
                    }
                    Decision::Revert => {
                        // This scope gives up: undo it, and let the enclosing controller decide.
                        reverts.extend(
                            revert_ran::<F>(values, &mut own, Some(s), &failures, run).await,
                        );
                        scope = graph.scopes()[s].parent;
                    }
                }
            }
            flow_fails = true;
            break;
        }
    }
    if !flow_fails {
        for &s in &retry {
            reverts.extend(revert_ran::<F>(values, &mut own, Some(s), &failures, run).await);
        }
        // A revert that failed leaves its scope half undone: running it again is not safe.
        if reverts.is_empty() {
            for &s in &retry {
                let attempt = reset_scope::<F>(values, s, run);
                if let Some(delay) = F::__retry_delay(values, s, attempt) {
                    tokio::time::sleep(delay).await;
                }
            }
            return Ok(());
        }
    }
    run.flow_event(FlowState::Reverting);
    reverts.extend(revert_ran::<F>(values, &mut own, None, &failures, run).await);
    Err(FlowError::__new(failures.to_vec(), reverts).with_revert_all(revert_all))
}

/// Sets retry scope `s` up for its next attempt: its steps PENDING again, its nested
/// controllers started afresh. Returns the new attempt number.
fn reset_scope<F: Flow>(values: &mut F::Values, s: usize, run: &RunContext) -> u32 {
    let graph = F::graph();
    let scopes = graph.scopes();
    let mine = scopes[s].steps;
    let status = F::__status(values);
    status.scopes[s].attempt += 1;
    status.scopes[s].entered = false;
    let attempt = status.scopes[s].attempt;
    for (inner, scope) in scopes.iter().enumerate() {
        if inner != s && scope.steps.iter().all(|step| mine.contains(step)) {
            let nested = &mut status.scopes[inner];
            nested.attempt = 1;
            nested.entered = false;
            nested.history.clear();
        }
        if inner == s || scope.steps.iter().all(|step| mine.contains(step)) {
            let reset = &status.scopes[inner];
            run.record_retry(inner, reset.attempt, &reset.history);
        }
    }
    for &step in mine {
        let was = status.steps[step];
        status.steps[step] = StepState::Pending;
        status.attempts[step] = graph.scope_of(step).map_or(1, |i| status.scopes[i].attempt);
        let info = &graph.steps()[step];
        if was != StepState::Pending {
            run.step_event(info.name(), StepState::Retrying, attempt, None);
        }
        // In the store, PENDING again at the new attempt, its sub-flow's steps with it.
        run.record_step(info.name(), StepState::Pending, status.attempts[step]);
        if let Some(sub) = info.subflow() {
            run.record_pending_within(info.name(), sub);
        }
    }
    attempt
}

/// Splits what stopped a flow into its failures (named within the flow) and the reverts that
/// already failed inside a sub-flow.
fn failure_parts<F: Flow>(
    step: usize,
    failed: StepFailed,
) -> (Vec<Failure>, Vec<Failure>, Option<Failure>) {
    match failed {
        StepFailed::Suspended => (Vec::new(), Vec::new(), None),
        StepFailed::NotAttempted(f) => (vec![f], Vec::new(), None),
        StepFailed::Task(f) => (vec![f.clone()], Vec::new(), Some(f)),
        StepFailed::Flow(e) => {
            let label = F::graph().steps()[step].name();
            let (failures, reverts) = e.into_parts();
            (
                crate::__private::within(label, failures),
                crate::__private::within(label, reverts),
                None,
            )
        }
    }
}

/// One item of a `map` step.
#[derive(Debug)]
pub enum MapItem<U> {
    /// Finished: its output.
    Done(U),
    /// Failed (the first failure of the step is the step's failure).
    Failed(Failure),
    /// Never started: an earlier item failed first (serial engine).
    NotRun,
}

/// What a `map` step ends with: every output in input order, or what finished and why it failed.
pub type MapOutcome<U> = Result<Vec<U>, (Vec<MapItem<U>>, Failure)>;

/// Runs a sync task once per item (`run_item(i)` for item `i`): in order on the serial engine,
/// stopping at the first failure; on the worker pool on the parallel engine, where every item
/// starts and the finished ones are kept for revert.
pub async fn map_sync<U, F>(run: &RunContext, items: usize, run_item: F) -> MapOutcome<U>
where
    U: Send + 'static,
    F: Fn(usize) -> Result<U, Failure> + Send + Sync + 'static,
{
    let mut results: Vec<MapItem<U>> = (0..items).map(|_| MapItem::NotRun).collect();
    match &run.shared.mode {
        Mode::Serial => {
            for (i, slot) in results.iter_mut().enumerate() {
                let result = run_item(i);
                let failed = result.is_err();
                *slot = into_item(result);
                if failed {
                    break;
                }
            }
        }
        Mode::Parallel { .. } => {
            let pool = run.pool().expect("the parallel engine has a pool");
            let run_item = Arc::new(run_item);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let jobs = (0..items)
                .map(|i| {
                    let (tx, run_item) = (tx.clone(), run_item.clone());
                    Box::new(move || {
                        let _ = tx.send((i, run_item(i)));
                    }) as Box<dyn FnOnce() + Send>
                })
                .collect();
            drop(tx);
            pool.submit_all(jobs);
            while let Some((i, result)) = rx.recv().await {
                results[i] = into_item(result);
            }
        }
    }
    map_outcome(results)
}

/// Runs an async task once per item: in order on the serial engine, stopping at the first
/// failure; all at once on the parallel engine, keeping the finished ones for revert.
pub async fn map_async<U, F, Fut>(run: &RunContext, items: usize, run_item: F) -> MapOutcome<U>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<U, Failure>>,
{
    let mut results: Vec<MapItem<U>> = (0..items).map(|_| MapItem::NotRun).collect();
    match &run.shared.mode {
        Mode::Serial => {
            for (i, slot) in results.iter_mut().enumerate() {
                let result = run_item(i).await;
                let failed = result.is_err();
                *slot = into_item(result);
                if failed {
                    break;
                }
            }
        }
        Mode::Parallel { .. } => {
            let mut running: futures_util::stream::FuturesUnordered<_> = (0..items)
                .map(|i| {
                    let f = run_item(i);
                    async move { (i, f.await) }
                })
                .collect();
            while let Some((i, result)) = futures_util::StreamExt::next(&mut running).await {
                results[i] = into_item(result);
            }
        }
    }
    map_outcome(results)
}

fn into_item<U>(result: Result<U, Failure>) -> MapItem<U> {
    match result {
        Ok(value) => MapItem::Done(value),
        Err(failure) => MapItem::Failed(failure),
    }
}

fn map_outcome<U>(results: Vec<MapItem<U>>) -> MapOutcome<U> {
    let failure = results.iter().find_map(|r| match r {
        MapItem::Failed(f) => Some(f.clone()),
        _ => None,
    });
    match failure {
        Some(failure) => Err((results, failure)),
        None => Ok(results
            .into_iter()
            .map(|r| match r {
                MapItem::Done(value) => value,
                _ => unreachable!("every item finished"),
            })
            .collect()),
    }
}
