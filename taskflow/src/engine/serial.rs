//! The serial driver: one step at a time, in the order fixed at compile time.

use std::collections::HashMap;
use std::sync::Arc;

use super::{fail, revert_step, to_undo, RunContext, StepFailed, Stop};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::state::StepState;

pub(super) async fn drive<F: Flow>(values: &mut F::Values, run: &RunContext) -> Result<(), Stop> {
    let steps = F::graph().steps();
    for (step, info) in steps.iter().enumerate() {
        let status = F::__status(values);
        if status.steps[step] != StepState::Pending {
            continue; // finished before a suspension
        }
        if run.suspend_requested() {
            return Err(Stop::Suspended);
        }
        let attempt = status.attempts[step];
        status.steps[step] = StepState::Running;
        run.step_event(info.name(), StepState::Running, attempt, None);
        match F::__run_step(values, step, run).await {
            Ok(()) => {
                F::__status(values).steps[step] = StepState::Success;
                run.step_event(info.name(), StepState::Success, attempt, None);
            }
            Err(StepFailed::Suspended) => {
                // A sub-flow stopped part-way; its values wait in ours for the resume.
                F::__status(values).steps[step] = StepState::Pending;
                return Err(Stop::Suspended);
            }
            Err(failed) => {
                F::__status(values).steps[step] = StepState::Failure;
                if let StepFailed::Task(f) = &failed {
                    run.step_event(info.name(), StepState::Failure, attempt, Some(f));
                } else {
                    run.step_event(info.name(), StepState::Failure, attempt, None);
                }
                return Err(Stop::Failed(
                    fail::<F>(values, vec![(step, failed)], run).await,
                ));
            }
        }
    }
    Ok(())
}

/// Reverts every step that ran, newest first.
pub(super) async fn revert<F: Flow>(
    values: &mut F::Values,
    mut own: HashMap<usize, Failure>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let mut reverts = Vec::new();
    for step in (0..F::graph().steps().len()).rev() {
        if to_undo::<F>(values, &own, step) {
            let mine = own.remove(&step);
            reverts.extend(revert_step::<F>(values, step, mine, failures, run).await);
        }
    }
    reverts
}
