//! Two OS processes putting 500 entries each into one JSONL directory lose nothing (proxywhirl
//! 0.3.3 kept 783-839 of 1000), and each sees the other's entries without reopening its tier:
//! once with every key in one shard (the worst contention), once spread over all shards. Then
//! each process updates its 500 entries three times and deletes every tenth, so shards are
//! rewritten and renamed over (compaction, deletes) while the other process appends: no update
//! and no delete is lost either.
//!
//! The test binary runs itself as the two children (`--exact <test>` with [`CHILD_VAR`] set).

use std::path::Path;
use std::time::{Duration, Instant};

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::jsonl::{JsonlTier, MIN_DEAD_LINES, NUM_SHARDS, shard_file_name, shard_of};
use pw_cache::{CacheEntry, CacheTierConfig, OffsetDateTime, Secret};
use pw_cache_tests::child_process::{PATIENCE, spawn_self, wait_for};
use pw_cache_tests::fixture_ring;

const CHILD_VAR: &str = "PW_CACHE_TEST_JSONL_CHILD";
const PER_PROCESS: usize = 500;
/// The shard every key goes to in the one-shard run.
const HOT_SHARD: usize = 11;

/// The keys process `proc` puts: all in [`HOT_SHARD`], or spread over the shards.
fn keys(proc: usize, one_shard: bool) -> Vec<String> {
    (0..)
        .map(|i| format!("p{proc}-{i}"))
        .filter(|k| !one_shard || shard_of(k) == HOT_SHARD)
        .take(PER_PROCESS)
        .collect()
}

/// The entry under `key`, the `n`-th of process `proc` (credentials on odd `n`), as first put
/// (`version` 0) or updated (`version` 1).
fn entry(proc: usize, n: usize, key: &str, version: u64) -> CacheEntry {
    let at = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap();
    let url = format!("http://10.{proc}.{}.{}:8080", n / 256, n % 256);
    let mut e = CacheEntry::new_at(url, format!("proc{proc}"), 3600, at)
        .unwrap()
        .with_key(key);
    e.access_count = version;
    if n % 2 == 1 {
        e.with_credentials(
            Some(Secret::new(format!("u{proc}-{n}"))),
            Some(Secret::new(format!("p-{n}-é"))),
        )
    } else {
        e
    }
}

fn expected(proc: usize, one_shard: bool, version: u64) -> Vec<CacheEntry> {
    keys(proc, one_shard)
        .iter()
        .enumerate()
        .map(|(n, k)| entry(proc, n, k, version))
        .collect()
}

/// How many times each process updates all its entries after the first put.
const UPDATES: u64 = 3;

/// Whether the `n`-th entry of a process is deleted at the end (every tenth).
fn deleted(n: usize) -> bool {
    n.is_multiple_of(10)
}

/// In a child: wait for the start signal, put this process's entries, then (same tier, not
/// reopened) wait until the sibling's entries appear and check every one of them. Then, both
/// having checked, update every entry [`UPDATES`] times and delete every tenth.
fn child(spec: &str) {
    let [dir, proc, mode] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("bad child spec {spec}");
    };
    let (dir, proc, one_shard) = (Path::new(dir), proc.parse::<usize>().unwrap(), mode == "one");
    let tier = JsonlTier::open(dir, &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let start = Instant::now();
    wait_for(dir, "go", start);
    for e in expected(proc, one_shard, 0) {
        tier.put(&e).unwrap();
    }
    while tier.size().unwrap() < 2 * PER_PROCESS {
        assert!(start.elapsed() < PATIENCE, "the sibling's entries never showed up");
        std::thread::sleep(Duration::from_millis(5));
    }
    for e in expected(1 - proc, one_shard, 0)
        .iter()
        .chain(&expected(proc, one_shard, 0))
    {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e), "{}", e.key);
    }
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    std::fs::write(dir.join(format!("checked-{proc}")), "").unwrap();
    wait_for(dir, &format!("checked-{}", 1 - proc), start);

    // Updates pile up dead lines: shards get compacted while the sibling appends and deletes.
    for version in 1..=UPDATES {
        for e in expected(proc, one_shard, version) {
            tier.put(&e).unwrap();
        }
    }
    for (n, e) in expected(proc, one_shard, UPDATES).iter().enumerate() {
        if deleted(n) {
            assert!(tier.delete(&e.key).unwrap(), "{}", e.key);
        }
    }
    for (n, e) in expected(proc, one_shard, UPDATES).iter().enumerate() {
        let want = (!deleted(n)).then_some(e);
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), want, "{}", e.key);
    }
}

fn run(test_name: &str, one_shard: bool) {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2)
        .map(|proc| {
            let mode = if one_shard { "one" } else { "spread" };
            spawn_self(
                module_path!(),
                test_name,
                CHILD_VAR,
                format!("{}|{proc}|{mode}", dir.path().display()),
            )
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
    for marker in ["go", "checked-0", "checked-1"] {
        std::fs::remove_file(dir.path().join(marker)).unwrap();
    }

    // A third process (this one) reads every entry left, in its last version, nothing damaged.
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let left = 2 * (PER_PROCESS - PER_PROCESS / 10);
    assert_eq!(tier.size().unwrap(), left);
    for proc in 0..2 {
        for (n, e) in expected(proc, one_shard, UPDATES).iter().enumerate() {
            let want = (!deleted(n)).then_some(e);
            assert_eq!(tier.get(&e.key).unwrap().as_ref(), want, "{}", e.key);
        }
    }
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    let mut lines = 0;
    for shard in 0..NUM_SHARDS {
        let text = std::fs::read_to_string(dir.path().join(shard_file_name(shard))).unwrap_or_default();
        lines += text.lines().count() as u64;
        if one_shard && shard != HOT_SHARD {
            assert!(text.is_empty(), "shard {shard}");
        }
    }
    // Every line is live or a dead line the tier knows of; rewrites kept those bounded.
    assert_eq!(lines, left as u64 + tier.dead_lines());
    assert!(
        tier.dead_lines() <= left as u64 + MIN_DEAD_LINES,
        "{} dead lines",
        tier.dead_lines()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".jsonl"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_processes_into_one_shard_lose_nothing() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("two_processes_into_one_shard_lose_nothing", true);
}

#[test]
fn two_processes_over_all_shards_lose_nothing() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("two_processes_over_all_shards_lose_nothing", false);
}
