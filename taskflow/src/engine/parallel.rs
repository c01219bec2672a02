//! The parallel driver: every step starts as soon as the steps it depends on have finished.
//!
//! Async steps are polled together on the caller's task (no spawn per step); sync steps go to the
//! engine's worker pool and report back over a channel. Both kinds are the same generated,
//! `'static` step future, so the driver only decides *where* to poll it.

use std::future::{poll_fn, Future};
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::flow::Flow;
use crate::graph::Exec;
use crate::runtime::failed::Failed;
use crate::runtime::failed::Stop;
use crate::runtime::failure::{on_failure, Handled};
use crate::runtime::pool::{block_on, Pool};
use crate::runtime::step::{self, Begun, Ended};
use crate::runtime::{Run, RunContext};
use crate::state::{FlowState, StepState};

async fn tagged<T: Future>(step: usize, future: T) -> (usize, T::Output) {
    (step, future.await)
}

pub(super) async fn drive<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    pool: &Pool,
    max_in_flight: usize,
) -> Result<(), Stop> {
    loop {
        let failed = run_until_quiet(run, cx, pool, max_in_flight).await?;
        if failed.is_empty() {
            return Ok(());
        }
        match on_failure(run, cx, failed, Vec::new()).await {
            // Retried scopes are PENDING again: schedule what is left.
            Handled::Retry => {}
            Handled::Failed(error) => return Err(Stop::Failed(error)),
            Handled::Suspended => return Err(Stop::Suspended),
        }
    }
}

/// Runs ready steps until nothing is in flight. Returns the failed steps (a failure stops new
/// starts; the steps in flight finish), or `Stop::Suspended`.
async fn run_until_quiet<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    pool: &Pool,
    max_in_flight: usize,
) -> Result<Vec<Failed>, Stop> {
    let graph = F::graph();
    let steps = graph.steps();
    let n = steps.len();
    let preds = step::predecessors::<F>();
    let mut successors = vec![Vec::new(); n];
    let mut waiting_on = vec![0usize; n];
    for &(from, to) in graph.edges() {
        successors[from].push(to);
        if !matches!(
            run.status.steps[from],
            StepState::Success | StepState::Ignore
        ) {
            waiting_on[to] += 1;
        }
    }
    // Ready steps, the one written first on top.
    let mut ready: Vec<usize> = (0..n)
        .rev()
        .filter(|&s| waiting_on[s] == 0 && run.status.steps[s] == StepState::Pending)
        .collect();
    let mut failed: Vec<Failed> = Vec::new();
    let mut suspended = false;

    let mut running_async = FuturesUnordered::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, F::Done)>();
    let mut in_flight = 0usize;
    let mut sync_jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut new_async = Vec::new();

    loop {
        // Start what is ready, unless a step failed or suspension was asked for.
        let mut started = Vec::new();
        while failed.is_empty() && !suspended && in_flight < max_in_flight {
            if cx.suspend_requested() {
                suspended = true;
                break;
            }
            let Some(k) = ready.pop() else { break };
            match step::begin(run, cx, k, preds.as_deref()) {
                Begun::Skipped => {
                    // Skipped: done as far as its successors are concerned.
                    for &next in &successors[k] {
                        waiting_on[next] -= 1;
                        if waiting_on[next] == 0 {
                            ready.push(next);
                        }
                    }
                    ready.sort_unstable_by(|a, b| b.cmp(a));
                    continue;
                }
                Begun::Failed(why) => {
                    failed.push(Failed { step: k, why });
                    break;
                }
                Begun::Running => {}
            }
            let (values, at) = run.values_at();
            let future = F::__start(values, k, cx, at);
            in_flight += 1;
            started.push(k);
            match steps[k].exec() {
                Exec::Sync => {
                    let work = move || (k, block_on(future));
                    sync_jobs.push(cx.pool_job(work, done_tx.clone()));
                }
                Exec::Async | Exec::Flow => new_async.push(tagged(k, future)),
            }
        }
        // Write-ahead: the RUNNING of every step started in this round, with the SUCCESS of the
        // steps that finished since the last round, in one checkpoint (none when nothing
        // changed; at the very end the run's last checkpoint takes them); if it fails, none of
        // them starts.
        if in_flight > 0 && !cx.commit().await {
            in_flight -= sync_jobs.len() + new_async.len();
            sync_jobs.clear();
            new_async.clear();
            for &k in &started {
                step::not_started(run, cx, k);
            }
            suspended = true;
        }
        if suspended && run.status.flow == FlowState::Running {
            // The steps in flight finish first.
            run.flow_to(cx, FlowState::Suspending);
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
        for (k, result) in done {
            let outcome = F::__finish(&mut run.values, result);
            match step::end(run, cx, k, outcome) {
                Ended::Success => {
                    for &next in &successors[k] {
                        waiting_on[next] -= 1;
                        if waiting_on[next] == 0 {
                            newly.push(next);
                        }
                    }
                }
                Ended::Suspended => suspended = true,
                Ended::Failed(why) => failed.push(Failed { step: k, why }),
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
