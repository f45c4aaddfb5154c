//! Errors of the generator: each names the spec file, the line and column where
//! the problem is when there is one, what is wrong and what to do about it.

use std::fmt;

/// Where in a spec a problem is: the file as the caller named it, and the
/// 1-based line and column when they are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The spec's path as given to [`crate::Spec::parse`], e.g. `specs/autopay.yaml`.
    pub file: String,
    /// 1-based line and column, when the problem has a position.
    pub position: Option<(usize, usize)>,
}

impl Location {
    /// A location naming only a file.
    pub fn file(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            position: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Everything that can go wrong turning a spec into a client crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be read.
    #[error("{file}: cannot read the spec: {source}")]
    Read {
        /// The spec's path.
        file: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed YAML.
    #[error(
        "{at}: invalid YAML: {message}; fix the YAML there (indentation, a missing `:` and \
         unquoted special characters are the usual causes)"
    )]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The parser's description.
        message: String,
    },
    /// The YAML is well-formed but is not an OpenAPI 3.0 document.
    #[error(
        "{at}: not a valid OpenAPI 3.0 document: {message}; give that node the shape the \
         OpenAPI 3.0.3 specification defines (specs/README.md lists the shapes codegen uses)"
    )]
    NotOpenApi {
        /// The offending node.
        at: Location,
        /// What was expected there.
        message: String,
    },
    /// The spec uses a shape that progenitor 0.15 cannot generate, or generates
    /// wrongly without saying so.
    #[error("{at}: {message}; {hint}")]
    Unsupported {
        /// The offending node.
        at: Location,
        /// What is wrong.
        message: String,
        /// What to write instead.
        hint: String,
    },
    /// A spec file name that is not a kebab-case provider id.
    #[error(
        "{file}: `{id}` is not a provider id; name the spec `<provider-id>.yaml` in kebab-case, \
         e.g. `pyng-billing.yaml`"
    )]
    InvalidProviderId {
        /// The spec's path.
        file: String,
        /// The file stem that was rejected.
        id: String,
    },
    /// progenitor returned an error for a spec that passed our checks.
    #[error("{file}: progenitor cannot generate a client: {message}")]
    Generator {
        /// The spec's path.
        file: String,
        /// progenitor's message.
        message: String,
    },
    /// progenitor panicked on a spec that passed our checks. The panic is caught
    /// so that it never reaches the user as a crash.
    #[error(
        "{at}: progenitor failed on this operation ({message}); simplify the construct it names \
         and see specs/README.md for the shapes that work"
    )]
    GeneratorPanicked {
        /// The operation being generated (the spec's first).
        at: Location,
        /// The panic's message.
        message: String,
    },
    /// [`crate::Builder::generate`] ran outside a build script, without an
    /// output directory.
    #[error(
        "{file}: no OUT_DIR to write the generated code to; call `Builder::generate` from a \
         build script (`build.rs`), or give it `Builder::out_dir`"
    )]
    NoOutDir {
        /// The spec's path.
        file: String,
    },
    /// The generated file could not be written.
    #[error("{file}: cannot write the generated code: {source}")]
    Write {
        /// The file's path.
        file: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The generated tokens did not parse as Rust: a bug in this generator.
    #[error(
        "{file}: generated code does not parse ({message}); this is a bug in paytokens-codegen"
    )]
    Unparsable {
        /// The spec's path.
        file: String,
        /// syn's message.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
