//! One run of a flow, owned by the runtime: the flow's typed values and where each step is.
//!
//! [`Run::step_to`] and [`Run::flow_to`] are the only places a step or a flow changes state:
//! each checks the transition against the tables below (TaskFlow's, with the few additions
//! listed there), updates the status, writes the journal and tells the listeners, in one call.

use crate::failure::Failure;
use crate::flow::Flow;
use crate::retry::History;
use crate::runtime::failed::Failed;
use crate::runtime::RunContext;
use crate::state::{FlowState, StepState};

/// A flow's values and the state of its steps, retry scopes and the flow itself.
pub struct Run<F: Flow> {
    /// On the heap: a run's futures hold it and are moved as they are built, and a flow's values
    /// can be kilobytes (a 100-step chain's are 1.6 KB); boxed, a move copies a pointer.
    pub(crate) values: Box<F::Values>,
    pub(crate) status: Status,
}

impl<F: Flow> Run<F> {
    /// A new run, nothing started.
    pub(crate) fn new(values: F::Values) -> Self {
        let graph = F::graph();
        Run {
            values: Box::new(values),
            status: Status::new(graph.steps().len(), graph.scopes().len()),
        }
    }

    /// The flow's values (generated code reads a finished sub-flow's outputs from them).
    #[doc(hidden)]
    pub fn values(&self) -> &F::Values {
        &self.values
    }

    /// Moves step `step` to `to`, telling the journal and the listeners (`failure` when it failed
    /// or its revert failed). An illegal transition is a bug in taskflow: in debug builds it is
    /// refused — the state stays, and the run stops with an internal error.
    #[inline(always)]
    pub(crate) fn step_to(
        &mut self,
        cx: &RunContext,
        step: usize,
        to: StepState,
        failure: Option<&Failure>,
    ) {
        if self.set_step(cx, step, to) && cx.is_observed() {
            let name = F::graph().steps()[step].name();
            cx.step_event(name, to, self.status.attempts[step], failure);
        }
    }

    /// Moves step `step` to `to` in the run and the journal only: a step set up to run again
    /// (listeners saw its RETRYING), or a start whose RUNNING could not be written.
    pub(crate) fn step_quietly(&mut self, cx: &RunContext, step: usize, to: StepState) {
        if self.set_step(cx, step, to) && cx.is_observed() {
            let name = F::graph().steps()[step].name();
            cx.record_step(name, to, self.status.attempts[step]);
        }
    }

    #[inline(always)]
    fn set_step(&mut self, cx: &RunContext, step: usize, to: StepState) -> bool {
        let from = self.status.steps[step];
        if cfg!(debug_assertions) && !step_allowed(from, to) {
            cx.internal_error(IllegalTransition {
                what: format!("step `{}`", F::graph().steps()[step].name()),
                from: from.to_string(),
                to: to.to_string(),
            });
            return false;
        }
        self.status.steps[step] = to;
        true
    }

    /// Moves the flow to `to`, telling the journal and the listeners; refused in debug builds
    /// when the transition is illegal, like [`step_to`](Self::step_to).
    pub(crate) fn flow_to(&mut self, cx: &RunContext, to: FlowState) {
        let from = self.status.flow;
        if cfg!(debug_assertions) && !flow_allowed(from, to) {
            cx.internal_error(IllegalTransition {
                what: format!("flow `{}`", cx.flow()),
                from: from.to_string(),
                to: to.to_string(),
            });
            return;
        }
        self.status.flow = to;
        cx.flow_event(to);
    }

    /// Whether this run has started before (it is resumed, not started).
    pub(crate) fn started(&self) -> bool {
        self.status.steps.iter().any(|s| *s != StepState::Pending)
    }
}

/// Where a step starts in its run: which attempt of each retry scope around it (passed to the
/// step's code when it starts, for its [`TaskContext`](crate::TaskContext)'s idempotency key).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct At<'a> {
    status: &'a Status,
    graph: &'static crate::FlowGraph,
}

impl<F: Flow> Run<F> {
    /// Its values, and where its steps start now (for the engines' calls of the flow's code).
    #[inline(always)]
    pub(crate) fn values_at(&mut self) -> (&mut F::Values, At<'_>) {
        (
            &mut self.values,
            At {
                status: &self.status,
                graph: F::graph(),
            },
        )
    }
}

impl At<'_> {
    /// The attempts of the retry scopes around step `step` in this flow, outermost first,
    /// after `within` (those around the sub-flow step this flow runs as), joined by `.`: what
    /// tells one execution of the step from the next (`""` outside any scope).
    pub(crate) fn attempts(&self, within: &str, step: usize) -> String {
        let mut chain = Vec::new();
        let mut scope = self.graph.scope_of(step);
        while let Some(s) = scope {
            chain.push(self.status.scopes[s].attempt);
            scope = self.graph.scopes()[s].parent;
        }
        let mut out = within.to_owned();
        for attempt in chain.iter().rev() {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&attempt.to_string());
        }
        out
    }

    /// What a sub-flow run as step `step` passes to its steps: the attempts around `step`.
    #[doc(hidden)]
    pub fn __within(&self, run: &RunContext, step: usize) -> String {
        self.attempts(run.attempts(), step)
    }
}

/// Where each step of one flow run is: kept with the run's values, so a suspended run resumes
/// without re-running finished steps.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) flow: FlowState,
    pub(crate) steps: Vec<StepState>,
    /// The attempt of each step: its innermost retry scope's attempt (1 outside any).
    pub(crate) attempts: Vec<u32>,
    pub(crate) scopes: Vec<ScopeStatus>,
    /// Failures whose handling was interrupted — by a crash (restored from a store) or by a
    /// suspension while reverting — for the driver to handle first.
    pub(crate) unhandled: Vec<Failed>,
    /// Reverts that already failed, from the interrupted handling.
    pub(crate) prior_reverts: Vec<Failure>,
    /// Steps that were RUNNING when the run was interrupted and whose task says
    /// `on_takeover = revert_then_rerun`: undone before anything else runs.
    pub(crate) unknown: Vec<usize>,
}

/// A retry controller's progress in this run.
#[derive(Debug, Clone)]
pub(crate) struct ScopeStatus {
    pub(crate) attempt: u32,
    /// Whether this attempt has begun (its value is set).
    pub(crate) entered: bool,
    pub(crate) history: History,
    /// The controller failed (panicked) in this attempt: it is not asked again, its scope is
    /// reverted and the enclosing controller decides, and the failure is one of the flow's.
    /// Cleared when an enclosing scope starts it afresh.
    pub(crate) failure: Option<Failure>,
}

impl Status {
    fn new(steps: usize, scopes: usize) -> Self {
        Status {
            flow: FlowState::Pending,
            steps: vec![StepState::Pending; steps],
            attempts: vec![1; steps],
            scopes: vec![
                ScopeStatus {
                    attempt: 1,
                    entered: false,
                    history: History::default(),
                    failure: None,
                };
                scopes
            ],
            unhandled: Vec::new(),
            prior_reverts: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

/// A transition that the tables do not allow: a bug in taskflow, reported instead of followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("taskflow internal error: {what} cannot go from {from} to {to}; please report it")]
pub struct IllegalTransition {
    what: String,
    from: String,
    to: String,
}

/// TaskFlow's task transitions, plus ours:
/// - PENDING → FAILURE: a step that could not start (its controller had nothing to attempt,
///   or its decider failed);
/// - RUNNING → PENDING: a sub-flow suspended part-way, or a start whose RUNNING record could
///   not be written (the step never ran);
/// - REVERTED, IGNORE, FAILURE → RETRYING → PENDING: a step of a retried scope (TaskFlow
///   keeps RETRYING for its retry atoms; we report it for the steps the retry resets). FAILURE
///   is a step that failed without anything to undo (a sub-flow that reverted itself, a step
///   that never started).
pub(crate) fn step_allowed(from: StepState, to: StepState) -> bool {
    use StepState::*;
    matches!(
        (from, to),
        (Pending, Running | Ignore | Failure)
            | (Running, Success | Failure | Pending)
            | (Success | Failure, Reverting)
            | (Reverting, Reverted | RevertFailure)
            | (Reverted | Ignore | Failure, Retrying | Pending)
            | (Retrying, Pending)
    )
}

/// TaskFlow's flow transitions, with REVERTING between a failure and its end (TaskFlow's engine
/// reports it; its table leaves it out), plus:
/// - PENDING → RESUMING and SUSPENDED → RESUMING: a run picked up from a store or a
///   [`Paused`](crate::Paused) (TaskFlow resumes through RUNNING → RESUMING);
/// - REVERTING → SUSPENDING: a suspension asked for while the flow is reverting stops the
///   revert after the reverts in flight;
/// - SUSPENDED → REVERTING, SUCCESS → REVERTING: a sub-flow undone as a step of its parent.
pub(crate) fn flow_allowed(from: FlowState, to: FlowState) -> bool {
    use FlowState::*;
    matches!(
        (from, to),
        (Pending, Running | Resuming | Reverting)
            | (Running, Success | Reverting | Suspending | Resuming)
            | (Reverting, Reverted | Failure | Suspending)
            | (
                Suspending,
                Suspended | Success | Reverting | Reverted | Failure
            )
            | (Suspended, Running | Resuming | Reverting)
            | (Resuming, Running | Reverting | Suspended)
            | (Success, Reverting)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn taskflow_task_transitions_are_allowed() {
        use StepState::*;
        for (from, to) in [
            (Pending, Running),
            (Pending, Ignore),
            (Running, Success),
            (Running, Failure),
            (Failure, Reverting),
            (Success, Reverting),
            (Reverting, Reverted),
            (Reverting, RevertFailure),
            (Reverted, Pending),
            (Ignore, Pending),
        ] {
            assert!(step_allowed(from, to), "{from} -> {to}");
        }
    }

    #[test]
    fn impossible_step_transitions_are_refused() {
        use StepState::*;
        for (from, to) in [
            (Pending, Success),
            (Pending, Reverting),
            (Success, Running),
            (Success, Pending),
            (Reverted, Success),
            (RevertFailure, Pending),
            (RevertFailure, Reverting),
            (Ignore, Running),
            (Running, Reverting),
        ] {
            assert!(!step_allowed(from, to), "{from} -> {to}");
        }
    }

    #[test]
    fn impossible_flow_transitions_are_refused() {
        use FlowState::*;
        for (from, to) in [
            (Pending, Success),
            (Success, Running),
            (Reverted, Running),
            (Failure, Reverting),
            (Suspended, Success),
            (Running, Suspended),
        ] {
            assert!(!flow_allowed(from, to), "{from} -> {to}");
        }
    }
}
