//! The IR of a flow: every named value as a slot, every step with the slot each parameter reads
//! and each output writes, the retry scopes, the deciders, the edges between steps and the order
//! the serial engine runs them in — and the graph algorithms on it. `bind` builds it, `check`
//! reports what is wrong with it, `expand` emits it.
//!
//! Where binding met a mistake, the IR says what it found instead of refusing: a parameter that
//! nothing provides reads no slot, a name provided twice has a slot per provider, a link to a
//! missing step has no end. So the IR of a wrong flow is complete enough to report every mistake.

use std::collections::BTreeSet;
use std::ops::Range;

use proc_macro2::Span;

use super::parse::{Link, RetrySpec, StepRef};
use crate::meta::StepMeta;

/// Where a named value of the flow comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Flow input `n`.
    Input(usize),
    /// Output `index` of step `step`.
    Output { step: usize, index: usize },
    /// `Default::default()` for parameter `param` of step `step`, which nothing binds.
    Default { step: usize, param: usize },
    /// The value retry scope `scope`'s controller provides each attempt.
    RetryItem { scope: usize },
}

/// The decider of a link `from -> to if decider`.
pub struct Decider<'a> {
    pub link: &'a Link,
    pub meta: StepMeta,
    /// Slot of each parameter, where one is available to `to` (and not written by it).
    pub args: Vec<Option<usize>>,
    /// The step the link leads to, where the graph has it.
    pub to: Option<usize>,
}

/// A `retry(..)` sub-flow.
pub struct Scope<'a> {
    pub spec: &'a RetrySpec,
    pub parent: Option<usize>,
    /// The slot of the flow value `ParameterizedForEach(values)` iterates, where one is available.
    pub for_each: Option<usize>,
    /// For a `ParameterizedForEach(values)` that reads no slot: the available name closest to
    /// `values`, which the user likely meant.
    pub for_each_guess: Option<String>,
    /// The slot of the value the controller provides.
    pub item: Option<usize>,
    /// The enclosing scopes and this one, outermost first.
    pub chain: Vec<usize>,
}

#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub source: Source,
}

/// What one `param = name` of a step rebinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebind {
    /// The parameter at this index.
    Param(usize),
    /// A parameter an earlier `param = name` of the step rebinds already; ignored.
    Twice,
    /// No parameter has this name; `meant` is the one with the closest name, which reads `name`
    /// instead, if any is close.
    Unknown { meant: Option<usize> },
}

pub struct Step<'a> {
    pub r: &'a StepRef,
    pub meta: StepMeta,
    pub label: String,
    /// The flow name each parameter reads (after rebinding).
    pub reads: Vec<String>,
    /// The flow name each output is stored under (after renaming).
    pub writes: Vec<String>,
    /// Names a mistaken rebinding (or `ParameterizedForEach`) meant to read: they count as read,
    /// so the one mistake is reported once.
    pub extra_reads: Vec<String>,
    /// What each of the step's `param = name` rebinds, in written order.
    pub rebinds: Vec<Rebind>,
    /// Slot of each parameter, where one is available before the step.
    pub args: Vec<Option<usize>>,
    /// Slot of each output.
    pub outs: Vec<usize>,
    /// The retry scopes around the step, outermost first.
    pub scopes: Vec<usize>,
    /// The innermost `unordered` block around the step, and which of its members holds the step.
    pub unordered: Option<(usize, usize)>,
    /// `map task over values`: the parameter that takes each element.
    pub map_item: Option<usize>,
}

/// A link `from -> to` of a `graph`.
pub struct LinkEnds<'a> {
    pub link: &'a Link,
    pub from: Option<usize>,
    pub to: Option<usize>,
    /// The steps of the graph the link is written in.
    pub graph: Range<usize>,
}

/// A retry scope, step or decider link, in the order binding reached them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    Scope(usize),
    Step(usize),
    Decider(usize),
}

pub struct Analysis<'a> {
    pub steps: Vec<Step<'a>>,
    pub scopes: Vec<Scope<'a>>,
    pub deciders: Vec<Decider<'a>>,
    /// Steps a decider may skip: targets of decider links, and steps all of whose predecessors
    /// may be skipped.
    pub skippable: Vec<bool>,
    pub slots: Vec<Slot>,
    /// Step ids (in written order) in the order the serial engine runs them.
    pub order: Vec<usize>,
    /// `(from, to)` step ids.
    pub edges: BTreeSet<(usize, usize)>,
    /// The links of every graph, inner graphs first.
    pub links: Vec<LinkEnds<'a>>,
    /// Steps that depend on one another in a circle, one entry per separate cycle (`order` is
    /// then the written order).
    pub cycles: Vec<Cycle>,
    /// The steps of each member of each `unordered` block.
    pub unordered: Vec<Vec<Range<usize>>>,
    /// Every retry scope and step as binding entered it, and every decider link after the steps
    /// of its graph: errors about them are reported in this order.
    pub visits: Vec<Visit>,
}

impl<'a> Analysis<'a> {
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.name == name && !matches!(s.source, Source::Default { .. }))
    }

    /// The steps of retry scope `scope`, by id.
    pub fn scope_steps(&self, scope: usize) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&s| self.steps[s].scopes.contains(&scope))
            .collect()
    }

    /// The retry scopes around whatever writes `slot` (none for inputs and defaults, which are
    /// set once per run).
    pub fn producer_scopes(&self, slot: usize) -> &[usize] {
        match self.slots[slot].source {
            Source::Output { step, .. } => &self.steps[step].scopes,
            Source::RetryItem { scope } => &self.scopes[scope].chain,
            Source::Input(_) | Source::Default { .. } => &[],
        }
    }
}

/// Marks, in run order, every step all of whose predecessors are marked: skipping those steps'
/// predecessors skips them too.
pub fn spread_skips(a: &Analysis, marked: &mut [bool]) {
    for &s in &a.order {
        let mut preds = a
            .edges
            .iter()
            .filter(|&&(_, t)| t == s)
            .map(|&(f, _)| f)
            .peekable();
        if preds.peek().is_some() && preds.all(|p| marked[p]) {
            marked[s] = true;
        }
    }
}

/// Steps that depend on one another in a circle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The steps around the circle, starting at the one written first: each runs after the one
    /// before it, and the first after the last.
    pub steps: Vec<usize>,
    /// The other steps caught in circles through these (the rest of their strongly connected
    /// component), in written order: one error names them all.
    pub caught: Vec<usize>,
}

/// Kahn's algorithm over steps `0..n`, preferring the step written first; when some steps
/// cannot be ordered, the cycles among them instead.
pub fn topo_order(n: usize, edges: &BTreeSet<(usize, usize)>) -> Result<Vec<usize>, Vec<Cycle>> {
    let mut indegree = vec![0usize; n];
    for &(_, to) in edges {
        indegree[to] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&s| indegree[s] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(s) = ready.pop_first() {
        order.push(s);
        for &(from, to) in edges {
            if from == s {
                indegree[to] -= 1;
                if indegree[to] == 0 {
                    ready.insert(to);
                }
            }
        }
    }
    if order.len() < n {
        return Err(find_cycles(n, edges, &order));
    }
    Ok(order)
}

/// One cycle per strongly connected component of the steps Kahn's algorithm could not order
/// (steps that only come after a cycle are in none): the shortest circle through the
/// component's step written first, in written order of those steps. A component is one mistake
/// however many circles run through it, so it is reported once; components share no step, so
/// two separate cycles are reported once each.
fn find_cycles(n: usize, edges: &BTreeSet<(usize, usize)>, ordered: &[usize]) -> Vec<Cycle> {
    let mut left = vec![true; n];
    for &s in ordered {
        left[s] = false;
    }
    let (mut succ, mut pred) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for &(f, t) in edges {
        if left[f] && left[t] {
            succ[f].push(t);
            pred[t].push(f);
        }
    }
    // Every step reachable from `start` along `next` (`start` itself only through a circle).
    let reach = |start: usize, next: &[Vec<usize>]| -> Vec<bool> {
        let mut seen = vec![false; n];
        let mut stack = vec![start];
        while let Some(s) = stack.pop() {
            for &t in &next[s] {
                if !seen[t] {
                    seen[t] = true;
                    stack.push(t);
                }
            }
        }
        seen
    };
    let mut done = vec![false; n];
    let mut cycles = Vec::new();
    for first in 0..n {
        if !left[first] || done[first] {
            continue;
        }
        let (forward, backward) = (reach(first, &succ), reach(first, &pred));
        if !forward[first] {
            done[first] = true;
            continue; // on no circle: it only waits for one
        }
        let component: Vec<usize> = (0..n).filter(|&s| forward[s] && backward[s]).collect();
        for &s in &component {
            done[s] = true;
        }
        let steps = shortest_circle(first, &succ, &component);
        let caught = component
            .into_iter()
            .filter(|s| !steps.contains(s))
            .collect();
        cycles.push(Cycle { steps, caught });
    }
    cycles
}

/// The shortest circle from `first` back to it, through steps of `component` only.
fn shortest_circle(first: usize, succ: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let mut came_from = vec![None; succ.len()];
    let mut queue = std::collections::VecDeque::from([first]);
    while let Some(s) = queue.pop_front() {
        for &t in &succ[s] {
            if t == first {
                // Walk back to `first`, the one visited step without a `came_from`.
                let mut circle = vec![s];
                while let Some(p) = came_from[*circle.last().unwrap()] {
                    circle.push(p);
                }
                circle.reverse();
                return circle;
            }
            if came_from[t].is_none() && component.contains(&t) {
                came_from[t] = Some(s);
                queue.push_back(t);
            }
        }
    }
    unreachable!("every step of a strongly connected component lies on a circle")
}

/// Spans for errors about a step: the user's path inside `flow!`.
pub fn step_span(step: &Step) -> Span {
    step.r.span()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(usize, usize)]) -> BTreeSet<(usize, usize)> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn topo_order_prefers_the_step_written_first() {
        assert_eq!(topo_order(3, &edges(&[])), Ok(vec![0, 1, 2]));
        assert_eq!(
            topo_order(4, &edges(&[(2, 0), (3, 1)])),
            Ok(vec![2, 0, 3, 1])
        );
        assert_eq!(topo_order(0, &edges(&[])), Ok(vec![]));
    }

    #[test]
    fn cycle_starts_at_the_step_written_first() {
        let cycle = |steps: &[usize], caught: &[usize]| Cycle {
            steps: steps.to_vec(),
            caught: caught.to_vec(),
        };
        assert_eq!(
            topo_order(4, &edges(&[(0, 1), (3, 2), (2, 3), (1, 2)])),
            Err(vec![cycle(&[2, 3], &[])])
        );
        assert_eq!(
            topo_order(4, &edges(&[(3, 1), (1, 2), (2, 3), (0, 1)])),
            Err(vec![cycle(&[1, 2, 3], &[])])
        );
        assert_eq!(
            topo_order(2, &edges(&[(1, 1)])),
            Err(vec![cycle(&[1], &[])])
        );
    }

    #[test]
    fn separate_cycles_are_found_once_each() {
        // 0 <-> 1 and 2 -> 3 -> 4 -> 2, with 5 after both: two cycles, 5 in neither.
        let found = topo_order(
            6,
            &edges(&[(0, 1), (1, 0), (2, 3), (3, 4), (4, 2), (1, 5), (4, 5)]),
        );
        assert_eq!(
            found,
            Err(vec![
                Cycle {
                    steps: vec![0, 1],
                    caught: vec![]
                },
                Cycle {
                    steps: vec![2, 3, 4],
                    caught: vec![]
                },
            ])
        );
    }

    #[test]
    fn circles_through_one_component_are_one_cycle() {
        // 0 <-> 1 <-> 2 (and 0 -> 2): circles through every step, one component. The shortest
        // circle through step 0 is listed; 2 is caught with it.
        let found = topo_order(3, &edges(&[(0, 1), (1, 0), (1, 2), (2, 1), (0, 2)]));
        assert_eq!(
            found,
            Err(vec![Cycle {
                steps: vec![0, 1],
                caught: vec![2]
            }])
        );
        // The shortest circle, not the first one a walk finds: 0 -> 1 -> 2 -> 3 -> 0 and 0 -> 3 -> 0.
        let found = topo_order(4, &edges(&[(0, 1), (1, 2), (2, 3), (3, 0), (0, 3)]));
        assert_eq!(
            found,
            Err(vec![Cycle {
                steps: vec![0, 3],
                caught: vec![1, 2]
            }])
        );
    }
}
