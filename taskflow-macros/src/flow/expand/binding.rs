//! The type check of each binding, in our words: a step's parameter (a sub-flow's input, a
//! decider's parameter) reads a flow value through a trait made for that one binding, whose
//! `#[diagnostic::on_unimplemented]` message names the step, the parameter and where the value
//! comes from. The parameter's type is inferred from the task's signature at the call, so a
//! mismatch is that trait's one error (`E0277`), spanned on the step, and never also rustc's
//! `mismatched types` at the call.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::super::graph::{Analysis, Source, Step};
use super::values::check_ident;
use super::values::{bare, origin, Mode};
use crate::checks::{identity_check, identity_check_noted};
use crate::meta::StepKind;

/// Who reads the values being checked, for the checks' messages and names.
pub struct Reader<'r> {
    /// "step `attach`", "sub-flow `Attach`", "decider `big_enough` (on the link into ..)".
    pub who: String,
    /// "parameter" or "input".
    pub param_word: &'static str,
    /// What the checks' trait names start with, after the flow's name.
    pub name: String,
    pub args: &'r [Option<usize>],
    pub params: &'r [crate::meta::ParamMeta],
    /// A map step's item parameter, which reads each element of the value.
    pub map_item: Option<usize>,
}

impl<'r> Reader<'r> {
    pub fn step(step: &'r Step) -> Reader<'r> {
        let (kind, param_word) = match step.meta.kind {
            StepKind::Flow => ("sub-flow", "input"),
            StepKind::Task => ("step", "parameter"),
        };
        Reader {
            who: format!("{kind} `{}`", step.label),
            param_word,
            name: bare(&step.label).to_owned(),
            args: &step.args,
            params: &step.meta.params,
            map_item: step.map_item,
        }
    }
}

/// The argument expressions of `step`'s call: each `values[p]` (which gives what mode `modes[p]`
/// reads: a `T`, a `&T`, an `Option<T>` or an `Option<&T>`) through its binding's check; one
/// in mode `Ctx` is passed as it is. And the checks' items, to go in the function that makes the
/// call, before it.
pub fn checked(
    a: &Analysis,
    flow: &Ident,
    step: &Step,
    values: &[TokenStream],
    modes: &[Mode],
    span: Span,
) -> (TokenStream, Vec<TokenStream>) {
    checked_for(a, flow, &Reader::step(step), values, modes, span)
}

/// [`checked`] for any reader of flow values (a decider too).
pub fn checked_for(
    a: &Analysis,
    flow: &Ident,
    reader: &Reader,
    values: &[TokenStream],
    modes: &[Mode],
    span: Span,
) -> (TokenStream, Vec<TokenStream>) {
    let mut items = TokenStream::new();
    let mut args = Vec::new();
    for (p, (param, &mode)) in values.iter().zip(modes).enumerate() {
        let slot = match (mode, reader.args[p]) {
            (Mode::Ctx, _) | (_, None) => None,
            (_, Some(slot)) if matches!(a.slots[slot].source, Source::Default { .. }) => None,
            (_, Some(slot)) => Some(slot),
        };
        let Some(slot) = slot else {
            args.push(quote!(#param));
            continue;
        };
        let pname = bare(&reader.params[p].name);
        // What the parameter takes, the signature of the check's `pass`, and, for a parameter
        // that lends (a `&P` reads a `T` that dereferences to a `P`, `__tf::Lends`), how `pass`
        // lends it; any other passes the value as it is.
        // An `Option<&P>` reads through `__tf::OptLends`: also an `Option` value's contents.
        let (takes, sig, lend) = match mode {
            Mode::Ref => (
                "&{Self}",
                quote!(fn pass(v: &T) -> &Self),
                Some((quote!(__tf::Lends), quote!(__tf::Lends::lend(v)))),
            ),
            Mode::OptRef => (
                "Option<&{Self}>",
                quote!(fn pass(v: __tf::Option<&T>) -> __tf::Option<&Self>),
                Some((
                    quote!(__tf::OptLends),
                    quote!(v.and_then(|v| __tf::OptLends::opt_lend(v))),
                )),
            ),
            Mode::OptValue => (
                "Option<{Self}>",
                quote!(fn pass(v: __tf::Option<T>) -> __tf::Option<Self>),
                None,
            ),
            _ => ("{Self}", quote!(fn pass(v: T) -> Self), None),
        };
        // A map step's item parameter reads each element of the value it maps over.
        let (who, word) = (&reader.who, reader.param_word);
        let message = if reader.map_item == Some(p) {
            format!(
                "map {who} {word} `{pname}` takes `{takes}`, but the elements of {} are `{{T}}`",
                origin(a, slot)
            )
        } else {
            format!(
                "{who} {word} `{pname}` takes `{takes}`, but {} is `{{T}}`",
                origin(a, slot)
            )
        };
        let label = format!("`{pname}` reads a `{{T}}` here");
        let trait_name = check_ident(flow, &format!("{}_{pname}", reader.name), span);
        items.extend(match lend {
            // `I` counts the dereferences from `T` to `P`; rustc infers it. The impl is not
            // recommended, so a failure is this trait's, with its message, not `Lends`'s.
            Some((lends, body)) => quote! {
                #[allow(non_camel_case_types)]
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = #label,
                    note = "a `&P` parameter reads a value that is a `P` or dereferences to \
                            one (`String` to `str`, `Vec<T>` to `[T]`, `Arc<String>` to `str`)"
                )]
                trait #trait_name<T: ?Sized, I> { #sig; }
                #[diagnostic::do_not_recommend]
                impl<T: ?Sized + #lends<P, I>, P: ?Sized, I> #trait_name<T, I> for P {
                    #sig { #body }
                }
            },
            // A `&'static T` parameter reads its value by value: a `String` is not a `&'static
            // str`, which deref does not change, and the message alone would not say why.
            None => {
                let note = reader.params[p].static_ref.then_some(
                    "a `&'static` parameter takes a value that is that `&'static` reference \
                     itself, not one it borrows from the run's values; take `&T` to borrow it",
                );
                identity_check_noted(&trait_name, &message, &label, note, sig)
            }
        });
        // The argument in a block spanned like the step's parameters, so that rustc puts the
        // error on the step whatever expression reads the value (a sub-flow's input is a slot
        // read, not a parameter); a map step's element is spanned on the value after `over`.
        let arg = if reader.map_item == Some(p) {
            param.clone()
        } else {
            quote_spanned!(Span::mixed_site().located_at(span)=> { #param })
        };
        args.push(quote_spanned!(span=> #trait_name::pass(#arg)));
    }
    (items, args)
}

/// A flow output declared with a type: `value` (the slot's value as the outputs struct gets it)
/// through a check that names the flow, the output and where the value comes from, spanned on
/// the declared type. Its items go in the function that reads the outputs.
pub fn checked_output(
    a: &Analysis,
    flow: &Ident,
    output: &Ident,
    declared: &syn::Type,
    slot: usize,
    value: TokenStream,
) -> (TokenStream, TokenStream) {
    let span = Span::call_site().located_at(syn::spanned::Spanned::span(declared));
    let name = output.to_string();
    let name = bare(&name);
    let message = format!(
        "flow `{flow}` declares output `{name}` as `{{Self}}`, but {} is `{{T}}`",
        origin(a, slot)
    );
    let label = format!("`{name}` is a `{{T}}`");
    let trait_name = check_ident(flow, &format!("output_{name}"), span);
    let items = identity_check(&trait_name, &message, &label, quote!(fn pass(v: T) -> Self));
    (items, quote_spanned!(span=> #trait_name::pass({ #value })))
}
