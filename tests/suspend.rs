//! Suspend: a handle asks the engine to stop after the steps in flight; the run ends SUSPENDED and
//! hands back its state; resuming continues without re-running finished steps.
mod common;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use common::Trace;
use taskflow::prelude::*;
use taskflow::{FlowEvent, Listener, Outcome, Paused, SuspendHandle};

#[task(provides = a)]
fn step_a(trace: &Trace, stop: &Stop) -> u32 {
    trace.push("a");
    stop.after("a");
    1
}

#[task(provides = b)]
async fn step_b(trace: &Trace, stop: &Stop, a: u32) -> u32 {
    trace.push("b");
    stop.after("b");
    a + 1
}

#[task(provides = c)]
fn step_c(trace: &Trace, stop: &Stop, b: u32) -> u32 {
    trace.push("c");
    stop.after("c");
    b + 1
}

/// Suspends the run when the named step runs.
#[derive(Clone, Default)]
struct Stop {
    at: Option<&'static str>,
    handle: SuspendHandle,
}

impl Stop {
    fn after(&self, step: &str) {
        if self.at == Some(step) {
            self.handle.suspend();
        }
    }
}

flow! {
    flow Sub(trace: Trace, stop: Stop, a: u32) -> (b, c) { linear [ step_b, step_c ] }
}

#[task(provides = d)]
fn step_d(trace: &Trace, c: u32) -> u32 {
    trace.push("d");
    c + 1
}

flow! {
    flow Chain(trace: Trace, stop: Stop) -> (d) { linear [ step_a, Sub, step_d ] }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn start(engine: &Engine, trace: &Trace, at: Option<&'static str>) -> Paused<Chain> {
    let stop = Stop {
        at,
        handle: SuspendHandle::new(),
    };
    let inputs = ChainInputs {
        trace: trace.clone(),
        stop: stop.clone(),
    };
    match block_on(engine.run(Chain, inputs).until(&stop.handle).into_future()).unwrap() {
        Outcome::Suspended(paused) => paused,
        Outcome::Done(_) => panic!("expected a suspension"),
    }
}

fn resume(engine: &Engine, paused: Paused<Chain>) -> u32 {
    match block_on(
        paused
            .resume(engine)
            .until(&SuspendHandle::new())
            .into_future(),
    )
    .unwrap()
    {
        Outcome::Done(out) => out.d,
        Outcome::Suspended(_) => panic!("expected the end"),
    }
}

#[test]
fn suspending_at_each_step_then_resuming_runs_every_step_exactly_once() {
    for engine in [Engine::serial(), Engine::parallel()] {
        for at in ["a", "b", "c"] {
            let trace = Trace::default();
            let paused = start(&engine, &trace, Some(at));
            let before = trace.events();
            assert_eq!(
                before.last().map(String::as_str),
                Some(at),
                "{engine:?} stops right after {at}: {before:?}"
            );
            assert_eq!(resume(&engine, paused), 4);
            assert_eq!(
                trace.events(),
                ["a", "b", "c", "d"],
                "{engine:?}, suspended at {at}"
            );
        }
    }
}

#[test]
fn a_handle_that_asked_before_the_run_suspends_before_the_first_step() {
    let trace = Trace::default();
    let handle = SuspendHandle::new();
    handle.suspend();
    let inputs = ChainInputs {
        trace: trace.clone(),
        stop: Stop::default(),
    };
    let Outcome::Suspended(paused) = block_on(
        Engine::serial()
            .run(Chain, inputs)
            .until(&handle)
            .into_future(),
    )
    .unwrap() else {
        panic!("expected a suspension")
    };
    assert!(trace.events().is_empty());
    assert_eq!(resume(&Engine::serial(), paused), 4);
}

#[derive(Default)]
struct States(std::sync::Mutex<Vec<String>>);

impl Listener for States {
    fn on_flow(&self, e: &FlowEvent<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", e.flow, e.state));
    }
}

#[test]
fn listeners_see_suspended_and_resuming() {
    let states = Arc::new(States::default());
    let engine = Engine::serial().listener(states.clone());
    let paused = start(&engine, &Trace::default(), Some("b"));
    assert_eq!(resume(&engine, paused), 4);
    assert_eq!(
        *states.0.lock().unwrap(),
        [
            "Chain RUNNING",
            "Chain/Sub RUNNING",
            "Chain/Sub SUSPENDING",
            "Chain/Sub SUSPENDED",
            "Chain SUSPENDING",
            "Chain SUSPENDED",
            "Chain RESUMING",
            "Chain RUNNING",
            "Chain/Sub RESUMING",
            "Chain/Sub RUNNING",
            "Chain/Sub SUCCESS",
            "Chain SUCCESS",
        ]
    );
}

/// TaskFlow: a flow asked to suspend goes RUNNING -> SUSPENDING (letting the steps in flight
/// finish) -> SUSPENDED; listeners see all three.
#[test]
fn a_suspended_run_goes_through_suspending() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let states = Arc::new(States::default());
        let engine = engine.listener(states.clone());
        let _paused = start(&engine, &Trace::default(), Some("a"));
        assert_eq!(
            *states.0.lock().unwrap(),
            ["Chain RUNNING", "Chain SUSPENDING", "Chain SUSPENDED"],
            "{engine:?}"
        );
    }
}

#[task(provides = r1, revert = undo_r1)]
fn hold_1(trace: &Trace) -> u32 {
    trace.push("hold 1");
    1
}

#[revert]
fn undo_r1(trace: &Trace) {
    trace.push("release 1");
}

#[task(provides = r2, revert = undo_r2)]
fn hold_2(trace: &Trace, stop: &SuspendHandle, r1: u32) -> u32 {
    let _ = stop;
    trace.push("hold 2");
    r1 + 1
}

/// A shutdown arrives while the flow is being undone.
#[revert]
fn undo_r2(trace: &Trace, stop: &SuspendHandle) {
    trace.push("release 2");
    stop.suspend();
}

#[task(revert = undo_r3)]
fn hold_3(trace: &Trace, r2: u32) -> Result<(), common::Refused> {
    trace.push("hold 3");
    Err(common::Refused(r2 + 1))
}

#[revert]
fn undo_r3(trace: &Trace) {
    trace.push("release 3");
}

flow! {
    flow Teardown(trace: Trace, stop: SuspendHandle) { linear [ hold_1, hold_2, hold_3 ] }
}

/// TaskFlow: a suspend asked for while the flow reverts stops the revert after the reverts in
/// flight; the run ends SUSPENDED, and resuming it finishes the revert and reports the original
/// failure.
#[test]
fn a_suspend_during_a_revert_stops_the_revert_and_resume_finishes_it() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let at = format!("{engine:?}");
        let (started, resumed, trace) = common::within(Duration::from_secs(30), move || {
            let trace = Trace::default();
            let stop = SuspendHandle::new();
            let inputs = TeardownInputs {
                trace: trace.clone(),
                stop: stop.clone(),
            };
            let started = match block_on(engine.run(Teardown, inputs).until(&stop).into_future()) {
                Ok(Outcome::Suspended(paused)) => Ok(paused),
                Ok(Outcome::Done(_)) => Err("the run succeeded".to_owned()),
                Err(e) => Err(format!("the run ended with {e} ({:?})", e.state())),
            };
            let at_suspension = trace.events();
            let resumed = started.map(|paused| {
                match block_on(
                    paused
                        .resume(&engine)
                        .until(&SuspendHandle::new())
                        .into_future(),
                ) {
                    Err(e) => Ok((
                        e.failed_step().to_owned(),
                        e.failures()[0].error().to_string(),
                        e.state(),
                    )),
                    Ok(Outcome::Done(_)) => Err("the resumed run succeeded"),
                    Ok(Outcome::Suspended(_)) => Err("the resumed run suspended again"),
                }
            });
            (at_suspension, resumed, trace.events())
        });
        let resumed = resumed.unwrap_or_else(|e| panic!("{at}: expected SUSPENDED, but {e}"));
        assert_eq!(
            started,
            ["hold 1", "hold 2", "hold 3", "release 3", "release 2"],
            "{at}: the revert stops after the hook that asked to suspend"
        );
        assert_eq!(
            resumed,
            Ok((
                "hold_3".to_owned(),
                "step 3 refused".to_owned(),
                FlowState::Reverted
            )),
            "{at}"
        );
        assert_eq!(
            trace,
            [
                "hold 1",
                "hold 2",
                "hold 3",
                "release 3",
                "release 2",
                "release 1"
            ],
            "{at}: the resume finishes the revert, undoing nothing twice"
        );
    }
}
