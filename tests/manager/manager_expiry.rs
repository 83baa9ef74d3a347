//! Expiry through the manager at the exact boundary, in every tier: an entry is live up to the
//! microsecond before `expires_at` and expired from `expires_at` on (`now >= expires_at`, the
//! model's one rule; proxywhirl's cleanup used `<` and its lookups `>=`). A lookup that finds
//! it expired in any tier removes it from every tier, counts a TTL eviction of that tier and
//! is a miss; the cleaner removes it at the same instant and counts it too.

use std::time::Duration;

use pw_cache::{CacheEntry, CacheManager, CacheTierType, L2BackendType, OffsetDateTime};
use pw_cache_tests::managers::{BACKENDS, TestClock, config, open, open_tier, test_ring};
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-21 10:00:00.5 UTC);
const TTL: u64 = 60;
const ONE_MICRO: Duration = Duration::from_micros(1);

fn entry(url: &str) -> CacheEntry {
    CacheEntry::new_at(url, "test", TTL, T0).unwrap()
}

fn expires_at() -> OffsetDateTime {
    T0 + Duration::from_secs(TTL)
}

type Ring = std::sync::Arc<pw_cache::KeyRing>;

fn manager(dir: &std::path::Path, backend: L2BackendType, clock: &TestClock, ring: &Ring) -> CacheManager {
    open(config(dir, backend, 10).build().unwrap(), ring, Some(clock))
}

/// Puts `e` only in `tier` (L1: through a manager; L2, L3: the tier directly).
fn place(
    dir: &std::path::Path,
    backend: L2BackendType,
    tier: CacheTierType,
    e: &CacheEntry,
    m: &CacheManager,
    ring: &Ring,
) {
    match tier {
        CacheTierType::L1 => {
            m.put(e).unwrap();
        }
        _ => open_tier(dir, tier, backend, ring).put(e).unwrap(),
    }
}

fn held_anywhere(dir: &std::path::Path, backend: L2BackendType, key: &str, ring: &Ring) -> Vec<CacheTierType> {
    [CacheTierType::L2, CacheTierType::L3]
        .into_iter()
        .filter(|&t| open_tier(dir, t, backend, ring).contains(key).unwrap())
        .collect()
}

#[test]
fn live_one_microsecond_before_expires_at_in_every_tier() {
    for backend in BACKENDS {
        for tier in [CacheTierType::L1, CacheTierType::L2, CacheTierType::L3] {
            let dir = tempfile::tempdir().unwrap();
            let clock = TestClock::at(T0);
            let ring = test_ring();
            let m = manager(dir.path(), backend, &clock, &ring);
            let e = entry("http://10.6.0.1:80");
            place(dir.path(), backend, tier, &e, &m, &ring);
            clock.set(expires_at() - ONE_MICRO);
            let got = m.get(&e.key).unwrap_or_else(|| panic!("{backend} {tier}: live"));
            assert_eq!(got.last_accessed, expires_at() - ONE_MICRO);
            let stats = m.get_statistics();
            assert_eq!(
                stats.l1_stats.evictions_ttl + stats.l2_stats.evictions_ttl + stats.l3_stats.evictions_ttl,
                0
            );
        }
    }
}

#[test]
fn expired_at_expires_at_in_every_tier_and_removed_from_all() {
    for backend in BACKENDS {
        for tier in [CacheTierType::L1, CacheTierType::L2, CacheTierType::L3] {
            let dir = tempfile::tempdir().unwrap();
            let clock = TestClock::at(T0);
            let ring = test_ring();
            let m = manager(dir.path(), backend, &clock, &ring);
            let e = entry("http://10.6.0.2:80");
            place(dir.path(), backend, tier, &e, &m, &ring);
            clock.set(expires_at());
            let before = m.get_statistics();
            assert!(m.get(&e.key).is_none(), "{backend} {tier}: expired at expires_at");
            let after = m.get_statistics();
            let ttl = |s: &pw_cache::CacheStatistics| {
                [
                    s.l1_stats.evictions_ttl,
                    s.l2_stats.evictions_ttl,
                    s.l3_stats.evictions_ttl,
                ]
            };
            let mut want = ttl(&before);
            want[match tier {
                CacheTierType::L1 => 0,
                CacheTierType::L2 => 1,
                CacheTierType::L3 => 2,
            }] += 1;
            assert_eq!(
                ttl(&after),
                want,
                "{backend} {tier}: counted in the tier it was found in"
            );
            assert_eq!(after.l1_stats.hits + after.l2_stats.hits + after.l3_stats.hits, 0);
            assert_eq!(after.promotions, 0, "an expired entry is not promoted");
            assert_eq!(after.l1_stats.current_size, 0);
            assert!(
                held_anywhere(dir.path(), backend, &e.key, &ring).is_empty(),
                "{backend} {tier}: removed everywhere"
            );
            // And it stays a miss.
            assert!(m.get(&e.key).is_none());
        }
    }
}

#[test]
fn an_expired_copy_below_a_live_one_is_never_reached() {
    // L1 holds a fresh copy, L2/L3 an old expired one: the lookup stops at L1.
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(T0);
    let ring = test_ring();
    let m = manager(dir.path(), L2BackendType::Sqlite, &clock, &ring);
    let old = entry("http://10.6.0.3:80");
    place(dir.path(), L2BackendType::Sqlite, CacheTierType::L3, &old, &m, &ring);
    clock.set(expires_at());
    let fresh = CacheEntry::new_at("http://10.6.0.3:80", "test", TTL, expires_at()).unwrap();
    m.put(&fresh).unwrap();
    assert_eq!(m.get(&fresh.key).unwrap().fetch_time, expires_at());
}

#[test]
fn the_cleaner_removes_at_expires_at_and_not_before() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at(T0);
        let ring = test_ring();
        let m = manager(dir.path(), backend, &clock, &ring);
        let e = entry("http://10.6.0.4:80");
        let later = CacheEntry::new_at("http://10.6.0.5:80", "test", TTL * 2, T0).unwrap();
        m.put(&e).unwrap();
        m.put(&later).unwrap();
        clock.set(expires_at() - ONE_MICRO);
        assert_eq!(m.cleanup_now().total(), 0, "{backend}");
        clock.set(expires_at());
        let report = m.cleanup_now();
        assert_eq!(report.removed, [1, 1, 1], "{backend}: from each tier");
        let stats = m.get_statistics();
        assert_eq!(
            [
                stats.l1_stats.evictions_ttl,
                stats.l2_stats.evictions_ttl,
                stats.l3_stats.evictions_ttl
            ],
            [1, 1, 1]
        );
        assert_eq!(m.statistics_breakdown().cleaner_evictions_ttl, [1, 1, 1]);
        assert!(held_anywhere(dir.path(), backend, &e.key, &ring).is_empty());
        assert!(m.get(&later.key).is_some(), "{backend}: the later entry stays");
    }
}
