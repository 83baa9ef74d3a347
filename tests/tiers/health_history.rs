//! Health history in the L3 tier: the fixture's rows read back as Python wrote them; foreign
//! keys are enforced (deleting, clearing, expiring or evicting an entry deletes its history,
//! updating it does not); orphans left by proxywhirl are reported and removable; the API
//! records, lists (newest first, limited) and prunes checks, and refuses bad input without
//! counting it against the tier.

use std::time::Duration;

use pw_cache::model::timestamp::from_unix_seconds;
use pw_cache::tiers::CacheTier;
use pw_cache::tiers::sqlite_l3::{HealthCheck, SqliteL3Tier};
use pw_cache::{CacheEntry, CacheTierConfig, HealthStatus, OffsetDateTime, TierError};
use pw_cache_tests::{fixture_ring, manifest, proxywhirl_fixtures};
use rusqlite::Connection;
use serde_json::Value;

/// A copy of the fixtures' L3 database, opened.
fn fixture_tier(config: &CacheTierConfig) -> (tempfile::TempDir, SqliteL3Tier) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxywhirl.db");
    std::fs::copy(proxywhirl_fixtures().join("l3/proxywhirl.db"), &path).unwrap();
    let tier = SqliteL3Tier::open(&path, config, fixture_ring()).unwrap();
    (dir, tier)
}

fn history_rows(tier: &SqliteL3Tier, key: Option<&str>) -> i64 {
    let conn = Connection::open(tier.path()).unwrap();
    match key {
        Some(key) => conn.query_row("SELECT COUNT(*) FROM health_history WHERE proxy_key = ?1", [key], |r| {
            r.get(0)
        }),
        None => conn.query_row("SELECT COUNT(*) FROM health_history", [], |r| r.get(0)),
    }
    .unwrap()
}

fn manifest_history() -> Vec<Value> {
    manifest()["stores"]["sqlite_l3"]["health_history"]
        .as_array()
        .unwrap()
        .clone()
}

/// Keys of the fixture's history rows whose entry exists, with how many rows each has.
fn keys_with_history() -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = Vec::new();
    for row in manifest_history() {
        let key = row["proxy_key"].as_str().unwrap();
        if key.starts_with("fx-orphan") {
            continue;
        }
        match counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key.to_owned(), 1)),
        }
    }
    counts
}

#[test]
fn the_fixtures_history_reads_back_newest_first() {
    let (_dir, tier) = fixture_tier(&CacheTierConfig::unbounded());
    let rows = manifest_history();
    assert_eq!(rows.len(), 68);
    let conn = Connection::open(tier.path()).unwrap();
    for (key, n) in keys_with_history() {
        let records = tier.health_history(&key, 100).unwrap();
        assert_eq!(records.len() as i64, n, "{key}");
        assert!(
            records
                .windows(2)
                .all(|w| w[0].check.check_time >= w[1].check.check_time),
            "{key}: newest first"
        );
        for record in records {
            let want = rows.iter().find(|r| r["id"].as_i64() == Some(record.id)).unwrap();
            let check = &record.check;
            assert_eq!(check.proxy_key, key);
            // Python's reading of the stored REAL. (The manifest's JSON number is the same
            // value, but serde_json may parse it one ulp off: compare within an ulp.)
            let raw: f64 = conn
                .query_row(
                    "SELECT check_time FROM health_history WHERE id = ?1",
                    [record.id],
                    |r| r.get(0),
                )
                .unwrap();
            let manifest_time = want["check_time"].as_f64().unwrap();
            assert!(
                (raw - manifest_time).abs() <= raw.abs() * f64::EPSILON,
                "{key} #{}",
                record.id
            );
            assert_eq!(
                check.check_time,
                from_unix_seconds(raw).unwrap(),
                "{key} #{}",
                record.id
            );
            assert_eq!(check.status.as_str(), want["status"].as_str().unwrap());
            assert_eq!(check.response_time_ms, want["response_time_ms"].as_f64());
            assert_eq!(check.error_message.as_deref(), want["error_message"].as_str());
            assert_eq!(check.check_url, want["check_url"].as_str().unwrap());
        }
    }
    // The limit keeps the newest.
    let (key, _) = keys_with_history().into_iter().find(|(_, n)| *n == 4).unwrap();
    let all = tier.health_history(&key, 4).unwrap();
    assert_eq!(tier.health_history(&key, 2).unwrap(), all[..2]);
    assert!(tier.health_history(&key, 0).unwrap().is_empty());
    assert!(tier.health_history("no-such-key", 10).unwrap().is_empty());
}

#[test]
fn orphans_left_by_proxywhirl_are_reported_and_removable() {
    let (_dir, tier) = fixture_tier(&CacheTierConfig::unbounded());
    assert_eq!(tier.open_report().orphaned_history, 3);
    assert_eq!(tier.orphaned_history().unwrap(), 3);
    assert_eq!(tier.remove_orphaned_history().unwrap(), 3);
    assert_eq!(tier.orphaned_history().unwrap(), 0);
    assert_eq!(history_rows(&tier, None), 65);
    // Everything else is still there.
    assert_eq!(tier.size().unwrap(), 200);
}

#[test]
fn deleting_clearing_expiring_or_evicting_an_entry_deletes_its_history() {
    let (_dir, tier) = fixture_tier(&CacheTierConfig::unbounded());
    let keys = keys_with_history();
    let (deleted, n) = &keys[0];
    assert!(*n > 0);
    assert!(tier.delete(deleted).unwrap());
    assert_eq!(
        history_rows(&tier, Some(deleted)),
        0,
        "proxywhirl would leave {n} orphans"
    );

    // Expiry: make one entry with history expire.
    let (expiring, _) = &keys[1];
    let mut e = tier.get(expiring).unwrap().unwrap();
    let now = OffsetDateTime::now_utc();
    e.expires_at = now - Duration::from_secs(1);
    tier.put(&e).unwrap();
    assert!(history_rows(&tier, Some(expiring)) > 0, "an update keeps the history");
    assert!(tier.cleanup_expired(now).unwrap() >= 1);
    assert_eq!(history_rows(&tier, Some(expiring)), 0);

    // Clear: only the orphans (of no entry) stay.
    tier.clear().unwrap();
    assert_eq!(history_rows(&tier, None), 3);
}

#[test]
fn eviction_deletes_the_history_of_the_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheTierConfig::bounded(2).with_policy(pw_cache::EvictionPolicy::Fifo);
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &config, fixture_ring()).unwrap();
    let entries: Vec<CacheEntry> = (0..3)
        .map(|i| CacheEntry::new(format!("http://10.4.0.{i}:80"), "user", 3600).unwrap())
        .collect();
    tier.put(&entries[0]).unwrap();
    tier.put(&entries[1]).unwrap();
    for e in &entries[..2] {
        tier.record_health_check(&check(&e.key, 0)).unwrap();
    }
    tier.put(&entries[2]).unwrap();
    assert!(!tier.contains(&entries[0].key).unwrap());
    assert_eq!(history_rows(&tier, Some(&entries[0].key)), 0);
    assert_eq!(history_rows(&tier, Some(&entries[1].key)), 1);
}

fn check(key: &str, second: u64) -> HealthCheck {
    HealthCheck {
        proxy_key: key.to_owned(),
        check_time: OffsetDateTime::from_unix_timestamp(1_795_215_600).unwrap()
            + Duration::from_secs(second)
            + Duration::from_micros(250_001),
        status: if second.is_multiple_of(2) {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        },
        response_time_ms: (!second.is_multiple_of(3)).then_some(12.5 * second as f64),
        error_message: (second % 2 == 1).then(|| format!("timeout #{second}")),
        check_url: "http://httpbin.org/ip".to_owned(),
    }
}

#[test]
fn record_list_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let e = CacheEntry::new("http://10.5.0.1:80", "user", 3600).unwrap();
    tier.put(&e).unwrap();
    // Recorded out of order: listing sorts by check time.
    let mut ids = Vec::new();
    for second in [3, 0, 4, 1, 2] {
        ids.push((second, tier.record_health_check(&check(&e.key, second)).unwrap()));
    }
    assert!(ids.windows(2).all(|w| w[0].1 < w[1].1), "ids grow: {ids:?}");
    let newest = tier.health_history(&e.key, 3).unwrap();
    let seconds: Vec<u64> = newest
        .iter()
        .map(|r| ids.iter().find(|(_, id)| *id == r.id).unwrap().0)
        .collect();
    assert_eq!(seconds, [4, 3, 2]);
    assert_eq!(newest[0].check, check(&e.key, 4), "every field round-trips");

    // An update of the entry keeps its history.
    tier.put(&e).unwrap();
    assert_eq!(tier.health_history(&e.key, 10).unwrap().len(), 5);

    // Prune strictly older than check 2.
    assert_eq!(tier.prune_health_history(check(&e.key, 2).check_time).unwrap(), 2);
    let left: Vec<HealthCheck> = tier
        .health_history(&e.key, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.check)
        .collect();
    assert_eq!(left, [check(&e.key, 4), check(&e.key, 3), check(&e.key, 2)]);
}

#[test]
fn bad_checks_are_refused_without_failing_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let e = CacheEntry::new("http://10.6.0.1:80", "user", 3600).unwrap();
    tier.put(&e).unwrap();
    let mut bad = vec![check("no-such-entry", 1)];
    for ms in [f64::NAN, f64::INFINITY, -1.0] {
        bad.push(HealthCheck {
            response_time_ms: Some(ms),
            ..check(&e.key, 1)
        });
    }
    for _ in 0..2 {
        for c in &bad {
            let err = tier.record_health_check(c).unwrap_err();
            assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
            assert!(!err.is_tier_failure(), "{err}");
            assert!(err.to_string().contains(&c.proxy_key), "{err}");
        }
    }
    assert_eq!(tier.health().consecutive_failures(), 0);
    assert_eq!(history_rows(&tier, None), 0, "nothing stored");
    assert_eq!(tier.health_history(&e.key, 10).unwrap(), []);
}

#[test]
fn a_damaged_history_row_names_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let e = CacheEntry::new("http://10.7.0.1:80", "user", 3600).unwrap();
    tier.put(&e).unwrap();
    let id = tier.record_health_check(&check(&e.key, 1)).unwrap();
    Connection::open(tier.path())
        .unwrap()
        .execute("UPDATE health_history SET status = 'fine' WHERE id = ?1", [id])
        .unwrap();
    let err = tier.health_history(&e.key, 10).unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    assert!(err.to_string().contains(&format!("row {id}")), "{err}");
}

/// A check with a text field over its limit is refused on write (named by field and length,
/// nothing stored); a stored row with a longer field (written by another program) is reported
/// by its id and length, not loaded.
#[test]
fn history_fields_over_their_limits_are_refused_on_write_and_reported_on_read() {
    use pw_cache::model::limits::{MAX_KEY_BYTES, MAX_LAST_HEALTH_ERROR_BYTES, MAX_PROXY_URL_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let e = CacheEntry::new("http://10.8.0.1:80", "user", 3600).unwrap();
    tier.put(&e).unwrap();
    let bad = [
        (
            "error_message",
            HealthCheck {
                error_message: Some("e".repeat(MAX_LAST_HEALTH_ERROR_BYTES + 1)),
                ..check(&e.key, 1)
            },
        ),
        (
            "check_url",
            HealthCheck {
                check_url: "u".repeat(MAX_PROXY_URL_BYTES + 1),
                ..check(&e.key, 1)
            },
        ),
        ("proxy_key", check(&"k".repeat(MAX_KEY_BYTES + 1), 1)),
    ];
    for (field, c) in &bad {
        let err = tier.record_health_check(c).unwrap_err();
        assert!(
            matches!(err, TierError::InvalidEntry { .. }) && !err.is_tier_failure(),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{field} is ")) && msg.contains("more than the limit"),
            "{msg}"
        );
        assert!(
            !msg.contains(&"k".repeat(MAX_KEY_BYTES)),
            "the over-long key is not repeated whole"
        );
    }
    assert_eq!(history_rows(&tier, None), 0, "nothing stored");

    let id = tier.record_health_check(&check(&e.key, 1)).unwrap();
    Connection::open(tier.path())
        .unwrap()
        .execute(
            "UPDATE health_history SET error_message = hex(zeroblob(4000000)) WHERE id = ?1",
            [id],
        )
        .unwrap();
    let err = tier.health_history(&e.key, 10).unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("row {id}")) && msg.contains("error_message is 8000000 bytes long"),
        "{msg}"
    );
    assert_eq!(history_rows(&tier, None), 1, "the row is kept");
}
