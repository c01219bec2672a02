//! The parallel engine: overlap (proved with barriers, not timing), failure while other steps run,
//! concurrent reverts in reverse dependency order, and sub-flows.
mod common;

use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

use common::{Refused, Trace};
use taskflow::prelude::*;

/// A barrier for `n` parties that gives up after a while, so a test that would deadlock when
/// steps run one at a time fails instead of hanging.
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    parties: usize,
}

impl Rendezvous {
    const fn new(parties: usize) -> Self {
        Rendezvous {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            parties,
        }
    }

    /// True when all parties met within the timeout.
    fn meet(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, timeout) = self
            .all_here
            .wait_timeout_while(arrived, Duration::from_secs(5), |a| *a < self.parties)
            .unwrap();
        drop(arrived);
        !timeout.timed_out()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} waited alone: the steps did not run at the same time")]
struct NoOverlap(&'static str);

// ---- two sync steps meet at a barrier: they must be on two worker threads at once

static SYNC_MEET: Rendezvous = Rendezvous::new(2);

#[task(provides = left)]
fn sync_left() -> Result<String, NoOverlap> {
    if !SYNC_MEET.meet() {
        return Err(NoOverlap("sync_left"));
    }
    Ok(std::thread::current().name().unwrap_or("?").to_owned())
}

#[task(provides = right)]
fn sync_right() -> Result<String, NoOverlap> {
    if !SYNC_MEET.meet() {
        return Err(NoOverlap("sync_right"));
    }
    Ok(std::thread::current().name().unwrap_or("?").to_owned())
}

flow! {
    flow SyncPair() -> (left, right) { unordered [ sync_left, sync_right ] }
}

#[test]
fn two_sync_steps_run_at_once_on_two_worker_threads() {
    let out = Engine::parallel()
        .workers(2)
        .run(SyncPair, SyncPairInputs {})
        .blocking()
        .unwrap();
    assert!(out.left.starts_with("taskflow-worker-"), "{}", out.left);
    assert!(out.right.starts_with("taskflow-worker-"), "{}", out.right);
    assert_ne!(out.left, out.right);
}

// ---- two async steps meet at an async barrier: they must be polled concurrently

static ASYNC_MEET: LazyLock<tokio::sync::Barrier> = LazyLock::new(|| tokio::sync::Barrier::new(2));

async fn meet_async(who: &'static str) -> Result<(), NoOverlap> {
    tokio::time::timeout(Duration::from_secs(5), ASYNC_MEET.wait())
        .await
        .map(|_| ())
        .map_err(|_| NoOverlap(who))
}

#[task(provides = a)]
async fn async_a() -> Result<u32, NoOverlap> {
    meet_async("async_a").await?;
    Ok(1)
}

#[task(provides = b)]
async fn async_b() -> Result<u32, NoOverlap> {
    meet_async("async_b").await?;
    Ok(2)
}

#[task(provides = sum)]
fn sum(a: u32, b: &u32) -> u32 {
    a + b
}

flow! {
    flow AsyncPair() -> (sum) { graph [ sum, async_b, async_a ] }
}

#[test]
fn two_async_steps_run_concurrently_and_their_consumer_after_both() {
    let out = Engine::parallel()
        .run(AsyncPair, AsyncPairInputs {})
        .blocking()
        .unwrap();
    assert_eq!(out.sum, 3);
}

#[test]
fn the_serial_engine_runs_one_step_at_a_time() {
    // The same barrier flow cannot meet on the serial engine: the first step waits alone.
    let err = Engine::serial()
        .run(AsyncPair2, AsyncPair2Inputs {})
        .blocking()
        .unwrap_err();
    assert!(err.source_message().contains("waited alone"), "{err}");
}

static ASYNC_MEET_2: LazyLock<tokio::sync::Barrier> =
    LazyLock::new(|| tokio::sync::Barrier::new(2));

#[task(provides = a)]
async fn lonely_a() -> Result<u32, NoOverlap> {
    tokio::time::timeout(Duration::from_millis(200), ASYNC_MEET_2.wait())
        .await
        .map_err(|_| NoOverlap("lonely_a"))?;
    Ok(1)
}

#[task(provides = b)]
async fn lonely_b() -> Result<u32, NoOverlap> {
    tokio::time::timeout(Duration::from_millis(200), ASYNC_MEET_2.wait())
        .await
        .map_err(|_| NoOverlap("lonely_b"))?;
    Ok(2)
}

flow! {
    flow AsyncPair2() -> (a, b) { unordered [ lonely_a, lonely_b ] }
}

trait SourceMessage {
    fn source_message(&self) -> String;
}

impl SourceMessage for FlowError {
    fn source_message(&self) -> String {
        std::error::Error::source(self)
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

// ---- a failure while another step runs: it finishes, is kept, and is reverted; nothing new starts

static FAIL_MEET: Rendezvous = Rendezvous::new(2);

#[task(provides = slow_value, revert = undo_slow)]
fn slow(trace: &Trace) -> u32 {
    FAIL_MEET.meet();
    // Still running when `fails` has failed: give the engine time to see that failure first.
    std::thread::sleep(Duration::from_millis(200));
    trace.push("slow finished");
    5
}

#[revert]
fn undo_slow(trace: &Trace, result: TaskOutcome<&u32>) {
    trace.push(format!("undo slow (had {:?})", result.ok()));
}

#[task(revert = undo_fails)]
fn fails(trace: &Trace) -> Result<(), Refused> {
    FAIL_MEET.meet();
    trace.push("fails failed");
    Err(Refused(1))
}

#[revert]
fn undo_fails(trace: &Trace, result: TaskOutcome<()>) {
    trace.push(format!("undo fails (own failure: {})", result.is_err()));
}

#[task]
fn never(trace: &Trace, slow_value: u32) {
    trace.push(format!("never ran with {slow_value}"));
}

flow! {
    flow FailWhileRunning(trace: Trace) { graph [ slow, fails, never ] }
}

#[test]
fn a_failure_lets_running_steps_finish_starts_nothing_new_and_reverts_both() {
    let trace = Trace::default();
    let err = Engine::parallel()
        .workers(2)
        .run(
            FailWhileRunning,
            FailWhileRunningInputs {
                trace: trace.clone(),
            },
        )
        .blocking()
        .unwrap_err();
    let events = trace.events();
    assert_eq!(err.failed_step(), "fails");
    assert_eq!(err.state(), FlowState::Reverted);
    assert!(!events.iter().any(|e| e.starts_with("never")), "{events:?}");
    assert!(events.contains(&"slow finished".to_owned()), "{events:?}");
    assert!(
        events.contains(&"undo slow (had Some(5))".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"undo fails (own failure: true)".to_owned()),
        "{events:?}"
    );
    assert_eq!(events.len(), 4, "{events:?}");
}

// ---- two parallel failures are both reported

#[task]
async fn fail_one() -> Result<(), Refused> {
    tokio::task::yield_now().await;
    Err(Refused(1))
}

#[task]
async fn fail_two() -> Result<(), Refused> {
    Err(Refused(2))
}

flow! {
    flow TwoFailures() { unordered [ fail_one, fail_two ] }
}

#[test]
fn every_failure_of_parallel_steps_is_in_the_error() {
    let err = Engine::parallel()
        .run(TwoFailures, TwoFailuresInputs {})
        .blocking()
        .unwrap_err();
    let mut steps: Vec<&str> = err.failures().iter().map(Failure::step).collect();
    steps.sort();
    assert_eq!(steps, ["fail_one", "fail_two"]);
    // `fail_two` fails at its first poll, `fail_one` after yielding once.
    assert_eq!(err.failed_step(), "fail_two");
}

// ---- reverts in reverse dependency order: a step only after everything that consumed it

#[task(provides = root, revert = undo_root)]
async fn root(trace: &Trace) -> u32 {
    trace.push("run root");
    1
}

#[revert]
async fn undo_root(trace: &Trace) {
    trace.push("undo root");
}

#[task(provides = left, revert = undo_left)]
async fn left(trace: &Trace, root: u32) -> u32 {
    trace.push("run left");
    root + 1
}

#[revert]
async fn undo_left(trace: &Trace) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    trace.push("undo left");
}

#[task(provides = right, revert = undo_right)]
fn right(trace: &Trace, root: u32) -> u32 {
    trace.push("run right");
    root + 2
}

#[revert]
fn undo_right(trace: &Trace) {
    trace.push("undo right");
}

#[task]
fn join(left: u32, right: u32) -> Result<(), Refused> {
    Err(Refused(left + right))
}

flow! {
    flow DiamondFails(trace: Trace) { graph [ join, left, right, root ] }
}

#[test]
fn reverts_run_in_reverse_dependency_order() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let err = engine
            .run(
                DiamondFails,
                DiamondFailsInputs {
                    trace: trace.clone(),
                },
            )
            .blocking()
            .unwrap_err();
        assert_eq!(err.failed_step(), "join");
        let events = trace.events();
        let at = |e: &str| {
            events
                .iter()
                .position(|x| x == e)
                .unwrap_or_else(|| panic!("{e} missing: {events:?}"))
        };
        assert!(
            at("undo left") < at("undo root") && at("undo right") < at("undo root"),
            "{events:?}"
        );
        assert!(
            at("run root") < at("run left") && at("run root") < at("run right"),
            "{events:?}"
        );
        assert_eq!(events.len(), 6, "{events:?}");
    }
}

// ---- sub-flows on the parallel engine

flow! {
    flow Branches(trace: Trace) -> (left, right) { graph [ root, left, right ] }
}

#[task(provides = total)]
fn total(left: u32, right: u32) -> u32 {
    left + right
}

flow! {
    flow WithSub(trace: Trace) -> (total) { linear [ Branches, total ] }
}

#[test]
fn sub_flows_run_and_compose_on_the_parallel_engine() {
    let trace = Trace::default();
    let out = Engine::parallel()
        .run(
            WithSub,
            WithSubInputs {
                trace: trace.clone(),
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.total, 5);
    assert_eq!(trace.events().len(), 3);
}

// ---- independent reverts run concurrently (proved by a barrier in two revert hooks)

static REVERT_MEET: Rendezvous = Rendezvous::new(2);

#[task(provides = x, revert = undo_x)]
fn make_x(trace: &Trace) -> u32 {
    trace.push("x");
    1
}

#[revert]
fn undo_x(trace: &Trace) {
    // A sync hook: the parallel engine runs it on a worker thread, beside `undo_y`.
    let met = REVERT_MEET.meet();
    trace.push(format!("undo x (met: {met})"));
}

#[task(provides = y, revert = undo_y)]
async fn make_y(trace: &Trace) -> u32 {
    trace.push("y");
    2
}

#[revert]
async fn undo_y(trace: &Trace) {
    // Sync waiting inside an async hook blocks this poll; run it where blocking is allowed.
    let met = tokio::task::spawn_blocking(|| REVERT_MEET.meet())
        .await
        .unwrap();
    trace.push(format!("undo y (met: {met})"));
}

#[task]
fn fail_after_both(x: u32, y: u32) -> Result<(), Refused> {
    Err(Refused(x + y))
}

flow! {
    flow RevertTogether(trace: Trace) { graph [ make_x, make_y, fail_after_both ] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_reverts_run_at_the_same_time() {
    let trace = Trace::default();
    let err = Engine::parallel()
        .run(
            RevertTogether,
            RevertTogetherInputs {
                trace: trace.clone(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.state(), FlowState::Reverted);
    let mut events = trace.events();
    events.sort();
    assert_eq!(
        events,
        ["undo x (met: true)", "undo y (met: true)", "x", "y"]
    );
}

// ---- sync steps on worker threads still see the caller's Tokio runtime

#[task(provides = spawned)]
fn spawn_from_sync() -> bool {
    // A sync step may hand work to the runtime it was started from.
    tokio::runtime::Handle::try_current().is_ok()
}

flow! {
    flow SpawnFromSync() -> (spawned) { linear [ spawn_from_sync ] }
}

#[test]
fn sync_steps_on_workers_run_inside_the_callers_runtime() {
    let out = Engine::parallel()
        .run(SpawnFromSync, SpawnFromSyncInputs {})
        .blocking()
        .unwrap();
    assert!(out.spawned);
}

// Its own barrier: tests run in parallel, and two tests sharing one could meet each other.
static LIMITED_MEET: LazyLock<tokio::sync::Barrier> =
    LazyLock::new(|| tokio::sync::Barrier::new(2));

#[task(provides = a)]
async fn limited_a() -> Result<u32, NoOverlap> {
    tokio::time::timeout(Duration::from_millis(200), LIMITED_MEET.wait())
        .await
        .map_err(|_| NoOverlap("limited_a"))?;
    Ok(1)
}

#[task(provides = b)]
async fn limited_b() -> Result<u32, NoOverlap> {
    tokio::time::timeout(Duration::from_millis(200), LIMITED_MEET.wait())
        .await
        .map_err(|_| NoOverlap("limited_b"))?;
    Ok(2)
}

flow! {
    flow LimitedPair() -> (a, b) { unordered [ limited_a, limited_b ] }
}

#[test]
fn max_in_flight_limits_how_many_steps_run_at_once() {
    // The two barrier steps cannot meet when only one step may be in flight.
    let err = Engine::parallel()
        .max_in_flight(1)
        .run(LimitedPair, LimitedPairInputs {})
        .blocking()
        .unwrap_err();
    assert!(err.source_message().contains("waited alone"), "{err}");
}
