//! A store in an SQLite database (the bundled SQLite, through rusqlite).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, ErrorCode, Row, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{
    lease, unix_millis, validate_checkpoint, validate_flow_id, AtomRecord, Checkpoint, FlowRecord,
    Lease, LeaseUpdate, Owner, RetryRecord, Store, StoreError, StoredFlow,
};

/// The schema version this library creates and the newest it opens.
const SCHEMA_VERSION: u32 = 4;

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
];

const _: () = assert!(MIGRATIONS.len() + 1 == SCHEMA_VERSION as usize);

/// What [`read_flow`] reads, in a database of version 4 or later (`WHERE`/`ORDER BY` follow, on
/// `f`).
const SELECT_FLOWS: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, g.graph, f.epoch, f.lease \
     FROM flows f LEFT JOIN graphs g ON g.flow_id = f.id";
/// The same in a database of version 2 or 3 (only opened read-only: `open` migrates), whose runs
/// were never held.
const SELECT_FLOWS_V2: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, g.graph, 0, NULL \
     FROM flows f LEFT JOIN graphs g ON g.flow_id = f.id";
/// The same in a version-1 database, which has no `graphs` table: its flows have no recorded
/// graph.
const SELECT_FLOWS_V1: &str = "SELECT f.rowid, f.id, f.logbook, f.flow_name, f.fingerprint, \
     f.state, f.inputs, f.created_at, f.updated_at, NULL, 0, NULL FROM flows f";
const ATOM_COLUMNS: &str = "id, name, state, attempt, result, failure, revert_failure, progress, \
                            started_at, finished_at, runs";
/// [`ATOM_COLUMNS`] in a database older than version 4, which did not count runs.
const ATOM_COLUMNS_V1: &str = "id, name, state, attempt, result, failure, revert_failure, \
                               progress, started_at, finished_at, 0";

/// A [`Store`] in one SQLite database file: the embedded default.
///
/// The database uses write-ahead logging (`journal_mode=WAL`) and `synchronous=FULL`, so every
/// committed checkpoint is on disk; each checkpoint is one transaction, so a failure half-way
/// (a full or read-only disk, a crash) leaves the run as the previous checkpoint left it.
///
/// The schema is created on first use, with its version in table `schema_version` (version 3:
/// version 1 plus table `graphs`, the flows' structures, and `retries.flow` (version 2), then
/// `retries.failure`, a retry controller's own failure). [`SqliteStore::open`] migrates a
/// database of an older version in one transaction, losing nothing; [`SqliteStore::open_read_only`]
/// reads it as it is (the flows of a version-1 database have no graph, and the retry records of
/// versions 1 and 2 no controller failure). A database whose version is
/// newer than this library's is refused with [`StoreError::SchemaTooNew`] before anything is
/// written to it; a file that is not an SQLite database is
/// [`StoreError::Corrupt`], and so is a row whose JSON or state does not parse (naming the table,
/// the row and the column).
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
}

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

    /// The columns [`read_retry`] reads, for this database's schema version.
    fn retry_columns(&self) -> &'static str {
        match self.version {
            3.. => "scope, attempt, history, flow, failure",
            2 => "scope, attempt, history, flow, NULL",
            _ => "scope, attempt, history, '', NULL",
        }
    }

    /// The query of what [`read_flow`] reads, for this database's schema version.
    fn select_flows(&self) -> &'static str {
        match self.version {
            4.. => SELECT_FLOWS,
            2 | 3 => SELECT_FLOWS_V2,
            _ => SELECT_FLOWS_V1,
        }
    }

    /// The columns [`read_atom`] reads, for this database's schema version.
    fn atom_columns(&self) -> &'static str {
        if self.version >= 4 {
            ATOM_COLUMNS
        } else {
            ATOM_COLUMNS_V1
        }
    }

    /// The epoch and lease of run `flow_id` as `tx` sees them; `None` for an unknown run.
    fn lease_in(
        &self,
        tx: &Transaction<'_>,
        flow_id: &str,
    ) -> Result<Option<(u64, Option<Lease>)>, StoreError> {
        let err = sql_error(&self.path);
        let mut stmt = tx
            .prepare_cached("SELECT rowid, id, epoch, lease FROM flows WHERE id = ?1")
            .map_err(&err)?;
        let mut rows = stmt.query([flow_id]).map_err(&err)?;
        let Some(row) = rows.next().map_err(&err)? else {
            return Ok(None);
        };
        let r = RowReader {
            row,
            what: format!("flows row id={flow_id:?}"),
        };
        Ok(Some((r.int(2, "epoch")?, r.opt_json(3, "lease")?)))
    }

    /// The run `flow_id` as `tx` sees it.
    fn load_in(
        &self,
        tx: &Transaction<'_>,
        flow_id: &str,
    ) -> Result<Option<StoredFlow>, StoreError> {
        let err = sql_error(&self.path);
        let flow = {
            let mut stmt = tx
                .prepare_cached(&format!("{} WHERE f.id = ?1", self.select_flows()))
                .map_err(&err)?;
            let mut rows = stmt.query([flow_id]).map_err(&err)?;
            match rows.next().map_err(&err)? {
                Some(row) => read_flow(row)?,
                None => return Ok(None),
            }
        };
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
                atoms.push(read_atom(row, flow_id)?);
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
                retries.push(read_retry(row, flow_id)?);
            }
        }
        Ok(Some(StoredFlow {
            flow,
            atoms,
            retries,
        }))
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
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(&err)?;
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
    let mut stmt = conn
        .prepare("SELECT version FROM schema_version")
        .map_err(&err)?;
    let versions: Vec<rusqlite::types::Value> = stmt
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(&err)?;
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
    tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])
        .map_err(&err)?;
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

fn invalid(what: impl Into<String>, detail: impl ToString) -> StoreError {
    StoreError::Invalid {
        what: what.into(),
        detail: detail.to_string(),
    }
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| invalid(what, e))
}

fn to_i64<T: TryInto<i64> + Copy + std::fmt::Display>(n: T, what: &str) -> Result<i64, StoreError> {
    n.try_into()
        .map_err(|_| invalid(what, format!("{n} does not fit in SQLite's 64-bit integer")))
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

    fn get<T: rusqlite::types::FromSql>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        self.row.get(idx).map_err(|e| self.corrupt(column, e))
    }

    fn int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        let n: i64 = self.get(idx, column)?;
        T::try_from(n).map_err(|_| self.corrupt(column, format!("{n} is out of range")))
    }

    fn opt_int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<Option<T>, StoreError> {
        match self.get::<Option<i64>>(idx, column)? {
            None => Ok(None),
            Some(n) => T::try_from(n)
                .map(Some)
                .map_err(|_| self.corrupt(column, format!("{n} is out of range"))),
        }
    }

    fn json<T: DeserializeOwned>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(idx, column)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(column, e))
    }

    fn opt_json<T: DeserializeOwned>(
        &self,
        idx: usize,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get::<Option<String>>(idx, column)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| self.corrupt(column, e)),
        }
    }

    /// A state column: the state's upper-case name.
    fn state<T: DeserializeOwned>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        let name: String = self.get(idx, column)?;
        serde_json::from_value(Value::String(name)).map_err(|e| self.corrupt(column, e))
    }
}

fn read_flow(row: &Row<'_>) -> Result<FlowRecord, StoreError> {
    let rowid: i64 = row.get(0).unwrap_or_default();
    let id = row.get::<_, String>(1).ok();
    let r = RowReader {
        row,
        what: match &id {
            Some(id) => format!("flows row id={id:?}"),
            None => format!("flows row rowid={rowid}"),
        },
    };
    Ok(FlowRecord {
        id: r.get(1, "id")?,
        logbook: r.get(2, "logbook")?,
        flow_name: r.get(3, "flow_name")?,
        fingerprint: r.get(4, "fingerprint")?,
        state: r.state(5, "state")?,
        inputs: r.json(6, "inputs")?,
        created_at: r.int(7, "created_at")?,
        updated_at: r.int(8, "updated_at")?,
        graph: r.opt_json(9, "graphs.graph")?.unwrap_or(Value::Null),
        epoch: r.int(10, "epoch")?,
        lease: r.opt_json(11, "lease")?,
    })
}

fn read_atom(row: &Row<'_>, flow_id: &str) -> Result<AtomRecord, StoreError> {
    let rowid: i64 = row.get(0).unwrap_or_default();
    let name = row.get::<_, String>(1).ok();
    let r = RowReader {
        row,
        what: match &name {
            Some(name) => format!("atoms row flow_id={flow_id:?} name={name:?}"),
            None => format!("atoms row id={rowid}"),
        },
    };
    Ok(AtomRecord {
        name: r.get(1, "name")?,
        state: r.state(2, "state")?,
        attempt: r.int(3, "attempt")?,
        result: r.opt_json(4, "result")?,
        failure: r.opt_json(5, "failure")?,
        revert_failure: r.opt_json(6, "revert_failure")?,
        progress: r.get::<f64>(7, "progress")? as f32,
        started_at: r.opt_int(8, "started_at")?,
        finished_at: r.opt_int(9, "finished_at")?,
        runs: r.int(10, "runs")?,
    })
}

fn read_retry(row: &Row<'_>, flow_id: &str) -> Result<RetryRecord, StoreError> {
    let scope = row.get::<_, i64>(0).ok();
    let r = RowReader {
        row,
        what: format!("retries row flow_id={flow_id:?} scope={scope:?}"),
    };
    Ok(RetryRecord {
        scope: r.int(0, "scope")?,
        flow: r.get(3, "flow")?,
        attempt: r.int(1, "attempt")?,
        history: r.json(2, "history")?,
        failure: r.opt_json(4, "failure")?,
    })
}

impl Store for SqliteStore {
    fn create_flow(&self, flow: &FlowRecord) -> Result<(), StoreError> {
        validate_flow_id(&flow.id)?;
        let inputs = to_json(&flow.inputs, "flow inputs")?;
        let graph = match &flow.graph {
            Value::Null => None,
            graph => Some(to_json(graph, "flow graph")?),
        };
        let created_at = to_i64(flow.created_at, "created_at")?;
        let updated_at = to_i64(flow.updated_at, "updated_at")?;
        let epoch = to_i64(flow.epoch, "epoch")?;
        let lease = flow
            .lease
            .as_ref()
            .map(|l| to_json(l, "lease"))
            .transpose()?;
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let inserted = tx.execute(
            "INSERT INTO flows (id, logbook, flow_name, fingerprint, state, inputs, created_at, \
             updated_at, epoch, lease) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                flow.id,
                flow.logbook,
                flow.flow_name,
                flow.fingerprint,
                flow.state.to_string(),
                inputs,
                created_at,
                updated_at,
                epoch,
                lease,
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
        tx.commit().map_err(&err)
    }

    fn checkpoint(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        validate_checkpoint(checkpoint)?;
        let err = sql_error(&self.path);
        let now = to_i64(unix_millis(SystemTime::now()), "the time")?;
        let mut conn = self.conn();
        // Any early return drops `tx`, which rolls back everything written so far.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // The fence is checked in the transaction that writes: no other writer comes between.
        let held = self
            .lease_in(&tx, flow_id)?
            .ok_or_else(|| StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            })?;
        let (epoch, mut lease) = held;
        lease::check(
            flow_id,
            epoch,
            lease.as_ref(),
            checkpoint.fence.as_ref(),
            unix_millis(SystemTime::now()),
        )?;
        let new_lease = match checkpoint.lease {
            LeaseUpdate::Keep => None,
            change => {
                lease::update(&mut lease, change);
                Some(lease.as_ref().map(|l| to_json(l, "lease")).transpose()?)
            }
        };
        tx.prepare_cached(
            "UPDATE flows SET state = coalesce(?2, state), updated_at = ?3, \
             lease = CASE WHEN ?4 THEN ?5 ELSE lease END WHERE id = ?1",
        )
        .and_then(|mut update| {
            update.execute(params![
                flow_id,
                checkpoint.flow_state.map(|s| s.to_string()),
                now,
                new_lease.is_some(),
                new_lease.flatten(),
            ])
        })
        .map_err(&err)?;
        {
            let mut upsert_atom = tx
                .prepare_cached(
                    "INSERT INTO atoms (flow_id, name, state, attempt, result, failure, \
                     revert_failure, progress, started_at, finished_at, runs) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                     ON CONFLICT (flow_id, name) DO UPDATE SET state = excluded.state, \
                     attempt = excluded.attempt, result = excluded.result, \
                     failure = excluded.failure, revert_failure = excluded.revert_failure, \
                     progress = excluded.progress, started_at = excluded.started_at, \
                     finished_at = excluded.finished_at, runs = excluded.runs",
                )
                .map_err(&err)?;
            for atom in &checkpoint.atoms {
                let json = |v: &Option<_>, what| v.as_ref().map(|v| to_json(v, what)).transpose();
                upsert_atom
                    .execute(params![
                        flow_id,
                        atom.name,
                        atom.state.to_string(),
                        atom.attempt,
                        atom.result
                            .as_ref()
                            .map(|v| to_json(v, "result"))
                            .transpose()?,
                        json(&atom.failure, "failure")?,
                        json(&atom.revert_failure, "revert failure")?,
                        f64::from(atom.progress),
                        atom.started_at
                            .map(|t| to_i64(t, "started_at"))
                            .transpose()?,
                        atom.finished_at
                            .map(|t| to_i64(t, "finished_at"))
                            .transpose()?,
                        atom.runs,
                    ])
                    .map_err(&err)?;
            }
            let mut upsert_retry = tx
                .prepare_cached(
                    "INSERT INTO retries (flow_id, flow, scope, attempt, history, failure) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (flow_id, flow, scope) DO UPDATE SET \
                     attempt = excluded.attempt, history = excluded.history, \
                     failure = excluded.failure",
                )
                .map_err(&err)?;
            for retry in &checkpoint.retries {
                upsert_retry
                    .execute(params![
                        flow_id,
                        retry.flow,
                        to_i64(retry.scope, "retry scope")?,
                        retry.attempt,
                        to_json(&retry.history, "retry history")?,
                        retry
                            .failure
                            .as_ref()
                            .map(|f| to_json(f, "retry failure"))
                            .transpose()?,
                    ])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    fn load_flow(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError> {
        let err = sql_error(&self.path);
        let mut conn = self.conn();
        // One read transaction: the flow, its atoms and its retries come from one snapshot.
        let tx = conn.transaction().map_err(&err)?;
        let stored = self.load_in(&tx, flow_id)?;
        tx.commit().map_err(&err)?;
        Ok(stored)
    }

    fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let err = sql_error(&self.path);
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "{} ORDER BY f.created_at, f.id",
                self.select_flows()
            ))
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut flows = Vec::new();
        while let Some(row) = rows.next().map_err(&err)? {
            flows.push(read_flow(row)?);
        }
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
        let mut stored = self
            .load_in(&tx, flow_id)?
            .ok_or_else(|| StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            })?;
        let now = unix_millis(SystemTime::now());
        lease::take(&mut stored.flow, owner, until, now)?;
        stored.flow.updated_at = now;
        tx.execute(
            "UPDATE flows SET epoch = ?2, lease = ?3, updated_at = ?4 WHERE id = ?1",
            params![
                flow_id,
                to_i64(stored.flow.epoch, "epoch")?,
                stored
                    .flow
                    .lease
                    .as_ref()
                    .map(|l| to_json(l, "lease"))
                    .transpose()?,
                to_i64(now, "the time")?,
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
