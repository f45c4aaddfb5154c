//! [`TokenStore`]: where [`TokenCache`](crate::TokenCache)s in many
//! processes share their tokens, so that a fleet mints one token per
//! lifetime, not one per replica or per CLI run.
//!
//! Three kinds of store:
//!
//! - **in-process** (no `TokenStore`, the library's default): each process
//!   keeps its own tokens, as [`TokenCache::new`](crate::TokenCache::new)
//!   always did;
//! - **Redis** (`TokenStore::redis`, feature `redis`), for replicas on
//!   many machines: `redis://` or `rediss://` (TLS through rustls), with
//!   `user:password@` for AUTH or an ACL user;
//! - **a directory** ([`TokenStore::file`]), for processes on one machine
//!   (the CLI's default, in the user's cache directory): one file per entry,
//!   written atomically, under an OS file lock; the directory must be 0700
//!   and its files 0600, or they are refused.
//!
//! The cache keeps its in-process copy in front: hits never touch the
//! store, which is read only on a miss or when a refresh is due. There,
//! exactly one process mints, under a lease lock, while the others wait for
//! it and read what it stored; the mint budget is counted per credential in
//! the store; an invalidated token is deleted only if it is still the one
//! stored, and other processes drop their copy. Every store call is bounded
//! ([`StoreOptions::op_timeout`]); when the store fails, callers keep their
//! valid token, and a process with none mints alone under its own budget
//! until the store is back. See [`TokenCache::with_store`](crate::TokenCache::with_store).
//!
//! Nothing in a store is readable without the client secret: names are
//! keyed hashes and values are AES-256-GCM, keyed from the secret with
//! HKDF-SHA256. HKDF assumes a high-entropy secret (the providers' client
//! secrets are long random strings); a human-chosen secret would be open to
//! offline guessing by whoever can read the store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

#[cfg(unix)]
mod file;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod seal;

pub(crate) use seal::{Keys, Record};

/// Why a store could not be used. Never holds a password, token or secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's address or options are wrong (a bad URL, a directory
    /// readable by others).
    #[error("token store configuration: {0}")]
    Config(String),
    /// The store did not answer in time, refused, or failed.
    #[error("token store unavailable: {0}")]
    Unavailable(String),
}

/// How a cache uses its store.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The bound on every store call. Default: 1 s: a process's first call
    /// also connects (TCP, TLS, AUTH), and on a loaded machine 20 processes
    /// starting together took longer than 250 ms for it, which made one of
    /// them mint alone. Only a caller with no valid token ever waits for
    /// it.
    pub op_timeout: Duration,
    /// The mint lock's lease: renewed every third of it while the mint
    /// runs, taken over by another process when its holder died. Default:
    /// 5 s.
    pub lease: Duration,
    /// How often a waiting process checks the store when no notification
    /// came (notifications wake it at once). Default: 250 ms.
    pub poll: Duration,
    /// The longest a process waits for another one's mint before it gives
    /// up with [`TokenError::Transient`](crate::TokenError::Transient).
    /// Default: 60 s.
    pub max_wait: Duration,
    /// After the store failed: how soon a process with a token of its own
    /// checks it again (doubling up to `retry_max` of the cache's policy),
    /// to converge on the store's token. Default: 1 s.
    pub recheck: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            op_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(250),
            max_wait: Duration::from_secs(60),
            recheck: Duration::from_secs(1),
        }
    }
}

/// A shared store of tokens. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct TokenStore {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) options: StoreOptions,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("at", &self.backend.describe())
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    /// A Redis store at `url` (`rediss` forms: TLS over rustls, with the
    /// platform's roots):
    ///
    /// - one server: `redis://[user:password@]host:port[/db]`,
    ///   `rediss://...`;
    /// - the primary of a Sentinel service, in Lettuce's form:
    ///   `redis-sentinel://[user:password@]host[:port][,host[:port]...][/db]#service`
    ///   (port 26379 by default), `rediss-sentinel://...`; the user and
    ///   password authenticate with the sentinels and the data nodes alike.
    ///   Every new connection asks the sentinels for the primary, so a
    ///   failover is followed;
    /// - a Redis Cluster, by one or more of its nodes:
    ///   `redis-cluster://[user:password@]host[:port][,host[:port]...]`
    ///   (port 6379 by default), `rediss-cluster://...`. Every name of a
    ///   credential carries the same hash tag, so each script touches one
    ///   slot; notifications are sharded (`SSUBSCRIBE`, Redis 7).
    ///
    /// Connects lazily, and reconnects after failures; a password is never
    /// printed ([`TokenStore::describe`] shows `***`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_backend(redis::RedisStore::open(url)?))
    }

    /// A store in directory `dir`, for processes on one machine. The
    /// directory is created 0700 if missing; an existing one, or an entry
    /// file, that others can read or write is refused.
    #[cfg(unix)]
    pub fn file(dir: impl Into<std::path::PathBuf>) -> Result<Self, StoreError> {
        Ok(Self::from_backend(file::FileStore::open(dir.into())?))
    }

    /// The store a URL names: `redis://…`, `rediss://…`,
    /// `redis-sentinel://…`, `redis-cluster://…` and their `rediss-` forms
    /// (see [`TokenStore::redis`]; with the `redis` feature, without it a
    /// [`StoreError::Config`] saying so), `file:<dir>`; or `None` for
    /// `none` (in-process only).
    pub fn from_url(url: &str) -> Result<Option<Self>, StoreError> {
        if url == "none" {
            return Ok(None);
        }
        let redis = [
            "redis",
            "rediss",
            "redis-sentinel",
            "rediss-sentinel",
            "redis-cluster",
            "rediss-cluster",
        ];
        if redis.iter().any(|scheme| {
            url.strip_prefix(scheme)
                .is_some_and(|rest| rest.starts_with("://"))
        }) {
            #[cfg(feature = "redis")]
            return Self::redis(url).map(Some);
            #[cfg(not(feature = "redis"))]
            return Err(StoreError::Config(
                "a Redis store needs paytokens' `redis` feature, which this build lacks".into(),
            ));
        }
        #[cfg(unix)]
        if let Some(dir) = url.strip_prefix("file:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err(StoreError::Config("file: needs a directory".into()));
            }
            return Self::file(dir).map(Some);
        }
        Err(StoreError::Config(
            "the store must be redis://…, rediss://…, redis-sentinel://…, redis-cluster://… \
             (or their rediss- forms), file:<dir> or none"
                .into(),
        ))
    }

    fn from_backend(backend: impl Backend) -> Self {
        Self {
            backend: Arc::new(backend),
            options: StoreOptions::default(),
        }
    }

    /// The same store with `options`.
    pub fn with_options(mut self, options: StoreOptions) -> Self {
        self.options = options;
        self
    }

    /// What the store holds, per credential, without secrets: the ids are
    /// the keyed hashes of the store's names.
    pub async fn status(&self) -> Result<Vec<CredentialStatus>, StoreError> {
        self.backend.status().await
    }

    /// Deletes everything paytokens stored; returns how many entries
    /// (tokens, budgets, locks, records) went.
    pub async fn clear(&self) -> Result<usize, StoreError> {
        self.backend.clear().await
    }

    /// Where the store is, for messages: the URL without its password, or
    /// the directory.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }
}

/// One credential's state in a store, as [`TokenStore::status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialStatus {
    /// The credential's id in the store (a keyed hash: it names no provider
    /// or client).
    pub id: String,
    /// Its tokens (one per scope set), with the time each has left.
    pub tokens: Vec<EntryStatus>,
    /// Mints counted in the current budget window.
    pub mints_used: u32,
    /// The budget and its window, as the last process to mint set them.
    pub budget: Option<(u32, Duration)>,
    /// The class of the last failed mint (`rejected`, `transient`, …) and
    /// how long ago it was, if one failed since the last success.
    pub last_error: Option<(String, Duration)>,
    /// The last time this store could not be used by a process of this
    /// credential (`no answer` or `unavailable`) and how long ago that
    /// began, as the process recorded it once the store answered again.
    pub last_store_failure: Option<(String, Duration)>,
}

/// One stored token, as [`TokenStore::status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryStatus {
    /// The entry's id in the store (a keyed hash of the scopes).
    pub id: String,
    /// The time it has left, by the store's clock.
    pub expires_in: Duration,
}

/// The largest value a store may hand back (1 MiB): tokens are bounded by
/// the response limit, budgets by the policy; anything larger is refused
/// (a miss), so that memory stays bounded whatever a store holds.
pub(crate) const MAX_VALUE_BYTES: u64 = 1 << 20;

/// A sealed value read from a store, with its time to live by the store's
/// own clock.
pub(crate) struct Stored {
    pub(crate) value: Vec<u8>,
    pub(crate) ttl: Duration,
}

/// The outcome of trying to take the mint lock.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Taken: the caller holds it for the lease.
    Acquired,
    /// Held by another process, for this much longer at most.
    Held(Duration),
}

/// The outcome of taking one mint from the credential's budget.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken; this many are left in the window.
    Granted(u32),
    /// None left; one is again after this long.
    Exhausted(Duration),
}

/// What happened to an entry, as other processes hear it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A token was stored.
    Stored,
    /// The mint lock was released.
    Released,
    /// The token of mint `.0` was invalidated (deleted).
    Deleted(String),
}

/// One kind of store. Every method is one short exchange with the store;
/// the cache bounds each with [`StoreOptions::op_timeout`] and treats an
/// error or a timeout alike. Values are opaque sealed bytes to a backend.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Where the store is, without a password.
    fn describe(&self) -> String;

    /// The sealed token of `keys`' entry and its time to live.
    fn get<'a>(&'a self, keys: &'a Keys) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Stores `value` as the entry's token for `ttl`, then announces
    /// [`Event::Stored`]. With `only_if_absent`, writes only where no token
    /// is stored; returns whether it wrote.
    fn put<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The sealed outcome of the entry's last failed mint, while its
    /// cooldown lasts, and the time it has left.
    fn get_failure<'a>(
        &'a self,
        keys: &'a Keys,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Stores `value` as the entry's failed mint for `cooldown` (replacing
    /// an earlier one), then announces [`Event::Stored`].
    fn put_failure<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        cooldown: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes the entry's token only if it is still `value`, then
    /// announces [`Event::Deleted`] with `mint`; returns whether it deleted.
    fn delete_if<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        mint: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Takes the entry's mint lock for `holder` (a random id) for `lease`,
    /// if no one holds it.
    fn try_lock<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Lock, StoreError>>;

    /// Extends `holder`'s lease; `false` if it no longer holds the lock.
    fn renew<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases the lock if `holder` still holds it (compare-and-delete),
    /// then announces [`Event::Released`].
    fn release<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Atomically takes one mint from the credential's budget of `max` per
    /// `window`, counted on the store's clock; records the budget for
    /// [`status`](Backend::status) and clears the last error.
    fn take_budget<'a>(
        &'a self,
        keys: &'a Keys,
        max: u32,
        window: Duration,
    ) -> BoxFuture<'a, Result<Take, StoreError>>;

    /// Records that a process of the credential could not use the store,
    /// `what` (`no answer`, `unavailable`), from `ago` before now.
    fn record_store_failure<'a>(
        &'a self,
        keys: &'a Keys,
        what: &'static str,
        ago: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records that the credential's last mint failed with error `class`.
    fn record_failure<'a>(
        &'a self,
        keys: &'a Keys,
        class: &'static str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Events about `keys`' entry from every process, from now on. A store
    /// without notifications returns a receiver that never fires; waiters
    /// poll as well.
    fn watch(&self, keys: &Keys) -> tokio::sync::broadcast::Receiver<Event>;

    /// Every credential's state.
    fn status(&self) -> BoxFuture<'_, Result<Vec<CredentialStatus>, StoreError>>;

    /// Deletes everything paytokens stored; how many entries went.
    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
}
