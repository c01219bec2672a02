//! The values struct of a run as generated code sees it: a field per slot, named after the value;
//! its type; whether it is shared (read by reference somewhere) or moved out by its only reader;
//! and how a step's parameter reads it, on each engine.

use std::collections::HashSet;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use super::super::graph::{Analysis, Source, Step};
use super::super::parse::FlowDef;
use crate::meta::{ParamMeta, StepKind};

/// An identifier for `name` (a value's, a label's or a parameter's, as the user wrote it: raw when
/// it is a keyword).
pub fn ident(name: &str, span: Span) -> Ident {
    let bare = name.strip_prefix("r#").unwrap_or(name);
    if syn::parse_str::<Ident>(bare).is_ok() {
        Ident::new(bare, span)
    } else {
        Ident::new_raw(bare, span)
    }
}

/// A local of generated code: invisible to the user's tokens around it (a controller
/// expression, a task's path), and they to it.
pub fn local(name: &str) -> Ident {
    ident(name, Span::mixed_site())
}

/// How a parameter reads its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `&TaskContext`, from the run.
    Ctx,
    /// `T`: moved or cloned.
    Value,
    /// `&T`: borrowed (an `Arc` handle in the parallel engine).
    Ref,
    /// `Option<T>` of a value a decider may skip.
    OptValue,
    /// `Option<&T>`.
    OptRef,
}

pub fn mode(a: &Analysis, args: &[Option<usize>], params: &[ParamMeta], p: usize) -> Mode {
    let param = &params[p];
    let Some(slot) = args[p] else {
        return Mode::Ctx;
    };
    match (param.optional, param.by_ref) {
        (true, true) => Mode::OptRef,
        (true, false) if skippable(a, slot) => Mode::OptValue,
        (_, true) => Mode::Ref,
        _ => Mode::Value,
    }
}

/// Whether a slot may be empty when read: its producer may be skipped by a decider.
pub fn skippable(a: &Analysis, slot: usize) -> bool {
    matches!(a.slots[slot].source, Source::Output { step, .. } if a.skippable[step])
}

/// Everything about the values struct, decided once for the whole flow.
pub struct Values {
    /// The field of each slot.
    fields: Vec<Ident>,
    /// The field holding sub-flow step `s`'s run, or what map step `s` finished when it failed.
    step_fields: Vec<Option<Ident>>,
    /// Read by reference somewhere (a `&T` parameter, an element of a `map`, or an input or output
    /// of a task whose revert hook borrows it): a `Shared` slot, so a step's future can own a
    /// handle.
    shared: Vec<bool>,
    /// A by-value parameter that is the slot's only reader moves the value out instead of
    /// cloning it — unless a retry could run that reader again without writing the slot again.
    movable: Vec<bool>,
}

impl Values {
    pub fn new(def: &FlowDef, a: &Analysis) -> Values {
        let (shared, movable) = layout(def, a);
        // Names: the flow's values first (inputs and outputs are unique), then retry items and
        // defaults, then the fields of sub-flow and map steps; a name taken gets a suffix.
        let mut taken = HashSet::new();
        let mut claim = |wanted: String, fallback: String| {
            let mut name = if taken.contains(&wanted) {
                fallback
            } else {
                wanted
            };
            while taken.contains(&name) {
                name.push('_');
            }
            taken.insert(name.clone());
            ident(&name, Span::call_site())
        };
        let mut fields = vec![None; a.slots.len()];
        let rank = |source: &Source| match source {
            Source::Input(_) | Source::Output { .. } => 0,
            Source::RetryItem { .. } => 1,
            Source::Default { .. } => 2,
        };
        let mut by_rank: Vec<usize> = (0..a.slots.len()).collect();
        by_rank.sort_by_key(|&s| rank(&a.slots[s].source));
        for s in by_rank {
            let name = a.slots[s].name.trim_start_matches("r#").to_owned();
            let fallback = match a.slots[s].source {
                Source::Default { step, .. } => format!("{}_{name}", bare(&a.steps[step].label)),
                _ => name.clone(),
            };
            fields[s] = Some(claim(name, fallback));
        }
        let step_fields = a
            .steps
            .iter()
            .map(|step| {
                let label = bare(&step.label);
                if step.meta.kind == StepKind::Flow {
                    Some(claim(label.to_owned(), format!("{label}_run")))
                } else if step.map_item.is_some() {
                    let name = format!("{label}_finished");
                    Some(claim(name.clone(), name))
                } else {
                    None
                }
            })
            .collect();
        Values {
            fields: fields
                .into_iter()
                .map(|f| f.expect("every slot named"))
                .collect(),
            step_fields,
            shared,
            movable,
        }
    }

    pub fn field(&self, slot: usize) -> &Ident {
        &self.fields[slot]
    }

    /// The field of sub-flow step `step`'s run, or of what map step `step` finished.
    pub fn step_field(&self, step: usize) -> &Ident {
        self.step_fields[step]
            .as_ref()
            .expect("a sub-flow or map step")
    }

    pub fn is_shared(&self, slot: usize) -> bool {
        self.shared[slot]
    }

    /// The type of a slot's field.
    pub fn slot_type(&self, def: &FlowDef, a: &Analysis, slot: usize) -> TokenStream {
        let ty = value_type(def, a, slot);
        if self.shared[slot] {
            quote!(__tf::Shared<#ty>)
        } else {
            quote!(__tf::Slot<#ty>)
        }
    }

    /// What the serial engine passes for a parameter: the value borrowed from its slot, or moved
    /// or cloned out of it.
    pub fn borrowed(&self, m: Mode, slot: Option<usize>, label: &str) -> TokenStream {
        let v = local("v");
        match (m, slot) {
            (Mode::Ctx, _) | (_, None) => {
                let run = local("run");
                quote!(&__tf::TaskContext::__new(#run, #label))
            }
            (Mode::Ref, Some(s)) => {
                let f = self.field(s);
                quote!(#v.#f.get())
            }
            (Mode::OptRef, Some(s)) => {
                let f = self.field(s);
                quote!(#v.#f.opt())
            }
            (Mode::Value | Mode::OptValue, Some(s)) => self.moved_or_cloned(m, s),
        }
    }

    /// What the parallel engine's step future owns for a parameter, and its type: a handle for a
    /// borrowed value, else the value (moved or cloned).
    pub fn owned(
        &self,
        def: &FlowDef,
        a: &Analysis,
        m: Mode,
        slot: Option<usize>,
        label: &str,
    ) -> (TokenStream, TokenStream) {
        let v = local("v");
        let Some(s) = slot.filter(|_| m != Mode::Ctx) else {
            let run = local("run");
            return (
                quote!(__tf::TaskContext::__new(#run, #label)),
                quote!(__tf::TaskContext),
            );
        };
        let f = self.field(s);
        let ty = value_type(def, a, s);
        match m {
            Mode::Ref => (quote!(#v.#f.arc()), quote!(__tf::Arc<#ty>)),
            Mode::OptRef => (
                quote!(#v.#f.opt_arc()),
                quote!(__tf::Option<__tf::Arc<#ty>>),
            ),
            Mode::Value => (self.moved_or_cloned(m, s), ty),
            Mode::OptValue => (self.moved_or_cloned(m, s), quote!(__tf::Option<#ty>)),
            Mode::Ctx => unreachable!(),
        }
    }

    /// How a step's function gets a parameter from what the step future owns (`owned`).
    pub fn lent(m: Mode, var: &Ident) -> TokenStream {
        match m {
            Mode::Ctx | Mode::Ref => quote!(&#var),
            Mode::OptRef => quote!(#var.as_deref()),
            Mode::Value | Mode::OptValue => quote!(#var),
        }
    }

    /// A by-value read: moved out for the slot's only reader, cloned otherwise.
    fn moved_or_cloned(&self, m: Mode, slot: usize) -> TokenStream {
        let v = local("v");
        let f = self.field(slot);
        match (m == Mode::OptValue, self.movable[slot]) {
            (false, true) => quote!(#v.#f.take()),
            (false, false) => quote!(#v.#f.cloned()),
            (true, true) => quote!(#v.#f.take_opt()),
            (true, false) => quote!(#v.#f.cloned_opt()),
        }
    }

    /// A read that never moves (a decider's: it may be asked again after a retry).
    pub fn read_again(&self, m: Mode, slot: Option<usize>, label: &str) -> TokenStream {
        let v = local("v");
        match (m, slot) {
            (Mode::Value, Some(s)) => {
                let f = self.field(s);
                quote!(#v.#f.cloned())
            }
            (Mode::OptValue, Some(s)) => {
                let f = self.field(s);
                quote!(#v.#f.cloned_opt())
            }
            _ => self.borrowed(m, slot, label),
        }
    }
}

/// The label of a step without a raw identifier's `r#`, to build other names from.
pub fn bare(label: &str) -> &str {
    label.trim_start_matches("r#")
}

/// The type of a slot's value, as generated code can name it from the flow's own module.
pub fn value_type(def: &FlowDef, a: &Analysis, slot: usize) -> TokenStream {
    match a.slots[slot].source {
        Source::Input(i) => {
            let ty = &def.inputs[i].1;
            quote!(#ty)
        }
        Source::Output { step, index } => {
            let index = proc_macro2::Literal::usize_unsuffixed(index);
            let path = &a.steps[step].r.path;
            if a.steps[step].map_item.is_some() {
                quote!(__tf::Vec<__tf::Out<#path, #index>>)
            } else {
                quote!(__tf::Out<#path, #index>)
            }
        }
        Source::Default { step, param } => {
            let param = proc_macro2::Literal::usize_unsuffixed(param);
            let path = &a.steps[step].r.path;
            quote!(<#path as __tf::Param<#param>>::Value)
        }
        Source::RetryItem { scope } => {
            let scope = &a.scopes[scope];
            match (&scope.spec.provides, scope.for_each) {
                (Some((_, Some(ty))), _) => quote!(#ty),
                (_, Some(values)) => {
                    let values = value_type(def, a, values);
                    quote!(<#values as __tf::Elements>::Item)
                }
                _ => quote!(()), // reported: the type must be written
            }
        }
    }
}

/// The type of what a task step returns on success: its outputs, as its slots hold them.
pub fn outputs_type(def: &FlowDef, a: &Analysis, step: &Step) -> TokenStream {
    let tys: Vec<TokenStream> = step.outs.iter().map(|&s| value_type(def, a, s)).collect();
    match tys.as_slice() {
        [] => quote!(()),
        [one] => one.clone(),
        many => quote!((#(#many,)*)),
    }
}

/// The names of a step's parameters in the functions generated for it: the task's own, made
/// distinct from the names those functions use themselves (`reserved`).
pub fn param_names(step: &Step, reserved: &[&str]) -> Vec<Ident> {
    let span = Span::mixed_site().located_at(step.r.span());
    step.meta
        .params
        .iter()
        .map(|p| {
            let mut name = p.name.trim_start_matches("r#").to_owned();
            while reserved.contains(&name.as_str()) {
                name.push('_');
            }
            ident(&name, span)
        })
        .collect()
}

fn layout(def: &FlowDef, a: &Analysis) -> (Vec<bool>, Vec<bool>) {
    let mut shared = vec![false; a.slots.len()];
    let mut readers = vec![0usize; a.slots.len()];
    let mut reader_scopes: Vec<&[usize]> = vec![&[]; a.slots.len()];
    for step in &a.steps {
        for (p, slot) in step.args.iter().enumerate() {
            let Some(slot) = *slot else { continue }; // a `&TaskContext`
            readers[slot] += 1;
            reader_scopes[slot] = &step.scopes;
            if matches!(
                mode(a, &step.args, &step.meta.params, p),
                Mode::Ref | Mode::OptRef
            ) {
                shared[slot] = true;
            }
            if step.map_item == Some(p) {
                shared[slot] = true; // every run of a map borrows its element
            }
        }
        if step.meta.has_revert {
            for &slot in step.args.iter().flatten().chain(&step.outs) {
                readers[slot] += 1;
                shared[slot] = true;
            }
        }
    }
    for out in &def.outputs {
        if let Some(slot) = a.slot_of(&out.to_string()) {
            readers[slot] += 1;
        }
    }
    for scope in &a.scopes {
        if let Some(values) = scope.for_each {
            readers[values] += 1;
        }
    }
    for d in &a.deciders {
        for &slot in d.args.iter().flatten() {
            readers[slot] += 1;
        }
    }
    let movable = (0..a.slots.len())
        .map(|slot| {
            let producer = a.producer_scopes(slot);
            !shared[slot]
                && readers[slot] == 1
                && reader_scopes[slot].iter().all(|s| producer.contains(s))
        })
        .collect();
    (shared, movable)
}
