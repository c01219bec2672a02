//! Engines run flows: they decide when each step of a flow's static executor starts, and undo
//! what ran when a step fails.
//!
//! A flow's generated code knows how to start, finish and revert each of its steps (see
//! [`Flow`]); the drivers here walk those steps — one at a time in the compile-time order
//! ([`serial`]), or each as soon as its inputs exist ([`parallel`]).

mod parallel;
mod pool;
mod serial;

use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::failure::Failure;
use crate::flow::Flow;
use crate::FlowError;

pub(crate) use pool::Pool;

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
#[derive(Debug, Clone)]
pub struct Engine {
    mode: Mode,
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
        Engine { mode: Mode::Serial }
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

    /// Runs `flow` with `inputs` to completion, or to a complete revert.
    pub async fn run<F: Flow>(&self, flow: F, inputs: F::Inputs) -> Result<F::Outputs, FlowError> {
        let _ = flow;
        let mut values = F::__values(inputs);
        let run = RunContext::new(self.mode.clone(), "");
        drive::<F>(&mut values, &run).await?;
        Ok(F::__outputs(values))
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
        let go = move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    FlowError::__new(vec![Failure::from_error("<engine>", e)], Vec::new())
                })?;
            runtime.block_on(self.run(flow, inputs))
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

/// What a run carries from step to step besides the flow's values: the engine's mode and where in
/// the tree of flows a step is.
#[derive(Clone, Debug)]
pub struct RunContext {
    shared: Arc<Shared>,
    /// `Parent/Sub/` for a sub-flow's steps, empty at the top.
    prefix: Arc<str>,
}

#[derive(Debug)]
struct Shared {
    mode: Mode,
}

impl RunContext {
    pub(crate) fn new(mode: Mode, prefix: &str) -> Self {
        RunContext {
            shared: Arc::new(Shared { mode }),
            prefix: Arc::from(prefix),
        }
    }

    /// The context for the steps of sub-flow step `step`.
    pub(crate) fn within(&self, step: &str) -> RunContext {
        RunContext {
            shared: self.shared.clone(),
            prefix: Arc::from(format!("{}{step}/", self.prefix)),
        }
    }
}

/// Why a step stopped the flow.
#[derive(Debug)]
pub enum StepFailed {
    /// A task failed; it has not been reverted yet.
    Task(Failure),
    /// A sub-flow failed and already reverted its own steps.
    Flow(FlowError),
}

/// Runs every step of a flow's values with the run's engine; on failure, reverts what ran and
/// returns what went wrong.
pub(crate) async fn drive<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
) -> Result<(), FlowError> {
    match &run.shared.mode {
        Mode::Serial => serial::drive::<F>(values, run).await,
        Mode::Parallel {
            workers,
            max_in_flight,
            pool,
        } => {
            let pool = pool.get_or_init(|| Pool::new(*workers));
            parallel::drive::<F>(values, run, pool, max_in_flight.unwrap_or(usize::MAX)).await
        }
    }
}

/// Runs a sub-flow as a step of its parent: owns the sub-flow's values and hands them back
/// (they are needed to revert it later), or the sub-flow's error after it reverted itself.
pub async fn run_subflow<F: Flow>(
    mut values: F::Values,
    step: &'static str,
    run: RunContext,
) -> Result<F::Values, FlowError> {
    let run = run.within(step);
    drive::<F>(&mut values, &run).await.map(|()| values)
}

/// Reverts a completed sub-flow as a step of its parent.
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
    let failed = revert_all::<F>(&mut values, &failures, &run).await;
    crate::__private::within(step, failed)
}

/// Reverts every step of a completed run, newest first (serial) or in reverse dependency order
/// (parallel).
async fn revert_all<F: Flow>(
    values: &mut F::Values,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let n = F::graph().steps().len();
    match &run.shared.mode {
        Mode::Serial => serial::revert::<F>(values, n, failures, run).await,
        Mode::Parallel { .. } => {
            let ran = vec![parallel::Ran::Succeeded; n];
            parallel::revert::<F>(values, &ran, failures, run).await
        }
    }
}

/// Splits what stopped a flow into its failures (named within the flow) and the reverts that
/// already failed inside a sub-flow.
fn failure_parts<F: Flow>(
    step: usize,
    failed: StepFailed,
) -> (Vec<Failure>, Vec<Failure>, Option<Failure>) {
    match failed {
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
