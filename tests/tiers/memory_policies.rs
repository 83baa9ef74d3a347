//! The memory tier really applies its eviction policy: on one shared sequence of puts and gets
//! into a tier of 3 entries, LRU, LFU and FIFO each evict a different key, and the eviction
//! callback receives exactly that key and its entry.

use std::sync::{Arc, Mutex};

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::memory::MemoryTier;
use pw_cache::{CacheEntry, CacheTierConfig, EvictionPolicy};

/// An entry under `key` whose `source` names the key too, to check the callback's entry.
fn entry(key: &str) -> CacheEntry {
    CacheEntry::new("http://192.0.2.1:8080", format!("source-of-{key}"), 3600)
        .unwrap()
        .with_key(key)
}

/// What the eviction callback received, in order.
type Evicted = Arc<Mutex<Vec<(String, CacheEntry)>>>;

/// A one-shard (exact policy) tier of 3 entries that records what it evicts.
fn tier(policy: EvictionPolicy) -> (MemoryTier, Evicted) {
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&evicted);
    let config = CacheTierConfig::bounded(3).with_policy(policy);
    let tier = MemoryTier::with_shards(&config, 1)
        .with_eviction_callback(move |key, entry| sink.lock().unwrap().push((key, entry)));
    (tier, evicted)
}

/// The shared sequence. After it, with `t` the order of operations:
///
/// | key | inserted | last used | accesses |
/// |---|---|---|---|
/// | a | t1 | t7 | 2 (put, get) |
/// | b | t2 | t5 | 3 (put, get, get) |
/// | c | t3 | t6 | 2 (put, get) |
///
/// - FIFO evicts `a`, the first in (its recent get does not matter);
/// - LRU evicts `b`, the least recently used (its many accesses do not matter);
/// - LFU evicts `c`: `a` and `c` tie with the fewest accesses, `c` is the less recently used.
fn shared_sequence(tier: &MemoryTier) {
    tier.put(&entry("a")).unwrap(); // t1
    tier.put(&entry("b")).unwrap(); // t2
    tier.put(&entry("c")).unwrap(); // t3
    assert!(tier.get("b").unwrap().is_some()); // t4
    assert!(tier.get("b").unwrap().is_some()); // t5
    assert!(tier.get("c").unwrap().is_some()); // t6
    assert!(tier.get("a").unwrap().is_some()); // t7
}

fn evicts_on_the_shared_sequence(policy: EvictionPolicy, expected: &str) {
    let (tier, evicted) = tier(policy);
    shared_sequence(&tier);
    assert_eq!(tier.evictions(), 0, "{policy:?}: nothing evicted below capacity");
    assert!(evicted.lock().unwrap().is_empty());

    tier.put(&entry("d")).unwrap();

    assert_eq!(tier.evictions(), 1, "{policy:?}");
    assert_eq!(tier.size().unwrap(), 3, "{policy:?}");
    assert!(!tier.contains(expected).unwrap(), "{policy:?} should evict {expected}");
    assert!(tier.contains("d").unwrap());
    let mut held = tier.keys().unwrap();
    held.sort();
    let mut expected_held: Vec<String> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|k| *k != expected)
        .map(String::from)
        .collect();
    expected_held.sort();
    assert_eq!(held, expected_held, "{policy:?}");

    let evicted = evicted.lock().unwrap();
    assert_eq!(evicted.len(), 1, "{policy:?}: one callback per eviction");
    let (key, entry) = &evicted[0];
    assert_eq!(key, expected, "{policy:?}: the callback gets the evicted key");
    assert_eq!(entry.key, *expected);
    assert_eq!(entry.source, format!("source-of-{expected}"), "and its entry");
}

#[test]
fn lru_evicts_the_least_recently_used_key() {
    evicts_on_the_shared_sequence(EvictionPolicy::Lru, "b");
}

#[test]
fn lfu_evicts_the_least_frequently_used_key() {
    evicts_on_the_shared_sequence(EvictionPolicy::Lfu, "c");
}

#[test]
fn fifo_evicts_the_first_inserted_key() {
    evicts_on_the_shared_sequence(EvictionPolicy::Fifo, "a");
}

#[test]
fn the_three_policies_disagree_on_the_shared_sequence() {
    let victims: Vec<String> = EvictionPolicy::ALL
        .iter()
        .map(|&policy| {
            let (tier, evicted) = tier(policy);
            shared_sequence(&tier);
            tier.put(&entry("d")).unwrap();
            let evicted = evicted.lock().unwrap();
            evicted[0].0.clone()
        })
        .collect();
    let mut distinct = victims.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "each policy evicts its own key: {victims:?}");
}

#[test]
fn a_second_eviction_follows_each_policy_too() {
    // Continuing after `d` (t8) with `e`: FIFO's next oldest is b; LRU's least recent is c
    // (t6); LFU's least frequent is d (1 access).
    for (policy, first, second) in [
        (EvictionPolicy::Fifo, "a", "b"),
        (EvictionPolicy::Lru, "b", "c"),
        (EvictionPolicy::Lfu, "c", "d"),
    ] {
        let (tier, evicted) = tier(policy);
        shared_sequence(&tier);
        tier.put(&entry("d")).unwrap();
        tier.put(&entry("e")).unwrap();
        let keys: Vec<String> = evicted.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [first, second], "{policy:?}: callback order is eviction order");
        assert_eq!(tier.evictions(), 2);
    }
}
