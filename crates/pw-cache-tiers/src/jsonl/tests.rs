//! Unit tests of the JSONL tier: the mechanics (append, compaction, rewrites, change
//! detection, eviction, expiry). Compatibility with proxywhirl's files, damaged input and
//! several processes are in the integration suite (`tests/compat/compat_jsonl.rs`,
//! `tests/damaged/jsonl_damaged.rs`, `tests/reliability/jsonl_processes.rs`).

use std::path::Path;

use pw_cache_crypto::FernetKey;
use pw_cache_model::Secret;
use time::Duration;
use time::macros::datetime;

use super::*;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

fn open(dir: &Path, ring: &Arc<KeyRing>) -> JsonlTier {
    JsonlTier::open(dir, &CacheTierConfig::unbounded(), Arc::clone(ring)).unwrap()
}

fn entry(i: u32) -> CacheEntry {
    let e = CacheEntry::new_at(
        format!("http://10.0.{}.{}:8080", i / 256, i % 256),
        "fetched",
        3600,
        datetime!(2026-11-20 23:00:00.25 UTC),
    )
    .unwrap();
    if i % 2 == 1 {
        e.with_credentials(
            Some(Secret::new(format!("user{i}"))),
            Some(Secret::new(format!("pw-{i}"))),
        )
    } else {
        e
    }
}

/// Keys `custom-N` whose md5 shard is `shard`.
fn keys_in_shard(shard: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("custom-{i}"))
        .filter(|k| shard_of(k) == shard)
        .take(n)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn shard_rule_is_md5_mod_16() {
    // md5("") = d41d8cd98f00b204e9800998ecf8427e, and 0x...7e % 16 == 14.
    assert_eq!(shard_of(""), 14);
    // From the fixtures' manifest: fx-custom-key-3 is in shard 11, fx-ключ-13-ü in shard 1.
    assert_eq!(shard_of("fx-custom-key-3"), 11);
    assert_eq!(shard_of("fx-ключ-13-ü"), 1);
    assert_eq!(shard_file_name(7), "shard_07.jsonl");
}

#[test]
fn round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let entries: Vec<_> = (0..40).map(entry).collect();
    for e in &entries {
        tier.put(e).unwrap();
    }
    for e in &entries {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e));
    }
    assert_eq!(tier.size().unwrap(), 40);
    let fresh = open(dir.path(), &ring);
    for e in &entries {
        assert_eq!(fresh.get(&e.key).unwrap().as_ref(), Some(e));
    }
    let mut keys = fresh.keys().unwrap();
    keys.sort();
    let mut want: Vec<_> = entries.iter().map(|e| e.key.clone()).collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(fresh.damage().is_clean());
    assert_eq!(fresh.get("nope").unwrap(), None);
    assert_eq!(fresh.tier_type(), CacheTierType::L2);
}

#[test]
fn an_update_appends_and_the_last_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let mut e = entry(1);
    tier.put(&e).unwrap();
    e.access_count = 7;
    e.password = Some(Secret::new(""));
    tier.put(&e).unwrap();
    let path = tier.shard_path(shard_of(&e.key));
    assert_eq!(lines(&path).len(), 2);
    assert_eq!(tier.dead_lines(), 1);
    assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&e));
    assert_eq!(open(dir.path(), &ring).get(&e.key).unwrap().as_ref(), Some(&e));
    assert_eq!(tier.compact().unwrap(), 1);
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&e));
}

#[test]
fn many_updates_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let mut e = entry(3);
    for n in 0..500 {
        e.access_count = n;
        tier.put(&e).unwrap();
        let written = lines(&tier.shard_path(shard_of(&e.key))).len() as u64;
        assert!(written <= MIN_DEAD_LINES + 1, "{written} lines after {n} updates");
    }
    assert_eq!(tier.get(&e.key).unwrap().unwrap().access_count, 499);
}

#[test]
fn delete_rewrites_the_shard_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let keys = keys_in_shard(5, 3);
    for k in &keys {
        tier.put(&entry(1).with_key(k)).unwrap();
    }
    tier.put(&entry(2).with_key(&keys[0])).unwrap();
    assert!(tier.delete(&keys[0]).unwrap());
    assert!(!tier.delete(&keys[0]).unwrap());
    let text = fs::read_to_string(tier.shard_path(5)).unwrap();
    assert!(!text.contains(&format!("\"{}\"", keys[0])), "{text}");
    assert_eq!(text.lines().count(), 2, "dead lines are dropped by the rewrite");
    assert!(!tier.shard_path(5).with_extension("jsonl.tmp").exists());
    let fresh = open(dir.path(), &ring);
    assert_eq!(fresh.get(&keys[0]).unwrap(), None);
    assert!(fresh.get(&keys[1]).unwrap().is_some());
    assert_eq!(fresh.size().unwrap(), 2);
}

#[test]
fn two_instances_see_each_others_writes_without_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let (a, b) = (open(dir.path(), &ring), open(dir.path(), &ring));
    let e = entry(5);
    a.put(&e).unwrap();
    assert_eq!(b.get(&e.key).unwrap().as_ref(), Some(&e), "appended tail");
    let mut e2 = e.clone();
    e2.failure_count = 4;
    b.put(&e2).unwrap();
    assert_eq!(a.get(&e.key).unwrap().as_ref(), Some(&e2));
    a.compact().unwrap();
    assert_eq!(b.get(&e.key).unwrap().as_ref(), Some(&e2), "replaced file");
    b.delete(&e.key).unwrap();
    assert!(!a.contains(&e.key).unwrap());
    a.put(&entry(6)).unwrap();
    assert_eq!(b.clear().unwrap(), 1);
    assert_eq!(a.size().unwrap(), 0);
    assert_eq!(a.get(&entry(6).key).unwrap(), None);
    a.put(&e).unwrap();
    assert_eq!(b.get(&e.key).unwrap().as_ref(), Some(&e), "recreated file");
}

#[test]
fn clear_removes_the_shard_files() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    for i in 0..20 {
        tier.put(&entry(i)).unwrap();
    }
    assert_eq!(tier.clear().unwrap(), 20);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(tier.size().unwrap(), 0);
    assert_eq!(open(dir.path(), &ring).size().unwrap(), 0);
}

#[test]
fn cleanup_uses_the_shared_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let (a, b) = (entry(1), entry(2));
    tier.put(&a).unwrap();
    tier.put(&b.clone().with_key("later")).unwrap();
    let mut later = b.with_key("later");
    later.set_ttl(7200).unwrap();
    tier.put(&later).unwrap();
    assert_eq!(
        tier.cleanup_expired(a.expires_at - Duration::microseconds(1)).unwrap(),
        0
    );
    assert_eq!(
        tier.cleanup_expired(a.expires_at).unwrap(),
        1,
        "now == expires_at is expired"
    );
    assert_eq!(tier.keys().unwrap(), vec!["later".to_owned()]);
    assert_eq!(open(dir.path(), &ring).keys().unwrap(), vec!["later".to_owned()]);
}

fn bounded(dir: &Path, ring: &Arc<KeyRing>, max: u64, policy: EvictionPolicy) -> JsonlTier {
    JsonlTier::open(
        dir,
        &CacheTierConfig::bounded(max).with_policy(policy),
        Arc::clone(ring),
    )
    .unwrap()
}

#[test]
fn a_health_mark_sees_other_processes_writes_and_is_no_use() {
    let ring = ring();
    let dir = tempfile::tempdir().unwrap();
    // Two instances on one directory: two processes' views of it.
    let (a, b) = (
        bounded(dir.path(), &ring, 2, EvictionPolicy::Lru),
        open(dir.path(), &ring),
    );
    let old = entry(1).with_key("m");
    a.put(&old).unwrap();
    assert_eq!(b.peek("m").unwrap().as_ref(), Some(&old));
    // `a` replaces the credentials after `b` read the entry: `b`'s mark, made under the shard's
    // lock (which first reads `a`'s line), keeps them; only the two fields change.
    let new = old.clone().with_credentials(None, Some(Secret::new("new-pw")));
    a.put(&new).unwrap();
    assert_eq!(
        b.mark_failure("m", None).unwrap(),
        FailureMark::Marked { failure_count: 1 }
    );
    assert_eq!(
        a.mark_failure("m", None).unwrap(),
        FailureMark::Marked { failure_count: 2 }
    );
    let mut want = new.clone();
    want.failure_count = 2;
    want.health_status = HealthStatus::Unhealthy;
    assert_eq!(a.peek("m").unwrap().as_ref(), Some(&want));
    assert_eq!(open(dir.path(), &ring).peek("m").unwrap().as_ref(), Some(&want));
    // A mark is not a use: "m", put first and never used since, is still the LRU victim.
    a.put(&entry(2).with_key("n")).unwrap();
    a.get("n").unwrap();
    a.mark_failure("m", None).unwrap();
    a.put(&entry(3).with_key("o")).unwrap();
    assert!(!a.contains("m").unwrap() && a.contains("n").unwrap());
    // At the threshold the key is removed (a rewrite): the next mark finds nothing.
    assert_eq!(
        b.mark_failure("n", Some(1)).unwrap(),
        FailureMark::Evicted { failure_count: 1 }
    );
    assert!(!a.contains("n").unwrap());
    assert_eq!(a.mark_failure("n", Some(1)).unwrap(), FailureMark::Absent);
}

#[test]
fn eviction_follows_the_policy_and_holds_the_bound() {
    let ring = ring();
    for (policy, want_evicted) in [
        (EvictionPolicy::Lru, "b"),
        (EvictionPolicy::Lfu, "c"),
        (EvictionPolicy::Fifo, "a"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tier = bounded(dir.path(), &ring, 3, policy);
        let mut stored = entry(0);
        stored.access_count = 0;
        // Inserted a, b, c; used last: b, then c, then a; hits: a 2, b 1, c 0.
        tier.put(&stored.clone().with_key("a")).unwrap();
        tier.put(&stored.clone().with_key("b")).unwrap();
        tier.get("b").unwrap();
        tier.put(&stored.clone().with_key("c")).unwrap();
        tier.get("a").unwrap();
        tier.get("a").unwrap();
        tier.put(&stored.clone().with_key("d")).unwrap();
        let mut keys = tier.keys().unwrap();
        keys.sort();
        let mut want: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .filter(|k| *k != want_evicted)
            .collect();
        want.sort();
        assert_eq!(keys, want, "{policy}");
        // Updating a held key evicts nothing.
        tier.put(&stored.clone().with_key("d")).unwrap();
        assert_eq!(tier.size().unwrap(), 3, "{policy}");
        for i in 0..20 {
            tier.put(&entry(i)).unwrap();
            assert!(tier.size().unwrap() <= 3);
        }
        assert_eq!(tier.evictions(), 21, "{policy}");
        assert_eq!(open(dir.path(), &ring).size().unwrap(), 3, "{policy}");
    }
}

#[test]
fn an_oversized_directory_is_brought_under_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let big = open(dir.path(), &ring);
    for i in 0..30 {
        big.put(&entry(i)).unwrap();
    }
    let small = bounded(dir.path(), &ring, 10, EvictionPolicy::Lru);
    assert_eq!(small.size().unwrap(), 30, "opening evicts nothing");
    small.put(&entry(100)).unwrap();
    assert_eq!(small.size().unwrap(), 10);
    assert!(small.contains(&entry(100).key).unwrap());
}

#[test]
fn a_cut_last_line_stays_one_damaged_line() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let e = entry(7);
    let path = dir.path().join(shard_file_name(shard_of(&e.key)));
    fs::write(&path, b"{\"key\": \"cut\", \"proxy_url\": \"http://").unwrap();
    let tier = open(dir.path(), &ring);
    assert_eq!(tier.damage().undecodable_lines, 1);
    tier.put(&e).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("}\n") && text.lines().count() == 2, "{text}");
    let fresh = open(dir.path(), &ring);
    assert_eq!(fresh.get(&e.key).unwrap().as_ref(), Some(&e));
    assert_eq!(fresh.damage().undecodable_lines, 1);
    assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&e));
}

#[test]
fn an_unterminated_complete_line_is_served_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let (a, b) = (
        entry(8),
        entry(10).with_key(keys_in_shard(shard_of(&entry(8).key), 1)[0].clone()),
    );
    let path = dir.path().join(shard_file_name(shard_of(&a.key)));
    fs::write(&path, encode_line(&a, &ring).unwrap()).unwrap();
    let reader = open(dir.path(), &ring);
    assert_eq!(reader.get(&a.key).unwrap().as_ref(), Some(&a));
    open(dir.path(), &ring).put(&b).unwrap();
    assert_eq!(reader.get(&a.key).unwrap().as_ref(), Some(&a));
    assert_eq!(reader.get(&b.key).unwrap().as_ref(), Some(&b));
    assert!(reader.damage().is_clean());
}

#[test]
fn misplaced_keys_are_served_then_moved_home() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let e = entry(9);
    let wrong = (shard_of(&e.key) + 1) % NUM_SHARDS;
    let wrong_path = dir.path().join(shard_file_name(wrong));
    fs::write(&wrong_path, format!("{}\n", encode_line(&e, &ring).unwrap())).unwrap();
    let tier = open(dir.path(), &ring);
    assert_eq!(tier.damage().misplaced_keys, 1);
    assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&e));
    assert!(tier.contains(&e.key).unwrap());
    assert_eq!(tier.size().unwrap(), 1);
    tier.put(&e).unwrap();
    assert_eq!(fs::read_to_string(&wrong_path).unwrap(), "");
    assert_eq!(tier.damage().misplaced_keys, 0);
    assert_eq!(tier.size().unwrap(), 1);
    assert!(tier.delete(&e.key).unwrap());
    assert_eq!(open(dir.path(), &ring).size().unwrap(), 0);
}

#[test]
fn an_invalid_entry_is_corrupt_not_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let path = dir.path().join(shard_file_name(shard_of("k")));
    fs::write(
        &path,
        "{\"key\": \"k\", \"proxy_url\": \"http://x:1\", \"fetch_time\": \"soon\"}\n",
    )
    .unwrap();
    let tier = open(dir.path(), &ring);
    let err = tier.get("k").unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    assert_eq!(tier.damage().invalid_entries, 1);
    assert!(tier.contains("k").unwrap());
    assert!(tier.delete("k").unwrap());
    assert!(tier.damage().is_clean());
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    let err = tier.put(&entry(1).with_key("")).unwrap_err();
    assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let err = JsonlTier::open(&file, &CacheTierConfig::default(), ring).unwrap_err();
    assert!(
        matches!(&err, TierError::Io { path, .. } if path == &file) && err.to_string().contains("a-file"),
        "{err}"
    );
}

#[test]
fn parallel_threads_on_one_tier() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = open(dir.path(), &ring);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let tier = &tier;
            s.spawn(move || {
                for i in 0..100 {
                    let e = entry(t * 1000 + i);
                    tier.put(&e).unwrap();
                    assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&e));
                }
            });
        }
    });
    assert_eq!(tier.size().unwrap(), 400);
    assert_eq!(open(dir.path(), &ring).size().unwrap(), 400);
}

#[test]
fn a_lock_won_on_a_replaced_file_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let keys = keys_in_shard(4, 3);
    let (old_entry, new_entry, put_entry) = (
        entry(1).with_key(&keys[0]),
        entry(2).with_key(&keys[1]),
        entry(3).with_key(&keys[2]),
    );
    let path = dir.path().join(shard_file_name(4));
    fs::write(&path, format!("{}\n", encode_line(&old_entry, &ring).unwrap())).unwrap();
    // The tier indexes the file and keeps it open.
    let tier = open(dir.path(), &ring);
    // Another "process" holds the old file's lock while a rewrite renames a new file over it.
    let old_file = fs::File::open(&path).unwrap();
    old_file.lock().unwrap();
    let replacement = dir.path().join("replacement");
    fs::write(&replacement, format!("{}\n", encode_line(&new_entry, &ring).unwrap())).unwrap();
    fs::rename(&replacement, &path).unwrap();
    std::thread::scope(|s| {
        // The put first waits for the lock of the file it has open (the old one)...
        let putter = s.spawn(|| tier.put(&put_entry));
        std::thread::sleep(std::time::Duration::from_millis(20));
        old_file.unlock().unwrap();
        putter.join().unwrap().unwrap();
    });
    // ...then sees that file is no longer the shard, and appends to the new one.
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&keys[1]) && text.contains(&keys[2]) && !text.contains(&keys[0]));
    assert_eq!(tier.get(&keys[0]).unwrap(), None);
    assert_eq!(tier.get(&keys[1]).unwrap().as_ref(), Some(&new_entry));
    assert_eq!(tier.get(&keys[2]).unwrap().as_ref(), Some(&put_entry));
}

#[test]
fn evictions_come_in_batches_that_amortize_rewrites() {
    let ring = ring();
    let dir = tempfile::tempdir().unwrap();
    let max = 128; // batch = 128 / 64 = 2 extra victims per evicting put
    let tier = bounded(dir.path(), &ring, max, EvictionPolicy::Fifo);
    for i in 0..max as u32 {
        tier.put(&entry(i)).unwrap();
    }
    assert_eq!((tier.size().unwrap(), tier.evictions()), (128, 0));
    // The first put beyond the bound evicts 1 + 2: the bound holds, with room for two more.
    tier.put(&entry(1000)).unwrap();
    assert_eq!((tier.size().unwrap(), tier.evictions()), (126, 3));
    tier.put(&entry(1001)).unwrap();
    tier.put(&entry(1002)).unwrap();
    assert_eq!(
        (tier.size().unwrap(), tier.evictions()),
        (128, 3),
        "no rewrite while there is room"
    );
    // FIFO: the oldest three went first.
    for i in 0..3 {
        assert!(!tier.contains(&entry(i).key).unwrap(), "entry {i}");
    }
    assert!(tier.contains(&entry(3).key).unwrap());
}

#[test]
fn peek_is_not_a_use() {
    let dir = tempfile::tempdir().unwrap();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::bounded(2), ring()).unwrap();
    let [a, b, c] = [entry(1), entry(2), entry(3)];
    tier.put(&a).unwrap();
    tier.put(&b).unwrap();
    assert_eq!(tier.peek(&a.key).unwrap().unwrap().password, a.password);
    tier.put(&c).unwrap();
    // `a` was only peeked at: it is still the least recently used.
    assert!(!tier.contains(&a.key).unwrap());
    assert!(tier.contains(&b.key).unwrap());
}

#[test]
fn probe_leaves_no_file_and_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let r = ring();
    let tier = open(dir.path(), &r);
    tier.put(&entry(1)).unwrap();
    let listing = || {
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let shard = tier.shard_path(shard_of(&entry(1).key));
    let bytes = fs::read(&shard).unwrap();
    tier.probe().unwrap();
    assert_eq!(listing(), before);
    assert_eq!(fs::read(&shard).unwrap(), bytes);
    // A directory that is gone fails the probe, as a tier failure.
    fs::remove_dir_all(dir.path()).unwrap();
    let err = tier.probe().unwrap_err();
    assert!(err.is_tier_failure(), "{err}");
}
