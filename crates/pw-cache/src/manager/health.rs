//! Health marks: [`super::CacheManager::invalidate_by_health`], a failed health check of a key
//! counted once, atomically, in the authoritative tier (the lowest that can take it), and
//! given to the tiers above.

use std::ops::ControlFlow;

use pw_cache_model::{CacheEntry, CacheTierType, HealthStatus};
use pw_cache_tiers::{CacheTier, FailureMark};

use super::degradation::TierSlot;
use super::lookup::{Answer, Read};
use super::{HealthInvalidation, Inner};
use crate::counters::bump;

impl Inner {
    /// See [`super::CacheManager::invalidate_by_health`]. The copy found first decides only whether
    /// the entry exists and has expired; the failure is counted by one atomic
    /// [`CacheTier::mark_failure`] in the authoritative tier ([`Inner::mark_authority`]), whose
    /// count is the result, and the tiers above take that count or lose their copy. Each tier
    /// changes the two fields of what it holds itself: no copy read here is ever written to
    /// another tier, so a version another host (or process) has stored since is never
    /// overwritten.
    pub(super) fn invalidate_by_health(&self, key: &str) -> HealthInvalidation {
        if self.is_closed() {
            return HealthInvalidation::NotFound;
        }
        let _guard = self.locks.lock(key);
        let now = self.now();
        // Where a readable copy is, top down, without it being a use.
        let mut unreadable_seen = Vec::new();
        let Some((level, entry)) = self.find_readable_locked(key, &mut unreadable_seen) else {
            return HealthInvalidation::NotFound;
        };
        if entry.is_expired_at(now) {
            self.delete_readable_locked(key);
            bump(&self.counters.tier(level).evictions_ttl, 1);
            return HealthInvalidation::NotFound;
        }
        drop(entry);
        let threshold = u64::from(self.config.failure_threshold());
        let evict_at = self.config.health_check_invalidation().then_some(threshold);
        let Some((authority, mark)) = self.mark_authority(key, evict_at, &unreadable_seen) else {
            // No tier could take the mark (each failing, degraded or holding an unreadable copy).
            return HealthInvalidation::NotFound;
        };
        match mark {
            FailureMark::Absent => {
                // Deleted (by another host or process, or evicted by the tier's bound) since
                // the copies above were made: they go too.
                self.delete_readable_locked(key);
                HealthInvalidation::NotFound
            }
            FailureMark::Evicted { failure_count } => {
                bump(&self.counters.tier(authority).evictions_health, 1);
                for tier in self.delete_readable_locked(key) {
                    bump(&self.counters.tier(tier).evictions_health, 1);
                }
                tracing::info!(key, failure_count, "proxy evicted after failed health checks");
                HealthInvalidation::Evicted { failure_count }
            }
            FailureMark::Marked { failure_count } => {
                self.mark_above(key, authority, failure_count, &unreadable_seen);
                HealthInvalidation::Marked { failure_count }
            }
        }
    }

    /// The first readable copy of `key`, top down (L1, then each serving disk tier whose copy
    /// is not stale), without it being a use. Tiers whose copy cannot be read are counted in
    /// `unreadable` (and noted in `unreadable_seen`) and left as they are.
    fn find_readable_locked(
        &self,
        key: &str,
        unreadable_seen: &mut Vec<CacheTierType>,
    ) -> Option<(CacheTierType, CacheEntry)> {
        if let Some(l1) = self.l1()
            && let Ok(Some(entry)) = l1.peek(key)
        {
            return Some((CacheTierType::L1, entry));
        }
        self.walk_below(key, Read::Peek, |slot, answer| match answer {
            Answer::Found(entry) => ControlFlow::Break((slot.kind, entry)),
            Answer::Absent => ControlFlow::Continue(()),
            Answer::Unreadable(_) => {
                // Left in place; the mark goes to a readable copy, if any.
                bump(&self.counters.tier(slot.kind).unreadable, 1);
                unreadable_seen.push(slot.kind);
                ControlFlow::Continue(())
            }
            Answer::Failed(e) => {
                self.failed(slot, "get", key, &e);
                ControlFlow::Continue(())
            }
        })
    }

    /// Marks a failure of `key` in the authoritative tier: the lowest that can take it, L3,
    /// else L2, else L1. That is where the entry is shared (a Redis L3 by a fleet, a SQLite
    /// file by processes), so the one atomic mark there is what counts. A disk tier is passed
    /// over (and the tier above tried) when it is degraded (the key is noted as missed there,
    /// so its copy goes when it recovers), when its copy is stale, when it fails (noted the
    /// same way), or when its copy cannot be read (left in place, counted in `unreadable`
    /// unless `unreadable_seen` says the lookup counted it already). Returns the tier that
    /// took the mark and what it did; `None` when none could.
    fn mark_authority(
        &self,
        key: &str,
        evict_at: Option<u64>,
        unreadable_seen: &[CacheTierType],
    ) -> Option<(CacheTierType, FailureMark)> {
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            if let Some(mark) = self.mark_in(slot, key, evict_at, unreadable_seen) {
                return Some((slot.kind, mark));
            }
        }
        // L1 counts only for an entry it holds: absent there too, nothing took the mark.
        match self.l1()?.mark_failure(key, evict_at) {
            Ok(FailureMark::Absent) | Err(_) => None,
            Ok(mark) => Some((CacheTierType::L1, mark)),
        }
    }

    /// Gives the tiers above `authority` the count it reached: each disk tier's copy gets the
    /// same atomic mark, and is dropped when the count it reaches differs (a copy of an older
    /// version: the next lookup reads the authority's); L1's copy, if any, takes the count and
    /// status in place (it keeps its unrecorded use and flag). Nothing is promoted.
    fn mark_above(&self, key: &str, authority: CacheTierType, failure_count: u64, unreadable_seen: &[CacheTierType]) {
        for slot in self.slots().filter(|slot| slot.kind < authority) {
            match self.mark_in(slot, key, None, unreadable_seen) {
                Some(FailureMark::Marked { failure_count: there }) if there != failure_count => {
                    self.delete_from(slot, key);
                }
                _ => {}
            }
        }
        if authority != CacheTierType::L1
            && let Some(l1) = self.l1()
        {
            l1.update(key, |e| {
                e.failure_count = failure_count;
                e.health_status = HealthStatus::Unhealthy;
            });
        }
    }

    /// [`CacheTier::mark_failure`] of `key` in `slot`, keeping the slot's record of what it
    /// missed: `None` when the slot is degraded (the key noted as missed), holds a stale copy,
    /// fails (noted as missed, counted towards degradation), holds an unreadable copy (left
    /// in place, counted in `unreadable` unless in `unreadable_seen`) or refuses the mark.
    fn mark_in(
        &self,
        slot: &TierSlot,
        key: &str,
        evict_at: Option<u64>,
        unreadable_seen: &[CacheTierType],
    ) -> Option<FailureMark> {
        if !slot.serving() {
            slot.note_stale(key);
            return None;
        }
        if slot.stale(key) {
            return None;
        }
        match slot.tier.mark_failure(key, evict_at) {
            Ok(mark) => {
                slot.write_succeeded();
                Some(mark)
            }
            Err(e) if e.is_corrupt_entry() => {
                if !unreadable_seen.contains(&slot.kind) {
                    bump(&self.counters.tier(slot.kind).unreadable, 1);
                }
                tracing::warn!(tier = %slot.kind, key, error = %e, "unreadable entry not marked (left in place)");
                None
            }
            Err(e) if !e.is_tier_failure() => {
                tracing::warn!(tier = %slot.kind, key, error = %e, "health mark refused");
                None
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, "health mark", key, &e);
                self.wake_maintenance();
                None
            }
        }
    }
}
