//! The values struct of a run as generated code sees it: a field per slot, named after the value;
//! its type; whether it is shared (read by reference somewhere) or moved out by its only reader;
//! and how a step's parameter reads it, on each engine.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

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
    /// Where a clone of each slot is reported when its type is not `Clone`: the first step in
    /// the run's order that takes it by value (else the flow).
    clone_spans: Vec<Span>,
    /// The slots some generated code clones, each through its check (`clone_checks`).
    cloned: RefCell<BTreeSet<usize>>,
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
        let mut clone_spans = vec![Span::call_site(); a.slots.len()];
        for &s in a.order.iter().rev() {
            let step = &a.steps[s];
            for (p, slot) in step.args.iter().enumerate() {
                if let Some(slot) = *slot {
                    if matches!(
                        mode(a, &step.args, &step.meta.params, p),
                        Mode::Value | Mode::OptValue
                    ) {
                        clone_spans[slot] = Span::call_site().located_at(step.r.span());
                    }
                }
            }
        }
        Values {
            fields: fields
                .into_iter()
                .map(|f| f.expect("every slot named"))
                .collect(),
            step_fields,
            shared,
            movable,
            clone_spans,
            cloned: RefCell::default(),
        }
    }

    /// A copy of the value in `slot` (`option`: of the value a decider may have skipped, as an
    /// `Option`), through the slot's clone check, spanned on its first by-value reader.
    fn clone_of(&self, slot: usize, option: bool) -> TokenStream {
        self.cloned.borrow_mut().insert(slot);
        let v = local("v");
        let f = self.field(slot);
        let copy = format_ident!("copy_of_{}", self.fields[slot]);
        if option {
            quote!(#v.#f.opt().map(#copy))
        } else {
            quote!(#copy(#v.#f.get()))
        }
    }

    /// The check of every slot some generated code clones (`clone_of`): a trait whose
    /// `#[diagnostic::on_unimplemented]` message names the value, where it comes from and the
    /// steps that take it by value, and whose impl for every `Clone` type is not recommended, so
    /// a value that is not `Clone` is that one error, in our words. Called after everything else
    /// is generated.
    pub fn clone_checks(&self, def: &FlowDef, a: &Analysis) -> TokenStream {
        let mut items = TokenStream::new();
        for &slot in self.cloned.borrow().iter() {
            let mut readers = Vec::new();
            for &s in &a.order {
                let step = &a.steps[s];
                let by_value = step.args.iter().enumerate().any(|(p, arg)| {
                    *arg == Some(slot)
                        && matches!(
                            mode(a, &step.args, &step.meta.params, p),
                            Mode::Value | Mode::OptValue
                        )
                });
                if by_value {
                    readers.push(format!("`{}`", step.label));
                }
            }
            let who = match readers.len() {
                0 => "it is read by value more than once (by a decider or a retry controller), \
                      so it is cloned"
                    .to_owned(),
                1 => format!(
                    "step {} takes it by value, and as another reads it too, or a retry may run \
                     the step again, it gets a clone",
                    readers[0]
                ),
                _ => format!(
                    "steps {} take it by value, so all but the last get a clone",
                    readers.join(", ")
                ),
            };
            let message = format!(
                "{} is `{{Self}}`, which is not `Clone`: {who}",
                origin(a, slot)
            );
            let span = self.clone_spans[slot];
            let check = check_ident(&def.name, &format!("clone_{}", self.fields[slot]), span);
            let copy = format_ident!("copy_of_{}", self.fields[slot]);
            let ty = value_type(def, a, slot);
            let call = quote_spanned!(span=> #check::cloned(v));
            items.extend(quote! {
                #[allow(non_camel_case_types)]
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = "this step gets a clone of it",
                    note = "derive or implement `Clone` for it, or have the steps that only \
                            look at it take it by reference (`&T`)"
                )]
                trait #check: Sized {
                    fn cloned(v: &Self) -> Self;
                }
                #[diagnostic::do_not_recommend]
                impl<T: __tf::Clone> #check for T {
                    #[inline(always)]
                    fn cloned(v: &T) -> T {
                        v.clone()
                    }
                }
                // Every clone of the value, in one place: one error when it is not `Clone`.
                #[inline(always)]
                fn #copy(v: &#ty) -> #ty {
                    #call
                }
            });
        }
        items
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
                let (run, at, step) = (local("run"), local("at"), local("step"));
                quote!(&__tf::TaskContext::__new(#run, #label, #at, #step))
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
            let (run, at, step) = (local("run"), local("at"), local("step"));
            return (
                quote!(__tf::TaskContext::__new(#run, #label, #at, #step)),
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
            (true, true) => quote!(#v.#f.take_opt()),
            (option, false) => self.clone_of(slot, option),
        }
    }

    /// A read that never moves (a decider's: it may be asked again after a retry).
    pub fn read_again(&self, m: Mode, slot: Option<usize>, label: &str) -> TokenStream {
        match (m, slot) {
            (Mode::Value, Some(s)) => self.clone_of(s, false),
            (Mode::OptValue, Some(s)) => self.clone_of(s, true),
            _ => self.borrowed(m, slot, label),
        }
    }
}

/// What a message says a slot is: "flow input `size`", "`size` (from step `choose`)".
pub fn origin(a: &Analysis, slot: usize) -> String {
    let name = bare(&a.slots[slot].name);
    match a.slots[slot].source {
        Source::Input(_) => format!("flow input `{name}`"),
        Source::Output { step, .. } => {
            let provider = &a.steps[step];
            let kind = match provider.meta.kind {
                StepKind::Flow => "sub-flow",
                StepKind::Task => "step",
            };
            format!("`{name}` (from {kind} `{}`)", provider.label)
        }
        Source::RetryItem { .. } => format!("`{name}` (from its retry controller)"),
        Source::Default { .. } => format!("`{name}`"),
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

/// The name of a check's trait, `{flow}_{what}`, resolved where `flow!` is (so it clashes with
/// nothing of the user's), located at `span`. rustc names the trait in a help line under the
/// check's message ("the trait `Boot_attach_size<u32>` is not implemented for `u64`"), and
/// prints it this short only when no other item of the crate has its name: hence the flow's name
/// in it, as the same step or value names recur from flow to flow.
pub fn check_ident(flow: &Ident, what: &str, span: Span) -> Ident {
    let flow = flow.to_string();
    format_ident!(
        "{}_{what}",
        bare(&flow),
        span = Span::mixed_site().located_at(span)
    )
}
