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
    let (steps, edges, scopes, guarded) = match a {
        Some((a, pos)) => parts(a, pos),
        None => Default::default(),
    };
    let (inputs, input_types, outputs): (Vec<String>, Vec<String>, Vec<String>) = match a {
        Some(_) => (
            def.inputs.iter().map(|(n, _)| n.to_string()).collect(),
            def.inputs
                .iter()
                .map(|(_, ty)| crate::type_text::normalized(&quote!(#ty)))
                .collect(),
            def.outputs.iter().map(ToString::to_string).collect(),
        ),
        None => Default::default(),
    };
    let scopes = (!scopes.is_empty()).then(|| quote!(.__scopes(&[#(#scopes),*])));
    let guarded = (!guarded.is_empty()).then(|| quote!(.__guarded(&[#(#guarded),*])));
    quote! {
        static __GRAPH: __tf::FlowGraph = __tf::FlowGraph::__new(
            #name,
            &[#(#inputs),*],
            &[#(#input_types),*],
            &[#(#outputs),*],
            &[#(#steps),*],
            &[#(#edges),*],
        ) #scopes #guarded;

        #[allow(dead_code)]
        impl #flow {
            /// The flow's structure: steps, names and edges (see `FlowGraph::to_dot`).
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
            // Its name (unless labelled otherwise), how it runs, whether its hook is sync and its
            // stored types come from the task (or the sub-flow) itself.
            let kind = match step.meta.kind {
                StepKind::Task if step.map_item.is_some() => quote!(map),
                StepKind::Task => quote!(task),
                StepKind::Flow => quote!(subflow),
            };
            let named = (*label != step.meta.name).then(|| quote!(.__named(#label)));
            quote!(__tf::#kind::<#path>(&[#(#reads),*], &[#(#writes),*]) #named)
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
