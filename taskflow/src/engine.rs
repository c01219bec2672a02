//! Engines run flows.

use crate::flow::Flow;
use crate::FlowError;

/// Runs flows. [`Engine::serial`] runs one step at a time, in an order fixed at compile time.
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
/// // From async code:
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = Engine::serial().run(Add, AddInputs { a: 1, b: 1 }).await.unwrap();
/// assert_eq!(out.sum, 2);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Engine {
    _private: (),
}

impl Engine {
    /// The serial engine: one step at a time, in the topological order `flow!` computed; after a
    /// failure nothing new starts and every step that ran is reverted, newest first.
    pub fn serial() -> Self {
        Engine { _private: () }
    }

    /// Runs `flow` with `inputs` to completion, or to a complete revert.
    pub async fn run<F: Flow>(&self, flow: F, inputs: F::Inputs) -> Result<F::Outputs, FlowError> {
        let _ = flow;
        let mut state = F::__start(inputs);
        let mut run = crate::__private::RunContext::new();
        F::__execute(&mut state, &mut run).await?;
        Ok(F::__finish(state))
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
                    FlowError::__new(vec![crate::Failure::from_error("<engine>", e)], Vec::new())
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
