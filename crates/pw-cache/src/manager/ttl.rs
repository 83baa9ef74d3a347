//! [`TtlManager`]: the background cleaner that removes expired entries from every tier every
//! `cleanup_interval_seconds`.
//!
//! The cleaner reaches the cache only through [`Expire`], one method that the manager's
//! shared state implements: it knows nothing of the tiers, and holds the cache weakly, so a
//! dropped manager ends its thread.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::sync::{lock, wait_timeout_while};

/// What the cleaner needs of the cache it cleans.
pub(super) trait Expire: Send + Sync {
    /// Removes expired entries from every serving tier now; how many from each.
    fn expire_now(&self) -> CleanupReport;
}

/// What one cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Expired entries removed from L1, L2 and L3.
    pub removed: [usize; 3],
    /// Tiers whose cleanup failed, with the error (their expired entries are still there).
    pub failures: Vec<(pw_cache_model::CacheTierType, String)>,
}

impl CleanupReport {
    /// Removed from all tiers together.
    pub fn total(&self) -> usize {
        self.removed.iter().sum()
    }
}

#[derive(Default)]
struct State {
    running: bool,
    /// Completed background runs (for observers and tests).
    runs: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The background TTL cleaner of a [`crate::CacheManager`] (the reference's `TTLManager`):
/// when started, removes expired entries from every serving tier at once and then every
/// interval. `start` and `stop` are idempotent; the manager stops it when dropped or closed.
/// Expired entries are also removed lazily: a lookup that finds one removes it.
pub struct TtlManager {
    cache: Weak<dyn Expire>,
    interval: Duration,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TtlManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlManager")
            .field("interval", &self.interval)
            .field("running", &self.is_running())
            .finish()
    }
}

impl TtlManager {
    /// A cleaner of `cache` every `interval`, not started.
    pub(super) fn new(cache: Weak<dyn Expire>, interval: Duration) -> Self {
        Self {
            cache,
            interval,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// The time between two cleanups.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the cleaner runs.
    pub fn is_running(&self) -> bool {
        lock(&self.shared.state).running
    }

    /// How many background cleanups have completed since the manager was opened.
    pub fn runs(&self) -> u64 {
        lock(&self.shared.state).runs
    }

    /// Starts the cleaner (nothing if it runs). Fails only if the OS refuses a thread.
    pub fn start(&self) {
        let mut thread_slot = lock(&self.thread);
        if thread_slot.is_some() {
            return;
        }
        lock(&self.shared.state).running = true;
        let shared = Arc::clone(&self.shared);
        let cache = self.cache.clone();
        let interval = self.interval;
        let spawned = thread::Builder::new()
            .name("pw-cache-ttl".into())
            .spawn(move || cleanup_loop(&shared, &cache, interval));
        match spawned {
            Ok(handle) => *thread_slot = Some(handle),
            Err(e) => {
                lock(&self.shared.state).running = false;
                tracing::error!(error = %e, "cannot start the TTL cleanup thread");
            }
        }
    }

    /// Stops the cleaner and waits for it (nothing if it does not run).
    pub fn stop(&self) {
        let handle = lock(&self.thread).take();
        lock(&self.shared.state).running = false;
        self.shared.wake.notify_all();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for TtlManager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Cleans `cache` at once and then every `interval`, until stopped or the cache is gone.
/// Holds the cache only while cleaning.
fn cleanup_loop(shared: &Shared, cache: &Weak<dyn Expire>, interval: Duration) {
    loop {
        let Some(manager) = cache.upgrade() else {
            return;
        };
        let report = manager.expire_now();
        drop(manager);
        if report.total() > 0 {
            tracing::debug!(removed = ?report.removed, "TTL cleanup removed expired entries");
        }
        let state = lock(&shared.state);
        if !state.running {
            return;
        }
        let mut state = state;
        state.runs += 1;
        let state = wait_timeout_while(&shared.wake, state, interval, |s| s.running);
        if !state.running {
            return;
        }
    }
}
