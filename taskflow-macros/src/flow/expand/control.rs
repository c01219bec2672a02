//! What decides whether and how often steps run: the retry controllers' hooks (begin an attempt
//! and set the value it provides, decide after a failure, wait before the next attempt — each
//! evaluates the controller's expression) and the deciders on links (`__decide`).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};

use super::super::graph::Analysis;
use super::structure::index;
use super::values::{local, mode, Values};

/// `__retry`: asks a scope's controller (`__private::Ask`: begin an attempt and store the value
/// it provides, decide after a failure, or wait before the next attempt), its expression
/// evaluated each time; none for a flow without retries (the trait's default).
pub fn retry_methods(a: &Analysis, flow: &Ident, values: &Values) -> TokenStream {
    if a.scopes.is_empty() {
        return TokenStream::new();
    }
    let [v, scope, ask, item] = ["v", "scope", "ask", "item"].map(local);
    let arms = a.scopes.iter().enumerate().map(|(i, s)| {
        let i = index(i);
        let controller = match s.for_each {
            Some(slot) => {
                let f = values.field(slot);
                quote!(__tf::ForEach(#v.#f.cloned()))
            }
            None => {
                let expr = &s.spec.controller;
                quote!(#expr)
            }
        };
        let store = match s.item {
            Some(slot) => {
                // Through a check that names the controller and the value when the controller
                // provides another type than the value is declared with.
                let f = values.field(slot);
                let (name, declared) = s.spec.provides.as_ref().expect("a provided value");
                let span = Span::call_site().located_at(match declared {
                    Some(ty) => syn::spanned::Spanned::span(ty),
                    None => syn::spanned::Spanned::span(&s.spec.controller),
                });
                let name = name.to_string();
                let name = super::values::bare(&name);
                let message = format!(
                    "retry controller `{}` provides `{{T}}`, but its value `{name}` is declared \
                     `{{Self}}`",
                    crate::type_text::pretty(&s.spec.controller.to_token_stream())
                );
                let check = super::values::check_ident(flow, &format!("provided_{name}"), span);
                let items = crate::checks::identity_check(
                    &check,
                    &message,
                    "declared here",
                    quote!(fn pass(v: T) -> Self),
                );
                let pass = quote_spanned!(span=> #check::pass({ #item }));
                quote!(|#item| { #items #v.#f.set(#pass) })
            }
            None => quote!(|_| ()),
        };
        quote!(#i => #ask.of(&#controller, #store),)
    });
    quote! {
        fn __retry<__A: __tf::Ask>(#v: &mut __Values, #scope: usize, #ask: __A) -> __A::Answer {
            match #scope {
                #(#arms)*
                _ => #ask.none(),
            }
        }
    }
}

/// `__decide`: whether a guarded step runs — every decider on a link into it must say yes. None
/// for a flow without deciders (the trait's default).
pub fn decide_method(a: &Analysis, flow: &Ident, values: &Values, pos: &[usize]) -> TokenStream {
    if a.deciders.is_empty() {
        return TokenStream::new();
    }
    let [v, step] = ["v", "step"].map(local);
    let mut targets: Vec<usize> = a.deciders.iter().filter_map(|d| d.to).collect();
    targets.sort_unstable();
    targets.dedup();
    let mut checks = TokenStream::new();
    let arms: Vec<TokenStream> = targets
        .iter()
        .map(|&to| {
            let k = index(pos[to]);
            let label = &a.steps[to].label;
            let mut lets = Vec::new();
            let mut calls = Vec::new();
            for (i, d) in a
                .deciders
                .iter()
                .enumerate()
                .filter(|(_, d)| d.to == Some(to))
            {
                let path = d.link.decider.as_ref().expect("a decider link");
                let vars: Vec<_> = (0..d.args.len())
                    .map(|p| local(&format!("d{i}_{p}")))
                    .collect();
                let modes: Vec<_> = (0..d.args.len())
                    .map(|p| mode(a, &d.args, &d.meta.params, p))
                    .collect();
                for (p, var) in vars.iter().enumerate() {
                    // Deciders never move a value: they may be asked again after a retry.
                    let read = values.read_again(modes[p], d.args[p], label);
                    lets.push(quote!(let #var = #read;));
                }
                // Through a check that names the decider when it does not return `bool`, its
                // arguments through their bindings' checks.
                let span = Span::call_site().located_at(syn::spanned::Spanned::span(path));
                let decider = path.to_token_stream().to_string().replace(' ', "");
                let reader = super::binding::Reader {
                    who: format!("decider `{decider}` (on the link into step `{label}`)"),
                    param_word: "parameter",
                    name: format!("decider_{i}"),
                    args: &d.args,
                    params: &d.meta.params,
                    map_item: None,
                };
                let vars: Vec<TokenStream> = vars.iter().map(|v| quote!(#v)).collect();
                let (arg_checks, vars) =
                    super::binding::checked_for(a, flow, &reader, &vars, &modes, span);
                checks.extend(arg_checks);
                let check = super::values::check_ident(flow, &format!("decider_{i}"), span);
                let message = format!(
                    "decider `{}` (on the link into step `{label}`) must return `bool`, but it \
                 returns `{{Self}}`",
                    path.to_token_stream().to_string().replace(' ', "")
                );
                checks.extend(quote! {
                #[allow(non_camel_case_types)]
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = "returns a `{Self}`",
                    note = "a decider says whether the step runs: `true` runs it, `false` skips it"
                )]
                trait #check {
                    fn says(self) -> bool;
                }
                // Not recommended: rustc would add "`bool` implements it", pointing at `flow!`.
                #[diagnostic::do_not_recommend]
                impl #check for bool {
                    #[inline(always)]
                    fn says(self) -> bool {
                        self
                    }
                }
            });
                calls.push(quote_spanned!(span=> #check::says({ #path(#(#vars),*) })));
            }
            quote! {
                #k => {
                    #(#lets)*
                    // `&`, not `&&`: every decider is asked, as in TaskFlow, even after one said no.
                    __tf::catch_sync(#label, move || true #(& #calls)*)
                }
            }
        })
        .collect();
    quote! {
        fn __decide(#v: &mut __Values, #step: usize) -> __tf::Result<bool, __tf::Failure> {
            #checks
            match #step {
                #(#arms)*
                _ => __tf::Ok(true),
            }
        }
    }
}
