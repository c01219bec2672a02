//! The serial driver: one step at a time, in the order fixed at compile time.

use std::sync::Arc;

use super::{failure_parts, RunContext};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::FlowError;

pub(super) async fn drive<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
) -> Result<(), FlowError> {
    let n = F::graph().steps().len();
    for step in 0..n {
        if let Err(failed) = F::__run_step(values, step, run).await {
            let (failures, mut reverts, own) = failure_parts::<F>(step, failed);
            let failures: Arc<[Failure]> = failures.into();
            // The failed task is reverted too, with its own failure; a failed sub-flow has
            // already reverted itself.
            if let Some(own) = own {
                reverts.extend(F::__revert(values, step, Some(own), failures.clone(), run).await);
            }
            reverts.extend(revert::<F>(values, step, &failures, run).await);
            return Err(FlowError::__new(failures.to_vec(), reverts));
        }
    }
    Ok(())
}

/// Reverts steps `0..completed`, newest first.
pub(super) async fn revert<F: Flow>(
    values: &mut F::Values,
    completed: usize,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let mut reverts = Vec::new();
    for step in (0..completed).rev() {
        reverts.extend(F::__revert(values, step, None, failures.clone(), run).await);
    }
    reverts
}
