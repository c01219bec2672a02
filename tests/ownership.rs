//! One owner at a time, with real processes: four processes started together resume the same
//! ten runs of a 30-step flow, on SQLite, on the directory store and on PostgreSQL (at
//! `DATABASE_URL`, a schema per round), while the test kills owners
//! with SIGKILL at random moments and starts new processes in their place. Every step body
//! appends its start and end (run, step, pid, monotonic clock) to a shared log, and the test
//! appends each kill; then it checks, for every round:
//!
//! - every run ended SUCCESS with the right output, holding no lease;
//! - no two runs of one step's body overlapped in time (a step's run that was killed lasts until
//!   the kill), and none was started while another was under way;
//! - a step ran again only after the process that ran it was killed (so no step whose SUCCESS
//!   was recorded ran again), and the store's run count shows every start;
//! - no run file is torn (every directory-store file parses; SQLite's integrity check passes).
//!
//! A second test pauses an owner (SIGSTOP) past its lease, lets another process take the run over
//! and finish it, resumes the first (SIGCONT), and checks that nothing it did afterwards landed:
//! it stopped with `LostLease`, and the store is exactly as the second process left it.
//!
//! This file is its own test harness (`harness = false`): run with `child` arguments it is a
//! worker process instead. `OWNERSHIP_ROUNDS` (default 50) sets the rounds per store,
//! `OWNERSHIP_SEED` replays a round's random kills.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{DirStore, SqliteStore, Store, StoreError};
use taskflow::{DurableError, StepState, SuspendHandle};

mod common;
use common::{PgStore, TempDir};

// ---- the flow: 30 steps that log their start and end

/// What the steps need, stored with the run as its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The shared log.
    log: String,
    /// The run's id, for the log.
    run: String,
    /// A step that takes `slow_ms` instead of about a millisecond (the SIGSTOP test).
    slow: Option<String>,
    slow_ms: u64,
}

/// The machine's monotonic clock in nanoseconds (see `common::mono`).
fn mono() -> u128 {
    u128::from(common::mono())
}

/// Appends one line in a single write (O_APPEND: lines of several processes never mix).
fn append(log: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{line} {}\n", mono()).as_bytes())
        .unwrap();
}

fn body(plan: &Plan, step: &str, prev: u64, k: u64) -> u64 {
    let pid = std::process::id();
    append(&plan.log, &format!("start {} {step} {pid}", plan.run));
    let ms = if plan.slow.as_deref() == Some(step) {
        plan.slow_ms
    } else {
        // 0-2 ms, varying by step and process, so kills land inside bodies too.
        u64::from((pid as u64 + k).is_multiple_of(3)) * 2
    };
    std::thread::sleep(Duration::from_millis(ms));
    append(&plan.log, &format!("end {} {step} {pid}", plan.run));
    prev + k
}

macro_rules! steps {
    ($($name:ident($prev:ident) -> $out:ident = $k:literal;)*) => {$(
        #[task(provides = $out)]
        fn $name(plan: &Plan, $prev: u64) -> u64 {
            body(plan, stringify!($name), $prev, $k)
        }
    )*};
}

steps! {
    s1(v0) -> v1 = 1; s2(v1) -> v2 = 2; s3(v2) -> v3 = 3; s4(v3) -> v4 = 4; s5(v4) -> v5 = 5;
    s6(v5) -> v6 = 6; s7(v6) -> v7 = 7; s8(v7) -> v8 = 8; s9(v8) -> v9 = 9; s10(v9) -> v10 = 10;
    s11(v10) -> v11 = 11; s12(v11) -> v12 = 12; s13(v12) -> v13 = 13; s14(v13) -> v14 = 14;
    s15(v14) -> v15 = 15; s16(v15) -> v16 = 16; s17(v16) -> v17 = 17; s18(v17) -> v18 = 18;
    s19(v18) -> v19 = 19; s20(v19) -> v20 = 20; s21(v20) -> v21 = 21; s22(v21) -> v22 = 22;
    s23(v22) -> v23 = 23; s24(v23) -> v24 = 24; s25(v24) -> v25 = 25; s26(v25) -> v26 = 26;
    s27(v26) -> v27 = 27; s28(v27) -> v28 = 28; s29(v28) -> v29 = 29; s30(v29) -> v30 = 30;
}

flow! {
    flow Thirty(plan: Plan, v0: u64) -> (v30) {
        linear [
            s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15,
            s16, s17, s18, s19, s20, s21, s22, s23, s24, s25, s26, s27, s28, s29, s30,
        ]
    }
}

const STEPS: usize = 30;
const RUNS: usize = 10;
const PROCESSES: usize = 4;

/// The output of run `i`: its `v0` plus 1 + 2 + ... + 30.
fn expected(i: usize) -> u64 {
    1000 * i as u64 + 465
}

fn open(kind: &str, at: &Path) -> Arc<dyn Store> {
    match kind {
        "sqlite" => Arc::new(SqliteStore::open(at).unwrap()),
        "dir" => Arc::new(DirStore::open(at).unwrap()),
        "postgres" => Arc::new(PgStore::attach(&schema_of(at))),
        other => panic!("unknown store {other}"),
    }
}

/// The PostgreSQL schema of a round's store at `at` (in the round's temp dir): named after the
/// temp dir, so rounds and concurrent test processes never share one.
fn schema_of(at: &Path) -> String {
    let dir = at
        .parent()
        .and_then(|d| d.file_name())
        .unwrap()
        .to_string_lossy();
    let name: String = dir
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("own_{name}").chars().take(63).collect()
}

/// Drops a round's PostgreSQL schema when the round ends (nothing for the other stores).
fn schema_guard(round: &Round<'_>) -> Option<PgStore> {
    (round.kind == "postgres").then(|| PgStore::in_schema(&schema_of(&round.at)))
}

// ---- the worker process

/// `child <store kind> <store path> <log> <engine> <lease ms> <run ids, comma-separated>`:
/// resumes each unfinished run (skipping those another process holds) until all have ended.
/// Exits 0 when every run ended SUCCESS, 3 when this process lost a run's lease (the SIGSTOP
/// test expects it), 1 on anything else.
fn child(args: &[String]) {
    let [kind, at, log, engine, lease_ms, ids] = args else {
        panic!("child: bad arguments {args:?}");
    };
    let store = open(kind, Path::new(at));
    let engine = match engine.as_str() {
        "parallel" => Engine::parallel().workers(2),
        _ => Engine::serial(),
    };
    let engine = match lease_ms.parse::<u64>().unwrap() {
        0 => engine,
        ms => engine.lease(Duration::from_millis(ms), Duration::from_millis(ms / 4)),
    };
    let pid = std::process::id();
    let ids: Vec<&str> = ids.split(',').collect();
    loop {
        let mut open_runs = 0;
        for (i, id) in ids.iter().enumerate() {
            match store.load_flow(id) {
                Ok(Some(stored)) if stored.flow.state == FlowState::Success => continue,
                Ok(Some(_)) => {}
                other => {
                    eprintln!("child {pid}: loading {id}: {other:?}");
                    std::process::exit(1);
                }
            }
            open_runs += 1;
            match engine.resume(Thirty, store.clone(), id).blocking() {
                Ok(out) if out.v30 == expected(i) => append(log, &format!("ok {id} {pid}")),
                Ok(out) => {
                    eprintln!("child {pid}: {id} gave {} not {}", out.v30, expected(i));
                    std::process::exit(1);
                }
                Err(DurableError::Store(StoreError::RunBusy { .. })) => {}
                Err(DurableError::Store(e @ StoreError::LostLease { .. })) => {
                    append(log, &format!("lost {id} {pid}"));
                    eprintln!("child {pid}: {e}");
                    std::process::exit(3);
                }
                Err(e) => {
                    eprintln!("child {pid}: resuming {id}: {e}");
                    std::process::exit(1);
                }
            }
        }
        if open_runs == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- the test process

/// A small xorshift generator: the kills of a round are replayable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Round<'a> {
    kind: &'a str,
    at: PathBuf,
    log: String,
    ids: Vec<String>,
}

impl Round<'_> {
    fn spawn(&self, n: usize, lease_ms: u64) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .arg("child")
            .arg(self.kind)
            .arg(&self.at)
            .arg(&self.log)
            .arg(if n.is_multiple_of(2) {
                "serial"
            } else {
                "parallel"
            })
            .arg(lease_ms.to_string())
            .arg(self.ids.join(","))
            .spawn()
            .unwrap()
    }
}

/// Records the runs, SUSPENDED before their first step (so nothing has run and nobody holds
/// them), and returns the round.
fn prepare<'a>(kind: &'a str, tmp: &TempDir, slow: Option<(&str, u64)>, runs: usize) -> Round<'a> {
    let at = match kind {
        "sqlite" => tmp.path().join("flows.db"),
        "postgres" => tmp.path().join("pg"), // names the schema only
        _ => tmp.path().join("runs"),
    };
    let log = tmp.path().join("steps.log").to_string_lossy().into_owned();
    let store = open(kind, &at);
    let stop = SuspendHandle::new();
    stop.suspend();
    let ids: Vec<String> = (0..runs).map(|i| format!("run{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let plan = Plan {
            log: log.clone(),
            run: id.clone(),
            slow: slow.map(|(s, _)| s.to_owned()),
            slow_ms: slow.map_or(0, |(_, ms)| ms),
        };
        Engine::serial()
            .run(
                Thirty,
                ThirtyInputs {
                    plan,
                    v0: 1000 * i as u64,
                },
            )
            .durable(store.clone(), id)
            .until(&stop)
            .blocking()
            .unwrap();
    }
    Round { kind, at, log, ids }
}

#[derive(Debug)]
enum Event {
    Start {
        run: String,
        step: String,
        pid: u32,
        at: u128,
    },
    End {
        run: String,
        step: String,
        pid: u32,
        at: u128,
    },
    Kill {
        pid: u32,
        at: u128,
    },
    Other,
}

fn events(log: &str) -> Vec<Event> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let num = |s: &str| {
                s.parse::<u128>()
                    .unwrap_or_else(|_| panic!("bad log line {line:?}"))
            };
            match f[..] {
                ["start", run, step, pid, at] => Event::Start {
                    run: run.into(),
                    step: step.into(),
                    pid: num(pid) as u32,
                    at: num(at),
                },
                ["end", run, step, pid, at] => Event::End {
                    run: run.into(),
                    step: step.into(),
                    pid: num(pid) as u32,
                    at: num(at),
                },
                ["kill", pid, at] => Event::Kill {
                    pid: num(pid) as u32,
                    at: num(at),
                },
                ["ok" | "lost", ..] => Event::Other,
                _ => panic!("bad log line {line:?}"),
            }
        })
        .collect()
}

/// One run of a step's body: who, from when, until when (its end, or its process's kill),
/// whether it reached its end, and whether its process was killed afterwards (before its
/// SUCCESS may have been recorded).
#[derive(Debug)]
struct Interval {
    pid: u32,
    from: u128,
    until: Option<u128>,
    ended: bool,
    killed: bool,
}

/// Checks the log of a round (see the module's documentation); returns each step's number of
/// starts, by run and step.
fn check_log(log: &str) -> Result<BTreeMap<(String, String), usize>, String> {
    let events = events(log);
    let mut steps: BTreeMap<(String, String), Vec<Interval>> = BTreeMap::new();
    // Processes the parent has begun to kill: it writes `kill` before the signal, so a victim
    // can still log a start after that line, before the signal lands.
    let mut dying = std::collections::HashSet::new();
    for (n, event) in events.iter().enumerate() {
        match event {
            Event::Start { run, step, pid, at } => {
                let runs = steps.entry((run.clone(), step.clone())).or_default();
                // Such a late start of a victim is cut short by the kill: another process can
                // take the run only once the victim is dead (its lease lasts 30 s), so the
                // victim's run of the step ended before this start.
                for open in runs
                    .iter_mut()
                    .filter(|i| i.until.is_none() && i.pid != *pid && dying.contains(&i.pid))
                {
                    open.until = Some(*at);
                    open.killed = true;
                }
                if let Some(open) = runs.iter().find(|i| i.until.is_none()) {
                    return Err(format!(
                        "{run}/{step} started in {pid} (line {}) while {} still ran it",
                        n + 1,
                        open.pid
                    ));
                }
                if let Some(last) = runs.last() {
                    // It ran before: that run must have been cut short by its process's kill.
                    if !last.killed {
                        return Err(format!(
                            "{run}/{step} ran again in {pid} (line {}) after {} ran it to its end and was not killed",
                            n + 1,
                            last.pid
                        ));
                    }
                }
                runs.push(Interval {
                    pid: *pid,
                    from: *at,
                    until: None,
                    ended: false,
                    killed: dying.contains(pid),
                });
            }
            Event::End { run, step, pid, at } => {
                let runs = steps.get_mut(&(run.clone(), step.clone()));
                let open = runs.and_then(|runs| {
                    // Its own run still under way; or, for a victim, the run that its `kill`
                    // line closed: the parent writes that line before the signal, so the
                    // victim can still log the end of the step it was in, after that line.
                    let own = |i: &Interval| i.pid == *pid;
                    match runs.iter().position(|i| own(i) && i.until.is_none()) {
                        Some(k) => runs.get_mut(k),
                        None if dying.contains(pid) => runs
                            .iter_mut()
                            .rev()
                            .find(|i| own(i) && i.killed && !i.ended),
                        None => None,
                    }
                });
                let open =
                    open.ok_or_else(|| format!("{run}/{step} ended in {pid} without a start"))?;
                open.until = Some(*at);
                open.ended = true;
            }
            Event::Kill { pid, at } => {
                dying.insert(*pid);
                for runs in steps.values_mut() {
                    for i in runs.iter_mut().filter(|i| i.pid == *pid) {
                        // A run still under way ends with the kill; one that ended may still
                        // have had its SUCCESS unrecorded, so it may run again.
                        if i.until.is_none() {
                            i.until = Some(*at);
                        }
                        i.killed = true;
                    }
                }
            }
            Event::Other => {}
        }
    }
    let mut starts = BTreeMap::new();
    for ((run, step), runs) in &steps {
        for pair in runs.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.until.is_none_or(|until| until > b.from) {
                return Err(format!("{run}/{step}: {a:?} and {b:?} overlap"));
            }
        }
        let last = runs.last().unwrap();
        if !last.ended {
            return Err(format!(
                "{run}/{step}: its last run never finished: {last:?}"
            ));
        }
        starts.insert((run.clone(), step.clone()), runs.len());
    }
    Ok(starts)
}

/// The store after a round: every run SUCCESS with its output, no lease, a run count for each
/// step at least its number of starts in the log, and nothing torn.
fn check_store(
    round: &Round<'_>,
    starts: &BTreeMap<(String, String), usize>,
) -> Result<(), String> {
    let store = open(round.kind, &round.at);
    for (i, id) in round.ids.iter().enumerate() {
        let stored = store
            .load_flow(id)
            .map_err(|e| format!("{id}: {e}"))?
            .ok_or_else(|| format!("{id} is gone"))?;
        if stored.flow.state != FlowState::Success || stored.flow.lease.is_some() {
            return Err(format!(
                "{id}: {} with lease {:?}",
                stored.flow.state, stored.flow.lease
            ));
        }
        let last = stored.atom("s30").and_then(|a| a.result.clone());
        if last != Some(serde_json::json!(expected(i))) {
            return Err(format!("{id}: s30 gave {last:?}"));
        }
        for k in 1..=STEPS {
            let step = format!("s{k}");
            let atom = stored
                .atom(&step)
                .ok_or_else(|| format!("{id}/{step} not stored"))?;
            let started = starts
                .get(&(id.clone(), step.clone()))
                .copied()
                .unwrap_or(0);
            if atom.state != StepState::Success || started == 0 || (atom.runs as usize) < started {
                return Err(format!(
                    "{id}/{step}: {} with run count {}, started {started} times",
                    atom.state, atom.runs
                ));
            }
        }
    }
    match round.kind {
        "dir" => {
            for entry in std::fs::read_dir(&round.at).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read(&path).unwrap();
                    serde_json::from_slice::<serde_json::Value>(&text)
                        .map_err(|e| format!("torn run file {}: {e}", path.display()))?;
                }
            }
            let scan = DirStore::open(&round.at)
                .unwrap()
                .scan()
                .map_err(|e| e.to_string())?;
            if !scan.errors.is_empty() {
                return Err(format!("unreadable run files: {:?}", scan.errors));
            }
        }
        "postgres" => {} // the server keeps its own pages whole
        _ => {
            let db = rusqlite::Connection::open(&round.at).unwrap();
            let check: String = db
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            if check != "ok" {
                return Err(format!("integrity check: {check}"));
            }
        }
    }
    Ok(())
}

/// Kills `child` with SIGKILL (logging the kill first) and reaps it.
fn kill(round: &Round<'_>, child: &mut Child) {
    append(&round.log, &format!("kill {}", child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Child processes, killed if still running when the round ends early (its directory is about
/// to be removed).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One round: four processes resume the runs; up to three are killed at random moments, each
/// replaced by a new process. Returns the number of kills.
fn round(kind: &str, seed: u64) -> Result<usize, String> {
    let tmp = TempDir::new();
    let round = prepare(kind, &tmp, None, RUNS);
    let _schema = schema_guard(&round);
    let mut rng = Rng(seed | 1);
    let mut children = Children((0..PROCESSES).map(|n| round.spawn(n, 0)).collect());
    let children = &mut children.0;
    let kills = rng.below(4);
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        let live: Vec<usize> = (0..children.len())
            .filter(|&i| children[i].try_wait().unwrap().is_none())
            .collect();
        if live.is_empty() {
            break;
        }
        let victim = live[rng.below(live.len() as u64) as usize];
        kill(&round, &mut children[victim]);
        children[victim] = round.spawn(PROCESSES + k as usize, 0);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for child in children.iter_mut() {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    return Err(format!("process {} ended with {status}", child.id()));
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("a process never finished".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let starts = check_log(&round.log)?;
    check_store(&round, &starts)?;
    Ok(kills as usize)
}

/// The SIGSTOP test: owner A is paused inside a slow step past its lease; B takes the run over
/// and finishes it; A, resumed, must write nothing more.
fn stale_writer(kind: &str) -> Result<(), String> {
    let tmp = TempDir::new();
    let lease_ms = 400;
    let round = prepare(kind, &tmp, Some(("s5", 600)), 1);
    let _schema = schema_guard(&round);
    let mut a = Children(vec![round.spawn(0, lease_ms)]);
    let a = &mut a.0[0];
    // Pause A just after it started the slow step: its RUNNING checkpoint renewed the lease a
    // moment ago, so no write of A's (the keeper renews only a quarter lease later) is under way.
    let started = |pid: u32| {
        events(&round.log)
            .iter()
            .any(|e| matches!(e, Event::Start { step, pid: p, .. } if step == "s5" && *p == pid))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started(a.id()) {
        if Instant::now() > deadline || a.try_wait().unwrap().is_some() {
            return Err("A never reached its slow step".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let signal = |sig: &str, pid: u32| {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP", a.id());
    // Past A's lease (a paused process is not dead: only the lease's expiry frees the run).
    std::thread::sleep(Duration::from_millis(lease_ms * 2));
    let mut b = Children(vec![round.spawn(1, lease_ms)]);
    let b = &mut b.0[0];
    let status = b.wait().unwrap();
    if !status.success() {
        signal("-KILL", a.id());
        let _ = a.wait();
        return Err(format!("B ended with {status}"));
    }
    let store = open(kind, &round.at);
    let after_b = store.load_flow("run0").unwrap().unwrap();
    if after_b.flow.state != FlowState::Success || after_b.flow.epoch != 3 {
        // Epochs: 1 for the preparing process, 2 for A, 3 for B.
        return Err(format!(
            "after B: {} at epoch {}",
            after_b.flow.state, after_b.flow.epoch
        ));
    }
    let files_after_b = snapshot(kind, &round.at);
    let lines_after_b = events(&round.log).len();

    signal("-CONT", a.id());
    let status = a.wait().unwrap();
    if status.code() != Some(3) {
        return Err(format!(
            "A, resumed, ended with {status}, not with LostLease (3)"
        ));
    }
    let after_a = store.load_flow("run0").unwrap().unwrap();
    if after_a != after_b {
        return Err(format!(
            "A wrote after losing the run:\n{after_b:?}\n{after_a:?}"
        ));
    }
    if snapshot(kind, &round.at) != files_after_b {
        return Err("the store's files changed after A resumed".into());
    }
    // A finished the body it was paused in, and started nothing after it.
    let later: Vec<String> = events(&round.log)[lines_after_b..]
        .iter()
        .filter(|e| !matches!(e, Event::Other))
        .map(|e| format!("{e:?}"))
        .collect();
    let a_pid = a.id();
    let expected_end = |e: &String| {
        e.contains("End") && e.contains("\"s5\"") && e.contains(&format!("pid: {a_pid}"))
    };
    if later.len() != 1 || !expected_end(&later[0]) {
        return Err(format!("A, after losing the run, logged {later:?}"));
    }
    Ok(())
}

/// The rows of every table (SQLite) or the bytes of every run file (directory store).
fn snapshot(kind: &str, at: &Path) -> Vec<String> {
    match kind {
        "postgres" => {
            let pg = PgStore::attach(&schema_of(at));
            let schema = pg.schema.clone();
            let mut rows: Vec<String> = pg.rt.block_on(async {
                let url = common::database_url();
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let mut rows = Vec::new();
                for table in ["flows", "atoms", "retries", "graphs"] {
                    let sql = format!("SELECT '{table}: ' || t::text FROM \"{schema}\".{table} t");
                    for row in client.query(&sql, &[]).await.unwrap() {
                        rows.push(row.get::<_, String>(0));
                    }
                }
                rows
            });
            rows.sort();
            rows
        }
        "sqlite" => {
            let db = rusqlite::Connection::open(at).unwrap();
            let mut rows = Vec::new();
            for table in ["flows", "atoms", "retries"] {
                let mut q = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
                let n = q.column_count();
                let found = q
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap();
                for row in found {
                    rows.push(format!("{table}: {}", row.unwrap().join(" | ")));
                }
            }
            rows.sort();
            rows
        }
        _ => {
            let mut files: Vec<String> = std::fs::read_dir(at)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .map(|p| format!("{}: {}", p.display(), std::fs::read_to_string(&p).unwrap()))
                .collect();
            files.sort();
            files
        }
    }
}

fn main() {
    if common::child_or_list("ownership", child) {
        return;
    }
    let rounds: u64 = std::env::var("OWNERSHIP_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("OWNERSHIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut failures = Vec::new();
    for kind in ["sqlite", "dir", "postgres"] {
        if let Err(e) = stale_writer(kind) {
            failures.push(format!("{kind}, paused owner: {e}"));
        }
        let started = Instant::now();
        let mut kills = 0;
        for n in 0..rounds {
            let round_seed = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            match round(kind, round_seed) {
                Ok(k) => kills += k,
                Err(e) => failures.push(format!(
                    "{kind}, round {n} (OWNERSHIP_SEED={round_seed} OWNERSHIP_ROUNDS=1): {e}"
                )),
            }
        }
        println!(
            "ownership: {kind}: {rounds} rounds of {PROCESSES} processes over {RUNS} runs of {STEPS} steps, {kills} owners killed, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    for f in &failures {
        println!("  {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}
