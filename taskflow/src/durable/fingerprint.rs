//! A flow's fingerprint: what a stored run must match to be resumed by this build.

use crate::flow::Flow;
use crate::graph::FlowGraph;

/// The fingerprint of a flow: a hash of its steps, their names and kinds, what each reads and
/// provides, the edges, the retry scopes, and its stored types as written — the inputs' in
/// `flow!`, each task's outputs at its `#[task]` — with its sub-flows', as 16 hex digits. Two
/// builds with the same fingerprint store the same things in the same places. It does not
/// depend on the compiler (no `std::any::type_name`): upgrading Rust keeps stored runs
/// resumable. It sees a type's name as written, not its definition: renaming or changing a
/// task's return type changes it, adding a field to that type does not.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
/// #[task(provides = y)]
/// fn wide(x: u64) -> u64 { x + 1 }
///
/// flow! { flow A(x: u32) -> (y) { linear [ inc ] } }
/// flow! { flow B(x: u64) -> (y) { linear [ wide as inc ] } }
///
/// fn main() {
///     assert_eq!(taskflow::fingerprint::<A>().len(), 16);
///     assert_eq!(taskflow::fingerprint::<A>(), taskflow::fingerprint::<A>());
///     assert_ne!(taskflow::fingerprint::<A>(), taskflow::fingerprint::<B>());
/// }
/// ```
pub fn fingerprint<F: Flow>() -> String {
    let mut text = String::new();
    describe(F::graph(), &mut text);
    let mut types = Vec::new();
    F::graph().stored_types(&mut types);
    for t in types {
        text.push_str(t);
        text.push('\n');
    }
    // FNV-1a, 64 bits: stable across builds and platforms (std's hashers promise neither).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn describe(graph: &FlowGraph, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "flow {} {:?} {:?}",
        graph.name(),
        graph.inputs(),
        graph.outputs()
    );
    for step in graph.steps() {
        let _ = writeln!(
            out,
            "step {} {:?} {:?} {:?}",
            step.name(),
            step.exec(),
            step.requires(),
            step.provides()
        );
        if let Some(sub) = step.subflow() {
            describe(sub, out);
            out.push_str("end\n");
        }
    }
    let _ = writeln!(out, "edges {:?}", graph.edges());
    for scope in graph.scopes() {
        let _ = writeln!(out, "scope {:?} {:?}", scope.parent, scope.steps);
    }
    let _ = writeln!(out, "guarded {:?}", graph.guarded());
}
