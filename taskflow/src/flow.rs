//! The trait every `flow!` implements.

use std::future::Future;

use crate::failure::Failure;
use crate::graph::FlowGraph;
use crate::FlowError;

/// A flow defined with [`flow!`](crate::flow): a unit struct that names it, with generated
/// `…Inputs` and `…Outputs` structs.
///
/// Only `flow!` implements this trait; its hidden methods are the generated static executor.
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
///     let out = Engine::serial().run_blocking(Hello, HelloInputs { name: "vm".into() }).unwrap();
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
    #[doc(hidden)]
    type State: Send + 'static;

    /// The flow's name as written in `flow!`.
    const NAME: &'static str;

    /// The flow's structure: steps, names and edges (render it with [`FlowGraph::to_dot`]).
    fn graph() -> &'static FlowGraph;

    #[doc(hidden)]
    fn __start(inputs: Self::Inputs) -> Self::State;

    /// Runs every step; on failure reverts what ran and reports it.
    #[doc(hidden)]
    fn __execute<'a>(
        state: &'a mut Self::State,
        run: &'a mut crate::__private::RunContext,
    ) -> impl Future<Output = Result<(), FlowError>> + Send + 'a;

    /// Reverts every step of a completed run (a later step of an enclosing flow failed).
    #[doc(hidden)]
    fn __revert<'a>(
        state: &'a mut Self::State,
        run: &'a mut crate::__private::RunContext,
        failures: &'a [Failure],
    ) -> impl Future<Output = Vec<Failure>> + Send + 'a;

    #[doc(hidden)]
    fn __finish(state: Self::State) -> Self::Outputs;
}
