//! Cancel: `SuspendHandle::cancel` stops a run after the steps in flight and reverts every step
//! that ran, without asking a retry controller — on both engines, in memory and in a store, for
//! a run in progress, a sub-flow in progress, and a stored suspended run resumed cancelled.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use taskflow::prelude::*;
use taskflow::store::{MemoryStore, Store};
use taskflow::{Cancelled, DurableError, FlowError, Outcome, StepState, SuspendHandle};

/// Per test (by tag): what the steps did, and at which step to cancel (or suspend) the run.
#[derive(Default)]
struct Plan {
    events: Vec<String>,
    at: &'static str,
    suspend: bool,
    handle: SuspendHandle,
}

static PLANS: Mutex<Option<HashMap<String, Plan>>> = Mutex::new(None);

fn with<T>(tag: &str, f: impl FnOnce(&mut Plan) -> T) -> T {
    let mut plans = PLANS.lock().unwrap();
    f(plans
        .get_or_insert_with(HashMap::new)
        .entry(tag.to_owned())
        .or_default())
}

/// A plan for `tag`: cancel (or suspend) at step `at`; returns the run's handle.
fn plan(tag: &str, at: &'static str, suspend: bool) -> SuspendHandle {
    with(tag, |p| {
        *p = Plan {
            at,
            suspend,
            ..Plan::default()
        };
        p.handle.clone()
    })
}

fn events(tag: &str) -> Vec<String> {
    with(tag, |p| p.events.clone())
}

/// Step `step` of run `tag` ran: noted, and the run cancelled (or suspended) if planned here.
fn ran(tag: &str, step: &str) {
    with(tag, |p| {
        p.events.push(step.to_owned());
        if p.at == step {
            if p.suspend {
                p.handle.suspend();
            } else {
                p.handle.cancel();
            }
        }
    });
}

#[task(provides = a, revert = undo_a)]
fn step_a(tag: &str) -> u32 {
    ran(tag, "a");
    1
}

#[revert]
fn undo_a(tag: &str) {
    ran(tag, "undo a");
}

#[task(provides = b, revert = undo_b)]
fn step_b(tag: &str, a: u32) -> u32 {
    ran(tag, "b");
    a + 1
}

#[revert]
fn undo_b(tag: &str) {
    ran(tag, "undo b");
}

#[task(provides = c, revert = undo_c)]
fn step_c(tag: &str, b: u32) -> u32 {
    ran(tag, "c");
    b + 1
}

#[revert]
fn undo_c(tag: &str) {
    ran(tag, "undo c");
}

flow! {
    flow Inner(tag: String, a: u32) -> (b, c) { linear [ step_b, step_c ] }
}

#[task(provides = d)]
fn step_d(tag: &str, c: u32) -> u32 {
    ran(tag, "d");
    c + 1
}

flow! {
    flow Outer(tag: String) -> (d) { linear [ step_a, Inner, step_d ] }
}

flow! {
    flow Retried(tag: String) -> (c) {
        retry(Times(3)) linear [ step_a, step_b, step_c ]
    }
}

fn assert_cancelled(err: &FlowError) {
    assert_eq!(err.state(), FlowState::Reverted, "{err}");
    assert_eq!(err.failures().len(), 1, "{err}");
    assert!(
        err.failures()[0].downcast_ref::<Cancelled>().is_some(),
        "{err}"
    );
}

fn engines(test: &str) -> [(Engine, String); 2] {
    [
        (Engine::serial(), format!("{test}-serial")),
        (Engine::parallel(), format!("{test}-parallel")),
    ]
}

fn outer(tag: &str) -> OuterInputs {
    OuterInputs {
        tag: tag.to_owned(),
    }
}

#[test]
fn a_cancelled_run_stops_after_the_step_in_flight_and_reverts_what_ran() {
    for (engine, tag) in engines("first") {
        let handle = plan(&tag, "a", false);
        let err = engine
            .run(Outer, outer(&tag))
            .until(&handle)
            .blocking()
            .unwrap_err();
        assert_cancelled(&err);
        assert_eq!(
            events(&tag),
            ["a", "undo a"],
            "nothing started after the cancel"
        );
    }
}

#[test]
fn a_cancel_inside_a_sub_flow_reverts_it_and_the_steps_before_it() {
    for (engine, tag) in engines("sub") {
        let handle = plan(&tag, "b", false);
        let err = engine
            .run(Outer, outer(&tag))
            .until(&handle)
            .blocking()
            .unwrap_err();
        assert_cancelled(&err);
        assert_eq!(events(&tag), ["a", "b", "undo b", "undo a"]);
    }
}

#[test]
fn a_cancel_is_not_retried_by_a_retry_controller() {
    for (engine, tag) in engines("retry") {
        let handle = plan(&tag, "b", false);
        let err = engine
            .run(Retried, RetriedInputs { tag: tag.clone() })
            .until(&handle)
            .blocking()
            .unwrap_err();
        assert_cancelled(&err);
        assert_eq!(
            events(&tag),
            ["a", "b", "undo b", "undo a"],
            "one attempt only"
        );
    }
}

#[test]
fn a_cancelled_durable_run_is_recorded_reverted() {
    for (engine, tag) in engines("durable") {
        let store = Arc::new(MemoryStore::new());
        let handle = plan(&tag, "c", false);
        let err = engine
            .run(Outer, outer(&tag))
            .durable(store.clone(), &tag)
            .until(&handle)
            .blocking()
            .unwrap_err();
        let DurableError::Failed(err) = err else {
            panic!("{err}")
        };
        assert_cancelled(&err);
        assert_eq!(events(&tag), ["a", "b", "c", "undo c", "undo b", "undo a"]);
        let stored = store.load_flow(&tag).unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Reverted);
        for step in ["step_a", "Inner/step_b", "Inner/step_c"] {
            assert_eq!(
                stored.atom(step).unwrap().state,
                StepState::Reverted,
                "{step}"
            );
        }
        assert_eq!(stored.flow.lease, None);
    }
}

#[test]
fn a_suspended_stored_run_resumed_cancelled_is_reverted_from_where_it_was() {
    for (engine, tag) in engines("resumed") {
        let store = Arc::new(MemoryStore::new());
        let stop = plan(&tag, "a", true);
        let paused = engine
            .run(Outer, outer(&tag))
            .durable(store.clone(), &tag)
            .until(&stop)
            .blocking()
            .unwrap();
        assert!(matches!(paused, Outcome::Suspended(_)));
        assert_eq!(events(&tag), ["a"]);
        let cancel = SuspendHandle::new();
        cancel.cancel();
        let err = engine
            .resume(Outer, store.clone(), &tag)
            .until(&cancel)
            .blocking()
            .unwrap_err();
        let DurableError::Failed(err) = err else {
            panic!("{err}")
        };
        assert_cancelled(&err);
        assert_eq!(
            events(&tag),
            ["a", "undo a"],
            "only `a` had run, and only it is undone"
        );
        let stored = store.load_flow(&tag).unwrap().unwrap();
        assert_eq!(stored.flow.state, FlowState::Reverted);
        assert_eq!(stored.atom("step_a").unwrap().state, StepState::Reverted);
    }
}
