//! Engines run flows: they decide when each step of a flow's static executor starts, and undo
//! what ran when a step fails.
//!
//! A flow's generated code knows how to start, finish and revert each of its steps (see
//! [`Flow`]); the drivers here walk those steps — one at a time in the compile-time order
//! ([`serial`]), or each as soon as its inputs exist ([`parallel`]).

mod drive;
mod parallel;
mod serial;

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::durable::journal::Journal;
use crate::failure::Failure;
use crate::flow::Flow;
use crate::listener::Listener;
use crate::runtime::failed::Stop;
use crate::runtime::{Mode, Run, RunContext, SuspendHandle};
use crate::FlowError;

pub(crate) use drive::{drive, end};
pub use drive::{run_subflow, SubflowEnd};

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
        match self.start(flow, inputs, &SuspendHandle::new()).await? {
            Finished::Done(outputs) => Ok(outputs),
            Finished::Suspended(_) => unreachable!("nothing can ask this run to suspend"),
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
                run: Run::new(F::__values(inputs)),
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
        let mut run = paused.run;
        let cx = self.context(suspend, F::NAME, None);
        let result = drive(&mut run, &cx).await;
        if let Some(error) = cx.take_internal_error() {
            return Err(internal_error(error));
        }
        match result {
            Ok(()) => Ok(Finished::Done(F::__outputs(run.values))),
            Err(Stop::Suspended) => Ok(Finished::Suspended(Paused { run })),
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

impl Engine {
    /// The context of a run of flow `flow` on this engine (a durable run's writes to `journal`).
    pub(crate) fn context(
        &self,
        suspend: &SuspendHandle,
        flow: &str,
        journal: Option<Arc<Journal>>,
    ) -> RunContext {
        RunContext::new(
            self.mode.clone(),
            self.listeners.clone(),
            suspend.clone(),
            flow,
            journal,
        )
    }
}

/// The error of a run whose runtime could not start ([`Engine::blocking`]).
pub(crate) fn engine_error(e: std::io::Error) -> FlowError {
    FlowError::__new(vec![Failure::from_error("<engine>", e)], Vec::new())
}

/// The error of a run that taskflow stopped because it found a bug in itself.
pub(crate) fn internal_error(e: crate::runtime::run::IllegalTransition) -> FlowError {
    FlowError::__new(vec![Failure::from_error("<engine>", e)], Vec::new())
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
    run: Run<F>,
}

impl<F: Flow> std::fmt::Debug for Paused<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paused")
            .field("flow", &F::NAME)
            .finish_non_exhaustive()
    }
}
