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
        // The positioned tree only serves to locate nodes; serde_yaml stays the
        // parser of record, so a construct only it understands still loads.
        let tree = marked_yaml::parse_yaml(0, text).ok();
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let document: OpenAPI = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path: Vec<String> = err
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    _ => None,
                })
                .collect();
            let inner = err.into_inner();
            // A YAML syntax error has a position but nothing was deserialised yet.
            let syntax = path.is_empty() && inner.location().is_some();
            let position = inner.location().map(|l| (l.line(), l.column()));
            let message = inner.to_string();
            let message = strip_position_suffix(&message);
            if syntax {
                return Error::Syntax {
                    at: Location {
                        file: file.to_owned(),
                        position,
                    },
                    message: message.to_owned(),
                };
            }
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let mut at = locate_in(file, tree.as_ref(), &segments);
            if at.position.is_none() {
                at.position = position;
            }
            let message = if path.is_empty() {
                message.to_owned()
            } else {
                format!("at `{}`: {message}", path.join("."))
            };
            Error::NotOpenApi { at, message }
        })?;
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

/// serde_yaml appends " at line L column C" to its messages; the position is
/// printed in front instead.
fn strip_position_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
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
