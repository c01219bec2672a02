//! Drives one (sub-)flow run with the engine's policy, from its first transition to its last.

use std::collections::HashMap;

use crate::failure::{Cancelled, Failure};
use crate::flow::Flow;
use crate::runtime::failed::Stop;
use crate::runtime::failure::{handle_restored, Handled};
use crate::runtime::revert::{revert_ran, undo_unknown, OnSuspend, ToUndo};
use crate::runtime::{Mode, Run, RunContext};
use crate::state::FlowState;
use crate::FlowError;

use super::{parallel, serial};

/// Runs every step of `run` that has not finished yet, with the run's engine; on failure,
/// reverts what ran and returns what went wrong.
pub(crate) async fn drive<F: Flow>(run: &mut Run<F>, cx: &RunContext) -> Result<(), Stop> {
    if run.started() {
        run.flow_to(cx, FlowState::Resuming);
    }
    run.flow_to(cx, FlowState::Running);
    if !run.status.unknown.is_empty() {
        undo_unknown(run, cx).await;
    }
    let result = match handle_restored(run, cx).await {
        Handled::Failed(e) => Err(Stop::Failed(e)),
        Handled::Suspended => Err(Stop::Suspended),
        Handled::Retry => match cx.mode() {
            Mode::Serial => serial::drive(run, cx).await,
            Mode::Parallel { max_in_flight, .. } => {
                let pool = cx.pool().expect("the parallel engine has a pool");
                parallel::drive(run, cx, pool, max_in_flight.unwrap_or(usize::MAX)).await
            }
        },
    };
    // A cancelled run stopped like a suspended one; each (sub-)flow then undoes everything of
    // it that ran. A sub-flow's error asks its parent to revert everything, so no retry
    // controller of the parent retries a cancel. Not when the run stopped for a failed store or
    // a bug: nothing more may be written then.
    let result = match result {
        Err(Stop::Suspended) if cx.cancel_requested() && !cx.store_failed() && !cx.is_stopped() => {
            let error = cancel(run, cx).await;
            Err(Stop::Failed(if cx.is_root() {
                error
            } else {
                error.with_revert_all(true)
            }))
        }
        other => other,
    };
    end(run, cx, &result).await;
    result
}

/// Reverts every step of a cancelled run that ran, finishing the revert although the run is
/// asked to stop (that request is the cancel), without asking a retry controller.
async fn cancel<F: Flow>(run: &mut Run<F>, cx: &RunContext) -> FlowError {
    if run.status.flow != FlowState::Reverting {
        run.flow_to(cx, FlowState::Reverting);
    }
    let cancelled = Failure::from_error(cx.flow(), Cancelled);
    let mut undo = ToUndo {
        own: HashMap::new(),
        failures: vec![cancelled].into(),
    };
    let done = revert_ran(run, cx, &mut undo, None, OnSuspend::Finish).await;
    FlowError::__new(undo.failures.to_vec(), done.failures)
}

/// The flow's last transitions (through SUSPENDING to SUSPENDED for a suspension), committed.
pub(crate) async fn end<F: Flow>(run: &mut Run<F>, cx: &RunContext, result: &Result<(), Stop>) {
    match result {
        Ok(()) => run.flow_to(cx, FlowState::Success),
        Err(Stop::Suspended) => {
            if run.status.flow != FlowState::Suspending {
                run.flow_to(cx, FlowState::Suspending);
            }
            run.flow_to(cx, FlowState::Suspended);
        }
        Err(Stop::Failed(e)) => run.flow_to(cx, e.state()),
    }
    cx.commit().await;
}

/// How a sub-flow run as a step ended.
pub enum SubflowEnd<F: Flow> {
    /// Done: its run, for its outputs and a later revert.
    Done(Run<F>),
    /// Failed, and reverted itself.
    Failed(FlowError),
    /// Suspended: its run, to resume it.
    Suspended(Run<F>),
}

/// Runs a sub-flow as a step of its parent: owns the sub-flow's run and hands it back (it is
/// needed to revert or resume the sub-flow later), or the sub-flow's error after it reverted
/// itself.
pub async fn run_subflow<F: Flow>(
    mut sub: Run<F>,
    step: &'static str,
    cx: RunContext,
    attempts: String,
) -> SubflowEnd<F> {
    let cx = cx.within_attempts(step, attempts);
    match drive(&mut sub, &cx).await {
        Ok(()) => SubflowEnd::Done(sub),
        Err(Stop::Suspended) => SubflowEnd::Suspended(sub),
        Err(Stop::Failed(e)) => SubflowEnd::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::runtime::{Run, SuspendHandle};
    use crate::state::StepState;

    #[task(provides = y)]
    fn inc(x: u32) -> u32 {
        x + 1
    }

    flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }

    #[test]
    fn an_illegal_transition_is_refused_as_an_internal_error_in_debug_builds() {
        let engine = Engine::serial();
        let cx = engine.context(&SuspendHandle::new(), "Inc", None);
        let mut run = Run::<Inc>::new(<Inc as Flow>::__values(IncInputs { x: 1 }));
        // PENDING -> SUCCESS skips RUNNING: no engine may do that.
        run.step_to(&cx, 0, StepState::Success, None);
        if cfg!(debug_assertions) {
            assert_eq!(run.status.steps[0], StepState::Pending, "the state stays");
            assert!(cx.suspend_requested(), "the run stops");
            let error = cx.take_internal_error().expect("an internal error");
            assert_eq!(
                error.to_string(),
                "taskflow internal error: step `inc` cannot go from PENDING to SUCCESS; please \
                 report it"
            );
            // A stopped run starts nothing more.
            let mut cx_run = run;
            let stopped = engine.context(&SuspendHandle::new(), "Inc", None);
            stopped.internal_error(error);
            let ended = futures_util::FutureExt::now_or_never(drive(&mut cx_run, &stopped))
                .expect("nothing to wait for");
            assert!(matches!(ended, Err(Stop::Suspended)));
            assert_eq!(cx_run.status.steps[0], StepState::Pending, "nothing ran");
        } else {
            assert_eq!(
                run.status.steps[0],
                StepState::Success,
                "unchecked in release"
            );
        }
    }
}
