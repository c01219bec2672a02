//! A flow's structure as data: its steps, their names and the edges between them.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde_json::{json, Map, Value};

use crate::__private::Task;
use crate::{OnTakeover, StepState};

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
    /// The task's stored output types as written at its `#[task]` (each a `Vec` of them for a
    /// `map` step), for the fingerprint.
    types: &'static [&'static str],
    map: bool,
    on_takeover: OnTakeover,
}

impl StepInfo {
    /// A step that runs task `T` once.
    #[doc(hidden)]
    pub const fn __task<T: Task>(
        name: &'static str,
        requires: &'static [&'static str],
        provides: &'static [&'static str],
    ) -> Self {
        let exec = if T::ASYNC { Exec::Async } else { Exec::Sync };
        let step = StepInfo::__new(name, exec, requires, provides, None, T::SYNC_HOOK);
        StepInfo {
            types: T::TYPES,
            on_takeover: T::ON_TAKEOVER,
            ..step
        }
    }

    /// A `map` step of task `T`: it waits for its items, which the engine runs, never on a
    /// worker itself.
    #[doc(hidden)]
    pub const fn __map<T: Task>(
        name: &'static str,
        requires: &'static [&'static str],
        provides: &'static [&'static str],
    ) -> Self {
        let step = StepInfo::__new(name, Exec::Async, requires, provides, None, T::SYNC_HOOK);
        StepInfo {
            types: T::TYPES,
            map: true,
            on_takeover: T::ON_TAKEOVER,
            ..step
        }
    }

    /// The step, named `name` in its flow (its label).
    #[doc(hidden)]
    pub const fn __named(self, name: &'static str) -> Self {
        StepInfo { name, ..self }
    }

    /// A step that runs a sub-flow, whose structure `graph` gives (the flow's `Flow::graph`:
    /// passed in, so that this module does not depend on `Flow`).
    #[doc(hidden)]
    pub const fn __flow(
        name: &'static str,
        requires: &'static [&'static str],
        provides: &'static [&'static str],
        graph: fn() -> &'static FlowGraph,
    ) -> Self {
        StepInfo::__new(name, Exec::Flow, requires, provides, Some(graph), false)
    }

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
            types: &[],
            map: false,
            on_takeover: OnTakeover::Rerun,
        }
    }

    /// The stored types of the step's outputs as written, for the fingerprint (see
    /// [`FlowGraph::stored_types`]).
    fn stored_types(&self, out: &mut Vec<&'static str>) {
        if self.map && !self.types.is_empty() {
            out.push("Vec");
        }
        out.extend_from_slice(self.types);
    }

    /// What a take-over does with the step when it was RUNNING: its task's
    /// `#[task(on_takeover = ..)]`, [`OnTakeover::Rerun`] by default (and for a sub-flow, whose
    /// own steps have their policies).
    ///
    /// ```
    /// use taskflow::prelude::*;
    /// use taskflow::OnTakeover;
    ///
    /// #[task(provides = charge_id, on_takeover = hold)]
    /// fn charge(cents: u64) -> String { format!("ch-{cents}") }
    ///
    /// flow! { flow Pay(cents: u64) -> (charge_id) { linear [ charge ] } }
    ///
    /// fn main() {
    ///     assert_eq!(Pay::graph().steps()[0].on_takeover(), OnTakeover::Hold);
    /// }
    /// ```
    pub fn on_takeover(&self) -> OnTakeover {
        self.on_takeover
    }

    /// Whether the step is a `map` step (its task runs once per item).
    pub(crate) fn is_map(&self) -> bool {
        self.map
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
    /// The inputs' types as written in `flow!`, for the fingerprint.
    input_types: &'static [&'static str],
    outputs: &'static [&'static str],
    steps: &'static [StepInfo],
    edges: &'static [(usize, usize)],
    scopes: &'static [ScopeInfo],
    /// Steps guarded by deciders.
    guarded: &'static [usize],
}

impl FlowGraph {
    /// A flow without retry scopes or deciders (see [`__scopes`](Self::__scopes) and
    /// [`__guarded`](Self::__guarded)).
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        inputs: &'static [&'static str],
        input_types: &'static [&'static str],
        outputs: &'static [&'static str],
        steps: &'static [StepInfo],
        edges: &'static [(usize, usize)],
    ) -> Self {
        FlowGraph {
            name,
            inputs,
            input_types,
            outputs,
            steps,
            edges,
            scopes: &[],
            guarded: &[],
        }
    }

    /// The flow, with its retry scopes.
    #[doc(hidden)]
    pub const fn __scopes(self, scopes: &'static [ScopeInfo]) -> Self {
        FlowGraph { scopes, ..self }
    }

    /// The flow, with the steps its deciders guard.
    #[doc(hidden)]
    pub const fn __guarded(self, guarded: &'static [usize]) -> Self {
        FlowGraph { guarded, ..self }
    }

    /// The stored types as written — the inputs' in `flow!`, each task's outputs at its
    /// `#[task]` — then the sub-flows', for the fingerprint.
    pub(crate) fn stored_types(&self, out: &mut Vec<&'static str>) {
        out.extend_from_slice(self.input_types);
        for step in self.steps {
            step.stored_types(out);
        }
        for sub in self.steps.iter().filter_map(StepInfo::subflow) {
            sub.stored_types(out);
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
    pub const fn name(&self) -> &'static str {
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
    ///
    /// Node ids are step paths under the flow's name (`"Show/double"`, `"Outer/Sub/step"`). A task
    /// is a box labelled with its name and what it provides; a sub-flow step is a cluster labelled
    /// `step (SubFlow)` that holds a point node (the step's own id, which the edges to and from
    /// the step use) and the sub-flow's steps and edges. [`FlowGraph::dot_from_json`] draws the
    /// same from [`to_json`](Self::to_json)'s output, optionally with the steps' states.
    ///
    /// ```
    /// use taskflow::prelude::*;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// flow! { flow Inner(x: u32) -> (doubled) { linear [ double ] } }
    /// flow! { flow Outer(x: u32) -> (doubled) { linear [ Inner as sub ] } }
    ///
    /// fn main() {
    ///     let dot = Outer::graph().to_dot();
    ///     assert!(dot.starts_with("digraph \"Outer\" {\n  rankdir=LR;\n"));
    ///     assert!(dot.contains("label=\"sub (Inner)\";"));
    ///     assert!(dot.contains("\"Outer/sub/double\" [label=\"double\\n-> doubled\", shape=box];"));
    /// }
    /// ```
    pub fn to_dot(&self) -> String {
        render(&Shape::from(self), None)
    }

    /// The graph as JSON, in a stable format that [`FlowGraph::dot_from_json`] draws: what a
    /// durable run records in its store (`FlowRecord::graph`), so that tools which do not have
    /// the compiled flow, like the `taskflow graph` command, can show its structure.
    ///
    /// ```text
    /// {
    ///   "name": "Outer",              the flow's name
    ///   "inputs": ["seed"],           its declared inputs
    ///   "outputs": ["text"],          its declared outputs
    ///   "steps": [                    its steps, in the order the serial engine runs them
    ///     {
    ///       "name": "sub",            unique among the flow's steps
    ///       "kind": "flow",           "task" or "flow"
    ///       "requires": ["x"],        the flow names it reads, after rebinding
    ///       "provides": ["doubled"],  the flow names it provides, after renaming
    ///       "subflow": { ... }        for a "flow" step its graph, in this same format;
    ///     }                           null for a "task" step
    ///   ],
    ///   "edges": [[0, 1]]             [from, to] pairs of indices into "steps":
    /// }                               `from` finishes before `to` starts
    /// ```
    ///
    /// Every key is always present. Later versions may add keys, but will not remove or change
    /// these; readers should ignore keys they do not know ([`FlowGraph::dot_from_json`] does).
    ///
    /// ```
    /// use taskflow::prelude::*;
    /// use serde_json::json;
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// #[task(provides = text)]
    /// fn show(doubled: u32) -> String { doubled.to_string() }
    ///
    /// flow! { flow Show(x: u32) -> (text) { linear [ double, show ] } }
    ///
    /// fn main() {
    ///     assert_eq!(
    ///         Show::graph().to_json(),
    ///         json!({
    ///             "name": "Show",
    ///             "inputs": ["x"],
    ///             "outputs": ["text"],
    ///             "steps": [
    ///                 { "name": "double", "kind": "task", "requires": ["x"],
    ///                   "provides": ["doubled"], "subflow": null },
    ///                 { "name": "show", "kind": "task", "requires": ["doubled"],
    ///                   "provides": ["text"], "subflow": null },
    ///             ],
    ///             "edges": [[0, 1]],
    ///         })
    ///     );
    /// }
    /// ```
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|step| {
                json!({
                    "name": step.name,
                    "kind": match step.kind {
                        StepKind::Task => "task",
                        StepKind::Flow => "flow",
                    },
                    "requires": step.requires,
                    "provides": step.provides,
                    "subflow": step.subflow().map(FlowGraph::to_json),
                })
            })
            .collect();
        let edges: Vec<[usize; 2]> = self.edges.iter().map(|&(from, to)| [from, to]).collect();
        json!({
            "name": self.name,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "steps": steps,
            "edges": edges,
        })
    }

    /// Draws a graph that [`to_json`](Self::to_json) produced — read back from a store, say —
    /// in Graphviz DOT, exactly as [`to_dot`](Self::to_dot) draws the flow itself.
    ///
    /// With `states` (a step's path → its state; the names of a run's stored atoms, relative to
    /// the root flow: `step` for a step of the root flow, `Sub/step` for a step of its sub-flow
    /// step `Sub`, `Sub/Inner/step` one level deeper), every step that has a state gets it as a
    /// last line of its label and is filled with its colour; a sub-flow step's cluster likewise.
    /// Steps without a state are drawn as without `states`.
    ///
    /// | state | fill colour |
    /// | --- | --- |
    /// | `PENDING` | white |
    /// | `RUNNING` | yellow |
    /// | `SUCCESS` | palegreen |
    /// | `FAILURE` | tomato |
    /// | `REVERTING`, `REVERTED` | orange |
    /// | `REVERT_FAILURE` | orchid |
    /// | `RETRYING` | lightblue |
    /// | `IGNORE` | lightgray |
    ///
    /// A graph that is not in `to_json`'s format is refused with a [`GraphJsonError`] that says
    /// where and what is wrong; no input makes it panic. Keys it does not know are ignored.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use taskflow::prelude::*;
    /// use taskflow::{FlowGraph, StepState};
    ///
    /// #[task(provides = doubled)]
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// #[task(provides = text)]
    /// fn show(doubled: u32) -> String { doubled.to_string() }
    ///
    /// flow! { flow Inner(x: u32) -> (doubled) { linear [ double ] } }
    /// flow! { flow Show(x: u32) -> (text) { linear [ Inner, show ] } }
    ///
    /// fn main() {
    ///     let json = Show::graph().to_json();
    ///     assert_eq!(FlowGraph::dot_from_json(&json, None).unwrap(), Show::graph().to_dot());
    ///
    ///     let states = HashMap::from([
    ///         ("Inner/double".to_owned(), StepState::Success),
    ///         ("show".to_owned(), StepState::Failure),
    ///     ]);
    ///     let dot = FlowGraph::dot_from_json(&json, Some(&states)).unwrap();
    ///     assert!(dot.contains(
    ///         r#""Show/Inner/double" [label="double\n-> doubled\nSUCCESS", shape=box, style=filled, fillcolor=palegreen];"#
    ///     ));
    ///     assert!(dot.contains(
    ///         r#""Show/show" [label="show\n-> text\nFAILURE", shape=box, style=filled, fillcolor=tomato];"#
    ///     ));
    ///
    ///     let err = FlowGraph::dot_from_json(&serde_json::json!({ "name": "Show" }), None).unwrap_err();
    ///     assert_eq!(err.to_string(), "inputs is missing");
    /// }
    /// ```
    pub fn dot_from_json(
        graph: &Value,
        states: Option<&HashMap<String, StepState>>,
    ) -> Result<String, GraphJsonError> {
        Ok(render(&Shape::from_json(graph, "", 0)?, states))
    }
}

/// Why [`FlowGraph::dot_from_json`] refused a graph: where in the JSON, and what is wrong there.
///
/// The message is the place then the problem: `steps[2].name is missing`,
/// `edges[0][1] is 7, not the index of one of the 3 steps`; a problem with the whole document
/// reads `the graph is not an object (it is null)`.
///
/// ```
/// use serde_json::json;
/// use taskflow::FlowGraph;
///
/// let graph = json!({
///     "name": "Show", "inputs": [], "outputs": [], "edges": [],
///     "steps": [{ "name": "double", "kind": "job", "requires": [], "provides": [], "subflow": null }],
/// });
/// let err = FlowGraph::dot_from_json(&graph, None).unwrap_err();
/// assert_eq!(err.path(), "steps[0].kind");
/// assert_eq!(err.problem(), "is \"job\", not \"task\" or \"flow\"");
/// assert_eq!(err.to_string(), "steps[0].kind is \"job\", not \"task\" or \"flow\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphJsonError {
    path: String,
    problem: String,
}

impl GraphJsonError {
    fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        GraphJsonError {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// Where the problem is: keys and array indices from the top of the document, like
    /// `steps[1].subflow.steps[0].name`; empty when it is the document itself.
    ///
    /// ```
    /// let err = taskflow::FlowGraph::dot_from_json(&serde_json::json!([]), None).unwrap_err();
    /// assert_eq!((err.path(), err.to_string().as_str()), ("", "the graph is not an object (it is an array)"));
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there, like `is missing` or `is not a string (it is 3)`.
    ///
    /// ```
    /// let err = taskflow::FlowGraph::dot_from_json(&serde_json::json!({ "name": 3 }), None).unwrap_err();
    /// assert_eq!((err.path(), err.problem()), ("name", "is not a string (it is 3)"));
    /// ```
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for GraphJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_str() {
            "" => write!(f, "the graph {}", self.problem),
            path => write!(f, "{path} {}", self.problem),
        }
    }
}

impl std::error::Error for GraphJsonError {}

/// What the DOT renderer draws of a flow, taken from a [`FlowGraph`] or from its JSON (checked):
/// the one input of [`render`], so that both are drawn by the same code.
struct Shape<'a> {
    name: &'a str,
    steps: Vec<ShapeStep<'a>>,
    /// Valid indices into `steps`.
    edges: Vec<(usize, usize)>,
}

struct ShapeStep<'a> {
    name: &'a str,
    provides: Vec<&'a str>,
    subflow: Option<Shape<'a>>,
}

impl From<&FlowGraph> for Shape<'static> {
    fn from(graph: &FlowGraph) -> Self {
        Shape {
            name: graph.name,
            steps: graph
                .steps
                .iter()
                .map(|step| ShapeStep {
                    name: step.name,
                    provides: step.provides.to_vec(),
                    subflow: step.subflow().map(Shape::from),
                })
                .collect(),
            edges: graph.edges.to_vec(),
        }
    }
}

/// How deep sub-flows may nest in a graph read from JSON: far beyond any real flow, and a bound
/// on the reader's recursion for a document built in memory (parsed text is bounded already).
const MAX_NESTING: usize = 64;

impl<'a> Shape<'a> {
    /// Reads and checks a graph in [`FlowGraph::to_json`]'s format found at `path` of the
    /// document, `nesting` sub-flows deep.
    fn from_json(value: &'a Value, path: &str, nesting: usize) -> Result<Self, GraphJsonError> {
        let flow = object(value, path)?;
        let (name, name_at) = field(flow, path, "name")?;
        let name = string(name, &name_at)?;
        for key in ["inputs", "outputs"] {
            let (names, at) = field(flow, path, key)?;
            strings(names, &at)?;
        }

        let (steps_json, steps_at) = field(flow, path, "steps")?;
        let mut steps: Vec<ShapeStep<'a>> = Vec::new();
        for (i, step) in array(steps_json, &steps_at)?.iter().enumerate() {
            let at = format!("{steps_at}[{i}]");
            let step = object(step, &at)?;
            let (name, name_at) = field(step, &at, "name")?;
            let name = string(name, &name_at)?;
            if let Some(first) = steps.iter().position(|s| s.name == name) {
                return Err(GraphJsonError::new(
                    name_at,
                    format!("{name:?} is also the name of {steps_at}[{first}]"),
                ));
            }
            let (kind, kind_at) = field(step, &at, "kind")?;
            let is_flow = match string(kind, &kind_at)? {
                "task" => false,
                "flow" => true,
                other => {
                    return Err(GraphJsonError::new(
                        kind_at,
                        format!("is {other:?}, not \"task\" or \"flow\""),
                    ))
                }
            };
            let (requires, requires_at) = field(step, &at, "requires")?;
            strings(requires, &requires_at)?;
            let (provides, provides_at) = field(step, &at, "provides")?;
            let provides = strings(provides, &provides_at)?;
            let (subflow, subflow_at) = field(step, &at, "subflow")?;
            let subflow = match (is_flow, subflow) {
                (false, Value::Null) => None,
                (false, _) => {
                    return Err(GraphJsonError::new(
                        subflow_at,
                        "is not null, but the step's kind is \"task\"",
                    ))
                }
                (true, Value::Null) => {
                    return Err(GraphJsonError::new(
                        subflow_at,
                        "is null, but the step's kind is \"flow\"",
                    ))
                }
                (true, _) if nesting >= MAX_NESTING => {
                    return Err(GraphJsonError::new(
                        subflow_at,
                        format!("nests sub-flows more than {MAX_NESTING} deep"),
                    ))
                }
                (true, sub) => Some(Shape::from_json(sub, &subflow_at, nesting + 1)?),
            };
            steps.push(ShapeStep {
                name,
                provides,
                subflow,
            });
        }

        let (edges_json, edges_at) = field(flow, path, "edges")?;
        let mut edges = Vec::new();
        for (i, edge) in array(edges_json, &edges_at)?.iter().enumerate() {
            let at = format!("{edges_at}[{i}]");
            let [from, to] = array(edge, &at)?.as_slice() else {
                return Err(GraphJsonError::new(
                    at,
                    "is not a pair of step indices [from, to]",
                ));
            };
            let index = |value: &Value, j: usize| {
                let at = format!("{at}[{j}]");
                let Some(n) = value.as_u64() else {
                    return Err(GraphJsonError::new(
                        at,
                        format!("is not a step index (it is {})", describe(value)),
                    ));
                };
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n < steps.len())
                    .ok_or_else(|| {
                        let count = steps.len();
                        let problem = format!("is {n}, not the index of one of the {count} steps");
                        GraphJsonError::new(at, problem)
                    })
            };
            edges.push((index(from, 0)?, index(to, 1)?));
        }
        Ok(Shape { name, steps, edges })
    }
}

/// `path.key`, or `key` at the top of the document.
fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The member `key` of `object` (at `path`) and its own path.
fn field<'v>(
    object: &'v Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<(&'v Value, String), GraphJsonError> {
    let at = key_path(path, key);
    match object.get(key) {
        Some(value) => Ok((value, at)),
        None => Err(GraphJsonError::new(at, "is missing")),
    }
}

fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, GraphJsonError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(value, path, "an object"))
}

fn array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, GraphJsonError> {
    value
        .as_array()
        .ok_or_else(|| wrong_type(value, path, "an array"))
}

fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, GraphJsonError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(value, path, "a string"))
}

/// An array of strings.
fn strings<'v>(value: &'v Value, path: &str) -> Result<Vec<&'v str>, GraphJsonError> {
    array(value, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| string(item, &format!("{path}[{i}]")))
        .collect()
}

fn wrong_type(value: &Value, path: &str, expected: &str) -> GraphJsonError {
    GraphJsonError::new(
        path,
        format!("is not {expected} (it is {})", describe(value)),
    )
}

/// A JSON value in a message: scalars as themselves, the rest by their kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The DOT of a flow, with each step's state when `states` is given (see
/// [`FlowGraph::dot_from_json`]).
fn render(flow: &Shape<'_>, states: Option<&HashMap<String, StepState>>) -> String {
    let mut dot = Dot {
        out: String::new(),
        root: flow.name,
        states,
        clusters: 0,
    };
    let _ = writeln!(dot.out, "digraph {} {{", quote(flow.name));
    dot.out.push_str("  rankdir=LR;\n");
    dot.body(flow, "", 1);
    dot.out.push_str("}\n");
    dot.out
}

struct Dot<'s> {
    out: String,
    /// The root flow's name: the first part of every node id.
    root: &'s str,
    states: Option<&'s HashMap<String, StepState>>,
    /// Clusters drawn so far, which numbers them.
    clusters: usize,
}

impl Dot<'_> {
    /// The steps and edges of `flow`, whose steps' paths start with `path` (empty for the root).
    fn body(&mut self, flow: &Shape<'_>, path: &str, depth: usize) {
        let pad = "  ".repeat(depth);
        let step_path = |name: &str| match path {
            "" => name.to_owned(),
            _ => format!("{path}/{name}"),
        };
        for step in &flow.steps {
            let path = step_path(step.name);
            let id = self.node_id(&path);
            let state = self.states.and_then(|states| states.get(&path)).copied();
            match &step.subflow {
                Some(sub) => {
                    self.clusters += 1;
                    let label = format!("{} ({})", escape(step.name), escape(sub.name));
                    let _ = writeln!(self.out, "{pad}subgraph \"cluster_{}\" {{", self.clusters);
                    let _ = writeln!(self.out, "{pad}  label=\"{}\";", with_state(label, state));
                    if let Some(state) = state {
                        let colour = fill_colour(state);
                        let _ =
                            writeln!(self.out, "{pad}  style=filled;\n{pad}  fillcolor={colour};");
                    }
                    let _ = writeln!(self.out, "{pad}  {id} [shape=point];");
                    self.body(sub, &path, depth + 1);
                    let _ = writeln!(self.out, "{pad}}}");
                }
                None => {
                    let mut label = escape(step.name);
                    if !step.provides.is_empty() {
                        let provides: Vec<String> =
                            step.provides.iter().map(|n| escape(n)).collect();
                        let _ = write!(label, "\\n-> {}", provides.join(", "));
                    }
                    let style = match state {
                        Some(state) => format!(", style=filled, fillcolor={}", fill_colour(state)),
                        None => String::new(),
                    };
                    let label = with_state(label, state);
                    let _ = writeln!(self.out, "{pad}{id} [label=\"{label}\", shape=box{style}];");
                }
            }
        }
        for &(from, to) in &flow.edges {
            let from = self.node_id(&step_path(flow.steps[from].name));
            let to = self.node_id(&step_path(flow.steps[to].name));
            let _ = writeln!(self.out, "{pad}{from} -> {to};");
        }
    }

    /// The quoted node id of the step at `path`: the path under the root flow's name.
    fn node_id(&self, path: &str) -> String {
        quote(&format!("{}/{path}", self.root))
    }
}

/// A label's text, with the step's state as a last line.
fn with_state(mut label: String, state: Option<StepState>) -> String {
    if let Some(state) = state {
        let _ = write!(label, "\\n{state}");
    }
    label
}

fn fill_colour(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "white",
        StepState::Running => "yellow",
        StepState::Success => "palegreen",
        StepState::Failure => "tomato",
        StepState::Reverting | StepState::Reverted => "orange",
        StepState::RevertFailure => "orchid",
        StepState::Retrying => "lightblue",
        StepState::Ignore => "lightgray",
    }
}

/// `text` as a quoted DOT string.
fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

/// `text` for the inside of a quoted DOT string: quotes and backslashes escaped (a backslash
/// would start an escape in a label), control characters as spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static INNER_STEPS: [StepInfo; 2] = [
        StepInfo::__new("double", Exec::Sync, &["x"], &["doubled"], None, false),
        StepInfo::__new("log", Exec::Async, &["doubled"], &[], None, false),
    ];
    static INNER: FlowGraph = FlowGraph::__new(
        "Inner",
        &["x"],
        &["u32"],
        &["doubled"],
        &INNER_STEPS,
        &[(0, 1)],
    );
    static OUTER_STEPS: [StepInfo; 3] = [
        StepInfo::__new("prepare", Exec::Sync, &["seed"], &["x"], None, false),
        StepInfo::__new(
            "Sub",
            Exec::Flow,
            &["x"],
            &["doubled"],
            Some(|| &INNER),
            false,
        ),
        StepInfo::__new("show", Exec::Sync, &["doubled"], &["text"], None, false),
    ];
    static OUTER: FlowGraph = FlowGraph::__new(
        "Outer",
        &["seed"],
        &["u32"],
        &["text"],
        &OUTER_STEPS,
        &[(0, 1), (1, 2)],
    );

    const OUTER_DOT: &str = r#"digraph "Outer" {
  rankdir=LR;
  "Outer/prepare" [label="prepare\n-> x", shape=box];
  subgraph "cluster_1" {
    label="Sub (Inner)";
    "Outer/Sub" [shape=point];
    "Outer/Sub/double" [label="double\n-> doubled", shape=box];
    "Outer/Sub/log" [label="log", shape=box];
    "Outer/Sub/double" -> "Outer/Sub/log";
  }
  "Outer/show" [label="show\n-> text", shape=box];
  "Outer/prepare" -> "Outer/Sub";
  "Outer/Sub" -> "Outer/show";
}
"#;

    /// `to_dot`'s text is fixed: users and tests compare it.
    #[test]
    fn to_dot_text() {
        assert_eq!(OUTER.to_dot(), OUTER_DOT);
    }

    #[test]
    fn to_json_nests_sub_flows() {
        let task = |name: &str, requires: &[&str], provides: &[&str]| {
            json!({ "name": name, "kind": "task", "requires": requires, "provides": provides,
                    "subflow": null })
        };
        let inner = json!({
            "name": "Inner",
            "inputs": ["x"],
            "outputs": ["doubled"],
            "steps": [task("double", &["x"], &["doubled"]), task("log", &["doubled"], &[])],
            "edges": [[0, 1]],
        });
        assert_eq!(
            OUTER.to_json(),
            json!({
                "name": "Outer",
                "inputs": ["seed"],
                "outputs": ["text"],
                "steps": [
                    task("prepare", &["seed"], &["x"]),
                    { "name": "Sub", "kind": "flow", "requires": ["x"], "provides": ["doubled"],
                      "subflow": inner },
                    task("show", &["doubled"], &["text"]),
                ],
                "edges": [[0, 1], [1, 2]],
            })
        );
    }

    #[test]
    fn json_is_drawn_like_the_flow() {
        let json = OUTER.to_json();
        assert_eq!(FlowGraph::dot_from_json(&json, None).unwrap(), OUTER_DOT);
        // Through text, as a store keeps it.
        let text = serde_json::to_string(&json).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(FlowGraph::dot_from_json(&back, None).unwrap(), OUTER_DOT);
        // No states at all draws like no state map.
        let none = HashMap::new();
        assert_eq!(
            FlowGraph::dot_from_json(&json, Some(&none)).unwrap(),
            OUTER_DOT
        );
    }

    /// States are found by step path relative to the root flow; a sub-flow step's state colours
    /// its cluster; steps without a state, and names that are no step, change nothing.
    #[test]
    fn states_label_and_fill_steps() {
        let states: HashMap<String, StepState> = [
            ("prepare", StepState::Success),
            ("Sub", StepState::Reverted),
            ("Sub/double", StepState::RevertFailure),
            ("show", StepState::Failure),
            ("Outer/show", StepState::Running),
            ("double", StepState::Running),
        ]
        .into_iter()
        .map(|(name, state)| (name.to_owned(), state))
        .collect();
        let dot = FlowGraph::dot_from_json(&OUTER.to_json(), Some(&states)).unwrap();
        assert_eq!(
            dot,
            r#"digraph "Outer" {
  rankdir=LR;
  "Outer/prepare" [label="prepare\n-> x\nSUCCESS", shape=box, style=filled, fillcolor=palegreen];
  subgraph "cluster_1" {
    label="Sub (Inner)\nREVERTED";
    style=filled;
    fillcolor=orange;
    "Outer/Sub" [shape=point];
    "Outer/Sub/double" [label="double\n-> doubled\nREVERT_FAILURE", shape=box, style=filled, fillcolor=orchid];
    "Outer/Sub/log" [label="log", shape=box];
    "Outer/Sub/double" -> "Outer/Sub/log";
  }
  "Outer/show" [label="show\n-> text\nFAILURE", shape=box, style=filled, fillcolor=tomato];
  "Outer/prepare" -> "Outer/Sub";
  "Outer/Sub" -> "Outer/show";
}
"#
        );
    }

    #[test]
    fn every_state_has_its_colour() {
        let colours = [
            (StepState::Pending, "white"),
            (StepState::Running, "yellow"),
            (StepState::Success, "palegreen"),
            (StepState::Failure, "tomato"),
            (StepState::Reverting, "orange"),
            (StepState::Reverted, "orange"),
            (StepState::RevertFailure, "orchid"),
            (StepState::Retrying, "lightblue"),
            (StepState::Ignore, "lightgray"),
        ];
        for (state, colour) in colours {
            let states = HashMap::from([("Sub/log".to_owned(), state)]);
            let dot = FlowGraph::dot_from_json(&OUTER.to_json(), Some(&states)).unwrap();
            let line = format!(
                "\"Outer/Sub/log\" [label=\"log\\n{state}\", shape=box, style=filled, \
                 fillcolor={colour}];"
            );
            assert!(dot.contains(&line), "{dot}");
        }
    }

    /// Names from a document are quoted for DOT whatever they hold; keys nobody knows are
    /// ignored.
    #[test]
    fn names_are_escaped_and_unknown_keys_ignored() {
        let graph = json!({
            "name": "a \"quoted\" flow",
            "inputs": [],
            "outputs": [],
            "steps": [
                { "name": "back\\slash", "kind": "task", "requires": [], "provides": ["x\"y"],
                  "subflow": null, "colour": "blue" },
                { "name": "new\nline", "kind": "task", "requires": [], "provides": [],
                  "subflow": null },
            ],
            "edges": [[0, 1]],
            "version": 7,
        });
        let states = HashMap::from([("back\\slash".to_owned(), StepState::Success)]);
        assert_eq!(
            FlowGraph::dot_from_json(&graph, Some(&states)).unwrap(),
            r#"digraph "a \"quoted\" flow" {
  rankdir=LR;
  "a \"quoted\" flow/back\\slash" [label="back\\slash\n-> x\"y\nSUCCESS", shape=box, style=filled, fillcolor=palegreen];
  "a \"quoted\" flow/new line" [label="new line", shape=box];
  "a \"quoted\" flow/back\\slash" -> "a \"quoted\" flow/new line";
}
"#
        );
    }

    /// Each way of breaking a document, and the message that says where and what.
    #[test]
    fn malformed_documents_are_named() {
        type Break = fn(&mut Value);
        let cases: &[(Break, &str)] = &[
            (
                |g| *g = json!(null),
                "the graph is not an object (it is null)",
            ),
            (
                |g| *g = json!("Outer"),
                "the graph is not an object (it is a string)",
            ),
            (
                |g| drop(g.as_object_mut().unwrap().remove("name")),
                "name is missing",
            ),
            (|g| g["name"] = json!(3), "name is not a string (it is 3)"),
            (
                |g| drop(g.as_object_mut().unwrap().remove("inputs")),
                "inputs is missing",
            ),
            (
                |g| g["outputs"] = json!({}),
                "outputs is not an array (it is an object)",
            ),
            (
                |g| g["inputs"][0] = json!(true),
                "inputs[0] is not a string (it is true)",
            ),
            (
                |g| g["steps"] = json!({}),
                "steps is not an array (it is an object)",
            ),
            (
                |g| g["steps"][2] = json!([]),
                "steps[2] is not an object (it is an array)",
            ),
            (
                |g| drop(g["steps"][2].as_object_mut().unwrap().remove("name")),
                "steps[2].name is missing",
            ),
            (
                |g| g["steps"][2]["name"] = json!("prepare"),
                "steps[2].name \"prepare\" is also the name of steps[0]",
            ),
            (
                |g| g["steps"][0]["kind"] = json!("job"),
                "steps[0].kind is \"job\", not \"task\" or \"flow\"",
            ),
            (
                |g| g["steps"][0]["requires"][0] = json!(null),
                "steps[0].requires[0] is not a string (it is null)",
            ),
            (
                |g| drop(g["steps"][0].as_object_mut().unwrap().remove("provides")),
                "steps[0].provides is missing",
            ),
            (
                |g| drop(g["steps"][0].as_object_mut().unwrap().remove("subflow")),
                "steps[0].subflow is missing",
            ),
            (
                |g| g["steps"][0]["subflow"] = json!({}),
                "steps[0].subflow is not null, but the step's kind is \"task\"",
            ),
            (
                |g| g["steps"][1]["subflow"] = json!(null),
                "steps[1].subflow is null, but the step's kind is \"flow\"",
            ),
            (
                |g| g["steps"][1]["subflow"] = json!(1.5),
                "steps[1].subflow is not an object (it is 1.5)",
            ),
            (
                |g| {
                    drop(
                        g["steps"][1]["subflow"]["steps"][1]
                            .as_object_mut()
                            .unwrap()
                            .remove("name"),
                    )
                },
                "steps[1].subflow.steps[1].name is missing",
            ),
            (
                |g| g["steps"][1]["subflow"]["edges"][0][1] = json!(2),
                "steps[1].subflow.edges[0][1] is 2, not the index of one of the 2 steps",
            ),
            (
                |g| drop(g.as_object_mut().unwrap().remove("edges")),
                "edges is missing",
            ),
            (
                |g| g["edges"][1] = json!(1),
                "edges[1] is not an array (it is 1)",
            ),
            (
                |g| g["edges"][1] = json!([0, 1, 2]),
                "edges[1] is not a pair of step indices [from, to]",
            ),
            (
                |g| g["edges"][0] = json!([0]),
                "edges[0] is not a pair of step indices [from, to]",
            ),
            (
                |g| g["edges"][0][0] = json!(-1),
                "edges[0][0] is not a step index (it is -1)",
            ),
            (
                |g| g["edges"][0][1] = json!("1"),
                "edges[0][1] is not a step index (it is a string)",
            ),
            (
                |g| g["edges"][0][1] = json!(u64::MAX),
                "edges[0][1] is 18446744073709551615, not the index of one of the 3 steps",
            ),
        ];
        for (break_it, message) in cases {
            let mut graph = OUTER.to_json();
            break_it(&mut graph);
            let err = FlowGraph::dot_from_json(&graph, None).unwrap_err();
            assert_eq!(err.to_string(), *message);
            assert_eq!(
                format!("{} {}", err.path(), err.problem()).trim(),
                err.to_string().trim_start_matches("the graph ")
            );
        }
    }

    /// Whatever replaces any part of a good document, reading it gives a graph or an error that
    /// names a place: never a panic.
    #[test]
    fn no_document_panics() {
        fn places(value: &Value, pointer: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => map
                    .iter()
                    .for_each(|(k, v)| places(v, format!("{pointer}/{k}"), out)),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| places(v, format!("{pointer}/{i}"), out)),
                _ => {}
            }
            out.push(pointer);
        }
        let good = OUTER.to_json();
        let mut pointers = Vec::new();
        places(&good, String::new(), &mut pointers);
        let replacements = [
            json!(null),
            json!(false),
            json!(0),
            json!(-3),
            json!(99),
            json!(0.5),
            json!(""),
            json!("flow"),
            json!([]),
            json!([0, 0]),
            json!({}),
            OUTER.to_json(),
        ];
        let mut errors = 0;
        for pointer in &pointers {
            for replacement in &replacements {
                let mut graph = good.clone();
                *graph.pointer_mut(pointer).unwrap() = replacement.clone();
                if let Err(e) = FlowGraph::dot_from_json(&graph, None) {
                    assert!(!e.problem().is_empty());
                    errors += 1;
                }
            }
        }
        assert!(errors > pointers.len(), "{errors} errors");
    }

    /// Sub-flows nested deeper than any real flow are refused, not followed down the stack.
    #[test]
    fn nesting_is_bounded() {
        let leaf = json!({ "name": "Leaf", "inputs": [], "outputs": [], "steps": [], "edges": [] });
        let wrap = |inner: Value| {
            json!({ "name": "F", "inputs": [], "outputs": [], "edges": [],
                    "steps": [{ "name": "s", "kind": "flow", "requires": [], "provides": [],
                                "subflow": inner }] })
        };
        let mut graph = leaf.clone();
        for _ in 0..MAX_NESTING {
            graph = wrap(graph);
        }
        assert!(FlowGraph::dot_from_json(&graph, None).is_ok());
        let err = FlowGraph::dot_from_json(&wrap(graph), None).unwrap_err();
        assert_eq!(err.problem(), "nests sub-flows more than 64 deep");
        assert_eq!(
            err.path(),
            format!("steps[0]{}", ".subflow.steps[0]".repeat(64)) + ".subflow"
        );
    }
}
