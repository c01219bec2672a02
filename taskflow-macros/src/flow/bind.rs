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
        cycles: Vec::new(),
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
        Err(cycles) => {
            analysis.cycles = cycles;
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

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::flow::testing::{flow, meta, metas, task};

    fn servers() -> Vec<StepMeta> {
        vec![
            task("launch_server", &["image", "flavor"], &["server_id"]),
            task("attach_volume", &["server_id", "size_gb"], &["volume_id"]),
            task("create_volume", &["size_gb"], &["volume_id"]),
            task("boot", &["server_id"], &["ip"]),
            task("notify", &[], &[]),
            task("measure", &["requested"], &["size_gb", "zone"]),
        ]
    }

    /// The IR of `src`; the definition is leaked so the IR, which borrows it, can be returned.
    fn bound(src: &str, known: &[StepMeta]) -> Analysis<'static> {
        let def: &'static FlowDef = Box::leak(Box::new(flow(src)));
        let (steps, deciders) = metas(def, known);
        bind(def, steps, deciders)
    }

    fn label<'a>(a: &'a Analysis, s: usize) -> &'a str {
        &a.steps[s].label
    }

    fn order<'a>(a: &'a Analysis) -> Vec<&'a str> {
        a.order.iter().map(|&s| label(a, s)).collect()
    }

    fn edges<'a>(a: &'a Analysis) -> Vec<(&'a str, &'a str)> {
        a.edges
            .iter()
            .map(|&(f, t)| (label(a, f), label(a, t)))
            .collect()
    }

    /// A slot as `name <- provider`.
    fn slot(a: &Analysis, slot: usize) -> String {
        let Slot { name, source } = &a.slots[slot];
        let provider = match *source {
            Source::Input(_) => "input".to_owned(),
            Source::Output { step, .. } => label(a, step).to_owned(),
            Source::Default { step, .. } => format!("default of {}", label(a, step)),
            Source::RetryItem { scope } => format!("retry {scope}"),
        };
        format!("{name} <- {provider}")
    }

    fn slots(a: &Analysis) -> Vec<String> {
        (0..a.slots.len()).map(|s| slot(a, s)).collect()
    }

    /// The slot each parameter of the step labelled `step` reads.
    fn args(a: &Analysis, step: &str) -> Vec<Option<String>> {
        let step = a.steps.iter().find(|s| s.label == step).expect("a step");
        step.args
            .iter()
            .map(|arg| arg.map(|s| slot(a, s)))
            .collect()
    }

    fn some(names: &[&str]) -> Vec<Option<String>> {
        names.iter().map(|n| Some(n.to_string())).collect()
    }

    #[test]
    fn linear_runs_in_written_order_and_binds_by_name() {
        let a = bound(
            "flow Boot(image: String, flavor: u32, size_gb: u32) {
                linear [ launch_server, attach_volume, boot ]
            }",
            &servers(),
        );
        assert_eq!(
            slots(&a),
            [
                "image <- input",
                "flavor <- input",
                "size_gb <- input",
                "server_id <- launch_server",
                "volume_id <- attach_volume",
                "ip <- boot",
            ]
        );
        assert_eq!(
            args(&a, "attach_volume"),
            some(&["server_id <- launch_server", "size_gb <- input"])
        );
        assert_eq!(a.steps[1].outs, [4]);
        assert_eq!(
            edges(&a),
            [
                ("launch_server", "attach_volume"),
                ("launch_server", "boot"),
                ("attach_volume", "boot"),
            ]
        );
        assert_eq!(order(&a), ["launch_server", "attach_volume", "boot"]);
        assert_eq!(a.cycles, []);
        assert_eq!(a.visits, [Visit::Step(0), Visit::Step(1), Visit::Step(2)]);
    }

    #[test]
    fn unordered_members_are_independent() {
        let a = bound(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                linear [ unordered [ create_volume, linear [ launch_server, boot ] ], notify ]
            }",
            &servers(),
        );
        assert_eq!(
            edges(&a),
            [
                ("create_volume", "notify"),
                ("launch_server", "boot"),
                ("boot", "notify"),
            ]
        );
        assert_eq!(
            order(&a),
            ["create_volume", "launch_server", "boot", "notify"]
        );
        assert_eq!(a.unordered, [vec![0..1, 1..3]]);
        let members: Vec<_> = a.steps.iter().map(|s| s.unordered).collect();
        assert_eq!(members, [Some((0, 0)), Some((0, 1)), Some((0, 1)), None]);
    }

    #[test]
    fn dependency_inside_unordered_binds_nothing() {
        let a = bound(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                unordered [ attach_volume, launch_server ]
            }",
            &servers(),
        );
        assert_eq!(
            args(&a, "attach_volume"),
            [None, Some("size_gb <- input".to_owned())]
        );
        assert_eq!(a.steps[0].unordered, Some((0, 0)));
        assert_eq!(edges(&a), []);
    }

    #[test]
    fn graph_orders_by_data_and_links() {
        let a = bound(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                graph [ attach_volume, notify, launch_server, notify -> launch_server ]
            }",
            &servers(),
        );
        // Inside a graph every member's outputs are available to every other member.
        assert_eq!(
            args(&a, "attach_volume"),
            some(&["server_id <- launch_server", "size_gb <- input"])
        );
        assert_eq!(
            edges(&a),
            [
                ("notify", "launch_server"),
                ("launch_server", "attach_volume")
            ]
        );
        assert_eq!(order(&a), ["notify", "launch_server", "attach_volume"]);
        let links: Vec<_> = a
            .links
            .iter()
            .map(|l| (l.from, l.to, l.graph.clone()))
            .collect();
        assert_eq!(links, [(Some(1), Some(2), 0..3)]);
    }

    #[test]
    fn link_to_a_missing_step_has_no_end() {
        let a = bound(
            "flow F(size_gb: u32) {
                linear [ notify as other, graph [ create_volume, graph [ notify, notify -> elsewhere ], create_volume -> other ] ]
            }",
            &servers(),
        );
        // Inner graphs first.
        let links: Vec<_> = a
            .links
            .iter()
            .map(|l| (l.link.to.to_string(), l.from, l.to, l.graph.clone()))
            .collect();
        assert_eq!(
            links,
            [
                ("elsewhere".to_owned(), Some(2), None, 2..3),
                ("other".to_owned(), Some(1), None, 1..3),
            ]
        );
        assert_eq!(edges(&a), [("other", "create_volume"), ("other", "notify")]);
    }

    #[test]
    fn nested_patterns_join_at_their_ends() {
        let a = bound(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                linear [ notify as first, unordered [ create_volume, launch_server ], graph [ notify as a, notify as b ], notify as last ]
            }",
            &servers(),
        );
        assert_eq!(
            edges(&a),
            [
                ("first", "create_volume"),
                ("first", "launch_server"),
                ("create_volume", "a"),
                ("create_volume", "b"),
                ("launch_server", "a"),
                ("launch_server", "b"),
                ("a", "last"),
                ("b", "last"),
            ]
        );
    }

    #[test]
    fn rebinding_reads_another_name() {
        let a = bound(
            "flow F(server_id: u64, disk: u32) { linear [ attach_volume(size_gb = disk) ] }",
            &servers(),
        );
        let step = &a.steps[0];
        assert_eq!(step.reads, ["server_id", "disk"]);
        assert_eq!(step.rebinds, [Rebind::Param(1)]);
        assert_eq!(
            args(&a, "attach_volume"),
            some(&["server_id <- input", "disk <- input"])
        );
    }

    #[test]
    fn mistaken_rebindings_read_what_they_likely_meant() {
        let a = bound(
            "flow F(server_id: u64, disk: u32, x: u32, y: u32) {
                linear [ attach_volume(sise_gb = disk, volume = x, sise_gb = y) ]
            }",
            &servers(),
        );
        let step = &a.steps[0];
        assert_eq!(
            step.rebinds,
            [
                Rebind::Unknown { meant: Some(1) },
                Rebind::Unknown { meant: None },
                Rebind::Twice,
            ]
        );
        assert_eq!(step.reads, ["server_id", "disk"]);
        assert_eq!(step.extra_reads, ["x"]);
    }

    #[test]
    fn renamed_outputs_are_stored_under_the_new_names() {
        let a = bound(
            "flow F(requested: u32, image: String, flavor: u32) {
                linear [ measure -> (disk, region), launch_server -> id, boot(server_id = id) ]
            }",
            &servers(),
        );
        assert_eq!(a.steps[0].writes, ["disk", "region"]);
        assert_eq!(
            slots(&a)[3..],
            [
                "disk <- measure",
                "region <- measure",
                "id <- launch_server",
                "ip <- boot",
            ]
        );
        assert_eq!(args(&a, "boot"), some(&["id <- launch_server"]));
    }

    #[test]
    fn labels_name_steps() {
        let a = bound(
            "flow F(size_gb: u32) { graph [ create_volume -> v1 as first, create_volume -> v2 as second, notify, second -> notify ] }",
            &servers(),
        );
        let labels: Vec<_> = a.steps.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["first", "second", "notify"]);
        assert_eq!(edges(&a), [("second", "notify")]);
    }

    #[test]
    fn a_name_provided_twice_has_a_slot_per_provider() {
        let a = bound(
            "flow F(size_gb: u32, server_id: u64) { linear [ create_volume, attach_volume, boot ] }",
            &servers(),
        );
        assert_eq!(
            slots(&a)[2..4],
            ["volume_id <- create_volume", "volume_id <- attach_volume"]
        );
        assert_eq!(a.slot_of("volume_id"), Some(2));
    }

    #[test]
    fn unbound_parameter_reads_no_slot() {
        let a = bound(
            "flow F(image: String) { linear [ launch_server ] }",
            &servers(),
        );
        assert_eq!(
            args(&a, "launch_server"),
            [Some("image <- input".to_owned()), None]
        );
        // A parameter provided only later binds nothing either, and adds no edge.
        let a = bound(
            "flow F(image: String, flavor: u32, size_gb: u32) { linear [ attach_volume, launch_server ] }",
            &servers(),
        );
        assert_eq!(args(&a, "attach_volume")[0], None);
        assert_eq!(edges(&a), [("attach_volume", "launch_server")]);
    }

    #[test]
    fn default_parameter_without_provider_gets_its_own_slot() {
        let known = [meta(
            quote!(task resize public sync infallible [(size_gb value default) (zone ref required)] [done] norevert ok),
        )];
        let a = bound("flow F(zone: String) { linear [ resize ] }", &known);
        assert_eq!(
            args(&a, "resize"),
            some(&["size_gb <- default of resize", "zone <- input"])
        );
        // A default is no provider of the name.
        assert_eq!(a.slot_of("size_gb"), None);
    }

    #[test]
    fn cycle_keeps_the_written_order() {
        let known = [
            task("a", &["z"], &["x"]),
            task("b", &["x"], &["y"]),
            task("c", &["y"], &["z"]),
            task("d", &[], &[]),
        ];
        let a = bound("flow F() { graph [ d, a, b, c ] }", &known);
        let cycles: Vec<_> = a.cycles.iter().map(|c| c.steps.clone()).collect();
        assert_eq!(cycles, [vec![1, 2, 3]]);
        assert_eq!(order(&a), ["d", "a", "b", "c"]);
        assert_eq!(edges(&a), [("a", "b"), ("b", "c"), ("c", "a")]);
    }

    #[test]
    fn deciders_read_what_their_step_could_and_may_skip_it() {
        let known = [
            task("measure", &["requested"], &["size_gb"]),
            meta(
                quote!(task big_enough public sync infallible [(size_gb ref required) (backup_id ref required)] [] norevert ok),
            ),
            task("backup", &["size_gb"], &["backup_id"]),
            task("verify", &["backup_id"], &["verified"]),
            task("report", &["size_gb", "verified"], &["report"]),
        ];
        let a = bound(
            "flow Backup(requested: u32) {
                linear [ graph [ measure, backup, verify, measure -> backup if big_enough ], report ]
            }",
            &known,
        );
        let d = &a.deciders[0];
        assert_eq!(d.to, Some(1));
        // `backup_id` is written by the guarded step itself, so the decider cannot read it.
        let decider_args: Vec<_> = d.args.iter().map(|arg| arg.map(|s| slot(&a, s))).collect();
        assert_eq!(decider_args, [Some("size_gb <- measure".to_owned()), None]);
        // `verify` reads only what `backup` provides, so it is skipped with it; `report` reads
        // `size_gb` too, so it still runs.
        assert_eq!(a.skippable, [false, true, true, false]);
        assert_eq!(
            a.visits,
            [
                Visit::Step(0),
                Visit::Step(1),
                Visit::Step(2),
                Visit::Decider(0),
                Visit::Step(3),
            ]
        );
    }

    #[test]
    fn a_guarded_step_runs_after_what_its_decider_reads() {
        let known = [
            task("measure", &["requested"], &["size_gb"]),
            task("big_enough", &["size_gb"], &[]),
            task("notify", &[], &[]),
        ];
        let a = bound(
            "flow F(requested: u32) { graph [ notify, measure, measure -> notify if big_enough ] }",
            &known,
        );
        assert_eq!(edges(&a), [("measure", "notify")]);
        assert_eq!(order(&a), ["measure", "notify"]);
    }

    #[test]
    fn map_feeds_each_element_to_the_first_parameter() {
        let known = [meta(
            quote!(task format_disk public sync infallible [(ctx ctx required) (size ref required) (zone value required)] [formatted] norevert ok),
        )];
        let a = bound(
            "flow F(sizes: Vec<u32>, zone: String) { linear [ map format_disk over sizes -> all ] }",
            &known,
        );
        let step = &a.steps[0];
        assert_eq!(step.map_item, Some(1));
        assert_eq!(step.reads, ["ctx", "sizes", "zone"]);
        assert_eq!(
            args(&a, "format_disk"),
            [
                None,
                Some("sizes <- input".to_owned()),
                Some("zone <- input".to_owned())
            ]
        );
        assert_eq!(slots(&a)[2], "all <- format_disk");
    }

    #[test]
    fn retry_scopes_nest_and_provide_their_value() {
        let known = [
            task("format_disk", &["size"], &["formatted"]),
            task("check", &["formatted", "attempt"], &["ok"]),
            task("notify", &[], &[]),
        ];
        let a = bound(
            "flow F(sizes: Vec<u32>) {
                linear [
                    retry(ParameterizedForEach(sizes) -> size) linear [
                        format_disk,
                        retry(Times(3) -> attempt: u32) linear [ check ],
                    ],
                    notify,
                ]
            }",
            &known,
        );
        let scopes: Vec<_> = a
            .scopes
            .iter()
            .map(|s| {
                (
                    s.parent,
                    s.chain.clone(),
                    s.for_each,
                    s.item.map(|i| slot(&a, i)),
                )
            })
            .collect();
        assert_eq!(
            scopes,
            [
                (None, vec![0], Some(0), Some("size <- retry 0".to_owned())),
                (
                    Some(0),
                    vec![0, 1],
                    None,
                    Some("attempt <- retry 1".to_owned())
                ),
            ]
        );
        let around: Vec<_> = a.steps.iter().map(|s| s.scopes.clone()).collect();
        assert_eq!(around, [vec![0], vec![0, 1], vec![]]);
        assert_eq!(a.scope_steps(0), [0, 1]);
        assert_eq!(
            args(&a, "check"),
            some(&["formatted <- format_disk", "attempt <- retry 1"])
        );
        assert_eq!(a.producer_scopes(a.slot_of("attempt").unwrap()), [0, 1]);
        assert_eq!(a.producer_scopes(a.slot_of("formatted").unwrap()), [0]);
        assert_eq!(
            a.visits,
            [
                Visit::Scope(0),
                Visit::Step(0),
                Visit::Scope(1),
                Visit::Step(1),
                Visit::Step(2),
            ]
        );
    }

    #[test]
    fn retry_value_is_not_visible_after_its_retry() {
        let known = [task("use_it", &["attempt"], &[])];
        let a = bound(
            "flow F() { linear [ retry(Times(3) -> attempt: u32) linear [ use_it as inside ], use_it as after ] }",
            &known,
        );
        assert_eq!(args(&a, "inside"), some(&["attempt <- retry 0"]));
        assert_eq!(args(&a, "after"), [None]);
        // Nor when a step inside provides the same name (which `check` reports as ambiguous).
        let known = [
            task("use_it", &["attempt"], &[]),
            task("make", &[], &["attempt"]),
        ];
        let a = bound(
            "flow F() { linear [ retry(Times(3) -> attempt: u32) linear [ make ], use_it ] }",
            &known,
        );
        assert_eq!(args(&a, "use_it"), [None]);
    }

    #[test]
    fn for_each_over_a_missing_value_guesses_the_meant_one() {
        let a = bound(
            "flow F(sizes: Vec<u32>) {
                retry(ParameterizedForEach(sizs) -> size_gb) linear [ create_volume ]
            }",
            &servers(),
        );
        let scope = &a.scopes[0];
        assert_eq!(scope.for_each, None);
        assert_eq!(scope.for_each_guess.as_deref(), Some("sizes"));
        // Counted as read, so `sizes` is not reported unused too.
        assert_eq!(a.steps[0].extra_reads, ["sizes"]);
    }
}
