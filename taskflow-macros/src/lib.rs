//! Procedural macros of [taskflow](https://docs.rs/taskflow): `#[task]`, `#[revert]` and `flow!`.
//!
//! Use them through the `taskflow` crate, which re-exports them and documents them; this crate's
//! generated code reaches the runtime only through `::taskflow::__private`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod checks;
mod ctxt;
mod flow;
mod meta;
mod task;
mod type_text;

/// Marks a function as a task. Documented on `taskflow::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand_task(attr.into(), item.into()).into()
}

/// Marks a function as a revert hook. Documented on `taskflow::revert`.
#[proc_macro_attribute]
pub fn revert(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand_revert(attr.into(), item.into()).into()
}

/// Defines a flow. Documented on `taskflow::flow`.
#[proc_macro]
pub fn flow(input: TokenStream) -> TokenStream {
    flow::expand_entry(input.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __flow_impl(input: TokenStream) -> TokenStream {
    flow::expand_impl(input.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __define_chunk(input: TokenStream) -> TokenStream {
    flow::define_chunk(input.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __task_impl(input: TokenStream) -> TokenStream {
    task::expand_with_hook(input.into()).into()
}
