//! The manager's counters: atomics bumped on the hot paths, read into a
//! [`CacheStatistics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use pw_cache_model::{CacheStatistics, CacheTierType, TierStatistics};

/// Counters of one tier, as the manager sees it.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    /// Policy evictions counted by the manager (L1's, from its eviction callback).
    pub(crate) evictions_lru: AtomicU64,
    /// Expired entries removed: found by a lookup, or by the cleaner (also in `cleaner_ttl`).
    pub(crate) evictions_ttl: AtomicU64,
    pub(crate) evictions_health: AtomicU64,
    /// Unreadable entries removed by the operator ([`crate::CacheManager::remove_unreadable`]).
    pub(crate) evictions_corruption: AtomicU64,
    /// Unreadable entries met by the manager's own operations and left in place (the tiers'
    /// own skips are added in the snapshot).
    pub(crate) unreadable: AtomicU64,
    /// The part of `evictions_ttl` removed by the cleaner.
    pub(crate) cleaner_ttl: AtomicU64,
}

/// Every counter of the manager.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) tiers: [TierCounters; 3],
    pub(crate) promotions: AtomicU64,
    pub(crate) demotions: AtomicU64,
    /// L1 evictions caused by a promotion into a full L1 (also in L1's `evictions_lru`).
    pub(crate) promotion_evictions: AtomicU64,
    /// Demotions that had to write the entry (L1 held changes the tiers below did not have).
    pub(crate) demotion_writes: AtomicU64,
}

/// `n` more on `counter`.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Index of a tier in per-tier arrays.
pub(crate) fn index(tier: CacheTierType) -> usize {
    match tier {
        CacheTierType::L1 => 0,
        CacheTierType::L2 => 1,
        CacheTierType::L3 => 2,
    }
}

impl Counters {
    pub(crate) fn tier(&self, tier: CacheTierType) -> &TierCounters {
        &self.tiers[index(tier)]
    }

    /// The counters as statistics; sizes, the tiers' own evictions and degraded flags are
    /// filled in by the caller.
    pub(crate) fn snapshot(&self) -> CacheStatistics {
        let tier = |t: &TierCounters| TierStatistics {
            hits: read(&t.hits),
            misses: read(&t.misses),
            current_size: 0,
            evictions_lru: read(&t.evictions_lru),
            evictions_ttl: read(&t.evictions_ttl),
            evictions_health: read(&t.evictions_health),
            evictions_corruption: read(&t.evictions_corruption),
            unreadable: read(&t.unreadable),
        };
        CacheStatistics {
            l1_stats: tier(&self.tiers[0]),
            l2_stats: tier(&self.tiers[1]),
            l3_stats: tier(&self.tiers[2]),
            promotions: read(&self.promotions),
            demotions: read(&self.demotions),
            l1_degraded: false,
            l2_degraded: false,
            l3_degraded: false,
        }
    }

    pub(crate) fn breakdown(&self) -> StatisticsBreakdown {
        StatisticsBreakdown {
            cleaner_evictions_ttl: [0, 1, 2].map(|i| read(&self.tiers[i].cleaner_ttl)),
            promotion_evictions: read(&self.promotion_evictions),
            demotion_writes: read(&self.demotion_writes),
        }
    }
}

/// What [`CacheStatistics`] folds together, for those who want the detail (see
/// [`crate::CacheManager::statistics_breakdown`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatisticsBreakdown {
    /// Per tier (L1, L2, L3): the part of `evictions_ttl` removed by the background cleaner
    /// or [`crate::CacheManager::cleanup_now`] (the rest were found expired by lookups).
    pub cleaner_evictions_ttl: [u64; 3],
    /// The part of L1's `evictions_lru` caused by promoting an entry into a full L1.
    pub promotion_evictions: u64,
    /// Access records written to L2/L3: the use L1 saw of entries it evicted (written in
    /// batches of [`crate::USE_BATCH`]) and, on flush and close, of dirty entries it still
    /// holds. Evictions of entries without new use write nothing and are not counted here.
    pub demotion_writes: u64,
}
