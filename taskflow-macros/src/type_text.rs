//! Types as written, as stable text: what a durable run's fingerprint hashes.
//!
//! `std::any::type_name` is not promised stable across compiler versions, and
//! `TokenStream::to_string`'s spacing is not promised either. This text is built token by token
//! — identifiers, punctuation and literals separated by one space, groups by their delimiters —
//! so the same written type gives the same text with every compiler.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The normalized text of `tokens`.
pub fn normalized(tokens: &TokenStream) -> String {
    let mut out = String::new();
    push(tokens, &mut out);
    out
}

fn push(tokens: &TokenStream, out: &mut String) {
    for token in tokens.clone() {
        match token {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                word(open, out);
                push(&g.stream(), out);
                word(close, out);
            }
            TokenTree::Ident(i) => word(&i.to_string(), out),
            TokenTree::Punct(p) => word(&p.as_char().to_string(), out),
            TokenTree::Literal(l) => word(&l.to_string(), out),
        }
    }
}

fn word(w: &str, out: &mut String) {
    if w.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(w);
}

#[cfg(test)]
mod tests {
    use super::normalized;
    use quote::quote;

    #[test]
    fn spacing_as_written_does_not_matter() {
        assert_eq!(
            normalized(&quote!(Vec<(u32, String)>)),
            normalized(&"Vec < ( u32 ,String ) >".parse().unwrap())
        );
        assert_eq!(
            normalized(&quote!(Vec<(u32, String)>)),
            "Vec < ( u32 , String ) >"
        );
    }

    #[test]
    fn paths_and_lifetimes_are_kept() {
        assert_eq!(
            normalized(&quote!(std::collections::HashMap<&'static str, [u8; 4]>)),
            "std : : collections : : HashMap < & ' static str , [ u8 ; 4 ] >"
        );
    }
}
