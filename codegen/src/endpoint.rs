//! What a spec says about its token endpoint, emitted into the generated
//! crate as `paytokens_runtime` values and trait implementations:
//!
//! - `static SPEC: ProviderSpec`: id, name, default host, route, media type,
//!   where the credentials go, header parameters, the scope property and
//!   declared scopes, request constants, the `document` examples and the
//!   sandbox's clients;
//! - `impl TokenEndpoint for Client`: construction with a guard, and one
//!   `send` that passes header values positionally;
//! - `impl TokenResponse` / `impl ErrorResponse` for success and error types
//!   of the RFC 6749 shapes, so that a standard provider maps nothing by hand.
//!
//! Everything is read from the spec and from progenitor's own output (the
//! generated method's signature gives the parameter order and the types), so
//! nothing here is written twice.

use openapiv3::{
    Operation, Parameter, ReferenceOr, Schema, SchemaKind, SecurityScheme, StatusCode, Type,
};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::scopes;
use crate::spec::Spec;

/// The extension in `info` naming the provider for people.
pub const NAME_EXTENSION: &str = "x-paytokens-provider";
/// The extension marking a `servers` entry as an example, not a default.
pub const EXAMPLE_HOST_EXTENSION: &str = "x-paytokens-example-host";
/// The operation extension declaring the sandbox's clients.
pub const SANDBOX_EXTENSION: &str = "x-paytokens-sandbox";

/// The generated items, for the root of the generated crate.
pub fn tokens(spec: &Spec, provider: &str, client: &syn::File) -> Result<TokenStream> {
    let op = Op::find(spec)?;
    let method = Method::find(spec, client)?;
    let request_schema = op.request_schema(spec)?;
    let name = info_name(spec)?;
    let default_base_url = default_base_url(spec);
    let option = |value: Option<&str>| match value {
        Some(value) => quote!(::std::option::Option::Some(#value)),
        None => quote!(::std::option::Option::None),
    };
    let default_base_url = option(default_base_url.as_deref());
    let spec_file = spec.file();
    let http_method = op.method.to_uppercase();
    let path = &op.path;
    let content_type = &op.content_type;
    let auth = auth(spec, &op, request_schema)?;
    let headers = header_params(spec, &op, &method)?;
    let header_specs = headers.iter().map(|h| {
        let (name, description, required) = (&h.name, &h.description, h.required);
        let example = option(h.example.as_deref());
        quote! {
            ::paytokens_runtime::HeaderParam {
                name: #name, description: #description, required: #required, example: #example,
            }
        }
    });
    let scope = scope_field(spec, request_schema)?;
    let constants = constants(spec, request_schema)
        .into_iter()
        .map(|(name, value)| quote!((#name, #value)));
    let examples = [
        op.request_example(),
        op.response_example(StatusCode::Code(200)),
        op.response_example(StatusCode::Range(4)),
    ]
    .map(|example| option(example.map(|v| v.to_string()).as_deref()));
    let [request_example, success_example, refusal_example] = examples;
    let sandbox_clients = sandbox_clients(spec, &op)?;
    let (request, success, refusal) = (&method.request, &method.success, &method.refusal);
    let call = &method.name;
    // Header values in the order the generated method takes them.
    let header_args = headers.iter().enumerate().map(|(i, header)| {
        if header.required {
            quote!(headers.get(#i).copied().unwrap_or_default())
        } else {
            quote!(headers.get(#i).copied().filter(|value| !value.is_empty()))
        }
    });
    let standard = standard_impls(spec, &op, &method)?;
    Ok(quote! {
        /// What `cargo xtask regen` read from the spec about this token
        /// endpoint.
        pub static SPEC: ::paytokens_runtime::ProviderSpec = ::paytokens_runtime::ProviderSpec {
            id: #provider,
            name: #name,
            spec_file: #spec_file,
            default_base_url: #default_base_url,
            method: #http_method,
            path: #path,
            content_type: #content_type,
            auth: #auth,
            headers: &[ #( #header_specs, )* ],
            scope: #scope,
            constants: &[ #( #constants, )* ],
            examples: ::paytokens_runtime::Examples {
                request: #request_example,
                success: #success_example,
                refusal: #refusal_example,
            },
            sandbox_clients: &[ #( #sandbox_clients, )* ],
        };

        impl ::paytokens_runtime::TokenEndpoint for Client {
            const SPEC: &'static ::paytokens_runtime::ProviderSpec = &SPEC;
            type Request = #request;
            type Success = #success;
            type Refusal = #refusal;

            fn with_guard(base_url: &str, http: ::reqwest::Client, guard: ResponseGuard) -> Self {
                Self::new_with_client(base_url, http, guard)
            }

            fn guard(&self) -> &ResponseGuard {
                &self.inner
            }

            fn send<'a>(
                &'a self,
                request: &'a Self::Request,
                headers: &'a [&'a str],
            ) -> impl ::std::future::Future<
                Output = ::std::result::Result<ResponseValue<Self::Success>, Error<Self::Refusal>>,
            > + Send + 'a {
                let _ = headers;
                self.#call(#( #header_args, )* request)
            }
        }

        #standard
    })
}

/// The spec's one operation.
struct Op<'a> {
    path: String,
    method: String,
    operation: &'a Operation,
    content_type: String,
    request_ref: String,
}

impl<'a> Op<'a> {
    fn find(spec: &'a Spec) -> Result<Self> {
        let mut found = Vec::new();
        for (path, item) in spec.document().paths.iter() {
            if let Some(item) = item.as_item() {
                for (method, operation) in item.iter() {
                    found.push((path.clone(), method.to_owned(), operation));
                }
            }
        }
        let [(path, method, operation)] = <[_; 1]>::try_from(found).map_err(|found| {
            unsupported(
                spec,
                &["paths"],
                format!(
                    "a token-endpoint spec has one operation; this one has {}",
                    found.len()
                ),
                "describe only the token endpoint",
            )
        })?;
        let at = ["paths", path.as_str(), method.as_str()];
        let Some(ReferenceOr::Item(body)) = &operation.request_body else {
            return Err(unsupported(
                spec,
                &at,
                "the token request has no inline `requestBody`".to_owned(),
                "describe the body the provider document shows",
            ));
        };
        let Some((content_type, media)) = body.content.first() else {
            return Err(unsupported(
                spec,
                &at,
                "the request body has no media type".to_owned(),
                "add the media type the provider document names",
            ));
        };
        let Some(ReferenceOr::Reference { reference }) = &media.schema else {
            return Err(unsupported(
                spec,
                &[&at[..], &["requestBody", "content", content_type.as_str()]].concat(),
                "the request body schema is not a `$ref`".to_owned(),
                "name it under components/schemas and refer to it",
            ));
        };
        Ok(Self {
            content_type: content_type.clone(),
            request_ref: reference.clone(),
            path,
            method,
            operation,
        })
    }

    fn at(&self) -> [&str; 3] {
        ["paths", &self.path, &self.method]
    }

    fn request_schema<'s>(&self, spec: &'s Spec) -> Result<&'s Schema> {
        resolve(spec, &self.request_ref).ok_or_else(|| {
            unsupported(
                spec,
                &self.at(),
                format!("`{}` is not a schema", self.request_ref),
                "refer to a schema under components/schemas",
            )
        })
    }

    fn request_example(&self) -> Option<&'a Value> {
        let ReferenceOr::Item(body) = self.operation.request_body.as_ref()? else {
            return None;
        };
        document_example(body.content.first()?.1)
    }

    fn response_example(&self, status: StatusCode) -> Option<&'a Value> {
        let ReferenceOr::Item(response) = self.operation.responses.responses.get(&status)? else {
            return None;
        };
        document_example(response.content.get("application/json")?)
    }
}

/// The value of the example named `document`, of the only one, or the
/// media type's `example`.
fn document_example(media: &openapiv3::MediaType) -> Option<&Value> {
    let examples = &media.examples;
    let named = examples.get("document").or_else(|| {
        (examples.len() == 1)
            .then(|| examples.values().next())
            .flatten()
    });
    match named {
        Some(example) => example.as_item()?.value.as_ref(),
        None => media.example.as_ref(),
    }
}

/// The generated method: its name, header parameter idents in order, and
/// the request, success and error types, read from progenitor's output.
struct Method {
    name: syn::Ident,
    params: Vec<syn::Ident>,
    request: syn::Type,
    success: syn::Type,
    refusal: syn::Type,
}

impl Method {
    fn find(spec: &Spec, client: &syn::File) -> Result<Self> {
        let generator = |message: &str| Error::Generator {
            file: spec.file().to_owned(),
            message: format!("unexpected progenitor output: {message}"),
        };
        let function = client
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Impl(block) if block.trait_.is_none() => Some(block),
                _ => None,
            })
            .flat_map(|block| &block.items)
            .find_map(|item| match item {
                syn::ImplItem::Fn(f) if f.sig.asyncness.is_some() => Some(f),
                _ => None,
            })
            .ok_or_else(|| generator("no async method on Client"))?;
        let mut params = Vec::new();
        let mut request = None;
        for input in &function.sig.inputs {
            let syn::FnArg::Typed(typed) = input else {
                continue;
            };
            let syn::Pat::Ident(ident) = &*typed.pat else {
                return Err(generator("a parameter that is not a name"));
            };
            if ident.ident == "body" {
                let syn::Type::Reference(reference) = &*typed.ty else {
                    return Err(generator("a body that is not a reference"));
                };
                request = Some((*reference.elem).clone());
            } else {
                params.push(ident.ident.clone());
            }
        }
        let request = request.ok_or_else(|| generator("no body parameter"))?;
        let syn::ReturnType::Type(_, output) = &function.sig.output else {
            return Err(generator("a method returning nothing"));
        };
        let [ok, err] = generic_args(output, "Result")
            .and_then(|args| <[syn::Type; 2]>::try_from(args).ok())
            .ok_or_else(|| generator("a return type that is not a Result"))?;
        let success = generic_args(&ok, "ResponseValue")
            .and_then(|mut args| args.pop())
            .ok_or_else(|| generator("a success type outside ResponseValue"))?;
        let refusal = generic_args(&err, "Error")
            .and_then(|mut args| args.pop())
            .ok_or_else(|| generator("an error type outside Error"))?;
        Ok(Self {
            name: function.sig.ident.clone(),
            params,
            request,
            success,
            refusal,
        })
    }
}

/// The type arguments of `ty` when its last path segment is `name`.
fn generic_args(ty: &syn::Type, name: &str) -> Option<Vec<syn::Type>> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty.clone()),
                _ => None,
            })
            .collect(),
    )
}

fn unsupported(spec: &Spec, path: &[&str], message: String, hint: &str) -> Error {
    Error::Unsupported {
        at: spec.locate(path),
        message,
        hint: hint.to_owned(),
    }
}

fn info_name(spec: &Spec) -> Result<String> {
    match spec.document().info.extensions.get(NAME_EXTENSION) {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        _ => Err(unsupported(
            spec,
            &["info"],
            format!("`info` has no `{NAME_EXTENSION}` naming the provider"),
            "add e.g. `x-paytokens-provider: Pyng Checkout` under `info`",
        )),
    }
}

/// The first server not marked as an example host.
fn default_base_url(spec: &Spec) -> Option<String> {
    spec.document()
        .servers
        .iter()
        .find(|server| server.extensions.get(EXAMPLE_HOST_EXTENSION) != Some(&Value::Bool(true)))
        .map(|server| server.url.trim_end_matches('/').to_owned())
}

/// A `$ref` to `#/components/schemas/<name>`, resolved.
fn resolve<'s>(spec: &'s Spec, reference: &str) -> Option<&'s Schema> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    spec.document()
        .components
        .as_ref()?
        .schemas
        .get(name)?
        .as_item()
}

/// A schema or what its `$ref` points at.
fn schema_of<'s>(spec: &'s Spec, schema: &'s ReferenceOr<Box<Schema>>) -> Option<&'s Schema> {
    match schema {
        ReferenceOr::Item(schema) => Some(schema),
        ReferenceOr::Reference { reference } => resolve(spec, reference),
    }
}

/// The properties of an object schema, each resolved, with whether it is
/// required.
fn properties<'s>(spec: &'s Spec, schema: &'s Schema) -> Vec<(&'s str, Option<&'s Schema>, bool)> {
    let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
        return Vec::new();
    };
    object
        .properties
        .iter()
        .map(|(name, property)| {
            let required = object.required.iter().any(|r| r == name);
            (name.as_str(), schema_of(spec, property), required)
        })
        .collect()
}

fn is_string(schema: Option<&Schema>) -> bool {
    matches!(
        schema.map(|s| &s.schema_kind),
        Some(SchemaKind::Type(Type::String(_)))
    )
}

fn is_integer(schema: Option<&Schema>) -> bool {
    matches!(
        schema.map(|s| &s.schema_kind),
        Some(SchemaKind::Type(Type::Integer(_)))
    )
}

fn is_password(schema: Option<&Schema>) -> bool {
    matches!(
        schema.map(|s| &s.schema_kind),
        Some(SchemaKind::Type(Type::String(string)))
            if matches!(
                &string.format,
                openapiv3::VariantOrUnknownOrEmpty::Item(openapiv3::StringFormat::Password)
            )
    )
}

/// Where the credentials go: HTTP Basic when the operation's security names
/// an http/basic scheme, the body's `client_id` and `format: password`
/// properties when it is `security: []`.
fn auth(spec: &Spec, op: &Op<'_>, request: &Schema) -> Result<TokenStream> {
    let at = op.at();
    let security = op
        .operation
        .security
        .as_ref()
        .or(spec.document().security.as_ref())
        .ok_or_else(|| {
            unsupported(
                spec,
                &at,
                "the operation declares no `security`".to_owned(),
                "write `security: [{basicAuth: []}]` for HTTP Basic, or `security: []` when \
                 the credentials travel in the body",
            )
        })?;
    let Some(requirement) = security.first() else {
        let properties = properties(spec, request);
        let client_id = properties.iter().find(|(name, _, _)| *name == "client_id");
        let secret = properties
            .iter()
            .find(|(_, schema, _)| is_password(*schema));
        return match (client_id, secret) {
            (Some(_), Some((secret, _, _))) => Ok(quote! {
                ::paytokens_runtime::Auth::Body { client_id: "client_id", client_secret: #secret }
            }),
            _ => Err(unsupported(
                spec,
                &at,
                "with `security: []` the credentials must travel in the body, but the request \
                 has no `client_id` and `format: password` property"
                    .to_owned(),
                "add them (RFC 6749, 2.3.1), or declare the HTTP Basic scheme",
            )),
        };
    };
    let basic = requirement.keys().all(|name| {
        spec.document()
            .components
            .as_ref()
            .and_then(|c| c.security_schemes.get(name))
            .and_then(ReferenceOr::as_item)
            .is_some_and(|scheme| {
                matches!(scheme, SecurityScheme::HTTP { scheme, .. } if scheme.eq_ignore_ascii_case("basic"))
            })
    });
    if basic && !requirement.is_empty() {
        return Ok(quote!(::paytokens_runtime::Auth::Basic));
    }
    Err(unsupported(
        spec,
        &[&at[..], &["security"]].concat(),
        "the operation's security is not HTTP Basic".to_owned(),
        "token endpoints take HTTP Basic (`type: http, scheme: basic`) or credentials in the body",
    ))
}

struct Header {
    name: String,
    description: String,
    required: bool,
    example: Option<String>,
}

/// The operation's header parameters, in the generated method's order.
fn header_params(spec: &Spec, op: &Op<'_>, method: &Method) -> Result<Vec<Header>> {
    let mut headers = Vec::new();
    for (i, parameter) in op.operation.parameters.iter().enumerate() {
        let index = i.to_string();
        let at = [&op.at()[..], &["parameters", &index]].concat();
        match parameter {
            ReferenceOr::Item(Parameter::Header { parameter_data, .. }) => headers.push(Header {
                name: parameter_data.name.clone(),
                description: parameter_data.description.clone().unwrap_or_default(),
                required: parameter_data.required,
                example: parameter_data.example.as_ref().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            }),
            _ => {
                return Err(unsupported(
                    spec,
                    &at,
                    "only inline header parameters are supported".to_owned(),
                    "a token endpoint takes its inputs in headers and the body",
                ));
            }
        }
    }
    let ident = |name: &str| name.to_lowercase().replace('-', "_");
    let mut ordered = Vec::with_capacity(headers.len());
    for param in &method.params {
        let position = headers.iter().position(|h| *param == ident(&h.name));
        let Some(position) = position else {
            return Err(Error::Generator {
                file: spec.file().to_owned(),
                message: format!("progenitor's parameter `{param}` is no header of the spec"),
            });
        };
        ordered.push(headers.remove(position));
    }
    Ok(ordered)
}

/// The `scope` property, its required-ness, and the declared scopes.
fn scope_field(spec: &Spec, request: &Schema) -> Result<TokenStream> {
    let Some((_, _, required)) = properties(spec, request)
        .into_iter()
        .find(|(name, schema, _)| *name == "scope" && is_string(*schema))
    else {
        return Ok(quote!(::std::option::Option::None));
    };
    let declared = match scopes::declared_scopes(spec)? {
        Some((_, scopes)) => {
            let names = scopes.iter().map(|(name, _)| name);
            quote!(::std::option::Option::Some(&[ #( #names, )* ]))
        }
        None => quote!(::std::option::Option::None),
    };
    Ok(quote! {
        ::std::option::Option::Some(::paytokens_runtime::ScopeField {
            property: "scope",
            required: #required,
            declared: #declared,
        })
    })
}

/// Request properties with exactly one allowed string value.
fn constants(spec: &Spec, request: &Schema) -> Vec<(String, String)> {
    properties(spec, request)
        .into_iter()
        .filter_map(|(name, schema, _)| match &schema?.schema_kind {
            SchemaKind::Type(Type::String(string)) => match string.enumeration.as_slice() {
                [Some(value)] => Some((name.to_owned(), value.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The `x-paytokens-sandbox` clients.
fn sandbox_clients(spec: &Spec, op: &Op<'_>) -> Result<Vec<TokenStream>> {
    let at = [&op.at()[..], &[SANDBOX_EXTENSION]].concat();
    let bad = |problem: &str| {
        unsupported(
            spec,
            &at,
            format!("`{SANDBOX_EXTENSION}` {problem}"),
            "write `clients:` as a list of {client_id, client_secret, lifetime, scopes: [..] or \
             all, headers: {NAME: value}}",
        )
    };
    let Some(extension) = op.operation.extensions.get(SANDBOX_EXTENSION) else {
        return Err(bad("is missing: the sandbox needs at least one client"));
    };
    let clients = extension
        .get("clients")
        .and_then(Value::as_array)
        .filter(|clients| !clients.is_empty())
        .ok_or_else(|| bad("has no `clients` list"))?;
    let declared = scopes::declared_scopes(spec)?.map(|(_, scopes)| scopes);
    let mut out = Vec::new();
    for client in clients {
        let text = |key: &str| client.get(key).and_then(Value::as_str);
        let (Some(client_id), Some(client_secret)) = (text("client_id"), text("client_secret"))
        else {
            return Err(bad("has a client without `client_id` and `client_secret`"));
        };
        let lifetime = client
            .get("lifetime")
            .and_then(Value::as_u64)
            .filter(|&seconds| seconds > 0)
            .ok_or_else(|| bad("has a client without a positive `lifetime` in seconds"))?;
        let scopes: Vec<String> = match client.get("scopes") {
            None => Vec::new(),
            Some(Value::String(all)) if all == "all" => declared
                .as_ref()
                .ok_or_else(|| bad("grants `all` scopes, but the spec declares none"))?
                .iter()
                .map(|(name, _)| name.clone())
                .collect(),
            Some(Value::Array(scopes)) => scopes
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("has a scope that is not a string"))?,
            Some(_) => return Err(bad("has `scopes` that are neither a list nor `all`")),
        };
        let headers: Vec<(String, String)> = match client.get("headers") {
            None => Vec::new(),
            Some(Value::Object(headers)) => headers
                .iter()
                .map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("has a header value that is not a string"))?,
            Some(_) => return Err(bad("has `headers` that are not a mapping")),
        };
        let headers = headers.iter().map(|(name, value)| quote!((#name, #value)));
        out.push(quote! {
            ::paytokens_runtime::SandboxClientSpec {
                client_id: #client_id,
                client_secret: #client_secret,
                headers: &[ #( #headers, )* ],
                scopes: &[ #( #scopes, )* ],
                lifetime: #lifetime,
            }
        });
    }
    Ok(out)
}

/// `TokenResponse` and `ErrorResponse` for the RFC 6749 shapes.
fn standard_impls(spec: &Spec, op: &Op<'_>, method: &Method) -> Result<TokenStream> {
    let schema_of_response = |status: StatusCode| -> Option<&Schema> {
        let ReferenceOr::Item(response) = op.operation.responses.responses.get(&status)? else {
            return None;
        };
        match response.content.get("application/json")?.schema.as_ref()? {
            ReferenceOr::Reference { reference } => resolve(spec, reference),
            ReferenceOr::Item(schema) => Some(schema),
        }
    };
    let mut out = TokenStream::new();
    if let Some(schema) = schema_of_response(StatusCode::Code(200)) {
        let props = properties(spec, schema);
        let find = |wanted: &str| props.iter().find(|(name, _, _)| *name == wanted);
        let standard = matches!(find("access_token"), Some((_, s, true)) if is_string(*s))
            && matches!(find("token_type"), Some((_, s, true)) if is_string(*s))
            && matches!(find("expires_in"), Some((_, s, true)) if is_integer(*s))
            && find("scope").is_none_or(|(_, s, _)| is_string(*s));
        if standard {
            let scope = match find("scope") {
                Some((_, _, true)) => quote!(::std::option::Option::Some(self.scope)),
                Some((_, _, false)) => quote!(self.scope),
                None => quote!(::std::option::Option::None),
            };
            let success = &method.success;
            out.extend(quote! {
                /// The RFC 6749 success shape.
                impl ::paytokens_runtime::TokenResponse for #success {
                    fn into_grant(
                        self,
                    ) -> ::std::result::Result<::paytokens_runtime::Grant, ::std::string::String> {
                        let expires_in = ::std::convert::TryFrom::try_from(self.expires_in)
                            .map_err(|_| "expires_in is out of range".to_owned())?;
                        ::std::result::Result::Ok(::paytokens_runtime::Grant {
                            access_token: self.access_token,
                            token_type: self.token_type,
                            expires_in: ::paytokens_runtime::Lifetime::Seconds(expires_in),
                            scope: #scope,
                        })
                    }
                }
            });
        }
    }
    if let Some(schema) = schema_of_response(StatusCode::Range(4)) {
        let props = properties(spec, schema);
        let find = |wanted: &str| props.iter().find(|(name, _, _)| *name == wanted);
        let standard = find("error").is_some_and(|(_, s, _)| is_string(*s))
            && find("error_description").is_none_or(|(_, s, _)| is_string(*s));
        if standard {
            let field = |name: &str| {
                let ident = format_ident!("{name}");
                match find(name) {
                    Some((_, _, true)) => quote!(::std::option::Option::Some(self.#ident)),
                    Some((_, _, false)) => quote!(self.#ident),
                    None => quote!(::std::option::Option::None),
                }
            };
            let (code, message) = (field("error"), field("error_description"));
            let refusal = &method.refusal;
            out.extend(quote! {
                /// The RFC 6749 error shape.
                impl ::paytokens_runtime::ErrorResponse for #refusal {
                    fn into_refusal(self) -> ::paytokens_runtime::Refusal {
                        ::paytokens_runtime::Refusal { code: #code, message: #message }
                    }
                }
            });
        }
    }
    Ok(out)
}
