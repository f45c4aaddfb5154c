//! Checks that run before progenitor sees a spec. Each one guards a shape that
//! progenitor 0.15 either panics on or turns into wrong code without a word
//! (see shared/notes/progenitor-0.15.md); each failure is an
//! [`Error::Unsupported`] pointing at the node and saying what to write instead.

use openapiv3::{MediaType, Operation, ReferenceOr, Response, StatusCode};

use crate::error::{Error, Result};
use crate::spec::Spec;

/// Runs every check; the first problem found is returned.
pub fn check(spec: &Spec) -> Result<()> {
    check_version(spec)?;
    check_references(spec)?;
    check_no_const(spec)?;
    for (path, item) in spec.document().paths.iter() {
        let item = match item {
            ReferenceOr::Item(item) => item,
            ReferenceOr::Reference { .. } => {
                return Err(unsupported(
                    spec,
                    &["paths", path],
                    format!("path `{path}` is a $ref"),
                    "write the path item inline",
                ));
            }
        };
        for (method, operation) in item.iter() {
            check_operation(spec, path, method, operation)?;
        }
    }
    Ok(())
}

fn unsupported(spec: &Spec, path: &[&str], message: String, hint: &str) -> Error {
    Error::Unsupported {
        at: spec.locate(path),
        message,
        hint: hint.to_owned(),
    }
}

fn check_version(spec: &Spec) -> Result<()> {
    let version = &spec.document().openapi;
    if version.starts_with("3.0.") {
        return Ok(());
    }
    Err(unsupported(
        spec,
        &["openapi"],
        format!("OpenAPI {version} is not supported (progenitor 0.15 reads OpenAPI 3.0 only)"),
        "write `openapi: 3.0.3`",
    ))
}

/// progenitor panics on a `$ref` it cannot resolve; only local component
/// references are resolved at all.
fn check_references(spec: &Spec) -> Result<()> {
    let components = spec.document().components.as_ref();
    for (path, target) in spec.references() {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let parts: Vec<&str> = target.split('/').collect();
        let exists = match parts.as_slice() {
            ["#", "components", kind, name] => components.is_some_and(|c| match *kind {
                "schemas" => c.schemas.contains_key(*name),
                "responses" => c.responses.contains_key(*name),
                "parameters" => c.parameters.contains_key(*name),
                "examples" => c.examples.contains_key(*name),
                "requestBodies" => c.request_bodies.contains_key(*name),
                "headers" => c.headers.contains_key(*name),
                "securitySchemes" => c.security_schemes.contains_key(*name),
                _ => false,
            }),
            _ => {
                return Err(unsupported(
                    spec,
                    &path,
                    format!("`$ref: {target}` is not a local component reference"),
                    "refer to `#/components/<kind>/<name>` in the same file",
                ));
            }
        };
        if !exists {
            return Err(unsupported(
                spec,
                &path,
                format!("`$ref: {target}` points at nothing"),
                "define that component or fix the reference",
            ));
        }
    }
    Ok(())
}

/// `const` is OpenAPI 3.1; a 3.0 parser drops it, so the constraint silently
/// disappears from the generated type.
fn check_no_const(spec: &Spec) -> Result<()> {
    for (path, _) in spec.keys_named("const") {
        let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
        if parent == Some("properties") {
            continue; // a property that happens to be called `const`
        }
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        return Err(unsupported(
            spec,
            &path,
            "`const` is not part of OpenAPI 3.0 and would be silently ignored".to_owned(),
            "write a one-value `enum` with a `default:` and leave the property out of `required`",
        ));
    }
    Ok(())
}

fn check_operation(spec: &Spec, path: &str, method: &str, operation: &Operation) -> Result<()> {
    let here = ["paths", path, method];
    let name = format!("{} {path}", method.to_uppercase());
    if operation.operation_id.is_none() {
        return Err(unsupported(
            spec,
            &here,
            format!("operation {name} has no operationId"),
            "add `operationId: request_token` (it names the generated method)",
        ));
    }
    if let Some(ReferenceOr::Item(body)) = &operation.request_body {
        let at = ["paths", path, method, "requestBody", "content"];
        if body.content.len() != 1 {
            return Err(unsupported(
                spec,
                &at,
                format!(
                    "the request body of {name} declares {} media types",
                    body.content.len()
                ),
                "declare exactly one media type, the one the provider document names",
            ));
        }
        for (media, content) in &body.content {
            check_media(spec, &[&at[..], &[media.as_str()]].concat(), content, &name)?;
        }
    }
    check_responses(spec, path, method, operation, &name)
}

fn check_media(spec: &Spec, at: &[&str], content: &MediaType, name: &str) -> Result<()> {
    if !content.encoding.is_empty() {
        return Err(unsupported(
            spec,
            &[at, &["encoding"]].concat(),
            format!("{name} uses an `encoding:` object"),
            "remove it: progenitor 0.15 cannot generate it",
        ));
    }
    match &content.schema {
        None => Err(unsupported(
            spec,
            at,
            format!("{name} has a media type without a schema"),
            "add `schema: {$ref: \"#/components/schemas/...\"}`",
        )),
        Some(_) => Ok(()),
    }
}

fn check_responses(
    spec: &Spec,
    path: &str,
    method: &str,
    operation: &Operation,
    name: &str,
) -> Result<()> {
    let mut success: Vec<(String, Option<String>)> = Vec::new();
    let mut error: Vec<(String, Option<String>)> = Vec::new();
    let all = operation
        .responses
        .responses
        .iter()
        .map(|(status, response)| (status_key(status), Some(status), response))
        .chain(
            operation
                .responses
                .default
                .iter()
                .map(|response| ("default".to_owned(), None, response)),
        );
    for (key, status, response) in all {
        let at = ["paths", path, method, "responses", key.as_str()];
        let ReferenceOr::Item(response) = response else {
            return Err(unsupported(
                spec,
                &at,
                format!("response {key} of {name} is a $ref"),
                "write the response inline, with its schema as a named $ref",
            ));
        };
        let schema = response_schema(spec, &at, response, name, &key)?;
        let is_success = match status {
            None => true,
            Some(StatusCode::Code(code)) => *code == 101 || (200..300).contains(code),
            Some(StatusCode::Range(range)) => *range == 2,
        };
        // progenitor counts `default` as both a success and an error response.
        if is_success {
            success.push((key.clone(), schema.clone()));
        }
        if !is_success || status.is_none() {
            error.push((key, schema));
        }
    }
    for (kind, responses) in [("success", &success), ("error", &error)] {
        if let Some(((first, a), (other, b))) = responses
            .iter()
            .zip(responses.iter().skip(1))
            .find(|((_, a), (_, b))| a != b)
            .map(|(x, y)| (x.clone(), y.clone()))
        {
            return Err(unsupported(
                spec,
                &["paths", path, method, "responses", other.as_str()],
                format!(
                    "{kind} responses {first} and {other} of {name} have different schemas ({} and {})",
                    a.as_deref().unwrap_or("none"),
                    b.as_deref().unwrap_or("none"),
                ),
                "progenitor 0.15 allows one schema for all success and one for all error \
                 responses: use a single `4XX` response, and no `default` that differs from 200",
            ));
        }
    }
    Ok(())
}

fn status_key(status: &StatusCode) -> String {
    match status {
        StatusCode::Code(code) => code.to_string(),
        StatusCode::Range(range) => format!("{range}XX"),
    }
}

/// The `$ref` of a response's JSON schema, if it has a body.
fn response_schema(
    spec: &Spec,
    at: &[&str],
    response: &Response,
    name: &str,
    key: &str,
) -> Result<Option<String>> {
    let mut schema = None;
    for (media, content) in &response.content {
        let here = [at, &["content", media.as_str()]].concat();
        check_media(spec, &here, content, name)?;
        match &content.schema {
            Some(ReferenceOr::Reference { reference }) => schema = Some(reference.clone()),
            _ => {
                return Err(unsupported(
                    spec,
                    &[&here[..], &["schema"]].concat(),
                    format!("response {key} of {name} has an inline schema"),
                    "use a named $ref to #/components/schemas (inline response schemas \
                     collapse into one generated type and mis-decode errors as tokens)",
                ));
            }
        }
    }
    Ok(schema)
}
