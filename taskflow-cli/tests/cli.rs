//! The `taskflow` binary against stores built through `taskflow::store`: exit codes and the exact
//! text of what it prints, for a directory store and an SQLite store.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use taskflow::prelude::*;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FailureRecord, FlowRecord, RetryRecord, SqliteStore, Store,
};
use taskflow::{FlowState, StepState};

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "taskflow-cli-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            taskflow::store::new_flow_id()
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn taskflow(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The run failed with exit code 1, printing nothing but `error: <message>` on stderr.
fn assert_error(run: &Run, message: &str) {
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    assert_eq!(run.stderr, format!("error: {message}\n"));
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The two kinds of store the binary opens, each in a fresh temp dir: `(store, its path, dir)`.
fn dir_store() -> (Box<dyn Store>, PathBuf, TempDir) {
    let tmp = TempDir::new();
    let path = tmp.0.join("flows");
    (Box::new(DirStore::open(&path).unwrap()), path, tmp)
}

fn sqlite_store() -> (Box<dyn Store>, PathBuf, TempDir) {
    let tmp = TempDir::new();
    let path = tmp.0.join("flows.db");
    (Box::new(SqliteStore::open(&path).unwrap()), path, tmp)
}

/// 2023-11-14 22:13:20 UTC.
const T0: u64 = 1_700_000_000_000;

fn flow(id: &str, logbook: &str, name: &str, state: FlowState, created: u64) -> FlowRecord {
    let mut flow = FlowRecord::new(logbook, name, "fp-1", json!({ "image": "debian" }));
    flow.id = id.into();
    flow.state = state;
    flow.created_at = created;
    flow.updated_at = created + 61_000;
    flow
}

// ---------------------------------------------------------------------------------------------
// list

fn list_two_flows(store: &dyn Store, path: &Path) {
    // Created out of order: the listing is oldest first.
    store
        .create_flow(&flow(
            "run-b",
            "weekly",
            "Backup",
            FlowState::Running,
            T0 + 3_600_000,
        ))
        .unwrap();
    store
        .create_flow(&flow("run-a", "nightly", "BootVm", FlowState::Reverted, T0))
        .unwrap();

    let run = taskflow(&["list", s(path)]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
    assert_eq!(
        run.stdout,
        "\
ID     LOG BOOK  FLOW    STATE     CREATED              UPDATED
run-a  nightly   BootVm  REVERTED  2023-11-14 22:13:20  2023-11-14 22:14:21
run-b  weekly    Backup  RUNNING   2023-11-14 23:13:20  2023-11-14 23:14:21
"
    );
}

#[test]
fn list_two_flows_in_a_dir_store() {
    let (store, path, _tmp) = dir_store();
    list_two_flows(&*store, &path);
}

#[test]
fn list_two_flows_in_a_sqlite_store() {
    let (store, path, _tmp) = sqlite_store();
    list_two_flows(&*store, &path);
}

#[test]
fn list_of_empty_stores_says_so() {
    for (_store, path, _tmp) in [dir_store(), sqlite_store()] {
        let run = taskflow(&["list", s(&path)]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.stdout, format!("no flows in `{}`\n", path.display()));
        assert_eq!(run.stderr, "");
    }
}

// ---------------------------------------------------------------------------------------------
// show

/// A flow that failed in a retry scope: a step that succeeded, one that panicked (and whose
/// revert failed), one that never started, one whose result is long, and the scope's record.
fn failed_run(store: &dyn Store) {
    store
        .create_flow(&flow("run-1", "nightly", "BootVm", FlowState::Pending, T0))
        .unwrap();

    let mut launch = AtomRecord::new("launch_server");
    launch.state = StepState::Reverted;
    launch.result = Some(json!({ "id": 7, "zone": "eu" }));
    launch.runs = 1;
    launch.started_at = Some(T0);
    launch.finished_at = Some(T0 + 1_250);

    let mut attach = AtomRecord::new("Storage/attach_volume");
    attach.state = StepState::Failure;
    attach.attempt = 3;
    attach.runs = 2; // the third attempt ran again after a crash
    attach.started_at = Some(T0 + 2_000);
    attach.finished_at = Some(T0 + 127_000);
    attach.failure = Some(FailureRecord {
        step: "Storage/attach_volume".into(),
        message: "index out of bounds".into(),
        is_panic: true,
    });
    attach.revert_failure = Some(FailureRecord {
        step: "Storage/attach_volume".into(),
        message: "volume busy".into(),
        is_panic: false,
    });

    let configure = AtomRecord::new("configure"); // PENDING, no timestamps, no result

    let mut unit = AtomRecord::new("notify");
    unit.state = StepState::Success;
    unit.result = Some(json!(null)); // a `()` output
    unit.started_at = Some(T0 + 500); // started, finish unknown: no duration

    let mut report = AtomRecord::new("report");
    report.state = StepState::Success;
    report.result = Some(json!({ "lines": ["first line of the report", "second line"] }));
    report.started_at = Some(T0);
    report.finished_at = Some(T0 + 80);

    let busy = |message: &str, is_panic| FailureRecord {
        step: "Storage/attach_volume".into(),
        message: message.into(),
        is_panic,
    };
    let retry = RetryRecord {
        scope: 1,
        flow: String::new(),
        attempt: 3,
        history: vec![
            vec![busy("volume busy", false)],
            vec![busy("disk gone", true), busy("line one\nline two", false)],
        ],
        failure: None,
    };
    store
        .checkpoint(
            "run-1",
            &Checkpoint {
                flow_state: Some(FlowState::Failure),
                atoms: vec![launch, attach, configure, unit, report],
                retries: vec![retry],
                ..Checkpoint::default()
            },
        )
        .unwrap();
}

fn show_failed_run(store: &dyn Store, path: &Path) {
    failed_run(store);
    let run = taskflow(&["show", s(path), "run-1"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");

    // `updated` is when the checkpoint was written: now.
    let (updated, rest): (Vec<&str>, Vec<&str>) =
        run.stdout.lines().partition(|l| l.starts_with("updated:"));
    assert_eq!(updated.len(), 1, "{}", run.stdout);
    assert_eq!(updated[0].len(), "updated:     2023-11-14 22:13:20".len());
    assert_eq!(
        rest.join("\n"),
        r#"flow:        run-1
name:        BootVm
log book:    nightly
fingerprint: fp-1
state:       FAILURE
created:     2023-11-14 22:13:20
inputs:      {"image":"debian"}

STEP                   STATE     ATTEMPT  RUNS  DURATION  RESULT                                    FAILURE
launch_server          REVERTED  1        1     1.250s    {"id":7,"zone":"eu"}                      -
Storage/attach_volume  FAILURE   3        2     2m05s     -                                         index out of bounds (panic); revert failed: volume busy
configure              PENDING   1        0     -         -                                         -
notify                 SUCCESS   1        0     -         null                                      -
report                 SUCCESS   1        0     80ms      {"lines":["first line of the report","s…  -

RETRY SCOPE  ATTEMPT  CONTROLLER FAILURE  FAILURES
1            3        -                   attempt 1: Storage/attach_volume: volume busy; attempt 2: Storage/attach_volume: disk gone (panic), Storage/attach_volume: line one line two"#
    );
}

#[test]
fn show_steps_and_retries_of_a_dir_store() {
    let (store, path, _tmp) = dir_store();
    show_failed_run(&*store, &path);
}

#[test]
fn show_steps_and_retries_of_a_sqlite_store() {
    let (store, path, _tmp) = sqlite_store();
    show_failed_run(&*store, &path);
}

/// A run whose retry controllers panicked, as a durable run records it: one, around `reserve`,
/// panicked in `item` (so `reserve` could not start: its failure is the controller's); one in
/// sub-flow `Storage` panicked in `on_failure` after its step failed.
fn controller_failed_run(store: &dyn Store) {
    store
        .create_flow(&flow("run-c", "nightly", "BootVm", FlowState::Pending, T0))
        .unwrap();
    let exploded = |step: &str, message: &str| FailureRecord {
        step: step.into(),
        message: message.into(),
        is_panic: true,
    };
    let mut reserve = AtomRecord::new("reserve");
    reserve.state = StepState::Failure;
    reserve.failure = Some(exploded("retry [reserve]", "no item"));
    let mut storage = AtomRecord::new("Storage");
    storage.state = StepState::Failure;
    storage.failure = Some(FailureRecord {
        step: "attach".into(),
        message: "volume busy".into(),
        is_panic: false,
    });
    let mut attach = AtomRecord::new("Storage/attach");
    attach.state = StepState::Reverted;
    attach.failure = Some(FailureRecord {
        step: "Storage/attach".into(),
        message: "volume busy".into(),
        is_panic: false,
    });
    let retries = vec![
        RetryRecord {
            scope: 0,
            flow: String::new(),
            attempt: 1,
            history: vec![],
            failure: Some(exploded("retry [reserve]", "no item")),
        },
        RetryRecord {
            scope: 0,
            flow: "Storage".into(),
            attempt: 1,
            history: vec![],
            failure: Some(exploded("retry [attach]", "index out of bounds")),
        },
    ];
    store
        .checkpoint(
            "run-c",
            &Checkpoint {
                flow_state: Some(FlowState::Reverted),
                atoms: vec![reserve, storage, attach],
                retries,
                ..Checkpoint::default()
            },
        )
        .unwrap();
}

/// `show` names a failure that is not the step's own (a controller's, a sub-flow step's), tells a
/// sub-flow's retry scope from the flow's own, and shows each controller's own failure.
#[test]
fn show_failed_retry_controllers() {
    for (store, path, _tmp) in [dir_store(), sqlite_store()] {
        controller_failed_run(&*store);
        let run = taskflow(&["show", s(&path), "run-c"]);
        assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
        let tables: Vec<&str> = run.stdout.split("\n\n").skip(1).collect();
        assert_eq!(
            tables.join("\n\n"),
            "\
STEP            STATE     ATTEMPT  RUNS  DURATION  RESULT  FAILURE
reserve         FAILURE   1        0     -         -       retry [reserve]: no item (panic)
Storage         FAILURE   1        0     -         -       attach: volume busy
Storage/attach  REVERTED  1        0     -         -       volume busy

RETRY SCOPE  ATTEMPT  CONTROLLER FAILURE                           FAILURES
0            1        retry [reserve]: no item (panic)             -
Storage/0    1        retry [attach]: index out of bounds (panic)  -
"
        );
    }
}

#[test]
fn show_a_flow_with_no_steps() {
    let (store, path, _tmp) = sqlite_store();
    store
        .create_flow(&flow("fresh", "nightly", "BootVm", FlowState::Pending, T0))
        .unwrap();
    let run = taskflow(&["show", s(&path), "fresh"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.ends_with("\n\nno steps recorded\n"), "{run:?}");
    assert!(!run.stdout.contains("RETRY"), "{run:?}");
}

#[test]
fn show_and_graph_of_an_unknown_flow_name_it() {
    for (store, path, _tmp) in [dir_store(), sqlite_store()] {
        failed_run(&*store);
        for command in ["show", "graph"] {
            let run = taskflow(&[command, s(&path), "run-2"]);
            let message = format!(
                "no flow `run-2` in `{}` (`taskflow list` shows the ids)",
                path.display()
            );
            assert_error(&run, &message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// graph

#[task(provides = server_id)]
fn launch_server(image: &str) -> u32 {
    image.len() as u32
}

#[task(provides = volume_id)]
fn attach_volume(server_id: u32) -> u32 {
    server_id * 10
}

#[task]
fn notify(volume_id: u32) {
    let _ = volume_id;
}

flow! {
    flow Storage(server_id: u32) -> (volume_id) { linear [ attach_volume ] }
}

flow! {
    flow BootVm(image: String) -> (volume_id) { linear [ launch_server, Storage, notify ] }
}

/// A run of `BootVm` that failed in its sub-flow, with its structure recorded as a durable run
/// records it; `notify` never started, so it has no record.
fn failed_boot(store: &dyn Store) {
    let mut record = flow("run-1", "nightly", "BootVm", FlowState::Pending, T0);
    record = record.with_graph(BootVm::graph().to_json());
    store.create_flow(&record).unwrap();
    let state = |name: &str, state| AtomRecord {
        state,
        ..AtomRecord::new(name)
    };
    store
        .checkpoint(
            "run-1",
            &Checkpoint {
                flow_state: Some(FlowState::Reverted),
                atoms: vec![
                    state("launch_server", StepState::Reverted),
                    state("Storage", StepState::Failure),
                    state("Storage/attach_volume", StepState::Failure),
                ],
                ..Checkpoint::default()
            },
        )
        .unwrap();
}

#[test]
fn graph_of_a_failed_run_shows_step_states() {
    for (store, path, _tmp) in [dir_store(), sqlite_store()] {
        failed_boot(&*store);
        let run = taskflow(&["graph", s(&path), "run-1"]);
        assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
        assert_eq!(
            run.stdout,
            r#"digraph "BootVm" {
  rankdir=LR;
  "BootVm/launch_server" [label="launch_server\n-> server_id\nREVERTED", shape=box, style=filled, fillcolor=orange];
  subgraph "cluster_1" {
    label="Storage (Storage)\nFAILURE";
    style=filled;
    fillcolor=tomato;
    "BootVm/Storage" [shape=point];
    "BootVm/Storage/attach_volume" [label="attach_volume\n-> volume_id\nFAILURE", shape=box, style=filled, fillcolor=tomato];
  }
  "BootVm/notify" [label="notify", shape=box];
  "BootVm/launch_server" -> "BootVm/Storage";
  "BootVm/Storage" -> "BootVm/notify";
}
"#
        );
    }
}

/// Before any step ran, the graph is the flow's own `to_dot`.
#[test]
fn graph_of_a_fresh_run_is_the_flows_dot() {
    let (store, path, _tmp) = sqlite_store();
    let record = flow("fresh", "nightly", "BootVm", FlowState::Pending, T0)
        .with_graph(BootVm::graph().to_json());
    store.create_flow(&record).unwrap();
    let run = taskflow(&["graph", s(&path), "fresh"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
    assert_eq!(run.stdout, BootVm::graph().to_dot());
}

#[test]
fn graph_of_a_flow_without_a_recorded_structure_says_so() {
    for (store, path, _tmp) in [dir_store(), sqlite_store()] {
        failed_run(&*store); // recorded without a graph
        let run = taskflow(&["graph", s(&path), "run-1"]);
        let message = format!(
            "flow `run-1` in `{}` has no recorded structure: it was stored by a taskflow \
             without graph recording",
            path.display()
        );
        assert_error(&run, &message);
    }
}

/// A recorded structure that is JSON but not a graph is named with what is wrong and where.
#[test]
fn graph_of_a_malformed_structure_names_the_problem() {
    for (store, path, _tmp) in [dir_store(), sqlite_store()] {
        let mut graph = BootVm::graph().to_json();
        graph["steps"][1]["subflow"]["steps"][0]
            .as_object_mut()
            .unwrap()
            .remove("kind");
        let record = flow("bad", "nightly", "BootVm", FlowState::Pending, T0).with_graph(graph);
        store.create_flow(&record).unwrap();
        let run = taskflow(&["graph", s(&path), "bad"]);
        let message = format!(
            "the recorded structure of flow `bad` in `{}` is malformed: \
             steps[1].subflow.steps[0].kind is missing",
            path.display()
        );
        assert_error(&run, &message);
    }
}

/// A recorded structure that is not JSON at all is a corrupt row, named as such.
#[test]
fn graph_of_a_corrupt_row_names_the_column() {
    let (store, path, _tmp) = sqlite_store();
    failed_boot(&*store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE graphs SET graph = '{\"name\": ' WHERE flow_id = 'run-1'",
            [],
        )
        .unwrap();
    let run = taskflow(&["graph", s(&path), "run-1"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: corrupt flows row id=\"run-1\", column `graphs.graph`: "),
        "{run:?}"
    );
}

/// A database of schema version 1 (from before structures were recorded) is read as it is: its
/// flows are listed and shown, `graph` says they have no structure, and nothing is written to it.
#[test]
fn a_version_1_sqlite_store_is_read_and_left_as_it_was() {
    let (store, path, _tmp) = sqlite_store();
    failed_run(&*store);
    drop(store);
    // Version 2 minus its `graphs` table and the `flow` key of `retries` is version 1.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TABLE graphs;
             CREATE TABLE retries_v1 (
                 flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
                 scope   INTEGER NOT NULL,
                 attempt INTEGER NOT NULL,
                 history TEXT NOT NULL,
                 PRIMARY KEY (flow_id, scope)
             );
             INSERT INTO retries_v1 SELECT flow_id, scope, attempt, history FROM retries;
             DROP TABLE retries;
             ALTER TABLE retries_v1 RENAME TO retries;
             UPDATE schema_version SET version = 1;",
        )
        .unwrap();
    let before = fs::read(&path).unwrap();

    let run = taskflow(&["list", s(&path)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("\nrun-1  nightly   BootVm"), "{run:?}");
    let run = taskflow(&["show", s(&path), "run-1"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("\nStorage/attach_volume  FAILURE"),
        "{run:?}"
    );
    let run = taskflow(&["graph", s(&path), "run-1"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("has no recorded structure"), "{run:?}");

    assert_eq!(fs::read(&path).unwrap(), before);
    let version: u32 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
}

// ---------------------------------------------------------------------------------------------
// Bad stores

#[test]
fn a_store_that_does_not_exist_is_named_and_not_created() {
    let tmp = TempDir::new();
    for missing in [tmp.0.join("flows"), tmp.0.join("flows.db")] {
        for args in [
            vec!["list", s(&missing)],
            vec!["show", s(&missing), "run-1"],
            vec!["graph", s(&missing), "run-1"],
        ] {
            let run = taskflow(&args);
            assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
            assert_eq!(
                run.stderr,
                format!(
                    "error: no store at `{}`: the path does not exist\n",
                    missing.display()
                )
            );
            assert!(
                !missing.exists(),
                "inspecting created {}",
                missing.display()
            );
        }
    }
}

#[test]
fn a_corrupt_flow_file_is_named_and_the_others_still_listed() {
    let (store, path, _tmp) = dir_store();
    store
        .create_flow(&flow("run-a", "nightly", "BootVm", FlowState::Success, T0))
        .unwrap();
    let broken = path.join("broken.json");
    fs::write(&broken, "{ \"format\": 1, \"fl").unwrap();

    let run = taskflow(&["list", s(&path)]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stdout,
        "\
ID     LOG BOOK  FLOW    STATE    CREATED              UPDATED
run-a  nightly   BootVm  SUCCESS  2023-11-14 22:13:20  2023-11-14 22:14:21
"
    );
    let prefix = format!("error: corrupt flow file `{}`: ", broken.display());
    assert!(run.stderr.starts_with(&prefix), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    let run = taskflow(&["show", s(&path), "broken"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    assert!(run.stderr.starts_with(&prefix), "{run:?}");

    // The readable flow is still shown.
    assert_eq!(taskflow(&["show", s(&path), "run-a"]).code, Some(0));
}

#[test]
fn a_file_that_is_not_a_store_is_named() {
    let tmp = TempDir::new();
    let text = tmp.0.join("notes.txt");
    fs::write(
        &text,
        "not a database, a text file padded to a page. ".repeat(30),
    )
    .unwrap();
    let run = taskflow(&["list", s(&text)]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    let prefix = format!("error: corrupt SQLite database `{}`: ", text.display());
    assert!(run.stderr.starts_with(&prefix), "{run:?}");

    // SQLite would take an empty file for a new database and write a store into it.
    let empty = tmp.0.join("empty.db");
    fs::write(&empty, "").unwrap();
    let run = taskflow(&["list", s(&empty)]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: `{}` is an empty file, not a taskflow store\n",
            empty.display()
        )
    );
    assert_eq!(fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn another_sqlite_database_is_refused_and_left_as_it_was() {
    let tmp = TempDir::new();
    let other = tmp.0.join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hi');")
        .unwrap();
    drop(conn);
    let before = fs::read(&other).unwrap();

    let run = taskflow(&["list", s(&other)]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: `{}` is an SQLite database but not a taskflow store (it has no \
             `schema_version` table; its tables: `notes`)\n",
            other.display()
        )
    );
    assert_eq!(fs::read(&other).unwrap(), before);
}

#[test]
fn a_closed_sqlite_store_is_read() {
    // The other tests keep their store open while the binary reads it (a live `-wal` file); here
    // the store is closed first, so the binary's read-only look opens it alone.
    let (store, path, _tmp) = sqlite_store();
    store
        .create_flow(&flow("run-a", "nightly", "BootVm", FlowState::Success, T0))
        .unwrap();
    drop(store);
    let run = taskflow(&["list", s(&path)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("\nrun-a  nightly"), "{run:?}");
}

#[test]
fn a_bad_command_line_is_exit_code_2() {
    for command in ["show", "graph"] {
        let run = taskflow(&[command, "flows.db"]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains("<FLOW_ID>"), "{run:?}");
    }
}

// ---- taskflow jobs (PostgreSQL at DATABASE_URL, which .ci/run sets)

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[task(provides = doubled)]
fn double(x: u32) -> u32 {
    x * 2
}

flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }

#[test]
fn jobs_lists_a_boards_jobs_with_state_owner_claims_and_why_dead() {
    use std::time::Duration;
    use taskflow::store::{FlowKey, JobBoard, NewJob, Owner, PostgresOptions, PostgresStore};
    let schema = format!("cli_jobs_{}", std::process::id());
    let url = database_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let options = PostgresOptions {
            schema: schema.clone(),
            ..Default::default()
        };
        let store = std::sync::Arc::new(PostgresStore::connect_with(&url, options).await.unwrap());
        let board = JobBoard::new(store.clone());
        let key = [FlowKey::of::<Double>()];
        let owner = Owner {
            host: "worker-7".into(),
            pid: 4242,
            ..Owner::current()
        };
        let mut fragile = NewJob::of::<Double>(&DoubleInputs { x: 1 }).unwrap();
        fragile.max_takeovers = 0;
        board.post(&fragile).await.unwrap();
        let claim = board.claim(&owner, &key, 1, Duration::ZERO).await.unwrap();
        assert_eq!(claim.len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Its claim ran out with no take-over allowed: the next claim declares it dead.
        assert!(board
            .claim(&owner, &key, 1, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());
        board
            .post(&NewJob::of::<Double>(&DoubleInputs { x: 2 }).unwrap())
            .await
            .unwrap();
        board
            .claim(&owner, &key, 1, Duration::from_secs(60))
            .await
            .unwrap();
        board
            .post(&NewJob::of::<Double>(&DoubleInputs { x: 3 }).unwrap())
            .await
            .unwrap();
        store
    });
    let run = taskflow(&["jobs", &url, "--schema", &schema]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        words(0),
        [
            "ID",
            "STATE",
            "FLOW",
            "OUTCOME",
            "OWNER",
            "CLAIMS",
            "TAKEOVERS",
            "AGE"
        ]
    );
    assert_eq!(words(1)[..7], ["3", "POSTED", "Double", "-", "-", "0", "0"]);
    assert_eq!(
        words(2)[..7],
        ["2", "CLAIMED", "Double", "-", "worker-7:4242", "1", "0"]
    );
    assert_eq!(
        words(3)[..7],
        ["1", "DEAD", "Double", "-", "worker-7:4242", "2", "1"]
    );
    assert!(
        words(1)[7].ends_with("ms") || words(1)[7].ends_with('s'),
        "{}",
        lines[1]
    );
    assert!(
        lines[4].starts_with("job 1 is DEAD: its claim ran out 1 time ("),
        "{}",
        lines[4]
    );

    // A schema without a store is an error, and is not created.
    let missing = format!("cli_missing_{}", std::process::id());
    let run = taskflow(&["jobs", &url, "--schema", &missing]);
    assert_error(
        &run,
        &format!(
            "invalid PostgreSQL schema `{missing}`: there is no taskflow store in it; a writer \
             (PostgresStore::connect) creates one"
        ),
    );
    drop(store);
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let found = client
            .query_one(
                "SELECT count(*)::int FROM pg_namespace WHERE nspname = $1",
                &[&missing],
            )
            .await
            .unwrap();
        assert_eq!(found.get::<_, i32>(0), 0, "inspecting created nothing");
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    });
}

// ---- taskflow release

/// A run held for a person, as a resume records it: RUNNING with a failure saying why, the run
/// SUSPENDED.
fn held_run(store: &dyn Store, id: &str) {
    store
        .create_flow(&flow(id, "book", "Pay", FlowState::Suspended, T0))
        .unwrap();
    let mut charge = AtomRecord::new("charge");
    charge.state = StepState::Running;
    charge.runs = 1;
    charge.started_at = Some(T0);
    charge.failure = Some(FailureRecord {
        step: "charge".into(),
        message: "held for a person: step `charge` was RUNNING".into(),
        is_panic: false,
    });
    let mut done = AtomRecord::new("prepare");
    done.state = StepState::Success;
    done.result = Some(json!(1));
    store
        .checkpoint(
            id,
            &Checkpoint {
                atoms: vec![done, charge],
                ..Checkpoint::default()
            },
        )
        .unwrap();
}

fn release_a_held_run(store: Box<dyn Store>, path: &Path) {
    held_run(&*store, "pay-1");
    drop(store);
    // A decision is required.
    let run = taskflow(&["release", s(path), "pay-1"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let run = taskflow(&["release", s(path), "pay-1", "--rerun"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (
            Some(0),
            "released step `charge` of `pay-1`: to run again\n",
            ""
        ),
        "{run:?}"
    );
    let run = taskflow(&["release", s(path), "pay-1", "--fail"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "nothing held in `pay-1`: nothing changed\n"),
        "released once: {run:?}"
    );
    let store: Box<dyn Store> = if path.is_dir() {
        Box::new(DirStore::open(path).unwrap())
    } else {
        Box::new(SqliteStore::open(path).unwrap())
    };
    let stored = store.load_flow("pay-1").unwrap().unwrap();
    let charge = stored.atoms.iter().find(|a| a.name == "charge").unwrap();
    assert_eq!((charge.state, &charge.failure), (StepState::Pending, &None));
    let prepare = stored.atoms.iter().find(|a| a.name == "prepare").unwrap();
    assert_eq!(prepare.state, StepState::Success, "the rest is untouched");
    assert_eq!(stored.flow.lease, None, "the release let go of the run");

    held_run(&*store, "pay-2");
    let run = taskflow(&["release", s(path), "pay-2", "--fail"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let stored = store.load_flow("pay-2").unwrap().unwrap();
    let charge = stored.atoms.iter().find(|a| a.name == "charge").unwrap();
    assert_eq!(charge.state, StepState::Failure);
    assert!(
        charge
            .failure
            .as_ref()
            .unwrap()
            .message
            .starts_with("marked failed by a person after it was held for a person"),
        "{charge:?}"
    );
    assert_error(
        &taskflow(&["release", s(path), "no-such", "--rerun"]),
        "no flow `no-such` in the store",
    );
}

#[test]
fn release_of_a_held_run_in_a_sqlite_store() {
    let (store, path, _tmp) = sqlite_store();
    release_a_held_run(store, &path);
}

#[test]
fn release_of_a_held_run_in_a_dir_store() {
    let (store, path, _tmp) = dir_store();
    release_a_held_run(store, &path);
}

#[test]
fn release_never_creates_a_store() {
    let tmp = TempDir::new();
    let path = tmp.0.join("nothing.db");
    let run = taskflow(&["release", s(&path), "pay-1", "--rerun"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!path.exists());
}

#[test]
fn jobs_shows_a_held_job_and_release_posts_it_again() {
    use std::time::Duration;
    use taskflow::store::{
        FlowKey, JobBoard, JobState, NewJob, Owner, PostgresOptions, PostgresStore,
    };
    let schema = format!("cli_held_{}", std::process::id());
    let url = database_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (store, board, id) = rt.block_on(async {
        let options = PostgresOptions {
            schema: schema.clone(),
            ..Default::default()
        };
        let store = std::sync::Arc::new(PostgresStore::connect_with(&url, options).await.unwrap());
        let board = JobBoard::new(store.clone());
        let id = board
            .post(&NewJob::of::<Double>(&DoubleInputs { x: 1 }).unwrap())
            .await
            .unwrap()
            .id();
        let claims = board
            .claim(
                &Owner::current(),
                &[FlowKey::of::<Double>()],
                1,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        board
            .hold(&claims[0], "step `double`: held for a person")
            .await
            .unwrap();
        (store, board, id)
    });
    let run = taskflow(&["jobs", &url, "--schema", &schema]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>()[..4],
        [id.to_string().as_str(), "HELD", "Double", "-"]
    );
    assert_eq!(
        lines[2],
        format!("job {id} is HELD: step `double`: held for a person")
    );
    let job = format!("job-{id}");
    let run = taskflow(&["release", &url, &job, "--rerun", "--schema", &schema]);
    // The job never ran: nothing of its run is held, and the job is posted again.
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            Some(0),
            format!("nothing held in `{job}`: nothing changed\n").as_str()
        ),
        "{run:?}"
    );
    let state = rt.block_on(async { board.job(id).await.unwrap().unwrap().state });
    assert_eq!(state, JobState::Posted);
    assert_error(
        &taskflow(&["release", &url, "twelve", "--rerun", "--schema", &schema]),
        "`twelve` is not a job id: expected a number like `12` or `job-12`",
    );
    drop((store, board));
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    });
}
