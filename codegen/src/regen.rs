//! Regeneration of a whole workspace: `specs/*.yaml` -> `generated/<id>/`.
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

use crate::error::{Error, Result};
use crate::{Spec, generate};

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
    for (id, file) in &specs {
        let krate = match Spec::load(&root.join(file), file).and_then(|spec| generate(&spec, id)) {
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

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
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
