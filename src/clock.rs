//! The time source of [`TokenCache`](crate::TokenCache), injected so that
//! tests can move through token lifetimes without sleeping through them.
//!
//! tokio's paused clock is no substitute when the token endpoint is a real
//! HTTP server: it auto-advances while the runtime waits on a socket, which
//! fires request timeouts that never elapsed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A monotonic clock the cache reads on every call and sleeps on for
/// background refresh.
pub trait Clock: Clone + Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Completes once [`now`](Clock::now) has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
}

/// The real clock, read at the kernel's tick resolution (a few
/// milliseconds: `CLOCK_MONOTONIC_COARSE` on Linux, through `coarsetime`).
/// The default.
///
/// A cache hit only asks whether a token's refresh time has passed, and
/// refresh times lie at least 10 s (or half the lifetime) before expiry, so a
/// few milliseconds of resolution cost nothing; reading the precise clock
/// was half the cost of a hit. Its instants share tokio's timeline (anchored
/// once), to within one tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The same moment on both clocks, taken once.
struct Anchor {
    coarse: coarsetime::Instant,
    precise: Instant,
}

static ANCHOR: std::sync::LazyLock<Anchor> = std::sync::LazyLock::new(|| Anchor {
    coarse: coarsetime::Instant::now_without_cache_update(),
    precise: Instant::now(),
});

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        let anchor = &*ANCHOR;
        // `now_without_cache_update`: `now` would also store into a global,
        // a write shared by every thread on every hit.
        let since = coarsetime::Instant::now_without_cache_update().duration_since(anchor.coarse);
        anchor.precise + Duration::from(since)
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        let clock = *self;
        async move {
            // Until *this* clock reaches the deadline: it may lag the precise
            // one by a tick, and a waker that checks too early finds nothing due.
            loop {
                let now = clock.now();
                if now >= deadline {
                    return;
                }
                tokio::time::sleep(deadline - now + Duration::from_millis(1)).await;
            }
        }
    }
}

/// A clock that runs with real time plus an offset moved forward by
/// [`ManualClock::advance`]: for tests that must cross token lifetimes
/// against a real server. Clones share the offset.
#[derive(Clone, Debug)]
pub struct ManualClock {
    offset: Arc<watch::Sender<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            offset: Arc::new(watch::Sender::new(Duration::ZERO)),
        }
    }
}

impl ManualClock {
    /// A clock reading real time until advanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`, waking sleepers whose deadline passed.
    pub fn advance(&self, by: Duration) {
        self.offset.send_modify(|offset| *offset += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + *self.offset.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        let mut changes = self.offset.subscribe();
        let clock = self.clone();
        async move {
            loop {
                let now = clock.now();
                if now >= deadline {
                    return;
                }
                let real = std::pin::pin!(tokio::time::sleep(deadline - now));
                let moved = std::pin::pin!(changes.changed());
                // Whichever comes first: real time passing or an advance.
                futures_util::future::select(real, moved).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic_and_on_tokios_timeline_within_a_tick() {
        let mut last = SystemClock.now();
        for _ in 0..10_000 {
            let before = Instant::now();
            let now = SystemClock.now();
            let after = Instant::now();
            assert!(now >= last, "went backwards");
            // Coarse clocks tick every 1-10 ms; allow a generous 50 ms.
            assert!(
                now + Duration::from_millis(50) >= before,
                "lags by more than a tick"
            );
            assert!(
                now <= after + Duration::from_millis(50),
                "leads by more than a tick"
            );
            last = now;
        }
    }
}
