//! Suspend: a handle asks the engine to stop after the steps in flight; the run ends SUSPENDED and
//! hands back its state; resuming continues without re-running finished steps.
mod common;

use std::sync::Arc;

use common::Trace;
use taskflow::prelude::*;
use taskflow::{Finished, FlowEvent, Listener, Paused, SuspendHandle};

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
    match block_on(engine.start(Chain, inputs, &stop.handle)).unwrap() {
        Finished::Suspended(paused) => paused,
        Finished::Done(_) => panic!("expected a suspension"),
    }
}

fn resume(engine: &Engine, paused: Paused<Chain>) -> u32 {
    match block_on(engine.resume(paused, &SuspendHandle::new())).unwrap() {
        Finished::Done(out) => out.d,
        Finished::Suspended(_) => panic!("expected the end"),
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
    let Finished::Suspended(paused) =
        block_on(Engine::serial().start(Chain, inputs, &handle)).unwrap()
    else {
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
