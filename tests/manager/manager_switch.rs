//! Switching a tier off and on while the cache runs
//! ([`CacheManager::set_tier_enabled`](pw_cache::CacheManager::set_tier_enabled)): a tier
//! switched off is skipped by lookups and writes; L1 is emptied (its use recorded below); L2
//! switched back on never serves a copy it missed a write or delete of.

use std::sync::Arc;

use pw_cache::{CacheManager, CacheTierType, L2BackendType};
use pw_cache_tests::managers::{config, test_ring};

fn manager(dir: &std::path::Path) -> CacheManager {
    let config = config(dir, L2BackendType::Sqlite, 100).build().unwrap();
    CacheManager::builder(config)
        .key_ring(Arc::clone(&test_ring()))
        .open()
        .unwrap()
}

#[test]
fn l1_switched_off_is_skipped_and_emptied_and_comes_back_empty() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let entry = m.new_entry("http://10.3.0.1:8080", "switch").unwrap();
    m.put(&entry).unwrap();
    m.get(&entry.key).unwrap();
    assert_eq!(m.get_statistics().l1_stats.hits, 1);

    assert!(m.set_tier_enabled(CacheTierType::L1, false).unwrap());
    assert!(!m.tier_enabled(CacheTierType::L1));
    let l1 = m.tier(CacheTierType::L1).unwrap();
    assert_eq!(l1.size().unwrap(), 0, "switching L1 off empties it");
    // The hit made in L1 was recorded below before L1 was emptied.
    let below = m.tier(CacheTierType::L2).unwrap().get(&entry.key).unwrap().unwrap();
    assert_eq!(below.access_count, 1);
    // Lookups and puts skip L1 and are served below; the statistics say L1 is degraded.
    assert!(m.get(&entry.key).is_some());
    let other = m.new_entry("http://10.3.0.2:8080", "switch").unwrap();
    m.put(&other).unwrap();
    assert_eq!(l1.size().unwrap(), 0, "nothing reaches L1 while it is off");
    let stats = m.get_statistics();
    assert_eq!(stats.l1_stats.hits, 1, "no L1 hit while off");
    assert!(stats.l1_degraded);

    assert!(m.set_tier_enabled(CacheTierType::L1, true).unwrap());
    assert!(m.tier_enabled(CacheTierType::L1));
    assert!(m.get(&other.key).is_some(), "promoted into L1 again");
    assert!(m.get(&other.key).is_some());
    assert_eq!(m.get_statistics().l1_stats.hits, 2);
    assert!(!m.get_statistics().l1_degraded);
}

#[test]
fn l2_switched_off_misses_writes_and_never_serves_them_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let kept = m.new_entry("http://10.3.1.1:8080", "switch").unwrap();
    let deleted = m.new_entry("http://10.3.1.2:8080", "switch").unwrap();
    m.put(&kept).unwrap();
    m.put(&deleted).unwrap();

    assert!(m.set_tier_enabled(CacheTierType::L2, false).unwrap());
    assert!(m.get_statistics().l2_degraded);
    // Deleted while L2 is off: L2 still holds its copy.
    assert!(m.delete(&deleted.key));
    let l2 = m.tier(CacheTierType::L2).unwrap();
    assert!(l2.contains(&deleted.key).unwrap(), "L2 was skipped");
    // A new entry goes to L1 and L3 only.
    let added = m.new_entry("http://10.3.1.3:8080", "switch").unwrap();
    m.put(&added).unwrap();
    assert!(!l2.contains(&added.key).unwrap());

    assert!(m.set_tier_enabled(CacheTierType::L2, true).unwrap());
    m.set_tier_enabled(CacheTierType::L1, false).unwrap();
    m.set_tier_enabled(CacheTierType::L3, false).unwrap();
    // With only L2 to read, the deleted entry is not served from its stale copy.
    assert!(
        m.get(&deleted.key).is_none(),
        "a copy L2 missed the delete of is never served"
    );
    assert!(m.get(&kept.key).is_some());
    // The probe thread removes the stale copy (within its interval; the test waits up to 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while l2.contains(&deleted.key).unwrap() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!l2.contains(&deleted.key).unwrap(), "the missed delete was replayed");
}

#[test]
fn switching_reports_whether_the_level_exists_and_fails_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), L2BackendType::Jsonl, 10)
        .l3_config(pw_cache::CacheTierConfig {
            enabled: false,
            ..pw_cache::CacheTierConfig::unbounded()
        })
        .build()
        .unwrap();
    let m = CacheManager::builder(config).key_ring(test_ring()).open().unwrap();
    assert!(
        !m.set_tier_enabled(CacheTierType::L3, true).unwrap(),
        "L3 is not configured"
    );
    assert!(!m.tier_enabled(CacheTierType::L3));
    assert!(
        m.set_tier_enabled(CacheTierType::L2, true).unwrap(),
        "already on: nothing to do"
    );
    m.close().unwrap();
    assert!(matches!(
        m.set_tier_enabled(CacheTierType::L2, false),
        Err(pw_cache::ManagerError::Closed)
    ));
}
