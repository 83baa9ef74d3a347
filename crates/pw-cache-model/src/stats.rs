//! [`TierStatistics`] and [`CacheStatistics`]: snapshots of the cache's counters, with the
//! reference's derived values (`hit_rate`, `total_evictions`, `overall_hit_rate`, `total_size`)
//! and its flat metrics.
//!
//! The JSON form is the reference's `model_dump(mode="json")`: the counters, then the derived
//! values. Reading JSON ignores the derived values (they are recomputed).

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// Counters of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TierStatistics {
    /// Lookups this tier answered.
    pub hits: u64,
    /// Lookups this tier could not answer.
    pub misses: u64,
    /// Entries held.
    pub current_size: u64,
    /// Entries evicted because the tier was full (by its policy, whatever it is).
    pub evictions_lru: u64,
    /// Entries removed because they expired.
    pub evictions_ttl: u64,
    /// Entries removed by health invalidation.
    pub evictions_health: u64,
    /// Unreadable entries removed by the operator's explicit request
    /// (`CacheManager::remove_unreadable`): nothing else removes an entry it cannot read.
    pub evictions_corruption: u64,
    /// Times an operation met an unreadable entry (a damaged record, a credential token no key
    /// opens) and left it in place: lookups, health marks, exports, expiry cleanup, eviction.
    /// Not an eviction: the entry is still there. Not in the JSON form, which is the
    /// reference's `model_dump` field for field.
    pub unreadable: u64,
}

impl TierStatistics {
    /// `hits / (hits + misses)`, 0.0 when there was no lookup.
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.hits.saturating_add(self.misses))
    }

    /// Evictions for every reason.
    pub fn total_evictions(&self) -> u64 {
        self.evictions_lru
            .saturating_add(self.evictions_ttl)
            .saturating_add(self.evictions_health)
            .saturating_add(self.evictions_corruption)
    }
}

impl Serialize for TierStatistics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TierStatistics", 9)?;
        s.serialize_field("hits", &self.hits)?;
        s.serialize_field("misses", &self.misses)?;
        s.serialize_field("current_size", &self.current_size)?;
        s.serialize_field("evictions_lru", &self.evictions_lru)?;
        s.serialize_field("evictions_ttl", &self.evictions_ttl)?;
        s.serialize_field("evictions_health", &self.evictions_health)?;
        s.serialize_field("evictions_corruption", &self.evictions_corruption)?;
        s.serialize_field("hit_rate", &self.hit_rate())?;
        s.serialize_field("total_evictions", &self.total_evictions())?;
        s.end()
    }
}

/// Counters of the whole cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CacheStatistics {
    /// L1 (memory).
    pub l1_stats: TierStatistics,
    /// L2 (disk).
    pub l2_stats: TierStatistics,
    /// L3 (SQLite or Redis).
    pub l3_stats: TierStatistics,
    /// Entries copied up to a faster tier after a hit below.
    pub promotions: u64,
    /// Entries moved down after an eviction above.
    pub demotions: u64,
    /// L1 disabled after repeated failures.
    pub l1_degraded: bool,
    /// L2 disabled after repeated failures.
    pub l2_degraded: bool,
    /// L3 disabled after repeated failures.
    pub l3_degraded: bool,
}

/// The names of [`CacheStatistics::to_metrics_dict`], in its order.
pub const METRIC_NAMES: [&str; 10] = [
    "cache.l1.hit_rate",
    "cache.l2.hit_rate",
    "cache.l3.hit_rate",
    "cache.overall.hit_rate",
    "cache.total_size",
    "cache.promotions",
    "cache.demotions",
    "cache.l1.size",
    "cache.l2.size",
    "cache.l3.size",
];

impl CacheStatistics {
    /// Hits of all tiers over requests, the reference's formula: a miss is recorded by every
    /// tier it passes, so requests = hits + the *largest* tier's misses (not their sum).
    pub fn overall_hit_rate(&self) -> f64 {
        let hits = self
            .l1_stats
            .hits
            .saturating_add(self.l2_stats.hits)
            .saturating_add(self.l3_stats.hits);
        let misses = self.l1_stats.misses.max(self.l2_stats.misses).max(self.l3_stats.misses);
        ratio(hits, hits.saturating_add(misses))
    }

    /// Entries held, summed over the tiers (an entry in two tiers counts twice, as in the
    /// reference).
    pub fn total_size(&self) -> u64 {
        self.l1_stats
            .current_size
            .saturating_add(self.l2_stats.current_size)
            .saturating_add(self.l3_stats.current_size)
    }

    /// The reference's flat metrics, exactly its ten names ([`METRIC_NAMES`]) in its order.
    pub fn to_metrics_dict(&self) -> [(&'static str, f64); 10] {
        // Sizes and counters as f64, as the reference's float(); exact below 2^53.
        let values = [
            self.l1_stats.hit_rate(),
            self.l2_stats.hit_rate(),
            self.l3_stats.hit_rate(),
            self.overall_hit_rate(),
            self.total_size() as f64,
            self.promotions as f64,
            self.demotions as f64,
            self.l1_stats.current_size as f64,
            self.l2_stats.current_size as f64,
            self.l3_stats.current_size as f64,
        ];
        let mut out = [("", 0.0); 10];
        for (slot, (name, value)) in out.iter_mut().zip(METRIC_NAMES.into_iter().zip(values)) {
            *slot = (name, value);
        }
        out
    }
}

impl Serialize for CacheStatistics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CacheStatistics", 10)?;
        s.serialize_field("l1_stats", &self.l1_stats)?;
        s.serialize_field("l2_stats", &self.l2_stats)?;
        s.serialize_field("l3_stats", &self.l3_stats)?;
        s.serialize_field("promotions", &self.promotions)?;
        s.serialize_field("demotions", &self.demotions)?;
        s.serialize_field("l1_degraded", &self.l1_degraded)?;
        s.serialize_field("l2_degraded", &self.l2_degraded)?;
        s.serialize_field("l3_degraded", &self.l3_degraded)?;
        s.serialize_field("overall_hit_rate", &self.overall_hit_rate())?;
        s.serialize_field("total_size", &self.total_size())?;
        s.end()
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_hit_rate_and_evictions() {
        // The reference's docstring example: TierStatistics(hits=100, misses=20).hit_rate == 0.8333...
        let t = TierStatistics {
            hits: 100,
            misses: 20,
            ..Default::default()
        };
        assert!((t.hit_rate() - 100.0 / 120.0).abs() < 1e-15);
        assert_eq!(TierStatistics::default().hit_rate(), 0.0);
        let t = TierStatistics {
            evictions_lru: 1,
            evictions_ttl: 2,
            evictions_health: 3,
            evictions_corruption: 4,
            ..t
        };
        assert_eq!(t.total_evictions(), 10);
    }

    #[test]
    fn overall_hit_rate_uses_max_of_misses() {
        // The reference's docstring example: only l1 hits -> 1.0.
        let mut s = CacheStatistics::default();
        s.l1_stats.hits = 100;
        assert_eq!(s.overall_hit_rate(), 1.0);
        // 10 misses that went through all three tiers count once, not three times.
        s.l1_stats.misses = 10;
        s.l2_stats.misses = 10;
        s.l3_stats.misses = 10;
        s.l2_stats.hits = 20;
        assert!((s.overall_hit_rate() - 120.0 / 130.0).abs() < 1e-15);
        assert_eq!(CacheStatistics::default().overall_hit_rate(), 0.0);
    }

    #[test]
    fn metrics_have_the_reference_names_in_order() {
        let mut s = CacheStatistics::default();
        s.l1_stats.current_size = 1;
        s.l2_stats.current_size = 2;
        s.l3_stats.current_size = 3;
        s.promotions = 4;
        s.demotions = 5;
        let m = s.to_metrics_dict();
        assert_eq!(m.map(|(k, _)| k), METRIC_NAMES);
        assert_eq!(m[4], ("cache.total_size", 6.0));
        assert_eq!(m[5], ("cache.promotions", 4.0));
        assert_eq!(m[6], ("cache.demotions", 5.0));
        assert_eq!(&m[7..].iter().map(|(_, v)| *v).collect::<Vec<_>>(), &[1.0, 2.0, 3.0]);
    }
}
