//! Project tasks. `cargo xtask regen` rewrites `generated/` from `specs/`;
//! `cargo xtask regen --check` writes nothing and fails when anything is stale.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use paytokens_codegen::{REGEN_COMMAND, regen};

const USAGE: &str = "usage: cargo xtask regen [--check] [--root DIR]

  regen          rewrite generated/<provider>/ from specs/<provider>.yaml
  regen --check  write nothing; fail naming every stale file
  --root DIR     work on the workspace at DIR (default: this one)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut root = workspace_root();
    if let Some(i) = args.iter().position(|a| *a == "--root") {
        let Some(dir) = args.get(i + 1) else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        root = PathBuf::from(dir);
        args.drain(i..=i + 1);
    }
    let check = match args.as_slice() {
        ["regen"] => false,
        ["regen", "--check"] => true,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match regen_command(&root, check) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn regen_command(root: &Path, check: bool) -> anyhow::Result<ExitCode> {
    let plan = match regen::plan(root) {
        Ok(plan) => plan,
        Err(errors) => {
            for err in &errors {
                eprintln!("error: {err}");
            }
            eprintln!("generated/ was left unchanged.");
            return Ok(ExitCode::FAILURE);
        }
    };
    if plan.is_up_to_date() {
        println!("generated/ is up to date ({} specs)", plan.specs);
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        for path in plan.stale_paths() {
            eprintln!("stale: {path}");
        }
        eprintln!("generated/ does not match specs/: run `{REGEN_COMMAND}` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    plan.apply(root)
        .with_context(|| format!("writing generated/ under {}", root.display()))?;
    for file in &plan.writes {
        println!("wrote {}", file.path);
    }
    for path in &plan.removals {
        println!("removed {path}");
    }
    Ok(ExitCode::SUCCESS)
}
