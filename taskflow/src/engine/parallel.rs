//! The parallel driver: every step starts as soon as the steps it depends on have finished.
//!
//! Async steps are polled together on the caller's task (no spawn per step); sync steps go to the
//! engine's worker pool and report back over a channel. Both kinds are the same generated,
//! `'static` step future, so the driver only decides *where* to poll it.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::pool::{block_on, Pool};
use super::{
    enter_scopes, mark_failed, not_attempted, on_failure, predecessors, skipped, to_undo,
    RunContext, StepFailed, Stop,
};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::Exec;
use crate::state::StepState;

async fn tagged<T: Future>(step: usize, future: T) -> (usize, T::Output) {
    (step, future.await)
}

pub(super) async fn drive<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
    pool: &Pool,
    max_in_flight: usize,
) -> Result<(), Stop> {
    loop {
        let failed = run_until_quiet::<F>(values, run, pool, max_in_flight).await?;
        if failed.is_empty() {
            return Ok(());
        }
        // Retried scopes are PENDING again: schedule what is left.
        on_failure::<F>(values, failed, Vec::new(), run)
            .await
            .map_err(Stop::Failed)?;
    }
}

/// Runs ready steps until nothing is in flight. Returns the failed steps (a failure stops new
/// starts; the steps in flight finish), or `Stop::Suspended`.
async fn run_until_quiet<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
    pool: &Pool,
    max_in_flight: usize,
) -> Result<Vec<(usize, StepFailed)>, Stop> {
    let graph = F::graph();
    let steps = graph.steps();
    let n = steps.len();
    let done = |values: &mut F::Values, s: usize| {
        matches!(
            F::__status(values).steps[s],
            StepState::Success | StepState::Ignore
        )
    };
    let preds = predecessors::<F>();
    let mut successors = vec![Vec::new(); n];
    let mut waiting_on = vec![0usize; n];
    for &(from, to) in graph.edges() {
        successors[from].push(to);
        if !done(values, from) {
            waiting_on[to] += 1;
        }
    }
    // Ready steps, the one written first on top.
    let mut ready: Vec<usize> = (0..n)
        .rev()
        .filter(|&s| waiting_on[s] == 0 && F::__status(values).steps[s] == StepState::Pending)
        .collect();
    let mut failed: Vec<(usize, StepFailed)> = Vec::new();
    let mut suspended = false;

    let mut running_async = FuturesUnordered::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, F::Done)>();
    let mut in_flight = 0usize;
    let mut sync_jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut new_async = Vec::new();

    loop {
        // Start what is ready, unless a step failed or suspension was asked for.
        while failed.is_empty() && !suspended && in_flight < max_in_flight {
            if run.suspend_requested() {
                suspended = true;
                break;
            }
            let Some(step) = ready.pop() else { break };
            if let Some(preds) = &preds {
                match skipped::<F>(values, step, preds) {
                    Ok(false) => {}
                    Ok(true) => {
                        // Skipped: done as far as its successors are concerned.
                        let status = F::__status(values);
                        status.steps[step] = StepState::Ignore;
                        run.step_event(
                            steps[step].name(),
                            StepState::Ignore,
                            status.attempts[step],
                            None,
                        );
                        for &next in &successors[step] {
                            waiting_on[next] -= 1;
                            if waiting_on[next] == 0 {
                                ready.push(next);
                            }
                        }
                        ready.sort_unstable_by(|a, b| b.cmp(a));
                        continue;
                    }
                    Err(why) => {
                        mark_failed::<F>(values, step, &why, run);
                        failed.push((step, why));
                        break;
                    }
                }
            }
            if enter_scopes::<F>(values, step).is_err() {
                let why = not_attempted::<F>(step);
                mark_failed::<F>(values, step, &why, run);
                failed.push((step, why));
                break;
            }
            let status = F::__status(values);
            status.steps[step] = StepState::Running;
            let attempt = status.attempts[step];
            run.step_event(steps[step].name(), StepState::Running, attempt, None);
            let future = F::__start(values, step, run);
            in_flight += 1;
            match steps[step].exec() {
                Exec::Sync => {
                    let tx = done_tx.clone();
                    sync_jobs.push(Box::new(move || {
                        let _ = tx.send((step, block_on(future)));
                    }));
                }
                Exec::Async | Exec::Flow => new_async.push(tagged(step, future)),
            }
        }
        // Write-ahead: the RUNNING of every step started in this round, with the SUCCESS of the
        // steps that finished since the last round, in one checkpoint (none when nothing
        // changed; at the very end the run's last checkpoint takes them); if it fails, none of
        // them starts.
        if in_flight > 0 && !run.commit() {
            in_flight -= sync_jobs.len() + new_async.len();
            sync_jobs.clear();
            new_async.clear();
            suspended = true;
        }
        running_async.extend(new_async.drain(..));
        // Hand every sync step started in this round to the workers at once.
        pool.submit_all(std::mem::take(&mut sync_jobs));
        if in_flight == 0 {
            break;
        }
        // Take every completion that is there, not one per wake-up: a wide fan-out finishes
        // many steps between two polls of this task.
        let done = poll_fn(|cx| {
            let mut done = Vec::new();
            // `recv_many` registers the waker when nothing is queued; it never sees the channel
            // closed, since this function holds a sender.
            let _ = done_rx.poll_recv_many(cx, &mut done, usize::MAX);
            while let Poll::Ready(Some(finished)) = running_async.poll_next_unpin(cx) {
                done.push(finished);
            }
            if done.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(done)
            }
        })
        .await;
        in_flight -= done.len();
        let mut newly = Vec::new();
        for (step, result) in done {
            let name = steps[step].name();
            let attempt = F::__status(values).attempts[step];
            match F::__finish(values, result) {
                Ok(()) => {
                    F::__status(values).steps[step] = StepState::Success;
                    run.step_event(name, StepState::Success, attempt, None);
                    run.record_result::<F>(values, step);
                    for &next in &successors[step] {
                        waiting_on[next] -= 1;
                        if waiting_on[next] == 0 {
                            newly.push(next);
                        }
                    }
                }
                Err(StepFailed::Suspended) => {
                    F::__status(values).steps[step] = StepState::Pending;
                    suspended = true;
                }
                Err(why) => {
                    mark_failed::<F>(values, step, &why, run);
                    failed.push((step, why));
                }
            }
        }
        if !newly.is_empty() {
            ready.append(&mut newly);
            ready.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
    // A failure wins over a suspension asked for meanwhile: what ran is undone.
    if suspended && failed.is_empty() {
        return Err(Stop::Suspended);
    }
    Ok(failed)
}

/// Reverts every step that ran, in reverse dependency order: a step is undone once every step
/// after it that ran has been undone. Independent reverts run concurrently.
pub(super) async fn revert<F: Flow>(
    values: &mut F::Values,
    own: &mut HashMap<usize, Failure>,
    only: Option<&[usize]>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let graph = F::graph();
    let steps = graph.steps();
    let n = steps.len();
    let undo: Vec<bool> = (0..n)
        .map(|s| only.is_none_or(|o| o.contains(&s)) && to_undo::<F>(values, own, s))
        .collect();
    let mut blocking = vec![0usize; n];
    let mut predecessors = vec![Vec::new(); n];
    for &(from, to) in graph.edges() {
        predecessors[to].push(from);
        if undo[to] {
            blocking[from] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&s| undo[s] && blocking[s] == 0).collect();
    let mut reverting = FuturesUnordered::new();
    let mut reverts = Vec::new();
    // Sync revert hooks run on the workers, like sync steps, so they can run side by side.
    let (undone_tx, mut undone_rx) =
        tokio::sync::mpsc::unbounded_channel::<(usize, Vec<Failure>)>();
    let mut in_flight = 0usize;
    let pool = run.pool();
    loop {
        let mut sync_jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for &step in &ready {
            let attempt = F::__status(values).attempts[step];
            run.step_event(steps[step].name(), StepState::Reverting, attempt, None);
            F::__status(values).steps[step] = StepState::Reverting;
        }
        // Write-ahead: REVERTING before the hooks run; if it fails, none of them starts.
        if !ready.is_empty() && !run.commit() {
            ready.clear();
        }
        while let Some(step) = ready.pop() {
            let future = F::__revert(values, step, own.remove(&step), failures.clone(), run);
            in_flight += 1;
            match pool {
                Some(_) if steps[step].sync_hook() => {
                    let tx = undone_tx.clone();
                    sync_jobs.push(Box::new(move || {
                        let _ = tx.send((step, block_on(future)));
                    }));
                }
                _ => reverting.push(tagged(step, future)),
            }
        }
        if let Some(pool) = pool {
            pool.submit_all(sync_jobs);
        }
        if in_flight == 0 {
            break;
        }
        let (step, failed) = poll_fn(|cx| {
            if let Poll::Ready(Some(done)) = undone_rx.poll_recv(cx) {
                return Poll::Ready(done);
            }
            match reverting.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => Poll::Ready(done),
                _ => Poll::Pending,
            }
        })
        .await;
        in_flight -= 1;
        let state = if failed.is_empty() {
            StepState::Reverted
        } else {
            StepState::RevertFailure
        };
        let status = F::__status(values);
        status.steps[step] = state;
        let attempt = status.attempts[step];
        run.step_event(steps[step].name(), state, attempt, failed.first());
        reverts.extend(failed);
        for &before in &predecessors[step] {
            if undo[before] {
                blocking[before] -= 1;
                if blocking[before] == 0 {
                    ready.push(before);
                }
            }
        }
    }
    reverts
}
