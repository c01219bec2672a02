//! `taskflow`: inspect the flows recorded in a taskflow store.
//!
//! ```text
//! taskflow list <STORE>             every flow in the store, with its state and times
//! taskflow show <STORE> <FLOW_ID>   one flow: its inputs, each step, its retry scopes
//! taskflow graph <STORE> <FLOW_ID>  one flow's structure as Graphviz DOT, with step states
//! taskflow jobs <DATABASE_URL>      the jobs of a PostgreSQL job board, newest first
//! taskflow release <STORE|DATABASE_URL> <FLOW_ID|JOB_ID> --rerun|--fail
//!                                   a person's decision about a run held after a take-over
//! ```
//!
//! `<STORE>` is a directory (a [`DirStore`]) or an SQLite database file (a [`SqliteStore`]); it
//! must exist: inspecting never creates a store. Errors go to stderr, naming the problem and the
//! path, with exit code 1 (2 for a bad command line).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use std::sync::Arc;
use taskflow::store::{
    AtomRecord, DirStore, FailureRecord, FlowRecord, JobBoard, PostgresOptions, PostgresStore,
    RetryRecord, SqliteStore, Store, StoredFlow,
};
use taskflow::{FlowGraph, StepState};

/// Inspect the flows recorded in a taskflow store (and release a run held for a person).
///
/// A store is a directory of flow files (`DirStore`) or an SQLite database file (`SqliteStore`);
/// the path says which. It is never created: a path that does not exist is an error. Only
/// `release` writes.
/// Errors go to stderr with exit code 1 (2 for a bad command line). Times are UTC.
#[derive(Debug, Parser)]
#[command(name = "taskflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the flows in a store, oldest first.
    ///
    /// One row per flow: its id, log book, flow name and state, and when it was created and last
    /// updated (UTC, `YYYY-MM-DD HH:MM:SS`). In a directory store, a flow file that cannot be read
    /// is reported on stderr (exit code 1) and the readable flows are still listed.
    List(StoreArg),
    /// Show one flow: its inputs, every step, and its retry scopes.
    ///
    /// First the flow (id, name, log book, fingerprint, state, times, inputs as JSON); then one
    /// row per step: state, attempt, runs (how many times the attempt was started: more than 1
    /// when it ran again after its run was interrupted, by a crash or a take-over), duration of
    /// the latest attempt (`-` when it has not both
    /// started and finished), result as JSON (cut at 40 characters with `…`), failure (`(panic)`
    /// when the step panicked, named first when it is not the step's own, as a failure inside a
    /// sub-flow or a retry controller's; then any failure of its revert hook); then each retry
    /// scope (its index, after its sub-flow's path for a sub-flow's): its attempt, its
    /// controller's own failure (`-` unless the controller panicked), and what failed in each
    /// earlier attempt.
    Show(FlowArgs),
    /// Print a flow's structure as Graphviz DOT, with the state of each step.
    ///
    /// The structure is the one the run recorded in the store when it started: its steps (a
    /// sub-flow is a cluster), what each provides, and the order between them. Each step that has
    /// a record in the run shows its state and is filled with a colour: SUCCESS green, FAILURE
    /// red, REVERTING and REVERTED orange, RUNNING yellow, PENDING white. Render it with Graphviz:
    /// `taskflow graph flows.db <FLOW_ID> | dot -Tsvg > flow.svg`. A run stored by a taskflow
    /// that did not record structures has none to print (exit code 1).
    Graph(FlowArgs),
    /// List the jobs of a PostgreSQL job board, newest first.
    ///
    /// One row per job: its id, state (POSTED, CLAIMED, DONE, CANCELLED, DEAD), flow, its run's
    /// outcome once it ended, who holds it (host:pid, while claimed), how many times it was
    /// claimed and how many of those were take-overs, and its age (since it was posted); then,
    /// for each dead or held job, why. The database is only read: a schema without a store is
    /// an error.
    Jobs(JobsArgs),
    /// Release a run held for a person: the one command that writes.
    ///
    /// A run is held when a step whose task says `on_takeover = hold` was RUNNING when the run
    /// was interrupted (its process died, or its conductor lost the job), or when undoing such a
    /// step after a take-over failed: whether the step did its work is unknown, so nothing of the
    /// run goes on until a person has looked and decided. `--rerun`: the step runs again when
    /// the run is next resumed. `--fail`: the step counts as failed (a retry controller decides,
    /// and its revert hook undoes what it did). With a directory or SQLite store the id is the
    /// flow's (resume the run afterwards); with a PostgreSQL database URL it is a job's (`12` or
    /// `job-12`), which is posted again for a conductor. Releasing what is not held changes
    /// nothing.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["rerun", "fail"])))]
struct ReleaseArgs {
    /// The store (a directory or an SQLite file), or a PostgreSQL database URL.
    target: String,
    /// The held flow's id, or the held job's (on PostgreSQL).
    id: String,
    /// The held steps run again.
    #[arg(long)]
    rerun: bool,
    /// The held steps count as failed.
    #[arg(long)]
    fail: bool,
    /// The schema of the store, on PostgreSQL (PostgresOptions::schema).
    #[arg(long, default_value = "taskflow")]
    schema: String,
}

#[derive(Debug, Args)]
struct JobsArgs {
    /// The database, like `postgres://user@host:5432/db` (or `host=/run/postgresql dbname=db`).
    database_url: String,
    /// The schema of the store (PostgresOptions::schema).
    #[arg(long, default_value = "taskflow")]
    schema: String,
}

// The arguments of the commands. (No doc comments on these structs: clap would take them for
// the commands' descriptions.)

#[derive(Debug, Args)]
struct StoreArg {
    /// The store: a directory (DirStore) or an SQLite database file (SqliteStore).
    ///
    /// A directory is read as a DirStore (one `<flow id>.json` file per flow), any other file
    /// as a SqliteStore. The path must exist; it is never created.
    store: PathBuf,
}

#[derive(Debug, Args)]
struct FlowArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The flow's id, as the ID column of `taskflow list` prints it.
    flow_id: String,
}

/// The widest a result is shown in the steps table, in characters (`…` included).
const RESULT_WIDTH: usize = 40;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    let errors = match &cli.command {
        Command::List(StoreArg { store }) => list(store, &mut out),
        Command::Show(flow) => show(&flow.store.store, &flow.flow_id, &mut out),
        Command::Graph(flow) => graph(&flow.store.store, &flow.flow_id, &mut out),
        Command::Jobs(args) => jobs(args, &mut out),
        Command::Release(args) => release(args, &mut out),
    };
    if let Err(e) = io::stdout().lock().write_all(out.as_bytes()) {
        // `taskflow list … | head` closes the pipe early: not an error worth a word.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A store opened for reading.
enum Opened {
    Dir(DirStore),
    Sqlite(SqliteStore),
}

impl Opened {
    fn store(&self) -> &dyn Store {
        match self {
            Opened::Dir(s) => s,
            Opened::Sqlite(s) => s,
        }
    }
}

/// Opens the store at `path`: a directory is a `DirStore`, a file a `SqliteStore`. Refuses a path
/// that does not exist, an empty file and an SQLite database that is not a taskflow store, rather
/// than let `open` make a store of it.
fn open(path: &Path) -> Result<Opened, String> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            format!("no store at `{}`: the path does not exist", path.display())
        }
        _ => format!("cannot read `{}`: {e}", path.display()),
    })?;
    let opened = if meta.is_dir() {
        DirStore::open(path).map(Opened::Dir)
    } else if meta.len() == 0 {
        return Err(format!(
            "`{}` is an empty file, not a taskflow store",
            path.display()
        ));
    } else {
        // Read-only: inspecting never creates a schema or changes the journal mode.
        SqliteStore::open_read_only(path).map(Opened::Sqlite)
    };
    opened.map_err(|e| e.to_string())
}

/// `taskflow list`: writes the table to `out`; returns the errors (a flow file of a directory
/// store that cannot be read is reported, and the readable flows are still listed).
fn list(path: &Path, out: &mut String) -> Vec<String> {
    let opened = match open(path) {
        Ok(opened) => opened,
        Err(e) => return vec![e],
    };
    let (flows, errors) = match &opened {
        Opened::Dir(dir) => match dir.scan() {
            Ok(scan) => (scan.flows, scan.errors),
            Err(e) => return vec![e.to_string()],
        },
        Opened::Sqlite(db) => match db.list_flows() {
            Ok(flows) => (flows, Vec::new()),
            Err(e) => return vec![e.to_string()],
        },
    };
    if flows.is_empty() && errors.is_empty() {
        let _ = writeln!(out, "no flows in `{}`", path.display());
    } else if !flows.is_empty() {
        let rows: Vec<Vec<String>> = flows.iter().map(flow_row).collect();
        out.push_str(&table(
            &["ID", "LOG BOOK", "FLOW", "STATE", "CREATED", "UPDATED"],
            &rows,
        ));
    }
    errors.iter().map(ToString::to_string).collect()
}

fn flow_row(flow: &FlowRecord) -> Vec<String> {
    vec![
        one_line(&flow.id),
        one_line(&flow.logbook),
        one_line(&flow.flow_name),
        flow.state.to_string(),
        utc(flow.created_at),
        utc(flow.updated_at),
    ]
}

/// The flow `flow_id` of the store at `path`, or why it cannot be had.
fn load(path: &Path, flow_id: &str) -> Result<StoredFlow, String> {
    match open(path)
        .and_then(|opened| opened.store().load_flow(flow_id).map_err(|e| e.to_string()))?
    {
        Some(stored) => Ok(stored),
        None => Err(format!(
            "no flow `{flow_id}` in `{}` (`taskflow list` shows the ids)",
            path.display()
        )),
    }
}

/// `taskflow show`: writes the flow's header, its steps and its retry scopes to `out`.
fn show(path: &Path, flow_id: &str, out: &mut String) -> Vec<String> {
    let stored = match load(path, flow_id) {
        Ok(stored) => stored,
        Err(e) => return vec![e],
    };
    let flow = &stored.flow;
    let header = [
        ("flow", one_line(&flow.id)),
        ("name", one_line(&flow.flow_name)),
        ("log book", one_line(&flow.logbook)),
        ("fingerprint", one_line(&flow.fingerprint)),
        ("state", flow.state.to_string()),
        ("created", utc(flow.created_at)),
        ("updated", utc(flow.updated_at)),
        ("inputs", flow.inputs.to_string()),
    ];
    for (key, value) in header {
        let _ = writeln!(out, "{:<12} {value}", format!("{key}:"));
    }

    out.push('\n');
    if stored.atoms.is_empty() {
        out.push_str("no steps recorded\n");
    } else {
        let rows: Vec<Vec<String>> = stored.atoms.iter().map(step_row).collect();
        out.push_str(&table(
            &[
                "STEP", "STATE", "ATTEMPT", "RUNS", "DURATION", "RESULT", "FAILURE",
            ],
            &rows,
        ));
    }

    if !stored.retries.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = stored.retries.iter().map(retry_row).collect();
        out.push_str(&table(
            &["RETRY SCOPE", "ATTEMPT", "CONTROLLER FAILURE", "FAILURES"],
            &rows,
        ));
    }
    Vec::new()
}

/// `taskflow graph`: writes the flow's recorded structure as DOT, with each recorded step's state.
fn graph(path: &Path, flow_id: &str, out: &mut String) -> Vec<String> {
    let stored = match load(path, flow_id) {
        Ok(stored) => stored,
        Err(e) => return vec![e],
    };
    if stored.flow.graph.is_null() {
        return vec![format!(
            "flow `{flow_id}` in `{}` has no recorded structure: it was stored by a taskflow \
             without graph recording",
            path.display()
        )];
    }
    let states: HashMap<String, StepState> = stored
        .atoms
        .iter()
        .map(|atom| (atom.name.clone(), atom.state))
        .collect();
    match FlowGraph::dot_from_json(&stored.flow.graph, Some(&states)) {
        Ok(dot) => {
            out.push_str(&dot);
            Vec::new()
        }
        Err(e) => vec![format!(
            "the recorded structure of flow `{flow_id}` in `{}` is malformed: {e}",
            path.display()
        )],
    }
}

fn step_row(atom: &AtomRecord) -> Vec<String> {
    let result = match &atom.result {
        Some(value) => truncate(&value.to_string(), RESULT_WIDTH),
        None => "-".to_owned(),
    };
    // A failure that is not the step's own (inside a sub-flow, or its retry controller's) says
    // whose it is.
    let own = |f: &FailureRecord| {
        if f.step == atom.name {
            failure(f)
        } else {
            format!("{}: {}", one_line(&f.step), failure(f))
        }
    };
    let failure = match (&atom.failure, &atom.revert_failure) {
        (None, None) => "-".to_owned(),
        (Some(f), None) => own(f),
        (None, Some(r)) => format!("revert failed: {}", failure(r)),
        (Some(f), Some(r)) => format!("{}; revert failed: {}", own(f), failure(r)),
    };
    vec![
        one_line(&atom.name),
        atom.state.to_string(),
        atom.attempt.to_string(),
        atom.runs.to_string(),
        atom.duration().map_or_else(|| "-".to_owned(), duration),
        result,
        failure,
    ]
}

/// One row per retry scope (`Sub/0` for scope 0 of sub-flow step `Sub`): its current attempt,
/// its controller's own failure, and, for each failed attempt, what failed.
fn retry_row(retry: &RetryRecord) -> Vec<String> {
    let failures = retry
        .history
        .iter()
        .enumerate()
        .map(|(i, failed)| {
            let what: Vec<String> = failed
                .iter()
                .map(|f| format!("{}: {}", one_line(&f.step), failure(f)))
                .collect();
            format!("attempt {}: {}", i + 1, what.join(", "))
        })
        .collect::<Vec<_>>();
    let scope = if retry.flow.is_empty() {
        retry.scope.to_string()
    } else {
        format!("{}/{}", one_line(&retry.flow), retry.scope)
    };
    let controller = match &retry.failure {
        Some(f) => format!("{}: {}", one_line(&f.step), failure(f)),
        None => "-".to_owned(),
    };
    vec![
        scope,
        retry.attempt.to_string(),
        controller,
        if failures.is_empty() {
            "-".to_owned()
        } else {
            failures.join("; ")
        },
    ]
}

/// A failure's message, with ` (panic)` when the step panicked.
fn failure(f: &FailureRecord) -> String {
    let message = one_line(&f.message);
    if f.is_panic {
        format!("{message} (panic)")
    } else {
        message
    }
}

/// A table: the headers, then one line per row, each column padded to its widest cell and
/// separated by two spaces (no trailing spaces). Widths count characters.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_line = |cells: Vec<&str>| {
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_line(headers.to_vec());
    for row in rows {
        push_line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `text` on one line: control characters (newlines of a multi-line error, tabs) become spaces,
/// so they cannot break a table.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to at most `max` characters, ending in `…` when it was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `taskflow jobs`: the board's jobs as a table, then the reasons of the dead ones.
fn jobs(args: &JobsArgs, out: &mut String) -> Vec<String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return vec![format!("cannot start a runtime: {e}")],
    };
    let options = PostgresOptions {
        schema: args.schema.clone(),
        pool_size: 1,
        ..Default::default()
    };
    let listed = runtime.block_on(async {
        let store = PostgresStore::connect_existing(&args.database_url, options).await?;
        JobBoard::new(Arc::new(store)).jobs().await
    });
    let jobs = match listed {
        Ok(jobs) => jobs,
        Err(e) => return vec![e.to_string()],
    };
    if jobs.is_empty() {
        let _ = writeln!(out, "no jobs in schema `{}`", args.schema);
        return Vec::new();
    }
    let now = taskflow_now();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.to_string(),
                job.state.to_string(),
                one_line(&job.flow.name),
                job.outcome.map_or("-".into(), |o| o.to_string()),
                job.owner
                    .as_ref()
                    .map_or("-".into(), |o| one_line(&format!("{}:{}", o.host, o.pid))),
                job.claims.to_string(),
                job.takeovers.to_string(),
                duration(Duration::from_millis(now.saturating_sub(job.created_at))),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ID",
            "STATE",
            "FLOW",
            "OUTCOME",
            "OWNER",
            "CLAIMS",
            "TAKEOVERS",
            "AGE",
        ],
        &rows,
    ));
    for job in jobs.iter().filter(|j| j.reason.is_some()) {
        let _ = writeln!(
            out,
            "job {} is {}: {}",
            job.id,
            job.state,
            one_line(job.reason.as_deref().unwrap_or_default())
        );
    }
    Vec::new()
}

/// `taskflow release`.
fn release(args: &ReleaseArgs, out: &mut String) -> Vec<String> {
    let how = if args.fail {
        taskflow::Release::Fail
    } else {
        taskflow::Release::Rerun
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return vec![format!("cannot start a runtime: {e}")],
    };
    let is_url = args.target.starts_with("postgres://") || args.target.starts_with("postgresql://");
    let released = if is_url {
        let digits = args.id.strip_prefix("job-").unwrap_or(&args.id);
        let Ok(id) = digits.parse::<i64>() else {
            return vec![format!(
                "`{}` is not a job id: expected a number like `12` or `job-12`",
                args.id
            )];
        };
        let options = PostgresOptions {
            schema: args.schema.clone(),
            pool_size: 1,
            ..Default::default()
        };
        runtime.block_on(async {
            let store = PostgresStore::connect_existing(&args.target, options).await?;
            JobBoard::new(Arc::new(store))
                .release_held(taskflow::store::JobId(id), how)
                .await
        })
    } else {
        let path = Path::new(&args.target);
        // Checked as a store first (never created), then opened for the write.
        if let Err(e) = open(path) {
            return vec![e];
        }
        let store: Arc<dyn Store> = if path.is_dir() {
            match DirStore::open(path) {
                Ok(s) => Arc::new(s),
                Err(e) => return vec![e.to_string()],
            }
        } else {
            match SqliteStore::open(path) {
                Ok(s) => Arc::new(s),
                Err(e) => return vec![e.to_string()],
            }
        };
        runtime.block_on(taskflow::release_held(store, &args.id, how))
    };
    match released {
        Ok(steps) if steps.is_empty() => {
            let _ = writeln!(out, "nothing held in `{}`: nothing changed", args.id);
            Vec::new()
        }
        Ok(steps) => {
            let what = if args.fail { "failed" } else { "to run again" };
            for step in steps {
                let _ = writeln!(out, "released step `{step}` of `{}`: {what}", args.id);
            }
            Vec::new()
        }
        Err(e) => vec![e.to_string()],
    }
}

fn taskflow_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM:SS` (proleptic Gregorian calendar).
fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    // Fits in i64: u64::MAX / 86_400_000 is about 2.1e11 days.
    let days = (secs / 86_400) as i64;
    let (hour, min, sec) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Days to a civil date: Howard Hinnant's `civil_from_days`, with eras of 400 years that start
    // on 1 March (so the leap day is the last day of a year).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from 1 March, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{min:02}:{sec:02}")
}

/// A step's duration, short: `250ms`, `1.250s`, `2m05s`, `1h02m03s`.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{secs}.{:03}s", ms % 1000),
        _ if secs < 3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs % 3600 / 60, secs % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(999), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00"); // leap day of a /400 year
        assert_eq!(utc(951_868_800_000), "2000-03-01 00:00:00");
        assert_eq!(utc(1_709_164_799_000), "2024-02-28 23:59:59");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00"); // 2100 has no leap day
        assert_eq!(utc(253_402_300_799_000), "9999-12-31 23:59:59");
        assert!(utc(u64::MAX).starts_with("584556019-")); // no overflow
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(0)), "0ms");
        assert_eq!(duration(ms(250)), "250ms");
        assert_eq!(duration(ms(1250)), "1.250s");
        assert_eq!(duration(ms(59_999)), "59.999s");
        assert_eq!(duration(ms(125_000)), "2m05s");
        assert_eq!(duration(ms(3_723_000)), "1h02m03s");
    }

    #[test]
    fn table_pads_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), "x".to_owned()],
            vec!["ccc".to_owned(), "…".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            table(&["H1", "H2", "H3"], &rows),
            "H1   H2         H3\n\
             a    long cell  x\n\
             ccc  …\n"
        );
    }

    #[test]
    fn truncate_and_one_line() {
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefg", 6), "abcde…");
        assert_eq!(truncate("ééééééé", 3), "éé…");
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }
}
