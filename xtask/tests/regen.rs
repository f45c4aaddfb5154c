//! `cargo xtask regen` as a user runs it, on a temporary copy of the
//! workspace's specs/ and generated/: a failed regen leaves generated/
//! byte-identical; a good one writes only what changed and leaves no
//! temporary file behind.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file below `dir`, relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

fn copy_tree(from: &Path, to: &Path) {
    for (relative, bytes) in snapshot(from) {
        let target = to.join(relative);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, bytes).unwrap();
    }
}

fn regen(root: &Path, check: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("regen");
    if check {
        command.arg("--check");
    }
    command.arg("--root").arg(root).output().unwrap()
}

fn temp_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&workspace().join("specs"), &dir.path().join("specs"));
    copy_tree(
        &workspace().join("generated"),
        &dir.path().join("generated"),
    );
    dir
}

#[test]
fn a_failed_regen_leaves_generated_byte_identical() {
    let dir = temp_workspace();
    let root = dir.path();
    // One spec changes (a regen would rewrite its crate) and one is broken.
    let autopay = root.join("specs/autopay.yaml");
    let text = fs::read_to_string(&autopay).unwrap();
    fs::write(
        &autopay,
        text.replace("Request an access token", "Request a token"),
    )
    .unwrap();
    fs::write(root.join("specs/broken.yaml"), "openapi: 3.0.3\ninfo: [\n").unwrap();
    let before = snapshot(&root.join("generated"));

    let out = regen(root, false);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("specs/broken.yaml:"), "{stderr}");
    assert!(stderr.contains("generated/ was left unchanged"), "{stderr}");
    assert_eq!(snapshot(&root.join("generated")), before);
}

#[test]
fn regen_writes_only_what_changed_and_check_then_passes() {
    let dir = temp_workspace();
    let root = dir.path();
    let out = regen(root, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let autopay = root.join("specs/autopay.yaml");
    let text = fs::read_to_string(&autopay).unwrap();
    fs::write(
        &autopay,
        text.replace("Request an access token", "Request a token"),
    )
    .unwrap();
    let check = regen(root, true);
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("stale: generated/autopay/src/lib.rs"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo xtask regen"), "{stderr}");

    let out = regen(root, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "wrote generated/autopay/src/lib.rs");
    assert!(regen(root, true).status.success());
    let leftovers: Vec<_> = snapshot(&root.join("generated"))
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".regen-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_removed_spec_removes_its_crate() {
    let dir = temp_workspace();
    let root = dir.path();
    fs::remove_file(root.join("specs/singapay.yaml")).unwrap();
    let out = regen(root, false);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "removed generated/singapay"
    );
    assert!(!root.join("generated/singapay").exists());
}
