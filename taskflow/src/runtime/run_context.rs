//! What a run carries from step to step besides the flow's values: the engine's mode, the
//! listeners, the suspend request, a durable run's journal, and which (sub-)flow the steps
//! belong to.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::SystemTime;

use serde_json::Value;

use crate::durable::journal::Journal;
use crate::durable::ValueError;
use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::FlowGraph;
use crate::listener::{FlowEvent, Listener, ProgressEvent, StepEvent};
use crate::runtime::pool::{Job, Pool};
use crate::runtime::run::IllegalTransition;
use crate::state::{FlowState, StepState};

/// How an engine schedules steps.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    Serial,
    Parallel {
        workers: usize,
        max_in_flight: Option<usize>,
        pool: Arc<std::sync::OnceLock<Pool>>,
    },
}

/// A (sub-)flow's name or path in a run: the root's is static, so a run's context costs no
/// allocation for it.
#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl std::ops::Deref for Name {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

/// The future of [`RunContext::commit`]: ready at once when the run has no journal, else the
/// journal's commit (boxed: one allocation next to a store write).
pub(crate) struct Commit<'a>(Option<Pin<Box<dyn Future<Output = bool> + Send + 'a>>>);

impl Future for Commit<'_> {
    type Output = bool;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<bool> {
        match &mut self.0 {
            None => Poll::Ready(true),
            Some(commit) => commit.as_mut().poll(cx),
        }
    }
}

/// What a run carries from step to step besides the flow's values: the engine's mode, its
/// listeners, the suspend handle, and which flow (or sub-flow) the steps belong to.
#[derive(Clone)]
pub struct RunContext {
    shared: Arc<Shared>,
    /// `Root` at the top, `Root/step` for the steps of sub-flow step `step`.
    flow: Name,
    /// The path of this (sub-)flow's steps in a store: `""` at the top, `step/` inside sub-flow
    /// step `step`.
    rel: Name,
    /// The attempts of the retry scopes around the sub-flow step this flow runs as (see
    /// [`At::attempts`](crate::runtime::run::At::attempts)): `""` at the top.
    attempts: Name,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("flow", &&*self.flow)
            .finish_non_exhaustive()
    }
}

struct Shared {
    mode: Mode,
    listeners: Vec<Arc<dyn Listener>>,
    suspend: SuspendHandle,
    /// A durable run's write-ahead journal.
    journal: Option<Arc<Journal>>,
    /// The first bug taskflow found in itself during the run (an illegal transition): the run
    /// stops and ends with it.
    internal: Mutex<Option<IllegalTransition>>,
    /// Whether `internal` holds an error, or a step is held: the check on every step is one
    /// atomic load.
    stopped: AtomicBool,
    /// The steps held for a person (see [`OnTakeover::Hold`](crate::OnTakeover::Hold)): the
    /// run starts nothing and stops.
    held: Mutex<Vec<crate::HeldStep>>,
    /// Whether anything sees transitions (a journal or a listener): when nothing does, a
    /// transition is only the state's change.
    observed: bool,
    /// The run's id: a durable run's flow id, else one made up when a step first asks.
    run_id: std::sync::OnceLock<Arc<str>>,
}

impl RunContext {
    /// The context of a run of flow `flow` on an engine with `mode` and `listeners`; a durable
    /// run writes ahead to `journal`.
    pub(crate) fn new(
        mode: Mode,
        listeners: Vec<Arc<dyn Listener>>,
        suspend: SuspendHandle,
        flow: &'static str,
        journal: Option<Arc<Journal>>,
    ) -> Self {
        RunContext {
            shared: Arc::new(Shared {
                observed: journal.is_some() || !listeners.is_empty(),
                mode,
                listeners,
                suspend,
                journal,
                internal: Mutex::new(None),
                stopped: AtomicBool::new(false),
                held: Mutex::new(Vec::new()),
                run_id: std::sync::OnceLock::new(),
            }),
            flow: Name::Static(flow),
            rel: Name::Static(""),
            attempts: Name::Static(""),
        }
    }

    /// The context for the steps of sub-flow step `step`.
    pub(crate) fn within(&self, step: &str) -> RunContext {
        RunContext {
            shared: self.shared.clone(),
            flow: Name::Shared(Arc::from(format!("{}/{step}", &*self.flow))),
            rel: Name::Shared(Arc::from(format!("{}{step}/", &*self.rel))),
            attempts: self.attempts.clone(),
        }
    }

    /// The context for the steps of sub-flow step `step`, run within the retry attempts
    /// `attempts` (from [`At::__within`](crate::runtime::run::At::__within)).
    pub(crate) fn within_attempts(&self, step: &str, attempts: String) -> RunContext {
        RunContext {
            attempts: Name::Shared(Arc::from(attempts)),
            ..self.within(step)
        }
    }

    /// The attempts of the retry scopes around the sub-flow step this flow runs as.
    pub(crate) fn attempts(&self) -> &str {
        &self.attempts
    }

    /// The run's id: a durable run's flow id, else a fresh one, the same for the whole run.
    pub(crate) fn run_id(&self) -> &str {
        self.shared.run_id.get_or_init(|| match self.journal() {
            Some(journal) => Arc::from(journal.store().1),
            None => Arc::from(crate::store::new_flow_id()),
        })
    }

    /// A step's path in the store.
    pub(crate) fn path(&self, step: &str) -> String {
        format!("{}{step}", &*self.rel)
    }

    fn journal(&self) -> Option<&Journal> {
        self.shared.journal.as_deref()
    }

    /// Writes what the journal holds (a durable run); false when a checkpoint failed and the
    /// run must stop.
    ///
    /// A run without a journal gets a future that is ready at once, without an async call (its
    /// drivers await this at every step).
    #[inline(always)]
    pub(crate) fn commit(&self) -> Commit<'_> {
        Commit(
            self.journal()
                .map(|journal| Box::pin(journal.commit()) as _),
        )
    }

    /// The outputs of step `index` of flow `F`, as the JSON to record with its SUCCESS (a
    /// durable run; `Ok(None)` otherwise). `Err` when a value cannot be stored (see
    /// [`ValueError`]): a failure of the step, checked before it counts as done.
    #[inline]
    pub(crate) fn save_result<F: Flow>(
        &self,
        values: &F::Values,
        index: usize,
    ) -> Result<Option<Value>, ValueError> {
        if self.journal().is_none() {
            return Ok(None);
        }
        F::__save_step(values, index).map(Some)
    }

    /// Records the result of step `step` (its outputs from [`save_result`](Self::save_result))
    /// with its SUCCESS.
    pub(crate) fn record_result(&self, step: &str, json: Value) {
        if let Some(journal) = self.journal() {
            journal.result(&self.path(step), json);
        }
    }

    /// Whether this run writes a journal (a durable run).
    pub(crate) fn is_durable(&self) -> bool {
        self.shared.journal.is_some()
    }

    pub(crate) fn mode(&self) -> &Mode {
        &self.shared.mode
    }

    /// Stops the run with an internal error (the first one is kept).
    pub(crate) fn internal_error(&self, error: IllegalTransition) {
        let mut internal = self
            .shared
            .internal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        internal.get_or_insert(error);
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// Holds the step at `path` in the run (`Sub/step` inside a sub-flow) for a person,
    /// recording why on it (a durable run): the run starts nothing more, and stops.
    pub(crate) fn hold(&self, path: String, reason: String) {
        if let Some(journal) = self.journal() {
            journal.held(&path, &reason);
        }
        self.shared
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(crate::HeldStep { step: path, reason });
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// The steps held for a person, if any.
    pub(crate) fn take_held(&self) -> Vec<crate::HeldStep> {
        std::mem::take(
            &mut *self
                .shared
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The internal error that stopped the run, if any.
    pub(crate) fn take_internal_error(&self) -> Option<IllegalTransition> {
        self.shared
            .internal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Records a step's state in the journal only (a durable run; listeners are not told).
    pub(crate) fn record_step(&self, step: &str, state: StepState, attempt: u32) {
        if let Some(journal) = self.journal() {
            journal.step(self.path(step), state, attempt, None);
        }
    }

    /// Records retry scope `scope`'s attempt and history, and its controller's failure if it
    /// failed (a durable run).
    pub(crate) fn record_retry(
        &self,
        scope: usize,
        attempt: u32,
        history: &crate::retry::History,
        failure: Option<&Failure>,
    ) {
        if let Some(journal) = self.journal() {
            let flow = self.rel.trim_end_matches('/');
            journal.retry(flow, scope, attempt, history, failure);
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

    /// A job for the worker pool: runs `work` and sends its result on `tx`. A durable run's job
    /// holds the run's hold on its lease until `work` is done, so that dropping the run's future
    /// does not free the run while its steps still run on the pool (a resume would start them a
    /// second time); it lets go before it sends, so a run that has the result holds it alone.
    pub(crate) fn pool_job<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        tx: tokio::sync::mpsc::UnboundedSender<T>,
    ) -> Job {
        let keep = self.shared.journal.as_ref().map(|j| j.hold().clone());
        Box::new(move || {
            let out = work();
            drop(keep);
            let _ = tx.send(out);
        })
    }

    /// Whether the run must stop starting things: suspension was asked for, or a durable
    /// run's checkpoint failed.
    #[inline]
    pub(crate) fn suspend_requested(&self) -> bool {
        self.shared.suspend.is_requested()
            || self.journal().is_some_and(Journal::failed)
            || self.is_stopped()
    }

    /// Whether a revert must stop after the reverts in flight: the run is asked to suspend, or
    /// cannot go on (a failed store, a bug) — not for a cancel, whose reverts go on to the end.
    pub(crate) fn stop_reverting(&self) -> bool {
        self.journal().is_some_and(Journal::failed)
            || self.is_stopped()
            || (self.shared.suspend.is_requested() && !self.shared.suspend.is_cancelled())
    }

    /// Whether the run was cancelled: once it stopped, it reverts what it did.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.shared.suspend.is_cancelled()
    }

    /// Whether this is the run's own flow, not a sub-flow of it.
    pub(crate) fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// Whether a durable run's checkpoint failed: nothing more is written, and the run stops.
    pub(crate) fn store_failed(&self) -> bool {
        self.journal().is_some_and(Journal::failed)
    }

    /// Whether a journal or a listener sees this run's transitions.
    #[inline]
    pub(crate) fn is_observed(&self) -> bool {
        self.shared.observed
    }

    /// Whether the run stopped itself: a bug taskflow found in itself, or a held step.
    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Relaxed)
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

/// Asks a run to stop after the steps in flight ([`RunBuilder::until`](crate::RunBuilder::until)),
/// or to stop and undo what it did ([`cancel`](Self::cancel)). Obtainable before a run and usable
/// from anywhere during it (clones share the request).
///
/// ```
/// let handle = taskflow::SuspendHandle::new();
/// assert!(!handle.is_requested());
/// handle.clone().suspend();
/// assert!(handle.is_requested() && !handle.is_cancelled());
/// handle.cancel();
/// assert!(handle.is_requested() && handle.is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct SuspendHandle(Option<Arc<AtomicU8>>);

/// What a [`SuspendHandle`] asks for.
const NOTHING: u8 = 0;
const SUSPEND: u8 = 1;
const CANCEL: u8 = 2;

impl Default for SuspendHandle {
    fn default() -> Self {
        SuspendHandle(Some(Arc::new(AtomicU8::new(NOTHING))))
    }
}

impl SuspendHandle {
    /// A handle that has not asked for anything yet.
    pub fn new() -> Self {
        SuspendHandle::default()
    }

    /// The handle of a run that nothing can suspend (one without `until`): it never asks, and
    /// costs no allocation.
    pub(crate) fn never() -> Self {
        SuspendHandle(None)
    }

    /// Asks the run to stop after the steps in flight (a cancel asked for already stays).
    pub fn suspend(&self) {
        if let Some(flag) = &self.0 {
            let _ = flag.compare_exchange(NOTHING, SUSPEND, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Asks the run to stop after the steps in flight and then revert every step that ran,
    /// newest first (on the parallel engine, in reverse dependency order), as for a failure
    /// but without asking any retry controller: the run ends REVERTED (FAILURE when a revert
    /// hook fails), its error's failure a [`Cancelled`](crate::Cancelled). A run that is
    /// resumed with a cancelled handle is reverted from where it was stored.
    ///
    /// ```
    /// use taskflow::prelude::*;
    /// use taskflow::{DurableError, Outcome, SuspendHandle};
    ///
    /// #[task(provides = y)]
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
    ///
    /// let handle = SuspendHandle::new();
    /// handle.cancel();
    /// let ended = Engine::serial().run(Inc, IncInputs { x: 1 }).until(&handle).blocking();
    /// let err = ended.unwrap_err();
    /// assert_eq!(err.state(), FlowState::Reverted);
    /// assert!(err.failures()[0].downcast_ref::<taskflow::Cancelled>().is_some());
    /// ```
    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(CANCEL, Ordering::SeqCst);
        }
    }

    /// Whether a cancel was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst) == CANCEL)
    }

    /// Whether suspension was asked for.
    #[inline]
    pub fn is_requested(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst) != NOTHING)
    }
}
