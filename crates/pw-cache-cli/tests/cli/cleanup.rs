//! `pw-cache cleanup` removes the expired entries of the fixtures (the manifest's
//! `expires_at` before now) from every tier, reports how many, and leaves the live ones.

use crate::common;

use common::{Keys, TestCache, expires_at, pw_cache, store_entries};
use pw_cache::OffsetDateTime;

#[test]
fn cleanup_removes_the_expired_entries_and_reports_counts() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        let now = OffsetDateTime::now_utc();
        let expired = |store: &str| store_entries(store).iter().filter(|e| expires_at(e) < now).count() as u64;
        let (l2, l3) = (expired(cache.l2_store()), expired("sqlite_l3"));
        assert_eq!((l2, l3), (40, 40), "the fixtures' 2024-2025 entries");

        let run = pw_cache(cache.command("cleanup", &[]), Keys::Both).expect_code(0);
        assert_eq!(
            (run.count("l2"), run.count("l3"), run.count("total")),
            (l2, l3, l2 + l3),
            "{backend}:\n{}",
            run.stdout
        );

        let stats = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
            .expect_code(0)
            .json();
        for (tier, removed) in [("l2", l2), ("l3", l3)] {
            assert_eq!(stats["tiers"][tier]["entries"], 200 - removed, "{backend} {tier}");
            assert_eq!(stats["tiers"][tier]["expired"], 0, "{backend} {tier}");
        }
        // Every live entry is still there.
        let live: Vec<String> = store_entries("sqlite_l3")
            .iter()
            .filter(|e| expires_at(e) >= now)
            .map(|e| e["key"].as_str().unwrap().to_owned())
            .collect();
        let left = cache.entries(&common::both_keys());
        for key in &live {
            assert!(left.contains_key(&("l3".to_owned(), key.clone())), "{backend} {key}");
        }

        let again = pw_cache(cache.command("cleanup", &[]), Keys::Both).expect_code(0);
        assert_eq!(again.count("total"), 0, "{backend}: nothing left to remove");
    }
}

/// The lines of `block` (the lines after the one equal to `title`, up to an empty line) as
/// `label count` pairs.
fn block(stdout: &str, title: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn unreadable_entries_stay_until_the_operator_removes_them() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        // Entries written under a key the ring will lack, beside the fixtures' readable ones.
        common::warm_under_previous_key(&cache);
        let corrupt = |code: i32| {
            let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
                .expect_code(code)
                .json();
            (
                stats["tiers"]["l2"]["corrupt"].as_u64().unwrap(),
                stats["tiers"]["l3"]["corrupt"].as_u64().unwrap(),
                stats["totals"]["entries"].as_u64().unwrap(),
            )
        };
        let (l2, l3, entries) = corrupt(1);
        assert!(l2 > 0 && l3 > 0, "{backend}: {l2} {l3}");

        // A cleanup removes expired entries only, and says what it left.
        let run = pw_cache(cache.command("cleanup", &[]), Keys::CurrentOnly).expect_code(0);
        assert!(
            run.stdout
                .contains(&format!("l2: {l2} unreadable entries left in place")),
            "{backend}: {}",
            run.stdout
        );
        let (after_l2, after_l3, after_entries) = corrupt(1);
        assert_eq!(
            (after_l2, after_l3),
            (l2, l3),
            "{backend}: a cleanup removes nothing unreadable"
        );

        // The operator's removal: says what and why, removes exactly those.
        let run = pw_cache(cache.command("cleanup", &["--remove-unreadable"]), Keys::CurrentOnly).expect_code(0);
        assert!(
            run.stdout.contains("removing the entries these keys cannot read"),
            "{backend}: {}",
            run.stdout
        );
        let removed = block(&run.stdout, "unreadable entries removed");
        assert_eq!(
            removed,
            [
                ("l2".to_owned(), l2),
                ("l3".to_owned(), l3),
                ("total".to_owned(), l2 + l3)
            ],
            "{backend}: {}",
            run.stdout
        );
        let (left_l2, left_l3, left_entries) = corrupt(0);
        assert_eq!((left_l2, left_l3), (0, 0), "{backend}");
        assert_eq!(left_entries, after_entries - l2 - l3, "{backend}");
        assert!(after_entries <= entries);
    }
}
