//! The checks `#[task]` and `flow!` emit so that a value of the wrong type is one error in our
//! words: a trait whose `#[diagnostic::on_unimplemented]` says what is wrong, implemented only
//! where the types agree.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

/// A check that passes a value of exactly the type expected, `sig` (`fn pass(v: ..T..) ->
/// ..Self..`) with the value as it is, and otherwise fails with `message` and `label`.
pub fn identity_check(name: &Ident, message: &str, label: &str, sig: TokenStream) -> TokenStream {
    identity_check_noted(name, message, label, None, sig)
}

/// [`identity_check`] with a note under its message.
pub fn identity_check_noted(
    name: &Ident,
    message: &str,
    label: &str,
    note: Option<&str>,
    sig: TokenStream,
) -> TokenStream {
    let note = note.map(|n| quote!(, note = #n));
    quote! {
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #message, label = #label #note)]
        trait #name<T>: Sized { #sig; }
        impl<T> #name<T> for T {
            #sig { v }
        }
    }
}
