//! Snapshot tests of the generator: the generated code of every spec in
//! `specs/`, the error message of every broken fixture spec in
//! `tests/fixtures/specs/`, and a check that `generated/` matches `specs/`
//! so that a plain `cargo test` catches drift.
//!
//! Review changed snapshots with `cargo insta review`.

use std::path::{Path, PathBuf};

use paytokens_codegen::{Error, Spec, generate, regen};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `specs/x.yaml`-style name of a file under the workspace root.
fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .expect("test files live in the workspace")
        .to_string_lossy()
        .replace('\\', "/")
}

fn generate_file(path: &Path) -> Result<paytokens_codegen::GeneratedCrate, Error> {
    let id = path.file_stem().unwrap().to_string_lossy().into_owned();
    let spec = Spec::load(path, &relative(path))?;
    generate(&spec, &id)
}

#[test]
fn every_spec_generates_its_snapshot() {
    insta::glob!("../../specs", "*.yaml", |path| {
        let krate = generate_file(path).unwrap_or_else(|e| panic!("{e}"));
        let lib = &krate.files[1];
        assert_eq!(lib.path, "src/lib.rs");
        insta::assert_snapshot!(lib.contents);
    });
}

#[test]
fn every_broken_fixture_spec_is_a_located_error() {
    insta::glob!("../fixtures/specs", "*.yaml", |path| {
        let err = match generate_file(path) {
            Ok(_) => panic!("{} generated without error", relative(path)),
            Err(err) => err,
        };
        let message = err.to_string();
        assert!(
            message.starts_with(&relative(path)),
            "error does not name its file: {message}"
        );
        insta::assert_snapshot!(message);
    });
}

#[test]
fn generation_is_deterministic() {
    let path = root().join("specs/singapay.yaml");
    let first = generate_file(&path).unwrap();
    let second = generate_file(&path).unwrap();
    assert_eq!(first, second);
}

#[test]
fn generated_crates_match_their_specs() {
    let plan = regen::plan(&root()).unwrap_or_else(|errors| {
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("specs/ does not generate:\n{}", messages.join("\n"))
    });
    let stale: Vec<&str> = plan.stale_paths().collect();
    assert!(
        stale.is_empty(),
        "generated/ is stale, run `cargo xtask regen`: {stale:?}"
    );
    assert_eq!(plan.specs, paytokens::Provider::all().len());
}

#[test]
fn provider_id_must_be_kebab_case() {
    let text = std::fs::read_to_string(root().join("specs/autopay.yaml")).unwrap();
    let spec = Spec::parse("specs/Auto_Pay.yaml", &text).unwrap();
    let err = generate(&spec, "Auto_Pay").unwrap_err();
    assert!(matches!(err, Error::InvalidProviderId { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("specs/Auto_Pay.yaml: `Auto_Pay`")
    );
}

#[test]
fn scope_enum_is_emitted_only_for_specs_with_scopes() {
    let billing = generate_file(&root().join("specs/pyng-billing.yaml")).unwrap();
    let checkout = generate_file(&root().join("specs/pyng-checkout.yaml")).unwrap();
    assert!(billing.files[1].contents.contains("pub enum Scope {"));
    assert!(!checkout.files[1].contents.contains("pub enum Scope"));
}

/// `specs/autopay.yaml` with every line containing `drop` removed (and the
/// lines indented below it, for a mapping), generated.
fn generate_autopay_without(drop: &str) -> Result<paytokens_codegen::GeneratedCrate, Error> {
    let text = std::fs::read_to_string(root().join("specs/autopay.yaml")).unwrap();
    let mut kept = Vec::new();
    let mut dropped_indent = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(dropped) = dropped_indent {
            if line.trim().is_empty() || indent > dropped {
                continue;
            }
            dropped_indent = None;
        }
        if line.contains(drop) {
            dropped_indent = Some(indent);
            continue;
        }
        kept.push(line);
    }
    let edited = kept.join("\n");
    assert_ne!(edited, text.trim_end(), "`{drop}` is not in the spec");
    let spec = Spec::parse("specs/autopay.yaml", &edited)?;
    generate(&spec, "autopay")
}

#[test]
fn a_spec_without_the_provider_name_is_refused() {
    let err = generate_autopay_without("x-paytokens-provider:").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("specs/autopay.yaml:"), "{message}");
    assert!(
        message.contains("`info` has no `x-paytokens-provider`"),
        "{message}"
    );
}

#[test]
fn a_spec_without_sandbox_clients_is_refused() {
    let err = generate_autopay_without("x-paytokens-sandbox:").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("specs/autopay.yaml:"), "{message}");
    assert!(
        message.contains("`x-paytokens-sandbox` is missing"),
        "{message}"
    );
}

/// The items of generated Rust, with the runtime's root written as the
/// crates under `generated/` write it, and without the trailing commas
/// prettyplease adds where it breaks a line (the module is indented one
/// level deeper, so its lines break elsewhere).
fn items(items: &[syn::Item]) -> Vec<String> {
    use quote::ToTokens;
    items
        .iter()
        .map(|item| {
            item.to_token_stream()
                .to_string()
                .replace(":: paytokens :: runtime", ":: paytokens_runtime")
                .replace("::paytokens::runtime", "::paytokens_runtime")
                .split_whitespace()
                .collect::<String>()
                .replace(",)", ")")
                .replace(",]", "]")
                .replace(",}", "}")
        })
        .collect()
}

#[test]
fn the_builder_writes_the_client_regen_writes_for_every_spec() {
    let out = root().join("target/codegen-builder");
    for (id, file) in regen::specs(&root()).unwrap() {
        // Relative to the package's root, as a build script gives it.
        let written = paytokens_codegen::Builder::new(&file)
            .out_dir(&out)
            .try_generate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, out.join(format!("{id}.rs")));
        let module = std::fs::read_to_string(&written).unwrap();
        assert!(
            module.starts_with(&format!(
                "// @generated by `paytokens_codegen::Builder` from {file}. DO NOT EDIT.\n"
            )),
            "{}",
            module.lines().next().unwrap_or_default()
        );
        let module: syn::File = syn::parse_file(&module).unwrap();
        let [syn::Item::Mod(module)] = module.items.as_slice() else {
            panic!("{id}: the file is not one module");
        };
        assert_eq!(module.ident, id.replace('-', "_"));
        let inner = &module.content.as_ref().expect("an inline module").1;
        let krate = generate_file(&root().join(&file)).unwrap();
        let lib: syn::File = syn::parse_file(&krate.files[1].contents).unwrap();
        let (module_items, crate_items) = (items(inner), items(&lib.items));
        for (m, c) in module_items.iter().zip(&crate_items) {
            assert_eq!(m, c, "{id}: the module's item differs from the crate's");
        }
        assert_eq!(module_items.len(), crate_items.len(), "{id}: item counts");
        // Nothing but the runtime's root is named: a crate holding the module
        // depends on paytokens alone.
        let text = std::fs::read_to_string(&written).unwrap();
        for name in [
            "progenitor_client",
            "reqwest",
            "serde",
            "serde_json",
            "paytokens_runtime",
        ] {
            for (at, _) in text.match_indices(&format!("{name}::")) {
                let before = &text[..at];
                assert!(
                    before.ends_with("::paytokens::runtime::__private::")
                        || before.ends_with("::paytokens::runtime::")
                        || before
                            .rsplit('\n')
                            .next()
                            .unwrap_or_default()
                            .trim_start()
                            .starts_with("//"),
                    "{id}: `{name}::` outside the runtime's root at byte {at}"
                );
            }
        }
    }
}

#[test]
fn the_builder_refuses_a_bad_spec_with_its_location_and_writes_nothing() {
    let out = root().join("target/codegen-builder-broken");
    let _ = std::fs::remove_dir_all(&out);
    let err = paytokens_codegen::Builder::new("tests/fixtures/specs/role-unknown.yaml")
        .out_dir(&out)
        .try_generate()
        .expect_err("a spec with an unknown role generated");
    let expected = generate_file(&root().join("tests/fixtures/specs/role-unknown.yaml"))
        .expect_err("the fixture is broken")
        .to_string();
    assert_eq!(err.to_string(), expected);
    assert!(
        err.to_string()
            .starts_with("tests/fixtures/specs/role-unknown.yaml:"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a bad spec");
}

#[test]
fn the_builder_takes_the_id_from_the_file_name_or_as_given() {
    let out = root().join("target/codegen-builder-id");
    let written = paytokens_codegen::Builder::new("specs/autopay.yaml")
        .id("my-autopay")
        .out_dir(&out)
        .try_generate()
        .unwrap();
    assert_eq!(written, out.join("my-autopay.rs"));
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains("pub mod my_autopay {")
    );
    let err = paytokens_codegen::Builder::new("specs/autopay.yaml")
        .id("My_Autopay")
        .out_dir(&out)
        .try_generate()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`My_Autopay` is not a provider id"),
        "{err}"
    );
}
