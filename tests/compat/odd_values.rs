//! The tiers against `tests/fixtures/proxywhirl-0.3.3-odd-values/`: stores holding values the
//! real proxywhirl 0.3.3 reads back although a strict reader would reject them (access_count
//! -1, UTC offsets with microseconds, `evicted_from_l1 = 'yes'`, BLOB proxy URLs, numbers as
//! TEXT, JSONL numbers as strings, timestamps as Unix numbers ...), and, for contrast, values
//! proxywhirl fails on. `manifest.json` says, entry by entry, what Python's `tier.get()` returned
//! (see the fixture's README.md for the cases and how they were made).
//!
//! For every entry Python read (`"python_get": "ok"`), our tier's `get` returns an entry equal to
//! Python's field by field, all 21 fields, credentials decrypted. Where Python holds a value our
//! model cannot, the expected value is the **nearest legal one**:
//! - a count outside `u64` (access_count -1, 2**64 + 5) reads as the nearest bound (0, u64::MAX);
//! - a timestamp is the same instant to the microsecond (how Python compares aware datetimes) with
//!   Python's UTC offset in whole seconds: an offset with microseconds (`+01:00:00.000007`, which
//!   `time`'s `UtcOffset` cannot hold) keeps its whole seconds (`+01:00:00`); a naive timestamp is
//!   UTC (the rule of `pw_cache::model::timestamp`: proxywhirl writes UTC);
//! - a string with a lone surrogate (a Python `str` holds one, a Rust `String` cannot) reads with
//!   U+FFFD in its place (the manifest's value already has it).
//!
//! For every entry Python fails on (`"python_get": "error"`), our tier reports it unreadable
//! (`Err(e)` with `e.is_corrupt_entry()`, not a tier failure), and its stored bytes (the JSONL
//! line; every column of the SQLite row) are unchanged afterwards.
//!
//! Each store's test checks every entry, then fails once listing every difference, so one run
//! shows all of them.

use std::path::{Path, PathBuf};

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::jsonl::JsonlTier;
use pw_cache::tiers::sqlite_l2::SqliteL2Tier;
use pw_cache::tiers::sqlite_l3::SqliteL3Tier;
use pw_cache::{CacheEntry, CacheTierConfig, OffsetDateTime};
use pw_cache_tests::{ENTRY_FIELDS, entry_as_manifest, fixture_ring};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

/// The fixtures' directory.
fn odd_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/proxywhirl-0.3.3-odd-values")
}

/// `manifest.json`, parsed.
fn odd_manifest() -> Value {
    let path = odd_fixtures().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// The timestamp fields of an entry.
const TIME_FIELDS: [&str; 5] = [
    "fetch_time",
    "last_accessed",
    "expires_at",
    "last_health_check",
    "next_check_time",
];

/// The integer fields of an entry (`u64` in our model, unbounded `int` in Python's).
const COUNT_FIELDS: [&str; 8] = [
    "access_count",
    "ttl_seconds",
    "failure_count",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "total_health_checks",
    "total_health_check_failures",
];

/// Which tier reads a store.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Jsonl,
    SqliteL2,
    SqliteL3,
}

/// One store of the fixtures.
struct Store {
    /// Its name under `stores` in the manifest.
    name: &'static str,
    /// Its directory under the fixtures.
    dir: &'static str,
    kind: Kind,
}

impl Store {
    /// The SQLite table and database file name.
    fn table_and_file(&self) -> (&'static str, &'static str) {
        match self.kind {
            Kind::SqliteL2 => ("l2_cache", "l2_cache.db"),
            Kind::SqliteL3 => ("cache_entries", "proxywhirl.db"),
            Kind::Jsonl => unreachable!("JSONL has no table"),
        }
    }

    /// A copy of the store's directory (the fixtures are never written).
    fn copy(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(odd_fixtures().join(self.dir)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        dir
    }

    /// Our tier on the copy in `dir`.
    fn open(&self, dir: &Path) -> Box<dyn CacheTier> {
        let cfg = CacheTierConfig::unbounded();
        let opened: Result<Box<dyn CacheTier>, _> = match self.kind {
            Kind::Jsonl => JsonlTier::open(dir, &cfg, fixture_ring()).map(|t| Box::new(t) as Box<dyn CacheTier>),
            Kind::SqliteL2 => SqliteL2Tier::open(dir, &cfg, fixture_ring()).map(|t| Box::new(t) as Box<dyn CacheTier>),
            Kind::SqliteL3 => SqliteL3Tier::open(dir.join(self.table_and_file().1), &cfg, fixture_ring())
                .map(|t| Box::new(t) as Box<dyn CacheTier>),
        };
        opened.unwrap_or_else(|e| panic!("{}: our tier cannot open the store at all: {e}", self.name))
    }
}

/// `t` as microseconds since the Unix epoch.
fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).expect("within i64 microseconds")
}

/// The timestamp field `field` of `e`.
fn time_field(e: &CacheEntry, field: &str) -> Option<OffsetDateTime> {
    match field {
        "fetch_time" => Some(e.fetch_time),
        "last_accessed" => Some(e.last_accessed),
        "expires_at" => Some(e.expires_at),
        "last_health_check" => e.last_health_check,
        "next_check_time" => e.next_check_time,
        other => unreachable!("not a timestamp field: {other}"),
    }
}

/// The nearest `u64` to Python's integer `value` (the manifest's number; serde_json reads an
/// integer beyond `u64` as a float).
fn nearest_u64(value: &Value) -> Option<u64> {
    let n = value.as_number()?;
    Some(if let Some(u) = n.as_u64() {
        u
    } else if n.as_i64().is_some() {
        0 // negative
    } else if n.as_f64()? > 0.0 {
        u64::MAX
    } else {
        0
    })
}

/// Differences between what we read (`got`) and what Python read (`want`), one line each.
fn differences(want: &Value, got: &CacheEntry) -> Vec<String> {
    let mut out = Vec::new();
    let got_json = entry_as_manifest(got);
    for field in ENTRY_FIELDS {
        if TIME_FIELDS.contains(&field) {
            let want_us = &want["utc_us"][field];
            let got_time = time_field(got, field);
            let Some(want_us) = want_us.as_i64() else {
                if let Some(t) = got_time {
                    out.push(format!("{field}: Python read None, we read {t}"));
                }
                continue;
            };
            let Some(t) = got_time else {
                out.push(format!("{field}: Python read {}, we read None", want[field]));
                continue;
            };
            // Python's offset in whole seconds; a naive datetime is UTC.
            let offset_us = want["utc_offset_us"][field].as_i64();
            let want_offset = offset_us.map_or(0, |us| us / 1_000_000);
            if unix_micros(t) != want_us || i64::from(t.offset().whole_seconds()) != want_offset {
                out.push(format!(
                    "{field}: Python read {} ({want_us} µs UTC, offset {want_offset} s), we read {} ({} µs UTC, \
                     offset {} s)",
                    want[field],
                    got_json[field],
                    unix_micros(t),
                    t.offset().whole_seconds()
                ));
            } else if offset_us.is_some_and(|us| us % 1_000_000 == 0) && got_json[field] != want[field] {
                out.push(format!(
                    "{field}: Python read {}, we read {}",
                    want[field], got_json[field]
                ));
            }
        } else if COUNT_FIELDS.contains(&field) {
            let expected = nearest_u64(&want[field]);
            if got_json[field].as_u64() != expected {
                out.push(format!(
                    "{field}: Python read {}, expected {expected:?} (nearest u64), we read {}",
                    want[field], got_json[field]
                ));
            }
        } else if got_json[field] != want[field] {
            out.push(format!(
                "{field}: Python read {}, we read {}",
                want[field], got_json[field]
            ));
        }
    }
    out
}

/// The exception Python's tier caught, on one line, without pydantic's documentation link.
fn python_error(want: &Value) -> String {
    let text = want["python_error"].as_str().unwrap_or("?");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("For further information"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Every column of the row under `key` (`None` when there is none).
fn sql_row(conn: &Connection, table: &str, key: &str) -> Option<Vec<SqlValue>> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} WHERE key = ?1")).unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([key]).unwrap();
    let row = rows.next().unwrap()?;
    Some((0..n).map(|i| row.get::<_, SqlValue>(i).unwrap()).collect())
}

/// Whether the stored SQLite value `got` is the manifest's `{type, value}`.
fn is_stored(want: &Value, got: &SqlValue) -> bool {
    let value = &want["value"];
    match (want["type"].as_str().unwrap(), got) {
        ("null", SqlValue::Null) => true,
        ("integer", SqlValue::Integer(n)) => value.as_i64() == Some(*n),
        ("real", SqlValue::Real(x)) => value.as_f64() == Some(*x) || value.as_str() == Some(&format!("{x}")),
        ("text", SqlValue::Text(s)) => value.as_str() == Some(s.as_str()),
        ("blob", SqlValue::Blob(b)) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            value["hex"].as_str() == Some(hex.as_str())
        }
        _ => false,
    }
}

/// The physical line `n` (1-based) of `path`, without its newline.
fn line_of(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap();
    let line = text
        .split(|&b| b == b'\n')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("{} has no line {n}", path.display()));
    String::from_utf8(line.to_vec()).unwrap()
}

/// Reads every entry of `store` with our tier and returns every difference from the manifest.
fn check_store(store: &Store) -> (usize, Vec<String>) {
    let manifest = odd_manifest();
    let want_store = &manifest["stores"][store.name];
    let entries = want_store["entries"].as_array().expect("manifest entries");
    assert!(!entries.is_empty());
    let dir = store.copy();
    let mut failures = Vec::new();

    // Before our tier opens it: the stored values are the manifest's, and the rows of the
    // entries Python fails on are kept to compare afterwards.
    let mut before: Vec<(String, Option<Vec<SqlValue>>)> = Vec::new();
    if store.kind != Kind::Jsonl {
        let (table, file) = store.table_and_file();
        let conn = Connection::open(dir.path().join(file)).unwrap();
        for want in entries {
            let key = want["key"].as_str().unwrap();
            if let Some(stored) = want["stored"].as_object() {
                for (column, value) in stored {
                    let got: SqlValue = conn
                        .query_row(&format!("SELECT {column} FROM {table} WHERE key = ?1"), [key], |r| {
                            r.get(0)
                        })
                        .unwrap();
                    assert!(
                        is_stored(value, &got),
                        "{key}.{column}: fixture holds {got:?}, manifest says {value}"
                    );
                }
            }
            if want["python_get"] == "error" {
                before.push((key.to_owned(), sql_row(&conn, table, key)));
            }
        }
    }

    /// Entries proxywhirl fails on that we read, deliberately: a NULL `evicted_from_l1` in L3
    /// (proxywhirl's L2 reads it as false, its L3 refuses it: we read both as false), and L3's
    /// `created_at`/`updated_at`, which are no field of the entry (proxywhirl converts them and
    /// fails on a bad one; we never read them).
    const MORE_LENIENT: [&str; 3] = [
        "l3-evicted_from_l1-null",
        "l3-created_at-text",
        "l3-updated_at-too-large",
    ];
    let tier = store.open(dir.path());
    for want in entries {
        let key = want["key"].as_str().unwrap();
        let case = want["case"].as_str().unwrap();
        let label = format!("{key} [{case}]");
        match (want["python_get"].as_str().unwrap(), tier.get(key)) {
            ("ok", Ok(Some(got))) => {
                for d in differences(want, &got) {
                    failures.push(format!("{label}: {d}"));
                }
            }
            ("ok", Ok(None)) => failures.push(format!("{label}: Python read it, we found nothing")),
            ("ok", Err(e)) => failures.push(format!("{label}: Python read it, we failed: {e}")),
            ("error", Err(e)) if e.is_corrupt_entry() && !e.is_tier_failure() => {}
            ("error", Err(e)) => failures.push(format!(
                "{label}: Python fails ({}); we failed, but not as an unreadable entry: {e}",
                python_error(want)
            )),
            // Where we are more lenient than proxywhirl on purpose (docs/formats.md, the SQLite
            // "Rows"): a value that proxywhirl refuses but that holds nothing wrong.
            ("error", Ok(Some(_))) if MORE_LENIENT.contains(&key) => {}
            ("error", Ok(Some(got))) => {
                let got = entry_as_manifest(&got);
                let what = match want["field"].as_str() {
                    Some(f) if ENTRY_FIELDS.contains(&f) => format!("{f} = {}", got[f]),
                    Some(f) => format!("{f} is not a field of our entry"),
                    None => got.to_string(),
                };
                failures.push(format!(
                    "{label}: Python fails ({}); we read it: {what}",
                    python_error(want)
                ));
            }
            ("error", Ok(None)) => failures.push(format!(
                "{label}: Python fails ({}); we found nothing instead of an unreadable entry",
                python_error(want)
            )),
            (other, _) => panic!("{label}: python_get {other:?}"),
        }
    }

    // The entries Python fails on are stored as they were.
    match store.kind {
        Kind::Jsonl => {
            for want in entries.iter().filter(|w| w["python_get"] == "error") {
                let key = want["key"].as_str().unwrap();
                let file = want["shard_file"].as_str().unwrap();
                let n = usize::try_from(want["line_number"].as_u64().unwrap()).unwrap();
                let original = line_of(&odd_fixtures().join(store.dir).join(file), n);
                assert!(
                    original.contains(&format!("\"key\": \"{key}\"")),
                    "{key}: manifest line {n} of {file}"
                );
                let now = std::fs::read_to_string(dir.path().join(file)).unwrap();
                if !now.lines().any(|l| l == original) {
                    failures.push(format!("{key}: its line in {file} changed or is gone"));
                }
            }
        }
        Kind::SqliteL2 | Kind::SqliteL3 => {
            let (table, file) = store.table_and_file();
            let conn = Connection::open(dir.path().join(file)).unwrap();
            for (key, row) in &before {
                if &sql_row(&conn, table, key) != row {
                    failures.push(format!(
                        "{key}: its row changed: {row:?} -> {:?}",
                        sql_row(&conn, table, key)
                    ));
                }
            }
        }
    }

    // The same keys as Python's tier.
    let want_keys: Vec<&str> = want_store["python_keys_sorted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    match tier.keys() {
        Ok(mut keys) => {
            keys.sort();
            let missing: Vec<&&str> = want_keys.iter().filter(|k| !keys.iter().any(|g| g == **k)).collect();
            let extra: Vec<&String> = keys.iter().filter(|g| !want_keys.contains(&g.as_str())).collect();
            if !missing.is_empty() || !extra.is_empty() {
                failures.push(format!("keys(): missing {missing:?}, extra {extra:?}"));
            }
        }
        Err(e) => failures.push(format!("keys(): {e}")),
    }
    match tier.size() {
        Ok(n) if n as u64 == want_store["python_size"].as_u64().unwrap() => {}
        other => failures.push(format!("size(): Python {}, we {other:?}", want_store["python_size"])),
    }
    (entries.len(), failures)
}

/// Checks a store and fails listing every difference.
fn assert_store_reads_as_python(store: &Store) {
    let (checked, failures) = check_store(store);
    assert!(
        failures.is_empty(),
        "{}: {} difference(s) from proxywhirl's reading ({checked} entries):\n{}",
        store.name,
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn jsonl_odd_values_read_as_proxywhirl_reads_them() {
    assert_store_reads_as_python(&Store {
        name: "jsonl_l2",
        dir: "jsonl_l2",
        kind: Kind::Jsonl,
    });
}

#[test]
fn sqlite_l2_odd_values_read_as_proxywhirl_reads_them() {
    assert_store_reads_as_python(&Store {
        name: "sqlite_l2",
        dir: "sqlite_l2",
        kind: Kind::SqliteL2,
    });
}

#[test]
fn sqlite_l2_without_column_types_reads_as_proxywhirl_reads_it() {
    assert_store_reads_as_python(&Store {
        name: "sqlite_l2_untyped",
        dir: "sqlite_l2_untyped",
        kind: Kind::SqliteL2,
    });
}

#[test]
fn sqlite_l3_odd_values_read_as_proxywhirl_reads_them() {
    assert_store_reads_as_python(&Store {
        name: "sqlite_l3",
        dir: "l3",
        kind: Kind::SqliteL3,
    });
}

#[test]
fn sqlite_l3_with_a_text_access_count_column_reads_as_proxywhirl_reads_it() {
    assert_store_reads_as_python(&Store {
        name: "l3_text_access_count",
        dir: "l3_text_access_count",
        kind: Kind::SqliteL3,
    });
}

/// The fixtures hold the cases the issue names, each read by proxywhirl as the issue says.
#[test]
fn the_fixtures_hold_the_issues_cases() {
    let manifest = odd_manifest();
    let entry = |store: &str, key: &str| -> Value {
        manifest["stores"][store]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("{store} has no entry {key}"))
            .clone()
    };
    // 1. access_count -1, in all three formats.
    for (store, key) in [
        ("jsonl_l2", "jl-access_count-minus-1"),
        ("sqlite_l2", "l2-access_count-minus-1"),
        ("sqlite_l3", "l3-access_count-minus-1"),
    ] {
        let e = entry(store, key);
        assert_eq!(
            (e["python_get"].as_str(), e["access_count"].as_i64()),
            (Some("ok"), Some(-1)),
            "{key}"
        );
    }
    // 2. An offset with microseconds, in the three JSONL timestamps put() writes.
    for field in ["fetch_time", "last_accessed", "expires_at"] {
        let e = entry("jsonl_l2", &format!("jl-{field}-offset-plus-1h-7us"));
        assert!(e[field].as_str().unwrap().ends_with("+01:00:00.000007"), "{e}");
        assert_eq!(e["utc_offset_us"][field], 3_600_000_007_i64);
    }
    // 3. evicted_from_l1 as TEXT: bool() of it, NULL False in L2 and unreadable in L3.
    for (store, prefix) in [("sqlite_l2", "l2"), ("sqlite_l3", "l3")] {
        for (slug, value) in [
            ("text-yes", true),
            ("text-no", true),
            ("text-empty", false),
            ("int-2", true),
        ] {
            let e = entry(store, &format!("{prefix}-evicted_from_l1-{slug}"));
            assert_eq!(e["evicted_from_l1"], value, "{prefix} {slug}");
        }
        let null = entry(store, &format!("{prefix}-evicted_from_l1-null"));
        let want = if prefix == "l2" { "ok" } else { "error" };
        assert_eq!(null["python_get"], want, "{prefix}: NULL");
    }
    // 4. proxy_url as a BLOB.
    for (store, key) in [("sqlite_l2", "l2-proxy_url-blob"), ("sqlite_l3", "l3-proxy_url-blob")] {
        let e = entry(store, key);
        assert_eq!(e["stored"]["proxy_url"]["type"], "blob");
        assert_eq!(e["proxy_url"], "http://10.44.0.1:3128");
    }
    // 5. An L3 table with access_count declared TEXT, about 20 entries, some with credentials.
    let text = &manifest["stores"]["l3_text_access_count"];
    assert!(text["create_table"].as_str().unwrap().contains("access_count TEXT"));
    let entries = text["entries"].as_array().unwrap();
    assert!(entries.len() >= 20);
    assert!(
        entries
            .iter()
            .all(|e| e["stored"]["access_count"]["type"] == "text" && e["python_get"] == "ok")
    );
    assert!(entries.iter().filter(|e| !e["username"].is_null()).count() >= 5);
    // Contrast: entries proxywhirl fails on are in every store but the TEXT one.
    for store in ["jsonl_l2", "sqlite_l2", "sqlite_l2_untyped", "sqlite_l3"] {
        let errors = manifest["stores"][store]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["python_get"] == "error")
            .count();
        assert!(errors > 0, "{store}");
    }
}
