//! The integration tests, gathered into one test binary: each module is one
//! topic (what was one file under `tests/`), and the crate graph is linked
//! once instead of once per file. Two stay apart: the multi-process fleet
//! harness, which needs its own `main` (`tests/fleet`), and the bounded
//! body tests (`tests/bounded_body.rs`), which measure the CLI's peak
//! memory from a small parent process.
//!
//! Run one topic with a filter: `cargo test --test it store::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/redis_server.rs"]
mod redis_server;
mod trace;

mod bearer;
mod cache;
mod cache_faults;
mod cli;
mod codegen;
mod error_classes;
mod generated_smoke;
mod metrics;
mod own_provider;
mod properties;
mod protected_api;
mod response_corpus;
mod sandbox;
mod spec_examples;
mod store;
mod wire_format;
