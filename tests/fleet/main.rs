//! A fleet of real OS processes sharing one token store (issue 11).
//!
//! This test target has its own `main` (`harness = false`). Run plainly, it
//! is the **parent**: it starts the sandbox token endpoint in its own tokio
//! runtime, a real `redis-server` or a fresh 0700 directory per scenario,
//! and runs each scenario in turn, printing `test <name> ... ok`. Run with
//! `--child`, it is one **process of the fleet** (see [`child`]): it builds
//! a [`TokenCache`](paytokens::TokenCache) with a store from its
//! environment and obeys commands on stdin. The children are this same
//! binary, so nothing else is built.
//!
//! Other arguments (cargo's filters and flags) are ignored; to run some
//! scenarios only while working on them, set `FLEET_ONLY` to a part of
//! their names (comma-separated).
//!
//! Unix only, as the file store, SIGSTOP and SIGKILL are: elsewhere it
//! does nothing.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

/// The shared test harness: canaries.
#[cfg(unix)]
#[path = "../common/mod.rs"]
mod common;
/// Real `redis-server` processes to kill, pause and restart.
#[cfg(unix)]
#[path = "../common/redis_server.rs"]
mod redis_server;

#[cfg(unix)]
mod child;
#[cfg(unix)]
mod parent;
#[cfg(unix)]
mod scenarios;

use serde::{Deserialize, Serialize};

/// The argument that makes this binary a child.
pub const CHILD_FLAG: &str = "--child";

/// The environment a child reads its configuration from.
pub mod env {
    /// The store URL (`redis://…`, `file:<dir>`).
    pub const STORE: &str = "FLEET_STORE";
    /// The provider's base URL at the sandbox.
    pub const BASE_URL: &str = "FLEET_BASE_URL";
    /// The provider id (`autopay`).
    pub const PROVIDER: &str = "FLEET_PROVIDER";
    /// The client id.
    pub const CLIENT_ID: &str = "FLEET_CLIENT_ID";
    /// The client secret.
    pub const SECRET: &str = "FLEET_SECRET";
    /// The mint lock's lease in milliseconds (optional).
    pub const LEASE_MS: &str = "FLEET_LEASE_MS";
    /// The fleet's mint budget per hour (optional).
    pub const MAX_MINTS: &str = "FLEET_MAX_MINTS";
    /// How many tasks call `token()` on each `go` (default 100).
    pub const TASKS: &str = "FLEET_TASKS";
}

/// One line a child prints on stdout, as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// The cache is built; commands are read from now on.
    #[serde(default)]
    pub ready: bool,
    /// The child could not start (bad configuration, store refused).
    #[serde(default)]
    pub fatal: Option<String>,
    /// Each caller's outcome, for `go` (one per task) and `invalidate`
    /// (one).
    #[serde(default)]
    pub calls: Vec<Call>,
    /// For `invalidate`: whether the store was seen without a token
    /// afterwards (the compare-and-delete landed).
    #[serde(default)]
    pub deleted: Option<bool>,
    /// What the child found of a token, the secret or the client id in its
    /// own trace output so far (descriptions, never the values).
    #[serde(default)]
    pub leaks: Vec<String>,
    /// How many bytes the child traced so far: the leak scan above looked
    /// at something (every `token()` that misses traces).
    #[serde(default)]
    pub traced: usize,
}

/// One caller's `token()`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    /// The SHA-256 of the token (hex), when the call succeeded.
    pub fp: Option<String>,
    /// How long the caller waited, from the release, in milliseconds.
    pub wait_ms: f64,
    /// The error's `Display`, when the call failed.
    pub error: Option<String>,
    /// The error's class (`budget_exhausted`, `transient`, …).
    pub class: Option<String>,
    /// The error's `retry_after()`, in seconds.
    pub retry_after_s: Option<f64>,
}

impl Call {
    /// Whether the call got a token.
    pub fn ok(&self) -> bool {
        self.fp.is_some()
    }
}

/// A child with `--child`, otherwise the parent running every scenario.
#[cfg(unix)]
fn main() {
    if std::env::args().any(|arg| arg == CHILD_FLAG) {
        std::process::exit(child::main());
    }
    std::process::exit(scenarios::run_all());
}

/// Elsewhere than unix: nothing to run.
#[cfg(not(unix))]
fn main() {
    println!("the fleet test runs on unix only");
}
