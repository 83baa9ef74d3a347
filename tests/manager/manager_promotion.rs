//! Lookup paths of the manager and their statistics: an L1 hit, an L2 hit promoted to L1, an
//! L3 hit promoted to L2 and L1, a miss through every tier — each with the exact counter
//! deltas of proxywhirl 0.3.3's `CacheManager.get` — and demotion: an entry L1 evicts goes
//! down marked `evicted_from_l1` when L1 held use the tiers below had not seen, and is not
//! rewritten when it had none. Access data reaches L2/L3 on close and survives a restart.

use std::path::Path;

use pw_cache::{CacheEntry, CacheManager, CacheStatistics, CacheTierType, L2BackendType, Secret, TierStatistics};
use pw_cache_tests::managers::{BACKENDS, config, open, open_tier, test_ring};

fn entry(url: &str) -> CacheEntry {
    CacheEntry::new(url, "test", 3600)
        .unwrap()
        .with_credentials(Some(Secret::new("user")), Some(Secret::new("pw-promotion")))
}

fn manager(dir: &Path, backend: L2BackendType, l1_max: u64, ring: &std::sync::Arc<pw_cache::KeyRing>) -> CacheManager {
    open(config(dir, backend, l1_max).build().unwrap(), ring, None)
}

/// The counters that moved from `before` to `after` (sizes left out).
fn delta(before: &CacheStatistics, after: &CacheStatistics) -> CacheStatistics {
    let tier = |b: &TierStatistics, a: &TierStatistics| TierStatistics {
        hits: a.hits - b.hits,
        misses: a.misses - b.misses,
        current_size: 0,
        evictions_lru: a.evictions_lru - b.evictions_lru,
        evictions_ttl: a.evictions_ttl - b.evictions_ttl,
        evictions_health: a.evictions_health - b.evictions_health,
        evictions_corruption: a.evictions_corruption - b.evictions_corruption,
        unreadable: a.unreadable - b.unreadable,
    };
    CacheStatistics {
        l1_stats: tier(&before.l1_stats, &after.l1_stats),
        l2_stats: tier(&before.l2_stats, &after.l2_stats),
        l3_stats: tier(&before.l3_stats, &after.l3_stats),
        promotions: after.promotions - before.promotions,
        demotions: after.demotions - before.demotions,
        ..CacheStatistics::default()
    }
}

fn counts(l1: (u64, u64), l2: (u64, u64), l3: (u64, u64), promotions: u64) -> CacheStatistics {
    let tier = |(hits, misses)| TierStatistics {
        hits,
        misses,
        ..TierStatistics::default()
    };
    CacheStatistics {
        l1_stats: tier(l1),
        l2_stats: tier(l2),
        l3_stats: tier(l3),
        promotions,
        ..CacheStatistics::default()
    }
}

#[test]
fn l1_hit_counts_one_hit_and_nothing_else() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 10, &ring);
        let e = entry("http://10.1.0.1:8080");
        m.put(&e).unwrap();
        let before = m.get_statistics();
        let got = m.get(&e.key).unwrap();
        assert_eq!(delta(&before, &m.get_statistics()), counts((1, 0), (0, 0), (0, 0), 0));
        assert_eq!(got.access_count, 1);
        assert_eq!(got.password, e.password);
        assert_eq!(m.get(&e.key).unwrap().access_count, 2);
    }
}

#[test]
fn l2_hit_is_promoted_to_l1_and_l3_is_not_asked() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let e = entry("http://10.1.0.2:8080");
        manager(dir.path(), backend, 10, &ring).put(&e).unwrap();
        // A new manager: L1 is empty, L2 and L3 hold the entry.
        let m = manager(dir.path(), backend, 10, &ring);
        let before = m.get_statistics();
        let got = m.get(&e.key).unwrap();
        assert_eq!(
            delta(&before, &m.get_statistics()),
            counts((0, 1), (1, 0), (0, 0), 1),
            "{backend}"
        );
        assert_eq!(got.access_count, 1);
        assert_eq!(got.username, e.username);
        assert_eq!(m.get_statistics().l1_stats.current_size, 1, "promoted into L1");
        let before = m.get_statistics();
        assert_eq!(m.get(&e.key).unwrap().access_count, 2);
        assert_eq!(delta(&before, &m.get_statistics()), counts((1, 0), (0, 0), (0, 0), 0));
    }
}

#[test]
fn l3_hit_is_promoted_to_l2_and_l1() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let e = entry("http://10.1.0.3:8080");
        // Only L3 holds it.
        open_tier(dir.path(), CacheTierType::L3, backend, &ring)
            .put(&e)
            .unwrap();
        let m = manager(dir.path(), backend, 10, &ring);
        let before = m.get_statistics();
        let got = m.get(&e.key).unwrap();
        assert_eq!(
            delta(&before, &m.get_statistics()),
            counts((0, 1), (0, 1), (1, 0), 2),
            "{backend}"
        );
        assert_eq!(got.access_count, 1);
        assert_eq!(got.password, e.password);
        let stats = m.get_statistics();
        assert_eq!((stats.l1_stats.current_size, stats.l2_stats.current_size), (1, 1));
        m.close().unwrap();
        let l2 = open_tier(dir.path(), CacheTierType::L2, backend, &ring);
        let in_l2 = l2.get(&e.key).unwrap().expect("promoted into L2");
        assert_eq!(in_l2.password, e.password);
        assert_eq!(in_l2.proxy_url, e.proxy_url);
    }
}

#[test]
fn a_miss_is_counted_by_every_tier() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 10, &ring);
        let before = m.get_statistics();
        assert!(m.get("no-such-key").is_none());
        let after = m.get_statistics();
        assert_eq!(delta(&before, &after), counts((0, 1), (0, 1), (0, 1), 0));
        // The reference's overall hit rate: hits over hits plus the largest tier's misses.
        assert_eq!(after.overall_hit_rate(), 0.0);
        m.put(&entry("http://10.1.0.4:8080")).unwrap();
        m.get(&entry("http://10.1.0.4:8080").key).unwrap();
        assert_eq!(m.get_statistics().overall_hit_rate(), 0.5);
    }
}

#[test]
fn a_disabled_tier_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let cfg = config(dir.path(), L2BackendType::Sqlite, 10)
        .l2_config(pw_cache::CacheTierConfig::disabled())
        .build()
        .unwrap();
    let m = open(cfg, &ring, None);
    assert!(m.get("absent").is_none());
    let stats = m.get_statistics();
    assert_eq!(
        (stats.l1_stats.misses, stats.l2_stats.misses, stats.l3_stats.misses),
        (1, 0, 1)
    );
    assert!(
        stats.l2_degraded,
        "the reference reports a tier that is not serving as degraded"
    );
}

#[test]
fn an_entry_evicted_without_new_use_is_not_rewritten() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 2, &ring);
        let [a, b, c] = ["http://10.2.0.1:80", "http://10.2.0.2:80", "http://10.2.0.3:80"].map(entry);
        for e in [&a, &b, &c] {
            m.put(e).unwrap();
        }
        let stats = m.get_statistics();
        assert_eq!((stats.l1_stats.evictions_lru, stats.demotions), (1, 1), "{backend}");
        assert_eq!(m.statistics_breakdown().demotion_writes, 0);
        m.close().unwrap();
        // `a` was evicted unchanged: L2 and L3 hold it as it was put.
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let held = open_tier(dir.path(), tier, backend, &ring)
                .get(&a.key)
                .unwrap()
                .unwrap();
            assert!(!held.evicted_from_l1, "{tier}: not rewritten");
            assert_eq!(held.access_count, 0);
        }
    }
}

#[test]
fn an_entry_evicted_after_use_is_demoted_with_its_access_data() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 2, &ring);
        let [a, b, c] = ["http://10.3.0.1:80", "http://10.3.0.2:80", "http://10.3.0.3:80"].map(entry);
        m.put(&a).unwrap();
        m.put(&b).unwrap();
        let used = m.get(&a.key).unwrap();
        m.get(&b.key).unwrap();
        // LRU order is now a, b: putting c evicts a, which L1 has used.
        m.put(&c).unwrap();
        let stats = m.get_statistics();
        assert_eq!((stats.l1_stats.evictions_lru, stats.demotions), (1, 1), "{backend}");
        // The use is queued for the next batch, not written yet.
        assert_eq!(m.statistics_breakdown().demotion_writes, 0);
        // Read from L2 through the manager: the queued use is applied to what L2 holds.
        let promoted = m.get(&a.key).unwrap();
        assert_eq!(promoted.access_count, 2, "one use before eviction, one now");
        assert!(promoted.evicted_from_l1);
        drop(m);
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let held = open_tier(dir.path(), tier, backend, &ring)
                .get(&a.key)
                .unwrap()
                .unwrap();
            assert!(held.access_count >= 1, "{tier}");
            assert!(held.last_accessed >= used.last_accessed, "{tier}");
            assert_eq!(held.password, a.password, "{tier}");
        }
    }
}

/// Puts `USE_BATCH + 1` entries into `m` (L1 of one entry), getting each once: each put
/// evicts the previous entry, used, so the last put fills a batch of use records.
fn fill_a_use_batch(m: &CacheManager, second_octet: u8) -> Vec<CacheEntry> {
    let entries: Vec<CacheEntry> = (0..=pw_cache::USE_BATCH)
        .map(|i| entry(&format!("http://10.{second_octet}.{}.{}:80", i / 256, i % 256)))
        .collect();
    for e in &entries {
        m.put(e).unwrap();
        assert_eq!(m.get(&e.key).unwrap().access_count, 1);
    }
    entries
}

/// Waits (at most 30 s) until the manager's background writer has written a batch of use.
fn wait_for_a_written_batch(m: &CacheManager, backend: L2BackendType) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while m.statistics_breakdown().demotion_writes < pw_cache::USE_BATCH as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{backend}: the batch was never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn the_use_of_evicted_entries_is_written_in_batches_without_a_flush() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 1, &ring);
        // Each entry is put, used once, then evicted by the next put: USE_BATCH uses queued.
        let entries = fill_a_use_batch(&m, 9);
        // Written by the manager's background writer, without a flush or close (so no get or
        // put waited for the batch's UPDATEs)...
        wait_for_a_written_batch(&m, backend);
        assert_eq!(
            m.statistics_breakdown().demotion_writes,
            pw_cache::USE_BATCH as u64,
            "{backend}"
        );
        // ...and another process (a tier opened beside) sees them.
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let t = open_tier(dir.path(), tier, backend, &ring);
            for e in &entries[..pw_cache::USE_BATCH] {
                let held = t.get(&e.key).unwrap().unwrap();
                assert_eq!((held.access_count, held.evicted_from_l1), (1, true), "{backend} {tier}");
            }
        }
        // A put replaces the use noted of the entry it replaces.
        let last = &entries[pw_cache::USE_BATCH];
        m.put(&entries[0]).unwrap();
        m.put(last).unwrap();
        assert_eq!(
            m.get(&entries[0].key).unwrap().access_count,
            1,
            "{backend}: as put, plus this get"
        );
    }
}

/// The background writer records a batch while the caller goes on: a put of a key whose
/// older use is in that batch must not be overwritten by it (the put waits for the batch).
/// The key put is the batch's last in key order, so without that wait the batch's `UPDATE`
/// of it would land well after the put.
#[test]
fn a_put_is_not_overwritten_by_the_use_batch_being_written() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, 1, &ring);
        let entries = fill_a_use_batch(&m, 8);
        // The last put filled the batch and woke the writer; replace its last key at once.
        let last = entries[..pw_cache::USE_BATCH]
            .iter()
            .max_by(|a, b| a.key.cmp(&b.key))
            .unwrap();
        m.put(last).unwrap();
        wait_for_a_written_batch(&m, backend);
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let t = open_tier(dir.path(), tier, backend, &ring);
            let held = t.get(&last.key).unwrap().unwrap();
            assert_eq!(
                (held.access_count, held.evicted_from_l1),
                (0, false),
                "{backend} {tier}: the put, not the older use"
            );
        }
    }
}

#[test]
fn promotion_into_a_full_l1_counts_its_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let m = manager(dir.path(), L2BackendType::Jsonl, 1, &ring);
    let [a, b] = ["http://10.4.0.1:80", "http://10.4.0.2:80"].map(entry);
    m.put(&a).unwrap();
    m.put(&b).unwrap(); // evicts a
    assert_eq!(m.statistics_breakdown().promotion_evictions, 0);
    m.get(&a.key).unwrap(); // L2 hit, promoted: evicts b
    let stats = m.get_statistics();
    assert_eq!(stats.l1_stats.evictions_lru, 2);
    assert_eq!(stats.promotions, 1);
    assert_eq!(m.statistics_breakdown().promotion_evictions, 1);
    assert!(m.get(&b.key).is_some(), "b was demoted, not lost");
}

#[test]
fn access_data_survives_a_restart() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let e = entry("http://10.5.0.1:80");
        let m = manager(dir.path(), backend, 10, &ring);
        m.put(&e).unwrap();
        for _ in 0..3 {
            m.get(&e.key).unwrap();
        }
        let last = m.get(&e.key).unwrap();
        assert_eq!(last.access_count, 4);
        m.close().unwrap();
        assert!(m.get(&e.key).is_none(), "a closed manager serves nothing");
        assert!(matches!(m.put(&e), Err(pw_cache::ManagerError::Closed)));
        drop(m);
        let m = manager(dir.path(), backend, 10, &ring);
        let again = m.get(&e.key).unwrap();
        assert_eq!(
            again.access_count, 5,
            "{backend}: four uses before the restart, one now"
        );
        assert_eq!(again.password, e.password);
        assert!(again.last_accessed >= last.last_accessed);
    }
}

#[test]
fn dropping_the_manager_flushes_like_close() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let e = entry("http://10.5.0.2:80");
    {
        let m = manager(dir.path(), L2BackendType::Sqlite, 10, &ring);
        m.put(&e).unwrap();
        m.get(&e.key).unwrap();
        m.get(&e.key).unwrap();
    }
    let held = open_tier(dir.path(), CacheTierType::L3, L2BackendType::Sqlite, &ring)
        .get(&e.key)
        .unwrap()
        .unwrap();
    assert_eq!(held.access_count, 2);
}

#[test]
fn flush_writes_use_without_closing() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let e = entry("http://10.5.0.3:80");
    let m = manager(dir.path(), L2BackendType::Jsonl, 10, &ring);
    m.put(&e).unwrap();
    m.get(&e.key).unwrap();
    m.flush().unwrap();
    let l2 = open_tier(dir.path(), CacheTierType::L2, L2BackendType::Jsonl, &ring);
    assert_eq!(l2.get(&e.key).unwrap().unwrap().access_count, 1);
    // Still open and serving.
    assert_eq!(m.get(&e.key).unwrap().access_count, 2);
}

/// `CacheManager::tier` gives each level on its own: a put into L1 alone is not in L2 or L3,
/// an entry put into L3 alone is then found (and promoted) by the manager's get, and a
/// disabled level has no handle.
#[test]
fn each_tier_can_be_used_on_its_own_through_its_handle() {
    use pw_cache::CacheTierType;
    use pw_cache_tests::managers;

    for backend in managers::BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let config = managers::config(dir.path(), backend, 10).build().unwrap();
        let manager = managers::open(config, &managers::test_ring(), None);
        let l1 = manager.tier(CacheTierType::L1).unwrap();
        let l2 = manager.tier(CacheTierType::L2).unwrap();
        let l3 = manager.tier(CacheTierType::L3).unwrap();
        assert_eq!(
            (l1.tier_type(), l2.tier_type(), l3.tier_type()),
            (CacheTierType::L1, CacheTierType::L2, CacheTierType::L3)
        );
        let only_l1 = manager.new_entry("http://10.31.0.1:8080", "direct").unwrap();
        l1.put(&only_l1).unwrap();
        assert!(l1.contains(&only_l1.key).unwrap());
        assert!(!l2.contains(&only_l1.key).unwrap() && !l3.contains(&only_l1.key).unwrap());

        let only_l3 = manager.new_entry("http://10.31.0.2:8080", "direct").unwrap();
        l3.put(&only_l3).unwrap();
        assert!(!l1.contains(&only_l3.key).unwrap());
        assert_eq!(manager.get(&only_l3.key).unwrap().proxy_url, only_l3.proxy_url);
        assert!(
            l1.contains(&only_l3.key).unwrap() && l2.contains(&only_l3.key).unwrap(),
            "promoted"
        );
        assert_eq!(l3.health().consecutive_failures(), 0);
        manager.close().unwrap();

        let config = managers::config(dir.path(), backend, 10)
            .l3_config(pw_cache::CacheTierConfig::disabled())
            .build()
            .unwrap();
        let manager = managers::open(config, &managers::test_ring(), None);
        assert!(manager.tier(CacheTierType::L3).is_none());
        assert!(manager.tier(CacheTierType::L2).is_some());
        manager.close().unwrap();
    }
}
