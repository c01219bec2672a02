//! One step's life-cycle, the same on every engine: skip (a decider said no) → begin its retry
//! scopes → RUNNING → (the engine runs it) → SUCCESS with its result, or FAILURE. The engines
//! decide only when a step starts and where it runs.

use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::FlowGraph;
use crate::runtime::{controller, Run, RunContext, StepFailed};
use crate::state::StepState;

/// What asking a step to start did.
pub(crate) enum Begun {
    /// RUNNING (journalled, not committed yet): the engine runs it now.
    Running,
    /// IGNORE: done as far as its successors are concerned.
    Skipped,
    /// It could not start, and is FAILURE.
    Failed(StepFailed),
}

/// How a step that ran ended, once recorded.
pub(crate) enum Ended {
    Success,
    /// A sub-flow suspended part-way: the step is PENDING again, its values kept.
    Suspended,
    Failed(StepFailed),
}

/// Starts step `step` of `run`: skips it when a decider says no (or everything before it was
/// skipped), begins its retry scopes, and moves it to RUNNING. `preds` is
/// [`predecessors`]'s, for flows with deciders.
#[inline(always)]
pub(crate) fn begin<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    step: usize,
    preds: Option<&[Vec<usize>]>,
) -> Begun {
    if let Some(preds) = preds {
        match skipped(run, step, preds) {
            Ok(false) => {}
            Ok(true) => {
                run.step_to(cx, step, StepState::Ignore, None);
                let info = &F::graph().steps()[step];
                if let Some(sub) = info.subflow() {
                    ignore_within(&cx.within(info.name()), sub);
                }
                return Begun::Skipped;
            }
            Err(why) => return fail(run, cx, step, why),
        }
    }
    if !F::graph().scopes().is_empty() {
        if let Err(failure) = enter_scopes(run, cx, step) {
            return fail(run, cx, step, StepFailed::NotAttempted(failure));
        }
    }
    run.step_to(cx, step, StepState::Running, None);
    Begun::Running
}

/// Reports every step of a skipped sub-flow (recursively) IGNORE, as TaskFlow does: the
/// sub-flow never gets a run of its own, so there is no state to move, only what listeners and
/// the journal are told.
fn ignore_within(cx: &RunContext, graph: &FlowGraph) {
    for step in graph.steps() {
        cx.step_event(step.name(), StepState::Ignore, 1, None);
        if let Some(sub) = step.subflow() {
            ignore_within(&cx.within(step.name()), sub);
        }
    }
}

fn fail<F: Flow>(run: &mut Run<F>, cx: &RunContext, step: usize, why: StepFailed) -> Begun {
    mark_failed(run, cx, step, &why);
    Begun::Failed(why)
}

/// A step that [`begin`] moved to RUNNING but that never ran (its RUNNING could not be written):
/// PENDING again.
pub(crate) fn not_started<F: Flow>(run: &mut Run<F>, cx: &RunContext, step: usize) {
    run.step_quietly(cx, step, StepState::Pending);
}

/// Records how step `step` ended: SUCCESS (and its result in the journal), PENDING again for a
/// suspended sub-flow, or FAILURE. In a durable run a step's outputs must be stored before it
/// counts as done: outputs that cannot be (they do not serialize, or would not load back) are a
/// failure of the step, handled like any other — it is FAILURE, reverted, the run goes on or ends.
#[inline(always)]
pub(crate) fn end<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    step: usize,
    outcome: Result<(), StepFailed>,
) -> Ended {
    match outcome {
        Ok(()) => {
            let mut json = None;
            if cx.is_durable() {
                let name = F::graph().steps()[step].name();
                match cx.save_result::<F>(&run.values, step) {
                    Ok(saved) => json = saved,
                    Err(error) => {
                        let why = StepFailed::Task(Failure::from_error(name, error));
                        mark_failed(run, cx, step, &why);
                        return Ended::Failed(why);
                    }
                }
            }
            run.step_to(cx, step, StepState::Success, None);
            if let Some(json) = json {
                cx.record_result(F::graph().steps()[step].name(), json);
            }
            Ended::Success
        }
        Err(StepFailed::Suspended) => {
            // A sub-flow stopped part-way; its values wait in ours for the resume.
            run.step_quietly(cx, step, StepState::Pending);
            Ended::Suspended
        }
        Err(why) => {
            mark_failed(run, cx, step, &why);
            if cx.is_durable() && matches!(why, StepFailed::Task(_)) {
                record_finished(run, cx, step);
            }
            Ended::Failed(why)
        }
    }
}

/// A durable run records what a failed `map` step finished with its FAILURE, so that its
/// finished items are reverted after a crash too. One that cannot be stored (serde refused an
/// output) is left out, with a warning: those items are then reverted only by this process.
#[cold]
fn record_finished<F: Flow>(run: &Run<F>, cx: &RunContext, step: usize) {
    let name = F::graph().steps()[step].name();
    match F::__save_finished(&run.values, step) {
        None => {}
        Some(Ok(json)) => cx.record_result(name, json),
        Some(Err(error)) => tracing::warn!(step = %cx.path(name), %error,
            "taskflow: cannot record the finished items of a failed map step"),
    }
}

/// Records that step `step` failed: FAILURE in the run's state and for the listeners.
fn mark_failed<F: Flow>(run: &mut Run<F>, cx: &RunContext, step: usize, why: &StepFailed) {
    let failure = match why {
        StepFailed::Task(f) | StepFailed::NotAttempted(f) | StepFailed::Decider(f) => Some(f),
        StepFailed::Flow(e) => e.failures().first(),
        StepFailed::Suspended => None,
    };
    run.step_to(cx, step, StepState::Failure, failure);
}

/// Begins the attempt of every retry scope around `step` that has not begun yet, outermost
/// first. `Err` when a scope's controller has nothing to attempt (named after the step), or
/// panicked when asked for the attempt's value (a failure of the controller, kept on its scope:
/// it is not asked what to do).
fn enter_scopes<F: Flow>(run: &mut Run<F>, cx: &RunContext, step: usize) -> Result<(), Failure> {
    for (s, scope) in F::graph().scopes().iter().enumerate() {
        if !scope.steps.contains(&step) {
            continue;
        }
        let status = &mut run.status.scopes[s];
        if status.entered {
            continue;
        }
        status.entered = true;
        let attempt = status.attempt;
        match controller::call::<F, _>(s, || F::__retry_enter(&mut run.values, s, attempt)) {
            Ok(true) => {}
            Ok(false) => {
                let name = F::graph().steps()[step].name();
                return Err(Failure::from_error(name, NothingToAttempt));
            }
            Err(failure) => {
                let status = &mut run.status.scopes[s];
                cx.record_retry(s, attempt, &status.history, Some(&failure));
                status.failure = Some(failure.clone());
                return Err(failure);
            }
        }
    }
    Ok(())
}

/// Predecessors of each step, when the flow has deciders (only then can a step be skipped).
pub(crate) fn predecessors<F: Flow>() -> Option<Vec<Vec<usize>>> {
    let graph = F::graph();
    if graph.guarded().is_empty() {
        return None;
    }
    let mut preds = vec![Vec::new(); graph.steps().len()];
    for &(from, to) in graph.edges() {
        preds[to].push(from);
    }
    Some(preds)
}

/// Whether step `step` is skipped (IGNORE): a decider on a link into it said no, or every step it
/// depends on was skipped. A decider that panics fails the step.
fn skipped<F: Flow>(
    run: &mut Run<F>,
    step: usize,
    preds: &[Vec<usize>],
) -> Result<bool, StepFailed> {
    if !preds[step].is_empty()
        && preds[step]
            .iter()
            .all(|&p| run.status.steps[p] == StepState::Ignore)
    {
        return Ok(true);
    }
    if F::graph().guarded().contains(&step) {
        return F::__decide(&mut run.values, step)
            .map(|go| !go)
            .map_err(StepFailed::Decider);
    }
    Ok(false)
}

/// A controller that has no value for its next attempt (an empty `ForEach`, say).
#[derive(Debug, thiserror::Error)]
#[error("its retry controller has nothing to attempt")]
pub struct NothingToAttempt;
