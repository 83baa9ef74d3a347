//! The SQLite L2 tier against proxywhirl 0.3.3's `DiskCacheTier` database, both ways:
//! - every entry of the fixtures' `sqlite_l2/l2_cache.db` reads back as Python read it
//!   (manifest.json), field by field, to the microsecond, credentials decrypted;
//! - a database we create has exactly proxywhirl's table and indexes, and what we write reads
//!   back by proxywhirl's rules (`SELECT *` mapped by position, `datetime.fromtimestamp`,
//!   Fernet tokens as BLOBs);
//! - an entry read from the fixture and written again gives the same column values.

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::sqlite::SCHEMA_VERSION;
use pw_cache::tiers::sqlite_l2::{DB_FILE_NAME, SqliteL2Tier};
use pw_cache::{CacheEntry, CacheTierConfig, HealthStatus, OffsetDateTime, Secret};
use pw_cache_tests::{
    assert_tier_matches_manifest, fernet_reference, fixture_keys, fixture_ring, proxywhirl_fixtures, sqlite_schema,
};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

/// A directory holding a copy of the fixtures' L2 database (the fixtures are never written).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        proxywhirl_fixtures().join("sqlite_l2").join(DB_FILE_NAME),
        dir.path().join(DB_FILE_NAME),
    )
    .unwrap();
    dir
}

fn fixture_conn() -> (tempfile::TempDir, Connection) {
    let dir = fixture_copy();
    let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    (dir, conn)
}

#[test]
fn every_fixture_entry_reads_back_as_python_read_it() {
    let dir = fixture_copy();
    let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_tier_matches_manifest(&tier, "sqlite_l2");
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn opening_proxywhirls_database_records_the_schema_version_and_changes_no_table() {
    let (_original_dir, original) = fixture_conn();
    let dir = fixture_copy();
    let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_eq!(tier.schema_upgraded_from(), Some(0));
    let conn = Connection::open(tier.path()).unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(sqlite_schema(&conn, "l2_cache"), sqlite_schema(&original, "l2_cache"));
    drop(tier);
    let again = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_eq!(
        again.schema_upgraded_from(),
        None,
        "a current database is not upgraded again"
    );
}

#[test]
fn a_new_database_has_exactly_proxywhirls_table_and_indexes() {
    let (_fixture_dir, fixture) = fixture_conn();
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL2Tier::open(dir.path().join("l2"), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_eq!(tier.path(), dir.path().join("l2").join(DB_FILE_NAME));
    let ours = Connection::open(tier.path()).unwrap();
    let want = sqlite_schema(&fixture, "l2_cache");
    assert!(want.len() > 13 + 2, "{want:?}");
    assert_eq!(sqlite_schema(&ours, "l2_cache"), want);
    // Even the statements kept in sqlite_master are proxywhirl's, byte for byte.
    let sql = |conn: &Connection| -> Vec<(String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(sql(&ours), sql(&fixture));
    let mode: String = ours.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

/// An entry of every kind the reference handles: credentials (one empty), offsets, IPv6.
fn varied_entries() -> Vec<CacheEntry> {
    let at = OffsetDateTime::from_unix_timestamp(1_795_215_600).unwrap() + time_micros(123_456);
    let mut out = Vec::new();
    for i in 0..6u32 {
        let url = match i {
            0 => "http://10.0.0.1:8080".to_owned(),
            1 => "http://[2001:db8::1]:3128".to_owned(),
            2 => "socks5://user:pass@proxy.example:1080".to_owned(),
            _ => format!("http://прокси-{i}.example:80"),
        };
        let mut e =
            CacheEntry::new_at(url, "источник", 3600 * u64::from(i + 1), at + time_micros(u64::from(i))).unwrap();
        e.access_count = u64::from(i) * 3;
        e.health_status = HealthStatus::ALL[i as usize % HealthStatus::ALL.len()];
        e.failure_count = u64::from(i);
        e.evicted_from_l1 = i % 2 == 0;
        let e = match i {
            0 => e,
            1 => e.with_credentials(Some(Secret::new("alice")), Some(Secret::new(""))),
            2 => e.with_credentials(None, Some(Secret::new("pässwörd-🔑"))),
            3 => e.with_credentials(Some(Secret::new("bob")), None),
            _ => e.with_credentials(Some(Secret::new(format!("u{i}"))), Some(Secret::new("x".repeat(500)))),
        };
        out.push(if i == 5 { e.with_key("custom-ключ-5") } else { e });
    }
    out
}

fn time_micros(n: u64) -> std::time::Duration {
    std::time::Duration::from_micros(n)
}

/// Python's `datetime.timestamp()`: whole microseconds since the epoch / 10⁶ (exact below
/// 2^53 µs, which these dates are).
fn python_timestamp(t: OffsetDateTime) -> f64 {
    let micros = (t.unix_timestamp_nanos() / 1000) as i64;
    micros as f64 / 1e6
}

#[test]
fn what_we_write_reads_back_by_proxywhirls_rules() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let entries = varied_entries();
    for e in &entries {
        tier.put(e).unwrap();
    }
    let (current_key, _) = fixture_keys();
    let conn = Connection::open(tier.path()).unwrap();
    for e in &entries {
        // DiskCacheTier.get: SELECT * and a list of 13 column names, by position.
        let row: Vec<SqlValue> = conn
            .query_row("SELECT * FROM l2_cache WHERE key = ?", [&e.key], |r| {
                (0..13).map(|i| r.get::<_, SqlValue>(i)).collect()
            })
            .unwrap();
        let credential = |value: &SqlValue, want: &Option<Secret>| match (value, want) {
            (SqlValue::Null, None) => {}
            (SqlValue::Blob(token), Some(secret)) => {
                let opened = fernet_reference::open(&current_key, token).expect("a Fernet token of the current key");
                assert_eq!(opened.plaintext, secret.expose_secret().as_bytes(), "{}", e.key);
            }
            other => panic!("{}: credential stored as {other:?}", e.key),
        };
        assert_eq!(row[0], SqlValue::Text(e.key.clone()));
        assert_eq!(row[1], SqlValue::Text(e.proxy_url.clone()));
        credential(&row[2], &e.username);
        credential(&row[3], &e.password);
        assert_eq!(row[4], SqlValue::Text(e.source.clone()));
        assert_eq!(row[5], SqlValue::Real(python_timestamp(e.fetch_time)), "{}", e.key);
        assert_eq!(row[6], SqlValue::Real(python_timestamp(e.last_accessed)));
        assert_eq!(row[7], SqlValue::Integer(e.access_count as i64));
        assert_eq!(row[8], SqlValue::Integer(e.ttl_seconds as i64));
        assert_eq!(row[9], SqlValue::Real(python_timestamp(e.expires_at)));
        assert_eq!(row[10], SqlValue::Text(e.health_status.as_str().to_owned()));
        assert_eq!(row[11], SqlValue::Integer(e.failure_count as i64));
        assert_eq!(row[12], SqlValue::Integer(i64::from(e.evicted_from_l1)));
    }
}

#[test]
fn fixture_entries_written_again_have_the_same_values() {
    let source_dir = fixture_copy();
    let source = SqliteL2Tier::open(source_dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = SqliteL2Tier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    for key in source.keys().unwrap() {
        copy.put(&source.get(&key).unwrap().unwrap()).unwrap();
    }
    let rows = |conn: &Connection| -> Vec<Vec<SqlValue>> {
        let mut stmt = conn
            .prepare(
                "SELECT key, proxy_url, source, fetch_time, last_accessed, access_count, ttl_seconds, expires_at, \
                 health_status, failure_count, evicted_from_l1, typeof(username_encrypted), \
                 typeof(password_encrypted) FROM l2_cache ORDER BY key",
            )
            .unwrap();
        stmt.query_map([], |r| (0..13).map(|i| r.get::<_, SqlValue>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let ours = rows(&Connection::open(copy.path()).unwrap());
    let theirs = rows(&Connection::open(source.path()).unwrap());
    assert_eq!(ours.len(), 200);
    // Every REAL is the same double Python wrote: the microsecond conversions are Python's.
    assert_eq!(ours, theirs);
    for e in source.keys().unwrap() {
        assert_eq!(copy.get(&e).unwrap(), source.get(&e).unwrap(), "{e}");
    }
}

#[test]
fn the_bound_holds_where_proxywhirl_ignores_it() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL2Tier::open(dir.path(), &CacheTierConfig::bounded(10), fixture_ring()).unwrap();
    for e in (0..50).map(|i| CacheEntry::new(format!("http://10.1.0.{i}:80"), "fetched", 3600).unwrap()) {
        tier.put(&e).unwrap();
    }
    assert_eq!(tier.size().unwrap(), 10);
    assert_eq!(tier.evictions(), 40);
    let n: i64 = Connection::open(tier.path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM l2_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10);
}
