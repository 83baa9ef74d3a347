//! [`CacheManager`]: the three tiers composed into one cache.
//!
//! # Concurrency
//!
//! Every operation on a key holds that key's lock ([`crate::key_locks`]) for its whole length,
//! across every tier it touches: a get that promotes, a put, a delete, a health invalidation
//! of one key never interleave, so no promotion is torn and no update is lost. No lock is
//! held across the disk I/O of another key: an entry that L1 evicts while a put of another key
//! holds that key's lock is *queued* for demotion, and written to L2/L3 after the lock is
//! released, under its own key's lock (or by the next operation on it, whichever comes first).
//! Statistics are atomics; the tiers do their own locking.
//!
//! # Access data and demotion
//!
//! A hit updates `access_count` and `last_accessed` in L1 only (no disk write on a hit): the
//! entry is *dirty* (L1 holds use the tiers below have not seen), which L1 keeps as the entry's
//! flag ([`MemoryTier::put_flagged`]), set under the shard lock the hit takes anyway, so a hit
//! looks up and locks nothing more. When L1 evicts a dirty
//! entry, its use (an [`AccessRecord`]: count, last access, `evicted_from_l1`) is queued, and
//! recorded in L2/L3 in batches of [`USE_BATCH`], one transaction of three-column `UPDATE`s per
//! tier ([`CacheTier::record_accesses`]), by a background thread that the operation filling a
//! batch wakes (so no get or put waits for a batch; if the thread falls
//! `USE_BACKLOG_BATCHES` batches behind, the operation that queues more writes them itself),
//! and on [`CacheManager::flush`] and close (which also record the use of dirty entries still
//! in L1).
//! Until then a lookup that misses L1 applies the queued use to what it reads below, so no use
//! is counted twice or lost while the process runs. An entry L1 evicts that is not dirty is
//! not written at all: L2/L3 already hold it as it was put. (The reference rewrites every
//! evicted entry, credentials re-encrypted, into both tiers.)
//!
//! [`AccessRecord`]: pw_cache_model::AccessRecord
//!
//! What is deferred is use only, never an entry: a put is in L2/L3 when it returns. A crash
//! loses at most the use of `USE_BACKLOG_BATCHES + 1` batches of [`USE_BATCH`] evicted entries
//! (their counts and last access times are older in L2/L3). A put or delete of a key whose use
//! is in the batch being written waits for that batch, so older use never lands on what it
//! writes.
//!
//! # Degradation
//!
//! A tier fails [`pw_cache_tiers::FAILURE_THRESHOLD`] times in a row: it is flagged degraded
//! and skipped. A background thread (started only when needed) probes it every
//! [`CacheManagerBuilder::probe_interval`] with [`CacheTier::probe`], which writes; when a probe
//! succeeds the tier serves again at once (a clear it missed is replayed first). The keys
//! written or deleted while it was skipped (its copies of them are stale) are then removed from
//! it, each only if no other process wrote it since
//! ([`CacheTier::delete_if_unchanged_since`]); until a key's copy is removed or rewritten,
//! lookups of that key skip the tier, so a stale or deleted entry is never served from a
//! recovered tier, and a host that keeps writing is not kept out by its own new misses.
//!
//! # Where things are
//!
//! This module is the facade: [`CacheManager`], its public types, and the manager's shared
//! state (`Inner`, whose fields only the files of this folder see). Each file below adds the
//! part of `Inner` it is named after:
//!
//! - `builder.rs`: [`CacheManagerBuilder`], opening a manager step by step (keys and their
//!   check, tiers, L1, the background cleaner, a shared L3's subscription);
//! - `lookup.rs`: get, promotion, and the walk of the tiers below L1 that lookups share;
//! - `store.rs`: put, delete, clear, and the removal of expired entries;
//! - `health.rs`: health marks ([`CacheManager::invalidate_by_health`]);
//! - `use_log.rs`: the use of evicted entries, queued and written by its own thread, and flush;
//! - `degradation.rs`: a disk tier's slot, its degradation, the probe thread and the replay of
//!   what a tier missed;
//! - `switch.rs`: switching a tier off and on at run time ([`CacheManager::set_tier_enabled`]);
//! - `ttl.rs`: the background TTL cleaner ([`TtlManager`]), which reaches the cache through
//!   one trait;
//! - `remote.rs` (feature `redis`): a shared Redis L3 and its change feed;
//! - `export.rs`, `inspect.rs`: export to a file, inspection, credential rotation and removal
//!   of unreadable entries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use pw_cache_crypto::KeyRing;
use pw_cache_model::timestamp::now_utc;
use pw_cache_model::{CacheConfig, CacheEntry, CacheStatistics, CacheTierType, OffsetDateTime};
use pw_cache_tiers::{CacheTier, MemoryTier};

use crate::counters::{Counters, StatisticsBreakdown};
use crate::error::ManagerError;
use crate::key_locks::KeyLocks;

mod builder;
mod degradation;
mod export;
mod health;
mod inspect;
mod lookup;
#[cfg(feature = "redis")]
mod remote;
mod store;
mod switch;
mod ttl;
mod use_log;

pub use builder::{CacheManagerBuilder, KEY_CHECK_SAMPLE, KeyCheck, default_key_file};
pub use export::{ExportCredentials, ExportOptions, ExportReport};
pub use inspect::{CacheInspection, RotationReport, TierInspection, UnreadableRemoval};
pub use ttl::{CleanupReport, TtlManager};
pub use use_log::USE_BATCH;

use builder::Clock;
use degradation::{Maintenance, TierSlot};
use use_log::{EvictedUse, UseWriter};

/// How often a degraded tier is probed, unless the builder says otherwise.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// In which tiers a put stored the entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// L1 (memory) stored it.
    pub l1: bool,
    /// L2 (disk) stored it.
    pub l2: bool,
    /// L3 (SQLite or Redis) stored it.
    pub l3: bool,
}

/// What [`CacheManager::invalidate_by_health`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthInvalidation {
    /// No live entry under the key (absent or expired).
    NotFound,
    /// The entry was marked unhealthy with this many failures and kept (below the threshold,
    /// or health invalidation is off).
    Marked {
        /// `failure_count` after this failure.
        failure_count: u64,
    },
    /// The entry reached the threshold and was removed from every tier.
    Evicted {
        /// `failure_count` after this failure.
        failure_count: u64,
    },
}

/// How a tier is doing, as [`CacheManager::tier_status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierStatus {
    /// In use.
    Serving,
    /// Disabled by the configuration.
    Disabled,
    /// Skipped after repeated failures, waiting for a probe to succeed.
    Degraded,
}

/// The shared state of a manager (the background threads hold a `Weak` of it). Its fields are
/// private: the files of this folder use them, nothing else in the crate does.
struct Inner {
    config: CacheConfig,
    ring: Arc<KeyRing>,
    /// The tiers, each `None` when disabled; L2 and L3 with their degradation state.
    l1: Option<MemoryTier>,
    /// L1 is switched off ([`CacheManager::set_tier_enabled`]): the operations skip it.
    l1_off: AtomicBool,
    l2: Option<TierSlot>,
    l3: Option<TierSlot>,
    counters: Arc<Counters>,
    /// Every operation on a key holds that key's lock (see the module docs, "Concurrency").
    locks: KeyLocks,
    /// The use of evicted entries, waiting to be recorded below (`use_log.rs`); shared with
    /// L1's eviction sink.
    evicted_use: Arc<EvictedUse>,
    /// The probe thread of degraded tiers (`degradation.rs`).
    maintenance: Maintenance,
    /// The thread that records the use of evicted entries (`use_log.rs`).
    use_writer: UseWriter,
    probe_interval: Duration,
    /// The builder's clock, if any (see [`Inner::now`]).
    clock: Option<Clock>,
    closed: AtomicBool,
    /// Handed to the threads this state starts, which must not keep it alive.
    weak_self: Weak<Inner>,
    /// The subscription to a shared L3's changes (feature `redis`), dropped (its thread
    /// stopped) by `close` or the manager's drop, on the caller's thread.
    #[cfg(feature = "redis")]
    subscription: std::sync::Mutex<Option<pw_cache_tiers::redis_l3::Subscription>>,
}

/// A three-level proxy cache: L1 memory, L2 disk (JSONL shards or SQLite), L3 SQLite or Redis.
///
/// Built from a [`CacheConfig`] with [`CacheManager::open`] (or [`CacheManager::builder`] for
/// keys, custom tiers and the probe interval). Any number of threads may share it (`&self`
/// everywhere; wrap it in an `Arc`). See [`docs::architecture`] for the concurrency, demotion
/// and degradation design, and [`docs::migrating_from_proxywhirl`] for every
/// difference from proxywhirl 0.3.3's `CacheManager`.
///
/// Dropping the manager stops its background threads and flushes L1's access data to the
/// disk tiers (errors are logged); [`CacheManager::close`] does the same and reports errors.
///
/// [`docs::architecture`]: crate::docs::architecture
/// [`docs::migrating_from_proxywhirl`]: crate::docs::migrating_from_proxywhirl
pub struct CacheManager {
    inner: Arc<Inner>,
    ttl: TtlManager,
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("l1", &self.tier_status(CacheTierType::L1))
            .field("l2", &self.tier_status(CacheTierType::L2))
            .field("l2_backend", &self.inner.config.l2_backend())
            .field("l3", &self.tier_status(CacheTierType::L3))
            .field("key_origin", self.inner.ring.origin())
            .finish_non_exhaustive()
    }
}

impl CacheManager {
    /// A manager for `config`: keys from the config, else the environment
    /// (`PROXYWHIRL_CACHE_ENCRYPTION_KEY`, previous keys in `PROXYWHIRL_CACHE_KEY_PREVIOUS`),
    /// else the key file (see [`CacheManagerBuilder::key_file`]); the enabled tiers opened.
    pub fn open(config: CacheConfig) -> Result<Self, ManagerError> {
        Self::builder(config).open()
    }

    /// A builder, for more than the config says.
    pub fn builder(config: CacheConfig) -> CacheManagerBuilder {
        CacheManagerBuilder::new(config)
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The tier at `level`, for direct use, or `None` when that level is disabled.
    ///
    /// A direct operation on a tier is only that tier's: no lookup in the others, no promotion,
    /// no write-through, no key lock, no statistics, and a failure is counted only in the
    /// tier's own [`CacheTier::health`]. It is for tools, tests and compatibility layers that
    /// need one level on its own (proxywhirl's `manager.l1_tier.get(key)`, say); everything
    /// else goes through the manager's own methods, which keep the tiers consistent.
    pub fn tier(&self, level: CacheTierType) -> Option<&dyn CacheTier> {
        match level {
            CacheTierType::L1 => self.inner.l1.as_ref().map(|t| t as &dyn CacheTier),
            CacheTierType::L2 => self.inner.l2.as_ref().map(|slot| slot.tier.as_ref()),
            CacheTierType::L3 => self.inner.l3.as_ref().map(|slot| slot.tier.as_ref()),
        }
    }

    /// The key ring credentials are encrypted with (its origin says where the key came from).
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.inner.ring
    }

    /// The reference's cache key of a proxy URL ([`pw_cache_model::generate_cache_key`]).
    pub fn generate_cache_key(proxy_url: &str) -> String {
        pw_cache_model::generate_cache_key(proxy_url)
    }

    /// A new entry for `proxy_url` from `source`, with the TTL the config gives that source
    /// (`per_source_ttl`, else `default_ttl_seconds`); key generated from the URL. A
    /// `proxy_url` that [`pw_cache_model::validate_proxy_url`] refuses (not a proxy URL, or
    /// holding credentials) is [`ManagerError::InvalidEntry`].
    pub fn new_entry(&self, proxy_url: &str, source: &str) -> Result<CacheEntry, ManagerError> {
        pw_cache_model::validate_proxy_url(proxy_url).map_err(|e| ManagerError::InvalidEntry {
            key: pw_cache_model::generate_cache_key(proxy_url),
            reason: e.to_string(),
        })?;
        CacheEntry::new_at(
            proxy_url,
            source,
            self.inner.config.ttl_for_source(source),
            self.inner.now(),
        )
        .map_err(|e| ManagerError::InvalidEntry {
            key: pw_cache_model::generate_cache_key(proxy_url),
            reason: e.to_string(),
        })
    }

    /// The live entry under `key`, looked up in L1, then L2, then L3; a hit below L1 is
    /// promoted to the tiers above. A hit counts as a use (`access_count + 1`,
    /// `last_accessed = now`). An expired entry is removed from every tier and the lookup is a
    /// miss. Tier failures and unreadable entries are misses of that tier (counted, logged).
    pub fn get(&self, key: &str) -> Option<CacheEntry> {
        let found = self.inner.get(key);
        self.inner.hand_off_evicted_use();
        found
    }

    /// Stores `entry` under `entry.key` in every enabled tier; succeeds when at least one
    /// stored it, and says which.
    ///
    /// Refused with [`ManagerError::InvalidEntry`], nothing stored: an empty key, and a
    /// `proxy_url` that is not a proxy URL or holds credentials (`scheme://user:pass@host`,
    /// which would reach the disk in plaintext): [`pw_cache_model::validate_proxy_url`], the
    /// validator warm uses too.
    pub fn put(&self, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        let stored = self.inner.put(entry);
        self.inner.hand_off_evicted_use();
        stored
    }

    /// [`CacheManager::put`] with the reference's signature: `key` must be `entry.key`
    /// ([`ManagerError::KeyMismatch`] otherwise; nothing is stored).
    pub fn put_with_key(&self, key: &str, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        if key != entry.key {
            return Err(ManagerError::KeyMismatch {
                argument: key.to_owned(),
                entry_key: entry.key.clone(),
            });
        }
        self.put(entry)
    }

    /// Removes `key` from every tier; whether any tier held it.
    pub fn delete(&self, key: &str) -> bool {
        if self.inner.is_closed() {
            return false;
        }
        let _guard = self.inner.locks.lock(key);
        self.inner.delete_locked(key)
    }

    /// Removes everything from every tier; the number of entries removed, summed over the
    /// tiers (an entry held by three tiers counts three times, as in the reference).
    pub fn clear(&self) -> usize {
        self.inner.clear()
    }

    /// Records a failed health check of `key`: `failure_count + 1`, `health_status =
    /// unhealthy`. At `failure_threshold` (when `health_check_invalidation` is on) the entry
    /// is removed from every tier and counted in `evictions_health` of each tier that held
    /// it; below, the tiers that hold it are updated (it is not promoted).
    ///
    /// The failure is counted once, atomically, in the lowest serving tier (L3, else L2,
    /// else L1: where the entry is shared by other processes or hosts) with
    /// [`CacheTier::mark_failure`], which changes those two fields and nothing else, and
    /// decides the threshold on the count it produced; the tiers above take that count (or
    /// drop a copy that disagrees). So failures reported by several managers sharing an L3 all
    /// count, exactly one of them evicts, and no mark writes a cached copy over a newer version
    /// ([`docs::fleet`]). `NotFound` when no tier holds a readable live copy, or when the
    /// lowest tier no longer holds the key (deleted elsewhere, or evicted by its bound): the
    /// copies above are then dropped too. An expired entry is `NotFound` and removed (a TTL
    /// eviction). Unreadable copies are left as they are; the mark goes to the tier above.
    ///
    /// [`docs::fleet`]: crate::docs::fleet
    pub fn invalidate_by_health(&self, key: &str) -> HealthInvalidation {
        let outcome = self.inner.invalidate_by_health(key);
        self.inner.hand_off_evicted_use();
        outcome
    }

    /// The reference's statistics: per-tier hits, misses, sizes, evictions by reason,
    /// promotions, demotions, degraded flags (a tier is "degraded" when it is not serving:
    /// disabled by config, or skipped after failures, as in the reference). Evictions include
    /// what the reference never counts: the cleaner's TTL evictions, unreadable entries
    /// (`evictions_corruption`), L1 evictions caused by promotions, and L2/L3 evictions by
    /// their own `max_entries` ([`CacheManager::statistics_breakdown`] separates them).
    pub fn get_statistics(&self) -> CacheStatistics {
        self.inner.statistics()
    }

    /// The parts of [`CacheManager::get_statistics`]'s counters the reference does not have.
    pub fn statistics_breakdown(&self) -> StatisticsBreakdown {
        self.inner.counters.breakdown()
    }

    /// Whether `tier` is serving, disabled by the config or degraded.
    pub fn tier_status(&self, tier: CacheTierType) -> TierStatus {
        match tier {
            CacheTierType::L1 if self.inner.l1.is_some() => TierStatus::Serving,
            CacheTierType::L1 => TierStatus::Disabled,
            _ => match self.inner.slot(tier) {
                None => TierStatus::Disabled,
                Some(slot) if slot.serving() => TierStatus::Serving,
                Some(_) => TierStatus::Degraded,
            },
        }
    }

    /// How many keys `tier` missed (written or deleted while it was degraded) and still holds
    /// stale copies of: lookups of those keys skip it until the background replay has removed
    /// them (see the module docs, "Degradation"). A missed clear counts as one. 0 for a tier
    /// that is up to date, disabled, or L1.
    pub fn missed_keys(&self, tier: CacheTierType) -> usize {
        self.inner.slot(tier).map_or(0, TierSlot::missed)
    }

    /// The background TTL cleaner (started at open when `enable_background_cleanup`).
    pub fn ttl_manager(&self) -> &TtlManager {
        &self.ttl
    }

    /// Removes expired entries from every serving tier now; how many from each.
    pub fn cleanup_now(&self) -> CleanupReport {
        self.inner.cleanup_now()
    }

    /// Writes L1's access data (and queued demotions) to L2/L3, and asks them to write what
    /// they batch. After it returns, a restart finds every use made so far.
    pub fn flush(&self) -> Result<(), ManagerError> {
        self.inner.flush()
    }

    /// Stops the background threads, flushes, and closes the tiers. Later operations fail
    /// ([`ManagerError::Closed`], or a miss). Closing twice does nothing.
    pub fn close(&self) -> Result<(), ManagerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.stop_background();
        let flushed = self.inner.flush();
        let mut failures = self.inner.last_resync();
        self.inner.closed.store(true, Ordering::Release);
        for slot in self.inner.slots() {
            if let Err(e) = slot.tier.close() {
                failures.push(format!("{}: {e}", slot.kind));
            }
        }
        flushed?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ManagerError::Incomplete { op: "close", failures })
        }
    }

    /// Now, from the builder's clock or the system's (microsecond precision).
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.now()
    }

    /// Whether [`CacheManager::close`] has run.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stops the background threads: the TTL cleaner, the probe of degraded tiers, the use
    /// writer and the subscription to a shared L3's changes.
    fn stop_background(&self) {
        self.ttl.stop();
        self.inner.stop_maintenance();
        self.inner.stop_use_writer();
        self.inner.stop_remote();
    }
}

impl Drop for CacheManager {
    fn drop(&mut self) {
        self.stop_background();
        if !self.inner.is_closed() {
            if let Err(e) = self.inner.flush() {
                tracing::warn!(error = %e, "flushing the cache on drop failed");
            }
            self.inner.last_resync();
        }
    }
}

impl Inner {
    /// Stops following a shared L3's changes (joins the subscriber thread, which never holds
    /// the last reference to `self` afterwards).
    fn stop_remote(&self) {
        #[cfg(feature = "redis")]
        {
            let subscription = crate::sync::lock(&self.subscription).take();
            drop(subscription);
        }
    }

    /// Now, from the builder's clock or the system's (microsecond precision).
    fn now(&self) -> OffsetDateTime {
        match &self.clock {
            Some(clock) => pw_cache_model::timestamp::truncate_to_micros(clock()),
            None => now_utc(),
        }
    }

    /// Whether the manager was closed.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The slot of disk tier `tier`, if enabled (`None` for L1).
    fn slot(&self, tier: CacheTierType) -> Option<&TierSlot> {
        match tier {
            CacheTierType::L1 => None,
            CacheTierType::L2 => self.l2.as_ref(),
            CacheTierType::L3 => self.l3.as_ref(),
        }
    }

    /// L1, unless it is disabled or switched off.
    fn l1(&self) -> Option<&MemoryTier> {
        self.l1.as_ref().filter(|_| !self.l1_off.load(Ordering::Acquire))
    }

    /// The disk tiers that are enabled, L2 first.
    fn slots(&self) -> impl Iterator<Item = &TierSlot> {
        self.l2.iter().chain(self.l3.iter())
    }

    /// The counters, with the tiers' sizes, own evictions and degraded flags.
    fn statistics(&self) -> CacheStatistics {
        let mut stats = self.counters.snapshot();
        if let Some(l1) = &self.l1 {
            stats.l1_stats.current_size = l1.size().unwrap_or(0) as u64;
        }
        stats.l1_degraded = self.l1().is_none();
        stats.l2_degraded = self.l2.as_ref().is_none_or(|s| !s.serving());
        stats.l3_degraded = self.l3.as_ref().is_none_or(|s| !s.serving());
        for slot in self.slots() {
            let tier_stats = match slot.kind {
                CacheTierType::L2 => &mut stats.l2_stats,
                _ => &mut stats.l3_stats,
            };
            tier_stats.evictions_lru += slot.tier.evictions();
            tier_stats.unreadable += slot.tier.unreadable_skipped();
            if slot.serving() {
                tier_stats.current_size = slot.tier.size().unwrap_or(0) as u64;
            }
        }
        stats
    }
}
