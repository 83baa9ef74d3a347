//! Lookups: a get, the promotion of what it finds below L1 to the tiers above, and the walk
//! of the tiers below L1 that every lookup of one key shares ([`Inner::walk_below`]: a get,
//! a health mark's search for a readable copy, an export's read of each entry).

use std::ops::ControlFlow;

use pw_cache_model::{CacheEntry, CacheTierType};
use pw_cache_tiers::TierError;

use super::Inner;
use super::degradation::TierSlot;
use crate::counters::bump;

thread_local! {
    /// Set while this thread promotes an entry into L1, so the eviction callback (which runs
    /// on this thread) can tell a promotion's eviction from a put's.
    pub(super) static PROMOTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How [`Inner::walk_below`] reads a key in each tier.
#[derive(Debug, Clone, Copy)]
pub(super) enum Read {
    /// As a use ([`pw_cache_tiers::CacheTier::get`]): the tier's eviction order sees it.
    Use,
    /// Not as a use ([`pw_cache_tiers::CacheTier::peek`]).
    Peek,
}

/// What a tier below L1 answered for a key ([`Inner::walk_below`]).
pub(super) enum Answer {
    /// A copy that could be read.
    Found(CacheEntry),
    /// No copy.
    Absent,
    /// A copy that cannot be read (damaged, or a credential no key of the ring opens): left
    /// where it is, never removed by a lookup (see [`docs::reliability`]).
    ///
    /// [`docs::reliability`]: crate::docs::reliability
    Unreadable(TierError),
    /// The tier failed.
    Failed(TierError),
}

impl Answer {
    fn of(read: Result<Option<CacheEntry>, TierError>) -> Self {
        match read {
            Ok(Some(entry)) => Self::Found(entry),
            Ok(None) => Self::Absent,
            Err(e) if e.is_corrupt_entry() => Self::Unreadable(e),
            Err(e) => Self::Failed(e),
        }
    }
}

impl Inner {
    /// Walks the disk tiers below L1 that may answer for `key`, top down (L2, then L3): those
    /// serving whose copy of `key` is not stale ([`TierSlot::answers_for`]). Reads `key` in
    /// each as `read` says and hands the answer to `visit`, until `visit` breaks: returns what
    /// it broke with, `None` when it never did. What an answer counts, logs or removes is the
    /// caller's.
    pub(super) fn walk_below<B>(
        &self,
        key: &str,
        read: Read,
        mut visit: impl FnMut(&TierSlot, Answer) -> ControlFlow<B>,
    ) -> Option<B> {
        for slot in self.slots().filter(|slot| slot.answers_for(key)) {
            let answer = Answer::of(match read {
                Read::Use => slot.tier.get(key),
                Read::Peek => slot.tier.peek(key),
            });
            if let ControlFlow::Break(value) = visit(slot, answer) {
                return Some(value);
            }
        }
        None
    }

    /// See [`super::CacheManager::get`].
    pub(super) fn get(&self, key: &str) -> Option<CacheEntry> {
        if self.is_closed() {
            return None;
        }
        let _guard = self.locks.lock(key);
        let now = self.now();
        if let Some(l1) = self.l1() {
            let counters = self.counters.tier(CacheTierType::L1);
            // Flagged (a use the tiers below have not seen) under L1's shard lock, where an
            // eviction of the key looks.
            let hit = l1.touch_flagging(key, |e| {
                if e.is_expired_at(now) {
                    return false;
                }
                e.access_count = e.access_count.saturating_add(1);
                e.last_accessed = now;
                true
            });
            match hit {
                Some(entry) if !entry.is_expired_at(now) => {
                    bump(&counters.hits, 1);
                    return Some(entry);
                }
                Some(_) => {
                    self.delete_readable_locked(key);
                    bump(&counters.evictions_ttl, 1);
                    return None;
                }
                None => bump(&counters.misses, 1),
            }
        }
        // Use of this key that L1 saw before evicting it and the tiers below have not recorded.
        let unrecorded = self.evicted_use.take(key);
        // `Some(None)`: found expired (and removed); `None`: no tier holds a readable copy.
        let found = self.walk_below(key, Read::Use, |slot, answer| {
            let counters = self.counters.tier(slot.kind);
            match answer {
                Answer::Found(entry) if entry.is_expired_at(now) => {
                    self.delete_readable_locked(key);
                    bump(&counters.evictions_ttl, 1);
                    ControlFlow::Break(None)
                }
                Answer::Found(mut entry) => {
                    bump(&counters.hits, 1);
                    if let Some(record) = &unrecorded {
                        record.apply_to(&mut entry);
                    }
                    self.complete_health_detail(slot, &mut entry);
                    entry.access_count = entry.access_count.saturating_add(1);
                    entry.last_accessed = now;
                    self.promote_locked(&entry, slot.kind);
                    ControlFlow::Break(Some(entry))
                }
                Answer::Absent => {
                    bump(&counters.misses, 1);
                    ControlFlow::Continue(())
                }
                Answer::Unreadable(e) => {
                    // Unreadable is not expired: left where it is, counted, and the lookup goes
                    // on below (see `docs/reliability.md`, "Never lose what you cannot read").
                    bump(&counters.misses, 1);
                    bump(&counters.unreadable, 1);
                    tracing::warn!(tier = %slot.kind, key, error = %e, "unreadable entry skipped (left in place)");
                    ControlFlow::Continue(())
                }
                Answer::Failed(e) => {
                    bump(&counters.misses, 1);
                    self.failed(slot, "get", key, &e);
                    ControlFlow::Continue(())
                }
            }
        });
        if let Some(found) = found {
            return found;
        }
        if let Some(record) = unrecorded {
            self.evicted_use.queue(record);
        }
        None
    }

    /// Fills the health-check detail of `entry`, read from `slot`, from L3 when `slot` does
    /// not keep it (SQLite L2): otherwise the defaults it reads back with would be promoted,
    /// and later written over L3's record.
    pub(super) fn complete_health_detail(&self, slot: &TierSlot, entry: &mut CacheEntry) {
        if slot.tier.keeps_health_detail() {
            return;
        }
        let Some(l3) = self.l3.as_ref().filter(|l3| l3.answers_for(&entry.key)) else {
            return;
        };
        match l3.tier.health_detail(&entry.key) {
            Ok(Some(detail)) => detail.apply_to(entry),
            Ok(None) => {}
            Err(e) if e.is_tier_failure() => self.failed(l3, "get", &entry.key, &e),
            // An unreadable L3 copy is found and counted by the lookup that reaches it.
            Err(_) => {}
        }
    }

    /// Copies `entry`, found in `found_in`, to the tiers above it.
    fn promote_locked(&self, entry: &CacheEntry, found_in: CacheTierType) {
        if let Some(l1) = self.l1() {
            // L1 is about to hold a use the tiers below have not seen: stored flagged, so that
            // an eviction right after the put finds it.
            PROMOTING.set(true);
            let stored = l1.put_flagged(entry, true);
            PROMOTING.set(false);
            if stored.is_ok() {
                bump(&self.counters.promotions, 1);
            }
        }
        if found_in == CacheTierType::L3
            && let (Some(l2), Some(l3)) = (&self.l2, &self.l3)
            && l2.serving()
        {
            // Into L2 only if absent, and only while L3 still holds this version (checked under
            // L2's lock): another process's newer put or delete is never undone by this copy.
            let mut still_below = || matches!(l3.tier.peek(&entry.key), Ok(Some(now)) if same_version(&now, entry));
            let promote = || l2.tier.put_if_absent_with(entry, &mut still_below);
            if self.write_with(l2, &entry.key, "promote", promote) == Ok(true) {
                bump(&self.counters.promotions, 1);
            }
        }
    }
}

/// Whether `a` and `b` are the same version of an entry: equal in everything but the use
/// (`access_count`, `last_accessed`, `evicted_from_l1`), which a lookup changes.
fn same_version(a: &CacheEntry, b: &CacheEntry) -> bool {
    let without_use = |e: &CacheEntry| {
        let mut e = e.clone();
        e.access_count = 0;
        e.last_accessed = e.fetch_time;
        e.evicted_from_l1 = false;
        e
    };
    without_use(a) == without_use(b)
}
