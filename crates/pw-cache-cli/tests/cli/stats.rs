//! `pw-cache stats` on copies of the fixtures counts what the manifest says: 200 entries in
//! each tier, the expired ones (the manifest's `expires_at` against now), the health statuses,
//! no corrupt entry with both keys; without a key, exactly the entries holding a credential under
//! it are corrupt (the manifest's `encrypted_with`). Looking changes nothing.

use crate::common;

use common::{Keys, TestCache, expires_at, has_credentials, health_counts, pw_cache, store_entries};
use pw_cache::OffsetDateTime;
use serde_json::{Value, json};

/// Entries of `store` expired at `now` (as the library says: `now >= expires_at`).
fn expired_at(store: &str, now: OffsetDateTime) -> u64 {
    store_entries(store).iter().filter(|e| now >= expires_at(e)).count() as u64
}

/// The keys of `store`'s entries with a credential encrypted with `key` (`current`/`previous`).
fn credentials_under(store: &str, key: &str) -> Vec<String> {
    let mut keys: Vec<String> = store_entries(store)
        .iter()
        .filter(|e| has_credentials(e) && e["encrypted_with"] == key)
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[test]
fn stats_on_the_fixtures_prints_the_manifests_counts() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        let before = OffsetDateTime::now_utc();
        let stats = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
            .expect_code(0)
            .json();
        let after = OffsetDateTime::now_utc();
        assert_eq!(stats["l2_backend"], backend);
        assert_eq!(
            stats["keys"],
            json!({"origin": "environment", "key_file": null, "previous": 1})
        );
        for (tier, store) in [("l2", cache.l2_store()), ("l3", "sqlite_l3")] {
            let t = &stats["tiers"][tier];
            assert_eq!(t["entries"], 200, "{backend} {tier}");
            let expired = t["expired"].as_u64().unwrap();
            assert!(
                (expired_at(store, before)..=expired_at(store, after)).contains(&expired),
                "{backend} {tier}: {expired}"
            );
            assert_eq!(expired, 40, "{backend} {tier}: the fixtures' 2024-2025 entries");
            assert_eq!(
                (&t["corrupt"], &t["corrupt_keys"]),
                (&json!(0), &json!([])),
                "{backend} {tier}"
            );
            assert_eq!(t["health"], json!(health_counts(store)), "{backend} {tier}");
            assert!(t["bytes_on_disk"].as_u64().unwrap() > 0, "{backend} {tier}");
        }
        assert_eq!(stats["totals"]["entries"], 400);
        assert!(
            stats["tiers"].get("l1").is_none(),
            "L1 is this process's memory: not shown"
        );

        // The table says the same.
        let run = pw_cache(cache.command("stats", &[]), Keys::Both).expect_code(0);
        let row = |tier: &str| -> Vec<String> {
            let line = run
                .stdout
                .lines()
                .find(|l| l.starts_with(tier))
                .unwrap_or_else(|| panic!("{}", run.stdout));
            line.split_whitespace().map(str::to_owned).collect()
        };
        for tier in ["l2", "l3"] {
            assert_eq!(row(tier)[1..4], ["200", "40", "0"], "{}", run.stdout);
        }
        assert!(
            run.stdout
                .contains("environment variable PROXYWHIRL_CACHE_ENCRYPTION_KEY, 1 previous key")
        );
    }
}

#[test]
fn without_a_key_the_entries_with_credentials_under_it_are_corrupt() {
    let cache = TestCache::fixtures("jsonl");
    let before = common::snapshot(&cache.l2);
    // The fixtures' previous-key entries hold no credential; their current-key ones 100.
    assert_eq!(credentials_under("jsonl_l2", "previous").len(), 0);
    assert_eq!(credentials_under("jsonl_l2", "current").len(), 100);
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
        .expect_code(0)
        .json();
    for tier in ["l2", "l3"] {
        assert_eq!(stats["tiers"][tier]["corrupt"], 0, "{tier} without the previous key");
    }
    // The previous key alone opens none of the stored credentials: the wrong key, refused
    // (exit 2) with a message naming where it came from, before anything is read.
    let run = pw_cache(cache.command("stats", &[]), Keys::PreviousOnly).expect_code(2);
    assert!(
        run.stderr.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY") && run.stderr.contains("does not open"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(common::snapshot(&cache.l2), before, "refused: nothing changed");

    // Entries written under a key the ring lacks, beside readable ones: exit 1, a line per
    // tier saying how many and the likely cause, and what `expired` counts.
    common::warm_under_previous_key(&cache);
    let run = pw_cache(cache.command("stats", &[]), Keys::CurrentOnly).expect_code(1);
    for tier in ["l2", "l3"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{tier}: ")) && l.contains("entries cannot be read")),
            "{tier}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(&format!(
                "{tier}: likely cause: damaged records, or credentials written under a key the ring lacks"
            )),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("expired counts the entries that could be read"),
        "{}",
        run.stdout
    );
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    let corrupt = stats["tiers"]["l2"]["corrupt"].as_u64().unwrap();
    assert!(corrupt >= 1, "{stats}");
    // Unreadable entries are still entries, and stay.
    assert_eq!(
        stats["tiers"]["l2"]["entries"].as_u64().unwrap(),
        stats["tiers"]["l3"]["entries"].as_u64().unwrap()
    );
    let again = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    assert_eq!(again["tiers"]["l2"]["corrupt"], corrupt, "looking removes nothing");
}

#[test]
fn looking_changes_nothing() {
    let cache = TestCache::fixtures("jsonl");
    let before = common::snapshot(&cache.l2);
    let first: Value = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    let second: Value = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    assert_eq!(common::snapshot(&cache.l2), before, "the shard files are only read");
    for tier in ["l2", "l3"] {
        for field in ["entries", "expired", "corrupt", "health"] {
            assert_eq!(
                first["tiers"][tier][field], second["tiers"][tier][field],
                "{tier}.{field}"
            );
        }
    }
    assert!(!cache.l2.join("pw-cache.key").exists(), "no key file is made");
}
