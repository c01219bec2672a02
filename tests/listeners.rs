//! Listeners see every transition, in order, with attempts and timestamps; progress reports reach
//! them; a panicking listener breaks nothing; the timing listener reports durations.
mod common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::Refused;
use taskflow::prelude::*;
use taskflow::{
    FlowEvent, Listener, ProgressEvent, StepEvent, StepState, TimingListener, TracingListener,
};

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    last_at: Mutex<Option<SystemTime>>,
}

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn push(&self, line: String, at: SystemTime) {
        let mut last = self.last_at.lock().unwrap();
        if let Some(previous) = *last {
            assert!(at >= previous, "timestamps go forward");
        }
        *last = Some(at);
        self.events.lock().unwrap().push(line);
    }
}

impl Listener for Recorder {
    fn on_flow(&self, e: &FlowEvent<'_>) {
        self.push(format!("flow {} {}", e.flow, e.state), e.at);
    }

    fn on_step(&self, e: &StepEvent<'_>) {
        let failure = e
            .failure
            .map(|f| format!(" ({})", f.error()))
            .unwrap_or_default();
        self.push(
            format!(
                "step {}/{} {} #{}{failure}",
                e.flow, e.step, e.state, e.attempt
            ),
            e.at,
        );
    }

    fn on_progress(&self, e: &ProgressEvent<'_>) {
        self.push(
            format!("progress {}/{} {}", e.flow, e.step, e.progress),
            e.at,
        );
    }
}

#[task(provides = a, revert = undo_a)]
fn make_a(ctx: &TaskContext, seed: u32) -> u32 {
    ctx.progress(0.5);
    ctx.progress(1.0);
    seed + 1
}

#[revert]
fn undo_a() {}

#[task(provides = b)]
async fn make_b(a: u32, fail: bool) -> Result<u32, Refused> {
    if fail {
        return Err(Refused(a));
    }
    Ok(a * 2)
}

flow! {
    flow Inner(seed: u32, fail: bool) -> (b) { linear [ make_a, make_b ] }
}

#[task(provides = c)]
fn make_c(b: u32) -> u32 {
    b + 1
}

flow! {
    flow Outer(seed: u32, fail: bool) -> (c) { linear [ Inner, make_c ] }
}

fn record(engine: Engine, fail: bool) -> (Result<u32, FlowError>, Vec<String>) {
    let recorder = Arc::new(Recorder::default());
    let result = engine
        .listener(recorder.clone())
        .run(Outer, OuterInputs { seed: 1, fail })
        .blocking()
        .map(|out| out.c);
    (result, recorder.events())
}

#[test]
fn every_transition_and_progress_report_is_seen_in_order() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let (result, events) = record(engine, false);
        assert_eq!(result.unwrap(), 5);
        assert_eq!(
            events,
            [
                "flow Outer RUNNING",
                "step Outer/Inner RUNNING #1",
                "flow Outer/Inner RUNNING",
                "step Outer/Inner/make_a RUNNING #1",
                "progress Outer/Inner/make_a 0.5",
                "progress Outer/Inner/make_a 1",
                "step Outer/Inner/make_a SUCCESS #1",
                "step Outer/Inner/make_b RUNNING #1",
                "step Outer/Inner/make_b SUCCESS #1",
                "flow Outer/Inner SUCCESS",
                "step Outer/Inner SUCCESS #1",
                "step Outer/make_c RUNNING #1",
                "step Outer/make_c SUCCESS #1",
                "flow Outer SUCCESS",
            ]
        );
    }
}

#[test]
fn failure_and_revert_transitions_are_seen_in_order() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let (result, events) = record(engine, true);
        assert_eq!(result.unwrap_err().failed_step(), "Inner/make_b");
        assert_eq!(
            events,
            [
                "flow Outer RUNNING",
                "step Outer/Inner RUNNING #1",
                "flow Outer/Inner RUNNING",
                "step Outer/Inner/make_a RUNNING #1",
                "progress Outer/Inner/make_a 0.5",
                "progress Outer/Inner/make_a 1",
                "step Outer/Inner/make_a SUCCESS #1",
                "step Outer/Inner/make_b RUNNING #1",
                "step Outer/Inner/make_b FAILURE #1 (step 2 refused)",
                "flow Outer/Inner REVERTING",
                "step Outer/Inner/make_b REVERTING #1",
                "step Outer/Inner/make_b REVERTED #1",
                "step Outer/Inner/make_a REVERTING #1",
                "step Outer/Inner/make_a REVERTED #1",
                "flow Outer/Inner REVERTED",
                "step Outer/Inner FAILURE #1 (step 2 refused)",
                "flow Outer REVERTING",
                "flow Outer REVERTED",
            ]
        );
    }
}

struct Panicker;

impl Listener for Panicker {
    fn on_step(&self, _: &StepEvent<'_>) {
        panic!("listener exploded");
    }

    fn on_flow(&self, _: &FlowEvent<'_>) {
        panic!("listener exploded");
    }
}

#[test]
fn a_panicking_listener_does_not_break_the_flow_or_other_listeners() {
    let recorder = Arc::new(Recorder::default());
    let out = Engine::parallel()
        .listener(Arc::new(Panicker))
        .listener(recorder.clone())
        .run(
            Outer,
            OuterInputs {
                seed: 2,
                fail: false,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.c, 7);
    assert_eq!(recorder.events().len(), 14);
}

#[test]
fn the_timing_listener_reports_every_step_run() {
    let timing = Arc::new(TimingListener::default());
    let _ = Engine::serial()
        .listener(timing.clone())
        .listener(Arc::new(TracingListener::default()))
        .run(
            Outer,
            OuterInputs {
                seed: 1,
                fail: true,
            },
        )
        .blocking();
    let report = timing.report();
    let steps: Vec<(&str, StepState)> = report.iter().map(|t| (t.step.as_str(), t.state)).collect();
    assert_eq!(
        steps,
        [
            ("Outer/Inner/make_a", StepState::Success),
            ("Outer/Inner/make_b", StepState::Failure),
            ("Outer/Inner", StepState::Failure),
        ]
    );
    let table = timing.to_string();
    assert!(table.starts_with("step"), "{table}");
    assert!(table.contains("Outer/Inner/make_b  FAILURE"), "{table}");
}
