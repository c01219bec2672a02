//! Emits a checked flow: its types, its graph as data, its collector macro (so it can be a step of
//! another flow) and the static executor — typed slots in a generated struct, one `match` arm per
//! step in the order fixed at compile time, and the reverse walk for revert.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::graph::{self, Analysis, Source, Step};
use super::parse::FlowDef;
use crate::meta::{ParamMeta, StepKind, StepMeta, VisRank};

fn inputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Inputs", def.name), def.name.span())
}

fn outputs_ident(def: &FlowDef) -> Ident {
    Ident::new(&format!("{}Outputs", def.name), def.name.span())
}

/// On a wiring error: the errors, plus the flow's types and a `Flow` impl that is never run (the
/// build fails), so code that uses the flow does not add a cascade of unrelated errors. The
/// impls define no hidden method: the traits' defaults are what a flow without an executor does.
pub fn fallback(def: &FlowDef, errors: TokenStream) -> TokenStream {
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
                ::taskflow::__private::FlowGraph::__new(#name_str, &[], &[], &[], &[], &[], &[]);
            impl #name {
                #[allow(dead_code)]
                pub fn graph() -> &'static ::taskflow::__private::FlowGraph {
                    &__GRAPH
                }
            }
            // Every hidden method keeps its default, which is never run: this build fails.
            impl ::taskflow::__private::Flow for #name {
                type Inputs = #inputs_ty;
                type Outputs = #outputs_ty;
                type Values = ();
                type Done = ();
                const NAME: &'static str = #name_str;
                fn graph() -> &'static ::taskflow::__private::FlowGraph {
                    &__GRAPH
                }
            }
            impl ::taskflow::__private::DurableFlow for #name {}
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

fn variant(k: usize) -> Ident {
    format_ident!("S{}", k)
}

/// The type of a slot's value, as generated code can name it from the flow's own module.
fn value_type(def: &FlowDef, a: &Analysis, slot: usize) -> TokenStream {
    match a.slots[slot].source {
        Source::Input(i) => {
            let ty = &def.inputs[i].1;
            quote!(#ty)
        }
        Source::Output { step, index } => {
            let path = &a.steps[step].r.path;
            if a.steps[step].map_item.is_some() {
                quote!(::std::vec::Vec<<#path as ::taskflow::__private::Provides<#index>>::Value>)
            } else {
                quote!(<#path as ::taskflow::__private::Provides<#index>>::Value)
            }
        }
        Source::Default { step, param } => {
            let path = &a.steps[step].r.path;
            quote!(<#path as ::taskflow::__private::Param<#param>>::Value)
        }
        Source::RetryItem { scope } => {
            let scope = &a.scopes[scope];
            match (&scope.spec.provides, scope.for_each) {
                (Some((_, Some(ty))), _) => quote!(#ty),
                (_, Some(values)) => {
                    let values = value_type(def, a, values);
                    quote!(<#values as ::taskflow::__private::Elements>::Item)
                }
                _ => quote!(()), // reported: the type must be written
            }
        }
    }
}

/// How a parameter reads its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `&TaskContext`, from the run.
    Ctx,
    /// `T`: moved or cloned.
    Value,
    /// `&T`: borrowed (an `Arc` handle in the parallel engine).
    Ref,
    /// `Option<T>` of a value a decider may skip.
    OptValue,
    /// `Option<&T>`.
    OptRef,
}

fn mode(a: &Analysis, args: &[Option<usize>], params: &[ParamMeta], p: usize) -> Mode {
    let param = &params[p];
    let Some(slot) = args[p] else {
        return Mode::Ctx;
    };
    let skippable =
        matches!(a.slots[slot].source, Source::Output { step, .. } if a.skippable[step]);
    match (param.optional, param.by_ref) {
        (true, true) => Mode::OptRef,
        (true, false) if skippable => Mode::OptValue,
        (_, true) => Mode::Ref,
        _ => Mode::Value,
    }
}

/// Whether a slot may be empty when read: its producer may be skipped by a decider.
fn skippable_slot(a: &Analysis, slot: usize) -> bool {
    matches!(a.slots[slot].source, Source::Output { step, .. } if a.skippable[step])
}

/// How each slot is stored and read, decided once for the whole flow.
struct Layout {
    /// Read by reference somewhere (a `&T` parameter, or a task whose revert hook gets its inputs
    /// and outputs by reference): stored as `Arc<T>`, so a step's future can own a handle.
    shared: Vec<bool>,
    /// A by-value parameter that is the slot's only reader moves the value out instead of
    /// cloning it — unless a retry could run that reader again without writing the slot again.
    movable: Vec<bool>,
}

fn layout(def: &FlowDef, a: &Analysis) -> Layout {
    let mut shared = vec![false; a.slots.len()];
    let mut readers = vec![0usize; a.slots.len()];
    let mut reader_scopes: Vec<&[usize]> = vec![&[]; a.slots.len()];
    for step in &a.steps {
        for (p, slot) in step.args.iter().enumerate() {
            let Some(slot) = *slot else { continue }; // a `&TaskContext`
            readers[slot] += 1;
            reader_scopes[slot] = &step.scopes;
            if matches!(
                mode(a, &step.args, &step.meta.params, p),
                Mode::Ref | Mode::OptRef
            ) {
                shared[slot] = true;
            }
            if step.map_item == Some(p) {
                shared[slot] = true; // every run of a map borrows its element
            }
        }
        if step.meta.has_revert {
            for &slot in step.args.iter().flatten().chain(&step.outs) {
                readers[slot] += 1;
                shared[slot] = true;
            }
        }
    }
    for out in &def.outputs {
        if let Some(slot) = a.slot_of(&out.to_string()) {
            readers[slot] += 1;
        }
    }
    for scope in &a.scopes {
        if let Some(values) = scope.for_each {
            readers[values] += 1;
        }
    }
    for d in &a.deciders {
        for &slot in d.args.iter().flatten() {
            readers[slot] += 1;
        }
    }
    let movable = (0..a.slots.len())
        .map(|slot| {
            let producer = a.producer_scopes(slot);
            !shared[slot]
                && readers[slot] == 1
                && reader_scopes[slot].iter().all(|s| producer.contains(s))
        })
        .collect();
    Layout { shared, movable }
}

impl Layout {
    fn slot_type(&self, def: &FlowDef, a: &Analysis, slot: usize) -> TokenStream {
        let ty = value_type(def, a, slot);
        if self.shared[slot] {
            quote!(::taskflow::__private::Arc<#ty>)
        } else {
            ty
        }
    }

    fn wrap(&self, slot: usize, value: TokenStream) -> TokenStream {
        if self.shared[slot] {
            quote!(::taskflow::__private::Arc::new(#value))
        } else {
            value
        }
    }

    /// `&T` to the value in a slot.
    fn read_ref(&self, slot: usize, values: &TokenStream) -> TokenStream {
        let f = slot_field(slot);
        if self.shared[slot] {
            quote!(&**::taskflow::__private::slot_ref(&#values.#f))
        } else {
            quote!(::taskflow::__private::slot_ref(&#values.#f))
        }
    }

    /// What a step's future owns for a parameter: an `Arc` handle for `&T`, else the value
    /// (moved out when this is the slot's only reader, cloned otherwise).
    fn take_arg(&self, slot: usize, by_ref: bool) -> TokenStream {
        let f = slot_field(slot);
        if by_ref {
            quote!(::taskflow::__private::slot_arc(&values.#f))
        } else if self.movable[slot] {
            quote!(::taskflow::__private::slot_take(&mut values.#f))
        } else {
            let r = self.read_ref(slot, &quote!(values));
            quote!(::core::clone::Clone::clone(#r))
        }
    }

    /// The type of what a step's future owns for a parameter.
    fn arg_type(&self, def: &FlowDef, a: &Analysis, slot: usize, by_ref: bool) -> TokenStream {
        let ty = value_type(def, a, slot);
        if by_ref {
            quote!(::taskflow::__private::Arc<#ty>)
        } else {
            ty
        }
    }

    /// `Option<T>` out of a slot a decider may have left empty (moved or cloned).
    fn take_option(&self, slot: usize) -> TokenStream {
        let f = slot_field(slot);
        if self.movable[slot] {
            quote!(values.#f.take())
        } else if self.shared[slot] {
            quote!(::core::option::Option::map(values.#f.as_deref(), ::core::clone::Clone::clone))
        } else {
            quote!(::core::clone::Clone::clone(&values.#f))
        }
    }

    /// The serial engine's argument (it may borrow the values).
    fn serial_arg(&self, m: Mode, slot: Option<usize>, label: &str) -> TokenStream {
        match (m, slot) {
            (Mode::Ctx, _) | (_, None) => {
                quote!(::taskflow::__private::TaskContext::__new(run, #label))
            }
            (Mode::Value, Some(s)) => self.take_arg(s, false),
            (Mode::Ref, Some(s)) => self.read_ref(s, &quote!(values)),
            (Mode::OptValue, Some(s)) => self.take_option(s),
            (Mode::OptRef, Some(s)) => {
                let f = slot_field(s);
                quote!(values.#f.as_deref())
            }
        }
    }

    /// What the parallel engine's step future owns for an argument, and its type.
    fn owned_arg(
        &self,
        def: &FlowDef,
        a: &Analysis,
        m: Mode,
        slot: Option<usize>,
        label: &str,
    ) -> (TokenStream, TokenStream) {
        match (m, slot) {
            (Mode::Ctx, _) | (_, None) => (
                quote!(::taskflow::__private::TaskContext::__new(run, #label)),
                quote!(::taskflow::__private::TaskContext),
            ),
            (Mode::Value, Some(s)) => (self.take_arg(s, false), self.arg_type(def, a, s, false)),
            (Mode::Ref, Some(s)) => (self.take_arg(s, true), self.arg_type(def, a, s, true)),
            (Mode::OptValue, Some(s)) => {
                let ty = value_type(def, a, s);
                (self.take_option(s), quote!(::core::option::Option<#ty>))
            }
            (Mode::OptRef, Some(s)) => {
                let f = slot_field(s);
                let ty = value_type(def, a, s);
                (
                    quote!(::core::clone::Clone::clone(&values.#f)),
                    quote!(::core::option::Option<::taskflow::__private::Arc<#ty>>),
                )
            }
        }
    }

    /// Stores a task's returned `__value` in its output slots (split when it provides a tuple).
    fn store_outputs(&self, step: &Step) -> TokenStream {
        match step.outs.as_slice() {
            [] => quote!(let _ = __value;),
            [one] => self.store(*one, quote!(__value)),
            many => {
                let tmps: Vec<Ident> = (0..many.len()).map(|i| format_ident!("__o{}", i)).collect();
                let stores = many
                    .iter()
                    .zip(&tmps)
                    .map(|(&s, t)| self.store(s, quote!(#t)));
                quote!(let (#(#tmps,)*) = __value; #(#stores)*)
            }
        }
    }

    fn store(&self, slot: usize, value: TokenStream) -> TokenStream {
        let f = slot_field(slot);
        let value = self.wrap(slot, value);
        quote!(values.#f = ::core::option::Option::Some(#value);)
    }
}

/// `__decide`: whether a guarded step runs — every decider on a link into it must say yes.
fn decide_method(a: &Analysis, lay: &Layout, pos: &[usize]) -> TokenStream {
    if a.deciders.is_empty() {
        return TokenStream::new();
    }
    let mut targets: Vec<usize> = a.deciders.iter().filter_map(|d| d.to).collect();
    targets.sort_unstable();
    targets.dedup();
    let arms = targets.iter().map(|&to| {
        let k = pos[to];
        let label = &a.steps[to].label;
        let mut lets = Vec::new();
        let mut calls = Vec::new();
        for (i, d) in a.deciders.iter().enumerate().filter(|(_, d)| d.to == Some(to)) {
            let path = d.link.decider.as_ref().expect("a decider link");
            let vars: Vec<Ident> = (0..d.args.len()).map(|p| format_ident!("__d{}_{}", i, p)).collect();
            for (p, var) in vars.iter().enumerate() {
                // Deciders never move a value: they may be asked again after a retry.
                let read = match (mode(a, &d.args, &d.meta.params, p), d.args[p]) {
                    (Mode::Value, Some(slot)) => {
                        let r = lay.read_ref(slot, &quote!(values));
                        quote!(::core::clone::Clone::clone(#r))
                    }
                    (Mode::OptValue, Some(slot)) => {
                        let f = slot_field(slot);
                        if lay.shared[slot] {
                            quote!(::core::option::Option::map(values.#f.as_deref(), ::core::clone::Clone::clone))
                        } else {
                            quote!(::core::clone::Clone::clone(&values.#f))
                        }
                    }
                    (m, slot) => lay.serial_arg(m, slot, label),
                };
                lets.push(quote!(let #var = #read;));
            }
            calls.push(quote!(#path(#(#vars),*)));
        }
        quote! {
            #k => {
                #(#lets)*
                // `&`, not `&&`: every decider is asked, as in TaskFlow, even after one said no.
                ::taskflow::__private::catch_sync(#label, move || true #(& #calls)*)
            }
        }
    });
    quote! {
        fn __decide(
            values: &mut __Values,
            step: usize,
        ) -> ::core::result::Result<bool, ::taskflow::__private::Failure> {
            match step {
                #(#arms)*
                _ => ::core::result::Result::Ok(true),
            }
        }
    }
}

/// The retry controllers' hooks: begin an attempt (set the provided value), decide after a
/// failure, and the delay before the next attempt. Each evaluates the controller's expression.
fn retry_methods(def: &FlowDef, a: &Analysis, lay: &Layout) -> TokenStream {
    if a.scopes.is_empty() {
        return TokenStream::new();
    }
    let controller = |scope: &super::graph::Scope| match scope.for_each {
        Some(values) => {
            let read = lay.read_ref(values, &quote!(values));
            quote!(::taskflow::__private::ForEach(::core::clone::Clone::clone(#read)))
        }
        None => {
            let expr = &scope.spec.controller;
            quote!(#expr)
        }
    };
    let _ = def;
    let enter_arms = a.scopes.iter().enumerate().map(|(i, scope)| {
        let ctrl = controller(scope);
        let store = match scope.item {
            Some(slot) => lay.store(slot, quote!(__item)),
            None => quote!(let _ = __item;),
        };
        quote! {
            #i => {
                let __c = #ctrl;
                match ::taskflow::__private::Retry::item(&__c, attempt) {
                    ::core::option::Option::Some(__item) => { #store true }
                    ::core::option::Option::None => false,
                }
            }
        }
    });
    let decide_arms = a.scopes.iter().enumerate().map(|(i, scope)| {
        let ctrl = controller(scope);
        quote!(#i => { let __c = #ctrl; ::taskflow::__private::Retry::on_failure(&__c, history) })
    });
    let delay_arms = a.scopes.iter().enumerate().map(|(i, scope)| {
        let ctrl = controller(scope);
        quote!(#i => { let __c = #ctrl; ::taskflow::__private::Retry::delay(&__c, attempt) })
    });
    quote! {
        fn __retry_enter(values: &mut __Values, scope: usize, attempt: u32) -> bool {
            match scope {
                #(#enter_arms)*
                _ => true,
            }
        }

        fn __retry_decide(
            values: &mut __Values,
            scope: usize,
            history: &::taskflow::__private::History,
        ) -> ::taskflow::__private::Decision {
            match scope {
                #(#decide_arms)*
                _ => ::taskflow::__private::Decision::Revert,
            }
        }

        fn __retry_delay(values: &mut __Values, scope: usize, attempt: u32) -> ::core::option::Option<::taskflow::__private::Duration> {
            match scope {
                #(#delay_arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// The generated pieces of one `map task over values` step.
struct MapParts {
    serial_arm: TokenStream,
    args_variant: TokenStream,
    take_args: TokenStream,
    run_arm: TokenStream,
    done_variant: TokenStream,
    finish_arm: TokenStream,
    revert: Option<(TokenStream, TokenStream, TokenStream)>,
}

fn map_field(k: usize) -> Ident {
    format_ident!("__map{}", k)
}

/// A `map` step runs its task once per element of a `Vec` (one after another on the serial
/// engine, all at once on the parallel engine) and provides a `Vec` of outputs in input order. On
/// failure the finished items are kept, so each is reverted on its own.
fn map_parts(def: &FlowDef, a: &Analysis, lay: &Layout, k: usize, step: &Step) -> MapParts {
    let v = variant(k);
    let path = &step.r.path;
    let label = &step.label;
    let span = Span::call_site().located_at(graph::step_span(step));
    let item = step.map_item.expect("a map step");
    let items_slot = step.args[item].expect("bound by analysis");
    let items_f = slot_field(items_slot);
    let items_ty = value_type(def, a, items_slot);
    let out_slot = step.outs[0];
    let elem_ty = quote!(<#path as ::taskflow::__private::Provides<0>>::Value);
    let field = map_field(k);

    // The other arguments, owned once; each run gets its own copy (or a borrow).
    let others: Vec<usize> = (0..step.args.len()).filter(|&p| p != item).collect();
    let modes: Vec<Mode> = (0..step.args.len())
        .map(|p| mode(a, &step.args, &step.meta.params, p))
        .collect();
    let owned: Vec<(TokenStream, TokenStream)> = others
        .iter()
        .map(|&p| lay.owned_arg(def, a, modes[p], step.args[p], label))
        .collect();
    let vars: Vec<Ident> = others.iter().map(|p| format_ident!("__a{}", p)).collect();
    let other_tys = owned.iter().map(|(_, ty)| ty);
    let other_takes: Vec<&TokenStream> = owned.iter().map(|(take, _)| take).collect();

    let item_arg = if step.meta.params[item].by_ref {
        quote!(&__items[__i])
    } else {
        quote!(::core::clone::Clone::clone(&__items[__i]))
    };
    // Per run: what the call receives for each parameter.
    let call_args: Vec<TokenStream> = (0..step.args.len())
        .map(|p| {
            if p == item {
                return item_arg.clone();
            }
            let var = format_ident!("__a{}", p);
            match modes[p] {
                Mode::Ctx => quote!(&#var),
                Mode::Ref => quote!(&*#var),
                Mode::OptRef => quote!(::core::option::Option::as_deref(&#var)),
                Mode::Value | Mode::OptValue => quote!(::core::clone::Clone::clone(&#var)),
            }
        })
        .collect();
    let call = quote_spanned!(span=> #path(#(#call_args),*));
    let normalize = |outcome: TokenStream| {
        if step.meta.fallible {
            quote!(::taskflow::__private::fallible(#label, #outcome.map(#path::__taskflow_result)))
        } else {
            outcome
        }
    };
    let map_call = if step.meta.is_async {
        let outcome = normalize(quote!(::taskflow::__private::catch_async(#label, #call).await));
        let copies = vars
            .iter()
            .map(|v| quote!(let #v = ::core::clone::Clone::clone(&#v);));
        quote! {{
            let __n = __items.len();
            let __run_item = move |__i: usize| {
                let __items = ::taskflow::__private::Arc::clone(&__items);
                #(#copies)*
                async move { #outcome }
            };
            ::taskflow::__private::map_async(&__run, __n, __run_item).await
        }}
    } else {
        let outcome = normalize(quote!(::taskflow::__private::catch_sync(#label, || #call)));
        quote! {{
            let __n = __items.len();
            let __run_item = move |__i: usize| #outcome;
            ::taskflow::__private::map_sync(&__run, __n, __run_item).await
        }}
    };
    let store = lay.store(out_slot, quote!(__outputs));
    let finish = quote! {
        ::core::result::Result::Ok(__outputs) => { #store ::core::result::Result::Ok(()) }
        ::core::result::Result::Err((__partial, __f)) => {
            values.#field = ::core::option::Option::Some(__partial);
            ::core::result::Result::Err(::taskflow::__private::StepFailed::Task(__f))
        }
    };
    let serial_arm = quote! {
        #k => {
            let __items = ::taskflow::__private::slot_arc(&values.#items_f);
            #(let #vars = #other_takes;)*
            let __run = ::core::clone::Clone::clone(run);
            match #map_call { #finish }
        }
    };
    let args_variant = quote!(#v(::taskflow::__private::Arc<#items_ty>, #(#other_tys,)* ::taskflow::__private::RunContext));
    let take_args = quote! {
        #k => __Args::#v(
            ::taskflow::__private::slot_arc(&values.#items_f),
            #(#other_takes,)*
            ::core::clone::Clone::clone(run),
        ),
    };
    let run_arm = quote!(__Args::#v(__items, #(#vars,)* __run) => __Done::#v(#map_call),);
    let done_variant = quote!(#v(::taskflow::__private::MapOutcome<#elem_ty>));
    let finish_arm = quote! {
        __Done::#v(__outcome) => match __outcome { #finish }
    };

    let revert = step.meta.has_revert.then(|| {
        // The hook gets the task's inputs (this item's element for the mapped parameter) and this
        // item's outcome.
        let flow_params: Vec<usize> = (0..step.args.len()).filter(|&p| step.args[p].is_some()).collect();
        let in_vars: Vec<Ident> = flow_params.iter().map(|p| format_ident!("__i{}", p)).collect();
        let in_tys = flow_params.iter().map(|&p| {
            let slot = step.args[p].expect("flow parameter");
            let ty = value_type(def, a, slot);
            if skippable_slot(a, slot) {
                quote!(::core::option::Option<::taskflow::__private::Arc<#ty>>)
            } else {
                quote!(::taskflow::__private::Arc<#ty>)
            }
        });
        let in_takes = flow_params.iter().map(|&p| {
            let slot = step.args[p].expect("flow parameter");
            let f = slot_field(slot);
            if skippable_slot(a, slot) {
                quote!(::core::clone::Clone::clone(&values.#f))
            } else {
                quote!(::taskflow::__private::slot_arc(&values.#f))
            }
        });
        let hook_inputs: Vec<TokenStream> = flow_params
            .iter()
            .zip(&in_vars)
            .map(|(&p, var)| {
                let slot = step.args[p].expect("flow parameter");
                if p == item {
                    quote!(&#var[__i])
                } else {
                    match (step.meta.params[p].optional, skippable_slot(a, slot)) {
                        (true, true) => quote!(::core::option::Option::as_deref(&#var)),
                        (true, false) => quote!(::core::option::Option::as_ref(&**#var)),
                        (false, _) => quote!(&*#var),
                    }
                }
            })
            .collect();
        let out_f = slot_field(out_slot);
        let variant_ty = quote! {
            #v(#(#in_tys,)* ::core::result::Result<::taskflow::__private::Arc<::std::vec::Vec<#elem_ty>>, ::std::vec::Vec<::taskflow::__private::MapItem<#elem_ty>>>)
        };
        let take = quote! {
            #k => __Revert::#v(#(#in_takes,)* match failed {
                ::core::option::Option::Some(_) => ::core::result::Result::Err(values.#field.take().unwrap_or_default()),
                ::core::option::Option::None => ::core::result::Result::Ok(::taskflow::__private::slot_arc(&values.#out_f)),
            }),
        };
        let arm = quote! {
            __Revert::#v(#(#in_vars,)* __outcome) => {
                let mut __errors = ::std::vec::Vec::new();
                let __n = match &__outcome {
                    ::core::result::Result::Ok(__outs) => __outs.len(),
                    ::core::result::Result::Err(__partial) => __partial.len(),
                };
                // Newest first, each item on its own.
                for __i in (0..__n).rev() {
                    let __result = match &__outcome {
                        ::core::result::Result::Ok(__outs) => ::core::result::Result::Ok(&__outs[__i]),
                        ::core::result::Result::Err(__partial) => match &__partial[__i] {
                            ::taskflow::__private::MapItem::Done(__u) => ::core::result::Result::Ok(__u),
                            ::taskflow::__private::MapItem::Failed(__f) => ::core::result::Result::Err(::core::clone::Clone::clone(__f)),
                            ::taskflow::__private::MapItem::NotRun => continue,
                        },
                    };
                    let __r = ::taskflow::__private::catch_async(
                        #label,
                        #path::__taskflow_revert(#(#hook_inputs,)* __result, &failures),
                    ).await;
                    if let ::core::result::Result::Err(__f) = ::taskflow::__private::hook_outcome(#label, __r) {
                        __errors.push(__f);
                    }
                }
                __errors
            }
        };
        (variant_ty, take, arm)
    });
    MapParts {
        serial_arm,
        args_variant,
        take_args,
        run_arm,
        done_variant,
        finish_arm,
        revert,
    }
}

/// Runs a task's call, catching a panic, and turns its return into `Result<output, Failure>`.
fn task_outcome(step: &Step, call: TokenStream) -> TokenStream {
    let label = &step.label;
    let path = &step.r.path;
    let outcome = if step.meta.is_async {
        quote!(::taskflow::__private::catch_async(#label, #call).await)
    } else {
        quote!(::taskflow::__private::catch_sync(#label, move || #call))
    };
    if step.meta.fallible {
        quote!(::taskflow::__private::fallible(#label, #outcome.map(#path::__taskflow_result)))
    } else {
        outcome
    }
}

/// One arm of `__run_step`, the serial engine's step: it borrows the values for the duration of
/// the step (no handles, no completion enum), so a step costs one dispatch.
fn serial_arm(def: &FlowDef, a: &Analysis, lay: &Layout, k: usize, step: &Step) -> TokenStream {
    let _ = def;
    let path = &step.r.path;
    let label = &step.label;
    let span = Span::call_site().located_at(graph::step_span(step));
    let slots = &step.args;
    let vars: Vec<Ident> = (0..slots.len())
        .map(|i| format_ident!("__a{}", i, span = span))
        .collect();
    let reads = (0..slots.len())
        .map(|p| lay.serial_arg(mode(a, slots, &step.meta.params, p), slots[p], label));
    let lets = quote!(#(let #vars = #reads;)*);
    match step.meta.kind {
        StepKind::Task => {
            let call_args = step.meta.params.iter().zip(&vars).map(|(p, var)| {
                if p.ctx {
                    quote!(&#var)
                } else {
                    quote!(#var)
                }
            });
            let call = quote_spanned!(span=> #path(#(#call_args),*));
            let outcome = task_outcome(step, call);
            let store = lay.store_outputs(step);
            quote! {
                #k => {
                    let __outcome = { #lets #outcome };
                    match __outcome {
                        ::core::result::Result::Ok(__value) => { #store ::core::result::Result::Ok(()) }
                        ::core::result::Result::Err(__f) => {
                            ::core::result::Result::Err(::taskflow::__private::StepFailed::Task(__f))
                        }
                    }
                }
            }
        }
        StepKind::Flow => {
            let f = sub_field(k);
            let copies = step.outs.iter().enumerate().map(|(j, &slot)| {
                lay.store(
                    slot,
                    quote!(<#path as ::taskflow::__private::FlowOutput<#j>>::__clone(__sub.values())),
                )
            });
            let make_values = subflow_values(step, vars.iter());
            let _ = a;
            quote! {
                #k => {
                    // A sub-flow suspended part-way left its values here: resume them.
                    let __sub = match values.#f.take() {
                        ::core::option::Option::Some(__partial) => __partial,
                        ::core::option::Option::None => {
                            #lets
                            ::taskflow::__private::new_run::<#path>(#make_values)
                        }
                    };
                    match ::taskflow::__private::run_subflow::<#path>(__sub, #label, ::core::clone::Clone::clone(run)).await {
                        ::taskflow::__private::SubflowEnd::Done(__sub) => {
                            #(#copies)*
                            values.#f = ::core::option::Option::Some(__sub);
                            ::core::result::Result::Ok(())
                        }
                        ::taskflow::__private::SubflowEnd::Failed(__e) => {
                            ::core::result::Result::Err(::taskflow::__private::StepFailed::Flow(__e))
                        }
                        ::taskflow::__private::SubflowEnd::Suspended(__sub) => {
                            values.#f = ::core::option::Option::Some(__sub);
                            ::core::result::Result::Err(::taskflow::__private::StepFailed::Suspended)
                        }
                    }
                }
            }
        }
    }
}

/// A sub-flow step's new values, from its inputs `args` (in the sub-flow's input order), spanned
/// at the step so a type error points there.
fn subflow_values<T: quote::ToTokens>(step: &Step, args: impl Iterator<Item = T>) -> TokenStream {
    let path = &step.r.path;
    let span = Span::call_site().located_at(graph::step_span(step));
    let inputs = quote_spanned!(span=> #path::__taskflow_inputs(#(#args),*));
    quote!(<#path as ::taskflow::__private::Flow>::__values(#inputs))
}

/// The type a task step's future resolves to on success: its outputs, as stored.
fn outputs_type(def: &FlowDef, a: &Analysis, step: &Step) -> TokenStream {
    let tys: Vec<TokenStream> = step.outs.iter().map(|&s| value_type(def, a, s)).collect();
    match tys.as_slice() {
        [] => quote!(()),
        [one] => one.clone(),
        many => quote!((#(#many,)*)),
    }
}

/// The flow's items, from its checked IR.
pub fn expand(def: &FlowDef, a: &Analysis) -> TokenStream {
    let name = &def.name;
    let vis = &def.vis;
    let attrs = &def.attrs;
    let name_str = name.to_string();
    let inputs_ty = inputs_ident(def);
    let outputs_ty = outputs_ident(def);
    let inputs_struct = inputs_struct(def);
    let lay = layout(def, a);
    let mut pos = vec![0usize; a.steps.len()];
    for (k, &s) in a.order.iter().enumerate() {
        pos[s] = k;
    }
    let ordered: Vec<(usize, &Step)> = a
        .order
        .iter()
        .enumerate()
        .map(|(k, &s)| (k, &a.steps[s]))
        .collect();

    // ---- outputs
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
            // A value a decider may skip is an `Option` among the outputs.
            None if skippable_slot(a, slot) => {
                let ty = value_type(def, a, slot);
                quote!(::core::option::Option<#ty>)
            }
            None => value_type(def, a, slot),
        })
        .collect();
    let out_fields = def
        .outputs
        .iter()
        .zip(&out_types)
        .map(|(o, ty)| quote!(pub #o: #ty));
    let outputs_doc = format!("The outputs of flow [`{name}`].");
    let finish_fields = def.outputs.iter().zip(&out_slots).map(|(o, &slot)| {
        let f = slot_field(slot);
        if skippable_slot(a, slot) {
            if lay.shared[slot] {
                quote!(#o: ::core::option::Option::map(values.#f.take(), ::taskflow::__private::arc_unwrap))
            } else {
                quote!(#o: values.#f.take())
            }
        } else if lay.shared[slot] {
            quote!(#o: ::taskflow::__private::slot_unwrap(&mut values.#f))
        } else {
            quote!(#o: ::taskflow::__private::slot_take(&mut values.#f))
        }
    });
    let output_impls = out_slots
        .iter()
        .zip(&out_types)
        .enumerate()
        .map(|(i, (&slot, ty))| {
            let f = slot_field(slot);
            let clone = if skippable_slot(a, slot) {
                if lay.shared[slot] {
                    quote!(::core::option::Option::map(values.#f.as_deref(), ::core::clone::Clone::clone))
                } else {
                    quote!(::core::clone::Clone::clone(&values.#f))
                }
            } else {
                let read = lay.read_ref(slot, &quote!(values));
                quote!(::core::clone::Clone::clone(#read))
            };
            quote! {
                impl ::taskflow::__private::Provides<#i> for #name { type Value = #ty; }
                impl ::taskflow::__private::FlowOutput<#i> for #name {
                    fn __clone(values: &__Values) -> #ty { #clone }
                }
            }
        });

    // ---- the values struct
    let slot_fields = (0..a.slots.len()).map(|i| {
        let f = slot_field(i);
        let ty = lay.slot_type(def, a, i);
        quote!(#f: ::core::option::Option<#ty>)
    });
    let subs: Vec<(usize, &Step)> = ordered
        .iter()
        .copied()
        .filter(|(_, s)| s.meta.kind == StepKind::Flow)
        .collect();
    let sub_fields = subs.iter().map(|(k, s)| {
        let f = sub_field(*k);
        let path = &s.r.path;
        quote!(#f: ::core::option::Option<::taskflow::__private::Run<#path>>)
    });
    let slot_inits = a.slots.iter().enumerate().map(|(i, slot)| {
        let f = slot_field(i);
        let value = match slot.source {
            Source::Input(j) => {
                let input = &def.inputs[j].0;
                lay.wrap(i, quote!(inputs.#input))
            }
            Source::Default { .. } => lay.wrap(i, quote!(::core::default::Default::default())),
            Source::Output { .. } | Source::RetryItem { .. } => {
                return quote!(#f: ::core::option::Option::None)
            }
        };
        quote!(#f: ::core::option::Option::Some(#value))
    });
    let sub_inits = subs.iter().map(|(k, _)| {
        let f = sub_field(*k);
        quote!(#f: ::core::option::Option::None)
    });
    // What a failed `map` step finished, kept for its revert.
    let maps: Vec<(usize, &Step)> = ordered
        .iter()
        .copied()
        .filter(|(_, s)| s.map_item.is_some())
        .collect();
    let map_fields = maps.iter().map(|(k, s)| {
        let f = map_field(*k);
        let path = &s.r.path;
        quote!(#f: ::core::option::Option<::std::vec::Vec<::taskflow::__private::MapItem<<#path as ::taskflow::__private::Provides<0>>::Value>>>)
    });
    let map_inits = maps.iter().map(|(k, _)| {
        let f = map_field(*k);
        quote!(#f: ::core::option::Option::None)
    });

    // ---- per step: arguments, run, completion, revert
    let mut args_variants = Vec::new();
    let mut take_args = Vec::new();
    let mut run_arms = Vec::new();
    let mut done_variants = Vec::new();
    let mut finish_arms = Vec::new();
    let mut revert_variants = Vec::new();
    let mut revert_takes = Vec::new();
    let mut revert_arms = Vec::new();
    let mut serial_arms = Vec::new();
    for &(k, step) in &ordered {
        if step.map_item.is_some() {
            let parts = map_parts(def, a, &lay, k, step);
            serial_arms.push(parts.serial_arm);
            args_variants.push(parts.args_variant);
            take_args.push(parts.take_args);
            run_arms.push(parts.run_arm);
            done_variants.push(parts.done_variant);
            finish_arms.push(parts.finish_arm);
            if let Some((variant, take, arm)) = parts.revert {
                revert_variants.push(variant);
                revert_takes.push(take);
                revert_arms.push(arm);
            }
            continue;
        }
        serial_arms.push(serial_arm(def, a, &lay, k, step));
        let v = variant(k);
        let path = &step.r.path;
        let label = &step.label;
        let span = Span::call_site().located_at(graph::step_span(step));
        let slots = &step.args;
        let vars: Vec<Ident> = (0..slots.len())
            .map(|i| format_ident!("__a{}", i, span = span))
            .collect();
        let modes: Vec<Mode> = (0..slots.len())
            .map(|p| mode(a, slots, &step.meta.params, p))
            .collect();
        let owned: Vec<(TokenStream, TokenStream)> = (0..slots.len())
            .map(|p| lay.owned_arg(def, a, modes[p], slots[p], label))
            .collect();
        let arg_tys = owned.iter().map(|(_, ty)| ty);
        let takes = owned.iter().map(|(take, _)| take);
        // The task's flow inputs, which its revert hook receives (never the `&TaskContext`);
        // an optional parameter's hook input is `Option<&T>`.
        let flow_slots: Vec<usize> = slots.iter().flatten().copied().collect();
        let flow_optional: Vec<bool> = slots
            .iter()
            .zip(&step.meta.params)
            .filter(|(s, _)| s.is_some())
            .map(|(_, p)| p.optional)
            .collect();
        let flow_vars: Vec<Ident> = (0..flow_slots.len())
            .map(|i| format_ident!("__i{}", i))
            .collect();
        match step.meta.kind {
            StepKind::Task => {
                args_variants.push(quote!(#v(#(#arg_tys,)*)));
                take_args.push(quote!(#k => __Args::#v(#(#takes,)*),));
                let call_args = modes.iter().zip(&vars).map(|(m, var)| match m {
                    Mode::Ctx => quote_spanned!(span=> &#var),
                    Mode::Ref => quote_spanned!(span=> &*#var),
                    Mode::OptRef => quote_spanned!(span=> ::core::option::Option::as_deref(&#var)),
                    Mode::Value | Mode::OptValue => quote!(#var),
                });
                let call = quote_spanned!(span=> #path(#(#call_args),*));
                let outcome = task_outcome(step, call);
                let outcome = if step.outs.is_empty() {
                    quote!(#outcome.map(|_| ()))
                } else {
                    outcome
                };
                run_arms.push(quote!(__Args::#v(#(#vars,)*) => __Done::#v(#outcome),));
                let out_ty = outputs_type(def, a, step);
                done_variants.push(
                    quote!(#v(::core::result::Result<#out_ty, ::taskflow::__private::Failure>)),
                );
                let store = lay.store_outputs(step);
                finish_arms.push(quote! {
                    __Done::#v(::core::result::Result::Ok(__value)) => { #store ::core::result::Result::Ok(()) }
                    __Done::#v(::core::result::Result::Err(__f)) => {
                        ::core::result::Result::Err(::taskflow::__private::StepFailed::Task(__f))
                    }
                });
                if step.meta.has_revert {
                    let in_tys = flow_slots.iter().map(|&s| {
                        let ty = value_type(def, a, s);
                        if skippable_slot(a, s) {
                            quote!(::core::option::Option<::taskflow::__private::Arc<#ty>>)
                        } else {
                            quote!(::taskflow::__private::Arc<#ty>)
                        }
                    });
                    let out_arcs: Vec<TokenStream> = step
                        .outs
                        .iter()
                        .map(|&s| {
                            let ty = value_type(def, a, s);
                            quote!(::taskflow::__private::Arc<#ty>)
                        })
                        .collect();
                    let outcome_ty = match out_arcs.as_slice() {
                        [] => quote!(()),
                        [one] => one.clone(),
                        many => quote!((#(#many,)*)),
                    };
                    revert_variants.push(quote!(#v(#(#in_tys,)* ::core::result::Result<#outcome_ty, ::taskflow::__private::Failure>)));
                    let in_takes = flow_slots.iter().map(|&s| {
                        let f = slot_field(s);
                        if skippable_slot(a, s) {
                            quote!(::core::clone::Clone::clone(&values.#f))
                        } else {
                            quote!(::taskflow::__private::slot_arc(&values.#f))
                        }
                    });
                    let hook_inputs = flow_slots.iter().zip(&flow_optional).zip(&flow_vars).map(
                        |((&s, &optional), var)| {
                            match (optional, skippable_slot(a, s)) {
                                (true, true) => quote!(::core::option::Option::as_deref(&#var)),
                                // The value itself is an `Option<T>`: lend its contents.
                                (true, false) => quote!(::core::option::Option::as_ref(&**#var)),
                                (false, _) => quote!(&*#var),
                            }
                        },
                    );
                    let out_takes: Vec<TokenStream> = step
                        .outs
                        .iter()
                        .map(|&s| {
                            let f = slot_field(s);
                            quote!(::taskflow::__private::slot_arc(&values.#f))
                        })
                        .collect();
                    let ok = match out_takes.as_slice() {
                        [] => quote!(()),
                        [one] => one.clone(),
                        many => quote!((#(#many,)*)),
                    };
                    revert_takes.push(quote! {
                        #k => __Revert::#v(#(#in_takes,)* match failed {
                            ::core::option::Option::Some(__f) => ::core::result::Result::Err(__f),
                            ::core::option::Option::None => ::core::result::Result::Ok(#ok),
                        }),
                    });
                    let borrowed = match step.outs.len() {
                        0 => quote!(::core::result::Result::Ok(())),
                        1 => quote!(::core::result::Result::Ok(&**__o)),
                        n => {
                            let idx = (0..n).map(syn::Index::from);
                            quote!(::core::result::Result::Ok((#(&*__o.#idx,)*)))
                        }
                    };
                    let bind_o = if step.outs.is_empty() {
                        quote!(())
                    } else {
                        quote!(__o)
                    };
                    revert_arms.push(quote! {
                        __Revert::#v(#(#flow_vars,)* __outcome) => {
                            let __result = match &__outcome {
                                ::core::result::Result::Ok(#bind_o) => #borrowed,
                                ::core::result::Result::Err(__f) => ::core::result::Result::Err(::core::clone::Clone::clone(__f)),
                            };
                            let __r = ::taskflow::__private::catch_async(
                                #label,
                                #path::__taskflow_revert(#(#hook_inputs,)* __result, &failures),
                            ).await;
                            ::taskflow::__private::hook_outcome(#label, __r).err().into_iter().collect()
                        }
                    });
                }
            }
            StepKind::Flow => {
                let f = sub_field(k);
                args_variants.push(quote!(#v(::taskflow::__private::Run<#path>, ::taskflow::__private::RunContext)));
                let make_values = subflow_values(step, takes);
                take_args.push(quote! {
                    #k => __Args::#v(
                        match values.#f.take() {
                            ::core::option::Option::Some(__partial) => __partial,
                            ::core::option::Option::None => ::taskflow::__private::new_run::<#path>(#make_values),
                        },
                        ::core::clone::Clone::clone(run),
                    ),
                });
                run_arms.push(quote! {
                    __Args::#v(__sub, __run) => __Done::#v(::taskflow::__private::run_subflow::<#path>(__sub, #label, __run).await),
                });
                done_variants.push(quote! {
                    #v(::taskflow::__private::SubflowEnd<#path>)
                });
                let copies = step.outs.iter().enumerate().map(|(j, &slot)| {
                    lay.store(
                        slot,
                        quote!(<#path as ::taskflow::__private::FlowOutput<#j>>::__clone(__sub.values())),
                    )
                });
                finish_arms.push(quote! {
                    __Done::#v(::taskflow::__private::SubflowEnd::Done(__sub)) => {
                        #(#copies)*
                        values.#f = ::core::option::Option::Some(__sub);
                        ::core::result::Result::Ok(())
                    }
                    __Done::#v(::taskflow::__private::SubflowEnd::Failed(__e)) => {
                        ::core::result::Result::Err(::taskflow::__private::StepFailed::Flow(__e))
                    }
                    __Done::#v(::taskflow::__private::SubflowEnd::Suspended(__sub)) => {
                        values.#f = ::core::option::Option::Some(__sub);
                        ::core::result::Result::Err(::taskflow::__private::StepFailed::Suspended)
                    }
                });
                revert_variants.push(quote! {
                    #v(::core::option::Option<::taskflow::__private::Run<#path>>, ::taskflow::__private::RunContext)
                });
                revert_takes.push(
                    quote!(#k => __Revert::#v(values.#f.take(), ::core::clone::Clone::clone(run)),),
                );
                revert_arms.push(quote! {
                    __Revert::#v(__sub, __run) => ::taskflow::__private::revert_subflow::<#path>(__sub, #label, failures, __run).await,
                });
            }
        }
    }

    // ---- graph data
    let step_infos = ordered.iter().map(|(_, step)| {
        let label = &step.label;
        let reads = step.reads.iter().zip(&step.meta.params).filter(|(_, p)| !p.ctx).map(|(r, _)| r);
        let writes = step.writes.iter();
        let path = &step.r.path;
        let (exec, sub) = match (step.meta.kind, step.meta.is_async) {
            // A map step waits for its items, which the engine runs: never on a worker itself.
            (StepKind::Task, false) if step.map_item.is_none() => (quote!(Sync), quote!(::core::option::Option::None)),
            (StepKind::Task, _) => (quote!(Async), quote!(::core::option::Option::None)),
            (StepKind::Flow, _) => (
                quote!(Flow),
                quote!(::core::option::Option::Some(<#path as ::taskflow::__private::Flow>::graph)),
            ),
        };
        let sync_hook = step.meta.sync_hook;
        quote!(::taskflow::__private::StepInfo::__new(#label, ::taskflow::__private::Exec::#exec, &[#(#reads),*], &[#(#writes),*], #sub, #sync_hook))
    });
    let edges = a.edges.iter().map(|&(f, t)| {
        let (f, t) = (pos[f], pos[t]);
        quote!((#f, #t))
    });
    let input_names = def.inputs.iter().map(|(n, _)| n.to_string());
    let output_names = def.outputs.iter().map(ToString::to_string);
    let input_params = def.inputs.iter().map(|(n, t)| quote!(#n: #t));
    let input_names_ids = def.inputs.iter().map(|(n, _)| n);
    let collector = flow_collector(def, false);
    let retry_methods = retry_methods(def, a, &lay);
    let decide_method = decide_method(a, &lay, &pos);
    let (durable_methods, durable_gate) = durable_parts(def, a, &lay, &ordered);
    let mut guarded: Vec<usize> = a
        .deciders
        .iter()
        .filter_map(|d| d.to)
        .map(|s| pos[s])
        .collect();
    guarded.sort_unstable();
    guarded.dedup();
    let scope_infos = a.scopes.iter().enumerate().map(|(i, scope)| {
        let parent = match scope.parent {
            Some(p) => quote!(::core::option::Option::Some(#p)),
            None => quote!(::core::option::Option::None),
        };
        let mut steps: Vec<usize> = a.scope_steps(i).into_iter().map(|s| pos[s]).collect();
        steps.sort_unstable();
        quote!(::taskflow::__private::ScopeInfo::__new(#parent, &[#(#steps),*]))
    });

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
            pub struct __Values {
                #(#slot_fields,)*
                #(#sub_fields,)*
                #(#map_fields,)*
            }

            #[doc(hidden)]
            #[allow(clippy::large_enum_variant)]
            pub enum __Done { #(#done_variants,)* }

            #[allow(clippy::large_enum_variant)]
            enum __Args { #(#args_variants,)* }

            #[allow(clippy::large_enum_variant)]
            enum __Revert { __Nothing, #(#revert_variants,)* }

            static __GRAPH: ::taskflow::__private::FlowGraph = ::taskflow::__private::FlowGraph::__new(
                #name_str,
                &[#(#input_names),*],
                &[#(#output_names),*],
                &[#(#step_infos),*],
                &[#(#edges),*],
                &[#(#scope_infos),*],
                &[#(#guarded),*],
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

            #[allow(unused_variables, unreachable_code, unreachable_patterns, clippy::all)]
            impl ::taskflow::__private::Flow for #name {
                type Inputs = #inputs_ty;
                type Outputs = #outputs_ty;
                type Values = __Values;
                type Done = __Done;
                const NAME: &'static str = #name_str;

                fn graph() -> &'static ::taskflow::__private::FlowGraph {
                    &__GRAPH
                }

                fn __values(inputs: #inputs_ty) -> __Values {
                    __Values {
                        #(#slot_inits,)*
                        #(#sub_inits,)*
                        #(#map_inits,)*
                    }
                }

                fn __start(
                    values: &mut __Values,
                    step: usize,
                    run: &::taskflow::__private::RunContext,
                ) -> impl ::core::future::Future<Output = __Done> + ::core::marker::Send + 'static {
                    let args = match step {
                        #(#take_args)*
                        _ => ::core::unreachable!("taskflow internal error: no step {}", step),
                    };
                    async move {
                        match args {
                            #(#run_arms)*
                        }
                    }
                }

                fn __run_step<'__a>(
                    values: &'__a mut __Values,
                    step: usize,
                    run: &'__a ::taskflow::__private::RunContext,
                ) -> impl ::core::future::Future<Output = ::core::result::Result<(), ::taskflow::__private::StepFailed>> + ::core::marker::Send + '__a {
                    async move {
                        match step {
                            #(#serial_arms)*
                            _ => ::core::unreachable!("taskflow internal error: no step {}", step),
                        }
                    }
                }

                fn __finish(
                    values: &mut __Values,
                    done: __Done,
                ) -> ::core::result::Result<(), ::taskflow::__private::StepFailed> {
                    match done {
                        #(#finish_arms)*
                    }
                }

                fn __revert(
                    values: &mut __Values,
                    step: usize,
                    failed: ::core::option::Option<::taskflow::__private::Failure>,
                    failures: ::taskflow::__private::Arc<[::taskflow::__private::Failure]>,
                    run: &::taskflow::__private::RunContext,
                ) -> impl ::core::future::Future<Output = ::std::vec::Vec<::taskflow::__private::Failure>> + ::core::marker::Send + 'static {
                    let args = match step {
                        #(#revert_takes)*
                        _ => __Revert::__Nothing,
                    };
                    async move {
                        match args {
                            __Revert::__Nothing => ::std::vec::Vec::new(),
                            #(#revert_arms)*
                        }
                    }
                }

                fn __outputs(mut values: __Values) -> #outputs_ty {
                    #outputs_ty { #(#finish_fields,)* }
                }

                #retry_methods

                #decide_method

                #durable_methods
            }

            #durable_gate
        };
    }
}

fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
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
            .map(|(n, ty)| ParamMeta {
                name: n.to_string(),
                by_ref: false,
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

/// `<T as Storable>::save(..)` / `::load(..)`: callable in the `DurableFlow` impl, whose bounds
/// say every stored type is `Storable`.
fn json_call(ty: &TokenStream, method: &str, arg: TokenStream) -> TokenStream {
    let method = format_ident!("{}", method);
    quote!(<#ty as ::taskflow::__private::StorableIn<'__d>>::#method(#arg))
}

/// The methods a durable run calls: a step's result and the inputs to and from JSON, sub-flow
/// restoration and the type names of the fingerprint; and the `DurableFlow` gate.
fn durable_parts(
    def: &FlowDef,
    a: &Analysis,
    lay: &Layout,
    ordered: &[(usize, &Step)],
) -> (TokenStream, TokenStream) {
    let name = &def.name;
    let inputs_ty = inputs_ident(def);
    let mut save_arms = Vec::new();
    let mut load_arms = Vec::new();
    let mut restore_arms = Vec::new();
    for &(k, step) in ordered {
        let outs = &step.outs;
        let save_one = |s: usize| {
            let ty = value_type(def, a, s);
            let read = lay.read_ref(s, &quote!(values));
            json_call(&ty, "save", read)
        };
        // Loads slot `s` from JSON `from`; an error names `field` when there is one.
        let load_one = |s: usize, from: TokenStream, field: Option<&str>| {
            let ty = value_type(def, a, s);
            let mut call = json_call(&ty, "load", from);
            if let Some(field) = field {
                call = quote!(::taskflow::__private::in_field(#field, #call));
            }
            let store = lay.store(s, quote!(__v));
            quote! { let __v: #ty = #call?; #store }
        };
        match outs.as_slice() {
            [] => {}
            [one] => {
                let save = save_one(*one);
                let load = load_one(*one, quote!(result), None);
                save_arms.push(quote!(#k => #save,));
                load_arms.push(quote!(#k => { #load ::core::result::Result::Ok(()) }));
            }
            many => {
                let names: Vec<&str> = many.iter().map(|&s| a.slots[s].name.as_str()).collect();
                let saves = many.iter().map(|&s| save_one(s));
                save_arms.push(quote! {
                    #k => {
                        let mut __m = ::taskflow::__private::serde_json_map();
                        #( __m.insert(::std::string::String::from(#names), ::taskflow::__private::in_field(#names, #saves)?); )*
                        ::core::result::Result::Ok(::taskflow::__private::JsonValue::Object(__m))
                    }
                });
                let loads = many.iter().zip(&names).map(|(&s, n)| {
                    load_one(
                        s,
                        quote!(::taskflow::__private::json_field(result, #n)?),
                        Some(n),
                    )
                });
                load_arms.push(quote!(#k => { #(#loads)* ::core::result::Result::Ok(()) }));
            }
        }
        if step.meta.kind == StepKind::Flow {
            let path = &step.r.path;
            let label = &step.label;
            let f = sub_field(k);
            let takes = (0..step.args.len()).map(|p| {
                let m = mode(a, &step.args, &step.meta.params, p);
                lay.owned_arg(def, a, m, step.args[p], label).0
            });
            let make_values = subflow_values(step, takes);
            restore_arms.push(quote! {
                #k => {
                    let mut __sub = ::taskflow::__private::new_run::<#path>(#make_values);
                    <#path as ::taskflow::__private::SubflowIn<'__d>>::__restore(&mut __sub, &stored.within(#label), run)?;
                    values.#f = ::core::option::Option::Some(__sub);
                    ::core::result::Result::Ok(())
                }
            });
        }
    }

    let input_names: Vec<String> = def.inputs.iter().map(|(n, _)| n.to_string()).collect();
    let input_ids: Vec<&Ident> = def.inputs.iter().map(|(n, _)| n).collect();
    let input_saves = def
        .inputs
        .iter()
        .map(|(n, ty)| json_call(&quote!(#ty), "save", quote!(&inputs.#n)));
    let input_loads = def.inputs.iter().zip(&input_names).map(|((_, ty), n)| {
        let call = json_call(
            &quote!(#ty),
            "load",
            quote!(::taskflow::__private::json_field(inputs, #n)?),
        );
        quote!(::taskflow::__private::in_field(#n, #call)?)
    });

    // Every value a store keeps: the inputs and each step's outputs (retry items and defaults
    // are recomputed, not stored).
    let mut types: Vec<TokenStream> = def.inputs.iter().map(|(_, ty)| quote!(#ty)).collect();
    for (i, slot) in a.slots.iter().enumerate() {
        if matches!(slot.source, Source::Output { .. }) {
            types.push(value_type(def, a, i));
        }
    }
    let mut seen = std::collections::HashSet::new();
    types.retain(|t| seen.insert(t.to_string()));
    let subs: Vec<&syn::Path> = ordered
        .iter()
        .filter(|(_, s)| s.meta.kind == StepKind::Flow)
        .map(|(_, s)| &s.r.path)
        .collect();

    let durable_methods = quote! {
        fn __save_step(values: &__Values, step: usize) -> ::core::result::Result<::taskflow::__private::JsonValue, ::taskflow::__private::ValueError> {
            match step {
                #(#save_arms)*
                _ => ::core::result::Result::Ok(::taskflow::__private::JsonValue::Null),
            }
        }

        fn __load_step(values: &mut __Values, step: usize, result: &::taskflow::__private::JsonValue) -> ::core::result::Result<(), ::taskflow::__private::ValueError> {
            match step {
                #(#load_arms)*
                _ => ::core::result::Result::Ok(()),
            }
        }

        fn __save_inputs(inputs: &#inputs_ty) -> ::core::result::Result<::taskflow::__private::JsonValue, ::taskflow::__private::ValueError> {
            let mut __m = ::taskflow::__private::serde_json_map();
            #( __m.insert(::std::string::String::from(#input_names), ::taskflow::__private::in_field(#input_names, #input_saves)?); )*
            ::core::result::Result::Ok(::taskflow::__private::JsonValue::Object(__m))
        }

        fn __load_inputs(inputs: &::taskflow::__private::JsonValue) -> ::core::result::Result<#inputs_ty, ::taskflow::__private::ValueError> {
            ::core::result::Result::Ok(#inputs_ty { #(#input_ids: #input_loads,)* })
        }

        fn __restore_sub(
            values: &mut __Values,
            step: usize,
            stored: &::taskflow::__private::Restore<'_>,
            run: &::taskflow::__private::RunContext,
        ) -> ::core::result::Result<(), ::taskflow::store::StoreError> {
            match step {
                #(#restore_arms)*
                _ => ::core::result::Result::Ok(()),
            }
        }

        fn __register(registry: &mut ::taskflow::__private::Registry) {
            registry.add::<__Values>(<Self as ::taskflow::__private::DurableFlow>::__save_step);
            #( <#subs as ::taskflow::__private::SubflowIn<'__d>>::__register(registry); )*
        }
    };
    let flow_methods = quote! {
        fn __types(out: &mut ::std::vec::Vec<&'static str>) {
            #( out.push(::core::any::type_name::<#types>()); )*
            #( <#subs as ::taskflow::__private::Flow>::__types(out); )*
        }
    };
    // The bounds mention the impl's lifetime so that rustc checks them where the impl is used
    // (a run with a store), not here: a flow with a value that is not serializable still
    // compiles and runs in memory (see `StorableIn`).
    let gate = quote! {
        #[allow(unused_variables, unreachable_code, unreachable_patterns, clippy::all)]
        impl<'__d> ::taskflow::__private::DurableFlow for #name
        where
            #( #types: ::taskflow::__private::StorableIn<'__d>, )*
            #( #subs: ::taskflow::__private::SubflowIn<'__d>, )*
        {
            #durable_methods
        }
    };
    (flow_methods, gate)
}
