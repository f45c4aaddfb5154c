//! The cache's side of a shared [`TokenStore`]: one mint per token lifetime
//! across processes.
//!
//! A fetch that a cache with a store starts (a miss, or a refresh that is
//! due) runs [`State::shared_fetch`]:
//!
//! 1. read the store: a fresh token there is taken, and nothing is minted;
//!    a failed mint recorded there (the error another process's mint got,
//!    while its cooldown lasts) is returned, and nothing is asked either;
//! 2. a token this process minted alone while the store failed is offered
//!    to the store (written only where none is), so that the fleet
//!    converges on one token;
//! 3. take the mint lock: its holder checks the store once more, takes one
//!    mint from the credential's budget in the store, mints while renewing
//!    its lease, stores the token (or, when the provider refused, was
//!    unavailable or answered nonsense, the failure, for the cooldown the
//!    cache's policy gives it), and releases the lock; everyone else
//!    waits (woken by the store's notifications, or polling) and goes back
//!    to 1. A holder that died loses the lock when its lease runs out, and
//!    a waiter takes it over. A waiter never mints because it waited: only
//!    the lock's holder mints.
//!
//! Every store call is bounded. When one fails, a process with a valid
//! token keeps it and asks the store again later. A process without one
//! that has seen another process's live lease keeps waiting for that mint
//! while the lease lasts (retrying the store); only a process that has no
//! valid token and has seen no live holder mints alone, under its own
//! budget, and offers that token to the store once it answers again. The
//! switch to and from that mode is logged once each.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::{Entry, Origin, Outcome, State, metric_names};
use crate::store::seal::Failure;
use crate::store::{Event, Keys, Lock, Record, StoreError, Stored, Take, seal};
use crate::{AccessToken, Clock, Provider, TokenError, TokenSource, TokenStore};

/// How many invalidated mints a process remembers, so that it never takes
/// one of them from the store (the delete may not have landed yet).
const REVOKED_KEPT: usize = 16;

/// A cache's store, its entry's keys, and what the process knows of it.
pub(super) struct Shared {
    pub(super) store: TokenStore,
    pub(super) keys: Keys,
    /// Whether the last store call failed (the switch is logged once).
    degraded: AtomicBool,
    /// The last store failure, and when the outage began, until the store
    /// answers again.
    last_error: Mutex<Option<(StoreError, std::time::Instant)>>,
    /// Mints invalidated here or by other processes.
    revoked: Mutex<VecDeque<String>>,
    /// Starts the listener for other processes' invalidations.
    listening: Once,
    /// Dropped with the cache, which stops the listener.
    _alive: tokio::sync::watch::Sender<()>,
    alive: tokio::sync::watch::Receiver<()>,
}

impl Shared {
    pub(super) fn new(store: TokenStore, keys: Keys) -> Self {
        let (alive_tx, alive) = tokio::sync::watch::channel(());
        Self {
            store,
            keys,
            degraded: AtomicBool::new(false),
            last_error: Mutex::new(None),
            revoked: Mutex::new(VecDeque::new()),
            listening: Once::new(),
            _alive: alive_tx,
            alive,
        }
    }

    /// One store call, bounded by the store's `op_timeout`. A success after
    /// failures is logged once.
    pub(super) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let bound = self.store.options.op_timeout;
        match tokio::time::timeout(bound, call).await {
            Ok(Ok(value)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    let outage = self
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    tracing::info!(target: "paytokens::store", store = %self.store.describe(),
                        entry = %self.keys.entry, "token store reachable again");
                    if let Some((err, since)) = outage {
                        // For `paytokens cache status`: the outage, once.
                        let what = match &err {
                            StoreError::Unavailable(why) if why.starts_with("no answer") => {
                                "no answer"
                            }
                            _ => "unavailable",
                        };
                        let backend = &self.store.backend;
                        let record =
                            backend.record_store_failure(&self.keys, what, since.elapsed());
                        let _ = tokio::time::timeout(bound, record).await;
                    }
                }
                Ok(value)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                bound.as_millis()
            ))),
        }
    }

    /// Records a failed store call (counted in
    /// [`STORE_FAILURES`](metric_names::STORE_FAILURES)); the first after a
    /// success is logged.
    pub(super) fn failed(&self, provider: Provider, err: &StoreError) {
        metrics::counter!(metric_names::STORE_FAILURES, super::PROVIDER => provider.id())
            .increment(1);
        {
            let mut last = self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let since = last
                .as_ref()
                .map_or_else(std::time::Instant::now, |(_, since)| *since);
            *last = Some((err.clone(), since));
        }
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "paytokens::store", %provider, store = %self.store.describe(),
                entry = %self.keys.entry, error = %err,
                "token store failed; keeping valid tokens, minting alone where none is valid, \
                 until it is back");
        } else {
            tracing::debug!(target: "paytokens::store", %provider, error = %err,
                "token store still failing");
        }
    }

    /// The last store failure, while the store has not answered since.
    pub(super) fn last_error(&self) -> Option<StoreError> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(err, _)| err.clone())
    }

    /// Remembers that mint `mint` was invalidated.
    pub(super) fn revoke(&self, mint: &str) {
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        if !revoked.iter().any(|m| m == mint) {
            if revoked.len() == REVOKED_KEPT {
                revoked.pop_front();
            }
            revoked.push_back(mint.to_owned());
        }
    }

    fn is_revoked(&self, mint: &str) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.iter().any(|m| m == mint)
    }
}

impl<S: TokenSource + 'static, C: Clock> State<S, C> {
    /// The fetch of a cache with a store (see the module docs).
    pub(super) async fn shared_fetch(self: &Arc<Self>, shared: &Shared) -> Outcome {
        self.listen(shared);
        let provider = self.source.provider();
        let options = &shared.store.options;
        let backend = &*shared.store.backend;
        let keys = &shared.keys;
        // Watch before looking, so that nothing stored in between is missed.
        let mut events = backend.watch(keys);
        // This process's id as the lock's holder: drawn only when it first
        // tries the lock (a token found in the store needs none).
        let mut holder = None;
        let started = Instant::now();
        let mut waited = false;
        let mut offered = false;
        // Whether the last holder was heard releasing the lock.
        let mut released = false;
        // Until when another process's lease was live, when last seen.
        // While it is, a store that stops answering is waited out (that
        // process is minting and will store its token), never a reason to
        // mint alone: only a process that has seen no live holder does.
        let mut live_lease: Option<Instant> = None;
        let mut trusting = false;
        macro_rules! store_error {
            ($err:expr) => {{
                let err = $err;
                if live_lease.is_some_and(|until| Instant::now() < until)
                    && started.elapsed() < options.max_wait
                {
                    shared.failed(provider, &err);
                    if !trusting {
                        trusting = true;
                        tracing::info!(target: "paytokens::store", %provider, entry = %keys.entry,
                            "token store not answering; waiting out the live lease of another \
                             process's mint instead of minting alone");
                    }
                    tokio::time::sleep(options.poll).await;
                    continue;
                }
                return self.store_failed(shared, err).await;
            }};
        }
        loop {
            match shared.call(backend.get(keys)).await {
                Err(err) => store_error!(err),
                Ok(found) => {
                    if let Some(entry) = found.and_then(|stored| self.open(shared, stored)) {
                        if self.clock.now() < entry.refresh_at {
                            if waited {
                                tracing::debug!(target: "paytokens::store", %provider,
                                    entry = %keys.entry, waited_ms = started.elapsed().as_millis() as u64,
                                    "took the token another process minted");
                            }
                            return Outcome::Token(entry);
                        }
                        // Due for refresh but valid: serve it meanwhile.
                        self.serve_meanwhile(entry);
                    }
                }
            }
            // A mint that failed moments ago, in any process: its error,
            // and nobody asks the provider again until its cooldown ends.
            match self.shared_failure(shared).await {
                Ok(Some(err)) => return Outcome::Failed(err),
                Ok(None) => {}
                Err(err) => store_error!(err),
            }
            let offer = if offered {
                None
            } else {
                self.offer_fallback(shared).await
            };
            if let Some(outcome) = offer {
                offered = true;
                match outcome {
                    Ok(Some(entry)) => return Outcome::Token(entry),
                    // Another process's token is there: read it.
                    Ok(None) => continue,
                    Err(err) => store_error!(err),
                }
            }
            let holder: &str = holder.get_or_insert_with(seal::random_id);
            match shared
                .call(backend.try_lock(keys, holder, options.lease))
                .await
            {
                Err(err) => store_error!(err),
                Ok(Lock::Acquired) => {
                    if released {
                        tracing::debug!(target: "paytokens::store", %provider, entry = %keys.entry,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "mint lock acquired after its holder released it without a token");
                    } else if waited {
                        tracing::info!(target: "paytokens::store", %provider, entry = %keys.entry,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "mint lock taken over: its holder's lease ran out");
                    } else {
                        tracing::debug!(target: "paytokens::store", %provider,
                            entry = %keys.entry, "mint lock acquired");
                    }
                    return self.mint_locked(shared, holder).await;
                }
                Ok(Lock::Held(left)) => {
                    live_lease = Some(Instant::now() + left);
                    if !waited {
                        tracing::debug!(target: "paytokens::store", %provider, entry = %keys.entry,
                            "waiting for another process's mint");
                        waited = true;
                    }
                    if started.elapsed() >= options.max_wait {
                        return Outcome::Failed(TokenError::Transient {
                            provider,
                            reason: format!(
                                "waited {} s for another process's token mint",
                                options.max_wait.as_secs()
                            ),
                            cause: crate::TransientCause::Other,
                            status: None,
                            retry_after: None,
                        });
                    }
                    let nap = left.min(options.poll).max(Duration::from_millis(1));
                    released = tokio::select! {
                        event = notified(&mut events) => event == Some(Event::Released),
                        () = tokio::time::sleep(nap) => false,
                    };
                }
            }
        }
    }

    /// The lock is ours: check once more, take from the budget, mint, store,
    /// release.
    async fn mint_locked(self: &Arc<Self>, shared: &Shared, holder: &str) -> Outcome {
        let provider = self.source.provider();
        let backend = &*shared.store.backend;
        let keys = &shared.keys;
        let release = || async {
            if let Err(err) = shared.call(backend.release(keys, holder)).await {
                // The lease ends it anyway.
                shared.failed(provider, &err);
            }
        };
        // A holder may have stored just before we locked.
        let saw_token;
        match shared.call(backend.get(keys)).await {
            Ok(found) => {
                saw_token = found.is_some();
                if let Some(entry) = found.and_then(|stored| self.open(shared, stored))
                    && self.clock.now() < entry.refresh_at
                {
                    release().await;
                    return Outcome::Token(entry);
                }
            }
            Err(err) => {
                release().await;
                return self.store_failed(shared, err).await;
            }
        }
        // Or failed just before we locked.
        match self.shared_failure(shared).await {
            Ok(None) => {}
            Ok(Some(err)) => {
                release().await;
                return Outcome::Failed(err);
            }
            Err(err) => {
                release().await;
                return self.store_failed(shared, err).await;
            }
        }
        let policy = &self.policy;
        let take = backend.take_budget(keys, policy.max_mints, policy.mint_window);
        match shared.call(take).await {
            Ok(Take::Granted(left)) => {
                self.budget.record(self.clock.now());
                metrics::gauge!(metric_names::BUDGET_REMAINING, super::PROVIDER => provider.id())
                    .set(f64::from(left));
            }
            Ok(Take::Exhausted(retry_after)) => {
                release().await;
                tracing::warn!(target: "paytokens::cache", %provider, max_mints = policy.max_mints,
                    window_s = policy.mint_window.as_secs(),
                    "fleet mint budget exhausted; not calling the provider");
                let err = TokenError::MintBudgetExhausted {
                    provider,
                    max_mints: policy.max_mints,
                    window: policy.mint_window,
                    retry_after,
                };
                let class = err.class();
                let id = provider.id();
                metrics::gauge!(metric_names::BUDGET_REMAINING, super::PROVIDER => id).set(0.0);
                metrics::counter!(metric_names::MINTS, super::PROVIDER => id, "outcome" => class)
                    .increment(1);
                metrics::counter!(metric_names::REFRESH_FAILURES, super::PROVIDER => id, "class" => class)
                    .increment(1);
                return Outcome::Failed(err);
            }
            Err(err) => {
                release().await;
                return self.store_failed(shared, err).await;
            }
        }
        let renewal = self.renew_while_minting(shared, holder);
        let result = self.fetch().await;
        renewal.abort();
        match result {
            Ok(token) => {
                let ttl = token.remaining(Instant::now());
                let (mint, sealed) = seal_token(keys, &token);
                // Where the store held no token, only where it still holds
                // none: another process may have stored one meanwhile (a
                // token it minted while the store failed, offered once the
                // store answered again, which it now serves as the
                // fleet's). Overwriting it would leave the fleet on two
                // tokens until the next refresh; the fleet keeps that one.
                let put = backend.put(keys, &sealed, ttl, !saw_token);
                let origin = match shared.call(put).await {
                    Ok(true) => Origin::Shared { mint, sealed },
                    Ok(false) => {
                        match shared.call(backend.get(keys)).await {
                            Ok(found) => {
                                if let Some(entry) =
                                    found.and_then(|stored| self.open(shared, stored))
                                    && self.clock.now() < entry.refresh_at
                                {
                                    tracing::debug!(target: "paytokens::store", %provider,
                                        entry = %keys.entry,
                                        "another process stored a token while this one minted: \
                                         keeping the stored one");
                                    release().await;
                                    return Outcome::Token(entry);
                                }
                            }
                            Err(err) => shared.failed(provider, &err),
                        }
                        // Unreadable or stale: this mint replaces it.
                        match shared.call(backend.put(keys, &sealed, ttl, false)).await {
                            Ok(_) => Origin::Shared { mint, sealed },
                            Err(err) => {
                                shared.failed(provider, &err);
                                Origin::Fallback
                            }
                        }
                    }
                    Err(err) => {
                        shared.failed(provider, &err);
                        Origin::Fallback
                    }
                };
                release().await;
                Outcome::Token(self.entry(token, origin, true))
            }
            Err(err) => {
                let failure = backend.record_failure(keys, err.class());
                if let Err(store_err) = shared.call(failure).await {
                    shared.failed(provider, &store_err);
                }
                // Shared before the release wakes the waiters: they return
                // this error instead of asking the provider again.
                if let Some(failure) = failure_of(&err) {
                    let failures = self.lock_flight().failures.saturating_add(1);
                    let cooldown = self.policy.backoff(failures, &err);
                    let sealed = keys.seal_failure(&failure);
                    let put = backend.put_failure(keys, &sealed, cooldown);
                    match shared.call(put).await {
                        Ok(()) => tracing::debug!(target: "paytokens::store", %provider,
                            entry = %keys.entry, class = err.class(),
                            cooldown_ms = cooldown.as_millis() as u64,
                            "shared a failed mint with the other processes"),
                        Err(store_err) => shared.failed(provider, &store_err),
                    }
                }
                release().await;
                Outcome::Failed(err)
            }
        }
    }

    /// Renews the lease every third of it until aborted.
    fn renew_while_minting(
        self: &Arc<Self>,
        shared: &Shared,
        holder: &str,
    ) -> tokio::task::JoinHandle<()> {
        let state = Arc::clone(self);
        let holder = holder.to_owned();
        let lease = shared.store.options.lease;
        tokio::spawn(async move {
            let Some(shared) = &state.shared else { return };
            let backend = &*shared.store.backend;
            loop {
                tokio::time::sleep(lease / 3).await;
                match shared
                    .call(backend.renew(&shared.keys, &holder, lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(target: "paytokens::store",
                            provider = %state.source.provider(), entry = %shared.keys.entry,
                            "mint lock lost while minting (its lease ran out)");
                        return;
                    }
                    Err(err) => shared.failed(state.source.provider(), &err),
                }
            }
        })
    }

    /// The store failed: keep a valid token (and ask again later), or mint
    /// alone under this process's budget.
    async fn store_failed(self: &Arc<Self>, shared: &Shared, err: StoreError) -> Outcome {
        let provider = self.source.provider();
        shared.failed(provider, &err);
        let now = self.clock.now();
        let valid = self
            .entry
            .load()
            .as_ref()
            .is_some_and(|e| now < e.expires_at);
        let err = TokenError::Transient {
            provider,
            reason: err.to_string(),
            cause: crate::TransientCause::Other,
            status: None,
            retry_after: None,
        };
        if valid {
            return Outcome::Deferred(err);
        }
        {
            let mut flight = self.lock_flight();
            if let Err(err) = self.take_local(&mut flight, now) {
                return Outcome::Failed(err);
            }
        }
        tracing::info!(target: "paytokens::store", %provider, entry = %shared.keys.entry,
            "no valid token and the store is unavailable: minting alone");
        match self.fetch().await {
            Ok(token) => Outcome::Token(self.entry(token, Origin::Fallback, true)),
            Err(err) => Outcome::Failed(err),
        }
    }

    /// A token minted here while the store failed, still fresh, offered to
    /// the store where it holds none. `None`: nothing to offer;
    /// `Some(Ok(None))`: the store has another one.
    pub(super) async fn offer_fallback(
        self: &Arc<Self>,
        shared: &Shared,
    ) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        let now = self.clock.now();
        let current = self.entry.load_full()?;
        if !matches!(current.origin, Origin::Fallback) || now >= current.expires_at {
            return None;
        }
        let token = &current.token;
        let ttl = token.remaining(Instant::now());
        let (mint, sealed) = seal_token(&shared.keys, token);
        let put = shared.store.backend.put(&shared.keys, &sealed, ttl, true);
        Some(match shared.call(put).await {
            Ok(true) => {
                tracing::info!(target: "paytokens::store", provider = %self.source.provider(),
                    entry = %shared.keys.entry, "stored the token minted while the store was unavailable");
                let token = rebuild(token);
                Ok(token.map(|t| self.entry(t, Origin::Shared { mint, sealed }, false)))
            }
            Ok(false) => Ok(None),
            Err(err) => Err(err),
        })
    }

    /// Offers this process's token, minted while the store failed, to the
    /// store once it answers again (only where none is stored), asking
    /// again with backoff (`recheck`, doubling up to the policy's
    /// `retry_max`) until it is stored, another token is there (then this
    /// process takes that one), or it expired.
    pub(super) fn offer_when_back(self: &Arc<Self>) {
        let Some(shared) = &self.shared else { return };
        let first = shared.store.options.recheck;
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(wait).await;
                let Some(state) = weak.upgrade() else { return };
                let Some(shared) = &state.shared else { return };
                let taken = match state.offer_fallback(shared).await {
                    None => return,
                    Some(Ok(Some(entry))) => Some(entry),
                    // Another process's token: take it, if it opens.
                    Some(Ok(None)) => {
                        match shared.call(shared.store.backend.get(&shared.keys)).await {
                            Ok(found) => found.and_then(|stored| state.open(shared, stored)),
                            Err(err) => {
                                shared.failed(state.source.provider(), &err);
                                None
                            }
                        }
                    }
                    Some(Err(err)) => {
                        shared.failed(state.source.provider(), &err);
                        wait = (wait * 2).min(state.policy.retry_max.max(first));
                        continue;
                    }
                };
                if let Some(entry) = taken {
                    let _flight = state.lock_flight();
                    let current = state.entry.load();
                    if current
                        .as_ref()
                        .is_some_and(|e| matches!(e.origin, Origin::Fallback))
                    {
                        drop(current);
                        state.entry.store(Some(entry));
                    }
                }
                return;
            }
        });
    }

    /// Serves a valid token from the store while this process has none,
    /// until the refresh that is due comes.
    fn serve_meanwhile(&self, entry: Arc<Entry>) {
        let now = self.clock.now();
        let _flight = self.lock_flight();
        let current = self.entry.load();
        if current.as_ref().is_none_or(|e| now >= e.expires_at) {
            drop(current);
            self.entry.store(Some(entry));
        }
    }

    /// The error of the entry's last failed mint, by any process, while its
    /// cooldown lasts; `None` when there is none (or it does not open with
    /// this credential's key).
    async fn shared_failure(&self, shared: &Shared) -> Result<Option<TokenError>, StoreError> {
        let Some(stored) = shared
            .call(shared.store.backend.get_failure(&shared.keys))
            .await?
        else {
            return Ok(None);
        };
        let provider = self.source.provider();
        let Some(failure) = shared.keys.open_failure(&stored.value) else {
            tracing::warn!(target: "paytokens::store", %provider, entry = %shared.keys.entry,
                "refused a stored failed mint that does not open with this credential's key");
            return Ok(None);
        };
        tracing::debug!(target: "paytokens::store", %provider, entry = %shared.keys.entry,
            left_ms = stored.ttl.as_millis() as u64,
            "another process's mint failed; not asking the provider during its cooldown");
        Ok(Some(error_of(provider, failure, stored.ttl)))
    }

    /// The stored token as a cache entry; `None` when it does not open with
    /// this cache's key (tampered, swapped, plaintext, another secret), was
    /// invalidated, or is not a usable token.
    fn open(&self, shared: &Shared, stored: Stored) -> Option<Arc<Entry>> {
        let provider = self.source.provider();
        let Some(record) = shared.keys.open(&stored.value) else {
            tracing::warn!(target: "paytokens::store", %provider, entry = %shared.keys.entry,
                "refused a stored token that does not open with this credential's key");
            return None;
        };
        if shared.is_revoked(&record.mint) {
            return None;
        }
        let lifetime = record.lifetime();
        let ttl = stored.ttl.min(lifetime);
        // Its expiry is the store's: issued `lifetime - ttl` ago.
        let now = Instant::now();
        let issued_at = now.checked_sub(lifetime - ttl).unwrap_or(now);
        let Some(token) = AccessToken::new(
            provider,
            SecretString::from(record.token),
            record.scopes,
            lifetime,
            issued_at,
        ) else {
            tracing::warn!(target: "paytokens::store", %provider, entry = %shared.keys.entry,
                "refused a stored token that cannot be sent in a header");
            return None;
        };
        Some(self.entry(
            token,
            Origin::Shared {
                mint: record.mint,
                sealed: stored.value,
            },
            false,
        ))
    }

    /// Starts, once, the task that drops this process's copy of a token
    /// another process invalidated.
    fn listen(self: &Arc<Self>, shared: &Shared) {
        shared.listening.call_once(|| {
            let mut events = shared.store.backend.watch(&shared.keys);
            let mut alive = shared.alive.clone();
            let state: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        event = events.recv() => event,
                        _ = alive.changed() => return,
                    };
                    match event {
                        Ok(Event::Deleted(mint)) => {
                            let Some(state) = state.upgrade() else { return };
                            state.dropped_elsewhere(&mint);
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        });
    }

    /// Another process invalidated mint `mint`: drop our copy of it.
    fn dropped_elsewhere(&self, mint: &str) {
        let Some(shared) = &self.shared else { return };
        shared.revoke(mint);
        let _flight = self.lock_flight();
        let current = self.entry.load();
        if let Some(entry) = current.as_ref()
            && let Origin::Shared { mint: ours, .. } = &entry.origin
            && ours == mint
        {
            drop(current);
            self.entry.store(None);
            tracing::debug!(target: "paytokens::store", provider = %self.source.provider(),
                entry = %shared.keys.entry, "dropped a token another process invalidated");
        }
    }
}

/// The next event (`None` when some were missed); never completes when the
/// store sends none.
async fn notified(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Option<Event> {
    match events.recv().await {
        Ok(event) => Some(event),
        Err(RecvError::Lagged(_)) => None,
        Err(RecvError::Closed) => std::future::pending().await,
    }
}

/// What other processes are told of `err`: the provider's answer (a
/// rejection, an outage, an unusable response); `None` for errors of this
/// process alone (its configuration, its budget).
fn failure_of(err: &TokenError) -> Option<Failure> {
    match err {
        TokenError::Rejected {
            status,
            code,
            message,
            ..
        } => Some(Failure::Rejected {
            status: *status,
            code: code.clone(),
            message: message.clone(),
        }),
        TokenError::Transient {
            reason,
            cause,
            status,
            ..
        } => Some(Failure::Transient {
            reason: reason.clone(),
            cause: format!("{cause:?}"),
            status: *status,
        }),
        TokenError::InvalidResponse {
            status, problem, ..
        } => Some(Failure::Invalid {
            status: *status,
            problem: problem.clone(),
        }),
        _ => None,
    }
}

/// The error another process's failed mint stands for; `left` is what is
/// left of its cooldown (a transient one's `retry_after`).
fn error_of(provider: Provider, failure: Failure, left: Duration) -> TokenError {
    match failure {
        Failure::Rejected {
            status,
            code,
            message,
        } => TokenError::Rejected {
            provider,
            status,
            code,
            message,
        },
        Failure::Transient {
            reason,
            cause,
            status,
        } => {
            use crate::TransientCause as C;
            let cause = [
                C::Status,
                C::Timeout,
                C::ConnectionRefused,
                C::HostNotFound,
                C::Tls,
                C::ConnectionReset,
            ]
            .into_iter()
            .find(|c| format!("{c:?}") == cause)
            .unwrap_or(C::Other);
            TokenError::Transient {
                provider,
                reason,
                cause,
                status,
                retry_after: Some(left),
            }
        }
        Failure::Invalid { status, problem } => TokenError::InvalidResponse {
            provider,
            status,
            problem,
        },
    }
}

/// `token` sealed for the store under a fresh mint id.
fn seal_token(keys: &Keys, token: &AccessToken) -> (String, Vec<u8>) {
    let mint = seal::random_id();
    let record = Record {
        token: token.secret().expose_secret().to_owned(),
        scopes: token.scopes().to_vec(),
        lifetime_ms: u64::try_from(token.lifetime().as_millis()).unwrap_or(u64::MAX),
        mint: mint.clone(),
    };
    (mint, keys.seal(&record))
}

/// The same token in a new value (`AccessToken` is not `Clone`, on purpose).
fn rebuild(token: &AccessToken) -> Option<AccessToken> {
    AccessToken::new(
        token.provider(),
        token.secret().clone(),
        token.scopes().to_vec(),
        token.lifetime(),
        token.issued_at(),
    )
}
