//! A store in an SQLite database (the bundled SQLite, through rusqlite).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::checksum::{self, row_sum, to_hex};
use super::{
    lease, unix_millis, validate_checkpoint, validate_flow_id, AtomRecord, Checkpoint, FlowRecord,
    Lease, LeaseUpdate, Owner, RetryRecord, Store, StoreError, StoredFlow,
};

/// The schema version this library creates and the newest it opens.
const SCHEMA_VERSION: u32 = 5;

/// Version 1, as taskflow first wrote it; a new database is created with it, then migrated (see
/// [`MIGRATIONS`]), so new and migrated databases are the same. `flows`: one row per run;
/// `atoms`: one row per step of a run (`id` keeps the order in which steps were first recorded;
/// the `UNIQUE (flow_id, name)` index serves every lookup by run); `retries`: one row per retry
/// scope of a run. JSON values are stored as text, times as Unix milliseconds.
const SCHEMA_V1: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE flows (
    id          TEXT PRIMARY KEY NOT NULL,
    logbook     TEXT NOT NULL,
    flow_name   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE atoms (
    id             INTEGER PRIMARY KEY,
    flow_id        TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    result         TEXT,
    failure        TEXT,
    revert_failure TEXT,
    progress       REAL NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    UNIQUE (flow_id, name)
);
CREATE TABLE retries (
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    scope   INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (flow_id, scope)
);
";

/// `MIGRATIONS[i]` takes a database from version `i + 1` to `i + 2`, in the transaction that
/// also records the new version.
///
/// 1 → 2: table `graphs`, the flow's structure as JSON (`FlowRecord::graph`), one row per run
/// that recorded one (runs of version 1 have none). Its own table, not a column of `flows`: the
/// structure of a large flow is tens of kilobytes, and `flows` has its row rewritten by every
/// checkpoint (state, `updated_at`), which would copy it each time. `retries.flow`, the sub-flow a retry scope belongs to (`RetryRecord::flow`, `''` for
/// the run's own flow), in the key: the table is rebuilt with its rows, which get `''`. A
/// process of an older taskflow must not write to a migrated database (its retry upsert names
/// the old key).
///
/// 2 → 3: `retries.failure`, the failure of the scope's controller itself (`RetryRecord::failure`,
/// JSON like `atoms.failure`; `NULL` for none, as in every row of version 2). A column added in
/// place: the rows keep their values.
///
/// 3 → 4: run ownership, `flows.epoch` and `flows.lease`, and `atoms.runs`.
///
/// 4 → 5: checksums (see `store/checksum.rs`). Every row of `flows`, `atoms` and `retries` gets
/// `sum`, the checksum of its columns as stored ([`FlowRow`], [`AtomRow`], [`RetryRow`]); `flows`
/// also gets `graph_sum`, the checksum of the run's `graphs` row ([`GraphRow`]; `NULL`: no graph),
/// and `tally`, the wrapping sum of the checksums of the run's `atoms` and `retries` rows, both
/// covered by the run's own `sum`. A row that reads back changed fails its own sum; a row that
/// goes missing, is read twice or is read in an older version of itself (a damaged page or index
/// can do each, and each such row verifies on its own) fails the tally, or the graph sum. The
/// migration fills them in for every row ([`seal_all`], in the migration's transaction), so in
/// a version-5 database every row has them, and a `NULL` is corrupt.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE graphs (
    flow_id TEXT PRIMARY KEY NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    graph   TEXT NOT NULL
);
CREATE TABLE retries_v2 (
    flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    flow    TEXT NOT NULL DEFAULT '',
    scope   INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (flow_id, flow, scope)
);
INSERT INTO retries_v2 (flow_id, flow, scope, attempt, history)
    SELECT flow_id, '', scope, attempt, history FROM retries;
DROP TABLE retries;
ALTER TABLE retries_v2 RENAME TO retries;",
    "ALTER TABLE retries ADD COLUMN failure TEXT;",
    // Run ownership: the fence's epoch and the lease (JSON), and how often a step was started.
    "ALTER TABLE flows ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN lease TEXT;
ALTER TABLE atoms ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;",
    // Checksums, filled in by `seal_all`.
    "ALTER TABLE flows ADD COLUMN graph_sum TEXT;
ALTER TABLE flows ADD COLUMN tally TEXT;
ALTER TABLE flows ADD COLUMN sum TEXT;
ALTER TABLE atoms ADD COLUMN sum TEXT;
ALTER TABLE retries ADD COLUMN sum TEXT;",
];

/// The first schema version whose rows carry checksums.
const SEALED: u32 = 5;

const _: () = assert!(MIGRATIONS.len() + 1 == SCHEMA_VERSION as usize);

/// What [`read_flow`] reads, in a database of version 5 or later (`WHERE`/`ORDER BY` follow, on
/// `f`): see [`FlowRead`] for the columns.
const SELECT_FLOWS: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, g.graph, f.epoch, f.lease, f.tally, f.sum, \
     f.graph_sum FROM flows f LEFT JOIN graphs g ON g.flow_id = f.id";
/// The same in a database of version 4 (only opened read-only: `open` migrates), which has no
/// checksums.
const SELECT_FLOWS_V4: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, g.graph, f.epoch, f.lease, NULL, NULL, NULL \
     FROM flows f LEFT JOIN graphs g ON g.flow_id = f.id";
/// The same in a database of version 2 or 3, whose runs were never held.
const SELECT_FLOWS_V2: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, g.graph, 0, NULL, NULL, NULL, NULL \
     FROM flows f LEFT JOIN graphs g ON g.flow_id = f.id";
/// The same in a version-1 database, which has no `graphs` table: its flows have no recorded
/// graph.
const SELECT_FLOWS_V1: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, NULL, 0, NULL, NULL, NULL, NULL FROM flows f";
/// A `flows` row without its graph, in [`SELECT_FLOWS`]'s columns: what a checkpoint reads (a
/// large flow's structure is not read by every checkpoint; its checksum is in `graph_sum`).
const SELECT_FLOW_ROW: &str = "SELECT rowid, id, logbook, flow_name, fingerprint, state, inputs, \
     created_at, updated_at, NULL, epoch, lease, tally, sum, graph_sum FROM flows WHERE id = ?1";
const ATOM_COLUMNS: &str = "id, name, state, attempt, result, failure, revert_failure, progress, \
                            started_at, finished_at, runs, sum";
/// [`ATOM_COLUMNS`] in a database of version 4, which has no checksums.
const ATOM_COLUMNS_V4: &str = "id, name, state, attempt, result, failure, revert_failure, \
                               progress, started_at, finished_at, runs, NULL";
/// Every `atoms` row in [`ATOM_COLUMNS`] (without a sum) and its run: what [`seal_all`] hashes.
const SEAL_ATOMS: &str = "SELECT id, name, state, attempt, result, failure, revert_failure, \
                          progress, started_at, finished_at, runs, NULL, flow_id FROM atoms";
/// [`ATOM_COLUMNS`] in a database older than version 4, which did not count runs.
const ATOM_COLUMNS_V1: &str = "id, name, state, attempt, result, failure, revert_failure, \
                               progress, started_at, finished_at, 0, NULL";

/// A [`Store`] in one SQLite database file: the embedded default.
///
/// The database uses write-ahead logging (`journal_mode=WAL`) and `synchronous=FULL`, so every
/// committed checkpoint is on disk; each checkpoint is one transaction, so a failure half-way
/// (a full or read-only disk, a crash) leaves the run as the previous checkpoint left it.
///
/// The schema is created on first use, with its version in table `schema_version` (version 5:
/// version 1 plus table `graphs`, the flows' structures, and `retries.flow` (version 2),
/// `retries.failure`, a retry controller's own failure (3), run ownership (4) and checksums
/// (5)). [`SqliteStore::open`] migrates a database of an older version in one transaction,
/// losing nothing; [`SqliteStore::open_read_only`] reads it as it is (the flows of a version-1
/// database have no graph, the retry records of versions 1 and 2 no controller failure, and the
/// rows of versions 1 to 4 no checksums). A database whose version is newer than this library's
/// is refused with [`StoreError::SchemaTooNew`] before anything is written to it; a file that is
/// not an SQLite database is [`StoreError::Corrupt`], and so is a row whose JSON or state does
/// not parse (naming the table, the row and the column).
///
/// **Checksums** (version 5, see the [module docs](super#checksums)). Each `flows`, `atoms` and
/// `retries` row has a `sum` column: the checksum of its other columns as stored (with, for a
/// step or retry row, the run it was read for). Each run's `flows` row also records the checksum
/// of its `graphs` row (`graph_sum`) and the wrapping sum of its `atoms` and `retries` rows'
/// checksums (`tally`), both covered by its own `sum`: a load verifies every row and the tally,
/// so a row that went missing, is read twice or in an older version of itself (which a damaged
/// page or index can do, each row then verifying on its own) is `Corrupt` too. Every write sets
/// them in the transaction of its rows, and no checkpoint seals a damaged row anew: a handle's
/// first checkpoint of a run (or one after another handle or process wrote it) reads and
/// verifies the run's `flows` row and refuses a damaged one; a handle that wrote the run's last
/// checkpoint checks only that the stored `flows.sum` is still the one it wrote, and then
/// writes from what it committed (the columns a checkpoint changes, and the sum of the row as
/// it committed it), so damage to another column still fails the checksum at every load. The migration to version 5 computes them for
/// every existing row, so a row without one is corrupt. At open the tables' columns are checked
/// against those of the database's version (exactly, by `open`, which migrates; those it reads,
/// by `open_read_only`), so damage to the schema is `Corrupt` too, not an SQL error later; a run
/// its index does not find is looked for in the table before it is reported missing, and the
/// runs listed are counted against the table and the index.
///
/// The connection is shared behind a lock; several processes may use the same file (SQLite
/// serializes their writes; a writer waits up to 5 s for another's transaction).
///
/// ```
/// use taskflow::store::{FlowRecord, SqliteStore, Store};
///
/// let path = std::env::temp_dir().join(format!("taskflow-doc-sqlite-{}.db", std::process::id()));
/// let store = SqliteStore::open(&path).unwrap();
/// let flow = FlowRecord::new("book", "BootVm", "fp", serde_json::json!({ "size_gb": 20 }));
/// store.create_flow(&flow).unwrap();
/// drop(store);
///
/// let again = SqliteStore::open(&path).unwrap();
/// assert_eq!(again.list_flows().unwrap(), [flow]);
/// # drop(again);
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// The schema version of the database: [`SCHEMA_VERSION`] once `open` is done; as found for
    /// `open_read_only`.
    version: u32,
    /// What this handle's last checkpoint of each run it is writing committed (locked after
    /// `conn`, only by [`Store::checkpoint`]).
    written: Mutex<HashMap<String, Written>>,
}

/// What a [`SqliteStore`] knows of a run it wrote the last checkpoint of: its `flows` row as
/// committed, with that row's checksum, and the checksums of the `atoms` and `retries` rows it
/// wrote. A checkpoint reads the run's stored `flows.sum` in its transaction: when it is the one
/// remembered here, nobody wrote the run since (every write of a run's rows rewrites its `flows`
/// row, and its sum with it), so the row need not be read and verified again, nor the old
/// checksums of the rows it replaces looked up one by one; otherwise (another writer, a take-over,
/// a damaged row) the checkpoint reads and verifies everything, as on its first write of the run.
/// Forgotten when a checkpoint fails (its transaction rolled back) or releases the run.
#[derive(Debug)]
struct Written {
    row: FlowRow,
    sum: u64,
    lease: Option<Lease>,
    atoms: HashMap<String, u64>,
    retries: HashMap<(String, usize), u64>,
}

/// At most this many runs' [`Written`] are kept by one store: past it they are all forgotten
/// (each then pays for one full read at its next checkpoint).
const WRITTEN_RUNS: usize = 1024;

impl SqliteStore {
    /// Opens (or creates) the store in database file `path`, creating the schema in a new file
    /// (or an empty one, or a database without any table) and migrating a store of an older
    /// schema version (in one transaction: all or nothing). A database that has tables but is
    /// not a taskflow store — also one with a `schema_version` table of its own — is refused
    /// ([`StoreError::NotAStore`], naming its tables) before anything is written to it.
    ///
    /// ```
    /// use taskflow::store::{SqliteStore, StoreError};
    ///
    /// let path = std::env::temp_dir().join(format!("taskflow-doc-notdb-{}.db", std::process::id()));
    /// std::fs::write(&path, "this is not a database, it is a text file padded to a page...".repeat(20)).unwrap();
    /// match SqliteStore::open(&path) {
    ///     Err(StoreError::Corrupt { what, .. }) => assert!(what.contains("notdb")),
    ///     other => panic!("{other:?}"),
    /// }
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = sql_error(&path);
        let mut conn = Connection::open(&path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(&err)?;

        // Look before writing anything: switching to WAL rewrites the file's header, and a
        // database from a newer taskflow must be left as it is.
        if let Some(found) = schema_version(&conn, &path)? {
            check_version(found, &path)?;
        }
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;

        // Two processes opening a new file at once: the write lock makes one create the schema.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        match schema_version(&tx, &path)? {
            Some(found) => {
                check_version(found, &path)?;
                check_schema(&tx, found, Exactly::Yes, &path)?;
                migrate(&tx, found, &path)?;
            }
            None => {
                tx.execute_batch(SCHEMA_V1).map_err(&err)?;
                tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])
                    .map_err(&err)?;
                migrate(&tx, 1, &path)?;
            }
        }
        tx.commit().map_err(&err)?;
        drop(err);
        Ok(SqliteStore {
            path,
            conn: Mutex::new(conn),
            written: Mutex::default(),
            version: SCHEMA_VERSION,
        })
    }

    /// Opens an existing store without writing to it: no schema is created, the journal mode is
    /// left alone, and checkpoints fail. For inspecting a store — also one the caller may only
    /// read, or one another process is writing. A database that is not a taskflow store is
    /// refused ([`StoreError::NotAStore`]) and left untouched. A database of an older schema
    /// version is read as it is, not migrated.
    ///
    /// ```
    /// use taskflow::store::{SqliteStore, Store, StoreError};
    ///
    /// let path = std::env::temp_dir().join(format!("taskflow-doc-ro-{}.db", std::process::id()));
    /// drop(SqliteStore::open(&path).unwrap()); // create it
    /// let store = SqliteStore::open_read_only(&path).unwrap();
    /// assert!(store.list_flows().unwrap().is_empty());
    /// # drop(store);
    /// # std::fs::remove_file(&path).unwrap();
    /// # let _ = std::fs::remove_file(path.with_extension("db-wal"));
    /// # let _ = std::fs::remove_file(path.with_extension("db-shm"));
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let err = sql_error(&path);
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
        let version = schema_version(&conn, &path)?;
        drop(err);
        let version = match version {
            Some(found) => {
                check_version(found, &path)?;
                check_schema(&conn, found, Exactly::No, &path)?;
                found
            }
            None => {
                return Err(StoreError::NotAStore {
                    path,
                    found: "it has no tables".into(),
                })
            }
        };
        Ok(SqliteStore {
            path,
            conn: Mutex::new(conn),
            written: Mutex::default(),
            version,
        })
    }

    /// The database file.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("taskflow-doc-path-{}.db", std::process::id()));
    /// let store = taskflow::store::SqliteStore::open(&path).unwrap();
    /// assert_eq!(store.path(), path);
    /// # drop(store);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this database's rows carry checksums (version 5 on), which are then verified.
    fn sealed(&self) -> bool {
        self.version >= SEALED
    }

    /// The columns [`read_retry`] reads, for this database's schema version.
    fn retry_columns(&self) -> &'static str {
        match self.version {
            5.. => "scope, attempt, history, flow, failure, sum",
            3 | 4 => "scope, attempt, history, flow, failure, NULL",
            2 => "scope, attempt, history, flow, NULL, NULL",
            _ => "scope, attempt, history, '', NULL, NULL",
        }
    }

    /// The query of what [`read_flow`] reads, for this database's schema version.
    fn select_flows(&self) -> &'static str {
        match self.version {
            5.. => SELECT_FLOWS,
            4 => SELECT_FLOWS_V4,
            2 | 3 => SELECT_FLOWS_V2,
            _ => SELECT_FLOWS_V1,
        }
    }

    /// The columns [`read_atom`] reads, for this database's schema version.
    fn atom_columns(&self) -> &'static str {
        match self.version {
            5.. => ATOM_COLUMNS,
            4 => ATOM_COLUMNS_V4,
            _ => ATOM_COLUMNS_V1,
        }
    }

    /// The `flows` row of run `flow_id` as `tx` sees it, its checksum verified (the checkpoint
    /// that rewrites it must not seal a damaged row anew); [`StoreError::NotFound`] for an
    /// unknown run.
    fn flow_row_in(&self, tx: &Transaction<'_>, flow_id: &str) -> Result<FlowRow, StoreError> {
        let err = sql_error(&self.path);
        let mut stmt = tx.prepare_cached(SELECT_FLOW_ROW).map_err(&err)?;
        let mut rows = stmt.query([flow_id]).map_err(&err)?;
        let Some(row) = rows.next().map_err(&err)? else {
            return Err(self.missing(tx, flow_id));
        };
        let r = flow_reader(row);
        let read = FlowRead::read(&r)?;
        read.verify(&r)?;
        Ok(read.row)
    }

    /// What a checkpoint of run `flow_id` in `tx` starts from: what this handle remembers of
    /// the run when the stored `flows.sum` is still the one it committed last (see [`Written`]),
    /// else the `flows` row read and verified ([`Self::flow_row_in`]), with no row checksums
    /// known. Either way the run is no longer remembered until the checkpoint commits.
    fn written(&self, tx: &Transaction<'_>, flow_id: &str) -> Result<Written, StoreError> {
        let err = sql_error(&self.path);
        let stored: Option<Option<String>> = tx
            .prepare_cached("SELECT sum FROM flows WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([flow_id], |r| r.get(0)).optional())
            .map_err(&err)?;
        let Some(stored) = stored else {
            return Err(self.missing(tx, flow_id));
        };
        let remembered = self.remembered().remove(flow_id);
        if let Some(written) = remembered {
            if stored.as_deref().and_then(checksum::from_hex) == Some(written.sum) {
                return Ok(written);
            }
        }
        let row = self.flow_row_in(tx, flow_id)?;
        let lease = row
            .lease
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                what: format!("flows row id={flow_id:?}, column `lease`"),
                detail: e.to_string(),
            })?;
        Ok(Written {
            sum: row_sum(&row),
            row,
            lease,
            atoms: HashMap::new(),
            retries: HashMap::new(),
        })
    }

    fn remembered(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why run `flow_id` was not found through the `flows` index: [`StoreError::NotFound`], or
    /// [`StoreError::Corrupt`] when the table holds it all the same (a damaged index must not pass
    /// for a missing run). The table is scanned, which only a miss pays for.
    fn missing(&self, tx: &Transaction<'_>, flow_id: &str) -> StoreError {
        let held: Result<bool, _> = tx.query_row(
            "SELECT count(*) > 0 FROM flows NOT INDEXED WHERE id = ?1",
            [flow_id],
            |r| r.get(0),
        );
        match held {
            Ok(false) => StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            },
            Ok(true) => StoreError::Corrupt {
                what: format!("table flows of `{}`", self.path.display()),
                detail: format!(
                    "it holds flow `{flow_id}`, which its index does not find: the index is \
                     damaged"
                ),
            },
            Err(e) => sql_error(&self.path)(e),
        }
    }

    /// The run `flow_id` as `tx` sees it, every checksum verified, and its `flows` row as stored.
    fn load_in(
        &self,
        tx: &Transaction<'_>,
        flow_id: &str,
    ) -> Result<Option<(StoredFlow, FlowRow)>, StoreError> {
        let err = sql_error(&self.path);
        let sealed = self.sealed();
        let (flow, read) = {
            let mut stmt = tx
                .prepare_cached(&format!("{} WHERE f.id = ?1", self.select_flows()))
                .map_err(&err)?;
            let mut rows = stmt.query([flow_id]).map_err(&err)?;
            match rows.next().map_err(&err)? {
                Some(row) => read_flow(row, sealed)?,
                None => {
                    return match self.missing(tx, flow_id) {
                        StoreError::NotFound { .. } => Ok(None),
                        corrupt => Err(corrupt),
                    }
                }
            }
        };
        if flow.id != flow_id {
            return Err(StoreError::Corrupt {
                what: format!("flows row id={flow_id:?}"),
                detail: format!("the index found flow `{}` instead", flow.id),
            });
        }
        let mut tally = 0u64;
        let mut atoms = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {} FROM atoms WHERE flow_id = ?1 ORDER BY id",
                    self.atom_columns()
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([flow_id]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                let (atom, sum) = read_atom(row, flow_id, sealed)?;
                tally = tally.wrapping_add(sum);
                atoms.push(atom);
            }
        }
        let mut retries = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {} FROM retries WHERE flow_id = ?1 ORDER BY 4, 1",
                    self.retry_columns()
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([flow_id]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                let (retry, sum) = read_retry(row, flow_id, sealed)?;
                tally = tally.wrapping_add(sum);
                retries.push(retry);
            }
        }
        if sealed {
            let stored = read.row.tally.as_deref().unwrap_or_default();
            if checksum::from_hex(stored) != Some(tally) {
                return Err(StoreError::Corrupt {
                    what: checksum::Record::Rows.describe(flow_id),
                    detail: format!(
                        "the checksums of its atoms and retries rows add up to {}, not to the \
                         tally {stored} of its flows row: a row is missing, read twice or older \
                         than its run",
                        to_hex(tally)
                    ),
                });
            }
        }
        let stored = StoredFlow {
            flow,
            atoms,
            retries,
        };
        Ok(Some((stored, read.row)))
    }

    /// Inserts the new run `flow` (its `flows` and `graphs` rows) in transaction `tx`.
    fn insert_run(&self, tx: &Transaction<'_>, flow: &FlowRecord) -> Result<(), StoreError> {
        validate_flow_id(&flow.id)?;
        let graph = match &flow.graph {
            Value::Null => None,
            graph => Some(to_json(graph, "flow graph")?),
        };
        let graph_sum = graph.as_deref().map(|graph| {
            row_sum(&GraphRow {
                flow_id: &flow.id,
                graph,
            })
        });
        let row = FlowRow::of(flow, graph_sum, 0)?;
        let sum = to_hex(row_sum(&row));
        let err = sql_error(&self.path);
        let inserted = tx.execute(
            "INSERT INTO flows (id, logbook, flow_name, fingerprint, state, inputs, created_at, \
             updated_at, epoch, lease, graph_sum, tally, sum) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                row.id,
                row.logbook,
                row.flow_name,
                row.fingerprint,
                row.state,
                row.inputs,
                row.created_at,
                row.updated_at,
                row.epoch,
                row.lease,
                row.graph_sum,
                row.tally,
                sum,
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(e)
                if e.sqlite_extended_error_code()
                    == Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
            {
                return Err(StoreError::AlreadyExists {
                    flow_id: flow.id.clone(),
                });
            }
            Err(e) => return Err(err(e)),
        }
        if let Some(graph) = graph {
            tx.execute(
                "INSERT INTO graphs (flow_id, graph) VALUES (?1, ?2)",
                params![flow.id, graph],
            )
            .map_err(&err)?;
        }
        Ok(())
    }

    /// Applies `checkpoint` to run `flow_id` in transaction `tx`, fenced; what the run's rows
    /// are after it, for [`remember`](Self::remember) once the transaction committed.
    fn checkpoint_in(
        &self,
        tx: &Transaction<'_>,
        flow_id: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Written, StoreError> {
        let err = sql_error(&self.path);
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let mut written = self.written(tx, flow_id).map_err(naming_run(flow_id))?;
        // The fence is checked in the transaction that writes: no other writer comes between.
        lease::check(
            flow_id,
            u64::try_from(written.row.epoch).unwrap_or(0),
            written.lease.as_ref(),
            checkpoint.fence.as_ref(),
            unix_millis(SystemTime::now()),
        )?;
        let flow = &mut written.row;
        if let Some(state) = checkpoint.flow_state {
            flow.state = state.to_string();
        }
        if checkpoint.lease != LeaseUpdate::Keep {
            lease::update(&mut written.lease, checkpoint.lease);
            flow.lease = lease_json(written.lease.as_ref())?;
        }
        flow.updated_at = now;
        // The tally follows each row replaced: minus the old row's checksum, plus the new one's.
        let mut tally = flow
            .tally
            .as_deref()
            .and_then(checksum::from_hex)
            .ok_or_else(|| {
                checksum::missing(format!("flows row id={flow_id:?}, column `tally`"))
            })?;
        {
            let mut old_atom = tx
                .prepare_cached("SELECT sum FROM atoms WHERE flow_id = ?1 AND name = ?2")
                .map_err(&err)?;
            let mut upsert_atom = tx
                .prepare_cached(
                    "INSERT INTO atoms (flow_id, name, state, attempt, result, failure, \
                     revert_failure, progress, started_at, finished_at, runs, sum) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                     ON CONFLICT (flow_id, name) DO UPDATE SET state = excluded.state, \
                     attempt = excluded.attempt, result = excluded.result, \
                     failure = excluded.failure, revert_failure = excluded.revert_failure, \
                     progress = excluded.progress, started_at = excluded.started_at, \
                     finished_at = excluded.finished_at, runs = excluded.runs, \
                     sum = excluded.sum",
                )
                .map_err(&err)?;
            for atom in &checkpoint.atoms {
                let row = AtomRow::of(flow_id, atom)?;
                let sum = row_sum(&row);
                let old = match written.atoms.get(&row.name) {
                    Some(&old) => old,
                    None => replaced_sum(
                        &mut old_atom,
                        params![flow_id, row.name],
                        || format!("atoms row flow_id={flow_id:?} name={:?}", row.name),
                        &err,
                    )?,
                };
                tally = tally.wrapping_sub(old).wrapping_add(sum);
                upsert_atom
                    .execute(params![
                        flow_id,
                        row.name,
                        row.state,
                        row.attempt,
                        row.result,
                        row.failure,
                        row.revert_failure,
                        row.progress,
                        row.started_at,
                        row.finished_at,
                        row.runs,
                        to_hex(sum),
                    ])
                    .map_err(&err)?;
                written.atoms.insert(row.name.clone(), sum);
            }
            let mut old_retry = tx
                .prepare_cached(
                    "SELECT sum FROM retries WHERE flow_id = ?1 AND flow = ?2 AND scope = ?3",
                )
                .map_err(&err)?;
            let mut upsert_retry = tx
                .prepare_cached(
                    "INSERT INTO retries (flow_id, flow, scope, attempt, history, failure, sum) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (flow_id, flow, scope) DO UPDATE SET \
                     attempt = excluded.attempt, history = excluded.history, \
                     failure = excluded.failure, sum = excluded.sum",
                )
                .map_err(&err)?;
            for retry in &checkpoint.retries {
                let row = RetryRow::of(flow_id, retry)?;
                let sum = row_sum(&row);
                let key = (retry.flow.clone(), retry.scope);
                let old = match written.retries.get(&key) {
                    Some(&old) => old,
                    None => replaced_sum(
                        &mut old_retry,
                        params![flow_id, row.flow, row.scope],
                        || checksum::Record::Retry(&row.flow, retry.scope).describe(flow_id),
                        &err,
                    )?,
                };
                tally = tally.wrapping_sub(old).wrapping_add(sum);
                upsert_retry
                    .execute(params![
                        flow_id,
                        row.flow,
                        row.scope,
                        row.attempt,
                        row.history,
                        row.failure,
                        to_hex(sum),
                    ])
                    .map_err(&err)?;
                written.retries.insert(key, sum);
            }
        }
        let flow = &mut written.row;
        flow.tally = Some(to_hex(tally));
        written.sum = row_sum(flow);
        tx.prepare_cached(
            "UPDATE flows SET state = ?2, updated_at = ?3, lease = ?4, tally = ?5, sum = ?6 \
             WHERE id = ?1",
        )
        .and_then(|mut update| {
            update.execute(params![
                flow_id,
                flow.state,
                flow.updated_at,
                flow.lease,
                flow.tally,
                to_hex(written.sum),
            ])
        })
        .map_err(&err)?;
        Ok(written)
    }

    /// Keeps what run `flow_id`'s rows are after a committed `checkpoint` (not for a run that
    /// let go of its lease: it is not written again soon).
    fn remember(&self, flow_id: &str, checkpoint: &Checkpoint, written: Written) {
        if checkpoint.lease != LeaseUpdate::Release {
            let mut remembered = self.remembered();
            if remembered.len() >= WRITTEN_RUNS {
                remembered.clear();
            }
            remembered.insert(flow_id.to_owned(), written);
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock is held unwinds through the open transaction's drop, which rolls
        // it back: the connection is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The version in `schema_version`, `None` when the table does not exist (a new database).
/// Names as `` `a`, `b` ``, for a message.
fn quoted(names: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    quoted.join(", ")
}

/// The tables by which a database is known as a taskflow store: every schema version has them,
/// including the versions of a newer taskflow, which is refused by its version, not taken for
/// someone else's database.
const OUR_TABLES: [&str; 2] = ["schema_version", "flows"];

/// The schema version of our store in `conn`; `None` for a database with no tables at all (a new
/// or empty file, where `open` creates the store); [`StoreError::NotAStore`], naming what it has,
/// for a database with tables that are not ours — a `schema_version` table of someone else's
/// among them is not taken for ours unless the store's other tables are there too.
fn schema_version(conn: &Connection, path: &Path) -> Result<Option<u32>, StoreError> {
    let err = sql_error(path);
    // Read as values: a `type` or `name` that is not text is a damaged schema table, which must
    // not pass for a missing table (that would make a damaged store someone else's).
    let entries: Vec<(rusqlite::types::Value, rusqlite::types::Value)> = conn
        .prepare("SELECT type, name FROM sqlite_master ORDER BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(read_error(path, "schema table sqlite_master"))?;
    let mut tables = Vec::new();
    for (kind, name) in entries {
        use rusqlite::types::Value::Text;
        let (Text(kind), Text(name)) = (&kind, &name) else {
            return Err(StoreError::Corrupt {
                what: format!("schema table sqlite_master of `{}`", path.display()),
                detail: format!("an entry whose type {kind:?} or name {name:?} is not text"),
            });
        };
        if kind == "table" && !name.starts_with("sqlite_") {
            tables.push(name.clone());
        }
    }
    if tables.is_empty() {
        return Ok(None);
    }
    let missing: Vec<&str> = OUR_TABLES
        .into_iter()
        .filter(|t| !tables.iter().any(|have| have == t))
        .collect();
    if !missing.is_empty() {
        let found = if missing.contains(&"schema_version") {
            format!(
                "it has no `schema_version` table; its tables: {}",
                quoted(&tables)
            )
        } else {
            format!(
                "it has a `schema_version` table but not taskflow's {}; its tables: {}",
                quoted(&missing),
                quoted(&tables)
            )
        };
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            found,
        });
    }
    let corrupt = |detail: String| StoreError::Corrupt {
        what: format!("table schema_version of `{}`", path.display()),
        detail,
    };
    // Both tables are there, so a query that does not prepare names a column that is not: a
    // damaged schema.
    let mut stmt = conn
        .prepare("SELECT version FROM schema_version")
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => err(e),
            _ => corrupt(e.to_string()),
        })?;
    let versions: Vec<rusqlite::types::Value> = stmt
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(read_error(path, "table schema_version"))?;
    match &versions[..] {
        [rusqlite::types::Value::Integer(v)] => u32::try_from(*v)
            .map(Some)
            .map_err(|_| corrupt(format!("version {v} is not a version number"))),
        [other] => Err(corrupt(format!("version {other:?} is not a number"))),
        rows => Err(corrupt(format!("{} rows, expected one", rows.len()))),
    }
}

/// Takes a database from schema version `from` (checked: 1 to [`SCHEMA_VERSION`]) to
/// [`SCHEMA_VERSION`], inside the caller's transaction.
fn migrate(tx: &Transaction<'_>, from: u32, path: &Path) -> Result<(), StoreError> {
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let err = sql_error(path);
    for migration in &MIGRATIONS[from as usize - 1..] {
        tx.execute_batch(migration).map_err(&err)?;
    }
    if from < SEALED {
        seal_all(tx, path)?;
    }
    tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
        .map_err(&err)?;
    Ok(())
}

/// Fills in version 5's checksums (see [`MIGRATIONS`]) for every row of a database just migrated
/// to it, in the migration's transaction. Each row is hashed as [`read_flow`], [`read_atom`] and
/// [`read_retry`] will read it. A row whose columns do not even read as their types is left
/// without a sum: loading its run fails on that column, as it did before the migration.
fn seal_all(tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let err = sql_error(path);
    let mut tallies: HashMap<String, u64> = HashMap::new();
    let mut graph_sums: HashMap<String, u64> = HashMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT flow_id, graph FROM graphs")
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            if let (Ok(flow_id), Ok(graph)) = (row.get::<_, String>(0), row.get::<_, String>(1)) {
                let sum = row_sum(&GraphRow {
                    flow_id: &flow_id,
                    graph: &graph,
                });
                graph_sums.insert(flow_id, sum);
            }
        }
    }
    // (table, query, what reads one row: its rowid, run and checksum)
    type Seal = fn(&Row<'_>) -> Result<(i64, String, u64), StoreError>;
    let children: [(&str, &str, Seal); 2] = [
        ("atoms", SEAL_ATOMS, |row| {
            let first = RowReader {
                row,
                what: "atoms row".into(),
            };
            let flow_id: String = first.get(12, "flow_id")?;
            let r = atom_reader(row, &flow_id);
            let (raw, _) = AtomRow::read(&r, &flow_id)?;
            Ok((r.get(0, "id")?, flow_id.clone(), row_sum(&raw)))
        }),
        (
            "retries",
            "SELECT scope, attempt, history, flow, failure, NULL, flow_id, rowid FROM retries",
            |row| {
                let first = RowReader {
                    row,
                    what: "retries row".into(),
                };
                let flow_id: String = first.get(6, "flow_id")?;
                let r = retry_reader(row, &flow_id);
                let (raw, _) = RetryRow::read(&r, &flow_id)?;
                Ok((r.get(7, "rowid")?, flow_id.clone(), row_sum(&raw)))
            },
        ),
    ];
    for (table, query, seal) in children {
        let mut sums = Vec::new();
        {
            let mut stmt = tx.prepare(query).map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                if let Ok((rowid, flow_id, sum)) = seal(row) {
                    let tally = tallies.entry(flow_id).or_default();
                    *tally = tally.wrapping_add(sum);
                    sums.push((rowid, sum));
                }
            }
        }
        let mut update = tx
            .prepare(&format!("UPDATE {table} SET sum = ?2 WHERE rowid = ?1"))
            .map_err(&err)?;
        for (rowid, sum) in sums {
            update.execute(params![rowid, to_hex(sum)]).map_err(&err)?;
        }
    }
    let mut flows = Vec::new();
    {
        let mut stmt = tx
            .prepare(&SELECT_FLOW_ROW.replace(" WHERE id = ?1", ""))
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let r = flow_reader(row);
            if let (Ok(rowid), Ok(read)) = (r.get::<i64>(0, "rowid"), FlowRead::read(&r)) {
                flows.push((rowid, read.row));
            }
        }
    }
    let mut update = tx
        .prepare("UPDATE flows SET graph_sum = ?2, tally = ?3, sum = ?4 WHERE rowid = ?1")
        .map_err(&err)?;
    for (rowid, mut row) in flows {
        row.graph_sum = graph_sums.get(&row.id).copied().map(to_hex);
        row.tally = Some(to_hex(tallies.get(&row.id).copied().unwrap_or(0)));
        let sum = to_hex(row_sum(&row));
        update
            .execute(params![rowid, row.graph_sum, row.tally, sum])
            .map_err(&err)?;
    }
    Ok(())
}

/// Whether [`check_schema`] wants a table's columns to be exactly those of its version, or only
/// to include them.
#[derive(Clone, Copy, PartialEq)]
enum Exactly {
    /// `open`, which migrates the database: any difference is damage (a schema that is not its
    /// version's could not be migrated, or would be migrated wrong).
    Yes,
    /// `open_read_only`, which only reads: the columns it reads must be there, as they were
    /// made; others are left alone.
    No,
}

/// One column as `PRAGMA table_info` describes it: name, declared type, `NOT NULL`, default,
/// position in the primary key.
type Column = (String, String, bool, Option<String>, i64);

/// A database's tables (ours: not SQLite's own), by name, each with its columns in order.
type Tables = Vec<(String, Vec<Column>)>;

/// Our tables and their columns at schema version `v` (`[v - 1]`): taken from a database built
/// in memory by the very code that builds a real one ([`SCHEMA_V1`], then [`MIGRATIONS`]), once
/// per process.
fn schemas() -> &'static [Tables] {
    static SCHEMAS: OnceLock<Vec<Tables>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let conn = Connection::open_in_memory().expect("an in-memory database opens");
        conn.execute_batch(SCHEMA_V1).expect("version 1 builds");
        let mut versions = Vec::new();
        for v in 1..=SCHEMA_VERSION as usize {
            versions.push(tables(&conn).expect("the schema reads"));
            if let Some(migration) = MIGRATIONS.get(v - 1) {
                conn.execute_batch(migration).expect("the migrations run");
            }
        }
        versions
    })
}

/// Every table of `conn` (but SQLite's own) with its columns, by name; in one query.
fn tables(conn: &Connection) -> rusqlite::Result<Tables> {
    let mut stmt = conn.prepare(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
    )?;
    let mut rows = stmt.query([])?;
    let mut tables: Tables = Vec::new();
    while let Some(r) = rows.next()? {
        let table: String = r.get(0)?;
        let column = (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
        match tables.last_mut() {
            Some((name, columns)) if *name == table => columns.push(column),
            _ => tables.push((table, vec![column])),
        }
    }
    Ok(tables)
}

/// Checks that the database's tables are those of its schema `version` (see [`Exactly`]): a
/// column renamed, retyped or dropped by damage to the schema table is [`StoreError::Corrupt`]
/// at open, not an SQL error at the first read, nor a column read in the wrong sense (an
/// `INTEGER PRIMARY KEY` that no longer is one reads as `NULL`).
fn check_schema(
    conn: &Connection,
    version: u32,
    exactly: Exactly,
    path: &Path,
) -> Result<(), StoreError> {
    let Some(expected_tables) = schemas().get(version as usize - 1) else {
        return Ok(());
    };
    let corrupt = |table: &str, detail: String| StoreError::Corrupt {
        what: format!("table {table} of `{}`", path.display()),
        detail,
    };
    let found_tables = tables(conn).map_err(read_error(path, "schema table sqlite_master"))?;
    for (table, expected) in expected_tables {
        let found = found_tables
            .iter()
            .find(|(name, _)| name == table)
            .map_or(&[][..], |(_, columns)| &columns[..]);
        let fits = match exactly {
            Exactly::Yes => found == &expected[..],
            Exactly::No => expected.iter().all(|c| found.contains(c)),
        };
        if !fits {
            let names = |columns: &[Column]| {
                let described: Vec<String> = columns
                    .iter()
                    .map(|(name, kind, not_null, default, pk)| {
                        let mut c = format!("{name} {kind}");
                        if *pk > 0 {
                            c.push_str(" PRIMARY KEY");
                        }
                        if *not_null {
                            c.push_str(" NOT NULL");
                        }
                        if let Some(default) = default {
                            c.push_str(&format!(" DEFAULT {default}"));
                        }
                        c
                    })
                    .collect();
                described.join(", ")
            };
            return Err(corrupt(
                table,
                format!(
                    "its columns ({}) are not those of schema version {version} ({}): the \
                     database's schema is damaged",
                    names(found),
                    names(expected)
                ),
            ));
        }
    }
    Ok(())
}

fn check_version(found: u32, path: &Path) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        return Err(StoreError::Corrupt {
            what: format!("table schema_version of `{}`", path.display()),
            detail: format!("unknown version {found}"),
        });
    }
    Ok(())
}

/// Maps SQLite's errors; a file that is not a database, or is damaged, is `Corrupt`.
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            what: format!("SQLite database `{}`", path.display()),
            detail: source.to_string(),
        },
        _ => StoreError::Sqlite {
            path: path.to_path_buf(),
            source: SqliteError(source),
        },
    }
}

/// Maps the errors of reading `what` (`schema table sqlite_master`) in `path`: a value SQLite
/// holds but that is not what it must be (text that is not UTF-8, a number where text belongs)
/// is damage, `Corrupt`; the rest as [`sql_error`].
fn read_error<'a>(path: &'a Path, what: &'a str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |e| match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt {
            what: format!("{what} of `{}`", path.display()),
            detail: e.to_string(),
        },
        other => sql_error(path)(other),
    }
}

/// An error SQLite reported ([`StoreError::Sqlite`]): its message, and what kind of trouble it is.
/// The SQLite library's own error is its [`source`](std::error::Error::source), so the store's
/// API does not depend on the SQLite bindings' version.
///
/// ```
/// use taskflow::store::{SqliteStore, Store, StoreError, FlowRecord};
///
/// let dir = std::env::temp_dir().join(format!("taskflow-doc-{}", taskflow::store::new_flow_id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("flows.db");
/// drop(SqliteStore::open(&path).unwrap());
/// let store = SqliteStore::open_read_only(&path).unwrap();
/// let flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
/// match store.create_flow(&flow) {
///     Err(StoreError::Sqlite { source, .. }) => {
///         assert!(source.is_read_only());
///         assert!(!source.is_full() && !source.is_busy());
///     }
///     other => panic!("{other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct SqliteError(rusqlite::Error);

impl SqliteError {
    fn code(&self) -> Option<ErrorCode> {
        self.0.sqlite_error_code()
    }

    /// The disk (or the database's size limit) is full.
    pub fn is_full(&self) -> bool {
        self.code() == Some(ErrorCode::DiskFull)
    }

    /// The database or its file system cannot be written.
    pub fn is_read_only(&self) -> bool {
        self.code() == Some(ErrorCode::ReadOnly)
    }

    /// Another connection held a lock for longer than the busy timeout.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

use super::column_json as to_json;

fn to_i64<T: TryInto<i64> + Copy + std::fmt::Display>(n: T, what: &str) -> Result<i64, StoreError> {
    super::column_i64(n, what, "in SQLite's 64-bit integer")
}

/// Reads the columns of one row, reporting any that does not parse as `Corrupt` naming the row.
struct RowReader<'r, 's> {
    row: &'r Row<'s>,
    what: String,
}

impl RowReader<'_, '_> {
    fn corrupt(&self, column: &str, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what: format!("{}, column `{column}`", self.what),
            detail: detail.to_string(),
        }
    }

    /// Column `idx` as stored, of exactly its type (`String` for TEXT, `i64` for INTEGER, `f64`
    /// for REAL, `Option` where it may be NULL).
    fn get<T: rusqlite::types::FromSql>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        self.row.get(idx).map_err(|e| self.corrupt(column, e))
    }

    fn int<T: TryFrom<i64>>(&self, n: i64, column: &str) -> Result<T, StoreError> {
        T::try_from(n).map_err(|_| self.corrupt(column, format!("{n} is out of range")))
    }

    fn opt_int<T: TryFrom<i64>>(
        &self,
        n: Option<i64>,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        n.map(|n| self.int(n, column)).transpose()
    }

    fn json<T: DeserializeOwned>(&self, text: &str, column: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.corrupt(column, e))
    }

    fn opt_json<T: DeserializeOwned>(
        &self,
        text: Option<&str>,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        text.map(|text| self.json(text, column)).transpose()
    }

    /// A state column: the state's upper-case name.
    fn state<T: DeserializeOwned>(&self, name: &str, column: &str) -> Result<T, StoreError> {
        serde_json::from_value(Value::String(name.to_owned())).map_err(|e| self.corrupt(column, e))
    }

    /// Checks the row's checksum `stored` (column `sum`) against `computed`; a row of a sealed
    /// database without one is corrupt.
    fn verify(&self, stored: Option<&str>, computed: u64) -> Result<(), StoreError> {
        match stored {
            Some(stored) => checksum::verify(stored, computed, || self.what.clone()),
            None => Err(checksum::missing(self.what.clone())),
        }
    }
}

/// A `flows` row as stored: the columns its `sum` covers (all but `rowid` and `sum`), in order.
#[derive(Debug, Clone, Serialize)]
struct FlowRow {
    id: String,
    logbook: String,
    flow_name: String,
    fingerprint: String,
    state: String,
    inputs: String,
    created_at: i64,
    updated_at: i64,
    epoch: i64,
    lease: Option<String>,
    /// The checksum of the run's `graphs` row; `None` for a run without a graph (and in a
    /// database older than version 5).
    graph_sum: Option<String>,
    /// `None` only in a database older than version 5.
    tally: Option<String>,
}

impl FlowRow {
    /// The row that records `flow`, whose graph's checksum is `graph_sum` and whose atoms' and
    /// retries' add up to `tally`.
    fn of(flow: &FlowRecord, graph_sum: Option<u64>, tally: u64) -> Result<Self, StoreError> {
        Ok(FlowRow {
            id: flow.id.clone(),
            logbook: flow.logbook.clone(),
            flow_name: flow.flow_name.clone(),
            fingerprint: flow.fingerprint.clone(),
            state: flow.state.to_string(),
            inputs: to_json(&flow.inputs, "flow inputs")?,
            created_at: to_i64(flow.created_at, "created_at")?,
            updated_at: to_i64(flow.updated_at, "updated_at")?,
            epoch: to_i64(flow.epoch, "epoch")?,
            lease: lease_json(flow.lease.as_ref())?,
            graph_sum: graph_sum.map(to_hex),
            tally: Some(to_hex(tally)),
        })
    }
}

use super::lease_column as lease_json;

/// A `graphs` row as its checksum (`flows.graph_sum`) covers it.
#[derive(Serialize)]
struct GraphRow<'a> {
    flow_id: &'a str,
    graph: &'a str,
}

/// A row of [`SELECT_FLOWS`] (or [`SELECT_FLOW_ROW`]): `rowid`, the [`FlowRow`] (columns 1–8,
/// 10–12, 14), `graphs.graph` (9), `flows.sum` (13).
struct FlowRead {
    row: FlowRow,
    graph: Option<String>,
    sum: Option<String>,
}

fn flow_reader<'r, 's>(row: &'r Row<'s>) -> RowReader<'r, 's> {
    let rowid: i64 = row.get(0).unwrap_or_default();
    let id = row.get::<_, String>(1).ok();
    RowReader {
        row,
        what: match &id {
            Some(id) => format!("flows row id={id:?}"),
            None => format!("flows row rowid={rowid}"),
        },
    }
}

impl FlowRead {
    fn read(r: &RowReader<'_, '_>) -> Result<Self, StoreError> {
        Ok(FlowRead {
            row: FlowRow {
                id: r.get(1, "id")?,
                logbook: r.get(2, "logbook")?,
                flow_name: r.get(3, "flow_name")?,
                fingerprint: r.get(4, "fingerprint")?,
                state: r.get(5, "state")?,
                inputs: r.get(6, "inputs")?,
                created_at: r.get(7, "created_at")?,
                updated_at: r.get(8, "updated_at")?,
                epoch: r.get(10, "epoch")?,
                lease: r.get(11, "lease")?,
                graph_sum: r.get(14, "graph_sum")?,
                tally: r.get(12, "tally")?,
            },
            graph: r.get(9, "graphs.graph")?,
            sum: r.get(13, "sum")?,
        })
    }

    /// The record, every column parsed.
    fn parse(&self, r: &RowReader<'_, '_>) -> Result<FlowRecord, StoreError> {
        let row = &self.row;
        Ok(FlowRecord {
            id: row.id.clone(),
            logbook: row.logbook.clone(),
            flow_name: row.flow_name.clone(),
            fingerprint: row.fingerprint.clone(),
            state: r.state(&row.state, "state")?,
            inputs: r.json(&row.inputs, "inputs")?,
            created_at: r.int(row.created_at, "created_at")?,
            updated_at: r.int(row.updated_at, "updated_at")?,
            graph: r
                .opt_json(self.graph.as_deref(), "graphs.graph")?
                .unwrap_or(Value::Null),
            epoch: r.int(row.epoch, "epoch")?,
            lease: r.opt_json(row.lease.as_deref(), "lease")?,
        })
    }

    /// Checks the `flows` row's checksum (a sealed database's), which covers its tally.
    fn verify(&self, r: &RowReader<'_, '_>) -> Result<(), StoreError> {
        if self.row.tally.is_none() {
            return Err(checksum::missing(format!("{}, column `tally`", r.what)));
        }
        r.verify(self.sum.as_deref(), row_sum(&self.row))
    }

    /// Checks the `graphs` row (a sealed database's) against the checksum its `flows` row
    /// records for it: also a graph row that went missing, or one the run does not have.
    fn verify_graph(&self) -> Result<(), StoreError> {
        let what = || format!("graphs row flow_id={:?}", self.row.id);
        match (&self.graph, &self.row.graph_sum) {
            (None, None) => Ok(()),
            (Some(graph), Some(stored)) => {
                let sum = row_sum(&GraphRow {
                    flow_id: &self.row.id,
                    graph,
                });
                checksum::verify(stored, sum, what)
            }
            (None, Some(_)) => Err(StoreError::Corrupt {
                what: what(),
                detail: "the run's flows row records a graph, and there is none".into(),
            }),
            (Some(_), None) => Err(StoreError::Corrupt {
                what: what(),
                detail: "the run's flows row records no graph, and there is one".into(),
            }),
        }
    }
}

/// A row of [`SELECT_FLOWS`]: the flow, parsed, then (in a sealed database) its checksums
/// verified (its own, and its graph's); with the row as read.
fn read_flow(row: &Row<'_>, sealed: bool) -> Result<(FlowRecord, FlowRead), StoreError> {
    let r = flow_reader(row);
    let read = FlowRead::read(&r)?;
    let flow = read.parse(&r)?;
    if sealed {
        read.verify(&r)?;
        read.verify_graph()?;
    }
    Ok((flow, read))
}

/// An `atoms` row as its `sum` covers it: the run it was read for (so that a row of another run,
/// found through a damaged index, fails its sum) and its columns as stored, `id` and `sum` aside.
#[derive(Serialize)]
struct AtomRow<'a> {
    flow_id: &'a str,
    name: String,
    state: String,
    attempt: i64,
    result: Option<String>,
    failure: Option<String>,
    revert_failure: Option<String>,
    progress: f64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    runs: i64,
}

fn atom_reader<'r, 's>(row: &'r Row<'s>, flow_id: &str) -> RowReader<'r, 's> {
    let rowid: i64 = row.get(0).unwrap_or_default();
    let name = row.get::<_, String>(1).ok();
    RowReader {
        row,
        what: match &name {
            Some(name) => format!("atoms row flow_id={flow_id:?} name={name:?}"),
            None => format!("atoms row flow_id={flow_id:?} id={rowid}"),
        },
    }
}

impl<'a> AtomRow<'a> {
    /// The row that records `atom` in run `flow_id`.
    fn of(flow_id: &'a str, atom: &AtomRecord) -> Result<Self, StoreError> {
        let json = |v: &Option<_>, what| v.as_ref().map(|v| to_json(v, what)).transpose();
        Ok(AtomRow {
            flow_id,
            name: atom.name.clone(),
            state: atom.state.to_string(),
            attempt: i64::from(atom.attempt),
            result: atom
                .result
                .as_ref()
                .map(|v| to_json(v, "result"))
                .transpose()?,
            failure: json(&atom.failure, "failure")?,
            revert_failure: json(&atom.revert_failure, "revert failure")?,
            progress: f64::from(atom.progress),
            started_at: atom
                .started_at
                .map(|t| to_i64(t, "started_at"))
                .transpose()?,
            finished_at: atom
                .finished_at
                .map(|t| to_i64(t, "finished_at"))
                .transpose()?,
            runs: i64::from(atom.runs),
        })
    }

    /// A row of [`ATOM_COLUMNS`] as stored, and its `sum`.
    fn read(r: &RowReader<'_, '_>, flow_id: &'a str) -> Result<(Self, Option<String>), StoreError> {
        let row = AtomRow {
            flow_id,
            name: r.get(1, "name")?,
            state: r.get(2, "state")?,
            attempt: r.get(3, "attempt")?,
            result: r.get(4, "result")?,
            failure: r.get(5, "failure")?,
            revert_failure: r.get(6, "revert_failure")?,
            progress: r.get(7, "progress")?,
            started_at: r.get(8, "started_at")?,
            finished_at: r.get(9, "finished_at")?,
            runs: r.get(10, "runs")?,
        };
        Ok((row, r.get(11, "sum")?))
    }
}

/// A row of [`ATOM_COLUMNS`]: the step, parsed, then (in a sealed database) its checksum
/// verified; with that checksum, for the run's tally.
fn read_atom(row: &Row<'_>, flow_id: &str, sealed: bool) -> Result<(AtomRecord, u64), StoreError> {
    let r = atom_reader(row, flow_id);
    let (raw, stored) = AtomRow::read(&r, flow_id)?;
    let atom = AtomRecord {
        name: raw.name.clone(),
        state: r.state(&raw.state, "state")?,
        attempt: r.int(raw.attempt, "attempt")?,
        result: r.opt_json(raw.result.as_deref(), "result")?,
        failure: r.opt_json(raw.failure.as_deref(), "failure")?,
        revert_failure: r.opt_json(raw.revert_failure.as_deref(), "revert_failure")?,
        progress: raw.progress as f32,
        started_at: r.opt_int(raw.started_at, "started_at")?,
        finished_at: r.opt_int(raw.finished_at, "finished_at")?,
        runs: r.int(raw.runs, "runs")?,
    };
    let sum = row_sum(&raw);
    if sealed {
        r.verify(stored.as_deref(), sum)?;
    }
    Ok((atom, sum))
}

/// A `retries` row as its `sum` covers it: the run it was read for and its columns as stored.
#[derive(Serialize)]
struct RetryRow<'a> {
    flow_id: &'a str,
    flow: String,
    scope: i64,
    attempt: i64,
    history: String,
    failure: Option<String>,
}

fn retry_reader<'r, 's>(row: &'r Row<'s>, flow_id: &str) -> RowReader<'r, 's> {
    let scope = row.get::<_, i64>(0).ok();
    let flow = row.get::<_, String>(3).ok();
    let sub = match flow.as_deref() {
        None | Some("") => String::new(),
        Some(flow) => format!(" flow={flow:?}"),
    };
    RowReader {
        row,
        what: format!("retries row flow_id={flow_id:?}{sub} scope={scope:?}"),
    }
}

impl<'a> RetryRow<'a> {
    /// The row that records `retry` in run `flow_id`.
    fn of(flow_id: &'a str, retry: &RetryRecord) -> Result<Self, StoreError> {
        Ok(RetryRow {
            flow_id,
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

    /// A row of [`SqliteStore::retry_columns`] as stored, and its `sum`.
    fn read(r: &RowReader<'_, '_>, flow_id: &'a str) -> Result<(Self, Option<String>), StoreError> {
        let row = RetryRow {
            flow_id,
            scope: r.get(0, "scope")?,
            attempt: r.get(1, "attempt")?,
            history: r.get(2, "history")?,
            flow: r.get(3, "flow")?,
            failure: r.get(4, "failure")?,
        };
        Ok((row, r.get(5, "sum")?))
    }
}

/// A row of [`SqliteStore::retry_columns`]: the retry record, parsed, then (in a sealed
/// database) its checksum verified; with that checksum, for the run's tally.
fn read_retry(
    row: &Row<'_>,
    flow_id: &str,
    sealed: bool,
) -> Result<(RetryRecord, u64), StoreError> {
    let r = retry_reader(row, flow_id);
    let (raw, stored) = RetryRow::read(&r, flow_id)?;
    let retry = RetryRecord {
        scope: r.int(raw.scope, "scope")?,
        flow: raw.flow.clone(),
        attempt: r.int(raw.attempt, "attempt")?,
        history: r.json(&raw.history, "history")?,
        failure: r.opt_json(raw.failure.as_deref(), "failure")?,
    };
    let sum = row_sum(&raw);
    if sealed {
        r.verify(stored.as_deref(), sum)?;
    }
    Ok((retry, sum))
}

/// The old checksum of the row an upsert replaces (0 for none: the row is new), from the query
/// `stmt` for it; a sealed row always has one.
fn replaced_sum(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    what: impl Fn() -> String,
    err: &impl Fn(rusqlite::Error) -> StoreError,
) -> Result<u64, StoreError> {
    match stmt
        .query_row(params, |r| r.get::<_, Option<String>>(0))
        .optional()
        .map_err(err)?
    {
        None => Ok(0),
        Some(None) => Err(checksum::missing(what())),
        Some(Some(text)) => checksum::from_hex(&text).ok_or_else(|| StoreError::Corrupt {
            what: what(),
            detail: format!("its checksum {text:?} is not 16 lower-case hex digits"),
        }),
    }
}

/// Names run `flow_id` in a `Corrupt` error that does not (SQLite's own "database disk image is
/// malformed", met while reading the run), so every corruption met by a load names its run.
fn naming_run(flow_id: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Corrupt { what, detail } if !what.contains(flow_id) => StoreError::Corrupt {
            what: format!("{what} (reading flow `{flow_id}`)"),
            detail,
        },
        other => other,
    }
}

impl Store for SqliteStore {
    fn create_flow(&self, flow: &FlowRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error(&self.path))?;
        self.insert_run(&tx, flow)?;
        tx.commit().map_err(sql_error(&self.path))
    }

    fn create_with(&self, flow: &FlowRecord, first: &Checkpoint) -> Result<(), StoreError> {
        validate_checkpoint(first)?;
        let mut conn = self.conn();
        // One transaction, one commit: the run and its first checkpoint, or neither.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error(&self.path))?;
        self.insert_run(&tx, flow)?;
        let written = self.checkpoint_in(&tx, &flow.id, first)?;
        tx.commit().map_err(sql_error(&self.path))?;
        self.remember(&flow.id, first, written);
        Ok(())
    }

    fn checkpoint(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        validate_checkpoint(checkpoint)?;
        let mut conn = self.conn();
        // Any early return drops `tx`, which rolls back everything written so far; and what this
        // handle remembers of the run is taken out here and put back only once the commit is done.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error(&self.path))?;
        let written = self.checkpoint_in(&tx, flow_id, checkpoint)?;
        tx.commit().map_err(sql_error(&self.path))?;
        self.remember(flow_id, checkpoint, written);
        Ok(())
    }

    fn load_flow(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError> {
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        // One read transaction: the flow, its atoms and its retries come from one snapshot.
        let tx = conn.transaction().map_err(&err)?;
        let loaded = self.load_in(&tx, flow_id).map_err(naming_run(flow_id))?;
        tx.commit().map_err(&err).map_err(naming_run(flow_id))?;
        Ok(loaded.map(|(stored, _)| stored))
    }

    /// Every run, each `flows` row (and `graphs` row) verified against its checksum; the set of
    /// a run's atoms and retries (its tally) is verified by loading it. The rows listed are
    /// counted against both the `flows` table and its index, so a run that damage hid from one
    /// of them is `Corrupt`, not left out of the list.
    fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        // One read transaction: the rows and their counts come from one snapshot.
        let tx = conn.transaction().map_err(&err)?;
        let mut flows = Vec::new();
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "{} ORDER BY f.created_at, f.id",
                    self.select_flows()
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                flows.push(read_flow(row, self.sealed())?.0);
            }
        }
        let (in_table, in_index): (i64, i64) = tx
            .query_row(
                "SELECT (SELECT count(*) FROM flows NOT INDEXED), \
                 (SELECT count(*) FROM flows INDEXED BY sqlite_autoindex_flows_1)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&err)?;
        let read = i64::try_from(flows.len()).unwrap_or(i64::MAX);
        if in_table != read || in_index != read {
            return Err(StoreError::Corrupt {
                what: format!("table flows of `{}`", self.path.display()),
                detail: format!(
                    "it holds {in_table} runs and its index {in_index}, of which {read} were \
                     read: the table or its index is damaged"
                ),
            });
        }
        tx.commit().map_err(&err)?;
        Ok(flows)
    }

    fn delete_flow(&self, flow_id: &str) -> Result<(), StoreError> {
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute("DELETE FROM atoms WHERE flow_id = ?1", [flow_id])
            .map_err(&err)?;
        tx.execute("DELETE FROM retries WHERE flow_id = ?1", [flow_id])
            .map_err(&err)?;
        tx.execute("DELETE FROM graphs WHERE flow_id = ?1", [flow_id])
            .map_err(&err)?;
        let deleted = tx
            .execute("DELETE FROM flows WHERE id = ?1", [flow_id])
            .map_err(&err)?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            });
        }
        tx.commit().map_err(&err)
    }

    fn acquire(&self, flow_id: &str, owner: &Owner, until: u64) -> Result<StoredFlow, StoreError> {
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        // The write lock first: two processes taking the run at once take turns, and the second
        // sees the first's lease.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let (mut stored, mut row) = self
            .load_in(&tx, flow_id)
            .map_err(naming_run(flow_id))?
            .ok_or_else(|| StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            })?;
        let now = unix_millis(SystemTime::now());
        if !lease::take(&mut stored.flow, owner, until, now)? {
            return Ok(stored);
        }
        stored.flow.updated_at = now;
        row.epoch = to_i64(stored.flow.epoch, "epoch")?;
        row.lease = lease_json(stored.flow.lease.as_ref())?;
        row.updated_at = to_i64(now, "the time")?;
        tx.execute(
            "UPDATE flows SET epoch = ?2, lease = ?3, updated_at = ?4, sum = ?5 WHERE id = ?1",
            params![
                flow_id,
                row.epoch,
                row.lease,
                row.updated_at,
                to_hex(row_sum(&row)),
            ],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loading a run's atoms is a lookup in the `UNIQUE (flow_id, name)` index, not a scan.
    #[test]
    fn atoms_are_found_by_index() {
        let path = std::env::temp_dir().join(format!(
            "taskflow-sqlite-plan-{}-{}.db",
            std::process::id(),
            super::super::new_flow_id()
        ));
        let store = SqliteStore::open(&path).unwrap();
        let plan: Vec<String> = {
            let conn = store.conn();
            let mut stmt = conn
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT {ATOM_COLUMNS} FROM atoms WHERE flow_id = ?1 \
                     ORDER BY id"
                ))
                .unwrap();
            let rows = stmt.query_map(["x"], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        drop(store);
        let _ = std::fs::remove_file(&path);
        assert!(
            plan.iter().any(|step| step.contains("USING INDEX")),
            "{plan:?}"
        );
    }
}
