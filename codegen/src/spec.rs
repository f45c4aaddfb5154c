//! Loading a spec: YAML text to an [`openapiv3::OpenAPI`] document, keeping a
//! positioned copy of the YAML tree so that every later error can name the
//! line and column of the node it is about.

use std::path::Path;

use marked_yaml::Node;
use openapiv3::OpenAPI;

use crate::error::{Error, Location, Result};

/// One parsed spec file.
#[derive(Debug)]
pub struct Spec {
    file: String,
    document: OpenAPI,
    tree: Option<Node>,
}

impl Spec {
    /// Reads and parses the spec at `path`; errors name it as `display_name`
    /// (e.g. `specs/autopay.yaml`, relative to the workspace).
    pub fn load(path: &Path, display_name: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: display_name.to_owned(),
            source,
        })?;
        Self::parse(display_name, &text)
    }

    /// Parses spec text; errors name it as `file`.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let located = |err: &serde_yaml::Error| Location {
            file: file.to_owned(),
            position: err.location().map(|l| (l.line(), l.column())),
        };
        // Syntax first, so that a YAML error is never reported as a schema error.
        if let Err(err) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            return Err(Error::Syntax {
                at: located(&err),
                message: without_position(&err.to_string()),
            });
        }
        let document: OpenAPI = serde_yaml::from_str(text).map_err(|err| Error::NotOpenApi {
            at: located(&err),
            message: without_position(&err.to_string()),
        })?;
        // The positioned tree only serves to locate nodes for later errors;
        // serde_yaml stays the parser of record.
        let tree = marked_yaml::parse_yaml(0, text).ok();
        Ok(Self {
            file: file.to_owned(),
            document,
            tree,
        })
    }

    /// The name errors use for this spec.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The parsed OpenAPI document.
    pub fn document(&self) -> &OpenAPI {
        &self.document
    }

    /// The location of the node at `path` (mapping keys and sequence indexes
    /// from the document root); the deepest node found when part of the path
    /// does not exist.
    pub fn locate(&self, path: &[&str]) -> Location {
        locate_in(&self.file, self.tree.as_ref(), path)
    }

    /// Every `$ref` string in the document, with the path of the node holding it.
    pub(crate) fn references(&self) -> Vec<(Vec<String>, String)> {
        let mut found = Vec::new();
        if let Some(tree) = &self.tree {
            collect_keys(tree, &mut Vec::new(), "$ref", &mut found);
        }
        found
    }

    /// Every mapping key named `key` with a scalar value, with its path.
    pub(crate) fn keys_named(&self, key: &str) -> Vec<(Vec<String>, String)> {
        let mut found = Vec::new();
        if let Some(tree) = &self.tree {
            collect_keys(tree, &mut Vec::new(), key, &mut found);
        }
        found
    }
}

/// serde_yaml puts " at line L column C" inside its messages; the position
/// is printed in front of the message instead.
fn without_position(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_owned();
    };
    let rest = &message[start + " at line ".len()..];
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix(" column ").unwrap_or(rest);
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{}{rest}", &message[..start])
}

fn locate_in(file: &str, tree: Option<&Node>, path: &[&str]) -> Location {
    let mut position = tree.and_then(|t| marker(t.span().start()));
    let mut node = tree;
    for segment in path {
        let Some(current) = node else { break };
        match current {
            Node::Mapping(map) => {
                let Some((key, value)) = map.iter().find(|(k, _)| k.as_str() == *segment) else {
                    break;
                };
                // Point at the key: that is the line a reader looks for.
                position = marker(key.span().start()).or(position);
                node = Some(value);
            }
            Node::Sequence(seq) => {
                let Some(value) = segment.parse().ok().and_then(|i: usize| seq.get(i)) else {
                    break;
                };
                position = marker(value.span().start()).or(position);
                node = Some(value);
            }
            Node::Scalar(_) => break,
        }
    }
    Location {
        file: file.to_owned(),
        position,
    }
}

fn marker(m: Option<&marked_yaml::Marker>) -> Option<(usize, usize)> {
    m.map(|m| (m.line(), m.column()))
}

fn collect_keys(
    node: &Node,
    path: &mut Vec<String>,
    wanted: &str,
    found: &mut Vec<(Vec<String>, String)>,
) {
    match node {
        Node::Mapping(map) => {
            for (key, value) in map.iter() {
                path.push(key.as_str().to_owned());
                match value {
                    Node::Scalar(s) if key.as_str() == wanted => {
                        found.push((path.clone(), s.as_str().to_owned()));
                    }
                    _ => collect_keys(value, path, wanted, found),
                }
                path.pop();
            }
        }
        Node::Sequence(seq) => {
            for (i, value) in seq.iter().enumerate() {
                path.push(i.to_string());
                collect_keys(value, path, wanted, found);
                path.pop();
            }
        }
        Node::Scalar(_) => {}
    }
}
