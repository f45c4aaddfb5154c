//! The shared token store ([`TokenStore`]) under [`TokenCache::with_store`],
//! in one test process, against real stores: a `redis-server` started per
//! test on a free 127.0.0.1 port, and a directory (0700) per test for the
//! file store. Each cache gets its own `TokenStore` (its own connections), so
//! several caches stand for several processes of a fleet.
//!
//! The token endpoint is wiremock on 127.0.0.1, minting numbered canary
//! tokens (`CANARY-TOKEN-…-1`, `-2`, …) and counting them; every client id
//! and secret is a canary too. Every test runs with everything traced at
//! TRACE captured (by any thread of this binary) and ends by checking that
//! no canary token, secret or client id was traced.
//!
//! What is tested, for Redis and the file store alike unless said:
//! - nothing readable at rest (every key or file, every value);
//! - a tampered, swapped, plaintext or other-secret entry is a miss: a fresh
//!   cache mints instead, and the store then holds a good token;
//! - hits never touch the store (Redis paused with SIGSTOP; the file store's
//!   directory moved away): each hit completes without awaiting anything;
//! - an invalidation reaches the other caches, and they mint once together;
//! - the mint budget is counted in the store, across caches;
//! - (Redis) a store down from the start: tokens by minting alone, one
//!   warning per cache, and convergence on one token once it is up;
//! - (file) a directory others can read is refused, naming it.

use crate::common;
use crate::redis_server;
use crate::trace::{assert_nothing_leaked, install as capture, watch_for};

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use futures_util::FutureExt as _;
use paytokens::pyng_billing::PyngBilling;
use paytokens::{
    CachePolicy, CachedToken, Config, Credentials, ExposeSecret, Provider, Source, StoreError,
    StoreOptions, TokenCache, TokenError, TokenStore,
};
use redis_server::{RedisCluster, RedisSentinels, RedisServer};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Scopes of the provider used throughout (Pyng B2B Receivables), in three
/// disjoint scope sets: the first one...
const SCOPES_A: &[&str] = &["billing:customers:read", "billing:batches:submit"];
/// ...the second one...
const SCOPES_B: &[&str] = &["billing:customers:invite"];
/// ...and the third.
const SCOPES_C: &[&str] = &["billing:batches:read"];

/// Another secret for the same client id: a rotated one.
const OTHER_SECRET: &str = "CANARY-SECRET-rotated-7d3e01b8";

/// The caches of these tests.
type Cache = TokenCache<Source<PyngBilling>>;

// ---------------------------------------------------------------------------
// The token endpoint: wiremock, minting `CANARY_TOKEN-1`, `-2`, ...

/// Mints `CANARY_TOKEN-n` for `lifetime` seconds with the requested scopes,
/// or answers 503 while `fail` is above zero.
struct Minter {
    minted: Arc<AtomicUsize>,
    lifetime: Arc<AtomicU64>,
    fail: Arc<AtomicUsize>,
    reject: Arc<AtomicBool>,
}

impl Respond for Minter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return ResponseTemplate::new(503);
        }
        if self.reject.load(Ordering::SeqCst) {
            let (body, _, _) = refusal(Provider::of::<PyngBilling>());
            return ResponseTemplate::new(401).set_body_json(body);
        }
        let billing = Provider::of::<PyngBilling>();
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let lifetime = self.lifetime.load(Ordering::SeqCst);
        let mut body = success(
            Provider::of::<PyngBilling>(),
            &format!("{CANARY_TOKEN}-{n}"),
            "Bearer",
            json!(lifetime),
        );
        let scope = url::form_urlencoded::parse(&request.body)
            .find(|(name, _)| name == "scope")
            .map(|(_, value)| value.into_owned());
        if let (Some(scope), Some(field)) = (scope, &billing.spec().answer.scopes) {
            field.set(&mut body, Value::from(scope));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// A token endpoint of Pyng B2B Receivables that counts its mints; it
/// answers 503 while `fail` is above zero, and refuses (401, the spec's
/// refusal example) while `reject` is set.
struct Endpoint {
    server: MockServer,
    minted: Arc<AtomicUsize>,
    lifetime: Arc<AtomicU64>,
    fail: Arc<AtomicUsize>,
    reject: Arc<AtomicBool>,
}

impl Endpoint {
    /// Minting tokens valid for `lifetime` seconds.
    async fn start(lifetime: u64) -> Self {
        let server = MockServer::start().await;
        let minted = Arc::new(AtomicUsize::new(0));
        let lifetime = Arc::new(AtomicU64::new(lifetime));
        let fail = Arc::new(AtomicUsize::new(0));
        let reject = Arc::new(AtomicBool::new(false));
        Mock::given(method("POST"))
            .respond_with(Minter {
                minted: Arc::clone(&minted),
                lifetime: Arc::clone(&lifetime),
                fail: Arc::clone(&fail),
                reject: Arc::clone(&reject),
            })
            .mount(&server)
            .await;
        Self {
            server,
            minted,
            lifetime,
            fail,
            reject,
        }
    }

    /// Requests the endpoint received, whatever it answered.
    async fn requests(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    /// Tokens minted so far.
    fn mints(&self) -> usize {
        self.minted.load(Ordering::SeqCst)
    }

    /// Every token minted so far.
    fn tokens(&self) -> Vec<String> {
        (1..=self.mints())
            .map(|n| format!("{CANARY_TOKEN}-{n}"))
            .collect()
    }

    /// A source of `client_id` with `secret` asking for `scopes`.
    fn source(&self, client_id: &str, secret: &str, scopes: &[&str]) -> Source<PyngBilling> {
        watch_for(&basic(client_id, secret));
        let config = Config::new(Credentials::new(client_id, secret))
            .base_url(self.server.uri())
            .scopes(scopes.iter().copied())
            .http(quick(1));
        Source::<PyngBilling>::new(config).unwrap()
    }

    /// A cache of `client_id`, `secret` and `scopes` sharing through `store`.
    fn cache(
        &self,
        client_id: &str,
        secret: &str,
        scopes: &[&str],
        policy: CachePolicy,
        store: TokenStore,
    ) -> Cache {
        TokenCache::with_store(self.source(client_id, secret, scopes), policy, store)
            .expect("a source with a client secret keys a store")
    }

    /// `host:port` of the endpoint.
    fn authority(&self) -> String {
        self.server.address().to_string()
    }
}

/// The credentials in HTTP Basic form (what Pyng's requests carry).
fn basic(client_id: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
}

/// The token's value.
fn value(token: &CachedToken) -> String {
    token.secret().expose_secret().to_owned()
}

/// A client id of this test: a canary, so that the trace check finds it.
fn client_id(test: &str, kind: Kind) -> String {
    format!("CANARY-CLIENT-{test}-{}", kind.name())
}

/// A policy without jitter; everything else as the default.
fn exact() -> CachePolicy {
    CachePolicy {
        jitter: 0.0,
        ..CachePolicy::default()
    }
}

/// A fresh token, asserting the call succeeds and leaks nothing.
async fn token(cache: &Cache) -> CachedToken {
    let result = cache.token().await;
    assert_result_leaks_nothing(&result);
    result.unwrap_or_else(|err| panic!("token(): {err}"))
}

/// Polls `done` every 20 ms until it holds, failing with `what` after `limit`.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// The stores: a redis-server or a directory, and raw access to what they hold.

/// Which kind of store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Redis,
    File,
    /// A 3-primary, 3-replica Redis Cluster.
    Cluster,
    /// A primary and its replica behind three sentinels.
    Sentinel,
}

impl Kind {
    /// Its name in client ids.
    fn name(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::File => "file",
            Kind::Cluster => "cluster",
            Kind::Sentinel => "sentinel",
        }
    }
}

/// A directory of this test, created 0700, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// A new directory under the system's temporary directory, named after
    /// `tag`, this process and a random number.
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "paytokens-store-test-{}-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            fastrand::u64(..)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self(path)
    }

    /// Where it is.
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One store's backing: a running redis-server, or a directory.
enum Backing {
    Redis(RedisServer),
    File(TempDir),
    Cluster(RedisCluster),
    Sentinel(RedisSentinels),
}

/// The suffix of the file store's token files.
const TOKEN_FILE: &str = ".token";
/// The file store's expiry header before the sealed value.
const FILE_HEADER: usize = 8;

impl Backing {
    /// A new redis-server, or a new directory.
    fn start(kind: Kind, tag: &str) -> Self {
        match kind {
            Kind::Redis => Backing::Redis(RedisServer::start()),
            Kind::File => Backing::File(TempDir::new(tag)),
            Kind::Cluster => Backing::Cluster(RedisCluster::start()),
            Kind::Sentinel => Backing::Sentinel(RedisSentinels::start(None)),
        }
    }

    /// A new handle on the store (its own connections): another process.
    fn store(&self) -> TokenStore {
        match self {
            Backing::Redis(server) => TokenStore::redis(&server.url()).unwrap(),
            Backing::File(dir) => TokenStore::file(dir.path()).unwrap(),
            Backing::Cluster(cluster) => TokenStore::redis(&cluster.url()).unwrap(),
            Backing::Sentinel(set) => TokenStore::redis(&set.url()).unwrap(),
        }
    }

    /// How many bytes precede the sealed value in a token entry.
    fn header(&self) -> usize {
        match self {
            Backing::File(_) => FILE_HEADER,
            Backing::Redis(_) | Backing::Cluster(_) | Backing::Sentinel(_) => 0,
        }
    }

    /// A connection of the test's own to `server`, for raw access.
    async fn redis(server: &RedisServer) -> redis::aio::MultiplexedConnection {
        redis::Client::open(server.url().as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to the test's redis-server: {e}"))
    }

    /// Waits until `n` store handles listen for notifications: pattern
    /// subscriptions on the server (or the primary), sharded ones on a
    /// cluster's nodes. The directory store's need no wait.
    async fn wait_listening(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let count = |server: &RedisServer, field: &str| {
                server
                    .cli(&["CLIENT", "LIST"])
                    .iter()
                    .filter(|line| line.contains(&format!(" {field}=1 ")))
                    .count()
            };
            let listening = match self {
                Backing::File(_) => return,
                Backing::Redis(server) => count(server, "psub"),
                Backing::Sentinel(set) => count(&set.primary, "psub"),
                Backing::Cluster(cluster) => {
                    cluster.nodes.iter().map(|node| count(node, "ssub")).sum()
                }
            };
            if listening >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{listening} store handles listen, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The one server the tests that rewrite entries read and write.
    fn server(&self) -> &RedisServer {
        match self {
            Backing::Redis(server) => server,
            Backing::Sentinel(set) => &set.primary,
            Backing::File(_) | Backing::Cluster(_) => {
                unreachable!("the tests that rewrite entries run on one Redis server")
            }
        }
    }

    /// The names of every entry holding a sealed token, sorted.
    async fn token_entries(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = match self {
            Backing::Redis(_) | Backing::Cluster(_) | Backing::Sentinel(_) => self
                .dump()
                .await
                .into_iter()
                .filter(|(_, kind, value)| kind == "string" && value.starts_with(b"pt1"))
                .map(|(name, _, _)| name)
                .collect(),
            Backing::File(dir) => files(dir.path())
                .into_iter()
                .filter(|name| name.ends_with(TOKEN_FILE.as_bytes()))
                .collect(),
        };
        names.sort();
        names.dedup();
        names
    }

    /// The value of entry `name`, as stored.
    async fn read(&self, name: &[u8]) -> Vec<u8> {
        match self {
            Backing::Redis(_) | Backing::Sentinel(_) | Backing::Cluster(_) => {
                let mut con = Self::redis(self.server()).await;
                redis::cmd("GET")
                    .arg(name)
                    .query_async(&mut con)
                    .await
                    .unwrap()
            }
            Backing::File(dir) => {
                std::fs::read(dir.path().join(std::ffi::OsStr::from_bytes(name))).unwrap()
            }
        }
    }

    /// Overwrites entry `name` with `value`, keeping its time to live (the
    /// Redis TTL; the file store's expiry header is part of the value).
    async fn write(&self, name: &[u8], value: &[u8]) {
        match self {
            Backing::Redis(_) | Backing::Sentinel(_) | Backing::Cluster(_) => {
                let mut con = Self::redis(self.server()).await;
                let () = redis::cmd("SET")
                    .arg(name)
                    .arg(value)
                    .arg("KEEPTTL")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let ttl: i64 = redis::cmd("PTTL")
                    .arg(name)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                assert!(ttl > 0, "the overwritten entry kept no TTL ({ttl})");
            }
            Backing::File(dir) => {
                let path = dir.path().join(std::ffi::OsStr::from_bytes(name));
                // In place: the file keeps its owner and mode 0600.
                std::fs::write(&path, value).unwrap();
                let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
                assert_eq!(mode, 0o600, "the overwritten file's mode");
            }
        }
    }

    /// Everything the store holds: each key or file name, its type, and
    /// every byte of its value(s). On a cluster or behind Sentinel, what
    /// every node holds, replicas included (a name on several nodes is
    /// listed once per node).
    async fn dump(&self) -> Vec<(Vec<u8>, String, Vec<u8>)> {
        match self {
            Backing::Redis(server) => Self::dump_node(server).await,
            Backing::Sentinel(set) => {
                let mut all = Self::dump_node(&set.primary).await;
                all.extend(Self::dump_node(&set.replica).await);
                all
            }
            Backing::Cluster(cluster) => {
                let mut all = Vec::new();
                for node in &cluster.nodes {
                    all.extend(Self::dump_node(node).await);
                }
                all
            }
            Backing::File(dir) => files(dir.path())
                .into_iter()
                .map(|name| {
                    let path = dir.path().join(std::ffi::OsStr::from_bytes(&name));
                    let meta = std::fs::symlink_metadata(&path).unwrap();
                    assert!(meta.is_file(), "not a plain file: {}", path.display());
                    assert_eq!(
                        meta.mode() & 0o077,
                        0,
                        "{} is open to others ({:o})",
                        path.display(),
                        meta.mode() & 0o777
                    );
                    let value = std::fs::read(&path).unwrap_or_default();
                    (name, "file".to_owned(), value)
                })
                .collect(),
        }
    }
}

impl Backing {
    /// Everything one Redis node holds (a cluster's replica read too:
    /// `READONLY`).
    async fn dump_node(server: &RedisServer) -> Vec<(Vec<u8>, String, Vec<u8>)> {
        let mut con = Self::redis(server).await;
        let _: redis::RedisResult<()> = redis::cmd("READONLY").query_async(&mut con).await;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut all = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut con)
                .await
                .unwrap();
            // The command that reads the whole value of this type.
            let (name, rest): (&str, &[&str]) = match kind.as_str() {
                "none" => continue, // expired since the SCAN
                "string" => ("GET", &[]),
                "hash" => ("HGETALL", &[]),
                "zset" => ("ZRANGE", &["0", "-1", "WITHSCORES"]),
                "list" => ("LRANGE", &["0", "-1"]),
                "set" => ("SMEMBERS", &[]),
                "stream" => ("XRANGE", &["-", "+"]),
                other => panic!("the store wrote a key of type {other}"),
            };
            let mut read = redis::cmd(name);
            read.arg(&key).arg(rest);
            let reply: redis::Value = read.query_async(&mut con).await.unwrap();
            let mut bytes = Vec::new();
            flatten(&reply, &mut bytes);
            all.push((key, kind, bytes));
        }
        all
    }
}

/// A directory moved away (renamed beside itself), moved back when
/// dropped, also when a test fails meanwhile.
struct MovedAway {
    /// Where it was and will be again.
    home: PathBuf,
    /// Where it is meanwhile.
    away: PathBuf,
}

impl MovedAway {
    /// Moves `dir` away.
    fn new(dir: &Path) -> Self {
        let away = dir.with_extension("away");
        std::fs::rename(dir, &away).unwrap();
        Self {
            home: dir.to_owned(),
            away,
        }
    }
}

impl Drop for MovedAway {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.away, &self.home);
    }
}

/// The names of the files in `dir`.
fn files(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().as_bytes().to_vec())
        .collect()
}

/// Every byte a Redis reply holds, concatenated (separated by a NUL).
fn flatten(value: &redis::Value, out: &mut Vec<u8>) {
    use redis::Value as V;
    match value {
        V::BulkString(bytes) => out.extend_from_slice(bytes),
        V::SimpleString(text) => out.extend_from_slice(text.as_bytes()),
        V::Array(items) | V::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        V::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
    out.push(0);
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Tests, each for both kinds of store.

/// Each named `async fn(Kind)` as two tests, `redis_store::<name>` and
/// `file_store::<name>`, under the TRACE capture and its leak check.
macro_rules! for_both {
    ($($name:ident),* $(,)?) => {
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    super::$name(super::Kind::Redis).await;
                    super::assert_nothing_leaked();
                }
            )*
        }

        mod file_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    super::$name(super::Kind::File).await;
                    super::assert_nothing_leaked();
                }
            )*
        }
    };
}

/// Each named `async fn(Kind)` as two more tests, `redis_cluster::<name>`
/// and `redis_sentinel::<name>`: the same guarantees on the Redis
/// deployments teams run.
macro_rules! on_cluster_and_sentinel {
    ($($name:ident),* $(,)?) => {
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    super::$name(super::Kind::Cluster).await;
                    super::assert_nothing_leaked();
                }
            )*
        }

        mod redis_sentinel {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    super::$name(super::Kind::Sentinel).await;
                    super::assert_nothing_leaked();
                }
            )*
        }
    };
}

// (Not the hit path, which never reaches the store whatever it is (the
// cache bench measures it with a cluster store), nor the budget, one
// script on one slot (the cluster unit test runs it).)
on_cluster_and_sentinel!(
    nothing_readable_at_rest,
    an_invalidation_reaches_the_other_caches,
);

for_both!(
    nothing_readable_at_rest,
    a_tampered_entry_is_a_miss,
    swapped_entries_are_misses,
    a_plaintext_entry_is_a_miss,
    another_secret_misses,
    hits_never_touch_the_store,
    an_invalidation_reaches_the_other_caches,
    the_mint_budget_is_counted_in_the_store,
    a_rejected_mint_is_shared_until_its_cooldown_ends,
);

/// The provider refuses a mint: the caches of other processes (each a
/// cache of its own on the store) get the same rejection without asking the
/// provider, until the cooldown (here 2 s) ends; then one asks again.
async fn a_rejected_mint_is_shared_until_its_cooldown_ends(kind: Kind) {
    let backing = Backing::start(kind, "shared-failure");
    let endpoint = Endpoint::start(3600).await;
    endpoint.reject.store(true, Ordering::SeqCst);
    let id = client_id("shared-failure", kind);
    let cooldown = Duration::from_secs(2);
    let policy = CachePolicy {
        rejected_cooldown: cooldown,
        ..exact()
    };
    let cache = || {
        endpoint.cache(
            &id,
            CANARY_SECRET,
            SCOPES_A,
            policy.clone(),
            backing.store(),
        )
    };

    let first = cache().token().await;
    assert_result_leaks_nothing(&first);
    let Err(rejected @ TokenError::Rejected { status: 401, .. }) = first else {
        panic!("{kind:?}: not the provider's rejection: {first:?}");
    };
    let (_, code, message) = refusal(Provider::of::<PyngBilling>());
    let shown = rejected.to_string();
    assert!(shown.contains(&code) && shown.contains(&message), "{shown}");
    assert_eq!(endpoint.requests().await, 1);
    let started = tokio::time::Instant::now();
    // Three more processes, one after the other, and ten callers at once
    // in a fourth: the same rejection, and nothing sent.
    for _ in 0..3 {
        assert_eq!(cache().token().await.err().as_ref(), Some(&rejected));
    }
    let fourth = cache();
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let cache = fourth.clone();
            tokio::spawn(async move { cache.token().await.map(|_| ()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().err().as_ref(), Some(&rejected));
    }
    assert_eq!(endpoint.requests().await, 1, "{kind:?}: asked again");
    // The cooldown over (the credentials fixed meanwhile): one request, a token.
    endpoint.reject.store(false, Ordering::SeqCst);
    tokio::time::sleep(cooldown.saturating_sub(started.elapsed()) + Duration::from_millis(100))
        .await;
    token(&cache()).await;
    token(&cache()).await;
    assert_eq!(endpoint.requests().await, 2, "{kind:?}");
    assert_eq!(endpoint.mints(), 1);
}

/// After mints for three scope sets, a failed mint and an invalidation,
/// no key, file name or value holds a token, the client id, a scope, the
/// secret, the provider id or the endpoint's address.
async fn nothing_readable_at_rest(kind: Kind) {
    let backing = Backing::start(kind, "at-rest");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("at-rest", kind);
    let cache = |scopes| endpoint.cache(&id, CANARY_SECRET, scopes, exact(), backing.store());

    let a = cache(SCOPES_A);
    let b = cache(SCOPES_B);
    let first = token(&a).await;
    token(&b).await;
    // A failed mint (its class is recorded in the store, and the failure
    // itself for a cooldown of at most 50 ms, waited out below).
    endpoint.fail.store(1, Ordering::SeqCst);
    let quick_retry = CachePolicy {
        retry_initial: Duration::from_millis(50),
        ..exact()
    };
    let failed = endpoint
        .cache(&id, CANARY_SECRET, SCOPES_C, quick_retry, backing.store())
        .token()
        .await;
    assert_result_leaks_nothing(&failed);
    assert!(failed.is_err(), "the endpoint answered 503");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // An invalidation, and the mint after it.
    a.invalidate(&first);
    token(&a).await;
    token(&cache(SCOPES_C)).await;
    assert_eq!(endpoint.mints(), 4);

    let dump = backing.dump().await;
    let tokens = backing.token_entries().await.len();
    assert!(tokens >= 3, "{kind:?}: {tokens} sealed token entries");
    // The budget and the last failure are stored too, and searched.
    assert!(
        dump.len() > tokens,
        "{kind:?}: nothing but tokens in {} entries",
        dump.len()
    );
    let mut needles: Vec<String> = endpoint.tokens();
    needles.extend([
        CANARY_TOKEN.to_owned(),
        "CANARY".to_owned(),
        id.clone(),
        CANARY_SECRET.to_owned(),
        basic(&id, CANARY_SECRET),
        Provider::of::<PyngBilling>().id().to_owned(),
        endpoint.authority(),
        "billing".to_owned(),
    ]);
    for scope in SCOPES_A.iter().chain(SCOPES_B).chain(SCOPES_C) {
        needles.push((*scope).to_owned());
    }
    for (name, what, value) in &dump {
        for needle in &needles {
            let shown = String::from_utf8_lossy(name);
            assert!(
                !contains(name, needle.as_bytes()),
                "{kind:?}: the name of {what} entry {shown} holds a secret or identifier"
            );
            assert!(
                !contains(value, needle.as_bytes()),
                "{kind:?}: {what} entry {shown} holds a secret or identifier in clear"
            );
        }
    }
}

/// One byte of the stored token flipped: a fresh cache refuses it, mints,
/// and stores a good token that the next fresh cache takes.
async fn a_tampered_entry_is_a_miss(kind: Kind) {
    let backing = Backing::start(kind, "tampered");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("tampered", kind);
    let cache = || endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());

    let first = value(&token(&cache()).await);
    let entries = backing.token_entries().await;
    assert_eq!(entries.len(), 1, "{kind:?}: one token entry");
    let mut stored = backing.read(&entries[0]).await;
    let at = backing.header() + (stored.len() - backing.header()) / 2;
    stored[at] ^= 0x01;
    backing.write(&entries[0], &stored).await;

    refused_then_replaced(&backing, &endpoint, &cache, &[first], 1).await;
}

/// After an entry was spoiled (`mints` so far): a fresh cache mints instead
/// of serving it (never one of `spoiled`), and the next fresh cache takes
/// what it stored without minting.
async fn refused_then_replaced(
    backing: &Backing,
    endpoint: &Endpoint,
    cache: &dyn Fn() -> Cache,
    spoiled: &[String],
    mints: usize,
) {
    let fresh = value(&token(&cache()).await);
    assert!(!spoiled.contains(&fresh), "served a spoiled entry's token");
    assert_eq!(endpoint.mints(), mints + 1, "the fresh cache minted");
    let next = value(&token(&cache()).await);
    assert_eq!(next, fresh, "the store holds the new token");
    assert_eq!(endpoint.mints(), mints + 1, "and the next cache took it");
    assert_eq!(backing.token_entries().await.len(), 1);
}

/// The values of two entries (two scope sets of one credential) swapped:
/// each is a miss for the other's key.
async fn swapped_entries_are_misses(kind: Kind) {
    let backing = Backing::start(kind, "swapped");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("swapped", kind);
    let cache = |scopes| endpoint.cache(&id, CANARY_SECRET, scopes, exact(), backing.store());

    let token_a = value(&token(&cache(SCOPES_A)).await);
    let entries = backing.token_entries().await;
    assert_eq!(entries.len(), 1);
    let entry_a = entries[0].clone();
    let token_b = value(&token(&cache(SCOPES_B)).await);
    let entries = backing.token_entries().await;
    assert_eq!(entries.len(), 2);
    let entry_b = entries.into_iter().find(|e| *e != entry_a).unwrap();
    assert_eq!(endpoint.mints(), 2);

    let (value_a, value_b) = (backing.read(&entry_a).await, backing.read(&entry_b).await);
    backing.write(&entry_a, &value_b).await;
    backing.write(&entry_b, &value_a).await;

    let spoiled = [token_a, token_b];
    let fresh_a = value(&token(&cache(SCOPES_A)).await);
    let fresh_b = value(&token(&cache(SCOPES_B)).await);
    for fresh in [&fresh_a, &fresh_b] {
        assert!(!spoiled.contains(fresh), "{kind:?}: served a swapped entry");
    }
    assert_eq!(endpoint.mints(), 4, "{kind:?}: each scope set minted anew");
    assert_eq!(value(&token(&cache(SCOPES_A)).await), fresh_a);
    assert_eq!(value(&token(&cache(SCOPES_B)).await), fresh_b);
    assert_eq!(endpoint.mints(), 4, "{kind:?}: the store holds both again");
}

/// The entry overwritten with a plaintext record (bare, then behind the
/// sealed values' magic prefix): a miss each time.
async fn a_plaintext_entry_is_a_miss(kind: Kind) {
    let backing = Backing::start(kind, "plaintext");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("plaintext", kind);
    let cache = || endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());

    let first = value(&token(&cache()).await);
    let planted = format!("{CANARY_TOKEN}-planted");
    let record = serde_json::to_vec(&json!({
        "t": planted, "s": SCOPES_A, "l": 3_600_000u64, "m": "planted-mint"
    }))
    .unwrap();
    for (round, plain) in [record.clone(), [b"pt1".as_slice(), &record].concat()]
        .into_iter()
        .enumerate()
    {
        let entries = backing.token_entries().await;
        assert_eq!(entries.len(), 1, "{kind:?}: one token entry");
        let stored = backing.read(&entries[0]).await;
        let overwritten = [&stored[..backing.header()], &plain].concat();
        backing.write(&entries[0], &overwritten).await;
        let spoiled = [first.clone(), planted.clone()];
        refused_then_replaced(&backing, &endpoint, &cache, &spoiled, round + 1).await;
    }
}

/// A cache of the same client id with another (rotated) secret finds
/// nothing it can use: it mints; each secret's cache then takes its own.
async fn another_secret_misses(kind: Kind) {
    let backing = Backing::start(kind, "secret");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("secret", kind);
    let cache = |secret| endpoint.cache(&id, secret, SCOPES_A, exact(), backing.store());

    let first = value(&token(&cache(CANARY_SECRET)).await);
    let rotated = value(&token(&cache(OTHER_SECRET)).await);
    assert_ne!(
        rotated, first,
        "{kind:?}: another secret's cache served the token"
    );
    assert_eq!(endpoint.mints(), 2);
    assert_eq!(value(&token(&cache(CANARY_SECRET)).await), first);
    assert_eq!(value(&token(&cache(OTHER_SECRET)).await), rotated);
    assert_eq!(
        endpoint.mints(),
        2,
        "{kind:?}: each secret's token is stored"
    );
}

/// A warm cache answers from memory while the store cannot answer at all
/// (Redis: SIGSTOP; files: the directory moved away): every hit completes
/// on its first poll, with the same token; nothing is minted.
async fn hits_never_touch_the_store(kind: Kind) {
    let mut backing = Backing::start(kind, "hits");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("hits", kind);
    let cache = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());
    let warm = token(&cache).await;

    let moved = match &mut backing {
        Backing::Redis(server) => {
            server.pause();
            None
        }
        Backing::File(dir) => Some(MovedAway::new(dir.path())),
        // Every node at once: none can fail over meanwhile.
        Backing::Cluster(cluster) => {
            cluster.nodes.iter_mut().for_each(RedisServer::pause);
            None
        }
        Backing::Sentinel(set) => {
            set.sentinels.iter_mut().for_each(RedisServer::pause);
            set.primary.pause();
            set.replica.pause();
            None
        }
    };
    for call in 0..1000 {
        // A hit awaits nothing: a store call would leave it pending.
        let hit = cache.token().now_or_never();
        let Some(result) = hit else {
            panic!("{kind:?}: call {call} waited (touched the store?)");
        };
        let token = result.unwrap_or_else(|e| panic!("{kind:?}: call {call}: {e}"));
        assert!(
            token.is_same(&warm),
            "{kind:?}: call {call} got another token"
        );
    }
    match (&mut backing, moved) {
        (Backing::Redis(server), _) => server.resume(),
        (Backing::Cluster(cluster), _) => cluster.nodes.iter_mut().for_each(RedisServer::resume),
        (Backing::Sentinel(set), _) => {
            set.primary.resume();
            set.replica.resume();
            set.sentinels.iter_mut().for_each(RedisServer::resume);
        }
        (Backing::File(dir), moved) => {
            assert!(!dir.path().exists(), "a hit re-created the store directory");
            drop(moved);
            assert!(dir.path().is_dir(), "the store directory is back");
        }
    }
    assert!(token(&cache).await.is_same(&warm));
    // Another process still takes the stored token.
    let other = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());
    assert_eq!(value(&token(&other).await), value(&warm));
    assert_eq!(endpoint.mints(), 1);
}

/// Two caches share one token; one invalidates it (after a 401): the
/// other drops its copy soon, and both then get one new token: 2 mints.
async fn an_invalidation_reaches_the_other_caches(kind: Kind) {
    let mut backing = Backing::start(kind, "invalidation");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("invalidation", kind);
    let a = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());
    let b = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), backing.store());

    let from_a = token(&a).await;
    let from_b = token(&b).await;
    assert_eq!(value(&from_a), value(&from_b));
    assert_eq!(endpoint.mints(), 1);
    drop(from_b);
    // Both listen (a listener starts with its cache's first fetch; one
    // that is not subscribed yet misses what is announced meanwhile).
    backing.wait_listening(2).await;

    a.invalidate(&from_a);
    assert!(a.cached().is_none());
    eventually(
        &format!("{kind:?}: B drops the token A invalidated"),
        Duration::from_secs(3),
        || b.cached().is_none(),
    )
    .await;
    let (new_a, new_b) = tokio::join!(token(&a), token(&b));
    assert_eq!(value(&new_a), value(&new_b), "{kind:?}: one new token");
    assert_ne!(value(&new_a), value(&from_a));
    assert_eq!(
        endpoint.mints(),
        2,
        "{kind:?}: exactly one mint after the invalidation"
    );
}

/// A budget of 2 mints per minute, two caches, invalidations: 2 mints in
/// all, then `MintBudgetExhausted` for both, retrying after about the window.
async fn the_mint_budget_is_counted_in_the_store(kind: Kind) {
    let backing = Backing::start(kind, "budget");
    let endpoint = Endpoint::start(3600).await;
    let id = client_id("budget", kind);
    let window = Duration::from_secs(60);
    let policy = CachePolicy {
        max_mints: 2,
        mint_window: window,
        ..exact()
    };
    let a = endpoint.cache(
        &id,
        CANARY_SECRET,
        SCOPES_A,
        policy.clone(),
        backing.store(),
    );
    let b = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, policy, backing.store());

    for round in 1..=2 {
        let (from_a, from_b) = (token(&a).await, token(&b).await);
        assert_eq!(value(&from_a), value(&from_b), "{kind:?}: round {round}");
        assert_eq!(endpoint.mints(), round, "{kind:?}: round {round}");
        a.invalidate(&from_a);
        b.invalidate(&from_b);
    }
    for (name, cache) in [("A", &a), ("B", &b)] {
        let result = cache.token().await;
        assert_result_leaks_nothing(&result);
        match result {
            Err(TokenError::MintBudgetExhausted {
                max_mints,
                window: got,
                retry_after,
                ..
            }) => {
                assert_eq!((max_mints, got), (2, window), "{kind:?}: {name}");
                assert!(
                    retry_after <= window && retry_after > window - Duration::from_secs(15),
                    "{kind:?}: {name} retries after {retry_after:?}, not about {window:?}"
                );
            }
            Err(other) => panic!("{kind:?}: {name}: {other}, not MintBudgetExhausted"),
            Ok(_) => panic!("{kind:?}: {name} got a token past the budget"),
        }
    }
    assert_eq!(
        endpoint.mints(),
        2,
        "{kind:?}: the fleet minted twice in all"
    );
}

/// A Redis store that is down from the start: a cache gets tokens by
/// minting alone, through several refreshes and expiries, and warns once
/// (not per request); a second cache warns once too. Once a redis-server
/// listens on that port, the two converge on one token, minting no more
/// than one token each on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_from_the_start_mints_alone_warns_once_and_converges() {
    capture();
    // A port nobody listens on, and a server that will come up on it.
    let mut server = RedisServer::start();
    server.kill();
    let (port, url) = (server.port(), server.url());
    let endpoint = Endpoint::start(1).await;
    let id = client_id("down", Kind::Redis);
    let policy = CachePolicy {
        min_margin: Duration::from_millis(100),
        max_margin: Duration::from_secs(1),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..exact()
    };
    let store = || {
        let mut options = StoreOptions::default();
        options.recheck = Duration::from_millis(100);
        TokenStore::redis(&url).unwrap().with_options(options)
    };
    let a = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, policy.clone(), store());

    // Many calls across several 1 s lifetimes: refreshes that find the
    // store down, and mints alone at each expiry.
    let mut calls = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while endpoint.mints() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "4 mints alone within 20 s; {} so far",
            endpoint.mints()
        );
        token(&a).await;
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(calls > 100, "{calls} calls");
    assert_eq!(
        crate::trace::store_failed_warnings(&format!("127.0.0.1:{port}")),
        1,
        "one warning in {calls} calls"
    );

    // Long-lived tokens from now on; A mints alone once more at expiry.
    endpoint.lifetime.store(3600, Ordering::SeqCst);
    let before = endpoint.mints();
    while endpoint.mints() == before {
        assert!(tokio::time::Instant::now() < deadline, "A mints at expiry");
        token(&a).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, policy, store());
    let alone_a = value(&token(&a).await);
    let alone_b = value(&token(&b).await);
    assert_ne!(alone_a, alone_b, "each minted alone");
    assert_eq!(
        crate::trace::store_failed_warnings(&format!("127.0.0.1:{port}")),
        2,
        "one warning per cache"
    );

    // The store comes up: one token for both, no more mints than caches.
    let before = endpoint.mints();
    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (from_a, from_b) = (value(&token(&a).await), value(&token(&b).await));
        if from_a == from_b {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the caches did not converge on one token within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = endpoint.mints() - before;
    eprintln!("converged after the store came back with {after} mint(s)");
    assert!(after <= 2, "{after} mints while converging, for 2 caches");
    // And they stay converged, from the store.
    let third = endpoint.cache(&id, CANARY_SECRET, SCOPES_A, exact(), store());
    assert_eq!(value(&token(&third).await), value(&token(&a).await));
    assert_eq!(endpoint.mints() - before, after);
    assert_eq!(
        crate::trace::store_failed_warnings(&format!("127.0.0.1:{port}")),
        2,
        "no warning once it is back"
    );
    // What `paytokens cache status` shows: the outage, recorded by the
    // processes that saw the store come back.
    let status = store().status().await.unwrap();
    let [credential] = status.as_slice() else {
        panic!("{} credentials", status.len());
    };
    let (what, ago) = credential
        .last_store_failure
        .clone()
        .expect("the outage is recorded");
    // The last outage: the long one, or a reconnect to the restarted
    // server that failed once.
    assert!(
        ["unavailable", "no answer"].contains(&what.as_str()),
        "{what}"
    );
    assert!(ago < Duration::from_secs(60), "it began {ago:?} ago");
    assert_nothing_leaked();
}

/// A directory that others may read and enter (0755) is refused, and the
/// error names it; at 0700 the same directory is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_refuses_a_directory_others_can_read() {
    capture();
    let temp = TempDir::new("mode");
    let dir = temp.path().join("tokens");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = TokenStore::file(&dir).unwrap_err();
    let shown = dir.display().to_string();
    match &err {
        StoreError::Config(message) => {
            assert!(message.contains(&shown), "does not name {shown}: {message}");
        }
        other => panic!("not a configuration error: {other}"),
    }
    assert!(err.to_string().contains(&shown), "{err}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    TokenStore::file(&dir).expect("a 0700 directory");
    assert_nothing_leaked();
}
