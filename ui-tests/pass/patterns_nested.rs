// Every pattern (linear, unordered, graph with data edges and an explicit link), nested in one another.
use std::sync::Mutex;

use taskflow::prelude::*;

static LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn log(step: &'static str) {
    LOG.lock().unwrap().push(step);
}

#[task(provides = a)]
fn make_a(seed: u32) -> u32 {
    log("make_a");
    seed + 1
}

#[task(provides = b)]
fn make_b(seed: u32) -> u32 {
    log("make_b");
    seed * 10
}

#[task(provides = c)]
fn add(a: u32, b: &u32) -> u32 {
    log("add");
    a + b
}

#[task]
fn audit() {
    log("audit");
}

#[task(provides = d)]
fn double(c: u32) -> u64 {
    log("double");
    u64::from(c) * 2
}

#[task]
fn report(c: &u32, d: &u64) {
    log("report");
    assert_eq!(u64::from(*c) * 2, *d);
}

flow! {
    flow Patterns(seed: u32) -> (c, d) {
        linear [
            unordered [ make_a, linear [ make_b ] ],
            // written out of order: the graph orders `add -> double -> report` by their data,
            // and `audit -> add` by the explicit link
            graph [ report, unordered [ double ], add, audit, audit -> add ],
        ]
    }
}

fn main() {
    let out = Engine::serial().run(Patterns, PatternsInputs { seed: 2 }).blocking().unwrap();
    assert_eq!((out.c, out.d), (23, 46));
    let log = LOG.lock().unwrap();
    let at = |step| log.iter().position(|s| *s == step).unwrap();
    assert_eq!(log.len(), 6);
    assert!(at("make_a") < at("add") && at("make_b") < at("add"));
    assert!(at("audit") < at("add"));
    assert!(at("add") < at("double") && at("double") < at("report"));
}
