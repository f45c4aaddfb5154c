//! The Redis store: tokens shared by processes on many machines, on one
//! server, the primary of a Sentinel service, or a Redis Cluster.
//!
//! Names (ids are the keyed hashes of [`Keys`], base64url, no `:`; the
//! braces are a hash tag: every name of a credential is in one cluster
//! slot, so that every script touches one slot):
//!
//! - `paytokens:{<credential>}:<entry>:token`: the sealed token, a string
//!   whose time to live (`PX`) is the token's expiry on the server's clock;
//! - `paytokens:{<credential>}:<entry>:lock`: the mint lock, a string
//!   holding its holder's random id, with the lease as its time to live;
//! - `paytokens:{<credential>}:<entry>:failure`: the sealed outcome of the
//!   entry's last failed mint, whose time to live is its cooldown: while it
//!   lasts, no process asks the provider for this entry;
//! - `paytokens:{<credential>}:budget`: a sorted set of mint times (ms on
//!   the server's clock), the sliding window of the mint budget;
//! - `paytokens:{<credential>}:meta`: a hash with the budget (`max`,
//!   `window_ms`) and the last failure (`error`, `error_at_ms`), for status.
//!
//! Everything that must be atomic is a Lua script (`redis::Script`, sent as
//! `EVALSHA`, loaded again after a server restart). Every write that others
//! wait for is announced on the entry's channel
//! `paytokens:{<credential>}:<entry>` with `stored`, `released` or
//! `deleted:<mint>`. On one server and through Sentinel, one background
//! listener per store, on its own pub/sub connection, hears them all
//! (`PSUBSCRIBE paytokens:*`) and hands them to the entry's watchers; on a
//! cluster the scripts announce with `SPUBLISH` and the store subscribes
//! to each watched entry's channel (`SSUBSCRIBE`, RESP3 pushes). Waiters
//! poll as well, so a lost notification costs only time.
//!
//! Commands go through a [`ConnectionManager`] (a cluster connection on a
//! cluster), created on the first call (a failure is never kept: the next
//! call tries again), which reconnects after a dropped connection; through
//! Sentinel every error drops it, and the next connection asks the
//! sentinels for the primary again. Every connection attempt and every
//! answer is bounded, so a dead or paused server turns into errors, never
//! into a wedged store.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ConnectionAddr, ErrorKind, FromRedisValue, RedisError, RedisResult, Script,
    ScriptInvocation,
};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::seal::random_id;
use super::{Backend, CredentialStatus, EntryStatus, Event, Keys, Lock, StoreError, Stored, Take};

/// The first part of every name paytokens writes.
const PREFIX: &str = "paytokens:";
/// What `SCAN` and the listener's `PSUBSCRIBE` match.
const PATTERN: &str = "paytokens:*";
/// The bound on one connection attempt (TCP, TLS, `AUTH`, `HELLO`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The bound on one answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the connection manager tries again to connect, after the first
/// attempt, before it reports the failure.
const CONNECT_RETRIES: usize = 1;
/// The first pause before the listener subscribes again.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause before the listener subscribes again.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// After this long without a message, the listener pings its connection
/// and subscribes afresh if no answer comes.
const LISTEN_PING_AFTER: Duration = Duration::from_secs(5);
/// How often a cluster command is retried (after `MOVED`, `ASK`,
/// `TRYAGAIN`, a lost node) within the store's bound on one call.
const CLUSTER_RETRIES: u32 = 3;
/// Events buffered per watched entry.
const CHANNEL_CAPACITY: usize = 16;
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 500;
/// The longest time to live, lease or window sent to Redis: ten years
/// (Redis refuses expiries past its clock's range).
const MAX_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// `GET` and `PTTL` of the token at once: `nil`, or `{value, pttl}`; `nil`
/// too for a value longer than ARGV[1] bytes, which is never read.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
local value = redis.call('GET', KEYS[1])
if not value then return false end
return {value, redis.call('PTTL', KEYS[1])}
",
    )
});

/// `SET PX [NX]`, then announces `stored` if it wrote. ARGV: value, ttl
/// ms, `1` for NX, channel, the publish command (`PUBLISH`, or `SPUBLISH`
/// on a cluster).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local written
if ARGV[3] == '1' then
  written = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
else
  written = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if written then
  redis.call(ARGV[5], ARGV[4], 'stored')
  return 1
end
return 0
",
    )
});

/// Compare-and-delete of the token, then announces `deleted:<mint>`. ARGV:
/// value, channel, mint, the publish command.
static DELETE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call(ARGV[4], ARGV[2], 'deleted:' .. ARGV[3])
  return 1
end
return 0
",
    )
});

/// `SET NX PX` of the lock: `{1, 0}` when taken, else `{0, pttl}`. A lock
/// without a time to live (not written by paytokens) gets the lease, so it
/// cannot block minting forever. ARGV: holder, lease ms.
static TRY_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, 0}
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {0, left}
",
    )
});

/// Compare-and-`PEXPIRE` of the lock. ARGV: holder, lease ms.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Compare-and-delete of the lock, then announces `released`. ARGV:
/// holder, channel, the publish command.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call(ARGV[3], ARGV[2], 'released')
  return 1
end
return 0
",
    )
});

/// The server's clock in ms, and integers written as such (Lua 5.1 would
/// write large numbers with an exponent).
const LUA_NOW: &str = r"
local function int(n) return string.format('%.0f', n) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
";

/// The sliding-window budget on the server's clock. KEYS: budget, meta.
/// ARGV: max, window ms, a unique member. `{1, left}` when granted, else
/// `{0, ms until the oldest mint leaves the window}`.
static TAKE_BUDGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_NOW}
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now - window))
local used = redis.call('ZCARD', KEYS[1])
redis.call('HSET', KEYS[2], 'max', ARGV[1], 'window_ms', ARGV[2])
if used < max then
  redis.call('ZADD', KEYS[1], int(now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], 'error', 'error_at_ms')
  return {{1, max - used - 1}}
end
local wait = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
if wait < 1 then wait = 1 end
return {{0, wait}}
"
    ))
});

/// Records a failed mint on the server's clock. KEYS: meta. ARGV: class.
static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_NOW}
redis.call('HSET', KEYS[1], 'error', ARGV[1], 'error_at_ms', int(now))
return 1
"
    ))
});

/// Records when a process could not use the store, on the server's clock.
/// KEYS: meta. ARGV: what, how long ago (ms).
static RECORD_STORE_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_NOW}
redis.call('HSET', KEYS[1], 'store_error', ARGV[1], 'store_error_at_ms', int(now - tonumber(ARGV[2])))
return 1
"
    ))
});

/// One credential's budget, last error and last store failure, on the
/// server's clock. KEYS: budget, meta. `{used, max, window_ms, error,
/// error_age_ms, store_error, store_error_age_ms}`, missing ones `nil`.
static CREDENTIAL_STATUS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{LUA_NOW}
local meta = redis.call('HMGET', KEYS[2], 'max', 'window_ms', 'error', 'error_at_ms',
  'store_error', 'store_error_at_ms')
local used
if meta[2] then
  used = redis.call('ZCOUNT', KEYS[1], '(' .. int(now - tonumber(meta[2])), '+inf')
else
  used = redis.call('ZCARD', KEYS[1])
end
local age = false
if meta[4] then age = math.max(0, now - tonumber(meta[4])) end
local store_age = false
if meta[6] then store_age = math.max(0, now - tonumber(meta[6])) end
return {{used, meta[1], meta[2], meta[3], age, meta[5], store_age}}
"
    ))
});

/// The part every name of a credential shares: `paytokens:{<credential>}`.
/// The braces are a hash tag: on a cluster every name of a credential (its
/// entries' tokens, locks and failures, its budget and meta) is in one
/// slot, so that each script touches one slot.
fn tagged(credential: &str) -> String {
    format!("{PREFIX}{{{credential}}}")
}

/// The token's name.
fn token_key(keys: &Keys) -> String {
    format!("{}:{}:token", tagged(&keys.credential), keys.entry)
}

/// The name of the entry's last failed mint, while its cooldown lasts.
fn failure_key(keys: &Keys) -> String {
    format!("{}:{}:failure", tagged(&keys.credential), keys.entry)
}

/// The mint lock's name.
fn lock_key(keys: &Keys) -> String {
    format!("{}:{}:lock", tagged(&keys.credential), keys.entry)
}

/// The budget's name (per credential).
fn budget_key(credential: &str) -> String {
    format!("{}:budget", tagged(credential))
}

/// The status record's name (per credential).
fn meta_key(credential: &str) -> String {
    format!("{}:meta", tagged(credential))
}

/// The entry's pub/sub channel (in the credential's slot, for `SPUBLISH`).
fn channel(keys: &Keys) -> String {
    format!("{}:{}", tagged(&keys.credential), keys.entry)
}

/// `duration` in whole ms, at least 1 (Redis refuses a zero expiry) and at
/// most [`MAX_MS`].
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MS)
}

/// A duration from ms that Redis reported (negative ones are zero).
fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Locks `mutex`, also after a panic elsewhere poisoned it (the data it
/// guards stays consistent: every critical section is a single update).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a Redis error says, without anything the server sent back as data:
/// parse and type errors may quote a reply, so they give their class only.
fn describe_error(err: &RedisError) -> String {
    let category = match err.category() {
        "" => "server error",
        category => category,
    };
    match err.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => format!("redis {category}"),
        _ => format!("redis {category}: {err}"),
    }
}

/// What a name in the store is, by its parts after `paytokens:`.
enum Name<'a> {
    /// A token: credential, entry.
    Token(&'a str, &'a str),
    /// Anything else paytokens writes under a credential (lock, budget,
    /// meta): the credential.
    Other(&'a str),
}

/// Parses a name found by `SCAN`; `None` for one paytokens does not write
/// (its names before hash tags included: they expire with their tokens).
fn parse_name(key: &str) -> Option<Name<'_>> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix('{')?;
    let (credential, rest) = rest.split_once('}')?;
    let parts: Vec<&str> = rest.strip_prefix(':')?.split(':').collect();
    match parts.as_slice() {
        [entry, "token"] => Some(Name::Token(credential, entry)),
        [_, "lock" | "failure"] | ["budget" | "meta"] => Some(Name::Other(credential)),
        _ => None,
    }
}

/// The event a channel message announces; `None` for one paytokens does not
/// send.
fn parse_event(payload: &[u8]) -> Option<Event> {
    match payload {
        b"stored" => Some(Event::Stored),
        b"released" => Some(Event::Released),
        other => {
            let mint = std::str::from_utf8(other.strip_prefix(b"deleted:")?).ok()?;
            Some(Event::Deleted(mint.to_owned()))
        }
    }
}

/// A token store on a Redis server (see the module documentation).
pub(crate) struct RedisStore {
    /// What the store's clones and its listener share.
    inner: Arc<Inner>,
}

/// The state of one [`RedisStore`]. The listener holds it weakly, so it
/// ends with the store.
struct Inner {
    /// Where and as whom to connect.
    topology: Topology,
    /// The URL without its password.
    described: String,
    /// The password, as written in the URL and decoded, to scrub from any
    /// message (Redis does not echo it; this makes sure).
    secrets: Vec<SecretString>,
    /// The connection once one connected, with its generation.
    manager: Mutex<Option<(u64, Link)>>,
    /// The generation of the last manager.
    generation: AtomicU64,
    /// Held while a manager connects, so that concurrent callers do not
    /// all connect; every attempt is bounded by [`CONNECT_TIMEOUT`].
    connecting: tokio::sync::Mutex<()>,
    /// The watched entries' channels and their senders.
    channels: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    /// The listener task, once a watch started it.
    listener: Mutex<Option<JoinHandle<()>>>,
    /// On a cluster: the connection holding the sharded subscriptions
    /// (`SSUBSCRIBE`, one per watched entry), once a watch made it.
    subscriber: tokio::sync::Mutex<Option<ClusterConnection>>,
}

/// Where a store's data is, and how each connection finds it.
enum Topology {
    /// One server (`redis://`, `rediss://`).
    Single(Client),
    /// The primary of a Sentinel service (`redis-sentinel://`,
    /// `rediss-sentinel://`), asked of the sentinels again at every
    /// connection: after a failover, the next connection goes to the new
    /// primary.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// A Redis Cluster (`redis-cluster://`, `rediss-cluster://`), from
    /// its seed nodes; the client follows `MOVED`/`ASK` and slot changes.
    Cluster(ClusterClient),
}

impl Topology {
    /// The command announcing a write to its entry's watchers: `SPUBLISH`
    /// on a cluster (to the channel's shard, in the entry's slot),
    /// `PUBLISH` elsewhere.
    fn publish(&self) -> &'static str {
        match self {
            Topology::Cluster(_) => "SPUBLISH",
            Topology::Single(_) | Topology::Sentinel(_) => "PUBLISH",
        }
    }
}

/// A connection of any topology, for commands and scripts.
#[derive(Clone)]
enum Link {
    /// To one server: reconnects by itself after I/O errors.
    Manager(ConnectionManager),
    /// To a cluster: routes every command to its slot's primary.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Link {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Link::Manager(connection) => connection.req_packed_command(cmd),
            Link::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Link::Manager(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Manager(connection) => connection.get_db(),
            Link::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = listener.take() {
            task.abort();
        }
    }
}

impl RedisStore {
    /// The value at `key` (a token or a failed mint) and its time to live.
    fn get_at(&self, key: String) -> BoxFuture<'_, Result<Option<Stored>, StoreError>> {
        Box::pin(async move {
            let mut get = GET.key(key);
            get.arg(super::MAX_VALUE_BYTES);
            let found: Option<(Vec<u8>, i64)> = self.inner.invoke(get).await?;
            // A token without a time to live was not written by paytokens;
            // one larger than any entry (the script's bound) is not read.
            Ok(found
                .filter(|(_, ttl)| *ttl > 0)
                .map(|(value, ttl)| Stored {
                    value,
                    ttl: from_millis(ttl),
                }))
        })
    }

    /// Writes `value` at `key`, one of `keys`' entry, for `ttl` (only
    /// where none is, with `only_if_absent`), then announces `stored` on
    /// the entry's channel; whether it wrote.
    fn put_at<'a>(
        &'a self,
        key: String,
        keys: &'a Keys,
        value: &'a [u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut invocation = PUT.key(key);
            invocation
                .arg(value)
                .arg(millis(ttl))
                .arg(u8::from(only_if_absent))
                .arg(channel(keys))
                .arg(self.inner.topology.publish());
            let written: i64 = self.inner.invoke(invocation).await?;
            Ok(written == 1)
        })
    }

    /// A store at `url` (`redis://` or `rediss://`, with `user:password@`
    /// for AUTH or an ACL user). Checks the URL only: connects on the first
    /// call, so no runtime is needed here.
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some(scheme @ ("redis-sentinel" | "rediss-sentinel")) => {
                Self::open_sentinel(url, scheme)
            }
            Some(scheme @ ("redis-cluster" | "rediss-cluster")) => Self::open_cluster(url, scheme),
            _ => Self::open_single(url),
        }
    }

    /// A store on one server: `redis://` or `rediss://`.
    fn open_single(url: &str) -> Result<Self, StoreError> {
        let parsed = url::Url::parse(url)
            .map_err(|err| StoreError::Config(format!("invalid Redis URL: {err}")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(StoreError::Config(
                "a Redis store's URL must be redis://…, rediss://…, redis-sentinel://…, \
                 rediss-sentinel://…, redis-cluster://… or rediss-cluster://…"
                    .into(),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(StoreError::Config("the Redis URL has no host".into()));
        }
        if parsed.fragment().is_some() {
            return Err(StoreError::Config(
                "the Redis URL must not have a #fragment (certificates are always verified)".into(),
            ));
        }
        let raw_password = parsed.password().map(str::to_owned);
        let mut secrets: Vec<SecretString> = raw_password
            .iter()
            .cloned()
            .map(SecretString::from)
            .collect();
        let mut shown = parsed.clone();
        if shown.password().is_some() {
            // Only URLs that cannot have a password fail this.
            let _ = shown.set_password(Some("***"));
        }
        let described = shown.to_string();
        let client = Client::open(parsed).map_err(|err| {
            StoreError::Config(scrub(
                &secrets,
                format!("invalid Redis URL: {}", describe_error(&err)),
            ))
        })?;
        // The password as Redis receives it (percent-decoded).
        if let Some(decoded) = client.get_connection_info().redis_settings().password()
            && raw_password.as_deref() != Some(decoded)
        {
            secrets.push(SecretString::from(decoded.to_owned()));
        }
        Ok(Self::with(Topology::Single(client), described, secrets))
    }

    /// The store around `topology`.
    fn with(topology: Topology, described: String, secrets: Vec<SecretString>) -> Self {
        Self {
            inner: Arc::new(Inner {
                topology,
                described,
                secrets,
                manager: Mutex::new(None),
                generation: AtomicU64::new(0),
                connecting: tokio::sync::Mutex::new(()),
                channels: Mutex::new(HashMap::new()),
                listener: Mutex::new(None),
                subscriber: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A store on the primary of a Sentinel service:
    /// `redis-sentinel://[user:password@]host[:port][,host[:port]...][/db]#service`
    /// (Lettuce's form; port 26379 by default), `rediss-sentinel://` for
    /// TLS to the sentinels and the data nodes alike. The user and
    /// password authenticate with both.
    fn open_sentinel(url: &str, scheme: &str) -> Result<Self, StoreError> {
        let nodes = Nodes::parse(url, scheme, 26379)?;
        let Some(service) = nodes.service.clone() else {
            return Err(StoreError::Config(
                "a redis-sentinel:// URL names its service after `#`: \
                 redis-sentinel://host:26379,host:26380/0#mymaster"
                    .into(),
            ));
        };
        let sentinels = nodes.hosts.iter().map(|(host, port)| {
            if nodes.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let configuration = |err: RedisError| {
            StoreError::Config(scrub(
                &nodes.secrets,
                format!("invalid Redis Sentinel URL: {}", describe_error(&err)),
            ))
        };
        let mut builder =
            SentinelClientBuilder::new(sentinels, service, SentinelServerType::Master)
                .map_err(configuration)?
                .set_client_to_redis_db(nodes.db);
        if let Some(username) = &nodes.username {
            builder = builder
                .set_client_to_redis_username(username)
                .set_client_to_sentinel_username(username);
        }
        if let Some(password) = &nodes.password {
            let password = password.expose_secret();
            builder = builder
                .set_client_to_redis_password(password)
                .set_client_to_sentinel_password(password);
        }
        if nodes.tls {
            builder = builder
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        }
        let sentinel = builder.build().map_err(configuration)?;
        Ok(Self::with(
            Topology::Sentinel(tokio::sync::Mutex::new(sentinel)),
            nodes.described,
            nodes.secrets,
        ))
    }

    /// A store on a Redis Cluster, from one or more of its nodes:
    /// `redis-cluster://[user:password@]host[:port][,host[:port]...]` (port
    /// 6379 by default), `rediss-cluster://` for TLS.
    fn open_cluster(url: &str, scheme: &str) -> Result<Self, StoreError> {
        let nodes = Nodes::parse(url, scheme, 6379)?;
        if nodes.service.is_some() {
            return Err(StoreError::Config(
                "a redis-cluster:// URL has no #fragment (only Sentinel names a service)".into(),
            ));
        }
        if nodes.db != 0 {
            return Err(StoreError::Config(
                "a Redis Cluster has only database 0: give the URL no /db".into(),
            ));
        }
        let mut seeds = Vec::with_capacity(nodes.hosts.len());
        for (host, port) in &nodes.hosts {
            let addr = if nodes.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            };
            let mut settings = redis::RedisConnectionInfo::default();
            if let Some(username) = &nodes.username {
                settings = settings.set_username(username.clone());
            }
            if let Some(password) = &nodes.password {
                settings = settings.set_password(password.expose_secret());
            }
            seeds.push(
                redis::IntoConnectionInfo::into_connection_info(addr)
                    .map(|info| info.set_redis_settings(settings))
                    .map_err(|err| {
                        StoreError::Config(scrub(
                            &nodes.secrets,
                            format!("invalid Redis Cluster URL: {}", describe_error(&err)),
                        ))
                    })?,
            );
        }
        // The push sender hands messages to the store, which holds the
        // client: it learns where the store is once the store exists.
        let pushes = Pushes(Arc::new(std::sync::OnceLock::new()));
        let client = ClusterClient::builder(seeds)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes.clone())
            .build()
            .map_err(|err| {
                StoreError::Config(scrub(
                    &nodes.secrets,
                    format!("invalid Redis Cluster URL: {}", describe_error(&err)),
                ))
            })?;
        let store = Self::with(Topology::Cluster(client), nodes.described, nodes.secrets);
        let _ = pushes.0.set(Arc::downgrade(&store.inner));
        Ok(store)
    }

    /// Starts the listener on the current runtime, unless it runs. Without
    /// a runtime, nothing: the watchers' receivers then only stay silent.
    fn ensure_listener(&self) {
        let mut slot = lock(&self.inner.listener);
        if slot.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *slot = Some(runtime.spawn(listen(Arc::downgrade(&self.inner))));
    }
}

impl RedisStore {
    /// On a cluster: `SSUBSCRIBE` to `added`'s channel and `SUNSUBSCRIBE`
    /// from the `gone` ones, on the store's subscription connection, in the
    /// background (on the current runtime; without one, nothing: the
    /// watchers then poll). A subscription that fails, or that a slot move
    /// loses, costs only the notification: waiters poll the store too.
    fn subscribe_sharded(&self, added: Option<String>, gone: Vec<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let Some(inner) = store.upgrade() else { return };
            let Topology::Cluster(client) = &inner.topology else {
                return;
            };
            let work = async {
                let mut subscriber = inner.subscriber.lock().await;
                if subscriber.is_none() {
                    *subscriber = Some(client.get_async_connection().await?);
                }
                let connection = subscriber.as_mut().expect("connected above");
                if !gone.is_empty() {
                    connection.sunsubscribe(&gone).await?;
                }
                if let Some(added) = &added {
                    connection.ssubscribe(added).await?;
                }
                RedisResult::Ok(())
            };
            match tokio::time::timeout(CONNECT_TIMEOUT * 2, work).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    let error = scrub(&inner.secrets, describe_error(&err));
                    // A connection that failed is made afresh next time.
                    *inner.subscriber.lock().await = None;
                    tracing::debug!(target: "paytokens::store", %error,
                        "redis cluster: cannot subscribe to an entry's channel; its waiters poll");
                }
                Err(_elapsed) => {
                    *inner.subscriber.lock().await = None;
                    tracing::debug!(target: "paytokens::store",
                        "redis cluster: no answer subscribing to an entry's channel; its waiters poll");
                }
            }
        });
    }
}

/// What a Sentinel or Cluster URL says: `<scheme>://[user:password@]host[:port][,host[:port]...][/db][#service]`.
struct Nodes {
    tls: bool,
    /// Percent-decoded.
    username: Option<String>,
    /// Percent-decoded.
    password: Option<SecretString>,
    hosts: Vec<(String, u16)>,
    db: i64,
    service: Option<String>,
    /// The URL with `***` for its password.
    described: String,
    /// The password as written and as decoded, to scrub from messages.
    secrets: Vec<SecretString>,
}

impl Nodes {
    /// Parses `url` of `scheme` (`redis-sentinel`, ...); a host without a
    /// port gets `default_port`. No message repeats the URL's user or
    /// password.
    fn parse(url: &str, scheme: &str, default_port: u16) -> Result<Self, StoreError> {
        let invalid = |why: &str| StoreError::Config(format!("invalid {scheme}:// URL: {why}"));
        let rest = &url[scheme.len() + "://".len()..];
        let (rest, service) = match rest.split_once('#') {
            Some((rest, service)) => (rest, Some(service)),
            None => (rest, None),
        };
        if rest.contains('?') {
            return Err(invalid("it takes no ?options"));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut hosts = Vec::new();
        for host in hostlist.split(',') {
            if host.is_empty() {
                return Err(invalid("a host is missing (hosts are separated by commas)"));
            }
            let parsed = url::Url::parse(&format!("redis://{host}"))
                .map_err(|_| invalid("a host is not host[:port]"))?;
            let name = parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| invalid("a host is not host[:port]"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            if parsed.path() != "/" && !parsed.path().is_empty() {
                return Err(invalid("a host is not host[:port]"));
            }
            hosts.push((name, parsed.port().unwrap_or(default_port)));
        }
        let db = match path.trim_start_matches('/') {
            "" => 0,
            db => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| invalid("the path must be a database number, /0"))?,
        };
        let service = match service {
            Some("") => return Err(invalid("the #service is empty")),
            other => other.map(str::to_owned),
        };
        // The user-info decoded as redis-rs decodes a redis:// URL's.
        let (mut username, mut password, mut secrets, mut shown_userinfo) =
            (None, None, Vec::new(), String::new());
        if let Some(userinfo) = userinfo {
            let (user, raw_password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if let Some(raw) = raw_password {
                secrets.push(SecretString::from(raw.to_owned()));
            }
            let info = redis::IntoConnectionInfo::into_connection_info(format!(
                "redis://{userinfo}@127.0.0.1"
            ))
            .map_err(|_| invalid("the user or password is not percent-encoded"))?;
            let settings = info.redis_settings();
            username = settings.username().map(str::to_owned);
            if let Some(decoded) = settings.password() {
                secrets.push(SecretString::from(decoded.to_owned()));
                password = Some(SecretString::from(decoded.to_owned()));
            }
            shown_userinfo = match raw_password {
                Some(_) => format!("{user}:***@"),
                None => format!("{user}@"),
            };
        }
        let listed: Vec<String> = hosts
            .iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect();
        let mut described = format!("{scheme}://{shown_userinfo}{}", listed.join(","));
        if db != 0 {
            described.push_str(&format!("/{db}"));
        }
        if let Some(service) = &service {
            described.push('#');
            described.push_str(service);
        }
        Ok(Self {
            tls: scheme.starts_with("rediss"),
            username,
            password,
            hosts,
            db,
            service,
            described,
            secrets,
        })
    }
}

/// `text` with every password form replaced by `***`.
fn scrub(secrets: &[SecretString], text: String) -> String {
    secrets.iter().fold(text, |text, secret| {
        let secret = secret.expose_secret();
        if secret.is_empty() {
            text
        } else {
            text.replace(secret, "***")
        }
    })
}

impl Inner {
    /// A Redis error as the store reports it.
    fn unavailable(&self, err: &RedisError) -> StoreError {
        StoreError::Unavailable(scrub(&self.secrets, describe_error(err)))
    }

    /// The connection manager, connecting it if there is none yet. A
    /// failed connection is reported, not kept.
    async fn connection(&self) -> Result<(u64, Link), StoreError> {
        if let Some(manager) = lock(&self.manager).clone() {
            return Ok(manager);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(manager) = lock(&self.manager).clone() {
            return Ok(manager);
        }
        let link = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.connect())
            .await
            .map_err(|_| StoreError::Unavailable("redis: no answer while connecting".to_owned()))?
            .map_err(|err| self.unavailable(&err))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.manager) = Some((generation, link.clone()));
        Ok((generation, link))
    }

    /// A new connection for commands, to wherever the topology says now.
    async fn connect(&self) -> RedisResult<Link> {
        let manager = |client: Client| async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(CONNECT_RETRIES)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_with_config(client, config)
                .await
                .map(Link::Manager)
        };
        match &self.topology {
            Topology::Single(client) => manager(client.clone()).await,
            Topology::Sentinel(sentinel) => {
                // The primary the sentinels name now (one that answers as
                // a primary): not the one a previous connection went to.
                let client = sentinel.lock().await.async_get_client().await?;
                manager(client).await
            }
            Topology::Cluster(client) => client.get_async_connection().await.map(Link::Cluster),
        }
    }

    /// Maps a command's error. The manager reconnects by itself after I/O
    /// errors; after any other (authentication refused at a reconnect, a
    /// server turned replica, …) it may stay broken, so it is dropped and
    /// the next call connects afresh. Through Sentinel every error drops
    /// it: the manager would reconnect to the same address, which after a
    /// failover is no longer the primary (redis-rs #1438); the next call
    /// asks the sentinels again. A cluster connection follows a failover
    /// by itself (it reads the slots again after errors).
    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if !err.is_io_error() || matches!(self.topology, Topology::Sentinel(_)) {
                let mut manager = lock(&self.manager);
                if manager
                    .as_ref()
                    .is_some_and(|(current, _)| *current == generation)
                {
                    *manager = None;
                }
            }
            self.unavailable(&err)
        })
    }

    /// Runs a script.
    async fn invoke<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let (generation, mut connection) = self.connection().await?;
        let result = invocation.invoke_async(&mut connection).await;
        self.check(generation, result)
    }

    /// Runs a command.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, StoreError> {
        let (generation, mut connection) = self.connection().await?;
        let result = command.query_async(&mut connection).await;
        self.check(generation, result)
    }

    /// Runs a pipeline.
    async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        let (generation, mut connection) = self.connection().await?;
        let result = pipe.query_async(&mut connection).await;
        self.check(generation, result)
    }

    /// The nodes whose names `SCAN` walks: the one server (`None`), or
    /// every primary of the cluster, as `CLUSTER NODES` lists them now.
    async fn scanned_nodes(&self) -> Result<Vec<Option<(String, u16)>>, StoreError> {
        if !matches!(self.topology, Topology::Cluster(_)) {
            return Ok(vec![None]);
        }
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        let nodes: String = self.query(&command).await?;
        let primaries: Vec<_> = nodes.lines().filter_map(primary_of).map(Some).collect();
        if primaries.is_empty() {
            return Err(StoreError::Unavailable(
                "redis cluster: CLUSTER NODES lists no primary".to_owned(),
            ));
        }
        Ok(primaries)
    }

    /// One step of `SCAN` (never `KEYS`) over the names paytokens writes,
    /// on `node` (a cluster's primary) or the one server: the next cursor
    /// (0 at the end) and some names, maybe repeated.
    async fn scan(
        &self,
        node: Option<&(String, u16)>,
        cursor: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(PATTERN)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let Some((host, port)) = node else {
            return self.query(&command).await;
        };
        let (generation, link) = self.connection().await?;
        let Link::Cluster(mut connection) = link else {
            unreachable!("only a cluster has nodes to scan");
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        let result = connection
            .route_command(command, routing)
            .await
            .and_then(|value| Ok(<(u64, Vec<Vec<u8>>)>::from_redis_value(value)?));
        self.check(generation, result)
    }

    /// Hands a message from the listener to the entry's watchers.
    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let Some(event) = parse_event(payload) else {
            return;
        };
        let mut channels = lock(&self.channels);
        if let Some(sender) = channels.get(channel)
            && sender.send(event).is_err()
        {
            channels.remove(channel);
        }
    }
}

/// A primary's address from a line of `CLUSTER NODES` (`<id>
/// <ip>:<port>@<bus-port>[,<hostname>] <flags> ...`); `None` for a
/// replica, a failed node, or one without an address.
fn primary_of(line: &str) -> Option<(String, u16)> {
    let mut fields = line.split_whitespace();
    let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
    let flags: Vec<&str> = flags.split(',').collect();
    if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
        return None;
    }
    let address = address.split(['@', ',']).next()?;
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// Subscribes a new pub/sub connection to every paytokens channel, on the
/// one server or the primary the sentinels name now (a replica would do
/// too: Redis replicates messages to them).
async fn subscribe(inner: &Inner) -> RedisResult<(PubSubSink, PubSubStream)> {
    let client = match &inner.topology {
        Topology::Single(client) => client.clone(),
        Topology::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await?,
        Topology::Cluster(_) => {
            return Err(RedisError::from((
                ErrorKind::Client,
                "a cluster's notifications are sharded subscriptions",
            )));
        }
    };
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(PATTERN).await?;
    Ok(pubsub.split())
}

/// Where a cluster connection's pushes go: each `SMESSAGE` to its entry's
/// watchers, at once (the sender must not block the connection); anything
/// else is dropped. Holds the store weakly, once it exists.
#[derive(Clone)]
struct Pushes(Arc<std::sync::OnceLock<Weak<Inner>>>);

impl redis::aio::AsyncPushSender for Pushes {
    fn send(&self, info: redis::PushInfo) -> Result<(), redis::aio::SendError> {
        let Some(inner) = self.0.get().and_then(Weak::upgrade) else {
            return Err(redis::aio::SendError);
        };
        if info.kind == redis::PushKind::SMessage
            && let [
                redis::Value::BulkString(channel),
                redis::Value::BulkString(payload),
            ] = info.data.as_slice()
            && let Ok(channel) = std::str::from_utf8(channel)
        {
            inner.dispatch(channel, payload);
        }
        Ok(())
    }
}

/// The listener: hears every paytokens channel and hands each message to
/// the store's watchers, subscribing again (100 ms, doubling to 2 s) when
/// the connection fails or goes quiet and does not answer a ping. Ends with
/// the store.
async fn listen(store: Weak<Inner>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        let Some(inner) = store.upgrade() else { return };
        let subscribed = tokio::time::timeout(CONNECT_TIMEOUT * 2, subscribe(&inner)).await;
        drop(inner);
        match subscribed {
            Ok(Ok((mut sink, mut stream))) => {
                tracing::debug!(target: "paytokens::store", "redis listener subscribed");
                backoff = LISTEN_BACKOFF_MIN;
                loop {
                    match tokio::time::timeout(LISTEN_PING_AFTER, stream.next()).await {
                        Ok(Some(message)) => {
                            let Some(inner) = store.upgrade() else { return };
                            inner.dispatch(message.get_channel_name(), message.get_payload_bytes());
                        }
                        Ok(None) => {
                            tracing::debug!(
                                target: "paytokens::store",
                                "redis listener lost its connection; subscribing again"
                            );
                            break;
                        }
                        Err(_quiet) => {
                            if store.strong_count() == 0 {
                                return;
                            }
                            let ping = sink.ping::<redis::Value>();
                            if !matches!(
                                tokio::time::timeout(RESPONSE_TIMEOUT, ping).await,
                                Ok(Ok(_))
                            ) {
                                tracing::debug!(
                                    target: "paytokens::store",
                                    "redis listener's connection does not answer; subscribing again"
                                );
                                break;
                            }
                        }
                    }
                }
            }
            Ok(Err(err)) => {
                let Some(inner) = store.upgrade() else { return };
                let error = scrub(&inner.secrets, describe_error(&err));
                drop(inner);
                tracing::debug!(
                    target: "paytokens::store",
                    %error,
                    retry_in_ms = backoff.as_millis() as u64,
                    "redis listener cannot subscribe"
                );
            }
            Err(_elapsed) => {
                tracing::debug!(
                    target: "paytokens::store",
                    retry_in_ms = backoff.as_millis() as u64,
                    "redis listener timed out subscribing"
                );
            }
        }
        if store.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

impl Backend for RedisStore {
    fn describe(&self) -> String {
        self.inner.described.clone()
    }

    fn get<'a>(&'a self, keys: &'a Keys) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.get_at(token_key(keys))
    }

    fn put<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.put_at(token_key(keys), keys, value, ttl, only_if_absent)
    }

    fn get_failure<'a>(
        &'a self,
        keys: &'a Keys,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.get_at(failure_key(keys))
    }

    fn put_failure<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        cooldown: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.put_at(failure_key(keys), keys, value, cooldown, false)
                .await?;
            Ok(())
        })
    }

    fn delete_if<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        mint: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut invocation = DELETE_IF.key(token_key(keys));
            invocation
                .arg(value)
                .arg(channel(keys))
                .arg(mint)
                .arg(self.inner.topology.publish());
            let deleted: i64 = self.inner.invoke(invocation).await?;
            Ok(deleted == 1)
        })
    }

    fn try_lock<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Lock, StoreError>> {
        Box::pin(async move {
            let mut invocation = TRY_LOCK.key(lock_key(keys));
            invocation.arg(holder).arg(millis(lease));
            let (taken, left): (i64, i64) = self.inner.invoke(invocation).await?;
            Ok(if taken == 1 {
                Lock::Acquired
            } else {
                Lock::Held(from_millis(left))
            })
        })
    }

    fn renew<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut invocation = RENEW.key(lock_key(keys));
            invocation.arg(holder).arg(millis(lease));
            let renewed: i64 = self.inner.invoke(invocation).await?;
            Ok(renewed == 1)
        })
    }

    fn release<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = RELEASE.key(lock_key(keys));
            invocation
                .arg(holder)
                .arg(channel(keys))
                .arg(self.inner.topology.publish());
            let _released: i64 = self.inner.invoke(invocation).await?;
            Ok(())
        })
    }

    fn take_budget<'a>(
        &'a self,
        keys: &'a Keys,
        max: u32,
        window: Duration,
    ) -> BoxFuture<'a, Result<Take, StoreError>> {
        Box::pin(async move {
            let mut invocation = TAKE_BUDGET.key(budget_key(&keys.credential));
            invocation
                .key(meta_key(&keys.credential))
                .arg(max)
                .arg(millis(window))
                .arg(random_id());
            let (granted, n): (i64, i64) = self.inner.invoke(invocation).await?;
            Ok(if granted == 1 {
                Take::Granted(u32::try_from(n).unwrap_or(0))
            } else {
                Take::Exhausted(from_millis(n))
            })
        })
    }

    fn record_failure<'a>(
        &'a self,
        keys: &'a Keys,
        class: &'static str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = RECORD_FAILURE.key(meta_key(&keys.credential));
            invocation.arg(class);
            let _: i64 = self.inner.invoke(invocation).await?;
            Ok(())
        })
    }

    fn record_store_failure<'a>(
        &'a self,
        keys: &'a Keys,
        what: &'static str,
        ago: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = RECORD_STORE_FAILURE.key(meta_key(&keys.credential));
            invocation.arg(what).arg(millis(ago));
            let _: i64 = self.inner.invoke(invocation).await?;
            Ok(())
        })
    }

    fn watch(&self, keys: &Keys) -> broadcast::Receiver<Event> {
        let name = channel(keys);
        let (receiver, added, gone) = {
            let mut channels = lock(&self.inner.channels);
            let mut gone = Vec::new();
            channels.retain(|channel, sender| {
                let live = sender.receiver_count() > 0;
                if !live {
                    gone.push(channel.clone());
                }
                live
            });
            let added = !channels.contains_key(&name);
            let receiver = channels
                .entry(name.clone())
                .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
                .subscribe();
            (receiver, added, gone)
        };
        if matches!(self.inner.topology, Topology::Cluster(_)) {
            if added || !gone.is_empty() {
                self.subscribe_sharded(added.then_some(name), gone);
            }
        } else {
            self.ensure_listener();
        }
        receiver
    }

    fn status(&self) -> BoxFuture<'_, Result<Vec<CredentialStatus>, StoreError>> {
        Box::pin(async move {
            let mut names = Vec::new();
            for node in self.inner.scanned_nodes().await? {
                let mut cursor = 0;
                loop {
                    let (next, found) = self.inner.scan(node.as_ref(), cursor).await?;
                    // Names paytokens writes are ASCII; others are not its own.
                    names.extend(
                        found
                            .into_iter()
                            .filter_map(|name| String::from_utf8(name).ok()),
                    );
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            names.sort_unstable();
            names.dedup();
            // Credential -> its tokens' (entry, name).
            let mut credentials: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
            for name in &names {
                match parse_name(name) {
                    Some(Name::Token(credential, entry)) => {
                        credentials
                            .entry(credential)
                            .or_default()
                            .push((entry, name));
                    }
                    Some(Name::Other(credential)) => {
                        credentials.entry(credential).or_default();
                    }
                    None => {}
                }
            }
            let mut statuses = Vec::with_capacity(credentials.len());
            for (credential, tokens) in credentials {
                let mut pipe = redis::pipe();
                for (_, name) in &tokens {
                    pipe.cmd("PTTL").arg(*name);
                }
                let ttls: Vec<i64> = if tokens.is_empty() {
                    Vec::new()
                } else {
                    self.inner.query_pipe(&pipe).await?
                };
                let entries = tokens
                    .iter()
                    .zip(ttls)
                    .filter(|(_, ttl)| *ttl > 0)
                    .map(|((entry, _), ttl)| EntryStatus {
                        id: (*entry).to_owned(),
                        expires_in: from_millis(ttl),
                    })
                    .collect();
                let mut invocation = CREDENTIAL_STATUS.key(budget_key(credential));
                invocation.key(meta_key(credential));
                #[allow(clippy::type_complexity)]
                let (used, max, window, error, age, store_error, store_age): (
                    u64,
                    Option<u32>,
                    Option<u64>,
                    Option<String>,
                    Option<u64>,
                    Option<String>,
                    Option<u64>,
                ) = self.inner.invoke(invocation).await?;
                statuses.push(CredentialStatus {
                    id: credential.to_owned(),
                    tokens: entries,
                    mints_used: u32::try_from(used).unwrap_or(u32::MAX),
                    budget: max.zip(window.map(Duration::from_millis)),
                    last_error: error.map(|class| (class, Duration::from_millis(age.unwrap_or(0)))),
                    last_store_failure: store_error
                        .map(|what| (what, Duration::from_millis(store_age.unwrap_or(0)))),
                });
            }
            Ok(statuses)
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut unlinked = 0;
            for node in self.inner.scanned_nodes().await? {
                let mut cursor = 0;
                loop {
                    let (next, names) = self.inner.scan(node.as_ref(), cursor).await?;
                    if !names.is_empty() {
                        // On a cluster, the client splits it by slot.
                        let gone: usize = self.inner.query(redis::cmd("UNLINK").arg(names)).await?;
                        unlinked += gone;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(unlinked)
        })
    }
}

/// The tests' own `redis-server` processes (shared with the integration
/// tests; declared here because a `#[path]` inside an inline module of
/// this file would resolve below `src/store/redis/`).
#[cfg(test)]
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;

/// The store against real `redis-server` processes: killed, paused,
/// restarted, with passwords, ACL users and TLS.
#[cfg(test)]
mod tests {
    use std::future::Future;

    use secrecy::SecretString;
    use tokio::time::{Instant, sleep, timeout};

    use super::*;
    use crate::{CacheKey, Provider};

    use super::redis_server::{self, RedisCluster, RedisSentinels, RedisServer};

    /// The keys of client `client_id`'s entry for `scopes`.
    fn keys(client_id: &str, scopes: &[&str]) -> Keys {
        Keys::derive(
            &SecretString::from("client-secret-of-the-tests"),
            &CacheKey {
                provider: Provider::all().next().expect("a provider"),
                base_url: "http://127.0.0.1:1".into(),
                client_id: client_id.into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                headers: vec![],
            },
        )
    }

    /// A store at `url`, which must be valid.
    fn store(url: &str) -> RedisStore {
        RedisStore::open(url).expect("a valid Redis URL")
    }

    /// The tests' lease, where it does not matter.
    const LEASE: Duration = Duration::from_secs(5);
    /// The tests' token lifetime, where it does not matter.
    const TTL: Duration = Duration::from_secs(60);

    /// Retries `call` until it succeeds; fails the test after 20 s.
    async fn eventually<T, F, Fut>(what: &str, mut call: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let failure = match timeout(Duration::from_secs(2), call()).await {
                Ok(Ok(value)) => return value,
                Ok(Err(err)) => err.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            assert!(Instant::now() < deadline, "{what} still fails: {failure}");
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` clients of `server` are pattern-subscribed (the
    /// stores' listeners). `auth`: redis-cli's `--user`/`--pass` options.
    async fn wait_listeners(server: &RedisServer, auth: &[&str], n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let args: Vec<&str> = auth.iter().copied().chain(["CLIENT", "LIST"]).collect();
            let listening = server
                .cli(&args)
                .iter()
                .filter(|line| line.contains(" psub=1 "))
                .count();
            if listening == n {
                return;
            }
            assert!(Instant::now() < deadline, "{listening} listeners, not {n}");
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next event, which must come within 10 s.
    async fn next_event(events: &mut broadcast::Receiver<Event>) -> Event {
        timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event within 10 s")
            .expect("the channel is open")
    }

    /// A call to a dead server fails, as an error or by not answering in
    /// time, and never succeeds.
    async fn fails<T>(call: impl Future<Output = Result<T, StoreError>>) {
        match timeout(Duration::from_secs(2), call).await {
            Ok(Ok(_)) => panic!("a call succeeded with no server"),
            Ok(Err(err)) => assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}"),
            Err(_elapsed) => {}
        }
    }

    #[test]
    fn open_checks_the_url_without_a_runtime_and_never_shows_the_password() {
        let user = store("redis://alice:pw-Secret-77@127.0.0.1:6390/2");
        assert_eq!(user.describe(), "redis://alice:***@127.0.0.1:6390/2");
        let tls = store("rediss://:pw%2FSecret-77@127.0.0.1:6390");
        assert_eq!(tls.describe(), "rediss://:***@127.0.0.1:6390");
        assert_eq!(
            store("redis://127.0.0.1:6390").describe(),
            "redis://127.0.0.1:6390"
        );
        for url in [
            "http://alice:pw-Secret-77@127.0.0.1:6390",
            "alice:pw-Secret-77@127.0.0.1:6390",
            "redis://alice:pw-Secret-77@127.0.0.1:port",
            "redis://alice:pw-Secret-77@127.0.0.1:6390/not-a-db",
            "rediss://alice:pw-Secret-77@127.0.0.1:6390/#insecure",
            "redis://alice:pw-Secret-77@/",
            "redis://alice:pw-Secret-77@0.0.0.0:6390",
            "not a url pw-Secret-77",
            "",
        ] {
            let Err(err) = RedisStore::open(url) else {
                panic!("{url} was accepted");
            };
            assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !shown.contains("Secret") && !shown.contains("alice"),
                    "{shown}"
                );
            }
        }
    }

    /// A value larger than any entry is not read: a miss.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_oversized_value_is_a_miss() {
        let server = RedisServer::start();
        let store = store(&server.url());
        let k = keys("client", &[]);
        let big = vec![b'x'; usize::try_from(super::super::MAX_VALUE_BYTES).unwrap() + 1];
        assert!(store.put(&k, &big, TTL, false).await.unwrap());
        assert!(store.get(&k).await.unwrap().is_none());
        let just = &big[..big.len() - 1];
        assert!(store.put(&k, just, TTL, false).await.unwrap());
        assert_eq!(store.get(&k).await.unwrap().expect("stored").value, just);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn get_returns_what_put_stored_with_its_ttl_and_put_if_absent_keeps_it() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &["a"]);
        assert!(a.get(&k).await.unwrap().is_none());
        assert!(a.put(&k, b"first", TTL, true).await.unwrap());
        assert!(!b.put(&k, b"second", TTL, true).await.unwrap());
        let stored = b.get(&k).await.unwrap().expect("stored");
        assert_eq!(stored.value, b"first");
        assert!(stored.ttl <= TTL && stored.ttl > TTL - Duration::from_secs(30));
        assert!(
            b.put(&k, b"second", Duration::from_secs(10), false)
                .await
                .unwrap()
        );
        let stored = a.get(&k).await.unwrap().expect("stored");
        assert_eq!(stored.value, b"second");
        assert!(stored.ttl <= Duration::from_secs(10));
        // Another entry of the same credential is another key.
        assert!(a.get(&keys("client", &["b"])).await.unwrap().is_none());
        // What the store wrote is what it was given, under a hashed name.
        let names = server.cli(&["KEYS", "*"]);
        assert_eq!(
            names,
            [format!("paytokens:{{{}}}:{}:token", k.credential, k.entry)]
        );
        // Expiry is the server's: a token past its ttl is gone.
        assert!(
            a.put(&k, b"short", Duration::from_millis(50), false)
                .await
                .unwrap()
        );
        sleep(Duration::from_millis(150)).await;
        assert!(a.get(&k).await.unwrap().is_none());
    }

    /// A failed mint is a key of its own beside the token, replaced by the
    /// next failure, gone when its cooldown ends, removed by `clear`.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failure_is_kept_for_its_cooldown_beside_the_token() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &["a"]);
        assert!(a.get_failure(&k).await.unwrap().is_none());
        a.put_failure(&k, b"first", TTL).await.unwrap();
        b.put_failure(&k, b"second", TTL).await.unwrap();
        let found = a.get_failure(&k).await.unwrap().expect("stored");
        assert_eq!(found.value, b"second");
        assert!(found.ttl <= TTL && !found.ttl.is_zero());
        assert!(a.get(&k).await.unwrap().is_none(), "a failure is no token");
        let names = server.cli(&["KEYS", "*"]);
        assert_eq!(
            names,
            [format!(
                "paytokens:{{{}}}:{}:failure",
                k.credential, k.entry
            )]
        );
        assert_eq!(a.clear().await.unwrap(), 1);
        a.put_failure(&k, b"short", Duration::from_millis(50))
            .await
            .unwrap();
        sleep(Duration::from_millis(150)).await;
        assert!(b.get_failure(&k).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn delete_if_deletes_only_the_value_it_was_given() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &[]);
        assert!(
            !a.delete_if(&k, b"old", "m1").await.unwrap(),
            "nothing to delete"
        );
        assert!(a.put(&k, b"new", TTL, false).await.unwrap());
        assert!(!b.delete_if(&k, b"old", "m1").await.unwrap());
        assert_eq!(a.get(&k).await.unwrap().expect("kept").value, b"new");
        assert!(b.delete_if(&k, b"new", "m2").await.unwrap());
        assert!(a.get(&k).await.unwrap().is_none());
        assert!(
            !a.delete_if(&k, b"new", "m2").await.unwrap(),
            "already gone"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_lock_is_exclusive_and_only_its_holder_renews_or_releases_it() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &["a"]);
        assert_eq!(
            a.try_lock(&k, "holder-a", LEASE).await.unwrap(),
            Lock::Acquired
        );
        let Lock::Held(left) = b.try_lock(&k, "holder-b", LEASE).await.unwrap() else {
            panic!("two holders");
        };
        assert!(left > Duration::ZERO && left <= LEASE, "{left:?}");
        // The holder cannot take it twice either.
        assert!(matches!(
            a.try_lock(&k, "holder-a", LEASE).await.unwrap(),
            Lock::Held(_)
        ));
        // Not the holder: neither renews nor releases.
        assert!(!b.renew(&k, "holder-b", LEASE).await.unwrap());
        b.release(&k, "holder-b").await.unwrap();
        assert!(matches!(
            b.try_lock(&k, "holder-b", LEASE).await.unwrap(),
            Lock::Held(_)
        ));
        // Another entry has its own lock.
        assert_eq!(
            b.try_lock(&keys("client", &["b"]), "holder-b", LEASE)
                .await
                .unwrap(),
            Lock::Acquired
        );
        assert!(
            a.renew(&k, "holder-a", Duration::from_secs(30))
                .await
                .unwrap()
        );
        let Lock::Held(left) = b.try_lock(&k, "holder-b", LEASE).await.unwrap() else {
            panic!("two holders");
        };
        assert!(left > LEASE, "renewed to 30 s: {left:?}");
        a.release(&k, "holder-a").await.unwrap();
        assert_eq!(
            b.try_lock(&k, "holder-b", LEASE).await.unwrap(),
            Lock::Acquired
        );
        assert!(!a.renew(&k, "holder-a", LEASE).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_expired_lease_lets_another_process_take_the_lock() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &[]);
        let lease = Duration::from_millis(200);
        assert_eq!(a.try_lock(&k, "dies", lease).await.unwrap(), Lock::Acquired);
        let Lock::Held(left) = b.try_lock(&k, "takes-over", LEASE).await.unwrap() else {
            panic!("two holders");
        };
        assert!(left <= lease);
        sleep(lease + Duration::from_millis(100)).await;
        assert_eq!(
            b.try_lock(&k, "takes-over", LEASE).await.unwrap(),
            Lock::Acquired
        );
        // The old holder's late release leaves the new holder's lock alone.
        a.release(&k, "dies").await.unwrap();
        assert!(!a.renew(&k, "dies", LEASE).await.unwrap());
        assert!(b.renew(&k, "takes-over", LEASE).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_budget_grants_exactly_max_per_window_across_processes() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        // Two entries of one credential share its budget.
        let (k1, k2) = (keys("client", &["a"]), keys("client", &["b"]));
        let window = Duration::from_secs(10);
        let start = std::time::Instant::now();
        assert_eq!(
            a.take_budget(&k1, 3, window).await.unwrap(),
            Take::Granted(2)
        );
        assert_eq!(
            b.take_budget(&k2, 3, window).await.unwrap(),
            Take::Granted(1)
        );
        assert_eq!(
            a.take_budget(&k2, 3, window).await.unwrap(),
            Take::Granted(0)
        );
        let Take::Exhausted(retry_after) = b.take_budget(&k1, 3, window).await.unwrap() else {
            panic!("a fourth mint was granted");
        };
        // The oldest mint was at or after `start`, by the same machine's clock
        // (1 ms for rounding to whole ms on both sides).
        let elapsed = start.elapsed();
        assert!(retry_after <= window, "{retry_after:?}");
        assert!(
            retry_after + elapsed + Duration::from_millis(2) >= window,
            "{retry_after:?}"
        );
        assert!(matches!(
            a.take_budget(&k1, 3, window).await.unwrap(),
            Take::Exhausted(_)
        ));
        // Another credential has its own budget.
        assert_eq!(
            a.take_budget(&keys("other", &[]), 3, window).await.unwrap(),
            Take::Granted(2)
        );

        // A short window: a mint is available again once the oldest left it.
        let k = keys("short", &[]);
        let window = Duration::from_millis(300);
        assert_eq!(
            a.take_budget(&k, 1, window).await.unwrap(),
            Take::Granted(0)
        );
        let Take::Exhausted(retry_after) = b.take_budget(&k, 1, window).await.unwrap() else {
            panic!("a second mint was granted");
        };
        assert!(retry_after <= window);
        sleep(retry_after + Duration::from_millis(50)).await;
        assert_eq!(
            b.take_budget(&k, 1, window).await.unwrap(),
            Take::Granted(0)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn watch_hears_what_another_instance_does() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &["a"]);
        let mut events = a.watch(&k);
        let mut other_entry = a.watch(&keys("client", &["b"]));
        wait_listeners(&server, &[], 1).await;

        assert!(b.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
        // Writes that did not happen are not announced: the next event is
        // the release.
        assert!(!b.put(&k, b"token", TTL, true).await.unwrap());
        assert!(!b.delete_if(&k, b"other", "m0").await.unwrap());
        b.release(&k, "not-the-holder").await.unwrap();
        assert_eq!(
            b.try_lock(&k, "holder", LEASE).await.unwrap(),
            Lock::Acquired
        );
        b.release(&k, "holder").await.unwrap();
        assert_eq!(next_event(&mut events).await, Event::Released);
        assert!(b.delete_if(&k, b"token", "mint-42").await.unwrap());
        assert_eq!(
            next_event(&mut events).await,
            Event::Deleted("mint-42".into())
        );
        // A second watcher of the same entry hears it too; the other entry's
        // watcher hears nothing of this one.
        let mut second = b.watch(&k);
        wait_listeners(&server, &[], 2).await;
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
        assert_eq!(next_event(&mut second).await, Event::Stored);
        assert!(matches!(
            other_entry.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        // Messages paytokens does not send are ignored.
        server.cli(&["PUBLISH", &channel(&k), "bogus"]);
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_the_store_ends_its_listener() {
        let server = RedisServer::start();
        let a = store(&server.url());
        let events = a.watch(&keys("client", &[]));
        wait_listeners(&server, &[], 1).await;
        drop(a);
        wait_listeners(&server, &[], 0).await;
        drop(events);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn after_a_kill_calls_fail_and_after_a_restart_they_succeed_again() {
        let mut server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let k = keys("client", &[]);
        let mut events = a.watch(&k);
        wait_listeners(&server, &[], 1).await;
        assert!(b.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);

        server.kill();
        for store in [&a, &b] {
            fails(store.get(&k)).await;
            fails(store.put(&k, b"token", TTL, false)).await;
            fails(store.try_lock(&k, "holder", LEASE)).await;
            fails(store.take_budget(&k, 3, TTL)).await;
            fails(store.status()).await;
        }

        server.restart();
        // A new, empty server: the first calls may fail while reconnecting.
        assert!(
            eventually("get after restart", || a.get(&k))
                .await
                .is_none()
        );
        assert!(eventually("put after restart", || b.put(&k, b"again", TTL, false)).await);
        assert_eq!(a.get(&k).await.unwrap().expect("stored").value, b"again");
        assert_eq!(
            a.try_lock(&k, "holder", LEASE).await.unwrap(),
            Lock::Acquired
        );
        assert_eq!(b.take_budget(&k, 3, TTL).await.unwrap(), Take::Granted(2));
        // The listener subscribed again on the new server.
        wait_listeners(&server, &[], 1).await;
        // (Events of the puts above may come first, if it was quick.)
        assert!(b.delete_if(&k, b"again", "after-restart").await.unwrap());
        while next_event(&mut events).await != Event::Deleted("after-restart".into()) {}
        a.release(&k, "holder").await.unwrap();
        assert_eq!(next_event(&mut events).await, Event::Released);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_first_connection_is_not_kept() {
        let mut server = RedisServer::start();
        server.kill();
        let a = store(&server.url());
        let k = keys("client", &[]);
        let mut events = a.watch(&k);
        fails(a.get(&k)).await;
        fails(a.get(&k)).await;
        server.restart();
        assert!(
            eventually("get once Redis is up", || a.get(&k))
                .await
                .is_none()
        );
        wait_listeners(&server, &[], 1).await;
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_paused_server_does_not_wedge_the_store() {
        let mut server = RedisServer::start();
        let a = store(&server.url());
        let k = keys("client", &[]);
        let mut events = a.watch(&k);
        wait_listeners(&server, &[], 1).await;
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);

        server.pause();
        assert!(
            timeout(Duration::from_millis(300), a.get(&k))
                .await
                .is_err(),
            "a paused server answered"
        );
        // Without a caller's bound, the store's own ends the call.
        let unbounded = timeout(Duration::from_secs(10), a.get(&k)).await;
        assert!(matches!(unbounded, Ok(Err(StoreError::Unavailable(_)))));
        // A store that never connected cannot connect now, and says so.
        let fresh = store(&server.url());
        let unbounded = timeout(Duration::from_secs(10), fresh.get(&k)).await;
        assert!(matches!(unbounded, Ok(Err(StoreError::Unavailable(_)))));
        // Many calls cut short by their callers leave nothing held.
        for _ in 0..5 {
            assert!(
                timeout(Duration::from_millis(50), a.try_lock(&k, "h", LEASE))
                    .await
                    .is_err()
            );
            assert!(
                timeout(Duration::from_millis(50), fresh.get(&k))
                    .await
                    .is_err()
            );
        }

        server.resume();
        wait_listeners(&server, &[], 1).await;
        let stored = eventually("get after SIGCONT", || a.get(&k)).await;
        assert_eq!(stored.expect("still stored").value, b"token");
        let stored = eventually("a fresh store's get after SIGCONT", || fresh.get(&k)).await;
        assert_eq!(stored.expect("still stored").value, b"token");
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        while next_event(&mut events).await != Event::Stored {}
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn status_reports_each_credential_and_clear_deletes_only_paytokens_names() {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        assert!(a.status().await.unwrap().is_empty());
        let (k1, k2, other) = (
            keys("client", &["a"]),
            keys("client", &["b"]),
            keys("other", &[]),
        );
        assert!(a.put(&k1, b"t1", TTL, false).await.unwrap());
        assert!(
            b.put(&k2, b"t2", Duration::from_secs(30), false)
                .await
                .unwrap()
        );
        assert_eq!(
            a.take_budget(&k1, 5, Duration::from_secs(600))
                .await
                .unwrap(),
            Take::Granted(4)
        );
        assert_eq!(
            b.take_budget(&k2, 5, Duration::from_secs(600))
                .await
                .unwrap(),
            Take::Granted(3)
        );
        b.record_failure(&k2, "transient").await.unwrap();
        assert_eq!(
            a.try_lock(&other, "holder", LEASE).await.unwrap(),
            Lock::Acquired
        );
        server.cli(&["SET", "unrelated", "value"]);
        server.cli(&["SET", "paytokens", "no colon: not ours"]);

        let status = b.status().await.unwrap();
        assert_eq!(status.len(), 2, "{status:?}");
        let client = status
            .iter()
            .find(|c| c.id == k1.credential)
            .expect("client");
        let mut tokens = client.tokens.clone();
        tokens.sort_by_key(|t| t.expires_in);
        let expected = {
            let mut ids = [(&k2.entry, Duration::from_secs(30)), (&k1.entry, TTL)];
            ids.sort_by_key(|(_, ttl)| *ttl);
            ids
        };
        assert_eq!(tokens.len(), 2);
        for (token, (id, ttl)) in tokens.iter().zip(expected) {
            assert_eq!(&token.id, id);
            assert!(token.expires_in <= ttl && token.expires_in > ttl - Duration::from_secs(20));
        }
        assert_eq!(client.mints_used, 2);
        assert_eq!(client.budget, Some((5, Duration::from_secs(600))));
        let (class, age) = client.last_error.clone().expect("a failure was recorded");
        assert_eq!(class, "transient");
        assert!(age < Duration::from_secs(60));
        let locked = status
            .iter()
            .find(|c| c.id == other.credential)
            .expect("other");
        assert!(locked.tokens.is_empty() && locked.mints_used == 0 && locked.budget.is_none());
        assert!(locked.last_error.is_none());

        // A granted mint clears the last error.
        assert_eq!(
            a.take_budget(&k1, 5, Duration::from_secs(600))
                .await
                .unwrap(),
            Take::Granted(2)
        );
        let status = a.status().await.unwrap();
        let client = status
            .iter()
            .find(|c| c.id == k1.credential)
            .expect("client");
        assert_eq!(client.mints_used, 3);
        assert!(client.last_error.is_none());

        // 2 tokens, a budget, a meta record, a lock.
        assert_eq!(a.clear().await.unwrap(), 5);
        assert!(a.status().await.unwrap().is_empty());
        let mut left = server.cli(&["KEYS", "*"]);
        left.sort();
        assert_eq!(left, ["paytokens", "unrelated"]);
        assert_eq!(b.clear().await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn status_and_clear_page_through_many_names() {
        let server = RedisServer::start();
        let a = store(&server.url());
        let ttl = Duration::from_secs(60);
        for i in 0..1200 {
            let k = keys(&format!("client-{}", i % 3), &[&format!("scope-{i}")]);
            assert!(a.put(&k, b"t", ttl, false).await.unwrap());
        }
        let status = a.status().await.unwrap();
        assert_eq!(status.len(), 3);
        assert_eq!(status.iter().map(|c| c.tokens.len()).sum::<usize>(), 1200);
        assert_eq!(a.clear().await.unwrap(), 1200);
        assert_eq!(server.cli(&["DBSIZE"]), ["0"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_password_or_acl_user_authenticates_and_never_leaks() {
        const PASSWORD: &str = "requirepass-Canary-3141";
        let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
        let port = server.port();
        let k = keys("client", &[]);
        let good = store(&format!("redis://:{PASSWORD}@127.0.0.1:{port}"));
        assert!(good.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(good.describe(), format!("redis://:***@127.0.0.1:{port}"));
        let wrong = store(&format!("redis://:wrong-Canary-2718@127.0.0.1:{port}"));
        let none = store(&format!("redis://127.0.0.1:{port}"));
        for store in [&wrong, &none] {
            let err = store.get(&k).await.err().expect("refused");
            assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
            for shown in [err.to_string(), format!("{err:?}"), store.describe()] {
                assert!(!shown.contains("Canary"), "{shown}");
            }
        }
        // A server that is down: its error holds no password either.
        let down = store(&format!(
            "redis://:{PASSWORD}@127.0.0.1:{}",
            redis_server::free_port()
        ));
        let err = down.get(&k).await.err().expect("nothing listens");
        assert!(!format!("{err} {err:?} {}", down.describe()).contains("Canary"));

        // An ACL user allowed paytokens' names and channels only; the
        // default user is off.
        const ALICE: &str = "alice-Canary-1618";
        let acl = format!(">{ALICE}");
        let server = RedisServer::start_with(&[
            "--user",
            "alice",
            "on",
            &acl,
            "~paytokens:*",
            "&paytokens:*",
            "+@all",
            "--user",
            "default",
            "off",
        ]);
        let port = server.port();
        let auth = ["--user", "alice", "--pass", ALICE];
        let (a, b) = (
            store(&format!("redis://alice:{ALICE}@127.0.0.1:{port}")),
            store(&format!("redis://alice:{ALICE}@127.0.0.1:{port}")),
        );
        assert_eq!(a.describe(), format!("redis://alice:***@127.0.0.1:{port}"));
        let mut events = a.watch(&k);
        wait_listeners(&server, &auth, 1).await;
        assert!(b.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
        assert_eq!(a.get(&k).await.unwrap().expect("stored").value, b"token");
        assert_eq!(
            b.try_lock(&k, "holder", LEASE).await.unwrap(),
            Lock::Acquired
        );
        b.release(&k, "holder").await.unwrap();
        assert_eq!(next_event(&mut events).await, Event::Released);
        assert_eq!(a.take_budget(&k, 3, TTL).await.unwrap(), Take::Granted(2));
        a.record_failure(&k, "rejected").await.unwrap();
        assert_eq!(a.status().await.unwrap().len(), 1);
        let wrong = store(&format!("redis://alice:wrong-Canary-0000@127.0.0.1:{port}"));
        let err = wrong.get(&k).await.err().expect("wrong password");
        assert!(
            !format!("{err} {err:?} {}", wrong.describe()).contains("Canary"),
            "{err}"
        );
        assert_eq!(b.clear().await.unwrap(), 3);
    }

    /// Set in the child process of the TLS test: the `rediss://` URL to use.
    const TLS_CHILD: &str = "PAYTOKENS_TEST_REDISS_URL";

    /// Runs `openssl` with `args` in `dir`.
    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed (it makes the test's certificates)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rediss_verifies_the_server_against_the_platform_roots() {
        const PASSWORD: &str = "tls-Canary-5772";
        let k = keys("client", &[]);
        if let Ok(url) = std::env::var(TLS_CHILD) {
            // The child: SSL_CERT_FILE makes the test CA a platform root.
            let trusted = store(&url);
            assert!(trusted.put(&k, b"over-tls", TTL, false).await.unwrap());
            let stored = trusted.get(&k).await.unwrap().expect("stored");
            assert_eq!(stored.value, b"over-tls");
            return;
        }
        // A CA and a server certificate for 127.0.0.1 that it signed.
        let dir = std::env::temp_dir().join(format!("paytokens-tls-{}", random_id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ];
        openssl(
            &dir,
            &[
                ca.concat(),
                vec!["-days", "1", "-subj", "/CN=paytokens test CA"],
            ]
            .concat(),
        );
        let csr = [
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ];
        openssl(
            &dir,
            &[csr.concat(), vec!["-subj", "/CN=127.0.0.1"]].concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "server.ext",
            ],
        );
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let tls_port = redis_server::free_port().to_string();
        let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
        let server = RedisServer::start_with(&[
            "--requirepass",
            PASSWORD,
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
        let url = format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}");

        // Here the test CA is no platform root: the server is refused.
        let untrusted = store(&url);
        assert_eq!(
            untrusted.describe(),
            format!("rediss://:***@127.0.0.1:{tls_port}")
        );
        let err = untrusted
            .get(&k)
            .await
            .err()
            .expect("an untrusted certificate");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("Canary"), "{err}");
        // Nothing went through to the server.
        assert_eq!(server.cli(&["-a", PASSWORD, "DBSIZE"]), ["0"]);

        // With it as a platform root (a child process, so that this one's
        // environment stays as it is), TLS works.
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "store::redis::tests::rediss_verifies_the_server_against_the_platform_roots",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .env(TLS_CHILD, &url)
            .env("SSL_CERT_FILE", &ca)
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("run the test binary");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "the child failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(server.cli(&["-a", PASSWORD, "DBSIZE"]), ["1"]);
    }

    #[test]
    fn sentinel_and_cluster_urls_parse_and_never_show_the_password() {
        let sentinel =
            store("redis-sentinel://alice:pw-Secret-77@127.0.0.1:26379,127.0.0.1:26380/2#mymaster");
        assert_eq!(
            sentinel.describe(),
            "redis-sentinel://alice:***@127.0.0.1:26379,127.0.0.1:26380/2#mymaster"
        );
        assert_eq!(
            store("rediss-sentinel://:pw%2FSecret-77@sentinel-a,sentinel-b:1#svc").describe(),
            "rediss-sentinel://:***@sentinel-a:26379,sentinel-b:1#svc"
        );
        assert_eq!(
            store("redis-cluster://127.0.0.1:7000,127.0.0.1").describe(),
            "redis-cluster://127.0.0.1:7000,127.0.0.1:6379"
        );
        assert_eq!(
            store("rediss-cluster://alice:pw-Secret-77@[::1]:7000/").describe(),
            "rediss-cluster://alice:***@[::1]:7000"
        );
        for url in [
            "redis-sentinel://alice:pw-Secret-77@127.0.0.1:26379",
            "redis-sentinel://alice:pw-Secret-77@127.0.0.1:26379#",
            "redis-sentinel://alice:pw-Secret-77@127.0.0.1:26379/db#svc",
            "redis-sentinel://alice:pw-Secret-77@127.0.0.1:26379?x=1#svc",
            "redis-cluster://alice:pw-Secret-77@127.0.0.1:7000#svc",
            "redis-cluster://alice:pw-Secret-77@127.0.0.1:7000/1",
            "redis-cluster://alice:pw-Secret-77@127.0.0.1:7000,,127.0.0.1:7001",
            "redis-cluster://alice:pw-Secret-77@127.0.0.1:port",
            "redis-cluster://alice:pw-Secret-77@",
            "redis-cluster://alice:pw-Secret-77@127.0.0.1:7000/x/y",
            "redis-clusters://alice:pw-Secret-77@127.0.0.1:7000",
        ] {
            let Err(err) = RedisStore::open(url) else {
                panic!("{url} was accepted");
            };
            assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !shown.contains("Secret") && !shown.contains("alice"),
                    "{shown}"
                );
            }
        }
    }

    /// Waits until `n` sharded subscriptions to `channel` exist on the
    /// cluster's primaries.
    async fn wait_sharded(cluster: &mut RedisCluster, channel: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let primaries = cluster.primaries(&[]);
            let subscribed: usize = primaries
                .iter()
                .map(|&i| {
                    let answer = cluster.nodes[i].cli(&["PUBSUB", "SHARDNUMSUB", channel]);
                    answer
                        .get(1)
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(0)
                })
                .sum();
            if subscribed == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{subscribed} sharded subscriptions to the channel, not {n}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_a_cluster_an_entry_is_one_slot_every_call_works_and_watchers_hear_it() {
        let mut cluster = RedisCluster::start();
        let (a, b) = (store(&cluster.url()), store(&cluster.url()));
        let k = keys("client", &["a"]);
        let mut events = a.watch(&k);
        wait_sharded(&mut cluster, &channel(&k), 1).await;

        assert!(b.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
        let found = a.get(&k).await.unwrap().expect("the token");
        assert_eq!(found.value, b"token");
        b.put_failure(&k, b"failure", TTL).await.unwrap();
        assert_eq!(next_event(&mut events).await, Event::Stored);
        assert!(a.get_failure(&k).await.unwrap().is_some());
        assert_eq!(a.try_lock(&k, "a", LEASE).await.unwrap(), Lock::Acquired);
        assert!(matches!(
            b.try_lock(&k, "b", LEASE).await.unwrap(),
            Lock::Held(_)
        ));
        assert!(a.renew(&k, "a", LEASE).await.unwrap());
        a.release(&k, "a").await.unwrap();
        assert_eq!(next_event(&mut events).await, Event::Released);
        assert_eq!(b.take_budget(&k, 2, TTL).await.unwrap(), Take::Granted(1));
        b.record_failure(&k, "rejected").await.unwrap();
        b.record_store_failure(&k, "no answer", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(b.delete_if(&k, b"token", "mint-7").await.unwrap());
        assert_eq!(
            next_event(&mut events).await,
            Event::Deleted("mint-7".into())
        );

        // Every name of the credential is in one slot, on one primary.
        let mut names = Vec::new();
        for i in cluster.primaries(&[]) {
            names.extend(cluster.nodes[i].cli(&["--scan", "--pattern", "paytokens:*"]));
        }
        // The budget, the meta and the failure (the token was deleted, the
        // lock released).
        assert!(names.len() >= 3, "{names:?}");
        let slots: BTreeMap<String, Vec<String>> =
            names.iter().fold(BTreeMap::new(), |mut slots, name| {
                let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", name]).concat();
                slots.entry(slot).or_default().push(name.clone());
                slots
            });
        assert_eq!(slots.len(), 1, "names in several slots: {slots:?}");

        // Status and clear walk every primary.
        let other = keys("another-client", &[]);
        assert!(a.put(&other, b"token", TTL, false).await.unwrap());
        let status = a.status().await.unwrap();
        assert_eq!(status.len(), 2, "{status:?}");
        assert!(
            status
                .iter()
                .any(|c| c.id == k.credential && c.budget.is_some())
        );
        let cleared = b.clear().await.unwrap();
        assert!(cleared >= 4, "cleared {cleared}");
        for i in cluster.primaries(&[]) {
            assert!(
                cluster.nodes[i]
                    .cli(&["--scan", "--pattern", "paytokens:*"])
                    .is_empty()
            );
        }
        // A watcher dropped: its subscription goes with the next watch.
        drop(events);
        let _again = a.watch(&other);
        wait_sharded(&mut cluster, &channel(&k), 0).await;
        wait_sharded(&mut cluster, &channel(&other), 1).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_a_cluster_a_killed_primary_fails_calls_until_its_replica_takes_over() {
        let mut cluster = RedisCluster::start();
        let a = store(&cluster.url());
        let k = keys("client", &[]);
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        let holder = cluster
            .primary_holding(&[], "paytokens:*")
            .expect("a primary holds the token");
        // The replica takes over its slots; calls work again, with what was
        // replicated to it.
        cluster.kill_primary_holding(&[], "paytokens:*");
        eventually("a put after the failover", || {
            a.put(&k, b"token-2", TTL, false)
        })
        .await;
        let found = eventually("a get after the failover", || a.get(&k)).await;
        assert_eq!(found.expect("the token").value, b"token-2");
        let now = cluster
            .primary_holding(&[], "paytokens:*")
            .expect("a primary holds the token");
        assert_ne!(now, holder);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn through_sentinel_with_passwords_a_failover_is_followed() {
        const PASSWORD: &str = "pw-Sentinel-Secret-9";
        let mut set = RedisSentinels::start(Some(PASSWORD));
        let a = store(&set.url());
        assert!(!a.describe().contains(PASSWORD), "{}", a.describe());
        let k = keys("client", &[]);
        let mut events = a.watch(&k);
        wait_listeners(&set.primary, &["-a", PASSWORD], 1).await;
        assert!(a.put(&k, b"token", TTL, false).await.unwrap());
        assert_eq!(next_event(&mut events).await, Event::Stored);
        let name = token_key(&k);
        assert_eq!(set.primary.cli(&["-a", PASSWORD, "EXISTS", &name]), ["1"]);

        set.fail_over();
        // The next connections go to the new primary: writes land there.
        eventually("a put after the failover", || {
            a.put(&k, b"token-2", TTL, false)
        })
        .await;
        assert_eq!(
            set.replica.cli(&["-a", PASSWORD, "GET", &name]),
            ["token-2"]
        );
        // The listener follows too: a write is heard again.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = a.put(&k, b"token-3", TTL, false).await;
            if let Ok(Ok(Event::Stored)) = timeout(Duration::from_millis(500), events.recv()).await
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no notification after the failover"
            );
        }
    }
}
