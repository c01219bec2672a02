//! The syntax inside `flow! { .. }`.
//!
//! ```text
//! flow     := attrs vis `flow` Name `(` (input `:` Type),* `)` (`->` outputs)? `{` pattern `}`
//! outputs  := output | `(` output,* `)`       output := name (`:` Type)?
//! pattern  := (`retry` `(` controller (`->` name (`:` Type)?)? `)`)? (`linear` | `unordered` | `graph`) `[` item,* `]`
//! item     := pattern | step | link          (links only in `graph`; `check` reports the others)
//! step     := (`map`)? path (`(` param `=` name,* `)`)? (`over` values)? (`->` name | `->` `(` name,* `)`)? (`as` label)?
//! link     := label `->` label
//! ```

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, Attribute, Ident, Token, Type, Visibility};

pub struct FlowDef {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub inputs: Vec<(Ident, Type)>,
    pub outputs: Vec<Ident>,
    /// The declared type of each output, where one is written.
    pub output_types: Vec<Option<Type>>,
    pub body: Pattern,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PatternKind {
    Linear,
    Unordered,
    Graph,
}

pub struct Pattern {
    pub kind: PatternKind,
    /// `linear`, `unordered` or `graph` as written, and the span of the brackets after it.
    pub keyword: Ident,
    pub brackets: Span,
    pub items: Vec<Item>,
    /// `retry(controller) pattern`: a controller around this sub-flow.
    pub retry: Option<Box<RetrySpec>>,
}

/// `retry(expr)`, `retry(expr -> name: Type)` or `retry(ParameterizedForEach(values) -> name)`.
pub struct RetrySpec {
    pub controller: syn::Expr,
    /// `ParameterizedForEach(values)`: one attempt per element of flow value `values`.
    pub for_each: Option<Ident>,
    /// The value the controller provides to its sub-flow each attempt.
    pub provides: Option<(Ident, Option<Type>)>,
}

impl Parse for RetrySpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        input.parse::<Ident>()?; // `retry`
        let content;
        parenthesized!(content in input);
        // `expr -> name`: syn would read `- >` as a subtraction, so split at the arrow first.
        let tokens: Vec<proc_macro2::TokenTree> = content
            .parse::<proc_macro2::TokenStream>()?
            .into_iter()
            .collect();
        let arrow = tokens.windows(2).position(|w| {
            matches!((&w[0], &w[1]), (proc_macro2::TokenTree::Punct(a), proc_macro2::TokenTree::Punct(b))
                if a.as_char() == '-' && a.spacing() == proc_macro2::Spacing::Joint && b.as_char() == '>')
        });
        let (expr_tokens, rest) = match arrow {
            Some(i) => (&tokens[..i], &tokens[i + 2..]),
            None => (&tokens[..], &[][..]),
        };
        let controller: syn::Expr = syn::parse2(expr_tokens.iter().cloned().collect())?;
        let provides = if arrow.is_some() {
            let parse_provides = |s: ParseStream| -> syn::Result<(Ident, Option<Type>)> {
                let name: Ident = s.parse()?;
                let ty = if s.peek(Token![:]) {
                    s.parse::<Token![:]>()?;
                    Some(s.parse()?)
                } else {
                    None
                };
                if !s.is_empty() {
                    return Err(s.error(
                        "expected `retry(controller -> name)` or `retry(controller -> name: Type)`",
                    ));
                }
                Ok((name, ty))
            };
            Some(syn::parse::Parser::parse2(
                parse_provides,
                rest.iter().cloned().collect(),
            )?)
        } else {
            None
        };
        let for_each = match &controller {
            syn::Expr::Call(call) if matches!(&*call.func, syn::Expr::Path(p) if p.path.is_ident("ParameterizedForEach")) => {
                match call.args.iter().collect::<Vec<_>>().as_slice() {
                    [syn::Expr::Path(arg)] if arg.path.get_ident().is_some() => arg.path.get_ident().cloned(),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &call.args,
                            "`ParameterizedForEach` takes the name of a flow value: `ParameterizedForEach(sizes)`",
                        ))
                    }
                }
            }
            _ => None,
        };
        Ok(RetrySpec {
            controller,
            for_each,
            provides,
        })
    }
}

pub enum Item {
    Pattern(Pattern),
    Step(StepRef),
    Link(Link),
}

pub struct StepRef {
    pub path: syn::Path,
    pub binds: Vec<(Ident, Ident)>,
    pub renames: Option<Vec<Ident>>,
    pub label: Option<Ident>,
    /// `if decider`: only valid on a link.
    pub condition: Option<syn::Path>,
    /// `map task over values`: the flow value whose elements the task's first parameter takes.
    pub map_over: Option<Ident>,
}

pub struct Link {
    /// `if decider`: `to` runs only when the decider says so.
    pub decider: Option<syn::Path>,
    pub from: Ident,
    pub to: Ident,
}

impl StepRef {
    /// The step's name in its flow: its `as` label, else the path's last segment.
    pub fn label(&self) -> &Ident {
        self.label
            .as_ref()
            .unwrap_or_else(|| &self.path.segments.last().unwrap().ident)
    }

    /// Where generated code for this step is spanned, so rustc's own errors land on it.
    pub fn span(&self) -> Span {
        self.path.segments.last().unwrap().ident.span()
    }

    /// `a -> b` with nothing else: in a `graph`, a link when `a` and `b` name its steps.
    fn link_candidate(&self) -> Option<Link> {
        match (self.path.get_ident(), &self.renames) {
            (Some(from), Some(to))
                if to.len() == 1
                    && self.binds.is_empty()
                    && self.label.is_none()
                    && self.map_over.is_none() =>
            {
                Some(Link {
                    from: from.clone(),
                    to: to[0].clone(),
                    decider: self.condition.clone(),
                })
            }
            _ => None,
        }
    }
}

impl Parse for FlowDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let kw: Ident = input.parse()?;
        if kw != "flow" {
            return Err(syn::Error::new(
                kw.span(),
                "expected `flow Name(inputs) -> (outputs) { .. }`",
            ));
        }
        let name: Ident = input.parse()?;
        let content;
        parenthesized!(content in input);
        let inputs =
            Punctuated::<(Ident, Type), Token![,]>::parse_terminated_with(&content, |s| {
                let name: Ident = s.parse()?;
                s.parse::<Token![:]>()?;
                Ok((name, s.parse()?))
            })?;
        let (outputs, output_types) = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            parse_outputs(input)?
        } else {
            (Vec::new(), Vec::new())
        };
        let body_content;
        syn::braced!(body_content in input);
        let body: Pattern = body_content.parse()?;
        if !body_content.is_empty() {
            return Err(
                body_content.error("a flow's body is one pattern: wrap several in `linear [ .. ]`")
            );
        }
        if !input.is_empty() {
            return Err(
                input.error("one `flow!` defines one flow: use another `flow!` for the next")
            );
        }
        Ok(FlowDef {
            attrs,
            vis,
            name,
            inputs: inputs.into_iter().collect(),
            outputs,
            output_types,
            body,
        })
    }
}

fn parse_outputs(input: ParseStream) -> syn::Result<(Vec<Ident>, Vec<Option<Type>>)> {
    let one = |s: ParseStream| -> syn::Result<(Ident, Option<Type>)> {
        let name: Ident = s.parse()?;
        let ty = if s.peek(Token![:]) {
            s.parse::<Token![:]>()?;
            Some(s.parse()?)
        } else {
            None
        };
        Ok((name, ty))
    };
    let pairs: Vec<(Ident, Option<Type>)> = if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        Punctuated::<_, Token![,]>::parse_terminated_with(&content, one)?
            .into_iter()
            .collect()
    } else {
        vec![one(input)?]
    };
    Ok(pairs.into_iter().unzip())
}

fn parse_names(input: ParseStream) -> syn::Result<Vec<Ident>> {
    if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        Ok(Punctuated::<Ident, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect())
    } else {
        Ok(vec![input.parse()?])
    }
}

fn pattern_kind(ident: &Ident) -> Option<PatternKind> {
    match ident.to_string().as_str() {
        "linear" => Some(PatternKind::Linear),
        "unordered" => Some(PatternKind::Unordered),
        "graph" => Some(PatternKind::Graph),
        _ => None,
    }
}

fn starts_pattern(input: ParseStream) -> bool {
    let fork = input.fork();
    match fork.parse::<Ident>() {
        Ok(ident) if ident == "retry" => fork.peek(syn::token::Paren),
        Ok(ident) => pattern_kind(&ident).is_some() && fork.peek(syn::token::Bracket),
        Err(_) => false,
    }
}

impl Parse for Pattern {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let retry =
            if input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "retry") {
                Some(Box::new(input.parse::<RetrySpec>()?))
            } else {
                None
            };
        let keyword: Ident = input.parse()?;
        let Some(kind) = pattern_kind(&keyword) else {
            return Err(syn::Error::new(
                keyword.span(),
                "expected a pattern: `linear [ .. ]`, `unordered [ .. ]` or `graph [ .. ]`",
            ));
        };
        let content;
        let brackets = bracketed!(content in input).span.join();
        let mut items = Vec::new();
        while !content.is_empty() {
            if starts_pattern(&content) {
                items.push(Item::Pattern(content.parse()?));
            } else {
                items.push(Item::Step(content.parse()?));
            }
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        classify_links(kind, &mut items);
        Ok(Pattern {
            kind,
            keyword,
            brackets,
            items,
            retry,
        })
    }
}

/// In a `graph`, `a -> b` is a link when `a` names another step of the graph (at any depth);
/// otherwise it is step `a` with its output renamed to `b`. A link to a name that is not a step
/// is reported by `check`.
///
/// In a `linear` or `unordered`, `a -> b` is a link written in the wrong pattern when both `a` and
/// `b` name other steps of it (renaming an output to a step's name would be odd), so `check`
/// reports the one mistake instead of the side effects of a step `a` listed twice.
fn classify_links(kind: PatternKind, items: &mut [Item]) {
    fn labels(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            match item {
                Item::Step(s) if s.link_candidate().is_none() => out.push(s.label().to_string()),
                Item::Pattern(p) => labels(&p.items, out),
                _ => {}
            }
        }
    }
    let mut known = Vec::new();
    labels(items, &mut known);
    for item in items.iter_mut() {
        if let Item::Step(s) = item {
            if let Some(link) = s.link_candidate() {
                let named = |end: &Ident| known.contains(&end.to_string());
                let is_link = match kind {
                    PatternKind::Graph => named(&link.from),
                    PatternKind::Linear | PatternKind::Unordered => {
                        named(&link.from) && named(&link.to)
                    }
                };
                if is_link {
                    *item = Item::Link(link);
                }
            }
        }
    }
}

impl Parse for StepRef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `map task over values`: one run of `task` per element of `values`.
        let is_map = input.peek(Ident)
            && input.peek2(Ident)
            && input.fork().parse::<Ident>().is_ok_and(|i| i == "map");
        if is_map {
            input.parse::<Ident>()?;
        }
        let path: syn::Path = input.call(syn::Path::parse_mod_style).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a step: a #[task] function or a flow, by path",
            )
        })?;
        let mut binds = Vec::new();
        if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            let pairs =
                Punctuated::<(Ident, Ident), Token![,]>::parse_terminated_with(&content, |s| {
                    let param: Ident = s.parse()?;
                    s.parse::<Token![=]>()?;
                    Ok((param, s.parse()?))
                })?;
            binds = pairs.into_iter().collect();
        }
        let map_over = if is_map {
            let over: Ident = input.parse()?;
            if over != "over" {
                return Err(syn::Error::new(
                    over.span(),
                    "expected `map task over values`",
                ));
            }
            Some(input.parse::<Ident>()?)
        } else {
            None
        };
        let renames = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(parse_names(input)?)
        } else {
            None
        };
        let condition = if input.peek(Token![if]) {
            input.parse::<Token![if]>()?;
            Some(input.call(syn::Path::parse_mod_style)?)
        } else {
            None
        };
        let label = if input.peek(Token![as]) {
            input.parse::<Token![as]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(StepRef {
            path,
            binds,
            renames,
            label,
            condition,
            map_over,
        })
    }
}

impl Pattern {
    /// Every link with a decider, depth first, in the order they are written.
    pub fn deciders(&self) -> Vec<&Link> {
        let mut out = Vec::new();
        self.visit(&mut |item| {
            if let Item::Link(l) = item {
                if l.decider.is_some() {
                    out.push(l);
                }
            }
        });
        out
    }

    /// Every step, depth first, in the order they are written.
    pub fn steps(&self) -> Vec<&StepRef> {
        let mut out = Vec::new();
        self.visit(&mut |item| {
            if let Item::Step(s) = item {
                out.push(s);
            }
        });
        out
    }

    /// Calls `f` on every step and link, depth first, in the order they are written.
    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Item)) {
        for item in &self.items {
            match item {
                Item::Pattern(p) => p.visit(f),
                other => f(other),
            }
        }
    }
}
