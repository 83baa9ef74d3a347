//! Four threads sharing one manager lose no update and never panic, on both L2 backends, with
//! an L1 so small that every few operations evict, demote and promote:
//! - each thread doing a seeded random mix of put, get, delete and health invalidation on its
//!   own keys finds, afterwards, exactly what its own model of those keys says (presence,
//!   URL, source, credentials, failure count, health, access count) through the manager, in
//!   L2 and L3 after close, and through a new manager;
//! - threads invalidating the same keys get each failure count exactly once, and the final
//!   failure count is the number of calls, in every tier;
//! - threads reading the same hot keys get each access count exactly once; after a flush L2 and
//!   L3 hold the number of hits, and the hit and miss counters add up to the number of gets;
//! - two managers sharing one SQLite L3 file, marking the same proxies at once, count every
//!   failure and evict each proxy exactly once at the threshold (issue 23).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier};

use pw_cache::{
    CacheEntry, CacheManager, CacheTierType, HealthInvalidation, HealthStatus, KeyRing, L2BackendType, Secret,
};
use pw_cache_tests::managers::{config, open, open_tier, test_ring};

const THREADS: usize = 4;

/// splitmix64: a small seeded generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn manager(dir: &Path, backend: L2BackendType, l1_max: u64, ring: &Arc<KeyRing>) -> CacheManager {
    open(config(dir, backend, l1_max).build().unwrap(), ring, None)
}

fn manager_with(dir: &Path, backend: L2BackendType, l1_max: u64, ring: &Arc<KeyRing>, threshold: u32) -> CacheManager {
    open(
        config(dir, backend, l1_max)
            .failure_threshold(threshold)
            .build()
            .unwrap(),
        ring,
        None,
    )
}

/// What a thread knows must be stored under one of its keys.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    proxy_url: String,
    source: String,
    username: Option<String>,
    password: Option<String>,
    failure_count: u64,
    health_status: HealthStatus,
    access_count: u64,
}

impl Expected {
    fn of(e: &CacheEntry) -> Self {
        Self {
            proxy_url: e.proxy_url.clone(),
            source: e.source.clone(),
            username: e.username.as_ref().map(|s| s.expose_secret().to_owned()),
            password: e.password.as_ref().map(|s| s.expose_secret().to_owned()),
            failure_count: e.failure_count,
            health_status: e.health_status,
            access_count: e.access_count,
        }
    }
}

fn key_of(thread: usize, k: u64) -> String {
    format!("t{thread}-k{k}")
}

/// The `version`-th entry put under `key` by `thread`: its URL, source, credentials and
/// starting failure count vary with the version.
fn versioned_entry(thread: usize, key: &str, version: u64, rng: &mut Rng) -> CacheEntry {
    let url = format!(
        "http://10.{thread}.{}.{}:{}",
        version / 256,
        version % 256,
        8000 + version
    );
    let mut e = CacheEntry::new(url, format!("thread{thread}-v{version}"), 3600)
        .unwrap()
        .with_key(key);
    if rng.below(2) == 0 {
        e = e.with_credentials(
            Some(Secret::new(format!("user-{key}-{version}"))),
            Some(Secret::new(format!("pw-{key}-{version}-é"))),
        );
    }
    e.failure_count = rng.below(2);
    e
}

/// One thread's run: `ops` random operations on its `keys` keys; returns its model.
fn mixed_run(m: &CacheManager, thread: usize, keys: u64, ops: usize, seed: u64) -> BTreeMap<String, Option<Expected>> {
    let mut rng = Rng(seed);
    let mut model: BTreeMap<String, Option<Expected>> = (0..keys).map(|k| (key_of(thread, k), None)).collect();
    let threshold = u64::from(m.config().failure_threshold());
    for (step, version) in (0..ops).zip(1u64..) {
        let key = key_of(thread, rng.below(keys));
        let expected = model.get_mut(&key).unwrap();
        let at = format!("thread {thread} step {step} key {key}");
        match rng.below(20) {
            0..=6 => {
                let e = versioned_entry(thread, &key, version, &mut rng);
                let stored = m.put(&e).unwrap();
                assert!(stored.l1 && stored.l2 && stored.l3, "{at}: {stored:?}");
                *expected = Some(Expected::of(&e));
            }
            7..=13 => {
                let got = m.get(&key).map(|e| Expected::of(&e));
                if let Some(x) = expected.as_mut() {
                    x.access_count += 1;
                }
                assert_eq!(got, *expected, "{at}: get");
            }
            14..=15 => {
                assert_eq!(m.delete(&key), expected.is_some(), "{at}: delete");
                *expected = None;
            }
            _ => {
                let outcome = m.invalidate_by_health(&key);
                let want = match expected.as_mut() {
                    None => HealthInvalidation::NotFound,
                    Some(x) => {
                        x.failure_count += 1;
                        x.health_status = HealthStatus::Unhealthy;
                        if x.failure_count >= threshold {
                            let failure_count = x.failure_count;
                            *expected = None;
                            HealthInvalidation::Evicted { failure_count }
                        } else {
                            HealthInvalidation::Marked {
                                failure_count: x.failure_count,
                            }
                        }
                    }
                };
                assert_eq!(outcome, want, "{at}: invalidate_by_health");
            }
        }
    }
    model
}

/// Checks every key of `model` through `m` (a get: one more access).
fn check_through(m: &CacheManager, model: &mut BTreeMap<String, Option<Expected>>, context: &str) {
    for (key, expected) in model.iter_mut() {
        if let Some(x) = expected.as_mut() {
            x.access_count += 1;
        }
        assert_eq!(m.get(key).map(|e| Expected::of(&e)), *expected, "{context}: {key}");
    }
}

fn mixed_operations_on_own_keys_match_each_threads_model(backend: L2BackendType) {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let m = manager(dir.path(), backend, 4, &ring);
    let barrier = Barrier::new(THREADS);
    let mut models: Vec<BTreeMap<String, Option<Expected>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, barrier) = (&m, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    mixed_run(m, t, 10, 150, 0x5EED_0000 + t as u64)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = m.get_statistics();
    assert!(
        stats.l1_stats.evictions_lru > 0 && stats.promotions > 0,
        "{backend}: L1 never evicted or nothing was promoted: {stats:?}"
    );
    for model in &mut models {
        check_through(&m, model, &format!("{backend}: same manager"));
    }
    m.close().unwrap();
    drop(m);

    // Both disk tiers hold the same, use data included.
    for tier in [CacheTierType::L2, CacheTierType::L3] {
        let direct = open_tier(dir.path(), tier, backend, &ring);
        for model in &models {
            for (key, expected) in model {
                let held = direct.peek(key).unwrap().map(|e| Expected::of(&e));
                assert_eq!(held, *expected, "{backend}: {tier} after close: {key}");
            }
        }
    }
    let m = manager(dir.path(), backend, 4, &ring);
    for model in &mut models {
        check_through(&m, model, &format!("{backend}: new manager"));
    }
}

#[test]
fn mixed_operations_on_own_keys_match_each_threads_model_jsonl() {
    mixed_operations_on_own_keys_match_each_threads_model(L2BackendType::Jsonl);
}

#[test]
fn mixed_operations_on_own_keys_match_each_threads_model_sqlite() {
    mixed_operations_on_own_keys_match_each_threads_model(L2BackendType::Sqlite);
}

/// What one thread saw: (key index, count returned) per call.
type Seen = Vec<(usize, u64)>;

/// Per key, every count the threads saw, sorted.
fn per_key<'a>(keys: usize, seen: impl Iterator<Item = &'a Seen>) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = vec![Vec::new(); keys];
    for thread in seen {
        for &(k, n) in thread {
            out[k].push(n);
        }
    }
    for counts in &mut out {
        counts.sort_unstable();
    }
    out
}

fn concurrent_health_invalidations_of_shared_keys_lose_no_failure(backend: L2BackendType) {
    const KEYS: usize = 5;
    const ROUNDS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    // Invalidation on, with a threshold never reached.
    let m = manager_with(dir.path(), backend, 2, &ring, 1_000_000);
    let entries: Vec<CacheEntry> = (0..KEYS)
        .map(|i| {
            CacheEntry::new(format!("http://10.70.0.{i}:8080"), "shared", 3600)
                .unwrap()
                .with_credentials(Some(Secret::new("u")), Some(Secret::new(format!("p{i}"))))
        })
        .collect();
    for e in &entries {
        m.put(e).unwrap();
    }
    let barrier = Barrier::new(THREADS);
    // Per thread: (key index, failure count returned) and (key index, access count seen).
    let results: Vec<(Seen, Seen)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, barrier, entries) = (&m, &barrier, &entries);
                s.spawn(move || {
                    barrier.wait();
                    let (mut failures, mut accesses) = (Vec::new(), Vec::new());
                    for i in 0..ROUNDS {
                        let k = (i + t) % KEYS;
                        match m.invalidate_by_health(&entries[k].key) {
                            HealthInvalidation::Marked { failure_count } => failures.push((k, failure_count)),
                            other => panic!("thread {t}: {other:?}"),
                        }
                        // A read of another key: promotions into the full L1 evict.
                        let k = (i * 3 + t + 1) % KEYS;
                        let got = m.get(&entries[k].key).unwrap();
                        assert_eq!(got.password, entries[k].password);
                        accesses.push((k, got.access_count));
                    }
                    (failures, accesses)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures = per_key(KEYS, results.iter().map(|r| &r.0));
    let accesses = per_key(KEYS, results.iter().map(|r| &r.1));
    for k in 0..KEYS {
        let calls = failures[k].len() as u64;
        assert_eq!(
            failures[k],
            (1..=calls).collect::<Vec<_>>(),
            "{backend}: key {k}: each failure count once"
        );
        let hits = accesses[k].len() as u64;
        assert_eq!(
            accesses[k],
            (1..=hits).collect::<Vec<_>>(),
            "{backend}: key {k}: each access count once"
        );
    }
    let want = |k: usize| (failures[k].len() as u64, HealthStatus::Unhealthy);
    for (k, e) in entries.iter().enumerate() {
        let got = m.get(&e.key).unwrap();
        assert_eq!((got.failure_count, got.health_status), want(k), "{backend}: key {k}");
    }
    m.close().unwrap();
    drop(m);
    for tier in [CacheTierType::L2, CacheTierType::L3] {
        let direct = open_tier(dir.path(), tier, backend, &ring);
        for (k, e) in entries.iter().enumerate() {
            let held = direct.peek(&e.key).unwrap().unwrap();
            assert_eq!(
                (held.failure_count, held.health_status),
                want(k),
                "{backend}: {tier}: key {k}"
            );
        }
    }
    let m = manager_with(dir.path(), backend, 2, &ring, 1_000_000);
    for (k, e) in entries.iter().enumerate() {
        let got = m.get(&e.key).unwrap();
        assert_eq!(
            (got.failure_count, got.health_status),
            want(k),
            "{backend}: new manager: key {k}"
        );
    }
}

#[test]
fn concurrent_health_invalidations_of_shared_keys_lose_no_failure_jsonl() {
    concurrent_health_invalidations_of_shared_keys_lose_no_failure(L2BackendType::Jsonl);
}

#[test]
fn concurrent_health_invalidations_of_shared_keys_lose_no_failure_sqlite() {
    concurrent_health_invalidations_of_shared_keys_lose_no_failure(L2BackendType::Sqlite);
}

fn concurrent_reads_of_hot_keys_count_every_hit(backend: L2BackendType) {
    const HOT: usize = 3;
    const GETS: usize = 250;
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    // L1 holds one entry: reading three keys in turn promotes and demotes all the time.
    let m = manager(dir.path(), backend, 1, &ring);
    let entries: Vec<CacheEntry> = (0..HOT)
        .map(|i| CacheEntry::new(format!("http://10.71.0.{i}:8080"), "hot", 3600).unwrap())
        .collect();
    for e in &entries {
        m.put(e).unwrap();
    }
    // Key HOT is never stored: its gets are misses in every tier.
    let keys: Vec<String> = entries
        .iter()
        .map(|e| e.key.clone())
        .chain([String::from("never-stored")])
        .collect();
    let before = m.get_statistics();
    let barrier = Barrier::new(THREADS);
    let seen: Vec<Vec<(usize, Option<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, barrier, keys) = (&m, &barrier, &keys);
                s.spawn(move || {
                    barrier.wait();
                    (0..GETS)
                        .map(|i| {
                            let k = (i + t) % keys.len();
                            (k, m.get(&keys[k]).map(|e| e.access_count))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut counts: Vec<Vec<u64>> = vec![Vec::new(); keys.len()];
    let mut found = 0u64;
    let mut missing = 0u64;
    for &(k, got) in seen.iter().flatten() {
        match got {
            Some(n) => {
                assert!(k < HOT, "{backend}: a key never stored was found");
                found += 1;
                counts[k].push(n);
            }
            None => {
                assert_eq!(k, HOT, "{backend}: a hot key was not found");
                missing += 1;
            }
        }
    }
    for (k, c) in counts.iter_mut().enumerate().take(HOT) {
        c.sort_unstable();
        let hits = c.len() as u64;
        assert_eq!(
            *c,
            (1..=hits).collect::<Vec<_>>(),
            "{backend}: key {k}: each access count once"
        );
    }

    // Hits and misses add up, tier by tier.
    let after = m.get_statistics();
    let d = |a: u64, b: u64| a - b;
    let (l1, l2, l3) = (&after.l1_stats, &after.l2_stats, &after.l3_stats);
    let (b1, b2, b3) = (&before.l1_stats, &before.l2_stats, &before.l3_stats);
    let gets = (THREADS * GETS) as u64;
    assert_eq!(
        d(l1.hits, b1.hits) + d(l1.misses, b1.misses),
        gets,
        "{backend}: L1 sees every get"
    );
    assert_eq!(
        d(l2.hits, b2.hits) + d(l2.misses, b2.misses),
        d(l1.misses, b1.misses),
        "{backend}: L2 sees L1's misses"
    );
    assert_eq!(
        d(l3.hits, b3.hits) + d(l3.misses, b3.misses),
        d(l2.misses, b2.misses),
        "{backend}: L3 sees L2's misses"
    );
    assert_eq!(
        d(l1.hits, b1.hits) + d(l2.hits, b2.hits) + d(l3.hits, b3.hits),
        found,
        "{backend}: hits"
    );
    assert_eq!(d(l3.misses, b3.misses), missing, "{backend}: misses");
    assert!(after.promotions > before.promotions, "{backend}: nothing was promoted");

    // After a flush both disk tiers hold every hit.
    m.flush().unwrap();
    for tier in [CacheTierType::L2, CacheTierType::L3] {
        let direct = open_tier(dir.path(), tier, backend, &ring);
        for (k, e) in entries.iter().enumerate() {
            let held = direct.peek(&e.key).unwrap().unwrap();
            assert_eq!(held.access_count, counts[k].len() as u64, "{backend}: {tier}: key {k}");
        }
    }
    m.close().unwrap();
    drop(m);
    let m = manager(dir.path(), backend, 1, &ring);
    for (k, e) in entries.iter().enumerate() {
        let got = m.get(&e.key).unwrap();
        assert_eq!(
            got.access_count,
            counts[k].len() as u64 + 1,
            "{backend}: new manager: key {k}"
        );
    }
}

#[test]
fn concurrent_reads_of_hot_keys_count_every_hit_jsonl() {
    concurrent_reads_of_hot_keys_count_every_hit(L2BackendType::Jsonl);
}

#[test]
fn concurrent_reads_of_hot_keys_count_every_hit_sqlite() {
    concurrent_reads_of_hot_keys_count_every_hit(L2BackendType::Sqlite);
}

/// `clear` while other threads read: a lookup that read an entry from L2 just before the clear
/// must not put it into L1 after the clear emptied L1 (clear and lookups exclude each other),
/// so after every clear the entry is gone for good. Found by the fleet tests (the same race
/// through a remote clear).
#[test]
fn clear_racing_lookups_leaves_no_copy_behind() {
    let ring = test_ring();
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(manager(dir.path(), backend, 2, &ring));
        for round in 0..30u32 {
            let e = CacheEntry::new(format!("http://10.6.0.{round}:80"), "race", 600).unwrap();
            m.put(&e).unwrap();
            // Push it out of L1, so that lookups read it from L2 and promote it.
            for filler in 0..3 {
                let f = CacheEntry::new(format!("http://10.6.1.{filler}:80"), "race", 600).unwrap();
                m.put(&f).unwrap();
            }
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (m, key, stop) = (Arc::clone(&m), e.key.clone(), Arc::clone(&stop));
                    std::thread::spawn(move || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let _ = m.get(&key);
                        }
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
            m.clear();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                r.join().unwrap();
            }
            assert!(m.get(&e.key).is_none(), "{backend:?} round {round}: served after clear");
        }
    }
}

/// Two managers (two processes' worth: each its own L1 and L2) sharing one SQLite L3 file, two
/// threads each, report one failure each of the same 200 proxies at once, at threshold 3: the
/// L3's mark is one write transaction, so every failure counts (per proxy the four results are
/// the counts 1, 2, 3 once each and one "not found") and each proxy is evicted exactly once.
#[test]
fn two_managers_sharing_one_sqlite_l3_count_every_failure_and_evict_once() {
    const PROXIES: usize = 200;
    const MANAGERS: usize = 2;
    const PER_MANAGER: usize = 2;
    let ring = test_ring();
    let shared = tempfile::tempdir().unwrap();
    let l3 = shared.path().join("l3").join("cache.db");
    let dirs: Vec<_> = (0..MANAGERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let managers: Vec<CacheManager> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let backend = [L2BackendType::Jsonl, L2BackendType::Sqlite][i % 2];
            let cfg = config(dir.path(), backend, 1024)
                .l3_database_path(&l3)
                .failure_threshold(3)
                .build()
                .unwrap();
            open(cfg, &ring, None)
        })
        .collect();
    let proxies: Vec<CacheEntry> = (0..PROXIES)
        .map(|i| {
            CacheEntry::new(format!("http://10.71.{}.{}:8080", i / 256, i % 256), "shared-l3", 3600)
                .unwrap()
                .with_credentials(Some(Secret::new("u")), Some(Secret::new(format!("p{i}"))))
        })
        .collect();
    for e in &proxies {
        managers[0].put(e).unwrap();
    }
    // Each manager marks from its own cached copy (L1), the case that lost failures.
    for m in &managers {
        for e in &proxies {
            assert!(m.get(&e.key).is_some());
        }
    }
    let barrier = Barrier::new(MANAGERS * PER_MANAGER);
    let results: Vec<Vec<(usize, HealthInvalidation)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..MANAGERS * PER_MANAGER)
            .map(|t| {
                let (m, barrier, proxies) = (&managers[t / PER_MANAGER], &barrier, &proxies);
                s.spawn(move || {
                    barrier.wait();
                    (0..PROXIES)
                        .map(|i| {
                            let k = (i + t * PROXIES / (MANAGERS * PER_MANAGER)) % PROXIES;
                            (k, m.invalidate_by_health(&proxies[k].key))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (per_proxy, wrong) = pw_cache_tests::marks::four_marks_per_proxy(&results, PROXIES);
    let evicted_once = per_proxy
        .iter()
        .filter(|o| {
            o.iter()
                .filter(|o| matches!(o, HealthInvalidation::Evicted { .. }))
                .count()
                == 1
        })
        .count();
    eprintln!(
        "two managers x two threads, one shared SQLite L3: {} of {PROXIES} proxies with a failure lost or \
         counted twice; {evicted_once} evicted exactly once",
        wrong.len()
    );
    if let Some(&k) = wrong.first() {
        panic!(
            "proxy {k}: {:?}, not one 'not found' and the counts 1, 2, 3 (evicted)",
            per_proxy[k]
        );
    }
    let evictions: u64 = managers
        .iter()
        .map(|m| m.get_statistics().l3_stats.evictions_health)
        .sum();
    assert_eq!(evictions, PROXIES as u64, "one L3 health eviction per proxy");
    for m in managers {
        m.close().unwrap();
    }
    let direct = pw_cache::SqliteL3Tier::open(&l3, &pw_cache::CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    assert_eq!(pw_cache::CacheTier::size(&direct).unwrap(), 0, "none left in the L3");
}
