//! An error accumulator (after serde_derive's `Ctxt`): every check pushes a spanned error, and the
//! user sees them all in one build.
//!
//! Dropping a `Ctxt` whose errors were never taken panics: a lost error would otherwise let a
//! broken flow compile, and inside a proc macro the panic is a compile error that no test misses.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

pub struct Ctxt {
    /// `None` once taken.
    errors: Option<Vec<syn::Error>>,
}

impl Default for Ctxt {
    fn default() -> Self {
        Ctxt {
            errors: Some(Vec::new()),
        }
    }
}

impl Ctxt {
    pub fn error(&mut self, span: Span, msg: impl Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub fn error_spanned(&mut self, tokens: impl ToTokens, msg: impl Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    pub fn push(&mut self, error: syn::Error) {
        self.errors_mut().push(error);
    }

    pub fn has_errors(&self) -> bool {
        self.errors.as_ref().is_some_and(|e| !e.is_empty())
    }

    /// All errors as `compile_error!` invocations (empty when there are none).
    pub fn into_compile_errors(self) -> TokenStream {
        self.take()
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }

    /// The errors' messages, in the order they were pushed.
    #[cfg(test)]
    pub fn into_messages(self) -> Vec<String> {
        self.take().iter().map(ToString::to_string).collect()
    }

    /// Each error as the source text it points at and its message, in the order they were
    /// pushed (only tokens parsed from a string carry their source text).
    #[cfg(test)]
    pub fn into_spanned_messages(self) -> Vec<(String, String)> {
        self.take()
            .iter()
            .map(|e| (e.span().source_text().unwrap_or_default(), e.to_string()))
            .collect()
    }

    fn take(mut self) -> Vec<syn::Error> {
        self.errors.take().expect("taken only by value")
    }

    fn errors_mut(&mut self) -> &mut Vec<syn::Error> {
        self.errors.as_mut().expect("taken only by value")
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        // While already unwinding, a second panic would abort and hide the first.
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("taskflow internal error: a Ctxt was dropped without taking its errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_the_errors_keeps_their_order() {
        let mut cx = Ctxt::default();
        cx.error(Span::call_site(), "first");
        cx.error(Span::call_site(), "second");
        assert!(cx.has_errors());
        assert_eq!(cx.into_messages(), ["first", "second"]);
    }

    #[test]
    fn no_errors_compile_to_nothing() {
        let cx = Ctxt::default();
        assert!(!cx.has_errors());
        assert!(cx.into_compile_errors().is_empty());
    }

    #[test]
    #[should_panic(expected = "dropped without taking its errors")]
    fn dropping_unchecked_panics() {
        let mut cx = Ctxt::default();
        cx.error(Span::call_site(), "lost");
        drop(cx);
    }

    #[test]
    #[should_panic(expected = "dropped without taking its errors")]
    fn dropping_unchecked_panics_without_errors_too() {
        // Whether a path checks must not depend on whether this input happened to have errors.
        drop(Ctxt::default());
    }
}
