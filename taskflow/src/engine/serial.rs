//! The serial driver: one step at a time, in the order fixed at compile time.

use crate::flow::Flow;
use crate::runtime::failed::Failed;
use crate::runtime::failed::Stop;
use crate::runtime::failure::{on_failure, Handled};
use crate::runtime::step::{self, Begun, Ended};
use crate::runtime::{Run, RunContext};
use crate::state::StepState;

pub(super) async fn drive<F: Flow>(run: &mut Run<F>, cx: &RunContext) -> Result<(), Stop> {
    let steps = F::graph().steps();
    let preds = step::predecessors::<F>();
    let mut k = 0;
    while k < steps.len() {
        if run.status.steps[k] != StepState::Pending {
            k += 1; // finished before a suspension, or before a retry of another scope
            continue;
        }
        if cx.suspend_requested() {
            return Err(Stop::Suspended);
        }
        let outcome = match step::begin(run, cx, k, preds.as_deref()) {
            Begun::Skipped => {
                k += 1;
                continue;
            }
            Begun::Failed(why) => Ended::Failed(why),
            Begun::Running => {
                // Write-ahead: this RUNNING, with the SUCCESS of the step before it.
                if !cx.commit().await {
                    step::not_started(run, cx, k);
                    return Err(Stop::Suspended);
                }
                let (values, at) = run.values_at();
                let done = F::__run_step(values, k, cx, at).await;
                let outcome = F::__finish(&mut run.values, done);
                step::end(run, cx, k, outcome)
            }
        };
        match outcome {
            Ended::Success => k += 1,
            Ended::Suspended => return Err(Stop::Suspended),
            Ended::Failed(why) => {
                match on_failure(run, cx, vec![Failed { step: k, why }], Vec::new()).await {
                    // Retried scopes are PENDING again: go back to the first step left to run.
                    Handled::Retry => k = 0,
                    Handled::Failed(error) => return Err(Stop::Failed(error)),
                    Handled::Suspended => return Err(Stop::Suspended),
                }
            }
        }
    }
    Ok(())
}
