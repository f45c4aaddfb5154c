//! A provider of one's own (`examples/own-provider`): a spec with an error
//! makes `cargo build` of the crate fail with the located message, and no
//! code. The example itself is built and tested as its own crate by CI
//! (`.ci/own-provider`); this builds a copy of it with one role misspelt.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test binary was built in
/// (`<target>/debug/deps/it-...`): the copy builds there, reusing what the
/// example's own build compiled.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps")
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn a_broken_spec_fails_cargo_build_with_its_location() {
    let example = root().join("examples/own-provider");
    // Under the workspace, so that its `.cargo/config.toml` (the build
    // profile) applies as it does to the example.
    let copy = target_dir().join("own-provider-broken");
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&example, &copy);
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).unwrap();
    let root_path = root().display().to_string();
    let manifest = manifest
        .replace(
            "path = \"../../codegen\"",
            &format!("path = \"{root_path}/codegen\""),
        )
        .replace("path = \"../..\"", &format!("path = \"{root_path}\""));
    // Its own workspace, not a member of the one it now sits in.
    let manifest = format!("{manifest}\n[workspace]\n");
    std::fs::write(copy.join("Cargo.toml"), manifest).unwrap();
    let spec = std::fs::read_to_string(copy.join("acme.yaml")).unwrap();
    let (line, column) = spec
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.find("x-paytokens-role: access_token")
                .map(|c| (i + 1, c + 1))
        })
        .expect("the example's spec has an access_token role");
    let broken = spec.replace(
        "x-paytokens-role: access_token",
        "x-paytokens-role: access_tokn",
    );
    std::fs::write(copy.join("acme.yaml"), broken).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--locked", "--offline", "--quiet"])
        .current_dir(&copy)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the build succeeded:\n{stderr}");
    let expected = format!(
        "error: own-provider@0.1.0: acme.yaml:{line}:{column}: `x-paytokens-role` here must be \
         one of: access_token, token_type, expires_in, expires_at, scopes; write one of those \
         roles, or remove the extension"
    );
    assert!(
        stderr.lines().any(|l| l == expected),
        "expected the line\n{expected}\nin\n{stderr}"
    );
    // The crate itself was never compiled: the build script stopped it.
    assert!(!stderr.contains("error[E"), "{stderr}");
}
