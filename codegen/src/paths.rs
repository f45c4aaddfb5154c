//! Where generated code finds what it uses. progenitor and typify write
//! paths into `progenitor_client`, `reqwest`, `serde` and `serde_json`, and
//! codegen itself into `paytokens_runtime`; a crate holding generated code
//! would have to depend on each of them, at the versions the generator
//! expects. Instead every such path is rewritten to go through one root:
//! `::paytokens_runtime` for the crates under `generated/`, `::paytokens::runtime`
//! for code a user's `build.rs` generates ([`crate::Builder`]), and the four
//! crates through its hidden `__private` re-exports. serde's derives are told
//! where serde is (`#[serde(crate = "...")]`).

use proc_macro2::Span;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Ident, Path, PathSegment, Token, UseTree};

/// The crates generated code names, reached through the runtime's
/// `__private` module.
const PRIVATE: &[&str] = &["progenitor_client", "reqwest", "serde", "serde_json"];

/// The name codegen writes the runtime under before the rewrite.
const RUNTIME: &str = "paytokens_runtime";

/// Rewrites every path of `file` to go through `root` (e.g.
/// `::paytokens::runtime`).
pub fn through(file: &mut syn::File, root: &str) {
    let root: Path = syn::parse_str(root).expect("the runtime's root is a path");
    Rewrite { root }.visit_file_mut(file);
}

struct Rewrite {
    root: Path,
}

impl Rewrite {
    /// The segments that replace a path's first segment `first`, if it is one
    /// of the rewritten crates.
    fn prefix(&self, first: &Ident) -> Option<Vec<PathSegment>> {
        let name = first.to_string();
        let mut segments: Vec<PathSegment> = self.root.segments.iter().cloned().collect();
        if name == RUNTIME {
            return Some(segments);
        }
        if PRIVATE.contains(&name.as_str()) {
            segments.push(Ident::new("__private", Span::call_site()).into());
            segments.push(first.clone().into());
            return Some(segments);
        }
        None
    }

    fn serde_crate(&self) -> String {
        let root = self.root.to_token_stream().to_string().replace(' ', "");
        format!("{root}::__private::serde")
    }

    /// `tokens` with the paths in the strings of serde's path-valued keys
    /// (`skip_serializing_if = "..."`, `with = "..."`, ...) rewritten; a
    /// `rename` is a name on the wire and stays as it is.
    fn strings(&mut self, tokens: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        use proc_macro2::{Group, TokenTree};
        const PATH_KEYS: &[&str] = &[
            "default",
            "deserialize_with",
            "from",
            "into",
            "serialize_with",
            "skip_serializing_if",
            "try_from",
            "with",
        ];
        let mut key: Option<String> = None;
        let mut out = Vec::new();
        for tree in tokens {
            let tree = match tree {
                TokenTree::Group(group) => {
                    let mut rewritten = Group::new(group.delimiter(), self.strings(group.stream()));
                    rewritten.set_span(group.span());
                    TokenTree::Group(rewritten)
                }
                TokenTree::Literal(literal)
                    if key.as_deref().is_some_and(|key| PATH_KEYS.contains(&key)) =>
                {
                    match syn::parse_str::<syn::LitStr>(&literal.to_string())
                        .ok()
                        .and_then(|string| syn::parse_str::<Path>(&string.value()).ok())
                    {
                        Some(mut path) => {
                            self.visit_path_mut(&mut path);
                            let text = path.to_token_stream().to_string().replace(' ', "");
                            TokenTree::Literal(proc_macro2::Literal::string(&text))
                        }
                        None => TokenTree::Literal(literal),
                    }
                }
                other => other,
            };
            key = match (&tree, key) {
                (TokenTree::Ident(ident), _) => Some(ident.to_string()),
                (TokenTree::Punct(punct), key) if punct.as_char() == '=' => key,
                _ => None,
            };
            out.push(tree);
        }
        out.into_iter().collect()
    }

    /// Rewrites the paths a `#[derive(...)]` names, and tells serde's derives
    /// where serde is (right after the derive that introduces the attribute).
    fn attributes(&mut self, attributes: &mut Vec<Attribute>) {
        let mut out = Vec::with_capacity(attributes.len() + 1);
        for mut attribute in attributes.drain(..) {
            let mut derives_serde = false;
            if attribute.path().is_ident("derive")
                && let Ok(mut derived) =
                    attribute.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
            {
                for path in derived.iter_mut() {
                    derives_serde |= path
                        .segments
                        .first()
                        .is_some_and(|first| first.ident == "serde");
                    self.visit_path_mut(path);
                }
                attribute = syn::parse_quote!(#[derive(#derived)]);
            }
            out.push(attribute);
            if derives_serde {
                let serde = self.serde_crate();
                out.push(syn::parse_quote!(#[serde(crate = #serde)]));
            }
        }
        *attributes = out;
    }
}

impl VisitMut for Rewrite {
    fn visit_path_mut(&mut self, path: &mut Path) {
        if let Some(first) = path.segments.first()
            && first.arguments.is_none()
            && let Some(prefix) = self.prefix(&first.ident)
        {
            let rest: Vec<PathSegment> = path.segments.iter().skip(1).cloned().collect();
            path.leading_colon = self.root.leading_colon;
            path.segments = prefix.into_iter().chain(rest).collect();
        }
        visit_mut::visit_path_mut(self, path);
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        if let UseTree::Path(first) = &item.tree
            && let Some(prefix) = self.prefix(&first.ident)
        {
            let UseTree::Path(first) = std::mem::replace(
                &mut item.tree,
                UseTree::Glob(syn::UseGlob {
                    star_token: Default::default(),
                }),
            ) else {
                unreachable!("matched above");
            };
            let mut tree = *first.tree;
            for segment in prefix.into_iter().rev() {
                tree = UseTree::Path(syn::UsePath {
                    ident: segment.ident,
                    colon2_token: Default::default(),
                    tree: Box::new(tree),
                });
            }
            item.tree = tree;
            item.leading_colon = self.root.leading_colon;
        }
        visit_mut::visit_item_use_mut(self, item);
    }

    /// An attribute's own path (`serde`, `doc`) is a helper's name, not a
    /// crate's; derives are rewritten by [`Rewrite::attributes`]. A serde
    /// attribute's paths are strings (`skip_serializing_if =
    /// "::serde_json::Map::is_empty"`): those are rewritten.
    fn visit_attribute_mut(&mut self, attribute: &mut Attribute) {
        if attribute.path().is_ident("serde")
            && let syn::Meta::List(list) = &mut attribute.meta
        {
            list.tokens = self.strings(std::mem::take(&mut list.tokens));
        }
    }

    fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
        self.attributes(&mut item.attrs);
        visit_mut::visit_item_struct_mut(self, item);
    }

    fn visit_item_enum_mut(&mut self, item: &mut syn::ItemEnum) {
        self.attributes(&mut item.attrs);
        visit_mut::visit_item_enum_mut(self, item);
    }
}
