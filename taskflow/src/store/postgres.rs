//! A store in a PostgreSQL database, for runs on several machines (tokio-postgres, pooled by
//! deadpool-postgres).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{
    lease, unix_millis, validate_checkpoint, validate_flow_id, AsyncStore, AtomRecord, Checkpoint,
    FlowRecord, Lease, LeaseUpdate, Owner, RetryRecord, StoreError, StoreFuture, StoredFlow,
};
use crate::state::FlowState;

/// The schema version this library creates and the newest it opens.
const SCHEMA_VERSION: u32 = 2;

/// `MIGRATIONS[i]` takes a schema from version `i` to `i + 1` (version 0: a schema without our
/// tables), in the transaction that also records the new version. `{s}` is the schema's quoted
/// name. The tables are those of [`SqliteStore`](super::SqliteStore) without its checksums
/// (docs/design.md, "PostgreSQL store", says why): `flows`, one row per run, rewritten by every
/// checkpoint; `graphs`, the flow's structure, apart so that the rewrite does not copy it;
/// `atoms`, one row per step (`id` keeps the order steps were first recorded in); `retries`, one
/// row per retry scope of a (sub-)flow. JSON is kept as text, exactly as written; times are Unix
/// milliseconds.
const MIGRATIONS: &[&str] = &["
CREATE TABLE {s}.taskflow_schema (
    store   TEXT NOT NULL CHECK (store = 'taskflow'),
    version INTEGER NOT NULL
);
CREATE TABLE {s}.flows (
    id          TEXT PRIMARY KEY,
    logbook     TEXT NOT NULL,
    flow_name   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    lease       TEXT
);
CREATE INDEX flows_by_creation ON {s}.flows (created_at, id COLLATE \"C\");
CREATE TABLE {s}.graphs (
    flow_id TEXT PRIMARY KEY REFERENCES {s}.flows (id) ON DELETE CASCADE,
    graph   TEXT NOT NULL
);
CREATE TABLE {s}.atoms (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow_id        TEXT NOT NULL REFERENCES {s}.flows (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    attempt        BIGINT NOT NULL,
    runs           BIGINT NOT NULL,
    result         TEXT,
    failure        TEXT,
    revert_failure TEXT,
    progress       REAL NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    UNIQUE (flow_id, name)
);
CREATE TABLE {s}.retries (
    flow_id TEXT NOT NULL REFERENCES {s}.flows (id) ON DELETE CASCADE,
    flow    TEXT NOT NULL,
    scope   BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    history TEXT NOT NULL,
    failure TEXT,
    PRIMARY KEY (flow_id, flow, scope)
);
",
    // The job board (store/jobs.rs): one row per job. `epoch` is the claim epoch, raised by
    // every claim and checked by every write of a claimer; `takeovers` counts the claims that
    // took a job whose claim ran out. `jobs_ready` serves the claim query.
    "
CREATE TABLE {s}.jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow_name        TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    idempotency_key  TEXT UNIQUE,
    priority         INTEGER NOT NULL,
    run_at           BIGINT NOT NULL,
    state            TEXT NOT NULL,
    outcome          TEXT,
    reason           TEXT,
    claims           INTEGER NOT NULL DEFAULT 0,
    takeovers        INTEGER NOT NULL DEFAULT 0,
    max_takeovers    INTEGER NOT NULL,
    epoch            BIGINT NOT NULL DEFAULT 0,
    owner            TEXT,
    claimed_until    BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON {s}.jobs (priority DESC, run_at, id) WHERE state IN ('POSTED', 'CLAIMED');
"];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// The advisory lock every migration takes first (with the schema's name as the second key):
/// processes that start at once over one database migrate one after the other, and each later
/// one finds the schema as the first left it.
const MIGRATION_LOCK: i32 = 0x7466_6d67; // "tfmg"

/// Where a [`PostgresStore`] keeps its tables, how many connections it pools, and how long the
/// server lets one of them sit idle inside a transaction.
///
/// ```
/// use std::time::Duration;
/// use taskflow::store::PostgresOptions;
///
/// let options = PostgresOptions::default();
/// assert_eq!((options.schema.as_str(), options.pool_size), ("taskflow", 16));
/// assert_eq!(options.idle_in_transaction_timeout, Some(Duration::from_secs(5)));
/// let options = PostgresOptions { schema: "jobs_eu".into(), ..options };
/// assert_eq!(options.schema, "jobs_eu");
/// ```
/// Write it with `..Default::default()`: options may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema (namespace) of the store's tables, created when it does not exist:
    /// 1 to 63 ASCII lowercase letters, digits or `_`, not starting with a digit or with `pg_`
    /// (reserved by PostgreSQL). Several stores
    /// can share a database under different schemas. Default `taskflow`.
    pub schema: String,
    /// The most connections the store opens at once. Default 16.
    pub pool_size: usize,
    /// How long the server lets a connection of the store wait for its next statement inside a
    /// transaction before it ends the session, rolling the transaction back
    /// (`idle_in_transaction_session_timeout`, set on each connection the store opens).
    ///
    /// A process that is paused (SIGSTOP, swapping, a VM migration) or cut off while it is inside
    /// one of the store's transactions — creating a run, taking one over, part-way through
    /// sending a checkpoint — holds that transaction's row locks for as long as it stays paused:
    /// a conductor taking its job over would wait for them, however long ago its claim and its
    /// runs' leases ran out. Keep this below the claim hold
    /// ([`ConductorOptions::claim_hold`](crate::conductor::ConductorOptions::claim_hold)) and the
    /// runs' lease ([`Engine::lease`](crate::Engine::lease)), so that such locks are gone by the
    /// time anyone may take over. The store's own transactions never wait for anything but the
    /// server between their statements. Default 5 s; `None` leaves the server's setting.
    pub idle_in_transaction_timeout: Option<std::time::Duration>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "taskflow".into(),
            pool_size: 16,
            idle_in_transaction_timeout: Some(std::time::Duration::from_secs(5)),
        }
    }
}

/// A store in a PostgreSQL database: the same records, semantics and leases as
/// [`SqliteStore`](super::SqliteStore), for runs that share one database from several
/// processes or machines. An [`AsyncStore`]: a run awaits its writes without blocking its thread.
///
/// Each checkpoint is one transaction that locks the run's row first and checks the writer's
/// fence in it, so a writer that lost its lease writes nothing ([`StoreError::LostLease`]);
/// [`acquire`](AsyncStore::acquire) takes the run in one transaction the same way. Connecting
/// creates the schema and its tables when they do not exist and migrates them when they are
/// older, in one transaction under an advisory lock, so processes started at once are safe; a
/// schema that has other tables than ours, or ours of a newer taskflow, is refused and left as
/// it is. Connections are plain TCP or Unix sockets (no TLS yet: keep the database on a private
/// network or a socket). The store's connections are driven by the Tokio runtime it was
/// connected on, whichever runtime uses it later: that runtime must keep running while the
/// store is used (a multi-thread runtime, or the current-thread runtime of `main`).
///
/// ```no_run
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::store::PostgresStore;
///
/// #[task(provides = doubled)]
/// fn double(x: u32) -> u32 { x * 2 }
///
/// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?);
/// let out = Engine::serial().run(Double, DoubleInputs { x: 21 }).durable(store, "job-1").await?;
/// assert_eq!(out.doubled, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// How to connect: for connections of their own, outside the pool (`LISTEN`).
    config: tokio_postgres::Config,
    /// The runtime the store was connected on: it drives every connection of the store (see
    /// `OnRuntime`).
    runtime: tokio::runtime::Handle,
    schema: String,
    sql: Arc<Statements>,
    /// A view for one claim of a job ([`PostgresStore::for_claim`]): the job and the claim's
    /// epoch, checked in every write's transaction.
    claim: Option<(i64, i64)>,
    /// How a claim's view ended its job, with its run's last checkpoint.
    ended: Arc<std::sync::OnceLock<(FlowState, super::JobState)>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The statements of a store, with its schema's name in them.
pub(super) struct Statements {
    /// The run's row and its graph's in one statement (`$11` the graph or null); `count`: 1.
    insert_run: String,
    /// `insert_run` under a claim's fence: only while job `$12` is claimed at epoch `$13` (a
    /// division by zero otherwise, aborting the transaction); `count`: 0 when there is no job.
    insert_run_claimed: String,
    lock_flow: String,
    fence_flow: String,
    fence_job: String,
    select_lease: String,
    update_flow: String,
    take_flow: String,
    upsert_atom: String,
    upsert_retry: String,
    select_flow: String,
    select_atoms: String,
    select_retries: String,
    list_flows: String,
    delete_flow: String,
    /// Ends claimed jobs: `$1` ids, `$2` their claims' epochs, `$3` their runs' outcomes,
    /// `$4` the time; each only while that claim holds (see `JobBoard::complete_many`).
    pub(super) complete_jobs: String,
    /// `complete_jobs` of one claim that is its fence too: a division by zero (aborting the
    /// transaction) when the claim no longer holds; else one row, `1` and the job's new state.
    complete_job_fenced: String,
}

const FLOW_COLUMNS: &str =
    "f.id, f.logbook, f.flow_name, f.fingerprint, f.state, f.inputs, f.created_at, \
     f.updated_at, f.epoch, f.lease";

impl Statements {
    fn new(s: &str) -> Self {
        let mut sql = Statements {
            insert_run: format!(
                "WITH f AS (INSERT INTO {s}.flows (id, logbook, flow_name, fingerprint, state, \
                 inputs, created_at, updated_at, epoch, lease) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id), \
                 g AS (INSERT INTO {s}.graphs (flow_id, graph) \
                 SELECT id, $11::text FROM f WHERE $11::text IS NOT NULL) \
                 SELECT count(*) FROM f"
            ),
            insert_run_claimed: format!(
                "WITH fence AS (SELECT 1 / (CASE WHEN epoch = $13 AND state = 'CLAIMED' \
                 THEN 1 ELSE 0 END) AS held FROM {s}.jobs WHERE id = $12 FOR SHARE), \
                 f AS (INSERT INTO {s}.flows (id, logbook, flow_name, fingerprint, state, \
                 inputs, created_at, updated_at, epoch, lease) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM fence RETURNING id), \
                 g AS (INSERT INTO {s}.graphs (flow_id, graph) \
                 SELECT id, $11::text FROM f WHERE $11::text IS NOT NULL) \
                 SELECT count(*) FROM f"
            ),
            lock_flow: format!("SELECT epoch, lease FROM {s}.flows WHERE id = $1 FOR UPDATE"),
            select_lease: format!("SELECT epoch, lease FROM {s}.flows WHERE id = $1"),
            // The fence in SQL: the run's row locked, and a division by zero (SQLSTATE 22012)
            // when the writer's epoch or owner is not the run's, which aborts the transaction
            // so that its COMMIT rolls it back.
            // The claim's fence, the same way: the job's row shared-locked (a claim or a
            // heartbeat of it waits for this transaction), and a division by zero when another
            // claim raised its epoch or it is no longer claimed.
            fence_job: format!(
                "SELECT 1 / (CASE WHEN epoch = $2 AND state = 'CLAIMED' THEN 1 ELSE 0 END) \
                 FROM {s}.jobs WHERE id = $1 FOR SHARE"
            ),
            fence_flow: format!(
                "SELECT 1 / (CASE WHEN epoch = $2 AND (lease::jsonb -> 'owner' ->> 'id') = $3 \
                 THEN 1 ELSE 0 END) FROM {s}.flows WHERE id = $1 FOR UPDATE"
            ),
            update_flow: format!(
                "UPDATE {s}.flows SET state = coalesce($2, state), updated_at = $3, \
                 lease = CASE $4::text WHEN 'keep' THEN lease WHEN 'release' THEN NULL \
                   ELSE jsonb_set(lease::jsonb, '{{until}}', to_jsonb($5::bigint))::text END \
                 WHERE id = $1"
            ),
            take_flow: format!(
                "UPDATE {s}.flows SET epoch = $2, lease = $3, updated_at = $4 WHERE id = $1"
            ),
            upsert_atom: format!(
                "INSERT INTO {s}.atoms (flow_id, name, state, attempt, runs, result, failure, \
                 revert_failure, progress, started_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (flow_id, name) DO UPDATE SET state = excluded.state, \
                 attempt = excluded.attempt, runs = excluded.runs, result = excluded.result, \
                 failure = excluded.failure, revert_failure = excluded.revert_failure, \
                 progress = excluded.progress, started_at = excluded.started_at, \
                 finished_at = excluded.finished_at"
            ),
            upsert_retry: format!(
                "INSERT INTO {s}.retries (flow_id, flow, scope, attempt, history, failure) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (flow_id, flow, scope) DO UPDATE SET attempt = excluded.attempt, \
                 history = excluded.history, failure = excluded.failure"
            ),
            select_flow: format!(
                "SELECT {FLOW_COLUMNS}, g.graph FROM {s}.flows f \
                 LEFT JOIN {s}.graphs g ON g.flow_id = f.id WHERE f.id = $1"
            ),
            select_atoms: format!(
                "SELECT name, state, attempt, runs, result, failure, revert_failure, progress, \
                 started_at, finished_at FROM {s}.atoms WHERE flow_id = $1 ORDER BY id"
            ),
            select_retries: format!(
                "SELECT flow, scope, attempt, history, failure FROM {s}.retries \
                 WHERE flow_id = $1 ORDER BY flow COLLATE \"C\", scope"
            ),
            list_flows: format!(
                "SELECT {FLOW_COLUMNS}, g.graph FROM {s}.flows f \
                 LEFT JOIN {s}.graphs g ON g.flow_id = f.id \
                 ORDER BY f.created_at, f.id COLLATE \"C\""
            ),
            delete_flow: format!("DELETE FROM {s}.flows WHERE id = $1"),
            complete_jobs: format!(
                "UPDATE {s}.jobs j SET \
                   state = CASE WHEN j.cancel_requested THEN 'CANCELLED' ELSE 'DONE' END, \
                   outcome = e.outcome, owner = NULL, claimed_until = NULL, updated_at = $4 \
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS e(id, epoch, outcome) \
                 WHERE j.id = e.id AND j.epoch = e.epoch AND j.state = 'CLAIMED' \
                 RETURNING j.id, j.state"
            ),
            complete_job_fenced: String::new(),
        };
        sql.complete_job_fenced = format!(
            "WITH e AS ({}) SELECT 1 / count(*)::int, max(e.state) FROM e",
            sql.complete_jobs
        );
        sql
    }
}

impl PostgresStore {
    /// The schema version this taskflow creates, and the newest it opens.
    ///
    /// ```
    /// assert_eq!(taskflow::store::PostgresStore::SCHEMA_VERSION, 2);
    /// ```
    pub const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    /// Connects to the database at `url` (like `postgres://user@host:5432/db`, or key-value
    /// form `host=/run/postgresql dbname=db`) with the default [`PostgresOptions`] (schema
    /// `taskflow`), creating or migrating the store's tables.
    ///
    /// Fails with [`StoreError::Invalid`] for a URL that does not parse and for a schema that
    /// holds tables that are not a taskflow store's, [`StoreError::SchemaTooNew`] for a store
    /// written by a newer taskflow, and [`StoreError::Backend`] when the database cannot be
    /// reached or refuses a statement. See [`PostgresStore`] for an example.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`connect`](Self::connect) with the store's tables in `options.schema` and at most
    /// `options.pool_size` connections.
    ///
    /// ```no_run
    /// use taskflow::store::{PostgresOptions, PostgresStore};
    /// # async fn run() -> Result<(), taskflow::store::StoreError> {
    /// let options = PostgresOptions { schema: "billing".into(), pool_size: 4, ..Default::default() };
    /// let store = PostgresStore::connect_with("postgres://postgres@127.0.0.1/test", options).await?;
    /// assert_eq!(store.schema(), "billing");
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        Self::open(url, options, true).await
    }

    /// [`connect_with`](Self::connect_with) to a store that must exist at this taskflow's
    /// schema version, changing nothing in the database: what a tool that only reads (the
    /// `taskflow` command) uses. A schema without a store, or with one of an older version, is
    /// [`StoreError::Invalid`] naming it (a writer's `connect` creates or migrates it).
    ///
    /// ```no_run
    /// use taskflow::store::{PostgresOptions, PostgresStore};
    /// # async fn run() -> Result<(), taskflow::store::StoreError> {
    /// let store = PostgresStore::connect_existing("postgres://postgres@127.0.0.1/test", PostgresOptions::default()).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_existing(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        Self::open(url, options, false).await
    }

    async fn open(url: &str, options: PostgresOptions, create: bool) -> Result<Self, StoreError> {
        validate_schema(&options.schema)?;
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Invalid {
            what: "PostgreSQL connection string".into(),
            detail: format!("{e}"),
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::Invalid {
            what: "PostgresStore::connect".into(),
            detail: "it must be called inside a Tokio runtime, which then drives the store's \
                     connections"
                .into(),
        })?;
        let manager = Manager::from_connect(
            config.clone(),
            OnRuntime {
                runtime: runtime.clone(),
                idle_in_transaction_timeout: options.idle_in_transaction_timeout,
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(backend)?;
        let quoted = format!("\"{}\"", options.schema);
        let store = PostgresStore {
            pool,
            runtime,
            config,
            sql: Arc::new(Statements::new(&quoted)),
            schema: options.schema,
            claim: None,
            ended: Arc::default(),
        };
        store.migrate(&quoted, create).await?;
        Ok(store)
    }

    /// This store as seen by the holder of `claim` (a conductor running the job's run): every
    /// write through it — creating, taking and checkpointing a run — is fenced by the claim's
    /// epoch in the write's own transaction, besides the run's lease. Once another claim raised
    /// the job's epoch (the claim ran out and another conductor took the job) or the job is no
    /// longer claimed, each write changes nothing and fails with [`StoreError::LostClaim`]. The
    /// view shares the store's pool.
    ///
    /// The run's last checkpoint — the one that records it SUCCESS, REVERTED or FAILURE — also
    /// ends the job in its transaction, as [`JobBoard::complete`](super::JobBoard::complete)
    /// would: the run's end and the job's are one commit, and
    /// [`completed`](Self::completed) says how the job ended.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use taskflow::store::{Claim, PostgresStore};
    /// fn store_for(store: &PostgresStore, claim: &Claim) -> Arc<PostgresStore> {
    ///     Arc::new(store.for_claim(claim))
    /// }
    /// ```
    pub fn for_claim(&self, claim: &super::Claim) -> PostgresStore {
        PostgresStore {
            claim: Some((claim.id.0, i64::try_from(claim.epoch).unwrap_or(i64::MAX))),
            ended: Arc::default(),
            ..self.clone()
        }
    }

    /// For a [claim's view](Self::for_claim): the job's state (DONE, or CANCELLED for a job
    /// cancelled meanwhile) once the run's last checkpoint through this view ended it, with the
    /// run's outcome; `None` before, and always for the store itself.
    ///
    /// ```no_run
    /// # use taskflow::store::{JobState, PostgresStore};
    /// fn ended(view: &PostgresStore) -> bool {
    ///     matches!(view.completed(), Some((_, JobState::Done | JobState::Cancelled)))
    /// }
    /// ```
    pub fn completed(&self) -> Option<(FlowState, super::JobState)> {
        self.ended.get().copied()
    }

    /// The fence of this view's claim, sent with a transaction's other statements: `None`
    /// without a claim (the store itself) or without its statement.
    async fn fence_claim(
        &self,
        client: &tokio_postgres::Client,
        stmt: Option<&tokio_postgres::Statement>,
    ) -> Option<Result<Option<Row>, tokio_postgres::Error>> {
        match (stmt, &self.claim) {
            (Some(stmt), Some((job, epoch))) => Some(client.query_opt(stmt, &[job, epoch]).await),
            _ => None,
        }
    }

    /// The statement of this view's claim fence, prepared (`None` for the store itself).
    async fn claim_statement(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<Option<tokio_postgres::Statement>, StoreError> {
        match self.claim {
            Some(_) => Ok(Some(
                client
                    .prepare_cached(&self.sql.fence_job)
                    .await
                    .map_err(backend)?,
            )),
            None => Ok(None),
        }
    }

    /// Checks this view's claim in transaction `tx` (nothing to check for the store itself):
    /// `LostClaim` when it no longer holds (the transaction is then aborted).
    async fn check_claim(
        &self,
        tx: &impl deadpool_postgres::GenericClient,
    ) -> Result<(), StoreError> {
        let Some((job, epoch)) = self.claim else {
            return Ok(());
        };
        match tx.query_opt(&self.sql.fence_job, &[&job, &epoch]).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.lost_claim().await),
            Err(e) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => Err(self.lost_claim().await),
            Err(e) => Err(backend(e)),
        }
    }

    /// Why this view's claim no longer holds, from the job as it is now.
    async fn lost_claim(&self) -> StoreError {
        let (job, epoch) = self.claim.unwrap_or_default();
        let board = super::JobBoard::new(Arc::new(PostgresStore {
            claim: None,
            ..self.clone()
        }));
        let now = board.job(super::JobId(job)).await.ok().flatten();
        StoreError::LostClaim {
            job,
            epoch: u64::try_from(epoch).unwrap_or(0),
            state: now.as_ref().map(|j| j.state.to_string()),
            holder: now.and_then(|j| j.owner),
        }
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The store's statements (the job board shares some).
    pub(super) fn statements(&self) -> &Statements {
        &self.sql
    }

    /// The store's pool (the job board shares it).
    pub(super) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Wakes `wake` on every notification on `channel`, from a connection of its own (`LISTEN`
    /// needs one that stays open), for as long as `wake` has other holders. A dropped connection
    /// is opened again after a second; meanwhile nothing wakes (callers poll as well).
    pub(super) fn listen(&self, channel: String, wake: std::sync::Weak<tokio::sync::Notify>) {
        let config = self.config.clone();
        self.runtime.spawn(async move {
            use futures_util::StreamExt as _;
            while wake.strong_count() > 0 {
                if let Ok((client, mut conn)) = config.connect(NoTls).await {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    // The connection is driven by `messages`: poll both until LISTEN is in.
                    let ok = {
                        let listening = async {
                            client
                                .batch_execute(&format!("LISTEN \"{channel}\""))
                                .await
                                .is_ok()
                        };
                        let mut listening = std::pin::pin!(listening);
                        loop {
                            tokio::select! {
                                ok = &mut listening => break ok,
                                message = messages.next() => {
                                    if !matches!(message, Some(Ok(_))) { break false; }
                                }
                            }
                        }
                    };
                    if ok {
                        loop {
                            let message = tokio::select! {
                                message = messages.next() => message,
                                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                                    if wake.strong_count() == 0 { return; }
                                    continue;
                                }
                            };
                            match message {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                                    match wake.upgrade() {
                                        Some(wake) => wake.notify_one(),
                                        None => return,
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            }
                        }
                    }
                    drop(client);
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }

    /// Creates the schema and its tables, or brings them up to [`SCHEMA_VERSION`], in one
    /// transaction under [`MIGRATION_LOCK`]; with `create` false, only checks that they are
    /// there at that version.
    async fn migrate(&self, quoted: &str, create: bool) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&MIGRATION_LOCK, &self.schema],
        )
        .await
        .map_err(backend)?;
        let tables: Vec<String> = tx
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
                &[&self.schema],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let version = if tables.is_empty() {
            if create {
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                    .await
                    .map_err(backend)?;
            }
            0
        } else if tables.iter().any(|t| t == "taskflow_schema") {
            let rows = tx
                .query(
                    &format!("SELECT store, version FROM {quoted}.taskflow_schema"),
                    &[],
                )
                .await
                .map_err(|e| self.not_ours(&tables, Some(e)))?;
            match rows.as_slice() {
                [row] => {
                    let store: String = row
                        .try_get(0)
                        .map_err(|e| self.not_ours(&tables, Some(e)))?;
                    let version: i32 = row
                        .try_get(1)
                        .map_err(|e| self.not_ours(&tables, Some(e)))?;
                    if store != "taskflow" {
                        return Err(self.not_ours(&tables, None));
                    }
                    u32::try_from(version).map_err(|_| self.not_ours(&tables, None))?
                }
                _ => return Err(self.not_ours(&tables, None)),
            }
        } else {
            return Err(self.not_ours(&tables, None));
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return tx.commit().await.map_err(backend);
        }
        if !create {
            let detail = if version == 0 {
                "there is no taskflow store in it; a writer (PostgresStore::connect) creates one"
                    .to_owned()
            } else {
                format!(
                    "its store is at schema version {version}, older than this taskflow's \
                     ({SCHEMA_VERSION}); a writer (PostgresStore::connect) migrates it"
                )
            };
            return Err(StoreError::Invalid {
                what: format!("PostgreSQL schema `{}`", self.schema),
                detail,
            });
        }
        for migration in &MIGRATIONS[version as usize..] {
            tx.batch_execute(&migration.replace("{s}", quoted))
                .await
                .map_err(backend)?;
        }
        let new = SCHEMA_VERSION as i32;
        let stmt = if version == 0 {
            format!("INSERT INTO {quoted}.taskflow_schema (store, version) VALUES ('taskflow', $1)")
        } else {
            format!("UPDATE {quoted}.taskflow_schema SET version = $1")
        };
        tx.execute(&stmt, &[&new]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    fn not_ours(&self, tables: &[String], error: Option<tokio_postgres::Error>) -> StoreError {
        let listed = tables
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let why = match error {
            Some(e) => format!(": reading its `taskflow_schema` table failed: {e}"),
            None => String::new(),
        };
        StoreError::Invalid {
            what: format!("PostgreSQL schema `{}`", self.schema),
            detail: format!(
                "it holds tables that are not a taskflow store's ({listed}){why}; it is left \
                 as it is: give the store a schema of its own (PostgresOptions::schema)"
            ),
        }
    }

    /// The run `flow_id` as stored, read with `client` (in the caller's transaction).
    async fn load_in(
        &self,
        client: &impl GenericClient,
        flow_id: &str,
        lock: bool,
    ) -> Result<Option<StoredFlow>, StoreError> {
        if lock {
            let locked = client
                .query_opt(&self.sql.lock_flow, &[&flow_id])
                .await
                .map_err(backend)?;
            if locked.is_none() {
                return Ok(None);
            }
        }
        let Some(row) = client
            .query_opt(&self.sql.select_flow, &[&flow_id])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let flow = read_flow(&row)?;
        let atoms = client
            .query(&self.sql.select_atoms, &[&flow_id])
            .await
            .map_err(backend)?
            .iter()
            .map(|r| read_atom(r, flow_id))
            .collect::<Result<_, _>>()?;
        let retries = client
            .query(&self.sql.select_retries, &[&flow_id])
            .await
            .map_err(backend)?
            .iter()
            .map(|r| read_retry(r, flow_id))
            .collect::<Result<_, _>>()?;
        Ok(Some(StoredFlow {
            flow,
            atoms,
            retries,
        }))
    }

    /// The new run `flow`, with no step records yet ([`do_insert`](Self::do_insert)).
    async fn do_create(&self, flow: &FlowRecord) -> Result<(), StoreError> {
        validate_flow_id(&flow.id)?;
        self.do_insert(&StoredFlow {
            flow: flow.clone(),
            atoms: Vec::new(),
            retries: Vec::new(),
        })
        .await
    }

    /// The run `flow` recorded with its first checkpoint `first` (applied here, as the memory
    /// store applies one), in one transaction ([`do_insert`](Self::do_insert)).
    async fn do_create_with(
        &self,
        flow: &FlowRecord,
        first: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.do_insert(&super::created_with(flow, first)?).await
    }

    /// The new run `stored` written in one transaction, sent in one round trip: the claim's
    /// fence (for a claim's view), the run's row and its graph's in one statement, and the rows
    /// of its steps and retry scopes.
    async fn do_insert(&self, stored: &StoredFlow) -> Result<(), StoreError> {
        // Everything converted before the transaction: nothing fails half-way for a bad value.
        let run = &stored.flow;
        let graph = match &run.graph {
            Value::Null => None,
            graph => Some(to_json(graph, "flow graph")?),
        };
        let (inputs, lease) = (
            to_json(&run.inputs, "inputs")?,
            lease_json(run.lease.as_ref())?,
        );
        let (created, updated, epoch) = (
            to_i64(run.created_at, "created_at")?,
            to_i64(run.updated_at, "updated_at")?,
            to_i64(run.epoch, "epoch")?,
        );
        let state = run.state.to_string();
        let atoms = stored
            .atoms
            .iter()
            .map(AtomRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let retries = stored
            .retries
            .iter()
            .map(RetryRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let client = Unfinished(Some(self.pool.get().await.map_err(backend)?));
        let tx = client.client();
        // One statement for the run's row and its graph's, fenced by the claim for a claim's
        // view (three statements before: the fence, the two inserts).
        let insert = match self.claim {
            Some(_) => &self.sql.insert_run_claimed,
            None => &self.sql.insert_run,
        };
        let (insert, upsert_atom, upsert_retry) = futures_util::future::try_join3(
            tx.prepare_cached(insert),
            tx.prepare_cached(&self.sql.upsert_atom),
            tx.prepare_cached(&self.sql.upsert_retry),
        )
        .await
        .map_err(backend)?;
        let begin = tx.batch_execute("BEGIN");
        let id = &run.id;
        let (job, job_epoch) = self.claim.unwrap_or_default();
        let mut values = params![
            id,
            run.logbook,
            run.flow_name,
            run.fingerprint,
            state,
            inputs,
            created,
            updated,
            epoch,
            lease,
            graph
        ];
        if self.claim.is_some() {
            values.extend(params![job, job_epoch]);
        }
        let inserted = tx.query_one(&insert, &values);
        let id_str: &str = id;
        let writes = row_writes(tx, [&upsert_atom, &upsert_retry], &id_str, &atoms, &retries);
        let commit = tx.batch_execute("COMMIT");
        // Polled in this order, so sent in it, all at once.
        let (began, inserted, written, committed) = futures_util::future::join4(
            begin,
            inserted,
            futures_util::future::join_all(writes),
            commit,
        )
        .await;
        began.map_err(backend)?;
        // The first statement that failed aborted the transaction, and its COMMIT rolled it back.
        match inserted {
            Ok(row) if row.get::<_, i64>(0) == 1 => {}
            // No job row to fence with: the claim's job is gone.
            Ok(_) => {
                committed.map_err(backend)?;
                client.done();
                return Err(self.lost_claim().await);
            }
            Err(e) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => {
                committed.map_err(backend)?;
                client.done();
                return Err(self.lost_claim().await);
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                committed.map_err(backend)?;
                client.done();
                return Err(StoreError::AlreadyExists {
                    flow_id: id.clone(),
                });
            }
            Err(e) => return Err(backend(e)),
        }
        for w in written {
            w.map_err(backend)?;
        }
        committed.map_err(backend)?;
        client.done();
        Ok(())
    }

    async fn do_checkpoint(&self, flow_id: &str, cp: &Checkpoint) -> Result<(), StoreError> {
        validate_checkpoint(cp)?;
        if self.claim.is_some() && cp.fence.is_none() {
            return Err(StoreError::Invalid {
                what: format!("checkpoint of flow `{flow_id}`"),
                detail: "a claim's view of the store writes only under the run's lease".into(),
            });
        }
        // Everything converted before the transaction: nothing fails half-way for a bad value.
        let atoms = last_of_each(&cp.atoms, |a| a.name.clone())
            .into_iter()
            .map(AtomRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let retries = last_of_each(&cp.retries, |r| (r.flow.clone(), r.scope))
            .into_iter()
            .map(RetryRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let state = cp.flow_state.map(|s| s.to_string());
        let (lease_mode, until) = match cp.lease {
            LeaseUpdate::Keep => ("keep", 0),
            LeaseUpdate::Release => ("release", 0),
            LeaseUpdate::Renew { until } => ("renew", to_i64(until, "lease expiry")?),
        };
        // The transaction is opened by a `BEGIN` sent with its statements (tokio-postgres'
        // `transaction()` waits for its `BEGIN` alone: one round trip more per checkpoint). A
        // checkpoint that does not end (its future dropped) takes its connection out of the
        // pool and closes it, which rolls it back (`Unfinished`).
        let client = Unfinished(Some(self.pool.get().await.map_err(backend)?));
        let tx = client.client();
        let (lock, upsert_atom, upsert_retry, update_flow) = futures_util::future::try_join4(
            tx.prepare_cached(&self.sql.lock_flow),
            tx.prepare_cached(&self.sql.upsert_atom),
            tx.prepare_cached(&self.sql.upsert_retry),
            tx.prepare_cached(&self.sql.update_flow),
        )
        .await
        .map_err(backend)?;
        // One round trip for the whole checkpoint: the run's row locked (`FOR UPDATE`) and the
        // writes, sent together and run by the server in that order. The fence is checked on
        // what the locked row said, before the commit: a writer that lost the run rolls its
        // writes back, and no other writer can change the row before this transaction ends.
        let writes = row_writes(
            tx,
            [&upsert_atom, &upsert_retry],
            &flow_id,
            &atoms,
            &retries,
        );
        let updated = tx.execute_raw(
            &update_flow,
            params![flow_id, state, now, lease_mode, until],
        );
        // Polled in this order, so sent in it: the rows, then the run's.
        let writes = async {
            let (mut written, updated) =
                futures_util::future::join(futures_util::future::join_all(writes), updated).await;
            written.push(updated);
            written
        };
        // A fenced writer sends everything at once, COMMIT included: the fence is checked by
        // the server (`fence_flow`), and a failed check aborts the transaction. Without a fence
        // (a tool's write) the rule involves whether the lease's owner is alive on this host,
        // which only this process can tell: the COMMIT waits for the row.
        if let Some(fence) = &cp.fence {
            let fence_stmt = tx
                .prepare_cached(&self.sql.fence_flow)
                .await
                .map_err(backend)?;
            let fence_epoch = to_i64(fence.epoch, "epoch")?;
            let fence_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&flow_id, &fence_epoch, &fence.owner];
            // A claim's view checks the claim first, in the same round trip. The run's last
            // checkpoint ends the job instead, with a statement that is the claim's fence too
            // (it aborts the transaction when the claim no longer holds).
            let ends = match (self.claim, cp.flow_state) {
                (Some((job, epoch)), Some(state)) if state.is_final() => Some((
                    tx.prepare_cached(&self.sql.complete_job_fenced)
                        .await
                        .map_err(backend)?,
                    [job],
                    [epoch],
                    [state.to_string()],
                    state,
                )),
                _ => None,
            };
            let job_stmt = match ends {
                Some(_) => None,
                None => self.claim_statement(tx).await?,
            };
            let begin = tx.batch_execute("BEGIN");
            let claimed = async {
                match &ends {
                    Some((stmt, ids, epochs, outcomes, _)) => Some(
                        tx.query_opt(stmt, &[&&ids[..], &&epochs[..], &&outcomes[..], &now])
                            .await,
                    ),
                    None => self.fence_claim(tx, job_stmt.as_ref()).await,
                }
            };
            let fenced = tx.query_opt(&fence_stmt, &fence_params);
            let commit = tx.batch_execute("COMMIT");
            let (began, claimed, fenced, written, committed) =
                futures_util::future::join5(begin, claimed, fenced, writes, commit).await;
            began.map_err(backend)?;
            // How the job ended, if this checkpoint ended it.
            let job_end = match (&claimed, &ends) {
                (Some(Ok(Some(row))), Some((.., state))) => Some((
                    *state,
                    row.get::<_, Option<String>>(1)
                        .and_then(|name| super::JobState::parse(&name))
                        .unwrap_or(super::JobState::Done),
                )),
                _ => None,
            };
            if !claim_held(claimed)? {
                client.done();
                return Err(self.lost_claim().await);
            }
            committed.map_err(backend)?;
            match fenced {
                Ok(Some(_)) => {
                    for w in written {
                        w.map_err(backend)?; // then the COMMIT rolled back
                    }
                    if let Some(end) = job_end {
                        let _ = self.ended.set(end); // committed with the run's end
                    }
                    client.done();
                    return Ok(());
                }
                Ok(None) => {
                    client.done();
                    return Err(StoreError::NotFound {
                        flow_id: flow_id.to_owned(),
                    });
                }
                Err(e) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => {
                    client.done();
                    // Rolled back: say why, from the run as it is now.
                    return Err(self.fence_error(flow_id, cp).await);
                }
                Err(e) => return Err(backend(e)),
            }
        }
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&flow_id];
        let locked = tx.query_opt(&lock, &lock_params);
        let begin = tx.batch_execute("BEGIN");
        let (began, locked, written) = futures_util::future::join3(begin, locked, writes).await;
        let checked = (|| {
            began.map_err(backend)?;
            let Some(row) = locked.map_err(backend)? else {
                return Err(StoreError::NotFound {
                    flow_id: flow_id.to_owned(),
                });
            };
            let what = format!("flows row id={flow_id:?}");
            let epoch: i64 = get(&row, 0, &what, "epoch")?;
            let held: Option<Lease> = opt_json(get(&row, 1, &what, "lease")?, &what, "lease")?;
            lease::check(
                flow_id,
                u64::try_from(epoch).unwrap_or(0),
                held.as_ref(),
                cp.fence.as_ref(),
                unix_millis(SystemTime::now()),
            )?;
            for w in written {
                w.map_err(backend)?;
            }
            Ok(())
        })();
        let end = match &checked {
            Ok(()) => tx.batch_execute("COMMIT").await,
            Err(_) => tx.batch_execute("ROLLBACK").await,
        };
        match (checked, end) {
            (Ok(()), Ok(())) => client.done(),
            // A COMMIT that failed (the connection broke, say): the connection is not reused,
            // and what happened to the transaction is for the next read to say.
            (Ok(()), Err(e)) => return Err(backend(e)),
            (Err(e), Ok(())) => {
                client.done();
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
        }
        Ok(())
    }

    /// Why a fenced checkpoint of `flow_id` was refused by the server, from the run's row as it
    /// is now (the same rule as every store's, `lease::check`).
    async fn fence_error(&self, flow_id: &str, cp: &Checkpoint) -> StoreError {
        let fence = cp.fence.as_ref();
        let lost = || StoreError::LostLease {
            flow_id: flow_id.to_owned(),
            epoch: fence.map_or(0, |f| f.epoch),
            holder: None,
        };
        let row = match self.pool.get().await {
            Ok(client) => client.query_opt(&self.sql.select_lease, &[&flow_id]).await,
            Err(e) => return backend(e),
        };
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => {
                return StoreError::NotFound {
                    flow_id: flow_id.to_owned(),
                }
            }
            Err(e) => return backend(e),
        };
        let what = format!("flows row id={flow_id:?}");
        let read = (|| {
            let epoch: i64 = get(&row, 0, &what, "epoch")?;
            let held: Option<Lease> = opt_json(get(&row, 1, &what, "lease")?, &what, "lease")?;
            lease::check(
                flow_id,
                u64::try_from(epoch).unwrap_or(0),
                held.as_ref(),
                fence,
                unix_millis(SystemTime::now()),
            )
        })();
        match read {
            Err(e) => e,
            // Epochs only rise: a fence the server refused stays refused.
            Ok(()) => lost(),
        }
    }

    async fn do_load(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError> {
        let mut client = self.pool.get().await.map_err(backend)?;
        // One snapshot: the flow, its atoms and its retries as one commit left them.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let loaded = self.load_in(&tx, flow_id, false).await?;
        tx.commit().await.map_err(backend)?;
        Ok(loaded)
    }

    async fn do_list(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let client = self.pool.get().await.map_err(backend)?;
        client
            .query(&self.sql.list_flows, &[])
            .await
            .map_err(backend)?
            .iter()
            .map(read_flow)
            .collect()
    }

    async fn do_delete(&self, flow_id: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(backend)?;
        // The run's graph, atoms and retries go with it (ON DELETE CASCADE), in one statement.
        let deleted = client
            .execute(&self.sql.delete_flow, &[&flow_id])
            .await
            .map_err(backend)?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            });
        }
        Ok(())
    }

    async fn do_acquire(
        &self,
        flow_id: &str,
        owner: &Owner,
        until: u64,
    ) -> Result<StoredFlow, StoreError> {
        let mut client = self.pool.get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        self.check_claim(&tx).await?;
        // The row locked first: two takers at once take turns, and the second sees the first's
        // lease.
        let mut stored =
            self.load_in(&tx, flow_id, true)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    flow_id: flow_id.to_owned(),
                })?;
        let now = unix_millis(SystemTime::now());
        if !lease::take(&mut stored.flow, owner, until, now)? {
            return Ok(stored);
        }
        stored.flow.updated_at = now;
        tx.execute(
            &self.sql.take_flow,
            &[
                &flow_id,
                &to_i64(stored.flow.epoch, "epoch")?,
                &lease_json(stored.flow.lease.as_ref())?,
                &to_i64(now, "the time")?,
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }
}

impl AsyncStore for PostgresStore {
    fn create_flow<'a>(&'a self, flow: &'a FlowRecord) -> StoreFuture<'a, ()> {
        Box::pin(self.do_create(flow))
    }

    fn create_with<'a>(
        &'a self,
        flow: &'a FlowRecord,
        first: &'a Checkpoint,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.do_create_with(flow, first))
    }

    fn checkpoint<'a>(
        &'a self,
        flow_id: &'a str,
        checkpoint: &'a Checkpoint,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.do_checkpoint(flow_id, checkpoint))
    }

    fn load_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, Option<StoredFlow>> {
        Box::pin(self.do_load(flow_id))
    }

    fn list_flows(&self) -> StoreFuture<'_, Vec<FlowRecord>> {
        Box::pin(self.do_list())
    }

    fn delete_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.do_delete(flow_id))
    }

    fn acquire<'a>(
        &'a self,
        flow_id: &'a str,
        owner: &'a Owner,
        until: u64,
    ) -> StoreFuture<'a, StoredFlow> {
        Box::pin(self.do_acquire(flow_id, owner, until))
    }
}

/// Opens the pool's connections on the runtime the store was connected on, and drives them
/// there. deadpool-postgres would open one in whatever runtime asked the pool for it: a
/// connection opened inside a short-lived runtime (the lease keeper's, a `.blocking()` run's)
/// is registered with that runtime's I/O driver and driven by a task of it, so once that
/// runtime stopped being polled, the next user of the connection waited forever (seen as a
/// conductor test that hung after a lease renewal during a long step opened a connection).
/// Each connection gets the store's `idle_in_transaction_session_timeout` before it is used.
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    idle_in_transaction_timeout: Option<std::time::Duration>,
}

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        async fn open(
            config: tokio_postgres::Config,
            idle_in_transaction: Option<std::time::Duration>,
        ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
        {
            let (client, connection) = config.connect(NoTls).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "taskflow: a PostgreSQL connection ended");
                }
            });
            if let Some(timeout) = idle_in_transaction {
                // 0 would turn the timeout off: a timeout under a millisecond is one.
                let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
                let set = format!("SET idle_in_transaction_session_timeout = {ms}");
                if let Err(e) = client.batch_execute(&set).await {
                    driver.abort();
                    return Err(e);
                }
            }
            Ok((client, driver))
        }
        let config = pg_config.clone();
        let idle = self.idle_in_transaction_timeout;
        let opened = self.runtime.spawn(open(config.clone(), idle));
        Box::pin(async move {
            match opened.await {
                Ok(opened) => opened,
                // The store's runtime is gone (shut down): open it where it is asked for, the
                // best that is left.
                Err(_) => open(config, idle).await,
            }
        })
    }
}

/// Whether a claim's fence sent with a transaction held: true also without one. False when
/// the claim was lost (the fence aborted the transaction, and its COMMIT rolled it back).
fn claim_held(
    claimed: Option<Result<Option<Row>, tokio_postgres::Error>>,
) -> Result<bool, StoreError> {
    match claimed {
        None | Some(Ok(Some(_))) => Ok(true),
        Some(Ok(None)) => Ok(false),
        Some(Err(e)) if e.code() == Some(&SqlState::DIVISION_BY_ZERO) => Ok(false),
        Some(Err(e)) => Err(backend(e)),
    }
}

/// A statement's parameters, as `execute_raw` takes them.
macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(&$p as &(dyn tokio_postgres::types::ToSql + Sync)),*] };
}
use params;

/// The writes of the rows of `atoms` and `retries` of run `flow_id` through `client`, with the
/// statements `[upsert_atom, upsert_retry]`: unsent until awaited, so that a checkpoint sends
/// them in one round trip with its transaction's other statements.
fn row_writes<'a, 'b: 'a>(
    client: &'a tokio_postgres::Client,
    [upsert_atom, upsert_retry]: [&'a tokio_postgres::Statement; 2],
    flow_id: &'a &'b str,
    atoms: &'a [AtomRow],
    retries: &'a [RetryRow],
) -> Vec<impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + 'a> {
    let mut writes = Vec::with_capacity(atoms.len() + retries.len());
    for a in atoms {
        writes.push(client.execute_raw(
            upsert_atom,
            params![
                *flow_id,
                a.name,
                a.state,
                a.attempt,
                a.runs,
                a.result,
                a.failure,
                a.revert_failure,
                a.progress,
                a.started_at,
                a.finished_at,
            ],
        ));
    }
    for r in retries {
        writes.push(client.execute_raw(
            upsert_retry,
            params![*flow_id, r.flow, r.scope, r.attempt, r.history, r.failure],
        ));
    }
    writes
}

/// A pooled connection inside a transaction opened by hand: given back to the pool by
/// [`done`](Self::done) once the transaction ended, else (an error, or the future holding it
/// dropped) taken out of the pool and closed, so that the server rolls the transaction back and
/// no later user of the pool finds it open.
struct Unfinished(Option<deadpool_postgres::Object>);

impl Unfinished {
    fn client(&self) -> &deadpool_postgres::Object {
        self.0.as_ref().expect("a connection until done")
    }

    fn done(mut self) {
        self.0 = None; // back to the pool, its transaction over
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

/// An `Arc<PostgresStore>` is a run's store as it is (an [`AsyncStore`]), like an
/// `Arc<dyn AsyncStore>`.
impl super::IntoStore for std::sync::Arc<PostgresStore> {
    fn into_store(self) -> super::AnyStore {
        super::AnyStore::Async(self)
    }
}

/// A schema name we can put in statements without quoting rules to get wrong.
fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let ok = (1..=63).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && !schema.starts_with("pg_")
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("PostgreSQL schema name {schema:?}"),
            detail: "a schema name is 1 to 63 ASCII lowercase letters, digits or `_`, not \
                     starting with a digit or `pg_` (PostgreSQL's own)"
                .into(),
        })
    }
}

/// The later record of each key, in the order each key first appears ("a name given twice in one
/// checkpoint keeps the later record"; one statement may not upsert one row twice).
fn last_of_each<T, K: std::hash::Hash + Eq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut at = std::collections::HashMap::new();
    let mut kept: Vec<&T> = Vec::new();
    for item in items {
        match at.entry(key(item)) {
            std::collections::hash_map::Entry::Occupied(i) => kept[*i.get()] = item,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(item);
            }
        }
    }
    kept
}

pub(super) fn backend(e: impl Into<Box<dyn StdError + Send + Sync>>) -> StoreError {
    let source = e.into();
    // tokio-postgres says only "db error" for what the server said: put that in the message.
    let source = match source.downcast::<tokio_postgres::Error>() {
        Ok(e) => Box::new(PostgresError(*e)),
        Err(other) => other,
    };
    StoreError::Backend {
        store: "PostgreSQL".into(),
        source,
    }
}

/// A tokio-postgres error whose message includes the server's (severity, message, detail,
/// SQLSTATE), with the client's error as its source.
#[derive(Debug)]
struct PostgresError(tokio_postgres::Error);

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(
                    f,
                    "{}: {} (SQLSTATE {})",
                    db.severity(),
                    db.message(),
                    db.code().code()
                )?;
                if let Some(detail) = db.detail() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            None => self.0.fmt(f),
        }
    }
}

impl StdError for PostgresError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

pub(super) use super::column_json as to_json;
use super::lease_column as lease_json;

pub(super) fn to_i64<T: TryInto<i64> + Copy + std::fmt::Display>(
    n: T,
    what: &str,
) -> Result<i64, StoreError> {
    super::column_i64(n, what, "a PostgreSQL BIGINT")
}

fn corrupt(what: &str, column: &str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what}, column `{column}`"),
        detail: detail.to_string(),
    }
}

pub(super) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    idx: usize,
    what: &str,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| corrupt(what, column, e))
}

pub(super) fn json<T: DeserializeOwned>(
    text: &str,
    what: &str,
    column: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, column, e))
}

pub(super) fn opt_json<T: DeserializeOwned>(
    text: Option<String>,
    what: &str,
    column: &str,
) -> Result<Option<T>, StoreError> {
    text.map(|t| json(&t, what, column)).transpose()
}

pub(super) fn state<T: DeserializeOwned>(
    name: String,
    what: &str,
    column: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(name)).map_err(|e| corrupt(what, column, e))
}

pub(super) fn unsigned<T: TryFrom<i64>>(n: i64, what: &str, column: &str) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| corrupt(what, column, format!("{n} is out of range")))
}

fn read_flow(row: &Row) -> Result<FlowRecord, StoreError> {
    let id: String = row.try_get(0).map_err(|e| corrupt("flows row", "id", e))?;
    let what = format!("flows row id={id:?}");
    let w = what.as_str();
    let graph: Option<String> = get(row, 10, w, "graphs.graph")?;
    Ok(FlowRecord {
        logbook: get(row, 1, w, "logbook")?,
        flow_name: get(row, 2, w, "flow_name")?,
        fingerprint: get(row, 3, w, "fingerprint")?,
        state: state(get(row, 4, w, "state")?, w, "state")?,
        inputs: json(&get::<String>(row, 5, w, "inputs")?, w, "inputs")?,
        created_at: unsigned(get(row, 6, w, "created_at")?, w, "created_at")?,
        updated_at: unsigned(get(row, 7, w, "updated_at")?, w, "updated_at")?,
        epoch: unsigned(get(row, 8, w, "epoch")?, w, "epoch")?,
        lease: opt_json(get(row, 9, w, "lease")?, w, "lease")?,
        graph: match graph {
            Some(g) => json(&g, w, "graphs.graph")?,
            None => Value::Null,
        },
        id,
    })
}

fn read_atom(row: &Row, flow_id: &str) -> Result<AtomRecord, StoreError> {
    let name: String = get(row, 0, &format!("atoms row flow_id={flow_id:?}"), "name")?;
    let what = format!("atoms row flow_id={flow_id:?} name={name:?}");
    let w = what.as_str();
    let progress: f32 = get(row, 7, w, "progress")?;
    if !(0.0..=1.0).contains(&progress) {
        return Err(corrupt(
            w,
            "progress",
            format!("{progress} is not between 0 and 1"),
        ));
    }
    Ok(AtomRecord {
        state: state(get(row, 1, w, "state")?, w, "state")?,
        attempt: unsigned(get(row, 2, w, "attempt")?, w, "attempt")?,
        runs: unsigned(get(row, 3, w, "runs")?, w, "runs")?,
        result: opt_json(get(row, 4, w, "result")?, w, "result")?,
        failure: opt_json(get(row, 5, w, "failure")?, w, "failure")?,
        revert_failure: opt_json(get(row, 6, w, "revert_failure")?, w, "revert_failure")?,
        progress,
        started_at: get::<Option<i64>>(row, 8, w, "started_at")?
            .map(|n| unsigned(n, w, "started_at"))
            .transpose()?,
        finished_at: get::<Option<i64>>(row, 9, w, "finished_at")?
            .map(|n| unsigned(n, w, "finished_at"))
            .transpose()?,
        name,
    })
}

fn read_retry(row: &Row, flow_id: &str) -> Result<RetryRecord, StoreError> {
    let flow: String = get(row, 0, &format!("retries row flow_id={flow_id:?}"), "flow")?;
    let scope: i64 = get(row, 1, &format!("retries row flow_id={flow_id:?}"), "scope")?;
    let what = format!("retries row flow_id={flow_id:?} flow={flow:?} scope={scope}");
    let w = what.as_str();
    Ok(RetryRecord {
        scope: unsigned(scope, w, "scope")?,
        attempt: unsigned(get(row, 2, w, "attempt")?, w, "attempt")?,
        history: json(&get::<String>(row, 3, w, "history")?, w, "history")?,
        failure: opt_json(get(row, 4, w, "failure")?, w, "failure")?,
        flow,
    })
}

/// An atom as its row's columns.
struct AtomRow {
    name: String,
    state: String,
    attempt: i64,
    runs: i64,
    result: Option<String>,
    failure: Option<String>,
    revert_failure: Option<String>,
    progress: f32,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl AtomRow {
    fn of(atom: &AtomRecord) -> Result<Self, StoreError> {
        let what = |column: &str| format!("{column} of step `{}`", atom.name);
        Ok(AtomRow {
            name: atom.name.clone(),
            state: atom.state.to_string(),
            attempt: i64::from(atom.attempt),
            runs: i64::from(atom.runs),
            result: atom
                .result
                .as_ref()
                .map(|r| to_json(r, &what("result")))
                .transpose()?,
            failure: atom
                .failure
                .as_ref()
                .map(|f| to_json(f, &what("failure")))
                .transpose()?,
            revert_failure: atom
                .revert_failure
                .as_ref()
                .map(|f| to_json(f, &what("revert failure")))
                .transpose()?,
            progress: atom.progress,
            started_at: atom
                .started_at
                .map(|t| to_i64(t, &what("start time")))
                .transpose()?,
            finished_at: atom
                .finished_at
                .map(|t| to_i64(t, &what("end time")))
                .transpose()?,
        })
    }
}

/// A retry record as its row's columns.
struct RetryRow {
    flow: String,
    scope: i64,
    attempt: i64,
    history: String,
    failure: Option<String>,
}

impl RetryRow {
    fn of(retry: &RetryRecord) -> Result<Self, StoreError> {
        Ok(RetryRow {
            flow: retry.flow.clone(),
            scope: to_i64(retry.scope, "retry scope")?,
            attempt: i64::from(retry.attempt),
            history: to_json(&retry.history, "retry history")?,
            failure: retry
                .failure
                .as_ref()
                .map(|f| to_json(f, "retry failure"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["taskflow", "t_1", "_x"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "Tf", "a-b", "a\"b", "pg_x", &"x".repeat(64)] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_later_record_of_a_key_is_kept_in_first_order() {
        let items = [("a", 1), ("b", 2), ("a", 3)];
        let kept: Vec<_> = last_of_each(&items, |i| i.0).into_iter().copied().collect();
        assert_eq!(kept, [("a", 3), ("b", 2)]);
    }
}
