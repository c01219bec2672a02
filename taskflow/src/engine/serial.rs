//! The serial driver: one step at a time, in the order fixed at compile time.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    enter_scopes, mark_failed, not_attempted, on_failure, predecessors, revert_step, skipped,
    to_undo, RunContext, StepFailed, Stop,
};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::state::StepState;

pub(super) async fn drive<F: Flow>(values: &mut F::Values, run: &RunContext) -> Result<(), Stop> {
    let steps = F::graph().steps();
    let preds = predecessors::<F>();
    let mut step = 0;
    while step < steps.len() {
        if F::__status(values).steps[step] != StepState::Pending {
            step += 1; // finished before a suspension, or before a retry of another scope
            continue;
        }
        if run.suspend_requested() {
            return Err(Stop::Suspended);
        }
        let name = steps[step].name();
        let skip = match &preds {
            Some(preds) => skipped::<F>(values, step, preds),
            None => Ok(false),
        };
        if let Ok(true) = skip {
            let status = F::__status(values);
            status.steps[step] = StepState::Ignore;
            run.step_event(name, StepState::Ignore, status.attempts[step], None);
            step += 1;
            continue;
        }
        let outcome = if let Err(failed) = skip {
            Err(failed)
        } else if enter_scopes::<F>(values, step).is_err() {
            Err(not_attempted::<F>(step))
        } else {
            let status = F::__status(values);
            status.steps[step] = StepState::Running;
            let attempt = status.attempts[step];
            run.step_event(name, StepState::Running, attempt, None);
            // Write-ahead: this RUNNING, with the SUCCESS of the step before it.
            if !run.commit() {
                F::__status(values).steps[step] = StepState::Pending;
                return Err(Stop::Suspended);
            }
            F::__run_step(values, step, run).await
        };
        let attempt = F::__status(values).attempts[step];
        match outcome {
            Ok(()) => {
                F::__status(values).steps[step] = StepState::Success;
                run.step_event(name, StepState::Success, attempt, None);
                run.record_result::<F>(values, step);
                step += 1;
            }
            Err(StepFailed::Suspended) => {
                // A sub-flow stopped part-way; its values wait in ours for the resume.
                F::__status(values).steps[step] = StepState::Pending;
                return Err(Stop::Suspended);
            }
            Err(failed) => {
                mark_failed::<F>(values, step, &failed, run);
                on_failure::<F>(values, vec![(step, failed)], Vec::new(), run)
                    .await
                    .map_err(Stop::Failed)?;
                // Retried scopes are PENDING again: go back to the first step left to run.
                step = 0;
            }
        }
    }
    Ok(())
}

/// Reverts every step that ran (of `only`, when given), newest first.
pub(super) async fn revert<F: Flow>(
    values: &mut F::Values,
    own: &mut HashMap<usize, Failure>,
    only: Option<&[usize]>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let mut reverts = Vec::new();
    for step in (0..F::graph().steps().len()).rev() {
        if only.is_some_and(|o| !o.contains(&step)) {
            continue;
        }
        if to_undo::<F>(values, own, step) {
            let mine = own.remove(&step);
            reverts.extend(revert_step::<F>(values, step, mine, failures, run).await);
        }
    }
    reverts
}
