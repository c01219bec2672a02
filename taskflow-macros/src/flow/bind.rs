//! Binding: builds a flow's IR (`graph::Analysis`) from its parsed definition and its steps'
//! metadata — the name each parameter reads and the slot that holds it, the step that provides
//! each name, the retry scopes, the edges and the run order.
//!
//! It applies no rules. A mistake leaves its trace in the IR (a parameter bound to nothing, a
//! name with two providers, a link without an end) and binding goes on as if it were fixed the
//! likeliest way, so `check` can report every mistake at once, each once.

use std::collections::BTreeSet;
use std::ops::Range;

use syn::Ident;

use super::graph::{self, Analysis, Decider, LinkEnds, Rebind, Scope, Slot, Source, Step, Visit};
use super::parse::{FlowDef, Item, Link, Pattern, PatternKind, StepRef};
use super::suggest::closest;
use crate::meta::StepMeta;

/// The IR of `def`, whose steps and deciders (in the order `FlowDef` lists them) have `metas`
/// and `decider_metas`.
pub fn bind<'a>(
    def: &'a FlowDef,
    metas: Vec<StepMeta>,
    decider_metas: Vec<StepMeta>,
) -> Analysis<'a> {
    let deciders: Vec<Decider<'a>> = def
        .body
        .deciders()
        .into_iter()
        .zip(decider_metas)
        .map(|(link, meta)| Decider {
            link,
            args: vec![None; meta.params.len()],
            meta,
            to: None,
        })
        .collect();
    let mut steps: Vec<Step<'a>> = def
        .body
        .steps()
        .into_iter()
        .zip(metas)
        .map(|(r, meta)| new_step(r, meta))
        .collect();
    let mut analysis = Analysis {
        slots: flow_slots(def, &mut steps),
        steps,
        scopes: Vec::new(),
        deciders,
        skippable: Vec::new(),
        order: Vec::new(),
        edges: BTreeSet::new(),
        links: Vec::new(),
        cycle: None,
        unordered: Vec::new(),
        visits: Vec::new(),
    };
    let inputs: BTreeSet<String> = def.inputs.iter().map(|(n, _)| n.to_string()).collect();
    let mut walker = Walker {
        a: &mut analysis,
        next_step: 0,
        scope_stack: Vec::new(),
    };
    walker.walk(&def.body, &inputs, None);
    structure(&def.body, &mut analysis, &mut 0);
    add_data_edges(&mut analysis);
    match graph::topo_order(analysis.steps.len(), &analysis.edges) {
        Ok(order) => analysis.order = order,
        Err(cycle) => {
            analysis.cycle = Some(cycle);
            // Go on with the written order, so what else is wrong can still be told.
            analysis.order = (0..analysis.steps.len()).collect();
        }
    }
    analysis.skippable = skippable(&analysis);
    analysis
}

/// A step with what it reads and writes, before its parameters are bound to slots.
fn new_step<'a>(r: &'a StepRef, meta: StepMeta) -> Step<'a> {
    let (reads, extra_reads, rebinds) = rebind(&meta, &r.binds);
    let writes = match &r.renames {
        Some(renames) => renames.iter().map(ToString::to_string).collect(),
        None => meta.provides.clone(),
    };
    Step {
        label: r.label().to_string(),
        reads,
        writes,
        extra_reads,
        rebinds,
        args: vec![None; meta.params.len()],
        outs: Vec::new(),
        scopes: Vec::new(),
        unordered: None,
        map_item: None,
        r,
        meta,
    }
}

/// `step(param = name)`: the name each parameter reads, the names mistaken rebindings meant to
/// read, and what each rebinding rebinds.
fn rebind(meta: &StepMeta, binds: &[(Ident, Ident)]) -> (Vec<String>, Vec<String>, Vec<Rebind>) {
    let mut reads: Vec<String> = meta.params.iter().map(|p| p.name.clone()).collect();
    let mut extra_reads = Vec::new();
    let mut rebinds = Vec::new();
    let position = |p: &str| meta.params.iter().position(|m| m.name == p);
    for (k, (param, name)) in binds.iter().enumerate() {
        let param = param.to_string();
        let rebound = if binds[..k].iter().any(|(earlier, _)| *earlier == param) {
            Rebind::Twice
        } else if let Some(i) = position(&param) {
            Rebind::Param(i)
        } else {
            let names = meta.params.iter().map(|p| p.name.as_str());
            Rebind::Unknown {
                meant: closest(&param, names).and_then(position),
            }
        };
        // A mistaken rebinding reads as the parameter it likely meant, so the mistake is reported
        // once (and not again as that parameter unbound, or as the name unused).
        match rebound {
            Rebind::Param(i) | Rebind::Unknown { meant: Some(i) } => reads[i] = name.to_string(),
            Rebind::Unknown { meant: None } => extra_reads.push(name.to_string()),
            Rebind::Twice => {}
        }
        rebinds.push(rebound);
    }
    (reads, extra_reads, rebinds)
}

/// The flow's inputs, then every step's outputs (recorded as the step's `outs`): one slot per
/// provider, even of the same name.
fn flow_slots(def: &FlowDef, steps: &mut [Step]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = def
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Slot {
            name: name.to_string(),
            source: Source::Input(i),
        })
        .collect();
    for (s, step) in steps.iter_mut().enumerate() {
        for (index, name) in step.writes.iter().enumerate() {
            step.outs.push(slots.len());
            slots.push(Slot {
                name: name.clone(),
                source: Source::Output { step: s, index },
            });
        }
    }
    slots
}

/// The innermost `unordered` block around what is being walked, and which of its members.
type Member = Option<(usize, usize)>;

struct Walker<'w, 'a> {
    a: &'w mut Analysis<'a>,
    next_step: usize,
    /// The retry scopes around the pattern being walked, outermost first.
    scope_stack: Vec<usize>,
}

impl<'a> Walker<'_, 'a> {
    /// Binds every parameter of every step in `pattern` to a name available before the step, and
    /// returns the names `pattern` provides.
    fn walk(
        &mut self,
        pattern: &'a Pattern,
        avail: &BTreeSet<String>,
        member: Member,
    ) -> BTreeSet<String> {
        let Some(spec) = &pattern.retry else {
            return self.walk_pattern(pattern, avail, member);
        };
        let scope = self.a.scopes.len();
        self.a.visits.push(Visit::Scope(scope));
        let (mut for_each, mut for_each_guess) = (None, None);
        if let Some(values) = &spec.for_each {
            let name = values.to_string();
            if avail.contains(&name) {
                for_each = self.a.slot_of(&name);
            } else {
                for_each_guess =
                    closest(&name, avail.iter().map(String::as_str)).map(str::to_owned);
                // Count the likely meant name as read, so the typo is reported once.
                if let Some(first) = self.a.steps.first_mut() {
                    first.extra_reads.extend(for_each_guess.clone());
                }
            }
        }
        let mut inner = avail.clone();
        let item = spec.provides.as_ref().map(|(name, _)| {
            inner.insert(name.to_string());
            let slot = self.a.slots.len();
            self.a.slots.push(Slot {
                name: name.to_string(),
                source: Source::RetryItem { scope },
            });
            slot
        });
        let mut chain = self.scope_stack.clone();
        chain.push(scope);
        self.a.scopes.push(Scope {
            spec,
            parent: self.scope_stack.last().copied(),
            for_each,
            for_each_guess,
            item,
            chain,
        });
        self.scope_stack.push(scope);
        let mut provided = self.walk_pattern(pattern, &inner, member);
        self.scope_stack.pop();
        if let Some((name, _)) = &spec.provides {
            provided.remove(&name.to_string());
        }
        provided
    }

    fn walk_pattern(
        &mut self,
        pattern: &'a Pattern,
        avail: &BTreeSet<String>,
        member: Member,
    ) -> BTreeSet<String> {
        let mut provided = BTreeSet::new();
        match pattern.kind {
            PatternKind::Linear => {
                let mut avail = avail.clone();
                for item in &pattern.items {
                    let p = self.walk_item(item, &avail, member);
                    avail.extend(p.iter().cloned());
                    provided.extend(p);
                }
            }
            PatternKind::Unordered => {
                // Members of `unordered` are independent: each sees only what comes before the
                // block.
                let block = self.a.unordered.len();
                let members = steps_per_item(pattern, self.next_step);
                self.a.unordered.push(members);
                for (i, item) in pattern.items.iter().enumerate() {
                    provided.extend(self.walk_item(item, avail, Some((block, i))));
                }
            }
            PatternKind::Graph => {
                let mut inside = avail.clone();
                for item in &pattern.items {
                    inside.extend(self.provides_of(item));
                }
                let first = self.next_step;
                for item in &pattern.items {
                    provided.extend(self.walk_item(item, &inside, member));
                }
                for item in &pattern.items {
                    if let Item::Link(link) = item {
                        self.bind_decider_of(link, first..self.next_step, &inside);
                    }
                }
            }
        }
        provided
    }

    /// The names an item provides, without binding anything.
    fn provides_of(&self, item: &Item) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let ids = step_ids_of(item, &self.a.steps);
        for s in ids {
            out.extend(self.a.steps[s].writes.iter().cloned());
        }
        out
    }

    fn walk_item(
        &mut self,
        item: &'a Item,
        avail: &BTreeSet<String>,
        member: Member,
    ) -> BTreeSet<String> {
        match item {
            Item::Pattern(p) => self.walk(p, avail, member),
            Item::Link(_) => BTreeSet::new(),
            Item::Step(_) => {
                let s = self.next_step;
                self.next_step += 1;
                self.a.visits.push(Visit::Step(s));
                self.a.steps[s].scopes = self.scope_stack.clone();
                self.a.steps[s].unordered = member;
                self.bind_step(s, avail);
                self.a.steps[s].writes.iter().cloned().collect()
            }
        }
    }

    /// A decider reads what the step it guards could read: `avail`, less what that step writes.
    fn bind_decider_of(&mut self, link: &'a Link, graph: Range<usize>, avail: &BTreeSet<String>) {
        let Some(d) = self
            .a
            .deciders
            .iter()
            .position(|d| std::ptr::eq(d.link, link))
        else {
            return;
        };
        self.a.visits.push(Visit::Decider(d));
        let to = graph.clone().find(|&s| link.to == self.a.steps[s].label);
        self.a.deciders[d].to = to;
        let Some(to) = to else { return };
        for p in 0..self.a.deciders[d].meta.params.len() {
            let name = &self.a.deciders[d].meta.params[p].name;
            if avail.contains(name) && !self.a.steps[to].writes.contains(name) {
                self.a.deciders[d].args[p] = self.a.slot_of(name);
            }
        }
    }

    fn bind_step(&mut self, s: usize, avail: &BTreeSet<String>) {
        if let Some(values) = &self.a.steps[s].r.map_over {
            // `map task over values`: the first parameter takes one element of `values` per run.
            let item = self.a.steps[s].meta.params.iter().position(|p| !p.ctx);
            if let Some(item) = item {
                self.a.steps[s].map_item = Some(item);
                self.a.steps[s].reads[item] = values.to_string();
            }
        }
        for p in 0..self.a.steps[s].meta.params.len() {
            if self.a.steps[s].meta.params[p].ctx {
                continue; // the engine supplies it
            }
            let name = self.a.steps[s].reads[p].clone();
            if avail.contains(&name) {
                self.a.steps[s].args[p] = self.a.slot_of(&name);
            } else if self.a.steps[s].meta.params[p].default {
                let slot = self.a.slots.len();
                self.a.slots.push(Slot {
                    name,
                    source: Source::Default { step: s, param: p },
                });
                self.a.steps[s].args[p] = Some(slot);
            }
        }
    }
}

/// The ids of the steps in each item of `pattern`, whose first step is `next`.
fn steps_per_item(pattern: &Pattern, mut next: usize) -> Vec<Range<usize>> {
    pattern
        .items
        .iter()
        .map(|item| {
            let n = count_steps(item);
            next += n;
            next - n..next
        })
        .collect()
}

fn count_steps(item: &Item) -> usize {
    match item {
        Item::Step(_) => 1,
        Item::Link(_) => 0,
        Item::Pattern(p) => p.items.iter().map(count_steps).sum(),
    }
}

/// The ids of the steps inside `item` (matched by identity of their `StepRef`).
fn step_ids_of(item: &Item, steps: &[Step]) -> Vec<usize> {
    let mut refs = Vec::new();
    collect_refs(item, &mut refs);
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| refs.iter().any(|r| std::ptr::eq(*r, s.r)))
        .map(|(i, _)| i)
        .collect()
}

fn collect_refs<'p>(item: &'p Item, out: &mut Vec<&'p StepRef>) {
    match item {
        Item::Step(s) => out.push(s),
        Item::Link(_) => {}
        Item::Pattern(p) => p.items.iter().for_each(|i| collect_refs(i, out)),
    }
}

/// Sources (steps with nothing before them inside) and sinks of a pattern.
struct Ends {
    sources: Vec<usize>,
    sinks: Vec<usize>,
    all: Vec<usize>,
}

/// Adds the edges the patterns imply (linear order, explicit links) and returns each pattern's
/// ends.
fn structure<'a>(pattern: &'a Pattern, a: &mut Analysis<'a>, next: &mut usize) -> Ends {
    let first = *next;
    let mut parts = Vec::new();
    let mut links = Vec::new();
    for item in &pattern.items {
        match item {
            Item::Step(_) => {
                let s = *next;
                *next += 1;
                parts.push(Ends {
                    sources: vec![s],
                    sinks: vec![s],
                    all: vec![s],
                });
            }
            Item::Pattern(p) => parts.push(structure(p, a, next)),
            Item::Link(l) => links.push(l),
        }
    }
    let all: Vec<usize> = parts.iter().flat_map(|p| p.all.iter().copied()).collect();
    match pattern.kind {
        PatternKind::Linear => {
            for pair in parts.windows(2) {
                for &from in &pair[0].sinks {
                    for &to in &pair[1].sources {
                        a.edges.insert((from, to));
                    }
                }
            }
            Ends {
                sources: parts.first().map(|p| p.sources.clone()).unwrap_or_default(),
                sinks: parts.last().map(|p| p.sinks.clone()).unwrap_or_default(),
                all,
            }
        }
        PatternKind::Unordered => Ends {
            sources: parts
                .iter()
                .flat_map(|p| p.sources.iter().copied())
                .collect(),
            sinks: parts.iter().flat_map(|p| p.sinks.iter().copied()).collect(),
            all,
        },
        PatternKind::Graph => {
            let find = |label: &Ident| all.iter().copied().find(|&s| *label == a.steps[s].label);
            for link in links {
                let (from, to) = (find(&link.from), find(&link.to));
                if let (Some(from), Some(to)) = (from, to) {
                    a.edges.insert((from, to));
                }
                a.links.push(LinkEnds {
                    link,
                    from,
                    to,
                    graph: first..*next,
                });
            }
            // Data edges inside the graph order its members too.
            for &to in &all {
                for from in data_deps(a, to) {
                    if all.contains(&from) {
                        a.edges.insert((from, to));
                    }
                }
            }
            let inside = |s: usize, incoming: bool| {
                a.edges.iter().any(|&(f, t)| {
                    if incoming {
                        t == s && all.contains(&f)
                    } else {
                        f == s && all.contains(&t)
                    }
                })
            };
            Ends {
                sources: all.iter().copied().filter(|&s| !inside(s, true)).collect(),
                sinks: all.iter().copied().filter(|&s| !inside(s, false)).collect(),
                all,
            }
        }
    }
}

/// The steps whose outputs step `to` reads.
fn data_deps(a: &Analysis, to: usize) -> Vec<usize> {
    a.steps[to]
        .args
        .iter()
        .flatten()
        .filter_map(|&slot| match a.slots[slot].source {
            Source::Output { step, .. } => Some(step),
            _ => None,
        })
        .collect()
}

fn add_data_edges(a: &mut Analysis) {
    for to in 0..a.steps.len() {
        for from in data_deps(a, to) {
            a.edges.insert((from, to));
        }
    }
    // A guarded step runs after whatever its decider reads.
    for d in &a.deciders {
        let Some(to) = d.to else { continue };
        for &slot in d.args.iter().flatten() {
            if let Source::Output { step, .. } = a.slots[slot].source {
                if step != to {
                    a.edges.insert((step, to));
                }
            }
        }
    }
}

/// Which steps a decider may skip, in topological order: the targets of decider links, and the
/// steps whose predecessors may all be skipped.
fn skippable(a: &Analysis) -> Vec<bool> {
    let mut skippable = vec![false; a.steps.len()];
    for d in &a.deciders {
        if let Some(to) = d.to {
            skippable[to] = true;
        }
    }
    graph::spread_skips(a, &mut skippable);
    skippable
}
