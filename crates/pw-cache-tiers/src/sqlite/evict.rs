//! The bound: the entries a put at `max_entries` evicts under the policy, never an unreadable
//! one, and the count of evictions. See [`crate::sqlite`], "Eviction".

use std::sync::atomic::Ordering;

use pw_cache_model::EvictionPolicy;
use rusqlite::Transaction;

use super::store::Store;
use crate::error::TierError;
use crate::jsonl::EVICTION_BATCH_DIVISOR;

impl Store {
    /// Entries evicted to stay within `max_entries` since the tier opened.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Adds entries evicted by a committed transaction to the count.
    pub(crate) fn count_evictions(&self, evicted: u64) {
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
            tracing::debug!(path = %self.path.display(), evicted, "evicted cache entries");
        }
    }

    /// Deletes the entries that go first, to make room for one more under `max` (plus a
    /// batch); `n` entries are held. Unreadable rows are never evicted (see the crate docs,
    /// "Unreadable entries"): candidates are read in the policy's order and the readable ones
    /// deleted; when fewer are readable than needed, the tier stays above its bound.
    pub(super) fn evict(&self, tx: &Transaction<'_>, n: u64, max: u64) -> Result<u64, TierError> {
        if let Some(touches) = &self.touches {
            self.apply_touches(tx, touches.take())?;
        }
        let need =
            usize::try_from((n - max + 1).saturating_add(max / EVICTION_BATCH_DIVISOR).min(n)).unwrap_or(usize::MAX);
        let s = self.layout.statements();
        let sql = match self.policy {
            EvictionPolicy::Lru => s.candidates_lru,
            EvictionPolicy::Lfu => s.candidates_lfu,
            EvictionPolicy::Fifo => s.candidates_fifo,
        };
        // Most often the first `need` candidates are all readable; else look further.
        let mut limit = need.saturating_add(8);
        let (victims, skipped) = loop {
            let mut stmt = tx.prepare_cached(sql).map_err(self.err("evict entries"))?;
            let mut rows = stmt
                .query([i64::try_from(limit).unwrap_or(i64::MAX)])
                .map_err(self.err("evict entries"))?;
            let (mut victims, mut skipped, mut seen) = (Vec::with_capacity(need), 0u64, 0usize);
            while victims.len() < need
                && let Some(row) = rows.next().map_err(self.err("evict entries"))?
            {
                seen += 1;
                let rowid: i64 = row.get(self.layout.rowid_column()).map_err(self.err("evict entries"))?;
                if self.row_is_readable(row) {
                    victims.push(rowid);
                } else {
                    skipped += 1;
                }
            }
            if victims.len() == need || seen < limit {
                break (victims, skipped);
            }
            limit = limit.saturating_mul(4);
        };
        let mut stmt = tx.prepare_cached(s.delete_rowid).map_err(self.err("evict entries"))?;
        let mut deleted = 0;
        for rowid in &victims {
            deleted += stmt.execute([rowid]).map_err(self.err("evict entries"))? as u64;
        }
        self.note_unreadable_skipped(skipped);
        if victims.len() < need && !self.over_bound_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %self.path.display(),
                unreadable = skipped,
                "cache tier above max_entries: the entries left to evict are unreadable, and unreadable entries are \
                 never evicted (remove them explicitly if they are garbage)"
            );
        }
        Ok(deleted)
    }
}
