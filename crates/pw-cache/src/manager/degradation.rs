//! Degradation: a disk tier's slot, what the tier missed while it could not be written, and
//! the probe thread that serves it again (see the module docs of [`super`], "Degradation").
//!
//! A tier fails [`pw_cache_tiers::FAILURE_THRESHOLD`] writes in a row (or its own health says
//! it is disabled): [`Inner::failed`] flags it degraded and wakes the probe thread. Every write
//! or delete it misses meanwhile is noted in its slot ([`TierSlot::stale`] keys, or a whole
//! clear); [`Inner::maintain`] probes it, serves it again when a probe succeeds, and replays
//! what it missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pw_cache_model::timestamp::now_utc;
use pw_cache_model::{CacheEntry, CacheTierType, OffsetDateTime};
use pw_cache_tiers::{CacheTier, TierError};

use super::Inner;
use crate::sync::{lock, wait_timeout_while};

/// Keys remembered per tier while it is degraded; beyond this the tier is cleared on recovery
/// (of what was written before the overflow) instead of having each key removed (a cache may
/// lose entries, never serve stale ones).
const MAX_RESYNC_KEYS: usize = 100_000;

/// What a degraded tier missed: keys written or deleted while it was skipped (its copies are
/// stale), each with when it last missed one (the system clock, as the tiers stamp
/// `updated_at`), or a clear (and when).
#[derive(Debug, Default)]
struct Resync {
    keys: HashMap<String, OffsetDateTime>,
    clear_all: bool,
    /// When the clear (or the overflow of `keys` standing for one) was last missed.
    cleared_at: Option<OffsetDateTime>,
}

/// A disk tier with the manager's view of its state.
pub(super) struct TierSlot {
    pub(super) tier: Box<dyn CacheTier>,
    pub(super) kind: CacheTierType,
    /// Its files are on this host where the config says: opened from the config, not given
    /// to the builder, and not a Redis L3.
    pub(super) configured: bool,
    degraded: AtomicBool,
    /// Switched off by the application ([`super::CacheManager::set_tier_enabled`]): skipped as
    /// a degraded tier is, but not probed back into service.
    pub(super) switched_off: AtomicBool,
    /// Consecutive failed writes (puts, deletes, clears). Reads succeeding in between do not
    /// reset it, so a tier that can be read but not written (a read-only directory) degrades.
    write_failures: AtomicU32,
    resync: Mutex<Resync>,
    /// Whether `resync` holds anything (read without the mutex on every lookup).
    resync_pending: AtomicBool,
}

impl TierSlot {
    /// `tier` as `kind`, serving, having missed nothing.
    pub(super) fn new(tier: Box<dyn CacheTier>, kind: CacheTierType, configured: bool) -> Self {
        Self {
            tier,
            kind,
            configured,
            degraded: AtomicBool::new(false),
            switched_off: AtomicBool::new(false),
            write_failures: AtomicU32::new(0),
            resync: Mutex::new(Resync::default()),
            resync_pending: AtomicBool::new(false),
        }
    }

    /// Whether the tier is used (not degraded, not switched off).
    pub(super) fn serving(&self) -> bool {
        !self.degraded.load(Ordering::Acquire) && !self.switched_off.load(Ordering::Acquire)
    }

    /// Whether the tier missed writes, deletes or a clear not replayed yet.
    pub(super) fn resync_pending(&self) -> bool {
        self.resync_pending.load(Ordering::Acquire)
    }

    /// Whether this tier's copy of `key` may be stale (it missed a write or delete of it).
    pub(super) fn stale(&self, key: &str) -> bool {
        if !self.resync_pending.load(Ordering::Acquire) {
            return false;
        }
        let resync = lock(&self.resync);
        resync.clear_all || resync.keys.contains_key(key)
    }

    /// Whether lookups of `key` may read this tier: it is serving, and its copy of `key` is
    /// not stale.
    pub(super) fn answers_for(&self, key: &str) -> bool {
        self.serving() && !self.stale(key)
    }

    /// The tier missed a write or delete of `key`.
    pub(super) fn note_stale(&self, key: &str) {
        let now = now_utc();
        let mut resync = lock(&self.resync);
        if resync.clear_all {
            resync.cleared_at = Some(now);
        } else if resync.keys.len() >= MAX_RESYNC_KEYS && !resync.keys.contains_key(key) {
            resync.keys = HashMap::new();
            resync.clear_all = true;
            resync.cleared_at = Some(now);
        } else {
            resync.keys.insert(key.to_owned(), now);
        }
        self.resync_pending.store(true, Ordering::Release);
    }

    /// The tier missed a clear.
    fn note_cleared(&self) {
        let mut resync = lock(&self.resync);
        resync.keys = HashMap::new();
        resync.clear_all = true;
        resync.cleared_at = Some(now_utc());
        self.resync_pending.store(true, Ordering::Release);
    }

    /// The tier now holds the current state of `key`.
    pub(super) fn note_fresh(&self, key: &str) {
        if self.resync_pending.load(Ordering::Acquire) {
            lock(&self.resync).keys.remove(key);
        }
    }

    /// A write to the tier succeeded: its run of failed writes is over.
    pub(super) fn write_succeeded(&self) {
        self.write_failures.store(0, Ordering::Release);
    }

    /// How many keys the tier missed and still holds stale copies of; a missed clear counts
    /// as one ([`super::CacheManager::missed_keys`]).
    pub(super) fn missed(&self) -> usize {
        let resync = lock(&self.resync);
        resync.keys.len() + usize::from(resync.clear_all)
    }
}

/// The background probe of degraded tiers: a thread that runs only while something needs it.
#[derive(Default)]
pub(super) struct Maintenance {
    running: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Inner {
    /// Records a failed operation of `slot`: when its health says it is disabled, flags it
    /// degraded and starts probing.
    pub(super) fn failed(&self, slot: &TierSlot, op: &str, key: &str, error: &TierError) {
        tracing::warn!(tier = %slot.kind, op, key, error = %error, "cache tier operation failed");
        if !error.is_tier_failure() {
            return;
        }
        let write_failures = if matches!(op, "put" | "delete" | "clear" | "record uses" | "health mark") {
            slot.write_failures.fetch_add(1, Ordering::AcqRel).saturating_add(1)
        } else {
            slot.write_failures.load(Ordering::Acquire)
        };
        let disabled = slot.tier.health().is_disabled() || write_failures >= pw_cache_tiers::FAILURE_THRESHOLD;
        if disabled && !slot.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                tier = %slot.kind,
                failures = slot.tier.health().consecutive_failures(),
                "cache tier degraded: skipped until a probe succeeds"
            );
            self.wake_maintenance();
        }
    }

    /// Writes `entry` to `slot` if it is serving; records what the tier missed otherwise.
    pub(super) fn write_to(&self, slot: &TierSlot, entry: &CacheEntry) -> Result<(), String> {
        self.write_with(slot, &entry.key, "put", || slot.tier.put(entry).map(|()| true))
            .map(|_| ())
    }

    /// Runs `write`, a write of `key` to `slot` that says whether it stored anything, if the
    /// slot is serving, and keeps the slot's record of what it missed: a key written is fresh
    /// there, a key not written because of a failure (or a degraded tier) is stale.
    pub(super) fn write_with(
        &self,
        slot: &TierSlot,
        key: &str,
        op: &'static str,
        write: impl FnOnce() -> Result<bool, TierError>,
    ) -> Result<bool, String> {
        if !slot.serving() {
            slot.note_stale(key);
            return Err(format!("{}: degraded", slot.kind));
        }
        match write() {
            Ok(stored) => {
                slot.write_succeeded();
                if stored {
                    slot.note_fresh(key);
                }
                Ok(stored)
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, op, key, &e);
                self.wake_maintenance();
                Err(format!("{}: {e}", slot.kind))
            }
        }
    }

    /// Removes `key` from `slot`; whether it held it. A tier that cannot (degraded or failing)
    /// has the key noted as missed, to be removed when it recovers.
    pub(super) fn delete_from(&self, slot: &TierSlot, key: &str) -> bool {
        if !slot.serving() {
            slot.note_stale(key);
            return false;
        }
        match slot.tier.delete(key) {
            Ok(held) => {
                slot.note_fresh(key);
                held
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, "delete", key, &e);
                self.wake_maintenance();
                false
            }
        }
    }

    /// Empties `slot`; how many entries it held. A tier that cannot (degraded or failing) has
    /// the clear noted as missed: none of its copies is served until it recovers and is cleared.
    pub(super) fn clear_slot(&self, slot: &TierSlot) -> usize {
        if !slot.serving() {
            slot.note_cleared();
            return 0;
        }
        match slot.tier.clear() {
            Ok(n) => n,
            Err(e) => {
                slot.note_cleared();
                self.failed(slot, "clear", "", &e);
                self.wake_maintenance();
                0
            }
        }
    }

    /// Starts the probe thread unless it runs.
    pub(super) fn wake_maintenance(&self) {
        if self.maintenance.running.swap(true, Ordering::AcqRel) {
            return;
        }
        if *lock(&self.maintenance.stop) {
            self.maintenance.running.store(false, Ordering::Release);
            return;
        }
        let weak = self.weak_self.clone();
        let interval = self.probe_interval;
        let spawned = thread::Builder::new()
            .name("pw-cache-probe".into())
            .spawn(move || maintenance_loop(&weak, interval));
        match spawned {
            Ok(handle) => {
                let previous = lock(&self.maintenance.thread).replace(handle);
                // A previous thread has ended (it cleared `running` before we could start).
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                self.maintenance.running.store(false, Ordering::Release);
                tracing::error!(error = %e, "cannot start the cache's probe thread");
            }
        }
    }

    /// Stops the probe thread for good and waits for it (unless this is that thread).
    pub(super) fn stop_maintenance(&self) {
        *lock(&self.maintenance.stop) = true;
        self.maintenance.wake.notify_all();
        let handle = lock(&self.maintenance.thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// Waits `interval` unless stopped; whether to go on.
    fn maintenance_wait(&self, interval: Duration) -> bool {
        let stop = lock(&self.maintenance.stop);
        let stop = wait_timeout_while(&self.maintenance.wake, stop, interval, |stop| !*stop);
        !*stop
    }

    /// Probes degraded tiers and replays what tiers missed; whether anything is left to do.
    ///
    /// A tier whose probe succeeds serves again at once (unless it missed a clear, which is
    /// replayed first): writes go to it from then on, and lookups keep skipping the keys it
    /// missed until the replay has removed its copies of them, so a host that keeps writing
    /// gets the tier back within a probe interval, however many keys it misses meanwhile.
    ///
    /// A tier switched off is left alone, except at close (`closing`): it is healthy, and what
    /// it missed is replayed then, so that the next process does not read stale copies.
    fn maintain(&self, closing: bool) -> bool {
        let mut left = false;
        for slot in self.slots() {
            if slot.switched_off.load(Ordering::Acquire) {
                if closing && !self.replay(slot) {
                    left = true;
                }
                continue;
            }
            if !slot.serving() {
                match slot.tier.probe() {
                    Ok(()) => {
                        if self.replay_clear(slot) && self.reenable(slot) {
                            tracing::info!(tier = %slot.kind, "cache tier recovered: serving again");
                            if !self.replay(slot) {
                                left = true;
                            }
                        } else {
                            left = true;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(tier = %slot.kind, error = %e, "probe of degraded tier failed");
                        left = true;
                    }
                }
            } else if slot.resync_pending.load(Ordering::Acquire) && !self.replay(slot) {
                left = true;
            }
        }
        left
    }

    /// At close: one last probe and replay of every tier that missed writes; what is still
    /// missing afterwards, logged as an error and returned. The list of missed keys lives in
    /// memory only, so a tier that recovers only after this process ends may serve stale or
    /// deleted entries (see [`docs::migrating_from_proxywhirl`], "Degradation").
    ///
    /// [`docs::migrating_from_proxywhirl`]: crate::docs::migrating_from_proxywhirl
    pub(super) fn last_resync(&self) -> Vec<String> {
        self.maintain(true);
        let mut left = Vec::new();
        for slot in self.slots() {
            // A tier switched off but not degraded had what it missed replayed above.
            let up = !slot.degraded.load(Ordering::Acquire);
            let pending = slot.resync_pending.load(Ordering::Acquire);
            if up && !pending {
                continue;
            }
            let resync = lock(&slot.resync);
            if up && !resync.clear_all && resync.keys.is_empty() {
                continue;
            }
            let what = if resync.clear_all {
                "a clear".to_owned()
            } else {
                format!("writes or deletes of {} keys", resync.keys.len())
            };
            tracing::error!(
                tier = %slot.kind,
                missed = %what,
                "closing with a tier that missed {what}: its stale copies may be served after a restart; \
                 clear that tier if it recovers later"
            );
            left.push(format!("{}: degraded, missed {what}", slot.kind));
        }
        left
    }

    /// Replays a clear `slot` missed (what others wrote since is kept); whether none is left.
    fn replay_clear(&self, slot: &TierSlot) -> bool {
        let cleared_at = {
            let resync = lock(&slot.resync);
            if !resync.clear_all {
                return true;
            }
            resync.cleared_at.unwrap_or_else(now_utc)
        };
        if slot.tier.clear_unchanged_since(cleared_at).is_err() {
            return false;
        }
        let mut resync = lock(&slot.resync);
        // A clear missed again meanwhile is replayed next time.
        if resync.cleared_at.is_none_or(|at| at <= cleared_at) {
            resync.clear_all = false;
            resync.cleared_at = None;
        }
        !resync.clear_all
    }

    /// Removes from `slot` its copies of the keys it missed, one key lock at a time, each only if no other
    /// process wrote it since this one missed it (`CacheTier::delete_if_unchanged_since`); whether
    /// all of it is done.
    fn replay(&self, slot: &TierSlot) -> bool {
        if !self.replay_clear(slot) {
            return false;
        }
        // The backlog as it is now: keys missed later are written to the tier directly once it
        // serves, and those missed while it fails again come next time.
        let backlog: Vec<(String, OffsetDateTime)> = lock(&slot.resync)
            .keys
            .iter()
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        for (key, missed_at) in &backlog {
            let _guard = self.locks.lock(key);
            // Still stale, and not missed again since (a put may have refreshed it)?
            if lock(&slot.resync).keys.get(key) != Some(missed_at) {
                continue;
            }
            if slot.tier.delete_if_unchanged_since(key, *missed_at).is_err() {
                return false;
            }
            let mut resync = lock(&slot.resync);
            if resync.keys.get(key) == Some(missed_at) {
                resync.keys.remove(key);
            }
        }
        let resync = lock(&slot.resync);
        if resync.keys.is_empty() && !resync.clear_all {
            slot.resync_pending.store(false, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Serves `slot` again unless it still has a clear to replay. Lookups keep skipping the
    /// keys it missed ([`TierSlot::stale`]) until the replay is done with them.
    fn reenable(&self, slot: &TierSlot) -> bool {
        if lock(&slot.resync).clear_all {
            return false;
        }
        slot.write_succeeded();
        slot.degraded.store(false, Ordering::Release);
        true
    }
}

/// The probe thread: every `interval`, probes the degraded tiers and replays what tiers
/// missed ([`Inner::maintain`]), until nothing is left to do or the manager is gone. Holds the
/// manager only while working.
fn maintenance_loop(weak: &Weak<Inner>, interval: Duration) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if !inner.maintenance_wait(interval) {
            inner.maintenance.running.store(false, Ordering::Release);
            return;
        }
        if !inner.maintain(false) {
            inner.maintenance.running.store(false, Ordering::Release);
            // Something may have degraded between the last check and now.
            let again = inner
                .slots()
                .any(|s| !s.serving() || s.resync_pending.load(Ordering::Acquire));
            if !again || inner.maintenance.running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}
