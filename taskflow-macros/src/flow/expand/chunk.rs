//! Dispatch on a step's number in chunks: rustc's checking of one `match` grows faster than its
//! arms (type checking, borrow checking and drop elaboration of a function with thousands of arms
//! that each borrow a different field), so a flow's methods that `match` on the step number give
//! each run of [`CHUNK`] numbers its own function of `__Chunks` and `match` on `step / CHUNK`
//! first. Both levels are static dispatch (jump tables), not a table of function pointers.
//!
//! Only from [`FROM`] numbers on: the second level costs the serial engine about 7% more
//! instructions per step (measured on the 100-step chain of `benches/serial.rs` chunked: 22,021
//! against 20,514 per run), and a `match` of a few hundred arms checks in time linear in them,
//! so a flow of at most [`FROM`] steps expands as it did before chunking.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use super::structure::index;

/// Step numbers per chunk.
pub const CHUNK: usize = 64;

/// A dispatch whose numbers are all below this stays one `match`; a flow of more steps has its
/// `__Args` and `__Done` in chunks.
pub const FROM: usize = 256;

/// A chunk function's signature, as the method that dispatches to it has it: `generics` and
/// `bounds` (`<'__d>` and its where-clauses, for `DurableFlow`'s methods), its parameters, the
/// arguments that pass them on, and its return type.
pub struct Sig {
    pub asyncness: bool,
    pub generics: TokenStream,
    pub params: TokenStream,
    pub args: TokenStream,
    pub ret: TokenStream,
    pub bounds: TokenStream,
    /// `Some("__Args")`: chunk `c` returns an `__Args{c}` instead of `ret`, which the outer
    /// `match` wraps in `__Args::c{c}`.
    pub wrap: Option<&'static str>,
}

/// `match scrut { arms, _ => default }`, the arms by number in ascending order (`k => body`);
/// with numbers from [`FROM`] up, a `match scrut / CHUNK` over functions `{prefix}_{chunk}`,
/// whose definitions are added to `fns` (items of `impl __Chunks`).
pub fn dispatch(
    fns: &mut TokenStream,
    prefix: &str,
    sig: &Sig,
    scrut: &Ident,
    arms: &[(usize, TokenStream)],
    default: &TokenStream,
) -> TokenStream {
    let one = |arms: &[(usize, TokenStream)]| {
        let arms = arms.iter().map(|(k, body)| {
            let k = index(*k);
            quote!(#k => #body,)
        });
        quote! {
            match #scrut {
                #(#arms)*
                _ => #default,
            }
        }
    };
    if arms.last().is_none_or(|(k, _)| *k < FROM) {
        return one(arms);
    }
    let Sig {
        asyncness,
        generics,
        params,
        args,
        ret,
        bounds,
        wrap,
    } = sig;
    let asyncness = asyncness.then(|| quote!(async));
    let awaited = sig.asyncness.then(|| quote!(.await));
    let mut outer = Vec::new();
    for group in arms.chunk_by(|(a, _), (b, _)| a / CHUNK == b / CHUNK) {
        let c = group[0].0 / CHUNK;
        let name = Ident::new(&format!("{prefix}_{c}"), Span::call_site());
        let body = one(group);
        let (ret, wrap) = match wrap {
            Some(outer) => {
                let (variant, inner) = super::chunk_names(c, outer);
                let outer = Ident::new(outer, Span::call_site());
                (quote!(#inner), Some(quote!(#outer::#variant)))
            }
            None => (ret.clone(), None),
        };
        fns.extend(quote! {
            #asyncness fn #name #generics(#params) -> #ret #bounds {
                #body
            }
        });
        let c = index(c);
        // `'__d` is inferred: the elided lifetimes of the parameters are late-bound, so it
        // cannot be written.
        let call = quote!(__Chunks::#name(#args)#awaited);
        outer.push(match wrap {
            Some(wrap) => quote!(#c => #wrap(#call),),
            None => quote!(#c => #call,),
        });
    }
    let chunk = index(CHUNK);
    quote! {
        match #scrut / #chunk {
            #(#outer)*
            _ => #default,
        }
    }
}
