//! The flow's structure as data: the `FlowGraph` static that `Flow::graph` returns — steps in run
//! order, what each reads and provides, edges, retry scopes and the steps deciders guard — and
//! `Name::graph()`, which needs no trait in scope.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::super::graph::Analysis;
use super::super::parse::FlowDef;
use crate::meta::StepKind;

/// The static; `None` for a flow `flow!` reported errors for (its graph is empty).
/// `more` goes in the same `impl Name` block as `graph()`.
pub fn graph_static(
    def: &FlowDef,
    a: Option<(&Analysis, &[usize])>,
    more: TokenStream,
) -> TokenStream {
    let flow = &def.name;
    let name = flow.to_string();
    let inputs = def.inputs.iter().map(|(n, _)| n.to_string());
    let outputs = def.outputs.iter().map(ToString::to_string);
    let (steps, edges, scopes, guarded) = match a {
        Some((a, pos)) => parts(a, pos),
        None => Default::default(),
    };
    let (inputs, outputs): (Vec<String>, Vec<String>) = match a {
        Some(_) => (inputs.collect(), outputs.collect()),
        None => Default::default(),
    };
    quote! {
        static __GRAPH: __tf::FlowGraph = __tf::FlowGraph::__new(
            #name,
            &[#(#inputs),*],
            &[#(#outputs),*],
            &[#(#steps),*],
            &[#(#edges),*],
            &[#(#scopes),*],
            &[#(#guarded),*],
        );

        impl #flow {
            /// The flow's structure: steps, names and edges (see `FlowGraph::to_dot`).
            #[allow(dead_code)]
            pub fn graph() -> &'static __tf::FlowGraph {
                &__GRAPH
            }

            #more
        }
    }
}

type Parts = (
    Vec<TokenStream>,
    Vec<TokenStream>,
    Vec<TokenStream>,
    Vec<Literal>,
);

fn parts(a: &Analysis, pos: &[usize]) -> Parts {
    let steps = a
        .order
        .iter()
        .map(|&s| {
            let step = &a.steps[s];
            let label = &step.label;
            let reads = step
                .reads
                .iter()
                .zip(&step.meta.params)
                .filter(|(_, p)| !p.ctx)
                .map(|(r, _)| r);
            let writes = step.writes.iter();
            let path = &step.r.path;
            let (exec, sub) = match (step.meta.kind, step.meta.is_async) {
                // A map step waits for its items, which the engine runs: never on a worker itself.
                (StepKind::Task, false) if step.map_item.is_none() => (quote!(Sync), quote!(__tf::None)),
                (StepKind::Task, _) => (quote!(Async), quote!(__tf::None)),
                (StepKind::Flow, _) => (
                    quote!(Flow),
                    quote!(__tf::Some(<#path as __tf::Flow>::graph)),
                ),
            };
            let sync_hook = step.meta.sync_hook;
            quote!(__tf::StepInfo::__new(#label, __tf::Exec::#exec, &[#(#reads),*], &[#(#writes),*], #sub, #sync_hook))
        })
        .collect();
    let edges = a
        .edges
        .iter()
        .map(|&(f, t)| {
            let (f, t) = (index(pos[f]), index(pos[t]));
            quote!((#f, #t))
        })
        .collect();
    let scopes = a
        .scopes
        .iter()
        .enumerate()
        .map(|(i, scope)| {
            let parent = match scope.parent {
                Some(p) => {
                    let p = index(p);
                    quote!(__tf::Some(#p))
                }
                None => quote!(__tf::None),
            };
            let mut steps: Vec<usize> = a.scope_steps(i).into_iter().map(|s| pos[s]).collect();
            steps.sort_unstable();
            let steps = steps.into_iter().map(index);
            quote!(__tf::ScopeInfo::__new(#parent, &[#(#steps),*]))
        })
        .collect();
    let mut guarded: Vec<usize> = a
        .deciders
        .iter()
        .filter_map(|d| d.to)
        .map(|s| pos[s])
        .collect();
    guarded.sort_unstable();
    guarded.dedup();
    (
        steps,
        edges,
        scopes,
        guarded.into_iter().map(index).collect(),
    )
}

/// A step or scope index as generated code writes it (`3`, not `3usize`).
pub fn index(i: usize) -> Literal {
    Literal::usize_unsuffixed(i)
}
