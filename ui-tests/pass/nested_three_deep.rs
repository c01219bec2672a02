// No false errors through sub-flows: flows nested three deep, a flow used in two flows (and twice
// in one, labelled), sub-flow inputs read from a flow input, a step and another sub-flow (each
// through its binding's check), sub-flow outputs read by value, by `&T` and by a deref (`&str` of
// a `String`), on both engines.
use taskflow::prelude::*;

#[task(provides = name)]
fn normalize(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[task(provides = size)]
fn measure(name: &str) -> u64 {
    name.len() as u64
}

#[task(provides = label)]
fn describe(name: &str, size: &u64) -> String {
    format!("{name}:{size}")
}

#[task(provides = report)]
fn join(first: &str, second: String, total: u64) -> String {
    format!("{first}|{second}|{total}")
}

#[task(provides = total)]
fn add(left: u64, right: &u64) -> u64 {
    left + right
}

flow! {
    /// Innermost: a name and its size.
    flow Measure(raw: String) -> (name, size) {
        linear [ normalize, measure ]
    }
}

flow! {
    /// Uses `Measure`, and reads its outputs by `&str` and `&u64`.
    flow Describe(raw: String) -> (label, size) {
        linear [ Measure, describe ]
    }
}

flow! {
    /// Uses `Describe` (so `Measure` two deep) and `Measure` itself, labelled.
    flow Compare(a: String, b: String) -> (report) {
        linear [
            Describe(raw = a) -> (first, left) as describe_a,
            Measure(raw = b) -> (b_name, right) as measure_b,
            describe(name = b_name, size = right) -> second,
            add,
            join,
        ]
    }
}

flow! {
    /// Three deep: `Compare` > `Describe` > `Measure`.
    flow Top(a: String, b: String) -> (report) {
        linear [ Compare ]
    }
}

fn main() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let out = engine
            .run(Top, TopInputs { a: " Alpha ".into(), b: "be".into() })
            .blocking()
            .unwrap();
        assert_eq!(out.report, "alpha:5|be:2|7");
    }
}
