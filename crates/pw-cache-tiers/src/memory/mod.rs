//! L1: the memory tier ([`MemoryTier`]), bounded, with real LRU, LFU and FIFO eviction.
//!
//! # Design
//!
//! The tier is split into `N` *shards*; a key's shard is chosen by a hash of the key (a
//! [`RandomState`] of its own, independent of the maps' hashers). Keys are hashed with
//! foldhash, randomly seeded per hasher (std's SipHash measured slower, both in the replay's
//! mixed phase and in this tier's get rate: [`pw_cache::docs::performance`]; a key is normally a SHA-256
//! digest already, and an attacker who cannot see the seed cannot aim keys at one bucket). Each shard is one
//! [`Mutex`] around:
//! - an index, `HashMap<String, slot>`, from key to a slot of
//! - a slab of slots: per slot an entry (behind an [`Arc`]) and its flag, and, in a `Vec` of
//!   their own, the intrusive `prev`/`next` indices of the list the slot sits in;
//! - the accesses noted and not yet applied to the lists (below);
//! - *frequency buckets*, the classic O(1) LFU structure (Shah, Mitra and Matani, 2010): a
//!   chain of buckets in increasing access count, each bucket a list of the slots with that
//!   count, least recently used first.
//!
//! The three policies share that structure and differ only in what an access does:
//!
//! | policy | new key | `get` | `put` of a held key | victim |
//! |---|---|---|---|---|
//! | [`EvictionPolicy::Lru`] | count 1, most recent | becomes most recent | becomes most recent | least recently used |
//! | [`EvictionPolicy::Lfu`] | count 1, most recent | count + 1, most recent | count + 1, most recent | fewest accesses; among those, least recently used |
//! | [`EvictionPolicy::Fifo`] | last in | no change | **keeps its place** (value replaced) | first in |
//!
//! (LRU and FIFO never leave the bucket of count 1: there the buckets are a single list.)
//! The FIFO choice follows the usual definition of FIFO: the entry's age is the time it
//! entered the tier; updating it in place does not make it younger.
//!
//! `get`, `put`, `delete` and `contains` are O(1) (one hash, one map lookup, a constant number
//! of list operations under one shard lock); `keys`, `size`, `clear` and
//! [`cleanup_expired`](CacheTier::cleanup_expired) visit every shard, the latter two in
//! O(entries).
//!
//! A `get` hit copies the [`CacheEntry`] under the lock: no decryption ever (credentials are
//! [`Secret`](pw_cache_model::Secret)s already in memory), and no atomic reference count
//! touched, which measured faster at one and at two threads than taking an [`Arc`] under the
//! lock and copying after (`benches/benches/l1_vs_moka.rs`). A `put` copies the entry before
//! taking the lock; replaced, evicted, deleted, expired and cleared entries are dropped (or
//! handed to the callback) after it is released.
//!
//! An access is not applied to the lists at once: the shard notes the slot in a lane of the
//! calling thread (one of four per shard, each on cache lines of its own), and applies its
//! noted accesses when a lane holds [`PENDING_ACCESSES`], and always before a put or a removal
//! (anything that chooses a victim or frees a slot), in the order the next section says.
//! Evictions are therefore the policy's, while a hit writes a line its own core
//! already holds instead of relinking the slot, its neighbours and the list ends, lines that
//! another core would then have to fetch back. The slots' links are kept apart from their
//! entries, so a hit reads no line that applying accesses writes. How two threads' hits scaled
//! against one thread's at each step (relinking at once, one shared array of noted accesses,
//! lanes with the links apart): see [`pw_cache::docs::performance`].
//!
//! # Access order
//!
//! By default ([`AccessOrder::PerThread`]) each thread's accesses are applied in the order it
//! made them, and the accesses of different threads since the shard last applied its noted
//! accesses (at most `4 × `[`PENDING_ACCESSES`] of them) one thread after the other. What
//! that changes against a single global order, exactly: two entries whose last uses fall
//! between the same two applications, by different threads, are ordered by thread instead of
//! by time. Every other pair keeps the exact order: an entry last used before an application
//! always goes before one used after it. LFU counts are exact. With one thread the order is
//! exact, so a single-threaded run evicts what proxywhirl's exact LRU evicts, one for one
//! (tested against the model for every policy; the replay's L1 hits equal proxywhirl's).
//!
//! [`AccessOrder::Exact`] keeps the order of every access across threads too: each access
//! takes the shard's next sequence number, and the lanes are merged by it. That number is a
//! line both cores write, so with the lock's own line two lines pass between the cores
//! whenever consecutive hits of a shard come from different threads, against one without it:
//! two threads' hits scale less with it than without it in the same quiet runs (figures in
//! [`pw_cache::docs::performance`], "L1 against moka"). No
//! concurrent cache keeps that order either (moka and quick_cache keep approximate ones), so
//! it is the opt-in: for a caller that must see threads' hits evict in the exact order they
//! happened.
//!
//! # Shards and the policy
//!
//! With one shard the policy is exact and global: the victim is the policy's victim among all
//! entries of the tier. With `N > 1` shards, as in moka or quick_cache, the policy is applied
//! **per shard**:
//! - `max_entries` is split across the shards: shard `i` holds at most
//!   `max_entries / N` entries, plus one for the first `max_entries % N` shards; the sum is
//!   exactly `max_entries`, so [`size`](CacheTier::size) never exceeds it;
//! - a `put` of a new key into a full shard evicts that shard's victim, even if the tier as a
//!   whole holds fewer than `max_entries` entries (keys are not spread perfectly evenly);
//! - the victim is the policy's victim *within the shard*, which is not always the global one.
//!
//! The default shard count ([`MemoryTier::default_shard_count`]) keeps at least
//! [`MIN_ENTRIES_PER_SHARD`] entries per shard, so small tiers get one shard (exact policy) and
//! only large ones are split, up to [`MAX_DEFAULT_SHARDS`] shards; an unbounded tier (nothing
//! to evict, so nothing to approximate) gets [`MAX_DEFAULT_SHARDS`].
//!
//! # Eviction callback
//!
//! Only evictions by the policy (a `put` into a full shard) reach the callback given to
//! [`MemoryTier::with_eviction_callback`] and the [`MemoryTier::evictions`] count: `delete`,
//! `clear` and `cleanup_expired` do not. (A second hook, [`MemoryTier::with_locked_eviction_sink`],
//! sees each evicted entry while the shard's lock is held, for a caller that must record the
//! eviction atomically with it.) The callback runs on the thread that called `put`,
//! after the shard lock is released, so it may call back into the tier.
//!
//! # Robustness
//!
//! No operation fails with an error except a `put` with an empty key
//! ([`TierError::InvalidEntry`]). Should a thread ever panic while holding a shard lock (a bug:
//! no user code runs under the lock), the next user of that shard
//! empties it and carries on: losing cached entries is safe, a half-updated list is not.
//!
//! The tier ignores [`CacheTierConfig::enabled`]: whether to use a disabled tier is the
//! manager's decision.
//!
//! [`pw_cache::docs::performance`]: https://docs.rs/pw-cache/latest/pw_cache/docs/performance/index.html

mod lanes;
mod lfu;
mod shard;

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pw_cache_model::{CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, HealthStatus, OffsetDateTime};

use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, TierHealth};
use shard::{Displaced, Shard, lock, shard_capacity};
// The unit tests (`tests.rs`, `use super::*`) name these as they did when they were inline.
#[cfg(test)]
use {lanes::NotedAccesses, std::collections::HashMap};

/// The default shard count keeps at least this many entries per shard (a tier of fewer than
/// twice this many entries has a single shard, and an exact policy).
pub const MIN_ENTRIES_PER_SHARD: u64 = 64;

/// The most shards [`MemoryTier::default_shard_count`] chooses.
pub const MAX_DEFAULT_SHARDS: usize = 16;

/// Accesses a shard notes before applying them to its lists (see the module's docs).
pub const PENDING_ACCESSES: usize = 64;

/// How a shard orders the accesses of different threads (see the module's docs, "Access
/// order"). Set with [`MemoryTier::with_access_order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessOrder {
    /// The policy sees every access in the order it happened, whichever thread made it, as
    /// proxywhirl's L1 (one exact LRU under one lock) does: each access takes the shard's next
    /// sequence number, a line the other cores then fetch. Two threads' hits scale less.
    Exact,
    /// The default. Each thread's accesses in their order, but the accesses that different
    /// threads made since the shard last applied its noted accesses (at most
    /// `4 × `[`PENDING_ACCESSES`]) are applied one thread after the other rather than
    /// interleaved as they happened. No shared sequence number: a hit writes one line fewer
    /// that the other cores then fetch. Only entries last used between the same two
    /// applications, by different threads, can be out of order; with one thread the order is
    /// exact.
    #[default]
    PerThread,
}

/// The most shards a tier can have ([`MemoryTier::with_shards`] clamps to it).
pub const MAX_SHARDS: usize = 1024;

/// A shard on cache lines of its own: two cores using neighbouring shards do not pass a line
/// back and forth (128 bytes: the spatial prefetcher of x86 pulls lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// What receives each entry the policy evicts.
type EvictionCallback = Box<dyn Fn(String, CacheEntry) + Send + Sync>;

/// What sees each entry the policy evicts, under the shard's lock.
type EvictionSink = Box<dyn Fn(&CacheEntry, bool) + Send + Sync>;

/// The L1 tier: entries in memory, bounded by `max_entries`, evicted by the configured
/// [`EvictionPolicy`]. See the [module documentation](self) for the design and the exact
/// semantics with several shards.
///
/// ```
/// use pw_cache_model::{CacheEntry, CacheTierConfig, EvictionPolicy};
/// use pw_cache_tiers::CacheTier;
/// use pw_cache_tiers::memory::MemoryTier;
///
/// let config = CacheTierConfig::bounded(2).with_policy(EvictionPolicy::Fifo);
/// let tier = MemoryTier::new(&config).with_eviction_callback(|key, _entry| println!("demote {key}"));
/// for key in ["a", "b", "c"] {
///     tier.put(&CacheEntry::new("http://1.2.3.4:8080", "fetched", 60)?.with_key(key))?;
/// }
/// assert!(!tier.contains("a")?);
/// assert_eq!(tier.evictions(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryTier {
    policy: EvictionPolicy,
    max_entries: Option<u64>,
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Picks a key's shard; independent of the shards' own map hashers, so that the keys of
    /// one shard still spread over its map's buckets.
    shard_hasher: RandomState,
    on_evict: Option<EvictionCallback>,
    on_evict_locked: Option<EvictionSink>,
    access_order: AccessOrder,
    evictions: AtomicU64,
    health: TierHealth,
}

impl MemoryTier {
    /// A tier for `config` (`max_entries`, `eviction_policy`) with
    /// [`MemoryTier::default_shard_count`] shards and no eviction callback.
    pub fn new(config: &CacheTierConfig) -> Self {
        Self::with_shards(config, Self::default_shard_count(config.max_entries))
    }

    /// A tier for `config` with `shards` shards, clamped to `1..=`[`MAX_SHARDS`] and, when
    /// bounded, to at most `max_entries` (every shard holds at least one entry). One shard
    /// makes the policy exact and global. A `max_entries` of 0 (which config validation
    /// rejects) is treated as 1.
    pub fn with_shards(config: &CacheTierConfig, shards: usize) -> Self {
        let mut count = shards.clamp(1, MAX_SHARDS);
        if let Some(max) = config.max_entries {
            count = count.min(usize::try_from(max.max(1)).unwrap_or(usize::MAX));
        }
        let shards = (0..count)
            .map(|i| {
                Padded(Mutex::new(Shard::new(
                    config.eviction_policy,
                    shard_capacity(config.max_entries, count, i),
                    AccessOrder::default(),
                )))
            })
            .collect();
        Self {
            policy: config.eviction_policy,
            max_entries: config.max_entries,
            shards,
            shard_hasher: RandomState::default(),
            on_evict: None,
            on_evict_locked: None,
            access_order: AccessOrder::default(),
            evictions: AtomicU64::new(0),
            health: TierHealth::new(),
        }
    }

    /// The same tier, calling `on_evict(key, entry)` for each entry the policy evicts (so the
    /// manager can demote it), in eviction order, after the shard lock is released.
    pub fn with_eviction_callback(mut self, on_evict: impl Fn(String, CacheEntry) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Box::new(on_evict));
        self
    }

    /// The same tier, calling `sink(entry, flagged)` for each entry the policy evicts (with
    /// its flag, see [`MemoryTier::put_flagged`]) **while the shard's lock is still held**, so
    /// that no other thread can observe the tier between the eviction and what `sink` records
    /// (the manager queues the entry's use for L2/L3 this way: a lookup never finds it neither
    /// in L1 nor queued). `sink` must be short and must not call into the tier (that would
    /// deadlock); use [`MemoryTier::with_eviction_callback`] for anything else. Both may be
    /// set; the sink runs first.
    pub fn with_locked_eviction_sink(mut self, sink: impl Fn(&CacheEntry, bool) + Send + Sync + 'static) -> Self {
        self.on_evict_locked = Some(Box::new(sink));
        self
    }

    /// The same tier, ordering the accesses of different threads as `order` says
    /// ([`AccessOrder::PerThread`], the default, unless set).
    pub fn with_access_order(mut self, order: AccessOrder) -> Self {
        self.access_order = order;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            // Accesses noted so far are applied in the order they were noted in.
            shard.apply_pending();
            shard.noted.order = order;
        }
        self
    }

    /// How the tier orders the accesses of different threads.
    pub fn access_order(&self) -> AccessOrder {
        self.access_order
    }

    /// The shard count [`MemoryTier::new`] uses: `max_entries / `[`MIN_ENTRIES_PER_SHARD`]
    /// clamped to `1..=`[`MAX_DEFAULT_SHARDS`] (so 1 below 128 entries, 15 for the default L1
    /// of 1,000), and [`MAX_DEFAULT_SHARDS`] when unbounded.
    pub fn default_shard_count(max_entries: Option<u64>) -> usize {
        match max_entries {
            None => MAX_DEFAULT_SHARDS,
            Some(max) => usize::try_from(max / MIN_ENTRIES_PER_SHARD)
                .unwrap_or(usize::MAX)
                .clamp(1, MAX_DEFAULT_SHARDS),
        }
    }

    /// The eviction policy.
    pub fn policy(&self) -> EvictionPolicy {
        self.policy
    }

    /// The bound on the number of entries (`None`: unbounded).
    pub fn max_entries(&self) -> Option<u64> {
        self.max_entries
    }

    /// How many shards the tier has.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// How many entries the policy has evicted so far (not counting `delete`, `clear` or
    /// `cleanup_expired`).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// A hit that changes the entry: one access for the policy (as [`CacheTier::get`]) and
    /// `update` applied to the stored entry, atomically under the shard's lock; returns the
    /// updated entry, or `None` when `key` is not held. The manager counts a hit this way
    /// (`access_count + 1`, `last_accessed = now`) without a second access that a `get`
    /// followed by a `put` would record (which, under LFU, would count every hit twice).
    ///
    /// `update` runs under the shard's lock: it must be short and must not call into the tier.
    pub fn touch(&self, key: &str, update: impl FnOnce(&mut CacheEntry)) -> Option<CacheEntry> {
        self.touch_flagging(key, |entry| {
            update(entry);
            false
        })
    }

    /// [`MemoryTier::touch`], and the entry is flagged (see [`MemoryTier::put_flagged`]) when
    /// `update` returns `true`, in the same step under the shard's lock.
    pub fn touch_flagging(&self, key: &str, update: impl FnOnce(&mut CacheEntry) -> bool) -> Option<CacheEntry> {
        let found = lock(self.shard_for(key)).touch(key, update);
        found.map(|entry| CacheEntry::clone(&entry))
    }

    /// [`CacheTier::put`], with the stored entry's flag set to `flagged`.
    ///
    /// Each entry carries one flag for the caller's bookkeeping (the manager flags the entries
    /// whose use the tiers below have not recorded yet). It is set by `put_flagged(_, true)`,
    /// [`MemoryTier::touch_flagging`] and [`MemoryTier::flag`]; cleared by a plain
    /// [`put`](CacheTier::put) of the key and by [`MemoryTier::unflag`]; and gone with the
    /// entry. The locked eviction sink ([`MemoryTier::with_locked_eviction_sink`]) gets the
    /// evicted entry's flag. Keeping it in the tier costs a hit nothing extra: no second map
    /// of keys to look up and lock.
    pub fn put_flagged(&self, entry: &CacheEntry, flagged: bool) -> Result<(), TierError> {
        TierError::require_key(&entry.key)?;
        let stored = Arc::new(entry.clone());
        let displaced = {
            let mut shard = lock(self.shard_for(&entry.key));
            let displaced = shard.put(stored, flagged);
            if let (Displaced::Evicted(evicted, evicted_flag), Some(sink)) = (&displaced, &self.on_evict_locked) {
                sink(evicted, *evicted_flag);
            }
            displaced
        };
        // The lock is released: drop, count and report outside it.
        self.health.record_success();
        match displaced {
            Displaced::Nothing => {}
            Displaced::Replaced(previous) => drop(previous),
            Displaced::Evicted(evicted, _) => {
                self.evictions.fetch_add(1, Ordering::Relaxed);
                if let Some(on_evict) = &self.on_evict {
                    let evicted = Arc::unwrap_or_clone(evicted);
                    on_evict(evicted.key.clone(), evicted);
                }
            }
        }
        Ok(())
    }

    /// Flags the entry of `key`; whether the tier holds it.
    pub fn flag(&self, key: &str) -> bool {
        lock(self.shard_for(key)).set_flag(key, true).is_some()
    }

    /// Clears the flag of `key`; whether it was set (`false` also when the key is not held).
    pub fn unflag(&self, key: &str) -> bool {
        lock(self.shard_for(key)).set_flag(key, false) == Some(true)
    }

    /// The keys whose entries are flagged.
    pub fn flagged_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            lock(shard).push_flagged_keys(&mut keys);
        }
        keys
    }

    /// `update` applied to the stored entry of `key` in place, atomically, without it being an
    /// access (the policy's order does not change: e.g. recording a failed health check is not
    /// a use); returns the updated entry, or `None` when `key` is not held. The same rules as
    /// [`MemoryTier::touch`] apply to `update`.
    pub fn update(&self, key: &str, update: impl FnOnce(&mut CacheEntry)) -> Option<CacheEntry> {
        let found = lock(self.shard_for(key)).update(key, update);
        found.map(|entry| CacheEntry::clone(&entry))
    }

    fn shard_for(&self, key: &str) -> &Mutex<Shard> {
        let index = if self.shards.len() == 1 {
            0
        } else {
            // The remainder is below the shard count, itself a usize: the cast is lossless.
            (self.shard_hasher.hash_one(key) % self.shards.len() as u64) as usize
        };
        &self.shards[index]
    }
}

impl fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTier")
            .field("policy", &self.policy)
            .field("max_entries", &self.max_entries)
            .field("shards", &self.shards.len())
            .field("access_order", &self.access_order)
            .field("evictions", &self.evictions())
            .field("eviction_callback", &self.on_evict.is_some())
            .field("locked_eviction_sink", &self.on_evict_locked.is_some())
            .field("health", &self.health)
            .finish()
    }
}

/// The memory tier implements [`CacheTier`] itself rather than through
/// [`TierBackend`](crate::TierBackend): it never fails, so it has no failure to record (some of
/// its operations record their success by hand, as they always have).
impl CacheTier for MemoryTier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L1
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let found = lock(self.shard_for(key)).get_with(key, CacheEntry::clone);
        self.health.record_success();
        Ok(found)
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let found = lock(self.shard_for(key)).peek(key);
        Ok(found.map(|entry| CacheEntry::clone(&entry)))
    }

    /// Stores `entry`, its flag cleared ([`MemoryTier::put_flagged`]).
    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.put_flagged(entry, false)
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        let removed = lock(self.shard_for(key)).remove(key);
        self.health.record_success();
        Ok(removed.is_some())
    }

    fn clear(&self) -> Result<usize, TierError> {
        let mut cleared = 0;
        for shard in self.shards.iter() {
            // The guard is dropped at the end of this statement, the entries after it.
            let emptied = lock(shard).take_all();
            cleared += emptied.len();
        }
        self.health.record_success();
        Ok(cleared)
    }

    fn size(&self) -> Result<usize, TierError> {
        let size = self.shards.iter().map(|shard| lock(shard).len()).sum();
        self.health.record_success();
        Ok(size)
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            keys.extend(lock(shard).index.keys().cloned());
        }
        self.health.record_success();
        Ok(keys)
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        // Not an access: the policy's order does not change.
        let held = lock(self.shard_for(key)).index.contains_key(key);
        self.health.record_success();
        Ok(held)
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let expired = lock(shard).remove_expired(now);
            removed += expired.len();
            // `expired` is dropped here, with the lock already released.
        }
        self.health.record_success();
        Ok(removed)
    }

    fn health(&self) -> &TierHealth {
        &self.health
    }

    fn evictions(&self) -> u64 {
        MemoryTier::evictions(self)
    }

    /// Under the key's shard lock: the two fields changed in place (not an access; the
    /// entry's flag is kept), or the entry removed at `evict_at`.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let mut shard = lock(self.shard_for(key));
        let Some(failure_count) = shard.peek(key).map(|entry| entry.failure_count.saturating_add(1)) else {
            return Ok(FailureMark::Absent);
        };
        if evict_at.is_some_and(|at| failure_count >= at) {
            let removed = shard.remove(key);
            drop(shard);
            // Dropped without the lock.
            drop(removed);
            self.health.record_success();
            return Ok(FailureMark::Evicted { failure_count });
        }
        shard.update(key, |entry| {
            entry.failure_count = failure_count;
            entry.health_status = HealthStatus::Unhealthy;
        });
        drop(shard);
        self.health.record_success();
        Ok(FailureMark::Marked { failure_count })
    }
}

#[cfg(test)]
mod tests;
