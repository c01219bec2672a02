//! Test helpers: a flow and its steps' metadata built from source text, as `flow!` and the steps'
//! collector macros hand them to `__flow_impl`, so the stages run without rustc.

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::{format_ident, quote};

use super::parse::FlowDef;
use crate::meta::StepMeta;

/// Parsed from a string rather than built with `quote!`, so spans carry the source text they
/// cover and tests can tell which token an error points at.
pub fn flow(src: &str) -> FlowDef {
    let tokens: TokenStream = src.parse().expect("flow tokens");
    syn::parse2(tokens).expect("a flow")
}

/// Metadata in the format the collectors carry, e.g.
/// `meta(quote!(task check public sync infallible [(size_gb optref required)] [] norevert ok))`.
pub fn meta(tokens: TokenStream) -> StepMeta {
    StepMeta::parse(&Group::new(Delimiter::Brace, tokens)).expect("step metadata")
}

/// A public sync infallible task whose parameters are all taken by value and required.
pub fn task(name: &str, params: &[&str], provides: &[&str]) -> StepMeta {
    let name = format_ident!("{name}");
    let params = params.iter().map(|p| format_ident!("{p}"));
    let provides = provides.iter().map(|p| format_ident!("{p}"));
    meta(
        quote!(task #name public sync infallible [ #((#params value required))* ] [ #(#provides)* ] norevert ok),
    )
}

/// The metadata of `def`'s steps and of its deciders, looked up in `known` by the last segment
/// of each path, in the order the collector chain delivers them.
pub fn metas(def: &FlowDef, known: &[StepMeta]) -> (Vec<StepMeta>, Vec<StepMeta>) {
    let find = |path: &syn::Path| {
        let name = path.segments.last().unwrap().ident.to_string();
        known
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metadata for `{name}`"))
            .clone()
    };
    let steps = def
        .body
        .steps()
        .into_iter()
        .map(|s| find(&s.path))
        .collect();
    let deciders = def
        .body
        .deciders()
        .into_iter()
        .filter_map(|l| l.decider.as_ref())
        .map(find)
        .collect();
    (steps, deciders)
}
