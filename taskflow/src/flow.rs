//! The trait every `flow!` implements.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::__private::{Ask, Decide, Delay, Enter, Undo};
use crate::failure::Failure;
use crate::graph::FlowGraph;
use crate::retry::{Decision, History};
use crate::runtime::At;
use crate::runtime::{RunContext, StepFailed};

/// The future of one step's revert: the reverts that failed.
#[doc(hidden)]
pub type RevertFuture = Pin<Box<dyn Future<Output = Vec<Failure>> + Send>>;

/// What the parallel engine runs for a step: a future that owns what it reads.
#[doc(hidden)]
pub trait StepFuture<T>: Future<Output = T> + Send + 'static {}

impl<T, F: Future<Output = T> + Send + 'static> StepFuture<T> for F {}

/// A flow defined with [`flow!`](crate::flow): a unit struct that names it, with generated
/// `…Inputs` and `…Outputs` structs.
///
/// Only `flow!` implements this trait; its hidden methods are the generated static executor.
/// Each has a default: for the retry, decider, revert and save methods it is what a flow without
/// retries, deciders, anything to undo or outputs would write, and `flow!` leaves such methods
/// out; the others are never run, they are what the flow of a `flow!` that reported errors gets
/// (that build fails), so the fallback `flow!` emits names only the types.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = greeting)]
/// fn greet(name: &str) -> String { format!("hello, {name}") }
///
/// flow! {
///     /// Says hello.
///     pub flow Hello(name: String) -> (greeting: String) { linear [ greet ] }
/// }
///
/// fn main() {
///     assert_eq!(<Hello as Flow>::NAME, "Hello");
///     let out = Engine::serial().run(Hello, HelloInputs { name: "vm".into() }).blocking().unwrap();
///     assert_eq!(out.greeting, "hello, vm");
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a flow",
    label = "define it with `flow!`",
    note = "engines run the unit structs that `flow! {{ flow Name(..) {{ .. }} }}` defines"
)]
pub trait Flow: Sized + Send + Sync + 'static {
    /// The generated `…Inputs` struct: one public field per declared input.
    type Inputs: Send + 'static;
    /// The generated `…Outputs` struct: one public field per declared output.
    type Outputs: Send + 'static;
    /// The typed slots of one run.
    #[doc(hidden)]
    type Values: Send + 'static;
    /// What a step's future hands back: one variant per step, typed.
    #[doc(hidden)]
    type Done: Send + 'static;

    /// The flow's structure, as `flow!` writes it (see [`graph`](Self::graph)).
    #[doc(hidden)]
    const __GRAPH: &'static FlowGraph;

    /// The flow's name as written in `flow!`.
    const NAME: &'static str = Self::__GRAPH.name();

    /// The flow's structure: steps, names and edges (render it with [`FlowGraph::to_dot`]).
    fn graph() -> &'static FlowGraph {
        Self::__GRAPH
    }

    #[doc(hidden)]
    fn __values(inputs: Self::Inputs) -> Self::Values {
        let _ = inputs;
        unbuilt(Self::NAME)
    }

    /// Takes step `step`'s arguments out of the slots and returns its run, which owns them.
    #[doc(hidden)]
    fn __start(
        values: &mut Self::Values,
        step: usize,
        run: &RunContext,
        at: At<'_>,
    ) -> impl StepFuture<Self::Done> {
        let _ = (values, step, run, at);
        async { unbuilt(Self::NAME) }
    }

    /// Runs step `step` borrowing the values (the serial engine): one dispatch per step. What it
    /// hands back is stored by [`__finish`](Self::__finish), as for the parallel engine.
    #[doc(hidden)]
    fn __run_step<'a>(
        values: &'a mut Self::Values,
        step: usize,
        run: &'a RunContext,
        at: At<'a>,
    ) -> impl Future<Output = Self::Done> + Send + 'a {
        let _ = (values, step, run, at);
        async { unbuilt(Self::NAME) }
    }

    /// Stores a finished step's outputs, or hands back its failure.
    #[doc(hidden)]
    fn __finish(values: &mut Self::Values, done: Self::Done) -> Result<(), StepFailed> {
        let _ = (values, done);
        unbuilt(Self::NAME)
    }

    /// Undoes step `step`: its revert hook (with its own failure when this very step failed, see
    /// [`Undo`]), or the whole run of a sub-flow. Resolves to the reverts that failed. Boxed: a
    /// revert is rare. The default is that of a flow whose steps have nothing to undo.
    #[doc(hidden)]
    fn __revert(values: &mut Self::Values, step: usize, undo: Undo<'_>) -> RevertFuture {
        let _ = (values, step, undo);
        crate::__private::nothing_to_revert()
    }

    /// The outputs of a finished run: taken out of the values, or copied (`copy`: a sub-flow's,
    /// for its parent, while the run keeps its own for its revert).
    #[doc(hidden)]
    fn __outputs_of(values: &mut Self::Values, copy: bool) -> Self::Outputs {
        let _ = (values, copy);
        unbuilt(Self::NAME)
    }

    /// The outputs of a finished run, taken out of its values.
    #[doc(hidden)]
    fn __outputs(mut values: Self::Values) -> Self::Outputs {
        Self::__outputs_of(&mut values, false)
    }

    /// Asks the controller of retry scope `scope` (its expression evaluated now) `ask`: one of
    /// `__private::{Enter, Decide, Delay}`. The default is that of a flow without retries.
    #[doc(hidden)]
    fn __retry<A: Ask>(values: &mut Self::Values, scope: usize, ask: A) -> A::Answer {
        let _ = (values, scope);
        ask.none()
    }

    /// Begins attempt `attempt` of retry scope `scope`: sets the value its controller provides.
    /// False when the controller has nothing to attempt.
    #[doc(hidden)]
    fn __retry_enter(values: &mut Self::Values, scope: usize, attempt: u32) -> bool {
        Self::__retry(values, scope, Enter(attempt))
    }

    /// Whether guarded step `step` runs: every decider on a link into it says yes.
    #[doc(hidden)]
    fn __decide(values: &mut Self::Values, step: usize) -> Result<bool, Failure> {
        let _ = (values, step);
        Ok(true)
    }

    /// What retry scope `scope`'s controller decides after a failed attempt.
    #[doc(hidden)]
    fn __retry_decide(values: &mut Self::Values, scope: usize, history: &History) -> Decision {
        Self::__retry(values, scope, Decide(history))
    }

    /// Step `step`'s outputs as JSON (its result in a store): `null` for none, the value for
    /// one, an object by name for several; `Err` when a value cannot be stored. Only a run with
    /// a store calls it, and such a run takes only a [`DurableFlow`](crate::DurableFlow), whose
    /// values are all serializable (see `__private::Stored`). The default is that of a flow
    /// whose steps have no outputs.
    #[doc(hidden)]
    fn __save_step(
        values: &Self::Values,
        step: usize,
    ) -> Result<serde_json::Value, crate::durable::value::ValueError> {
        let _ = (values, step);
        Ok(serde_json::Value::Null)
    }

    /// What `map` step `step` finished before it failed, as JSON for its FAILURE record (so its
    /// finished items are reverted after a crash too); `None` for any other step, and for a map
    /// step without a revert hook. The default is that of a flow without such steps.
    #[doc(hidden)]
    fn __save_finished(
        values: &Self::Values,
        step: usize,
    ) -> Option<Result<serde_json::Value, crate::durable::value::ValueError>> {
        let _ = (values, step);
        None
    }

    /// How long retry scope `scope`'s controller waits before attempt `attempt`.
    #[doc(hidden)]
    fn __retry_delay(values: &mut Self::Values, scope: usize, attempt: u32) -> Option<Duration> {
        Self::__retry(values, scope, Delay(attempt))
    }
}

/// The body of every hidden method a flow does not define: only the fallback of a `flow!` that
/// reported errors leaves them undefined, and such a build fails before anything runs.
#[cold]
#[track_caller]
pub(crate) fn unbuilt(flow: &str) -> ! {
    unreachable!("taskflow internal error: flow `{flow}` has no executor: flow! reported errors for it, so no build should run it")
}
