//! One TRACE capture for the whole test binary. A global subscriber,
//! installed once by [`install`] before a test does anything, formats every
//! event (and every span as it closes) of every thread, and each formatted
//! line is
//!
//! - scanned for needles: `CANARY` (every canary client id, secret and
//!   token has it) and whatever a test adds with [`watch_for`]; a hit is a
//!   leak, which [`assert_nothing_leaked`] reports;
//! - appended to the current thread's buffer when its test asked for one
//!   with [`thread_capture`] (tests on a current-thread runtime, whose
//!   fetches run on their own thread);
//! - kept when it is a `Bearer` decision ([`decisions`]) or a "token store
//!   failed" warning ([`store_failed_warnings`]).
//!
//! One subscriber for every test: a subscriber set per test races with the
//! callsites that other tests register at the same time, and a second
//! global one cannot be installed.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Once, PoisonError};

use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Default)]
struct Scanned {
    needles: HashSet<String>,
    leaks: Vec<String>,
    decisions: HashSet<String>,
    store_failed: Vec<String>,
}

static SCANNED: LazyLock<Mutex<Scanned>> = LazyLock::new(|| {
    Mutex::new(Scanned {
        needles: HashSet::from(["CANARY".to_owned()]),
        ..Scanned::default()
    })
});

fn scanned() -> MutexGuard<'static, Scanned> {
    SCANNED.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static THREAD: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Installs the capture, once for the binary: call it before anything else.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(FmtSpan::CLOSE)
            .with_writer(|| Line(Vec::new()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("only this module installs a global subscriber");
    });
}

/// Adds `needle` to what no traced line may hold.
pub fn watch_for(needle: &str) {
    scanned().needles.insert(needle.to_owned());
}

/// Fails when any line traced so far, by any test, held a needle.
pub fn assert_nothing_leaked() {
    let leaks = scanned().leaks.clone();
    assert!(leaks.is_empty(), "traced a canary: {}", leaks.join(""));
}

/// The `Bearer` decisions traced so far (the `decision` field's values).
pub fn decisions() -> HashSet<String> {
    scanned().decisions.clone()
}

/// How many "token store failed" warnings named the store at `at`
/// (`host:port`).
pub fn store_failed_warnings(at: &str) -> usize {
    scanned()
        .store_failed
        .iter()
        .filter(|line| line.contains(at) && line.contains("WARN"))
        .count()
}

/// Installs the capture and collects, from now on, what this thread
/// traces.
pub fn thread_capture() -> Captured {
    install();
    let captured = Captured::default();
    THREAD.with(|thread| *thread.borrow_mut() = Some(captured.clone()));
    captured
}

/// What one thread traced, as text.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything collected since the last `take`.
    pub fn take(&self) -> String {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&std::mem::take(&mut *bytes)).into_owned()
    }
}

/// One formatted line as it is written; scanned when the subscriber is
/// done with it.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0).into_owned();
        THREAD.with(|thread| {
            if let Some(captured) = &*thread.borrow() {
                captured
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(text.as_bytes());
            }
        });
        let mut scanned = scanned();
        if scanned.needles.iter().any(|needle| text.contains(needle)) {
            scanned.leaks.push(text.clone());
        }
        for part in text.split("decision=\"").skip(1) {
            let decision = part.split('"').next().unwrap_or_default();
            scanned.decisions.insert(decision.to_owned());
        }
        if text.contains("token store failed") {
            scanned.store_failed.push(text);
        }
    }
}
