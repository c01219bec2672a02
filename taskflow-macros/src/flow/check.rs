//! The wiring rules of `flow!`, one `check_*` function each, all called from [`check`]. They only
//! read the IR that `bind` built and push spanned errors that name the step and the name at fault
//! and say how to fix it.

use std::collections::{HashMap, HashSet};

use super::graph::{
    self, step_span, Analysis, Cycle, Decider, Rebind, Scope, Slot, Source, Step, Visit,
};
use super::parse::{FlowDef, Item, Link, Pattern, PatternKind};
use super::suggest::closest;
use crate::ctxt::Ctxt;
use crate::meta::{StepKind, StepMeta, VisRank};

/// Every path of the flow reached a `#[task]`'s or a flow's metadata: what its collector handed
/// over is in our format (`None` where it was not). Binding needs every step's metadata, so the
/// pipeline stops after these errors.
pub fn check_metadata(paths: &[&syn::Path], metas: &[Option<StepMeta>], cx: &mut Ctxt) {
    for (path, meta) in paths.iter().zip(metas) {
        if meta.is_none() {
            cx.error_spanned(path, "this is not a #[task] or a flow: mark the function with #[task], or define the flow with flow!");
        }
    }
}

/// Every rule, in the order its errors are reported. Rules about one step or one retry run
/// together for each, in written order, so a flow's errors read from top to bottom.
pub fn check(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
    check_pattern(def, &def.body, true, cx);
    for d in &a.deciders {
        check_decider(d, cx);
    }
    check_labels(&a.steps, cx);
    for step in &a.steps {
        check_rebinds(step, cx);
        check_renames(step, cx);
        check_map(step, cx);
    }
    check_duplicate_inputs(def, cx);
    check_ambiguous(def, a, cx);
    for &visit in &a.visits {
        match visit {
            Visit::Scope(k) => {
                check_for_each(&a.scopes[k], cx);
                check_retry_provider(a, k, cx);
                check_retry_type(&a.scopes[k], cx);
            }
            Visit::Step(s) => {
                check_map_parameter(&a.steps[s], cx);
                check_unbound(def, a, s, cx);
            }
            Visit::Decider(d) => check_decider_unbound(a, d, cx),
        }
    }
    check_links(a, cx);
    for cycle in &a.cycles {
        check_cycle(a, cycle, cx);
    }
    check_skippable_reads(a, cx);
    check_skippable_decider_reads(a, cx);
    check_unused_inputs(def, a, cx);
    for i in 0..def.outputs.len() {
        check_output_once(def, i, cx);
        check_output_provided(def, a, i, cx);
    }
    check_output_types(def, a, cx);
}

/// A flow is not named like a task or flow it runs (as a step or a decider): the flow's items
/// would clash with the task's (its marker type, its collector macro), or the flow would be a
/// step of itself. Checked before the steps' metadata is collected, since collecting it calls
/// the name the flow is about to take; one error, on the flow's name.
pub fn check_flow_name(def: &FlowDef, cx: &mut Ctxt) {
    let deciders = def.body.deciders();
    let paths = def
        .body
        .steps()
        .into_iter()
        .map(|s| ("step", &s.path))
        .chain(
            deciders
                .iter()
                .filter_map(|l| l.decider.as_ref().map(|d| ("decider", d))),
        );
    for (role, path) in paths {
        // `name` or `self::name`: the item in the flow's own module (a path elsewhere names
        // another module's item, which the flow's items do not clash with).
        let local = path.leading_colon.is_none()
            && match path.segments.len() {
                1 => true,
                2 => path.segments[0].ident == "self",
                _ => false,
            };
        if !local || path.segments.last().unwrap().ident != def.name {
            continue;
        }
        let name = def.name.to_string();
        // Tasks are fns, named in snake case, flows in camel case: which of the two mistakes
        // this likely is (the flow cannot look the name up to tell).
        if name.starts_with(char::is_uppercase) {
            cx.error_spanned(
                path,
                format!(
                    "flow `{name}` lists itself as a {role}: a flow cannot run itself (nor share its name with a task it runs); remove this {role}, or rename the flow or the task"
                ),
            );
        } else {
            cx.error(
                def.name.span(),
                format!(
                    "flow `{name}` has the name of its {role} `{name}`: a flow cannot share its name with a task it runs; rename the flow, e.g. `flow {}`, or the task",
                    flow_name_like(&name)
                ),
            );
        }
        return;
    }
}

/// `deploy_app` -> `DeployApp`; a name that is upper camel case already gets `Flow` appended.
fn flow_name_like(name: &str) -> String {
    let camel: String = name
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().expect("not empty");
            first.to_uppercase().chain(chars).collect::<String>()
        })
        .collect();
    if camel == name || camel.is_empty() {
        format!("{name}Flow")
    } else {
        camel
    }
}

/// What the grammar accepts but a flow cannot mean: a pattern without steps, a link outside a
/// `graph`. `top` is the flow's body.
fn check_pattern(def: &FlowDef, pattern: &Pattern, top: bool, cx: &mut Ctxt) {
    let kw = &pattern.keyword;
    if pattern.items.is_empty() {
        // The keyword and its brackets: `linear []`.
        let mut brackets = proc_macro2::Group::new(
            proc_macro2::Delimiter::Bracket,
            proc_macro2::TokenStream::new(),
        );
        brackets.set_span(pattern.brackets);
        let tokens = quote::quote!(#kw #brackets);
        let msg = if top {
            format!(
                "flow `{}` has no steps: a flow runs at least one; add a step to its `{kw} [ .. ]`",
                def.name
            )
        } else {
            let around = if pattern.retry.is_some() {
                " and its `retry`"
            } else {
                ""
            };
            format!("empty `{kw} []`: a pattern holds at least one step; add one, or remove the `{kw}`{around}")
        };
        cx.error_spanned(tokens, msg);
    }
    for item in &pattern.items {
        match item {
            Item::Pattern(inner) => check_pattern(def, inner, false, cx),
            Item::Link(link) if pattern.kind != PatternKind::Graph => {
                check_misplaced_link(pattern, link, cx);
            }
            Item::Link(_) | Item::Step(_) => {}
        }
    }
}

/// `a -> b` between two steps of a `linear` or `unordered` (see `parse::classify_links`).
fn check_misplaced_link(pattern: &Pattern, link: &Link, cx: &mut Ctxt) {
    let (from, to) = (&link.from, &link.to);
    let kw = &pattern.keyword;
    let article = if pattern.kind == PatternKind::Unordered {
        "an"
    } else {
        "a"
    };
    let head = format!("link `{from} -> {to}` in {article} `{kw}`: links belong in a `graph`");
    // Where `from` and `to` are steps of this very `linear`, it orders them by their places.
    let place = |end: &syn::Ident| {
        pattern
            .items
            .iter()
            .position(|i| matches!(i, Item::Step(s) if s.label() == end))
    };
    let msg = if link.decider.is_some() {
        format!("{head}, and a decider guards a link of a graph: make this a `graph [ .. ]`")
    } else {
        match (pattern.kind, place(from), place(to)) {
            (PatternKind::Unordered, _, _) => format!(
                "{head}; the members of an `unordered` are independent: make this a `graph [ .. ]` to order them"
            ),
            (_, Some(f), Some(t)) if f < t => format!(
                "{head}, and this `linear` runs `{from}` before `{to}` already: remove the link"
            ),
            _ => format!(
                "{head}; a `linear` runs its steps in written order: reorder them and remove the link, or make this a `graph [ .. ]`"
            ),
        }
    };
    cx.error_spanned(quote::quote!(#from #to), msg);
}

fn quoted(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn what(step: &Step) -> &'static str {
    match step.meta.kind {
        StepKind::Task => "task",
        StepKind::Flow => "flow",
    }
}

/// A decider is a sync `#[task]` returning `bool` that provides nothing.
fn check_decider(d: &Decider, cx: &mut Ctxt) {
    let path = d.link.decider.as_ref().expect("a decider link");
    let name = quote::ToTokens::to_token_stream(path)
        .to_string()
        .replace(' ', "");
    if d.meta.kind != StepKind::Task
        || d.meta.is_async
        || !d.meta.provides.is_empty()
        || d.meta.params.iter().any(|p| p.ctx)
    {
        cx.error_spanned(
            path,
            format!("decider `{name}` must be a plain (not async) #[task] fn that returns `bool`, provides nothing and takes no `&TaskContext`"),
        );
    }
}

/// Two steps with the same name could not be told apart in links, errors and the store.
fn check_labels(steps: &[Step], cx: &mut Ctxt) {
    let mut seen = HashSet::new();
    for step in steps {
        if !seen.insert(step.label.clone()) {
            let span = step
                .r
                .label
                .as_ref()
                .map_or_else(|| step_span(step), |l| l.span());
            cx.error(
                span,
                format!(
                    "two steps are named `{0}`: give this one its own name, e.g. `{1} as {0}_2`",
                    step.label,
                    quote::ToTokens::to_token_stream(&step.r.path)
                        .to_string()
                        .replace(' ', "")
                ),
            );
        }
    }
}

/// `step(param = name)`: every rebound parameter must exist, once.
fn check_rebinds(step: &Step, cx: &mut Ctxt) {
    for ((param, _), rebind) in step.r.binds.iter().zip(&step.rebinds) {
        let param_s = param.to_string();
        match *rebind {
            Rebind::Param(_) => {}
            Rebind::Twice => cx.error(
                param.span(),
                format!(
                    "parameter `{param_s}` of step `{}` is rebound twice",
                    step.label
                ),
            ),
            Rebind::Unknown { meant } => {
                let params: Vec<&str> = step.meta.params.iter().map(|p| p.name.as_str()).collect();
                let hint = match meant {
                    Some(i) => format!("; did you mean `{}`?", params[i]),
                    None if params.is_empty() => "; it takes no parameters".to_owned(),
                    None => format!("; its parameters are {}", quoted(&params)),
                };
                cx.error(
                    param.span(),
                    format!(
                        "{} `{}` has no parameter `{param_s}` to rebind{hint}",
                        what(step),
                        step.label
                    ),
                );
            }
        }
    }
}

/// `step -> name` / `step -> (a, b)`: one new name per output.
fn check_renames(step: &Step, cx: &mut Ctxt) {
    let Some(renames) = &step.r.renames else {
        return;
    };
    // A map of a task with other than one output is reported by `check_map`.
    let map_mismatch = step.r.map_over.is_some() && step.meta.provides.len() != 1;
    if renames.len() != step.meta.provides.len() && !map_mismatch {
        let span = renames
            .first()
            .map_or_else(|| step_span(step), |r| r.span());
        let n = step.meta.provides.len();
        cx.error(
            span,
            format!(
                "{} `{}` provides {n} value{} ({}), but `->` names {}",
                what(step),
                step.label,
                if n == 1 { "" } else { "s" },
                if n == 0 {
                    "none".to_owned()
                } else {
                    quoted(&step.meta.provides)
                },
                renames.len()
            ),
        );
    }
}

/// `map task over values`: a task with exactly one output, which becomes a `Vec`.
fn check_map(step: &Step, cx: &mut Ctxt) {
    let Some(values) = &step.r.map_over else {
        return;
    };
    if step.meta.kind != StepKind::Task || step.meta.provides.len() != 1 {
        cx.error(
            values.span(),
            format!(
                "`map {} over {values}` needs a #[task] that provides exactly one value (the map provides a `Vec` of them)",
                step.label
            ),
        );
    }
}

fn check_duplicate_inputs(def: &FlowDef, cx: &mut Ctxt) {
    let mut seen = HashSet::new();
    for (name, _) in &def.inputs {
        if !seen.insert(name.to_string()) {
            cx.error(
                name.span(),
                format!("flow input `{name}` is declared twice"),
            );
        }
    }
}

/// A name may have one provider: a flow input, or one step's output.
fn check_ambiguous(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
    let steps = &a.steps;
    let mut first: HashMap<&str, &Slot> = HashMap::new();
    // A retry's value is checked with its retry, and a default is no provider.
    let providers = a
        .slots
        .iter()
        .filter(|s| matches!(s.source, Source::Input(_) | Source::Output { .. }));
    for slot in providers {
        let Some(prev) = first.get(slot.name.as_str()) else {
            first.insert(&slot.name, slot);
            continue;
        };
        let Source::Output { step, index } = slot.source else {
            continue;
        };
        let this = &steps[step];
        if let Source::Output { step: other, .. } = prev.source {
            if steps[other].label == this.label {
                continue; // already reported as a duplicate step name
            }
        }
        let span = this
            .r
            .renames
            .as_ref()
            .map_or_else(|| step_span(this), |r| r[index].span());
        let by = match prev.source {
            Source::Input(_) => format!("flow `{}` takes `{}` as an input", def.name, slot.name),
            Source::Output { step: other, .. } => {
                format!(
                    "step `{}` provides `{}` already",
                    steps[other].label, slot.name
                )
            }
            Source::Default { .. } | Source::RetryItem { .. } => unreachable!("filtered out"),
        };
        cx.error(
            span,
            format!(
                "ambiguous provider: {by}, and step `{}` provides it too; rename this output, e.g. `{} -> {}_2`",
                this.label, this.label, slot.name
            ),
        );
    }
}

/// `ParameterizedForEach(values)` iterates a value provided before the retry.
fn check_for_each(scope: &Scope, cx: &mut Ctxt) {
    let Some(values) = &scope.spec.for_each else {
        return;
    };
    if scope.for_each.is_some() {
        return;
    }
    let name = values.to_string();
    let hint = scope
        .for_each_guess
        .as_ref()
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default();
    cx.error(
        values.span(),
        format!("`ParameterizedForEach({name})` iterates `{name}`, but nothing provides it before this `retry`{hint}"),
    );
}

/// The value a retry provides is a name of its own.
fn check_retry_provider(a: &Analysis, k: usize, cx: &mut Ctxt) {
    let scope = &a.scopes[k];
    let (Some((name, _)), Some(item)) = (&scope.spec.provides, scope.item) else {
        return;
    };
    let name_s = name.to_string();
    let Some(existing) = a.slot_of(&name_s).filter(|&slot| slot != item) else {
        return;
    };
    let by = match a.slots[existing].source {
        Source::Input(_) => "a flow input".to_owned(),
        Source::Output { step, .. } => format!("step `{}`", a.steps[step].label),
        _ => "another retry".to_owned(),
    };
    cx.error(
        name.span(),
        format!("ambiguous provider: {by} provides `{name_s}` already, and this `retry` provides it too; name the retry's value differently"),
    );
}

/// Only `ParameterizedForEach` tells the type of the value it provides.
fn check_retry_type(scope: &Scope, cx: &mut Ctxt) {
    let Some((name, ty)) = &scope.spec.provides else {
        return;
    };
    if ty.is_none() && scope.spec.for_each.is_none() {
        cx.error(
            name.span(),
            format!("write the type of the value this `retry` provides: `-> {name}: Type`"),
        );
    }
}

/// `map task over values`: a parameter takes the elements.
fn check_map_parameter(step: &Step, cx: &mut Ctxt) {
    let Some(values) = &step.r.map_over else {
        return;
    };
    if step.map_item.is_none() {
        cx.error(
            values.span(),
            format!(
                "`map {} over {values}`: the task takes no parameter for the elements",
                step.label
            ),
        );
    }
}

/// Every parameter reads a name that surely has a value before its step runs.
fn check_unbound(def: &FlowDef, a: &Analysis, s: usize, cx: &mut Ctxt) {
    let step = &a.steps[s];
    for (p, param) in step.meta.params.iter().enumerate() {
        // The engine supplies a `&TaskContext`.
        if !param.ctx && step.args[p].is_none() {
            report_unbound(def, a, s, p, cx);
        }
    }
}

fn report_unbound(def: &FlowDef, a: &Analysis, s: usize, p: usize, cx: &mut Ctxt) {
    let step = &a.steps[s];
    let name = step.reads[p].as_str();
    let param = &step.meta.params[p].name;
    let reading = if param == name {
        format!("`{name}`")
    } else {
        format!("`{name}` (for its parameter `{param}`)")
    };
    let span = step
        .r
        .binds
        .iter()
        .find(|(pp, _)| pp == param)
        .map_or_else(|| step_span(step), |(_, n)| n.span());
    if let Some(provider) = unordered_sibling(a, s, name) {
        cx.error(
            span,
            format!(
                "step `{}` reads {reading}, which step `{provider}` provides in the same `unordered` block; members of `unordered` are independent: use `linear [ .. ]` or `graph [ .. ]` to order them",
                step.label
            ),
        );
        return;
    }
    let later = a
        .steps
        .iter()
        .find(|other| other.writes.iter().any(|w| w == name));
    let known = known_names(def, a, step);
    let hint = match later {
        Some(other) if other.label == step.label => format!(
            "; the step provides `{name}` itself, so it cannot also read it: rebind the parameter, e.g. `{}({param} = other_name)`",
            step.label
        ),
        Some(other) => format!(
            "; it is provided by step `{}`, which does not run before `{}`: move `{}` earlier, or order the two in a `linear` or `graph`",
            other.label, step.label, other.label
        ),
        None => match closest(name, known.iter().map(String::as_str)) {
            Some(c) => format!(
                "; did you mean `{c}`? (rebind with `{}({param} = {c})`)",
                step.label
            ),
            None => format!(
                "; add `{name}` to the flow's inputs, add a step that provides it, or rebind the parameter with `{}({param} = other_name)`",
                step.label
            ),
        },
    };
    cx.error(
        span,
        format!(
            "unbound input: step `{}` requires {reading}, but nothing provides it before the step runs{hint}",
            step.label
        ),
    );
}

/// The step of another member of `s`'s innermost `unordered` block that provides `name` (of the
/// last such member).
fn unordered_sibling<'a>(a: &'a Analysis, s: usize, name: &str) -> Option<&'a str> {
    let (block, member) = a.steps[s].unordered?;
    a.unordered[block]
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != member)
        .rev()
        .find_map(|(_, steps)| {
            steps
                .clone()
                .find(|&t| a.steps[t].writes.iter().any(|w| w == name))
        })
        .map(|t| a.steps[t].label.as_str())
}

/// The names a step could mean: the flow's inputs, the values of the retries around it, and
/// every step's outputs.
fn known_names(def: &FlowDef, a: &Analysis, step: &Step) -> Vec<String> {
    let inputs = def.inputs.iter().map(|(n, _)| n.to_string());
    let retry_values = step
        .scopes
        .iter()
        .filter_map(|&k| a.scopes[k].item)
        .map(|slot| a.slots[slot].name.clone());
    let outputs = a.steps.iter().flat_map(|o| o.writes.iter().cloned());
    inputs.chain(retry_values).chain(outputs).collect()
}

/// A decider reads names that are available to the step it guards.
fn check_decider_unbound(a: &Analysis, d: usize, cx: &mut Ctxt) {
    let decider = &a.deciders[d];
    let Some(to) = decider.to else {
        return; // the link to a missing step is reported by `check_links`
    };
    let path = decider.link.decider.as_ref().expect("a decider link");
    for (param, arg) in decider.meta.params.iter().zip(&decider.args) {
        if arg.is_none() {
            cx.error_spanned(
                path,
                format!(
                    "decider of link `{} -> {}` requires `{}`, which is not provided before step `{}`; a decider reads what the step it guards could read",
                    decider.link.from, decider.link.to, param.name, a.steps[to].label
                ),
            );
        }
    }
}

/// A link `a -> b` names steps of its graph.
fn check_links(a: &Analysis, cx: &mut Ctxt) {
    for ends in &a.links {
        if ends.from.is_some() && ends.to.is_some() {
            continue;
        }
        let labels = ends.graph.clone().map(|s| a.steps[s].label.as_str());
        let to = ends.link.to.to_string();
        let hint = match closest(&to, labels.clone()) {
            Some(c) => format!("; did you mean `{c}`?"),
            None => format!("; the steps of this graph are {}", quoted(labels)),
        };
        cx.error(
            ends.link.to.span(),
            format!(
                "link `{} -> {to}`: this graph has no step named `{to}`{hint}",
                ends.link.from
            ),
        );
    }
}

/// Steps cannot depend on one another in a circle: one error per cycle, listing it, on the way
/// back to its step written first — that step, where it reads from the last one (the read is
/// what goes against the written order), else the link that leads back to it.
fn check_cycle(a: &Analysis, cycle: &Cycle, cx: &mut Ctxt) {
    let label = |s: usize| a.steps[s].label.as_str();
    let mut path: Vec<&str> = cycle.steps.iter().map(|&s| label(s)).collect();
    path.push(path[0]);
    let mut text = path
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(" -> ");
    match cycle.caught.as_slice() {
        [] => {}
        [one] => text.push_str(&format!(
            " (`{}` is in a circle through these steps too)",
            label(*one)
        )),
        more => text.push_str(&format!(
            " ({} are in circles through these steps too)",
            quoted(more.iter().map(|&s| label(s)))
        )),
    }
    let msg = format!("cycle: {text}; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides");
    let (first, last) = (cycle.steps[0], *cycle.steps.last().unwrap());
    let back_link = a
        .links
        .iter()
        .rev()
        .find(|l| l.from == Some(last) && l.to == Some(first));
    match back_link {
        Some(l) if !reads_from(a, first, last) => {
            let (from, to) = (&l.link.from, &l.link.to);
            cx.error_spanned(quote::quote!(#from #to), msg);
        }
        _ => cx.error(step_span(&a.steps[first]), msg),
    }
}

/// Step `reader` (or a decider guarding it) reads an output of step `producer`.
fn reads_from(a: &Analysis, reader: usize, producer: usize) -> bool {
    let from_producer = |slot: &usize| matches!(a.slots[*slot].source, Source::Output { step, .. } if step == producer);
    a.steps[reader].args.iter().flatten().any(from_producer)
        || a.deciders
            .iter()
            .filter(|d| d.to == Some(reader))
            .any(|d| d.args.iter().flatten().any(from_producer))
}

/// A value that a decider may skip can only be read as an `Option` — by a step that could run
/// without it. A step that is skipped whenever the value's producer is (it depends on nothing
/// else) may read it plainly.
fn check_skippable_reads(a: &Analysis, cx: &mut Ctxt) {
    for (reader, step) in a.steps.iter().enumerate() {
        for (p, slot) in step.args.iter().enumerate() {
            let Some(slot) = *slot else { continue };
            let Source::Output { step: producer, .. } = a.slots[slot].source else {
                continue;
            };
            let param = &step.meta.params[p];
            if a.skippable[producer] && !param.optional && !skipped_with(a, producer)[reader] {
                let span = step
                    .r
                    .binds
                    .iter()
                    .find(|(pp, _)| *pp == param.name)
                    .map_or_else(|| step_span(step), |(_, n)| n.span());
                cx.error(
                    span,
                    format!(
                        "step `{}` reads `{}` from step `{}`, which a decider may skip while `{}` still runs: take it as `Option<T>` (or `Option<&T>`)",
                        step.label, a.slots[slot].name, a.steps[producer].label, step.label
                    ),
                );
            }
        }
    }
}

/// A decider reading a value that may have been skipped must take it as an `Option` too.
fn check_skippable_decider_reads(a: &Analysis, cx: &mut Ctxt) {
    for d in &a.deciders {
        for (p, slot) in d.args.iter().enumerate() {
            let Some(slot) = *slot else { continue };
            let Source::Output { step: producer, .. } = a.slots[slot].source else {
                continue;
            };
            if a.skippable[producer] && !d.meta.params[p].optional {
                let path = d.link.decider.as_ref().expect("a decider link");
                cx.error_spanned(
                    path,
                    format!(
                        "the decider of link `{} -> {}` reads `{}` from step `{}`, which a decider may skip: take it as `Option<T>` (or `Option<&T>`)",
                        d.link.from, d.link.to, a.slots[slot].name, a.steps[producer].label
                    ),
                );
            }
        }
    }
}

/// The steps that are surely skipped when `step` is: itself, and every step all of whose
/// predecessors are.
fn skipped_with(a: &Analysis, step: usize) -> Vec<bool> {
    let mut with = vec![false; a.steps.len()];
    with[step] = true;
    graph::spread_skips(a, &mut with);
    with
}

/// Every flow input is read by a step or a decider, iterated by a retry or passed through as an
/// output.
fn check_unused_inputs(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
    for (i, (name, _)) in def.inputs.iter().enumerate() {
        let is_input = |slot: &usize| a.slots[*slot].source == Source::Input(i);
        let read = a
            .steps
            .iter()
            .any(|s| s.args.iter().flatten().any(is_input))
            || a.deciders
                .iter()
                .any(|d| d.args.iter().flatten().any(is_input))
            || a.steps
                .iter()
                .any(|s| s.extra_reads.iter().any(|r| name == r))
            || def.outputs.iter().any(|o| o == name)
            || a.scopes.iter().any(|scope| {
                scope
                    .for_each
                    .is_some_and(|slot| a.slots[slot].source == Source::Input(i))
            });
        if !read {
            cx.error(
                name.span(),
                format!("unused flow input: no step of flow `{}` reads `{name}`; remove it, or rebind a parameter to it", def.name),
            );
        }
    }
}

/// Output `i` of the flow is listed once.
fn check_output_once(def: &FlowDef, i: usize, cx: &mut Ctxt) {
    let out = &def.outputs[i];
    if listed_before(def, i) {
        cx.error(out.span(), format!("flow output `{out}` is listed twice"));
    }
}

fn listed_before(def: &FlowDef, i: usize) -> bool {
    let out = def.outputs[i].to_string();
    def.outputs[..i].iter().any(|o| *o == out)
}

/// Output `i` of the flow is provided by an input or a step.
fn check_output_provided(def: &FlowDef, a: &Analysis, i: usize, cx: &mut Ctxt) {
    let out = &def.outputs[i];
    if listed_before(def, i) {
        return; // reported by `check_output_once`
    }
    let out_s = out.to_string();
    if a.slot_of(&out_s).is_some() {
        return;
    }
    let known = a
        .slots
        .iter()
        .filter(|s| !matches!(s.source, Source::Default { .. }))
        .map(|s| s.name.as_str());
    let hint = match closest(&out_s, known) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => "; add a step that provides it, or remove it from the outputs".to_owned(),
    };
    cx.error(
        out.span(),
        format!(
            "flow `{}` outputs `{out_s}`, but no input or step provides it{hint}",
            def.name
        ),
    );
}

/// A `pub` flow names each output's type in public items; an output without a written type is
/// named through the step that provides it, which must then be at least as visible as the flow.
fn check_output_types(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
    let flow_vis = VisRank::of(&def.vis);
    for (out, declared) in def.outputs.iter().zip(&def.output_types) {
        if declared.is_some() {
            continue;
        }
        let Some(slot) = a.slot_of(&out.to_string()) else {
            continue;
        };
        if let Source::Output { step, .. } = a.slots[slot].source {
            let step = &a.steps[step];
            if step.meta.vis < flow_vis {
                cx.error(
                    out.span(),
                    format!(
                        "flow `{}` is more visible than {} `{}` (step `{}`), which provides `{out}`, so its output type cannot be named through it: write the type, e.g. `{out}: Type`",
                        def.name,
                        what(step),
                        step.meta.name,
                        step.label
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::check;
    use crate::ctxt::Ctxt;
    use crate::flow::bind::bind;
    use crate::flow::testing::{flow, meta, metas, task};
    use crate::meta::StepMeta;

    /// Every error `flow!` reports for `src`, in order, as the source text it points at and its
    /// message.
    fn errors(src: &str, known: &[StepMeta]) -> Vec<(String, String)> {
        let def = flow(src);
        let (steps, deciders) = metas(&def, known);
        let analysis = bind(&def, steps, deciders);
        let mut cx = Ctxt::default();
        check(&def, &analysis, &mut cx);
        cx.into_spanned_messages()
    }

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

    /// On a mismatch, prints what was reported as Rust, to compare with what was expected.
    #[track_caller]
    fn assert_errors(src: &str, known: &[StepMeta], expected: &[(&str, &str)]) {
        let actual = errors(src, known);
        let actual: Vec<(&str, &str)> = actual
            .iter()
            .map(|(at, msg)| (at.as_str(), msg.as_str()))
            .collect();
        if actual != expected {
            let listed: String = actual
                .iter()
                .map(|(at, msg)| format!("        ({at:?}, {msg:?}),\n"))
                .collect();
            panic!("reported:\n{listed}");
        }
    }

    #[test]
    fn a_correct_flow_has_no_errors() {
        assert_errors(
            "flow Boot(image: String, flavor: u32, size_gb: u32) -> (volume_id, ip) {
                linear [ launch_server, unordered [ attach_volume, boot ], notify ]
            }",
            &servers(),
            &[],
        );
    }

    #[test]
    fn a_path_whose_collector_handed_over_no_metadata_is_not_a_task() {
        let def = flow("flow Boot(image: String) { linear [ launch_server, tools::notify ] }");
        let paths: Vec<&syn::Path> = def.body.steps().into_iter().map(|s| &s.path).collect();
        let mut cx = Ctxt::default();
        super::check_metadata(&paths, &[Some(servers().remove(0)), None], &mut cx);
        assert_eq!(
            cx.into_spanned_messages(),
            [(
                "tools::notify".to_owned(),
                "this is not a #[task] or a flow: mark the function with #[task], or define the flow with flow!".to_owned()
            )]
        );
    }

    #[test]
    fn decider_is_a_plain_task() {
        let deciders = [
            meta(quote!(task is_big public async infallible [] [] norevert ok)),
            meta(quote!(task has_zone public sync infallible [] [zone] norevert ok)),
            meta(quote!(flow Check public sync infallible [] [] norevert ok)),
            meta(quote!(task with_ctx public sync infallible [(ctx ctx required)] [] norevert ok)),
        ];
        let known: Vec<StepMeta> = servers().into_iter().chain(deciders).collect();
        assert_errors(
            "flow F(requested: u32) {
                graph [ measure, create_volume, notify, boot(server_id = zone),
                    measure -> create_volume if is_big, measure -> notify if self::has_zone,
                    create_volume -> boot if Check, notify -> boot if with_ctx ]
            }",
            &known,
            &[
                ("is_big", "decider `is_big` must be a plain (not async) #[task] fn that returns `bool`, provides nothing and takes no `&TaskContext`"),
                ("self::has_zone", "decider `self::has_zone` must be a plain (not async) #[task] fn that returns `bool`, provides nothing and takes no `&TaskContext`"),
                ("Check", "decider `Check` must be a plain (not async) #[task] fn that returns `bool`, provides nothing and takes no `&TaskContext`"),
                ("with_ctx", "decider `with_ctx` must be a plain (not async) #[task] fn that returns `bool`, provides nothing and takes no `&TaskContext`"),
                ("with_ctx", "decider of link `notify -> boot` requires `ctx`, which is not provided before step `boot`; a decider reads what the step it guards could read"),
            ],
        );
    }

    #[test]
    fn two_steps_with_one_name() {
        assert_errors(
            "flow F(image: String, flavor: u32) { linear [ launch_server, infra::launch_server ] }",
            &servers(),
            &[
                ("launch_server", "two steps are named `launch_server`: give this one its own name, e.g. `infra::launch_server as launch_server_2`"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) { linear [ create_volume as v, create_volume -> other as v ] }",
            &servers(),
            &[(
                "v",
                "two steps are named `v`: give this one its own name, e.g. `create_volume as v_2`",
            )],
        );
    }

    #[test]
    fn rebinding_a_missing_parameter() {
        assert_errors(
            "flow F(server_id: u64, size: u32, size_gb: u32) {
                linear [ attach_volume(sise_gb = size), create_volume(disk = size) -> v, notify(x = size) ]
            }",
            &servers(),
            &[
                ("sise_gb", "task `attach_volume` has no parameter `sise_gb` to rebind; did you mean `size_gb`?"),
                ("disk", "task `create_volume` has no parameter `disk` to rebind; its parameters are `size_gb`"),
                ("x", "task `notify` has no parameter `x` to rebind; it takes no parameters"),
            ],
        );
    }

    #[test]
    fn rebinding_a_parameter_twice() {
        assert_errors(
            "flow F(a: u32, b: u32) { linear [ create_volume(size_gb = a, size_gb = b) ] }",
            &servers(),
            &[
                ("size_gb", "parameter `size_gb` of step `create_volume` is rebound twice"),
                ("b", "unused flow input: no step of flow `F` reads `b`; remove it, or rebind a parameter to it"),
            ],
        );
    }

    #[test]
    fn renaming_the_wrong_number_of_outputs() {
        let known: Vec<StepMeta> = servers()
            .into_iter()
            .chain([meta(
                quote!(flow Inner public sync infallible [] [a b] norevert ok),
            )])
            .collect();
        assert_errors(
            "flow F(size_gb: u32) { linear [ create_volume -> (v, w), notify -> n, Inner -> only ] }",
            &known,
            &[
                ("v", "task `create_volume` provides 1 value (`volume_id`), but `->` names 2"),
                ("n", "task `notify` provides 0 values (none), but `->` names 1"),
                ("only", "flow `Inner` provides 2 values (`a`, `b`), but `->` names 1"),
            ],
        );
    }

    #[test]
    fn map_needs_a_task_with_one_output_and_a_parameter() {
        let known: Vec<StepMeta> = servers()
            .into_iter()
            .chain([
                meta(quote!(task two public sync infallible [(x value required)] [a b] norevert ok)),
                meta(quote!(task nothing public sync infallible [(ctx ctx required)] [c] norevert ok)),
                meta(quote!(flow Sub public sync infallible [(x value required)] [d] norevert ok)),
            ])
            .collect();
        assert_errors(
            "flow F(xs: Vec<u32>) { linear [ map two over xs, map nothing over xs, map Sub over xs ] }",
            &known,
            &[
                ("xs", "`map two over xs` needs a #[task] that provides exactly one value (the map provides a `Vec` of them)"),
                ("xs", "`map Sub over xs` needs a #[task] that provides exactly one value (the map provides a `Vec` of them)"),
                ("xs", "`map nothing over xs`: the task takes no parameter for the elements"),
            ],
        );
    }

    #[test]
    fn flow_input_declared_twice() {
        assert_errors(
            "flow F(size_gb: u32, size_gb: u32) { linear [ create_volume ] }",
            &servers(),
            &[
                ("size_gb", "flow input `size_gb` is declared twice"),
                ("size_gb", "unused flow input: no step of flow `F` reads `size_gb`; remove it, or rebind a parameter to it"),
            ],
        );
    }

    #[test]
    fn ambiguous_provider() {
        assert_errors(
            "flow F(size_gb: u32, requested: u32) {
                linear [ create_volume, create_volume -> volume_id as again, measure ]
            }",
            &servers(),
            &[
                ("volume_id", "ambiguous provider: step `create_volume` provides `volume_id` already, and step `again` provides it too; rename this output, e.g. `again -> volume_id_2`"),
                ("measure", "ambiguous provider: flow `F` takes `size_gb` as an input, and step `measure` provides it too; rename this output, e.g. `measure -> size_gb_2`"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32, requested: u32) {
                linear [ create_volume, measure -> (extra, volume_id) ]
            }",
            &servers(),
            &[
                ("volume_id", "ambiguous provider: step `create_volume` provides `volume_id` already, and step `measure` provides it too; rename this output, e.g. `measure -> volume_id_2`"),
            ],
        );
    }

    #[test]
    fn retry_value_provided_twice() {
        assert_errors(
            "flow F(size_gb: u32, server_id: u64) {
                linear [
                    retry(Times(2) -> server_id: u64) linear [ attach_volume ],
                    retry(Times(2) -> volume_id: u64) linear [ create_volume -> v ],
                    retry(Times(2) -> v: u64) linear [ notify as n1 ],
                    retry(Times(2) -> t: u32) linear [ retry(Times(3) -> t: u32) linear [ notify as n2 ] ],
                ]
            }",
            &servers(),
            &[
                ("server_id", "ambiguous provider: a flow input provides `server_id` already, and this `retry` provides it too; name the retry's value differently"),
                ("volume_id", "ambiguous provider: step `attach_volume` provides `volume_id` already, and this `retry` provides it too; name the retry's value differently"),
                ("v", "ambiguous provider: step `create_volume` provides `v` already, and this `retry` provides it too; name the retry's value differently"),
                ("t", "ambiguous provider: another retry provides `t` already, and this `retry` provides it too; name the retry's value differently"),
            ],
        );
    }

    #[test]
    fn retry_value_without_type() {
        assert_errors(
            "flow F(server_id: u64) { retry(Times(2) -> size_gb) linear [ attach_volume ] }",
            &servers(),
            &[(
                "size_gb",
                "write the type of the value this `retry` provides: `-> size_gb: Type`",
            )],
        );
    }

    #[test]
    fn for_each_over_a_missing_value() {
        assert_errors(
            "flow F(sizes: Vec<u32>) {
                linear [ retry(ParameterizedForEach(sizs) -> size_gb) linear [ create_volume ] ]
            }",
            &servers(),
            &[
                ("sizs", "`ParameterizedForEach(sizs)` iterates `sizs`, but nothing provides it before this `retry`; did you mean `sizes`?"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) {
                linear [ retry(ParameterizedForEach(volume_id) -> x) linear [ create_volume ] ]
            }",
            &servers(),
            &[
                ("volume_id", "`ParameterizedForEach(volume_id)` iterates `volume_id`, but nothing provides it before this `retry`"),
            ],
        );
    }

    #[test]
    fn unbound_input() {
        assert_errors(
            "flow F(image: String) { linear [ launch_server ] }",
            &servers(),
            &[
                ("launch_server", "unbound input: step `launch_server` requires `flavor`, but nothing provides it before the step runs; add `flavor` to the flow's inputs, add a step that provides it, or rebind the parameter with `launch_server(flavor = other_name)`"),
            ],
        );
        assert_errors(
            "flow F(imgae: String, flavor: u32) { linear [ launch_server ] }",
            &servers(),
            &[
                ("launch_server", "unbound input: step `launch_server` requires `image`, but nothing provides it before the step runs; did you mean `imgae`? (rebind with `launch_server(image = imgae)`)"),
                ("imgae", "unused flow input: no step of flow `F` reads `imgae`; remove it, or rebind a parameter to it"),
            ],
        );
        assert_errors(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                linear [ attach_volume, launch_server ]
            }",
            &servers(),
            &[
                ("attach_volume", "unbound input: step `attach_volume` requires `server_id`, but nothing provides it before the step runs; it is provided by step `launch_server`, which does not run before `attach_volume`: move `launch_server` earlier, or order the two in a `linear` or `graph`"),
            ],
        );
        assert_errors(
            "flow F(image: String, flavor: u32) { linear [ launch_server(image = server_id) ] }",
            &servers(),
            &[
                ("server_id", "unbound input: step `launch_server` requires `server_id` (for its parameter `image`), but nothing provides it before the step runs; the step provides `server_id` itself, so it cannot also read it: rebind the parameter, e.g. `launch_server(image = other_name)`"),
                ("image", "unused flow input: no step of flow `F` reads `image`; remove it, or rebind a parameter to it"),
            ],
        );
        assert_errors(
            "flow F(image: String, flavor: u32) { linear [ launch_server, boot(server_id = sever_id) ] }",
            &servers(),
            &[
                ("sever_id", "unbound input: step `boot` requires `sever_id` (for its parameter `server_id`), but nothing provides it before the step runs; did you mean `server_id`? (rebind with `boot(server_id = server_id)`)"),
            ],
        );
    }

    #[test]
    fn unbound_input_may_mean_the_value_of_a_retry_around_it() {
        let known = [task("use_it", &["attemt"], &[])];
        assert_errors(
            "flow F() {
                linear [ retry(Times(3) -> attempt: u32) linear [ use_it as inside ], use_it as after ]
            }",
            &known,
            &[
                ("use_it", "unbound input: step `inside` requires `attemt`, but nothing provides it before the step runs; did you mean `attempt`? (rebind with `inside(attemt = attempt)`)"),
                ("use_it", "unbound input: step `after` requires `attemt`, but nothing provides it before the step runs; add `attemt` to the flow's inputs, add a step that provides it, or rebind the parameter with `after(attemt = other_name)`"),
            ],
        );
    }

    #[test]
    fn step_reading_its_own_output_in_a_graph() {
        assert_errors(
            "flow F() { graph [ boot(server_id = ip) ] }",
            &servers(),
            &[
                ("boot", "cycle: `boot` -> `boot`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
    }

    #[test]
    fn unbound_input_of_a_mapped_step() {
        assert_errors(
            "flow F(xs: Vec<u32>) {
                linear [ map create_volume over sizes, map create_volume over xs -> vs as m ]
            }",
            &servers(),
            &[
                ("create_volume", "unbound input: step `create_volume` requires `sizes` (for its parameter `size_gb`), but nothing provides it before the step runs; add `sizes` to the flow's inputs, add a step that provides it, or rebind the parameter with `create_volume(size_gb = other_name)`"),
            ],
        );
    }

    #[test]
    fn dependency_inside_unordered() {
        assert_errors(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                unordered [ attach_volume, linear [ notify, launch_server ], linear [ launch_server -> server_id as again ] ]
            }",
            &servers(),
            &[
                ("server_id", "ambiguous provider: step `launch_server` provides `server_id` already, and step `again` provides it too; rename this output, e.g. `again -> server_id_2`"),
                ("attach_volume", "step `attach_volume` reads `server_id`, which step `again` provides in the same `unordered` block; members of `unordered` are independent: use `linear [ .. ]` or `graph [ .. ]` to order them"),
            ],
        );
        // A later step of the same member is no sibling: it runs after, in the member's own order.
        assert_errors(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                unordered [ linear [ attach_volume, launch_server ], notify ]
            }",
            &servers(),
            &[
                ("attach_volume", "unbound input: step `attach_volume` requires `server_id`, but nothing provides it before the step runs; it is provided by step `launch_server`, which does not run before `attach_volume`: move `launch_server` earlier, or order the two in a `linear` or `graph`"),
            ],
        );
        // Only the innermost `unordered` counts; the outer one's other members are not siblings.
        assert_errors(
            "flow F(image: String, flavor: u32, size_gb: u32) {
                unordered [ launch_server, linear [ unordered [ attach_volume, notify ] ] ]
            }",
            &servers(),
            &[
                ("attach_volume", "unbound input: step `attach_volume` requires `server_id`, but nothing provides it before the step runs; it is provided by step `launch_server`, which does not run before `attach_volume`: move `launch_server` earlier, or order the two in a `linear` or `graph`"),
            ],
        );
    }

    #[test]
    fn default_parameters_need_no_provider() {
        let known = [meta(
            quote!(task resize public sync infallible [(size_gb value default) (zone ref required)] [done] norevert ok),
        )];
        assert_errors("flow F(zone: String) { linear [ resize ] }", &known, &[]);
    }

    #[test]
    fn decider_reads_what_its_step_could_read() {
        let known: Vec<StepMeta> = servers()
            .into_iter()
            .chain([
                meta(quote!(task wants public sync infallible [(volume_id ref required) (size_gb ref required) (image ref required)] [] norevert ok)),
            ])
            .collect();
        assert_errors(
            "flow F(size_gb: u32) {
                graph [ create_volume, notify, create_volume -> notify if wants, create_volume -> unknown if wants ]
            }",
            &known,
            &[
                ("wants", "decider of link `create_volume -> notify` requires `image`, which is not provided before step `notify`; a decider reads what the step it guards could read"),
                ("unknown", "link `create_volume -> unknown`: this graph has no step named `unknown`; the steps of this graph are `create_volume`, `notify`"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) { graph [ notify, create_volume, notify -> create_volume if wants ] }",
            &known,
            &[
                ("wants", "decider of link `notify -> create_volume` requires `volume_id`, which is not provided before step `create_volume`; a decider reads what the step it guards could read"),
                ("wants", "decider of link `notify -> create_volume` requires `image`, which is not provided before step `create_volume`; a decider reads what the step it guards could read"),
            ],
        );
    }

    #[test]
    fn link_to_a_step_not_in_the_graph() {
        assert_errors(
            "flow F(size_gb: u32) { graph [ create_volume, notify, create_volume -> notfy ] }",
            &servers(),
            &[
                ("notfy", "link `create_volume -> notfy`: this graph has no step named `notfy`; did you mean `notify`?"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) {
                linear [ notify as other, graph [ create_volume, graph [ notify, notify -> elsewhere ], create_volume -> other ] ]
            }",
            &servers(),
            &[
                ("elsewhere", "link `notify -> elsewhere`: this graph has no step named `elsewhere`; the steps of this graph are `notify`"),
                ("other", "link `create_volume -> other`: this graph has no step named `other`; the steps of this graph are `create_volume`, `notify`"),
            ],
        );
    }

    #[test]
    fn cycle() {
        let known = [
            task("a", &["z"], &["x"]),
            task("b", &["x"], &["y"]),
            task("c", &["y"], &["z"]),
            task("d", &[], &[]),
        ];
        // Once, on the step written first, which reads what a later one provides.
        assert_errors(
            "flow F() { graph [ d, a, b, c ] }",
            &known,
            &[
                ("a", "cycle: `a` -> `b` -> `c` -> `a`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
        // Closed by a link: on the link back to the step written first.
        assert_errors(
            "flow F(x: u32) { graph [ d, b, b -> d, d -> b ] }",
            &known,
            &[
                ("b -> d", "cycle: `d` -> `b` -> `d`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
        // A link that a read doubles: removing the link would not do, so on the reading step.
        assert_errors(
            "flow F() { graph [ a, b, c, c -> a ] }",
            &known,
            &[
                ("a", "cycle: `a` -> `b` -> `c` -> `a`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
    }

    #[test]
    fn separate_cycles_are_reported_once_each() {
        let known = [
            task("fetch", &[], &[]),
            task("build", &[], &[]),
            task("test", &[], &[]),
            task("deploy", &[], &[]),
        ];
        assert_errors(
            "flow F() { graph [ fetch, build, test, deploy, fetch -> build, test -> deploy, deploy -> test, build -> fetch ] }",
            &known,
            &[
                ("build -> fetch", "cycle: `fetch` -> `build` -> `fetch`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
                ("deploy -> test", "cycle: `test` -> `deploy` -> `test`; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
        // Circles sharing steps are one cycle, which names the other steps caught in it.
        assert_errors(
            "flow F() { graph [ fetch, build, test, deploy, fetch -> build, build -> fetch, build -> test, test -> build, test -> deploy ] }",
            &known,
            &[
                ("build -> fetch", "cycle: `fetch` -> `build` -> `fetch` (`test` is in a circle through these steps too); a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides"),
            ],
        );
    }

    #[test]
    fn value_a_decider_may_skip_is_read_as_an_option() {
        let known = [
            task("measure", &["requested"], &["size_gb"]),
            task("big_enough", &[], &[]),
            task("backup", &["size_gb"], &["backup_id"]),
            task("verify", &["size_gb", "backup_id"], &["verified"]),
            task("report", &["backup_id"], &["report"]),
            meta(
                quote!(task worth public sync infallible [(backup_id ref required)] [] norevert ok),
            ),
            meta(
                quote!(task tally public sync infallible [(backup_id opt required) (size_gb value required)] [total] norevert ok),
            ),
        ];
        assert_errors(
            "flow Backup(requested: u32) {
                graph [ measure, backup, verify, report, tally, measure -> backup if big_enough, backup -> verify if worth ]
            }",
            &known,
            &[
                ("verify", "step `verify` reads `backup_id` from step `backup`, which a decider may skip while `verify` still runs: take it as `Option<T>` (or `Option<&T>`)"),
                ("worth", "the decider of link `backup -> verify` reads `backup_id` from step `backup`, which a decider may skip: take it as `Option<T>` (or `Option<&T>`)"),
            ],
        );
    }

    #[test]
    fn value_skipped_with_its_producers_producer() {
        let known = [
            task("measure", &["requested"], &["size_gb"]),
            task("big_enough", &[], &[]),
            task("backup", &["size_gb"], &["backup_id"]),
            task("archive", &["backup_id"], &["archived"]),
            task("summary", &["archived", "size_gb"], &["summary"]),
            meta(
                quote!(task count public sync infallible [(archived optref required) (size_gb value required)] [n] norevert ok),
            ),
        ];
        assert_errors(
            "flow Backup(requested: u32) -> (summary, n, archived) {
                graph [ measure, backup, archive, summary, count, measure -> backup if big_enough ]
            }",
            &known,
            &[
                ("summary", "step `summary` reads `archived` from step `archive`, which a decider may skip while `summary` still runs: take it as `Option<T>` (or `Option<&T>`)"),
            ],
        );
    }

    #[test]
    fn unused_flow_input() {
        assert_errors(
            "flow Boot(image: String, flavor: u32, zone: String, size_gb: u32) -> (size_gb) {
                linear [ launch_server ]
            }",
            &servers(),
            &[
                ("zone", "unused flow input: no step of flow `Boot` reads `zone`; remove it, or rebind a parameter to it"),
            ],
        );
        // A mistaken rebinding or `ParameterizedForEach` counts as reading the name it meant.
        assert_errors(
            "flow F(server_id: u64, amount: u32, sizes: Vec<u32>) {
                retry(ParameterizedForEach(sizs) -> x) linear [ attach_volume(sise_gb = amount) ]
            }",
            &servers(),
            &[
                ("sise_gb", "task `attach_volume` has no parameter `sise_gb` to rebind; did you mean `size_gb`?"),
                ("sizs", "`ParameterizedForEach(sizs)` iterates `sizs`, but nothing provides it before this `retry`; did you mean `sizes`?"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32, extra: u32) { linear [ create_volume(disk = extra) ] }",
            &servers(),
            &[
                ("disk", "task `create_volume` has no parameter `disk` to rebind; its parameters are `size_gb`"),
            ],
        );
    }

    #[test]
    fn flow_outputs() {
        assert_errors(
            "flow F(size_gb: u32) -> (volume_id, volume_id, volum_id, ip, volume_id, size_gb) { linear [ create_volume ] }",
            &servers(),
            &[
                ("volume_id", "flow output `volume_id` is listed twice"),
                ("volum_id", "flow `F` outputs `volum_id`, but no input or step provides it; did you mean `volume_id`?"),
                ("ip", "flow `F` outputs `ip`, but no input or step provides it; add a step that provides it, or remove it from the outputs"),
                ("volume_id", "flow output `volume_id` is listed twice"),
            ],
        );
    }

    #[test]
    fn pub_flow_untyped_output_of_private_step() {
        let known = [
            meta(quote!(task secret private sync infallible [] [token] norevert ok)),
            meta(quote!(task internal restricted sync infallible [] [key] norevert ok)),
            meta(quote!(flow Hidden private sync infallible [] [code] norevert ok)),
        ];
        assert_errors(
            "pub flow F() -> (token, key, code, typed: u32) {
                linear [ secret, internal, Hidden, secret -> typed as again ]
            }",
            &known,
            &[
                ("token", "flow `F` is more visible than task `secret` (step `secret`), which provides `token`, so its output type cannot be named through it: write the type, e.g. `token: Type`"),
                ("key", "flow `F` is more visible than task `internal` (step `internal`), which provides `key`, so its output type cannot be named through it: write the type, e.g. `key: Type`"),
                ("code", "flow `F` is more visible than flow `Hidden` (step `Hidden`), which provides `code`, so its output type cannot be named through it: write the type, e.g. `code: Type`"),
            ],
        );
        assert_errors(
            "pub(crate) flow F() -> (token, key) { linear [ secret, internal ] }",
            &known,
            &[
                ("token", "flow `F` is more visible than task `secret` (step `secret`), which provides `token`, so its output type cannot be named through it: write the type, e.g. `token: Type`"),
            ],
        );
    }

    #[test]
    fn errors_are_reported_in_written_order_within_each_stage() {
        assert_errors(
            "flow F(image: String, size_gb: u32, sizes: Vec<u32>) -> (nowhere) {
                linear [
                    create_volume -> (a, b),
                    launch_server(flavour = size_gb),
                    boot(server_id = missing),
                    retry(ParameterizedForEach(sizs) -> s) graph [
                        attach_volume(size_gb = gone), notify, attach_volume -> notify if decide,
                    ],
                    boot(server_id = lost) -> ip_again as again,
                ]
            }",
            &[servers(), vec![task("decide", &["verdict"], &[])]].concat(),
            &[
                ("a", "task `create_volume` provides 1 value (`volume_id`), but `->` names 2"),
                ("flavour", "task `launch_server` has no parameter `flavour` to rebind; did you mean `flavor`?"),
                ("missing", "unbound input: step `boot` requires `missing` (for its parameter `server_id`), but nothing provides it before the step runs; add `missing` to the flow's inputs, add a step that provides it, or rebind the parameter with `boot(server_id = other_name)`"),
                ("sizs", "`ParameterizedForEach(sizs)` iterates `sizs`, but nothing provides it before this `retry`; did you mean `sizes`?"),
                ("gone", "unbound input: step `attach_volume` requires `gone` (for its parameter `size_gb`), but nothing provides it before the step runs; add `gone` to the flow's inputs, add a step that provides it, or rebind the parameter with `attach_volume(size_gb = other_name)`"),
                ("decide", "decider of link `attach_volume -> notify` requires `verdict`, which is not provided before step `notify`; a decider reads what the step it guards could read"),
                ("lost", "unbound input: step `again` requires `lost` (for its parameter `server_id`), but nothing provides it before the step runs; add `lost` to the flow's inputs, add a step that provides it, or rebind the parameter with `again(server_id = other_name)`"),
                ("nowhere", "flow `F` outputs `nowhere`, but no input or step provides it; add a step that provides it, or remove it from the outputs"),
            ],
        );
    }

    #[test]
    fn empty_patterns() {
        assert_errors(
            "flow Nothing() { linear [] }",
            &servers(),
            &[
                ("linear []", "flow `Nothing` has no steps: a flow runs at least one; add a step to its `linear [ .. ]`"),
            ],
        );
        assert_errors(
            "flow Nothing() { retry(Times(2)) graph [ ] }",
            &servers(),
            &[
                ("graph [ ]", "flow `Nothing` has no steps: a flow runs at least one; add a step to its `graph [ .. ]`"),
            ],
        );
        // Nested, each empty pattern once (a pattern holding only empty ones is not empty).
        assert_errors(
            "flow F() { graph [ notify, linear [ unordered [], retry(Times(2)) graph [] ] ] }",
            &servers(),
            &[
                ("unordered []", "empty `unordered []`: a pattern holds at least one step; add one, or remove the `unordered`"),
                ("graph []", "empty `graph []`: a pattern holds at least one step; add one, or remove the `graph` and its `retry`"),
            ],
        );
    }

    #[test]
    fn links_outside_a_graph() {
        let known: Vec<StepMeta> = servers()
            .into_iter()
            .chain([task("decide", &[], &[])])
            .collect();
        assert_errors(
            "flow F(size_gb: u32) { linear [ create_volume, notify, create_volume -> notify ] }",
            &known,
            &[
                ("create_volume -> notify", "link `create_volume -> notify` in a `linear`: links belong in a `graph`, and this `linear` runs `create_volume` before `notify` already: remove the link"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) { linear [ unordered [ create_volume, notify ], notify -> create_volume ] }",
            &known,
            &[
                ("notify -> create_volume", "link `notify -> create_volume` in a `linear`: links belong in a `graph`; a `linear` runs its steps in written order: reorder them and remove the link, or make this a `graph [ .. ]`"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) { unordered [ create_volume, notify, create_volume -> notify ] }",
            &known,
            &[
                ("create_volume -> notify", "link `create_volume -> notify` in an `unordered`: links belong in a `graph`; the members of an `unordered` are independent: make this a `graph [ .. ]` to order them"),
            ],
        );
        assert_errors(
            "flow F(size_gb: u32) { linear [ create_volume, notify, create_volume -> notify if decide ] }",
            &known,
            &[
                ("create_volume -> notify", "link `create_volume -> notify` in a `linear`: links belong in a `graph`, and a decider guards a link of a graph: make this a `graph [ .. ]`"),
            ],
        );
        // Not a link: `create_volume` again (a second step of that name), its output renamed.
        assert_errors(
            "flow F(size_gb: u32) { linear [ create_volume, create_volume -> v2 ] }",
            &known,
            &[
                ("create_volume", "two steps are named `create_volume`: give this one its own name, e.g. `create_volume as create_volume_2`"),
            ],
        );
    }

    /// The errors of the check `flow!` runs before it collects any metadata.
    fn name_errors(src: &str) -> Vec<(String, String)> {
        let def = flow(src);
        let mut cx = Ctxt::default();
        super::check_flow_name(&def, &mut cx);
        cx.into_spanned_messages()
    }

    #[test]
    fn flow_named_like_its_step() {
        assert_eq!(
            name_errors("flow build(source: String) { linear [ fetch, build, build as again ] }"),
            [(
                "build".to_owned(),
                "flow `build` has the name of its step `build`: a flow cannot share its name with a task it runs; rename the flow, e.g. `flow Build`, or the task".to_owned()
            )]
        );
        assert_eq!(
            name_errors("flow deploy_app() { linear [ self::deploy_app ] }"),
            [(
                "deploy_app".to_owned(),
                "flow `deploy_app` has the name of its step `deploy_app`: a flow cannot share its name with a task it runs; rename the flow, e.g. `flow DeployApp`, or the task".to_owned()
            )]
        );
        assert_eq!(
            name_errors("flow may_run() { graph [ a, b, a -> b if may_run ] }"),
            [(
                "may_run".to_owned(),
                "flow `may_run` has the name of its decider `may_run`: a flow cannot share its name with a task it runs; rename the flow, e.g. `flow MayRun`, or the task".to_owned()
            )]
        );
        // A camel-case name is likely the flow itself: on the step.
        assert_eq!(
            name_errors("flow Inner() { linear [ fetch, self::Inner ] }"),
            [(
                "self::Inner".to_owned(),
                "flow `Inner` lists itself as a step: a flow cannot run itself (nor share its name with a task it runs); remove this step, or rename the flow or the task".to_owned()
            )]
        );
        // A task of that name in another module, or a label of that name, clashes with nothing.
        assert_eq!(
            name_errors("flow build() { linear [ tools::build, fetch as build ] }"),
            []
        );
    }

    #[test]
    fn flow_name_suggestions() {
        assert_eq!(super::flow_name_like("build"), "Build");
        assert_eq!(super::flow_name_like("deploy_app"), "DeployApp");
        assert_eq!(super::flow_name_like("_x__y"), "XY");
        assert_eq!(super::flow_name_like("Build"), "BuildFlow");
    }

    #[test]
    fn a_flow_input_only_a_decider_reads_is_used() {
        let known = [
            task("measure", &["requested"], &["size_gb"]),
            meta(
                quote!(task allowed public sync infallible [(backups_on ref required)] [] norevert ok),
            ),
            task("backup", &["size_gb"], &["backup_id"]),
        ];
        assert_errors(
            "flow Backup(requested: u32, backups_on: bool) -> (backup_id) {
                graph [ measure, backup, measure -> backup if allowed ]
            }",
            &known,
            &[],
        );
        // Read by nothing at all, it is still unused.
        assert_errors(
            "flow Backup(requested: u32, backups_on: bool, other: u32) -> (backup_id) {
                graph [ measure, backup, measure -> backup if allowed ]
            }",
            &known,
            &[
                ("other", "unused flow input: no step of flow `Backup` reads `other`; remove it, or rebind a parameter to it"),
            ],
        );
    }
}
