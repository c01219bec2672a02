//! Retry controllers: Times, ForEach, ParameterizedForEach, AlwaysRevert, AlwaysRevertAll, a
//! user controller, nesting, backoff — with the exact execute/revert traces, on both engines.
mod common;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Refused, Trace};
use taskflow::prelude::*;
use taskflow::{Decision, History, Listener, StepEvent, StepState};

fn engines() -> [Engine; 2] {
    [Engine::serial(), Engine::parallel()]
}

/// Fails while fewer than `fail_times` attempts have been made (counted across attempts).
#[derive(Clone, Default)]
struct Flaky {
    fail_times: u32,
    calls: Arc<AtomicU32>,
}

#[task(provides = prepared, revert = unprepare)]
fn prepare(trace: &Trace) -> u32 {
    trace.push("prepare");
    1
}

#[revert]
fn unprepare(trace: &Trace) {
    trace.push("unprepare");
}

#[task(provides = reserved, revert = unreserve)]
fn reserve(trace: &Trace, prepared: u32) -> u32 {
    trace.push("reserve");
    prepared + 1
}

#[revert]
fn unreserve(trace: &Trace) {
    trace.push("unreserve");
}

#[task(provides = attached, revert = detach)]
async fn attach(trace: &Trace, flaky: &Flaky, reserved: u32) -> Result<u32, Refused> {
    let call = flaky.calls.fetch_add(1, Ordering::SeqCst) + 1;
    trace.push(format!("attach #{call}"));
    if call <= flaky.fail_times {
        return Err(Refused(call));
    }
    Ok(reserved + 1)
}

#[revert]
fn detach(trace: &Trace, result: TaskOutcome<&u32>) {
    trace.push(format!("detach (ok={})", result.is_ok()));
}

flow! {
    flow ThreeTimes(trace: Trace, flaky: Flaky) -> (attached) {
        linear [ prepare, retry(Times(3)) linear [ reserve, attach ] ]
    }
}

fn run_three_times(engine: &Engine, fail_times: u32) -> (Result<u32, FlowError>, Vec<String>) {
    let trace = Trace::default();
    let flaky = Flaky {
        fail_times,
        ..Flaky::default()
    };
    let result = engine
        .run(
            ThreeTimes,
            ThreeTimesInputs {
                trace: trace.clone(),
                flaky,
            },
        )
        .blocking()
        .map(|out| out.attached);
    (result, trace.events())
}

#[test]
fn times_retries_only_its_sub_flow_until_an_attempt_succeeds() {
    for engine in engines() {
        let (result, events) = run_three_times(&engine, 2);
        assert_eq!(result.unwrap(), 3);
        assert_eq!(
            events,
            [
                "prepare",
                "reserve",
                "attach #1",
                "detach (ok=false)",
                "unreserve",
                "reserve",
                "attach #2",
                "detach (ok=false)",
                "unreserve",
                "reserve",
                "attach #3",
            ],
            "{engine:?}"
        );
    }
}

#[test]
fn an_exhausted_times_reverts_its_sub_flow_then_the_whole_flow() {
    for engine in engines() {
        let (result, events) = run_three_times(&engine, 5);
        let err = result.unwrap_err();
        assert_eq!(err.failed_step(), "attach");
        assert_eq!(
            err.failures()[0].downcast_ref::<Refused>(),
            Some(&Refused(3))
        );
        assert_eq!(err.state(), FlowState::Reverted);
        assert_eq!(
            events,
            [
                "prepare",
                "reserve",
                "attach #1",
                "detach (ok=false)",
                "unreserve",
                "reserve",
                "attach #2",
                "detach (ok=false)",
                "unreserve",
                "reserve",
                "attach #3",
                "detach (ok=false)",
                "unreserve",
                "unprepare",
            ],
            "{engine:?}"
        );
    }
}

#[derive(Default)]
struct Attempts(std::sync::Mutex<Vec<String>>);

impl Listener for Attempts {
    fn on_step(&self, e: &StepEvent<'_>) {
        if e.step == "attach" {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} #{}", e.state, e.attempt));
        }
    }
}

#[test]
fn listeners_see_attempt_numbers_and_retrying() {
    let attempts = Arc::new(Attempts::default());
    let flaky = Flaky {
        fail_times: 1,
        ..Flaky::default()
    };
    Engine::serial()
        .listener(attempts.clone())
        .run(
            ThreeTimes,
            ThreeTimesInputs {
                trace: Trace::default(),
                flaky,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(
        *attempts.0.lock().unwrap(),
        [
            "RUNNING #1",
            "FAILURE #1",
            "REVERTING #1",
            "REVERTED #1",
            "RETRYING #2",
            "RUNNING #2",
            "SUCCESS #2"
        ]
    );
}

// ---- ForEach and ParameterizedForEach provide each attempt's value

#[task(provides = zone_used)]
fn place(trace: &Trace, zone: &str) -> Result<String, Refused> {
    trace.push(format!("place in {zone}"));
    if zone != "c" {
        return Err(Refused(0));
    }
    Ok(zone.to_owned())
}

flow! {
    flow Place(trace: Trace) -> (zone_used) {
        retry(ForEach(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]) -> zone: String) linear [ place ]
    }
}

#[task(provides = formatted)]
fn format_disk(trace: &Trace, size: u32) -> Result<u32, Refused> {
    trace.push(format!("format {size}"));
    if size < 30 {
        return Err(Refused(size));
    }
    Ok(size)
}

flow! {
    flow Format(trace: Trace, sizes: Vec<u32>) -> (formatted) {
        retry(ParameterizedForEach(sizes) -> size) linear [ format_disk ]
    }
}

#[test]
fn for_each_tries_one_value_per_attempt() {
    for engine in engines() {
        let trace = Trace::default();
        let out = engine
            .run(
                Place,
                PlaceInputs {
                    trace: trace.clone(),
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.zone_used, "c");
        assert_eq!(trace.events(), ["place in a", "place in b", "place in c"]);

        let trace = Trace::default();
        let out = engine
            .run(
                Format,
                FormatInputs {
                    trace: trace.clone(),
                    sizes: vec![10, 20, 30, 40],
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.formatted, 30);
        assert_eq!(trace.events(), ["format 10", "format 20", "format 30"]);

        let trace = Trace::default();
        let err = engine
            .run(
                Format,
                FormatInputs {
                    trace: trace.clone(),
                    sizes: vec![1, 2],
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(trace.events(), ["format 1", "format 2"]);
        assert_eq!(
            err.failures()[0].downcast_ref::<Refused>(),
            Some(&Refused(2))
        );

        let err = engine
            .run(
                Format,
                FormatInputs {
                    trace: Trace::default(),
                    sizes: vec![],
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(err.to_string(), "step `format_disk` failed: its retry controller has nothing to attempt; every completed step was reverted");
    }
}

// ---- nesting: Revert defers to the enclosing controller; RevertAll reverts everything

#[task(provides = inner_value)]
fn inner_step(trace: &Trace, flaky: &Flaky) -> Result<u32, Refused> {
    let call = flaky.calls.fetch_add(1, Ordering::SeqCst) + 1;
    trace.push(format!("inner #{call}"));
    if call <= flaky.fail_times {
        return Err(Refused(call));
    }
    Ok(call)
}

#[task(provides = outer_value, revert = undo_outer)]
fn outer_step(trace: &Trace) -> u32 {
    trace.push("outer");
    7
}

#[revert]
fn undo_outer(trace: &Trace) {
    trace.push("undo outer");
}

flow! {
    flow Nested(trace: Trace, flaky: Flaky) -> (inner_value) {
        linear [ prepare, retry(Times(2)) linear [ outer_step, retry(AlwaysRevert) linear [ inner_step ] ] ]
    }
}

flow! {
    flow NestedAll(trace: Trace, flaky: Flaky) -> (inner_value) {
        linear [ prepare, retry(Times(5)) linear [ outer_step, retry(AlwaysRevertAll) linear [ inner_step ] ] ]
    }
}

#[test]
fn a_nested_revert_defers_to_the_enclosing_controller() {
    for engine in engines() {
        let trace = Trace::default();
        let flaky = Flaky {
            fail_times: 1,
            ..Flaky::default()
        };
        let out = engine
            .run(
                Nested,
                NestedInputs {
                    trace: trace.clone(),
                    flaky,
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.inner_value, 2);
        assert_eq!(
            trace.events(),
            [
                "prepare",
                "outer",
                "inner #1",
                "undo outer",
                "outer",
                "inner #2"
            ],
            "{engine:?}"
        );
    }
}

#[test]
fn revert_all_reverts_the_whole_flow_whatever_encloses_it() {
    for engine in engines() {
        let trace = Trace::default();
        let flaky = Flaky {
            fail_times: 1,
            ..Flaky::default()
        };
        let err = engine
            .run(
                NestedAll,
                NestedAllInputs {
                    trace: trace.clone(),
                    flaky,
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(err.failed_step(), "inner_step");
        assert_eq!(
            trace.events(),
            ["prepare", "outer", "inner #1", "undo outer", "unprepare"],
            "{engine:?}"
        );
    }
}

// ---- a user controller sees the history

/// Retries only while the failures say "busy", at most 4 attempts in all.
struct WhileBusy;

impl Retry for WhileBusy {
    type Item = u32;

    fn item(&self, attempt: u32) -> Option<u32> {
        Some(attempt)
    }

    fn on_failure(&self, history: &History) -> Decision {
        let busy = history
            .last_failures()
            .iter()
            .all(|f| f.error().to_string().contains("busy"));
        if busy && history.attempts() < 4 {
            Decision::Retry
        } else {
            Decision::Revert
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

#[task(provides = answer)]
fn ask(trace: &Trace, attempt_no: u32, replies: &[&'static str]) -> Result<u32, Message> {
    let reply = replies[attempt_no as usize - 1];
    trace.push(format!("ask #{attempt_no}: {reply}"));
    match reply {
        "ok" => Ok(attempt_no),
        other => Err(Message(other.to_owned())),
    }
}

flow! {
    flow Ask(trace: Trace, replies: Vec<&'static str>) -> (answer) {
        retry(WhileBusy -> attempt_no: u32) linear [ ask ]
    }
}

#[test]
fn a_user_controller_decides_from_the_history() {
    for engine in engines() {
        let trace = Trace::default();
        let out = engine
            .run(
                Ask,
                AskInputs {
                    trace: trace.clone(),
                    replies: vec!["busy", "busy", "ok"],
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.answer, 3);
        assert_eq!(
            trace.events(),
            ["ask #1: busy", "ask #2: busy", "ask #3: ok"]
        );

        let trace = Trace::default();
        let err = engine
            .run(
                Ask,
                AskInputs {
                    trace: trace.clone(),
                    replies: vec!["busy", "broken", "ok"],
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(trace.events(), ["ask #1: busy", "ask #2: broken"]);
        assert_eq!(err.source().unwrap().to_string(), "broken");
    }
}

// ---- backoff waits between attempts (virtual time: deterministic)

flow! {
    flow Backed(trace: Trace, flaky: Flaky) -> (attached) {
        linear [ prepare, retry(Times(3).backoff(Backoff::exponential(Duration::from_secs(10), 2.0))) linear [ reserve, attach ] ]
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_before_each_retry() {
    let start = tokio::time::Instant::now();
    let flaky = Flaky {
        fail_times: 2,
        ..Flaky::default()
    };
    let out = Engine::serial()
        .run(
            Backed,
            BackedInputs {
                trace: Trace::default(),
                flaky,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.attached, 3);
    // 10 s before attempt 2, 20 s before attempt 3.
    assert_eq!(start.elapsed().as_secs(), 30);
}

use std::error::Error as _;

#[test]
fn backoff_delays_grow_are_capped_and_jitter_stays_within_its_fraction() {
    let backoff =
        Backoff::exponential(Duration::from_millis(100), 2.0).max(Duration::from_millis(350));
    assert_eq!(backoff.delay(2), Duration::from_millis(100));
    assert_eq!(backoff.delay(3), Duration::from_millis(200));
    assert_eq!(backoff.delay(4), Duration::from_millis(350));
    let jittered = Times(5).backoff(Backoff::fixed(Duration::from_millis(100)).jitter(0.2));
    let delays: Vec<Duration> = (0..200).map(|_| jittered.delay(2).unwrap()).collect();
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_millis(80) && *d <= Duration::from_millis(120)),
        "{delays:?}"
    );
    assert!(
        delays.iter().any(|d| *d != delays[0]),
        "jitter spreads the delays"
    );
}

// ---- two scopes failing at the same time on the parallel engine decide independently

#[task(provides = left_value)]
async fn left_try(trace: &Trace, left: &Flaky) -> Result<u32, Refused> {
    let call = left.calls.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::task::yield_now().await;
    trace.push(format!("left #{call}"));
    if call <= left.fail_times {
        return Err(Refused(call));
    }
    Ok(call)
}

#[task(provides = right_value)]
async fn right_try(trace: &Trace, right: &Flaky) -> Result<u32, Refused> {
    let call = right.calls.fetch_add(1, Ordering::SeqCst) + 1;
    trace.push(format!("right #{call}"));
    if call <= right.fail_times {
        return Err(Refused(call));
    }
    Ok(call)
}

flow! {
    flow TwoScopes(trace: Trace, left: Flaky, right: Flaky) -> (left_value, right_value) {
        unordered [
            retry(Times(3)) linear [ left_try ],
            retry(Times(3)) linear [ right_try ],
        ]
    }
}

#[test]
fn sibling_scopes_retry_on_their_own() {
    for engine in engines() {
        let trace = Trace::default();
        let left = Flaky {
            fail_times: 2,
            ..Flaky::default()
        };
        let right = Flaky {
            fail_times: 1,
            ..Flaky::default()
        };
        let out = engine
            .run(
                TwoScopes,
                TwoScopesInputs {
                    trace: trace.clone(),
                    left,
                    right,
                },
            )
            .blocking()
            .unwrap();
        assert_eq!((out.left_value, out.right_value), (3, 2), "{engine:?}");
        let events = trace.events();
        let lefts: Vec<&String> = events.iter().filter(|e| e.starts_with("left")).collect();
        let rights: Vec<&String> = events.iter().filter(|e| e.starts_with("right")).collect();
        assert_eq!(lefts, ["left #1", "left #2", "left #3"], "{engine:?}");
        assert_eq!(rights, ["right #1", "right #2"], "{engine:?}");
    }
}

// ---- the attempt count survives a suspension

#[task(provides = attached)]
fn attach_then_stop(
    trace: &Trace,
    flaky: &Flaky,
    stop: &taskflow::SuspendHandle,
) -> Result<u32, Refused> {
    let call = flaky.calls.fetch_add(1, Ordering::SeqCst) + 1;
    trace.push(format!("attach #{call}"));
    if call == 1 {
        stop.suspend(); // suspended while the first attempt fails
        return Err(Refused(call));
    }
    if call <= flaky.fail_times {
        return Err(Refused(call));
    }
    Ok(call)
}

flow! {
    flow Stoppable(trace: Trace, flaky: Flaky, stop: taskflow::SuspendHandle) -> (attached) {
        retry(Times(3)) linear [ attach_then_stop ]
    }
}

#[test]
fn a_controllers_attempt_count_survives_suspend_and_resume() {
    use taskflow::{Outcome, SuspendHandle};
    for engine in engines() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let trace = Trace::default();
        let stop = SuspendHandle::new();
        // Attempts 1 and 2 fail; Times(3) allows a third.
        let flaky = Flaky {
            fail_times: 2,
            ..Flaky::default()
        };
        let inputs = StoppableInputs {
            trace: trace.clone(),
            flaky,
            stop: stop.clone(),
        };
        let paused = match runtime
            .block_on(engine.run(Stoppable, inputs).until(&stop).into_future())
            .unwrap()
        {
            Outcome::Suspended(paused) => paused,
            Outcome::Done(_) => panic!("expected a suspension"),
        };
        assert_eq!(trace.events(), ["attach #1"]);
        let out = match runtime
            .block_on(
                paused
                    .resume(&engine)
                    .until(&SuspendHandle::new())
                    .into_future(),
            )
            .unwrap()
        {
            Outcome::Done(out) => out,
            Outcome::Suspended(_) => panic!("expected the end"),
        };
        assert_eq!(out.attached, 3);
        assert_eq!(
            trace.events(),
            ["attach #1", "attach #2", "attach #3"],
            "{engine:?}"
        );
    }
}

// ---- a fan-out inside a retry runs again as a whole

#[task(provides = doubled)]
fn double_or_fail(n: u32, flaky: &Flaky) -> Result<u32, Refused> {
    if n == 2 && flaky.calls.fetch_add(1, Ordering::SeqCst) < flaky.fail_times {
        return Err(Refused(n));
    }
    Ok(n * 2)
}

flow! {
    flow MapRetry(numbers: Vec<u32>, flaky: Flaky) -> (all_doubled) {
        retry(Times(2)) linear [ map double_or_fail over numbers -> all_doubled ]
    }
}

#[test]
fn a_map_inside_a_retry_is_retried_as_a_whole() {
    for engine in engines() {
        let flaky = Flaky {
            fail_times: 1,
            ..Flaky::default()
        };
        let out = engine
            .run(
                MapRetry,
                MapRetryInputs {
                    numbers: vec![1, 2, 3],
                    flaky,
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(out.all_doubled, [2, 4, 6]);
    }
}

// ---- TaskFlow semantics: the acceptance test of the fix for a panicking controller (it
// failed before the fix)

/// Panics in `on_failure`.
struct PanicsOnFailure;

impl Retry for PanicsOnFailure {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }
    fn on_failure(&self, _history: &History) -> Decision {
        panic!("controller exploded in on_failure")
    }
}

/// Panics in `item`.
struct PanicsInItem;

impl Retry for PanicsInItem {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        panic!("controller exploded in item")
    }
    fn on_failure(&self, _history: &History) -> Decision {
        Decision::Revert
    }
}

/// Says retry, then panics in `delay`.
struct PanicsInDelay;

impl Retry for PanicsInDelay {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }
    fn on_failure(&self, _history: &History) -> Decision {
        Decision::Retry
    }
    fn delay(&self, _attempt: u32) -> Option<Duration> {
        panic!("controller exploded in delay")
    }
}

flow! {
    flow OnFailurePanics(trace: Trace, flaky: Flaky) {
        linear [ prepare, retry(PanicsOnFailure) linear [ reserve, attach ] ]
    }
}

flow! {
    flow ItemPanics(trace: Trace, flaky: Flaky) {
        linear [ prepare, retry(PanicsInItem) linear [ reserve, attach ] ]
    }
}

flow! {
    flow DelayPanics(trace: Trace, flaky: Flaky) {
        linear [ prepare, retry(PanicsInDelay) linear [ reserve, attach ] ]
    }
}

/// TaskFlow-correct: a retry controller that panics (in `on_failure`, `item` or `delay`) is a
/// failure of its scope: the run returns an error that reports the panic, and every step that
/// ran is reverted — the panic never escapes the engine.
#[test]
fn a_panicking_retry_controller_fails_its_scope_and_the_flow_is_reverted() {
    let full = [
        "prepare",
        "reserve",
        "attach #1",
        "detach (ok=false)",
        "unreserve",
        "unprepare",
    ];
    for engine in engines() {
        for (case, want, panic) in [
            ("on_failure", &full[..], "controller exploded in on_failure"),
            (
                "item",
                &["prepare", "unprepare"][..],
                "controller exploded in item",
            ),
            ("delay", &full[..], "controller exploded in delay"),
        ] {
            let at = format!("{engine:?}, panic in {case}");
            let trace = Trace::default();
            let flaky = Flaky {
                fail_times: 1,
                ..Flaky::default()
            };
            let (engine, t) = (engine.clone(), trace.clone());
            let result = common::within(Duration::from_secs(30), move || {
                common::no_panic(|| match case {
                    "on_failure" => engine
                        .run(OnFailurePanics, OnFailurePanicsInputs { trace: t, flaky })
                        .blocking()
                        .map(drop),
                    "item" => engine
                        .run(ItemPanics, ItemPanicsInputs { trace: t, flaky })
                        .blocking()
                        .map(drop),
                    _ => engine
                        .run(DelayPanics, DelayPanicsInputs { trace: t, flaky })
                        .blocking()
                        .map(drop),
                })
            });
            let err = match result {
                Ok(Err(e)) => e,
                Ok(Ok(())) => panic!("{at}: the run must fail"),
                Err(p) => panic!("{at}: the controller's panic escaped the engine: {p}"),
            };
            let text = err.to_string();
            assert!(
                text.contains(panic),
                "{at}: the error reports the panic: {text}"
            );
            if case != "item" {
                assert!(text.contains("step 1 refused"), "{at}: {text}");
            }
            assert_eq!(err.state(), FlowState::Reverted, "{at}: {text}");
            assert_eq!(trace.events(), want, "{at}");
        }
    }
}

/// Retries once when a controller inside it panicked (it sees that controller's failure in its
/// history, named after the steps that controller covers), otherwise reverts.
struct RetriesAfterAPanic;

impl Retry for RetriesAfterAPanic {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }
    fn on_failure(&self, history: &History) -> Decision {
        let panicked = history
            .last_failures()
            .iter()
            .any(|f| f.is_panic() && f.step() == "retry [inner_step]");
        if panicked && history.attempts() < 2 {
            Decision::Retry
        } else {
            Decision::Revert
        }
    }
}

flow! {
    flow PanicInside(trace: Trace, flaky: Flaky) -> (inner_value) {
        linear [
            prepare,
            retry(RetriesAfterAPanic) linear [ outer_step, retry(PanicsOnFailure) linear [ inner_step ] ],
        ]
    }
}

/// A controller that panics in `on_failure` fails its scope like `Decision::Revert`: the
/// enclosing controller decides, seeing the step's failure and the controller's, and may retry;
/// the retried scope's controllers start afresh.
#[test]
fn the_enclosing_controller_decides_after_a_panic_and_sees_it() {
    for engine in engines() {
        let trace = Trace::default();
        let flaky = Flaky {
            fail_times: 1,
            ..Flaky::default()
        };
        let inputs = PanicInsideInputs {
            trace: trace.clone(),
            flaky,
        };
        let out = engine.run(PanicInside, inputs).blocking().unwrap();
        assert_eq!(out.inner_value, 2, "{engine:?}");
        assert_eq!(
            trace.events(),
            [
                "prepare",
                "outer",
                "inner #1",
                "undo outer",
                "outer",
                "inner #2"
            ],
            "{engine:?}"
        );
    }
}

/// Panics in `item`; panics differently if it is ever asked what to do.
struct PanicsInItemOnly;

impl Retry for PanicsInItemOnly {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        panic!("controller exploded in item")
    }
    fn on_failure(&self, _history: &History) -> Decision {
        panic!("a controller whose item panicked was asked what to do")
    }
}

/// Retries forever, if it is asked.
struct AlwaysRetry;

impl Retry for AlwaysRetry {
    type Item = ();
    fn item(&self, _attempt: u32) -> Option<()> {
        Some(())
    }
    fn on_failure(&self, _history: &History) -> Decision {
        Decision::Retry
    }
}

flow! {
    flow OuterItemPanics(trace: Trace, flaky: Flaky) {
        linear [
            prepare,
            retry(PanicsInItemOnly) linear [ retry(AlwaysRetry) linear [ inner_step ], outer_step ],
        ]
    }
}

/// An outer controller that panics in `item` when its first step (inside an inner scope) is
/// about to start: the step cannot start, neither controller is asked (the inner one never
/// began its attempt), and the flow is reverted with the one failure, the controller's.
#[test]
fn a_controller_that_panics_in_item_is_not_asked_and_neither_is_one_inside_it() {
    for engine in engines() {
        let trace = Trace::default();
        let inputs = OuterItemPanicsInputs {
            trace: trace.clone(),
            flaky: Flaky::default(),
        };
        let result = common::within(Duration::from_secs(30), move || {
            common::no_panic(|| engine.run(OuterItemPanics, inputs).blocking().map(drop))
        });
        let err = match result {
            Ok(Err(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.failures().len(), 1, "{err}");
        assert_eq!(err.failed_step(), "retry [inner_step..outer_step]");
        assert!(err.failures()[0].is_panic());
        assert_eq!(
            err.to_string(),
            "step `retry [inner_step..outer_step]` failed: panicked: controller exploded in item; \
             every completed step was reverted"
        );
        assert_eq!(err.state(), FlowState::Reverted);
        assert_eq!(trace.events(), ["prepare", "unprepare"]);
    }
}

// ---- two inner scopes giving up in one round: the enclosing controller decides once

/// Fails on its first call; both sides wait for each other first, so that on the parallel
/// engine their failures are handled together.
#[derive(Clone)]
struct Together {
    both: Arc<std::sync::Barrier>,
    calls: Arc<AtomicU32>,
}

impl Together {
    /// Two sides that meet at one barrier on their first calls.
    fn pair() -> (Self, Self) {
        let both = Arc::new(std::sync::Barrier::new(2));
        let side = || Together {
            both: both.clone(),
            calls: Arc::new(AtomicU32::new(0)),
        };
        (side(), side())
    }

    fn call(&self, trace: &Trace, side: &str) -> Result<u32, Refused> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        trace.push(format!("{side} #{call}"));
        if call == 1 {
            self.both.wait();
            return Err(Refused(call));
        }
        Ok(call)
    }
}

#[task(provides = west)]
fn west_try(trace: &Trace, west_side: &Together) -> Result<u32, Refused> {
    west_side.call(trace, "west")
}

#[task(provides = east)]
fn east_try(trace: &Trace, east_side: &Together) -> Result<u32, Refused> {
    east_side.call(trace, "east")
}

flow! {
    flow BothGiveUp(trace: Trace, west_side: Together, east_side: Together) -> (west, east) {
        retry(Times(2)) unordered [
            retry(AlwaysRevert) linear [ west_try ],
            retry(AlwaysRevert) linear [ east_try ],
        ]
    }
}

/// Runs `flow` to its end on `engine` with a west and an east side that meet on their first
/// calls; its outputs and the trace.
fn run_pair<F: Flow>(
    engine: Engine,
    flow: F,
    inputs: impl FnOnce(Trace, Together, Together) -> F::Inputs,
) -> (F::Outputs, Vec<String>) {
    let trace = Trace::default();
    let (west_side, east_side) = Together::pair();
    let out = engine
        .run(flow, inputs(trace.clone(), west_side, east_side))
        .blocking()
        .unwrap();
    (out, trace.events())
}

#[test]
fn two_inner_scopes_that_give_up_together_cost_the_outer_scope_one_attempt() {
    // `Times(2)`: one retry. Both inner scopes give up on the first attempt, in the same round
    // on the parallel engine; the outer controller must see one failed attempt (with both
    // failures), not one per inner scope — else it counts two and gives up.
    let (out, mut events) = run_pair(
        Engine::parallel().workers(2),
        BothGiveUp,
        |trace, west_side, east_side| BothGiveUpInputs {
            trace,
            west_side,
            east_side,
        },
    );
    assert_eq!((out.west, out.east), (2, 2));
    events.sort();
    assert_eq!(events, ["east #1", "east #2", "west #1", "west #2"]);
}

#[task(provides = west)]
fn west_late(trace: &Trace, west_side: &Together) -> Result<u32, Refused> {
    let call = west_side.calls.load(Ordering::SeqCst) + 1;
    if call == 1 {
        // Meets east at the barrier inside `call`, then fails after it: east's failure is
        // handled first.
        let out = west_side.call(trace, "west");
        std::thread::sleep(Duration::from_millis(30));
        return out;
    }
    west_side.call(trace, "west")
}

flow! {
    flow InnerRetriesOuterToo(trace: Trace, west_side: Together, east_side: Together) -> (west, east) {
        retry(Times(2)) unordered [
            retry(Times(3)) linear [ west_late ],
            retry(AlwaysRevert) linear [ east_try ],
        ]
    }
}

#[derive(Default)]
struct WestAttempts(std::sync::Mutex<Vec<String>>);

impl Listener for WestAttempts {
    fn on_step(&self, e: &StepEvent<'_>) {
        if e.step == "west_late" && e.state == StepState::Running {
            self.0.lock().unwrap().push(format!("#{}", e.attempt));
        }
    }
}

#[test]
fn an_inner_scope_that_would_retry_starts_afresh_when_its_outer_scope_retries_in_the_same_round() {
    // East gives up, so the outer scope retries; west's own controller would retry too, but
    // the outer attempt starts every inner scope afresh: west runs again at attempt 1, once.
    let attempts = Arc::new(WestAttempts::default());
    let engine = Engine::parallel().workers(2).listener(attempts.clone());
    let (out, _) = run_pair(
        engine,
        InnerRetriesOuterToo,
        |trace, west_side, east_side| InnerRetriesOuterTooInputs {
            trace,
            west_side,
            east_side,
        },
    );
    assert_eq!((out.west, out.east), (2, 2));
    assert_eq!(*attempts.0.lock().unwrap(), ["#1", "#1"]);
}
