//! Deciders: `a -> b if decide` in a graph. When the decider says no, `b` and every step that
//! depends only on skipped steps end IGNORE, and the flow can still succeed.
mod common;

use std::sync::{Arc, Mutex};

use common::Trace;
use taskflow::prelude::*;
use taskflow::{Listener, StepEvent, StepState};

#[task(provides = size_gb)]
fn measure(trace: &Trace, requested: u32) -> u32 {
    trace.push("measure");
    requested
}

/// Only volumes of at least 10 GB get a backup.
#[task]
fn big_enough(size_gb: &u32) -> bool {
    *size_gb >= 10
}

#[task(provides = backup_id, revert = drop_backup)]
fn backup(trace: &Trace, size_gb: u32) -> String {
    trace.push("backup");
    format!("bk-{size_gb}")
}

#[revert]
fn drop_backup(trace: &Trace) {
    trace.push("drop backup");
}

#[task(provides = verified)]
fn verify(trace: &Trace, backup_id: &str) -> String {
    trace.push("verify");
    format!("{backup_id} ok")
}

#[task(provides = report)]
fn summarize(trace: &Trace, size_gb: u32, verified: Option<String>) -> String {
    trace.push("summarize");
    format!(
        "{size_gb} GB, backup: {}",
        verified.as_deref().unwrap_or("none")
    )
}

flow! {
    flow Backup(trace: Trace, requested: u32) -> (report, verified) {
        graph [
            measure,
            backup,
            verify,
            summarize,
            measure -> backup if big_enough,
        ]
    }
}

#[derive(Default)]
struct States(Mutex<Vec<String>>);

impl Listener for States {
    fn on_step(&self, e: &StepEvent<'_>) {
        if matches!(e.state, StepState::Ignore | StepState::Success) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", e.step, e.state));
        }
    }
}

#[test]
fn a_decider_that_says_yes_lets_the_branch_run() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let out = engine
            .run(
                Backup,
                BackupInputs {
                    trace: trace.clone(),
                    requested: 20,
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.report, "20 GB, backup: bk-20 ok");
        assert_eq!(out.verified.as_deref(), Some("bk-20 ok"));
        assert_eq!(trace.events(), ["measure", "backup", "verify", "summarize"]);
    }
}

#[test]
fn a_decider_that_says_no_ignores_the_branch_and_the_flow_succeeds() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let states = Arc::new(States::default());
        let out = engine
            .listener(states.clone())
            .run(
                Backup,
                BackupInputs {
                    trace: trace.clone(),
                    requested: 5,
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.report, "5 GB, backup: none");
        assert_eq!(out.verified, None);
        assert_eq!(trace.events(), ["measure", "summarize"]);
        let states = states.0.lock().unwrap().clone();
        assert!(states.contains(&"backup IGNORE".to_owned()), "{states:?}");
        // `verify` depends only on the skipped `backup`: IGNORE too.
        assert!(states.contains(&"verify IGNORE".to_owned()), "{states:?}");
        assert!(
            states.contains(&"summarize SUCCESS".to_owned()),
            "{states:?}"
        );
    }
}

#[task]
fn fail_late(report: &str) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(format!(
        "late failure after {report}"
    )))
}

flow! {
    flow BackupThenFail(trace: Trace, requested: u32) {
        linear [ Backup, fail_late ]
    }
}

#[test]
fn ignored_steps_are_not_reverted() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let err = engine
            .run(
                BackupThenFail,
                BackupThenFailInputs {
                    trace: trace.clone(),
                    requested: 5,
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(err.failed_step(), "fail_late");
        assert_eq!(trace.events(), ["measure", "summarize"]);

        let trace = Trace::default();
        engine
            .run(
                BackupThenFail,
                BackupThenFailInputs {
                    trace: trace.clone(),
                    requested: 50,
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(
            trace.events(),
            ["measure", "backup", "verify", "summarize", "drop backup"]
        );
    }
}

// ---- defects found against TaskFlow's semantics: these tests fail on the current code

use std::time::Duration;

use taskflow::store::{MemoryStore, Store};

/// How often each decider was asked (a flow input, so the deciders can bind it by name).
#[derive(Clone, Default, Debug)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn call(&self, name: &str) -> usize {
        let mut calls = self.0.lock().unwrap();
        calls.push(name.to_owned());
        calls.iter().filter(|c| *c == name).count()
    }

    fn count(&self, name: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|c| *c == name).count()
    }
}

// ---- 7. a decider that panics is a failure inside its scope, handled by the scope's controller

#[task(provides = probed, revert = unprobe)]
fn probe(trace: &Trace) -> u32 {
    trace.push("probe");
    1
}

#[revert]
fn unprobe(trace: &Trace) {
    trace.push("unprobe");
}

/// Panics the first time it is asked, says yes afterwards.
#[task]
fn shaky_decider(calls: &Calls, probed: &u32) -> bool {
    let _ = probed;
    if calls.call("shaky") == 1 {
        panic!("decider exploded");
    }
    true
}

#[task(provides = used)]
fn use_probe(trace: &Trace, probed: u32) -> u32 {
    trace.push("use");
    probed + 1
}

flow! {
    flow Shaky(trace: Trace, calls: Calls) -> (used) {
        retry(Times(3)) graph [ probe, use_probe, probe -> use_probe if shaky_decider ]
    }
}

/// TaskFlow-correct: a decider that panics fails the guarded step like any failure inside the
/// scope, so the scope's retry controller decides: here `Times(3)` retries, the decider says yes
/// on the second attempt, and the run succeeds.
#[test]
fn a_panicking_decider_is_retried_by_the_scopes_controller() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let calls = Calls::default();
        let result = engine
            .run(
                Shaky,
                ShakyInputs {
                    trace: trace.clone(),
                    calls: calls.clone(),
                },
            )
            .blocking();
        assert_eq!(
            result.map(|out| out.used).map_err(|e| e.to_string()),
            Ok(Some(2)),
            "{engine:?}"
        );
        assert_eq!(
            trace.events(),
            ["probe", "unprobe", "probe", "use"],
            "{engine:?}"
        );
        assert_eq!(calls.count("shaky"), 2, "{engine:?}");
    }
}

// ---- 8. skipping a sub-flow step ignores every step inside it

#[task(provides = deep_value)]
fn deep_step(start: u32) -> u32 {
    start + 100
}

flow! {
    flow Deep(start: u32) -> (deep_value: u32) { linear [ deep_step ] }
}

#[task(provides = first_value)]
fn inner_first(start: u32) -> u32 {
    start + 1
}

flow! {
    flow Skippable(start: u32) -> (first_value: u32, deep_value: u32) {
        linear [ inner_first, Deep ]
    }
}

#[task(provides = start)]
fn begin(n: u32) -> u32 {
    n
}

#[task]
fn never(start: &u32) -> bool {
    let _ = start;
    false
}

flow! {
    flow SkipSub(n: u32) -> (first_value, deep_value) {
        graph [ begin, Skippable, begin -> Skippable if never ]
    }
}

/// Every IGNORE a listener sees, as `flow/step`, sorted.
#[derive(Default)]
struct Ignored(Mutex<Vec<String>>);

impl Listener for Ignored {
    fn on_step(&self, e: &StepEvent<'_>) {
        if e.state == StepState::Ignore {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}/{}", e.flow, e.step));
        }
    }
}

impl Ignored {
    fn sorted(&self) -> Vec<String> {
        let mut all = self.0.lock().unwrap().clone();
        all.sort();
        all
    }
}

/// TaskFlow-correct: when a decider skips a sub-flow step, every step inside it (recursively)
/// is IGNORE too — listeners see an IGNORE for each, and a durable run records each IGNORE.
#[test]
fn skipping_a_sub_flow_ignores_every_step_inside_it() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let ignored = Arc::new(Ignored::default());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let out = engine
            .clone()
            .listener(ignored.clone())
            .run(SkipSub, SkipSubInputs { n: 1 })
            .durable(store.clone(), "s")
            .blocking()
            .unwrap();
        assert_eq!((out.first_value, out.deep_value), (None, None));
        assert_eq!(
            ignored.sorted(),
            [
                "SkipSub/Skippable",
                "SkipSub/Skippable/Deep",
                "SkipSub/Skippable/Deep/deep_step",
                "SkipSub/Skippable/inner_first",
            ],
            "{engine:?}"
        );
        let stored = store.load_flow("s").unwrap().unwrap();
        let mut atoms: Vec<String> = stored
            .atoms
            .iter()
            .map(|a| format!("{} {}", a.name, a.state))
            .collect();
        atoms.sort();
        assert_eq!(
            atoms,
            [
                "Skippable IGNORE",
                "Skippable/Deep IGNORE",
                "Skippable/Deep/deep_step IGNORE",
                "Skippable/inner_first IGNORE",
                "begin SUCCESS",
            ],
            "{engine:?}"
        );
    }
}

// ---- 9. every decider on the links into a step is asked

#[task(provides = left)]
fn make_left(n: u32) -> u32 {
    n
}

#[task(provides = right)]
fn make_right(n: u32) -> u32 {
    n + 1
}

/// Says yes unless `n` is 1.
#[task]
fn left_ok(calls: &Calls, n: &u32) -> bool {
    calls.call("left_ok");
    *n != 1
}

/// Says yes unless `n` is 2.
#[task]
fn right_ok(calls: &Calls, n: &u32) -> bool {
    calls.call("right_ok");
    *n != 2
}

#[task(provides = joined)]
fn join_sides(left: u32, right: u32) -> u32 {
    left + right
}

flow! {
    flow JoinSub(left: u32, right: u32) -> (joined: u32) { linear [ join_sides ] }
}

flow! {
    flow TwoGatesSub(n: u32, calls: Calls) -> (joined) {
        graph [
            make_left,
            make_right,
            JoinSub,
            make_left -> JoinSub if left_ok,
            make_right -> JoinSub if right_ok,
        ]
    }
}

flow! {
    flow TwoGatesTask(n: u32, calls: Calls) -> (joined) {
        graph [
            make_left,
            make_right,
            join_sides,
            make_left -> join_sides if left_ok,
            make_right -> join_sides if right_ok,
        ]
    }
}

/// Runs a two-gate flow with `n`: (`joined`, calls of `left_ok`, calls of `right_ok`).
fn two_gates(engine: &Engine, sub: bool, n: u32) -> (Option<u32>, usize, usize) {
    let calls = Calls::default();
    let joined = if sub {
        engine
            .run(
                TwoGatesSub,
                TwoGatesSubInputs {
                    n,
                    calls: calls.clone(),
                },
            )
            .blocking()
            .unwrap()
            .joined
    } else {
        engine
            .run(
                TwoGatesTask,
                TwoGatesTaskInputs {
                    n,
                    calls: calls.clone(),
                },
            )
            .blocking()
            .unwrap()
            .joined
    };
    (joined, calls.count("left_ok"), calls.count("right_ok"))
}

/// Runs a two-gate flow with `n` = 5 (both deciders say yes), 2 (the second says no) and 1 (the
/// first says no), on both engines, checking what TaskFlow does: every decider on a link into
/// the step is asked, once, whatever the others said, and the step runs only when all say yes.
fn check_two_gates(sub: bool) {
    for engine in [Engine::serial(), Engine::parallel()] {
        let at = format!("{engine:?}");
        let result = common::within(Duration::from_secs(30), move || {
            [5, 2, 1].map(|n| two_gates(&engine, sub, n))
        });
        assert_eq!(result[0], (Some(11), 1, 1), "{at}: both say yes");
        assert_eq!(result[1], (None, 1, 1), "{at}: the second says no");
        assert_eq!(
            result[2],
            (None, 1, 1),
            "{at}: the first says no; the second is asked all the same"
        );
    }
}

/// TaskFlow-correct: when two links with deciders lead into the same sub-flow step, both
/// deciders are asked (once each, also when the first says no), and either saying no skips the
/// sub-flow.
#[test]
fn both_deciders_into_a_sub_flow_step_are_asked() {
    check_two_gates(true);
}

/// The same for a task step.
#[test]
fn both_deciders_into_a_task_step_are_asked() {
    check_two_gates(false);
}
