//! What a spec says about its token endpoint, emitted into the generated
//! crate as `paytokens_runtime` values and one trait implementation:
//!
//! - `static SPEC: ProviderSpec`: id, name, servers and environments, route,
//!   media type, where each request role goes (credentials, scopes,
//!   constants, the user's headers), where each answer role is (token, type,
//!   lifetime, granted scopes, an envelope's conditions) and where an error
//!   body's code and message are, the `document` examples and the sandbox's
//!   clients;
//! - `impl TokenEndpoint for Client`: construction with a guard, and one
//!   `send` that passes parameter values positionally.
//!
//! Roles are `x-paytokens-role` extensions on request properties,
//! parameters and answer properties (see specs/README.md); the mapping is
//! this data, run by `paytokens_runtime`, so a provider has no code of its
//! own. Everything is read from the spec and from progenitor's own output
//! (the generated method's signature gives the parameter order and types).

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
/// The extension naming a server's environment (`sandbox`, `production`).
pub const ENVIRONMENT_EXTENSION: &str = "x-paytokens-environment";
/// The extension giving a property or parameter its role.
pub const ROLE_EXTENSION: &str = "x-paytokens-role";
/// The extension on an answer property that success requires a value.
pub const EXPECT_EXTENSION: &str = "x-paytokens-expect";
/// The operation extension naming the token type when the answer has none.
pub const DEFAULT_TOKEN_TYPE_EXTENSION: &str = "x-paytokens-default-token-type";
/// The extension on a scopes string naming its separator (`","`).
pub const SCOPE_SEPARATOR_EXTENSION: &str = "x-paytokens-scope-separator";

/// The provider's name for people, its `METHOD /path`, and whether its
/// spec declares scopes (a `Scope` enum is generated): what the
/// registration needs.
pub fn summary(spec: &Spec) -> Result<(String, String, bool)> {
    let op = Op::find(spec)?;
    let route = format!("{} {}", op.method.to_uppercase(), op.path);
    Ok((
        info_name(spec)?,
        route,
        scopes::declared_scopes(spec)?.is_some(),
    ))
}

/// The generated items, for the root of the generated crate.
pub fn tokens(spec: &Spec, provider: &str, client: &syn::File) -> Result<TokenStream> {
    let op = Op::find(spec)?;
    let method = Method::find(spec, client)?;
    let request = match &op.request {
        Some(body) => Some(body.schema(spec, &op)?),
        None => None,
    };
    let name = info_name(spec)?;
    let (servers, default_base_url) = servers(spec)?;
    let option = |value: Option<&str>| match value {
        Some(value) => quote!(::std::option::Option::Some(#value)),
        None => quote!(::std::option::Option::None),
    };
    let default_base_url = option(default_base_url.as_deref());
    let spec_file = spec.file();
    let http_method = op.method.to_uppercase();
    let path = &op.path;
    let content_type = option(op.request.as_ref().map(|body| body.content_type.as_str()));
    let params = params(spec, &op, &method)?;
    let body_roles = match &request {
        Some(node) => body_roles(spec, node)?,
        None => Vec::new(),
    };
    let auth = auth(spec, &op, &params, &body_roles)?;
    let scope = scope_field(spec, &op, &params, &body_roles)?;
    let constants = match &request {
        Some(node) => constants(spec, node),
        None => Vec::new(),
    }
    .into_iter()
    .map(|(name, value)| quote!((#name, #value)));
    let header_specs = params.iter().filter(|p| p.value == Value_::User).map(|h| {
        let (name, description, required) = (&h.name, &h.description, h.required);
        let example = option(h.example.as_deref());
        quote! {
            ::paytokens_runtime::HeaderParam {
                name: #name, description: #description, required: #required, example: #example,
            }
        }
    });
    let param_specs = params.iter().map(|p| {
        let (name, header) = (&p.name, p.header);
        let value = match &p.value {
            Value_::ClientId => quote!(::paytokens_runtime::ParamValue::ClientId),
            Value_::ClientSecret => quote!(::paytokens_runtime::ParamValue::ClientSecret),
            Value_::Scopes => quote!(::paytokens_runtime::ParamValue::Scopes),
            Value_::Constant(value) => quote!(::paytokens_runtime::ParamValue::Constant(#value)),
            Value_::User => quote!(::paytokens_runtime::ParamValue::User),
        };
        quote!(::paytokens_runtime::Param { name: #name, header: #header, value: #value })
    });
    let (statuses, answer) = answer(spec, &op)?;
    let refusal = refusal(spec, &op)?;
    let examples = [
        op.request_example(),
        statuses
            .first()
            .and_then(|s| op.response_example(StatusCode::Code(*s))),
        op.response_example(StatusCode::Range(4)),
    ]
    .map(|example| option(example.map(|v| v.to_string()).as_deref()));
    let [request_example, success_example, refusal_example] = examples;
    let sandbox_clients = sandbox_clients(spec, &op)?;
    let (success, refusal_type) = (&method.success, &method.refusal);
    let request_type = match &method.request {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let call = &method.name;
    // Parameter values in the order the generated method takes them.
    let mut locals = Vec::new();
    let mut args = Vec::new();
    for (i, (param, ty)) in params.iter().zip(&method.params).enumerate() {
        let (local, arg) = argument(i, &param.name, &ty.1);
        locals.extend(local);
        args.push(arg);
    }
    if method.request.is_some() {
        args.push(quote!(request));
    }
    Ok(quote! {
        /// What `cargo xtask regen` read from the spec about this token
        /// endpoint.
        pub static SPEC: ::paytokens_runtime::ProviderSpec = ::paytokens_runtime::ProviderSpec {
            id: #provider,
            name: #name,
            spec_file: #spec_file,
            servers: &[ #( #servers, )* ],
            default_base_url: #default_base_url,
            method: #http_method,
            path: #path,
            content_type: #content_type,
            auth: #auth,
            params: &[ #( #param_specs, )* ],
            headers: &[ #( #header_specs, )* ],
            scope: #scope,
            constants: &[ #( #constants, )* ],
            answer: #answer,
            refusal: #refusal,
            examples: ::paytokens_runtime::Examples {
                request: #request_example,
                success: #success_example,
                refusal: #refusal_example,
            },
            sandbox_clients: &[ #( #sandbox_clients, )* ],
        };

        impl ::paytokens_runtime::TokenEndpoint for Client {
            const SPEC: &'static ::paytokens_runtime::ProviderSpec = &SPEC;
            type Request = #request_type;
            type Success = #success;
            type Refusal = #refusal_type;

            fn with_guard(base_url: &str, http: ::reqwest::Client, guard: ResponseGuard) -> Self {
                Self::new_with_client(base_url, http, guard)
            }

            fn guard(&self) -> &ResponseGuard {
                &self.inner
            }

            fn send<'a>(
                &'a self,
                request: &'a Self::Request,
                params: &'a [&'a str],
            ) -> impl ::std::future::Future<
                Output = ::std::result::Result<ResponseValue<Self::Success>, Error<Self::Refusal>>,
            > + Send + 'a {
                let _ = (request, params);
                async move {
                    let _param = |i: usize| -> &'a str { params.get(i).copied().unwrap_or_default() };
                    #( #locals )*
                    self.#call(#( #args, )*).await
                }
            }
        }
    })
}

/// The argument for parameter `i` of type `ty`: a `&str` is passed as it
/// is; any other type (a one-value enum, `Password`) is parsed from the
/// value first, into a local.
fn argument(i: usize, name: &str, ty: &syn::Type) -> (Option<TokenStream>, TokenStream) {
    let value = quote!(_param(#i));
    let (optional, inner) = match generic_args(ty, "Option").and_then(|mut a| a.pop()) {
        Some(inner) => (true, inner),
        None => (false, ty.clone()),
    };
    let (by_ref, target) = match &inner {
        syn::Type::Reference(reference) => (true, (*reference.elem).clone()),
        other => (false, other.clone()),
    };
    let is_str = matches!(&target, syn::Type::Path(p) if p.path.is_ident("str"));
    if is_str {
        let arg = if optional {
            quote!(::std::option::Option::Some(#value).filter(|value| !value.is_empty()))
        } else {
            value
        };
        return (None, arg);
    }
    let local = format_ident!("param_{i}");
    let message = format!("`{name}` cannot be sent as the spec types it");
    let parse = quote! {
        match ::std::str::FromStr::from_str(#value) {
            ::std::result::Result::Ok(value) => value,
            ::std::result::Result::Err(_) => {
                return ::std::result::Result::Err(Error::InvalidRequest(#message.to_owned()));
            }
        }
    };
    let statement = if optional {
        quote! {
            let #local: ::std::option::Option<#target> = if #value.is_empty() {
                ::std::option::Option::None
            } else {
                ::std::option::Option::Some(#parse)
            };
        }
    } else {
        quote!(let #local: #target = #parse;)
    };
    let arg = match (optional, by_ref) {
        (true, true) => quote!(#local.as_ref()),
        (false, true) => quote!(&#local),
        (_, false) => quote!(#local),
    };
    (Some(statement), arg)
}

/// The spec's one operation.
struct Op<'a> {
    path: String,
    method: String,
    operation: &'a Operation,
    request: Option<Body>,
}

/// The request body: its media type and schema reference.
struct Body {
    content_type: String,
    reference: String,
}

impl Body {
    fn schema<'s>(&self, spec: &'s Spec, op: &Op<'_>) -> Result<Node<'s>> {
        resolve_node(spec, &self.reference).ok_or_else(|| {
            unsupported(
                spec,
                &op.at(),
                format!("`{}` is not a schema", self.reference),
                "refer to a schema under components/schemas",
            )
        })
    }
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
        if method != "post" && method != "get" {
            return Err(unsupported(
                spec,
                &at,
                format!(
                    "a token request is a POST or a GET, not a {}",
                    method.to_uppercase()
                ),
                "write the method the provider document names: `post:` or `get:`",
            ));
        }
        let request = match &operation.request_body {
            None => None,
            Some(ReferenceOr::Reference { .. }) => {
                return Err(unsupported(
                    spec,
                    &[&at[..], &["requestBody"]].concat(),
                    "the request body is a `$ref`".to_owned(),
                    "write `requestBody` inline, its schema as a named `$ref`",
                ));
            }
            Some(ReferenceOr::Item(body)) => {
                let Some((content_type, media)) = body.content.first() else {
                    return Err(unsupported(
                        spec,
                        &at,
                        "the request body has no media type".to_owned(),
                        "add the media type the provider document names, or leave out \
                         `requestBody` when the request has no body",
                    ));
                };
                if content_type != FORM && content_type != JSON {
                    return Err(unsupported(
                        spec,
                        &[&at[..], &["requestBody", "content", content_type.as_str()]].concat(),
                        format!("the request body's media type `{content_type}` is not supported"),
                        "write `application/x-www-form-urlencoded` or `application/json`",
                    ));
                }
                let Some(ReferenceOr::Reference { reference }) = &media.schema else {
                    return Err(unsupported(
                        spec,
                        &[&at[..], &["requestBody", "content", content_type.as_str()]].concat(),
                        "the request body schema is not a `$ref`".to_owned(),
                        "name it under components/schemas and refer to it",
                    ));
                };
                Some(Body {
                    content_type: content_type.clone(),
                    reference: reference.clone(),
                })
            }
        };
        Ok(Self {
            request,
            path,
            method,
            operation,
        })
    }

    fn at(&self) -> [&str; 3] {
        ["paths", &self.path, &self.method]
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
        document_example(response.content.get(JSON)?)
    }

    /// The `$ref` of the JSON schema of response `status`.
    fn response_ref(&self, status: &StatusCode) -> Option<&'a str> {
        let ReferenceOr::Item(response) = self.operation.responses.responses.get(status)? else {
            return None;
        };
        match response.content.get(JSON)?.schema.as_ref()? {
            ReferenceOr::Reference { reference } => Some(reference),
            ReferenceOr::Item(_) => None,
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The generated method: its name, its parameters (name and type) in order,
/// and the request, success and error types, read from progenitor's output.
struct Method {
    name: syn::Ident,
    params: Vec<(syn::Ident, syn::Type)>,
    request: Option<syn::Type>,
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
                params.push((ident.ident.clone(), (*typed.ty).clone()));
            }
        }
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

/// The spec's servers, and the default host: the one server with neither
/// an environment nor the example-host mark.
fn servers(spec: &Spec) -> Result<(Vec<TokenStream>, Option<String>)> {
    let mut out = Vec::new();
    let mut default = None;
    let mut names = Vec::new();
    for (i, server) in spec.document().servers.iter().enumerate() {
        let index = i.to_string();
        let at = ["servers", index.as_str()];
        let url = server.url.trim_end_matches('/').to_owned();
        let example = server.extensions.get(EXAMPLE_HOST_EXTENSION) == Some(&Value::Bool(true));
        let environment = match server.extensions.get(ENVIRONMENT_EXTENSION) {
            None => None,
            Some(Value::String(name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Some(name.clone())
            }
            Some(_) => {
                return Err(unsupported(
                    spec,
                    &at,
                    format!("`{ENVIRONMENT_EXTENSION}` is not a lower-case name"),
                    "write e.g. `x-paytokens-environment: sandbox`",
                ));
            }
        };
        if let Some(name) = &environment {
            if names.contains(name) {
                return Err(unsupported(
                    spec,
                    &at,
                    format!("two servers are environment `{name}`"),
                    "give each environment one server",
                ));
            }
            names.push(name.clone());
        }
        if environment.is_none() && !example {
            if default.is_some() {
                return Err(unsupported(
                    spec,
                    &at,
                    "more than one server could be the default host".to_owned(),
                    "mark each with `x-paytokens-environment: <name>` (chosen by name) or \
                     `x-paytokens-example-host: true`; at most one server has neither",
                ));
            }
            default = Some(url.clone());
        }
        let environment = match &environment {
            Some(name) => quote!(::std::option::Option::Some(#name)),
            None => quote!(::std::option::Option::None),
        };
        out.push(quote! {
            ::paytokens_runtime::Server { url: #url, environment: #environment, example_host: #example }
        });
    }
    Ok((out, default))
}

/// A schema with the YAML path of its node (for errors).
#[derive(Clone)]
struct Node<'s> {
    schema: &'s Schema,
    at: Vec<String>,
}

impl Node<'_> {
    fn at(&self) -> Vec<&str> {
        self.at.iter().map(String::as_str).collect()
    }

    fn extension(&self, name: &str) -> Option<&Value> {
        self.schema.schema_data.extensions.get(name)
    }
}

fn resolve_node<'s>(spec: &'s Spec, reference: &str) -> Option<Node<'s>> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    Some(Node {
        schema: resolve(spec, reference)?,
        at: vec!["components".into(), "schemas".into(), name.into()],
    })
}

/// A property reached from a root schema: its JSON path, node and whether
/// every object on the way requires it.
struct Property<'s> {
    path: Vec<String>,
    node: Node<'s>,
    required: bool,
}

/// Every property under `root`, depth first, through `$ref`s (to a bounded
/// depth, so that a recursive schema ends).
fn walk<'s>(spec: &'s Spec, root: &Node<'s>) -> Vec<Property<'s>> {
    fn go<'s>(
        spec: &'s Spec,
        node: &Node<'s>,
        path: &[String],
        required: bool,
        depth: usize,
        out: &mut Vec<Property<'s>>,
    ) {
        let SchemaKind::Type(Type::Object(object)) = &node.schema.schema_kind else {
            return;
        };
        if depth > 8 {
            return;
        }
        for (name, property) in &object.properties {
            let child = match property {
                ReferenceOr::Item(schema) => Some(Node {
                    schema,
                    at: [&node.at[..], &["properties".into(), name.clone()]].concat(),
                }),
                ReferenceOr::Reference { reference } => resolve_node(spec, reference),
            };
            let Some(child) = child else { continue };
            let child_path = [path, std::slice::from_ref(name)].concat();
            let child_required = required && object.required.iter().any(|r| r == name);
            go(spec, &child, &child_path, child_required, depth + 1, out);
            out.push(Property {
                path: child_path,
                node: child,
                required: child_required,
            });
        }
    }
    let mut out = Vec::new();
    go(spec, root, &[], true, 0, &mut out);
    out
}

/// A property's or parameter's `x-paytokens-role`, checked against `allowed`.
fn role_of(
    spec: &Spec,
    at: &[&str],
    value: Option<&Value>,
    allowed: &[&str],
) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(Value::String(role)) if allowed.contains(&role.as_str()) => Ok(Some(role.clone())),
        Some(_) => Err(unsupported(
            spec,
            &[at, &[ROLE_EXTENSION]].concat(),
            format!(
                "`{ROLE_EXTENSION}` here must be one of: {}",
                allowed.join(", ")
            ),
            "write one of those roles, or remove the extension",
        )),
    }
}

const REQUEST_ROLES: &[&str] = &["client_id", "client_secret", "scopes"];
const ANSWER_ROLES: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "expires_at",
    "scopes",
];
const ERROR_ROLES: &[&str] = &["error_code", "error_message"];

/// What fills a parameter, while generating.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value_ {
    ClientId,
    ClientSecret,
    Scopes,
    Constant(String),
    User,
}

struct Param<'s> {
    name: String,
    header: bool,
    value: Value_,
    description: String,
    required: bool,
    example: Option<String>,
    schema: Option<&'s Schema>,
    at: Vec<String>,
}

/// The operation's parameters, in the generated method's order.
fn params<'s>(spec: &'s Spec, op: &Op<'s>, method: &Method) -> Result<Vec<Param<'s>>> {
    let mut found = Vec::new();
    for (i, parameter) in op.operation.parameters.iter().enumerate() {
        let index = i.to_string();
        let at: Vec<String> = [&op.at()[..], &["parameters", &index]]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let at_str: Vec<&str> = at.iter().map(String::as_str).collect();
        let (data, header) = match parameter {
            ReferenceOr::Item(Parameter::Header { parameter_data, .. }) => (parameter_data, true),
            ReferenceOr::Item(Parameter::Query { parameter_data, .. }) => (parameter_data, false),
            _ => {
                return Err(unsupported(
                    spec,
                    &at_str,
                    "only inline header and query parameters are supported".to_owned(),
                    "a token endpoint takes its inputs in headers, the query and the body",
                ));
            }
        };
        let schema = match &data.format {
            openapiv3::ParameterSchemaOrContent::Schema(ReferenceOr::Item(schema)) => Some(schema),
            openapiv3::ParameterSchemaOrContent::Schema(ReferenceOr::Reference { reference }) => {
                resolve(spec, reference)
            }
            _ => None,
        };
        let role = role_of(
            spec,
            &at_str,
            data.extensions.get(ROLE_EXTENSION),
            REQUEST_ROLES,
        )?;
        let constant = schema.and_then(one_value);
        let value = match (role.as_deref(), constant) {
            (Some("client_id"), _) => Value_::ClientId,
            (Some("client_secret"), _) => Value_::ClientSecret,
            (Some(_), _) => Value_::Scopes,
            (None, Some(value)) => Value_::Constant(value),
            (None, None) if header => Value_::User,
            (None, None) => {
                return Err(unsupported(
                    spec,
                    &at_str,
                    format!(
                        "query parameter `{}` has no role and is no constant",
                        data.name
                    ),
                    "give it `x-paytokens-role: client_id|client_secret|scopes`, or make it a \
                     constant (`schema: {type: string, enum: [value], default: value}`)",
                ));
            }
        };
        found.push(Param {
            name: data.name.clone(),
            header,
            value,
            description: data.description.clone().unwrap_or_default(),
            required: data.required,
            example: data.example.as_ref().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            schema,
            at,
        });
    }
    let ident = |name: &str| name.to_lowercase().replace('-', "_");
    let mut ordered = Vec::with_capacity(found.len());
    for (param, _) in &method.params {
        let position = found.iter().position(|p| *param == ident(&p.name));
        let Some(position) = position else {
            return Err(Error::Generator {
                file: spec.file().to_owned(),
                message: format!("progenitor's parameter `{param}` is no parameter of the spec"),
            });
        };
        ordered.push(found.remove(position));
    }
    Ok(ordered)
}

/// The one allowed value of a one-value string `enum`.
fn one_value(schema: &Schema) -> Option<String> {
    match &schema.schema_kind {
        SchemaKind::Type(Type::String(string)) => match string.enumeration.as_slice() {
            [Some(value)] => Some(value.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A role of a request body property.
struct BodyRole<'s> {
    role: String,
    name: String,
    node: Node<'s>,
    required: bool,
}

/// The request body's top-level properties with a role.
fn body_roles<'s>(spec: &'s Spec, request: &Node<'s>) -> Result<Vec<BodyRole<'s>>> {
    let mut out = Vec::new();
    for property in walk(spec, request) {
        let role = role_of(
            spec,
            &property.node.at(),
            property.node.extension(ROLE_EXTENSION),
            REQUEST_ROLES,
        )?;
        let Some(role) = role else { continue };
        if property.path.len() != 1 {
            return Err(unsupported(
                spec,
                &property.node.at(),
                format!("request role `{role}` is on a nested property"),
                "put request roles on top-level properties of the request body",
            ));
        }
        out.push(BodyRole {
            role,
            name: property.path[0].clone(),
            node: property.node,
            required: property.required,
        });
    }
    Ok(out)
}

/// The one place of a request role, in the parameters or the body.
fn place_of(
    spec: &Spec,
    role: &str,
    value: &Value_,
    params: &[Param<'_>],
    body: &[BodyRole<'_>],
) -> Result<Option<(TokenStream, Vec<String>)>> {
    let mut places = Vec::new();
    for param in params.iter().filter(|p| p.value == *value) {
        let name = &param.name;
        let place = if param.header {
            quote!(::paytokens_runtime::Place::Header(#name))
        } else {
            quote!(::paytokens_runtime::Place::Query(#name))
        };
        places.push((place, param.at.clone()));
    }
    for property in body.iter().filter(|b| b.role == role) {
        let name = &property.name;
        places.push((
            quote!(::paytokens_runtime::Place::Body(#name)),
            property.node.at.clone(),
        ));
    }
    if places.len() > 1 {
        let at: Vec<&str> = places[1].1.iter().map(String::as_str).collect();
        return Err(unsupported(
            spec,
            &at,
            format!("`{ROLE_EXTENSION}: {role}` is given more than once"),
            "give each role to one property or parameter",
        ));
    }
    Ok(places.pop())
}

/// Where the credentials go: HTTP Basic when the operation's security names
/// an http/basic scheme; where the `client_id` and `client_secret` roles
/// are when it is `security: []`.
fn auth(
    spec: &Spec,
    op: &Op<'_>,
    params: &[Param<'_>],
    body: &[BodyRole<'_>],
) -> Result<TokenStream> {
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
                 the credentials travel elsewhere (then mark them with `x-paytokens-role`)",
            )
        })?;
    let id = place_of(spec, "client_id", &Value_::ClientId, params, body)?;
    let secret = place_of(spec, "client_secret", &Value_::ClientSecret, params, body)?;
    let Some(requirement) = security.first() else {
        let (Some((client_id, _)), Some((client_secret, _))) = (id, secret) else {
            return Err(unsupported(
                spec,
                &at,
                "with `security: []` the credentials travel in the request, but no property or \
                 parameter has `x-paytokens-role: client_id` and `x-paytokens-role: client_secret`"
                    .to_owned(),
                "mark the property or parameter holding each (a body property, a header or a \
                 query parameter of any name), or declare the HTTP Basic scheme",
            ));
        };
        if let Some(secret) = body.iter().find(|b| b.role == "client_secret")
            && !is_password(Some(secret.node.schema))
        {
            return Err(unsupported(
                spec,
                &secret.node.at(),
                "the client secret's property is not `format: password`".to_owned(),
                "add `format: password`: the generated type then never prints it",
            ));
        }
        return Ok(quote! {
            ::paytokens_runtime::Auth::Fields { client_id: #client_id, client_secret: #client_secret }
        });
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
    if !basic || requirement.is_empty() {
        return Err(unsupported(
            spec,
            &[&at[..], &["security"]].concat(),
            "the operation's security is not HTTP Basic".to_owned(),
            "token endpoints take HTTP Basic (`type: http, scheme: basic`), or `security: []` \
             with the credentials' places marked by `x-paytokens-role`",
        ));
    }
    if let Some((_, place)) = id.or(secret) {
        let place: Vec<&str> = place.iter().map(String::as_str).collect();
        return Err(unsupported(
            spec,
            &place,
            "the credentials are HTTP Basic (the operation's `security`), and also given a place \
             by `x-paytokens-role`"
                .to_owned(),
            "keep one: remove the role, or write `security: []`",
        ));
    }
    Ok(quote!(::paytokens_runtime::Auth::Basic))
}

/// The scopes role: its place, how several are joined, whether required,
/// and the declared scopes.
fn scope_field(
    spec: &Spec,
    op: &Op<'_>,
    params: &[Param<'_>],
    body: &[BodyRole<'_>],
) -> Result<TokenStream> {
    let Some((place, at)) = place_of(spec, "scopes", &Value_::Scopes, params, body)? else {
        return Ok(quote!(::std::option::Option::None));
    };
    let at: Vec<&str> = at.iter().map(String::as_str).collect();
    let (schema, required, in_json_body) = match body.iter().find(|b| b.role == "scopes") {
        Some(property) => (
            Some(property.node.schema),
            property.required,
            op.request.as_ref().is_some_and(|b| b.content_type == JSON),
        ),
        None => {
            let param = params
                .iter()
                .find(|p| p.value == Value_::Scopes)
                .expect("found above");
            (param.schema, param.required, false)
        }
    };
    let join = match schema.map(|s| {
        (
            &s.schema_kind,
            s.schema_data.extensions.get(SCOPE_SEPARATOR_EXTENSION),
        )
    }) {
        Some((SchemaKind::Type(Type::String(_)), None)) => {
            quote!(::paytokens_runtime::ScopeJoin::Space)
        }
        Some((SchemaKind::Type(Type::String(_)), Some(Value::String(sep)))) if sep == " " => {
            quote!(::paytokens_runtime::ScopeJoin::Space)
        }
        Some((SchemaKind::Type(Type::String(_)), Some(Value::String(sep)))) if sep == "," => {
            quote!(::paytokens_runtime::ScopeJoin::Comma)
        }
        Some((SchemaKind::Type(Type::Array(array)), None)) if in_json_body => {
            let items = array.items.as_ref().and_then(|items| match items {
                ReferenceOr::Item(schema) => Some(&**schema),
                ReferenceOr::Reference { reference } => resolve(spec, reference),
            });
            if !is_string(items) {
                return Err(unsupported(
                    spec,
                    &at,
                    "the scopes array's items are not strings".to_owned(),
                    "write `items: {type: string}`",
                ));
            }
            quote!(::paytokens_runtime::ScopeJoin::Array)
        }
        _ => {
            return Err(unsupported(
                spec,
                &at,
                "the scopes are neither a string nor (in a JSON body) an array of strings"
                    .to_owned(),
                "write `type: string` (space-separated; `x-paytokens-scope-separator: \",\"` \
                 for commas) or, in a JSON body, `type: array, items: {type: string}`",
            ));
        }
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
            place: #place,
            join: #join,
            required: #required,
            declared: #declared,
        })
    })
}

/// Request body properties with exactly one allowed string value.
fn constants(spec: &Spec, request: &Node<'_>) -> Vec<(String, String)> {
    walk(spec, request)
        .into_iter()
        .filter(|p| p.path.len() == 1)
        .filter_map(|p| Some((p.path[0].clone(), one_value(p.node.schema)?)))
        .collect()
}

/// A `Field` literal for a JSON path.
fn field(path: &[String]) -> TokenStream {
    let name = path.join(".");
    quote!(::paytokens_runtime::Field { path: &[ #( #path, )* ], name: #name })
}

/// The success statuses and where the answer's roles are.
fn answer(spec: &Spec, op: &Op<'_>) -> Result<(Vec<u16>, TokenStream)> {
    let at = [&op.at()[..], &["responses"]].concat();
    let mut statuses = Vec::new();
    let mut reference = None;
    for status in op.operation.responses.responses.keys() {
        match status {
            StatusCode::Code(code) if (200..300).contains(code) => {
                statuses.push(*code);
                reference = reference.or(op.response_ref(status));
            }
            StatusCode::Range(2) => {
                return Err(unsupported(
                    spec,
                    &[&at[..], &["2XX"]].concat(),
                    "a `2XX` range does not say which status carries a token".to_owned(),
                    "write the status the provider document gives (`\"200\"` or `\"201\"`)",
                ));
            }
            _ => {}
        }
    }
    let root = reference
        .and_then(|r| resolve_node(spec, r))
        .ok_or_else(|| {
            unsupported(
                spec,
                &at,
                "no success response (200 to 299) with an `application/json` schema".to_owned(),
                "add the provider's success response, its schema a named `$ref`",
            )
        })?;
    let mut roles: Vec<(String, Property<'_>)> = Vec::new();
    let mut expect = Vec::new();
    for property in walk(spec, &root) {
        let node_at = property.node.at();
        if let Some(value) = property.node.extension(EXPECT_EXTENSION) {
            let path = field(&property.path);
            expect.push(match value {
                Value::String(s) if s == "http-status" => {
                    quote!((#path, ::paytokens_runtime::Expect::HttpStatus))
                }
                other => {
                    let text = other.to_string();
                    quote!((#path, ::paytokens_runtime::Expect::Value(#text)))
                }
            });
        }
        let Some(role) = role_of(
            spec,
            &node_at,
            property.node.extension(ROLE_EXTENSION),
            ANSWER_ROLES,
        )?
        else {
            continue;
        };
        if let Some((_, other)) = roles.iter().find(|(r, _)| *r == role) {
            return Err(unsupported(
                spec,
                &node_at,
                format!(
                    "answer role `{role}` is given twice (also at `{}`)",
                    other.path.join(".")
                ),
                "give each role to one property",
            ));
        }
        roles.push((role, property));
    }
    let find = |role: &str| roles.iter().find(|(r, _)| r == role).map(|(_, p)| p);
    let root_at = root.at();
    let token = find("access_token").ok_or_else(|| {
        unsupported(
            spec,
            &root_at,
            "the answer has no property with `x-paytokens-role: access_token`".to_owned(),
            "mark the property holding the token (any name, nested allowed)",
        )
    })?;
    let must_be_string = |property: &Property<'_>, role: &str| {
        if is_string(Some(property.node.schema)) {
            Ok(())
        } else {
            Err(unsupported(
                spec,
                &property.node.at(),
                format!("the `{role}` property is not `type: string`"),
                "give it the type the provider document shows",
            ))
        }
    };
    must_be_string(token, "access_token")?;
    let token_field = field(&token.path);
    let default_type = match op.operation.extensions.get(DEFAULT_TOKEN_TYPE_EXTENSION) {
        None => None,
        Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
        Some(_) => {
            return Err(unsupported(
                spec,
                &op.at(),
                format!("`{DEFAULT_TOKEN_TYPE_EXTENSION}` is not a token type"),
                "write e.g. `x-paytokens-default-token-type: Bearer`",
            ));
        }
    };
    let token_type = match find("token_type") {
        Some(property) => {
            must_be_string(property, "token_type")?;
            let f = field(&property.path);
            quote!(::std::option::Option::Some(#f))
        }
        None if default_type.is_some() => quote!(::std::option::Option::None),
        None => {
            return Err(unsupported(
                spec,
                &root_at,
                "the answer has no `x-paytokens-role: token_type` and the operation no \
                 documented default"
                    .to_owned(),
                "mark the token type's property, or write `x-paytokens-default-token-type: \
                 Bearer` on the operation when the document says how the token is sent",
            ));
        }
    };
    let default_type = match &default_type {
        Some(name) => quote!(::std::option::Option::Some(#name)),
        None => quote!(::std::option::Option::None),
    };
    let expiry = match (find("expires_in"), find("expires_at")) {
        (Some(property), None) => {
            let ok = match &property.node.schema.schema_kind {
                SchemaKind::Type(Type::Integer(_) | Type::String(_)) => true,
                SchemaKind::OneOf { one_of } | SchemaKind::AnyOf { any_of: one_of } => {
                    one_of.iter().all(|branch| {
                        let branch = match branch {
                            ReferenceOr::Item(schema) => Some(schema),
                            ReferenceOr::Reference { reference } => resolve(spec, reference),
                        };
                        is_integer(branch) || is_string(branch)
                    })
                }
                _ => false,
            };
            if !ok {
                return Err(unsupported(
                    spec,
                    &property.node.at(),
                    "`expires_in` is neither an integer nor a string of seconds".to_owned(),
                    "write `type: integer`, `type: string`, or `oneOf` of both",
                ));
            }
            let f = field(&property.path);
            quote!(::paytokens_runtime::Expiry::In(#f))
        }
        (None, Some(property)) => {
            let format = match &property.node.schema.schema_kind {
                SchemaKind::Type(Type::String(string))
                    if matches!(
                        &string.format,
                        openapiv3::VariantOrUnknownOrEmpty::Item(openapiv3::StringFormat::DateTime)
                    ) =>
                {
                    quote!(::paytokens_runtime::TimeFormat::DateTime)
                }
                SchemaKind::Type(Type::Integer(_)) => {
                    quote!(::paytokens_runtime::TimeFormat::UnixSeconds)
                }
                _ => {
                    return Err(unsupported(
                        spec,
                        &property.node.at(),
                        "`expires_at` is neither a date-time string nor an integer".to_owned(),
                        "write `type: string, format: date-time` (RFC 3339) or `type: integer` \
                         (Unix seconds)",
                    ));
                }
            };
            let f = field(&property.path);
            quote!(::paytokens_runtime::Expiry::At(#f, #format))
        }
        (None, None) => {
            return Err(unsupported(
                spec,
                &root_at,
                "the answer has no lifetime role".to_owned(),
                "mark its property with `x-paytokens-role: expires_in` (seconds) or \
                 `x-paytokens-role: expires_at` (an absolute time)",
            ));
        }
        (Some(_), Some(property)) => {
            return Err(unsupported(
                spec,
                &property.node.at(),
                "the answer has both `expires_in` and `expires_at` roles".to_owned(),
                "keep one lifetime role; leave the other property without a role",
            ));
        }
    };
    let scopes = match find("scopes") {
        Some(property) => {
            let ok = matches!(
                &property.node.schema.schema_kind,
                SchemaKind::Type(Type::String(_) | Type::Array(_))
            );
            if !ok {
                return Err(unsupported(
                    spec,
                    &property.node.at(),
                    "the granted scopes are neither a string nor an array".to_owned(),
                    "write `type: string` or `type: array, items: {type: string}`",
                ));
            }
            let f = field(&property.path);
            quote!(::std::option::Option::Some(#f))
        }
        None => quote!(::std::option::Option::None),
    };
    Ok((
        statuses.clone(),
        quote! {
            ::paytokens_runtime::AnswerSpec {
                statuses: &[ #( #statuses, )* ],
                token: #token_field,
                token_type: #token_type,
                default_token_type: #default_type,
                expiry: #expiry,
                scopes: #scopes,
                expect: &[ #( #expect, )* ],
            }
        },
    ))
}

/// The smallest value `schema` allows: an object of its required
/// properties, each the smallest of its type (an integer is 400: the status
/// numbers an error body holds are set to the refusal's status).
fn skeleton(spec: &Spec, schema: &Schema, depth: usize) -> Value {
    fn resolve_boxed<'s>(
        spec: &'s Spec,
        property: &'s ReferenceOr<Box<Schema>>,
    ) -> Option<&'s Schema> {
        match property {
            ReferenceOr::Item(schema) => Some(schema),
            ReferenceOr::Reference { reference } => resolve(spec, reference),
        }
    }
    match &schema.schema_kind {
        SchemaKind::Type(Type::Object(object)) if depth < 8 => Value::Object(
            object
                .properties
                .iter()
                .filter(|(name, _)| object.required.contains(name))
                .filter_map(|(name, property)| {
                    let property = resolve_boxed(spec, property)?;
                    Some((name.clone(), skeleton(spec, property, depth + 1)))
                })
                .collect(),
        ),
        SchemaKind::Type(Type::String(string)) => match string.enumeration.first() {
            Some(Some(value)) => Value::from(value.as_str()),
            _ => Value::from(""),
        },
        SchemaKind::Type(Type::Integer(_) | Type::Number(_)) => Value::from(400),
        SchemaKind::Type(Type::Boolean(_)) => Value::Bool(false),
        SchemaKind::Type(Type::Array(_)) => Value::Array(Vec::new()),
        SchemaKind::OneOf { one_of: all } | SchemaKind::AnyOf { any_of: all } => all
            .first()
            .and_then(|first| match first {
                ReferenceOr::Item(schema) => Some(skeleton(spec, schema, depth + 1)),
                ReferenceOr::Reference { reference } => {
                    resolve(spec, reference).map(|s| skeleton(spec, s, depth + 1))
                }
            })
            .unwrap_or(Value::Null),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// Where an error body's code and message are, and the smallest body its
/// schema allows.
fn refusal(spec: &Spec, op: &Op<'_>) -> Result<TokenStream> {
    let mut code = quote!(::std::option::Option::None);
    let mut message = quote!(::std::option::Option::None);
    let root = op
        .response_ref(&StatusCode::Range(4))
        .and_then(|r| resolve_node(spec, r));
    let smallest = root.as_ref().map_or_else(
        || "{}".to_owned(),
        |root| skeleton(spec, root.schema, 0).to_string(),
    );
    if let Some(root) = root {
        let mut seen = Vec::new();
        for property in walk(spec, &root) {
            let at = property.node.at();
            let Some(role) = role_of(
                spec,
                &at,
                property.node.extension(ROLE_EXTENSION),
                ERROR_ROLES,
            )?
            else {
                continue;
            };
            if seen.contains(&role) {
                return Err(unsupported(
                    spec,
                    &at,
                    format!("error role `{role}` is given twice"),
                    "give each role to one property",
                ));
            }
            let f = field(&property.path);
            let f = quote!(::std::option::Option::Some(#f));
            if role == "error_code" {
                code = f;
            } else {
                message = f;
            }
            seen.push(role);
        }
    }
    Ok(quote!(::paytokens_runtime::RefusalSpec {
        code: #code,
        message: #message,
        smallest: #smallest,
    }))
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
