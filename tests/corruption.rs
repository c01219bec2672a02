//! Issue 8, acceptance point 8: a damaged store is detected, never acted on.
//!
//! The issue flipped single bytes of stored runs, as a user's disk might, and found damage that
//! loaded as a different run: a step recorded SUCCESS was run again. Every stored record now
//! carries a checksum of its content, verified on load (`taskflow/src/store/checksum.rs`). Here
//! a small stored run is damaged one byte at a time in both durable stores, and each load must
//! give the original records or `StoreError::Corrupt` naming the run (and the record, for one
//! that fails its checksum). The few other refusals that may occur are each asserted to be the
//! store saying something true of the damaged bytes (a format or version number that was hit).
mod common;
use common::{HookedStore, TempDir};

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use taskflow::prelude::*;
use taskflow::store::{
    AtomRecord, Checkpoint, DirStore, FailureRecord, FlowRecord, RetryRecord, SqliteStore, Store,
    StoreError, StoredFlow,
};
use taskflow::{DurableError, FlowState, StepState};

const RUN: &str = "run-1";

fn failure(step: &str, message: &str) -> FailureRecord {
    FailureRecord {
        step: step.into(),
        message: message.into(),
        is_panic: false,
    }
}

/// A small run as a durable run leaves it part-way: a flow record with a graph, three steps (one
/// SUCCESS with a result, one FAILURE with its failure, one RUNNING) written over three
/// checkpoints (so the first step's record was replaced once), and one retry record of a
/// sub-flow's scope. Returns it as loaded.
fn small_run(store: &dyn Store) -> StoredFlow {
    let mut record = FlowRecord::new("nightly", "BootVm", "fp-1", json!({ "image": "debian" }))
        .with_graph(json!({ "name": "BootVm", "steps": [{ "name": "launch" }] }));
    record.id = RUN.into();
    store.create_flow(&record).unwrap();
    let at = |name: &str, state| AtomRecord {
        state,
        started_at: Some(1_700_000_000_000),
        ..AtomRecord::new(name)
    };
    let cp = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![at("launch", StepState::Running)],
        ..Default::default()
    };
    store.checkpoint(RUN, &cp).unwrap();
    let cp = Checkpoint {
        atoms: vec![
            AtomRecord {
                result: Some(json!({ "server": 7 })),
                progress: 1.0,
                finished_at: Some(1_700_000_001_000),
                ..at("launch", StepState::Success)
            },
            AtomRecord {
                attempt: 2,
                failure: Some(failure("Storage/attach", "volume busy")),
                progress: 0.5,
                ..at("Storage/attach", StepState::Failure)
            },
            at("Storage/format", StepState::Running),
        ],
        retries: vec![RetryRecord {
            scope: 0,
            flow: "Storage".into(),
            attempt: 2,
            history: vec![vec![failure("Storage/attach", "volume busy")]],
            failure: None,
        }],
        ..Default::default()
    };
    store.checkpoint(RUN, &cp).unwrap();
    store.load_flow(RUN).unwrap().unwrap()
}

/// What the loads of a sweep gave.
#[derive(Debug, Default)]
struct Seen {
    flips: usize,
    /// The original records: the damage was in bytes no reader uses, or in the key of a field
    /// holding its default (an unknown key is skipped, and the field reads as the same default).
    same: usize,
    /// `Corrupt`, a record failing its checksum.
    checksum: usize,
    /// `Corrupt` otherwise (unparsable JSON, a damaged SQLite page, a missing field ...).
    corrupt: usize,
    /// The refusals of a damaged format or version number.
    other: usize,
}

// ---------------------------------------------------------------------------------------------
// The directory store

/// Where each record of a run file is, for checking that the error names it: the record's bytes,
/// how the error describes it, and the fields the description is made of (damage to one of them
/// changes the description too).
struct Span {
    bytes: Range<usize>,
    described: String,
    naming: Vec<Range<usize>>,
}

/// The records of `text`, a run file as the directory store writes it (pretty JSON, two spaces
/// per level): the flow, then each atom, then each retry record, as in `run`.
fn record_spans(text: &str, run: &StoredFlow) -> Vec<Span> {
    let end_of = |from: usize, close: &str| from + text[from..].find(close).unwrap() + close.len();
    // A field's key and value: damage to either changes the field.
    let field = |span: &Range<usize>, key: &str| {
        let start = span.start + text[span.clone()].find(&format!("\"{key}\": ")).unwrap();
        start..start + text[start..].find([',', '\n']).unwrap()
    };
    let flow_start = text.find("  \"flow\": {").unwrap();
    let mut spans = vec![Span {
        bytes: flow_start..end_of(flow_start, "\n  }"),
        described: format!("flow record of flow `{RUN}`"),
        naming: vec![],
    }];
    let items = |key: &str, count: usize| -> Vec<Range<usize>> {
        let mut at = text.find(&format!("  \"{key}\": [")).unwrap();
        (0..count)
            .map(|_| {
                let start = at + text[at..].find("\n    {\n").unwrap() + 1;
                at = end_of(start, "\n    }");
                start..at
            })
            .collect()
    };
    for (bytes, atom) in items("atoms", run.atoms.len()).into_iter().zip(&run.atoms) {
        spans.push(Span {
            naming: vec![field(&bytes, "name")],
            described: format!("record of step `{}` of flow `{RUN}`", atom.name),
            bytes,
        });
    }
    for (bytes, retry) in items("retries", run.retries.len())
        .into_iter()
        .zip(&run.retries)
    {
        spans.push(Span {
            naming: vec![field(&bytes, "scope"), field(&bytes, "flow")],
            described: format!(
                "retry record of scope {} of sub-flow `{}` of flow `{RUN}`",
                retry.scope, retry.flow
            ),
            bytes,
        });
    }
    spans
}

/// Every single-bit flip of every byte of a run file (8 per byte): each load gives the original
/// records, or `Corrupt` naming the file (so the run), and — when a record fails its checksum —
/// that record; a refused file is left as it is by a checkpoint. The format number flipped to a
/// newer one is `SchemaTooNew`, and only then.
#[test]
fn every_bit_flip_of_a_run_file_is_refused_or_harmless() {
    let tmp = TempDir::new();
    let root = tmp.path().join("flows");
    let original = small_run(&DirStore::open(&root).unwrap());
    let file = root.join(format!("{RUN}.json"));
    let bytes = fs::read(&file).unwrap();
    let spans = record_spans(std::str::from_utf8(&bytes).unwrap(), &original);
    let file_name = file.display().to_string();
    let started = Instant::now();
    let mut seen = Seen::default();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mask = 1u8 << bit;
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            fs::write(&file, &damaged).unwrap();
            let place = format!("byte {at} ({:?}) ^ {mask:#04x}", bytes[at] as char);
            let store = DirStore::open(&root).unwrap();
            seen.flips += 1;
            match store.load_flow(RUN) {
                Ok(Some(loaded)) => {
                    assert_eq!(loaded, original, "{place}");
                    seen.same += 1;
                }
                Err(StoreError::Corrupt { what, detail }) => {
                    assert!(what.contains(&file_name), "{place}: {what}: {detail}");
                    if detail.contains("checksum") {
                        seen.checksum += 1;
                        let record = spans.iter().find(|s| s.bytes.contains(&at));
                        let record = record.expect("a checksum fails only in a record");
                        if !record.naming.iter().any(|r| r.contains(&at)) {
                            assert!(
                                what.contains(&record.described),
                                "{place}: `{what}` should name the {}",
                                record.described
                            );
                        }
                    } else {
                        seen.corrupt += 1;
                    }
                    // Never acted on: a checkpoint is refused and the file stays as it is.
                    assert!(
                        store.checkpoint(RUN, &Checkpoint::default()).is_err(),
                        "{place}"
                    );
                    assert_eq!(fs::read(&file).unwrap(), damaged, "{place}");
                }
                Err(StoreError::SchemaTooNew { found, supported }) => {
                    // The flip made the format number newer than this taskflow's: the file says
                    // so, and nothing else of it was damaged.
                    let value: Value = serde_json::from_slice(&damaged).unwrap();
                    assert_eq!(value["format"], found, "{place}");
                    assert!(found > supported, "{place}");
                    seen.other += 1;
                }
                other => panic!("{place}: {other:?}"),
            }
        }
    }
    eprintln!(
        "{} bytes, {seen:?}, in {:.1?}",
        bytes.len(),
        started.elapsed()
    );
    assert!(seen.checksum > 0 && seen.corrupt > 0);
}

// ---------------------------------------------------------------------------------------------
// The SQLite store

/// A scratch directory for the SQLite sweep, on the RAM disk `/dev/shm` where there is one: the
/// sweep opens the database some 11,000 times, each open creating and removing its WAL and
/// shared-memory files, which costs three times as much on a disk (the results are the same).
struct Scratch(PathBuf, Option<TempDir>);

impl Scratch {
    fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let path = shm.join(format!(
                "taskflow-corruption-{}",
                taskflow::store::new_flow_id()
            ));
            if fs::create_dir(&path).is_ok() {
                return Scratch(path, None);
            }
        }
        let tmp = TempDir::new();
        Scratch(tmp.path().to_path_buf(), Some(tmp))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.1.is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Which bytes of the database SQLite can read: the file header, and every byte of every b-tree
/// page (the `dbstat` table lists them) but the page's unallocated gap between its cell pointers
/// and its cells. Pages that are in no b-tree (free pages) and the gaps hold nothing that is
/// read.
fn live_bytes(path: &Path, bytes: &[u8]) -> Vec<bool> {
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let mut live = vec![false; bytes.len()];
    live[..100].fill(true);
    let conn = rusqlite::Connection::open(path).unwrap();
    let pages: Vec<(i64, String)> = conn
        .prepare("SELECT pageno, pagetype FROM dbstat")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (page, kind) in pages {
        let base = (usize::try_from(page).unwrap() - 1) * page_size;
        let page_bytes = base..base + page_size;
        if kind == "overflow" {
            live[page_bytes].fill(true);
            continue;
        }
        let header = base + if page == 1 { 100 } else { 0 };
        let header_size = if matches!(bytes[header], 2 | 5) {
            12
        } else {
            8
        };
        let cells = usize::from(u16::from_be_bytes([bytes[header + 3], bytes[header + 4]]));
        let content = match u16::from_be_bytes([bytes[header + 5], bytes[header + 6]]) {
            0 => 65536,
            n => usize::from(n),
        };
        let gap = header + header_size + 2 * cells..base + content;
        for at in page_bytes {
            if !gap.contains(&at) {
                live[at] = true;
            }
        }
    }
    live
}

/// The refusal of a damaged database by `SqliteStore::open`: `Corrupt` naming the file; or, where
/// the damage hit a number that says what the file is, that number's refusal — the header's
/// schema format number (offset 44, 4 bytes; SQLite refuses a format newer than its own as
/// "unsupported file format"), or our `schema_version` turned into a newer version.
fn check_refused_open(error: StoreError, path: &Path, at: usize, place: &str, seen: &mut Seen) {
    match error {
        StoreError::Corrupt { what, detail } => {
            assert!(
                what.contains(&path.display().to_string()),
                "{place}: {what}: {detail}"
            );
            seen.corrupt += 1;
        }
        StoreError::Sqlite { source, .. } => {
            assert!(
                (44..48).contains(&at) && source.to_string() == "unsupported file format",
                "{place}: {source}"
            );
            seen.other += 1;
        }
        StoreError::SchemaTooNew { found, supported } => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let version: u32 = conn
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .unwrap();
            assert!(version == found && found > supported, "{place}");
            seen.other += 1;
        }
        other => panic!("{place}: {other:?}"),
    }
}

/// A small stored run in an SQLite database (12 pages of 4 KiB), damaged one byte at a time:
/// every byte SQLite can read (see [`live_bytes`]) xor 0x01, xor 0x80 and xor a pseudo-random
/// value, and every 32nd of the other bytes xor 0x01. Each time the store is opened as a user
/// would (`SqliteStore::open`), the run loaded and the runs listed: the load gives the original
/// records or `Corrupt` naming the run, the listing the original flow or `Corrupt`; or `open`
/// refuses the file (see [`check_refused_open`]).
#[test]
fn every_flipped_byte_of_a_database_is_refused_or_harmless() {
    let scratch = Scratch::new();
    let path = scratch.0.join("flows.db");
    let original = small_run(&SqliteStore::open(&path).unwrap());
    // Closed: its WAL is checkpointed into the database file and removed.
    assert!(!beside(&path, "-wal").exists());
    let bytes = fs::read(&path).unwrap();
    let live = live_bytes(&path, &bytes);
    assert_eq!(fs::read(&path).unwrap(), bytes, "looking changed nothing");

    let mut flips = Vec::new();
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    for (at, &is_live) in live.iter().enumerate() {
        if is_live {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let other = match (random % 255) as u8 + 1 {
                0x01 | 0x80 => 0xff,
                other => other,
            };
            flips.extend([(at, 0x01), (at, 0x80), (at, other)]);
        } else if at % 32 == 0 {
            flips.push((at, 0x01));
        }
    }
    let live_count = live.iter().filter(|&&l| l).count();
    let started = Instant::now();
    let mut seen = Seen::default();
    let mut listed_without_the_run = Vec::new();
    for (at, mask) in flips {
        let mut damaged = bytes.clone();
        damaged[at] ^= mask;
        for leftover in ["-wal", "-shm"] {
            let _ = fs::remove_file(beside(&path, leftover));
        }
        fs::write(&path, &damaged).unwrap();
        let place = format!("byte {at} (page {}) ^ {mask:#04x}", at / 4096 + 1);
        seen.flips += 1;
        let store = match SqliteStore::open(&path) {
            Ok(store) => store,
            Err(e) => {
                check_refused_open(e, &path, at, &place, &mut seen);
                continue;
            }
        };
        match store.load_flow(RUN) {
            Ok(Some(loaded)) => {
                assert_eq!(loaded, original, "{place}");
                seen.same += 1;
            }
            Err(StoreError::Corrupt { what, detail }) => {
                assert!(what.contains(RUN), "{place}: {what}: {detail}");
                if detail.contains("checksum") {
                    seen.checksum += 1;
                } else {
                    seen.corrupt += 1;
                }
            }
            other => panic!("{place}: {other:?}"),
        }
        match store.list_flows() {
            Ok(flows) if flows == [original.flow.clone()] => {}
            Ok(flows) => listed_without_the_run.push((place, flows)),
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => panic!("{place}: listing: {e:?}"),
        }
    }
    eprintln!(
        "{} bytes ({live_count} read by SQLite), {seen:?}, in {:.1?}",
        bytes.len(),
        started.elapsed()
    );
    assert!(
        listed_without_the_run.is_empty(),
        "{listed_without_the_run:#?}"
    );
    assert!(seen.checksum > 0 && seen.corrupt > 0);
}

// ---------------------------------------------------------------------------------------------
// Edited records, old stores, exact values

/// Each record of a run file edited into other valid JSON — the case among them, a step
/// recorded SUCCESS that reads as RUNNING or under another name and would run again — is
/// `Corrupt`, naming the run's file and the record; so is a format-2 record without its sum.
#[test]
fn edited_records_of_a_run_file_are_corrupt_naming_them() {
    let tmp = TempDir::new();
    let store = DirStore::open(tmp.path()).unwrap();
    let original = small_run(&store);
    let file = tmp.path().join(format!("{RUN}.json"));
    let text = fs::read_to_string(&file).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 8] = [
        (
            "a step's state",
            |v| v["atoms"][0]["state"] = json!("RUNNING"),
            "record of step `launch`",
        ),
        (
            "a step's name",
            |v| v["atoms"][0]["name"] = json!("lunch"),
            "record of step `lunch`",
        ),
        (
            "a step's result",
            |v| v["atoms"][0]["result"]["server"] = json!(8),
            "record of step `launch`",
        ),
        (
            "an optional field dropped",
            |v| drop(v["atoms"][0].as_object_mut().unwrap().remove("result")),
            "record of step `launch`",
        ),
        (
            "the flow's inputs",
            |v| v["flow"]["inputs"]["image"] = json!("debiam"),
            "flow record of flow `run-1`",
        ),
        (
            "a retry's attempt",
            |v| v["retries"][0]["attempt"] = json!(1),
            "retry record of scope 0 of sub-flow `Storage`",
        ),
        (
            "a sum dropped",
            |v| drop(v["atoms"][2].as_object_mut().unwrap().remove("sum")),
            "record of step `Storage/format`",
        ),
        (
            "a sum in capitals",
            |v| {
                let sum = v["atoms"][1]["sum"].as_str().unwrap().to_uppercase();
                v["atoms"][1]["sum"] = json!(sum);
            },
            "record of step `Storage/attach`",
        ),
    ];
    for (case, edit, record) in cases {
        let mut edited = value.clone();
        edit(&mut edited);
        fs::write(&file, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
        match store.load_flow(RUN) {
            Err(StoreError::Corrupt { what, detail }) => {
                assert!(what.contains(record), "{case}: {what}: {detail}");
                assert!(what.contains(&file.display().to_string()), "{case}: {what}");
                assert!(detail.contains("checksum"), "{case}: {detail}");
            }
            other => panic!("{case}: {other:?}"),
        }
    }
    // Written back unedited (and laid out otherwise: the sums are over the records, not the
    // file's bytes), it loads.
    fs::write(&file, value.to_string()).unwrap();
    assert_eq!(store.load_flow(RUN).unwrap().unwrap(), original);
}

/// A format-1 file (before checksums: no sums) loads as it was, and the next checkpoint
/// rewrites it in format 2 with a sum on each record. A format-1 record that does carry a sum
/// has it verified.
#[test]
fn a_format_1_run_file_loads_and_is_rewritten_with_checksums() {
    let tmp = TempDir::new();
    let store = DirStore::open(tmp.path()).unwrap();
    let file = tmp.path().join("old-run.json");
    let old = json!({
        "format": 1,
        "flow": {
            "id": "old-run", "logbook": "nightly", "flow_name": "BootVm", "fingerprint": "fp-1",
            "state": "RUNNING", "inputs": { "image": "debian" },
            "created_at": 1_700_000_000_000_u64, "updated_at": 1_700_000_061_000_u64
        },
        "atoms": [{
            "name": "launch", "state": "SUCCESS", "attempt": 1, "result": "srv-1",
            "failure": null, "revert_failure": null, "progress": 1.0,
            "started_at": 1_700_000_000_000_u64, "finished_at": 1_700_000_001_000_u64
        }],
        "retries": [{ "scope": 0, "attempt": 2, "history": [] }]
    });
    fs::write(&file, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let loaded = store.load_flow("old-run").unwrap().unwrap();
    assert_eq!(loaded.atom("launch").unwrap().result, Some(json!("srv-1")));

    let cp = Checkpoint {
        flow_state: Some(FlowState::Suspended),
        ..Default::default()
    };
    store.checkpoint("old-run", &cp).unwrap();
    let now: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(now["format"], 2);
    for record in [&now["flow"], &now["atoms"][0], &now["retries"][0]] {
        assert_eq!(record["sum"].as_str().map(str::len), Some(16), "{record}");
    }
    let after = store.load_flow("old-run").unwrap().unwrap();
    assert_eq!(after.flow.state, FlowState::Suspended);
    assert_eq!((after.atoms, after.retries), (loaded.atoms, loaded.retries));

    // A format-1 file whose record has a sum that does not match (a format number damaged from
    // 2 to 1, say) is refused.
    let mut stale = now.clone();
    stale["format"] = json!(1);
    stale["atoms"][0]["attempt"] = json!(2);
    fs::write(&file, stale.to_string()).unwrap();
    assert!(matches!(
        store.load_flow("old-run"),
        Err(StoreError::Corrupt { what, .. }) if what.contains("record of step `launch`")
    ));
}

/// Rows edited in the database itself, or gone from it — the case among them, a step
/// recorded SUCCESS whose row reads as RUNNING, or is missing, and would run again — are
/// `Corrupt`, naming the run and the row; put back, the run loads as it was.
#[test]
fn edited_or_missing_rows_of_a_database_are_corrupt_naming_them() {
    let tmp = TempDir::new();
    let path = tmp.path().join("flows.db");
    let store = SqliteStore::open(&path).unwrap();
    let original = small_run(&store);
    let cases = [
        (
            "UPDATE atoms SET state = 'RUNNING' WHERE name = 'launch'",
            "atoms row flow_id=\"run-1\" name=\"launch\"",
            "checksum",
        ),
        (
            "UPDATE atoms SET name = 'lunch' WHERE name = 'launch'",
            "atoms row flow_id=\"run-1\" name=\"lunch\"",
            "checksum",
        ),
        (
            "UPDATE atoms SET sum = NULL WHERE name = 'launch'",
            "atoms row flow_id=\"run-1\" name=\"launch\"",
            "no checksum",
        ),
        (
            "DELETE FROM atoms WHERE name = 'launch'",
            "set of rows of flow `run-1`",
            "tally",
        ),
        (
            "DELETE FROM retries",
            "set of rows of flow `run-1`",
            "tally",
        ),
        (
            "UPDATE retries SET attempt = 1",
            "retries row flow_id=\"run-1\" flow=\"Storage\" scope=Some(0)",
            "checksum",
        ),
        (
            "UPDATE flows SET state = 'PENDING'",
            "flows row id=\"run-1\"",
            "checksum",
        ),
        (
            "UPDATE flows SET tally = '0000000000000000'",
            "flows row id=\"run-1\"",
            "checksum",
        ),
        (
            "UPDATE graphs SET graph = '{\"name\":\"BootVm\",\"steps\":[]}'",
            "graphs row flow_id=\"run-1\"",
            "checksum",
        ),
        (
            "DELETE FROM graphs",
            "graphs row flow_id=\"run-1\"",
            "records a graph",
        ),
    ];
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (edit, what_names, detail_says) in cases {
        conn.execute_batch("SAVEPOINT edit").unwrap();
        conn.execute_batch(edit).unwrap();
        conn.execute_batch("RELEASE edit").unwrap();
        match store.load_flow(RUN) {
            Err(StoreError::Corrupt { what, detail }) => {
                assert!(what.contains(what_names), "{edit}: {what}");
                assert!(detail.contains(detail_says), "{edit}: {detail}");
            }
            other => panic!("{edit}: {other:?}"),
        }
        // Put back: the same rows, the same sums.
        drop(store.delete_flow(RUN));
        let mut back = original.flow.clone();
        back.updated_at = 0;
        store.create_flow(&back).unwrap();
        store
            .checkpoint(
                RUN,
                &Checkpoint {
                    atoms: original.atoms.clone(),
                    retries: original.retries.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut loaded = store.load_flow(RUN).unwrap().unwrap();
        loaded.flow.updated_at = original.flow.updated_at;
        assert_eq!(loaded, original, "{edit}");
    }
}

/// A progress reads back as the very `f32` written, in both durable stores — also
/// 7.038531e-26, the one value in 0..=1 that reading JSON through an `f64` rounds to its
/// neighbour (found by trying every `f32` from 0 to 1) and that would then fail its checksum.
#[test]
fn every_progress_reads_back_exactly() {
    let tmp = TempDir::new();
    let stores: [Box<dyn Store>; 2] = [
        Box::new(DirStore::open(tmp.path().join("dir")).unwrap()),
        Box::new(SqliteStore::open(tmp.path().join("flows.db")).unwrap()),
    ];
    for store in &stores {
        let flow = FlowRecord::new("book", "F", "fp", json!(null));
        store.create_flow(&flow).unwrap();
        let atoms: Vec<AtomRecord> = [7.038_531e-26_f32, 0.1, 1.0 / 3.0, f32::MIN_POSITIVE, 1.0]
            .into_iter()
            .enumerate()
            .map(|(i, progress)| AtomRecord {
                progress,
                ..AtomRecord::new(format!("s{i}"))
            })
            .collect();
        let cp = Checkpoint {
            atoms: atoms.clone(),
            ..Default::default()
        };
        store.checkpoint(&flow.id, &cp).unwrap();
        let stored = store.load_flow(&flow.id).unwrap().unwrap();
        let bits = |a: &[AtomRecord]| a.iter().map(|a| a.progress.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&stored.atoms), bits(&atoms));
    }
}

// ---------------------------------------------------------------------------------------------
// The engine: a damaged store is never run from

static RAN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

#[task(provides = server)]
fn boot(name: String) -> u32 {
    RAN[0].fetch_add(1, Ordering::SeqCst);
    u32::try_from(name.len()).unwrap()
}

#[task(provides = url)]
fn serve(server: u32) -> String {
    RAN[1].fetch_add(1, Ordering::SeqCst);
    format!("http://10.0.0.{server}")
}

flow! {
    flow Service(name: String) -> (url) { linear [ boot, serve ] }
}

/// A run stopped after `boot` succeeded (its third checkpoint fails, as a crash there would
/// stop it), then the stored name of `boot` damaged by one bit (`boot` → `boou`): without
/// checksums the resume found no record of `boot` and booted again. Now the resume is refused
/// with `Corrupt` and runs no step; with the damage undone it resumes and `boot` does not run
/// again. Both durable stores.
#[test]
fn a_resume_from_a_damaged_store_runs_no_step() {
    let tmp = TempDir::new();
    let db = tmp.path().join("flows.db");
    let dir = tmp.path().join("dir");
    type Open = Box<dyn Fn() -> Arc<dyn Store>>;
    type Damage = Box<dyn Fn(bool)>;
    let run_file = dir.join("svc.json");
    let (db2, file2) = (db.clone(), run_file.clone());
    let backends: [(&str, Open, Damage); 2] = [
        (
            "dir",
            Box::new({
                let dir = dir.clone();
                move || Arc::new(DirStore::open(&dir).unwrap())
            }),
            Box::new(move |damage| {
                let (from, to) = if damage {
                    ("boot", "boou")
                } else {
                    ("boou", "boot")
                };
                // The step's record, not the flow's graph, which names the step too.
                let text = fs::read_to_string(&file2).unwrap();
                let (flow, atoms) = text.split_at(text.find("\n  \"atoms\": [").unwrap());
                let from = format!("\"name\": \"{from}\"");
                assert_eq!(atoms.matches(&from).count(), 1);
                let atoms = atoms.replace(&from, &format!("\"name\": \"{to}\""));
                fs::write(&file2, format!("{flow}{atoms}")).unwrap();
            }),
        ),
        (
            "sqlite",
            Box::new(move || Arc::new(SqliteStore::open(&db).unwrap())),
            Box::new(move |damage| {
                let (from, to) = if damage {
                    ("boot", "boou")
                } else {
                    ("boou", "boot")
                };
                let conn = rusqlite::Connection::open(&db2).unwrap();
                let changed = conn
                    .execute("UPDATE atoms SET name = ?2 WHERE name = ?1", [from, to])
                    .unwrap();
                assert_eq!(changed, 1);
            }),
        ),
    ];
    for (name, open, damage) in backends {
        RAN.iter().for_each(|r| r.store(0, Ordering::SeqCst));
        let crashing = HookedStore::new(open(), |n, _, write| {
            if n >= 3 {
                return Err(StoreError::Io {
                    path: "crash".into(),
                    source: std::io::Error::other("the process died here"),
                });
            }
            write()
        });
        Engine::serial()
            .run(Service, ServiceInputs { name: "web".into() })
            .durable(Arc::new(crashing), "svc")
            .blocking()
            .unwrap_err();
        let ran = || RAN.each_ref().map(|r| r.load(Ordering::SeqCst));
        assert_eq!(ran(), [1, 1], "{name}");
        assert_eq!(
            open()
                .load_flow("svc")
                .unwrap()
                .unwrap()
                .atom("boot")
                .unwrap()
                .state,
            StepState::Success,
            "{name}"
        );

        damage(true);
        let refused = Engine::serial().resume(Service, open(), "svc").blocking();
        match refused {
            Err(DurableError::Store(StoreError::Corrupt { what, .. })) => {
                assert!(
                    what.contains("boou") && what.contains("svc"),
                    "{name}: {what}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(ran(), [1, 1], "{name}: no step ran");

        damage(false);
        let out = Engine::serial()
            .resume(Service, open(), "svc")
            .blocking()
            .unwrap();
        assert_eq!(out.url, "http://10.0.0.3", "{name}");
        assert_eq!(ran(), [1, 2], "{name}: boot did not run again");
    }
}
