//! Calling a retry controller: its `item`, `on_failure` and `delay` are user code, and a panic in
//! one must not escape the engine. It is a failure of the controller's scope, named after the
//! controller, which the failure handling reports and the store keeps on the scope's record.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::failure::Failure;
use crate::flow::Flow;

/// Calls into the controller of retry scope `scope` of flow `F` (one of the flow's `__retry_*`
/// hooks, which evaluate the controller's expression and call it); a panic there is a failure
/// of the controller, named by [`name`].
pub(crate) fn call<F: Flow, R>(scope: usize, hook: impl FnOnce() -> R) -> Result<R, Failure> {
    catch_unwind(AssertUnwindSafe(hook))
        .map_err(|payload| Failure::from_panic(&name::<F>(scope), payload))
}

/// How a failure of the controller of retry scope `scope` names it, after the steps it covers
/// in run order: `retry [reserve..attach]` (`retry [attach]` for one step). A user reads it in
/// the flow's error and in `taskflow show`; it cannot be taken for a step's name (steps are named
/// by identifiers), and inside a sub-flow it becomes `Sub/retry [..]` like any failure there.
pub(crate) fn name<F: Flow>(scope: usize) -> String {
    let graph = F::graph();
    let step = |k: &usize| graph.steps()[*k].name();
    match graph.scopes()[scope].steps {
        [only] => format!("retry [{}]", step(only)),
        [first, .., last] => format!("retry [{}..{}]", step(first), step(last)),
        [] => "retry []".to_owned(),
    }
}
