//! The parallel driver: every step starts as soon as the steps it depends on have finished.
//!
//! Async steps are polled together on the caller's task (no spawn per step); sync steps go to the
//! engine's worker pool and report back over a channel. Both kinds are the same generated,
//! `'static` step future, so the driver only decides *where* to poll it.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::pool::{block_on, Pool};
use super::{failure_parts, RunContext};
use crate::failure::Failure;
use crate::flow::Flow;
use crate::graph::Exec;
use crate::FlowError;

/// What became of a step, as far as reverting is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ran {
    /// Never started: nothing to undo.
    No,
    /// Finished: revert with its outputs.
    Succeeded,
    /// A task that failed: revert with its own failure.
    Failed,
    /// A sub-flow that failed: it reverted itself already.
    Undone,
}

/// Successors and predecessor counts from the flow's edges.
fn dependencies(n: usize, edges: &[(usize, usize)]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut successors = vec![Vec::new(); n];
    let mut waiting_on = vec![0usize; n];
    for &(from, to) in edges {
        successors[from].push(to);
        waiting_on[to] += 1;
    }
    (successors, waiting_on)
}

async fn tagged<T: Future>(step: usize, future: T) -> (usize, T::Output) {
    (step, future.await)
}

pub(super) async fn drive<F: Flow>(
    values: &mut F::Values,
    run: &RunContext,
    pool: &Pool,
    max_in_flight: usize,
) -> Result<(), FlowError> {
    let graph = F::graph();
    let steps = graph.steps();
    let n = steps.len();
    let (successors, mut waiting_on) = dependencies(n, graph.edges());
    let mut ready: Vec<usize> = (0..n).rev().filter(|&s| waiting_on[s] == 0).collect();
    let mut ran = vec![Ran::No; n];
    let mut failures: Vec<Failure> = Vec::new();
    let mut reverts: Vec<Failure> = Vec::new();
    let mut own_failures: Vec<(usize, Failure)> = Vec::new();

    let mut running_async = FuturesUnordered::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, F::Done)>();
    let mut in_flight = 0usize;

    loop {
        // Start what is ready, unless a step has failed: then nothing new starts.
        while failures.is_empty() && in_flight < max_in_flight {
            let Some(step) = ready.pop() else { break };
            let future = F::__start(values, step, run);
            in_flight += 1;
            match steps[step].exec() {
                Exec::Sync => {
                    let tx = done_tx.clone();
                    pool.submit(Box::new(move || {
                        let _ = tx.send((step, block_on(future)));
                    }));
                }
                Exec::Async | Exec::Flow => running_async.push(tagged(step, future)),
            }
        }
        if in_flight == 0 {
            break;
        }
        let (step, done) = poll_fn(|cx| {
            if let Poll::Ready(Some(done)) = done_rx.poll_recv(cx) {
                return Poll::Ready(done);
            }
            match running_async.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => Poll::Ready(done),
                _ => Poll::Pending,
            }
        })
        .await;
        in_flight -= 1;
        match F::__finish(values, done) {
            Ok(()) => {
                ran[step] = Ran::Succeeded;
                for &next in &successors[step] {
                    waiting_on[next] -= 1;
                    if waiting_on[next] == 0 {
                        ready.push(next);
                    }
                }
                // Prefer the step written first among the ready ones, like the serial order.
                ready.sort_unstable_by(|a, b| b.cmp(a));
            }
            Err(failed) => {
                let (mut f, r, own) = failure_parts::<F>(step, failed);
                ran[step] = if own.is_some() {
                    Ran::Failed
                } else {
                    Ran::Undone
                };
                if let Some(own) = own {
                    own_failures.push((step, own));
                }
                failures.append(&mut f);
                reverts.extend(r);
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let failures: Arc<[Failure]> = failures.into();
    let mut own = own_failures
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>();
    reverts.extend(revert_with::<F>(values, &ran, &mut own, &failures, run).await);
    Err(FlowError::__new(failures.to_vec(), reverts))
}

/// Reverts every step that ran, in reverse dependency order: a step is undone once every step
/// after it that ran has been undone. Independent reverts run concurrently.
pub(super) async fn revert<F: Flow>(
    values: &mut F::Values,
    ran: &[Ran],
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    revert_with::<F>(values, ran, &mut Default::default(), failures, run).await
}

async fn revert_with<F: Flow>(
    values: &mut F::Values,
    ran: &[Ran],
    own: &mut std::collections::HashMap<usize, Failure>,
    failures: &Arc<[Failure]>,
    run: &RunContext,
) -> Vec<Failure> {
    let graph = F::graph();
    let n = ran.len();
    let to_undo = |s: usize| matches!(ran[s], Ran::Succeeded | Ran::Failed);
    // Count, for each step, the successors that must be undone before it.
    let mut blocking = vec![0usize; n];
    let mut predecessors = vec![Vec::new(); n];
    for &(from, to) in graph.edges() {
        predecessors[to].push(from);
        if to_undo(to) {
            blocking[from] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&s| to_undo(s) && blocking[s] == 0).collect();
    let mut reverting = FuturesUnordered::new();
    let mut reverts = Vec::new();
    loop {
        while let Some(step) = ready.pop() {
            let future = F::__revert(values, step, own.remove(&step), failures.clone(), run);
            reverting.push(tagged(step, future));
        }
        let Some((step, failed)) = reverting.next().await else {
            break;
        };
        reverts.extend(failed);
        for &before in &predecessors[step] {
            if to_undo(before) {
                blocking[before] -= 1;
                if blocking[before] == 0 {
                    ready.push(before);
                }
            }
        }
    }
    reverts
}
