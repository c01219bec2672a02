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

/// `tokens` as a person writes a type, for a message: `Vec<(u32, String)>`, `&[Failure]`,
/// `TaskOutcome<&u64>` (a space after a comma or a semicolon, around `+` and `=`, and between
/// two words).
pub fn pretty(tokens: &TokenStream) -> String {
    let mut out = String::new();
    pretty_into(tokens, &mut out);
    out
}

fn pretty_into(tokens: &TokenStream, out: &mut String) {
    for token in tokens.clone() {
        match token {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                pretty_into(&g.stream(), out);
                out.push_str(close);
            }
            TokenTree::Punct(p) => match p.as_char() {
                ',' | ';' => {
                    out.push(p.as_char());
                    out.push(' ');
                }
                '+' | '=' => {
                    out.push(' ');
                    out.push(p.as_char());
                    out.push(' ');
                }
                c => out.push(c),
            },
            word => {
                // Between two words (`dyn Trait`, `&'a str`, `mut T`), a space.
                if out.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    out.push(' ');
                }
                out.push_str(&word.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{normalized, pretty};
    use quote::quote;

    #[test]
    fn pretty_is_as_a_person_writes_it() {
        assert_eq!(pretty(&quote!(Vec<(u32, String)>)), "Vec<(u32, String)>");
        assert_eq!(pretty(&quote!(&'static str)), "&'static str");
        assert_eq!(
            pretty(&quote!(&[taskflow::Failure])),
            "&[taskflow::Failure]"
        );
        assert_eq!(
            pretty(&quote!(Box<dyn Error + Send>)),
            "Box<dyn Error + Send>"
        );
    }

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
