//! Wiring analysis: which value each parameter reads, which step provides each name, the edges
//! between steps and the order the serial engine runs them in. Ordinary code on the parsed flow,
//! unit-tested without rustc.

use std::collections::{BTreeSet, HashMap};

use proc_macro2::Span;
use syn::Ident;

use super::parse::{FlowDef, Item, Link, Pattern, PatternKind, RetrySpec, StepRef};
use crate::ctxt::Ctxt;
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
    /// Slot of each parameter, once bound (by the names available to `to`).
    pub args: Vec<Option<usize>>,
    /// The step the link leads to, once resolved.
    pub to: Option<usize>,
}

/// A `retry(..)` sub-flow.
pub struct Scope<'a> {
    pub spec: &'a RetrySpec,
    pub parent: Option<usize>,
    /// The slot of the flow value `ParameterizedForEach(values)` iterates.
    pub for_each: Option<usize>,
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

pub struct Step<'a> {
    pub r: &'a StepRef,
    pub meta: StepMeta,
    pub label: String,
    /// The flow name each parameter reads (after rebinding).
    pub reads: Vec<String>,
    /// The flow name each output is stored under (after renaming).
    pub writes: Vec<String>,
    /// Names a mistaken rebinding meant to read (already reported; they count as read).
    pub extra_reads: Vec<String>,
    /// Slot of each parameter, once bound.
    pub args: Vec<Option<usize>>,
    /// Slot of each output.
    pub outs: Vec<usize>,
    /// The retry scopes around the step, outermost first.
    pub scopes: Vec<usize>,
    /// `map task over values`: the parameter that takes each element.
    pub map_item: Option<usize>,
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

/// Builds the analysis, pushing an error for every wiring mistake it finds.
pub fn analyze<'a>(
    def: &'a FlowDef,
    metas: Vec<StepMeta>,
    decider_metas: Vec<StepMeta>,
    cx: &mut Ctxt,
) -> Analysis<'a> {
    let refs = def.body.steps();
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
    for d in &deciders {
        super::check::check_decider(d, cx);
    }
    let mut steps: Vec<Step<'a>> = refs
        .into_iter()
        .zip(metas)
        .map(|(r, meta)| Step {
            label: r.label().to_string(),
            reads: Vec::new(),
            writes: Vec::new(),
            extra_reads: Vec::new(),
            args: vec![None; meta.params.len()],
            outs: Vec::new(),
            scopes: Vec::new(),
            map_item: None,
            r,
            meta,
        })
        .collect();

    super::check::check_labels(&steps, cx);
    for step in &mut steps {
        super::check::resolve_binds(step, cx);
        super::check::resolve_renames(step, cx);
        super::check::check_map(step, cx);
    }

    let mut slots: Vec<Slot> = def
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Slot {
            name: name.to_string(),
            source: Source::Input(i),
        })
        .collect();
    super::check::check_duplicate_inputs(def, cx);
    for (s, step) in steps.iter_mut().enumerate() {
        for (index, name) in step.writes.iter().enumerate() {
            step.outs.push(slots.len());
            slots.push(Slot {
                name: name.clone(),
                source: Source::Output { step: s, index },
            });
        }
    }
    super::check::check_ambiguous(def, &steps, &slots, cx);

    let mut analysis = Analysis {
        steps,
        scopes: Vec::new(),
        deciders,
        skippable: Vec::new(),
        slots,
        order: Vec::new(),
        edges: BTreeSet::new(),
    };
    let inputs: BTreeSet<String> = def.inputs.iter().map(|(n, _)| n.to_string()).collect();
    let mut walker = Walker {
        a: &mut analysis,
        cx,
        next_step: 0,
        scope_stack: Vec::new(),
    };
    walker.walk(&def.body, &inputs, &Context::default());
    let mut walker_step = 0;
    structure(&def.body, &mut analysis, &mut walker_step, cx);
    add_data_edges(&mut analysis);
    analysis.order = topo_order(&analysis, cx);
    analysis.skippable = skippable(&analysis);
    super::check::check_skippable_reads(&analysis, cx);
    super::check::check_skippable_decider_reads(&analysis, cx);
    analysis
}

#[derive(Default, Clone)]
struct Context {
    /// Names provided by the other members of the innermost `unordered` block, with the step that
    /// provides each.
    unordered_siblings: HashMap<String, String>,
}

struct Walker<'w, 'a> {
    a: &'w mut Analysis<'a>,
    cx: &'w mut Ctxt,
    next_step: usize,
    /// The retry scopes around the pattern being walked, outermost first.
    scope_stack: Vec<usize>,
}

impl<'a> Walker<'_, 'a> {
    /// Checks that every parameter of every step in `pattern` is bound by a name available before
    /// the step, binds it, and returns the names `pattern` provides.
    fn walk(
        &mut self,
        pattern: &'a Pattern,
        avail: &BTreeSet<String>,
        ctx: &Context,
    ) -> BTreeSet<String> {
        let Some(spec) = &pattern.retry else {
            return self.walk_pattern(pattern, avail, ctx);
        };
        let scope = self.a.scopes.len();
        let for_each = spec.for_each.as_ref().and_then(|values| {
            let name = values.to_string();
            if avail.contains(&name) {
                self.a.slot_of(&name)
            } else {
                let hint = super::check::closest(&name, avail.iter().map(String::as_str))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                // Count the likely meant name as read, so the typo is reported once.
                if let Some(first) = self.a.steps.first_mut() {
                    first.extra_reads.extend(super::check::closest(&name, avail.iter().map(String::as_str)).map(str::to_owned));
                }
                self.cx.error(
                    values.span(),
                    format!("`ParameterizedForEach({name})` iterates `{name}`, but nothing provides it before this `retry`{hint}"),
                );
                None
            }
        });
        let mut inner = avail.clone();
        let item = spec.provides.as_ref().map(|(name, ty)| {
            let name_s = name.to_string();
            if let Some(existing) = self.a.slot_of(&name_s) {
                let by = match self.a.slots[existing].source {
                    Source::Input(_) => "a flow input".to_owned(),
                    Source::Output { step, .. } => format!("step `{}`", self.a.steps[step].label),
                    _ => "another retry".to_owned(),
                };
                self.cx.error(
                    name.span(),
                    format!("ambiguous provider: {by} provides `{name_s}` already, and this `retry` provides it too; name the retry's value differently"),
                );
            }
            if ty.is_none() && spec.for_each.is_none() {
                self.cx.error(name.span(), format!("write the type of the value this `retry` provides: `-> {name_s}: Type`"));
            }
            inner.insert(name_s.clone());
            let slot = self.a.slots.len();
            self.a.slots.push(Slot { name: name_s, source: Source::RetryItem { scope } });
            slot
        });
        let mut chain = self.scope_stack.clone();
        chain.push(scope);
        self.a.scopes.push(Scope {
            spec,
            parent: self.scope_stack.last().copied(),
            for_each,
            item,
            chain,
        });
        self.scope_stack.push(scope);
        let mut provided = self.walk_pattern(pattern, &inner, ctx);
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
        ctx: &Context,
    ) -> BTreeSet<String> {
        let mut provided = BTreeSet::new();
        match pattern.kind {
            PatternKind::Linear => {
                let mut avail = avail.clone();
                for item in &pattern.items {
                    let p = self.walk_item(item, &avail, ctx);
                    avail.extend(p.iter().cloned());
                    provided.extend(p);
                }
            }
            PatternKind::Unordered => {
                let first = self.next_step;
                let per_item: Vec<BTreeSet<String>> =
                    pattern.items.iter().map(|i| self.provides_of(i)).collect();
                let items_steps = self.steps_per_item(pattern, first);
                for (i, item) in pattern.items.iter().enumerate() {
                    let mut inner = ctx.clone();
                    inner.unordered_siblings.clear();
                    for (j, names) in per_item.iter().enumerate() {
                        if i == j {
                            continue;
                        }
                        for n in names {
                            let by = items_steps[j]
                                .iter()
                                .find(|&&s| self.a.steps[s].writes.contains(n))
                                .map(|&s| self.a.steps[s].label.clone())
                                .unwrap_or_default();
                            inner.unordered_siblings.insert(n.clone(), by);
                        }
                    }
                    provided.extend(self.walk_item(item, avail, &inner));
                }
            }
            PatternKind::Graph => {
                let mut inside = avail.clone();
                for item in &pattern.items {
                    inside.extend(self.provides_of(item));
                }
                let first = self.next_step;
                for item in &pattern.items {
                    provided.extend(self.walk_item(item, &inside, ctx));
                }
                // Deciders read what the step they guard could read.
                for item in &pattern.items {
                    if let Item::Link(link) = item {
                        if let Some(d) = self
                            .a
                            .deciders
                            .iter()
                            .position(|d| std::ptr::eq(d.link, link))
                        {
                            let to =
                                (first..self.next_step).find(|&s| link.to == self.a.steps[s].label);
                            self.a.deciders[d].to = to;
                            if let Some(to) = to {
                                self.bind_decider(d, to, &inside);
                            }
                        }
                    }
                }
            }
        }
        provided
    }

    fn steps_per_item(&self, pattern: &Pattern, mut next: usize) -> Vec<Vec<usize>> {
        pattern
            .items
            .iter()
            .map(|item| {
                let n = count_steps(item);
                let ids = (next..next + n).collect();
                next += n;
                ids
            })
            .collect()
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
        ctx: &Context,
    ) -> BTreeSet<String> {
        match item {
            Item::Pattern(p) => self.walk(p, avail, ctx),
            Item::Link(_) => BTreeSet::new(),
            Item::Step(_) => {
                let s = self.next_step;
                self.next_step += 1;
                self.a.steps[s].scopes = self.scope_stack.clone();
                self.bind_step(s, avail, ctx);
                self.a.steps[s].writes.iter().cloned().collect()
            }
        }
    }

    fn bind_decider(&mut self, d: usize, to: usize, avail: &BTreeSet<String>) {
        for p in 0..self.a.deciders[d].meta.params.len() {
            let name = self.a.deciders[d].meta.params[p].name.clone();
            let produced_by_target = self.a.steps[to].writes.contains(&name);
            if avail.contains(&name) && !produced_by_target {
                self.a.deciders[d].args[p] = self.a.slot_of(&name);
            } else {
                super::check::report_decider_unbound(self.a, d, to, &name, self.cx);
            }
        }
    }

    fn bind_step(&mut self, s: usize, avail: &BTreeSet<String>, ctx: &Context) {
        if let Some(values) = &self.a.steps[s].r.map_over {
            // `map task over values`: the first parameter takes one element of `values` per run.
            match self.a.steps[s].meta.params.iter().position(|p| !p.ctx) {
                Some(item) => {
                    self.a.steps[s].map_item = Some(item);
                    self.a.steps[s].reads[item] = values.to_string();
                }
                None => self.cx.error(
                    values.span(),
                    format!(
                        "`map {} over {values}`: the task takes no parameter for the elements",
                        self.a.steps[s].label
                    ),
                ),
            }
        }
        for p in 0..self.a.steps[s].meta.params.len() {
            if self.a.steps[s].meta.params[p].ctx {
                continue; // the engine supplies it
            }
            let name = self.a.steps[s].reads[p].clone();
            if avail.contains(&name) {
                self.a.steps[s].args[p] = self.a.slot_of(&name);
                continue;
            }
            if self.a.steps[s].meta.params[p].default {
                let slot = self.a.slots.len();
                self.a.slots.push(Slot {
                    name,
                    source: Source::Default { step: s, param: p },
                });
                self.a.steps[s].args[p] = Some(slot);
                continue;
            }
            super::check::report_unbound(
                self.a,
                s,
                p,
                &name,
                avail,
                &ctx.unordered_siblings,
                self.cx,
            );
        }
    }
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

/// Adds the edges the patterns imply (linear order, explicit links) and returns each pattern's ends.
fn structure(pattern: &Pattern, a: &mut Analysis, next: &mut usize, cx: &mut Ctxt) -> Ends {
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
            Item::Pattern(p) => parts.push(structure(p, a, next, cx)),
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
            for l in links {
                match (find(&l.from), find(&l.to)) {
                    (Some(from), Some(to)) => {
                        a.edges.insert((from, to));
                    }
                    _ => super::check::report_bad_link(a, &all, l, cx),
                }
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
    spread_skips(a, &mut skippable);
    skippable
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

/// Kahn's algorithm, preferring the step written first; reports a cycle when one remains.
fn topo_order(a: &Analysis, cx: &mut Ctxt) -> Vec<usize> {
    let n = a.steps.len();
    let mut indegree = vec![0usize; n];
    for &(_, to) in &a.edges {
        indegree[to] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&s| indegree[s] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(s) = ready.pop_first() {
        order.push(s);
        for &(from, to) in &a.edges {
            if from == s {
                indegree[to] -= 1;
                if indegree[to] == 0 {
                    ready.insert(to);
                }
            }
        }
    }
    if order.len() < n {
        let cycle = find_cycle(a, &order);
        super::check::report_cycle(a, &cycle, cx);
        // Keep going with the written order so later errors still make sense.
        return (0..n).collect();
    }
    order
}

/// A cycle among the steps that Kahn's algorithm could not order.
fn find_cycle(a: &Analysis, ordered: &[usize]) -> Vec<usize> {
    let left: Vec<usize> = (0..a.steps.len())
        .filter(|s| !ordered.contains(s))
        .collect();
    // Walk backwards along incoming edges from a remaining step: every remaining step has an
    // incoming edge from another remaining step, so the walk must revisit a step.
    let mut path = vec![left[0]];
    loop {
        let cur = *path.last().unwrap();
        let prev = a
            .edges
            .iter()
            .find(|&&(f, t)| t == cur && left.contains(&f))
            .map(|&(f, _)| f)
            .unwrap_or(cur);
        if let Some(pos) = path.iter().position(|&s| s == prev) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            cycle.reverse();
            // Start the cycle at the step written first.
            let start = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &s)| s)
                .map(|(i, _)| i)
                .unwrap_or(0);
            cycle.rotate_left(start);
            return cycle;
        }
        path.push(prev);
    }
}

/// Spans for errors about a step: the user's path inside `flow!`.
pub fn step_span(step: &Step) -> Span {
    step.r.span()
}
