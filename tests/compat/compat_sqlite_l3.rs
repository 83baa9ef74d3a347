//! The SQLite L3 tier against proxywhirl 0.3.3's `SQLiteCacheTier` database, both ways:
//! - every entry of the fixtures' `l3/proxywhirl.db` reads back as Python read it
//!   (manifest.json), field by field, to the microsecond, credentials decrypted;
//! - a database we create has exactly proxywhirl's two tables, six indexes and foreign key,
//!   and what we write reads back by proxywhirl's rules (`SELECT *` mapped by position);
//! - an older database without the health columns gets them (proxywhirl's column migration);
//! - an update keeps `created_at` (proxywhirl resets it) and moves `updated_at`.

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::sqlite::SCHEMA_VERSION;
use pw_cache::tiers::sqlite_l3::{HEALTH_COLUMNS, SqliteL3Tier};
use pw_cache::{CacheEntry, CacheTierConfig, HealthStatus, OffsetDateTime, Secret};
use pw_cache_tests::{
    assert_tier_matches_manifest, fernet_reference, fixture_keys, fixture_ring, proxywhirl_fixtures, sqlite_schema,
};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

const DB: &str = "proxywhirl.db";

/// A directory holding a copy of the fixtures' L3 database (the fixtures are never written).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(proxywhirl_fixtures().join("l3").join(DB), dir.path().join(DB)).unwrap();
    dir
}

fn fixture_conn() -> (tempfile::TempDir, Connection) {
    let dir = fixture_copy();
    let conn = Connection::open(dir.path().join(DB)).unwrap();
    (dir, conn)
}

fn full_schema(conn: &Connection) -> Vec<String> {
    let mut out = sqlite_schema(conn, "cache_entries");
    out.extend(sqlite_schema(conn, "health_history"));
    out
}

#[test]
fn every_fixture_entry_reads_back_as_python_read_it() {
    let dir = fixture_copy();
    let tier = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_tier_matches_manifest(&tier, "sqlite_l3");
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn opening_proxywhirls_database_reports_orphans_and_changes_no_table() {
    let (_original_dir, original) = fixture_conn();
    let dir = fixture_copy();
    let tier = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let report = tier.open_report();
    assert_eq!(report.schema_upgraded_from, Some(0));
    assert!(report.added_columns.is_empty(), "{:?}", report.added_columns);
    // manifest: 68 history rows, 3 of them orphans (fx-orphan-0..2).
    assert_eq!(report.orphaned_history, 3);
    let conn = Connection::open(tier.path()).unwrap();
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(full_schema(&conn), full_schema(&original));
    let history: i64 = conn
        .query_row("SELECT COUNT(*) FROM health_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 68, "orphans are reported, not removed");
}

#[test]
fn a_new_database_has_exactly_proxywhirls_tables_indexes_and_foreign_key() {
    let (_fixture_dir, fixture) = fixture_conn();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").join("nested").join(DB);
    let tier = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_eq!(tier.open_report().schema_upgraded_from, Some(0));
    assert_eq!(tier.open_report().orphaned_history, 0);
    let ours = Connection::open(&path).unwrap();
    let want = full_schema(&fixture);
    assert!(want.iter().any(|r| r.contains("CASCADE")), "{want:?}");
    assert_eq!(full_schema(&ours), want);
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
}

/// The reference's column list for `SELECT * FROM cache_entries` (SQLiteCacheTier.get).
const REFERENCE_COLUMNS: [&str; 23] = [
    "key",
    "proxy_url",
    "username_encrypted",
    "password_encrypted",
    "source",
    "fetch_time",
    "last_accessed",
    "access_count",
    "ttl_seconds",
    "expires_at",
    "health_status",
    "failure_count",
    "created_at",
    "updated_at",
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
    "evicted_from_l1",
];

/// Python's `datetime.timestamp()`: whole microseconds since the epoch / 10⁶ (exact below
/// 2^53 µs, which these dates are).
fn python_timestamp(t: OffsetDateTime) -> f64 {
    let micros = (t.unix_timestamp_nanos() / 1000) as i64;
    micros as f64 / 1e6
}

fn health_entry(i: u64) -> CacheEntry {
    let at = OffsetDateTime::from_unix_timestamp(1_795_215_600).unwrap() + std::time::Duration::from_micros(i * 7);
    let mut e = CacheEntry::new_at(format!("http://10.3.0.{i}:8080"), "api", 600 + i, at)
        .unwrap()
        .with_credentials(
            i.is_multiple_of(2).then(|| Secret::new(format!("user{i}"))),
            (!i.is_multiple_of(3)).then(|| Secret::new(if i == 1 { String::new() } else { format!("pw{i}") })),
        );
    e.health_status = HealthStatus::ALL[i as usize % HealthStatus::ALL.len()];
    e.access_count = i;
    e.failure_count = i + 1;
    e.evicted_from_l1 = i % 2 == 1;
    if i.is_multiple_of(2) {
        e.last_health_check = Some(at + std::time::Duration::from_secs(30));
        e.next_check_time = Some(at + std::time::Duration::from_secs(90));
        e.last_health_error = Some(format!("error {i}"));
    }
    e.consecutive_health_failures = i + 2;
    e.consecutive_health_successes = i + 3;
    e.recovery_attempt = i + 4;
    e.total_health_checks = i + 5;
    e.total_health_check_failures = i + 6;
    e
}

#[test]
fn what_we_write_reads_back_by_proxywhirls_rules() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let entries: Vec<CacheEntry> = (0..6).map(health_entry).collect();
    let before = python_timestamp(OffsetDateTime::now_utc());
    for e in &entries {
        tier.put(e).unwrap();
    }
    let (current_key, _) = fixture_keys();
    let conn = Connection::open(tier.path()).unwrap();
    for e in &entries {
        let row: Vec<SqlValue> = conn
            .query_row("SELECT * FROM cache_entries WHERE key = ?", [&e.key], |r| {
                (0..23).map(|i| r.get::<_, SqlValue>(i)).collect()
            })
            .unwrap();
        let col = |name: &str| &row[REFERENCE_COLUMNS.iter().position(|c| *c == name).unwrap()];
        let credential = |value: &SqlValue, want: &Option<Secret>| match (value, want) {
            (SqlValue::Null, None) => {}
            (SqlValue::Blob(token), Some(secret)) => {
                let opened = fernet_reference::open(&current_key, token).expect("a Fernet token of the current key");
                assert_eq!(opened.plaintext, secret.expose_secret().as_bytes(), "{}", e.key);
            }
            other => panic!("{}: credential stored as {other:?}", e.key),
        };
        let time = |t: Option<OffsetDateTime>| t.map_or(SqlValue::Null, |t| SqlValue::Real(python_timestamp(t)));
        let int = |n: u64| SqlValue::Integer(n as i64);
        assert_eq!(col("key"), &SqlValue::Text(e.key.clone()));
        assert_eq!(col("proxy_url"), &SqlValue::Text(e.proxy_url.clone()));
        credential(col("username_encrypted"), &e.username);
        credential(col("password_encrypted"), &e.password);
        assert_eq!(col("source"), &SqlValue::Text(e.source.clone()));
        assert_eq!(col("fetch_time"), &time(Some(e.fetch_time)));
        assert_eq!(col("last_accessed"), &time(Some(e.last_accessed)));
        assert_eq!(col("access_count"), &int(e.access_count));
        assert_eq!(col("ttl_seconds"), &int(e.ttl_seconds));
        assert_eq!(col("expires_at"), &time(Some(e.expires_at)));
        assert_eq!(
            col("health_status"),
            &SqlValue::Text(e.health_status.as_str().to_owned())
        );
        assert_eq!(col("failure_count"), &int(e.failure_count));
        for stamp in ["created_at", "updated_at"] {
            match col(stamp) {
                SqlValue::Real(x) => assert!(*x >= before, "{stamp} {x} is the time of the put"),
                other => panic!("{stamp} is {other:?}"),
            }
        }
        assert_eq!(col("last_health_check"), &time(e.last_health_check));
        assert_eq!(col("consecutive_health_failures"), &int(e.consecutive_health_failures));
        assert_eq!(
            col("consecutive_health_successes"),
            &int(e.consecutive_health_successes)
        );
        assert_eq!(col("recovery_attempt"), &int(e.recovery_attempt));
        assert_eq!(col("next_check_time"), &time(e.next_check_time));
        assert_eq!(
            col("last_health_error"),
            &e.last_health_error.clone().map_or(SqlValue::Null, SqlValue::Text)
        );
        assert_eq!(col("total_health_checks"), &int(e.total_health_checks));
        assert_eq!(col("total_health_check_failures"), &int(e.total_health_check_failures));
        assert_eq!(col("evicted_from_l1"), &SqlValue::Integer(i64::from(e.evicted_from_l1)));
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e));
    }
}

#[test]
fn fixture_entries_written_again_have_the_same_values() {
    let source_dir = fixture_copy();
    let source = SqliteL3Tier::open(
        source_dir.path().join(DB),
        &CacheTierConfig::unbounded(),
        fixture_ring(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    for key in source.keys().unwrap() {
        copy.put(&source.get(&key).unwrap().unwrap()).unwrap();
    }
    let rows = |conn: &Connection| -> Vec<Vec<SqlValue>> {
        let columns: Vec<String> = REFERENCE_COLUMNS
            .iter()
            .map(|c| match *c {
                "username_encrypted" | "password_encrypted" => format!("typeof({c})"),
                _ => (*c).to_owned(),
            })
            .filter(|c| c != "created_at" && c != "updated_at")
            .collect();
        let sql = format!("SELECT {} FROM cache_entries ORDER BY key", columns.join(", "));
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| (0..columns.len()).map(|i| r.get::<_, SqlValue>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let ours = rows(&Connection::open(copy.path()).unwrap());
    let theirs = rows(&Connection::open(source.path()).unwrap());
    assert_eq!(ours.len(), 200);
    // Every REAL is the same double Python wrote: the microsecond conversions are Python's.
    assert_eq!(ours, theirs);
}

#[test]
fn an_update_keeps_created_at_and_moves_updated_at() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let mut e = health_entry(2);
    tier.put(&e).unwrap();
    let conn = Connection::open(tier.path()).unwrap();
    // Mark the row's stamps, then update the entry through the tier.
    conn.execute(
        "UPDATE cache_entries SET created_at = 1.5, updated_at = 1.5 WHERE key = ?1",
        [&e.key],
    )
    .unwrap();
    e.access_count += 10;
    e.health_status = HealthStatus::Dead;
    tier.put(&e).unwrap();
    let (created, updated): (f64, f64) = conn
        .query_row(
            "SELECT created_at, updated_at FROM cache_entries WHERE key = ?1",
            [&e.key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(created, 1.5, "created_at is kept");
    assert!(updated > 1.5, "updated_at moves to the time of the put");
    assert_eq!(tier.get(&e.key).unwrap().unwrap(), e);
}

/// `cache_entries` as it was before proxywhirl's health monitoring (no health columns).
const OLD_CACHE_ENTRIES: &str = "CREATE TABLE cache_entries (
    key TEXT PRIMARY KEY,
    proxy_url TEXT NOT NULL,
    username_encrypted BLOB,
    password_encrypted BLOB,
    source TEXT NOT NULL,
    fetch_time REAL NOT NULL,
    last_accessed REAL NOT NULL,
    access_count INTEGER DEFAULT 0,
    ttl_seconds INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    health_status TEXT DEFAULT 'unknown',
    failure_count INTEGER DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)";

#[test]
fn an_older_database_gets_the_health_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(OLD_CACHE_ENTRIES).unwrap();
        conn.execute(
            "INSERT INTO cache_entries VALUES ('old-1', 'http://10.9.9.9:80', NULL, NULL, 'fetched', \
             4098153662.091362, 4098153662.091362, 4, 3600, 4098157262.091362, 'healthy', 1, 1.0, 2.0)",
            [],
        )
        .unwrap();
    }
    let tier = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let report = tier.open_report();
    assert_eq!(report.schema_upgraded_from, Some(0));
    let all: Vec<&str> = HEALTH_COLUMNS.iter().map(|(c, _)| *c).collect();
    assert_eq!(report.added_columns, all);
    // The old row reads with the new columns at their defaults.
    let e = tier.get("old-1").unwrap().unwrap();
    assert!(
        e.to_json_line()
            .contains(r#""fetch_time": "2099-11-12T08:01:02.091362+00:00""#)
    );
    assert_eq!(
        (e.access_count, e.health_status, e.failure_count),
        (4, HealthStatus::Healthy, 1)
    );
    assert_eq!(
        (e.last_health_check, e.total_health_checks, e.evicted_from_l1),
        (None, 0, false)
    );
    // The upgraded database is proxywhirl's current schema: the columns were added in its
    // order, at the end, so even its `SELECT *` by position reads it.
    let (_fixture_dir, fixture) = fixture_conn();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(full_schema(&conn), full_schema(&fixture));
    drop(tier);
    let again = SqliteL3Tier::open(&path, &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_eq!(again.open_report().schema_upgraded_from, None);
    assert!(again.open_report().added_columns.is_empty());
}

#[test]
fn the_bound_holds_where_proxywhirl_ignores_it() {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL3Tier::open(dir.path().join(DB), &CacheTierConfig::bounded(10), fixture_ring()).unwrap();
    for e in (0..50).map(|i| CacheEntry::new(format!("http://10.1.0.{i}:80"), "fetched", 3600).unwrap()) {
        tier.put(&e).unwrap();
    }
    assert_eq!(tier.size().unwrap(), 10);
    assert_eq!(tier.evictions(), 40);
}
