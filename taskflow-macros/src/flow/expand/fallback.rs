//! What `flow!` emits when it reported errors: the errors, plus the flow's types and a `Flow` impl
//! that is never run (the build fails), so code that uses the flow adds no cascade of unrelated
//! errors. The impls define no hidden method: the traits' defaults are a flow without an executor.

use proc_macro2::TokenStream;
use quote::quote;

use super::super::parse::FlowDef;
use super::items::{
    collector, flow_struct, inputs_ident, inputs_struct, outputs_ident, outputs_struct,
};
use super::structure::graph_static;

pub fn fallback(def: &FlowDef, errors: TokenStream) -> TokenStream {
    let name = &def.name;
    let (inputs_ty, outputs_ty) = (inputs_ident(def), outputs_ident(def));
    // Only the outputs whose type is written can be fields.
    let typed_outputs: Vec<TokenStream> = def
        .outputs
        .iter()
        .zip(&def.output_types)
        .filter_map(|(o, t)| t.as_ref().map(|t| quote!(pub #o: #t)))
        .collect();
    let flow_struct = flow_struct(def);
    let inputs = inputs_struct(def);
    let outputs = outputs_struct(def, &typed_outputs, false);
    let collector = collector(def, true);
    let graph = graph_static(def, None, TokenStream::new());
    quote! {
        #errors
        #collector
        #flow_struct
        #inputs
        #outputs
        const _: () = {
            use ::taskflow::__private as __tf;
            #graph
            impl __tf::Flow for #name {
                type Inputs = #inputs_ty;
                type Outputs = #outputs_ty;
                type Values = ();
                type Done = ();
                const __GRAPH: &'static __tf::FlowGraph = &__GRAPH;
            }
            impl __tf::DurableFlow for #name {}
        };
    }
}
