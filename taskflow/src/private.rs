//! Runtime helpers that generated code calls. Not a public API: no stability promise.
//!
//! Generated code names everything through this module (`use ::taskflow::__private as __tf`),
//! including what the prelude would give it, so a user's item named `Result` or `Some` never
//! changes what a flow means.

use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

pub use core::any::type_name;
pub use core::clone::Clone;
pub use core::default::Default;
pub use core::marker::Send;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use std::boxed::Box;
pub use std::future::Future;
pub use std::string::String;
pub use std::sync::Arc;
pub use std::time::Duration;
pub use std::vec::Vec;

pub use crate::context::TaskContext;
pub use crate::engine::{run_subflow, SubflowEnd};
pub use crate::failure::{BoxError, Failure};
pub use crate::flow::{Flow, RevertFuture, StepFuture};
pub use crate::graph::{Exec, FlowGraph, ScopeInfo, StepInfo, StepKind};
pub use crate::retry::{Decision, ForEach, History, Retry};
pub use crate::runtime::fan_out::{map_async, map_sync, MapItem, MapOutcome};
pub use crate::runtime::run::{At, Run};
pub use crate::runtime::{RunContext, StepFailed};
pub use crate::store::StoreError;
pub use crate::FlowError;
pub use slot::{Shared, Slot};
pub use taskflow_macros::{__define_chunk, __flow_impl, __task_impl};

#[path = "slot.rs"]
mod slot;

/// A `&P` parameter reads a value `T` that is a `P` or dereferences to one (`String` to `str`,
/// `Arc<String>` to `str`, a `Deref` type of the user's to its target): `I` counts the
/// dereferences (`()`, `((),)`, ...: one tuple more per dereference) and is inferred, so any
/// chain serves, and a value that reaches no `P` fails the binding's check of the flow, which
/// names the step. The counts are tuples, not types of ours, because rustc prints them in the
/// help line under that check's message (`parameter_size<u32, (_,)>`): they name nothing hidden.
pub trait Lends<P: ?Sized, I> {
    fn lend(&self) -> &P;
}

impl<T: ?Sized> Lends<T, ()> for T {
    fn lend(&self) -> &T {
        self
    }
}

impl<T, P, I> Lends<P, (I,)> for T
where
    T: ?Sized + core::ops::Deref,
    T::Target: Lends<P, I>,
    P: ?Sized,
{
    fn lend(&self) -> &P {
        (**self).lend()
    }
}

/// An `Option<&P>` parameter reads a value `T` that lends a `P` ([`Lends`]; then it is always
/// `Some`), or an `Option` of one — such as a sub-flow's output that a decider inside the
/// sub-flow may skip — whose `None` it reads as `None`. `M` says which (`(I,)` the value itself,
/// `((), I)` what an `Option` holds, `I` the dereferences) and is inferred; tuples for the same
/// reason as [`Lends`]'s counts.
pub trait OptLends<P: ?Sized, M> {
    fn opt_lend(&self) -> Option<&P>;
}

impl<T: ?Sized + Lends<P, I>, P: ?Sized, I> OptLends<P, (I,)> for T {
    fn opt_lend(&self) -> Option<&P> {
        Some(self.lend())
    }
}

impl<T: Lends<P, I>, P: ?Sized, I> OptLends<P, ((), I)> for Option<T> {
    fn opt_lend(&self) -> Option<&P> {
        self.as_ref().map(Lends::lend)
    }
}

/// How a `map` step's revert hook reads the element of the item it undoes: `element_of(input,
/// items, i).element()`, where `input` is the task's `__taskflow_input_k` (the type `&P` the
/// hook takes), with `LendElement` and `NoElement` in scope. When `items` is a `Vec` whose
/// elements lend a `P`, method resolution picks `LendElement` (by value, found first); otherwise
/// `NoElement` (by reference), which reads nothing and says nothing. The step's own function
/// reads the elements through the checks that report such a mismatch, in our words, so the
/// crate does not build and `NoElement::element` never runs: the revert adds no second error.
pub struct ElementOf<'a, P: ?Sized, T: ?Sized> {
    items: &'a T,
    i: usize,
    param: core::marker::PhantomData<fn(&P) -> &P>,
}

/// The `i`th element of `items`, as the hook's parameter `input` takes it (see [`ElementOf`]).
pub fn element_of<'a, P: ?Sized, T: ?Sized>(
    _input: for<'x> fn(&'x P) -> &'x P,
    items: &'a T,
    i: usize,
) -> ElementOf<'a, P, T> {
    ElementOf {
        items,
        i,
        param: core::marker::PhantomData,
    }
}

/// [`ElementOf`] of a `Vec` whose elements lend a `P`.
pub trait LendElement<'a, P: ?Sized, I> {
    fn element(self) -> &'a P;
}

impl<'a, P: ?Sized, E: Lends<P, I>, I> LendElement<'a, P, I> for ElementOf<'a, P, Vec<E>> {
    #[inline(always)]
    fn element(self) -> &'a P {
        self.items[self.i].lend()
    }
}

/// [`ElementOf`] of anything else: only in a crate that does not build.
pub trait NoElement<'a, P: ?Sized> {
    fn element(self) -> &'a P;
}

impl<'a, P: ?Sized, T: ?Sized> NoElement<'a, P> for &ElementOf<'a, P, T> {
    fn element(self) -> &'a P {
        unreachable!("a map step over a value its task cannot take does not compile")
    }
}

/// What a step's task ends with: its outputs, or its failure.
pub type Outcome<T> = Result<T, Failure>;

/// The type of output `N` of a task or flow (after `provides = (..)` splits a tuple).
pub trait Provides<const N: usize> {
    type Value;
}

/// The type of output `N` of task or flow `T`.
pub type Out<T, const N: usize> = <T as Provides<N>>::Value;

/// What a flow's graph needs of a `#[task]` (see [`task`]).
pub trait Task {
    /// Its name: a step's, unless the flow labels it otherwise.
    const NAME: &'static str;
    /// An `async fn`.
    const ASYNC: bool;
    /// Its revert hook is a plain `fn` (the parallel engine runs it on a worker thread).
    const SYNC_HOOK: bool;
    /// Its output types as written, for the fingerprint of the flows that store them.
    const TYPES: &'static [&'static str];
    /// What a take-over does with the step when it was RUNNING (`#[task(on_takeover = ..)]`).
    const ON_TAKEOVER: crate::OnTakeover = crate::OnTakeover::Rerun;
}

/// The graph's step that runs task `T` once, named after it (see [`StepInfo::__named`]).
pub const fn task<T: Task>(
    requires: &'static [&'static str],
    provides: &'static [&'static str],
) -> StepInfo {
    StepInfo::__task::<T>(T::NAME, requires, provides)
}

/// The graph's `map` step of task `T`, named after it.
pub const fn map<T: Task>(
    requires: &'static [&'static str],
    provides: &'static [&'static str],
) -> StepInfo {
    StepInfo::__map::<T>(T::NAME, requires, provides)
}

/// The graph's step that runs flow `F`, named after it.
pub const fn subflow<F: Flow>(
    requires: &'static [&'static str],
    provides: &'static [&'static str],
) -> StepInfo {
    StepInfo::__flow(F::NAME, requires, provides, F::graph)
}

/// The value type of parameter `N` of a task (emitted for `#[default]` parameters).
pub trait Param<const N: usize> {
    type Value;
}

/// The error type of a fallible task.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of a #[task]",
    label = "this error type does not convert into `Box<dyn Error + Send + Sync>`",
    note = "implement `std::error::Error` (and make it `Send + Sync + 'static`), or return `anyhow::Error`"
)]
pub trait TaskError {
    fn into_box(self) -> BoxError;
}

impl<E: Into<BoxError>> TaskError for E {
    fn into_box(self) -> BoxError {
        self.into()
    }
}

/// What a revert hook may return: nothing, or `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "a revert hook must return `()` or `Result<(), E>`, not `{Self}`",
    label = "unsupported return type"
)]
pub trait HookReturn {
    fn into_result(self) -> Result<(), BoxError>;
}

impl HookReturn for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: TaskError> HookReturn for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(TaskError::into_box)
    }
}

thread_local! {
    /// Set while a run that must not block its worker is polled (see [`off_worker`]). A plain
    /// thread-local flag: a Tokio task-local's check cost 39 instructions per sync step; this
    /// one, with `block_in_place` out of line, about 20 (10% of the serial engine's run of
    /// no-op steps, docs/BENCHMARKS.md).
    static OFF_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Drives `run`, a run on a worker of a multi-thread runtime that must not be held up (a
/// conductor's, where its heartbeats run), so that its sync user code — steps, `map` items,
/// deciders, revert hooks — runs in `block_in_place`, which hands the worker's other tasks to
/// another thread for as long as the call takes. Only for a multi-thread runtime, where
/// `block_in_place` is allowed.
pub(crate) fn off_worker<F: Future>(run: F) -> impl Future<Output = F::Output> {
    /// Sets the flag for one poll, and puts back what it was (also when the poll panics).
    struct Polling(bool);
    impl Drop for Polling {
        fn drop(&mut self) {
            OFF_WORKER.with(|off| off.set(self.0));
        }
    }
    async move {
        let mut run = pin!(run);
        poll_fn(|cx| {
            let _polling = Polling(OFF_WORKER.with(|off| off.replace(true)));
            run.as_mut().poll(cx)
        })
        .await
    }
}

/// Calls `f`, in `block_in_place` while a run of [`off_worker`] is polled.
#[inline(always)]
pub(crate) fn sync_call<R>(f: impl FnOnce() -> R) -> R {
    if OFF_WORKER.with(std::cell::Cell::get) {
        in_place(f)
    } else {
        f()
    }
}

/// `block_in_place`, out of the way of the usual path (a run not of [`off_worker`]).
#[cold]
#[inline(never)]
fn in_place<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// Runs a sync step, turning a panic into a failure of `step`.
#[inline(always)]
pub fn catch_sync<R>(step: &'static str, f: impl FnOnce() -> R) -> Result<R, Failure> {
    sync_call(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|payload| Failure::from_panic(step, payload))
}

/// Polls an async step, turning a panic into a failure of `step`.
pub async fn catch_async<F: Future>(step: &'static str, future: F) -> Result<F::Output, Failure> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Failure::from_panic(step, payload))),
        },
    )
    .await
}

/// Normalizes a fallible task's outcome.
#[inline(always)]
pub fn fallible<T, E: TaskError>(
    step: &'static str,
    outcome: Result<Result<T, E>, Failure>,
) -> Result<T, Failure> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure::from_error(step, error.into_box())),
        Err(failure) => Err(failure),
    }
}

/// Normalizes a revert hook's outcome.
pub fn hook_outcome<R: HookReturn>(
    step: &'static str,
    outcome: Result<R, Failure>,
) -> Result<(), Failure> {
    outcome?
        .into_result()
        .map_err(|error| Failure::from_error(step, error))
}

/// Renames the failures of a sub-flow into its parent's namespace.
pub fn within(step: &'static str, failures: Vec<Failure>) -> Vec<Failure> {
    failures.into_iter().map(|f| f.within(step)).collect()
}

// ---- retry controllers

/// A question for a retry scope's controller (see `Flow::__retry`): the flow's code evaluates
/// the controller's expression and hands it over with [`of`](Ask::of).
pub trait Ask {
    type Answer;
    /// Asks controller `c`; `item` stores the value an attempt provides.
    fn of<R: Retry>(self, c: &R, item: impl FnOnce(R::Item)) -> Self::Answer;
    /// The answer for a scope the flow does not have.
    fn none(self) -> Self::Answer;
}

/// Begin attempt `n`: store the value it provides; false when there is nothing to attempt.
pub struct Enter(pub u32);

impl Ask for Enter {
    type Answer = bool;
    fn of<R: Retry>(self, c: &R, item: impl FnOnce(R::Item)) -> bool {
        c.item(self.0).map(item).is_some()
    }
    fn none(self) -> bool {
        true
    }
}

/// What to do now that the attempts in the history failed.
pub struct Decide<'a>(pub &'a History);

impl Ask for Decide<'_> {
    type Answer = Decision;
    fn of<R: Retry>(self, c: &R, _: impl FnOnce(R::Item)) -> Decision {
        c.on_failure(self.0)
    }
    fn none(self) -> Decision {
        Decision::Revert
    }
}

/// How long to wait before attempt `n`.
pub struct Delay(pub u32);

impl Ask for Delay {
    type Answer = Option<Duration>;
    fn of<R: Retry>(self, c: &R, _: impl FnOnce(R::Item)) -> Option<Duration> {
        c.delay(self.0)
    }
    fn none(self) -> Option<Duration> {
        None
    }
}

/// The element type of a flow value that `ParameterizedForEach` iterates. rustc reports a value
/// that is not a `Vec` at every use of the item's type (several errors, not one), so the message
/// at least is ours.
#[diagnostic::on_unimplemented(
    message = "`ParameterizedForEach(values)` runs its scope once per element of a `Vec`, but the value is `{Self}`",
    label = "not a `Vec`",
    note = "give `ParameterizedForEach` a `Vec` value"
)]
pub trait Elements {
    type Item;
}

impl<T> Elements for Vec<T> {
    type Item = T;
}

/// A step that is not in the flow: a bug in taskflow.
#[cold]
#[inline(never)]
pub fn no_step(step: usize) -> ! {
    panic!("taskflow internal error: no step {step}; please report it")
}

// ---- reverts

/// What undoing a step gets from the run: the step's own failure, when it is the task that
/// failed, and every failure of the run (each hook's `failures`).
pub struct Undo<'a> {
    pub(crate) failed: Option<Failure>,
    pub(crate) failures: Arc<[Failure]>,
    pub(crate) cx: &'a RunContext,
}

impl Undo<'_> {
    /// How the step ended, for its revert hook — its outputs (by the handles `outputs` gives the
    /// revert to own), or its own failure when this very step failed — and the run's failures.
    pub fn outcome<T>(self, outputs: impl FnOnce() -> T) -> (Outcome<T>, Arc<[Failure]>) {
        let outcome = match self.failed {
            Some(failure) => Err(failure),
            None => Ok(outputs()),
        };
        (outcome, self.failures)
    }
}

/// What a revert hook's `result` is lent from: the outcome of a step with one output, as its
/// revert owns it (`&Outcome<Arc<T>>` lends `TaskOutcome<&T>`), or a `TaskOutcome` already.
pub trait Lend<T> {
    fn lend(self) -> Result<T, Failure>;
}

impl<'a, T> Lend<&'a T> for &'a Outcome<Arc<T>> {
    #[inline]
    fn lend(self) -> Result<&'a T, Failure> {
        self.as_deref().map_err(Failure::clone)
    }
}

impl<T> Lend<T> for Result<T, Failure> {
    #[inline]
    fn lend(self) -> Result<T, Failure> {
        self
    }
}

/// Runs a revert hook's future, turning its error or panic into a failure of `step`.
pub fn revert<R: HookReturn>(
    step: &'static str,
    hook: impl Future<Output = R> + Send + 'static,
) -> RevertFuture {
    Box::pin(async move {
        hook_outcome(step, catch_async(step, hook).await)
            .err()
            .into_iter()
            .collect()
    })
}

/// The future of one item's revert hook in a `map` step's revert (see [`revert_map`]).
pub type ItemRevert<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Undoes a `map` step: each finished item's hook, newest first, with that item's outcome — its
/// output, or the failed item's failure — and the run's failures. `outputs` are the step's outputs
/// (when it succeeded), `finished` what it finished (when it failed); `inputs` the handles on the
/// values the hook reads, which `hook(inputs, i, result, failures)` lends to item `i`'s hook.
pub fn revert_map<I, U, H>(
    step: &'static str,
    undo: Undo<'_>,
    outputs: impl FnOnce() -> Arc<Vec<U>>,
    finished: &mut Slot<Vec<MapItem<U>>>,
    inputs: I,
    hook: H,
) -> RevertFuture
where
    I: Send + 'static,
    U: Send + Sync + 'static,
    H: for<'a> Fn(&'a I, usize, Result<&'a U, Failure>, &'a [Failure]) -> ItemRevert<'a>
        + Send
        + 'static,
{
    let (outcome, failures) = undo.outcome(outputs);
    let outcome = outcome.map_err(|_| finished.take_opt().unwrap_or_default());
    Box::pin(async move {
        let mut errors = Vec::new();
        let n = match &outcome {
            Ok(outputs) => outputs.len(),
            Err(items) => items.len(),
        };
        for i in (0..n).rev() {
            let result = match &outcome {
                Ok(outputs) => Ok(&outputs[i]),
                Err(items) => match &items[i] {
                    MapItem::Done(output) => Ok(output),
                    MapItem::Failed(failure) => Err(failure.clone()),
                    MapItem::NotRun => continue,
                },
            };
            let undone = catch_async(step, hook(&inputs, i, result, &failures)).await;
            errors.extend(hook_outcome(step, undone).err());
        }
        errors
    })
}

/// The revert of a step without a revert hook: nothing (and no allocation: the future is empty).
pub fn nothing_to_revert() -> RevertFuture {
    struct Nothing;
    impl Future for Nothing {
        type Output = Vec<Failure>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Vec<Failure>> {
            Poll::Ready(Vec::new())
        }
    }
    Box::pin(Nothing)
}

// ---- sub-flow steps

/// A sub-flow step's run: the one it left in `slot` when it was suspended, or a new one over the
/// values `start` builds from its inputs.
pub fn subflow_run<F: Flow>(slot: &mut Slot<Run<F>>, start: impl FnOnce() -> F::Values) -> Run<F> {
    match slot.take_opt() {
        Some(suspended) => suspended,
        None => Run::new(start()),
    }
}

/// Where a sub-flow step's run ended: its outputs (copied: the run keeps its own, in `slot`, for
/// its revert) when it finished.
pub fn subflow_done<F: Flow>(
    end: SubflowEnd<F>,
    slot: &mut Slot<Run<F>>,
) -> Result<F::Outputs, StepFailed> {
    match end {
        SubflowEnd::Done(mut run) => {
            let outputs = F::__outputs_of(&mut run.values, true);
            slot.set(run);
            Ok(outputs)
        }
        SubflowEnd::Failed(error) => Err(StepFailed::Flow(error)),
        SubflowEnd::Suspended(run) => {
            slot.set(run);
            Err(StepFailed::Suspended)
        }
    }
}

/// Undoes a sub-flow step: the whole run it holds, if it started.
pub fn revert_subflow<F: Flow>(
    slot: &mut Slot<Run<F>>,
    step: &'static str,
    undo: Undo<'_>,
) -> RevertFuture {
    Box::pin(crate::runtime::revert::revert_subflow(
        slot.take_opt(),
        step,
        undo.failures,
        undo.cx.clone(),
    ))
}

// ---- map steps

/// A `map` step's outputs, or its failure, keeping what it finished in `finished` for its revert.
pub fn map_done<U>(
    outcome: MapOutcome<U>,
    finished: &mut Slot<Vec<MapItem<U>>>,
) -> Result<Vec<U>, StepFailed> {
    match outcome {
        Ok(outputs) => Ok(outputs),
        Err((items, failure)) => {
            finished.set(items);
            Err(StepFailed::Task(failure))
        }
    }
}

// ---- durability: serialization that generated code can always call

pub use crate::durable::{restore_into, DurableFlow, Restore, ValueError};
pub use serde;
pub use serde_json::Value as JsonValue;

/// A value (or a step's outputs, or the inputs) as JSON, or why it cannot be.
pub type Saved = Result<serde_json::Value, ValueError>;

/// What loading a value from JSON gives: it (or `()` when it went straight into its slot), or
/// why it cannot load.
pub type Loaded<T = ()> = Result<T, ValueError>;

/// A field of a JSON object, or an error naming it.
pub fn json_field<'v>(
    value: &'v serde_json::Value,
    field: &str,
) -> Result<&'v serde_json::Value, ValueError> {
    match value {
        serde_json::Value::Object(map) => map
            .get(field)
            .ok_or_else(|| ValueError::Deserialize(format!("`{field}` is missing"))),
        other => Err(ValueError::Deserialize(format!(
            "expected an object with `{field}`, found {other}"
        ))),
    }
}

/// Wraps a field's error with its name.
pub fn in_field<T>(field: &str, r: Result<T, ValueError>) -> Result<T, ValueError> {
    r.map_err(|e| e.in_field(field))
}

/// A value a store can keep: `Serialize + DeserializeOwned`.
///
/// The lifetime lets a flow's `DurableFlow` impl name it in bounds that mention the impl's own
/// lifetime parameter: such bounds are not "global", so rustc checks them where the impl is
/// used (a run with a store), not where `flow!` writes it, and the impl's methods use them as
/// written. A flow whose values are not serializable still compiles and runs in memory.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored: it is not `Serialize + DeserializeOwned`",
    label = "a value of a flow run with a store",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or run the flow in memory with `Engine::run`"
)]
///
/// This is where every stored value is turned into JSON and back: a `Serialize` or `Deserialize`
/// that fails or panics, or a value whose JSON would not load back (a NaN float), is a
/// [`ValueError`] here, never a panic.
pub trait StorableIn<'d> {
    fn save(&self) -> Result<serde_json::Value, ValueError>;
    fn load(value: &serde_json::Value) -> Result<Self, ValueError>
    where
        Self: Sized;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> StorableIn<'_> for T {
    fn save(&self) -> Result<serde_json::Value, ValueError> {
        crate::durable::value::save(self)
    }
    fn load(value: &serde_json::Value) -> Result<Self, ValueError> {
        crate::durable::value::load(value)
    }
}

/// A durable flow used as a sub-flow, reached through a bound that mentions the parent's impl
/// lifetime (see [`StorableIn`]).
pub trait SubflowIn<'d>: Flow {
    fn __restore(
        run: &mut Run<Self>,
        stored: &Restore<'_>,
        cx: &RunContext,
    ) -> Result<(), crate::store::StoreError>;
}

impl<F: DurableFlow> SubflowIn<'_> for F {
    fn __restore(
        run: &mut Run<F>,
        stored: &Restore<'_>,
        cx: &RunContext,
    ) -> Result<(), crate::store::StoreError> {
        restore_into::<F>(run, stored, cx)
    }
}

/// A stored value, by reference: `(&Stored(value)).save()` in a flow's `__save_step` serializes
/// it with serde when its type is `Serialize + DeserializeOwned` ([`SaveStored`], found first by
/// method resolution) and is [`NotStorable`]'s error otherwise. The choice is made by rustc, at
/// the value's concrete type, where `flow!` writes the call: nothing is looked up when a run saves.
pub struct Stored<'a, T>(pub &'a T);

/// How a value of a `Serialize + DeserializeOwned` type is saved (see [`Stored`]).
pub trait SaveStored {
    fn save(&self) -> Result<serde_json::Value, ValueError>;
}

// `Deserialize<'static>`, not `DeserializeOwned`: see `durable::value::save`.
impl<T: serde::Serialize + serde::Deserialize<'static>> SaveStored for Stored<'_, T> {
    #[inline]
    fn save(&self) -> Result<serde_json::Value, ValueError> {
        crate::durable::value::save(self.0)
    }
}

/// What saving a value of any other type gives (see [`Stored`]). No run reaches it: a run with a
/// store takes only a [`DurableFlow`], whose bounds say every stored type is serializable, so
/// rustc picked [`SaveStored`] for every value that a run with a store saves.
pub trait NotStorable {
    fn save(&self) -> Result<serde_json::Value, ValueError>;
}

impl<T> NotStorable for &Stored<'_, T> {
    #[cold]
    fn save(&self) -> Result<serde_json::Value, ValueError> {
        Err(ValueError::Serialize(format!(
            "taskflow internal error: `{}` is not `Serialize + DeserializeOwned`, yet a run tried \
             to store it; please report it",
            std::any::type_name::<T>()
        )))
    }
}

/// A value as JSON (an input, by `__save_inputs`).
pub fn save<'d, T: StorableIn<'d>>(value: &T) -> Result<serde_json::Value, ValueError> {
    value.save()
}

/// A JSON object of named values, each saved already; an error names its field.
pub fn save_object<const N: usize>(
    fields: [(&str, Result<serde_json::Value, ValueError>); N],
) -> Result<serde_json::Value, ValueError> {
    let mut object = serde_json::Map::new();
    for (name, value) in fields {
        object.insert(name.to_owned(), in_field(name, value)?);
    }
    Ok(serde_json::Value::Object(object))
}

/// Field `name` of a JSON object, loaded (an input, by `__load_inputs`).
pub fn load_field<'d, T: StorableIn<'d>>(
    json: &serde_json::Value,
    name: &str,
) -> Result<T, ValueError> {
    in_field(name, T::load(json_field(json, name)?))
}

/// Restores sub-flow step `step`'s run from the records under `Sub/` and keeps it in `slot`;
/// `sub` is its new run over its inputs, taken from the parent's restored values.
pub fn restore_subflow<'d, F: SubflowIn<'d>>(
    mut sub: Run<F>,
    slot: &mut Slot<Run<F>>,
    stored: &Restore<'_>,
    step: &str,
    cx: &RunContext,
) -> Result<(), crate::store::StoreError> {
    F::__restore(&mut sub, &stored.within(step), cx)?;
    slot.set(sub);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{NotStorable as _, SaveStored as _, Stored};

    #[test]
    #[allow(clippy::needless_borrow)] // the form `flow!` writes: the borrow is what lets the fallback be found
    fn rustc_picks_serde_for_a_serializable_value_and_the_error_for_any_other() {
        assert_eq!((&Stored(&7u32)).save().unwrap(), serde_json::json!(7));
        let not_storable = std::rc::Rc::new(7u32);
        let error = (&Stored(&not_storable)).save().unwrap_err();
        assert!(error.to_string().contains("Rc<u32>"), "{error}");
    }
}
