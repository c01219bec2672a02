//! One way to run a flow: [`Engine::run`] (or [`Engine::resume`]) gives a [`RunBuilder`]; say
//! how the run is kept ([`durable`](RunBuilder::durable)) and whether it may stop early
//! ([`until`](RunBuilder::until)), then `.await` it — or call [`blocking`](RunBuilder::blocking)
//! from code without an async runtime. Every suspendable run ends in one [`Outcome`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use crate::durable::{DurableError, DurableFlow};
use crate::engine::{drive, engine_error, internal_error, Engine};
use crate::flow::Flow;
use crate::runtime::failed::Stop;
use crate::runtime::{Run, SuspendHandle};
use crate::store::{AnyStore, IntoStore};
use crate::FlowError;

/// A run of a flow, not started yet: `.await` it (or call [`blocking`](Self::blocking)).
///
/// `S` says where the run is kept ([`InMemory`], or [`Durable`] after
/// [`durable`](Self::durable)); `W` whether it runs to its end ([`ToEnd`]: the outputs) or may
/// be suspended ([`Until`], after [`until`](Self::until): an [`Outcome`]).
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     let engine = Engine::serial();
///     let out = engine.run(Inc, IncInputs { x: 1 }).blocking().unwrap();
///     assert_eq!(out.y, 2);
/// }
/// ```
#[must_use = "a run does nothing until it is awaited or `.blocking()` is called"]
pub struct RunBuilder<'e, F: Flow, S = InMemory, W = ToEnd> {
    engine: &'e Engine,
    from: RunStart<F>,
    storage: S,
    until: W,
}

/// Where a run starts, and — for a durable run — the flow's durable entry points, taken where
/// `F: DurableFlow` was proven ([`RunBuilder::durable`], [`Engine::resume`]), so that a flow
/// that cannot be stored is one error there and nothing after it.
#[doc(hidden)]
pub struct RunStart<F: Flow> {
    from: From<F>,
    durable: Option<DurableEntry<F>>,
}

type BoxedRun<'a, F> =
    Pin<Box<dyn Future<Output = Result<Option<<F as Flow>::Outputs>, DurableError>> + Send + 'a>>;

/// Starts a new durable run of `F`: engine, inputs, store, run id, suspend handle, whether the
/// store's calls run on the driving thread.
type StartFn<F> = for<'a> fn(
    &'a Engine,
    <F as Flow>::Inputs,
    &'a AnyStore,
    &'a str,
    &'a SuspendHandle,
    bool,
) -> BoxedRun<'a, F>;

/// Resumes a stored run of `F`: engine, store, run id, suspend handle, whether the store's calls
/// run on the driving thread.
type ResumeFn<F> =
    for<'a> fn(&'a Engine, &'a AnyStore, &'a str, &'a SuspendHandle, bool) -> BoxedRun<'a, F>;

/// A durable flow's two entry points, monomorphized for `F`.
struct DurableEntry<F: Flow> {
    start: StartFn<F>,
    resume: ResumeFn<F>,
}

impl<F: DurableFlow> DurableEntry<F> {
    fn of() -> Self {
        DurableEntry {
            start: |engine, inputs, store, id, suspend, inline| {
                Box::pin(crate::durable::start::<F>(
                    engine, inputs, store, id, suspend, inline,
                ))
            },
            resume: |engine, store, id, suspend, inline| {
                Box::pin(crate::durable::resume::<F>(
                    engine, store, id, suspend, inline,
                ))
            },
        }
    }
}

enum From<F: Flow> {
    /// A new run with these inputs.
    Inputs(F::Inputs),
    /// A run suspended in memory.
    Paused(Run<F>),
    /// A stored run, by its id in the store.
    Stored,
}

/// A run kept in memory (the default): it ends with the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemory;

/// A run recorded in a store under an id ([`RunBuilder::durable`], [`Engine::resume`]): if the
/// process dies, [`Engine::resume`] continues it, in this process or another.
#[derive(Clone)]
pub struct Durable {
    store: AnyStore,
    id: String,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A run that goes to its end: it hands back the flow's outputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToEnd;

/// A run that a [`SuspendHandle`] may stop between steps: it hands back an [`Outcome`].
#[derive(Debug, Clone)]
pub struct Until(SuspendHandle);

/// How a suspendable run ended ([`RunBuilder::until`]).
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::{Outcome, SuspendHandle};
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
///     let started = engine.run(Two, TwoInputs { suspend: handle.clone() }).until(&handle).blocking();
///     let Ok(Outcome::Suspended(paused)) = started else { panic!("expected a suspended run") };
///     // Later: the steps that finished are not run again.
///     let out = paused.resume(&engine).blocking().unwrap();
///     assert_eq!(out.b, 2);
/// }
/// ```
pub enum Outcome<F: Flow, S = InMemory> {
    /// Every step succeeded: the outputs.
    Done(F::Outputs),
    /// Suspended between steps (a durable run is recorded SUSPENDED): resume it with
    /// [`Paused::resume`] (a durable one also with [`Engine::resume`], from any process).
    Suspended(Paused<F, S>),
}

impl<F: Flow, S> std::fmt::Debug for Outcome<F, S>
where
    F::Outputs: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done(outputs) => f.debug_tuple("Done").field(outputs).finish(),
            Outcome::Suspended(paused) => f.debug_tuple("Suspended").field(paused).finish(),
        }
    }
}

/// A suspended run. In memory it holds the run's values and where each step is; a durable one
/// names the run in its store. [`resume`](Self::resume) continues it without running finished
/// steps again (the [`Outcome`] example suspends and resumes one).
pub struct Paused<F: Flow, S = InMemory> {
    run: Option<Run<F>>,
    storage: S,
    durable: Option<DurableEntry<F>>,
}

impl<F: Flow, S> std::fmt::Debug for Paused<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paused")
            .field("flow", &F::NAME)
            .finish_non_exhaustive()
    }
}

impl<F: Flow, S> Paused<F, S> {
    /// Continues the run on `engine`: finished steps are not run again. Like any run, it can be
    /// made suspendable again with [`until`](RunBuilder::until).
    pub fn resume(self, engine: &Engine) -> RunBuilder<'_, F, S> {
        RunBuilder {
            engine,
            from: RunStart {
                from: match self.run {
                    Some(run) => From::Paused(run),
                    None => From::Stored,
                },
                durable: self.durable,
            },
            storage: self.storage,
            until: ToEnd,
        }
    }
}

impl Engine {
    /// A run of `flow` with `inputs`: `.await` it for the outputs (or the [`FlowError`] after the
    /// steps that ran were reverted), or call [`blocking`](RunBuilder::blocking) from plain
    /// code; [`durable`](RunBuilder::durable) records it in a store, [`until`](RunBuilder::until)
    /// lets a [`SuspendHandle`] stop it between steps.
    ///
    /// ```
    /// use taskflow::prelude::*;
    ///
    /// #[task(provides = sum)]
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    ///
    /// flow! { flow Add(a: u32, b: u32) -> (sum) { linear [ add ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let out = Engine::parallel().run(Add, AddInputs { a: 1, b: 2 }).await.unwrap();
    /// assert_eq!(out.sum, 3);
    /// # });
    /// ```
    pub fn run<F: Flow>(&self, flow: F, inputs: F::Inputs) -> RunBuilder<'_, F> {
        let _ = flow;
        RunBuilder {
            engine: self,
            from: RunStart {
                from: From::Inputs(inputs),
                durable: None,
            },
            storage: InMemory,
            until: ToEnd,
        }
    }

    /// Continues the stored run `flow_id` of `flow` from `store`, in this process or any other:
    /// steps recorded SUCCESS are not run again, steps recorded RUNNING run again, an
    /// interrupted failure is handled again (a retry controller keeps its attempt count), and a
    /// run that was reverting finishes reverting. A run that already finished returns its
    /// outcome again (its outputs from the store, or its failure) without running anything.
    ///
    /// Refused, with nothing written: an unknown id ([`StoreError::NotFound`](crate::store::StoreError::NotFound)),
    /// a run of another flow ([`DurableError::WrongFlow`]), a flow whose steps, wiring or types
    /// changed since ([`DurableError::FingerprintMismatch`]), stored data that does not load
    /// ([`StoreError::Corrupt`](crate::store::StoreError::Corrupt)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::MemoryStore;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// fn main() {
    ///     let store = Arc::new(MemoryStore::new());
    ///     let engine = Engine::serial();
    ///     engine.run(Double, DoubleInputs { x: 21 }).durable(store.clone(), "job-1").blocking().unwrap();
    ///     // Finished: resuming hands back the stored outputs.
    ///     let again = engine.resume(Double, store, "job-1").blocking().unwrap();
    ///     assert_eq!(again.doubled, 42);
    /// }
    /// ```
    pub fn resume<F: DurableFlow>(
        &self,
        flow: F,
        store: impl IntoStore,
        flow_id: &str,
    ) -> RunBuilder<'_, F, Durable> {
        let _ = flow;
        RunBuilder {
            engine: self,
            from: RunStart {
                from: From::Stored,
                durable: Some(DurableEntry::of()),
            },
            storage: Durable {
                store: store.into_store(),
                id: flow_id.to_owned(),
            },
            until: ToEnd,
        }
    }
}

impl<'e, F: Flow, W> RunBuilder<'e, F, InMemory, W> {
    /// Records the run in `store` under `flow_id` (a new run:
    /// [`StoreError::AlreadyExists`](crate::store::StoreError::AlreadyExists) when the id is
    /// taken): every transition is written ahead, and if the process dies, [`Engine::resume`]
    /// continues the run. Only a flow whose values are all `Serialize + DeserializeOwned` can be
    /// recorded ([`DurableFlow`]); anything else is a compile error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskflow::prelude::*;
    /// use taskflow::store::{MemoryStore, Store};
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let out = Engine::serial().run(Double, DoubleInputs { x: 21 }).durable(store.clone(), "job-1").await.unwrap();
    /// assert_eq!(out.doubled, 42);
    /// let stored = store.load_flow("job-1").unwrap().unwrap();
    /// assert_eq!(stored.flow.state, FlowState::Success);
    /// assert_eq!(stored.atom("double").unwrap().result, Some(serde_json::json!(42)));
    /// # });
    /// ```
    pub fn durable(self, store: impl IntoStore, flow_id: &str) -> RunBuilder<'e, F, Durable, W>
    where
        F: DurableFlow,
    {
        RunBuilder {
            engine: self.engine,
            from: RunStart {
                from: self.from.from,
                durable: Some(DurableEntry::of()),
            },
            storage: Durable {
                store: store.into_store(),
                id: flow_id.to_owned(),
            },
            until: self.until,
        }
    }
}

impl<'e, F: Flow, S> RunBuilder<'e, F, S, ToEnd> {
    /// Lets `suspend` stop the run between steps: the steps in flight finish, no new one starts,
    /// and the run ends in [`Outcome::Suspended`] (a durable run is recorded SUSPENDED) — the
    /// way to stop a service gracefully instead of killing it mid-step.
    pub fn until(self, suspend: &SuspendHandle) -> RunBuilder<'e, F, S, Until> {
        RunBuilder {
            engine: self.engine,
            from: self.from,
            storage: self.storage,
            until: Until(suspend.clone()),
        }
    }
}

/// Where a run is kept, and what its error is. Implemented by [`InMemory`] and [`Durable`].
pub trait Storage<F: Flow>: Sized + Send + 'static + private::Sealed {
    /// Why a run kept this way may end without its outputs.
    type Error: Send + 'static;

    #[doc(hidden)]
    fn __runtime_error(e: std::io::Error) -> Self::Error;

    #[doc(hidden)]
    fn __go(
        self,
        engine: &Engine,
        from: RunStart<F>,
        suspend: SuspendHandle,
        inline: bool,
    ) -> impl Future<Output = Result<Outcome<F, Self>, Self::Error>> + Send;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::InMemory {}
    impl Sealed for super::Durable {}
}

impl<F: Flow> Storage<F> for InMemory {
    type Error = FlowError;

    fn __runtime_error(e: std::io::Error) -> FlowError {
        engine_error(e)
    }

    async fn __go(
        self,
        engine: &Engine,
        from: RunStart<F>,
        suspend: SuspendHandle,
        _inline: bool,
    ) -> Result<Outcome<F, Self>, FlowError> {
        let mut run = match from.from {
            From::Inputs(inputs) => Run::new(F::__values(inputs)),
            From::Paused(run) => run,
            From::Stored => unreachable!("a run kept in memory has no store"),
        };
        let cx = engine.context(&suspend, F::NAME, None);
        let result = drive(&mut run, &cx).await;
        if let Some(error) = cx.take_internal_error() {
            return Err(internal_error(error));
        }
        match result {
            Ok(()) => Ok(Outcome::Done(F::__outputs(*run.values))),
            Err(Stop::Suspended) => Ok(Outcome::Suspended(Paused {
                run: Some(run),
                storage: InMemory,
                durable: None,
            })),
            Err(Stop::Failed(error)) => Err(error),
        }
    }
}

impl<F: Flow> Storage<F> for Durable {
    type Error = DurableError;

    fn __runtime_error(e: std::io::Error) -> DurableError {
        DurableError::Failed(engine_error(e))
    }

    async fn __go(
        self,
        engine: &Engine,
        from: RunStart<F>,
        suspend: SuspendHandle,
        inline: bool,
    ) -> Result<Outcome<F, Self>, DurableError> {
        let entry = from.durable.expect("a durable run knows its entry points");
        let ended = match from.from {
            From::Inputs(inputs) => {
                (entry.start)(engine, inputs, &self.store, &self.id, &suspend, inline).await?
            }
            From::Stored => (entry.resume)(engine, &self.store, &self.id, &suspend, inline).await?,
            From::Paused(_) => unreachable!("a durable run is resumed from its store"),
        };
        Ok(match ended {
            Some(outputs) => Outcome::Done(outputs),
            None => Outcome::Suspended(Paused {
                run: None,
                storage: self,
                durable: Some(entry),
            }),
        })
    }
}

/// Whether a run goes to its end or may be suspended: what it hands back.
pub trait Ending<F: Flow, S: Storage<F>>: Sized + Send + 'static + private_ending::Sealed {
    /// What `.await` gives.
    type Output: Send + 'static;

    #[doc(hidden)]
    fn __handle(&self) -> SuspendHandle;

    #[doc(hidden)]
    fn __end(outcome: Result<Outcome<F, S>, S::Error>) -> Self::Output;
}

mod private_ending {
    pub trait Sealed {}
    impl Sealed for super::ToEnd {}
    impl Sealed for super::Until {}
}

impl<F: Flow, S: Storage<F>> Ending<F, S> for ToEnd {
    type Output = Result<F::Outputs, S::Error>;

    fn __handle(&self) -> SuspendHandle {
        SuspendHandle::never()
    }

    fn __end(outcome: Result<Outcome<F, S>, S::Error>) -> Self::Output {
        match outcome? {
            Outcome::Done(outputs) => Ok(outputs),
            Outcome::Suspended(_) => unreachable!("nothing can ask this run to suspend"),
        }
    }
}

impl<F: Flow, S: Storage<F>> Ending<F, S> for Until {
    type Output = Result<Outcome<F, S>, S::Error>;

    fn __handle(&self) -> SuspendHandle {
        self.0.clone()
    }

    fn __end(outcome: Result<Outcome<F, S>, S::Error>) -> Self::Output {
        outcome
    }
}

impl<'e, F: Flow, S: Storage<F>, W: Ending<F, S>> RunBuilder<'e, F, S, W> {
    /// Runs the flow; `inline`: the store's calls may run on the driving thread (`blocking`,
    /// whose thread nothing else shares), else they run off it.
    async fn go(self, inline: bool) -> W::Output {
        let suspend = self.until.__handle();
        W::__end(
            self.storage
                .__go(self.engine, self.from, suspend, inline)
                .await,
        )
    }

    /// Runs the flow from code that has no async runtime, on a fresh current-thread Tokio
    /// runtime (with every driver the Tokio features in the build provide, so async tasks may
    /// sleep). Called from inside a Tokio runtime, it runs on a scoped helper thread instead of
    /// blocking the runtime's own thread (prefer `.await` there).
    pub fn blocking(self) -> W::Output {
        let engine = self.engine;
        match engine.blocking(move || self.go(true)) {
            Ok(output) => output,
            Err(e) => W::__end(Err(S::__runtime_error(e))),
        }
    }
}

impl<'e, F: Flow, S: Storage<F>, W: Ending<F, S>> IntoFuture for RunBuilder<'e, F, S, W> {
    type Output = W::Output;
    type IntoFuture = Pin<Box<dyn Future<Output = W::Output> + Send + 'e>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.go(false))
    }
}
