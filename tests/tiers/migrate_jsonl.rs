//! `SqliteL2Tier::migrate_from_jsonl` (proxywhirl's `DiskCacheTier.migrate_from_jsonl`):
//! the fixtures' JSONL directory migrates to the same entries as the fixtures' SQLite L2
//! database; a second run writes nothing; damaged lines and unreadable entries are counted and
//! described, not fatal; a failure half-way leaves the database as it was; the source is only
//! read; the bound holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pw_cache::crypto::{FernetKey, KeyRing};
use pw_cache::tiers::CacheTier;
use pw_cache::tiers::jsonl::{encode_line, shard_file_name, shard_of};
use pw_cache::tiers::sqlite_l2::{DB_FILE_NAME, MigrationReport, SqliteL2Tier};
use pw_cache::{CacheEntry, CacheTierConfig, EvictionPolicy, Secret, TierError};
use pw_cache_tests::{fixture_ring, manifest, proxywhirl_fixtures};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

/// A copy of the fixtures' `jsonl_l2/`.
fn jsonl_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(proxywhirl_fixtures().join("jsonl_l2")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Every row of `l2_cache`, every column, in key order.
fn rows(tier: &SqliteL2Tier) -> Vec<Vec<SqlValue>> {
    let conn = Connection::open(tier.path()).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM l2_cache ORDER BY key").unwrap();
    stmt.query_map([], |r| (0..13).map(|i| r.get::<_, SqlValue>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn new_l2(config: &CacheTierConfig) -> (tempfile::TempDir, SqliteL2Tier) {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteL2Tier::open(dir.path(), config, fixture_ring()).unwrap();
    (dir, tier)
}

#[test]
fn the_fixtures_jsonl_migrates_to_the_fixtures_l2_database() {
    let source = jsonl_copy();
    let before = snapshot(source.path());
    let (_dir, tier) = new_l2(&CacheTierConfig::unbounded());
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!(
        report,
        MigrationReport {
            migrated: 200,
            ..MigrationReport::default()
        }
    );
    assert_eq!(snapshot(source.path()), before, "the source is only read");

    let fixture_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        proxywhirl_fixtures().join("sqlite_l2").join(DB_FILE_NAME),
        fixture_dir.path().join(DB_FILE_NAME),
    )
    .unwrap();
    let python = SqliteL2Tier::open(fixture_dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let mut keys = tier.keys().unwrap();
    keys.sort();
    let mut want = python.keys().unwrap();
    want.sort();
    assert_eq!(keys, want);
    for key in &keys {
        assert_eq!(tier.get(key).unwrap(), python.get(key).unwrap(), "{key}");
    }
}

#[test]
fn a_second_run_writes_nothing() {
    let source = jsonl_copy();
    let (_dir, tier) = new_l2(&CacheTierConfig::unbounded());
    tier.migrate_from_jsonl(source.path()).unwrap();
    let first = rows(&tier);
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!((report.migrated, report.skipped, report.failed), (0, 200, 0));
    // Not even the credential tokens (which a rewrite would re-encrypt) changed.
    assert_eq!(rows(&tier), first);

    // An entry changed in the database is put back as the JSONL has it.
    let key = tier.keys().unwrap().into_iter().next().unwrap();
    let original = tier.get(&key).unwrap().unwrap();
    let mut changed = original.clone();
    changed.access_count += 1000;
    tier.put(&changed).unwrap();
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!((report.migrated, report.skipped), (1, 199));
    assert_eq!(tier.get(&key).unwrap().unwrap(), original);
}

#[test]
fn damaged_lines_and_unreadable_entries_are_reported_not_fatal() {
    let source = jsonl_copy();
    let ring = fixture_ring();
    let alien_ring = KeyRing::new(FernetKey::generate(), []);
    let alien = CacheEntry::new("http://10.8.0.1:80", "user", 3600)
        .unwrap()
        .with_key("alien")
        .with_credentials(None, Some(Secret::new("alien-password")));
    // An update of a fixture entry, appended after its line: the last line wins.
    let first_line = std::fs::read_to_string(source.path().join(shard_file_name(0))).unwrap();
    let first_line = first_line.lines().next().unwrap();
    let mut updated = pw_cache::tiers::jsonl::decode_line(first_line.as_bytes(), &ring).unwrap();
    updated.failure_count = 99;
    let additions = [
        (shard_of("alien"), encode_line(&alien, &alien_ring).unwrap()),
        (3, "{\"key\": \"bad-ttl\", \"ttl_seconds\": -1}".to_owned()),
        (3, "not json at all".to_owned()),
        (4, "42".to_owned()),
        (5, "   ".to_owned()),
        (shard_of(&updated.key), encode_line(&updated, &ring).unwrap()),
    ];
    for (shard, line) in &additions {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(source.path().join(shard_file_name(*shard)))
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }

    let (_dir, tier) = new_l2(&CacheTierConfig::unbounded());
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!(report.migrated, 200);
    assert_eq!(report.skipped, 0);
    assert_eq!(report.failed, 4, "{:?}", report.failures);
    assert_eq!(report.superseded, 1);
    let whats: Vec<&str> = report.failures.iter().map(|(w, _)| w.as_str()).collect();
    assert!(whats.contains(&"alien") && whats.contains(&"bad-ttl"), "{whats:?}");
    let why = |what: &str| {
        report
            .failures
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(why("bad-ttl").contains("expected u64"), "{}", why("bad-ttl"));
    let dir_text = source.path().display().to_string();
    assert!(why(&dir_text).contains("1 line(s) not JSON"), "{}", why(&dir_text));
    assert!(
        why(&dir_text).contains("1 line(s) JSON but not an entry"),
        "{}",
        why(&dir_text)
    );
    let all = format!("{report:?}");
    assert!(!all.contains("alien-password"), "no secret in the report");
    assert_eq!(tier.size().unwrap(), 200);
    assert_eq!(tier.get(&updated.key).unwrap().unwrap().failure_count, 99);
    assert!(tier.get("alien").unwrap().is_none());
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn a_failure_half_way_leaves_the_database_as_it_was() {
    let source = jsonl_copy();
    let (_dir, tier) = new_l2(&CacheTierConfig::unbounded());
    let held = CacheEntry::new("http://10.9.0.1:80", "user", 3600).unwrap();
    tier.put(&held).unwrap();
    // Entries are written in key order: refuse one in the middle.
    let conn = Connection::open(tier.path()).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON l2_cache WHEN NEW.key = '7c6849cb653196df' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .unwrap();
    let err = tier.migrate_from_jsonl(source.path()).unwrap_err();
    assert!(matches!(err, TierError::Sqlite { .. }), "{err}");
    assert_eq!(
        tier.keys().unwrap(),
        std::slice::from_ref(&held.key),
        "nothing of the migration is applied"
    );
    conn.execute_batch("DROP TRIGGER refuse").unwrap();
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!(report.migrated, 200);
    assert_eq!(tier.size().unwrap(), 201);
}

#[test]
fn a_missing_directory_is_an_error_about_the_source() {
    let (dir, tier) = new_l2(&CacheTierConfig::unbounded());
    let missing = dir.path().join("no-such-dir");
    for _ in 0..3 {
        let err = tier.migrate_from_jsonl(&missing).unwrap_err();
        assert!(matches!(err, TierError::Io { .. }), "{err}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }
    assert!(!missing.exists(), "not created");
    assert!(!tier.health().is_disabled(), "the source's fault, not the tier's");
    let file = dir.path().join(DB_FILE_NAME);
    assert!(matches!(tier.migrate_from_jsonl(&file), Err(TierError::Io { .. })));
}

#[test]
fn the_bound_holds_during_a_migration() {
    let source = jsonl_copy();
    let config = CacheTierConfig::bounded(50).with_policy(EvictionPolicy::Fifo);
    let (_dir, tier) = new_l2(&config);
    let report = tier.migrate_from_jsonl(source.path()).unwrap();
    assert_eq!(report.migrated, 200);
    assert_eq!(tier.evictions(), 150);
    // FIFO: the last keys written (key order) are the ones left.
    let mut keys = tier.keys().unwrap();
    keys.sort();
    let all: Vec<String> = manifest()["stores"]["jsonl_l2"]["python_keys_sorted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 50);
    assert_eq!(keys, all[all.len() - 50..]);
}
