//! Making room under `max_entries`: batches of victims chosen across the shards by the
//! policy, never an unreadable entry (see the module docs of `jsonl`, "Eviction: an
//! approximation").

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use super::shard::{self, Verdict};
use super::{EVICTION_BATCH_DIVISOR, JsonlTier, NUM_SHARDS, line};
use crate::error::TierError;

/// How many rounds of victims a put at capacity tries when victims turn out unreadable, before
/// it stores its entry above the bound.
const MAX_EVICTION_ROUNDS: usize = 8;

impl JsonlTier {
    /// Evicts what must go for a new `key` to fit under `max` entries. Unreadable entries are
    /// never taken: those known are left out of the choice, and a victim whose tokens no key
    /// opens (found out by its shard's rewrite) is kept and marked, and another round chooses
    /// again. When nothing readable is left to evict, the tier stays above `max` (one warning).
    pub(super) fn make_room(&self, key: &str, max: u64) -> Result<(), TierError> {
        if self.holds(key)? {
            return Ok(());
        }
        // Unreadable entries this put passed over, each counted once.
        let mut passed: HashSet<(usize, String)> = HashSet::new();
        for _ in 0..MAX_EVICTION_ROUNDS {
            let total = self.count_entries()? as u64;
            if total < max {
                self.over_bound_warned.store(false, Ordering::Relaxed);
                return Ok(());
            }
            // Evict a batch: each eviction rewrites the victims' shards, so making room for one
            // entry at a time would rewrite shards on every put at capacity. A batch of 1/64 of
            // the bound amortizes that to a rewrite per shard every `max / 64` puts.
            let batch = max / EVICTION_BATCH_DIVISOR;
            let need = usize::try_from((total - max + 1).saturating_add(batch).min(total)).unwrap_or(usize::MAX);
            let mut candidates = Vec::new();
            for id in 0..NUM_SHARDS {
                let (found, unreadable) = self.with_shard(id, |sh| sh.victims(self.policy, key, need));
                candidates.extend(found.into_iter().map(|(p, k)| (p, k, id)));
                passed.extend(unreadable.into_iter().map(|k| (id, k)));
            }
            if candidates.is_empty() {
                break;
            }
            candidates.sort_unstable();
            candidates.truncate(need);
            let mut by_shard: HashMap<usize, HashSet<String>> = HashMap::new();
            for (_, victim, id) in candidates {
                by_shard.entry(id).or_default().insert(victim);
            }
            for (id, victims) in by_shard {
                let done = self.with_shard(id, |sh| {
                    let guard = sh.lock_exclusive()?;
                    let (done, _guard) = sh.rewrite(guard, false, |k, slot, line| {
                        if !victims.contains(k) {
                            Verdict::Keep
                        } else if self.readable(k, slot, line) {
                            Verdict::Remove
                        } else {
                            Verdict::KeepUnreadable
                        }
                    })?;
                    Ok::<_, TierError>(done)
                })?;
                self.skipped(done.carried_stray);
                passed.extend(done.kept_unreadable.into_iter().map(|k| (id, k)));
                self.evictions.fetch_add(done.removed.len() as u64, Ordering::Relaxed);
                tracing::debug!(shard = id, evicted = done.removed.len(), "JSONL tier evicted entries");
            }
        }
        self.skipped(passed.len() as u64);
        if self.count_entries()? as u64 >= max {
            if !self.over_bound_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_entries = max,
                    unreadable = passed.len(),
                    "JSONL tier above max_entries: what is left to evict cannot be read (unreadable \
                     entries are never evicted; CacheTier::remove_unreadable removes them)"
                );
            }
        } else {
            self.over_bound_warned.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the live line `line` of `key` (its slot `slot`) can be read: not known to be
    /// unreadable, and each credential token opens with a key of the ring (the plaintext is
    /// dropped, zeroized, at once). Only lines with tokens not yet tried (written by another
    /// process, or before this tier opened) are parsed again.
    pub(super) fn readable(&self, key: &str, slot: &shard::Slot, line: &[u8]) -> bool {
        !slot.is_unreadable() && (!slot.has_untried_tokens() || line::credentials_open(line, key, &self.ring))
    }
}
