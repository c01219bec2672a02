//! A job board in PostgreSQL: jobs posted (also inside the poster's own transaction), claimed
//! with `FOR UPDATE SKIP LOCKED` under a claim epoch that fences every later write, renewed by
//! heartbeats, completed, cancelled, and declared dead after too many take-overs.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use super::postgres::{
    backend, get, json, opt_json, state as parse_state, to_i64, to_json, unsigned,
};
use super::{unix_millis, Owner, PostgresStore, StoreError};
use crate::{DurableFlow, FlowState};

/// A job's number on its board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JobId {
    /// The id of the job's run in the [`PostgresStore`] of its board: `job-<id>`.
    ///
    /// ```
    /// assert_eq!(taskflow::store::JobId(7).run_id(), "job-7");
    /// ```
    pub fn run_id(&self) -> String {
        format!("job-{}", self.0)
    }
}

/// Where a job is. Posted → claimed → done (its run's outcome kept), or cancelled, or dead.
///
/// ```
/// use taskflow::store::JobState;
/// assert_eq!(JobState::Claimed.to_string(), "CLAIMED");
/// assert!(JobState::Dead.is_final() && !JobState::Posted.is_final());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a conductor (from its run-at time on).
    Posted,
    /// A conductor holds it under a claim that its heartbeats renew.
    Claimed,
    /// Its run ended: SUCCESS, REVERTED or FAILURE (see [`Job::outcome`]).
    Done,
    /// Cancelled: never started, or stopped and reverted.
    Cancelled,
    /// Taken over more often than it allows ([`NewJob::max_takeovers`]); [`Job::reason`] says
    /// why. [`JobBoard::redrive`] makes it claimable again.
    Dead,
    /// Held for a person: its run has a step whose outcome is unknown after a take-over and
    /// whose task says `on_takeover = hold` (see [`OnTakeover`](crate::OnTakeover)); [`Job::reason`]
    /// says which. [`JobBoard::release_held`] makes it claimable again, with a person's decision.
    Held,
}

impl JobState {
    const ALL: [(JobState, &'static str); 6] = [
        (JobState::Posted, "POSTED"),
        (JobState::Claimed, "CLAIMED"),
        (JobState::Done, "DONE"),
        (JobState::Cancelled, "CANCELLED"),
        (JobState::Dead, "DEAD"),
        (JobState::Held, "HELD"),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("?", |(_, n)| n)
    }

    pub(super) fn parse(name: &str) -> Option<JobState> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    /// Whether nothing more happens to the job by itself (done, cancelled, dead). A held job is
    /// not final: a person releases it.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Cancelled | JobState::Dead)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A flow a conductor can run: its name and fingerprint. A board hands out only jobs of flows
/// the claimer names, so a process of an older or newer build never runs a job posted for
/// another version of the flow.
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::store::FlowKey;
///
/// #[task(provides = y)]
/// fn double(x: u32) -> u32 { x * 2 }
/// flow! { flow Double(x: u32) -> (y) { linear [ double ] } }
///
/// let key = FlowKey::of::<Double>();
/// assert_eq!(key.name, "Double");
/// assert_eq!(key.fingerprint, taskflow::fingerprint::<Double>());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The flow's name.
    pub name: String,
    /// Its fingerprint ([`fingerprint`](crate::fingerprint)).
    pub fingerprint: String,
}

impl FlowKey {
    /// The key of flow `F` as this build compiled it.
    pub fn of<F: DurableFlow>() -> FlowKey {
        FlowKey {
            name: F::NAME.to_owned(),
            fingerprint: crate::fingerprint::<F>(),
        }
    }
}

/// A job to post: which flow, with which inputs, and when.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskflow::prelude::*;
/// use taskflow::store::NewJob;
///
/// #[task(provides = y)]
/// fn double(x: u32) -> u32 { x * 2 }
/// flow! { flow Double(x: u32) -> (y) { linear [ double ] } }
///
/// let job = NewJob::of::<Double>(&DoubleInputs { x: 21 })
///     .unwrap()
///     .idempotency_key("order-1234")
///     .priority(10)
///     .run_at(SystemTime::now() + Duration::from_secs(60));
/// assert_eq!(job.inputs["x"], 21);
/// assert_eq!(job.max_takeovers, 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The flow to run.
    pub flow: FlowKey,
    /// Its inputs, as the flow stores them.
    pub inputs: Value,
    /// Posting a second job with the same key posts nothing and gives the first job's id.
    pub idempotency_key: Option<String>,
    /// Higher first; 0 by default.
    pub priority: i32,
    /// Not claimed before this time (Unix milliseconds); `None`: at once.
    pub run_at: Option<u64>,
    /// How many take-overs (a claim that ran out, its conductor dead, cut off or paused) the
    /// job allows before it is declared dead instead of claimed again. 5 by default.
    pub max_takeovers: u32,
}

impl NewJob {
    /// A job of flow `F` with `inputs`; fails when an input cannot be stored (its `Serialize`
    /// failed).
    pub fn of<F: DurableFlow>(inputs: &F::Inputs) -> Result<NewJob, StoreError> {
        let inputs = F::__save_inputs(inputs).map_err(|e| StoreError::Invalid {
            what: format!("inputs of a job of flow `{}`", F::NAME),
            detail: e.to_string(),
        })?;
        Ok(NewJob {
            flow: FlowKey::of::<F>(),
            inputs,
            idempotency_key: None,
            priority: 0,
            run_at: None,
            max_takeovers: 5,
        })
    }

    /// With an idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// With a priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Not claimed before `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(unix_millis(at));
        self
    }
}

/// What posting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// A new job.
    New(JobId),
    /// A job with the same idempotency key was there already: nothing was posted.
    Existing(JobId),
}

impl Posted {
    /// The job's id, new or not.
    pub fn id(self) -> JobId {
        match self {
            Posted::New(id) | Posted::Existing(id) => id,
        }
    }
}

/// A job as the board keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its number.
    pub id: JobId,
    /// Its flow.
    pub flow: FlowKey,
    /// Its inputs.
    pub inputs: Value,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Its priority.
    pub priority: i32,
    /// Not claimed before (Unix milliseconds).
    pub run_at: u64,
    /// Where it is.
    pub state: JobState,
    /// How its run ended, once done (or cancelled after it started).
    pub outcome: Option<FlowState>,
    /// Why it is dead.
    pub reason: Option<String>,
    /// How many times it was claimed.
    pub claims: u32,
    /// How many of those claims were take-overs of a claim that ran out.
    pub takeovers: u32,
    /// Take-overs allowed before it is dead.
    pub max_takeovers: u32,
    /// The claim epoch: raised by every claim; the fence of the claim's writes.
    pub epoch: u64,
    /// Who holds it (while claimed).
    pub owner: Option<Owner>,
    /// Until when the claim holds unless renewed (Unix milliseconds).
    pub claimed_until: Option<u64>,
    /// Whether it was asked to stop (a claimed job is stopped and reverted by its conductor).
    pub cancel_requested: bool,
    /// When it was posted (Unix milliseconds).
    pub created_at: u64,
    /// When it last changed (Unix milliseconds).
    pub updated_at: u64,
}

/// A claim on a job: what a conductor runs, and the fence of every write it makes for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job.
    pub id: JobId,
    /// The claim epoch: [`JobBoard::heartbeat`] and [`JobBoard::complete`] change nothing once
    /// another claim raised it.
    pub epoch: u64,
    /// The flow to run.
    pub flow: FlowKey,
    /// Its inputs.
    pub inputs: Value,
    /// Whether the job was cancelled already (a take-over of a job being cancelled).
    pub cancel_requested: bool,
    /// Whether the job was claimed before (its run may be in the store: resume it).
    pub takeover: bool,
}

/// The job board of a [`PostgresStore`]: its tables are in the store's schema, and a job's run
/// is the store's run [`JobId::run_id`].
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use taskflow::prelude::*;
/// use taskflow::store::{FlowKey, JobBoard, NewJob, Owner, PostgresStore};
///
/// #[task(provides = y)]
/// fn double(x: u32) -> u32 { x * 2 }
/// flow! { flow Double(x: u32) -> (y) { linear [ double ] } }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?);
/// let board = JobBoard::new(store.clone());
/// let id = board.post(&NewJob::of::<Double>(&DoubleInputs { x: 21 })?).await?.id();
///
/// let claims = board.claim(&Owner::current(), &[FlowKey::of::<Double>()], 8, Duration::from_secs(30)).await?;
/// for claim in claims {
///     let out = Engine::serial().run(Double, DoubleInputs { x: 21 })
///         .durable(store.clone(), &claim.id.run_id()).await?;
///     board.complete(&claim, FlowState::Success).await?;
///     assert_eq!(out.y, 42);
/// }
/// # let _ = id; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JobBoard {
    store: Arc<PostgresStore>,
}

const JOB_COLUMNS: &str = "id, flow_name, fingerprint, inputs, idempotency_key, priority, run_at, \
    state, outcome, reason, claims, takeovers, max_takeovers, epoch, owner, claimed_until, \
    cancel_requested, created_at, updated_at";

impl JobBoard {
    /// The board of `store` (its tables come with the store's schema).
    pub fn new(store: Arc<PostgresStore>) -> JobBoard {
        JobBoard { store }
    }

    /// The channel the board notifies when a job is posted or cancelled (`LISTEN` on it to
    /// wake up instead of polling).
    pub fn channel(&self) -> String {
        format!("taskflow_jobs_{}", self.store.schema())
    }

    /// A `Notify` woken whenever a job is posted or cancelled on this board (a `LISTEN` on
    /// [`channel`](Self::channel) behind it, for as long as the returned `Arc` is held).
    pub fn wake_on_post(&self) -> Arc<tokio::sync::Notify> {
        let wake = Arc::new(tokio::sync::Notify::new());
        self.store.listen(self.channel(), Arc::downgrade(&wake));
        wake
    }

    fn s(&self) -> String {
        format!("\"{}\"", self.store.schema())
    }

    /// Posts `job`, or finds the job posted with its idempotency key.
    pub async fn post(&self, job: &NewJob) -> Result<Posted, StoreError> {
        let client = self.store.pool().get().await.map_err(backend)?;
        // On the store's own connections the statement is prepared once per connection.
        let stmt = client
            .prepare_cached(&self.post_sql())
            .await
            .map_err(backend)?;
        self.post_with(&**client, job, Some(&stmt)).await
    }

    /// Posts `job` with `client`: inside the caller's own transaction when `client` is one
    /// (`&*tx` of a `deadpool_postgres::Transaction`, or a `tokio_postgres::Transaction`), so the
    /// job is posted if and only if the caller's transaction commits.
    ///
    /// The caller's connection must reach the store's database.
    pub async fn post_in(
        &self,
        client: &impl tokio_postgres::GenericClient,
        job: &NewJob,
    ) -> Result<Posted, StoreError> {
        self.post_with(client, job, None).await
    }

    /// The statement that posts a job and notifies the board's channel (delivered when the
    /// poster's transaction commits).
    fn post_sql(&self) -> String {
        let s = self.s();
        format!(
            "WITH posted AS (INSERT INTO {s}.jobs (flow_name, fingerprint, inputs, \
             idempotency_key, priority, run_at, state, max_takeovers, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'POSTED', $7, $8, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id) \
             SELECT id, pg_notify($9, id::text) FROM posted"
        )
    }

    /// Posts `job` with `client`, through `stmt` ([`post_sql`](Self::post_sql) prepared) or,
    /// on a client we cannot cache statements for, in one round trip with the parameters'
    /// types given (`query_typed`, no separate prepare).
    async fn post_with(
        &self,
        client: &impl tokio_postgres::GenericClient,
        job: &NewJob,
        stmt: Option<&tokio_postgres::Statement>,
    ) -> Result<Posted, StoreError> {
        let s = self.s();
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let inputs = to_json(&job.inputs, "job inputs")?;
        let run_at = match job.run_at {
            Some(at) => to_i64(at, "run-at time")?,
            None => now,
        };
        let max = i32::try_from(job.max_takeovers).unwrap_or(i32::MAX);
        let channel = self.channel();
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 9] = [
            (&job.flow.name, Type::TEXT),
            (&job.flow.fingerprint, Type::TEXT),
            (&inputs, Type::TEXT),
            (&job.idempotency_key, Type::TEXT),
            (&job.priority, Type::INT4),
            (&run_at, Type::INT8),
            (&max, Type::INT4),
            (&now, Type::INT8),
            (&channel, Type::TEXT),
        ];
        let inserted = match stmt {
            Some(stmt) => {
                let values: Vec<_> = params.iter().map(|(v, _)| *v).collect();
                client.query_opt(stmt, &values).await
            }
            None => client.query_typed_opt(&self.post_sql(), &params).await,
        }
        .map_err(backend)?;
        if let Some(row) = inserted {
            return Ok(Posted::New(JobId(row.get(0))));
        }
        let row = client
            .query_one(
                &format!("SELECT id FROM {s}.jobs WHERE idempotency_key = $1"),
                &[&job.idempotency_key],
            )
            .await
            .map_err(backend)?;
        Ok(Posted::Existing(JobId(row.get(0))))
    }

    /// Claims up to `limit` jobs of the flows in `flows` for `owner`, until `now + hold` unless
    /// renewed: posted jobs whose run-at time has come, and claimed jobs whose claim ran out
    /// (take-overs), highest priority first, then oldest run-at time. Jobs other claimers hold
    /// locked are skipped, not waited for (`FOR UPDATE SKIP LOCKED`), so claimers never get the
    /// same job. Each claim raises the job's epoch. A job already taken over
    /// [`max_takeovers`](NewJob::max_takeovers) times is declared dead instead, with its reason.
    pub async fn claim(
        &self,
        owner: &Owner,
        flows: &[FlowKey],
        limit: usize,
        hold: std::time::Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        if flows.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let s = self.s();
        let now = unix_millis(SystemTime::now());
        let until = now.saturating_add(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX));
        let keys: Vec<String> = flows.iter().map(flow_key).collect();
        let owner_json = to_json(owner, "owner")?;
        let client = self.store.pool().get().await.map_err(backend)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(&format!(
                        "WITH ready AS ( \
                       SELECT id FROM {s}.jobs \
                       WHERE ((state = 'POSTED' AND run_at <= $1) \
                              OR (state = 'CLAIMED' AND claimed_until <= $1)) \
                         AND flow_name || chr(31) || fingerprint = ANY($2) \
                       ORDER BY priority DESC, run_at, id \
                       LIMIT $3 \
                       FOR UPDATE SKIP LOCKED) \
                     UPDATE {s}.jobs j SET \
                       claims = j.claims + 1, \
                       epoch = j.epoch + 1, \
                       takeovers = j.takeovers + (j.state = 'CLAIMED')::int, \
                       state = CASE WHEN j.state = 'CLAIMED' AND j.takeovers >= j.max_takeovers \
                               THEN 'DEAD' ELSE 'CLAIMED' END, \
                       reason = CASE WHEN j.state = 'CLAIMED' AND j.takeovers >= j.max_takeovers \
                                THEN format('its claim ran out %s %s (each conductor that held \
                                it died, was cut off or paused, or failed to reach the \
                                database); allowed: %s take-overs', j.takeovers + 1, \
                                CASE WHEN j.takeovers = 0 THEN 'time' ELSE 'times' END, \
                                j.max_takeovers) \
                                ELSE j.reason END, \
                       owner = $4, claimed_until = $5, updated_at = $1 \
                     FROM ready WHERE j.id = ready.id \
                     RETURNING j.id, j.epoch, j.flow_name, j.fingerprint, j.inputs, j.state, \
                       j.cancel_requested, j.claims"
                    ))
                    .await
                    .map_err(backend)?,
                &[
                    &to_i64(now, "the time")?,
                    &keys,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                    &owner_json,
                    &to_i64(until, "claim expiry")?,
                ],
            )
            .await
            .map_err(backend)?;
        let mut claims = Vec::new();
        for row in rows {
            let id: i64 = row.get(0);
            let what = format!("jobs row id={id}");
            let state: String = get(&row, 5, &what, "state")?;
            if state != "CLAIMED" {
                continue; // declared dead just now
            }
            let claims_so_far: i32 = get(&row, 7, &what, "claims")?;
            claims.push(Claim {
                id: JobId(id),
                epoch: unsigned(get(&row, 1, &what, "epoch")?, &what, "epoch")?,
                flow: FlowKey {
                    name: get(&row, 2, &what, "flow_name")?,
                    fingerprint: get(&row, 3, &what, "fingerprint")?,
                },
                inputs: json(&get::<String>(&row, 4, &what, "inputs")?, &what, "inputs")?,
                cancel_requested: get(&row, 6, &what, "cancel_requested")?,
                takeover: claims_so_far > 1,
            });
        }
        Ok(claims)
    }

    /// Renews `claim` until `now + hold`. Returns whether the job was cancelled meanwhile (its
    /// conductor stops the run at its next step and reverts it). [`StoreError::LostClaim`] when
    /// another claim took the job, or it ended: nothing was written, and the claimer must stop.
    pub async fn heartbeat(
        &self,
        claim: &Claim,
        hold: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let s = self.s();
        let now = unix_millis(SystemTime::now());
        let until = now.saturating_add(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX));
        let client = self.store.pool().get().await.map_err(backend)?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(&format!(
                        "UPDATE {s}.jobs SET claimed_until = $3, updated_at = $4 \
                     WHERE id = $1 AND epoch = $2 AND state = 'CLAIMED' \
                     RETURNING cancel_requested"
                    ))
                    .await
                    .map_err(backend)?,
                &[
                    &claim.id.0,
                    &to_i64(claim.epoch, "epoch")?,
                    &to_i64(until, "claim expiry")?,
                    &to_i64(now, "the time")?,
                ],
            )
            .await
            .map_err(backend)?;
        match row {
            Some(row) => Ok(row.get(0)),
            None => Err(self.lost(&**client, claim).await),
        }
    }

    /// Ends `claim`'s job with its run's `outcome`: DONE, or CANCELLED when it was cancelled.
    /// Fenced like [`heartbeat`](Self::heartbeat).
    pub async fn complete(
        &self,
        claim: &Claim,
        outcome: FlowState,
    ) -> Result<JobState, StoreError> {
        let mut ended = self.complete_many(&[(claim, outcome)]).await?;
        ended.pop().unwrap_or_else(|| {
            Err(StoreError::Backend {
                store: "PostgreSQL".into(),
                source: "complete_many answered nothing for one claim".into(),
            })
        })
    }

    /// [`complete`](Self::complete) for many claims in one statement (a conductor ending
    /// several jobs at once): each claim's result in order, a lost claim its own
    /// [`StoreError::LostClaim`].
    pub async fn complete_many(
        &self,
        ended: &[(&Claim, FlowState)],
    ) -> Result<Vec<Result<JobState, StoreError>>, StoreError> {
        if ended.is_empty() {
            return Ok(Vec::new());
        }
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let ids: Vec<i64> = ended.iter().map(|(c, _)| c.id.0).collect();
        let epochs: Vec<i64> = ended
            .iter()
            .map(|(c, _)| to_i64(c.epoch, "epoch"))
            .collect::<Result<_, _>>()?;
        let outcomes: Vec<String> = ended.iter().map(|(_, o)| o.to_string()).collect();
        let client = self.store.pool().get().await.map_err(backend)?;
        let stmt = client
            .prepare_cached(&self.store.statements().complete_jobs)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&ids, &epochs, &outcomes, &now])
            .await
            .map_err(backend)?;
        let done: std::collections::HashMap<i64, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut results = Vec::with_capacity(ended.len());
        for (claim, _) in ended {
            results.push(match done.get(&claim.id.0) {
                Some(state) => Ok(JobState::parse(state).unwrap_or(JobState::Done)),
                None => Err(self.lost(&**client, claim).await),
            });
        }
        Ok(results)
    }

    /// Gives `claim`'s job back unfinished (a conductor shutting down): posted again at once,
    /// not counted as a take-over. Fenced like [`heartbeat`](Self::heartbeat).
    pub async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.let_go(claim, JobState::Posted, None).await
    }

    /// Holds `claim`'s job for a person (its run returned [`DurableError::Held`](crate::DurableError::Held)):
    /// HELD with `reason`, never claimed until [`release_held`](Self::release_held). Fenced like
    /// [`heartbeat`](Self::heartbeat).
    pub async fn hold(&self, claim: &Claim, reason: &str) -> Result<(), StoreError> {
        self.let_go(claim, JobState::Held, Some(reason)).await
    }

    /// Ends `claim` without ending its job: the job goes to `to` (POSTED again at once, or
    /// HELD with `reason`), fenced by the claim's epoch.
    async fn let_go(
        &self,
        claim: &Claim,
        to: JobState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let s = self.s();
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let client = self.store.pool().get().await.map_err(backend)?;
        let n = client
            .execute(
                &client
                    .prepare_cached(&format!(
                        "UPDATE {s}.jobs SET state = $3, reason = coalesce($4, reason), \
                         owner = NULL, claimed_until = NULL, \
                         run_at = CASE WHEN $3 = 'POSTED' THEN $5 ELSE run_at END, \
                         updated_at = $5 WHERE id = $1 AND epoch = $2 AND state = 'CLAIMED'"
                    ))
                    .await
                    .map_err(backend)?,
                &[
                    &claim.id.0,
                    &to_i64(claim.epoch, "epoch")?,
                    &to.name(),
                    &reason,
                    &now,
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(self.lost(&**client, claim).await);
        }
        Ok(())
    }

    /// Releases held job `id` with a person's decision about its held steps (see
    /// [`crate::release_held`]): its run records the decision, then the job is posted again.
    /// Returns the steps released; false-like (empty, nothing changed) when the job is not held.
    /// Safe to repeat after a crash between the two writes: the run's part finds nothing held
    /// and the job is posted.
    pub async fn release_held(
        &self,
        id: JobId,
        how: crate::Release,
    ) -> Result<Vec<String>, StoreError> {
        match self.job(id).await? {
            Some(job) if job.state == JobState::Held => {}
            Some(_) => return Ok(Vec::new()),
            None => {
                return Err(StoreError::NotFound {
                    flow_id: id.run_id(),
                })
            }
        }
        let released = match crate::release_held(self.store.clone(), &id.run_id(), how).await {
            // A job held before its run was recorded has nothing to release in it.
            Err(StoreError::NotFound { .. }) => Vec::new(),
            other => other?,
        };
        let s = self.s();
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let client = self.store.pool().get().await.map_err(backend)?;
        client
            .execute(
                &format!(
                    "UPDATE {s}.jobs SET state = 'POSTED', reason = NULL, run_at = $2, \
                     updated_at = $2 WHERE id = $1 AND state = 'HELD'"
                ),
                &[&id.0, &now],
            )
            .await
            .map_err(backend)?;
        self.wake(&**client, id).await?;
        Ok(released)
    }

    /// Wakes the idle conductors about job `id` (posted again, or cancelled): a `NOTIFY` on the
    /// board's channel.
    async fn wake(
        &self,
        client: &impl tokio_postgres::GenericClient,
        id: JobId,
    ) -> Result<(), StoreError> {
        client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel(), &id.0.to_string()],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Cancels job `id`: a posted one is never started (CANCELLED at once); a claimed one is
    /// marked, and its conductor learns it at its next heartbeat, stops the run and reverts it.
    /// Returns the job's state after the call (a job that had ended is left as it was).
    pub async fn cancel(&self, id: JobId) -> Result<JobState, StoreError> {
        let s = self.s();
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let client = self.store.pool().get().await.map_err(backend)?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE {s}.jobs SET \
                       state = CASE WHEN state = 'POSTED' THEN 'CANCELLED' ELSE state END, \
                       cancel_requested = true, updated_at = $2 \
                     WHERE id = $1 AND state IN ('POSTED', 'CLAIMED') RETURNING state"
                ),
                &[&id.0, &now],
            )
            .await
            .map_err(backend)?;
        if row.is_some() {
            self.wake(&**client, id).await?;
        }
        match self.job(id).await? {
            Some(job) => Ok(job.state),
            None => Err(StoreError::NotFound {
                flow_id: id.run_id(),
            }),
        }
    }

    /// Makes dead job `id` claimable again, its take-overs counted from 0. Returns false when
    /// the job is not dead (nothing changes).
    pub async fn redrive(&self, id: JobId) -> Result<bool, StoreError> {
        let s = self.s();
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let client = self.store.pool().get().await.map_err(backend)?;
        let n = client
            .execute(
                &format!(
                    "UPDATE {s}.jobs SET state = 'POSTED', takeovers = 0, reason = NULL, \
                     owner = NULL, claimed_until = NULL, run_at = $2, updated_at = $2 \
                     WHERE id = $1 AND state = 'DEAD'"
                ),
                &[&id.0, &now],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    /// Job `id`, or `None`.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let s = self.s();
        let client = self.store.pool().get().await.map_err(backend)?;
        client
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM {s}.jobs WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(read_job)
            .transpose()
    }

    /// Every job, newest first.
    pub async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let s = self.s();
        let client = self.store.pool().get().await.map_err(backend)?;
        client
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM {s}.jobs ORDER BY id DESC"),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(read_job)
            .collect()
    }

    /// Ready jobs of flows that are not in `flows` (a version no claimer of this build runs):
    /// each flow with how many jobs wait for it. They are left for a conductor that knows them.
    pub async fn waiting_elsewhere(
        &self,
        flows: &[FlowKey],
    ) -> Result<Vec<(FlowKey, u64)>, StoreError> {
        let s = self.s();
        let keys: Vec<String> = flows.iter().map(flow_key).collect();
        let client = self.store.pool().get().await.map_err(backend)?;
        let rows = client
            .query(
                &format!(
                    "SELECT flow_name, fingerprint, count(*) FROM {s}.jobs \
                     WHERE state IN ('POSTED', 'CLAIMED') \
                       AND NOT (flow_name || chr(31) || fingerprint = ANY($1)) \
                     GROUP BY 1, 2 ORDER BY 1, 2"
                ),
                &[&keys],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| {
                let n: i64 = r.get(2);
                (
                    FlowKey {
                        name: r.get(0),
                        fingerprint: r.get(1),
                    },
                    u64::try_from(n).unwrap_or(0),
                )
            })
            .collect())
    }

    /// The [`StoreError::LostClaim`] for `claim`, naming who holds the job now.
    async fn lost(&self, client: &impl tokio_postgres::GenericClient, claim: &Claim) -> StoreError {
        let s = self.s();
        let now = client
            .query_opt(
                &format!("SELECT state, owner FROM {s}.jobs WHERE id = $1"),
                &[&claim.id.0],
            )
            .await;
        let (state, holder) = match now {
            Ok(Some(row)) => {
                let state: String = row.get(0);
                let owner: Option<String> = row.get(1);
                let holder = owner.and_then(|o| serde_json::from_str::<Owner>(&o).ok());
                (JobState::parse(&state), holder)
            }
            _ => (None, None),
        };
        StoreError::LostClaim {
            job: claim.id.0,
            epoch: claim.epoch,
            state: state.map(|s| s.to_string()),
            holder,
        }
    }
}

fn flow_key(key: &FlowKey) -> String {
    format!("{}\u{1f}{}", key.name, key.fingerprint)
}

fn read_job(row: &Row) -> Result<Job, StoreError> {
    let id: i64 = row.get(0);
    let what = format!("jobs row id={id}");
    let w = what.as_str();
    let state: String = get(row, 7, w, "state")?;
    let outcome: Option<String> = get(row, 8, w, "outcome")?;
    Ok(Job {
        id: JobId(id),
        flow: FlowKey {
            name: get(row, 1, w, "flow_name")?,
            fingerprint: get(row, 2, w, "fingerprint")?,
        },
        inputs: json(&get::<String>(row, 3, w, "inputs")?, w, "inputs")?,
        idempotency_key: get(row, 4, w, "idempotency_key")?,
        priority: get(row, 5, w, "priority")?,
        run_at: unsigned(get(row, 6, w, "run_at")?, w, "run_at")?,
        state: JobState::parse(&state).ok_or_else(|| StoreError::Corrupt {
            what: format!("{what}, column `state`"),
            detail: format!("unknown job state {state:?}"),
        })?,
        outcome: outcome.map(|o| parse_state(o, w, "outcome")).transpose()?,
        reason: get(row, 9, w, "reason")?,
        claims: unsigned(i64::from(get::<i32>(row, 10, w, "claims")?), w, "claims")?,
        takeovers: unsigned(
            i64::from(get::<i32>(row, 11, w, "takeovers")?),
            w,
            "takeovers",
        )?,
        max_takeovers: unsigned(
            i64::from(get::<i32>(row, 12, w, "max_takeovers")?),
            w,
            "max_takeovers",
        )?,
        epoch: unsigned(get(row, 13, w, "epoch")?, w, "epoch")?,
        owner: opt_json(get(row, 14, w, "owner")?, w, "owner")?,
        claimed_until: get::<Option<i64>>(row, 15, w, "claimed_until")?
            .map(|n| unsigned(n, w, "claimed_until"))
            .transpose()?,
        cancel_requested: get(row, 16, w, "cancel_requested")?,
        created_at: unsigned(get(row, 17, w, "created_at")?, w, "created_at")?,
        updated_at: unsigned(get(row, 18, w, "updated_at")?, w, "updated_at")?,
    })
}
