//! A shard of the memory tier: its key index, the slab of slots (entries, flags, links), the
//! intrusive lists the slots sit in, and get, put, removal and eviction under the shard's lock.
//! How a tier's `max_entries` is split across its shards, and what locking a shard does after
//! a panic, are here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::fast::RandomState;
use pw_cache_model::{CacheEntry, EvictionPolicy, OffsetDateTime};

use super::AccessOrder;
use super::lanes::NotedAccesses;
use super::lfu::Bucket;

/// "No slot" / "no bucket" in the intrusive links.
pub(super) const NIL: usize = usize::MAX;

/// What a [`Shard::put`] pushed out.
pub(super) enum Displaced {
    /// Nothing: a new key in a shard with room.
    Nothing,
    /// The previous version of the same key.
    Replaced(Arc<CacheEntry>),
    /// Another entry, evicted by the policy to make room, and its flag.
    Evicted(Arc<CacheEntry>, bool),
}

/// The links of one slot of a shard's slab in its bucket's list (its entry is in `Shard::entries`).
#[derive(Debug)]
pub(super) struct Slot {
    /// The less recent neighbour in the bucket's list.
    pub(super) prev: usize,
    /// The more recent neighbour in the bucket's list.
    pub(super) next: usize,
    /// The bucket the slot is in.
    pub(super) bucket: usize,
}

/// One shard: a key index, a slab of slots and the frequency buckets over them.
#[derive(Debug)]
pub(super) struct Shard {
    policy: EvictionPolicy,
    /// At most this many entries (at least 1).
    pub(super) capacity: usize,
    pub(super) index: HashMap<String, usize, RandomState>,
    /// The entry of each slot (`None` when the slot is free), apart from the slots' links so
    /// that a hit reads no line that applying noted accesses writes.
    entries: Vec<Option<Arc<CacheEntry>>>,
    /// The flag of each slot's entry ([`MemoryTier::put_flagged`](super::MemoryTier::put_flagged)).
    flags: Vec<bool>,
    /// The links of each slot.
    pub(super) slots: Vec<Slot>,
    free_slots: Vec<usize>,
    pub(super) buckets: Vec<Bucket>,
    pub(super) free_buckets: Vec<usize>,
    /// The bucket of the lowest count (where victims come from), or [`NIL`] when empty.
    pub(super) lowest: usize,
    /// Accesses recorded but not yet applied to the lists (see [`Shard::record_access`]).
    pub(super) noted: NotedAccesses,
}

impl Shard {
    pub(super) fn new(policy: EvictionPolicy, capacity: usize, order: AccessOrder) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            index: HashMap::default(),
            entries: Vec::new(),
            flags: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            buckets: Vec::new(),
            free_buckets: Vec::new(),
            lowest: NIL,
            noted: NotedAccesses {
                order,
                ..NotedAccesses::default()
            },
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// `f` of the entry under `key`, counted as an access.
    pub(super) fn get_with<R>(&mut self, key: &str, f: impl FnOnce(&CacheEntry) -> R) -> Option<R> {
        let slot = *self.index.get(key)?;
        self.record_access(slot);
        self.entries[slot].as_deref().map(f)
    }

    /// The entry without recording an access.
    pub(super) fn peek(&self, key: &str) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        self.entries[slot].clone()
    }

    /// `update` applied to the stored entry in place, not an access.
    pub(super) fn update(&mut self, key: &str, update: impl FnOnce(&mut CacheEntry)) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        let stored = self.entries[slot].as_mut()?;
        update(Arc::make_mut(stored));
        Some(Arc::clone(stored))
    }

    /// One access, and `update` applied to the stored entry in place. The entry is copied only
    /// if a reader still holds the previous version (`Arc::make_mut`), which is rare.
    /// `update` may ask for the entry to be flagged by returning `true`.
    pub(super) fn touch(&mut self, key: &str, update: impl FnOnce(&mut CacheEntry) -> bool) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        self.record_access(slot);
        let stored = self.entries[slot].as_mut()?;
        if update(Arc::make_mut(stored)) {
            self.flags[slot] = true;
        }
        Some(Arc::clone(stored))
    }

    /// Sets the flag of `key` to `value`; its previous value, or `None` when `key` is not held.
    pub(super) fn set_flag(&mut self, key: &str, value: bool) -> Option<bool> {
        let slot = *self.index.get(key)?;
        Some(std::mem::replace(&mut self.flags[slot], value))
    }

    /// Appends the keys of the flagged entries to `keys`.
    pub(super) fn push_flagged_keys(&self, keys: &mut Vec<String>) {
        let flagged = self.entries.iter().zip(&self.flags).filter(|(_, flagged)| **flagged);
        keys.extend(flagged.filter_map(|(entry, _)| entry.as_ref().map(|e| e.key.clone())));
    }

    /// Stores `entry` under its key: replaces (an access) or inserts, evicting the policy's
    /// victim first if the shard is full.
    pub(super) fn put(&mut self, entry: Arc<CacheEntry>, flagged: bool) -> Displaced {
        // Earlier accesses first: the new entry goes after them, and the victim is chosen
        // from the lists as they are.
        self.apply_pending();
        if let Some(&slot) = self.index.get(&entry.key) {
            let previous = self.entries[slot].replace(entry);
            self.flags[slot] = flagged;
            self.record_access(slot);
            return previous.map_or(Displaced::Nothing, Displaced::Replaced);
        }
        let evicted = if self.len() >= self.capacity {
            self.evict_one()
        } else {
            None
        };
        let key = entry.key.clone();
        let slot = self.allocate_slot(entry, flagged);
        self.index.insert(key, slot);
        let first_bucket = if self.lowest != NIL && self.buckets[self.lowest].count == 1 {
            self.lowest
        } else {
            self.insert_bucket_after(NIL, 1)
        };
        self.append(first_bucket, slot);
        evicted.map_or(Displaced::Nothing, |(entry, flag)| Displaced::Evicted(entry, flag))
    }

    /// Removes `key`; its entry if it was there.
    pub(super) fn remove(&mut self, key: &str) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        self.apply_pending();
        self.remove_slot(slot).map(|(entry, _)| entry)
    }

    /// Removes the policy's victim: the least recently used slot of the lowest bucket.
    fn evict_one(&mut self) -> Option<(Arc<CacheEntry>, bool)> {
        if self.lowest == NIL {
            return None;
        }
        let victim = self.buckets[self.lowest].head;
        self.remove_slot(victim)
    }

    /// Removes every entry expired at `now` (O(slots)); the removed entries.
    pub(super) fn remove_expired(&mut self, now: OffsetDateTime) -> Vec<Arc<CacheEntry>> {
        self.apply_pending();
        let expired: Vec<usize> = (0..self.slots.len())
            .filter(|&slot| self.entries[slot].as_ref().is_some_and(|e| e.is_expired_at(now)))
            .collect();
        expired
            .into_iter()
            .filter_map(|slot| self.remove_slot(slot).map(|(entry, _)| entry))
            .collect()
    }

    /// Empties the shard; the entries it held (for the caller to drop).
    pub(super) fn take_all(&mut self) -> Vec<Arc<CacheEntry>> {
        let emptied = std::mem::replace(self, Shard::new(self.policy, self.capacity, self.noted.order));
        emptied.entries.into_iter().flatten().collect()
    }

    /// Records an access (a `get`, or a `put` of a held key) in the calling thread's lane of
    /// [`NotedAccesses`]. It is applied to the lists later, in order with the others noted
    /// (when a lane holds [`PENDING_ACCESSES`](super::PENDING_ACCESSES)), and always before
    /// anything that depends on the lists or changes which slots are used (a put, a removal):
    /// so every eviction is exactly the policy's, while a hit writes one slot of its lane
    /// instead of relinking the slot, its neighbours and the list ends, lines that another core
    /// then has to fetch back (measurements: [`pw_cache::docs::performance`]).
    ///
    /// [`pw_cache::docs::performance`]: https://docs.rs/pw-cache/latest/pw_cache/docs/performance/index.html
    fn record_access(&mut self, slot: usize) {
        if self.policy == EvictionPolicy::Fifo {
            return;
        }
        if self.noted.note(slot) {
            self.apply_pending();
        }
    }

    /// Applies the recorded accesses, oldest first.
    pub(super) fn apply_pending(&mut self) {
        if self.noted.is_empty() {
            return;
        }
        let mut noted = std::mem::take(&mut self.noted);
        noted.drain_in_order(|slot| match self.policy {
            EvictionPolicy::Fifo => {}
            EvictionPolicy::Lru => self.move_to_most_recent(slot),
            EvictionPolicy::Lfu => self.increment_count(slot),
        });
        self.noted = noted;
    }

    /// Moves `slot` to the most recent end of its bucket.
    pub(super) fn move_to_most_recent(&mut self, slot: usize) {
        let bucket = self.slots[slot].bucket;
        if self.buckets[bucket].tail != slot {
            self.unlink(bucket, slot);
            self.append(bucket, slot);
        }
    }

    /// Unlinks and frees `slot`, and removes its key from the index; its entry and flag.
    fn remove_slot(&mut self, slot: usize) -> Option<(Arc<CacheEntry>, bool)> {
        let entry = self.entries[slot].take()?;
        let flagged = std::mem::take(&mut self.flags[slot]);
        let bucket = self.slots[slot].bucket;
        self.unlink(bucket, slot);
        self.release_bucket_if_empty(bucket);
        self.free_slots.push(slot);
        self.index.remove(&entry.key);
        Some((entry, flagged))
    }

    fn allocate_slot(&mut self, entry: Arc<CacheEntry>, flagged: bool) -> usize {
        let slot = Slot {
            prev: NIL,
            next: NIL,
            bucket: NIL,
        };
        match self.free_slots.pop() {
            Some(free) => {
                self.slots[free] = slot;
                self.entries[free] = Some(entry);
                self.flags[free] = flagged;
                free
            }
            None => {
                self.slots.push(slot);
                self.entries.push(Some(entry));
                self.flags.push(flagged);
                self.slots.len() - 1
            }
        }
    }

    /// Appends `slot` at the most recent end of `bucket`'s list.
    pub(super) fn append(&mut self, bucket: usize, slot: usize) {
        let tail = self.buckets[bucket].tail;
        let links = &mut self.slots[slot];
        links.bucket = bucket;
        links.prev = tail;
        links.next = NIL;
        if tail == NIL {
            self.buckets[bucket].head = slot;
        } else {
            self.slots[tail].next = slot;
        }
        self.buckets[bucket].tail = slot;
    }

    /// Takes `slot` out of `bucket`'s list (the bucket may be left empty).
    pub(super) fn unlink(&mut self, bucket: usize, slot: usize) {
        let Slot { prev, next, .. } = self.slots[slot];
        if prev == NIL {
            self.buckets[bucket].head = next;
        } else {
            self.slots[prev].next = next;
        }
        if next == NIL {
            self.buckets[bucket].tail = prev;
        } else {
            self.slots[next].prev = prev;
        }
        self.slots[slot].prev = NIL;
        self.slots[slot].next = NIL;
    }

    /// Panics if any link, count or index is inconsistent (tests only).
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let mut seen = 0;
        let mut previous_count = 0;
        let mut lower = NIL;
        let mut bucket = self.lowest;
        while bucket != NIL {
            let b = &self.buckets[bucket];
            assert_eq!(b.lower, lower, "bucket chain back link");
            assert!(b.count > previous_count, "bucket counts strictly increase");
            assert_ne!(b.head, NIL, "no empty bucket stays chained");
            if self.policy != EvictionPolicy::Lfu {
                assert_eq!(b.count, 1, "LRU and FIFO stay at count 1");
            }
            let mut prev = NIL;
            let mut slot = b.head;
            while slot != NIL {
                let s = &self.slots[slot];
                assert_eq!(s.prev, prev, "slot back link");
                assert_eq!(s.bucket, bucket, "slot's bucket");
                let entry = self.entries[slot].as_ref().expect("a linked slot holds an entry");
                assert_eq!(self.index.get(&entry.key), Some(&slot), "index points at the slot");
                seen += 1;
                prev = slot;
                slot = s.next;
            }
            assert_eq!(b.tail, prev, "bucket tail");
            previous_count = b.count;
            lower = bucket;
            bucket = b.higher;
        }
        assert_eq!(seen, self.index.len(), "every indexed key is linked once");
        assert!(self.index.len() <= self.capacity, "capacity respected");
        assert_eq!(self.flags.len(), self.entries.len(), "a flag per slot");
        for (entry, flagged) in self.entries.iter().zip(&self.flags) {
            assert!(entry.is_some() || !flagged, "a free slot is not flagged");
        }
        let occupied = self.entries.iter().filter(|e| e.is_some()).count();
        assert_eq!(occupied, self.index.len(), "no leaked slot");
        assert_eq!(occupied + self.free_slots.len(), self.slots.len(), "free list complete");
    }
}

/// The capacity of shard `index` of `shards` for a tier of `max_entries`.
pub(super) fn shard_capacity(max_entries: Option<u64>, shards: usize, index: usize) -> usize {
    let Some(max) = max_entries else {
        return usize::MAX;
    };
    let shards = shards as u64;
    let extra = u64::from((index as u64) < max % shards);
    usize::try_from(max / shards + extra).unwrap_or(usize::MAX).max(1)
}

/// Locks a shard. A shard poisoned by a panic may hold half-updated links: it is emptied
/// (entries are only cached copies) and the poison cleared.
pub(super) fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    match shard.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            let dropped = guard.take_all().len();
            shard.clear_poison();
            tracing::warn!(
                dropped,
                "memory tier shard poisoned by a panic: its entries were dropped"
            );
            guard
        }
    }
}
