//! Failure and revert semantics of the serial engine, through the public API.
mod common;

use std::error::Error as _;

use common::{Refused, Trace};
use taskflow::prelude::*;
use taskflow::PanicError;

// Five steps in a chain; `fail_at` makes step N fail. Every step has a revert hook that records
// whether it undoes a success or its own failure.
macro_rules! chain_step {
    ($name:ident, $undo:ident, $n:literal, $input:ident -> $output:ident) => {
        #[task(provides = $output, revert = $undo)]
        fn $name(trace: &Trace, fail_at: u32, $input: u32) -> Result<u32, Refused> {
            trace.push(format!("execute {}", $n));
            if fail_at == $n {
                return Err(Refused($n));
            }
            Ok($input + 1)
        }

        #[revert]
        fn $undo(trace: &Trace, result: TaskOutcome<&u32>) {
            match result {
                Ok(value) => trace.push(format!("revert {} (had {value})", $n)),
                Err(failure) => trace.push(format!("revert {} (own failure: {failure})", $n)),
            }
        }
    };
}

chain_step!(step1, undo1, 1, v0 -> v1);
chain_step!(step2, undo2, 2, v1 -> v2);
chain_step!(step3, undo3, 3, v2 -> v3);
chain_step!(step4, undo4, 4, v3 -> v4);
chain_step!(step5, undo5, 5, v4 -> v5);

flow! {
    flow Five(trace: Trace, fail_at: u32, v0: u32) -> (v5) {
        linear [ step1, step2, step3, step4, step5 ]
    }
}

/// Both engines: a linear chain leaves the parallel engine no freedom, so traces are exact.
fn engines() -> [Engine; 2] {
    [Engine::serial(), Engine::parallel()]
}

fn run_five(engine: &Engine, fail_at: u32) -> (Result<u32, FlowError>, Vec<String>) {
    let trace = Trace::default();
    let result = engine
        .run(
            Five,
            FiveInputs {
                trace: trace.clone(),
                fail_at,
                v0: 10,
            },
        )
        .blocking()
        .map(|out| out.v5);
    (result, trace.events())
}

#[test]
fn a_chain_without_failure_runs_every_step_once_and_reverts_nothing() {
    for engine in engines() {
        let (result, events) = run_five(&engine, 0);
        assert_eq!(result.unwrap(), 15);
        assert_eq!(
            events,
            [
                "execute 1",
                "execute 2",
                "execute 3",
                "execute 4",
                "execute 5"
            ]
        );
    }
}

#[test]
fn a_failure_at_every_position_reverts_exactly_what_ran_newest_first() {
    for (engine, fail_at) in engines()
        .iter()
        .flat_map(|e| (1..=5u32).map(move |n| (e, n)))
    {
        let (result, events) = run_five(engine, fail_at);
        let mut expected: Vec<String> = (1..=fail_at).map(|n| format!("execute {n}")).collect();
        expected.push(format!(
            "revert {fail_at} (own failure: step `step{fail_at}` failed: step {fail_at} refused)"
        ));
        for n in (1..fail_at).rev() {
            expected.push(format!("revert {n} (had {})", 10 + n));
        }
        assert_eq!(events, expected, "failure at step {fail_at} on {engine:?}");

        let err = result.unwrap_err();
        assert_eq!(err.failed_step(), format!("step{fail_at}"));
        assert_eq!(err.state(), FlowState::Reverted);
        assert!(err.revert_failures().is_empty());
        assert_eq!(err.failures().len(), 1);
        let source = err.source().expect("the step's own error is the source");
        assert_eq!(source.downcast_ref::<Refused>(), Some(&Refused(fail_at)));
        assert_eq!(
            err.failures()[0].downcast_ref::<Refused>(),
            Some(&Refused(fail_at))
        );
        assert_eq!(
            err.to_string(),
            format!("step `step{fail_at}` failed: step {fail_at} refused; every completed step was reverted")
        );
    }
}

// ---- a revert hook that fails, and one that panics

#[derive(Debug, thiserror::Error)]
#[error("cannot undo {0}")]
struct CannotUndo(&'static str);

#[task(provides = a, revert = undo_a)]
fn make_a(trace: &Trace) -> u32 {
    trace.push("execute a");
    1
}

#[revert]
fn undo_a(trace: &Trace) {
    trace.push("revert a");
}

#[task(provides = b, revert = undo_b_fails)]
fn make_b(trace: &Trace, a: u32) -> u32 {
    trace.push("execute b");
    a + 1
}

#[revert]
fn undo_b_fails(trace: &Trace) -> Result<(), CannotUndo> {
    trace.push("revert b (fails)");
    Err(CannotUndo("b"))
}

#[task(provides = c, revert = undo_c_panics)]
async fn make_c(trace: &Trace, b: u32) -> u32 {
    trace.push("execute c");
    b + 1
}

#[revert]
async fn undo_c_panics(trace: &Trace) {
    trace.push("revert c (panics)");
    panic!("undo of c exploded");
}

#[task]
fn boom(trace: &Trace, c: u32) -> Result<(), Refused> {
    trace.push("execute boom");
    Err(Refused(c))
}

flow! {
    flow BadReverts(trace: Trace) {
        linear [ make_a, make_b, make_c, boom ]
    }
}

#[test]
fn failed_reverts_are_all_listed_the_rest_still_revert_and_the_flow_ends_failure() {
    for engine in engines() {
        let trace = Trace::default();
        let err = engine
            .run(
                BadReverts,
                BadRevertsInputs {
                    trace: trace.clone(),
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(
            trace.events(),
            [
                "execute a",
                "execute b",
                "execute c",
                "execute boom",
                "revert c (panics)",
                "revert b (fails)",
                "revert a"
            ]
        );
        assert_eq!(err.failed_step(), "boom");
        assert_eq!(err.state(), FlowState::Failure);
        let reverts = err.revert_failures();
        assert_eq!(reverts.len(), 2);
        assert_eq!(reverts[0].step(), "make_c");
        assert!(reverts[0].is_panic());
        assert_eq!(
            reverts[0]
                .downcast_ref::<PanicError>()
                .map(PanicError::message),
            Some("undo of c exploded")
        );
        assert_eq!(reverts[1].step(), "make_b");
        assert!(reverts[1].downcast_ref::<CannotUndo>().is_some());
        assert_eq!(
            err.to_string(),
            "step `boom` failed: step 3 refused; 2 reverts failed (revert of step `make_c` failed: panicked: undo of c exploded; revert of step `make_b` failed: cannot undo b), the flow ended in FAILURE"
        );
    }
}

// ---- a step that panics, sync and async

#[task(provides = d)]
fn panics_sync(trace: &Trace, a: u32) -> u32 {
    trace.push("execute panics_sync");
    if a == 1 {
        panic!("sync step blew up");
    }
    a
}

#[task(provides = d)]
async fn panics_async(trace: &Trace, a: u32) -> u32 {
    trace.push("execute panics_async");
    tokio::task::yield_now().await;
    if a == 1 {
        panic!("async step blew up at {}", a);
    }
    a
}

flow! {
    flow PanicsSync(trace: Trace) -> (d) { linear [ make_a, panics_sync ] }
}

flow! {
    flow PanicsAsync(trace: Trace) -> (d) { linear [ make_a, panics_async ] }
}

#[test]
fn a_panicking_step_is_a_failure_and_what_ran_is_reverted() {
    for engine in engines() {
        let trace = Trace::default();
        let err = engine
            .run(
                PanicsSync,
                PanicsSyncInputs {
                    trace: trace.clone(),
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(
            trace.events(),
            ["execute a", "execute panics_sync", "revert a"]
        );
        assert_eq!(err.failed_step(), "panics_sync");
        assert!(err.failures()[0].is_panic());
        assert_eq!(err.state(), FlowState::Reverted);
        assert_eq!(
            err.source()
                .unwrap()
                .downcast_ref::<PanicError>()
                .unwrap()
                .message(),
            "sync step blew up"
        );

        let trace = Trace::default();
        let err = engine
            .run(
                PanicsAsync,
                PanicsAsyncInputs {
                    trace: trace.clone(),
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(
            trace.events(),
            ["execute a", "execute panics_async", "revert a"]
        );
        assert_eq!(
            err.source()
                .unwrap()
                .downcast_ref::<PanicError>()
                .unwrap()
                .message(),
            "async step blew up at 1"
        );
    }
}

// ---- hooks see the flow's failures, and inputs by value

#[task(provides = e, revert = undo_e)]
fn make_e(trace: &Trace, label: String) -> String {
    trace.push(format!("execute e {label}"));
    format!("{label}!")
}

#[revert]
fn undo_e(trace: &Trace, label: String, result: TaskOutcome<&String>, failures: &[Failure]) {
    let steps: Vec<&str> = failures.iter().map(Failure::step).collect();
    trace.push(format!(
        "revert e {label} {:?} after {steps:?}",
        result.ok()
    ));
}

#[task]
fn refuse_e(e: &str) -> Result<(), anyhow::Error> {
    Err(anyhow::anyhow!("no to {e}"))
}

flow! {
    flow HookArgs(trace: Trace, label: String) { linear [ make_e, refuse_e ] }
}

#[test]
fn revert_hooks_bind_inputs_result_and_failures_by_name_and_anyhow_errors_work() {
    for engine in engines() {
        let trace = Trace::default();
        let err = engine
            .run(
                HookArgs,
                HookArgsInputs {
                    trace: trace.clone(),
                    label: "x".into(),
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(
            trace.events(),
            [
                "execute e x",
                "revert e x Some(\"x!\") after [\"refuse_e\"]"
            ]
        );
        assert_eq!(
            err.to_string(),
            "step `refuse_e` failed: no to x!; every completed step was reverted"
        );
    }
}
