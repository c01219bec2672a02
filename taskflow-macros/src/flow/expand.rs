//! Emits a checked flow: its types, its graph as data, its collector macro (so it can be a step of
//! another flow) and the static executor — typed slots in a generated struct, one `match` arm per
//! step in the order fixed at compile time, and the reverse walk for revert.

use proc_macro2::{Group, Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::graph::{self, Analysis, Source, Step};
use super::parse::FlowDef;
use crate::ctxt::Ctxt;
use crate::meta::{ParamMeta, StepKind, StepMeta, VisRank};

pub fn expand(def: &FlowDef, groups: &[Group]) -> TokenStream {
    let mut cx = Ctxt::default();
    let steps = def.body.steps();
    let mut metas = Vec::new();
    for (step, group) in steps.iter().zip(groups) {
        match StepMeta::parse(group) {
            Some(meta) => metas.push(meta),
            None => {
                cx.error_spanned(&step.path, "this is not a #[task] or a flow: mark the function with #[task], or define the flow with flow!");
                metas.push(StepMeta {
                    kind: StepKind::Task,
                    name: String::new(),
                    vis: VisRank::Public,
                    is_async: false,
                    fallible: false,
                    params: Vec::new(),
                    provides: Vec::new(),
                    has_revert: false,
                    broken: true,
                });
            }
        }
    }
    if cx.has_errors() || steps.len() != groups.len() {
        return fallback(def, cx);
    }
    // A sub-flow that failed its own checks has reported why; check this flow's wiring all the
    // same, but emit no executor over it.
    let sub_broken = metas.iter().any(|m| m.broken);
    let analysis = graph::analyze(def, metas, &mut cx);
    super::check::check_flow_io(def, &analysis, &mut cx);
    super::check::check_output_types(def, &analysis, &mut cx);
    if cx.has_errors() || sub_broken {
        return fallback(def, cx);
    }
    let out = emit(def, &analysis);
    if std::env::var_os("TASKFLOW_DEBUG_EXPAND").is_some() {
        eprintln!("// flow! expansion of `{}`\n{out}", def.name);
    }
    out
}

fn inputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Inputs", def.name), def.name.span())
}

fn outputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Outputs", def.name), def.name.span())
}

/// On a wiring error: the errors, plus the flow's types and a `Flow` impl that is never run (the
/// build fails), so code that uses the flow does not add a cascade of unrelated errors.
fn fallback(def: &FlowDef, cx: Ctxt) -> TokenStream {
    let errors = cx.into_compile_errors();
    let name = &def.name;
    let vis = &def.vis;
    let attrs = &def.attrs;
    let inputs = inputs_struct(def);
    let inputs_ty = inputs_ident(def);
    let outputs_ty = outputs_ident(def);
    let name_str = name.to_string();
    let typed_outputs = def
        .outputs
        .iter()
        .zip(&def.output_types)
        .filter_map(|(o, t)| t.as_ref().map(|t| quote!(pub #o: #t)));
    let collector = flow_collector(def, true);
    quote! {
        #errors
        #collector
        #(#attrs)*
        #vis struct #name;
        #inputs
        #[allow(dead_code)]
        #vis struct #outputs_ty { #(#typed_outputs,)* }
        const _: () = {
            static __GRAPH: ::taskflow::__private::FlowGraph =
                ::taskflow::__private::FlowGraph::__new(#name_str, &[], &[], &[], &[]);
            impl #name {
                #[allow(dead_code)]
                pub fn graph() -> &'static ::taskflow::__private::FlowGraph {
                    &__GRAPH
                }
            }
            impl ::taskflow::__private::Flow for #name {
                type Inputs = #inputs_ty;
                type Outputs = #outputs_ty;
                type State = ();
                const NAME: &'static str = #name_str;
                fn graph() -> &'static ::taskflow::__private::FlowGraph {
                    &__GRAPH
                }
                fn __start(_: #inputs_ty) {}
                #[allow(unreachable_code)]
                fn __execute<'__a>(
                    _: &'__a mut (),
                    _: &'__a mut ::taskflow::__private::RunContext,
                ) -> impl ::core::future::Future<Output = ::core::result::Result<(), ::taskflow::__private::FlowError>> + ::core::marker::Send + '__a {
                    async { ::core::unreachable!("flow! reported errors; this build cannot succeed") }
                }
                #[allow(unreachable_code)]
                fn __revert<'__a>(
                    _: &'__a mut (),
                    _: &'__a mut ::taskflow::__private::RunContext,
                    _: &'__a [::taskflow::__private::Failure],
                ) -> impl ::core::future::Future<Output = ::std::vec::Vec<::taskflow::__private::Failure>> + ::core::marker::Send + '__a {
                    async { ::core::unreachable!("flow! reported errors; this build cannot succeed") }
                }
                fn __finish(_: ()) -> #outputs_ty {
                    ::core::unreachable!("flow! reported errors; this build cannot succeed")
                }
            }
        };
    }
}

fn inputs_struct(def: &FlowDef) -> TokenStream {
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

fn slot_field(i: usize) -> Ident {
    format_ident!("__s{}", i)
}

fn sub_field(k: usize) -> Ident {
    format_ident!("__sub{}", k)
}

/// The type of a slot, as generated code can name it from the flow's own module.
fn slot_type(def: &FlowDef, a: &Analysis, slot: usize) -> TokenStream {
    match a.slots[slot].source {
        Source::Input(i) => {
            let ty = &def.inputs[i].1;
            quote!(#ty)
        }
        Source::Output { step, index } => {
            let path = &a.steps[step].r.path;
            quote!(<#path as ::taskflow::__private::Provides<#index>>::Value)
        }
        Source::Default { step, param } => {
            let path = &a.steps[step].r.path;
            quote!(<#path as ::taskflow::__private::Param<#param>>::Value)
        }
    }
}

/// How many places read each slot after it is written; a by-value parameter that is a slot's only
/// reader moves the value out instead of cloning it.
fn readers(def: &FlowDef, a: &Analysis) -> Vec<usize> {
    let mut count = vec![0usize; a.slots.len()];
    for step in &a.steps {
        for slot in step.args.iter().flatten() {
            count[*slot] += 1;
        }
        if step.meta.has_revert {
            // The revert hook receives every input and output of its task.
            for slot in step.args.iter().flatten().chain(&step.outs) {
                count[*slot] += 1;
            }
        }
    }
    for out in &def.outputs {
        if let Some(slot) = a.slot_of(&out.to_string()) {
            count[slot] += 1;
        }
    }
    count
}

fn arg_expr(
    a: &Analysis,
    readers: &[usize],
    step: &Step,
    p: usize,
    param: &ParamMeta,
) -> TokenStream {
    let slot = step.args[p].expect("bound by analysis");
    let field = slot_field(slot);
    let _ = a;
    if param.by_ref {
        quote!(::taskflow::__private::slot_ref(&state.#field))
    } else if readers[slot] == 1 {
        quote!(::taskflow::__private::slot_take(&mut state.#field))
    } else {
        quote!(::core::clone::Clone::clone(::taskflow::__private::slot_ref(&state.#field)))
    }
}

fn emit(def: &FlowDef, a: &Analysis) -> TokenStream {
    let name = &def.name;
    let vis = &def.vis;
    let attrs = &def.attrs;
    let name_str = name.to_string();
    let inputs_ty = inputs_ident(def);
    let outputs_ty = outputs_ident(def);
    let inputs_struct = inputs_struct(def);
    let readers = readers(def, a);
    let n = a.order.len();
    // position in execution order of each step id
    let mut pos = vec![0usize; a.steps.len()];
    for (k, &s) in a.order.iter().enumerate() {
        pos[s] = k;
    }

    // ---- outputs struct
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
            None => slot_type(def, a, slot),
        })
        .collect();
    let out_fields = def
        .outputs
        .iter()
        .zip(&out_types)
        .map(|(o, ty)| quote!(pub #o: #ty));
    let outputs_doc = format!("The outputs of flow [`{name}`].");

    // ---- state struct
    let slot_fields = (0..a.slots.len()).map(|i| {
        let f = slot_field(i);
        let ty = slot_type(def, a, i);
        quote!(#f: ::core::option::Option<#ty>)
    });
    let sub_fields = a
        .order
        .iter()
        .enumerate()
        .filter(|(_, &s)| a.steps[s].meta.kind == StepKind::Flow)
        .map(|(k, &s)| {
            let f = sub_field(k);
            let path = &a.steps[s].r.path;
            quote!(#f: ::core::option::Option<<#path as ::taskflow::__private::Flow>::State>)
        });
    let slot_inits = a.slots.iter().enumerate().map(|(i, slot)| {
        let f = slot_field(i);
        match slot.source {
            Source::Input(j) => {
                let input = &def.inputs[j].0;
                quote!(#f: ::core::option::Option::Some(inputs.#input))
            }
            Source::Default { .. } => {
                quote!(#f: ::core::option::Option::Some(::core::default::Default::default()))
            }
            Source::Output { .. } => quote!(#f: ::core::option::Option::None),
        }
    });
    let sub_inits = a
        .order
        .iter()
        .enumerate()
        .filter(|(_, &s)| a.steps[s].meta.kind == StepKind::Flow)
        .map(|(k, _)| {
            let f = sub_field(k);
            quote!(#f: ::core::option::Option::None)
        });

    // ---- execute arms, in execution order
    let exec_arms = a
        .order
        .iter()
        .enumerate()
        .map(|(k, &s)| exec_arm(a, &readers, k, &a.steps[s]));
    let revert_arms = a
        .order
        .iter()
        .enumerate()
        .filter_map(|(k, &s)| revert_arm(a, k, &a.steps[s]));
    let labels: Vec<&str> = a.order.iter().map(|&s| a.steps[s].label.as_str()).collect();

    // ---- graph data
    let step_infos = a.order.iter().map(|&s| {
        let step = &a.steps[s];
        let label = &step.label;
        let reads = step.reads.iter();
        let writes = step.writes.iter();
        let path = &step.r.path;
        let (kind, sub) = match step.meta.kind {
            StepKind::Task => (quote!(Task), quote!(::core::option::Option::None)),
            StepKind::Flow => (
                quote!(Flow),
                quote!(::core::option::Option::Some(<#path as ::taskflow::__private::Flow>::graph)),
            ),
        };
        quote!(::taskflow::__private::StepInfo::__new(#label, ::taskflow::__private::StepKind::#kind, &[#(#reads),*], &[#(#writes),*], #sub))
    });
    let edges = a.edges.iter().map(|&(f, t)| {
        let (f, t) = (pos[f], pos[t]);
        quote!((#f, #t))
    });
    let input_names = def.inputs.iter().map(|(n, _)| n.to_string());
    let output_names = def.outputs.iter().map(ToString::to_string);

    // ---- outputs, for the caller and for an enclosing flow
    let finish_fields = def.outputs.iter().zip(&out_slots).map(|(o, &slot)| {
        let f = slot_field(slot);
        quote!(#o: ::taskflow::__private::slot_take(&mut state.#f))
    });
    let output_impls = out_slots.iter().zip(&out_types).enumerate().map(|(i, (&slot, ty))| {
        let f = slot_field(slot);
        quote! {
            impl ::taskflow::__private::Provides<#i> for #name { type Value = #ty; }
            impl ::taskflow::__private::FlowOutput<#i> for #name {
                fn __get(state: &__TaskflowState) -> &#ty { ::taskflow::__private::slot_ref(&state.#f) }
            }
        }
    });
    let input_params = def.inputs.iter().map(|(n, t)| quote!(#n: #t));
    let input_names_ids = def.inputs.iter().map(|(n, _)| n);

    let collector = flow_collector(def, false);

    quote! {
    #(#attrs)*
            #vis struct #name;

            #inputs_struct

            #[doc = #outputs_doc]
            #[derive(Debug)]
            #vis struct #outputs_ty { #(#out_fields,)* }

            #collector

            const _: () = {
                #[doc(hidden)]
                pub struct __TaskflowState {
                    #(#slot_fields,)*
                    #(#sub_fields,)*
                }

                const __LABELS: [&str; #n] = [#(#labels),*];

                static __GRAPH: ::taskflow::__private::FlowGraph = ::taskflow::__private::FlowGraph::__new(
                    #name_str,
                    &[#(#input_names),*],
                    &[#(#output_names),*],
                    &[#(#step_infos),*],
                    &[#(#edges),*],
                );

                impl #name {
                    /// The flow's structure: steps, names and edges (see `FlowGraph::to_dot`).
                    #[allow(dead_code)]
                    pub fn graph() -> &'static ::taskflow::__private::FlowGraph {
                        &__GRAPH
                    }

                    #[doc(hidden)]
                    #[allow(dead_code, clippy::too_many_arguments)]
                    pub fn __taskflow_inputs(#(#input_params),*) -> #inputs_ty {
                        #inputs_ty { #(#input_names_ids),* }
                    }
                }

                #(#output_impls)*

                #[allow(unused_variables, unused_mut, clippy::all)]
                async fn __taskflow_revert(
                    state: &mut __TaskflowState,
                    run: &mut ::taskflow::__private::RunContext,
                    completed: usize,
                    failed: ::core::option::Option<&::taskflow::__private::Failure>,
                    failures: &[::taskflow::__private::Failure],
                    out: &mut ::std::vec::Vec<::taskflow::__private::Failure>,
                ) {
                    let mut __k = if failed.is_some() { completed + 1 } else { completed };
                    while __k > 0 {
                        __k -= 1;
                        let __failed_here = if __k == completed { failed } else { ::core::option::Option::None };
                        match __k {
                            #(#revert_arms)*
                            _ => {}
                        }
                    }
                }

                impl ::taskflow::__private::Flow for #name {
                    type Inputs = #inputs_ty;
                    type Outputs = #outputs_ty;
                    type State = __TaskflowState;
                    const NAME: &'static str = #name_str;

                    fn graph() -> &'static ::taskflow::__private::FlowGraph {
                        &__GRAPH
                    }

                    fn __start(inputs: #inputs_ty) -> __TaskflowState {
                        __TaskflowState {
                            #(#slot_inits,)*
                            #(#sub_inits,)*
                        }
                    }

                    #[allow(unused_variables, unused_mut, unreachable_code, clippy::all)]
                    fn __execute<'__a>(
                        state: &'__a mut __TaskflowState,
                        run: &'__a mut ::taskflow::__private::RunContext,
                    ) -> impl ::core::future::Future<Output = ::core::result::Result<(), ::taskflow::__private::FlowError>> + ::core::marker::Send + '__a {
                        async move {
                            let mut __k: usize = 0;
                            let __failed: ::core::option::Option<::taskflow::__private::StepFailed> = loop {
                                match __k {
                                    #(#exec_arms)*
                                    _ => break ::core::option::Option::None,
                                }
                                __k += 1;
                            };
                            match __failed {
                                ::core::option::Option::None => ::core::result::Result::Ok(()),
                                ::core::option::Option::Some(::taskflow::__private::StepFailed::Task(failure)) => {
                                    let failures = ::std::vec![failure];
                                    let mut revert_failures = ::std::vec::Vec::new();
                                    __taskflow_revert(state, run, __k, failures.first(), &failures, &mut revert_failures).await;
                                    ::core::result::Result::Err(::taskflow::__private::FlowError::__new(failures, revert_failures))
                                }
                                ::core::option::Option::Some(::taskflow::__private::StepFailed::Flow(error)) => {
                                    let (failures, revert_failures) = error.into_parts();
                                    let failures = ::taskflow::__private::within(__LABELS[__k], failures);
                                    let mut revert_failures = ::taskflow::__private::within(__LABELS[__k], revert_failures);
                                    __taskflow_revert(state, run, __k, ::core::option::Option::None, &failures, &mut revert_failures).await;
                                    ::core::result::Result::Err(::taskflow::__private::FlowError::__new(failures, revert_failures))
                                }
                            }
                        }
                    }

                    fn __revert<'__a>(
                        state: &'__a mut __TaskflowState,
                        run: &'__a mut ::taskflow::__private::RunContext,
                        failures: &'__a [::taskflow::__private::Failure],
                    ) -> impl ::core::future::Future<Output = ::std::vec::Vec<::taskflow::__private::Failure>> + ::core::marker::Send + '__a {
                        async move {
                            let mut out = ::std::vec::Vec::new();
                            __taskflow_revert(state, run, #n, ::core::option::Option::None, failures, &mut out).await;
                            out
                        }
                    }

                    fn __finish(mut state: __TaskflowState) -> #outputs_ty {
                        #outputs_ty { #(#finish_fields,)* }
                    }
                }
            };
        }
}

/// The flow's collector, aliased under the flow's own name, so it can be a step of another flow.
fn flow_collector(def: &FlowDef, broken: bool) -> TokenStream {
    let name = &def.name;
    let name_str = name.to_string();
    let vis = &def.vis;
    let meta = StepMeta {
        kind: StepKind::Flow,
        name: name_str.clone(),
        vis: VisRank::of(vis),
        is_async: true,
        fallible: true,
        params: def
            .inputs
            .iter()
            .map(|(n, _)| ParamMeta {
                name: n.to_string(),
                by_ref: false,
                default: false,
            })
            .collect(),
        provides: def.outputs.iter().map(ToString::to_string).collect(),
        has_revert: false,
        broken,
    }
    .to_tokens();
    crate::task::collector_items("__taskflow_meta_flow", name, vis, &meta, false)
}

fn exec_arm(a: &Analysis, readers: &[usize], k: usize, step: &Step) -> TokenStream {
    let span = graph::step_span(step);
    let path = &step.r.path;
    let label = &step.label;
    let args: Vec<TokenStream> = step
        .meta
        .params
        .iter()
        .enumerate()
        .map(|(p, param)| arg_expr(a, readers, step, p, param))
        .collect();
    let store = store_outputs(step);
    match step.meta.kind {
        StepKind::Task => {
            let span = Span::call_site().located_at(span);
            let vars: Vec<Ident> = (0..args.len())
                .map(|i| format_ident!("__a{}", i, span = span))
                .collect();
            let call = quote_spanned!(span=> #path(#(#vars),*));
            let run = if step.meta.is_async {
                quote!(::taskflow::__private::catch_async(#label, #call).await)
            } else {
                quote!(::taskflow::__private::catch_sync(#label, move || #call))
            };
            let normalize = step.meta.fallible.then(|| {
                quote!(let __outcome = ::taskflow::__private::fallible(#label, __outcome.map(#path::__taskflow_result));)
            });
            quote! {
                #k => {
                    let __outcome = {
                        #(let #vars = #args;)*
                        #run
                    };
                    #normalize
                    match __outcome {
                        ::core::result::Result::Ok(__value) => { #store }
                        ::core::result::Result::Err(__f) => {
                            break ::core::option::Option::Some(::taskflow::__private::StepFailed::Task(__f));
                        }
                    }
                }
            }
        }
        StepKind::Flow => {
            let sub = sub_field(k);
            let copy_out = step.outs.iter().enumerate().map(|(j, &slot)| {
                let f = slot_field(slot);
                quote! {
                    state.#f = ::core::option::Option::Some(::core::clone::Clone::clone(
                        <#path as ::taskflow::__private::FlowOutput<#j>>::__get(&__sub),
                    ));
                }
            });
            let make_inputs = quote_spanned!(span=> #path::__taskflow_inputs(#(#args),*));
            quote! {
                #k => {
                    let __inputs = #make_inputs;
                    let mut __sub = <#path as ::taskflow::__private::Flow>::__start(__inputs);
                    match <#path as ::taskflow::__private::Flow>::__execute(&mut __sub, &mut *run).await {
                        ::core::result::Result::Ok(()) => {
                            #(#copy_out)*
                            state.#sub = ::core::option::Option::Some(__sub);
                        }
                        ::core::result::Result::Err(__e) => {
                            break ::core::option::Option::Some(::taskflow::__private::StepFailed::Flow(__e));
                        }
                    }
                }
            }
        }
    }
}

fn store_outputs(step: &Step) -> TokenStream {
    match step.outs.as_slice() {
        [] => quote!(let _ = __value;),
        [one] => {
            let f = slot_field(*one);
            quote!(state.#f = ::core::option::Option::Some(__value);)
        }
        many => {
            let tmps: Vec<Ident> = (0..many.len()).map(|i| format_ident!("__o{}", i)).collect();
            let fields = many.iter().map(|&s| slot_field(s));
            quote! {
                let (#(#tmps,)*) = __value;
                #(state.#fields = ::core::option::Option::Some(#tmps);)*
            }
        }
    }
}

fn revert_arm(a: &Analysis, k: usize, step: &Step) -> Option<TokenStream> {
    let path = &step.r.path;
    let label = &step.label;
    let _ = a;
    match step.meta.kind {
        StepKind::Task if step.meta.has_revert => {
            // Bound first, so `&String` can coerce to a `&str` parameter at the call.
            let vars: Vec<Ident> = (0..step.args.len())
                .map(|i| format_ident!("__i{}", i))
                .collect();
            let inputs = step.args.iter().map(|slot| {
                let f = slot_field(slot.expect("bound"));
                quote!(::taskflow::__private::slot_ref(&state.#f))
            });
            let outs: Vec<TokenStream> = step
                .outs
                .iter()
                .map(|&slot| {
                    let f = slot_field(slot);
                    quote!(::taskflow::__private::slot_ref(&state.#f))
                })
                .collect();
            let ok = match outs.as_slice() {
                [] => quote!(()),
                [one] => one.clone(),
                many => quote!((#(#many,)*)),
            };
            Some(quote! {
                #k => {
                    let __result = match __failed_here {
                        ::core::option::Option::Some(__f) => ::core::result::Result::Err(::core::clone::Clone::clone(__f)),
                        ::core::option::Option::None => ::core::result::Result::Ok(#ok),
                    };
                    #(let #vars = #inputs;)*
                    let __r = ::taskflow::__private::catch_async(#label, #path::__taskflow_revert(#(#vars,)* __result, failures)).await;
                    if let ::core::result::Result::Err(__f) = ::taskflow::__private::hook_outcome(#label, __r) {
                        out.push(__f);
                    }
                }
            })
        }
        StepKind::Task => None,
        StepKind::Flow => {
            let sub = sub_field(k);
            Some(quote! {
                #k => {
                    if let ::core::option::Option::Some(__sub) = state.#sub.as_mut() {
                        let __r = <#path as ::taskflow::__private::Flow>::__revert(__sub, &mut *run, failures).await;
                        out.extend(::taskflow::__private::within(#label, __r));
                    }
                }
            })
        }
    }
}
