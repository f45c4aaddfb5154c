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

/// The real clock (tokio's `Instant`, which is `std::time::Instant` outside
/// tokio's test utilities). The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(deadline)
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
