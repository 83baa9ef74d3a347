//! The order in which the manager's L1 sees the hits of different threads
//! ([`CacheManagerBuilder::l1_access_order`](pw_cache::CacheManagerBuilder::l1_access_order)):
//! two threads take turns hitting L1, then new entries evict from it, and which entries are
//! left tells which order L1 applied the hits in.
//!
//! The two threads are the only ones to hit L1 in this process, so they note their hits in
//! different lanes (threads are numbered in the order of their first hit); `PerThread` then
//! applies one thread's hits after the other's, which no interleaving of the turns gives.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use pw_cache::{AccessOrder, CacheManager, CacheTierType, KeyRing, L2BackendType};
use pw_cache_tests::managers::{config, test_ring};

/// L1 holds six entries (one shard: the policy is one exact LRU list).
const L1_MAX: u64 = 6;

fn manager(dir: &Path, ring: &Arc<KeyRing>, order: Option<AccessOrder>) -> CacheManager {
    let mut builder =
        CacheManager::builder(config(dir, L2BackendType::Sqlite, L1_MAX).build().unwrap()).key_ring(Arc::clone(ring));
    if let Some(order) = order {
        builder = builder.l1_access_order(order);
    }
    builder.open().unwrap()
}

/// Puts `k0..k5` and then, on two threads A and B taking turns, hits k3 (A), k1 (B), k4 (A),
/// k5 (B), k0 (A); then puts three new entries, which evict three of the k's from L1.
/// Returns the keys of `k0..k5`.
fn turns_then_evict(manager: &CacheManager) -> Vec<String> {
    let put = |url: &str| {
        let entry = manager.new_entry(url, "order-test").unwrap();
        manager.put(&entry).unwrap();
        entry.key
    };
    let keys: Vec<String> = (0..6).map(|i| put(&format!("http://10.0.0.{i}:8080"))).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (ask, asked) = mpsc::channel::<String>();
                let (answer, answered) = mpsc::channel::<bool>();
                scope.spawn(move || {
                    for key in asked {
                        answer.send(manager.get(&key).is_some()).unwrap();
                    }
                });
                (ask, answered)
            })
            .collect();
        for (thread, k) in [(0, 3), (1, 1), (0, 4), (1, 5), (0, 0)] {
            let (ask, answered) = &workers[thread];
            ask.send(keys[k].clone()).unwrap();
            assert!(answered.recv().unwrap(), "k{k} must hit");
        }
    });
    assert_eq!(manager.get_statistics().l1_stats.hits, 5, "every turn was an L1 hit");
    for i in 0..3 {
        put(&format!("http://10.0.1.{i}:8080"));
    }
    keys
}

/// Whether a get of `key` is answered by L1 (a miss there promotes it from L2, evicting L1's
/// least recent entry).
fn l1_hit(manager: &CacheManager, key: &str) -> bool {
    let before = manager.get_statistics().l1_stats.hits;
    assert!(manager.get(key).is_some(), "every entry is still in L2");
    manager.get_statistics().l1_stats.hits == before + 1
}

#[test]
fn exact_order_evicts_by_the_time_of_each_hit_and_per_thread_by_thread() {
    let ring = test_ring();
    // Both in one test: the two scenarios' threads must not be numbered in between each
    // other's first hits.
    {
        // Exact: least to most recent k2 (never hit), k3, k1, k4, k5, k0: the puts evict k2,
        // k3 and k1.
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path(), &ring, Some(AccessOrder::Exact));
        let keys = turns_then_evict(&m);
        for k in [4, 5, 0] {
            assert!(l1_hit(&m, &keys[k]), "Exact: k{k} must still be in L1");
        }
        for k in [2, 3, 1] {
            assert!(!l1_hit(&m, &keys[k]), "Exact: k{k} must have been evicted");
        }
    }
    {
        // The default, PerThread: k2, then A's hits and B's, one thread after the other:
        // k2 k3 k4 k0 k1 k5 (A's lane first: k0 k1 k5 left) or k2 k1 k5 k3 k4 k0 (B's first:
        // k3 k4 k0 left), never the exact order's k4 k5 k0. So exactly one of k3 (B's lane
        // first) and k1 (A's first) is still in L1. Checked in that order: when k3 is not
        // there, promoting it evicts k0 (A first: the least recent of k0 k1 k5), not k1.
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path(), &ring, None);
        assert_eq!(m.tier_status(CacheTierType::L1), pw_cache::TierStatus::Serving);
        let keys = turns_then_evict(&m);
        let k3 = l1_hit(&m, &keys[3]);
        let k1 = l1_hit(&m, &keys[1]);
        assert!(
            k3 != k1,
            "PerThread: exactly one of k3 ({k3}) and k1 ({k1}) must be left in L1"
        );
    }
}
