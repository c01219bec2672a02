//! What a failure means: after steps failed (and everything in flight finished), the retry
//! controllers around them decide — retry their scope, revert it and defer to the enclosing
//! controller, or revert everything — and what they decided is carried out. A controller that
//! panics (see [`controller`]) has failed: its scope is reverted as for `Decision::Revert`, and
//! its failure is one of the flow's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::failure::Failure;
use crate::flow::Flow;
use crate::retry::{Decision, History};
use crate::runtime::controller;
use crate::runtime::failed::Failed;
use crate::runtime::revert::{revert_ran, OnSuspend, ToUndo};
use crate::runtime::run::ScopeStatus;
use crate::runtime::{Run, RunContext, StepFailed};
use crate::state::{FlowState, StepState};
use crate::FlowError;

/// What handling a failure came to.
pub(crate) enum Handled {
    /// The scopes to retry were reverted and reset to PENDING: the driver goes on.
    Retry,
    /// The run is over; everything that ran has been reverted (or its revert failed).
    Failed(FlowError),
    /// A suspension stopped the revert after the reverts in flight. The failures wait in the
    /// run's status, and a resume handles them again (deciding the same: the controllers'
    /// histories are as they were) and finishes the revert.
    Suspended,
}

/// What one step's failure contributes to the flow's error.
struct Parts {
    /// Its failures, named within this flow.
    failures: Vec<Failure>,
    /// Reverts that already failed inside a sub-flow.
    reverts: Vec<Failure>,
    /// A failed task's own failure: the task is undone too, its hook getting `Err(own)`.
    own: Option<Failure>,
}

/// Splits what stopped step `step` into its [`Parts`].
fn parts<F: Flow>(step: usize, why: StepFailed) -> Parts {
    match why {
        StepFailed::Suspended => Parts {
            failures: Vec::new(),
            reverts: Vec::new(),
            own: None,
        },
        StepFailed::NotAttempted(f) | StepFailed::Decider(f) => Parts {
            failures: vec![f],
            reverts: Vec::new(),
            own: None,
        },
        StepFailed::Task(f) => Parts {
            failures: vec![f.clone()],
            reverts: Vec::new(),
            own: Some(f),
        },
        StepFailed::Flow(e) => {
            let label = F::graph().steps()[step].name();
            let (failures, reverts) = e.into_parts();
            Parts {
                failures: crate::__private::within(label, failures),
                reverts: crate::__private::within(label, reverts),
                own: None,
            }
        }
    }
}

/// The failures of one innermost retry scope (or of the flow outside any).
struct Group {
    scope: Option<usize>,
    failures: Vec<Failure>,
    /// The controller must not be asked: a step could not even start in this scope.
    forced: bool,
}

/// After steps failed (and everything in flight finished), asks their retry controllers what to
/// do, and does it.
pub(crate) async fn on_failure<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    failed: Vec<Failed>,
    prior_reverts: Vec<Failure>,
) -> Handled {
    let graph = F::graph();
    // Kept for a suspension during the revert: the handling starts again from here on resume.
    let stash = (
        failed.clone(),
        prior_reverts.clone(),
        run.status.scopes.clone(),
    );
    let mut failures = Vec::new();
    let mut reverts = prior_reverts;
    let mut own = HashMap::new();
    let mut revert_all = false;
    let mut groups: Vec<Group> = Vec::new();
    for Failed { step, why } in failed {
        let forced = matches!(why, StepFailed::NotAttempted(_));
        if let StepFailed::Flow(e) = &why {
            revert_all |= e.revert_all();
        }
        let parts = parts::<F>(step, why);
        if let Some(o) = parts.own {
            own.insert(step, o);
        }
        reverts.extend(parts.reverts);
        let scope = graph.scope_of(step);
        match groups.iter_mut().find(|g| g.scope == scope) {
            Some(group) => {
                group.failures.extend(parts.failures.iter().cloned());
                group.forced |= forced;
            }
            None => groups.push(Group {
                scope,
                failures: parts.failures.clone(),
                forced,
            }),
        }
        failures.extend(parts.failures);
    }
    let mut undo = ToUndo {
        own,
        failures: failures.into(),
    };
    // A revert stopped by a suspension: put the failures back for the resume.
    macro_rules! revert {
        ($scope:expr) => {{
            let done = revert_ran(run, cx, &mut undo, $scope, OnSuspend::Stop).await;
            reverts.extend(done.failures);
            if done.stopped {
                let (failed, _, scopes) = stash;
                run.status.unhandled = failed;
                run.status.prior_reverts = reverts;
                // The histories as they were; a controller that failed is still not asked.
                for (status, before) in run.status.scopes.iter_mut().zip(scopes) {
                    *status = ScopeStatus {
                        failure: status.failure.take(),
                        ..before
                    };
                }
                return Handled::Suspended;
            }
        }};
    }
    // The scopes to retry, each with the wait before its next attempt.
    let mut retry = Vec::new();
    // What each scope's controller decided in this round (true: retry). Failures of several
    // groups can reach one scope (two inner scopes that give up together, on the parallel
    // engine): its controller decides once, for one failed attempt with all of them.
    let mut decided: Vec<Option<bool>> = vec![None; graph.scopes().len()];
    let mut flow_fails = revert_all;
    if !revert_all {
        'groups: for group in groups {
            let (mut scope, mut forced) = (group.scope, group.forced);
            // What each controller on the way out sees: the group's failures, and those of the
            // controllers inside it that failed.
            let mut seen = group.failures;
            while let Some(s) = scope {
                if let Some(retried) = decided[s] {
                    if let Some(last) = run.status.scopes[s].history.last_mut() {
                        for failure in &seen {
                            add_failure(last, failure);
                        }
                    }
                    if retried {
                        continue 'groups;
                    }
                    scope = graph.scopes()[s].parent; // it gave up: already undone
                    continue;
                }
                let status = &mut run.status.scopes[s];
                status.history.record(seen.clone());
                let history = status.history.clone();
                let decision = if forced || status.failure.is_some() {
                    Decision::Revert
                } else {
                    let attempt = status.attempt;
                    match ask::<F>(&mut run.values, s, &history, attempt + 1) {
                        Ok((Decision::Retry, delay)) => {
                            retry.push((s, delay));
                            decided[s] = Some(true);
                            continue 'groups;
                        }
                        Ok((decision, _)) => decision,
                        // It panicked: its scope is undone, and the enclosing controller decides.
                        // Recorded with the history as it was: a resume handles these failures
                        // again, and does not ask this controller.
                        Err(failure) => {
                            cx.record_retry(s, attempt, &stash.2[s].history, Some(&failure));
                            run.status.scopes[s].failure = Some(failure);
                            Decision::Revert
                        }
                    }
                };
                forced = false;
                decided[s] = Some(false);
                if let Some(failure) = &run.status.scopes[s].failure {
                    add_failure(&mut seen, failure);
                    if !undo.failures.iter().any(|f| same(f, failure)) {
                        undo.failures = undo.failures.iter().chain([failure]).cloned().collect();
                    }
                }
                match decision {
                    Decision::Retry => unreachable!("a retry is taken above"),
                    Decision::RevertAll => {
                        revert_all = true;
                        flow_fails = true;
                        break 'groups;
                    }
                    Decision::Revert => {
                        // This scope gives up: undo it, and let the enclosing controller decide.
                        revert!(Some(s));
                        scope = graph.scopes()[s].parent;
                    }
                }
            }
            flow_fails = true;
            break;
        }
    }
    if !flow_fails {
        // A scope retried inside another retried scope starts afresh with it (the outer reset
        // resets it): it is not reset on its own as well.
        let inside_retried = |s: usize| {
            let mut up = graph.scopes()[s].parent;
            while let Some(p) = up {
                if decided[p] == Some(true) {
                    return true;
                }
                up = graph.scopes()[p].parent;
            }
            false
        };
        retry.retain(|&(s, _)| !inside_retried(s));
        for &(s, _) in &retry {
            revert!(Some(s));
        }
        // A revert that failed leaves its scope half undone: running it again is not safe. A
        // store that failed stops the run as it is, for a resume to take up.
        if reverts.is_empty() && !cx.store_failed() {
            for &(s, delay) in &retry {
                reset_scope(run, cx, s);
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
            }
            return Handled::Retry;
        }
    }
    run.flow_to(cx, FlowState::Reverting);
    revert!(None);
    Handled::Failed(FlowError::__new(undo.failures.to_vec(), reverts).with_revert_all(revert_all))
}

/// What retry scope `s`'s controller decides after a failed attempt, and for a retry how long
/// to wait before attempt `next`: asked when it decides, so that a controller that panics in
/// either fails its scope the same way (`Err`, its scope reverted and the enclosing controller
/// asked) before anything of the retry is done.
fn ask<F: Flow>(
    values: &mut F::Values,
    s: usize,
    history: &History,
    next: u32,
) -> Result<(Decision, Option<Duration>), Failure> {
    let decision = controller::call::<F, _>(s, || F::__retry_decide(values, s, history))?;
    let delay = match decision {
        Decision::Retry => controller::call::<F, _>(s, || F::__retry_delay(values, s, next))?,
        Decision::Revert | Decision::RevertAll => None,
    };
    Ok((decision, delay))
}

/// Whether two failures are the same one (a restored failure is a copy, not a clone).
pub(crate) fn same(a: &Failure, b: &Failure) -> bool {
    a.step() == b.step()
        && a.is_panic() == b.is_panic()
        && a.error().to_string() == b.error().to_string()
}

/// Adds `failure` to `failures` unless it is there already.
pub(crate) fn add_failure(failures: &mut Vec<Failure>, failure: &Failure) {
    if !failures.iter().any(|f| same(f, failure)) {
        failures.push(failure.clone());
    }
}

/// Sets retry scope `s` up for its next attempt: its steps PENDING again, its nested
/// controllers started afresh.
fn reset_scope<F: Flow>(run: &mut Run<F>, cx: &RunContext, s: usize) {
    let graph = F::graph();
    let scopes = graph.scopes();
    let mine = scopes[s].steps;
    let status = &mut run.status;
    status.scopes[s].attempt += 1;
    status.scopes[s].entered = false;
    let attempt = status.scopes[s].attempt;
    for (inner, scope) in scopes.iter().enumerate() {
        if inner != s && scope.steps.iter().all(|step| mine.contains(step)) {
            let nested = &mut status.scopes[inner];
            nested.attempt = 1;
            nested.entered = false;
            nested.history.clear();
            nested.failure = None;
        }
        if inner == s || scope.steps.iter().all(|step| mine.contains(step)) {
            let reset = &status.scopes[inner];
            cx.record_retry(inner, reset.attempt, &reset.history, reset.failure.as_ref());
        }
    }
    for &step in mine {
        let was = run.status.steps[step];
        if was != StepState::Pending {
            // Listeners see RETRYING at the new attempt; the store, PENDING again.
            run.status.attempts[step] = attempt;
            run.step_to(cx, step, StepState::Retrying, None);
        }
        run.status.attempts[step] = graph
            .scope_of(step)
            .map_or(1, |i| run.status.scopes[i].attempt);
        if was != StepState::Pending {
            run.step_quietly(cx, step, StepState::Pending);
        } else {
            cx.record_step(
                graph.steps()[step].name(),
                StepState::Pending,
                run.status.attempts[step],
            );
        }
        let info = &graph.steps()[step];
        if let Some(sub) = info.subflow() {
            cx.record_pending_within(info.name(), sub);
        }
    }
}

/// A run restored from a store whose failure handling a crash interrupted: handles those
/// failures again (the controllers decide from the restored histories).
pub(crate) async fn handle_restored<F: Flow>(run: &mut Run<F>, cx: &RunContext) -> Handled {
    if run.status.unhandled.is_empty() {
        return Handled::Retry;
    }
    let (failed, prior) = take_restored(run);
    on_failure(run, cx, failed, prior).await
}

/// Takes the failures whose handling was interrupted, and the reverts that already failed.
fn take_restored<F: Flow>(run: &mut Run<F>) -> (Vec<Failed>, Vec<Failure>) {
    (
        std::mem::take(&mut run.status.unhandled),
        std::mem::take(&mut run.status.prior_reverts),
    )
}

/// Finishes the revert of a run restored from a store in REVERTING: undoes what is left and
/// returns the run's error (or stops again for a suspension).
pub(crate) async fn finish_revert<F: Flow>(run: &mut Run<F>, cx: &RunContext) -> Handled {
    run.flow_to(cx, FlowState::Reverting);
    let stash = (
        run.status.unhandled.clone(),
        run.status.prior_reverts.clone(),
    );
    let (failed, mut reverts) = take_restored(run);
    let mut own = HashMap::new();
    let mut failures = Vec::new();
    for Failed { step, why } in failed {
        let parts = parts::<F>(step, why);
        failures.extend(parts.failures);
        reverts.extend(parts.reverts);
        if let Some(o) = parts.own {
            own.insert(step, o); // a failed task is undone with its own failure
        }
    }
    // The controllers that failed, from their records.
    for status in &run.status.scopes {
        if let Some(failure) = &status.failure {
            add_failure(&mut failures, failure);
        }
    }
    if failures.is_empty() {
        failures.push(Failure::from_error(
            cx.flow(),
            crate::RecordedError::new("the run was reverting, with no failure recorded"),
        ));
    }
    let failures: Arc<[Failure]> = failures.into();
    let mut undo = ToUndo { own, failures };
    let done = revert_ran(run, cx, &mut undo, None, OnSuspend::Stop).await;
    reverts.extend(done.failures);
    if done.stopped {
        (run.status.unhandled, run.status.prior_reverts) = stash;
        return Handled::Suspended;
    }
    let error = FlowError::__new(undo.failures.to_vec(), reverts);
    run.flow_to(cx, error.state());
    cx.commit().await;
    Handled::Failed(error)
}
