//! A sub-flow step: it holds the sub-flow's `Run` (so a suspended or finished sub-flow keeps its
//! own status), runs it with the engine's driver, copies its outputs into the parent's slots, and
//! is undone by reverting that run.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::super::graph::Step;
use super::values::{ident, local, mode, Mode};
use super::{Emit, StepCode};

pub fn code(e: &Emit, s: usize, step: &Step, name: &Ident) -> StepCode {
    let path = &step.r.path;
    let label = &step.label;
    let field = e.values.step_field(s);
    let (v, run, out, sub, cx) = (
        local("v"),
        local("run"),
        local("out"),
        local("sub"),
        local("cx"),
    );
    let (undo, stored) = (local("undo"), local("stored"));
    // The retry attempts around this step, for the idempotency keys of the sub-flow's steps.
    let (at, step_var, attempts) = (local("at"), local("step"), local("attempts"));
    let within = quote!(#at.__within(#run, #step_var));
    // A sub-flow's inputs are taken by value: moved or cloned out of the parent's slots, each
    // through its binding's check, which names the sub-flow and the input when the value's type
    // is not the input's.
    let modes: Vec<Mode> = (0..step.args.len())
        .map(|p| mode(e.a, &step.args, &step.meta.params, p))
        .collect();
    let inputs: Vec<TokenStream> = (0..step.args.len())
        .map(|p| e.values.owned(e.def, e.a, modes[p], step.args[p], label).0)
        .collect();
    let span = Span::call_site().located_at(step.r.span());
    let (checks, inputs) = super::binding::checked(e.a, &e.def.name, step, &inputs, &modes, span);
    let values = subflow_values(step, inputs.into_iter());
    let function = quote! {
        fn #name(#v: &mut __Values) -> __tf::Run<#path> {
            #checks
            __tf::subflow_run(&mut #v.#field, || #values)
        }
    };
    // Its outputs, by the sub-flow's names, into the parent's slots (renamed or not).
    let copies = step
        .outs
        .iter()
        .zip(&step.meta.provides)
        .map(|(&slot, provided)| {
            let f = e.values.field(slot);
            let provided = ident(provided, Span::call_site());
            quote!(#v.#f.set(#out.#provided);)
        });
    let finish = quote!({
        let #out = __tf::subflow_done(#out, &mut #v.#field)?;
        #(#copies)*
    });
    let args_enum = e.args_enum(label);
    let run_done = e.done(
        name,
        quote!(__tf::run_subflow(#sub, #label, #cx, #attempts).await),
    );
    StepCode {
        function,
        args: quote!(#name(__tf::Run<#path>, __tf::RunContext, __tf::String)),
        done: quote!(#name(__tf::SubflowEnd<#path>)),
        serial: e.done(
            name,
            quote!(__tf::run_subflow(__Steps::#name(#v), #label, #run.clone(), #within).await),
        ),
        take: quote!(#args_enum::#name(__Steps::#name(#v), #run.clone(), #within)),
        run: quote!(#args_enum::#name(#sub, #cx, #attempts) => #run_done),
        finish,
        revert: Some(quote!(__tf::revert_subflow(&mut #v.#field, #label, #undo))),
        restore: Some(
            quote!(__tf::restore_subflow(__Steps::#name(#v), &mut #v.#field, #stored, #label, #run)),
        ),
        items: TokenStream::new(),
    }
}

/// A sub-flow step's new values, from its inputs `args` (in the sub-flow's input order), spanned
/// at the step so a type error points there.
fn subflow_values(step: &Step, args: impl Iterator<Item = TokenStream>) -> TokenStream {
    let path = &step.r.path;
    let span = Span::call_site().located_at(step.r.span());
    quote_spanned!(span=> #path::__taskflow_values(#(#args),*))
}
