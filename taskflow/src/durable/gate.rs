//! The gate of durable runs: only a flow whose every stored value is `Serialize +
//! DeserializeOwned` can be given a store, and the loading a durable run needs lives on it (the
//! saving is `Flow::__save_step`, which the drivers reach through each flow's type).

use crate::durable::{Restore, ValueError};
use crate::flow::{unbuilt, Flow};
use crate::runtime::RunContext;
use crate::store::StoreError;
use serde_json::Value;

/// A flow whose every stored value is `Serialize + DeserializeOwned`: it can be run with a
/// store ([`RunBuilder::durable`](crate::RunBuilder::durable)). `flow!` implements it; the bounds are checked where a flow
/// is run with a store, so a flow with other values still compiles and runs in memory.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = doubled)]
/// fn double(x: u32) -> u32 { x * 2 }
///
/// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
///
/// fn stored<F: taskflow::DurableFlow>(_: F) {}
///
/// fn main() {
///     stored(Double); // u32 is Serialize + DeserializeOwned
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "flow `{Self}` cannot be run with a store: not every value it stores is `Serialize + DeserializeOwned`",
    label = "this flow has a value that is not `Serialize + DeserializeOwned`",
    note = "a store keeps the inputs and every step's outputs as JSON: derive `serde::Serialize` and `serde::Deserialize` for the types named above, or run the flow in memory with `Engine::run`"
)]
// Like `Flow`'s, each hidden method has a default: `__restore_sub` and `__load_finished` are
// those of a flow without sub-flows or map steps that revert, the others only the fallback of a
// `flow!` that reported errors keeps.
pub trait DurableFlow: Flow {
    /// Puts a stored result of step `step` back in its slots.
    #[doc(hidden)]
    fn __load_step(
        values: &mut Self::Values,
        step: usize,
        result: &Value,
    ) -> Result<(), ValueError> {
        let _ = (values, step, result);
        unbuilt(Self::NAME)
    }

    /// Puts what failed `map` step `step` finished (from `Flow::__save_finished`'s JSON) back,
    /// for its revert.
    #[doc(hidden)]
    fn __load_finished(
        values: &mut Self::Values,
        step: usize,
        finished: &Value,
    ) -> Result<(), ValueError> {
        let _ = (values, step, finished);
        Ok(()) // a flow without map steps that revert
    }

    /// The inputs as a JSON object by name.
    #[doc(hidden)]
    fn __save_inputs(inputs: &Self::Inputs) -> Result<Value, ValueError> {
        let _ = inputs;
        unbuilt(Self::NAME)
    }

    /// The inputs back from [`__save_inputs`](Self::__save_inputs)'s JSON.
    #[doc(hidden)]
    fn __load_inputs(inputs: &Value) -> Result<Self::Inputs, ValueError> {
        let _ = inputs;
        unbuilt(Self::NAME)
    }

    /// Rebuilds sub-flow step `step`'s values from the store (its inputs from ours).
    #[doc(hidden)]
    fn __restore_sub(
        values: &mut Self::Values,
        step: usize,
        stored: &Restore<'_>,
        cx: &RunContext,
    ) -> Result<(), StoreError> {
        let _ = (values, step, stored, cx);
        Ok(()) // a flow without sub-flows
    }
}
