//! Runtime helpers that generated code calls. Not a public API: no stability promise.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

pub use std::sync::Arc;

pub use crate::context::TaskContext;
pub use crate::engine::{run_subflow, SubflowEnd};
pub use crate::failure::{BoxError, Failure};
pub use crate::flow::Flow;
pub use crate::graph::{Exec, FlowGraph, ScopeInfo, StepInfo, StepKind};
pub use crate::retry::{Decision, ForEach, History, Retry};
pub use crate::runtime::fan_out::{map_async, map_sync, MapItem, MapOutcome};
pub use crate::runtime::revert::revert_subflow;
pub use crate::runtime::run::Run;
pub use crate::runtime::{RunContext, StepFailed};
pub use crate::FlowError;
pub use std::time::Duration;
pub use taskflow_macros::{__define_chunk, __flow_impl, __task_impl};

/// The type of output `N` of a task or flow (after `provides = (..)` splits a tuple).
pub trait Provides<const N: usize> {
    type Value;
}

/// The value type of parameter `N` of a task (emitted for `#[default]` parameters).
pub trait Param<const N: usize> {
    type Value;
}

/// Copies output `N` of a completed flow run (a sub-flow's output, into its parent).
pub trait FlowOutput<const N: usize>: Flow + Provides<N> {
    fn __clone(values: &Self::Values) -> <Self as Provides<N>>::Value;
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

/// Runs a sync step, turning a panic into a failure of `step`.
#[inline(always)]
pub fn catch_sync<R>(step: &'static str, f: impl FnOnce() -> R) -> Result<R, Failure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Failure::from_panic(step, payload))
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

/// The element type of a flow value that `ParameterizedForEach` iterates.
pub trait Elements {
    type Item;
}

impl<T> Elements for Vec<T> {
    type Item = T;
}

#[inline(always)]
pub fn slot_ref<T>(slot: &Option<T>) -> &T {
    match slot {
        Some(value) => value,
        None => missing_slot(),
    }
}

#[inline(always)]
pub fn slot_take<T>(slot: &mut Option<T>) -> T {
    match slot.take() {
        Some(value) => value,
        None => missing_slot(),
    }
}

/// A shared handle on a slot that steps read by reference (the step's future owns it).
#[inline(always)]
pub fn slot_arc<T>(slot: &Option<Arc<T>>) -> Arc<T> {
    Arc::clone(slot_ref(slot))
}

/// The value of a shared slot once no step holds it any more (the end of a run).
#[inline(always)]
pub fn slot_unwrap<T>(slot: &mut Option<Arc<T>>) -> T {
    arc_unwrap(slot_take(slot))
}

/// The value behind an `Arc` that nothing else holds any more (the end of a run).
pub fn arc_unwrap<T>(value: Arc<T>) -> T {
    match Arc::into_inner(value) {
        Some(value) => value,
        None => missing_slot(),
    }
}

#[cold]
#[inline(never)]
fn missing_slot() -> ! {
    // The static order guarantees every slot is set before it is read and that no step holds a
    // value when the run ends; reaching this is a bug in taskflow.
    panic!("taskflow internal error: a slot was read before it was set or while still shared; please report it")
}

// ---- durability: serialization that generated code can always call

pub use crate::durable::journal::Registry;
pub use crate::durable::{restore_into, DurableFlow, Restore, ValueError};
pub use serde;
pub use serde_json::Value as JsonValue;

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
    fn __register(registry: &mut Registry);
}

impl<F: DurableFlow> SubflowIn<'_> for F {
    fn __restore(
        run: &mut Run<F>,
        stored: &Restore<'_>,
        cx: &RunContext,
    ) -> Result<(), crate::store::StoreError> {
        restore_into::<F>(run, stored, cx)
    }
    fn __register(registry: &mut Registry) {
        F::__register(registry);
    }
}

/// A new run of flow `F` over `values`, nothing started (a sub-flow step's).
pub fn new_run<F: Flow>(values: F::Values) -> Run<F> {
    Run::new(values)
}

/// An empty JSON object.
pub fn serde_json_map() -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::new()
}
