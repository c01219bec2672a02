//! A task step: its function (the task called with the values it reads, its outcome normalized),
//! what each engine passes it, how its outputs are stored, and its revert.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::super::graph::Step;
use super::values::{local, mode, param_names, skippable, value_type, Mode, Values};
use super::{Emit, StepCode};

pub fn code(e: &Emit, step: &Step, name: &Ident) -> StepCode {
    let label = &step.label;
    let path = &step.r.path;
    let span = Span::call_site().located_at(step.r.span());
    let params = param_names(step, &[]);
    let modes: Vec<Mode> = (0..step.args.len())
        .map(|p| mode(e.a, &step.args, &step.meta.params, p))
        .collect();

    // The function: typed parameters, so a value of the wrong type is reported at the task's call,
    // on the step.
    let param_tys = modes.iter().zip(&step.args).map(|(m, slot)| {
        let ty = slot.map(|s| value_type(e.def, e.a, s));
        match m {
            Mode::Ctx => quote!(&__tf::TaskContext),
            Mode::Value => quote!(#ty),
            Mode::Ref => quote!(&#ty),
            Mode::OptValue => quote!(__tf::Option<#ty>),
            Mode::OptRef => quote!(__tf::Option<&#ty>),
        }
    });
    // Each value passes through its binding's check, which names the step and the parameter
    // when its type is not what the task takes.
    let values: Vec<TokenStream> = params.iter().map(|p| quote!(#p)).collect();
    let (checks, args) = super::binding::checked(e.a, &e.def.name, step, &values, &modes, span);
    let call = quote_spanned!(span=> #path(#(#args),*));
    let ran = local("ran");
    let caught = if step.meta.is_async {
        quote!(__tf::catch_async(#label, #call).await)
    } else {
        quote!(__tf::catch_sync(#label, move || #call))
    };
    // A fallible task's error becomes a failure of the step; outputs the step does not provide
    // are dropped.
    let mut outcome = if step.meta.fallible {
        quote!(#path::__taskflow_outcome(#label, #ran))
    } else {
        quote!(#ran)
    };
    if step.outs.is_empty() {
        outcome = quote!(#outcome.map(|_| ()));
    }
    let asyncness = step.meta.is_async.then(|| quote!(async));
    let done = e.done(name, outcome);
    let function = quote! {
        #asyncness fn #name(#(#params: #param_tys),*) -> __Done {
            #checks
            let #ran = #caught;
            #done
        }
    };
    let awaited = step.meta.is_async.then(|| quote!(.await));

    // The serial engine borrows; the parallel engine's future owns what it reads.
    let borrowed = modes
        .iter()
        .zip(&step.args)
        .map(|(&m, &slot)| e.values.borrowed(m, slot, label));
    let serial = quote!(__Steps::#name(#(#borrowed),*)#awaited);
    let owned: Vec<(TokenStream, TokenStream)> = modes
        .iter()
        .zip(&step.args)
        .map(|(&m, &slot)| e.values.owned(e.def, e.a, m, slot, label))
        .collect();
    let (takes, owned_tys): (Vec<_>, Vec<_>) = owned.into_iter().unzip();
    let lent = modes.iter().zip(&params).map(|(&m, p)| Values::lent(m, p));
    let out_ty = super::values::outputs_type(e.def, e.a, step);

    let args_enum = e.args_enum(label);
    StepCode {
        function,
        args: quote!(#name(#(#owned_tys),*)),
        done: quote!(#name(__tf::Outcome<#out_ty>)),
        serial,
        take: quote!(#args_enum::#name(#(#takes),*)),
        run: quote!(#args_enum::#name(#(#params),*) => __Steps::#name(#(#lent),*)#awaited),
        finish: store(e, step),
        revert: revert(e, step),
        restore: None,
        items: TokenStream::new(),
    }
}

/// `__finish`'s arm for the step's `__Done::name(out)`: its outputs into their slots.
fn store(e: &Emit, step: &Step) -> TokenStream {
    let v = local("v");
    let out = local("out");
    match step.outs.as_slice() {
        [] => quote!(#out?),
        [one] => {
            let f = e.values.field(*one);
            quote!(#v.#f.set(#out?))
        }
        many => {
            let fields: Vec<&Ident> = many.iter().map(|&s| e.values.field(s)).collect();
            quote!({
                let (#(#fields,)*) = #out?;
                #(#v.#fields.set(#fields);)*
            })
        }
    }
}

/// The parameters of `step`'s revert hook that read a flow value: their variables, the handle on
/// each value that the hook's future owns (`v.slot.arc()`, or `opt_arc()` for a value a decider
/// may have skipped), and which parameter reads which slot.
pub(super) fn hook_handles<'p>(
    e: &Emit,
    step: &Step,
    params: &'p [Ident],
    v: &Ident,
) -> (Vec<&'p Ident>, Vec<TokenStream>, Vec<(usize, usize)>) {
    let mut vars = Vec::new();
    let mut handles = Vec::new();
    let mut read = Vec::new();
    for (p, slot) in step.args.iter().enumerate() {
        let Some(slot) = *slot else { continue };
        let f = e.values.field(slot);
        vars.push(&params[p]);
        handles.push(if skippable(e.a, slot) {
            quote!(#v.#f.opt_arc())
        } else {
            quote!(#v.#f.arc())
        });
        read.push((p, slot));
    }
    (vars, handles, read)
}

/// The step's revert, an arm of `__revert`: its hook, with the task's flow inputs and how the
/// step ended (its outputs, or its own failure when it is the step that failed).
fn revert(e: &Emit, step: &Step) -> Option<TokenStream> {
    if !step.meta.has_revert {
        return None;
    }
    let label = &step.label;
    let path = &step.r.path;
    let [v, undo, failures, result] = ["v", "undo", "failures", "result"].map(local);
    let params = param_names(step, &["v", "undo", "failures", "result"]);
    // The hook gets every parameter that reads a flow value (never the `&TaskContext`), by
    // reference; an optional one as `Option<&T>`. Its future owns a handle on each.
    let (vars, handles, read) = hook_handles(e, step, &params, &v);
    let mut inputs = Vec::new();
    for (p, slot) in read {
        let var = &params[p];
        inputs.push(match (step.meta.params[p].optional, skippable(e.a, slot)) {
            // A value that is an `Option` itself (a sub-flow's skippable output): its contents.
            (true, true) => quote!(#var.as_deref().and_then(__tf::OptLends::opt_lend)),
            (true, false) => quote!(__tf::OptLends::opt_lend(&*#var)),
            (false, _) => quote!(&#var),
        });
    }
    let lets = match (vars.as_slice(), handles.as_slice()) {
        ([], _) => quote!(),
        ([var], [handle]) => quote!(let #var = #handle;),
        _ => quote!(let (#(#vars),*) = (#(#handles),*);),
    };
    let fields: Vec<&Ident> = step.outs.iter().map(|&s| e.values.field(s)).collect();
    let (outputs, lend) = match fields.as_slice() {
        [] => (quote!(()), quote!(#result)),
        [one] => (quote!(#v.#one.arc()), quote!(&#result)),
        many => {
            let tmps: Vec<Ident> = (0..many.len()).map(|i| local(&format!("o{i}"))).collect();
            (
                quote!((#(#v.#many.arc(),)*)),
                quote!(#result.as_ref().map(|(#(#tmps,)*)| (#(&**#tmps,)*)).map_err(__tf::Failure::clone)),
            )
        }
    };
    Some(quote!({
        #lets
        let (#result, #failures) = #undo.outcome(|| #outputs);
        __tf::revert(#label, async move {
            #path::__taskflow_revert(#(#inputs,)* #lend, &#failures).await
        })
    }))
}
