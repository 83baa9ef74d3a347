//! L1's capacity with the default sharding and with one shard
//! ([`CacheManagerBuilder::l1_shards`](pw_cache::CacheManagerBuilder::l1_shards)): by default a
//! large L1 is split into shards that each hold their part of `max_entries`, so a shard can
//! fill (and evict) before the whole tier is full; with `l1_shards(1)` L1 holds exactly
//! `max_entries` entries before it evicts anything, and then evicts the least recent of all,
//! as proxywhirl's L1 does.

use std::path::Path;
use std::sync::Arc;

use pw_cache::{CacheManager, CacheTierType, KeyRing, L2BackendType};
use pw_cache_tests::managers::{config, test_ring};

/// Large enough that the default L1 has several shards (one per 64 entries, up to 16).
const L1_MAX: u64 = 1000;

fn manager(dir: &Path, ring: &Arc<KeyRing>, shards: Option<usize>) -> CacheManager {
    let config = config(dir, L2BackendType::Jsonl, L1_MAX).build().unwrap();
    let mut builder = CacheManager::builder(config).key_ring(Arc::clone(ring));
    if let Some(shards) = shards {
        builder = builder.l1_shards(shards);
    }
    builder.open().unwrap()
}

/// Puts `count` entries; returns their keys in put order.
fn put_many(manager: &CacheManager, count: u64) -> Vec<String> {
    (0..count)
        .map(|i| {
            let url = format!("http://10.1.{}.{}:8080", i / 256, i % 256);
            let entry = manager.new_entry(&url, "capacity-test").unwrap();
            manager.put(&entry).unwrap();
            entry.key
        })
        .collect()
}

fn l1_size(manager: &CacheManager) -> usize {
    manager.tier(CacheTierType::L1).unwrap().size().unwrap()
}

#[test]
fn default_shards_evict_before_the_tier_is_full_and_one_shard_does_not() {
    let ring = test_ring();
    let dir = tempfile::tempdir().unwrap();
    let sharded = manager(&dir.path().join("sharded"), &ring, None);
    put_many(&sharded, L1_MAX);
    let evicted = sharded.get_statistics().l1_stats.evictions_lru;
    assert!(
        evicted > 0 && l1_size(&sharded) < L1_MAX as usize,
        "with 15 shards of ~66 entries, 1,000 keys overfill some shards (evicted {evicted})"
    );

    let exact = manager(&dir.path().join("exact"), &ring, Some(1));
    let keys = put_many(&exact, L1_MAX);
    assert_eq!(
        exact.get_statistics().l1_stats.evictions_lru,
        0,
        "nothing evicted below max_entries"
    );
    assert_eq!(l1_size(&exact), L1_MAX as usize);
    // Every entry is an L1 hit; then touch all but the first two again, in order.
    for key in &keys {
        assert!(exact.get(key).is_some());
    }
    assert_eq!(exact.get_statistics().l1_stats.hits, L1_MAX);
    for key in &keys[2..] {
        exact.get(key).unwrap();
    }
    // Two new entries evict exactly the two least recent entries of the whole tier.
    put_many_from(&exact, 5000, 2);
    assert_eq!(exact.get_statistics().l1_stats.evictions_lru, 2);
    assert_eq!(l1_size(&exact), L1_MAX as usize);
    let l1 = exact.tier(CacheTierType::L1).unwrap();
    assert!(!l1.contains(&keys[0]).unwrap() && !l1.contains(&keys[1]).unwrap());
    assert!(
        keys[2..].iter().all(|k| l1.contains(k).unwrap()),
        "no other entry left L1"
    );
}

fn put_many_from(manager: &CacheManager, first: u64, count: u64) {
    for i in first..first + count {
        let url = format!("http://10.2.{}.{}:8080", i / 256, i % 256);
        manager.put(&manager.new_entry(&url, "capacity-test").unwrap()).unwrap();
    }
}

#[test]
fn a_shard_count_is_kept_within_bounds() {
    // More shards than entries: every shard still holds at least one, and the sum is exact.
    let ring = test_ring();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), L2BackendType::Jsonl, 3).build().unwrap();
    let manager = CacheManager::builder(config)
        .key_ring(ring)
        .l1_shards(64)
        .open()
        .unwrap();
    put_many(&manager, 3);
    assert!(l1_size(&manager) <= 3);
    put_many_from(&manager, 100, 10);
    assert!(l1_size(&manager) <= 3, "L1 never holds more than max_entries");
}
