//! The behaviour every L3 backend must have, written once over a factory and run on each:
//! `SqliteL3Tier` (a temporary database) and `RedisL3Tier` (a `redis-server` of the test's own
//! on 127.0.0.1). Every entry here expires in 2120, so Redis's own expiry never interferes; what
//! only Redis does is in `tests/tiers/redis_tier.rs`.

use std::sync::Arc;
use std::time::Duration;

use pw_cache::model::timestamp::{from_unix_seconds, to_unix_seconds};
use pw_cache::tiers::health_history::{HealthCheck, HealthHistory};
use pw_cache::tiers::redis_l3::{RedisL3Options, RedisL3Tier};
use pw_cache::{
    AccessRecord, CacheEntry, CacheTierConfig, EvictionPolicy, HealthDetail, HealthStatus, OffsetDateTime, Secret,
    SqliteL3Tier, TierError,
};
use pw_cache_tests::managers::test_ring;
use pw_cache_tests::redis_server::RedisServer;
use time::macros::datetime;

/// A tier to test, how to read the stamps it keeps beside an entry, and what keeps its storage
/// alive (dropped after the tier).
struct Fixture {
    tier: Box<dyn HealthHistory>,
    /// `(created_at, updated_at)` of the entry under a key, as stored.
    stamps: Stamps,
    _storage: Box<dyn std::any::Any>,
}

type Stamps = Box<dyn Fn(&str) -> (f64, f64)>;

type Factory = fn(&CacheTierConfig) -> Fixture;

fn sqlite_tier(config: &CacheTierConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").join("proxywhirl.db");
    let tier = SqliteL3Tier::open(&path, config, test_ring()).unwrap();
    Fixture {
        tier: Box::new(tier),
        stamps: Box::new(move |key| {
            rusqlite::Connection::open(&path)
                .unwrap()
                .query_row(
                    "SELECT created_at, updated_at FROM cache_entries WHERE key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        }),
        _storage: Box::new(dir),
    }
}

fn redis_tier(config: &CacheTierConfig) -> Fixture {
    let server = RedisServer::start();
    let options = RedisL3Options::new(Secret::new(server.url())).with_namespace("behaviour");
    let tier = RedisL3Tier::open(&options, config, test_ring()).unwrap();
    let prefix = tier.key_prefix().to_owned();
    let server = Arc::new(server);
    let reader = Arc::clone(&server);
    Fixture {
        tier: Box::new(tier),
        stamps: Box::new(move |key| {
            let (created, updated): (String, String) = ::redis::cmd("HMGET")
                .arg(format!("{prefix}e:{key}"))
                .arg("created_at")
                .arg("updated_at")
                .query(&mut reader.connection())
                .unwrap();
            (created.parse().unwrap(), updated.parse().unwrap())
        }),
        _storage: Box::new(server),
    }
}

/// Each behaviour below, once per backend: `sqlite::<name>` and `redis::<name>`.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::sqlite_tier);
                }
            )*
        }
        mod redis {
            $(
                #[test]
                fn $name() {
                    super::$name(super::redis_tier);
                }
            )*
        }
    };
}

behaviours!(
    every_field_round_trips,
    an_update_keeps_created_at_and_moves_updated_at,
    delete_contains_keys_size_and_clear,
    cleanup_uses_the_shared_expiry_boundary,
    fifty_puts_into_ten_leave_ten_under_every_policy,
    lru_counts_get_hits,
    lru_ties_go_in_insertion_order,
    lfu_evicts_the_least_used_then_the_least_recent,
    fifo_evicts_in_insertion_order_and_an_update_keeps_its_place,
    a_put_at_the_bound_evicts_a_batch,
    peek_is_not_a_hit,
    hits_are_written_on_flush_and_unbounded_tiers_note_none,
    a_put_drops_the_pending_hits_of_its_key,
    record_accesses_skips_stale_records,
    health_detail_reads_the_eight_fields,
    health_history_lists_newest_first_and_limited,
    health_history_refuses_bad_input_without_counting_it,
    health_history_prunes_old_checks_of_every_proxy,
    health_history_goes_with_its_entry,
    probe_succeeds_and_changes_nothing,
    replays_remove_only_what_was_not_written_since,
    rotation_rewrites_the_credentials_and_nothing_else,
);

use pw_cache_tests::l3_entries::{T0, TTL, entry};

/// Every field set to something not default; credentials (an empty one too); timestamps in
/// other offsets than UTC; a key with characters a key-value store might trip on.
fn full_entry() -> CacheEntry {
    let at = datetime!(2026-11-20 18:00:00.654321 -05:00);
    let mut e = CacheEntry::new_at("http://[2001:db8::1]:3128", "источник", 7200 + TTL, at)
        .unwrap()
        .with_key("k:{ns} with spaces/é")
        .with_credentials(Some(Secret::new("")), Some(Secret::new("pässwörd")));
    e.last_accessed = datetime!(2026-11-21 05:30:00.000001 +05:30);
    e.access_count = 17;
    e.health_status = HealthStatus::Degraded;
    e.failure_count = 2;
    e.evicted_from_l1 = true;
    e.last_health_check = Some(datetime!(2026-11-20 23:10:00.5 UTC));
    e.consecutive_health_failures = 3;
    e.consecutive_health_successes = 4;
    e.recovery_attempt = 5;
    e.next_check_time = Some(datetime!(2026-11-20 23:11:00 UTC));
    e.last_health_error = Some("timeout after 5.0s".to_owned());
    e.total_health_checks = 6;
    e.total_health_check_failures = 7;
    e
}

/// `entry` as an L3 gives it back: times through their float encoding (to the microsecond).
fn as_stored(entry: &CacheEntry) -> CacheEntry {
    let through = |t: OffsetDateTime| from_unix_seconds(to_unix_seconds(t)).unwrap();
    let mut e = entry.clone();
    e.fetch_time = through(e.fetch_time);
    e.last_accessed = through(e.last_accessed);
    e.expires_at = through(e.expires_at);
    e.last_health_check = e.last_health_check.map(through);
    e.next_check_time = e.next_check_time.map(through);
    e
}

fn sorted_keys(fx: &Fixture) -> Vec<String> {
    let mut keys = fx.tier.keys().unwrap();
    keys.sort();
    keys
}

fn key_list(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("k{i:03}")).collect()
}

fn every_field_round_trips(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let full = full_entry();
    fx.tier.put(&full).unwrap();
    let back = fx.tier.get(&full.key).unwrap().unwrap();
    assert_eq!(back, as_stored(&full));
    assert_eq!(back.fetch_time.offset(), time::UtcOffset::UTC, "read back in UTC");
    assert_eq!(
        back.username.as_ref().unwrap().expose_secret(),
        "",
        "an empty credential is kept"
    );
    assert_eq!(back.password.as_ref().unwrap().expose_secret(), "pässwörd");
    // Every optional field absent.
    let bare = entry(1);
    fx.tier.put(&bare).unwrap();
    let back = fx.tier.get("k001").unwrap().unwrap();
    assert_eq!(back, bare);
    assert!(back.username.is_none() && back.password.is_none() && back.last_health_error.is_none());
    // Only a password.
    let half = entry(2).with_credentials(None, Some(Secret::new("hunter2")));
    fx.tier.put(&half).unwrap();
    assert_eq!(fx.tier.peek("k002").unwrap().unwrap(), half);
    assert_eq!(fx.tier.size().unwrap(), 3);
}

fn an_update_keeps_created_at_and_moves_updated_at(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let mut e = entry(0);
    fx.tier.put(&e).unwrap();
    let (created, updated) = (fx.stamps)("k000");
    assert_eq!(created, updated, "a new entry: both stamps are the put's time");
    std::thread::sleep(Duration::from_millis(20));
    e.health_status = HealthStatus::Unhealthy;
    e.failure_count = 1;
    fx.tier.put(&e).unwrap();
    let (created_again, updated_again) = (fx.stamps)("k000");
    assert_eq!(created_again, created, "created_at is kept");
    assert!(updated_again > updated, "updated_at moves");
    assert_eq!(fx.tier.get("k000").unwrap().unwrap(), e);
}

fn delete_contains_keys_size_and_clear(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    for i in 0..3 {
        fx.tier.put(&entry(i)).unwrap();
    }
    assert!(fx.tier.contains("k001").unwrap());
    assert!(!fx.tier.contains("k999").unwrap());
    assert_eq!(fx.tier.size().unwrap(), 3);
    assert_eq!(sorted_keys(&fx), key_list(0..3));
    assert!(fx.tier.delete("k001").unwrap());
    assert!(!fx.tier.delete("k001").unwrap(), "gone already");
    assert!(!fx.tier.contains("k001").unwrap());
    assert_eq!(fx.tier.get("k001").unwrap(), None);
    assert_eq!(fx.tier.size().unwrap(), 2);
    assert_eq!(sorted_keys(&fx), ["k000", "k002"]);
    assert_eq!(fx.tier.clear().unwrap(), 2);
    assert_eq!(fx.tier.size().unwrap(), 0);
    assert!(fx.tier.keys().unwrap().is_empty());
    assert_eq!(fx.tier.get("k000").unwrap(), None);
    assert_eq!(fx.tier.clear().unwrap(), 0);
    // Usable after a clear.
    fx.tier.put(&entry(5)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k005"]);
}

fn cleanup_uses_the_shared_expiry_boundary(open: Factory) {
    let now = datetime!(2100-01-01 00:00:00.123456 UTC);
    let fx = open(&CacheTierConfig::unbounded());
    for (i, expires) in [
        (0, now - time::Duration::microseconds(1)),
        (1, now),
        (2, now + time::Duration::microseconds(1)),
    ] {
        let mut e = entry(i);
        e.expires_at = expires;
        fx.tier.put(&e).unwrap();
    }
    assert_eq!(fx.tier.cleanup_expired(now - time::Duration::seconds(1)).unwrap(), 0);
    assert_eq!(
        fx.tier.cleanup_expired(now).unwrap(),
        2,
        "expired from now >= expires_at on"
    );
    assert_eq!(sorted_keys(&fx), ["k002"]);
    assert_eq!(fx.tier.size().unwrap(), 1);
}

fn fifty_puts_into_ten_leave_ten_under_every_policy(open: Factory) {
    for policy in [EvictionPolicy::Lru, EvictionPolicy::Lfu, EvictionPolicy::Fifo] {
        let fx = open(&CacheTierConfig::bounded(10).with_policy(policy));
        for i in 0..50 {
            fx.tier.put(&entry(i)).unwrap();
            assert!(fx.tier.size().unwrap() <= 10, "{policy:?} after {i}");
        }
        // Older use, fewer uses (all 0, then older use) and first in all pick the oldest.
        assert_eq!(sorted_keys(&fx), key_list(40..50), "{policy:?}");
        assert_eq!(fx.tier.evictions(), 40, "{policy:?}");
    }
}

fn lru_counts_get_hits(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(4));
    for i in 0..4 {
        fx.tier.put(&entry(i)).unwrap();
    }
    assert!(fx.tier.get("k000").unwrap().is_some());
    fx.tier.put(&entry(4)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k002", "k003", "k004"]);
}

fn lru_ties_go_in_insertion_order(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(4));
    // The same last use for all: the first inserted goes first, whatever its key.
    for i in [3, 1, 2, 0] {
        let mut e = entry(i);
        e.last_accessed = T0;
        fx.tier.put(&e).unwrap();
    }
    // An update keeps the entry's place.
    let mut again = entry(3);
    again.last_accessed = T0;
    again.failure_count = 1;
    fx.tier.put(&again).unwrap();
    let mut e = entry(7);
    e.last_accessed = T0 + time::Duration::days(1);
    fx.tier.put(&e).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k001", "k002", "k007"]);
    fx.tier.put(&entry(8)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k002", "k007", "k008"]);
}

fn lfu_evicts_the_least_used_then_the_least_recent(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(4).with_policy(EvictionPolicy::Lfu));
    for (i, count) in [(0, 5), (1, 0), (2, 3), (3, 0)] {
        let mut e = entry(i);
        e.access_count = count;
        fx.tier.put(&e).unwrap();
    }
    // k001 and k003 have no use; k001's is older.
    fx.tier.put(&entry(4)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k002", "k003", "k004"]);
    // Two hits lift k003 above k004 (0 uses).
    fx.tier.get("k003").unwrap();
    fx.tier.get("k003").unwrap();
    fx.tier.put(&entry(5)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k002", "k003", "k005"]);
    // Same uses and same last use: insertion order.
    let fx = open(&CacheTierConfig::bounded(3).with_policy(EvictionPolicy::Lfu));
    for i in [2, 0, 1] {
        let mut e = entry(i);
        e.last_accessed = T0;
        fx.tier.put(&e).unwrap();
    }
    fx.tier.put(&entry(9)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k001", "k009"]);
}

fn fifo_evicts_in_insertion_order_and_an_update_keeps_its_place(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(3).with_policy(EvictionPolicy::Fifo));
    for i in 0..3 {
        fx.tier.put(&entry(i)).unwrap();
    }
    let mut updated = entry(0);
    updated.last_accessed = T0 + time::Duration::days(30);
    updated.access_count = 9;
    fx.tier.put(&updated).unwrap();
    fx.tier.get("k000").unwrap();
    fx.tier.put(&entry(3)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k001", "k002", "k003"]);
}

fn a_put_at_the_bound_evicts_a_batch(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(128));
    for i in 0..128 {
        fx.tier.put(&entry(i)).unwrap();
    }
    assert_eq!((fx.tier.size().unwrap(), fx.tier.evictions()), (128, 0));
    fx.tier.put(&entry(128)).unwrap();
    // One for the new entry, 128 / 64 more.
    assert_eq!((fx.tier.size().unwrap(), fx.tier.evictions()), (126, 3));
    assert_eq!(sorted_keys(&fx)[..2], ["k003", "k004"]);
    // An update of a held key needs no room.
    fx.tier.put(&entry(128)).unwrap();
    assert_eq!(fx.tier.evictions(), 3);
}

fn peek_is_not_a_hit(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(4));
    for i in 0..4 {
        fx.tier.put(&entry(i)).unwrap();
    }
    assert_eq!(fx.tier.peek("k000").unwrap().unwrap().key, "k000");
    fx.tier.put(&entry(4)).unwrap();
    // k000 was only peeked at: still the least recently used.
    assert_eq!(sorted_keys(&fx), key_list(1..5));
}

fn hits_are_written_on_flush_and_unbounded_tiers_note_none(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(10_000));
    let first = entry(0);
    fx.tier.put(&first).unwrap();
    // A hit returns the entry as stored and is noted, not written yet.
    assert_eq!(fx.tier.get("k000").unwrap().unwrap(), first);
    assert_eq!(fx.tier.peek("k000").unwrap().unwrap(), first);
    fx.tier.flush().unwrap();
    let seen = fx.tier.peek("k000").unwrap().unwrap();
    assert_eq!(seen.access_count, 1);
    assert!(seen.last_accessed > first.last_accessed, "last_accessed moved to now");
    // Pending hits are written by close.
    fx.tier.get("k000").unwrap().unwrap();
    fx.tier.close().unwrap();
    drop(fx.tier);

    let fx = open(&CacheTierConfig::unbounded());
    fx.tier.put(&first).unwrap();
    fx.tier.get("k000").unwrap().unwrap();
    fx.tier.flush().unwrap();
    assert_eq!(
        fx.tier.peek("k000").unwrap().unwrap(),
        first,
        "an unbounded tier notes no hit"
    );
}

fn a_put_drops_the_pending_hits_of_its_key(open: Factory) {
    let fx = open(&CacheTierConfig::bounded(100).with_policy(EvictionPolicy::Lfu));
    fx.tier.put(&entry(0)).unwrap();
    for _ in 0..5 {
        fx.tier.get("k000").unwrap().unwrap();
    }
    let mut seen = entry(0);
    seen.access_count = 5;
    fx.tier.put(&seen).unwrap();
    fx.tier.flush().unwrap();
    assert_eq!(fx.tier.get("k000").unwrap().unwrap().access_count, 5);
}

fn record_accesses_skips_stale_records(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    for i in 0..3 {
        fx.tier.put(&entry(i)).unwrap();
    }
    let later = T0 + time::Duration::seconds(10);
    let records = [
        AccessRecord {
            key: "k000".to_owned(),
            access_count: 5,
            last_accessed: later,
            evicted_from_l1: true,
        },
        // Older than what k001 holds (last used at T0 + 1 s): ignored.
        AccessRecord {
            key: "k001".to_owned(),
            access_count: 9,
            last_accessed: T0,
            evicted_from_l1: true,
        },
        // As recent as what k002 holds: applied; `false` never clears the flag.
        AccessRecord {
            key: "k002".to_owned(),
            access_count: 2,
            last_accessed: T0 + time::Duration::seconds(2),
            evicted_from_l1: false,
        },
        AccessRecord {
            key: "nowhere".to_owned(),
            access_count: 1,
            last_accessed: later,
            evicted_from_l1: false,
        },
    ];
    assert_eq!(fx.tier.record_accesses(&records).unwrap(), 2);
    let k0 = fx.tier.peek("k000").unwrap().unwrap();
    assert_eq!(
        (k0.access_count, k0.last_accessed, k0.evicted_from_l1),
        (5, later, true)
    );
    assert_eq!(
        fx.tier.peek("k001").unwrap().unwrap(),
        entry(1),
        "a stale record changes nothing"
    );
    let k2 = fx.tier.peek("k002").unwrap().unwrap();
    assert_eq!((k2.access_count, k2.evicted_from_l1), (2, false));
    assert!(!fx.tier.contains("nowhere").unwrap(), "a record stores no entry");
    assert_eq!(fx.tier.record_accesses(&[]).unwrap(), 0);
    // The recorded use orders evictions.
    let fx = open(&CacheTierConfig::bounded(2));
    fx.tier.put(&entry(0)).unwrap();
    fx.tier.put(&entry(1)).unwrap();
    fx.tier.record_accesses(&records[..1]).unwrap();
    fx.tier.put(&entry(2)).unwrap();
    assert_eq!(sorted_keys(&fx), ["k000", "k002"]);
}

fn health_detail_reads_the_eight_fields(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let full = full_entry();
    fx.tier.put(&full).unwrap();
    fx.tier.put(&entry(1)).unwrap();
    assert_eq!(
        fx.tier.health_detail(&full.key).unwrap(),
        Some(HealthDetail::of(&as_stored(&full)))
    );
    assert_eq!(fx.tier.health_detail("k001").unwrap(), Some(HealthDetail::default()));
    assert_eq!(fx.tier.health_detail("k999").unwrap(), None);
    assert!(fx.tier.keeps_health_detail());
}

fn check(key: &str, at: OffsetDateTime, status: HealthStatus) -> HealthCheck {
    HealthCheck {
        proxy_key: key.to_owned(),
        check_time: at,
        status,
        response_time_ms: Some(12.5),
        error_message: None,
        check_url: "https://example.invalid/ip".to_owned(),
    }
}

fn health_history_lists_newest_first_and_limited(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    fx.tier.put(&entry(0)).unwrap();
    let t = |s: i64| datetime!(2026-11-20 12:00:00.000001 UTC) + time::Duration::seconds(s);
    let mut failed = check("k000", t(1), HealthStatus::Unhealthy);
    failed.response_time_ms = None;
    failed.error_message = Some("connect timeout: ünïcode".to_owned());
    let mut odd = check("k000", t(3), HealthStatus::Healthy);
    odd.response_time_ms = Some(0.1 + 0.2);
    let checks = [
        check("k000", t(2), HealthStatus::Healthy),
        failed,
        odd,
        check("k000", t(3), HealthStatus::Degraded),
    ];
    let ids: Vec<i64> = checks.iter().map(|c| fx.tier.record_health_check(c).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let history = fx.tier.health_history("k000", 10).unwrap();
    // By check time, then id, newest first.
    let order: Vec<i64> = history.iter().map(|r| r.id).collect();
    assert_eq!(order, [ids[3], ids[2], ids[0], ids[1]]);
    for record in &history {
        let i = ids.iter().position(|id| *id == record.id).unwrap();
        assert_eq!(record.check, checks[i], "every field round-trips");
    }
    assert_eq!(fx.tier.health_history("k000", 2).unwrap(), history[..2]);
    assert!(fx.tier.health_history("k000", 0).unwrap().is_empty());
    assert!(fx.tier.health_history("k999", 10).unwrap().is_empty());
}

fn health_history_refuses_bad_input_without_counting_it(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    fx.tier.put(&entry(0)).unwrap();
    let now = datetime!(2026-11-20 12:00 UTC);
    let err = fx
        .tier
        .record_health_check(&check("k999", now, HealthStatus::Healthy))
        .unwrap_err();
    assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
    for ms in [-1.0, f64::NAN, f64::INFINITY] {
        let mut c = check("k000", now, HealthStatus::Healthy);
        c.response_time_ms = Some(ms);
        let err = fx.tier.record_health_check(&c).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{ms}: {err}");
        assert!(!err.is_tier_failure());
    }
    assert_eq!(fx.tier.health().consecutive_failures(), 0);
    assert!(fx.tier.health_history("k000", 10).unwrap().is_empty(), "nothing stored");
    assert!(fx.tier.health_history("k999", 10).unwrap().is_empty());
}

fn health_history_prunes_old_checks_of_every_proxy(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let t = |s: i64| datetime!(2026-11-20 12:00 UTC) + time::Duration::seconds(s);
    for i in 0..2 {
        fx.tier.put(&entry(i)).unwrap();
        for s in 1..=3 {
            fx.tier
                .record_health_check(&check(&format!("k{i:03}"), t(s), HealthStatus::Healthy))
                .unwrap();
        }
    }
    assert_eq!(fx.tier.prune_health_history(t(1)).unwrap(), 0, "older than, not at");
    assert_eq!(fx.tier.prune_health_history(t(2)).unwrap(), 2);
    for key in ["k000", "k001"] {
        let times: Vec<OffsetDateTime> = fx
            .tier
            .health_history(key, 10)
            .unwrap()
            .iter()
            .map(|r| r.check.check_time)
            .collect();
        assert_eq!(times, [t(3), t(2)], "{key}");
    }
    assert_eq!(fx.tier.prune_health_history(t(10)).unwrap(), 4);
    assert!(fx.tier.health_history("k000", 10).unwrap().is_empty());
}

fn health_history_goes_with_its_entry(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let now = datetime!(2026-11-20 12:00 UTC);
    for i in 0..3 {
        fx.tier.put(&entry(i)).unwrap();
        fx.tier
            .record_health_check(&check(&format!("k{i:03}"), now, HealthStatus::Healthy))
            .unwrap();
    }
    // An update keeps it.
    let mut e = entry(0);
    e.failure_count = 4;
    fx.tier.put(&e).unwrap();
    assert_eq!(fx.tier.health_history("k000", 10).unwrap().len(), 1);
    // A delete takes it: the same key stored again starts with none.
    assert!(fx.tier.delete("k000").unwrap());
    fx.tier.put(&entry(0)).unwrap();
    assert!(fx.tier.health_history("k000", 10).unwrap().is_empty());
    // So do expiry cleanup and clear.
    let mut soon = entry(1);
    soon.expires_at = datetime!(2100-01-01 00:00 UTC);
    fx.tier.put(&soon).unwrap();
    assert_eq!(fx.tier.cleanup_expired(datetime!(2100-01-01 00:00 UTC)).unwrap(), 1);
    fx.tier.put(&entry(1)).unwrap();
    assert!(fx.tier.health_history("k001", 10).unwrap().is_empty());
    assert_eq!(fx.tier.health_history("k002", 10).unwrap().len(), 1);
    fx.tier.clear().unwrap();
    fx.tier.put(&entry(2)).unwrap();
    assert!(fx.tier.health_history("k002", 10).unwrap().is_empty());
}

fn probe_succeeds_and_changes_nothing(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    fx.tier.put(&entry(1)).unwrap();
    fx.tier.probe().unwrap();
    assert_eq!(sorted_keys(&fx), ["k001"]);
    assert_eq!(fx.tier.get("k001").unwrap().unwrap(), entry(1));
    // A closed tier fails its probe (a tier failure, counted).
    fx.tier.close().unwrap();
    fx.tier.close().unwrap();
    let err = fx.tier.probe().unwrap_err();
    assert!(
        matches!(err, TierError::Closed { .. }) && err.is_tier_failure(),
        "{err}"
    );
    assert_eq!(fx.tier.health().consecutive_failures(), 1);
    let err = fx.tier.get("k001").unwrap_err();
    assert!(matches!(err, TierError::Closed { .. }), "{err}");
}

/// A replay of a missed write or clear removes only copies last written at or before the miss:
/// an entry written after it (by another process) is kept.
fn replays_remove_only_what_was_not_written_since(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let seconds = |key: &str| from_unix_seconds((fx.stamps)(key).1).unwrap();
    for i in 0..4 {
        fx.tier.put(&entry(i)).unwrap();
    }
    let written = seconds("k001");
    let before = written - time::Duration::seconds(1);
    let after = written + time::Duration::seconds(1);
    // Written after the miss: kept.
    assert!(!fx.tier.delete_if_unchanged_since("k001", before).unwrap());
    assert!(fx.tier.contains("k001").unwrap());
    // Written at or before it: removed.
    assert!(fx.tier.delete_if_unchanged_since("k001", after).unwrap());
    assert!(!fx.tier.contains("k001").unwrap());
    assert!(
        !fx.tier.delete_if_unchanged_since("k001", after).unwrap(),
        "already gone"
    );
    // A missed clear: what was written since stays.
    let cleared_at = seconds("k002") + time::Duration::seconds(1);
    std::thread::sleep(Duration::from_millis(1100));
    fx.tier.put(&entry(9)).unwrap();
    assert!(seconds("k009") > cleared_at);
    assert_eq!(fx.tier.clear_unchanged_since(cleared_at).unwrap(), 3);
    assert_eq!(sorted_keys(&fx), ["k009"]);
}

/// `rotate_credentials` says what it did, keeps the entry as it was (credentials included, read
/// back), and does not move `updated_at`: it is no new version of the entry.
fn rotation_rewrites_the_credentials_and_nothing_else(open: Factory) {
    let fx = open(&CacheTierConfig::unbounded());
    let with = full_entry();
    fx.tier.put(&with).unwrap();
    fx.tier.put(&entry(1)).unwrap();
    let stamps = (fx.stamps)(&with.key);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        fx.tier.rotate_credentials(&with.key).unwrap(),
        pw_cache::Rotated::Rewritten
    );
    assert_eq!(fx.tier.peek(&with.key).unwrap().unwrap(), as_stored(&with));
    assert_eq!((fx.stamps)(&with.key), stamps, "updated_at did not move");
    assert_eq!(
        fx.tier.rotate_credentials("k001").unwrap(),
        pw_cache::Rotated::NoCredentials
    );
    assert_eq!(
        fx.tier.rotate_credentials("nothing").unwrap(),
        pw_cache::Rotated::Absent
    );
}
