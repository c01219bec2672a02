//! Stage 4, expand: the items of a checked flow. Outside a `const _` block, the flow's types and
//! collector (`items`); inside it, everything else:
//!
//! - `__Values`, one slot per value of the flow, each field named after its value (`values`);
//! - `__Steps`, one function per step, named after its label: a task called with the values it
//!   reads (`task`), a sub-flow's run (`subflow`), a `map` over a `Vec` (`map`);
//! - `__Args` and `__Done`, one variant per step: what the parallel engine's future for a step
//!   owns, and what a step hands back to be stored;
//! - the `FlowGraph` static (`structure`), and the `Flow` impl, whose hidden methods dispatch on
//!   the step (or retry scope) number to those functions, undo the steps that have something to
//!   undo (`__revert`, an arm per step) and ask the controllers and deciders (`control`); and the
//!   `DurableFlow` impl (`durable`). Hidden methods a flow would write as the trait's default
//!   (no retries, no deciders, nothing to undo, no sub-flows) are left out.
//! - in a flow of more than 256 steps, `__Chunks`: the dispatches on the step number and the
//!   `match`es over `__Args` and `__Done` take a chunk of 64 steps first, then call the chunk's
//!   function (`chunk`); `__Args` and `__Done` are then enums of per-chunk enums.
//!
//! On errors the pipeline emits `fallback` instead.

mod binding;
mod chunk;
mod control;
mod durable;
mod fallback;
mod items;
mod map;
mod structure;
mod subflow;
mod task;
mod values;

use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::graph::{Analysis, Source};
use super::parse::FlowDef;
use crate::meta::StepKind;
use items::{inputs_ident, outputs_ident};
use structure::index;
use values::{ident, local, skippable, value_type, Values};

pub use fallback::fallback;

/// What generated code needs to know about the flow, once.
pub struct Emit<'a> {
    pub def: &'a FlowDef,
    pub a: &'a Analysis<'a>,
    pub values: Values,
    /// In a flow of more than [`chunk::FROM`] steps, each step's chunk by its label: its
    /// variants of `__Args` and `__Done` are in that chunk's `__Args{c}` and `__Done{c}`, which
    /// are variants `c{c}` of `__Args` and `__Done` (see `chunk`). Empty in a smaller flow.
    pub chunk_of: std::collections::HashMap<String, usize>,
}

impl Emit<'_> {
    /// The enum of step `label`'s variant of `__Args`: `__Args`, or its chunk's.
    pub fn args_enum(&self, label: &str) -> proc_macro2::Ident {
        match self.chunk_of.get(label) {
            Some(c) => quote::format_ident!("__Args{}", c),
            None => proc_macro2::Ident::new("__Args", Span::call_site()),
        }
    }

    /// Step `name`'s `__Done` of `outcome`: `__Done::name(outcome)`, or in a large flow
    /// `__Done::c{c}(__Done{c}::name(outcome))`.
    pub fn done(&self, name: &proc_macro2::Ident, outcome: TokenStream) -> TokenStream {
        match self.chunk_of.get(&name.to_string()) {
            Some(c) => {
                let (variant, inner) = chunk_names(*c, "__Done");
                quote!(__Done::#variant(#inner::#name(#outcome)))
            }
            None => quote!(__Done::#name(#outcome)),
        }
    }
}

/// Chunk `c`'s variant of an enum of chunks (`c{c}`) and the enum inside it (`{outer}{c}`).
fn chunk_names(c: usize, outer: &str) -> (proc_macro2::Ident, proc_macro2::Ident) {
    (
        quote::format_ident!("c{}", c),
        quote::format_ident!("{}{}", outer, c),
    )
}

/// What one step adds to each part of the executor. Expressions use the locals of the methods
/// they go in: `v` (the values), `run`, `out` (in `__finish`), `undo` (in `__revert`), `stored`
/// (in `__restore_sub`).
pub struct StepCode {
    /// Its function in `impl __Steps`.
    pub function: TokenStream,
    /// Its variants of `__Args` and `__Done`.
    pub args: TokenStream,
    pub done: TokenStream,
    /// The serial engine's run of the step: a `__Done`, borrowing the values.
    pub serial: TokenStream,
    /// The parallel engine's: the `__Args` it takes out of the values, and the arm of its
    /// `'static` future that runs them into a `__Done`.
    pub take: TokenStream,
    pub run: TokenStream,
    /// `__finish`'s arm for `__Done::<label>(out)`: stores the outputs (`?` on a failure).
    pub finish: TokenStream,
    /// `__revert`'s arm, where the step has something to undo: a `RevertFuture`.
    pub revert: Option<TokenStream>,
    /// `__restore_sub`'s arm (a sub-flow step).
    pub restore: Option<TokenStream>,
    /// Items of the flow's `const _` block that its function and revert use (a map step's
    /// check of the value it maps over).
    pub items: TokenStream,
}

/// The flow's items, from its checked IR.
pub fn expand(def: &FlowDef, a: &Analysis) -> TokenStream {
    let mut pos = vec![0usize; a.steps.len()];
    for (k, &s) in a.order.iter().enumerate() {
        pos[s] = k;
    }
    let chunked = a.order.len() > chunk::FROM;
    let chunk_of = if chunked {
        a.order
            .iter()
            .enumerate()
            .map(|(k, &s)| (a.steps[s].label.clone(), k / chunk::CHUNK))
            .collect()
    } else {
        Default::default()
    };
    let e = Emit {
        def,
        a,
        values: Values::new(def, a),
        chunk_of,
    };
    let steps: Vec<(usize, StepCode)> = a
        .order
        .iter()
        .map(|&s| {
            let step = &a.steps[s];
            let name = ident(&step.label, Span::call_site());
            let code = match step.meta.kind {
                StepKind::Flow => subflow::code(&e, s, step, &name),
                StepKind::Task if step.map_item.is_some() => map::code(&e, s, step, &name),
                StepKind::Task => task::code(&e, step, &name),
            };
            (s, code)
        })
        .collect();

    let name = &def.name;
    let (inputs_ty, outputs_ty) = (inputs_ident(def), outputs_ident(def));
    let [v, step, run, out, done, inputs, undo, args, copy, at] = [
        "v", "step", "run", "out", "done", "inputs", "undo", "args", "copy", "at",
    ]
    .map(local);

    // ---- outputs: a value a decider may skip is an `Option` among them
    let out_slots: Vec<usize> = def
        .outputs
        .iter()
        .map(|o| a.slot_of(&o.to_string()).expect("checked"))
        .collect();
    let out_types: Vec<TokenStream> = def
        .output_types
        .iter()
        .zip(&out_slots)
        .map(|(declared, &slot)| match declared {
            Some(ty) => quote!(#ty),
            None if skippable(a, slot) => {
                let ty = value_type(def, a, slot);
                quote!(__tf::Option<#ty>)
            }
            None => value_type(def, a, slot),
        })
        .collect();
    // The outputs struct is outside the `const _` block, where `__tf` is not.
    let out_fields: Vec<TokenStream> = def
        .outputs
        .iter()
        .zip(&out_types)
        .map(|(o, ty)| {
            let ty: TokenStream = qualified(ty.clone());
            quote!(pub #o: #ty)
        })
        .collect();
    // A declared output type is checked against the value's, in our words (`binding`).
    let mut output_checks = TokenStream::new();
    let output_reads: Vec<TokenStream> = out_slots
        .iter()
        .zip(&def.outputs)
        .zip(&def.output_types)
        .map(|((&slot, o), declared)| {
            let f = e.values.field(slot);
            let read = if skippable(a, slot) {
                quote!(#v.#f.output_opt(#copy))
            } else {
                quote!(#v.#f.output(#copy))
            };
            let read = match declared {
                Some(ty) => {
                    let (items, read) = binding::checked_output(a, &def.name, o, ty, slot, read);
                    output_checks.extend(items);
                    read
                }
                None => read,
            };
            quote!(#o: #read)
        })
        .collect();
    let provides = out_types.iter().enumerate().map(|(i, ty)| {
        let i = index(i);
        quote!(impl __tf::Provides<#i> for #name { type Value = #ty; })
    });

    // ---- the values struct
    let mut fields: Vec<TokenStream> = (0..a.slots.len())
        .map(|s| {
            let f = e.values.field(s);
            let ty = e.values.slot_type(def, a, s);
            quote!(#f: #ty)
        })
        .collect();
    for (s, _) in &steps {
        let step = &a.steps[*s];
        let path = &step.r.path;
        if step.meta.kind == StepKind::Flow {
            let f = e.values.step_field(*s);
            fields.push(quote!(#f: __tf::Slot<__tf::Run<#path>>));
        } else if step.map_item.is_some() {
            let f = e.values.step_field(*s);
            let finished = map::finished_type(path);
            fields.push(quote!(#f: __tf::Slot<#finished>));
        }
    }
    // The values of a new run, from its inputs (the parameters of `__taskflow_values`).
    let input_param = |j: usize| ident(&def.inputs[j].0.to_string(), Span::mixed_site());
    let mut inits = Vec::new();
    for (s, slot) in a.slots.iter().enumerate() {
        let f = e.values.field(s);
        let kind = if e.values.is_shared(s) {
            quote!(__tf::Shared)
        } else {
            quote!(__tf::Slot)
        };
        match slot.source {
            Source::Input(j) => {
                let input = input_param(j);
                inits.push(quote!(#f: #kind::new(#input)));
            }
            Source::Default { .. } => {
                inits.push(quote!(#f: #kind::new(__tf::Default::default())));
            }
            Source::Output { .. } | Source::RetryItem { .. } => {}
        }
    }
    let rest = (inits.len() < fields.len()).then(|| quote!(..__tf::Default::default()));

    // ---- per step
    let functions = steps.iter().map(|(_, c)| &c.function);
    let step_items = steps.iter().map(|(_, c)| &c.items);
    // `__Args` and `__Done`: one variant per step, or in a large flow one per chunk of steps,
    // each an enum of the chunk's steps (`chunk`), so that no `match` has every step's arm.
    let enums = |name: &str, variants: &dyn Fn(&StepCode) -> &TokenStream, public: bool| {
        let vis = public.then(|| quote!(pub));
        let outer = proc_macro2::Ident::new(name, Span::call_site());
        if !chunked {
            let variants = steps.iter().map(|(_, c)| variants(c));
            return quote!(#vis enum #outer { #(#variants,)* });
        }
        let mut items = TokenStream::new();
        let mut outer_variants = Vec::new();
        for (c, group) in steps.chunks(chunk::CHUNK).enumerate() {
            let (variant, inner) = chunk_names(c, name);
            let variants = group.iter().map(|(_, code)| variants(code));
            items.extend(quote!(#vis enum #inner { #(#variants,)* }));
            outer_variants.push(quote!(#variant(#inner)));
        }
        quote! {
            #vis enum #outer { #(#outer_variants,)* }
            #items
        }
    };
    let args_enums = enums("__Args", &|c| &c.args, false);
    let done_enums = enums("__Done", &|c| &c.done, true);
    // The dispatches on the step number, in chunks (`chunk`) for a large flow: the functions of
    // `__Chunks` they call.
    let mut chunks = TokenStream::new();
    let step_sig = |asyncness: bool, ret: TokenStream| chunk::Sig {
        asyncness,
        generics: quote!(),
        params: quote!(#v: &mut __Values, #step: usize, #run: &__tf::RunContext, #at: __tf::At<'_>),
        args: quote!(#v, #step, #run, #at),
        ret,
        bounds: quote!(),
        wrap: None,
    };
    let no_step = quote!(__tf::no_step(#step));
    let serial: Vec<(usize, TokenStream)> = steps
        .iter()
        .enumerate()
        .map(|(k, (_, c))| (k, c.serial.clone()))
        .collect();
    let serial = chunk::dispatch(
        &mut chunks,
        "__run_step",
        &step_sig(true, quote!(__Done)),
        &step,
        &serial,
        &no_step,
    );
    let takes: Vec<(usize, TokenStream)> = steps
        .iter()
        .enumerate()
        .map(|(k, (_, c))| (k, c.take.clone()))
        .collect();
    let takes = chunk::dispatch(
        &mut chunks,
        "__start",
        &chunk::Sig {
            wrap: chunked.then_some("__Args"),
            ..step_sig(false, quote!(__Args))
        },
        &step,
        &takes,
        &no_step,
    );
    // The parallel engine's run of the `__Args` it took, and `__finish`: a `match` over every
    // step, or over the chunks, each chunk's `match` in its own function.
    let (runs, finishes) = {
        let run_arms = |group: &[(usize, StepCode)]| -> Vec<TokenStream> {
            group
                .iter()
                .map(|(_, c)| {
                    let run = &c.run;
                    quote!(#run,)
                })
                .collect()
        };
        let finish_arms =
            |group: &[(usize, StepCode)], done_enum: &proc_macro2::Ident| -> Vec<TokenStream> {
                group
                    .iter()
                    .map(|(s, c)| {
                        let name = ident(&a.steps[*s].label, Span::call_site());
                        let finish = &c.finish;
                        quote!(#done_enum::#name(#out) => #finish,)
                    })
                    .collect()
            };
        if !chunked {
            let runs = run_arms(&steps);
            let finishes = finish_arms(
                &steps,
                &proc_macro2::Ident::new("__Done", Span::call_site()),
            );
            (
                quote!(match #args { #(#runs)* }),
                quote! {
                    match #done { #(#finishes)* }
                    __tf::Ok(())
                },
            )
        } else {
            let mut run_outer = Vec::new();
            let mut finish_outer = Vec::new();
            for (c, group) in steps.chunks(chunk::CHUNK).enumerate() {
                let (variant, args_enum) = chunk_names(c, "__Args");
                let (_, done_enum) = chunk_names(c, "__Done");
                let go = quote::format_ident!("__go_{}", c);
                let finish = quote::format_ident!("__finish_{}", c);
                let runs = run_arms(group);
                let finishes = finish_arms(group, &done_enum);
                chunks.extend(quote! {
                    async fn #go(#args: #args_enum) -> __Done {
                        match #args { #(#runs)* }
                    }
                    fn #finish(#v: &mut __Values, #done: #done_enum) -> __tf::Result<(), __tf::StepFailed> {
                        match #done { #(#finishes)* }
                        __tf::Ok(())
                    }
                });
                run_outer.push(quote!(__Args::#variant(#args) => __Chunks::#go(#args).await,));
                finish_outer.push(quote!(__Done::#variant(#done) => __Chunks::#finish(#v, #done),));
            }
            (
                quote!(match #args { #(#run_outer)* }),
                quote!(match #done { #(#finish_outer)* }),
            )
        }
    };
    let reverts: Vec<(usize, TokenStream)> = steps
        .iter()
        .enumerate()
        .filter_map(|(k, (_, c))| c.revert.clone().map(|revert| (k, revert)))
        .collect();
    let restores: Vec<(usize, TokenStream)> = steps
        .iter()
        .enumerate()
        .filter_map(|(k, (_, c))| c.restore.clone().map(|r| (k, r)))
        .collect();

    // What a flow without steps (or with nothing to undo) does not use.
    let steps_items = (!steps.is_empty()).then(|| {
        quote! {
            /// One function per step: its task called with the values it reads.
            struct __Steps;

            impl __Steps {
                #(#functions)*
            }

            /// What the parallel engine's future for a step owns: the values it reads.
            #args_enums
        }
    });
    let revert_method = (!reverts.is_empty()).then(|| {
        let sig = chunk::Sig {
            asyncness: false,
            generics: quote!(),
            params: quote!(#v: &mut __Values, #step: usize, #undo: __tf::Undo<'_>),
            args: quote!(#v, #step, #undo),
            ret: quote!(__tf::RevertFuture),
            bounds: quote!(),
            wrap: None,
        };
        let body = chunk::dispatch(
            &mut chunks,
            "__revert",
            &sig,
            &step,
            &reverts,
            &quote!(__tf::nothing_to_revert()),
        );
        quote! {
            fn __revert(#v: &mut __Values, #step: usize, #undo: __tf::Undo<'_>) -> __tf::RevertFuture {
                #body
            }
        }
    });

    let input_params = def.inputs.iter().enumerate().map(|(j, (_, t))| {
        let p = input_param(j);
        quote!(#p: #t)
    });
    let input_fields = def.inputs.iter().map(|(n, _)| n);
    let flow_struct = items::flow_struct(def);
    let inputs_struct = items::inputs_struct(def);
    let outputs_struct = items::outputs_struct(def, &out_fields, true);
    let collector = items::collector(def, false);
    // A new run's values, from the inputs; a parent flow calls it for a sub-flow step, spanned at
    // its step (see `subflow`).
    let values_fn = quote! {
        #[doc(hidden)]
        pub fn __taskflow_values(#(#input_params),*) -> __Values {
            __Values { #(#inits,)* #rest }
        }
    };
    let graph = structure::graph_static(def, Some((a, &pos)), values_fn);
    let retry_methods = control::retry_methods(a, &def.name, &e.values);
    let decide_method = control::decide_method(a, &def.name, &e.values, &pos);
    let save_step_method = durable::save_step_method(&e, &mut chunks);
    let save_finished_method = durable::save_finished_method(&e);
    // `__save_step` picks how a value is saved by method resolution, between these traits.
    let uses = if save_step_method.is_empty() && save_finished_method.is_empty() {
        quote! { use ::taskflow::__private as __tf; }
    } else {
        quote! { use ::taskflow::__private::{self as __tf, NotStorable as _, SaveStored as _}; }
    };
    let durable_impl = durable::durable_impl(&e, &restores, &mut chunks);
    let chunks = (!chunks.is_empty()).then(|| {
        quote! {
            /// The arms of the dispatches on the step number, a function per chunk of steps.
            struct __Chunks;

            #[allow(unused_variables)]
            impl __Chunks {
                #chunks
            }
        }
    });
    // Last: every read that clones is generated by now.
    let clone_checks = e.values.clone_checks(def, a);

    quote! {
        #flow_struct
        #inputs_struct
        #outputs_struct
        #collector

        #[allow(non_snake_case, non_camel_case_types, clippy::ptr_arg)]
        #[allow(clippy::large_enum_variant, clippy::too_many_arguments)]
        const _: () = {
            #uses

            /// A run's values, a slot each: set once its input or step is there.
            #[derive(Default)]
            pub struct __Values {
                #(#fields,)*
            }

            #steps_items
            #(#step_items)*

            /// What a step hands back, to be stored in its slots.
            #done_enums

            #graph

            #(#provides)*

            #[allow(unused_variables)]
            impl __tf::Flow for #name {
                type Inputs = #inputs_ty;
                type Outputs = #outputs_ty;
                type Values = __Values;
                type Done = __Done;
                const __GRAPH: &'static __tf::FlowGraph = &__GRAPH;

                fn __values(#inputs: #inputs_ty) -> __Values {
                    Self::__taskflow_values(#(#inputs.#input_fields),*)
                }

                async fn __run_step(#v: &mut __Values, #step: usize, #run: &__tf::RunContext, #at: __tf::At<'_>) -> __Done {
                    #serial
                }

                fn __start(#v: &mut __Values, #step: usize, #run: &__tf::RunContext, #at: __tf::At<'_>) -> impl __tf::StepFuture<__Done> {
                    let #args = #takes;
                    async move {
                        #runs
                    }
                }

                fn __finish(#v: &mut __Values, #done: __Done) -> __tf::Result<(), __tf::StepFailed> {
                    #finishes
                }

                #revert_method

                fn __outputs_of(#v: &mut __Values, #copy: bool) -> #outputs_ty {
                    #output_checks
                    #outputs_ty { #(#output_reads,)* }
                }

                #save_step_method
                #save_finished_method

                #retry_methods

                #decide_method
            }

            #durable_impl

            #chunks

            #clone_checks
        };
    }
}

/// A type written inside the `const _` block (`__tf::…`), for a place outside it.
fn qualified(ty: TokenStream) -> TokenStream {
    ty.into_iter()
        .flat_map(|t| match t {
            proc_macro2::TokenTree::Ident(i) if i == "__tf" => quote!(::taskflow::__private)
                .into_iter()
                .collect::<Vec<_>>(),
            proc_macro2::TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), qualified(g.stream()));
                group.set_span(g.span());
                vec![proc_macro2::TokenTree::Group(group)]
            }
            other => vec![other],
        })
        .collect()
}
