//! Health invalidation through the manager: each failed check adds one to `failure_count` and
//! marks the proxy unhealthy; at `failure_threshold` (with `health_check_invalidation` on) the
//! entry leaves every tier and `evictions_health` counts it in each tier that held it; below
//! the threshold the updated entry is stored where it is and below, never promoted.

use pw_cache::{
    CacheEntry, CacheManager, CacheTierType, HealthInvalidation, HealthStatus, KeyRing, L2BackendType, Secret,
};
use pw_cache_tests::managers::{BACKENDS, config, open, open_tier, test_ring};
use std::path::Path;
use std::sync::Arc;

fn entry(url: &str) -> CacheEntry {
    CacheEntry::new(url, "test", 3600)
        .unwrap()
        .with_credentials(None, Some(Secret::new("pw-health")))
}

fn manager(
    dir: &Path,
    backend: L2BackendType,
    ring: &Arc<KeyRing>,
    threshold: u32,
    invalidation: bool,
) -> CacheManager {
    let cfg = config(dir, backend, 10)
        .failure_threshold(threshold)
        .health_check_invalidation(invalidation)
        .build()
        .unwrap();
    open(cfg, ring, None)
}

fn health_evictions(m: &CacheManager) -> [u64; 3] {
    let s = m.get_statistics();
    [
        s.l1_stats.evictions_health,
        s.l2_stats.evictions_health,
        s.l3_stats.evictions_health,
    ]
}

#[test]
fn below_the_threshold_marked_and_kept_at_it_evicted_everywhere() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let m = manager(dir.path(), backend, &ring, 3, true);
        let e = entry("http://10.7.0.1:80");
        m.put(&e).unwrap();
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { failure_count: 1 }
        );
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { failure_count: 2 }
        );
        let held = m.get(&e.key).unwrap();
        assert_eq!(
            (held.failure_count, held.health_status),
            (2, HealthStatus::Unhealthy),
            "{backend}"
        );
        assert_eq!(held.password, e.password, "the credentials survive the update");
        assert_eq!(health_evictions(&m), [0, 0, 0]);
        // The tiers below hold the mark too (it is not only in memory).
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let below = open_tier(dir.path(), tier, backend, &ring)
                .get(&e.key)
                .unwrap()
                .unwrap();
            assert_eq!(
                (below.failure_count, below.health_status),
                (2, HealthStatus::Unhealthy),
                "{tier}"
            );
        }
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Evicted { failure_count: 3 }
        );
        assert_eq!(
            health_evictions(&m),
            [1, 1, 1],
            "{backend}: counted in each tier that held it"
        );
        assert!(m.get(&e.key).is_none());
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            assert!(
                !open_tier(dir.path(), tier, backend, &ring).contains(&e.key).unwrap(),
                "{tier}"
            );
        }
        assert_eq!(m.invalidate_by_health(&e.key), HealthInvalidation::NotFound);
    }
}

#[test]
fn with_invalidation_off_failures_are_counted_and_nothing_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let m = manager(dir.path(), L2BackendType::Sqlite, &ring, 1, false);
    let e = entry("http://10.7.0.2:80");
    m.put(&e).unwrap();
    for n in 1..=5 {
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { failure_count: n }
        );
    }
    assert_eq!(m.get(&e.key).unwrap().failure_count, 5);
    assert_eq!(health_evictions(&m), [0, 0, 0]);
}

#[test]
fn an_entry_below_l1_is_updated_where_it_is_and_not_promoted() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let e = entry("http://10.7.0.3:80");
        // Only L3 holds it.
        open_tier(dir.path(), CacheTierType::L3, backend, &ring)
            .put(&e)
            .unwrap();
        let m = manager(dir.path(), backend, &ring, 3, true);
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { failure_count: 1 }
        );
        let stats = m.get_statistics();
        assert_eq!(
            (stats.l1_stats.current_size, stats.l2_stats.current_size),
            (0, 0),
            "{backend}: not promoted"
        );
        assert_eq!(stats.promotions, 0);
        assert_eq!(
            stats.l1_stats.hits + stats.l2_stats.hits + stats.l3_stats.hits,
            0,
            "not a lookup"
        );
        let in_l3 = open_tier(dir.path(), CacheTierType::L3, backend, &ring)
            .get(&e.key)
            .unwrap()
            .unwrap();
        assert_eq!((in_l3.failure_count, in_l3.health_status), (1, HealthStatus::Unhealthy));
        assert_eq!(in_l3.access_count, 0, "an invalidation is not a use");
        // At the threshold it is counted only where it was held.
        m.invalidate_by_health(&e.key);
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Evicted { failure_count: 3 }
        );
        assert_eq!(health_evictions(&m), [0, 0, 1], "{backend}");
    }
}

#[test]
fn an_entry_in_l2_and_l3_is_updated_in_both_and_not_promoted() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let e = entry("http://10.7.0.4:80");
        manager(dir.path(), backend, &ring, 3, true).put(&e).unwrap();
        let m = manager(dir.path(), backend, &ring, 3, true);
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { failure_count: 1 }
        );
        assert_eq!(m.get_statistics().l1_stats.current_size, 0, "{backend}");
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            let below = open_tier(dir.path(), tier, backend, &ring)
                .get(&e.key)
                .unwrap()
                .unwrap();
            assert_eq!(below.failure_count, 1, "{backend} {tier}");
        }
    }
}

#[test]
fn marking_an_l1_entry_keeps_its_uses_and_is_not_itself_a_use() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let m = manager(dir.path(), L2BackendType::Jsonl, &ring, 3, true);
    let e = entry("http://10.7.0.5:80");
    m.put(&e).unwrap();
    m.get(&e.key).unwrap();
    m.get(&e.key).unwrap();
    m.invalidate_by_health(&e.key);
    let hits_before = m.get_statistics().l1_stats.hits;
    let held = m.get(&e.key).unwrap();
    assert_eq!(
        held.access_count, 3,
        "two uses before, one now; the invalidation is none"
    );
    assert_eq!(m.get_statistics().l1_stats.hits, hits_before + 1);
    // The mark and the uses both reached the tiers below.
    m.close().unwrap();
    let below = open_tier(dir.path(), CacheTierType::L2, L2BackendType::Jsonl, &ring)
        .get(&e.key)
        .unwrap()
        .unwrap();
    assert_eq!((below.failure_count, below.access_count), (1, 3));
}

#[test]
fn an_expired_entry_is_not_found_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let clock = pw_cache_tests::managers::TestClock::at(time::macros::datetime!(2026-11-21 12:00 UTC));
    let cfg = config(dir.path(), L2BackendType::Sqlite, 10).build().unwrap();
    let m = open(cfg, &ring, Some(&clock));
    let e = CacheEntry::new_at("http://10.7.0.6:80", "test", 60, clock.now()).unwrap();
    m.put(&e).unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(m.invalidate_by_health(&e.key), HealthInvalidation::NotFound);
    assert_eq!(m.get_statistics().l1_stats.evictions_ttl, 1);
    assert!(
        !open_tier(dir.path(), CacheTierType::L3, L2BackendType::Sqlite, &ring)
            .contains(&e.key)
            .unwrap()
    );
}

#[test]
fn health_check_detail_survives_a_round_trip_through_a_sqlite_l2() {
    // proxywhirl's `l2_cache` table has no columns for the health-check detail: a copy read
    // from it must not be promoted, and later written over L3's record, with those fields lost.
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let mut e = entry("http://10.7.0.7:80");
    e.total_health_checks = 7;
    e.total_health_check_failures = 2;
    e.consecutive_health_successes = 5;
    e.last_health_error = Some("timed out".into());
    e.last_health_check = Some(e.fetch_time);
    let m = manager(dir.path(), L2BackendType::Sqlite, &ring, 3, true);
    m.put(&e).unwrap();
    m.close().unwrap();
    drop(m);
    // Found in L2 after a restart, used, invalidated once, written down on close.
    let m = manager(dir.path(), L2BackendType::Sqlite, &ring, 3, true);
    let got = m.get(&e.key).unwrap();
    assert_eq!(
        (got.total_health_checks, got.last_health_error.as_deref()),
        (7, Some("timed out"))
    );
    drop(m);
    let m = manager(dir.path(), L2BackendType::Sqlite, &ring, 3, true);
    assert_eq!(
        m.invalidate_by_health(&e.key),
        HealthInvalidation::Marked { failure_count: 1 }
    );
    m.close().unwrap();
    let in_l3 = open_tier(dir.path(), CacheTierType::L3, L2BackendType::Sqlite, &ring)
        .get(&e.key)
        .unwrap()
        .unwrap();
    assert_eq!(in_l3.total_health_checks, 7);
    assert_eq!(in_l3.total_health_check_failures, 2);
    assert_eq!(in_l3.consecutive_health_successes, 5);
    assert_eq!(in_l3.last_health_error.as_deref(), Some("timed out"));
    assert_eq!(in_l3.last_health_check, e.last_health_check);
    assert_eq!((in_l3.failure_count, in_l3.access_count), (1, 1));
}
