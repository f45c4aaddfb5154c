//! Regeneration of a whole workspace: `specs/*.yaml` -> `generated/<id>/`,
//! plus the registration the `paytokens` crate needs for them: its
//! [`REGISTRY_FILE`] (one module and one registry entry per provider) and
//! its dependencies on the generated crates, between the
//! [`DEPENDENCIES_BEGIN`] and [`DEPENDENCIES_END`] lines of the root
//! `Cargo.toml`. Adding a provider is its spec and `cargo xtask regen`.
//!
//! [`plan`] generates every crate in memory and compares it with the files on
//! disk; nothing is written unless every spec generated cleanly, so a bad spec
//! never leaves `generated/` half-written. [`Plan::apply`] then writes each
//! changed file atomically (temporary file + rename) and removes the crates
//! whose spec is gone. `cargo xtask regen` and the staleness test both use it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};
use crate::{Spec, generate};

/// The `paytokens` crate's provider modules and registry, written by regen.
pub const REGISTRY_FILE: &str = "src/providers/registry.rs";
/// The line of the root `Cargo.toml` after which regen writes one
/// dependency per generated crate.
pub const DEPENDENCIES_BEGIN: &str = "# BEGIN providers: written by `cargo xtask regen`";
/// The line that ends them.
pub const DEPENDENCIES_END: &str = "# END providers";

/// What the registry says about one provider.
struct Entry {
    id: String,
    name: String,
    spec_file: String,
    route: String,
    scopes: bool,
}

/// A file whose bytes on disk differ from what its spec generates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleFile {
    /// Path relative to the workspace root, e.g. `generated/autopay/src/lib.rs`.
    pub path: String,
    /// The contents it should have.
    pub contents: String,
}

/// What `regen` would change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files to write: missing or with other bytes.
    pub writes: Vec<StaleFile>,
    /// Paths relative to the workspace root to delete: crates whose spec is
    /// gone, and files a crate no longer has.
    pub removals: Vec<String>,
    /// How many specs were read.
    pub specs: usize,
}

impl Plan {
    /// Whether the files on disk already match their specs.
    pub fn is_up_to_date(&self) -> bool {
        self.writes.is_empty() && self.removals.is_empty()
    }

    /// Every path the plan would touch, in order.
    pub fn stale_paths(&self) -> impl Iterator<Item = &str> {
        self.writes
            .iter()
            .map(|w| w.path.as_str())
            .chain(self.removals.iter().map(String::as_str))
    }

    /// Writes and removes what the plan says, under `root`. Each file is
    /// written to a temporary file beside it and renamed into place, so a
    /// reader never sees a truncated file.
    pub fn apply(&self, root: &Path) -> std::io::Result<()> {
        for file in &self.writes {
            write_atomically(&root.join(&file.path), file.contents.as_bytes())?;
        }
        for path in &self.removals {
            let path = root.join(path);
            if path.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

/// The specs under `root/specs`, as (provider id, path relative to root), sorted.
pub fn specs(root: &Path) -> Result<Vec<(String, String)>> {
    let dir = root.join("specs");
    let entries = fs::read_dir(&dir).map_err(|source| Error::Read {
        file: "specs/".to_owned(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            file: "specs/".to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".yaml") {
            found.push((id.to_owned(), format!("specs/{name}")));
        }
    }
    found.sort();
    Ok(found)
}

/// Generates every spec under `root/specs` and compares the result with
/// `root/generated`. Returns every spec's error, not only the first.
pub fn plan(root: &Path) -> std::result::Result<Plan, Vec<Error>> {
    let specs = specs(root).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut plan = Plan {
        specs: specs.len(),
        ..Plan::default()
    };
    let mut expected_dirs = BTreeSet::new();
    let mut entries = Vec::new();
    for (id, file) in &specs {
        let generated = Spec::load(&root.join(file), file).and_then(|spec| {
            let krate = generate(&spec, id)?;
            let (name, route, scopes) = crate::endpoint::summary(&spec)?;
            entries.push(Entry {
                id: id.clone(),
                name,
                spec_file: file.clone(),
                route,
                scopes,
            });
            Ok(krate)
        });
        let krate = match generated {
            Ok(krate) => krate,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        let dir = format!("generated/{id}");
        let produced: BTreeSet<String> = krate
            .files
            .iter()
            .map(|f| format!("{dir}/{}", f.path))
            .collect();
        for existing in files_under(&root.join(&dir)) {
            let relative = format!("{dir}/{existing}");
            if !produced.contains(&relative) {
                plan.removals.push(relative);
            }
        }
        for file in krate.files {
            let path = format!("{dir}/{}", file.path);
            if fs::read(root.join(&path)).ok().as_deref() != Some(file.contents.as_bytes()) {
                plan.writes.push(StaleFile {
                    path,
                    contents: file.contents,
                });
            }
        }
        expected_dirs.insert(id.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if root.join("src/providers").is_dir() {
        let registry = registry(&entries);
        if fs::read(root.join(REGISTRY_FILE)).ok().as_deref() != Some(registry.as_bytes()) {
            plan.writes.push(StaleFile {
                path: REGISTRY_FILE.to_owned(),
                contents: registry,
            });
        }
        let manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|source| {
            vec![Error::Read {
                file: "Cargo.toml".to_owned(),
                source,
            }]
        })?;
        let updated = dependencies(&manifest, &entries).map_err(|e| vec![e])?;
        if updated != manifest {
            plan.writes.push(StaleFile {
                path: "Cargo.toml".to_owned(),
                contents: updated,
            });
        }
    }
    if let Ok(entries) = fs::read_dir(root.join("generated")) {
        let mut orphans: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !expected_dirs.contains(name))
            .map(|name| format!("generated/{name}"))
            .collect();
        orphans.sort();
        plan.removals.extend(orphans);
    }
    Ok(plan)
}

/// `pyng-billing` as a type name: `PyngBilling`.
fn type_name(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The `paytokens` crate's provider modules and registry.
fn registry(entries: &[Entry]) -> String {
    let mut out = format!(
        "// @generated by `{}` from specs/*.yaml. DO NOT EDIT.\n\n",
        crate::REGEN_COMMAND
    );
    for entry in entries {
        let module = entry.id.replace('-', "_");
        let ty = type_name(&entry.id);
        let krate = crate::crate_name(&entry.id).replace('-', "_");
        out.push_str(&format!(
            "/// {name} (`{spec}`): `{route}`.\npub mod {module} {{\n    \
             /// The {name} token endpoint, as its spec describes it: use it as\n    \
             /// `Source::<{ty}>`.\n    pub type {ty} = {krate}::Client;\n",
            name = entry.name,
            spec = entry.spec_file,
            route = entry.route,
        ));
        if entry.scopes {
            out.push_str(&format!("    pub use {krate}::{{Scope, UnknownScope}};\n"));
        }
        out.push_str("}\n\n");
    }
    out.push_str("/// Every provider, in the order of their spec files' names.\n");
    out.push_str("pub(crate) static REGISTRY: &[crate::Provider] = &[\n");
    for entry in entries {
        let module = entry.id.replace('-', "_");
        out.push_str(&format!(
            "    crate::Provider::of::<{module}::{}>(),\n",
            type_name(&entry.id)
        ));
    }
    out.push_str("];\n");
    out
}

/// The root manifest with one dependency per generated crate between its
/// [`DEPENDENCIES_BEGIN`] and [`DEPENDENCIES_END`] lines.
fn dependencies(manifest: &str, entries: &[Entry]) -> Result<String> {
    let lines: Vec<&str> = manifest.lines().collect();
    let begin = lines.iter().position(|l| l.trim() == DEPENDENCIES_BEGIN);
    let end = lines.iter().position(|l| l.trim() == DEPENDENCIES_END);
    let (Some(begin), Some(end)) = (begin, end) else {
        return Err(Error::Unsupported {
            at: Location::file("Cargo.toml"),
            message: "the root manifest has no lines marking where regen writes the \
                      generated crates' dependencies"
                .to_owned(),
            hint: format!(
                "add `{DEPENDENCIES_BEGIN}` and `{DEPENDENCIES_END}` on their own lines in \
                 `[dependencies]`"
            ),
        });
    };
    if end < begin {
        return Err(Error::Unsupported {
            at: Location::file("Cargo.toml"),
            message: "the end marker of the generated dependencies comes before the begin marker"
                .to_owned(),
            hint: format!("put `{DEPENDENCIES_END}` after `{DEPENDENCIES_BEGIN}`"),
        });
    }
    let mut out: Vec<String> = lines[..=begin].iter().map(|l| (*l).to_owned()).collect();
    for entry in entries {
        out.push(format!(
            "{} = {{ path = \"generated/{}\", version = \"0.1.0\" }}",
            crate::crate_name(&entry.id),
            entry.id
        ));
    }
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    let mut text = out.join("\n");
    if manifest.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Files below `dir`, relative to it with `/` separators, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let Ok(entries) = fs::read_dir(dir.join(&relative)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = relative.join(entry.file_name());
            if entry.path().is_dir() {
                stack.push(path);
            } else {
                let parts: Vec<String> = path
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    out
}

/// Writes `contents` to a temporary file beside `path`, then renames it
/// into place: a reader never sees a truncated file.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.regen-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
