//! Rewrites that clean up whole shards: compaction (dropping dead lines), expiry cleanup, and
//! the operator's removal of unreadable entries and lines.

use std::collections::HashSet;

use pw_cache_model::OffsetDateTime;

use super::shard::{Verdict, micros};
use super::{JsonlTier, NUM_SHARDS};
use crate::error::TierError;
use crate::tier::CacheTier;

impl JsonlTier {
    /// Rewrites every shard that has dead lines, keeping its live lines and its unreadable
    /// lines (verbatim, in place); how many shards were rewritten. (Compaction also happens by
    /// itself as dead lines accumulate.) [`CacheTier::compact`]: the outcome is recorded in the
    /// tier's health.
    pub fn compact(&self) -> Result<usize, TierError> {
        CacheTier::compact(self)
    }

    /// [`JsonlTier::compact`], unrecorded.
    pub(super) fn compact_shards(&self) -> Result<usize, TierError> {
        let mut rewritten = 0;
        for id in 0..NUM_SHARDS {
            rewritten += self.with_shard(id, |sh| {
                sh.sync()?;
                if sh.dead_lines() == 0 {
                    return Ok::<_, TierError>(0);
                }
                let guard = sh.lock_exclusive()?;
                let (done, _guard) = sh.rewrite(guard, false, |_, _, _| Verdict::Keep)?;
                self.skipped(done.carried_stray);
                Ok(1)
            })?;
        }
        Ok(rewritten)
    }

    /// Removes the expired entries; an entry that cannot be read is left, whatever its
    /// `expires_at` field says: an expired candidate with credential tokens is kept (and marked)
    /// unless its tokens open with the ring.
    pub(super) fn remove_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let now = micros(now);
        let mut removed = HashSet::new();
        for id in 0..NUM_SHARDS {
            let gone = self.with_shard(id, |sh| {
                sh.sync()?;
                let (any, unreadable) = sh.expiry_scan(now);
                self.skipped(unreadable);
                if !any {
                    return Ok(Vec::new());
                }
                let guard = sh.lock_exclusive()?;
                let (done, _guard) = sh.rewrite(guard, false, |k, slot, line| {
                    if !slot.expired_at(now) {
                        Verdict::Keep
                    } else if self.readable(k, slot, line) {
                        Verdict::Remove
                    } else {
                        Verdict::KeepUnreadable
                    }
                })?;
                self.skipped(done.carried_stray + done.kept_unreadable.len() as u64);
                Ok::<_, TierError>(done.removed)
            })?;
            removed.extend(gone);
        }
        Ok(removed.len())
    }

    /// [`CacheTier::remove_unreadable`](crate::CacheTier::remove_unreadable): per shard, one
    /// rewrite without the entries that cannot be read (broken fields, a token that is not hex or
    /// that no key opens) and without the stray lines (not JSON, not an entry).
    pub(super) fn drop_unreadable(&self) -> Result<usize, TierError> {
        let mut removed = 0;
        for id in 0..NUM_SHARDS {
            removed += self.with_shard(id, |sh| {
                sh.sync()?;
                if !sh.exists() {
                    return Ok::<_, TierError>(0);
                }
                let guard = sh.lock_exclusive()?;
                let (done, _guard) = sh.rewrite(guard, true, |k, slot, line| {
                    if self.readable(k, slot, line) {
                        Verdict::Keep
                    } else {
                        Verdict::Remove
                    }
                })?;
                if !done.removed.is_empty() || done.dropped_stray > 0 {
                    tracing::warn!(
                        shard = id,
                        entries = done.removed.len(),
                        lines = done.dropped_stray,
                        "unreadable JSONL entries and lines removed at the operator's request"
                    );
                }
                Ok(done.removed.len() + usize::try_from(done.dropped_stray).unwrap_or(usize::MAX))
            })?;
        }
        Ok(removed)
    }
}
