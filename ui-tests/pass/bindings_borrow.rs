// What a parameter may read without a conversion: the value's own type (by value or by
// reference), or, by reference, what the value dereferences to, in any number of steps (`String`
// to `str`, `Vec<T>` to `[T]`, `Box<T>` to `T`, `Arc<String>` to `str`, `PathBuf` to `Path`, a
// `Deref` type of the user's to its target), also as `Option<&T>` of a value a decider may skip,
// in a `map` step, and from a sub-flow's output.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use taskflow::prelude::*;

#[task(provides = (name, sizes, boxed, shared, dir))]
fn make(n: u32) -> (String, Vec<u32>, Box<u32>, Arc<String>, PathBuf) {
    (format!("n{n}"), vec![n, n + 1], Box::new(n), Arc::new("arc".into()), PathBuf::from("/tmp"))
}

/// A smart pointer of the user's: read as `&u32`.
#[derive(Clone)]
pub struct Counter(u32);

impl std::ops::Deref for Counter {
    type Target = u32;
    fn deref(&self) -> &u32 {
        &self.0
    }
}

#[task(provides = counter)]
fn count(n: u32) -> Counter {
    Counter(n * 10)
}

#[task(provides = counted)]
fn read_count(counter: &u32) -> u32 {
    *counter + 1
}

#[task(provides = text)]
fn describe(name: &str, sizes: &[u32], boxed: &u32, shared: &str, dir: &Path, n: u32) -> String {
    format!("{name} {sizes:?} {boxed} {shared} {} {n}", dir.display())
}

#[task(provides = labels)]
fn label(size: &u32, name: &str) -> String {
    format!("{name}-{size}")
}

#[task]
fn decide(boxed: &u32) -> bool {
    *boxed > 1
}

#[task(provides = extra)]
fn maybe(n: u32) -> String {
    format!("extra{n}")
}

#[task(provides = summary)]
fn summarize(text: &str, labels: &[String], extra: Option<&str>, counted: u32) -> String {
    format!("{text} {labels:?} {extra:?} {counted}")
}

flow! {
    flow Make(n: u32) -> (name, sizes, boxed, shared, dir) {
        linear [ make ]
    }
}

flow! {
    flow Bindings(n: u32) -> (summary) {
        graph [
            Make, describe, map label over sizes -> labels, maybe, count, read_count, summarize,
            Make -> maybe if decide,
        ]
    }
}

fn main() {
    let out = Engine::serial().run(Bindings, BindingsInputs { n: 2 }).blocking().unwrap();
    assert_eq!(
        out.summary,
        "n2 [2, 3] 2 arc /tmp 2 [\"n2-2\", \"n2-3\"] Some(\"extra2\") 21"
    );
}
