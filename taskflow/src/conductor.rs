//! Conductors: processes that claim jobs from a [`JobBoard`] and run their flows durably in the
//! board's [`PostgresStore`], on any number of machines.
//!
//! A conductor claims up to its concurrency limit of jobs of the flows it registered (name and
//! fingerprint: a build never runs a job posted for another version of a flow), runs each one
//! under the job's run id (`job-<id>`), starting it or resuming it from its last checkpoint when
//! the job was claimed before, renews each claim with heartbeats while the run goes on (also
//! during a long step: the heartbeat is a task of its own), and ends the job with its run's
//! outcome. Its writes are fenced twice: the job's claim epoch guards every job update, the run's
//! lease epoch every checkpoint; a conductor that lost either stops its run at the next step and
//! writes nothing more for the job.
//!
//! ```no_run
//! use std::sync::Arc;
//! use taskflow::prelude::*;
//! use taskflow::conductor::{Conductor, ConductorOptions};
//! use taskflow::store::PostgresStore;
//!
//! #[task(provides = y)]
//! fn double(x: u32) -> u32 { x * 2 }
//! flow! { flow Double(x: u32) -> (y) { linear [ double ] } }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?);
//! let conductor = Conductor::new(store, Engine::serial())
//!     .options(ConductorOptions { concurrency: 4, ..Default::default() })
//!     .register(|| Double);
//! // Runs until `shutdown` completes (in a service, the future of its stop signal, like
//! // tokio's `signal::ctrl_c()`), then lets each running flow reach a step boundary, gives
//! // its job back and returns.
//! let shutdown = tokio::time::sleep(std::time::Duration::from_secs(3600));
//! let report = conductor.run(shutdown).await?;
//! println!("{} jobs done", report.done);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::store::{
    AsyncStore, Claim, FlowKey, JobBoard, JobState, Owner, PostgresStore, StoreError,
};
use crate::{DurableError, DurableFlow, Engine, FlowState, Outcome, SuspendHandle};

/// How a conductor works: how many jobs at once, how long a claim holds, how often it is
/// renewed and how often the board is polled, and what a shutdown waits for.
///
/// Write it with `..Default::default()`: options may be added.
///
/// ```
/// use std::time::Duration;
/// use taskflow::conductor::{ConductorOptions, Drain};
///
/// let o = ConductorOptions::default();
/// assert_eq!((o.concurrency, o.claim_hold, o.heartbeat_every), (8, Duration::from_secs(30), Duration::from_secs(10)));
/// assert_eq!(o.drain, Drain::StepBoundary);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConductorOptions {
    /// The most jobs it runs at once. Default 8.
    pub concurrency: usize,
    /// How long a claim holds unless renewed: how soon another conductor takes over the jobs of
    /// one that died, was cut off or paused. It must be longer than the conductor can pause
    /// (a GC-less process still stops in swap, a VM migration, SIGSTOP). Default 30 s.
    pub claim_hold: Duration,
    /// How often it renews each claim (well under `claim_hold`). Default 10 s.
    pub heartbeat_every: Duration,
    /// How often it looks for jobs when it has room and nothing woke it: a job posted or
    /// cancelled wakes it at once (`LISTEN` on the board's channel), this is the fallback for
    /// run-at times coming due, claims running out, and a lost notification connection.
    /// Default 1 s.
    pub poll_every: Duration,
    /// The least time between two claims. A claim takes every job it has room for, so what
    /// was posted and what ended meanwhile goes in one claim rather than one claim each. A
    /// conductor whose claims find nothing (others, woken by the same post, were first) waits
    /// twice as long after each, up to 16 times this, and this long again once it finds a job:
    /// conductors that lose the race for each post stop asking after every one. Default 5 ms.
    pub claim_cooldown: Duration,
    /// What a shutdown waits for. Default [`Drain::StepBoundary`].
    pub drain: Drain,
}

impl Default for ConductorOptions {
    fn default() -> Self {
        ConductorOptions {
            concurrency: 8,
            claim_hold: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(10),
            poll_every: Duration::from_secs(1),
            claim_cooldown: Duration::from_millis(5),
            drain: Drain::StepBoundary,
        }
    }
}

/// What a shutting-down conductor waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Each running flow stops at its next step boundary (recorded SUSPENDED); its job is
    /// released at once, to be resumed by another conductor from there.
    StepBoundary,
    /// Each running flow runs to its end; its job is completed.
    Finish,
}

/// What a conductor did, when [`Conductor::run`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConductorReport {
    /// Jobs it claimed.
    pub claimed: u64,
    /// Jobs it ended (done or cancelled).
    pub done: u64,
    /// Jobs it gave back unfinished at shutdown.
    pub released: u64,
    /// Jobs it stopped because it lost their claim or their run's lease (another conductor has
    /// them now), or could not write for them (their claim runs out and they are taken over).
    pub lost: u64,
    /// Jobs it held for a person: their runs have a step whose outcome is unknown after a
    /// take-over and whose task says `on_takeover = hold` (see [`JobState::Held`](crate::store::JobState::Held)).
    pub held: u64,
}

type RunFuture = Pin<Box<dyn Future<Output = RunEnd> + Send>>;

/// How one run of a claimed job ended, as far as the conductor is concerned.
enum RunEnd {
    /// The run ended in this state (SUCCESS, REVERTED, FAILURE).
    Ended(FlowState),
    /// It stopped at a step boundary when asked to.
    Suspended,
    /// Another owner's lease on the run is still live.
    Busy,
    /// It cannot go on here (the store failed, the run's lease was lost, the inputs do not
    /// load): leave the job to expire.
    Abandoned(String),
    /// It is held for a person, for this reason.
    Held(String),
}

/// Runs one registered flow for a claim.
type Runner =
    Arc<dyn Fn(Arc<Engine>, Arc<PostgresStore>, Claim, SuspendHandle) -> RunFuture + Send + Sync>;

/// Claims jobs of the flows it registered and runs them (see the [module](self)).
pub struct Conductor {
    store: Arc<PostgresStore>,
    board: JobBoard,
    engine: Arc<Engine>,
    flows: HashMap<FlowKey, Runner>,
    options: ConductorOptions,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor")
            .field("store", &self.store)
            .field(
                "flows",
                &self.flows.keys().map(|k| &k.name).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Conductor {
    /// A conductor of the board of `store`, running flows on `engine`.
    pub fn new(store: Arc<PostgresStore>, engine: Engine) -> Conductor {
        Conductor {
            board: JobBoard::new(store.clone()),
            store,
            engine: Arc::new(engine),
            flows: HashMap::new(),
            options: ConductorOptions::default(),
        }
    }

    /// With `options`.
    pub fn options(mut self, options: ConductorOptions) -> Conductor {
        self.options = options;
        self
    }

    /// Runs jobs of flow `F` (this build's fingerprint of it); `flow` makes the flow value.
    pub fn register<F: DurableFlow + 'static>(
        mut self,
        flow: impl Fn() -> F + Send + Sync + 'static,
    ) -> Conductor {
        let flow = Arc::new(flow);
        let runner: Runner = Arc::new(move |engine, store, claim, stop| {
            let flow = flow.clone();
            Box::pin(async move { run_one::<F>(&engine, store, &claim, &stop, &*flow).await })
        });
        self.flows.insert(FlowKey::of::<F>(), runner);
        self
    }

    /// The flows it runs.
    pub fn flows(&self) -> Vec<FlowKey> {
        self.flows.keys().cloned().collect()
    }

    /// Claims and runs jobs until `shutdown` completes, then drains as
    /// [`ConductorOptions::drain`] says and returns what it did. Fails only when the board
    /// cannot be reached for longer than a claim holds (its jobs are then taken over).
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ConductorReport, StoreError> {
        let keys = self.flows();
        let owner = Owner::current();
        let mut report = ConductorReport::default();
        let mut running: JoinSet<JobEnd> = JoinSet::new();
        let mut stops: HashMap<i64, SuspendHandle> = HashMap::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut unreachable_since: Option<Instant> = None;
        // Woken when a job is posted or cancelled; `poll_every` is the fallback.
        let posted = self.board.wake_on_post();
        let completer = Completer::start(self.board.clone());
        // Whether a claim may find jobs: at the start, after a wake (a post, a cancel, the
        // poll), and after a claim that got all it asked for. Not after one that got fewer: the
        // board had no more then, and a slot freed since is filled at the next wake.
        let mut may_find = true;
        let mut last_claim: Option<Instant> = None;
        let mut cooldown = self.options.claim_cooldown;
        loop {
            let room = self.options.concurrency.saturating_sub(running.len());
            let due = last_claim.map(|at| at + cooldown);
            if room > 0 && may_find && due.is_none_or(|due| Instant::now() >= due) {
                last_claim = Some(Instant::now());
                match self
                    .board
                    .claim(&owner, &keys, room, self.options.claim_hold)
                    .await
                {
                    Ok(claims) => {
                        unreachable_since = None;
                        may_find = claims.len() == room;
                        cooldown = if claims.is_empty() {
                            (cooldown * 2).min(self.options.claim_cooldown * 16)
                        } else {
                            self.options.claim_cooldown
                        };
                        for claim in claims {
                            report.claimed += 1;
                            let stop = SuspendHandle::new();
                            stops.insert(claim.id.0, stop.clone());
                            running.spawn(self.job(claim, stop, &completer));
                        }
                    }
                    Err(e) => {
                        may_find = false; // tried again at the next poll
                        let since = *unreachable_since.get_or_insert_with(Instant::now);
                        tracing::warn!(error = %e, "conductor: claiming jobs failed");
                        if since.elapsed() > self.options.claim_hold && running.is_empty() {
                            return Err(e);
                        }
                    }
                }
            }
            let poll = tokio::time::sleep(self.options.poll_every);
            // A claim that is wanted waits out the cooldown.
            let cooling = room > 0 && may_find && due.is_some_and(|due| Instant::now() < due);
            let cooled = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into());
            tokio::select! {
                _ = &mut shutdown => break,
                Some(end) = running.join_next(), if !running.is_empty() => {
                    // With every other job that ended meanwhile: their slots are claimed for
                    // in one claim.
                    let mut end = Some(end);
                    while let Some(done) = end.take().or_else(|| running.try_join_next()) {
                        if let Ok(done) = done {
                            stops.remove(&done.id);
                            done.count(&mut report);
                        }
                    }
                }
                _ = poll => may_find = true,
                _ = posted.notified() => may_find = true,
                _ = cooled, if cooling => {}
            }
        }
        // Drain: claim nothing more; stop or finish what runs.
        if self.options.drain == Drain::StepBoundary {
            for stop in stops.values() {
                stop.suspend();
            }
        }
        while let Some(end) = running.join_next().await {
            if let Ok(end) = end {
                end.count(&mut report);
            }
        }
        Ok(report)
    }

    /// One claimed job, from its run's start (or resume) to its job's end.
    fn job(
        &self,
        claim: Claim,
        stop: SuspendHandle,
        completer: &Completer,
    ) -> impl Future<Output = JobEnd> + Send + 'static {
        let completer = completer.clone();
        let board = self.board.clone();
        // Every write for the job's run is fenced by this claim, besides the run's lease.
        let store = Arc::new(self.store.for_claim(&claim));
        let engine = self.engine.clone();
        let runner = self.flows.get(&claim.flow).cloned();
        let options = self.options.clone();
        async move {
            let id = claim.id.0;
            let Some(runner) = runner else {
                return JobEnd { id, how: How::Lost }; // claimed only for registered flows
            };
            // The heartbeat: renews the claim while the run goes on; a lost claim or a cancel
            // stops the run at its next step boundary.
            let lost = Arc::new(AtomicBool::new(false));
            let cancelled = Arc::new(AtomicBool::new(claim.cancel_requested));
            let beat = tokio::spawn(heartbeat(
                board.clone(),
                claim.clone(),
                options.clone(),
                stop.clone(),
                lost.clone(),
                cancelled.clone(),
            ));
            if cancelled.load(Ordering::SeqCst) {
                stop.cancel(); // a take-over of a job being cancelled: revert what it did
            }
            let end = loop {
                // A sync step must not block a worker of the runtime, where the heartbeats and
                // this conductor's loop run: on a multi-thread runtime the run is a task whose
                // sync user code runs in `block_in_place`; elsewhere it gets a thread of its own.
                let run = runner(engine.clone(), store.clone(), claim.clone(), stop.clone());
                let runtime = tokio::runtime::Handle::current();
                let ran = match runtime.runtime_flavor() {
                    tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::spawn(crate::__private::off_worker(run))
                    }
                    _ => tokio::task::spawn_blocking(move || runtime.block_on(run)),
                };
                let end = match ran.await {
                    Ok(end) => end,
                    Err(e) => RunEnd::Abandoned(format!("the run's task failed: {e}")),
                };
                match end {
                    // The previous holder's run lease has not run out yet: wait for it, while
                    // the heartbeat keeps this claim.
                    RunEnd::Busy if !lost.load(Ordering::SeqCst) && !stop.is_requested() => {
                        tokio::time::sleep(options.poll_every).await;
                    }
                    RunEnd::Busy => break RunEnd::Suspended,
                    other => break other,
                }
            };
            beat.abort();
            // The run's last checkpoint ended the job too, in its transaction (the heartbeat
            // may have found the claim gone since, which is this).
            let how = if store.completed().is_some() {
                How::Done
            } else if lost.load(Ordering::SeqCst) {
                How::Lost
            } else {
                match end {
                    RunEnd::Ended(state) => match completer.complete(&claim, state).await {
                        Ok(_) => How::Done,
                        Err(_) => How::Lost,
                    },
                    // Stopped at a step boundary (a shutdown): the job goes back to the board.
                    RunEnd::Suspended | RunEnd::Busy => match board.release(&claim).await {
                        Ok(()) => How::Released,
                        Err(_) => How::Lost,
                    },
                    RunEnd::Abandoned(why) => {
                        tracing::warn!(job = id, %why, "conductor: leaving the job to be taken over");
                        How::Lost
                    }
                    RunEnd::Held(why) => {
                        tracing::warn!(job = id, %why, "conductor: the job is held for a person");
                        match board.hold(&claim, &why).await {
                            Ok(()) => How::Held,
                            Err(_) => How::Lost,
                        }
                    }
                }
            };
            JobEnd { id, how }
        }
    }
}

struct JobEnd {
    id: i64,
    how: How,
}

enum How {
    Done,
    Released,
    Lost,
    Held,
}

impl JobEnd {
    fn count(&self, report: &mut ConductorReport) {
        match self.how {
            How::Done => report.done += 1,
            How::Released => report.released += 1,
            How::Lost => report.lost += 1,
            How::Held => report.held += 1,
        }
    }
}

/// A job's end as its conductor asks the board to record it, and where the answer goes.
type Completion = (
    Claim,
    FlowState,
    tokio::sync::oneshot::Sender<Result<JobState, StoreError>>,
);

/// Ends jobs in batches: a job's completion waits while the batch before it is written, then
/// goes with every other waiting then, in one `complete_many` (one statement, one commit). Runs
/// that end together — the common case at full concurrency — share their completion's commit;
/// a lone one is written at once.
#[derive(Clone)]
struct Completer {
    tx: tokio::sync::mpsc::UnboundedSender<Completion>,
}

/// The most completions written in one statement.
const COMPLETION_BATCH: usize = 64;

impl Completer {
    /// Starts the task that writes completions to `board`; it ends when every handle is gone.
    fn start(board: JobBoard) -> Completer {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Completion>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < COMPLETION_BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let ended: Vec<(&Claim, FlowState)> = batch
                    .iter()
                    .map(|(claim, state, _)| (claim, *state))
                    .collect();
                match board.complete_many(&ended).await {
                    Ok(results) => {
                        for ((_, _, reply), result) in batch.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                    }
                    Err(e) => {
                        let why = e.to_string();
                        for (_, _, reply) in batch {
                            let _ = reply.send(Err(StoreError::Backend {
                                store: "PostgreSQL".into(),
                                source: why.clone().into(),
                            }));
                        }
                    }
                }
            }
        });
        Completer { tx }
    }

    /// Ends `claim`'s job with its run's `outcome` (see [`JobBoard::complete`]).
    async fn complete(&self, claim: &Claim, outcome: FlowState) -> Result<JobState, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Backend {
            store: "PostgreSQL".into(),
            source: "the conductor's completion task is gone".into(),
        };
        self.tx
            .send((claim.clone(), outcome, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Renews `claim` every `heartbeat_every`. A lost claim, or a claim that could not be renewed
/// before it ran out (the database unreachable), stops the run: this conductor can no longer
/// prove the job is its own.
async fn heartbeat(
    board: JobBoard,
    claim: Claim,
    options: ConductorOptions,
    stop: SuspendHandle,
    lost: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(options.heartbeat_every).await;
        match board.heartbeat(&claim, options.claim_hold).await {
            Ok(cancel) => {
                renewed = Instant::now();
                if cancel {
                    cancelled.store(true, Ordering::SeqCst);
                    stop.cancel();
                }
            }
            Err(StoreError::LostClaim { .. }) => {
                lost.store(true, Ordering::SeqCst);
                stop.suspend();
                return;
            }
            Err(e) => {
                tracing::warn!(job = claim.id.0, error = %e, "conductor: heartbeat failed");
                if renewed.elapsed() >= options.claim_hold {
                    lost.store(true, Ordering::SeqCst);
                    stop.suspend();
                    return;
                }
            }
        }
    }
}

/// Starts or resumes the run of `claim` with flow `flow`, until it ends or `stop` stops it.
async fn run_one<F: DurableFlow>(
    engine: &Engine,
    store: Arc<PostgresStore>,
    claim: &Claim,
    stop: &SuspendHandle,
    flow: &(dyn Fn() -> F + Send + Sync),
) -> RunEnd {
    let run_id = claim.id.run_id();
    // A job claimed for the first time has no run yet (only a conductor under a claim starts
    // one): no look first. A job claimed before may have one: resume it.
    let stored = if claim.takeover {
        match store.load_flow(&run_id).await {
            Ok(stored) => stored.is_some(),
            Err(e) => return RunEnd::Abandoned(e.to_string()),
        }
    } else {
        false
    };
    let ran = if stored {
        engine
            .resume(flow(), store.clone(), &run_id)
            .until(stop)
            .await
    } else {
        let inputs = match F::__load_inputs(&claim.inputs) {
            Ok(inputs) => inputs,
            Err(e) => {
                // The job can never run: end it as failed, its reason in the log.
                tracing::error!(job = claim.id.0, error = %e, "conductor: the job's inputs do not load");
                return RunEnd::Ended(FlowState::Failure);
            }
        };
        let started = engine
            .run(flow(), inputs)
            .durable(store.clone(), &run_id)
            .until(stop)
            .await;
        match started {
            // A run of that id exists after all (created by someone else, or between a look
            // and the start): it is resumed, or is another owner's (busy).
            Err(DurableError::Store(StoreError::AlreadyExists { .. })) => {
                engine
                    .resume(flow(), store.clone(), &run_id)
                    .until(stop)
                    .await
            }
            other => other,
        }
    };
    match ran {
        Ok(Outcome::Done(_)) => RunEnd::Ended(FlowState::Success),
        Ok(Outcome::Suspended(_)) => RunEnd::Suspended,
        // Its end, as its last checkpoint recorded it with the job's, or as stored.
        Err(DurableError::Failed(_)) => match store.completed() {
            Some((state, _)) => RunEnd::Ended(state),
            None => match store.load_flow(&run_id).await {
                Ok(Some(stored)) if stored.flow.state.is_final() => {
                    RunEnd::Ended(stored.flow.state)
                }
                Ok(_) => RunEnd::Abandoned("the run failed but is not recorded as ended".into()),
                Err(e) => RunEnd::Abandoned(e.to_string()),
            },
        },
        Err(DurableError::Store(StoreError::RunBusy { .. })) => RunEnd::Busy,
        Err(DurableError::Held { steps, .. }) => RunEnd::Held(
            steps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => RunEnd::Abandoned(e.to_string()),
    }
}
