//! `cargo xtask cleanup` removes the expired entries of the fixtures (the manifest's
//! `expires_at` before now) from every tier, reports how many, and leaves the live ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

use common::{Keys, TestCache, expires_at, store_entries, xtask};
use pw_cache::OffsetDateTime;

#[test]
fn cleanup_removes_the_expired_entries_and_reports_counts() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        let now = OffsetDateTime::now_utc();
        let expired = |store: &str| store_entries(store).iter().filter(|e| expires_at(e) < now).count() as u64;
        let (l2, l3) = (expired(cache.l2_store()), expired("sqlite_l3"));
        assert_eq!((l2, l3), (40, 40), "the fixtures' 2024-2025 entries");

        let run = xtask(cache.command("cleanup", &[]), Keys::Both).expect_code(0);
        assert_eq!(
            (run.count("l2"), run.count("l3"), run.count("total")),
            (l2, l3, l2 + l3),
            "{backend}:\n{}",
            run.stdout
        );

        let stats = xtask(cache.command("stats", &["--json"]), Keys::Both)
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

        let again = xtask(cache.command("cleanup", &[]), Keys::Both).expect_code(0);
        assert_eq!(again.count("total"), 0, "{backend}: nothing left to remove");
    }
}
