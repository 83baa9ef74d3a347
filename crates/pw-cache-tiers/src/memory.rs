//! L1: the memory tier ([`MemoryTier`]), bounded, with real LRU, LFU and FIFO eviction.
//!
//! # Design
//!
//! The tier is split into `N` *shards*; a key's shard is chosen by a hash of the key (a
//! [`RandomState`] of its own, independent of the maps' hashers). Keys are hashed with
//! foldhash, randomly seeded per hasher (std's SipHash cost the replay's mixed phase 4–5 %
//! and this tier 15 % of its get rate; a key is normally a SHA-256 digest already, and an
//! attacker who cannot see the seed cannot aim keys at one bucket). Each shard is one
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
//! entries, so a hit reads no line that applying accesses writes. Two threads' hits went from
//! 1.08x one thread's at 10,000 entries (relinking at once) to 1.27x (one shared array of noted
//! accesses) and 1.41-1.46x (lanes, links apart); see `docs/performance.md`.
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
//! two threads' hits at 10,000 entries scaled 1.38–1.46× one thread's with it and 1.52–1.58×
//! without it in the same quiet runs (`docs/performance.md`, "L1 against moka"). No
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

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pw_cache_model::{CacheEntry, CacheTierConfig, CacheTierType, EvictionPolicy, HealthStatus, OffsetDateTime};

use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, TierHealth};

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

/// "No slot" / "no bucket" in the intrusive links.
const NIL: usize = usize::MAX;

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
        if entry.key.is_empty() {
            return Err(TierError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".into(),
            });
        }
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

/// The capacity of shard `index` of `shards` for a tier of `max_entries`.
fn shard_capacity(max_entries: Option<u64>, shards: usize, index: usize) -> usize {
    let Some(max) = max_entries else {
        return usize::MAX;
    };
    let shards = shards as u64;
    let extra = u64::from((index as u64) < max % shards);
    usize::try_from(max / shards + extra).unwrap_or(usize::MAX).max(1)
}

/// Locks a shard. A shard poisoned by a panic may hold half-updated links: it is emptied
/// (entries are only cached copies) and the poison cleared.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
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

/// What a [`Shard::put`] pushed out.
enum Displaced {
    /// Nothing: a new key in a shard with room.
    Nothing,
    /// The previous version of the same key.
    Replaced(Arc<CacheEntry>),
    /// Another entry, evicted by the policy to make room, and its flag.
    Evicted(Arc<CacheEntry>, bool),
}

/// The links of one slot of a shard's slab in its bucket's list (its entry is in `Shard::entries`).
#[derive(Debug)]
struct Slot {
    /// The less recent neighbour in the bucket's list.
    prev: usize,
    /// The more recent neighbour in the bucket's list.
    next: usize,
    /// The bucket the slot is in.
    bucket: usize,
}

/// Lanes of [`NotedAccesses`]: a thread notes its accesses in lane `thread number %
/// ACCESS_LANES`, so that two threads do not write the same lines.
const ACCESS_LANES: usize = 4;

/// The calling thread's lane in every shard's [`NotedAccesses`]: threads are numbered in the
/// order of their first access to any tier.
fn thread_lane() -> usize {
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % ACCESS_LANES;
    }
    // Lane 0 for a thread past its thread-locals' destruction: sharing a lane is only slower.
    LANE.try_with(|lane| *lane).unwrap_or(0)
}

/// One noted access: the shard's sequence number when it happened, and the slot.
#[derive(Debug, Clone, Copy)]
struct Noted {
    seq: u64,
    slot: usize,
}

/// The accesses a shard has noted and not yet applied to its lists.
///
/// Each thread notes in a lane of its own (by thread number, modulo [`ACCESS_LANES`]; two
/// threads that share a lane are still correct, only slower), each lane on cache lines of its
/// own: a hit writes a line its own core already holds instead of one the other core wrote
/// last. With [`AccessOrder::Exact`] every access also takes the shard's next sequence number
/// (under the shard's lock, so the numbers follow the order of the accesses exactly), and
/// [`drain_in_order`](Self::drain_in_order) merges the lanes by it: the lists see the
/// accesses in the order they happened, whichever lanes they sit in. With
/// [`AccessOrder::PerThread`] it applies the lanes one after the other.
#[derive(Debug, Default)]
struct NotedAccesses {
    /// Whether accesses take sequence numbers ([`AccessOrder::Exact`]) or not.
    order: AccessOrder,
    /// The sequence number of the next access ([`AccessOrder::Exact`]).
    next_seq: u64,
    /// `next_seq` when the lanes were last drained: equal when none is noted.
    drained_at: u64,
    lanes: [Padded<Vec<Noted>>; ACCESS_LANES],
}

impl NotedAccesses {
    /// Notes an access to `slot` in the calling thread's lane; `true` when that lane is full
    /// (holds [`PENDING_ACCESSES`]) and the accesses should be applied.
    fn note(&mut self, slot: usize) -> bool {
        self.note_in(thread_lane(), slot)
    }

    /// [`note`](Self::note) in lane `lane`.
    fn note_in(&mut self, lane: usize, slot: usize) -> bool {
        let seq = self.next_seq;
        if self.order == AccessOrder::Exact {
            self.next_seq = seq.wrapping_add(1);
        }
        let lane = &mut self.lanes[lane % ACCESS_LANES].0;
        lane.push(Noted { seq, slot });
        lane.len() >= PENDING_ACCESSES
    }

    fn is_empty(&self) -> bool {
        match self.order {
            AccessOrder::Exact => self.next_seq == self.drained_at,
            AccessOrder::PerThread => self.lanes.iter().all(|lane| lane.0.is_empty()),
        }
    }

    /// Calls `apply` on every noted slot in the order of the accesses, and empties the lanes
    /// (keeping their buffers). [`AccessOrder::PerThread`]: lane after lane, each in order.
    fn drain_in_order(&mut self, mut apply: impl FnMut(usize)) {
        if self.order == AccessOrder::PerThread {
            for lane in &mut self.lanes {
                lane.0.drain(..).for_each(|noted| apply(noted.slot));
            }
            return;
        }
        let mut next = [0_usize; ACCESS_LANES];
        loop {
            // The lane whose next access is the oldest. Sequence numbers are compared by
            // their distance from the first undrained one, so a wrap of the counter (after
            // 2^64 accesses) keeps the order.
            let mut oldest: Option<(usize, Noted)> = None;
            for (lane, at) in next.iter().enumerate() {
                if let Some(&noted) = self.lanes[lane].0.get(*at) {
                    let age = noted.seq.wrapping_sub(self.drained_at);
                    if oldest.is_none_or(|(_, o)| age < o.seq.wrapping_sub(self.drained_at)) {
                        oldest = Some((lane, noted));
                    }
                }
            }
            let Some((lane, noted)) = oldest else { break };
            next[lane] += 1;
            apply(noted.slot);
        }
        for lane in &mut self.lanes {
            lane.0.clear();
        }
        self.drained_at = self.next_seq;
    }
}

/// The slots accessed `count` times, least recently used first, and the neighbouring buckets.
#[derive(Debug)]
struct Bucket {
    /// How many accesses the slots of this bucket had (always 1 for LRU and FIFO).
    count: u64,
    /// Least recently used slot (the victim if this is the lowest bucket).
    head: usize,
    /// Most recently used slot.
    tail: usize,
    /// The bucket of the next lower count.
    lower: usize,
    /// The bucket of the next higher count.
    higher: usize,
}

/// One shard: a key index, a slab of slots and the frequency buckets over them.
#[derive(Debug)]
struct Shard {
    policy: EvictionPolicy,
    /// At most this many entries (at least 1).
    capacity: usize,
    index: HashMap<String, usize, RandomState>,
    /// The entry of each slot (`None` when the slot is free), apart from the slots' links so
    /// that a hit reads no line that applying noted accesses writes.
    entries: Vec<Option<Arc<CacheEntry>>>,
    /// The flag of each slot's entry ([`MemoryTier::put_flagged`]).
    flags: Vec<bool>,
    /// The links of each slot.
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<usize>,
    /// The bucket of the lowest count (where victims come from), or [`NIL`] when empty.
    lowest: usize,
    /// Accesses recorded but not yet applied to the lists (see [`Shard::record_access`]).
    noted: NotedAccesses,
}

impl Shard {
    fn new(policy: EvictionPolicy, capacity: usize, order: AccessOrder) -> Self {
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

    fn len(&self) -> usize {
        self.index.len()
    }

    /// `f` of the entry under `key`, counted as an access.
    fn get_with<R>(&mut self, key: &str, f: impl FnOnce(&CacheEntry) -> R) -> Option<R> {
        let slot = *self.index.get(key)?;
        self.record_access(slot);
        self.entries[slot].as_deref().map(f)
    }

    /// The entry without recording an access.
    fn peek(&self, key: &str) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        self.entries[slot].clone()
    }

    /// `update` applied to the stored entry in place, not an access.
    fn update(&mut self, key: &str, update: impl FnOnce(&mut CacheEntry)) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        let stored = self.entries[slot].as_mut()?;
        update(Arc::make_mut(stored));
        Some(Arc::clone(stored))
    }

    /// One access, and `update` applied to the stored entry in place. The entry is copied only
    /// if a reader still holds the previous version (`Arc::make_mut`), which is rare.
    /// `update` may ask for the entry to be flagged by returning `true`.
    fn touch(&mut self, key: &str, update: impl FnOnce(&mut CacheEntry) -> bool) -> Option<Arc<CacheEntry>> {
        let slot = *self.index.get(key)?;
        self.record_access(slot);
        let stored = self.entries[slot].as_mut()?;
        if update(Arc::make_mut(stored)) {
            self.flags[slot] = true;
        }
        Some(Arc::clone(stored))
    }

    /// Sets the flag of `key` to `value`; its previous value, or `None` when `key` is not held.
    fn set_flag(&mut self, key: &str, value: bool) -> Option<bool> {
        let slot = *self.index.get(key)?;
        Some(std::mem::replace(&mut self.flags[slot], value))
    }

    /// Appends the keys of the flagged entries to `keys`.
    fn push_flagged_keys(&self, keys: &mut Vec<String>) {
        let flagged = self.entries.iter().zip(&self.flags).filter(|(_, flagged)| **flagged);
        keys.extend(flagged.filter_map(|(entry, _)| entry.as_ref().map(|e| e.key.clone())));
    }

    /// Stores `entry` under its key: replaces (an access) or inserts, evicting the policy's
    /// victim first if the shard is full.
    fn put(&mut self, entry: Arc<CacheEntry>, flagged: bool) -> Displaced {
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
    fn remove(&mut self, key: &str) -> Option<Arc<CacheEntry>> {
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
    fn remove_expired(&mut self, now: OffsetDateTime) -> Vec<Arc<CacheEntry>> {
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
    fn take_all(&mut self) -> Vec<Arc<CacheEntry>> {
        let emptied = std::mem::replace(self, Shard::new(self.policy, self.capacity, self.noted.order));
        emptied.entries.into_iter().flatten().collect()
    }

    /// Records an access (a `get`, or a `put` of a held key) in the calling thread's lane of
    /// [`NotedAccesses`]. It is applied to the lists later, in order with the others noted
    /// (when a lane holds [`PENDING_ACCESSES`]), and always before anything that depends on
    /// the lists or changes which slots are used (a put, a removal): so every eviction is
    /// exactly the policy's, while a hit writes one slot of its lane instead of relinking the
    /// slot, its neighbours and the list ends, lines that another core then has to fetch back
    /// (the hits of two threads scaled 1.08x at 10,000 entries that way).
    fn record_access(&mut self, slot: usize) {
        if self.policy == EvictionPolicy::Fifo {
            return;
        }
        if self.noted.note(slot) {
            self.apply_pending();
        }
    }

    /// Applies the recorded accesses, oldest first.
    fn apply_pending(&mut self) {
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
    fn move_to_most_recent(&mut self, slot: usize) {
        let bucket = self.slots[slot].bucket;
        if self.buckets[bucket].tail != slot {
            self.unlink(bucket, slot);
            self.append(bucket, slot);
        }
    }

    /// Moves `slot` to the bucket of the next count, at its most recent end (O(1)).
    fn increment_count(&mut self, slot: usize) {
        let from = self.slots[slot].bucket;
        let Some(count) = self.buckets[from].count.checked_add(1) else {
            // u64::MAX accesses: the count saturates, recency still applies.
            self.move_to_most_recent(slot);
            return;
        };
        let higher = self.buckets[from].higher;
        let to = if higher != NIL && self.buckets[higher].count == count {
            higher
        } else {
            self.insert_bucket_after(from, count)
        };
        self.unlink(from, slot);
        self.append(to, slot);
        self.release_bucket_if_empty(from);
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
    fn append(&mut self, bucket: usize, slot: usize) {
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
    fn unlink(&mut self, bucket: usize, slot: usize) {
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

    /// A new empty bucket of `count`, chained just above `lower` ([`NIL`]: as the lowest).
    fn insert_bucket_after(&mut self, lower: usize, count: u64) -> usize {
        let higher = if lower == NIL {
            self.lowest
        } else {
            self.buckets[lower].higher
        };
        let bucket = Bucket {
            count,
            head: NIL,
            tail: NIL,
            lower,
            higher,
        };
        let index = match self.free_buckets.pop() {
            Some(free) => {
                self.buckets[free] = bucket;
                free
            }
            None => {
                self.buckets.push(bucket);
                self.buckets.len() - 1
            }
        };
        if lower == NIL {
            self.lowest = index;
        } else {
            self.buckets[lower].higher = index;
        }
        if higher != NIL {
            self.buckets[higher].lower = index;
        }
        index
    }

    /// Unchains and frees `bucket` if no slot is left in it.
    fn release_bucket_if_empty(&mut self, bucket: usize) {
        if self.buckets[bucket].head != NIL {
            return;
        }
        let Bucket { lower, higher, .. } = self.buckets[bucket];
        if lower == NIL {
            self.lowest = higher;
        } else {
            self.buckets[lower].higher = higher;
        }
        if higher != NIL {
            self.buckets[higher].lower = lower;
        }
        self.free_buckets.push(bucket);
    }

    /// Panics if any link, count or index is inconsistent (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex as StdMutex;
    use time::Duration;
    use time::macros::datetime;

    const BASE: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    /// An entry under `key` expiring `ttl` seconds after [`BASE`], tagged with `tag`
    /// (in `failure_count`) to tell versions apart.
    fn entry(key: &str, tag: u64, ttl: u64) -> CacheEntry {
        let mut e = CacheEntry::new_at("http://10.0.0.1:3128", "test", ttl, BASE)
            .unwrap()
            .with_key(key);
        e.failure_count = tag;
        e
    }

    fn tier(policy: EvictionPolicy, max: u64) -> (MemoryTier, Arc<StdMutex<Vec<String>>>) {
        let evicted = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&evicted);
        let config = CacheTierConfig::bounded(max).with_policy(policy);
        let tier = MemoryTier::with_shards(&config, 1).with_eviction_callback(move |key, entry| {
            assert_eq!(key, entry.key, "callback gets the entry's own key");
            sink.lock().unwrap().push(key);
        });
        (tier, evicted)
    }

    fn check(tier: &MemoryTier) {
        for shard in tier.shards.iter() {
            shard.lock().unwrap().check_invariants();
        }
    }

    fn put_all(tier: &MemoryTier, keys: &[&str]) {
        for k in keys {
            tier.put(&entry(k, 0, 60)).unwrap();
        }
    }

    fn sorted_keys(tier: &MemoryTier) -> Vec<String> {
        let mut keys = tier.keys().unwrap();
        keys.sort();
        keys
    }

    #[test]
    fn lru_evicts_least_recently_used() {
        let (t, evicted) = tier(EvictionPolicy::Lru, 3);
        put_all(&t, &["a", "b", "c"]);
        t.get("a").unwrap(); // order: b c a
        t.put(&entry("b", 1, 60)).unwrap(); // update refreshes: c a b
        put_all(&t, &["d", "e"]);
        assert_eq!(*evicted.lock().unwrap(), ["c", "a"]);
        assert_eq!(sorted_keys(&t), ["b", "d", "e"]);
        assert_eq!(t.get("b").unwrap().unwrap().failure_count, 1);
        check(&t);
    }

    /// Accesses are noted and applied later (in batches of `PENDING_ACCESSES`, and before any
    /// put or removal): evictions must be exactly the policy's whether the batch was applied
    /// on its own, by a put, or around a delete.
    #[test]
    fn noted_accesses_evict_exactly_as_applied_at_once() {
        let (t, evicted) = tier(EvictionPolicy::Lru, 3);
        put_all(&t, &["a", "b", "c"]);
        // More accesses than a batch: applied on their own, then the rest by the put.
        for i in 0..(3 * PENDING_ACCESSES + 2) {
            t.get(["a", "b", "c"][i % 3]).unwrap();
        }
        // The last accesses were ..., c, a, b: c is the least recent.
        put_all(&t, &["d"]);
        assert_eq!(*evicted.lock().unwrap(), ["c"]);
        // A delete between noted accesses: order a, b, d -> get d, get a; delete b; e, f.
        t.get("d").unwrap();
        t.get("a").unwrap();
        assert!(t.delete("b").unwrap());
        put_all(&t, &["e", "f"]);
        assert_eq!(*evicted.lock().unwrap(), ["c", "d"]);
        assert_eq!(sorted_keys(&t), ["a", "e", "f"]);
        check(&t);
        // LFU: every noted access counts.
        let (t, evicted) = tier(EvictionPolicy::Lfu, 2);
        put_all(&t, &["x", "y"]);
        for _ in 0..PENDING_ACCESSES + 5 {
            t.get("x").unwrap();
        }
        t.get("y").unwrap();
        put_all(&t, &["z"]);
        assert_eq!(*evicted.lock().unwrap(), ["y"]);
        check(&t);
    }

    /// Accesses noted in several lanes come back in the order they were noted, also across
    /// a wrap of the sequence counter.
    #[test]
    fn noted_accesses_drain_in_the_order_noted_across_lanes() {
        for start in [0, u64::MAX - 3] {
            let mut noted = NotedAccesses {
                order: AccessOrder::Exact,
                next_seq: start,
                drained_at: start,
                ..NotedAccesses::default()
            };
            assert!(noted.is_empty());
            let script = [(1, 10), (0, 11), (2, 12), (1, 13), (3, 14), (0, 15), (0, 16), (2, 17)];
            for (lane, slot) in script {
                assert!(!noted.note_in(lane, slot), "no lane is full yet");
            }
            assert!(!noted.is_empty());
            let mut order = Vec::new();
            noted.drain_in_order(|slot| order.push(slot));
            assert_eq!(order, (10..18).collect::<Vec<_>>(), "start {start}");
            assert!(noted.is_empty());
            assert!(noted.lanes.iter().all(|lane| lane.0.is_empty()));
            // A lane reports full at PENDING_ACCESSES.
            for i in 0..PENDING_ACCESSES - 1 {
                assert!(!noted.note_in(2, i));
            }
            assert!(noted.note_in(2, 0));
        }
    }

    /// Gets `turns[i].1` on thread `turns[i].0` (of `threads` threads), one turn after the
    /// other: each get must hit.
    fn gets_taking_turns(t: &MemoryTier, threads: usize, turns: &[(usize, &str)]) {
        use std::sync::Condvar;
        let turn = (StdMutex::new(0_usize), Condvar::new());
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let turn = &turn;
                scope.spawn(move || {
                    loop {
                        let mut at = turn.0.lock().unwrap();
                        while *at < turns.len() && turns[*at].0 != thread {
                            at = turn.1.wait(at).unwrap();
                        }
                        if *at >= turns.len() {
                            return;
                        }
                        assert!(t.get(turns[*at].1).unwrap().is_some());
                        *at += 1;
                        turn.1.notify_all();
                    }
                });
            }
        });
    }

    /// `AccessOrder::Exact`: hits from several threads (so from several lanes), taking turns
    /// in a known order: the evictions follow that order exactly.
    #[test]
    fn hits_from_several_threads_evict_in_the_order_they_happened() {
        const THREADS: usize = 5;
        let keys = ["k0", "k1", "k2", "k3", "k4", "k5"];
        let (t, evicted) = tier(EvictionPolicy::Lru, keys.len() as u64);
        let t = t.with_access_order(AccessOrder::Exact);
        assert_eq!(t.access_order(), AccessOrder::Exact);
        put_all(&t, &keys);
        // Turn i: thread (i * 3) % THREADS gets keys[order[i]]. The last access to each key
        // decides the order: k3, k0, k5, k1, k4, k2 from least to most recent.
        let order = [2, 4, 3, 0, 5, 1, 4, 2];
        let turns: Vec<(usize, &str)> = order
            .iter()
            .enumerate()
            .map(|(i, &k)| ((i * 3) % THREADS, keys[k]))
            .collect();
        gets_taking_turns(&t, THREADS, &turns);
        put_all(&t, &["n0", "n1", "n2"]);
        assert_eq!(*evicted.lock().unwrap(), ["k3", "k0", "k5"]);
        check(&t);
    }

    /// `AccessOrder::PerThread` (the default): the entries that no thread used since the
    /// accesses were last applied go first, in their exact order; those used meanwhile
    /// follow, each thread's in the order it used them (the threads' turns interleaved are
    /// not kept).
    #[test]
    fn per_thread_order_keeps_each_threads_order_and_evicts_unused_entries_first() {
        let keys = ["k0", "k1", "k2", "k3", "k4", "k5"];
        let (t, evicted) = tier(EvictionPolicy::Lru, keys.len() as u64);
        assert_eq!(t.access_order(), AccessOrder::PerThread, "the default");
        put_all(&t, &keys);
        gets_taking_turns(&t, 2, &[(0, "k3"), (1, "k1"), (0, "k4"), (1, "k5"), (0, "k0")]);
        put_all(&t, &["n0", "n1", "n2", "n3", "n4", "n5"]);
        let evicted = evicted.lock().unwrap().clone();
        assert_eq!(evicted[0], "k2", "the one entry nobody used goes first");
        let position = |key: &str| evicted.iter().position(|e| e == key).unwrap();
        assert!(
            position("k3") < position("k4") && position("k4") < position("k0"),
            "{evicted:?}"
        );
        assert!(position("k1") < position("k5"), "{evicted:?}");
        let mut rest = evicted[1..].to_vec();
        rest.sort();
        assert_eq!(rest, ["k0", "k1", "k3", "k4", "k5"]);
        check(&t);
    }

    /// `AccessOrder::PerThread` merges lanes one after the other, each in its own order, and
    /// tells whether anything is noted without sequence numbers.
    #[test]
    fn per_thread_order_drains_lane_after_lane() {
        let mut noted = NotedAccesses {
            order: AccessOrder::PerThread,
            ..NotedAccesses::default()
        };
        assert!(noted.is_empty());
        for (lane, slot) in [(1, 10), (0, 11), (2, 12), (1, 13), (3, 14), (0, 15)] {
            assert!(!noted.note_in(lane, slot));
        }
        assert!(!noted.is_empty());
        let mut order = Vec::new();
        noted.drain_in_order(|slot| order.push(slot));
        assert_eq!(order, [11, 15, 10, 13, 12, 14]);
        assert!(noted.is_empty());
        for i in 0..PENDING_ACCESSES - 1 {
            assert!(!noted.note_in(3, i));
        }
        assert!(noted.note_in(3, 0), "a lane reports full at PENDING_ACCESSES");
    }

    /// The per-entry flag: set and cleared as documented on `put_flagged`, reported to the
    /// locked eviction sink, gone with the entry.
    #[test]
    fn flags_follow_their_entries() {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let config = CacheTierConfig::bounded(3);
        let t = MemoryTier::with_shards(&config, 1).with_locked_eviction_sink(move |e, flagged| {
            sink.lock().unwrap().push((e.key.clone(), flagged));
        });
        let entry = |key: &str| CacheEntry::new("http://1.2.3.4:8080", "s", 60).unwrap().with_key(key);
        t.put_flagged(&entry("a"), true).unwrap();
        t.put(&entry("b")).unwrap();
        t.put(&entry("c")).unwrap();
        assert_eq!(t.flagged_keys(), ["a"]);
        // A plain put of a flagged key clears its flag; a touch may set it.
        t.put(&entry("a")).unwrap();
        assert!(t.flagged_keys().is_empty());
        assert!(t.touch_flagging("b", |_| true).is_some());
        assert!(t.touch_flagging("c", |_| false).is_some());
        assert!(t.touch_flagging("missing", |_| true).is_none());
        assert_eq!(t.flagged_keys(), ["b"]);
        // unflag says whether it was set; flag whether the key is held.
        assert!(t.unflag("b"));
        assert!(!t.unflag("b"));
        assert!(!t.unflag("missing"));
        assert!(t.flag("c"));
        assert!(!t.flag("missing"));
        assert_eq!(t.flagged_keys(), ["c"]);
        // LRU order now: a, b, c. Two new keys evict a (not flagged), then b (not flagged);
        // flagging b first makes the sink see it flagged.
        assert!(t.flag("b"));
        t.put(&entry("d")).unwrap();
        t.put(&entry("e")).unwrap();
        assert_eq!(*seen.lock().unwrap(), [("a".to_owned(), false), ("b".to_owned(), true)]);
        // A deleted entry's flag goes with it: the key put again is not flagged.
        assert!(t.delete("c").unwrap());
        t.put(&entry("c")).unwrap();
        assert!(t.flagged_keys().is_empty());
        check(&t);
    }

    #[test]
    fn contains_is_not_an_access() {
        let (t, evicted) = tier(EvictionPolicy::Lru, 2);
        put_all(&t, &["a", "b"]);
        assert!(t.contains("a").unwrap());
        put_all(&t, &["c"]);
        assert_eq!(*evicted.lock().unwrap(), ["a"]);
    }

    #[test]
    fn peek_and_update_are_not_accesses() {
        let (t, evicted) = tier(EvictionPolicy::Lru, 2);
        put_all(&t, &["a", "b"]);
        assert_eq!(t.peek("a").unwrap().unwrap().key, "a");
        let updated = t.update("a", |e| e.failure_count = 9).unwrap();
        assert_eq!(updated.failure_count, 9);
        assert_eq!(
            t.peek("a").unwrap().unwrap().failure_count,
            9,
            "stored, not only returned"
        );
        put_all(&t, &["c"]);
        // Peeked and updated, never accessed: still the least recently used.
        assert_eq!(*evicted.lock().unwrap(), ["a"]);
        assert!(t.update("a", |_| {}).is_none(), "absent key");
        check(&t);
    }

    #[test]
    fn a_health_mark_is_no_access_keeps_the_flag_and_evicts_at_the_threshold() {
        use crate::FailureMark;
        let (t, evicted) = tier(EvictionPolicy::Lru, 3);
        put_all(&t, &["a", "b"]);
        t.flag("a");
        assert_eq!(
            t.mark_failure("a", Some(3)).unwrap(),
            FailureMark::Marked { failure_count: 1 }
        );
        assert_eq!(
            t.mark_failure("a", Some(3)).unwrap(),
            FailureMark::Marked { failure_count: 2 }
        );
        let held = t.peek("a").unwrap().unwrap();
        assert_eq!((held.failure_count, held.health_status), (2, HealthStatus::Unhealthy));
        assert_eq!(t.flagged_keys(), ["a"], "its unrecorded use is still noted");
        put_all(&t, &["c", "d"]);
        // Marked, never accessed: still the least recently used.
        assert_eq!(*evicted.lock().unwrap(), ["a"]);
        assert_eq!(
            t.mark_failure("b", Some(1)).unwrap(),
            FailureMark::Evicted { failure_count: 1 }
        );
        assert_eq!(t.mark_failure("b", Some(1)).unwrap(), FailureMark::Absent);
        assert_eq!(
            *evicted.lock().unwrap(),
            ["a"],
            "a mark's removal is no policy eviction"
        );
        check(&t);
    }

    #[test]
    fn touch_is_exactly_one_access_and_updates_in_place() {
        let (t, evicted) = tier(EvictionPolicy::Lfu, 2);
        put_all(&t, &["a", "b"]); // a=1 b=1
        let touched = t.touch("a", |e| e.access_count += 1).unwrap(); // a=2
        assert_eq!(touched.access_count, 1);
        t.get("b").unwrap(); // b=2
        t.get("b").unwrap(); // b=3
        put_all(&t, &["c"]);
        // A get followed by a put would have made a=3 and evicted b.
        assert_eq!(*evicted.lock().unwrap(), ["a"]);
        // A reader holding the previous version keeps it: the update copies.
        let (t, _) = tier(EvictionPolicy::Lru, 2);
        put_all(&t, &["x"]);
        let held = lock(t.shard_for("x")).peek("x").unwrap();
        t.touch("x", |e| e.failure_count = 5).unwrap();
        assert_eq!(held.failure_count, 0);
        assert_eq!(t.peek("x").unwrap().unwrap().failure_count, 5);
        assert!(t.touch("nope", |_| {}).is_none());
        check(&t);
    }

    #[test]
    fn the_locked_sink_records_an_eviction_before_anyone_can_see_it() {
        use std::collections::HashSet;
        use std::sync::atomic::AtomicUsize;
        let recorded = Arc::new(StdMutex::new(HashSet::new()));
        let sink = Arc::clone(&recorded);
        let t = MemoryTier::with_shards(&CacheTierConfig::bounded(8), 1).with_locked_eviction_sink(move |e, _| {
            sink.lock().unwrap().insert(e.key.clone());
        });
        let inserted = AtomicUsize::new(0);
        let n = 5_000;
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..n {
                    t.put(&entry(&format!("k{i}"), 0, 60)).unwrap();
                    inserted.store(i + 1, Ordering::SeqCst);
                }
            });
            s.spawn(|| {
                while inserted.load(Ordering::SeqCst) < n {
                    let upto = inserted.load(Ordering::SeqCst);
                    for i in upto.saturating_sub(16)..upto {
                        let key = format!("k{i}");
                        // Gone from the tier means already recorded: never neither.
                        if !t.contains(&key).unwrap() {
                            assert!(
                                recorded.lock().unwrap().contains(&key),
                                "{key} evicted but not recorded"
                            );
                        }
                    }
                }
            });
        });
        assert_eq!(recorded.lock().unwrap().len() as u64, t.evictions());
        check(&t);
    }

    #[test]
    fn fifo_ignores_gets_and_updates() {
        let (t, evicted) = tier(EvictionPolicy::Fifo, 3);
        put_all(&t, &["a", "b", "c"]);
        t.get("a").unwrap();
        t.put(&entry("a", 7, 60)).unwrap(); // replaced in place, still the oldest
        put_all(&t, &["d"]);
        t.get("b").unwrap();
        put_all(&t, &["e"]);
        assert_eq!(*evicted.lock().unwrap(), ["a", "b"]);
        assert_eq!(sorted_keys(&t), ["c", "d", "e"]);
        check(&t);
    }

    #[test]
    fn lfu_evicts_least_frequent_then_least_recent() {
        let (t, evicted) = tier(EvictionPolicy::Lfu, 3);
        put_all(&t, &["a", "b", "c"]); // a=1 b=1 c=1
        t.get("a").unwrap(); // a=2
        t.get("a").unwrap(); // a=3
        t.put(&entry("b", 1, 60)).unwrap(); // b=2 (an update counts)
        put_all(&t, &["d"]); // evicts c (1), d=1
        t.get("d").unwrap(); // d=2, more recent than b=2
        put_all(&t, &["e"]); // evicts b (2, least recent among the 2s)
        put_all(&t, &["f"]); // evicts e (1)
        assert_eq!(*evicted.lock().unwrap(), ["c", "b", "e"]);
        assert_eq!(sorted_keys(&t), ["a", "d", "f"]);
        assert_eq!(t.evictions(), 3);
        check(&t);
    }

    #[test]
    fn lfu_count_saturates_without_panic() {
        let (t, _) = tier(EvictionPolicy::Lfu, 2);
        put_all(&t, &["a"]);
        {
            let mut shard = t.shards[0].lock().unwrap();
            let bucket = shard.lowest;
            shard.buckets[bucket].count = u64::MAX;
        }
        t.get("a").unwrap();
        t.get("a").unwrap();
        check(&t);
        assert!(t.contains("a").unwrap());
    }

    #[test]
    fn capacity_is_respected_and_unbounded_keeps_everything() {
        for policy in EvictionPolicy::ALL.iter().copied() {
            let (t, evicted) = tier(policy, 5);
            for i in 0..50 {
                t.put(&entry(&format!("k{i}"), 0, 60)).unwrap();
                assert!(t.size().unwrap() <= 5);
            }
            assert_eq!(t.size().unwrap(), 5);
            assert_eq!(t.evictions(), 45);
            assert_eq!(evicted.lock().unwrap().len(), 45);
            check(&t);
        }
        let t = MemoryTier::new(&CacheTierConfig::unbounded());
        for i in 0..1000 {
            t.put(&entry(&format!("k{i}"), 0, 60)).unwrap();
        }
        assert_eq!(t.size().unwrap(), 1000);
        assert_eq!(t.evictions(), 0);
        check(&t);
    }

    #[test]
    fn empty_key_is_rejected() {
        let (t, _) = tier(EvictionPolicy::Lru, 2);
        let err = t.put(&entry("", 0, 60)).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
        assert_eq!(t.size().unwrap(), 0);
        assert!(!t.health().is_disabled());
    }

    #[test]
    fn get_delete_contains_and_clear() {
        let (t, evicted) = tier(EvictionPolicy::Lru, 10);
        assert_eq!(t.tier_type(), CacheTierType::L1);
        assert_eq!(t.get("nope").unwrap(), None);
        put_all(&t, &["a", "b", "c"]);
        let got = t.get("a").unwrap().unwrap();
        assert_eq!(got, entry("a", 0, 60));
        assert!(t.delete("a").unwrap());
        assert!(!t.delete("a").unwrap());
        assert!(!t.contains("a").unwrap());
        assert_eq!(t.clear().unwrap(), 2);
        assert_eq!(t.size().unwrap(), 0);
        assert_eq!(t.clear().unwrap(), 0);
        put_all(&t, &["d"]);
        assert_eq!(sorted_keys(&t), ["d"]);
        assert!(evicted.lock().unwrap().is_empty(), "delete and clear are not evictions");
        assert_eq!(t.evictions(), 0);
        check(&t);
    }

    #[test]
    fn clear_counts_across_shards() {
        let t = MemoryTier::with_shards(&CacheTierConfig::unbounded(), 8);
        for i in 0..100 {
            t.put(&entry(&format!("k{i}"), 0, 60)).unwrap();
        }
        assert_eq!(t.clear().unwrap(), 100);
        assert!(t.keys().unwrap().is_empty());
    }

    #[test]
    fn cleanup_expired_boundary_is_inclusive() {
        let (t, evicted) = tier(EvictionPolicy::Lfu, 10);
        t.put(&entry("short", 0, 10)).unwrap();
        t.put(&entry("exact", 0, 20)).unwrap();
        t.put(&entry("long", 0, 21)).unwrap();
        let now = BASE + Duration::seconds(20);
        // An expired entry is still returned by get: the manager decides.
        assert!(t.get("short").unwrap().is_some());
        assert_eq!(t.cleanup_expired(now).unwrap(), 2);
        assert_eq!(sorted_keys(&t), ["long"]);
        assert_eq!(t.cleanup_expired(now).unwrap(), 0);
        assert!(evicted.lock().unwrap().is_empty(), "expiry is not a policy eviction");
        check(&t);
    }

    #[test]
    fn shard_counts_and_capacity_split() {
        assert_eq!(MemoryTier::default_shard_count(None), MAX_DEFAULT_SHARDS);
        assert_eq!(MemoryTier::default_shard_count(Some(1)), 1);
        assert_eq!(MemoryTier::default_shard_count(Some(127)), 1);
        assert_eq!(MemoryTier::default_shard_count(Some(128)), 2);
        assert_eq!(MemoryTier::default_shard_count(Some(1000)), 15);
        assert_eq!(MemoryTier::default_shard_count(Some(u64::MAX)), MAX_DEFAULT_SHARDS);
        assert_eq!(
            MemoryTier::with_shards(&CacheTierConfig::bounded(3), 8).shard_count(),
            3
        );
        assert_eq!(
            MemoryTier::with_shards(&CacheTierConfig::bounded(3), 0).shard_count(),
            1
        );
        assert_eq!(
            MemoryTier::with_shards(&CacheTierConfig::unbounded(), 1 << 20).shard_count(),
            MAX_SHARDS
        );
        let t = MemoryTier::with_shards(&CacheTierConfig::bounded(10), 4);
        let capacities: Vec<usize> = t.shards.iter().map(|s| s.lock().unwrap().capacity).collect();
        assert_eq!(capacities, [3, 3, 2, 2]);
    }

    #[test]
    fn sharded_tier_never_exceeds_max_entries() {
        let config = CacheTierConfig::bounded(10).with_policy(EvictionPolicy::Lfu);
        let t = MemoryTier::with_shards(&config, 4);
        for i in 0..500 {
            t.put(&entry(&format!("k{i}"), 0, 60)).unwrap();
            assert!(t.size().unwrap() <= 10);
        }
        assert_eq!(t.size().unwrap() as u64 + t.evictions(), 500);
        check(&t);
    }

    #[test]
    fn callback_may_reenter_the_tier() {
        let config = CacheTierConfig::bounded(1);
        let t = Arc::new(StdMutex::new(None::<Arc<MemoryTier>>));
        let slot = Arc::clone(&t);
        let tier = Arc::new(MemoryTier::new(&config).with_eviction_callback(move |key, _| {
            // The shard lock is released: using the tier here must not deadlock.
            if let Some(tier) = slot.lock().unwrap().as_ref() {
                assert!(!tier.contains(&key).unwrap());
                assert_eq!(tier.size().unwrap(), 1);
            }
        }));
        *t.lock().unwrap() = Some(Arc::clone(&tier));
        put_all(&tier, &["a", "b", "c"]);
        assert_eq!(tier.evictions(), 2);
        t.lock().unwrap().take(); // break the cycle
    }

    #[test]
    fn poisoned_shard_is_emptied_and_usable() {
        let (t, _) = tier(EvictionPolicy::Lru, 4);
        put_all(&t, &["a", "b"]);
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = t.shards[0].lock().unwrap();
                panic!("poison the shard");
            })
            .join()
        });
        assert!(result.is_err());
        assert_eq!(t.size().unwrap(), 0);
        put_all(&t, &["c"]);
        assert_eq!(sorted_keys(&t), ["c"]);
        check(&t);
    }

    #[test]
    fn concurrent_use_keeps_bound_and_loses_nothing() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 500;
        for policy in EvictionPolicy::ALL.iter().copied() {
            // Bounded below the number of keys: the bound holds under contention, and every
            // key put is either held or was reported evicted exactly once.
            let evicted = Arc::new(StdMutex::new(Vec::new()));
            let sink = Arc::clone(&evicted);
            let config = CacheTierConfig::bounded(200).with_policy(policy);
            let t =
                MemoryTier::with_shards(&config, 4).with_eviction_callback(move |k, _| sink.lock().unwrap().push(k));
            std::thread::scope(|s| {
                for thread in 0..THREADS {
                    let t = &t;
                    s.spawn(move || {
                        for i in 0..PER_THREAD {
                            let key = format!("t{thread}-{i}");
                            t.put(&entry(&key, 0, 60)).unwrap();
                            t.get(&format!("t{thread}-{}", i / 2)).unwrap();
                            assert!(t.size().unwrap() <= 200);
                        }
                    });
                }
            });
            check(&t);
            let mut all: Vec<String> = t.keys().unwrap();
            all.extend(evicted.lock().unwrap().iter().cloned());
            all.sort();
            let before_dedup = all.len();
            all.dedup();
            assert_eq!(before_dedup, all.len(), "{policy:?}: no key both held and evicted");
            assert_eq!(all.len(), THREADS * PER_THREAD, "{policy:?}: no key lost");
            assert_eq!(t.evictions() as usize + t.size().unwrap(), THREADS * PER_THREAD);

            // Below capacity nothing is ever evicted, whatever the interleaving.
            let t = MemoryTier::new(&CacheTierConfig::bounded(10_000).with_policy(policy));
            std::thread::scope(|s| {
                for thread in 0..THREADS {
                    let t = &t;
                    s.spawn(move || {
                        for i in 0..PER_THREAD {
                            t.put(&entry(&format!("t{thread}-{i}"), 0, 60)).unwrap();
                            if i % 3 == 0 {
                                t.put(&entry(&format!("t{thread}-{i}"), 1, 60)).unwrap();
                            }
                        }
                    });
                }
            });
            assert_eq!(t.size().unwrap(), THREADS * PER_THREAD);
            assert_eq!(t.evictions(), 0);
            for thread in 0..THREADS {
                for i in 0..PER_THREAD {
                    let got = t.get(&format!("t{thread}-{i}")).unwrap().expect("held");
                    assert_eq!(got.failure_count, u64::from(i % 3 == 0));
                }
            }
            check(&t);
        }
    }

    // ---- model-based check of the O(1) structures ----

    #[derive(Debug, Clone)]
    enum Op {
        Put { key: u8, tag: u64, ttl: u64 },
        Get { key: u8 },
        Delete { key: u8 },
        Cleanup { at: u64 },
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..12, any::<u64>(), 1u64..100).prop_map(|(key, tag, ttl)| Op::Put { key, tag, ttl }),
            5 => (0u8..12).prop_map(|key| Op::Get { key }),
            1 => (0u8..12).prop_map(|key| Op::Delete { key }),
            1 => (0u64..60).prop_map(|at| Op::Cleanup { at }),
            1 => Just(Op::Clear),
        ]
    }

    /// What the model remembers of one entry.
    #[derive(Debug)]
    struct Held {
        key: String,
        tag: u64,
        ttl: u64,
        accesses: u64,
        last_access: u64,
        inserted: u64,
    }

    /// The obvious O(n) implementation of the three policies.
    struct Model {
        policy: EvictionPolicy,
        capacity: usize,
        held: Vec<Held>,
        clock: u64,
    }

    impl Model {
        fn tick(&mut self) -> u64 {
            self.clock += 1;
            self.clock
        }

        fn access(&mut self, i: usize) {
            let now = self.tick();
            let h = &mut self.held[i];
            h.accesses += 1;
            h.last_access = now;
        }

        fn get(&mut self, key: &str) -> Option<u64> {
            let i = self.held.iter().position(|h| h.key == key)?;
            self.access(i);
            Some(self.held[i].tag)
        }

        /// Returns the evicted key, if any.
        fn put(&mut self, key: String, tag: u64, ttl: u64) -> Option<String> {
            if let Some(i) = self.held.iter().position(|h| h.key == key) {
                self.held[i].tag = tag;
                self.held[i].ttl = ttl;
                self.access(i);
                return None;
            }
            let mut evicted = None;
            if self.held.len() >= self.capacity {
                let victim = (0..self.held.len()).min_by_key(|&i| {
                    let h = &self.held[i];
                    match self.policy {
                        EvictionPolicy::Lru => (0, h.last_access),
                        EvictionPolicy::Lfu => (h.accesses, h.last_access),
                        EvictionPolicy::Fifo => (0, h.inserted),
                    }
                })?;
                evicted = Some(self.held.remove(victim).key);
            }
            let now = self.tick();
            self.held.push(Held {
                key,
                tag,
                ttl,
                accesses: 1,
                last_access: now,
                inserted: now,
            });
            evicted
        }
    }

    fn run_against_model(
        policy: EvictionPolicy,
        order: AccessOrder,
        capacity: usize,
        ops: &[Op],
    ) -> Result<(), TestCaseError> {
        let (t, evicted) = tier(policy, capacity as u64);
        let t = t.with_access_order(order);
        let mut model = Model {
            policy,
            capacity,
            held: Vec::new(),
            clock: 0,
        };
        for op in ops {
            match op {
                Op::Put { key, tag, ttl } => {
                    let key = format!("k{key}");
                    t.put(&entry(&key, *tag, *ttl)).unwrap();
                    let expected = model.put(key, *tag, *ttl);
                    let got = evicted.lock().unwrap().pop();
                    prop_assert_eq!(got, expected, "evicted by {:?}", op);
                }
                Op::Get { key } => {
                    let key = format!("k{key}");
                    let got = t.get(&key).unwrap().map(|e| e.failure_count);
                    prop_assert_eq!(got, model.get(&key), "get {}", key);
                }
                Op::Delete { key } => {
                    let key = format!("k{key}");
                    let before = model.held.len();
                    model.held.retain(|h| h.key != key);
                    prop_assert_eq!(t.delete(&key).unwrap(), model.held.len() < before);
                }
                Op::Cleanup { at } => {
                    let before = model.held.len();
                    model.held.retain(|h| h.ttl > *at);
                    let now = BASE + Duration::seconds(*at as i64);
                    prop_assert_eq!(t.cleanup_expired(now).unwrap(), before - model.held.len());
                }
                Op::Clear => {
                    prop_assert_eq!(t.clear().unwrap(), model.held.len());
                    model.held.clear();
                }
            }
            check(&t);
            prop_assert_eq!(t.size().unwrap(), model.held.len());
        }
        let mut expected: Vec<String> = model.held.iter().map(|h| h.key.clone()).collect();
        expected.sort();
        prop_assert_eq!(sorted_keys(&t), expected);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn lru_matches_model(capacity in 1usize..8, ops in prop::collection::vec(op(), 0..200)) {
            run_against_model(EvictionPolicy::Lru, AccessOrder::Exact, capacity, &ops)?;
        }

        #[test]
        fn lfu_matches_model(capacity in 1usize..8, ops in prop::collection::vec(op(), 0..200)) {
            run_against_model(EvictionPolicy::Lfu, AccessOrder::Exact, capacity, &ops)?;
        }

        #[test]
        fn fifo_matches_model(capacity in 1usize..8, ops in prop::collection::vec(op(), 0..200)) {
            run_against_model(EvictionPolicy::Fifo, AccessOrder::Exact, capacity, &ops)?;
        }

        /// With one thread, `AccessOrder::PerThread` is exact: every policy matches the model.
        #[test]
        fn per_thread_order_on_one_thread_matches_model(
            policy in prop::sample::select(EvictionPolicy::ALL.to_vec()),
            capacity in 1usize..8,
            ops in prop::collection::vec(op(), 0..200),
        ) {
            run_against_model(policy, AccessOrder::PerThread, capacity, &ops)?;
        }

        /// Several shards: the per-shard policy is not modelled, but every key put is held or
        /// reported evicted, with its latest version, and the bound holds.
        #[test]
        fn sharded_tier_conserves_entries(
            shards in 1usize..5,
            capacity in 1u64..12,
            policy in prop::sample::select(EvictionPolicy::ALL.to_vec()),
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let evicted = Arc::new(StdMutex::new(Vec::new()));
            let sink = Arc::clone(&evicted);
            let config = CacheTierConfig::bounded(capacity).with_policy(policy);
            let t = MemoryTier::with_shards(&config, shards).with_eviction_callback(move |k, e: CacheEntry| {
                sink.lock().unwrap().push((k, e.failure_count));
            });
            let mut live: HashMap<String, u64> = HashMap::new();
            for op in &ops {
                match op {
                    Op::Put { key, tag, ttl } => {
                        let key = format!("k{key}");
                        t.put(&entry(&key, *tag, *ttl)).unwrap();
                        live.insert(key, *tag);
                        for (k, tag) in evicted.lock().unwrap().drain(..) {
                            prop_assert_eq!(live.remove(&k), Some(tag), "evicted {} with its latest version", k);
                        }
                    }
                    Op::Get { key } => {
                        let key = format!("k{key}");
                        prop_assert_eq!(t.get(&key).unwrap().map(|e| e.failure_count), live.get(&key).copied());
                    }
                    Op::Delete { key } => {
                        let key = format!("k{key}");
                        prop_assert_eq!(t.delete(&key).unwrap(), live.remove(&key).is_some());
                    }
                    Op::Cleanup { .. } | Op::Clear => {
                        prop_assert_eq!(t.clear().unwrap(), live.len());
                        live.clear();
                    }
                }
                prop_assert!(t.size().unwrap() as u64 <= capacity);
                check(&t);
            }
            let mut expected: Vec<String> = live.into_keys().collect();
            expected.sort();
            prop_assert_eq!(sorted_keys(&t), expected);
        }
    }
}
