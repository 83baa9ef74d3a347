//! Writing and removing: put, delete, clear, and the removal of expired entries (by a lookup
//! that finds one, or by the cleaner).

use pw_cache_model::{CacheEntry, CacheTierType};
use pw_cache_tiers::CacheTier;

use super::degradation::TierSlot;
use super::ttl::{CleanupReport, Expire};
use super::{Inner, Stored};
use crate::counters::bump;
use crate::error::ManagerError;

impl Inner {
    /// See [`super::CacheManager::put`].
    pub(super) fn put(&self, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        if entry.key.is_empty() {
            return Err(ManagerError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        if let Err(e) = pw_cache_model::validate_proxy_url(&entry.proxy_url) {
            return Err(ManagerError::InvalidEntry {
                key: entry.key.clone(),
                reason: e.to_string(),
            });
        }
        if self.is_closed() {
            return Err(ManagerError::Closed);
        }
        let key = entry.key.as_str();
        let _guard = self.locks.lock(key);
        // Use noted of the previous entry is superseded. Unflagged first: an eviction of the old
        // entry after this records nothing, and the use an eviction just before it queued is
        // what `forget` drops (the other order left an eviction between the two free to queue
        // the old use, to be written over the new entry later).
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut stored = Stored::default();
        let mut failures = Vec::new();
        if let Some(l1) = self.l1() {
            match l1.put(entry) {
                Ok(()) => stored.l1 = true,
                Err(e) => failures.push(format!("L1: {e}")),
            }
        }
        for slot in self.slots() {
            match self.write_to(slot, entry) {
                Ok(()) => match slot.kind {
                    CacheTierType::L2 => stored.l2 = true,
                    _ => stored.l3 = true,
                },
                Err(reason) => failures.push(reason),
            }
        }
        if stored == Stored::default() {
            return Err(ManagerError::NotStored {
                key: key.to_owned(),
                failures,
            });
        }
        Ok(stored)
    }

    /// Clears L1's flag of `key`: its L1 copy holds no use the tiers below lack (see the
    /// module docs' "Access data and demotion").
    pub(super) fn unflag_l1(&self, key: &str) {
        if let Some(l1) = self.l1() {
            l1.unflag(key);
        }
    }

    /// Removes `key` from every tier (the caller holds its lock).
    /// Bottom up (L3, L2, then L1): another process that looks the key up meanwhile finds it
    /// gone below before it is gone above, so it cannot promote a copy from L3 back into L2
    /// after L2's delete (that copy would outlive the delete).
    pub(super) fn delete_locked(&self, key: &str) -> bool {
        // Unflagged before the queued use is dropped, as in `put`.
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut deleted = false;
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            deleted |= self.delete_from(slot, key);
        }
        if let Some(l1) = self.l1() {
            deleted |= l1.delete(key).unwrap_or(false);
        }
        deleted
    }

    /// Removes `key` from every tier whose copy can be read (or that holds none), bottom up as
    /// [`Inner::delete_locked`]; a tier whose copy is unreadable keeps it (counted in
    /// `unreadable`): removing what cannot be read is the operator's act
    /// ([`crate::CacheManager::remove_unreadable`]), never a side effect of expiry or health
    /// marks. Returns the tiers that held a copy and removed it. The caller holds the key's lock.
    pub(super) fn delete_readable_locked(&self, key: &str) -> Vec<CacheTierType> {
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut removed = Vec::new();
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            if slot.answers_for(key) {
                match slot.tier.peek(key) {
                    Err(e) if e.is_corrupt_entry() => {
                        bump(&self.counters.tier(slot.kind).unreadable, 1);
                        continue;
                    }
                    Ok(None) => {
                        slot.note_fresh(key);
                        continue;
                    }
                    // Readable, or the tier failed to say: delete (a failure is noted as missed).
                    Ok(Some(_)) | Err(_) => {}
                }
            }
            if self.delete_from(slot, key) {
                removed.push(slot.kind);
            }
        }
        if let Some(l1) = self.l1()
            && l1.delete(key).unwrap_or(false)
        {
            removed.push(CacheTierType::L1);
        }
        removed
    }

    /// See [`super::CacheManager::clear`].
    pub(super) fn clear(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        // No lookup may promote a lower tier's copy into L1 between the clears.
        let _all = self.locks.lock_all();
        let mut total = 0;
        if let Some(l1) = self.l1() {
            total += l1.clear().unwrap_or(0);
        }
        self.evicted_use.clear();
        for slot in self.slots() {
            total += self.clear_slot(slot);
        }
        total
    }

    /// See [`super::CacheManager::cleanup_now`].
    pub(super) fn cleanup_now(&self) -> CleanupReport {
        let now = self.now();
        let mut report = CleanupReport::default();
        if self.is_closed() {
            return report;
        }
        let mut failures = Vec::new();
        let mut record = |tier: CacheTierType, removed: usize| {
            let counters = self.counters.tier(tier);
            bump(&counters.evictions_ttl, removed as u64);
            bump(&counters.cleaner_ttl, removed as u64);
            report.removed[crate::counters::index(tier)] = removed;
        };
        if let Some(l1) = self.l1() {
            record(CacheTierType::L1, l1.cleanup_expired(now).unwrap_or(0));
        }
        for slot in self.slots() {
            if !slot.serving() {
                failures.push((slot.kind, "degraded: skipped".to_owned()));
                continue;
            }
            match slot.tier.cleanup_expired(now) {
                Ok(n) => record(slot.kind, n),
                Err(e) => {
                    self.failed(slot, "cleanup", "", &e);
                    failures.push((slot.kind, e.to_string()));
                }
            }
        }
        report.failures = failures;
        report
    }
}

impl Expire for Inner {
    fn expire_now(&self) -> CleanupReport {
        self.cleanup_now()
    }
}
