//! Undoing what ran, in reverse dependency order: a step is reverted only after every step that
//! ran after it and depends on it. The serial engine goes newest first, one at a time; the
//! parallel engine reverts independent steps concurrently (sync hooks on its workers).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::durable::takeover;
use crate::failure::Failure;
use crate::flow::Flow;
use crate::runtime::pool::block_on;
use crate::runtime::{Mode, Run, RunContext};
use crate::state::{FlowState, StepState};
use crate::OutcomeUnknown;

/// What to revert: the failed tasks, each undone with its own failure (their hooks get
/// `Err(failure)`), and the failures of the flow that every hook sees.
pub(crate) struct ToUndo {
    /// Each failed task that is still to be undone, with its own failure.
    pub(crate) own: HashMap<usize, Failure>,
    /// Every failure of the flow, handed to each revert hook as `failures`.
    pub(crate) failures: Arc<[Failure]>,
}

impl ToUndo {
    /// What undoing step `step` gets: its own failure (taken: a step is undone once) and the
    /// flow's failures.
    fn of<'a>(&mut self, step: usize, cx: &'a RunContext) -> crate::__private::Undo<'a> {
        crate::__private::Undo {
            failed: self.own.remove(&step),
            failures: self.failures.clone(),
            cx,
        }
    }
}

/// How a revert ended.
pub(crate) struct Reverted {
    /// The reverts that failed.
    pub(crate) failures: Vec<Failure>,
    /// A suspension (or a failed store) stopped it after the reverts in flight, with steps left
    /// to undo.
    pub(crate) stopped: bool,
}

/// Whether a revert may stop part-way when the run is asked to suspend: the flow's own reverts
/// may (TaskFlow stops them after the reverts in flight); a sub-flow undone as one step of its
/// parent may not, since the parent counts it as one revert.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSuspend {
    Stop,
    Finish,
}

/// Reverts every step that ran — those that succeeded, and failed tasks (with their own failure,
/// taken from `undo.own`) — of the whole flow or only of retry scope `scope`.
pub(crate) async fn revert_ran<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    undo: &mut ToUndo,
    scope: Option<usize>,
    on_suspend: OnSuspend,
) -> Reverted {
    let only = scope.map(|s| F::graph().scopes()[s].steps);
    match cx.mode() {
        Mode::Serial => newest_first(run, cx, undo, only, on_suspend).await,
        Mode::Parallel { .. } => by_dependencies(run, cx, undo, only, on_suspend).await,
    }
}

/// Whether step `step` must be undone: it succeeded, or it is a task that failed.
fn to_undo<F: Flow>(run: &Run<F>, own: &HashMap<usize, Failure>, step: usize) -> bool {
    match run.status.steps[step] {
        StepState::Success => true,
        StepState::Failure => own.contains_key(&step),
        _ => false,
    }
}

/// The serial order: newest first, one at a time.
async fn newest_first<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    undo: &mut ToUndo,
    only: Option<&[usize]>,
    on_suspend: OnSuspend,
) -> Reverted {
    let mut reverts = Vec::new();
    for step in (0..F::graph().steps().len()).rev() {
        if only.is_some_and(|o| !o.contains(&step)) || !to_undo(run, &undo.own, step) {
            continue;
        }
        if on_suspend == OnSuspend::Stop && cx.stop_reverting() {
            return Reverted {
                failures: reverts,
                stopped: true,
            };
        }
        run.step_to(cx, step, StepState::Reverting, None);
        if !cx.commit().await {
            continue; // the run stops: the store still says what to undo
        }
        let sync = F::graph().steps()[step].sync_hook();
        let failed = hook(sync, F::__revert(&mut run.values, step, undo.of(step, cx))).await;
        reverts.extend(reverted(run, cx, step, failed));
    }
    Reverted {
        failures: reverts,
        stopped: false,
    }
}

/// Records how step `step`'s revert ended, and hands back its failures.
fn reverted<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    step: usize,
    failed: Vec<Failure>,
) -> Vec<Failure> {
    let state = if failed.is_empty() {
        StepState::Reverted
    } else {
        StepState::RevertFailure
    };
    run.step_to(cx, step, state, failed.first());
    failed
}

async fn tagged<T: Future>(step: usize, future: T) -> (usize, T::Output) {
    (step, future.await)
}

/// The parallel order: a step is undone once every step after it that ran has been undone;
/// independent reverts run concurrently.
async fn by_dependencies<F: Flow>(
    run: &mut Run<F>,
    cx: &RunContext,
    undo: &mut ToUndo,
    only: Option<&[usize]>,
    on_suspend: OnSuspend,
) -> Reverted {
    let graph = F::graph();
    let steps = graph.steps();
    let n = steps.len();
    let wanted: Vec<bool> = (0..n)
        .map(|s| only.is_none_or(|o| o.contains(&s)) && to_undo(run, &undo.own, s))
        .collect();
    let mut blocking = vec![0usize; n];
    let mut predecessors = vec![Vec::new(); n];
    for &(from, to) in graph.edges() {
        predecessors[to].push(from);
        if wanted[to] {
            blocking[from] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&s| wanted[s] && blocking[s] == 0).collect();
    let mut reverting = FuturesUnordered::new();
    let mut reverts = Vec::new();
    // Sync revert hooks run on the workers, like sync steps, so they can run side by side.
    let (undone_tx, mut undone_rx) =
        tokio::sync::mpsc::unbounded_channel::<(usize, Vec<Failure>)>();
    let mut in_flight = 0usize;
    let pool = cx.pool();
    let mut stopped = false;
    loop {
        let mut sync_jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        if !ready.is_empty() && on_suspend == OnSuspend::Stop && cx.stop_reverting() {
            // The reverts in flight finish; nothing new starts.
            ready.clear();
            stopped = true;
        }
        for &step in &ready {
            run.step_to(cx, step, StepState::Reverting, None);
        }
        // Write-ahead: REVERTING before the hooks run; if it fails, none of them starts.
        if !ready.is_empty() && !cx.commit().await {
            ready.clear();
        }
        while let Some(step) = ready.pop() {
            let future = F::__revert(&mut run.values, step, undo.of(step, cx));
            in_flight += 1;
            match pool {
                Some(_) if steps[step].sync_hook() => {
                    let work = move || (step, block_on(future));
                    sync_jobs.push(cx.pool_job(work, undone_tx.clone()));
                }
                _ => reverting.push(tagged(step, hook(steps[step].sync_hook(), future))),
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
        reverts.extend(reverted(run, cx, step, failed));
        for &before in &predecessors[step] {
            if wanted[before] {
                blocking[before] -= 1;
                if blocking[before] == 0 {
                    ready.push(before);
                }
            }
        }
    }
    Reverted {
        failures: reverts,
        stopped,
    }
}

/// Undoes, one at a time, the steps of a resumed run that were RUNNING when it was interrupted
/// and whose task says `on_takeover = revert_then_rerun`: each hook gets an [`OutcomeUnknown`]
/// failure as its `result` (and as the flow's failures); a step undone is PENDING, to run again.
/// One whose hook fails is held for a person (see [`crate::durable::takeover`]).
pub(crate) async fn undo_unknown<F: Flow>(run: &mut Run<F>, cx: &RunContext) {
    for step in std::mem::take(&mut run.status.unknown) {
        if cx.suspend_requested() {
            return; // the records still say what to undo, for the next resume
        }
        let name = F::graph().steps()[step].name();
        let path = cx.path(name);
        let unknown = Failure::from_error(name, OutcomeUnknown::new(path.clone()));
        run.step_to(cx, step, StepState::Reverting, None);
        if !cx.commit().await {
            return;
        }
        let mut undo = ToUndo {
            own: HashMap::from([(step, unknown.clone())]),
            failures: vec![unknown].into(),
        };
        let sync = F::graph().steps()[step].sync_hook();
        let failed = hook(sync, F::__revert(&mut run.values, step, undo.of(step, cx))).await;
        match failed.first() {
            None => {
                run.step_to(cx, step, StepState::Reverted, None);
                run.step_to(cx, step, StepState::Pending, None);
            }
            Some(failure) => {
                run.step_to(cx, step, StepState::RevertFailure, Some(failure));
                let reason = takeover::revert_failed_reason(&path, failure.error());
                cx.hold(path, reason);
            }
        }
    }
}

/// Reverts a completed (or suspended) sub-flow as a step of its parent.
pub async fn revert_subflow<F: Flow>(
    sub: Option<Run<F>>,
    step: &'static str,
    failures: Arc<[Failure]>,
    cx: RunContext,
) -> Vec<Failure> {
    let Some(mut sub) = sub else {
        return Vec::new();
    };
    let cx = cx.within(step);
    sub.flow_to(&cx, FlowState::Reverting);
    let mut undo = ToUndo {
        own: HashMap::new(),
        failures,
    };
    let failed = revert_ran(&mut sub, &cx, &mut undo, None, OnSuspend::Finish)
        .await
        .failures;
    sub.flow_to(
        &cx,
        if failed.is_empty() {
            FlowState::Reverted
        } else {
            FlowState::Failure
        },
    );
    crate::__private::within(step, failed)
}

/// Awaits a revert hook's `future`; a sync hook's (`sync`), which is done at its first poll, is
/// polled as sync user code is called (in `block_in_place` where the run must not block its
/// worker, see `__private::off_worker`).
async fn hook<T>(sync: bool, future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    if sync {
        if let Some(done) =
            crate::__private::sync_call(|| futures_util::FutureExt::now_or_never(future.as_mut()))
        {
            return done;
        }
    }
    future.await
}
