//! The use of evicted entries: queued when L1 evicts a dirty entry, recorded in L2/L3 in
//! batches of [`USE_BATCH`] by a writer thread of its own, and on flush (see the module docs
//! of [`super`], "Access data and demotion").
//!
//! [`EvictedUse`] is the log (what is queued, and the batch being written); [`UseWriter`] the
//! thread that writes full batches. [`Inner::hand_off_evicted_use`] runs after every get and
//! put; [`Inner::flush`] writes what L1 still holds and everything queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};

use pw_cache_model::AccessRecord;
use pw_cache_tiers::{CacheTier, MemoryTier};

use super::Inner;
use crate::counters::bump;
use crate::error::ManagerError;
use crate::sync::{KeyedSet, lock, try_lock, wait_while};

/// Evicted entries' use is recorded in L2/L3 in batches of this many, by a background thread
/// (see [`docs::architecture`]).
///
/// [`docs::architecture`]: crate::docs::architecture
pub const USE_BATCH: usize = 8192;

/// Full batches of evicted entries' use that may wait for the writer thread; beyond, the
/// operation that queues more writes them itself (after the batch being written), so the
/// queue stays bounded when the disk is slower than L1's evictions.
const USE_BACKLOG_BATCHES: usize = 4;

/// Use that L1 saw of entries it evicted, waiting to be recorded in L2/L3 in batches of
/// [`USE_BATCH`] ([`CacheTier::record_accesses`]: one transaction of `UPDATE`s of three
/// columns, instead of rewriting each entry).
#[derive(Default)]
pub(super) struct EvictedUse {
    log: Mutex<UseLog>,
    /// `log.queued.len()`, stored under `log`'s lock by every change: read without the lock
    /// by [`Inner::hand_off_evicted_use`] after every get and put.
    queued_len: AtomicUsize,
    /// Held by the one thread writing a batch (others do not wait for it: they skip).
    writer: Mutex<()>,
}

#[derive(Default)]
struct UseLog {
    queued: UseSet,
    /// The batch being written: still visible to lookups until it is. Shared with the writer,
    /// which copies and sorts it without holding the log's lock.
    in_flight: Arc<UseSet>,
}

/// Access records, one per key, found by key.
type UseSet = KeyedSet<Queued>;

/// An [`AccessRecord`] in a [`UseSet`], hashed and compared by its key (as a `str`, so that
/// lookups by `&str` find it): the key is held once, in the record, not copied into a map key
/// beside it.
struct Queued(AccessRecord);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Queued {}

impl std::hash::Hash for Queued {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` requires the same hash.
        self.0.key.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Queued {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl EvictedUse {
    /// Records how many are queued (`log` is locked by the caller).
    fn note_len(&self, log: &UseLog) {
        self.queued_len.store(log.queued.len(), Ordering::Relaxed);
    }

    /// How many are queued, without taking the lock (a moment ago).
    fn queued(&self) -> usize {
        self.queued_len.load(Ordering::Relaxed)
    }

    /// Queues `record` (a later record of the same key replaces an earlier one).
    pub(super) fn queue(&self, record: AccessRecord) {
        let mut log = lock(&self.log);
        match log.queued.get(record.key.as_str()) {
            Some(queued) if queued.0.last_accessed > record.last_accessed => {}
            Some(_) => {
                log.queued.replace(Queued(record));
            }
            None => {
                log.queued.insert(Queued(record));
                self.note_len(&log);
            }
        }
    }

    /// The use of `key` not yet recorded below, if any (removed from the queue; a copy when it
    /// is being written).
    pub(super) fn take(&self, key: &str) -> Option<AccessRecord> {
        let mut log = lock(&self.log);
        match log.queued.take(key) {
            Some(queued) => {
                self.note_len(&log);
                Some(queued.0)
            }
            None => log.in_flight.get(key).map(|in_flight| in_flight.0.clone()),
        }
    }

    /// Drops what is noted of `key` (it was replaced or deleted). When the batch being written
    /// holds it, waits for that batch, so that its older use cannot land on what the caller
    /// writes next (and the batch is no longer visible once it has landed). The caller holds
    /// the key's lock, so no lookup of `key` sees the batch in the meantime.
    pub(super) fn forget(&self, key: &str) {
        let in_flight = {
            let mut log = lock(&self.log);
            if log.queued.remove(key) {
                self.note_len(&log);
            }
            log.in_flight.contains(key)
        };
        if in_flight {
            self.wait_for_writer();
        }
    }

    /// Returns once no batch is being written (the writer holds no key lock, so a caller
    /// holding some may wait).
    fn wait_for_writer(&self) {
        drop(lock(&self.writer));
    }

    /// Drops everything noted, after the batch being written (if any) has landed.
    pub(super) fn clear(&self) {
        self.wait_for_writer();
        let mut log = lock(&self.log);
        let drained = (std::mem::take(&mut log.queued), std::mem::take(&mut log.in_flight));
        self.note_len(&log);
        drop(log);
        drop(drained);
    }
}

/// The thread that records evicted entries' use ([`EvictedUse`]) in L2/L3, so that the
/// operation that fills a batch does not wait for its thousands of `UPDATE`s: started by the
/// first full batch, stopped by close and drop.
#[derive(Default)]
pub(super) struct UseWriter {
    thread: Mutex<Option<JoinHandle<()>>>,
    signal: Arc<UseWriterSignal>,
}

#[derive(Default)]
struct UseWriterSignal {
    state: Mutex<UseWriterState>,
    wake: Condvar,
}

#[derive(Default)]
struct UseWriterState {
    /// A full batch is queued.
    pending: bool,
    stop: bool,
}

impl Inner {
    /// After an operation: hands a full batch of evicted entries' use to the writer thread,
    /// or writes it here when that thread is far behind or cannot run.
    pub(super) fn hand_off_evicted_use(&self) {
        let queued = self.evicted_use.queued();
        if queued < USE_BATCH {
            return;
        }
        if queued >= USE_BACKLOG_BATCHES * USE_BATCH || !self.wake_use_writer() {
            self.record_evicted_use(USE_BATCH, true);
        }
    }

    /// Wakes the use writer (starting it the first time); `false` when it is stopped or
    /// cannot be started.
    fn wake_use_writer(&self) -> bool {
        let signal = &self.use_writer.signal;
        {
            let mut state = lock(&signal.state);
            if state.stop {
                return false;
            }
            state.pending = true;
        }
        signal.wake.notify_one();
        let mut thread = lock(&self.use_writer.thread);
        if thread.is_some() {
            return true;
        }
        let weak = self.weak_self.clone();
        let signal = Arc::clone(signal);
        match thread::Builder::new()
            .name("pw-cache-use-writer".into())
            .spawn(move || use_writer_loop(&weak, &signal))
        {
            Ok(handle) => {
                *thread = Some(handle);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the cache's use-writer thread");
                false
            }
        }
    }

    /// Stops the use writer after the batch it is writing (what is still queued is left to
    /// the caller's flush).
    pub(super) fn stop_use_writer(&self) {
        lock(&self.use_writer.signal.state).stop = true;
        self.use_writer.signal.wake.notify_all();
        let handle = lock(&self.use_writer.thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// Records the queued use of evicted entries in L2/L3 when at least `at_least` are queued
    /// (one [`CacheTier::record_accesses`] batch per tier); why each tier that did not record
    /// it did not. With `wait`, waits for a batch another thread is writing first; without,
    /// returns at once when one is (that thread carries on with what is queued next time).
    pub(super) fn record_evicted_use(&self, at_least: usize, wait: bool) -> Vec<String> {
        let _writer = if wait {
            lock(&self.evicted_use.writer)
        } else {
            match try_lock(&self.evicted_use.writer) {
                Some(guard) => guard,
                None => return Vec::new(),
            }
        };
        let in_flight = {
            let mut log = lock(&self.evicted_use.log);
            if log.queued.is_empty() || log.queued.len() < at_least {
                return Vec::new();
            }
            let in_flight = Arc::new(std::mem::take(&mut log.queued));
            log.in_flight = Arc::clone(&in_flight);
            self.evicted_use.note_len(&log);
            in_flight
        };
        // Copied and sorted without the log's lock, which every L1 miss and eviction takes.
        let mut batch: Vec<AccessRecord> = in_flight.iter().map(|queued| queued.0.clone()).collect();
        drop(in_flight);
        // In key order: consecutive updates then walk the key index in order.
        batch.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let failures = self.record_uses(&batch);
        lock(&self.evicted_use.log).in_flight = Arc::default();
        bump(&self.counters.demotion_writes, batch.len() as u64);
        if !failures.is_empty() {
            tracing::warn!(
                entries = batch.len(),
                "the use of evicted entries was not recorded by every tier"
            );
        }
        failures
    }

    /// Records `batch` in every serving disk tier; why each tier that did not, did not. A
    /// degraded tier is skipped (and named): use only orders evictions, it is not worth a
    /// resync.
    fn record_uses(&self, batch: &[AccessRecord]) -> Vec<String> {
        let mut failures = Vec::new();
        if batch.is_empty() {
            return failures;
        }
        for slot in self.slots() {
            if !slot.serving() {
                failures.push(format!("{}: degraded", slot.kind));
                continue;
            }
            match slot.tier.record_accesses(batch) {
                Ok(_) => slot.write_succeeded(),
                Err(e) => {
                    failures.push(format!("{}: {e}", slot.kind));
                    self.failed(slot, "record uses", "", &e);
                }
            }
        }
        failures
    }

    /// Records the use of the dirty entries still in L1 and of the evicted entries queued in
    /// L2/L3, and flushes the tiers ([`super::CacheManager::flush`]).
    pub(super) fn flush(&self) -> Result<(), ManagerError> {
        let mut failures = Vec::new();
        if let Some(l1) = self.l1() {
            failures.extend(self.flush_l1(l1));
        }
        failures.extend(self.record_evicted_use(1, true));
        for slot in self.slots() {
            if slot.serving()
                && let Err(e) = slot.tier.flush()
            {
                failures.push(format!("{}: {e}", slot.kind));
                self.failed(slot, "flush", "", &e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ManagerError::Incomplete { op: "flush", failures })
        }
    }

    /// Records the use of the dirty entries in `l1` below, as one batch; the tiers that missed it.
    pub(super) fn flush_l1(&self, l1: &MemoryTier) -> Vec<String> {
        let mut failures = Vec::new();
        {
            let mut batch = Vec::new();
            for key in l1.flagged_keys() {
                let _guard = self.locks.lock(&key);
                if !l1.unflag(&key) {
                    continue;
                }
                if let Ok(Some(entry)) = l1.peek(&key) {
                    batch.push(AccessRecord::of(&entry, false));
                }
            }
            let missed = self.record_uses(&batch);
            if !missed.is_empty() {
                // Noted again, for the next flush.
                for record in &batch {
                    l1.flag(&record.key);
                }
                failures.extend(missed);
            }
            bump(&self.counters.demotion_writes, batch.len() as u64);
        }
        failures
    }
}

/// Writes a batch of evicted entries' use each time one is full, until stopped. Holds the
/// manager only while writing.
fn use_writer_loop(weak: &Weak<Inner>, signal: &UseWriterSignal) {
    loop {
        {
            let mut state = wait_while(&signal.wake, lock(&signal.state), |state| !state.pending && !state.stop);
            if state.stop {
                return;
            }
            state.pending = false;
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        inner.record_evicted_use(USE_BATCH, true);
    }
}
