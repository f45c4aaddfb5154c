//! One process of the fleet (`--child`).
//!
//! It builds a [`TokenCache`] with a [`TokenStore`] from its environment
//! ([`crate::env`]), traces everything at TRACE to stderr and to memory,
//! prints `{"ready":true}` and then obeys one command per stdin line,
//! answering each with one JSON [`Reply`] line on stdout:
//!
//! - `go`: N tasks (`FLEET_TASKS`, default 100) are spawned, released
//!   together, and each calls `cache.token()` once;
//! - `invalidate`: one `token()`, then `cache.invalidate(&token)`, then
//!   waits (bounded) until the store holds no token: the compare-and-delete
//!   runs in the background and the next process must not read the
//!   invalidated token;
//! - `quit`, or the end of stdin: exit.
//!
//! Tokens never leave the process: replies carry their SHA-256. After each
//! command, the child scans what it traced for every token it received, the
//! client secret and the client id, and reports what it found.

use std::collections::HashSet;
use std::io::{BufRead as _, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use paytokens::sandbox::SandboxClient;
use paytokens::{
    AnySource, CachePolicy, Config, Credentials, ExposeSecret as _, Provider, StoreOptions,
    TokenCache, TokenError, TokenStore,
};

use crate::{Call, Reply, env};

/// How long `invalidate` waits for the store to drop the token.
const DELETE_WAIT: Duration = Duration::from_secs(5);

/// Everything the child traced, as it was written to stderr too.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The child's configuration, from its environment.
struct Settings {
    /// [`env::STORE`].
    store: String,
    /// [`env::BASE_URL`].
    base_url: String,
    /// [`env::PROVIDER`].
    provider: Provider,
    /// [`env::CLIENT_ID`].
    client_id: String,
    /// [`env::SECRET`].
    secret: String,
    /// [`env::LEASE_MS`].
    lease: Option<Duration>,
    /// [`env::MAX_MINTS`].
    max_mints: Option<u32>,
    /// [`env::TASKS`].
    tasks: usize,
}

impl Settings {
    /// The settings in the environment, or what is missing or wrong.
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let number = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Ok(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} is not a number")),
                Err(_) => Ok(None),
            }
        };
        Ok(Self {
            store: var(env::STORE)?,
            base_url: var(env::BASE_URL)?,
            provider: var(env::PROVIDER)?
                .parse()
                .map_err(|err| format!("{}: {err}", env::PROVIDER))?,
            client_id: var(env::CLIENT_ID)?,
            secret: var(env::SECRET)?,
            lease: number(env::LEASE_MS)?.map(Duration::from_millis),
            max_mints: number(env::MAX_MINTS)?
                .map(|n| u32::try_from(n).map_err(|_| format!("{} too large", env::MAX_MINTS)))
                .transpose()?,
            tasks: number(env::TASKS)?.map_or(100, |n| n as usize),
        })
    }

    /// The provider config: the demo client's scopes and header values
    /// (what the parent registers at the sandbox), with this client's id
    /// and secret.
    fn config(&self) -> Config {
        let demo = SandboxClient::demo(self.provider);
        let mut config = Config::new(Credentials::new(
            self.client_id.clone(),
            self.secret.clone(),
        ))
        .base_url(&self.base_url);
        if self.provider.spec().scope.is_some() {
            config = config.scopes(&demo.granted_scopes);
        }
        config.headers = demo.headers;
        config
    }
}

/// A running child: its cache, its store and what it has seen.
struct Child {
    /// The cache the callers share.
    cache: TokenCache<AnySource>,
    /// The cache's store (a clone), to see invalidations land.
    store: TokenStore,
    /// Callers per `go`.
    tasks: usize,
    /// What must never appear in the trace: every token received, the
    /// secret, the client id, and the two in HTTP Basic form.
    needles: Vec<(String, String)>,
    /// Tokens already added to `needles`.
    tokens: HashSet<String>,
    /// The trace so far.
    captured: Captured,
}

/// Runs the child; its exit code.
pub fn main() -> i32 {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(problem) => return fatal(&problem),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fatal(&format!("cannot start a tokio runtime: {err}")),
    };
    let built = runtime.block_on(async { build(&settings, captured) });
    let mut child = match built {
        Ok(child) => child,
        Err(problem) => return fatal(&problem),
    };
    answer(&Reply {
        ready: true,
        ..Reply::default()
    });
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut reply = match line.trim() {
            "go" => runtime.block_on(child.go()),
            "invalidate" => runtime.block_on(child.invalidate()),
            "quit" => break,
            other => {
                return fatal(&format!("unknown command {other:?}"));
            }
        };
        (reply.leaks, reply.traced) = child.leaks();
        answer(&reply);
    }
    0
}

/// Reports a child that cannot go on; its exit code.
fn fatal(problem: &str) -> i32 {
    answer(&Reply {
        fatal: Some(problem.to_owned()),
        ..Reply::default()
    });
    2
}

/// Prints one reply line.
fn answer(reply: &Reply) {
    let line = serde_json::to_string(reply)
        .unwrap_or_else(|err| format!(r#"{{"fatal":"cannot serialize a reply: {err}"}}"#));
    let mut stdout = std::io::stdout().lock();
    // The parent reads lines; a closed stdout means the parent is gone.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// The cache of `settings` (inside the runtime: the store may spawn).
fn build(settings: &Settings, captured: Captured) -> Result<Child, String> {
    let store = TokenStore::from_url(&settings.store)
        .map_err(|err| format!("store: {err}"))?
        .ok_or("the fleet needs a shared store, not `none`")?;
    let mut options = StoreOptions::default();
    if let Some(lease) = settings.lease {
        options.lease = lease;
    }
    let store = store.with_options(options);
    let policy = CachePolicy {
        max_mints: settings
            .max_mints
            .unwrap_or(CachePolicy::default().max_mints),
        mint_window: Duration::from_secs(3600),
        ..CachePolicy::default()
    };
    let source = settings
        .provider
        .source(settings.config())
        .map_err(|err| format!("source: {err}"))?;
    let cache = TokenCache::with_store(source, policy, store.clone())
        .map_err(|err| format!("cache: {err}"))?;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", settings.client_id, settings.secret));
    Ok(Child {
        cache,
        store,
        tasks: settings.tasks,
        needles: vec![
            ("the client secret".to_owned(), settings.secret.clone()),
            ("the client id".to_owned(), settings.client_id.clone()),
            ("the HTTP Basic credentials".to_owned(), basic),
        ],
        tokens: HashSet::new(),
        captured,
    })
}

impl Child {
    /// `tasks` callers released together.
    async fn go(&mut self) -> Reply {
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..self.tasks)
            .map(|_| {
                let cache = self.cache.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    // The sender lives until every caller is joined.
                    let _ = released.wait_for(|go| *go).await;
                    let started = Instant::now();
                    let result = cache.token().await;
                    let waited = started.elapsed();
                    let token = result.map(|t| t.secret().expose_secret().to_owned());
                    (token, waited)
                })
            })
            .collect();
        release.send_replace(true);
        let mut calls = Vec::with_capacity(callers.len());
        for caller in callers {
            let (result, waited) = match caller.await {
                Ok(outcome) => outcome,
                Err(err) => {
                    calls.push(Call {
                        fp: None,
                        wait_ms: 0.0,
                        error: Some(format!("the caller task failed: {err}")),
                        class: Some("panic".to_owned()),
                        retry_after_s: None,
                    });
                    continue;
                }
            };
            calls.push(self.call(result, waited));
        }
        Reply {
            calls,
            ..Reply::default()
        }
    }

    /// One `token()`, its invalidation, and a wait for the store to drop it.
    async fn invalidate(&mut self) -> Reply {
        let started = Instant::now();
        let result = self.cache.token().await;
        let waited = started.elapsed();
        let token = match result {
            Ok(token) => token,
            Err(err) => {
                return Reply {
                    calls: vec![self.call(Err(err), waited)],
                    deleted: Some(false),
                    ..Reply::default()
                };
            }
        };
        self.cache.invalidate(&token);
        let call = self.call(Ok(token.secret().expose_secret().to_owned()), waited);
        drop(token);
        let deadline = Instant::now() + DELETE_WAIT;
        let mut deleted = false;
        while Instant::now() < deadline {
            if let Ok(status) = self.store.status().await
                && status.iter().all(|credential| credential.tokens.is_empty())
            {
                deleted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Reply {
            calls: vec![call],
            deleted: Some(deleted),
            ..Reply::default()
        }
    }

    /// A caller's outcome; remembers the token to scan for.
    fn call(&mut self, result: Result<String, TokenError>, waited: Duration) -> Call {
        let wait_ms = waited.as_secs_f64() * 1000.0;
        match result {
            Ok(token) => {
                let fp = fingerprint(&token);
                if self.tokens.insert(token.clone()) {
                    self.needles.push(("a token it received".to_owned(), token));
                }
                Call {
                    fp: Some(fp),
                    wait_ms,
                    error: None,
                    class: None,
                    retry_after_s: None,
                }
            }
            Err(err) => Call {
                fp: None,
                wait_ms,
                error: Some(err.to_string()),
                class: Some(err.class().to_owned()),
                retry_after_s: err.retry_after().map(|d| d.as_secs_f64()),
            },
        }
    }

    /// What of `needles` the trace holds, described; and how much it holds.
    fn leaks(&self) -> (Vec<String>, usize) {
        let captured = self
            .captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&captured);
        let mut found: Vec<String> = self
            .needles
            .iter()
            .filter(|(_, needle)| text.contains(needle.as_str()))
            .map(|(what, _)| format!("the trace holds {what}"))
            .collect();
        found.dedup();
        (found, captured.len())
    }
}

/// The SHA-256 of `token`, hex.
fn fingerprint(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
