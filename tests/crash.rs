//! Crash and resume: a flow runs in a child process that kills itself with SIGKILL at a chosen
//! point — inside a step, just before, half-way through (a torn write left on disk) or just after
//! a checkpoint is written, inside a revert hook, inside a retried attempt — and a second child
//! process resumes it from the store. Then
//! the outcome is checked against the store and against the side effects the steps left:
//!
//! - the outputs are right (or the flow ended REVERTED, when it was meant to fail);
//! - no step whose SUCCESS was recorded before the crash ran again;
//! - a flow killed while reverting finished reverting, and left no resource behind;
//! - a retry controller's attempt count survived the crash (attempt numbers never go back).
//!
//! This file is its own test harness (`harness = false`): run with `child` arguments it is the
//! child process instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{DirStore, SqliteStore, Store};
use taskflow::{DurableError, StepState};

mod common;
use common::{Attempts, HookedStore};

// ---- the flow: provisioning with side effects on disk

/// What the steps do, stored with the run as its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Where resources (files) and the effect log go.
    dir: String,
    /// The step that fails every time (the flow then reverts), if any.
    fail_at: Option<String>,
    /// Attempts of `lease` that fail before one succeeds.
    lease_failures: u32,
}

/// Kills this process with SIGKILL when `point` is the kill point it was started with.
fn kill_point(point: &str) {
    if std::env::var("CRASH_KILL_AT").is_ok_and(|p| p == point) {
        let pid = std::process::id().to_string();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

fn log_effect(plan: &Plan, line: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&plan.dir).join("effects.log"))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[derive(Debug, thiserror::Error)]
#[error("{0} refused")]
struct Refused(String);

/// One step's effect: a resource file, logged; fails when the plan says so.
fn act(plan: &Plan, name: &str, value: String) -> Result<String, Refused> {
    kill_point(&format!("before:{name}"));
    log_effect(plan, &format!("run {name}"));
    std::fs::write(Path::new(&plan.dir).join("res").join(name), &value).unwrap();
    kill_point(&format!("after:{name}"));
    if plan.fail_at.as_deref() == Some(name) {
        return Err(Refused(name.to_owned()));
    }
    Ok(value)
}

/// Undoes one step: removes its resource (idempotent: it may run again after a crash).
fn undo(plan: &Plan, name: &str) {
    kill_point(&format!("revert-before:{name}"));
    log_effect(plan, &format!("undo {name}"));
    let _ = std::fs::remove_file(Path::new(&plan.dir).join("res").join(name));
    kill_point(&format!("revert-after:{name}"));
}

#[task(provides = net, revert = undo_network)]
fn network(plan: &Plan) -> Result<String, Refused> {
    act(plan, "network", "net0".into())
}
#[revert]
fn undo_network(plan: &Plan) {
    undo(plan, "network")
}

#[task(provides = disk, revert = undo_disk)]
fn disk(plan: &Plan) -> Result<String, Refused> {
    act(plan, "disk", "disk0".into())
}
#[revert]
fn undo_disk(plan: &Plan) {
    undo(plan, "disk")
}

#[task(provides = server, revert = undo_boot)]
async fn boot(plan: &Plan, net: &str, disk: &str) -> Result<String, Refused> {
    tokio::task::yield_now().await;
    act(plan, "boot", format!("vm({net},{disk})"))
}
#[revert]
async fn undo_boot(plan: &Plan) {
    undo(plan, "boot")
}

/// Fails its first `lease_failures` attempts (by the attempt its controller provides).
#[task(provides = lease, revert = undo_lease)]
fn lease(plan: &Plan, attempt: u32, server: &str) -> Result<String, Refused> {
    kill_point(&format!("before:lease@{attempt}"));
    log_effect(plan, &format!("run lease {attempt}"));
    std::fs::write(Path::new(&plan.dir).join("res").join("lease"), server).unwrap();
    kill_point(&format!("after:lease@{attempt}"));
    if attempt <= plan.lease_failures {
        return Err(Refused(format!("lease attempt {attempt}")));
    }
    Ok(format!("lease{attempt}({server})"))
}
#[revert]
fn undo_lease(plan: &Plan) {
    undo(plan, "lease")
}

#[task(provides = attached, revert = undo_attach)]
fn attach(plan: &Plan, lease: &str) -> Result<String, Refused> {
    act(plan, "attach", format!("attached[{lease}]"))
}
#[revert]
fn undo_attach(plan: &Plan) {
    undo(plan, "attach")
}

#[task(provides = config, revert = undo_configure)]
fn configure(plan: &Plan, attached: &str) -> Result<String, Refused> {
    act(plan, "configure", format!("cfg<{attached}>"))
}
#[revert]
fn undo_configure(plan: &Plan) {
    undo(plan, "configure")
}

#[task(provides = tagged, revert = undo_tag)]
fn tag(plan: &Plan, config: &str) -> Result<String, Refused> {
    act(plan, "tag", format!("#{config}"))
}
#[revert]
fn undo_tag(plan: &Plan) {
    undo(plan, "tag")
}

#[task(provides = summary, revert = undo_summarize)]
async fn summarize(plan: &Plan, tagged: &str) -> Result<String, Refused> {
    act(plan, "summarize", format!("done {tagged}"))
}
#[revert]
async fn undo_summarize(plan: &Plan) {
    undo(plan, "summarize")
}

flow! {
    flow Finish(plan: Plan, config: String) -> (summary: String) {
        linear [ tag, summarize ]
    }
}

flow! {
    flow Provision(plan: Plan) -> (summary: String) {
        linear [
            unordered [ network, disk ],
            boot,
            retry(Attempts(3) -> attempt: u32) linear [ lease, attach ],
            configure,
            Finish,
        ]
    }
}

const EXPECTED: &str = "done #cfg<attached[lease2(vm(net0,disk0))]>";
const STEPS: [&str; 8] = [
    "network",
    "disk",
    "boot",
    "lease",
    "attach",
    "configure",
    "tag",
    "summarize",
];

// ---- a store that dies around its n-th checkpoint

/// Dies half-way through writing a checkpoint: what a kill during the write leaves on disk (the
/// directory store: half a temp file that was never renamed; SQLite: a torn frame at the end of
/// the write-ahead log, never committed).
fn torn_write(kind: &str, dir: &Path) {
    use std::io::Write as _;
    let (path, bytes) = match kind {
        "dir" => {
            let file = dir.join("flows").join("job.json");
            let old = std::fs::read(&file).unwrap();
            (
                dir.join("flows").join("job.json.tmp"),
                old[..old.len() / 2].to_vec(),
            )
        }
        _ => (dir.join("flows.db-wal"), vec![0x5a; 3000]),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
    std::env::set_var("CRASH_KILL_AT", "torn");
    kill_point("torn");
}

/// The store of a child: dies just before, half-way through or just after its n-th checkpoint
/// when the kill point says so.
fn killing_store(kind: &str, dir: &Path) -> HookedStore {
    let (kind, dir) = (kind.to_owned(), dir.to_owned());
    HookedStore::new(open_store(&kind, &dir).into(), move |n, _, write| {
        kill_point(&format!("cp-before:{n}"));
        if std::env::var("CRASH_KILL_AT").is_ok_and(|p| p == format!("cp-torn:{n}")) {
            torn_write(&kind, &dir);
        }
        let result = write();
        kill_point(&format!("cp-after:{n}"));
        result
    })
}

fn open_store(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "sqlite" => Box::new(SqliteStore::open(dir.join("flows.db")).unwrap()),
        "dir" => Box::new(DirStore::open(dir.join("flows")).unwrap()),
        other => panic!("unknown store {other}"),
    }
}

// ---- the child process

fn child(args: &[String]) {
    let [mode, engine, store, dir, plan_json] = args else {
        panic!("child args: mode engine store dir plan-json, got {args:?}");
    };
    let dir = PathBuf::from(dir);
    let store: Arc<dyn Store> = Arc::new(killing_store(store, &dir));
    let engine = match engine.as_str() {
        "serial" => Engine::serial(),
        _ => Engine::parallel().workers(2),
    };
    let result = match mode.as_str() {
        "run" => {
            let plan: Plan = serde_json::from_str(plan_json).unwrap();
            engine
                .run(Provision, ProvisionInputs { plan })
                .durable(store, "job")
                .blocking()
        }
        _ => engine.resume(Provision, store, "job").blocking(),
    };
    match result {
        Ok(out) => println!("OK {}", out.summary),
        Err(DurableError::Failed(e)) => println!("FAILED {}", e.failed_step()),
        Err(e) => println!("ERROR {e}"),
    }
}

// ---- the parent: one case per kill point

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Every step succeeds (after `lease` failed once).
    Done,
    /// `summarize` (in the sub-flow) fails: everything is reverted.
    Reverted,
    /// `lease` fails every attempt: its controller gives up after 3, everything is reverted.
    Exhausted,
}

struct Case {
    engine: &'static str,
    store: &'static str,
    outcome: Outcome,
    kill: String,
}

fn run_child(mode: &str, case: &Case, dir: &Path, plan: &Plan, kill: Option<&str>) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child",
        mode,
        case.engine,
        case.store,
        dir.to_str().unwrap(),
        &serde_json::to_string(plan).unwrap(),
    ]);
    cmd.env_remove("CRASH_KILL_AT");
    if let Some(k) = kill {
        cmd.env("CRASH_KILL_AT", k);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt as _;
    match kill {
        Some(k) => assert_eq!(
            out.status.signal(),
            Some(9),
            "{k}: the child was meant to die by SIGKILL, but it ended with {:?}: {stdout} {stderr}",
            out.status
        ),
        None => assert!(
            out.status.success(),
            "{} {} {:?} {}: the resume failed: {stdout} {stderr}",
            case.engine,
            case.store,
            case.outcome,
            case.kill
        ),
    }
    stdout
}

fn effects(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("effects.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count_runs(effects: &[String], step: &str) -> usize {
    effects
        .iter()
        .filter(|l| *l == &format!("run {step}") || l.starts_with(&format!("run {step} ")))
        .count()
}

fn resources(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("res"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn check(case: &Case, n: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("taskflow-crash-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("res")).unwrap();
    let plan = Plan {
        dir: dir.to_str().unwrap().to_owned(),
        fail_at: (case.outcome == Outcome::Reverted).then(|| "summarize".to_owned()),
        lease_failures: if case.outcome == Outcome::Exhausted {
            99
        } else {
            1
        },
    };
    let what = format!(
        "{} engine, {} store, {:?}, killed at {}",
        case.engine, case.store, case.outcome, case.kill
    );
    run_child("run", case, &dir, &plan, Some(&case.kill));

    // What the store said when the process died.
    let at_crash = open_store(case.store, &dir)
        .load_flow("job")
        .map_err(|e| format!("{what}: the store does not load after the crash: {e}"))?
        .ok_or_else(|| format!("{what}: no flow in the store after the crash"))?;
    let succeeded: Vec<String> = at_crash
        .atoms
        .iter()
        .filter(|a| a.state == StepState::Success)
        .map(|a| a.name.rsplit('/').next().unwrap().to_owned())
        .collect();
    let effects_at_crash = effects(&dir);

    let out = run_child("resume", case, &dir, &plan, None);
    let after = effects(&dir);
    let stored = open_store(case.store, &dir)
        .load_flow("job")
        .unwrap()
        .unwrap();

    // Outputs (or the revert).
    let expected = match case.outcome {
        Outcome::Done => format!("OK {EXPECTED}"),
        Outcome::Reverted => "FAILED Finish/summarize".to_owned(),
        Outcome::Exhausted => "FAILED lease".to_owned(),
    };
    if out != expected {
        return Err(format!(
            "{what}: resume printed {out:?}, expected {expected:?}"
        ));
    }
    // No step whose SUCCESS was recorded ran again.
    for step in &succeeded {
        let (before, now) = (
            count_runs(&effects_at_crash, step),
            count_runs(&after, step),
        );
        if before != now {
            return Err(format!(
                "{what}: `{step}` was recorded SUCCESS before the crash but ran again \
                 ({before} runs before the crash, {now} after)"
            ));
        }
    }
    // Resources: all there when done; none left (no orphan) when reverted.
    let left = resources(&dir);
    let wanted: BTreeSet<String> = match case.outcome {
        Outcome::Done => STEPS.iter().map(|s| s.to_string()).collect(),
        _ => BTreeSet::new(),
    };
    if left != wanted {
        return Err(format!(
            "{what}: resources left {left:?}, expected {wanted:?}"
        ));
    }
    let final_state = stored.flow.state;
    let want_state = match case.outcome {
        Outcome::Done => FlowState::Success,
        _ => FlowState::Reverted,
    };
    if final_state != want_state {
        return Err(format!(
            "{what}: the flow ended {final_state}, expected {want_state}"
        ));
    }
    if case.outcome != Outcome::Done {
        for atom in &stored.atoms {
            // A failed sub-flow step undid its own steps and stays FAILURE.
            let failed_subflow = atom.name == "Finish" && atom.state == StepState::Failure;
            if !failed_subflow && !matches!(atom.state, StepState::Reverted | StepState::Pending) {
                return Err(format!("{what}: step `{}` ended {}", atom.name, atom.state));
            }
        }
    }
    // The retry controller's attempt count survived: attempt numbers never go back, and it
    // ran exactly the attempts its policy allows.
    let attempts: Vec<u32> = after
        .iter()
        .filter_map(|l| l.strip_prefix("run lease "))
        .map(|n| n.parse().unwrap())
        .collect();
    if attempts.windows(2).any(|w| w[1] < w[0]) {
        return Err(format!("{what}: lease attempts went back: {attempts:?}"));
    }
    let last = attempts.last().copied().unwrap_or(0);
    let want_last = if case.outcome == Outcome::Exhausted {
        3
    } else {
        2
    };
    if last != want_last {
        return Err(format!(
            "{what}: the last lease attempt was {last}, expected {want_last}"
        ));
    }
    let distinct: BTreeMap<u32, usize> = attempts.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(*a).or_default() += 1;
        m
    });
    if distinct.keys().copied().collect::<Vec<_>>() != (1..=want_last).collect::<Vec<_>>() {
        return Err(format!("{what}: lease attempts {attempts:?}"));
    }
    let retry = stored.retries.iter().find(|r| r.scope == 0);
    if retry.map(|r| r.attempt) != Some(want_last) {
        return Err(format!(
            "{what}: stored retry record {retry:?}, expected attempt {want_last}"
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |engine, store, outcome, kills: &[&str]| {
        for k in kills {
            cases.push(Case {
                engine,
                store,
                outcome,
                kill: (*k).to_owned(),
            });
        }
    };
    // During steps, around checkpoints, during the retry (a failed attempt, its revert, the
    // next attempt), in the sub-flow.
    let done_points: &[&str] = &[
        "before:network",
        "after:disk",
        "after:boot",
        "before:lease@1",
        "after:lease@1",
        "revert-before:lease",
        "revert-after:lease",
        "before:lease@2",
        "after:lease@2",
        "after:attach",
        "after:configure",
        "after:tag",
        "before:summarize",
        "after:summarize",
        "cp-before:1",
        "cp-after:1",
        "cp-before:3",
        "cp-after:4",
        "cp-before:6",
        "cp-after:7",
        "cp-after:9",
        "cp-before:11",
        "cp-after:12",
        "cp-torn:2",
        "cp-torn:8",
    ];
    add("serial", "sqlite", Outcome::Done, done_points);
    add("parallel", "sqlite", Outcome::Done, done_points);
    // During the revert of the whole flow, from inside the sub-flow out.
    let revert_points: &[&str] = &[
        "after:summarize",
        "revert-before:summarize",
        "revert-after:summarize",
        "revert-after:tag",
        "revert-before:configure",
        "revert-after:attach",
        "revert-before:lease",
        "revert-after:boot",
        "revert-before:disk",
        "revert-after:network",
        "cp-after:13",
        "cp-before:15",
        "cp-after:17",
        "cp-torn:16",
    ];
    add("serial", "sqlite", Outcome::Reverted, revert_points);
    add("parallel", "sqlite", Outcome::Reverted, revert_points);
    // A controller that gives up: killed in its second and third attempts and in between.
    let exhausted_points: &[&str] = &[
        "after:lease@2",
        "revert-after:lease",
        "before:lease@3",
        "after:lease@3",
        "revert-before:boot",
    ];
    add("serial", "sqlite", Outcome::Exhausted, exhausted_points);
    add("parallel", "sqlite", Outcome::Exhausted, exhausted_points);
    // The directory store.
    add(
        "serial",
        "dir",
        Outcome::Done,
        &["after:boot", "cp-after:5", "after:lease@2", "cp-torn:4"],
    );
    add(
        "parallel",
        "dir",
        Outcome::Reverted,
        &["revert-after:tag", "cp-before:14", "cp-torn:15"],
    );
    cases
}

fn main() {
    // `cargo test -- --list` and filters: this harness has one test, `crash`.
    if common::child_or_list("crash", child) {
        return;
    }
    let cases = cases();
    let points: BTreeSet<(&str, &str, String)> = cases
        .iter()
        .map(|c| (c.engine, c.store, format!("{:?} {}", c.outcome, c.kill)))
        .collect();
    assert!(points.len() >= 30, "only {} kill points", points.len());
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        if let Err(e) = check(case, n) {
            failures.push(e);
        }
    }
    println!(
        "crash: {} kill points, {} failed",
        cases.len(),
        failures.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} kill points failed",
        failures.len(),
        cases.len()
    );
}
