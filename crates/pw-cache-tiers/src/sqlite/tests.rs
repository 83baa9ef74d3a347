//! The mechanics both SQLite tiers share, run on each: eviction policies and the bound, hit
//! recording, expiry, row decoding, damaged and unusable databases, closing. Compatibility
//! with proxywhirl's files, JSONL migration, health history and several processes are in
//! the integration suite (`tests/compat/compat_sqlite_l2.rs`, `tests/compat/compat_sqlite_l3.rs`,
//! `tests/tiers/migrate_jsonl.rs`, `tests/tiers/health_history.rs`, `tests/reliability/sqlite_processes.rs`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pw_cache_crypto::{FernetKey, KeyRing};
use pw_cache_model::timestamp::{self, from_unix_seconds, to_unix_seconds};
use pw_cache_model::{CacheEntry, CacheTierConfig, EvictionPolicy, HealthStatus, OffsetDateTime, Secret, fields};
use rusqlite::{Connection, ToSql};
use time::macros::datetime;

use super::lax_int::{LaxInt, int_of_real, python_int};
use super::schema::Affinity;
use super::statements::Layout;
use super::*;
use crate::error::TierError;
use crate::tier::FAILURE_THRESHOLD;
use crate::{CacheTier, SqliteL2Tier, SqliteL3Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    L2,
    L3,
}

const KINDS: [Kind; 2] = [Kind::L2, Kind::L3];

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

fn db_path(kind: Kind, dir: &Path) -> PathBuf {
    match kind {
        Kind::L2 => dir.join(crate::sqlite_l2::DB_FILE_NAME),
        Kind::L3 => dir.join("db").join("proxywhirl.db"),
    }
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::L2 => "l2_cache",
        Kind::L3 => "cache_entries",
    }
}

fn try_open(kind: Kind, dir: &Path, config: &CacheTierConfig) -> Result<Box<dyn CacheTier>, TierError> {
    Ok(match kind {
        Kind::L2 => Box::new(SqliteL2Tier::open(dir, config, ring())?),
        Kind::L3 => Box::new(SqliteL3Tier::open(db_path(kind, dir), config, ring())?),
    })
}

fn open_error(kind: Kind, dir: &Path, config: &CacheTierConfig) -> TierError {
    match try_open(kind, dir, config) {
        Ok(_) => panic!("{kind:?} opened {}", dir.display()),
        Err(e) => e,
    }
}

fn open(kind: Kind, dir: &Path, config: &CacheTierConfig) -> Box<dyn CacheTier> {
    try_open(kind, dir, config).unwrap()
}

fn raw(kind: Kind, dir: &Path) -> Connection {
    Connection::open(db_path(kind, dir)).unwrap()
}

const T0: OffsetDateTime = datetime!(2020-01-01 00:00 UTC);

/// Entry `k{i:03}`, fetched and last used `i` seconds after [`T0`], valid for a year.
fn entry(i: i64) -> CacheEntry {
    CacheEntry::new_at(
        format!("http://10.0.0.{i}:8080"),
        "fetched",
        365 * 86_400,
        T0 + time::Duration::seconds(i),
    )
    .unwrap()
    .with_key(format!("k{i:03}"))
}

fn sorted_keys(tier: &dyn CacheTier) -> Vec<String> {
    let mut keys = tier.keys().unwrap();
    keys.sort();
    keys
}

fn key_list(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("k{i:03}")).collect()
}

/// Every column of the row under `key`, by name (`None`: no row).
fn row_values(kind: Kind, dir: &Path, key: &str) -> Option<Vec<(String, rusqlite::types::Value)>> {
    let conn = raw(kind, dir);
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {} WHERE key = ?1", table(kind)))
        .unwrap();
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    stmt.query_row([key], |row| {
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), row.get(i).unwrap()))
            .collect())
    })
    .ok()
}

#[test]
fn a_health_mark_changes_two_columns_counts_every_writer_and_evicts_once() {
    use crate::FailureMark;
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let shared = ring();
        // Two instances of the tier on one file: two processes' views of it.
        let instance = |ring: &Arc<KeyRing>| -> Box<dyn CacheTier> {
            let config = CacheTierConfig::unbounded();
            match kind {
                Kind::L2 => Box::new(SqliteL2Tier::open(dir.path(), &config, Arc::clone(ring)).unwrap()),
                Kind::L3 => Box::new(SqliteL3Tier::open(db_path(kind, dir.path()), &config, Arc::clone(ring)).unwrap()),
            }
        };
        let (a, b) = (instance(&shared), instance(&shared));
        let e = entry(1).with_credentials(Some(Secret::new("u")), Some(Secret::new("pw")));
        a.put(&e).unwrap();
        let before = row_values(kind, dir.path(), &e.key).unwrap();
        assert_eq!(
            a.mark_failure(&e.key, None).unwrap(),
            FailureMark::Marked { failure_count: 1 }
        );
        assert_eq!(
            b.mark_failure(&e.key, None).unwrap(),
            FailureMark::Marked { failure_count: 2 }
        );
        let after = row_values(kind, dir.path(), &e.key).unwrap();
        for ((name, was), (_, now)) in before.iter().zip(&after) {
            match name.as_str() {
                "failure_count" => assert_eq!(*now, rusqlite::types::Value::Integer(2), "{kind:?}"),
                "health_status" => assert_eq!(*now, rusqlite::types::Value::Text("unhealthy".into()), "{kind:?}"),
                // Nothing else, `updated_at` and the credential tokens included.
                _ => assert_eq!(now, was, "{kind:?}: {name}"),
            }
        }
        // Several writers at once: every mark counts.
        std::thread::scope(|s| {
            for tier in [&a, &b, &a, &b] {
                let key = e.key.as_str();
                s.spawn(move || {
                    for _ in 0..25 {
                        assert!(matches!(tier.mark_failure(key, None), Ok(FailureMark::Marked { .. })));
                    }
                });
            }
        });
        assert_eq!(b.peek(&e.key).unwrap().unwrap().failure_count, 102, "{kind:?}");
        // An unreadable row (a token no key of this ring opens, or a damaged value) is left
        // as it is, even at the threshold.
        let stranger = instance(&ring());
        let held = row_values(kind, dir.path(), &e.key);
        let err = stranger.mark_failure(&e.key, Some(1)).unwrap_err();
        assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{kind:?}: {err}");
        raw(kind, dir.path())
            .execute(
                &format!("UPDATE {} SET fetch_time = 'yesterday' WHERE key = ?1", table(kind)),
                [&e.key],
            )
            .unwrap();
        let damaged = row_values(kind, dir.path(), &e.key);
        assert_ne!(damaged, held);
        assert!(a.mark_failure(&e.key, Some(1)).unwrap_err().is_corrupt_entry());
        assert_eq!(row_values(kind, dir.path(), &e.key), damaged, "{kind:?}: untouched");
        // At the threshold the mark that reaches it deletes the row; the next finds none.
        a.put(&e).unwrap();
        assert_eq!(
            a.mark_failure(&e.key, Some(2)).unwrap(),
            FailureMark::Marked { failure_count: 1 }
        );
        assert_eq!(
            b.mark_failure(&e.key, Some(2)).unwrap(),
            FailureMark::Evicted { failure_count: 2 }
        );
        assert_eq!(row_values(kind, dir.path(), &e.key), None);
        assert_eq!(a.mark_failure(&e.key, Some(2)).unwrap(), FailureMark::Absent);
    }
}

#[test]
fn fifty_puts_into_ten_leave_ten_under_every_policy() {
    // proxywhirl's SQLite tiers ignore max_entries: the same 50 puts leave 50 there.
    for kind in KINDS {
        for policy in [EvictionPolicy::Lru, EvictionPolicy::Lfu, EvictionPolicy::Fifo] {
            let dir = tempfile::tempdir().unwrap();
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(10).with_policy(policy));
            for i in 0..50 {
                tier.put(&entry(i)).unwrap();
                assert!(tier.size().unwrap() <= 10, "{kind:?} {policy:?} after {i}");
            }
            // Older use, fewer uses (all 0, then older use) and first in all pick the oldest.
            assert_eq!(sorted_keys(&*tier), key_list(40..50), "{kind:?} {policy:?}");
        }
    }
}

#[test]
fn lru_counts_get_hits() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::bounded(4));
        for i in 0..4 {
            tier.put(&entry(i)).unwrap();
        }
        assert!(tier.get("k000").unwrap().is_some());
        tier.put(&entry(4)).unwrap();
        assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k004"], "{kind:?}");
    }
}

#[test]
fn peek_is_not_a_hit() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::bounded(4));
        for i in 0..4 {
            tier.put(&entry(i)).unwrap();
        }
        assert_eq!(tier.peek("k000").unwrap().unwrap().key, "k000");
        tier.put(&entry(4)).unwrap();
        // k000 was only peeked at: still the least recently used.
        assert_eq!(sorted_keys(&*tier), key_list(1..5), "{kind:?}");
    }
}

#[test]
fn probe_writes_and_changes_nothing() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        tier.put(&entry(1)).unwrap();
        let version = |c: &Connection| -> u32 { c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap() };
        let before = version(&raw(kind, dir.path()));
        tier.probe().unwrap();
        assert_eq!(version(&raw(kind, dir.path())), before, "{kind:?}");
        assert_eq!(sorted_keys(&*tier), ["k001"]);
        // A closed tier fails its probe (a tier failure, counted).
        tier.close().unwrap();
        let err = tier.probe().unwrap_err();
        assert!(err.is_tier_failure(), "{kind:?}: {err}");
        assert_eq!(tier.health().consecutive_failures(), 1);
    }
}

#[test]
fn lfu_evicts_the_least_used_then_the_least_recent() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheTierConfig::bounded(4).with_policy(EvictionPolicy::Lfu);
        let tier = open(kind, dir.path(), &config);
        for (i, count) in [(0, 5), (1, 0), (2, 3), (3, 0)] {
            let mut e = entry(i);
            e.access_count = count;
            tier.put(&e).unwrap();
        }
        // k001 and k003 have no use; k001's is older.
        tier.put(&entry(4)).unwrap();
        assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k004"], "{kind:?}");
        // Two hits lift k003 above k004 (0 uses).
        tier.get("k003").unwrap();
        tier.get("k003").unwrap();
        tier.put(&entry(5)).unwrap();
        assert_eq!(sorted_keys(&*tier), ["k000", "k002", "k003", "k005"], "{kind:?}");
    }
}

#[test]
fn fifo_evicts_in_insertion_order_and_an_update_keeps_its_place() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheTierConfig::bounded(3).with_policy(EvictionPolicy::Fifo);
        let tier = open(kind, dir.path(), &config);
        for i in 0..3 {
            tier.put(&entry(i)).unwrap();
        }
        let mut updated = entry(0);
        updated.last_accessed = T0 + time::Duration::days(30);
        updated.access_count = 9;
        tier.put(&updated).unwrap();
        tier.get("k000").unwrap();
        tier.put(&entry(3)).unwrap();
        assert_eq!(sorted_keys(&*tier), ["k001", "k002", "k003"], "{kind:?}");
    }
}

#[test]
fn a_put_at_the_bound_evicts_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::bounded(128), ring()).unwrap();
    for i in 0..128 {
        tier.put(&entry(i)).unwrap();
    }
    assert_eq!((tier.size().unwrap(), tier.evictions()), (128, 0));
    tier.put(&entry(128)).unwrap();
    // One for the new entry, 128 / 64 more.
    assert_eq!((tier.size().unwrap(), tier.evictions()), (126, 3));
    assert_eq!(sorted_keys(&tier)[..2], ["k003", "k004"]);
    // An update of a held key needs no room.
    tier.put(&entry(128)).unwrap();
    assert_eq!(tier.evictions(), 3);
}

#[test]
fn hits_are_written_in_batches_on_flush_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(db_path(Kind::L3, dir.path()), &CacheTierConfig::bounded(10_000), ring()).unwrap();
    let stored = |key: &str| -> (f64, i64) {
        raw(Kind::L3, dir.path())
            .query_row(
                "SELECT last_accessed, access_count FROM cache_entries WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let first = entry(0);
    tier.put(&first).unwrap();
    let before = stored("k000");
    assert_eq!(before, (to_unix_seconds(first.last_accessed), 0));
    // A hit returns the entry as stored and is noted, not written yet.
    assert_eq!(tier.get("k000").unwrap().unwrap(), first);
    assert_eq!(stored("k000"), before);
    tier.flush().unwrap();
    let (last, count) = stored("k000");
    assert!(last > before.0, "last_accessed moved to now");
    assert_eq!(count, 1);

    // TOUCH_BATCH hits of distinct keys write themselves.
    for i in 1..=TOUCH_BATCH as i64 {
        tier.put(&entry(i)).unwrap();
    }
    for i in 1..=TOUCH_BATCH as i64 {
        tier.get(&format!("k{i:03}")).unwrap().unwrap();
    }
    assert_eq!(stored("k001").1, 1);
    assert_eq!(stored(&format!("k{TOUCH_BATCH:03}")).1, 1);
    // So do TOUCH_BATCH hits of one key.
    for _ in 0..TOUCH_BATCH {
        tier.get("k002").unwrap().unwrap();
    }
    assert_eq!(stored("k002").1, 1 + TOUCH_BATCH as i64);

    // Pending hits are written by close.
    tier.get("k001").unwrap().unwrap();
    tier.close().unwrap();
    assert_eq!(stored("k001").1, 2);
}

#[test]
fn a_put_drops_the_pending_hits_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheTierConfig::bounded(100).with_policy(EvictionPolicy::Lfu);
    let tier = SqliteL2Tier::open(dir.path(), &config, ring()).unwrap();
    tier.put(&entry(0)).unwrap();
    for _ in 0..5 {
        tier.get("k000").unwrap().unwrap();
    }
    let mut seen = entry(0);
    seen.access_count = 5;
    tier.put(&seen).unwrap();
    tier.flush().unwrap();
    assert_eq!(tier.get("k000").unwrap().unwrap().access_count, 5);
}

#[test]
fn unbounded_tiers_record_no_hits() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        tier.put(&entry(0)).unwrap();
        tier.get("k000").unwrap().unwrap();
        drop(tier);
        let count: i64 = raw(kind, dir.path())
            .query_row(&format!("SELECT access_count FROM {}", table(kind)), [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0, "{kind:?}");
    }
}

#[test]
fn cleanup_uses_the_shared_expiry_boundary() {
    let now = datetime!(2026-11-20 23:00:00.123456 UTC);
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        for (i, expires) in [
            (0, now - time::Duration::microseconds(1)),
            (1, now),
            (2, now + time::Duration::microseconds(1)),
        ] {
            let mut e = entry(i);
            e.expires_at = expires;
            tier.put(&e).unwrap();
        }
        assert_eq!(tier.cleanup_expired(now).unwrap(), 2, "{kind:?}");
        assert_eq!(sorted_keys(&*tier), ["k002"], "{kind:?}");
    }
}

/// An entry with every field set to something not default, credentials included (an
/// empty one too), timestamps in other offsets than UTC.
fn full_entry() -> CacheEntry {
    let at = datetime!(2026-11-20 18:00:00.654321 -05:00);
    let mut e = CacheEntry::new_at("http://[2001:db8::1]:3128", "источник", 7200, at)
        .unwrap()
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

#[test]
fn every_field_round_trips() {
    let e = full_entry();
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        tier.put(&e).unwrap();
        let back = tier.get(&e.key).unwrap().unwrap();
        let layout = match kind {
            Kind::L2 => Layout::L2,
            Kind::L3 => Layout::L3,
        };
        assert_eq!(back, layout.as_stored(&e), "{kind:?}");
        assert_eq!(back.fetch_time.offset(), time::UtcOffset::UTC, "read back in UTC");
        assert_eq!(back.password.as_ref().unwrap().expose_secret(), "pässwörd");
        // The empty username is stored, encrypted, not dropped.
        assert_eq!(back.username.as_ref().unwrap().expose_secret(), "");
        let blob: Vec<u8> = raw(kind, dir.path())
            .query_row(&format!("SELECT username_encrypted FROM {}", table(kind)), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(blob.starts_with(b"gAAAAA"), "a Fernet token");
        if kind == Kind::L2 {
            assert_eq!(back.total_health_checks, 0, "L2 has no health columns");
        }
    }
}

#[test]
fn damaged_rows_are_corrupt_entries_not_tier_failures() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        for i in 0..7 {
            tier.put(&entry(i)).unwrap();
        }
        let t = table(kind);
        let conn = raw(kind, dir.path());
        for (key, set, column) in [
            ("k000", "fetch_time = 'yesterday'", "fetch_time"),
            ("k001", "failure_count = -1", "failure_count"),
            ("k002", "health_status = 'sick'", "health_status"),
            ("k003", "expires_at = 1e20", "expires_at"),
            ("k004", "source = X'FF'", "source"),
            ("k005", "access_count = NULL", "access_count"),
        ] {
            conn.execute(&format!("UPDATE {t} SET {set} WHERE key = ?1"), [key])
                .unwrap();
            let err = tier.get(key).unwrap_err();
            assert!(matches!(err, TierError::Corrupt { .. }), "{kind:?} {key}: {err}");
            assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
            assert!(err.to_string().contains(column), "{err}");
        }
        // A token no key opens, and bytes that are no token.
        for (key, blob) in [
            ("k000", ring().encrypt(&Secret::new("x")).into_bytes()),
            ("k001", vec![0, 1, 2, 3]),
        ] {
            conn.execute(
                &format!(
                    "UPDATE {t} SET fetch_time = 1.5, access_count = 0, failure_count = 0, password_encrypted = ?2 \
                     WHERE key = ?1"
                ),
                rusqlite::params![key, blob],
            )
            .unwrap();
            let err = tier.get(key).unwrap_err();
            assert!(matches!(err, TierError::Crypto { .. }), "{kind:?} {key}: {err}");
            assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
        }
        assert_eq!(tier.health().consecutive_failures(), 0);
        assert_eq!(tier.get("k006").unwrap().unwrap(), entry(6), "{kind:?}");
        assert_eq!(tier.size().unwrap(), 7, "nothing stored is lost");
    }
}

#[test]
fn values_sqlite_cannot_hold_and_empty_keys_are_invalid_entries() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::bounded(5));
        let mut e = entry(0);
        e.access_count = u64::MAX;
        let err = tier.put(&e).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
        assert!(err.to_string().contains("access_count"), "{err}");
        let err = tier.put(&entry(1).with_key("")).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
        assert!(!err.is_tier_failure());
        assert_eq!(tier.size().unwrap(), 0);
    }
}

/// The most pages the log of the database at `path` has held: SQLite never shrinks the
/// `-wal` file while the database is open (a 32-byte header, then frames of a 24-byte
/// header and a 4 KiB page).
fn most_wal_frames(path: &Path) -> u64 {
    let wal = std::fs::metadata(format!("{}-wal", path.display())).unwrap().len();
    wal.saturating_sub(32) / (24 + 4096)
}

#[test]
fn a_long_log_is_checkpointed_by_the_thread_and_close_stops_it() {
    const PUTS: i64 = 3000;
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(kind, dir.path());
        let (l2, l3);
        let (tier, completed, running): (&dyn CacheTier, &dyn Fn() -> u64, &dyn Fn() -> bool) = match kind {
            Kind::L2 => {
                l2 = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), ring()).unwrap();
                (&l2, &|| l2.background_checkpoints(), &|| l2.checkpoint_thread_running())
            }
            Kind::L3 => {
                l3 = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), ring()).unwrap();
                (&l3, &|| l3.background_checkpoints(), &|| l3.checkpoint_thread_running())
            }
        };
        assert!(!running(), "{kind:?}: no thread before a long log");
        for i in 0..PUTS {
            tier.put(&entry(i)).unwrap();
        }
        let most = most_wal_frames(&path);
        // ~6 pages a put: without checkpoints the log would hold ~18,000 pages. Past the
        // backstop, the writer's own checkpoint is busy while the thread's runs: the log
        // grows by what is committed meanwhile, which on a loaded machine (the thread
        // waiting for a core) has reached 6,600 pages. The bound is how long that may go
        // on, not a timing: the log stays far below what it would be unchecked.
        assert!(
            most <= (3 * checkpoint::BACKSTOP_FRAMES) as u64,
            "{kind:?}: the log reached {most} pages"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while completed() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: no background checkpoint"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(running(), "{kind:?}");
        tier.close().unwrap();
        assert!(!running(), "{kind:?}: close stops the thread");
        let again = open(kind, dir.path(), &CacheTierConfig::unbounded());
        assert_eq!(again.size().unwrap(), PUTS as usize, "{kind:?}");
        assert_eq!(again.get("k2999").unwrap().unwrap(), entry(2999), "{kind:?}");
    }
}

#[test]
fn close_twice_then_operations_fail_typed() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier: Box<dyn CacheTier> = match kind {
            Kind::L2 => {
                let t = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), ring()).unwrap();
                t.put(&entry(0)).unwrap();
                t.close().unwrap();
                t.close().unwrap();
                Box::new(t)
            }
            Kind::L3 => {
                let t = SqliteL3Tier::open(db_path(kind, dir.path()), &CacheTierConfig::unbounded(), ring()).unwrap();
                t.put(&entry(0)).unwrap();
                t.close().unwrap();
                t.close().unwrap();
                Box::new(t)
            }
        };
        let err = tier.get("k000").unwrap_err();
        assert!(matches!(err, TierError::Closed { .. }), "{err}");
        assert!(err.is_tier_failure());
        // Closed means closed: the file is complete and another opener sees the entry.
        let again = open(kind, dir.path(), &CacheTierConfig::unbounded());
        assert_eq!(again.get("k000").unwrap().unwrap(), entry(0));
    }
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_failure() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(kind, dir.path());
        fs_create_parent(&path);
        let garbage: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
        assert!(matches!(err, TierError::Sqlite { .. }), "{kind:?}: {err}");
        assert!(err.is_tier_failure());
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file is left as it was");
    }
}

#[test]
fn a_truncated_database_is_a_typed_failure() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
            for i in 0..300 {
                tier.put(&entry(i)).unwrap();
            }
        }
        let path = db_path(kind, dir.path());
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(3 * 4096).unwrap();
        drop(file);
        let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
        assert!(matches!(err, TierError::Sqlite { .. }), "{kind:?}: {err}");
        assert!(err.is_tier_failure(), "{err}");
    }
}

#[test]
fn a_database_broken_while_open_disables_the_tier_until_it_works_again() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        tier.put(&entry(0)).unwrap();
        let conn = raw(kind, dir.path());
        conn.execute_batch(&format!("ALTER TABLE {0} RENAME TO {0}_away", table(kind)))
            .unwrap();
        for _ in 0..FAILURE_THRESHOLD {
            let err = tier.get("k000").unwrap_err();
            assert!(
                matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
                "{err}"
            );
        }
        assert!(tier.health().is_disabled(), "{kind:?}");
        conn.execute_batch(&format!("ALTER TABLE {0}_away RENAME TO {0}", table(kind)))
            .unwrap();
        assert_eq!(tier.get("k000").unwrap().unwrap(), entry(0));
        assert!(!tier.health().is_disabled(), "a success resets");
    }
}

#[test]
fn a_newer_schema_version_or_missing_columns_are_refused() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        drop(open(kind, dir.path(), &CacheTierConfig::unbounded()));
        raw(kind, dir.path()).pragma_update(None, "user_version", 2).unwrap();
        let err = open_error(kind, dir.path(), &CacheTierConfig::unbounded());
        assert!(
            matches!(err, TierError::Schema { .. }) && err.is_tier_failure(),
            "{err}"
        );
        assert!(err.to_string().contains("schema version 2"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    Connection::open(dir.path().join(crate::sqlite_l2::DB_FILE_NAME))
        .unwrap()
        .execute_batch("CREATE TABLE l2_cache (key TEXT PRIMARY KEY, proxy_url TEXT)")
        .unwrap();
    let err = open_error(Kind::L2, dir.path(), &CacheTierConfig::unbounded());
    assert!(matches!(err, TierError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("no column username_encrypted"), "{err}");
}

#[test]
fn threads_share_the_pool() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::bounded(10_000));
        std::thread::scope(|s| {
            for t in 0..8i64 {
                let tier = &tier;
                s.spawn(move || {
                    for i in (t * 100)..(t * 100 + 100) {
                        let e = entry(i);
                        tier.put(&e).unwrap();
                        assert_eq!(tier.get(&e.key).unwrap(), Some(e));
                    }
                });
            }
        });
        assert_eq!(tier.size().unwrap(), 800, "{kind:?}");
    }
}

fn fs_create_parent(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
}

/// Set in the child process of [`read_only_places_are_typed_failures`] (run as `nobody`
/// when the tests run as root, who ignores permissions).
const READ_ONLY_CHILD: &str = "PW_CACHE_TEST_SQLITE_READ_ONLY_CHILD";

#[test]
fn read_only_places_are_typed_failures() {
    if let Ok(dir) = std::env::var(READ_ONLY_CHILD) {
        return read_only_checks(Path::new(&dir));
    }
    let root = tempfile::tempdir().unwrap();
    let base = root.path();
    // `ro/`: a read-only directory holding one database of each tier.
    // `rw/`: a writable directory holding read-only databases.
    for sub in ["ro", "rw"] {
        for kind in KINDS {
            let tier = open(kind, &base.join(sub), &CacheTierConfig::unbounded());
            tier.put(&entry(0)).unwrap();
        }
    }
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for kind in KINDS {
        mode(&db_path(kind, &base.join("rw")), 0o444);
    }
    // `rw/` is writable by the user of the checks (a directory writable by others would be
    // refused: see `pw_cache_crypto::trust`): 0755 and, under root, given to `nobody` below.
    mode(&base.join("rw"), 0o755);
    mode(&base.join("rw/db"), 0o755);
    mode(&base.join("ro/db"), 0o555);
    mode(&base.join("ro"), 0o555);
    mode(base, 0o755);
    let me = std::fs::metadata(base).unwrap().uid();
    if me != 0 {
        return read_only_checks(base);
    }
    for dir in ["rw", "rw/db"] {
        std::os::unix::fs::chown(base.join(dir), Some(65_534), Some(65_534)).unwrap();
    }
    // Run a copy of this test binary from the world-readable temp dir: the checkout it was
    // built in may sit under a directory `nobody` cannot enter.
    let exe = base.join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    mode(&exe, 0o755);
    let child = std::process::Command::new(&exe)
        .args([
            "--exact",
            "sqlite::tests::read_only_places_are_typed_failures",
            "--test-threads=1",
        ])
        .env(READ_ONLY_CHILD, base)
        .uid(65_534)
        .gid(65_534)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the unprivileged child failed:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

fn read_only_checks(base: &Path) {
    let config = CacheTierConfig::unbounded();
    // A new database cannot be made in a read-only directory.
    let err = open_error(Kind::L2, &base.join("ro/new"), &config);
    assert!(err.is_tier_failure(), "{err}");
    let err = open_error(Kind::L3, &base.join("ro/new"), &config);
    assert!(err.is_tier_failure(), "{err}");
    // A WAL database in a read-only directory cannot even be read (no -shm file).
    for kind in KINDS {
        let err = open_error(kind, &base.join("ro"), &config);
        assert!(
            matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
            "{kind:?}: {err}"
        );
    }
    // A read-only database file: reads work, every write fails until the tier is disabled.
    for kind in KINDS {
        let tier = open(kind, &base.join("rw"), &config);
        assert_eq!(tier.get("k000").unwrap().unwrap(), entry(0));
        for i in 1..=i64::from(FAILURE_THRESHOLD) {
            let err = tier.put(&entry(i)).unwrap_err();
            assert!(
                matches!(err, TierError::Sqlite { .. }) && err.is_tier_failure(),
                "{kind:?}: {err}"
            );
        }
        assert!(tier.health().is_disabled(), "{kind:?}");
        assert_eq!(tier.size().unwrap(), 1, "nothing stored is lost");
    }
}

// ---------------------------------------------------------------------------------------
// Rows as proxywhirl reads them; column types

/// The entry of `kind` as the tier gives back what it stores.
fn stored(kind: Kind, e: &CacheEntry) -> CacheEntry {
    match kind {
        Kind::L2 => Layout::L2.as_stored(e),
        Kind::L3 => Layout::L3.as_stored(e),
    }
}

/// proxywhirl 0.3.3's columns of `l2_cache`, with their declarations.
const L2_DDL: [(&str, &str); 13] = [
    (fields::KEY, "TEXT PRIMARY KEY"),
    (fields::PROXY_URL, "TEXT NOT NULL"),
    (fields::USERNAME_ENCRYPTED, "BLOB"),
    (fields::PASSWORD_ENCRYPTED, "BLOB"),
    (fields::SOURCE, "TEXT NOT NULL"),
    (fields::FETCH_TIME, "REAL NOT NULL"),
    (fields::LAST_ACCESSED, "REAL NOT NULL"),
    (fields::ACCESS_COUNT, "INTEGER DEFAULT 0"),
    (fields::TTL_SECONDS, "INTEGER NOT NULL"),
    (fields::EXPIRES_AT, "REAL NOT NULL"),
    (fields::HEALTH_STATUS, "TEXT DEFAULT 'unknown'"),
    (fields::FAILURE_COUNT, "INTEGER DEFAULT 0"),
    (fields::EVICTED_FROM_L1, "INTEGER DEFAULT 0"),
];

/// proxywhirl 0.3.3's columns of `cache_entries`, in its order.
const L3_DDL: [(&str, &str); 23] = [
    (fields::KEY, "TEXT PRIMARY KEY"),
    (fields::PROXY_URL, "TEXT NOT NULL"),
    (fields::USERNAME_ENCRYPTED, "BLOB"),
    (fields::PASSWORD_ENCRYPTED, "BLOB"),
    (fields::SOURCE, "TEXT NOT NULL"),
    (fields::FETCH_TIME, "REAL NOT NULL"),
    (fields::LAST_ACCESSED, "REAL NOT NULL"),
    (fields::ACCESS_COUNT, "INTEGER DEFAULT 0"),
    (fields::TTL_SECONDS, "INTEGER NOT NULL"),
    (fields::EXPIRES_AT, "REAL NOT NULL"),
    (fields::HEALTH_STATUS, "TEXT DEFAULT 'unknown'"),
    (fields::FAILURE_COUNT, "INTEGER DEFAULT 0"),
    ("created_at", "REAL NOT NULL"),
    ("updated_at", "REAL NOT NULL"),
    (fields::LAST_HEALTH_CHECK, "REAL"),
    (fields::CONSECUTIVE_HEALTH_FAILURES, "INTEGER DEFAULT 0"),
    (fields::CONSECUTIVE_HEALTH_SUCCESSES, "INTEGER DEFAULT 0"),
    (fields::RECOVERY_ATTEMPT, "INTEGER DEFAULT 0"),
    (fields::NEXT_CHECK_TIME, "REAL"),
    (fields::LAST_HEALTH_ERROR, "TEXT"),
    (fields::TOTAL_HEALTH_CHECKS, "INTEGER DEFAULT 0"),
    (fields::TOTAL_HEALTH_CHECK_FAILURES, "INTEGER DEFAULT 0"),
    (fields::EVICTED_FROM_L1, "INTEGER DEFAULT 0"),
];

/// proxywhirl 0.3.3's columns of `health_history` (its foreign key added after them).
const HISTORY_DDL: [(&str, &str); 7] = [
    ("id", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    ("proxy_key", "TEXT NOT NULL"),
    ("check_time", "REAL NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("response_time_ms", "REAL"),
    ("error_message", "TEXT"),
    ("check_url", "TEXT NOT NULL"),
];

/// `CREATE TABLE name (...)` of `columns`, each declared as `types` says where it names it
/// (the whole declaration after the name), else as proxywhirl declares it.
fn ddl(name: &str, columns: &[(&str, &str)], types: &[(&str, &str)], tail: &str) -> String {
    let body: Vec<String> = columns
        .iter()
        .map(|(column, declared)| {
            let declared = types.iter().find(|(c, _)| c == column).map_or(*declared, |(_, t)| *t);
            format!("{column} {declared}")
        })
        .collect();
    format!("CREATE TABLE {name} ({}{tail})", body.join(", "))
}

/// Creates `kind`'s tables as proxywhirl does, but with the column declarations of `types`
/// (by column name; `health_history`'s too); the connection to the file.
fn create_tables(kind: Kind, dir: &Path, types: &[(&str, &str)]) -> Connection {
    let path = db_path(kind, dir);
    fs_create_parent(&path);
    let conn = Connection::open(&path).unwrap();
    match kind {
        Kind::L2 => conn.execute_batch(&ddl("l2_cache", &L2_DDL, types, "")).unwrap(),
        Kind::L3 => {
            conn.execute_batch(&ddl("cache_entries", &L3_DDL, types, "")).unwrap();
            let foreign_key = ", FOREIGN KEY (proxy_key) REFERENCES cache_entries(key) ON DELETE CASCADE";
            conn.execute_batch(&ddl("health_history", &HISTORY_DDL, types, foreign_key))
                .unwrap();
        }
    }
    conn
}

/// Every column of `kind`'s tables declared without a type: SQLite keeps every value as
/// bound (BLOB affinity). The history's `id` stays the rowid.
fn typeless(kind: Kind) -> Vec<(&'static str, &'static str)> {
    let entries: &[(&str, &str)] = match kind {
        Kind::L2 => &L2_DDL,
        Kind::L3 => &L3_DDL,
    };
    entries
        .iter()
        .chain(&HISTORY_DDL[1..])
        .map(|(c, _)| (*c, if *c == "key" { "PRIMARY KEY" } else { "" }))
        .collect()
}

/// Inserts `e` (without credentials) with the values proxywhirl's put binds: Python floats
/// for the times, ints for the counts and the flag.
fn insert_like_proxywhirl(conn: &Connection, kind: Kind, e: &CacheEntry) {
    let t = |d: OffsetDateTime| to_unix_seconds(d);
    let n = |c: u64| i64::try_from(c).unwrap();
    let common: [&dyn ToSql; 13] = [
        &e.key,
        &e.proxy_url,
        &None::<Vec<u8>>,
        &None::<Vec<u8>>,
        &e.source,
        &t(e.fetch_time),
        &t(e.last_accessed),
        &n(e.access_count),
        &n(e.ttl_seconds),
        &t(e.expires_at),
        &e.health_status.as_str(),
        &n(e.failure_count),
        &i64::from(e.evicted_from_l1),
    ];
    match kind {
        Kind::L2 => {
            conn.execute(
                &format!("INSERT INTO l2_cache VALUES ({})", ["?"; 13].join(", ")),
                &common[..],
            )
            .unwrap();
        }
        Kind::L3 => {
            let now = to_unix_seconds(timestamp::now_utc());
            let health: [&dyn ToSql; 11] = [
                &now,
                &now,
                &e.last_health_check.map(t),
                &n(e.consecutive_health_failures),
                &n(e.consecutive_health_successes),
                &n(e.recovery_attempt),
                &e.next_check_time.map(t),
                &e.last_health_error,
                &n(e.total_health_checks),
                &n(e.total_health_check_failures),
                &i64::from(e.evicted_from_l1),
            ];
            let params: Vec<&dyn ToSql> = common[..12].iter().chain(&health).copied().collect();
            conn.execute(
                &format!("INSERT INTO cache_entries VALUES ({})", ["?"; 23].join(", ")),
                &params[..],
            )
            .unwrap();
        }
    }
}

/// Entry `i` with every health field set (L3 keeps them) and an error message.
fn checked_entry(i: i64) -> CacheEntry {
    let mut e = entry(i);
    e.access_count = 7;
    e.failure_count = 1;
    e.health_status = HealthStatus::Healthy;
    e.last_health_check = Some(T0 + time::Duration::minutes(i));
    e.consecutive_health_failures = 2;
    e.consecutive_health_successes = 3;
    e.recovery_attempt = 4;
    e.next_check_time = Some(T0 + time::Duration::hours(i));
    e.last_health_error = Some(format!("timeout {i}"));
    e.total_health_checks = 5;
    e.total_health_check_failures = 6;
    e
}

/// A tracing subscriber that keeps the warnings of the thread it is the default of, as
/// `field=value` lines.
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl tracing::field::Visit for Line<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl tracing::Subscriber for Warnings {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// What `f` returns, and the warnings logged on this thread while it ran.
fn warnings_of<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = tracing::subscriber::with_default(Warnings(Arc::clone(&lines)), f);
    let lines = lines.lock().unwrap().clone();
    (out, lines)
}

/// `(column, SQL value, what the entry read has)`: values proxywhirl reads, each put in a
/// table that keeps them as written.
type LaxCase = (&'static str, &'static str, fn(&mut CacheEntry));

const LAX_COMMON: &[LaxCase] = &[
    // Counts: pydantic's lax int.
    (fields::ACCESS_COUNT, "'5'", |e| e.access_count = 5),
    (fields::ACCESS_COUNT, "' +1_000.00 '", |e| e.access_count = 1000),
    (fields::ACCESS_COUNT, "'0005'", |e| e.access_count = 5),
    (fields::ACCESS_COUNT, "char(160) || '7' || char(8195)", |e| {
        e.access_count = 7
    }),
    (fields::ACCESS_COUNT, "'-0'", |e| e.access_count = 0),
    (fields::ACCESS_COUNT, "'0-5'", |e| e.access_count = 0),
    (fields::ACCESS_COUNT, "5.0", |e| e.access_count = 5),
    (fields::ACCESS_COUNT, "X'3432'", |e| e.access_count = 42),
    (fields::ACCESS_COUNT, "'18446744073709551615'", |e| {
        e.access_count = u64::MAX
    }),
    (fields::ACCESS_COUNT, "'99999999999999999999'", |e| {
        e.access_count = u64::MAX
    }),
    (fields::ACCESS_COUNT, "-1", |e| e.access_count = 0),
    (fields::ACCESS_COUNT, "-3.0", |e| e.access_count = 0),
    (fields::ACCESS_COUNT, "'-99999999999999999999'", |e| e.access_count = 0),
    (fields::TTL_SECONDS, "'60'", |e| e.ttl_seconds = 60),
    (fields::TTL_SECONDS, "7200.0", |e| e.ttl_seconds = 7200),
    (fields::TTL_SECONDS, "X'20392E3030'", |e| e.ttl_seconds = 9),
    (fields::TTL_SECONDS, "'-0.0'", |e| e.ttl_seconds = 0),
    (fields::FAILURE_COUNT, "'+3'", |e| e.failure_count = 3),
    (fields::FAILURE_COUNT, "'1_0'", |e| e.failure_count = 10),
    // The flag: Python's bool().
    (fields::EVICTED_FROM_L1, "'yes'", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "'no'", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "'0'", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "''", |e| e.evicted_from_l1 = false),
    (fields::EVICTED_FROM_L1, "0.0", |e| e.evicted_from_l1 = false),
    (fields::EVICTED_FROM_L1, "0.5", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "2", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "X'00'", |e| e.evicted_from_l1 = true),
    (fields::EVICTED_FROM_L1, "X''", |e| e.evicted_from_l1 = false),
    (fields::EVICTED_FROM_L1, "NULL", |e| e.evicted_from_l1 = false),
    // Text: UTF-8 bytes are a str.
    (fields::PROXY_URL, "CAST('http://b.example:1' AS BLOB)", |e| {
        e.proxy_url = "http://b.example:1".into()
    }),
    (fields::SOURCE, "X''", |e| e.source = String::new()),
    (fields::HEALTH_STATUS, "CAST('dead' AS BLOB)", |e| {
        e.health_status = HealthStatus::Dead
    }),
    // Times: INTEGER seconds.
    (fields::FETCH_TIME, "1700000000", |e| {
        e.fetch_time = datetime!(2023-11-14 22:13:20 UTC)
    }),
    (fields::EXPIRES_AT, "253402300799", |e| {
        e.expires_at = datetime!(9999-12-31 23:59:59 UTC)
    }),
    // No credential: falsy values are not decrypted.
    (fields::USERNAME_ENCRYPTED, "0", |_| {}),
    (fields::USERNAME_ENCRYPTED, "0.0", |_| {}),
    (fields::PASSWORD_ENCRYPTED, "''", |_| {}),
];

const LAX_L3: &[LaxCase] = &[
    (fields::CONSECUTIVE_HEALTH_FAILURES, "'2.0'", |e| {
        e.consecutive_health_failures = 2
    }),
    (fields::CONSECUTIVE_HEALTH_SUCCESSES, "-0.0", |e| {
        e.consecutive_health_successes = 0
    }),
    (fields::RECOVERY_ATTEMPT, "CAST('1_0' AS BLOB)", |e| {
        e.recovery_attempt = 10
    }),
    (fields::TOTAL_HEALTH_CHECKS, "8.0", |e| e.total_health_checks = 8),
    (fields::TOTAL_HEALTH_CHECK_FAILURES, "'99999999999999999999'", |e| {
        e.total_health_check_failures = u64::MAX
    }),
    (fields::LAST_HEALTH_ERROR, "CAST('oops' AS BLOB)", |e| {
        e.last_health_error = Some("oops".into())
    }),
    (fields::LAST_HEALTH_CHECK, "1700000000", |e| {
        e.last_health_check = Some(datetime!(2023-11-14 22:13:20 UTC))
    }),
    (fields::NEXT_CHECK_TIME, "NULL", |e| e.next_check_time = None),
    // proxywhirl's L3 cannot read a NULL flag: read false here.
    (fields::EVICTED_FROM_L1, "NULL", |e| e.evicted_from_l1 = false),
    // Never read here (proxywhirl would fail on them).
    ("created_at", "'yesterday'", |_| {}),
    ("updated_at", "X'00'", |_| {}),
];

#[test]
fn values_proxywhirl_reads_are_read_as_it_reads_them() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let conn = create_tables(kind, dir.path(), &typeless(kind));
        let cases: Vec<&LaxCase> = match kind {
            Kind::L2 => LAX_COMMON.iter().collect(),
            Kind::L3 => LAX_COMMON.iter().chain(LAX_L3).collect(),
        };
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        for (i, (column, value, _)) in cases.iter().enumerate() {
            let mut e = checked_entry(i as i64);
            e.evicted_from_l1 = true;
            tier.put(&e).unwrap();
            conn.execute(
                &format!("UPDATE {} SET {column} = {value} WHERE key = ?1", table(kind)),
                [&e.key],
            )
            .unwrap();
        }
        for (i, (column, value, read_as)) in cases.iter().enumerate() {
            let mut want = checked_entry(i as i64);
            want.evicted_from_l1 = true;
            let mut want = stored(kind, &want);
            read_as(&mut want);
            let got = tier.get(&want.key);
            assert_eq!(got.unwrap(), Some(want), "{kind:?} {column} = {value}");
        }
        assert_eq!(tier.health().consecutive_failures(), 0);
    }
}

#[test]
fn values_outside_the_model_are_read_as_the_nearest_and_warned() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        for i in 0..3 {
            tier.put(&entry(i)).unwrap();
        }
        let conn = raw(kind, dir.path());
        let t = table(kind);
        conn.execute(&format!("UPDATE {t} SET access_count = -1 WHERE key = 'k000'"), [])
            .unwrap();
        conn.execute(
            &format!("UPDATE {t} SET ttl_seconds = CAST('18446744073709551616' AS BLOB) WHERE key = 'k001'"),
            [],
        )
        .unwrap();
        let (got, warned) = warnings_of(|| tier.get("k000").unwrap().unwrap());
        assert_eq!(got.access_count, 0, "{kind:?}");
        assert_eq!(got, entry(0), "{kind:?}: every other field as stored");
        assert_eq!(warned.len(), 1, "{kind:?}: {warned:?}");
        assert!(
            warned[0].contains("key=k000") && warned[0].contains("column=access_count"),
            "{kind:?}: {warned:?}"
        );
        assert!(warned[0].contains("INTEGER -1"), "the value found: {warned:?}");
        let (got, warned) = warnings_of(|| tier.get("k001").unwrap().unwrap());
        assert_eq!(got.ttl_seconds, u64::MAX, "{kind:?}");
        assert!(
            warned.len() == 1 && warned[0].contains("key=k001") && warned[0].contains("column=ttl_seconds"),
            "{kind:?}: {warned:?}"
        );
        // A row of normal values warns nothing.
        let (_, warned) = warnings_of(|| tier.get("k002").unwrap().unwrap());
        assert!(warned.is_empty(), "{warned:?}");
    }
}

#[test]
fn values_proxywhirl_cannot_read_stay_corrupt_entries() {
    let common: &[(&str, &str)] = &[
        (fields::ACCESS_COUNT, "'5.'"),
        (fields::ACCESS_COUNT, "'1e3'"),
        (fields::ACCESS_COUNT, "'0x10'"),
        (fields::ACCESS_COUNT, "''"),
        (fields::ACCESS_COUNT, "'1__0'"),
        (fields::ACCESS_COUNT, "5.5"),
        (fields::ACCESS_COUNT, "9.3e18"),
        (fields::ACCESS_COUNT, "9e999"),
        (fields::ACCESS_COUNT, "NULL"),
        (fields::ACCESS_COUNT, "X'FF'"),
        (fields::ACCESS_COUNT, "CAST(X'FF' AS TEXT)"),
        (fields::TTL_SECONDS, "-1"),
        (fields::TTL_SECONDS, "'-1'"),
        (fields::FAILURE_COUNT, "-2.0"),
        (fields::HEALTH_STATUS, "'HEALTHY'"),
        (fields::HEALTH_STATUS, "CAST(' healthy' AS BLOB)"),
        (fields::HEALTH_STATUS, "NULL"),
        (fields::PROXY_URL, "5"),
        (fields::PROXY_URL, "X'C328'"),
        (fields::SOURCE, "NULL"),
        (fields::FETCH_TIME, "'1700000000'"),
        (fields::FETCH_TIME, "X'31'"),
        (fields::EXPIRES_AT, "253402300800"),
        (fields::USERNAME_ENCRYPTED, "5"),
        (fields::PASSWORD_ENCRYPTED, "0.5"),
        (fields::EVICTED_FROM_L1, "CAST(X'FF' AS TEXT)"),
    ];
    let l3: &[(&str, &str)] = &[
        (fields::CONSECUTIVE_HEALTH_FAILURES, "-1"),
        (fields::CONSECUTIVE_HEALTH_SUCCESSES, "'-1'"),
        (fields::RECOVERY_ATTEMPT, "-1.0"),
        (fields::TOTAL_HEALTH_CHECKS, "X'2D32'"),
        (fields::TOTAL_HEALTH_CHECK_FAILURES, "NULL"),
        (fields::LAST_HEALTH_ERROR, "5"),
        (fields::LAST_HEALTH_CHECK, "'x'"),
    ];
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let conn = create_tables(kind, dir.path(), &typeless(kind));
        let cases: Vec<&(&str, &str)> = match kind {
            Kind::L2 => common.iter().collect(),
            Kind::L3 => common.iter().chain(l3).collect(),
        };
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        for (i, (column, value)) in cases.iter().enumerate() {
            let e = checked_entry(i as i64);
            tier.put(&e).unwrap();
            conn.execute(
                &format!("UPDATE {} SET {column} = {value} WHERE key = ?1", table(kind)),
                [&e.key],
            )
            .unwrap();
            let err = tier.get(&e.key).unwrap_err();
            assert!(
                matches!(err, TierError::Corrupt { .. }) && err.is_corrupt_entry() && !err.is_tier_failure(),
                "{kind:?} {column} = {value}: {err}"
            );
            assert!(err.to_string().contains(column), "{kind:?} {column} = {value}: {err}");
        }
        assert_eq!(tier.size().unwrap(), cases.len(), "nothing is removed");
    }
}

#[test]
fn integer_text_is_read_as_pydantic_reads_it() {
    // Expected values from pydantic 2.14.4 (pydantic-core 2.50.5), proxywhirl 0.3.3's
    // reference environment, validating CacheEntry(access_count=text).
    let cases: &[(&str, Option<&str>)] = &[
        ("5", Some("5")),
        (" 5 ", Some("5")),
        ("+5", Some("5")),
        ("-5", Some("-5")),
        ("05", Some("5")),
        ("0005", Some("5")),
        ("00", Some("0")),
        ("0", Some("0")),
        ("-0", Some("0")),
        ("+0", Some("0")),
        ("5.0", Some("5")),
        ("5.00", Some("5")),
        ("+5.0", Some("5")),
        ("-1.000", Some("-1")),
        (" -1.000 ", Some("-1")),
        ("0.0000", Some("0")),
        ("-0.0", Some("0")),
        ("0005.000", Some("5")),
        ("1_000", Some("1000")),
        ("+1_0", Some("10")),
        ("1_000_000", Some("1000000")),
        ("01_0", Some("10")),
        ("0_0", Some("0")),
        ("00_0.0", Some("0")),
        ("1_0.0", Some("10")),
        ("0_5.0", Some("5")),
        ("0__1", Some("1")),
        ("0__5.0", Some("5")),
        ("\u{9}7\u{a}", Some("7")),
        ("\u{b}7\u{c}\u{d}", Some("7")),
        ("\u{a0}7", Some("7")),
        ("\u{2003}7", Some("7")),
        ("\u{3000}7", Some("7")),
        ("7\u{2028}", Some("7")),
        ("\u{85}7", Some("7")),
        ("0-5", Some("-5")),
        ("+0-5", Some("-5")),
        ("0_-1", Some("-1")),
        ("0-_1", Some("-1")),
        ("0-1_0", Some("-10")),
        ("0-5.0", Some("-5")),
        ("-0_0", Some("0")),
        ("18446744073709551615", Some("18446744073709551615")),
        ("18446744073709551616", Some("18446744073709551616")),
        ("-18446744073709551616", Some("-18446744073709551616")),
        ("9223372036854775808", Some("9223372036854775808")),
        ("99999999999999999999", Some("99999999999999999999")),
        ("5.", None),
        (".0", None),
        ("-.0", None),
        ("5.5", None),
        ("5.0_0", None),
        ("1e3", None),
        ("1E3", None),
        ("1.0e3", None),
        ("0x10", None),
        ("0b11", None),
        ("", None),
        (" ", None),
        ("-", None),
        ("+", None),
        (".", None),
        ("_5", None),
        ("5_", None),
        ("1__0", None),
        ("-_5", None),
        ("--5", None),
        ("-+5", None),
        ("+-5", None),
        ("++5", None),
        ("- 5", None),
        ("5 5", None),
        ("5,0", None),
        ("inf", None),
        ("nan", None),
        ("\u{1c}7", None),
        ("\u{200b}7", None),
        ("\u{feff}7", None),
        ("\u{661}\u{662}", None),
        ("\u{ff15}", None),
        ("1\u{0}", None),
        ("0-", None),
        ("0_", None),
        ("0-00", None),
        ("0-01", None),
        ("-0-5", None),
        ("0+5", None),
        ("1-1", None),
        ("0_.0", None),
        ("0.0_", None),
        ("5_.0", None),
        ("0_1__0", None),
        ("1_0__0", None),
    ];
    for (text, want) in cases {
        let got = python_int(text).map(|n| match n {
            LaxInt { magnitude: Some(0), .. } => "0".to_owned(),
            LaxInt {
                negative,
                magnitude: Some(m),
            } => format!("{}{m}", if negative { "-" } else { "" }),
            LaxInt {
                negative,
                magnitude: None,
            } => format!("{}big", if negative { "-" } else { "" }),
        });
        let want = want.map(|w| {
            let digits = w.trim_start_matches('-');
            if digits.parse::<u64>().is_ok() {
                w.to_owned()
            } else {
                format!("{}big", if w.starts_with('-') { "-" } else { "" })
            }
        });
        assert_eq!(got, want, "{text:?}");
    }
    // At most 4300 digits (leading zeros and underscores apart).
    let digits = |n: usize| "1".repeat(n);
    assert!(python_int(&digits(4300)).is_some());
    assert!(python_int(&digits(4301)).is_none());
    assert!(python_int(&format!("-{}", digits(4300))).is_some());
    assert!(python_int(&format!("{}.0", digits(4300))).is_some());
    assert!(python_int(&format!("{}.0", digits(4301))).is_none());
    assert!(python_int(&format!("{}_1", digits(4299))).is_some());
    assert!(python_int(&format!("0{}", digits(4300))).is_some());
    assert_eq!(python_int(&"0".repeat(5000)).and_then(|n| n.magnitude), Some(0));
    // From a REAL: pydantic's float to int.
    assert_eq!(int_of_real(-0.0).map(|n| n.magnitude), Ok(Some(0)));
    assert!(int_of_real(9_223_372_036_854_774_784.0).is_ok());
    assert!(int_of_real(9_223_372_036_854_775_808.0).is_err());
    assert!(int_of_real(-9_223_372_036_854_775_808.0).is_err());
    assert!(int_of_real(f64::NAN).is_err());
}

#[test]
fn affinity_follows_sqlites_rules() {
    for (declared, affinity) in [
        ("INTEGER", Affinity::Integer),
        ("int", Affinity::Integer),
        ("BIGINT", Affinity::Integer),
        ("UNSIGNED BIG INT", Affinity::Integer),
        ("CHARINT", Affinity::Integer),
        ("FLOATING POINT", Affinity::Integer),
        ("TEXT", Affinity::Text),
        ("VARCHAR(255)", Affinity::Text),
        ("NATIVE CHARACTER(70)", Affinity::Text),
        ("CLOB", Affinity::Text),
        ("BLOB", Affinity::Blob),
        ("", Affinity::Blob),
        ("REAL", Affinity::Real),
        ("DOUBLE PRECISION", Affinity::Real),
        ("FLOAT", Affinity::Real),
        ("NUMERIC", Affinity::Numeric),
        ("DECIMAL(10,5)", Affinity::Numeric),
        ("BOOLEAN", Affinity::Numeric),
        ("DATETIME", Affinity::Numeric),
        ("STRING", Affinity::Numeric),
        ("ANY", Affinity::Numeric),
    ] {
        assert_eq!(Affinity::of_declared(declared), affinity, "{declared:?}");
    }
}

/// The database: proxywhirl's L3 with `access_count TEXT`, 20 rows written as
/// proxywhirl writes them.
fn text_access_count_l3(dir: &Path) -> Vec<CacheEntry> {
    let conn = create_tables(Kind::L3, dir, &[(fields::ACCESS_COUNT, "TEXT")]);
    let entries: Vec<CacheEntry> = (0..20)
        .map(|i| {
            let mut e = checked_entry(i);
            e.access_count = [0, 1, 9, 10, 11, 100][i as usize % 6];
            e
        })
        .collect();
    for e in &entries {
        insert_like_proxywhirl(&conn, Kind::L3, e);
    }
    let text: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM cache_entries WHERE typeof(access_count) = 'text'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, 20, "SQLite stores the counts as text");
    entries
}

#[test]
fn a_text_access_count_reads_every_row_and_takes_our_puts() {
    let dir = tempfile::tempdir().unwrap();
    let entries = text_access_count_l3(dir.path());
    let path = db_path(Kind::L3, dir.path());
    let tier = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), ring()).unwrap();
    for e in &entries {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(&stored(Kind::L3, e)));
    }
    let mut ours = checked_entry(20);
    ours.access_count = 12;
    tier.put(&ours).unwrap();
    assert_eq!(tier.get(&ours.key).unwrap(), Some(stored(Kind::L3, &ours)));
    let (kind, text): (String, String) = raw(Kind::L3, dir.path())
        .query_row(
            "SELECT typeof(access_count), access_count FROM cache_entries WHERE key = ?1",
            [&ours.key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), text.as_str()), ("text", "12"));
    tier.close().unwrap();

    // Bounded LRU: hits are added to the text (access_count + ?), eviction by last use.
    let tier = SqliteL3Tier::open(&path, &CacheTierConfig::bounded(21), ring()).unwrap();
    for _ in 0..3 {
        tier.get("k009").unwrap().unwrap();
    }
    tier.flush().unwrap();
    assert_eq!(
        tier.get("k009").unwrap().unwrap().access_count,
        entries[9].access_count + 3
    );
    tier.put(&entry(21)).unwrap();
    assert_eq!(tier.size().unwrap(), 21);
    assert!(!tier.contains("k000").unwrap(), "the least recently used went first");
    assert!(tier.contains("k009").unwrap());
}

#[test]
fn a_text_access_count_is_refused_for_lfu_eviction() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let conn = create_tables(kind, dir.path(), &[(fields::ACCESS_COUNT, "TEXT")]);
        insert_like_proxywhirl(&conn, kind, &checked_entry(1));
        let lfu = CacheTierConfig::bounded(10).with_policy(EvictionPolicy::Lfu);
        let err = open_error(kind, dir.path(), &lfu);
        assert!(matches!(err, TierError::Schema { .. }), "{kind:?}: {err}");
        let message = err.to_string();
        for part in [table(kind), "access_count", "TEXT", "LFU", "'10' before '9'"] {
            assert!(message.contains(part), "{kind:?}: {part} not in {message}");
        }
        // Refused before anything was changed; the same file opens for other policies.
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 0);
        for config in [
            CacheTierConfig::unbounded(),
            CacheTierConfig::bounded(10),
            CacheTierConfig::bounded(10).with_policy(EvictionPolicy::Fifo),
            CacheTierConfig::unbounded().with_policy(EvictionPolicy::Lfu),
        ] {
            let tier = open(kind, dir.path(), &config);
            assert_eq!(tier.peek("k001").unwrap(), Some(stored(kind, &checked_entry(1))));
        }
    }
}

/// A refusal: the tier, the declarations, and the table, column and declared type its
/// reason names.
type Refusal = (
    Kind,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn column_types_a_tier_cannot_use_are_refused_at_open() {
    let cases: &[Refusal] = &[
        (
            Kind::L2,
            &[(fields::KEY, "NUMERIC PRIMARY KEY")],
            "l2_cache",
            fields::KEY,
            "NUMERIC",
        ),
        (
            Kind::L3,
            &[(fields::SOURCE, "STRING NOT NULL")],
            "cache_entries",
            fields::SOURCE,
            "STRING",
        ),
        (Kind::L2, &[(fields::PROXY_URL, "INT")], "l2_cache", "proxy_url", "INT"),
        (
            Kind::L3,
            &[(fields::LAST_HEALTH_ERROR, "DOUBLE")],
            "cache_entries",
            fields::LAST_HEALTH_ERROR,
            "DOUBLE",
        ),
        (
            Kind::L2,
            &[(fields::FETCH_TIME, "TEXT")],
            "l2_cache",
            "fetch_time",
            "TEXT",
        ),
        (
            Kind::L3,
            &[(fields::LAST_ACCESSED, "VARCHAR(32)")],
            "cache_entries",
            fields::LAST_ACCESSED,
            "VARCHAR(32)",
        ),
        (
            Kind::L3,
            &[(fields::EXPIRES_AT, "TEXT")],
            "cache_entries",
            fields::EXPIRES_AT,
            "TEXT",
        ),
        (
            Kind::L3,
            &[(fields::NEXT_CHECK_TIME, "CLOB")],
            "cache_entries",
            fields::NEXT_CHECK_TIME,
            "CLOB",
        ),
        (
            Kind::L2,
            &[(fields::EVICTED_FROM_L1, "TEXT")],
            "l2_cache",
            fields::EVICTED_FROM_L1,
            "TEXT",
        ),
        (
            Kind::L3,
            &[(fields::EVICTED_FROM_L1, "TEXT")],
            "cache_entries",
            fields::EVICTED_FROM_L1,
            "TEXT",
        ),
        (
            Kind::L3,
            &[("check_time", "TEXT")],
            "health_history",
            "check_time",
            "TEXT",
        ),
        (
            Kind::L3,
            &[("response_time_ms", "TEXT")],
            "health_history",
            "response_time_ms",
            "TEXT",
        ),
        (
            Kind::L3,
            &[("proxy_key", "INTEGER")],
            "health_history",
            "proxy_key",
            "INTEGER",
        ),
        (Kind::L3, &[("id", "INT PRIMARY KEY")], "health_history", "id", "INT"),
    ];
    for (kind, types, table_name, column, declared) in cases {
        let dir = tempfile::tempdir().unwrap();
        let conn = create_tables(*kind, dir.path(), types);
        let err = open_error(*kind, dir.path(), &CacheTierConfig::unbounded());
        assert!(
            matches!(err, TierError::Schema { .. }) && err.is_tier_failure(),
            "{kind:?} {types:?}: {err}"
        );
        let message = err.to_string();
        for part in [*table_name, &format!("column {column} "), *declared, "expected"] {
            assert!(message.contains(part), "{kind:?} {types:?}: {part:?} not in {message}");
        }
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 0, "{kind:?} {types:?}: nothing changed");
    }
    // Every refusal is named at once.
    let dir = tempfile::tempdir().unwrap();
    create_tables(
        Kind::L2,
        dir.path(),
        &[(fields::SOURCE, "INT"), (fields::EXPIRES_AT, "TEXT")],
    );
    let message = open_error(Kind::L2, dir.path(), &CacheTierConfig::unbounded()).to_string();
    assert!(
        message.contains("column source ") && message.contains("column expires_at "),
        "{message}"
    );
}

#[test]
fn column_types_a_tier_can_use_round_trip() {
    let variants: &[(&str, &[(&str, &str)])] = &[
        ("proxywhirl's", &[]),
        (
            "other names, same affinities",
            &[
                (fields::KEY, "VARCHAR(64) PRIMARY KEY"),
                (fields::SOURCE, "NVARCHAR(100)"),
                (fields::FETCH_TIME, "DOUBLE PRECISION"),
                (fields::ACCESS_COUNT, "BIGINT"),
                (fields::EVICTED_FROM_L1, "TINYINT"),
            ],
        ),
        (
            "numeric times and counts",
            &[
                (fields::FETCH_TIME, "TIMESTAMP"),
                (fields::LAST_ACCESSED, "DATETIME"),
                (fields::EXPIRES_AT, "NUMERIC"),
                (fields::LAST_HEALTH_CHECK, "DATE"),
                (fields::NEXT_CHECK_TIME, "DECIMAL(20,6)"),
                (fields::TTL_SECONDS, "NUMERIC"),
                (fields::EVICTED_FROM_L1, "BOOLEAN"),
                ("check_time", "TIMESTAMP"),
            ],
        ),
        (
            "integer times, real counts",
            &[
                (fields::FETCH_TIME, "INTEGER"),
                (fields::LAST_ACCESSED, "INTEGER"),
                (fields::EXPIRES_AT, "INTEGER"),
                (fields::ACCESS_COUNT, "REAL"),
                (fields::FAILURE_COUNT, "FLOAT"),
                (fields::EVICTED_FROM_L1, "REAL"),
            ],
        ),
        (
            "text counts, credentials and status anything",
            &[
                (fields::ACCESS_COUNT, "TEXT"),
                (fields::TTL_SECONDS, "VARCHAR(10)"),
                (fields::CONSECUTIVE_HEALTH_FAILURES, "TEXT"),
                (fields::USERNAME_ENCRYPTED, "TEXT"),
                (fields::PASSWORD_ENCRYPTED, "INTEGER"),
                (fields::HEALTH_STATUS, "INT"),
                ("created_at", "TEXT"),
                ("updated_at", "TEXT"),
                ("status", "NUMERIC"),
            ],
        ),
    ];
    for kind in KINDS {
        for (name, types) in variants.iter().copied().chain([("typeless", &typeless(kind)[..])]) {
            let dir = tempfile::tempdir().unwrap();
            create_tables(kind, dir.path(), types);
            let tier = open(kind, dir.path(), &CacheTierConfig::bounded(3));
            let e = full_entry();
            tier.put(&e).unwrap();
            assert_eq!(tier.get(&e.key).unwrap(), Some(stored(kind, &e)), "{kind:?} {name}");
            // A credential is a BLOB whatever the column's affinity.
            let blob: String = raw(kind, dir.path())
                .query_row(
                    &format!(
                        "SELECT typeof(username_encrypted) || typeof(password_encrypted) FROM {}",
                        table(kind)
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(blob, "blobblob", "{kind:?} {name}");
            // Comparisons and orders stay numeric: LRU eviction and the expiry boundary.
            tier.clear().unwrap();
            for i in [2, 10, 1] {
                tier.put(&entry(i)).unwrap();
            }
            tier.put(&entry(3)).unwrap();
            assert_eq!(sorted_keys(&*tier), ["k002", "k003", "k010"], "{kind:?} {name}");
            let at = to_unix_seconds(T0) + 365.0 * 86_400.0;
            assert_eq!(tier.cleanup_expired(from_unix_seconds(at + 2.5).unwrap()).unwrap(), 1);
            assert_eq!(sorted_keys(&*tier), ["k003", "k010"], "{kind:?} {name}");
        }
    }
}

#[test]
fn a_strict_table_needs_proxywhirls_types_or_any() {
    fn strict(kind: Kind, dir: &Path, types: &[(&str, &str)]) {
        let path = db_path(kind, dir);
        fs_create_parent(&path);
        let conn = Connection::open(&path).unwrap();
        let columns: Vec<(&str, &str)> = match kind {
            Kind::L2 => L2_DDL.to_vec(),
            Kind::L3 => L3_DDL.to_vec(),
        };
        // STRICT allows no DEFAULT of another type and only its six type names.
        let plain: Vec<(&str, &str)> = columns
            .iter()
            .map(|(c, d)| {
                (
                    *c,
                    if *c == "key" {
                        "TEXT PRIMARY KEY"
                    } else {
                        d.split(' ').next().unwrap()
                    },
                )
            })
            .collect();
        conn.execute_batch(&format!("{} STRICT", ddl(table(kind), &plain, types, "")))
            .unwrap();
        if kind == Kind::L3 {
            conn.execute_batch(&ddl("health_history", &HISTORY_DDL, &[], ""))
                .unwrap();
        }
    }
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        strict(
            kind,
            dir.path(),
            &[(fields::ACCESS_COUNT, "ANY"), (fields::SOURCE, "ANY")],
        );
        let tier = open(kind, dir.path(), &CacheTierConfig::unbounded());
        let e = full_entry();
        tier.put(&e).unwrap();
        assert_eq!(tier.get(&e.key).unwrap(), Some(stored(kind, &e)), "{kind:?}");
        drop(tier);

        let dir = tempfile::tempdir().unwrap();
        strict(kind, dir.path(), &[(fields::USERNAME_ENCRYPTED, "TEXT")]);
        let message = open_error(kind, dir.path(), &CacheTierConfig::unbounded()).to_string();
        for part in [table(kind), "column username_encrypted ", "STRICT", "BLOB or ANY"] {
            assert!(message.contains(part), "{kind:?}: {part:?} not in {message}");
        }
    }
}

/// The row codec reads a field at its [`Field::index`](crate::entry_codec::Field::index): every
/// statement that selects an entry's columns lists them in that order (then the rowid), and
/// the health-detail statement lists the eight health columns in theirs.
#[test]
fn the_statements_select_the_fields_in_the_codecs_order() {
    use crate::entry_codec::Field;
    let selected = |sql: &str| -> Vec<String> {
        let list = sql.split_once("SELECT ").unwrap().1.split_once(" FROM").unwrap().0;
        list.split(',').map(|c| c.trim().to_owned()).collect()
    };
    for (layout, n) in [(Layout::L2, 13), (Layout::L3, 21)] {
        let fields: Vec<&str> = Field::ALL[..n].iter().map(|f| f.name()).collect();
        assert_eq!(layout.rowid_column(), n);
        let s = layout.statements();
        assert_eq!(selected(s.get), fields, "{layout:?} get");
        let with_rowid: Vec<&str> = fields.iter().copied().chain(["rowid"]).collect();
        for sql in [
            s.candidates_lru,
            s.candidates_lfu,
            s.candidates_fifo,
            s.expired,
            s.all_rows,
        ] {
            assert_eq!(selected(sql), with_rowid, "{layout:?}: {sql}");
        }
    }
    assert_eq!(
        selected(Layout::L3.statements().health_detail),
        fields::HEALTH_DETAIL_FIELDS
    );
}
