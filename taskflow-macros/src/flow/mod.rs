//! `flow!`: collect every step's metadata through the steps' collector macros, then check the
//! wiring and emit the static executor.
//!
//! A proc macro cannot read other items, so `flow!` (the entry) only parses the flow, finds the
//! step paths and starts a chain of collector calls; the end of the chain, `flow!` again (with
//! the metadata in front), holds every step's metadata and runs the stages (`expand_impl`): the
//! metadata read, bind, check, expand — each stage using only what the ones before it produced.
//! Each hop of a chain is one level of macro expansion, so steps are collected in chunks of [`CHUNK`]: each chunk's chain ends by defining a
//! collector macro for the whole chunk, and a last chain through those chunk collectors reaches
//! the end. A 500-step flow thus nests about `CHUNK + 500 / CHUNK` levels deep, well inside
//! rustc's default recursion limit of 128.

mod bind;
mod check;
mod expand;
mod graph;
mod parse;
mod suggest;
#[cfg(test)]
mod testing;

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::ctxt::Ctxt;
use crate::meta::{self, StepKind, StepMeta};

pub use parse::FlowDef;

/// Steps collected per chain.
const CHUNK: usize = 64;

pub fn expand_entry(input: TokenStream) -> TokenStream {
    // The end of the chain calls `flow!` again, with what it collected in front of the flow
    // (`[ ] [ metadata… ] flow…`): a flow as written starts with `flow`, `pub` or an attribute,
    // never with a `[..]`. Calling `::taskflow::flow` rather than a hidden macro is for rustc's
    // note under an error in the expansion, which names the macro by the path it was called by.
    let collected = matches!(
        input.clone().into_iter().next(),
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket && g.stream().is_empty()
    );
    if collected {
        return expand_impl(input);
    }
    let def: FlowDef = match syn::parse2(input.clone()) {
        Ok(def) => def,
        Err(e) => return e.to_compile_error(),
    };
    // A flow named like one of its steps would call its own name's collector below: say so
    // instead. Nothing else is emitted, since every item of the flow would clash too (so a use of
    // the flow elsewhere names the task).
    let mut cx = Ctxt::default();
    check::check_flow_name(&def, &mut cx);
    let name_clash = cx.into_compile_errors();
    if !name_clash.is_empty() {
        return name_clash;
    }
    // Every path whose collector the chain calls: the steps, then the deciders of links.
    let steps: Vec<&syn::Path> = def
        .body
        .steps()
        .into_iter()
        .map(|s| &s.path)
        .chain(
            def.body
                .deciders()
                .into_iter()
                .filter_map(|l| l.decider.as_ref()),
        )
        .collect();
    let paths = |steps: &[&syn::Path]| -> Vec<TokenStream> {
        steps.iter().map(|path| quote!({ #path })).collect()
    };
    let Some(first) = steps.first() else {
        return quote!(::taskflow::flow! { [ ] [ ] #input });
    };
    if steps.len() <= CHUNK {
        // One chain: no chunk collectors, so a step that is not a task costs one error, not two.
        let rest = paths(&steps[1..]);
        return quote!(#first! { [ #(#rest)* { ::taskflow::flow } ] [ ] #input });
    }
    let mut out = TokenStream::new();
    let mut chunk_names = Vec::new();
    for (i, chunk) in steps.chunks(CHUNK).enumerate() {
        let chunk_name = format_ident!(
            "__taskflow_chunk_{}_{}",
            def.name,
            i,
            span = Span::call_site()
        );
        let first = chunk[0];
        let rest = paths(&chunk[1..]);
        out.extend(quote!(#first! { [ #(#rest)* { ::taskflow::__private::__define_chunk } ] [ ] { #chunk_name } }));
        chunk_names.push(chunk_name);
    }
    let first = &chunk_names[0];
    let rest = chunk_names[1..].iter().map(|n| quote!({ #n }));
    out.extend(quote! {
        #first! { [ #(#rest)* { ::taskflow::flow } ] [ ] #input }
    });
    out
}

/// End of a chunk's chain: `[ ] [ metadata… ] { name }` defines collector `name` for the chunk.
pub fn define_chunk(input: TokenStream) -> TokenStream {
    let Some((metas, payload)) = meta::split_collected(input) else {
        return quote!(::core::compile_error!("taskflow internal error: malformed chunk"););
    };
    let name = match payload.into_iter().next() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
            match g.stream().into_iter().next() {
                Some(TokenTree::Ident(name)) => name,
                _ => {
                    return quote!(::core::compile_error!("taskflow internal error: malformed chunk name");)
                }
            }
        }
        _ => {
            return quote!(::core::compile_error!("taskflow internal error: malformed chunk name");)
        }
    };
    let acc: TokenStream = metas.into_iter().map(TokenTree::Group).collect();
    let chunk = meta::collector_macro(&Ident::new(&name.to_string(), name.span()), &acc, false);
    quote!(#[allow(unused_macros)] #chunk)
}

/// End of the flow's chain: `[ ] [ metadata… ] flow…`. The pipeline: parse the flow and each
/// step's metadata, bind (the IR), check (every rule), expand — or, on errors, the errors and the
/// fallback.
pub fn expand_impl(input: TokenStream) -> TokenStream {
    let Some((groups, payload)) = meta::split_collected(input) else {
        return quote!(::core::compile_error!("taskflow internal error: malformed flow hand-off"););
    };
    let def: FlowDef = match syn::parse2(payload) {
        Ok(def) => def,
        Err(e) => return e.to_compile_error(),
    };
    let steps = def.body.steps();
    let deciders = def.body.deciders();
    // The collectors deliver the steps' metadata, then the deciders', in this order.
    let paths: Vec<&syn::Path> = steps
        .iter()
        .map(|s| &s.path)
        .chain(deciders.iter().filter_map(|l| l.decider.as_ref()))
        .collect();
    if paths.len() != groups.len() {
        let error = quote!(::core::compile_error!("taskflow internal error: a step's metadata went missing"););
        return expand::fallback(&def, error);
    }
    let metas: Vec<Option<StepMeta>> = groups.iter().map(StepMeta::parse).collect();
    let mut cx = Ctxt::default();
    check::check_metadata(&paths, &metas, &mut cx);
    if cx.has_errors() {
        return expand::fallback(&def, cx.into_compile_errors());
    }
    let mut metas: Vec<StepMeta> = metas.into_iter().flatten().collect();
    // A task that failed its own checks has reported why, and its metadata is not known: this
    // flow's wiring through it cannot be checked, and it adds no error of its own.
    if metas.iter().any(|m| m.broken && m.kind == StepKind::Task) {
        return expand::fallback(&def, cx.into_compile_errors());
    }
    // A sub-flow that failed its own checks has reported why; check this flow's wiring all the
    // same, but emit no executor over it.
    let sub_broken = metas.iter().any(|m| m.broken);
    let decider_metas = metas.split_off(steps.len());
    let analysis = bind::bind(&def, metas, decider_metas);
    check::check(&def, &analysis, &mut cx);
    let errors = cx.into_compile_errors();
    if !errors.is_empty() || sub_broken {
        return expand::fallback(&def, errors);
    }
    let out = expand::expand(&def, &analysis);
    if std::env::var_os("TASKFLOW_DEBUG_EXPAND").is_some() {
        eprintln!("// flow! expansion of `{}`\n{out}", def.name);
    }
    out
}
