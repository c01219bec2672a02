//! What a resume does with a step that was RUNNING when its process died, as its task says
//! (`#[task(on_takeover = ..)]`): a child process runs (or resumes) a durable run on SQLite and
//! is killed with SIGKILL inside the step (or inside its undo); the test then resumes the run
//! itself, once the child's lease has run out, and checks what ran, from a log the step bodies
//! and hooks write, and what the store recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{SqliteStore, Store};
use taskflow::{DurableError, FlowState, OutcomeUnknown, Release, StepState, TaskContext};

mod common;

/// What the steps need, stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    log: String,
    /// The undo of `charge` fails.
    undo_fails: bool,
}

/// Whether this process is the child that the test kills: only there do the bodies wait.
fn in_child() -> bool {
    std::env::var_os("TF_TAKEOVER_CHILD").is_some()
}

fn note(plan: &Plan, line: String) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[task(provides = a)]
fn prepare(plan: &Plan) -> u32 {
    note(plan, "prepare".into());
    1
}

/// The step the child is killed in: it waits there (in the child only).
fn charging(plan: &Plan, ctx: &TaskContext, a: u32) -> u32 {
    note(plan, format!("charge start {}", ctx.idempotency_key()));
    if in_child() {
        std::thread::sleep(Duration::from_secs(60));
    }
    note(plan, "charge end".into());
    a + 1
}

/// The undo: what its `result` says, then (in the child, when it is to be killed in the undo) a
/// wait; it fails when the plan says so.
fn undoing(plan: &Plan, result: TaskOutcome<&u32>) -> Result<(), std::io::Error> {
    let what = match &result {
        Ok(b) => format!("ok {b}"),
        Err(f) if f.downcast_ref::<OutcomeUnknown>().is_some() => "unknown".to_owned(),
        Err(f) => format!("failed: {}", f.error()),
    };
    note(plan, format!("undo start {what}"));
    if in_child() && std::env::var_os("TF_TAKEOVER_KILL_IN_UNDO").is_some() {
        std::thread::sleep(Duration::from_secs(60));
    }
    if plan.undo_fails {
        note(plan, "undo fails".into());
        return Err(std::io::Error::other("the provider is down"));
    }
    note(plan, "undo end".into());
    Ok(())
}

#[task(provides = b, revert = undo_rerun)]
fn charge_rerun(plan: &Plan, ctx: &TaskContext, a: u32) -> u32 {
    charging(plan, ctx, a)
}

#[revert]
fn undo_rerun(plan: &Plan, result: TaskOutcome<&u32>) -> Result<(), std::io::Error> {
    undoing(plan, result)
}

#[task(provides = b, revert = undo_revert, on_takeover = revert_then_rerun)]
fn charge_revert(plan: &Plan, ctx: &TaskContext, a: u32) -> u32 {
    charging(plan, ctx, a)
}

#[revert]
fn undo_revert(plan: &Plan, result: TaskOutcome<&u32>) -> Result<(), std::io::Error> {
    undoing(plan, result)
}

#[task(provides = b, revert = undo_hold, on_takeover = hold)]
fn charge_hold(plan: &Plan, ctx: &TaskContext, a: u32) -> u32 {
    charging(plan, ctx, a)
}

#[revert]
fn undo_hold(plan: &Plan, result: TaskOutcome<&u32>) -> Result<(), std::io::Error> {
    undoing(plan, result)
}

#[task(provides = c)]
fn finish(plan: &Plan, b: u32) -> u32 {
    note(plan, format!("finish {b}"));
    b * 10
}

#[task]
fn refuse(plan: &Plan, c: u32) -> Result<(), std::io::Error> {
    note(plan, format!("refuse {c}"));
    Err(std::io::Error::other("no"))
}

flow! { flow Rerun(plan: Plan) -> (c) { linear [ prepare, charge_rerun, finish ] } }
flow! { flow RevertRerun(plan: Plan) -> (c) { linear [ prepare, charge_revert, finish ] } }
flow! { flow Hold(plan: Plan) -> (c) { linear [ prepare, charge_hold, finish ] } }
flow! { flow HoldInner(plan: Plan, a: u32) -> (c) { linear [ charge_hold, finish ] } }
flow! { flow HoldOuter(plan: Plan) -> (c) { linear [ prepare, HoldInner ] } }
flow! { flow HoldThenRefuse(plan: Plan) -> () { linear [ prepare, charge_hold, finish, refuse ] } }

fn engine(parallel: bool) -> Engine {
    let engine = if parallel {
        Engine::parallel()
    } else {
        Engine::serial()
    };
    engine.lease(Duration::from_millis(300), Duration::from_millis(100))
}

fn store(db: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(db).unwrap())
}

/// Starts or resumes run `id` of the flow named `flow`: what the child does, and the test after.
fn run_named(
    flow: &str,
    db: &Path,
    id: &str,
    plan: Plan,
    parallel: bool,
) -> Result<(), DurableError> {
    let store = store(db);
    let e = engine(parallel);
    let exists = store.load_flow(id).unwrap().is_some();
    macro_rules! go {
        ($f:ident) => {
            if exists {
                e.resume($f, store, id).blocking().map(drop)
            } else {
                e.run($f, paste_inputs!($f, plan))
                    .durable(store, id)
                    .blocking()
                    .map(drop)
            }
        };
    }
    macro_rules! paste_inputs {
        (Rerun, $p:expr) => {
            RerunInputs { plan: $p }
        };
        (RevertRerun, $p:expr) => {
            RevertRerunInputs { plan: $p }
        };
        (Hold, $p:expr) => {
            HoldInputs { plan: $p }
        };
        (HoldOuter, $p:expr) => {
            HoldOuterInputs { plan: $p }
        };
        (HoldThenRefuse, $p:expr) => {
            HoldThenRefuseInputs { plan: $p }
        };
    }
    match flow {
        "Rerun" => go!(Rerun),
        "RevertRerun" => go!(RevertRerun),
        "Hold" => go!(Hold),
        "HoldOuter" => go!(HoldOuter),
        "HoldThenRefuse" => go!(HoldThenRefuse),
        other => panic!("no flow {other}"),
    }
}

/// The child: runs the run named by `TF_TAKEOVER_CHILD` (`flow db id undo_fails`) until killed.
#[test]
fn takeover_child() {
    let Ok(what) = std::env::var("TF_TAKEOVER_CHILD") else {
        return; // run as a test of its own: nothing to do
    };
    let parts: Vec<&str> = what.split('|').collect();
    let [flow, db, id, log, undo_fails] = parts[..] else {
        panic!("bad TF_TAKEOVER_CHILD {what}")
    };
    let plan = Plan {
        log: log.to_owned(),
        undo_fails: undo_fails == "true",
    };
    let _ = run_named(flow, Path::new(db), id, plan, false);
    panic!("the child was to be killed before its run ended");
}

struct Case {
    _tmp: common::TempDir,
    db: PathBuf,
    log: PathBuf,
    id: String,
    flow: &'static str,
    undo_fails: bool,
}

impl Case {
    fn new(flow: &'static str, undo_fails: bool) -> Case {
        let tmp = common::TempDir::new();
        let db = tmp.path().join("flows.db");
        let log = tmp.path().join("log");
        Case {
            _tmp: tmp,
            db,
            log,
            id: format!("run-{flow}"),
            flow,
            undo_fails,
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            log: self.log.display().to_string(),
            undo_fails: self.undo_fails,
        }
    }

    /// Starts the child on the run and kills it once the log has `until` lines matching.
    fn kill_child_at(&self, until: &str, in_undo: bool) {
        let spec = format!(
            "{}|{}|{}|{}|{}",
            self.flow,
            self.db.display(),
            self.id,
            self.log.display(),
            self.undo_fails
        );
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "takeover_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TF_TAKEOVER_CHILD", spec)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if in_undo {
            cmd.env("TF_TAKEOVER_KILL_IN_UNDO", "1");
        }
        let before = self.count(until);
        let mut child = cmd.spawn().unwrap();
        let start = Instant::now();
        while self.count(until) == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the child never got to `{until}`: {:?}",
                lines(&self.log)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        common::kill(&mut child);
        // Its lease runs out.
        std::thread::sleep(Duration::from_millis(500));
    }

    fn count(&self, prefix: &str) -> usize {
        lines(&self.log)
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn resume(&self) -> Result<(), DurableError> {
        run_named(self.flow, &self.db, &self.id, self.plan(), false)
    }

    /// The same, on the parallel engine.
    fn resume_parallel(&self) -> Result<(), DurableError> {
        run_named(self.flow, &self.db, &self.id, self.plan(), true)
    }

    fn atom(&self, name: &str) -> taskflow::store::AtomRecord {
        let stored = store(&self.db).load_flow(&self.id).unwrap().unwrap();
        stored
            .atoms
            .into_iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no record of {name}"))
    }

    fn flow_state(&self) -> FlowState {
        store(&self.db)
            .load_flow(&self.id)
            .unwrap()
            .unwrap()
            .flow
            .state
    }

    fn release(&self, how: Release) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(taskflow::release_held(store(&self.db), &self.id, how))
            .unwrap()
    }
}

#[test]
fn by_default_a_step_running_at_the_kill_runs_again_with_the_same_idempotency_key() {
    let case = Case::new("Rerun", false);
    case.kill_child_at("charge start", false);
    case.resume().unwrap();
    let log = lines(&case.log);
    assert_eq!(
        log,
        [
            "prepare",
            "charge start run-Rerun:charge_rerun",
            "charge start run-Rerun:charge_rerun",
            "charge end",
            "finish 2",
        ],
        "no undo, the same key both times"
    );
    assert_eq!(case.atom("charge_rerun").runs, 2);
}

#[test]
fn revert_then_rerun_undoes_the_step_with_outcome_unknown_then_runs_it_again() {
    let case = Case::new("RevertRerun", false);
    case.kill_child_at("charge start", false);
    case.resume().unwrap();
    assert_eq!(
        lines(&case.log),
        [
            "prepare",
            "charge start run-RevertRerun:charge_revert",
            "undo start unknown",
            "undo end",
            "charge start run-RevertRerun:charge_revert",
            "charge end",
            "finish 2",
        ]
    );
    assert_eq!(case.flow_state(), FlowState::Success);
    let charge = case.atom("charge_revert");
    assert_eq!((charge.state, charge.attempt), (StepState::Success, 1));
}

#[test]
fn a_kill_during_the_undo_after_a_takeover_undoes_again_on_the_next_resume() {
    let case = Case::new("RevertRerun", false);
    case.kill_child_at("charge start", false);
    // The second child resumes, and is killed inside the undo.
    case.kill_child_at("undo start", true);
    let charge = case.atom("charge_revert");
    assert_eq!(
        (
            charge.state,
            charge.result.is_none(),
            charge.failure.is_none()
        ),
        (StepState::Reverting, true, true),
        "recorded as being undone"
    );
    case.resume().unwrap();
    assert_eq!(
        lines(&case.log),
        [
            "prepare",
            "charge start run-RevertRerun:charge_revert",
            "undo start unknown",
            "undo start unknown",
            "undo end",
            "charge start run-RevertRerun:charge_revert",
            "charge end",
            "finish 2",
        ]
    );
}

#[test]
fn a_failed_undo_after_a_takeover_holds_the_run() {
    let case = Case::new("RevertRerun", true);
    case.kill_child_at("charge start", false);
    let Err(DurableError::Held { flow_id, steps }) = case.resume() else {
        panic!("not held")
    };
    assert_eq!(flow_id, "run-RevertRerun");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].step, "charge_revert");
    assert!(
        steps[0].reason.contains("revert hook failed")
            && steps[0].reason.contains("provider is down"),
        "{}",
        steps[0].reason
    );
    let charge = case.atom("charge_revert");
    assert_eq!(charge.state, StepState::Running);
    assert!(
        charge.revert_failure.is_some(),
        "the hook's failure is kept"
    );
    assert_eq!(case.flow_state(), FlowState::Suspended);
    // Nothing ran but the undo.
    assert_eq!(
        lines(&case.log),
        [
            "prepare",
            "charge start run-RevertRerun:charge_revert",
            "undo start unknown",
            "undo fails",
        ]
    );
}

#[test]
fn hold_stops_the_run_with_nothing_run_until_a_person_releases_it_to_run_again() {
    let case = Case::new("Hold", false);
    case.kill_child_at("charge start", false);
    let before = lines(&case.log);
    for _ in 0..2 {
        // Held, and held still: the hold is recorded, not decided anew.
        match case.resume() {
            Err(DurableError::Held { steps, .. }) => {
                assert_eq!(steps[0].step, "charge_hold");
                assert!(
                    steps[0].reason.contains("on_takeover = hold"),
                    "{}",
                    steps[0].reason
                );
            }
            other => panic!("not held: {other:?}"),
        }
        assert_eq!(lines(&case.log), before, "nothing ran");
        assert_eq!(case.flow_state(), FlowState::Suspended);
        let charge = case.atom("charge_hold");
        assert_eq!(charge.state, StepState::Running);
        assert!(charge
            .failure
            .unwrap()
            .message
            .contains("held for a person"));
    }
    let error = case.resume().unwrap_err().to_string();
    assert!(
        error.contains("held for a person") && error.contains("taskflow release"),
        "{error}"
    );
    assert_eq!(case.release(Release::Rerun), ["charge_hold"]);
    assert!(case.release(Release::Rerun).is_empty(), "released once");
    case.resume().unwrap();
    assert_eq!(
        &lines(&case.log)[before.len()..],
        [
            "charge start run-Hold:charge_hold",
            "charge end",
            "finish 2"
        ]
    );
    assert_eq!(case.flow_state(), FlowState::Success);
}

#[test]
fn a_held_step_released_as_failed_is_undone_with_that_failure_and_the_run_reverted() {
    let case = Case::new("Hold", false);
    case.kill_child_at("charge start", false);
    assert!(matches!(case.resume(), Err(DurableError::Held { .. })));
    assert_eq!(case.release(Release::Fail), ["charge_hold"]);
    let Err(DurableError::Failed(error)) = case.resume() else {
        panic!("not reverted")
    };
    assert_eq!(error.failed_step(), "charge_hold");
    assert_eq!(case.flow_state(), FlowState::Reverted);
    let log = lines(&case.log);
    let undo = log
        .iter()
        .find(|l| l.starts_with("undo start"))
        .expect("undone");
    assert!(
        undo.contains("failed: marked failed by a person"),
        "the hook gets the person's failure: {undo}"
    );
    assert!(!log
        .iter()
        .any(|l| l == "charge end" || l.starts_with("finish")));
}

#[test]
fn a_step_inside_a_sub_flow_is_held_by_its_path() {
    let case = Case::new("HoldOuter", false);
    case.kill_child_at("charge start", false);
    match case.resume() {
        Err(DurableError::Held { steps, .. }) => assert_eq!(steps[0].step, "HoldInner/charge_hold"),
        other => panic!("not held: {other:?}"),
    }
    assert_eq!(case.release(Release::Rerun), ["HoldInner/charge_hold"]);
    case.resume().unwrap();
    assert_eq!(
        lines(&case.log),
        [
            "prepare",
            "charge start run-HoldOuter:HoldInner/charge_hold",
            "charge start run-HoldOuter:HoldInner/charge_hold",
            "charge end",
            "finish 2",
        ]
    );
}

#[test]
fn a_run_that_is_not_held_is_not_changed_by_a_release() {
    let case = Case::new("HoldThenRefuse", false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Ends REVERTED with nothing held (no kill: nothing was running).
    assert!(matches!(case.resume(), Err(DurableError::Failed(_))));
    let before = store(&case.db).load_flow(&case.id).unwrap().unwrap();
    let released = rt
        .block_on(taskflow::release_held(
            store(&case.db),
            &case.id,
            Release::Fail,
        ))
        .unwrap();
    assert!(released.is_empty());
    let after = store(&case.db).load_flow(&case.id).unwrap().unwrap();
    assert_eq!(before.atoms, after.atoms);
    assert_eq!(before.flow.epoch, after.flow.epoch, "not even taken");
    let missing = rt.block_on(taskflow::release_held(
        store(&case.db),
        "no-such-run",
        Release::Rerun,
    ));
    assert!(missing.unwrap_err().to_string().contains("no-such-run"));
}

#[test]
fn the_parallel_engine_follows_the_policies_too() {
    let undo = Case::new("RevertRerun", false);
    undo.kill_child_at("charge start", false);
    undo.resume_parallel().unwrap();
    assert_eq!(
        &lines(&undo.log)[2..],
        [
            "undo start unknown",
            "undo end",
            "charge start run-RevertRerun:charge_revert",
            "charge end",
            "finish 2",
        ]
    );
    let hold = Case::new("HoldOuter", false);
    hold.kill_child_at("charge start", false);
    let before = lines(&hold.log);
    assert!(matches!(
        hold.resume_parallel(),
        Err(DurableError::Held { .. })
    ));
    assert_eq!(lines(&hold.log), before, "nothing ran");
    assert_eq!(hold.flow_state(), FlowState::Suspended);
    assert_eq!(hold.release(Release::Rerun), ["HoldInner/charge_hold"]);
    hold.resume_parallel().unwrap();
    assert_eq!(hold.flow_state(), FlowState::Success);
}
