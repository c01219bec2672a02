//! `#[task]` and `#[revert]`: leave the function as written and attach, next to it, what a flow
//! needs to call it: a hidden marker type (in the type namespace, under the function's name) that
//! carries the output types and the revert glue, and a hidden collector macro (in the macro
//! namespace, under the same name) that carries the metadata.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type, Visibility,
};

use crate::checks::identity_check;
use crate::ctxt::Ctxt;
use crate::meta::{self, HookMeta, HookParam, ParamMeta, StepKind, StepMeta, VisRank};

struct TaskParam {
    name: Ident,
    by_ref: bool,
    /// `&TaskContext`, which the engine supplies.
    ctx: bool,
    /// `Option<T>` or `Option<&T>`: can read a value a decider skipped.
    optional: bool,
    /// `T` inside `Option<T>` / `Option<&T>`.
    inner_ty: Option<Type>,
    /// The type of the flow value the parameter reads (`T` for both `T` and `&T`).
    value_ty: Type,
    /// `&'static T`: reads a value of that very type, by value.
    static_ref: bool,
    default: bool,
}

struct TaskDef {
    vis: Visibility,
    name: Ident,
    is_async: bool,
    fallible: bool,
    /// For a fallible task: the whole return type and its `Ok` type.
    result_tys: Option<(Type, Type)>,
    params: Vec<TaskParam>,
    provides: Vec<Ident>,
    /// One type per provided name.
    output_tys: Vec<Type>,
    revert: Option<syn::Path>,
    export: bool,
    /// `on_takeover = policy`: the policy's name and its token.
    on_takeover: Option<Ident>,
}

#[derive(Default)]
struct TaskArgs {
    provides: Vec<Ident>,
    revert: Option<syn::Path>,
    export: bool,
    on_takeover: Option<Ident>,
}

/// The policies `on_takeover` accepts, and the `taskflow::OnTakeover` variant of each.
const TAKEOVER_POLICIES: [(&str, &str); 3] = [
    ("rerun", "Rerun"),
    ("revert_then_rerun", "RevertThenRerun"),
    ("hold", "Hold"),
];

fn parse_args(attr: TokenStream, cx: &mut Ctxt) -> TaskArgs {
    let mut args = TaskArgs::default();
    let parser = syn::meta::parser(|m| {
        if m.path.is_ident("provides") {
            let value = m.value()?;
            if value.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in value);
                let names = content
                    .parse_terminated(<Ident as syn::parse::Parse>::parse, syn::Token![,])?;
                args.provides = names.into_iter().collect();
            } else {
                args.provides = vec![value.parse::<Ident>()?];
            }
            Ok(())
        } else if m.path.is_ident("revert") {
            args.revert = Some(m.value()?.parse()?);
            Ok(())
        } else if m.path.is_ident("export") {
            args.export = true;
            Ok(())
        } else if m.path.is_ident("on_takeover") {
            let policy: Ident = m.value()?.parse()?;
            if !TAKEOVER_POLICIES.iter().any(|(name, _)| policy == name) {
                return Err(syn::Error::new(
                    policy.span(),
                    format!(
                        "unknown take-over policy `{policy}`: expected `rerun` (the default), \
                         `revert_then_rerun` or `hold`"
                    ),
                ));
            }
            args.on_takeover = Some(policy);
            Ok(())
        } else {
            Err(m.error("unknown #[task] argument: expected `provides = name`, `provides = (a, b)`, `revert = hook`, `on_takeover = policy` or `export`"))
        }
    });
    if let Err(e) = parser.parse2(attr) {
        cx.push(e);
    }
    args
}

/// `T` in `Option<T>` (any path ending in `Option`).
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `&TaskContext` (by any path): the engine's handle for the running step, not a flow value.
fn is_task_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            matches!(&*r.elem, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "TaskContext"))
        }
        _ => false,
    }
}

/// `Result<T, E>` (any path ending in `Result`) is fallible with output `T`.
fn split_result(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// The span of `E` in `Result<T, E>`, else of the whole return type.
fn error_type_span(ret: &Type) -> Span {
    if let Type::Path(p) = ret {
        if let Some(PathArguments::AngleBracketed(args)) =
            p.path.segments.last().map(|s| &s.arguments)
        {
            if let Some(GenericArgument::Type(e)) = args.args.iter().nth(1) {
                return e.span();
            }
        }
    }
    ret.span()
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// Removes `#[default]` from the parameters (the function stays otherwise as written) and
/// returns which parameters had it.
fn strip_default_attrs(func: &mut ItemFn) -> Vec<bool> {
    func.sig
        .inputs
        .iter_mut()
        .map(|arg| match arg {
            FnArg::Typed(pt) => {
                let before = pt.attrs.len();
                pt.attrs.retain(|a| !a.path().is_ident("default"));
                pt.attrs.len() != before
            }
            FnArg::Receiver(_) => false,
        })
        .collect()
}

fn analyze(func: &ItemFn, defaults: &[bool], args: TaskArgs, cx: &mut Ctxt) -> Option<TaskDef> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned(
            &sig.generics,
            format!(
                "task `{}` cannot be generic: a flow needs concrete types for its values",
                sig.ident
            ),
        );
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned(v, "a task cannot be variadic");
    }
    let mut params = Vec::new();
    for (arg, default) in sig.inputs.iter().zip(defaults) {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned(
                r,
                "#[task] goes on a free function: `self` cannot be bound by name in a flow",
            ),
            FnArg::Typed(pt) => {
                let Pat::Ident(pi) = &*pt.pat else {
                    cx.error_spanned(
                        &pt.pat,
                        "a task parameter must be a plain name: flows bind parameters by name",
                    );
                    continue;
                };
                if is_task_context(&pt.ty) {
                    params.push(TaskParam {
                        name: pi.ident.clone(),
                        by_ref: true,
                        ctx: true,
                        optional: false,
                        inner_ty: None,
                        value_ty: (*pt.ty).clone(),
                        static_ref: false,
                        default: false,
                    });
                    continue;
                }
                let (optional, ty) = match option_inner(&pt.ty) {
                    Some(inner) => (true, inner),
                    None => (false, &*pt.ty),
                };
                let static_ref = !optional
                    && matches!(ty, Type::Reference(r)
                        if r.lifetime.as_ref().is_some_and(|l| l.ident == "static"));
                let (by_ref, value_ty) = match ty {
                    Type::Reference(r) if r.mutability.is_some() => {
                        cx.error_spanned(&pt.ty, format!("parameter `{}` takes `&mut`: a flow value is shared between steps, take it by value or by `&`", pi.ident));
                        continue;
                    }
                    // A `&'static T` reads a value of that type (it cannot borrow from a flow
                    // value, which lives only as long as the run): a copy of the reference.
                    Type::Reference(r)
                        if r.lifetime.as_ref().is_some_and(|l| l.ident == "static") =>
                    {
                        (false, ty.clone())
                    }
                    Type::Reference(r) => (true, (*r.elem).clone()),
                    other => (false, other.clone()),
                };
                params.push(TaskParam {
                    name: pi.ident.clone(),
                    by_ref,
                    static_ref,
                    ctx: false,
                    optional,
                    value_ty: if optional && !by_ref {
                        (*pt.ty).clone()
                    } else {
                        value_ty
                    },
                    inner_ty: if optional {
                        Some(match ty {
                            Type::Reference(r) => (*r.elem).clone(),
                            other => other.clone(),
                        })
                    } else {
                        None
                    },
                    default: *default,
                });
            }
        }
    }
    let ret: Option<&Type> = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(ty),
    };
    let (fallible, output): (bool, Option<&Type>) = match ret {
        None => (false, None),
        Some(ty) => match split_result(ty) {
            Some(ok) => (true, Some(ok)),
            None => (false, Some(ty)),
        },
    };
    let result_tys = match (fallible, ret, output) {
        (true, Some(ret), Some(ok)) => Some((ret.clone(), ok.clone())),
        _ => None,
    };
    let output = output.filter(|t| !is_unit(t));
    let mut output_tys = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in &args.provides {
        if !seen.insert(p.to_string()) {
            cx.error_spanned(p, format!("task `{}` provides `{p}` twice", sig.ident));
        }
    }
    match (args.provides.len(), output) {
        (0, _) => {}
        (n, None) => cx.error_spanned(
            &args.provides[0],
            format!(
                "task `{}` provides {} but returns nothing: return the value{}",
                sig.ident,
                names(&args.provides),
                if n > 1 { "s as a tuple" } else { "" }
            ),
        ),
        (1, Some(ty)) => output_tys.push(ty.clone()),
        (n, Some(ty)) => match ty {
            Type::Tuple(t) if t.elems.len() == n => output_tys.extend(t.elems.iter().cloned()),
            _ => cx.error_spanned(
                ty,
                format!(
                    "task `{}` provides {n} names ({}), so it must return a tuple of {n} values",
                    sig.ident,
                    names(&args.provides)
                ),
            ),
        },
    }
    if cx.has_errors() {
        return None;
    }
    if let Some(policy) = &args.on_takeover {
        if policy == "revert_then_rerun" && args.revert.is_none() {
            cx.error(
                policy.span(),
                "`on_takeover = revert_then_rerun` undoes the step with its revert hook before \
                 running it again: add `revert = hook` (a function marked #[revert]), or choose \
                 `rerun` or `hold`",
            );
            return None;
        }
    }
    Some(TaskDef {
        vis: func.vis.clone(),
        name: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        fallible,
        result_tys,
        params,
        provides: args.provides,
        output_tys,
        revert: args.revert,
        export: args.export,
        on_takeover: args.on_takeover,
    })
}

fn names(idents: &[Ident]) -> String {
    idents
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The function an attribute is on, or all the errors plus the item unchanged.
fn parse_fn(
    item: &TokenStream,
    attribute: &str,
    mut cx: Ctxt,
) -> Result<(ItemFn, Ctxt), TokenStream> {
    match syn::parse2(item.clone()) {
        Ok(func) => Ok((func, cx)),
        Err(_) => {
            cx.error(
                Span::call_site(),
                format!("#[{attribute}] goes on a function (`fn` or `async fn`)"),
            );
            let errors = cx.into_compile_errors();
            Err(quote!(#errors #item))
        }
    }
}

pub fn expand_task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let args = parse_args(attr.clone(), &mut cx);
    let (mut func, mut cx) = match parse_fn(&item, "task", cx) {
        Ok(parsed) => parsed,
        Err(out) => return out,
    };
    let defaults = strip_default_attrs(&mut func);
    let export = args.export;
    let def = analyze(&func, &defaults, args, &mut cx);
    let errors = cx.into_compile_errors();
    let Some(def) = def else {
        let broken = broken_collector(&func, export);
        return quote!(#errors #func #broken);
    };
    match &def.revert {
        // The hook's signature is only known to its own collector macro: ask it, and finish the
        // expansion in `__task_impl` once its metadata has arrived.
        Some(hook) => {
            let mut sig_only = func.clone();
            *sig_only.block = syn::parse_quote!({});
            sig_only.attrs.clear();
            // keep `#[default]` marks for the second pass
            for (arg, default) in sig_only.sig.inputs.iter_mut().zip(&defaults) {
                if let (FnArg::Typed(pt), true) = (arg, default) {
                    pt.attrs.push(syn::parse_quote!(#[default]));
                }
            }
            let hook_call = quote_spanned!(hook.span()=> #hook);
            quote! {
                #func
                #hook_call! { [ { ::taskflow::__private::__task_impl } ] [ ] ( #attr ) #sig_only }
            }
        }
        None => {
            // Without a hook, emitting the companions finds no mistakes.
            let mut cx = Ctxt::default();
            let companions = companions(&def, None, &mut cx);
            let errors = cx.into_compile_errors();
            quote!(#errors #func #companions)
        }
    }
}

/// Second pass of a `#[task(revert = hook)]`: the hook's metadata has arrived.
pub fn expand_with_hook(input: TokenStream) -> TokenStream {
    let Some((metas, payload)) = meta::split_collected(input) else {
        return quote!(::core::compile_error!("taskflow internal error: malformed #[task] hand-off"););
    };
    let mut it = payload.into_iter();
    let attr = match it.next() {
        Some(proc_macro2::TokenTree::Group(g)) => g.stream(),
        _ => {
            return quote!(::core::compile_error!("taskflow internal error: malformed #[task] hand-off");)
        }
    };
    let Ok(mut func) = syn::parse2::<ItemFn>(it.collect()) else {
        return quote!(::core::compile_error!("taskflow internal error: malformed #[task] hand-off"););
    };
    let mut cx = Ctxt::default();
    let args = parse_args(attr, &mut cx);
    let defaults = strip_default_attrs(&mut func);
    let export = args.export;
    let Some(def) = analyze(&func, &defaults, args, &mut cx) else {
        let errors = cx.into_compile_errors();
        let broken = broken_collector(&func, export);
        return quote!(#errors #broken);
    };
    let hook = metas.first().and_then(HookMeta::parse);
    let Some(hook) = hook else {
        let path = def.revert.as_ref().unwrap();
        cx.error_spanned(
            path,
            format!(
                "`{}` is not a revert hook: mark it with #[revert]",
                path.to_token_stream()
            ),
        );
        let errors = cx.into_compile_errors();
        let broken = broken_collector(&func, export);
        return quote!(#errors #broken);
    };
    let out = companions(&def, Some(&hook), &mut cx);
    let errors = cx.into_compile_errors();
    quote!(#errors #out)
}

/// The collector of a task that has its own errors (reported by `#[task]`): its metadata says
/// it is broken, so a flow that uses it reports nothing more about it (nor "cannot find macro").
fn broken_collector(func: &ItemFn, export: bool) -> TokenStream {
    let meta = StepMeta {
        kind: StepKind::Task,
        name: func.sig.ident.to_string(),
        vis: VisRank::of(&func.vis),
        is_async: func.sig.asyncness.is_some(),
        fallible: false,
        params: Vec::new(),
        provides: Vec::new(),
        has_revert: false,
        sync_hook: false,
        broken: true,
    }
    .to_tokens();
    collector_items("__taskflow_meta", &func.sig.ident, &func.vis, &meta, export)
}

fn companions(def: &TaskDef, hook: Option<&HookMeta>, cx: &mut Ctxt) -> TokenStream {
    let TaskDef { vis, name, .. } = def;
    let provides_impls = def.output_tys.iter().enumerate().map(
        |(i, ty)| quote!(impl ::taskflow::__private::Provides<#i> for #name { type Value = #ty; }),
    );
    let param_impls = def
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.default)
        .map(|(i, p)| {
            let ty = &p.value_ty;
            quote!(impl ::taskflow::__private::Param<#i> for #name { type Value = #ty; })
        });
    let glue = hook.map(|hook| revert_glue(def, hook, cx));
    // A fallible task's outcome as a step's: its error a failure of `step`. Converting the error
    // here puts a bad error type's diagnostic on the task's return type, whether or not a flow
    // uses the task yet.
    let result_glue = def.result_tys.as_ref().map(|(ret, ok)| {
        let span = error_type_span(ret);
        let convert = quote_spanned! {span=>
            match ret {
                ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
                ::core::result::Result::Err(error) => ::core::result::Result::Err(::taskflow::__private::TaskError::into_box(error)),
            }
        };
        quote! {
            impl #name {
                #[doc(hidden)]
                #[inline(always)]
                pub fn __taskflow_outcome(
                    step: &'static str,
                    ran: ::core::result::Result<#ret, ::taskflow::Failure>,
                ) -> ::core::result::Result<#ok, ::taskflow::Failure> {
                    ::taskflow::__private::fallible(step, ran.map(|ret| #convert))
                }
            }
        }
    });
    let meta = StepMeta {
        kind: StepKind::Task,
        name: name.to_string(),
        vis: VisRank::of(vis),
        is_async: def.is_async,
        fallible: def.fallible,
        params: def
            .params
            .iter()
            .map(|p| ParamMeta {
                name: p.name.to_string(),
                by_ref: p.by_ref,
                static_ref: p.static_ref,
                default: p.default,
                ctx: p.ctx,
                optional: p.optional,
            })
            .collect(),
        provides: def.provides.iter().map(ToString::to_string).collect(),
        has_revert: hook.is_some(),
        sync_hook: hook.is_some_and(|h| !h.is_async),
        broken: false,
    }
    .to_tokens();
    let collector = collector_items("__taskflow_meta", name, vis, &meta, def.export);
    // The output types as written, for the fingerprint of the flows that store them.
    let type_texts = def
        .output_tys
        .iter()
        .map(|ty| crate::type_text::normalized(&ty.to_token_stream()));
    let is_async = def.is_async;
    let sync_hook = hook.is_some_and(|h| !h.is_async);
    let name_str = name.to_string();
    let on_takeover = def.on_takeover.as_ref().map(|policy| {
        let (_, variant) = TAKEOVER_POLICIES
            .iter()
            .find(|(name, _)| policy == name)
            .expect("checked by parse_args");
        let variant = format_ident!("{}", variant, span = policy.span());
        quote!(const ON_TAKEOVER: ::taskflow::OnTakeover = ::taskflow::OnTakeover::#variant;)
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}
        impl ::taskflow::__private::Task for #name {
            const NAME: &'static str = #name_str;
            const ASYNC: bool = #is_async;
            const SYNC_HOOK: bool = #sync_hook;
            const TYPES: &'static [&'static str] = &[#(#type_texts),*];
            #on_takeover
        }
        #(#provides_impls)*
        #(#param_impls)*
        #glue
        #result_glue
        #collector
    }
}

/// The collector macro `{prefix}_{name}` and its alias, which shares the item's name in the
/// macro namespace.
pub fn collector_items(
    prefix: &str,
    name: &Ident,
    vis: &Visibility,
    meta: &TokenStream,
    export: bool,
) -> TokenStream {
    if export {
        let mut hasher = DefaultHasher::new();
        std::env::var("CARGO_PKG_NAME")
            .unwrap_or_default()
            .hash(&mut hasher);
        name.to_string().hash(&mut hasher);
        meta.to_string().hash(&mut hasher);
        let hidden = format_ident!("{}_{}_{:016x}", prefix, name, hasher.finish());
        let collector = meta::collector_macro(&hidden, meta, true);
        quote! {
            #collector
            #[doc(hidden)]
            #[allow(unused_imports)]
            pub use #hidden as #name;
        }
    } else {
        let hidden = format_ident!("{}_{}", prefix, name);
        let collector = meta::collector_macro(&hidden, meta, false);
        let alias_vis = match vis {
            Visibility::Inherited => quote!(),
            _ => quote!(pub(crate)),
        };
        quote! {
            #collector
            #[doc(hidden)]
            #[allow(unused_imports)]
            #alias_vis use #hidden as #name;
        }
    }
}

fn with_lifetime(ty: &Type) -> TokenStream {
    quote!(&'__tf #ty)
}

/// An associated function of the marker type that calls the hook with its parameters bound by
/// name: the task's inputs (all passed by reference), `result` and `failures`.
fn revert_glue(def: &TaskDef, hook: &HookMeta, cx: &mut Ctxt) -> TokenStream {
    let name = &def.name;
    let hook_path = def.revert.as_ref().unwrap();
    // The task's flow inputs, all by reference (a `&TaskContext` belongs to the run, not the hook).
    let flow_params: Vec<&TaskParam> = def.params.iter().filter(|p| !p.ctx).collect();
    let inputs: Vec<_> = flow_params
        .iter()
        .map(|p| format_ident!("__p_{}", p.name))
        .collect();
    let input_tys = flow_params.iter().map(|p| match &p.inner_ty {
        Some(inner) => {
            let r = with_lifetime(inner);
            quote!(::core::option::Option<#r>)
        }
        None => with_lifetime(&p.value_ty),
    });
    let outcome_ty = match def.output_tys.as_slice() {
        [] => quote!(()),
        [one] => with_lifetime(one),
        many => {
            let tys = many.iter().map(with_lifetime);
            quote!((#(#tys,)*))
        }
    };
    // What `result` and `failures` must be, as a person writes it, for the checks' messages.
    let outcome_text = match def.output_tys.as_slice() {
        [] => "()".to_owned(),
        [one] => format!("&{}", crate::type_text::pretty(&quote!(#one))),
        many => {
            let tys: Vec<String> = many
                .iter()
                .map(|t| format!("&{}", crate::type_text::pretty(&quote!(#t))))
                .collect();
            format!("({})", tys.join(", "))
        }
    };
    let hook_text = hook_path.to_token_stream().to_string().replace(' ', "");
    let mut checks = TokenStream::new();
    let mut args = Vec::new();
    for hp in &hook.params {
        let hp_name = hp.name.to_string();
        let value = match hp_name.as_str() {
            "result" | "failures" => {
                let (value, must, why) = if hp_name == "result" {
                    (
                        quote!(__result),
                        format!("TaskOutcome<{outcome_text}>"),
                        format!("the outcome of task `{name}`"),
                    )
                } else {
                    (
                        quote!(__failures),
                        "&[Failure]".to_owned(),
                        "what failed in the flow".to_owned(),
                    )
                };
                // Named after the hook: rustc prints the trait's name in a help line, short
                // only when no other item of the crate has it (and every hook has a `result`).
                let hook_name = hook_path.segments.last().expect("a path").ident.to_string();
                let check = format_ident!(
                    "{}_{}",
                    hook_name.trim_start_matches("r#"),
                    hp_name,
                    span = proc_macro2::Span::mixed_site().located_at(hp.name.span())
                );
                let message = format!(
                    "revert hook `{hook_text}` parameter `{hp_name}` is {why}: it must be \
                     `{must}`, but it is `{{Self}}`"
                );
                let label = format!("make this `{must}`");
                checks.extend(identity_check(
                    &check,
                    &message,
                    &label,
                    quote!(fn pass(v: T) -> Self),
                ));
                // The argument too is spanned on the parameter: rustc reports the bound there.
                let span = hp.name.span();
                quote_spanned!(span=> #check::pass({ #value }))
            }
            other => match flow_params.iter().position(|p| p.name == other) {
                // An optional input reaches the hook as the task reads it: `Option<&T>`.
                Some(i) if flow_params[i].inner_ty.is_some() => {
                    let input = &inputs[i];
                    quote!(#input)
                }
                // Any other through a check that names the hook, the parameter and the task's
                // input when the hook takes another type: a `&P` one reads the input through
                // `Lends` (as deref coercion did: `&String` into `&str`), one by value a copy
                // (`ToOwned`).
                Some(i) => {
                    let input = &inputs[i];
                    let hook_name = hook_path.segments.last().expect("a path").ident.to_string();
                    let check = format_ident!(
                        "{}_{}",
                        hook_name.trim_start_matches("r#"),
                        hp_name,
                        span = proc_macro2::Span::mixed_site().located_at(hp.name.span())
                    );
                    let takes = if hp.by_ref { "&{Self}" } else { "{Self}" };
                    let message = format!(
                        "revert hook `{hook_text}` parameter `{hp_name}` takes `{takes}`, but \
                         the input `{other}` of task `{name}` is `{{T}}`"
                    );
                    let label = format!("`{hp_name}` reads a `{{T}}`");
                    let span = hp.name.span();
                    if hp.by_ref {
                        checks.extend(quote! {
                            #[allow(non_camel_case_types)]
                            #[diagnostic::on_unimplemented(message = #message, label = #label)]
                            trait #check<T: ?Sized, I> { fn pass(v: &T) -> &Self; }
                            #[diagnostic::do_not_recommend]
                            impl<T: ?Sized + ::taskflow::__private::Lends<P, I>, P: ?Sized, I> #check<T, I> for P {
                                #[inline(always)]
                                fn pass(v: &T) -> &P { ::taskflow::__private::Lends::lend(v) }
                            }
                        });
                        quote_spanned!(span=> #check::pass({ #input }))
                    } else {
                        checks.extend(identity_check(
                            &check,
                            &message,
                            &label,
                            quote!(fn pass(v: T) -> Self),
                        ));
                        quote_spanned!(span=> #check::pass({ ::std::borrow::ToOwned::to_owned(#input) }))
                    }
                }
                None => {
                    let known: Vec<String> = flow_params
                        .iter()
                        .map(|p| format!("`{}`", p.name))
                        .chain(["`result`".to_owned(), "`failures`".to_owned()])
                        .collect();
                    cx.error(
                        hp.name.span(),
                        format!(
                            "revert hook `{}` of task `{name}` asks for `{other}`, which the task does not have; a revert hook can take {}",
                            hook_path.to_token_stream(),
                            known.join(", ")
                        ),
                    );
                    continue;
                }
            },
        };
        args.push(value);
    }
    // The type each input reaches the hook as, for a `map` step's revert, which reads its
    // element through `__private::element_of` (see there): a function of that type, `&T` to
    // `&T`, whose signature may elide lifetimes as the task's own does.
    let input_fns = def
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.ctx && p.inner_ty.is_none())
        .map(|(k, p)| {
            let f = format_ident!("__taskflow_input_{}", k);
            let ty = &p.value_ty;
            quote! {
                #[doc(hidden)]
                #[inline(always)]
                pub fn #f(v: &#ty) -> &#ty {
                    v
                }
            }
        });
    let call_await = hook.is_async.then(|| quote!(.await));
    let span = hook_path.span();
    let call = if args.len() == hook.params.len() {
        quote_spanned!(span=> ::taskflow::__private::HookReturn::into_result(#hook_path(#(#args),*) #call_await))
    } else {
        // The unknown parameter is reported; do not add rustc's arity error to it.
        quote!(::core::result::Result::Ok(()))
    };
    quote! {
        impl #name {
            #[doc(hidden)]
            #[allow(clippy::all, unused_variables)]
            pub fn __taskflow_revert<'__tf>(
                #(#inputs: #input_tys,)*
                __result: impl ::taskflow::__private::Lend<#outcome_ty> + '__tf,
                __failures: &'__tf [::taskflow::Failure],
            ) -> impl ::core::future::Future<Output = ::core::result::Result<(), ::taskflow::BoxError>> + ::core::marker::Send + '__tf {
                let __result: ::taskflow::TaskOutcome<#outcome_ty> = ::taskflow::__private::Lend::lend(__result);
                #checks
                async move { #call }
            }
            #(#input_fns)*
        }
    }
}

pub fn expand_revert(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    if !attr.is_empty() {
        cx.error_spanned(&attr, "#[revert] takes no arguments");
    }
    let (func, mut cx) = match parse_fn(&item, "revert", cx) {
        Ok(parsed) => parsed,
        Err(out) => return out,
    };
    let mut params = Vec::new();
    for arg in &func.sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned(r, "#[revert] goes on a free function"),
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => params.push(HookParam {
                    name: pi.ident.clone(),
                    by_ref: matches!(&*pt.ty, Type::Reference(_)),
                }),
                other => cx.error_spanned(
                    other,
                    "a revert hook parameter must be a plain name: it is bound by name",
                ),
            },
        }
    }
    if !func.sig.generics.params.is_empty() {
        cx.error_spanned(&func.sig.generics, "a revert hook cannot be generic");
    }
    let errors = cx.into_compile_errors();
    let meta = HookMeta {
        is_async: func.sig.asyncness.is_some(),
        params,
    }
    .to_tokens();
    let collector = collector_items(
        "__taskflow_revert_meta",
        &func.sig.ident,
        &func.vis,
        &meta,
        false,
    );
    quote! {
        #errors
        #func
        #collector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each way out of these expansions must take the accumulator's errors, or it panics.

    #[test]
    fn task_on_a_struct_keeps_the_item_and_says_why() {
        let out = expand_task(
            quote!(provides = x),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(out.contains("#[task] goes on a function"), "{out}");
        assert!(out.contains("struct S"), "{out}");
    }

    #[test]
    fn revert_on_a_struct_keeps_the_item_and_says_why() {
        let out = expand_revert(
            TokenStream::new(),
            quote!(
                struct S;
            ),
        )
        .to_string();
        assert!(out.contains("#[revert] goes on a function"), "{out}");
    }

    #[test]
    fn task_without_a_hook_has_no_errors() {
        let out = expand_task(
            quote!(provides = y),
            quote!(
                fn double(x: u32) -> u32 {
                    x * 2
                }
            ),
        );
        assert!(!out.to_string().contains("compile_error"), "{out}");
    }

    #[test]
    fn revert_path_that_is_not_a_hook() {
        let input = quote!([] [ { task other public sync infallible [] [] norevert ok } ] (revert = other) fn f() {});
        let out = expand_with_hook(input).to_string();
        assert!(out.contains("`other` is not a revert hook"), "{out}");
    }
}
