//! What a durable run needs of a flow: each step's outputs and the inputs to and from JSON, the
//! rebuilding of sub-flow steps from a store, and the `DurableFlow` impl whose bounds make it the
//! gate. (The type names of the fingerprint are in the graph: see `structure`.)

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::super::graph::{Analysis, Source};
use super::chunk::{dispatch, Sig};
use super::items::inputs_ident;
use super::structure::index;
use super::values::{bare, local, origin, value_type};
use super::Emit;
use crate::meta::StepKind;

/// Every type a store keeps: the inputs and each step's outputs (retry items and defaults are
/// computed again, not stored), each once.
/// The checks that every value a run stores can be stored, each in our words: one trait per
/// flow input and per value a step provides (and per `map` step's finished items, kept for its
/// revert), whose `#[diagnostic::on_unimplemented]` message names the value, its type and where
/// it comes from, and whose impl for every `StorableIn` type is not recommended, so that rustc
/// reports the trait, not serde's two bounds beneath it. The items, and the bounds for the
/// `DurableFlow` impl (each check's supertrait `StorableIn` is what the impl's methods use).
fn storable_checks(e: &Emit) -> (TokenStream, Vec<TokenStream>) {
    let flow = &e.def.name;
    // (what the message calls it, the check's name, the type)
    let mut checked: Vec<(String, String, TokenStream)> = e
        .def
        .inputs
        .iter()
        .map(|(n, ty)| {
            let name = n.to_string();
            let name = bare(&name);
            (format!("flow input `{name}`"), name.to_owned(), quote!(#ty))
        })
        .collect();
    for (i, slot) in e.a.slots.iter().enumerate() {
        if matches!(slot.source, Source::Output { .. }) {
            let name = bare(&slot.name).to_owned();
            checked.push((origin(e.a, i), name, value_type(e.def, e.a, i)));
        }
    }
    for (k, &s) in e.a.order.iter().enumerate() {
        let step = &e.a.steps[s];
        if step.map_item.is_some() && step.meta.has_revert {
            checked.push((
                format!(
                    "what map step `{}` finished (kept for its revert)",
                    step.label
                ),
                format!("finished_by_step_{k}"),
                super::map::finished_type(&step.r.path),
            ));
        }
    }
    // One check per type as written: the `DurableFlow` impl's methods prove each value's bounds
    // from the impl's where-clauses, and each proof scans them all, so a bound per value made
    // checking a flow quadratic in its values. A type that cannot be stored is one error,
    // naming the values of that type.
    let mut groups: Vec<(String, TokenStream, Vec<String>)> = Vec::new();
    let mut by_type: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (what, name, ty) in checked {
        match by_type.entry(ty.to_string()) {
            std::collections::hash_map::Entry::Occupied(g) => groups[*g.get()].2.push(what),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(groups.len());
                groups.push((name, ty, vec![what]));
            }
        }
    }
    let mut items = TokenStream::new();
    let mut bounds = Vec::new();
    for (name, ty, whats) in groups {
        let what = match whats.as_slice() {
            [one] => format!("{one} is"),
            [a, b] => format!("{a} and {b} are"),
            [a, b, c] => format!("{a}, {b} and {c} are"),
            [a, b, rest @ ..] => format!("{a}, {b} and {} other values are", rest.len()),
            [] => unreachable!("a group has its first value"),
        };
        let message = format!(
            "flow `{flow}` cannot run with a store: {what} `{{Self}}`, which is not \
             `Serialize + DeserializeOwned`"
        );
        // Named after the flow too: see `values::check_ident`.
        let check = format_ident!("{}_storable_{name}", super::values::bare(&flow.to_string()));
        items.extend(quote! {
            #[allow(non_camel_case_types)]
            #[diagnostic::on_unimplemented(
                message = #message,
                label = "a run with a store keeps every value of its flow",
                note = "derive `serde::Serialize` and `serde::Deserialize` for it, or run the \
                        flow in memory with `Engine::run`"
            )]
            trait #check<'d>: __tf::StorableIn<'d> {}
            #[diagnostic::do_not_recommend]
            impl<'d, T: __tf::StorableIn<'d>> #check<'d> for T {}
        });
        bounds.push(quote!(#ty: #check<'__d>));
    }
    (items, bounds)
}

fn subflows<'a>(a: &'a Analysis) -> Vec<&'a syn::Path> {
    a.order
        .iter()
        .map(|&s| &a.steps[s])
        .filter(|s| s.meta.kind == StepKind::Flow)
        .map(|s| &s.r.path)
        .collect()
}

/// `Flow::__save_step`: step `step`'s outputs as JSON, for its result in a store (none for a flow
/// whose steps have no outputs; its `(&Stored(..)).save()` needs `NotStorable` and `SaveStored`
/// in scope, see `expand`). It is a
/// method of `Flow`, not of `DurableFlow`, so that the drivers, which know only `F: Flow`, reach
/// each (sub-)flow's own serialization through its type. Which code serializes a value is chosen
/// here, at compile time, for each value's concrete type (`__tf::Stored`): serde for a
/// `Serialize + DeserializeOwned` type, else an error that no run can reach, because only a flow
/// whose every stored type is serializable gets past the `DurableFlow` gate to a store.
pub fn save_step_method(e: &Emit, chunks: &mut TokenStream) -> TokenStream {
    let [v, step] = ["v", "step"].map(local);
    let saves = output_arms(
        e,
        |f| quote!((&__tf::Stored(#v.#f.get())).save()),
        |names, fields| quote!(__tf::save_object([#((#names, (&__tf::Stored(#v.#fields.get())).save())),*])),
    );
    if saves.is_empty() {
        return quote!();
    }
    let sig = Sig {
        asyncness: false,
        generics: quote!(),
        params: quote!(#v: &__Values, #step: usize),
        args: quote!(#v, #step),
        ret: quote!(__tf::Saved),
        bounds: quote!(),
        wrap: None,
    };
    let body = dispatch(
        chunks,
        "__save_step",
        &sig,
        &step,
        &saves,
        &quote!(__tf::Ok(__tf::JsonValue::Null)),
    );
    quote! {
        fn __save_step(#v: &__Values, #step: usize) -> __tf::Saved {
            #body
        }
    }
}

/// `Flow::__save_finished`: what a `map` step with a revert hook finished before it failed, as
/// JSON for its FAILURE record (none for a flow without such steps). Like `__save_step`'s, the
/// serialization is picked at the items' concrete type (`__tf::Stored`).
pub fn save_finished_method(e: &Emit) -> TokenStream {
    let [v, step] = ["v", "step"].map(local);
    let arms = finished_arms(
        e,
        |f| quote!(__tf::Some((&__tf::Stored(#v.#f.opt()?)).save())),
    );
    if arms.is_empty() {
        return quote!();
    }
    quote! {
        fn __save_finished(#v: &__Values, #step: usize) -> __tf::Option<__tf::Saved> {
            match #step {
                #(#arms)*
                _ => __tf::None,
            }
        }
    }
}

/// The `map` steps with a revert hook, by their index in the run order: the field of what each
/// finished, and the type of its items.
fn reverted_maps<'e>(e: &'e Emit<'_>) -> Vec<(proc_macro2::Literal, &'e syn::Ident, TokenStream)> {
    let mut maps = Vec::new();
    for (k, &s) in e.a.order.iter().enumerate() {
        let step = &e.a.steps[s];
        if step.map_item.is_some() && step.meta.has_revert {
            maps.push((
                index(k),
                e.values.step_field(s),
                super::map::finished_type(&step.r.path),
            ));
        }
    }
    maps
}

/// One `match` arm per `map` step with a revert hook: `body` of the field of what it finished.
fn finished_arms(e: &Emit, body: impl Fn(&syn::Ident) -> TokenStream) -> Vec<TokenStream> {
    reverted_maps(e)
        .into_iter()
        .map(|(k, f, _)| {
            let body = body(f);
            quote!(#k => #body,)
        })
        .collect()
}

/// One `match` arm per step with outputs, by its index in the run order: `one` of the field of
/// its one output, or `many` of its outputs' names and fields.
fn output_arms(
    e: &Emit,
    one: impl Fn(&syn::Ident) -> TokenStream,
    many: impl Fn(&[&str], &[&syn::Ident]) -> TokenStream,
) -> Vec<(usize, TokenStream)> {
    let mut arms = Vec::new();
    for (k, &s) in e.a.order.iter().enumerate() {
        let body = match e.a.steps[s].outs.as_slice() {
            [] => continue,
            [out] => one(e.values.field(*out)),
            outs => {
                let names: Vec<&str> = outs.iter().map(|&s| e.a.slots[s].name.as_str()).collect();
                let fields: Vec<_> = outs.iter().map(|&s| e.values.field(s)).collect();
                many(&names, &fields)
            }
        };
        arms.push((k, body));
    }
    arms
}

/// The `DurableFlow` impl. Its bounds mention the impl's lifetime so that rustc checks them
/// where the impl is used (a run with a store), not here: a flow with a value that is not
/// serializable still compiles and runs in memory (see `StorableIn`).
pub fn durable_impl(
    e: &Emit,
    restores: &[(usize, TokenStream)],
    chunks: &mut TokenStream,
) -> TokenStream {
    let name = &e.def.name;
    let inputs_ty = inputs_ident(e.def);
    let [v, step, json, inputs, stored, run] =
        ["v", "step", "json", "inputs", "stored", "run"].map(local);
    let (checks, bounds) = storable_checks(e);
    let subs = subflows(e.a);
    let loads = output_arms(
        e,
        |f| quote!(#v.#f.load(#json)),
        |names, fields| {
            quote!({
                #(#v.#fields.load_field(#json, #names)?;)*
                __tf::Ok(())
            })
        },
    );
    let load_finished = {
        let arms = finished_arms(e, |f| quote!(#v.#f.load(#json)));
        (!arms.is_empty()).then(|| {
            quote! {
                fn __load_finished(#v: &mut __Values, #step: usize, #json: &__tf::JsonValue) -> __tf::Loaded {
                    match #step {
                        #(#arms)*
                        _ => __tf::Ok(()),
                    }
                }
            }
        })
    };
    let input_names: Vec<String> = e.def.inputs.iter().map(|(n, _)| n.to_string()).collect();
    let input_ids = e.def.inputs.iter().map(|(n, _)| n);
    let input_ids2 = input_ids.clone();
    // The chunks of `__load_step` and `__restore_sub` have the impl's bounds, which their arms
    // use.
    let where_clause = quote! {
        where
            #(#bounds,)*
            #(#subs: __tf::SubflowIn<'__d>,)*
    };
    let load_sig = Sig {
        asyncness: false,
        generics: quote!(<'__d>),
        params: quote!(#v: &mut __Values, #step: usize, #json: &__tf::JsonValue),
        args: quote!(#v, #step, #json),
        ret: quote!(__tf::Loaded),
        bounds: where_clause.clone(),
        wrap: None,
    };
    let loads = dispatch(
        chunks,
        "__load_step",
        &load_sig,
        &step,
        &loads,
        &quote!(__tf::Ok(())),
    );
    let restore = (!restores.is_empty()).then(|| {
        let sig = Sig {
            asyncness: false,
            generics: quote!(<'__d>),
            params: quote!(#v: &mut __Values, #step: usize, #stored: &__tf::Restore<'_>, #run: &__tf::RunContext),
            args: quote!(#v, #step, #stored, #run),
            ret: quote!(__tf::Result<(), __tf::StoreError>),
            bounds: where_clause.clone(),
            wrap: None,
        };
        let body = dispatch(
            chunks,
            "__restore_sub",
            &sig,
            &step,
            restores,
            &quote!(__tf::Ok(())),
        );
        quote! {
            fn __restore_sub(#v: &mut __Values, #step: usize, #stored: &__tf::Restore<'_>, #run: &__tf::RunContext) -> __tf::Result<(), __tf::StoreError> {
                #body
            }
        }
    });
    quote! {
        #checks

        impl<'__d> __tf::DurableFlow for #name
        #where_clause
        {
            fn __load_step(#v: &mut __Values, #step: usize, #json: &__tf::JsonValue) -> __tf::Loaded {
                #loads
            }

            #load_finished

            fn __save_inputs(#inputs: &#inputs_ty) -> __tf::Saved {
                __tf::save_object([#((#input_names, __tf::save(&#inputs.#input_ids))),*])
            }

            fn __load_inputs(#json: &__tf::JsonValue) -> __tf::Loaded<#inputs_ty> {
                __tf::Ok(#inputs_ty { #(#input_ids2: __tf::load_field(#json, #input_names)?,)* })
            }

            #restore
        }
    }
}
