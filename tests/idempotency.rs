//! A step's idempotency key (`TaskContext::idempotency_key`): one per execution of the step —
//! new for every attempt of every retry scope around it (in sub-flows too), every `map` item and
//! every run — and the same on both engines. (That it stays the same when a killed run is
//! resumed is in tests/takeover.rs.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::MemoryStore;
use taskflow::TaskContext;

/// A log by name (so that it can be stored with a durable run's inputs): the lines of every log
/// are in `LOGS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log(String);

static LOGS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

impl Log {
    fn new() -> Log {
        Log(taskflow::store::new_flow_id())
    }

    fn lines(&self) -> Vec<String> {
        let logs = LOGS.lock().unwrap();
        logs.as_ref()
            .and_then(|l| l.get(&self.0))
            .cloned()
            .unwrap_or_default()
    }
}

fn push(log: &Log, line: String) {
    let mut logs = LOGS.lock().unwrap();
    logs.get_or_insert_with(HashMap::new)
        .entry(log.0.clone())
        .or_default()
        .push(line);
}

#[task(provides = a)]
fn first(ctx: &TaskContext, log: &Log) -> u32 {
    push(log, format!("first {}", ctx.idempotency_key()));
    1
}

/// Fails on its first two calls of the run (the inner scope's two attempts), then succeeds.
#[task(provides = b)]
fn flaky(ctx: &TaskContext, log: &Log, a: u32) -> Result<u32, std::io::Error> {
    push(log, format!("flaky {}", ctx.idempotency_key()));
    let calls = log
        .lines()
        .iter()
        .filter(|l| l.starts_with("flaky"))
        .count();
    if calls <= 2 {
        return Err(std::io::Error::other("timed out"));
    }
    Ok(a + 1)
}

flow! {
    flow Nested(log: Log) -> (b) {
        retry(Times(2)) linear [ first, retry(Times(2)) linear [ flaky ] ]
    }
}

flow! { flow Inner(log: Log, a: u32) -> (b) { linear [ flaky ] } }
flow! { flow Outer(log: Log) -> (b) { retry(Times(2)) linear [ first, Inner ] } }

#[task(provides = doubled)]
fn double(x: u32, ctx: &TaskContext, log: &Log) -> u32 {
    push(log, format!("double {x} {}", ctx.idempotency_key()));
    x * 2
}

flow! { flow Fan(xs: Vec<u32>, log: Log) -> (all) { linear [ map double over xs -> all ] } }

fn keys(log: &Log, prefix: &str) -> Vec<String> {
    log.lines()
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_attempt_of_every_scope_around_a_step_has_its_own_key_on_both_engines() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let log = Log::new();
        let store = Arc::new(MemoryStore::new());
        let inputs = NestedInputs { log: log.clone() };
        engine
            .run(Nested, inputs)
            .durable(store, "n-1")
            .blocking()
            .unwrap();
        // The inner scope's two attempts fail; the outer scope retries; the inner one's
        // attempt 1 of outer attempt 2 succeeds.
        assert_eq!(
            keys(&log, "flaky "),
            ["n-1:flaky:1.1", "n-1:flaky:1.2", "n-1:flaky:2.1"]
        );
        assert_eq!(keys(&log, "first "), ["n-1:first:1", "n-1:first:2"]);
    }
}

#[test]
fn a_sub_flow_step_keys_carry_the_attempts_around_the_sub_flow() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let log = Log::new();
        let store = Arc::new(MemoryStore::new());
        let inputs = OuterInputs { log: log.clone() };
        let err = engine.run(Outer, inputs).durable(store, "o-1").blocking();
        // `flaky` fails in both attempts of the outer scope (its first two calls): reverted.
        assert!(err.is_err());
        assert_eq!(
            keys(&log, "flaky "),
            ["o-1:Inner/flaky:1", "o-1:Inner/flaky:2"]
        );
    }
}

#[test]
fn each_map_item_has_its_own_key() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let log = Log::new();
        let store = Arc::new(MemoryStore::new());
        let inputs = FanInputs {
            xs: vec![5, 6, 7],
            log: log.clone(),
        };
        let out = engine
            .run(Fan, inputs)
            .durable(store, "f-1")
            .blocking()
            .unwrap();
        assert_eq!(out.all, [10, 12, 14]);
        let mut got = keys(&log, "double ");
        got.sort();
        assert_eq!(got, ["5 f-1:double#0", "6 f-1:double#1", "7 f-1:double#2"]);
    }
}

#[test]
fn runs_without_a_store_get_a_key_of_their_own_per_run() {
    let log = Log::new();
    for _ in 0..2 {
        let inputs = FanInputs {
            xs: vec![1],
            log: log.clone(),
        };
        Engine::serial().run(Fan, inputs).blocking().unwrap();
    }
    let got = keys(&log, "double 1 ");
    assert_eq!(got.len(), 2);
    assert_ne!(got[0], got[1], "two runs, two keys");
    for key in &got {
        assert!(key.ends_with(":double#0"), "{key}");
        assert!(
            key.is_ascii() && !key.contains(char::is_whitespace),
            "{key}"
        );
    }
}
