//! The metadata `#[task]`, `#[revert]` and `flow!` attach to their items as tokens of a hidden
//! `macro_rules!`, and that `flow!` collects. Both ends live here so they cannot drift.
//!
//! Identifiers that travel through a `macro_rules!` body take that expansion's hygiene, so names
//! are read back as strings; only their spans are kept, for error messages.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StepKind {
    Task,
    Flow,
}

/// How far an item is visible, coarsely: enough to tell whether a `pub` flow can name a type
/// through it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum VisRank {
    Private,
    Restricted,
    Public,
}

impl VisRank {
    pub fn of(vis: &syn::Visibility) -> VisRank {
        match vis {
            syn::Visibility::Inherited => VisRank::Private,
            syn::Visibility::Public(_) => VisRank::Public,
            syn::Visibility::Restricted(_) => VisRank::Restricted,
        }
    }

    fn word(self) -> &'static str {
        match self {
            VisRank::Private => "private",
            VisRank::Restricted => "restricted",
            VisRank::Public => "public",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ParamMeta {
    pub name: String,
    pub by_ref: bool,
    /// `&'static T`: read by value (a copy of the reference), so it cannot borrow a flow value.
    pub static_ref: bool,
    pub default: bool,
    /// `&TaskContext`: supplied by the engine, not bound to a flow value.
    pub ctx: bool,
    /// `Option<T>` or `Option<&T>`: may read a value that a decider skipped.
    pub optional: bool,
}

/// What a step (a task or a flow) looks like from a flow that uses it.
#[derive(Clone, Debug)]
pub struct StepMeta {
    pub kind: StepKind,
    pub name: String,
    pub vis: VisRank,
    pub is_async: bool,
    pub fallible: bool,
    pub params: Vec<ParamMeta>,
    pub provides: Vec<String>,
    pub has_revert: bool,
    /// The revert hook is a plain `fn` (the parallel engine runs it on a worker thread).
    pub sync_hook: bool,
    /// A flow whose own checks failed (already reported): users of it emit no executor either.
    pub broken: bool,
}

#[derive(Clone, Debug)]
pub struct HookParam {
    pub name: Ident,
    pub by_ref: bool,
}

/// What a `#[revert]` hook looks like from the `#[task]` that names it.
#[derive(Clone, Debug)]
pub struct HookMeta {
    pub is_async: bool,
    pub params: Vec<HookParam>,
}

fn word(s: &str) -> Ident {
    Ident::new(s, Span::call_site())
}

fn flag(on: bool, yes: &str, no: &str) -> Ident {
    word(if on { yes } else { no })
}

impl StepMeta {
    pub fn to_tokens(&self) -> TokenStream {
        let kind = flag(self.kind == StepKind::Task, "task", "flow");
        let name = format_ident!("{}", self.name);
        let vis = word(self.vis.word());
        let asyncness = flag(self.is_async, "async", "sync");
        let fallible = flag(self.fallible, "fallible", "infallible");
        let params = self.params.iter().map(|p| {
            let name = format_ident!("{}", p.name);
            let mode = word(match (p.ctx, p.optional, p.by_ref) {
                (true, _, _) => "ctx",
                (_, true, true) => "optref",
                (_, true, false) => "opt",
                (_, false, true) => "ref",
                (_, false, false) if p.static_ref => "static",
                (_, false, false) => "value",
            });
            let default = flag(p.default, "default", "required");
            quote!((#name #mode #default))
        });
        let provides = self.provides.iter().map(|p| format_ident!("{}", p));
        let revert = word(match (self.has_revert, self.sync_hook) {
            (false, _) => "norevert",
            (true, true) => "synchook",
            (true, false) => "asynchook",
        });
        let broken = flag(self.broken, "broken", "ok");
        quote!({ #kind #name #vis #asyncness #fallible [ #(#params)* ] [ #(#provides)* ] #revert #broken })
    }

    pub fn parse(group: &Group) -> Option<StepMeta> {
        let mut it = group.stream().into_iter();
        let kind = match ident(it.next()?)?.as_str() {
            "task" => StepKind::Task,
            "flow" => StepKind::Flow,
            _ => return None,
        };
        let name = ident(it.next()?)?;
        let vis = match ident(it.next()?)?.as_str() {
            "private" => VisRank::Private,
            "restricted" => VisRank::Restricted,
            _ => VisRank::Public,
        };
        let is_async = ident(it.next()?)? == "async";
        let fallible = ident(it.next()?)? == "fallible";
        let mut params = Vec::new();
        for p in bracket(it.next()?)? {
            let TokenTree::Group(g) = p else { return None };
            let mut parts = g.stream().into_iter();
            let name = ident(parts.next()?)?;
            let mode = ident(parts.next()?)?;
            params.push(ParamMeta {
                name,
                by_ref: mode == "ref" || mode == "optref",
                static_ref: mode == "static",
                optional: mode == "opt" || mode == "optref",
                ctx: mode == "ctx",
                default: ident(parts.next()?)? == "default",
            });
        }
        let provides = bracket(it.next()?)?
            .into_iter()
            .map(ident)
            .collect::<Option<Vec<_>>>()?;
        let revert = ident(it.next()?)?;
        let has_revert = revert != "norevert";
        let sync_hook = revert == "synchook";
        let broken = ident(it.next()?)? == "broken";
        Some(StepMeta {
            kind,
            name,
            vis,
            is_async,
            fallible,
            params,
            provides,
            has_revert,
            sync_hook,
            broken,
        })
    }
}

impl HookMeta {
    pub fn to_tokens(&self) -> TokenStream {
        let asyncness = flag(self.is_async, "async", "sync");
        let params = self.params.iter().map(|p| {
            let name = &p.name;
            let mode = flag(p.by_ref, "ref", "value");
            quote!((#name #mode))
        });
        quote!({ hook #asyncness [ #(#params)* ] })
    }

    pub fn parse(group: &Group) -> Option<HookMeta> {
        let mut it = group.stream().into_iter();
        if ident(it.next()?)? != "hook" {
            return None;
        }
        let is_async = ident(it.next()?)? == "async";
        let mut params = Vec::new();
        for p in bracket(it.next()?)? {
            let TokenTree::Group(g) = p else { return None };
            let mut parts = g.stream().into_iter();
            let TokenTree::Ident(name) = parts.next()? else {
                return None;
            };
            params.push(HookParam {
                name,
                by_ref: ident(parts.next()?)? == "ref",
            });
        }
        Some(HookMeta { is_async, params })
    }
}

fn ident(tt: TokenTree) -> Option<String> {
    match tt {
        TokenTree::Ident(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bracket(tt: TokenTree) -> Option<Vec<TokenTree>> {
    match tt {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {
            Some(g.stream().into_iter().collect())
        }
        _ => None,
    }
}

/// The hidden `macro_rules!` that hands `meta` to whoever collects it.
///
/// Protocol, shared by every collector (task, hook, flow and chunk macros):
/// `m! { [ {next macro path} {…} ] [ accumulated metadata ] payload }` appends its metadata and
/// calls the first `next` path with the rest.
pub fn collector_macro(name: &Ident, meta: &TokenStream, export: bool) -> TokenStream {
    let export = export.then(|| quote!(#[macro_export]));
    quote! {
        #[doc(hidden)]
        #export
        macro_rules! #name {
            ( [ { $($next:tt)* } $($rest:tt)* ] [ $($acc:tt)* ] $($payload:tt)* ) => {
                $($next)* ! { [ $($rest)* ] [ $($acc)* #meta ] $($payload)* }
            };
        }
    }
}

/// Splits a collector call's input `[ ] [ metadata… ] payload` into its metadata groups and payload.
pub fn split_collected(input: TokenStream) -> Option<(Vec<Group>, TokenStream)> {
    let mut it = input.into_iter();
    match it.next()? {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket && g.stream().is_empty() => {}
        _ => return None,
    }
    let metas = match it.next()? {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => g
            .stream()
            .into_iter()
            .map(|tt| match tt {
                TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => Some(g),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some((metas, it.collect()))
}
