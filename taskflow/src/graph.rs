//! A flow's structure as data: its steps, their names and the edges between them.

use std::fmt::Write as _;

/// What a step of a flow is.
///
/// ```
/// use taskflow::prelude::*;
/// use taskflow::StepKind;
///
/// #[task(provides = n)]
/// fn one() -> u32 { 1 }
///
/// flow! { flow Inner() -> (n) { linear [ one ] } }
/// flow! { flow Outer() -> (n) { linear [ Inner ] } }
///
/// fn main() {
///     assert_eq!(Outer::graph().steps()[0].kind(), StepKind::Flow);
///     assert_eq!(Inner::graph().steps()[0].kind(), StepKind::Task);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A `#[task]` function.
    Task,
    /// Another flow used as a step.
    Flow,
}

/// How a step runs.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// A plain `fn` task: on a worker thread in the parallel engine.
    Sync,
    /// An `async fn` task.
    Async,
    /// A sub-flow.
    Flow,
}

/// One step of a [`FlowGraph`]: its name, what it reads and provides, and its sub-flow.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = total)]
/// fn sum(a: u32, b: u32) -> u32 { a + b }
///
/// flow! { flow Sum(x: u32, y: u32) -> (result) { linear [ sum(a = x, b = y) -> result as add ] } }
///
/// fn main() {
///     let step = &Sum::graph().steps()[0];
///     assert_eq!(step.name(), "add");
///     assert_eq!(step.requires(), &["x", "y"]);
///     assert_eq!(step.provides(), &["result"]);
///     assert!(step.subflow().is_none());
/// }
/// ```
#[derive(Debug)]
pub struct StepInfo {
    name: &'static str,
    kind: StepKind,
    requires: &'static [&'static str],
    provides: &'static [&'static str],
    subflow: Option<fn() -> &'static FlowGraph>,
    exec: Exec,
    sync_hook: bool,
}

impl StepInfo {
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        exec: Exec,
        requires: &'static [&'static str],
        provides: &'static [&'static str],
        subflow: Option<fn() -> &'static FlowGraph>,
        sync_hook: bool,
    ) -> Self {
        let kind = match exec {
            Exec::Flow => StepKind::Flow,
            Exec::Sync | Exec::Async => StepKind::Task,
        };
        StepInfo {
            name,
            kind,
            requires,
            provides,
            subflow,
            exec,
            sync_hook,
        }
    }

    /// Whether the step's revert hook is a plain `fn` (run on a worker by the parallel engine).
    pub(crate) fn sync_hook(&self) -> bool {
        self.sync_hook
    }

    pub(crate) fn exec(&self) -> Exec {
        self.exec
    }

    /// The step's name in its flow (the task's name, or its label given with `as`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the step is a task or a sub-flow.
    pub fn kind(&self) -> StepKind {
        self.kind
    }

    /// The flow names the step reads, after rebinding.
    pub fn requires(&self) -> &'static [&'static str] {
        self.requires
    }

    /// The flow names the step provides, after renaming.
    pub fn provides(&self) -> &'static [&'static str] {
        self.provides
    }

    /// The graph of the sub-flow, when the step is a flow.
    pub fn subflow(&self) -> Option<&'static FlowGraph> {
        self.subflow.map(|graph| graph())
    }
}

/// A retry controller's sub-flow: which steps it covers and which controller encloses it.
#[doc(hidden)]
#[derive(Debug)]
pub struct ScopeInfo {
    pub(crate) parent: Option<usize>,
    /// Step positions, in run order.
    pub(crate) steps: &'static [usize],
}

impl ScopeInfo {
    #[doc(hidden)]
    pub const fn __new(parent: Option<usize>, steps: &'static [usize]) -> Self {
        ScopeInfo { parent, steps }
    }
}

/// The static structure of a flow defined with `flow!`: what `MyFlow::graph()` returns.
///
/// Steps are listed in the order the serial engine runs them; `edges` are pairs of step indices
/// (`from` must finish before `to` starts), from data dependencies, the order of `linear` patterns
/// and explicit `a -> b` links.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = doubled)]
/// fn double(x: u32) -> u32 { x * 2 }
///
/// #[task(provides = text)]
/// fn show(doubled: u32) -> String { doubled.to_string() }
///
/// flow! {
///     flow Show(x: u32) -> (text) { linear [ double, show ] }
/// }
///
/// fn main() {
///     let graph = Show::graph();
///     assert_eq!(graph.name(), "Show");
///     assert_eq!(graph.steps().iter().map(|s| s.name()).collect::<Vec<_>>(), ["double", "show"]);
///     assert_eq!(graph.edges(), &[(0, 1)]);
///     assert!(graph.to_dot().contains("\"Show/double\" -> \"Show/show\""));
/// }
/// ```
#[derive(Debug)]
pub struct FlowGraph {
    name: &'static str,
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    steps: &'static [StepInfo],
    edges: &'static [(usize, usize)],
    scopes: &'static [ScopeInfo],
    /// Steps guarded by deciders.
    guarded: &'static [usize],
}

impl FlowGraph {
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        inputs: &'static [&'static str],
        outputs: &'static [&'static str],
        steps: &'static [StepInfo],
        edges: &'static [(usize, usize)],
        scopes: &'static [ScopeInfo],
        guarded: &'static [usize],
    ) -> Self {
        FlowGraph {
            name,
            inputs,
            outputs,
            steps,
            edges,
            scopes,
            guarded,
        }
    }

    /// Steps that deciders guard.
    pub(crate) fn guarded(&self) -> &'static [usize] {
        self.guarded
    }

    pub(crate) fn scopes(&self) -> &'static [ScopeInfo] {
        self.scopes
    }

    /// The innermost retry scope of step `step`.
    pub(crate) fn scope_of(&self, step: usize) -> Option<usize> {
        // Scopes are listed outermost first, so the last one that holds the step is innermost.
        self.scopes.iter().rposition(|s| s.steps.contains(&step))
    }

    /// The flow's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The flow's declared inputs.
    pub fn inputs(&self) -> &'static [&'static str] {
        self.inputs
    }

    /// The flow's declared outputs.
    pub fn outputs(&self) -> &'static [&'static str] {
        self.outputs
    }

    /// The steps, in the order the serial engine runs them.
    pub fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// `(from, to)` pairs of indices into [`steps`](Self::steps).
    pub fn edges(&self) -> &'static [(usize, usize)] {
        self.edges
    }

    /// The graph in Graphviz DOT; sub-flows are drawn as clusters.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {:?} {{", self.name);
        let _ = writeln!(out, "  rankdir=LR;");
        let mut cluster = 0;
        self.write_body(&mut out, self.name, 1, &mut cluster);
        out.push_str("}\n");
        out
    }

    fn write_body(&self, out: &mut String, prefix: &str, depth: usize, cluster: &mut usize) {
        let pad = "  ".repeat(depth);
        for step in self.steps {
            let id = format!("{prefix}/{}", step.name);
            match step.subflow() {
                Some(sub) => {
                    *cluster += 1;
                    let _ = writeln!(out, "{pad}subgraph \"cluster_{cluster}\" {{");
                    let _ = writeln!(
                        out,
                        "{pad}  label={:?};",
                        format!("{} ({})", step.name, sub.name)
                    );
                    let _ = writeln!(out, "{pad}  {id:?} [shape=point];");
                    sub.write_body(out, &id, depth + 1, cluster);
                    let _ = writeln!(out, "{pad}}}");
                }
                None => {
                    let label = match step.provides {
                        [] => step.name.to_owned(),
                        names => format!("{}\\n-> {}", step.name, names.join(", ")),
                    };
                    let _ = writeln!(out, "{pad}{id:?} [label=\"{label}\", shape=box];");
                }
            }
        }
        for &(from, to) in self.edges {
            let _ = writeln!(
                out,
                "{pad}\"{prefix}/{}\" -> \"{prefix}/{}\";",
                self.steps[from].name, self.steps[to].name
            );
        }
    }
}
