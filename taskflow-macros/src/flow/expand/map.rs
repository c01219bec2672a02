//! A `map task over values` step: it runs its task once per element of a `Vec` (one after another
//! on the serial engine, all at once on the parallel engine) and provides a `Vec` of outputs in
//! input order. On failure the finished items are kept, so each is reverted on its own.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::super::graph::Step;
use super::values::{bare, local, mode, param_names, skippable, value_type, Mode};
use super::{Emit, StepCode};

/// The names the step's functions use themselves.
const RESERVED: &[&str] = &[
    "items", "run", "n", "i", "run_item", "v", "undo", "failures", "result",
];

/// The type of what a `map` step of task `path` finished when it failed: its field's (in a
/// `Slot`), and what a durable run stores with the step's FAILURE.
pub fn finished_type(path: &syn::Path) -> TokenStream {
    quote!(__tf::Vec<__tf::MapItem<__tf::Out<#path, 0>>>)
}

pub fn code(e: &Emit, s: usize, step: &Step, name: &Ident) -> StepCode {
    let path = &step.r.path;
    let label = &step.label;
    let span = Span::call_site().located_at(step.r.span());
    let item = step.map_item.expect("a map step");
    let items_slot = step.args[item].expect("bound by analysis");
    let items_f = e.values.field(items_slot);
    let items_ty = value_type(e.def, e.a, items_slot);
    let out_f = e.values.field(step.outs[0]);
    let finished = e.values.step_field(s);
    let elem_ty = quote!(__tf::Out<#path, 0>);
    let (v, run, out, items, n, i, run_item) = (
        local("v"),
        local("run"),
        local("out"),
        local("items"),
        local("n"),
        local("i"),
        local("run_item"),
    );
    let params = param_names(step, RESERVED);
    let modes: Vec<Mode> = (0..step.args.len())
        .map(|p| mode(e.a, &step.args, &step.meta.params, p))
        .collect();

    // The other arguments, owned once; each item's run gets its own copy (or a borrow).
    let others: Vec<usize> = (0..step.args.len()).filter(|&p| p != item).collect();
    let owned: Vec<(TokenStream, TokenStream)> = others
        .iter()
        .map(|&p| e.values.owned(e.def, e.a, modes[p], step.args[p], label))
        .collect();
    let vars: Vec<&Ident> = others.iter().map(|&p| &params[p]).collect();
    let other_tys: Vec<&TokenStream> = owned.iter().map(|(_, ty)| ty).collect();
    let takes: Vec<&TokenStream> = owned.iter().map(|(take, _)| take).collect();
    let (item_checks, elements) = items_check(e, step, items_slot);
    // Spanned on the value after `over`, with the argument: rustc reports a bound there.
    let over_span =
        Span::call_site().located_at(step.r.map_over.as_ref().expect("a map step").span());
    let element = quote_spanned!(over_span=> #elements::at({ &*#items }, #i));
    let values: Vec<TokenStream> = (0..step.args.len())
        .map(|p| {
            if p == item {
                return if step.meta.params[item].by_ref {
                    element.clone()
                } else {
                    quote!(::core::clone::Clone::clone(#element))
                };
            }
            let var = &params[p];
            // On the step, like the task's own parameters: an error about the value is there.
            match modes[p] {
                // Each item is an execution of its own, with its own idempotency key.
                Mode::Ctx => quote!(&#var.__item(#i)),
                // The value itself, not its `Arc` handle: a mismatch names the value's type.
                Mode::Ref => quote_spanned!(span=> &*#var),
                Mode::OptRef => quote_spanned!(span=> #var.as_deref()),
                Mode::Value | Mode::OptValue => {
                    quote_spanned!(span=> ::core::clone::Clone::clone(&#var))
                }
            }
        })
        .collect();
    // Every value passes through its binding's check (the item's names the elements).
    let (checks, call_args) =
        super::binding::checked(e.a, &e.def.name, step, &values, &modes, span);
    let call = quote_spanned!(span=> #path(#(#call_args),*));
    let normalize = |outcome: TokenStream| {
        if step.meta.fallible {
            quote!(#path::__taskflow_outcome(#label, #outcome))
        } else {
            outcome
        }
    };
    let done_async = e.done(name, quote!(__tf::map_async(&#run, #n, #run_item).await));
    let done_sync = e.done(name, quote!(__tf::map_sync(&#run, #n, #run_item).await));
    let args_enum = e.args_enum(label);
    let body = if step.meta.is_async {
        let outcome = normalize(quote!(__tf::catch_async(#label, #call).await));
        quote! {
            let #run_item = move |#i: usize| {
                let #items = __tf::Arc::clone(&#items);
                #(let #vars = ::core::clone::Clone::clone(&#vars);)*
                async move { #outcome }
            };
            #done_async
        }
    } else {
        let outcome = normalize(quote!(__tf::catch_sync(#label, || #call)));
        quote! {
            let #run_item = move |#i: usize| #outcome;
            #done_sync
        }
    };
    let count = quote_spanned!(over_span=> #elements::len({ &*#items }));
    let function = quote! {
        async fn #name(#items: __tf::Arc<#items_ty>, #(#vars: #other_tys,)* #run: __tf::RunContext) -> __Done {
            #checks
            let #n = #count;
            #body
        }
    };
    StepCode {
        function,
        args: quote!(#name(__tf::Arc<#items_ty>, #(#other_tys,)* __tf::RunContext)),
        done: quote!(#name(__tf::MapOutcome<#elem_ty>)),
        serial: quote!(__Steps::#name(#v.#items_f.arc(), #(#takes,)* #run.clone()).await),
        take: quote!(#args_enum::#name(#v.#items_f.arc(), #(#takes,)* #run.clone())),
        run: quote!(#args_enum::#name(#items, #(#vars,)* #run) => __Steps::#name(#items, #(#vars,)* #run).await),
        finish: quote!(#v.#out_f.set(__tf::map_done(#out, &mut #v.#finished)?)),
        revert: revert(e, s, step),
        restore: None,
        items: item_checks,
    }
}

/// How map step `step` reads the elements of the value it iterates (slot `items`): through a
/// check whose message names the step, the value and where it comes from when that value is not
/// a `Vec`, spanned on the value after `over`. The check's items (in the step's function), and
/// its name, whose `len(&items)` and `at(&items, i)` read the elements.
fn items_check(e: &Emit, step: &Step, items: usize) -> (TokenStream, Ident) {
    let over = step.r.map_over.as_ref().expect("a map step");
    let span = Span::call_site().located_at(over.span());
    let message = format!(
        "map step `{}` runs once per element of {}, which must be a `Vec`, but it is `{{Self}}`",
        step.label,
        super::values::origin(e.a, items)
    );
    let elements = super::values::check_ident(
        &e.def.name,
        &format!("elements_of_{}", bare(&step.label)),
        span,
    );
    let checks = quote! {
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(
            message = #message,
            label = "not a `Vec`",
            note = "`map task over values` runs the task once per element of a `Vec` value"
        )]
        trait #elements<E: ?::core::marker::Sized> {
            fn len(v: &Self) -> usize;
            fn at(v: &Self, i: usize) -> &E;
        }
        // Not recommended: rustc would add "`Vec<E>` implements it", pointing at `flow!`.
        #[diagnostic::do_not_recommend]
        impl<E> #elements<E> for __tf::Vec<E> {
            #[inline(always)]
            fn len(v: &Self) -> usize {
                v.len()
            }
            #[inline(always)]
            fn at(v: &Self, i: usize) -> &E {
                &v[i]
            }
        }
    };
    (checks, elements)
}

/// The step's revert, an arm of `__revert`: the hook of each finished item, newest first, with
/// the task's inputs (this item's element for the mapped parameter) and this item's outcome; the
/// failed item's with its failure.
fn revert(e: &Emit, s: usize, step: &Step) -> Option<TokenStream> {
    if !step.meta.has_revert {
        return None;
    }
    let path = &step.r.path;
    let label = &step.label;
    let item = step.map_item.expect("a map step");
    let out_f = e.values.field(step.outs[0]);
    let finished = e.values.step_field(s);
    let [v, undo, i, result, failures] = ["v", "undo", "i", "result", "failures"].map(local);
    let params = param_names(step, RESERVED);
    let (vars, handles, read) = super::task::hook_handles(e, step, &params, &v);
    let mut inputs = Vec::new();
    for (p, slot) in read {
        let var = &params[p];
        inputs.push(if p == item {
            // Not through the elements' checks: the step's function reports a mismatch, and
            // this reads nothing in a crate that has one (see `__private::ElementOf`).
            let input = format_ident!("__taskflow_input_{}", p);
            quote!({
                use __tf::{LendElement as _, NoElement as _};
                __tf::element_of(#path::#input, &**#var, #i).element()
            })
        } else {
            match (step.meta.params[p].optional, skippable(e.a, slot)) {
                (true, true) => quote!(#var.as_deref().and_then(__tf::OptLends::opt_lend)),
                (true, false) => quote!(__tf::OptLends::opt_lend(&**#var)),
                (false, _) => quote!(#var),
            }
        });
    }
    Some(quote! {
        __tf::revert_map(
            #label,
            #undo,
            || #v.#out_f.arc(),
            &mut #v.#finished,
            (#(#handles,)*),
            |(#(#vars,)*), #i, #result, #failures| {
                __tf::Box::pin(#path::__taskflow_revert(#(#inputs,)* #result, #failures))
            },
        )
    })
}
