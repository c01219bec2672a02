//! Engines run flows: they decide when each step of a flow's static executor starts, and undo
//! what ran when a step fails.
//!
//! A flow's generated code knows how to start, finish and revert each of its steps (see
//! [`Flow`]); the drivers here walk those steps — one at a time in the compile-time order
//! ([`serial`]), or each as soon as its inputs exist ([`parallel`]).

mod builder;
mod drive;
mod parallel;
mod serial;

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::durable::journal::Journal;
use crate::durable::lease::LeaseTimes;
use crate::failure::Failure;
use crate::listener::Listener;
use crate::runtime::{Mode, RunContext, SuspendHandle};
use crate::FlowError;

pub use builder::{
    Durable, Ending, InMemory, Outcome, Paused, RunBuilder, RunStart, Storage, ToEnd, Until,
};
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
/// let out = Engine::serial().run(Add, AddInputs { a: 2, b: 3 }).blocking().unwrap();
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
    /// How long durable runs' leases last and how often they are renewed.
    pub(crate) lease: LeaseTimes,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("listeners", &self.listeners.len())
            .field("logbook", &self.logbook)
            .field("lease", &self.lease)
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
            lease: LeaseTimes::default(),
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
            lease: LeaseTimes::default(),
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
    ///     engine.run(Inc, IncInputs { x: 1 }).durable(store.clone(), "i").blocking().unwrap();
    ///     assert_eq!(store.load_flow("i").unwrap().unwrap().flow.logbook, "nightly");
    /// }
    /// ```
    pub fn logbook(mut self, name: impl Into<String>) -> Self {
        self.logbook = Some(Arc::from(name.into()));
        self
    }

    /// How long the lease of each durable run of this engine lasts, and how often it is renewed
    /// while the run has written nothing else (every checkpoint renews it too, in the same
    /// write). Defaults: 30 s, renewed every 10 s.
    ///
    /// A process that dies without releasing its runs holds them until their leases run out —
    /// unless it ran on the same host as the process resuming them, which sees at once that it
    /// is gone (see [`Owner::is_known_dead`](crate::store::Owner::is_known_dead)). A shorter
    /// lease frees a dead owner's runs sooner; it must stay longer than the owner can pause
    /// (a garbage-collecting or swapped-out process, a paused VM, a slow store write), or a live
    /// owner loses its runs: its writes are then refused ([`StoreError::LostLease`](crate::store::StoreError::LostLease))
    /// and it stops them. `renew_every` is kept between 1 ms and half of `duration` (and
    /// `duration` is at least 10 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskflow::Engine;
    ///
    /// let engine = Engine::parallel().lease(Duration::from_secs(5), Duration::from_secs(1));
    /// # let _ = engine;
    /// ```
    pub fn lease(mut self, duration: Duration, renew_every: Duration) -> Self {
        self.lease = LeaseTimes::new(duration, renew_every);
        self
    }

    /// Attaches a listener: it sees every flow and step transition and every progress report of
    /// the runs of this engine (and of its clones made afterwards).
    pub fn listener(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
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
        flow: &'static str,
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
