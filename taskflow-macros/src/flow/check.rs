//! The wiring checks of `flow!`, one `check_*`/`report_*` function per rule. Each pushes a spanned
//! error naming the step and the name at fault, and says how to fix it.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::graph::{step_span, Analysis, Slot, Source, Step};
use super::parse::FlowDef;
use crate::ctxt::Ctxt;
use crate::meta::{StepKind, VisRank};

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

/// Two steps with the same name could not be told apart in links, errors and the store.
pub fn check_labels(steps: &[Step], cx: &mut Ctxt) {
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
pub fn resolve_binds(step: &mut Step, cx: &mut Ctxt) {
    step.reads = step.meta.params.iter().map(|p| p.name.clone()).collect();
    let mut bound = HashSet::new();
    for (param, name) in &step.r.binds {
        let param_s = param.to_string();
        if !bound.insert(param_s.clone()) {
            cx.error(
                param.span(),
                format!(
                    "parameter `{param_s}` of step `{}` is rebound twice",
                    step.label
                ),
            );
            continue;
        }
        match step.meta.params.iter().position(|p| p.name == param_s) {
            Some(i) => step.reads[i] = name.to_string(),
            None => {
                let params: Vec<&str> = step.meta.params.iter().map(|p| p.name.as_str()).collect();
                let suggestion = closest(&param_s, params.iter().copied()).map(str::to_owned);
                let hint = match &suggestion {
                    Some(c) => format!("; did you mean `{c}`?"),
                    None if params.is_empty() => "; it takes no parameters".to_owned(),
                    None => format!("; its parameters are {}", quoted(&params)),
                };
                // Read the binding as the suggested one, so this mistake is reported once.
                if let Some(i) =
                    suggestion.and_then(|c| step.meta.params.iter().position(|p| p.name == c))
                {
                    step.reads[i] = name.to_string();
                } else {
                    step.extra_reads.push(name.to_string());
                }
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

/// `map task over values`: a task with exactly one output, which becomes a `Vec`.
pub fn check_map(step: &Step, cx: &mut Ctxt) {
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

/// `step -> name` / `step -> (a, b)`: one new name per output.
pub fn resolve_renames(step: &mut Step, cx: &mut Ctxt) {
    step.writes = step.meta.provides.clone();
    if let Some(renames) = &step.r.renames {
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
        // Keep the names the user wrote either way, so later checks do not report them again.
        step.writes = renames.iter().map(ToString::to_string).collect();
    }
}

pub fn check_duplicate_inputs(def: &FlowDef, cx: &mut Ctxt) {
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
pub fn check_ambiguous(def: &FlowDef, steps: &[Step], slots: &[Slot], cx: &mut Ctxt) {
    let mut first: HashMap<&str, &Slot> = HashMap::new();
    for slot in slots {
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
            Source::Default { .. } | Source::RetryItem { .. } => {
                unreachable!("added after this check")
            }
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

/// A parameter reads a name that nothing surely provides before its step.
pub fn report_unbound(
    a: &Analysis,
    s: usize,
    p: usize,
    name: &str,
    avail: &BTreeSet<String>,
    unordered_siblings: &HashMap<String, String>,
    cx: &mut Ctxt,
) {
    let step = &a.steps[s];
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
    if let Some(provider) = unordered_siblings.get(name) {
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
    let hint = match later {
        Some(other) if other.label == step.label => format!(
            "; the step provides `{name}` itself, so it cannot also read it: rebind the parameter, e.g. `{}({param} = other_name)`",
            step.label
        ),
        Some(other) => format!(
            "; it is provided by step `{}`, which does not run before `{}`: move `{}` earlier, or order the two in a `linear` or `graph`",
            other.label, step.label, other.label
        ),
        None => {
            let mut known: Vec<&str> = avail.iter().map(String::as_str).collect();
            known.extend(a.steps.iter().flat_map(|o| o.writes.iter().map(String::as_str)));
            match closest(name, known.into_iter()) {
                Some(c) => format!(
                    "; did you mean `{c}`? (rebind with `{}({param} = {c})`)",
                    step.label
                ),
                None => format!(
                    "; add `{name}` to the flow's inputs, add a step that provides it, or rebind the parameter with `{}({param} = other_name)`",
                    step.label
                ),
            }
        }
    };
    cx.error(
        span,
        format!(
            "unbound input: step `{}` requires {reading}, but nothing provides it before the step runs{hint}",
            step.label
        ),
    );
}

/// A link `a -> b` whose `b` is not a step of the graph.
pub fn report_bad_link(
    a: &Analysis,
    graph_steps: &[usize],
    link: &super::parse::Link,
    cx: &mut Ctxt,
) {
    let labels = graph_steps.iter().map(|&s| a.steps[s].label.as_str());
    let to = link.to.to_string();
    let hint = match closest(&to, labels.clone()) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!("; the steps of this graph are {}", quoted(labels)),
    };
    cx.error(
        link.to.span(),
        format!(
            "link `{} -> {to}`: this graph has no step named `{to}`{hint}",
            link.from
        ),
    );
}

pub fn report_cycle(a: &Analysis, cycle: &[usize], cx: &mut Ctxt) {
    let mut path: Vec<&str> = cycle.iter().map(|&s| a.steps[s].label.as_str()).collect();
    path.push(path[0]);
    let text = path
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(" -> ");
    for (i, &s) in cycle.iter().enumerate() {
        cx.error(
            step_span(&a.steps[s]),
            format!(
                "cycle ({}/{}): {text}; a graph must be acyclic: remove a link, or rebind a parameter so a step no longer reads what a later one provides",
                i + 1,
                cycle.len()
            ),
        );
    }
}

/// Every flow input is read; every flow output is provided.
pub fn check_flow_io(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
    for (i, (name, _)) in def.inputs.iter().enumerate() {
        let read = a.steps.iter().any(|s| {
            s.args
                .iter()
                .flatten()
                .any(|&slot| a.slots[slot].source == Source::Input(i))
        }) || a
            .steps
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
    let mut seen = HashSet::new();
    for out in &def.outputs {
        let out_s = out.to_string();
        if !seen.insert(out_s.clone()) {
            cx.error(out.span(), format!("flow output `{out_s}` is listed twice"));
            continue;
        }
        if a.slot_of(&out_s).is_none() {
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
    }
}

/// A `pub` flow names each output's type in public items; an output without a written type is
/// named through the step that provides it, which must then be at least as visible as the flow.
pub fn check_output_types(def: &FlowDef, a: &Analysis, cx: &mut Ctxt) {
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

/// A decider is a sync `#[task]` returning `bool` that provides nothing.
pub fn check_decider(d: &super::graph::Decider, cx: &mut Ctxt) {
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

/// A decider reads a name that is not available to the step it guards.
pub fn report_decider_unbound(a: &Analysis, d: usize, to: usize, name: &str, cx: &mut Ctxt) {
    let decider = &a.deciders[d];
    let path = decider.link.decider.as_ref().expect("a decider link");
    cx.error_spanned(
        path,
        format!(
            "decider of link `{} -> {}` requires `{name}`, which is not provided before step `{}`; a decider reads what the step it guards could read",
            decider.link.from, decider.link.to, a.steps[to].label
        ),
    );
}

/// A value that a decider may skip can only be read as an `Option` — by a step that could run
/// without it. A step that is skipped whenever the value's producer is (it depends on nothing
/// else) may read it plainly.
pub fn check_skippable_reads(a: &Analysis, cx: &mut Ctxt) {
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
pub fn check_skippable_decider_reads(a: &Analysis, cx: &mut Ctxt) {
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
    super::graph::spread_skips(a, &mut with);
    with
}

/// The closest name within a small edit distance, for "did you mean" hints.
pub fn closest<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .filter(|c| *c != name)
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment), so
/// `imgae` is one typo away from `image`.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let names = ["server_id", "volume_id", "image"];
        assert_eq!(
            closest("server_ids", names.iter().copied()),
            Some("server_id")
        );
        assert_eq!(closest("imgae", names.iter().copied()), Some("image"));
        assert_eq!(closest("flavor", names.iter().copied()), None);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
        assert_eq!(levenshtein("imgae", "image"), 1);
    }
}
