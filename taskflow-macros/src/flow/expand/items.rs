//! The items a flow adds to the user's module, outside the `const _` block: the flow's unit
//! struct, its `…Inputs` and `…Outputs` structs, and its collector macro (so it can be a step of
//! another flow). The fallback emits them too.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::super::parse::FlowDef;
use crate::meta::{ParamMeta, StepKind, StepMeta, VisRank};

pub fn inputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Inputs", def.name), def.name.span())
}

pub fn outputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Outputs", def.name), def.name.span())
}

/// `struct Name;`, with the flow's attributes (its doc comments).
pub fn flow_struct(def: &FlowDef) -> TokenStream {
    let (attrs, vis, name) = (&def.attrs, &def.vis, &def.name);
    quote! {
        #(#attrs)*
        #vis struct #name;
    }
}

pub fn inputs_struct(def: &FlowDef) -> TokenStream {
    let vis = &def.vis;
    let name = &def.name;
    let ident = inputs_ident(def);
    let fields = def.inputs.iter().map(|(n, t)| quote!(pub #n: #t));
    let doc = format!("The inputs of flow [`{name}`].");
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis struct #ident { #(#fields,)* }
    }
}

/// `…Outputs` with the given fields (`pub name: Type`).
pub fn outputs_struct(def: &FlowDef, fields: &[TokenStream], derive_debug: bool) -> TokenStream {
    let vis = &def.vis;
    let ident = outputs_ident(def);
    let doc = format!("The outputs of flow [`{}`].", def.name);
    let derive = if derive_debug {
        quote!(#[derive(Debug)])
    } else {
        quote!(#[allow(dead_code)])
    };
    quote! {
        #[doc = #doc]
        #derive
        #vis struct #ident { #(#fields,)* }
    }
}

fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// The flow's collector, aliased under the flow's own name, so it can be a step of another flow.
/// A `broken` flow (one `flow!` reported errors for) says so, and a flow using it adds no error.
pub fn collector(def: &FlowDef, broken: bool) -> TokenStream {
    let name = &def.name;
    let vis = &def.vis;
    let meta = StepMeta {
        kind: StepKind::Flow,
        name: name.to_string(),
        vis: VisRank::of(vis),
        is_async: true,
        fallible: true,
        params: def
            .inputs
            .iter()
            .map(|(n, ty)| ParamMeta {
                name: n.to_string(),
                by_ref: false,
                static_ref: false,
                default: false,
                ctx: false,
                optional: is_option(ty),
            })
            .collect(),
        provides: def.outputs.iter().map(ToString::to_string).collect(),
        has_revert: false,
        sync_hook: false,
        broken,
    }
    .to_tokens();
    crate::task::collector_items("__taskflow_meta_flow", name, vis, &meta, false)
}
