//! Get hits noted in memory, for the bounded LRU and LFU tiers that keep them (both SQLite
//! tiers and the Redis L3): a hit changes what such a tier evicts, but writing each one would
//! cost a write per read, so hits are noted here and written as a batch every
//! [`TOUCH_BATCH`] hits, before an eviction, on flush and on close.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::{Mutex, MutexGuard};

pub(crate) use crate::sqlite::TOUCH_BATCH;

/// The hits noted since the last batch was taken.
#[derive(Debug, Default)]
pub(crate) struct Touches {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    by_key: HashMap<String, Touch>,
    /// Hits noted since the last batch was taken.
    hits: usize,
}

/// The hits of one key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Touch {
    /// Unix seconds of the last hit.
    pub(crate) last: f64,
    /// How many hits.
    pub(crate) hits: u64,
}

impl Touches {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere cannot leave the notes inconsistent: any state of them is valid.
        crate::locks::lock(&self.pending)
    }

    /// Notes a hit on `key` at `now`; returns the batch when [`TOUCH_BATCH`] hits are pending.
    pub(crate) fn record(&self, key: &str, now: f64) -> Option<HashMap<String, Touch>> {
        let mut pending = self.lock();
        match pending.by_key.entry(key.to_owned()) {
            MapEntry::Occupied(mut o) => {
                let t = o.get_mut();
                t.last = t.last.max(now);
                t.hits = t.hits.saturating_add(1);
            }
            MapEntry::Vacant(v) => {
                v.insert(Touch { last: now, hits: 1 });
            }
        }
        pending.hits += 1;
        (pending.hits >= TOUCH_BATCH).then(|| Self::drain(&mut pending))
    }

    fn drain(pending: &mut Pending) -> HashMap<String, Touch> {
        pending.hits = 0;
        std::mem::take(&mut pending.by_key)
    }

    /// Takes every noted hit.
    pub(crate) fn take(&self) -> HashMap<String, Touch> {
        Self::drain(&mut self.lock())
    }

    /// Drops the hits of `key` (it was replaced or deleted).
    pub(crate) fn forget(&self, key: &str) {
        let mut pending = self.lock();
        if !pending.by_key.is_empty() {
            pending.by_key.remove(key);
        }
    }

    /// Whether no hit is noted.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "used by the Redis L3"))]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().by_key.is_empty()
    }

    /// Puts back a batch that was not written.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "used by the Redis L3"))]
    pub(crate) fn restore(&self, batch: HashMap<String, Touch>) {
        let mut pending = self.lock();
        for (key, t) in batch {
            let hits = usize::try_from(t.hits).unwrap_or(usize::MAX);
            pending.hits = pending.hits.saturating_add(hits);
            match pending.by_key.entry(key) {
                MapEntry::Occupied(mut o) => {
                    let mine = o.get_mut();
                    mine.last = mine.last.max(t.last);
                    mine.hits = mine.hits.saturating_add(t.hits);
                }
                MapEntry::Vacant(v) => {
                    v.insert(t);
                }
            }
        }
    }
}
