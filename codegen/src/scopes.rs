//! The typed scope enum emitted beside progenitor's output for a spec whose
//! oauth2 `clientCredentials` flow lists scopes, so that those scope strings
//! are written once, in the spec, and nowhere else by hand.

use openapiv3::{ReferenceOr, SecurityScheme};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::error::{Error, Result};
use crate::spec::Spec;

/// The `Scope` enum, its `Display`/`FromStr` and the `UnknownScope` error, or
/// nothing when the spec declares no client-credentials scopes.
pub fn scope_enum(spec: &Spec) -> Result<TokenStream> {
    let Some((scheme, scopes)) = declared_scopes(spec)? else {
        return Ok(TokenStream::new());
    };
    let mut idents = Vec::with_capacity(scopes.len());
    for (scope, _) in &scopes {
        let at = || {
            spec.locate(&[
                "components",
                "securitySchemes",
                &scheme,
                "flows",
                "clientCredentials",
                "scopes",
                scope,
            ])
        };
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(Error::Unsupported {
                at: at(),
                message: format!("`{scope}` is not a valid OAuth 2.0 scope token (RFC 6749, 3.3)"),
                hint: "use printable ASCII without spaces, quotes or backslashes".to_owned(),
            });
        }
        let ident = variant_name(scope);
        if idents.contains(&ident) {
            return Err(Error::Unsupported {
                at: at(),
                message: format!(
                    "scope `{scope}` gives the same variant name `{ident}` as another"
                ),
                hint: "scopes must differ in more than punctuation".to_owned(),
            });
        }
        idents.push(ident);
    }
    let idents: Vec<_> = idents.iter().map(|i| format_ident!("{i}")).collect();
    let strings: Vec<&str> = scopes.iter().map(|(s, _)| s.as_str()).collect();
    let docs: Vec<String> = scopes.iter().map(|(s, d)| format!("`{s}`: {d}")).collect();
    let count = proc_macro2::Literal::usize_unsuffixed(idents.len());
    let enum_doc = format!(
        "The scopes of the `{scheme}` security scheme in {}: \
         request only those the integration uses.",
        spec.file()
    );
    let expected = strings.join(", ");
    Ok(quote! {
        #[doc = #enum_doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            #( #[doc = #docs] #idents, )*
        }

        impl Scope {
            /// Every scope, in the order the spec lists them.
            pub const ALL: [Scope; #count] = [ #( Scope::#idents, )* ];

            /// The scope string exactly as the provider expects it.
            pub const fn as_str(self) -> &'static str {
                match self { #( Scope::#idents => #strings, )* }
            }
        }

        impl ::std::fmt::Display for Scope {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for Scope {
            type Err = UnknownScope;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    #( #strings => Ok(Scope::#idents), )*
                    _ => Err(UnknownScope(value.to_owned())),
                }
            }
        }

        /// A scope string that the spec does not declare.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct UnknownScope(pub String);

        impl ::std::fmt::Display for UnknownScope {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "unknown scope `{}`; expected one of: {}", self.0, #expected)
            }
        }

        impl ::std::error::Error for UnknownScope {}
    })
}

/// `billing:customers:invite` -> `BillingCustomersInvite`.
fn variant_name(scope: &str) -> String {
    let mut name: String = scope
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "Scope");
    }
    name
}

/// Scope names with their descriptions, in spec order.
pub(crate) type Scopes = Vec<(String, String)>;

/// The one security scheme with client-credentials scopes, if any.
pub(crate) fn declared_scopes(spec: &Spec) -> Result<Option<(String, Scopes)>> {
    let mut found: Option<(String, Scopes)> = None;
    let Some(components) = &spec.document().components else {
        return Ok(None);
    };
    for (name, scheme) in &components.security_schemes {
        let ReferenceOr::Item(SecurityScheme::OAuth2 { flows, .. }) = scheme else {
            continue;
        };
        let Some(flow) = &flows.client_credentials else {
            continue;
        };
        if flow.scopes.is_empty() {
            continue;
        }
        if let Some((first, _)) = &found {
            return Err(Error::Unsupported {
                at: spec.locate(&["components", "securitySchemes", name]),
                message: format!("security schemes `{first}` and `{name}` both list scopes"),
                hint: "list the token endpoint's scopes in one oauth2 scheme".to_owned(),
            });
        }
        let scopes = flow
            .scopes
            .iter()
            .map(|(s, d)| (s.clone(), d.clone()))
            .collect();
        found = Some((name.clone(), scopes));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::variant_name;

    #[test]
    fn variant_names_are_pascal_case_of_the_scope_parts() {
        assert_eq!(
            variant_name("billing:customers:invite"),
            "BillingCustomersInvite"
        );
        assert_eq!(variant_name("read_write"), "ReadWrite");
        assert_eq!(variant_name("2fa"), "Scope2fa");
    }
}
