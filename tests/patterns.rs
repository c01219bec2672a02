//! Every pattern, composition, rebinding and the static graph, through the public API.
mod common;

use common::{Refused, Trace};
use taskflow::prelude::*;
use taskflow::StepKind;

// ---- linear / unordered / graph

#[task(provides = doubled)]
fn double(trace: &Trace, x: u32) -> u32 {
    trace.push("double");
    x * 2
}

#[task(provides = squared)]
async fn square(trace: &Trace, x: u32) -> u32 {
    trace.push("square");
    tokio::task::yield_now().await;
    x * x
}

#[task(provides = total)]
fn add(trace: &Trace, doubled: u32, squared: &u32) -> u32 {
    trace.push("add");
    doubled + squared
}

flow! {
    flow Linear(trace: Trace, x: u32) -> (total) { linear [ double, square, add ] }
}

flow! {
    flow Unordered(trace: Trace, x: u32) -> (total) {
        linear [ unordered [ square, double ], add ]
    }
}

flow! {
    flow Graph(trace: Trace, x: u32) -> (total) { graph [ add, square, double ] }
}

#[test]
fn linear_runs_in_the_written_order() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Linear,
            LinearInputs {
                trace: trace.clone(),
                x: 3,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.total, 15);
    assert_eq!(trace.events(), ["double", "square", "add"]);
}

#[test]
fn unordered_members_all_run_before_what_follows() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Unordered,
            UnorderedInputs {
                trace: trace.clone(),
                x: 4,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.total, 24);
    assert_eq!(trace.events(), ["square", "double", "add"]);
    assert_eq!(Unordered::graph().edges(), &[(0, 2), (1, 2)]);
}

#[test]
fn graph_orders_steps_by_their_data_dependencies() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Graph,
            GraphInputs {
                trace: trace.clone(),
                x: 5,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.total, 35);
    // `add` is written first but reads both others' outputs.
    assert_eq!(trace.events(), ["square", "double", "add"]);
    let names: Vec<_> = Graph::graph().steps().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["square", "double", "add"]);
}

// ---- a diamond: each step runs once, after its inputs

#[task(provides = root)]
fn top(trace: &Trace, seed: u32) -> u32 {
    trace.push("top");
    seed
}

#[task(provides = left)]
fn left_side(trace: &Trace, root: &u32) -> u32 {
    trace.push("left");
    root + 1
}

#[task(provides = right)]
async fn right_side(trace: &Trace, root: &u32) -> u32 {
    trace.push("right");
    root + 2
}

#[task(provides = joined)]
fn bottom(trace: &Trace, left: u32, right: u32) -> (u32, u32) {
    trace.push("bottom");
    (left, right)
}

flow! {
    flow Diamond(trace: Trace, seed: u32) -> (joined) {
        graph [ bottom, right_side, left_side, top ]
    }
}

#[test]
fn a_diamond_runs_each_step_once_after_its_inputs() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Diamond,
            DiamondInputs {
                trace: trace.clone(),
                seed: 10,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.joined, (11, 12));
    let events = trace.events();
    assert_eq!(events.len(), 4, "each step once: {events:?}");
    let at = |name: &str| events.iter().position(|e| e == name).unwrap();
    assert!(at("top") < at("left") && at("top") < at("right"));
    assert!(at("left") < at("bottom") && at("right") < at("bottom"));
    let graph = Diamond::graph();
    let index = |name: &str| graph.steps().iter().position(|s| s.name() == name).unwrap();
    let mut edges: Vec<(&str, &str)> = graph
        .edges()
        .iter()
        .map(|&(f, t)| (graph.steps()[f].name(), graph.steps()[t].name()))
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            ("left_side", "bottom"),
            ("right_side", "bottom"),
            ("top", "left_side"),
            ("top", "right_side")
        ]
    );
    assert!(index("top") < index("bottom"));
}

// ---- explicit links order steps with no data between them

#[task]
fn first(trace: &Trace) {
    trace.push("first");
}

#[task]
fn second(trace: &Trace) {
    trace.push("second");
}

flow! {
    flow Linked(trace: Trace) { graph [ second, first, first -> second ] }
}

#[test]
fn a_link_orders_two_independent_steps() {
    let trace = Trace::default();
    Engine::serial()
        .run(
            Linked,
            LinkedInputs {
                trace: trace.clone(),
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(trace.events(), ["first", "second"]);
}

// ---- rebinding, renaming, labels, defaults, tuples

#[task(provides = y)]
fn increment(x: u32) -> u32 {
    x + 1
}

#[task(provides = (quotient, remainder))]
fn divide(dividend: u32, #[default] divisor: u32) -> (u32, u32) {
    let divisor = if divisor == 0 { 3 } else { divisor };
    (dividend / divisor, dividend % divisor)
}

flow! {
    flow Rebound(start: u32) -> (a, b, quotient, remainder, q2) {
        linear [
            increment(x = start) -> a as first_increment,
            increment(x = a) -> b as second_increment,
            divide(dividend = b),
            divide(dividend = a, divisor = b) -> (q2, r2) as divide_again,
        ]
    }
}

#[test]
fn rebinding_renaming_labels_defaults_and_tuples() {
    let out = Engine::serial()
        .run(Rebound, ReboundInputs { start: 9 })
        .blocking()
        .unwrap();
    assert_eq!((out.a, out.b), (10, 11));
    // `divisor` is bound by nothing in the first `divide`: it takes Default::default() (0 -> 3).
    assert_eq!((out.quotient, out.remainder), (3, 2));
    assert_eq!(out.q2, 0);
    let steps: Vec<_> = Rebound::graph()
        .steps()
        .iter()
        .map(|s| (s.name(), s.requires(), s.provides()))
        .collect();
    assert_eq!(steps[0], ("first_increment", &["start"][..], &["a"][..]));
    assert_eq!(
        steps[2],
        (
            "divide",
            &["b", "divisor"][..],
            &["quotient", "remainder"][..]
        )
    );
}

// ---- values that are not Clone move through when a single step reads them

#[derive(Debug)]
struct Ticket(String);

#[task(provides = ticket)]
fn issue(name: String) -> Ticket {
    Ticket(name)
}

#[task(provides = receipt)]
fn redeem(ticket: Ticket) -> String {
    format!("redeemed {}", ticket.0)
}

flow! {
    flow Redeem(name: String) -> (receipt) { linear [ issue, redeem ] }
}

#[test]
fn a_value_read_once_by_value_is_moved_not_cloned() {
    let out = Engine::serial()
        .run(Redeem, RedeemInputs { name: "t1".into() })
        .blocking()
        .unwrap();
    assert_eq!(out.receipt, "redeemed t1");
}

// ---- flows as steps of other flows, to any depth

flow! {
    /// The inner flow: `doubled` and `squared` of `x`.
    flow Inner(trace: Trace, x: u32) -> (doubled, squared) { unordered [ double, square ] }
}

flow! {
    flow Middle(trace: Trace, x: u32) -> (total) { linear [ Inner, add ] }
}

#[task(provides = report)]
fn describe(total: u32) -> String {
    format!("total={total}")
}

flow! {
    flow Outer(trace: Trace, seed: u32) -> (total, report) {
        linear [ Middle(x = seed), describe ]
    }
}

#[test]
fn flows_compose_as_steps_to_any_depth() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Outer,
            OuterInputs {
                trace: trace.clone(),
                seed: 2,
            },
        )
        .blocking()
        .unwrap();
    assert_eq!((out.total, out.report.as_str()), (8, "total=8"));
    assert_eq!(trace.events(), ["double", "square", "add"]);

    let graph = Outer::graph();
    assert_eq!(graph.steps()[0].kind(), StepKind::Flow);
    let middle = graph.steps()[0].subflow().unwrap();
    assert_eq!(middle.name(), "Middle");
    assert_eq!(middle.steps()[0].subflow().unwrap().name(), "Inner");
    let dot = graph.to_dot();
    assert!(dot.contains("\"Outer/Middle/Inner/double\""), "{dot}");
    assert!(
        dot.contains("\"Outer/Middle\" -> \"Outer/describe\""),
        "{dot}"
    );
}

// ---- failures inside and after a sub-flow

#[task(provides = g, revert = undo_g)]
fn make_g(trace: &Trace, fail_inner: bool) -> Result<u32, Refused> {
    trace.push("execute g");
    if fail_inner {
        return Err(Refused(1));
    }
    Ok(1)
}

#[revert]
fn undo_g(trace: &Trace, result: TaskOutcome<&u32>) {
    trace.push(format!("revert g ok={}", result.is_ok()));
}

#[task(provides = h, revert = undo_h)]
fn make_h(trace: &Trace, g: u32) -> u32 {
    trace.push("execute h");
    g + 1
}

#[revert]
fn undo_h(trace: &Trace) {
    trace.push("revert h");
}

#[task(revert = undo_before)]
fn before(trace: &Trace) {
    trace.push("execute before");
}

#[revert]
fn undo_before(trace: &Trace) {
    trace.push("revert before");
}

#[task]
fn after(trace: &Trace, h: u32, fail_after: bool) -> Result<(), Refused> {
    trace.push("execute after");
    if fail_after {
        return Err(Refused(h));
    }
    Ok(())
}

flow! {
    flow Sub(trace: Trace, fail_inner: bool) -> (h) { linear [ make_g, make_h ] }
}

flow! {
    flow Parent(trace: Trace, fail_inner: bool, fail_after: bool) {
        linear [ before, Sub, after ]
    }
}

fn run_parent(fail_inner: bool, fail_after: bool) -> (Result<(), FlowError>, Vec<String>) {
    let trace = Trace::default();
    let result = Engine::serial()
        .run(
            Parent,
            ParentInputs {
                trace: trace.clone(),
                fail_inner,
                fail_after,
            },
        )
        .blocking()
        .map(|_| ());
    (result, trace.events())
}

#[test]
fn a_failure_inside_a_sub_flow_reverts_it_then_the_parent() {
    let (result, events) = run_parent(true, false);
    assert_eq!(
        events,
        [
            "execute before",
            "execute g",
            "revert g ok=false",
            "revert before"
        ]
    );
    let err = result.unwrap_err();
    assert_eq!(err.failed_step(), "Sub/make_g");
    assert_eq!(
        err.failures()[0].downcast_ref::<Refused>(),
        Some(&Refused(1))
    );
}

#[test]
fn a_failure_after_a_sub_flow_reverts_the_whole_sub_flow() {
    let (result, events) = run_parent(false, true);
    assert_eq!(
        events,
        [
            "execute before",
            "execute g",
            "execute h",
            "execute after",
            "revert h",
            "revert g ok=true",
            "revert before"
        ]
    );
    assert_eq!(result.unwrap_err().failed_step(), "after");
}

// ---- the two ways to run

#[tokio::test]
async fn run_from_async_code_and_run_blocking_inside_a_runtime() {
    let trace = Trace::default();
    let out = Engine::serial()
        .run(
            Linear,
            LinearInputs {
                trace: trace.clone(),
                x: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.total, 3);
    // .blocking() from inside a runtime does not panic: it runs on a helper thread.
    let out = Engine::serial()
        .run(Linear, LinearInputs { trace, x: 2 })
        .blocking()
        .unwrap();
    assert_eq!(out.total, 8);
}

#[task(provides = slept)]
async fn sleepy(ms: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ms
}

flow! {
    flow Sleepy(ms: u64) -> (slept) { linear [ sleepy ] }
}

#[test]
fn run_blocking_provides_tokio_timers_to_async_tasks() {
    let out = Engine::serial()
        .run(Sleepy, SleepyInputs { ms: 1 })
        .blocking()
        .unwrap();
    assert_eq!(out.slept, 1);
}

#[test]
fn tasks_stay_plain_callable_functions() {
    assert_eq!(increment(1), 2);
    assert_eq!(divide(7, 2), (3, 1));
    let trace = Trace::default();
    assert_eq!(add(&trace, 1, &2), 3);
}
