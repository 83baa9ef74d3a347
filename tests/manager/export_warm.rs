//! Export and warm through the manager, on both L2 backends.
//!
//! - Export writes the reference's export line for every live entry (21 fields in model order,
//!   credentials `"***"` or `null`), sorted by key, into a 0600 file replaced atomically; it is
//!   not a use (no access count, no L1 change, no promotion, no statistics change), leaves
//!   expired entries out without deleting them, and counts unreadable entries.
//! - A masked export warms into another cache without credentials; an encrypted export carries
//!   them as Fernet tokens (never plaintext) that only a cache with the same key can open.
//! - Warm applies `ttl_override`, else `per_source_ttl`, else `default_ttl_seconds`; defaults
//!   the source to `"warmed"` and the key to the URL's generated key; refuses out-of-range
//!   overrides; reports every bad row with its line, item or row, and counts replaced keys.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pw_cache::{
    CacheEntry, CacheManager, CacheTier, CacheTierConfig, CacheTierType, DEFAULT_WARM_SOURCE, ExportCredentials,
    ExportOptions, ExportReport, FernetKey, HealthStatus, IssueKind, KeyCheck, KeyRing, L2BackendType, MAX_TTL_SECONDS,
    ManagerError, OffsetDateTime, RowLocation, Secret, SqliteL3Tier, TierError, TierHealth, Token, WarmReport,
    generate_cache_key,
};
use pw_cache_tests::managers::{BACKENDS, TestClock, config, open, open_checked, test_ring};
use pw_cache_tests::{ENTRY_FIELDS, fernet_reference, hex_decode};
use serde_json::Value;
use time::macros::datetime;

/// The test clock's start: a time with microseconds, so every timestamp has a fraction.
const T0: OffsetDateTime = datetime!(2031-05-17 08:30:12.345678 UTC);

/// A manager on a fresh config under `dir` with the test clock.
fn open_at(dir: &Path, backend: L2BackendType, l1_max: u64, ring: &Arc<KeyRing>, clock: &TestClock) -> CacheManager {
    open(config(dir, backend, l1_max).build().unwrap(), ring, Some(clock))
}

/// The other L2 backend.
fn other(backend: L2BackendType) -> L2BackendType {
    match backend {
        L2BackendType::Jsonl => L2BackendType::Sqlite,
        L2BackendType::Sqlite => L2BackendType::Jsonl,
    }
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

/// Every name in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts that `line` is a JSON object whose first 21 members are the entry fields in the
/// reference's order, followed only by `extra` (in that order).
fn assert_field_order(line: &str, extra: &[&str]) {
    let mut from = 0;
    for field in ENTRY_FIELDS.iter().chain(extra) {
        let needle = format!("\"{field}\": ");
        let at = line[from..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{field} missing or out of order in {line}"));
        from += at + needle.len();
    }
    let object: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
    assert_eq!(object.len(), ENTRY_FIELDS.len() + extra.len(), "{line}");
}

/// Four entries whose keys are not in sorted order, with every combination of credentials
/// and some health data.
fn sample_entries(now: OffsetDateTime) -> Vec<CacheEntry> {
    let make = |key: &str, url: &str, user: Option<&str>, pass: Option<&str>| {
        CacheEntry::new_at(url, "sample", 3600, now)
            .unwrap()
            .with_key(key)
            .with_credentials(user.map(Secret::new), pass.map(Secret::new))
    };
    let mut checked = make(
        "zeta",
        "http://10.0.0.26:8080",
        Some("export-user-z"),
        Some("export-pass-z"),
    );
    checked.health_status = HealthStatus::Healthy;
    checked.failure_count = 2;
    checked.total_health_checks = 7;
    checked.last_health_check = Some(now);
    checked.last_health_error = Some("timed out".to_owned());
    vec![
        checked,
        make("alpha", "socks5://10.0.0.1:1080", None, Some("export-pass-a")),
        make("mid", "https://10.0.0.13:8443", Some("export-user-m"), None),
        make("beta", "http://10.0.0.2:3128", None, None),
    ]
}

const SAMPLE_SECRETS: [&str; 4] = ["export-user-z", "export-pass-z", "export-pass-a", "export-user-m"];

fn assert_no_secret(bytes: &[u8], secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is in the file"
        );
    }
}

#[test]
fn export_lines_are_the_reference_export_sorted_by_key() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let clock = TestClock::at(T0);
        let entries = sample_entries(T0);
        let mut by_key: BTreeMap<&str, &CacheEntry> = BTreeMap::new();
        for e in &entries {
            by_key.insert(&e.key, e);
        }
        let want: Vec<String> = by_key.values().map(|e| e.to_json_line()).collect();

        let first = dir.path().join("first.jsonl");
        {
            let m = open_at(dir.path(), backend, 100, &ring, &clock);
            for e in &entries {
                m.put(e).unwrap();
            }
            let report = m.export_to_file(&first).unwrap();
            assert_eq!(
                report,
                ExportReport {
                    exported: 4,
                    ..ExportReport::default()
                },
                "{backend:?}"
            );
            m.close().unwrap();
        }
        let text = fs::read_to_string(&first).unwrap();
        assert!(text.ends_with('\n'), "{backend:?}: every line ends with a newline");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, want, "{backend:?}: from L1");
        for (line, e) in lines.iter().zip(by_key.values()) {
            assert_field_order(line, &[]);
            let raw: Value = serde_json::from_str(line).unwrap();
            for (field, secret) in [("username", &e.username), ("password", &e.password)] {
                let expected = if secret.is_some() {
                    Value::from("***")
                } else {
                    Value::Null
                };
                assert_eq!(raw[field], expected, "{backend:?} {}.{field}", e.key);
            }
        }
        assert_no_secret(text.as_bytes(), &SAMPLE_SECRETS);

        // A new manager on the same directories: L1 is empty, the lines come from L2, the
        // highest tier holding the entries. The SQLite L2 table has no health-monitoring
        // columns (docs/formats.md): the manager completes its copy from L3, so the lines are
        // the same for both backends.
        let m = open_at(dir.path(), backend, 100, &ring, &clock);
        let second = dir.path().join("second.jsonl");
        assert_eq!(m.export_to_file(&second).unwrap().exported, 4);
        assert_eq!(lines_of(&second), want, "{backend:?}: from L2");

        // With L2 disabled the lines come from L3 alone, every field as it was put.
        m.close().unwrap();
        drop(m);
        let l3_only = config(dir.path(), backend, 100)
            .l2_config(CacheTierConfig::disabled())
            .build()
            .unwrap();
        let m = open(l3_only, &ring, Some(&clock));
        let third = dir.path().join("third.jsonl");
        assert_eq!(m.export_to_file(&third).unwrap().exported, 4);
        assert_eq!(fs::read_to_string(&third).unwrap(), text, "{backend:?}: from L3");
    }
}

#[test]
fn export_replaces_the_file_atomically_with_mode_0600() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let clock = TestClock::at(T0);
        let m = open_at(dir.path(), backend, 100, &ring, &clock);
        for e in sample_entries(T0) {
            m.put(&e).unwrap();
        }
        let exports = dir.path().join("exports");
        fs::create_dir(&exports).unwrap();
        let out = exports.join("export.jsonl");
        fs::write(&out, "an older export\n").unwrap();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();

        m.export_to_file(&out).unwrap();
        assert_eq!(lines_of(&out).len(), 4, "{backend:?}: the old content is gone");
        assert_eq!(mode(&out), 0o600, "{backend:?}");
        assert_eq!(
            names_in(&exports),
            ["export.jsonl"],
            "{backend:?}: no temporary file left"
        );

        // Into a directory that does not exist: an error naming the path, nothing created.
        let missing = dir.path().join("no-such-dir").join("export.jsonl");
        let err = m.export_to_file(&missing).unwrap_err();
        match &err {
            ManagerError::Export { path, source } => {
                assert_eq!(path, &missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound, "{backend:?}");
            }
            other => panic!("{backend:?}: {other:?}"),
        }
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
        assert!(!missing.parent().unwrap().exists(), "{backend:?}");

        // Onto a directory: the rename fails, the directory and the parent are unchanged.
        let before = names_in(dir.path());
        let err = m.export_to_file(&exports).unwrap_err();
        assert!(
            matches!(&err, ManagerError::Export { path, .. } if path == &exports),
            "{backend:?}: {err:?}"
        );
        assert_eq!(names_in(dir.path()), before, "{backend:?}: no temporary file left");
        assert_eq!(names_in(&exports), ["export.jsonl"], "{backend:?}");
        assert_eq!(lines_of(&out).len(), 4);
    }
}

/// A tier that fails to list its keys while `fail` is set; everything else is `inner`'s.
struct KeysFailWhen {
    inner: Box<dyn CacheTier>,
    fail: Arc<AtomicBool>,
}

impl CacheTier for KeysFailWhen {
    fn tier_type(&self) -> CacheTierType {
        self.inner.tier_type()
    }
    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.inner.get(key)
    }
    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.inner.peek(key)
    }
    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.inner.put(entry)
    }
    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.inner.delete(key)
    }
    fn clear(&self) -> Result<usize, TierError> {
        self.inner.clear()
    }
    fn size(&self) -> Result<usize, TierError> {
        self.inner.size()
    }
    fn keys(&self) -> Result<Vec<String>, TierError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(TierError::Io {
                op: "list keys",
                path: PathBuf::from("injected"),
                source: io::Error::other("injected failure"),
            });
        }
        self.inner.keys()
    }
    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.inner.contains(key)
    }
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.inner.cleanup_expired(now)
    }
    fn health(&self) -> &TierHealth {
        self.inner.health()
    }
    fn flush(&self) -> Result<(), TierError> {
        self.inner.flush()
    }
    fn close(&self) -> Result<(), TierError> {
        self.inner.close()
    }
    fn probe(&self) -> Result<(), TierError> {
        self.inner.probe()
    }
}

#[test]
fn a_failed_export_leaves_the_previous_file_as_it_was() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let config = config(dir.path(), backend, 100).build().unwrap();
        let l3 = SqliteL3Tier::open(config.l3_database_path(), config.l3_config(), Arc::clone(&ring)).unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let m = CacheManager::builder(config)
            .key_ring(Arc::clone(&ring))
            .l3_tier(Box::new(KeysFailWhen {
                inner: Box::new(l3),
                fail: Arc::clone(&fail),
            }))
            .open()
            .unwrap();
        for e in sample_entries(OffsetDateTime::now_utc()) {
            m.put(&e).unwrap();
        }
        let exports = dir.path().join("exports");
        fs::create_dir(&exports).unwrap();
        let out = exports.join("export.jsonl");
        fs::write(&out, "the previous export\n").unwrap();

        fail.store(true, Ordering::SeqCst);
        let err = m.export_to_file(&out).unwrap_err();
        assert!(
            matches!(
                &err,
                ManagerError::ExportTier {
                    tier: CacheTierType::L3,
                    ..
                }
            ),
            "{backend:?}: {err:?}"
        );
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "the previous export\n",
            "{backend:?}"
        );
        assert_eq!(names_in(&exports), ["export.jsonl"], "{backend:?}");

        fail.store(false, Ordering::SeqCst);
        assert_eq!(m.export_to_file(&out).unwrap().exported, 4, "{backend:?}");
        assert_eq!(lines_of(&out).len(), 4, "{backend:?}");
    }
}

#[test]
fn export_is_not_a_use() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let clock = TestClock::at(T0);
        // L1 holds 3: after five puts it holds c, d, e; a and b are only in L2/L3.
        let m = open_at(dir.path(), backend, 3, &ring, &clock);
        for (i, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            let e = CacheEntry::new_at(format!("http://10.7.0.{i}:80"), "use", 3600, T0)
                .unwrap()
                .with_key(key);
            m.put(&e).unwrap();
        }
        clock.advance(std::time::Duration::from_secs(10));
        let used_at = clock.now();
        assert_eq!(m.get("c").unwrap().access_count, 1);
        // L1's order, least recent first: d, e, c.

        let stats = m.get_statistics();
        let breakdown = m.statistics_breakdown();
        assert_eq!(
            (
                stats.l1_stats.current_size,
                stats.l2_stats.current_size,
                stats.l3_stats.current_size
            ),
            (3, 5, 5)
        );
        let out = dir.path().join("export.jsonl");
        let report = m.export_to_file(&out).unwrap();
        assert_eq!(report.exported, 5, "{backend:?}: L1 and the tiers below");
        assert_eq!(
            m.get_statistics(),
            stats,
            "{backend:?}: no hit, miss, promotion or size change"
        );
        assert_eq!(m.statistics_breakdown(), breakdown, "{backend:?}");
        let first = fs::read_to_string(&out).unwrap();
        for line in first.lines() {
            let e = CacheEntry::from_json_str(line).unwrap();
            let (count, accessed) = if e.key == "c" { (1, used_at) } else { (0, T0) };
            assert_eq!(e.access_count, count, "{backend:?} {}", e.key);
            assert_eq!(e.last_accessed, accessed, "{backend:?} {}", e.key);
        }
        // A second export sees exactly what the first saw.
        m.export_to_file(&out).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), first, "{backend:?}");
        assert_eq!(m.get_statistics(), stats, "{backend:?}");

        // L1's contents and order are unchanged: the next put evicts d, its least recent.
        let f = CacheEntry::new_at("http://10.7.0.9:80", "use", 3600, T0)
            .unwrap()
            .with_key("f");
        m.put(&f).unwrap();
        let before = m.get_statistics();
        assert_eq!(m.get("c").unwrap().access_count, 2, "{backend:?}: export did not count");
        assert_eq!(m.get("e").unwrap().access_count, 1, "{backend:?}");
        let after = m.get_statistics();
        assert_eq!(
            after.l1_stats.hits - before.l1_stats.hits,
            2,
            "{backend:?}: c and e in L1"
        );
        assert_eq!(after.promotions, before.promotions, "{backend:?}");
        for key in ["d", "a"] {
            let before = m.get_statistics();
            assert_eq!(m.get(key).unwrap().access_count, 1, "{backend:?} {key}");
            let after = m.get_statistics();
            assert_eq!(
                after.l1_stats.misses - before.l1_stats.misses,
                1,
                "{backend:?}: {key} not in L1"
            );
            assert_eq!(
                after.promotions - before.promotions,
                1,
                "{backend:?}: {key} promoted now"
            );
        }
    }
}

#[test]
fn export_reads_lower_tiers_without_promoting() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let clock = TestClock::at(T0);
        let entries = sample_entries(T0);
        {
            let m = open_at(dir.path(), backend, 2, &ring, &clock);
            for e in &entries {
                m.put(e).unwrap();
            }
            m.close().unwrap();
        }
        let m = open_at(dir.path(), backend, 2, &ring, &clock);
        let stats = m.get_statistics();
        assert_eq!(
            (
                stats.l1_stats.current_size,
                stats.l2_stats.current_size,
                stats.l3_stats.current_size
            ),
            (0, 4, 4)
        );
        let out = dir.path().join("export.jsonl");
        assert_eq!(m.export_to_file(&out).unwrap().exported, 4, "{backend:?}");
        let after = m.get_statistics();
        assert_eq!(after, stats, "{backend:?}: nothing promoted, nothing counted");
        assert_eq!(after.l1_stats.current_size, 0);
        assert_eq!(after.promotions, 0);
        for line in lines_of(&out) {
            assert_eq!(CacheEntry::from_json_str(&line).unwrap().access_count, 0);
        }
    }
}

#[test]
fn expired_entries_are_left_out_counted_and_kept() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let clock = TestClock::at(T0);
        let make_config = || {
            config(dir.path(), backend, 100)
                .source_ttl("short", 60)
                .build()
                .unwrap()
        };
        let m = open(make_config(), &ring, Some(&clock));
        let mut short = Vec::new();
        let mut long = Vec::new();
        for i in 0..5 {
            let source = if i % 2 == 0 { "short" } else { "long" };
            let e = m.new_entry(&format!("http://10.8.0.{i}:80"), source).unwrap();
            m.put(&e).unwrap();
            if i % 2 == 0 {
                short.push(e.key);
            } else {
                long.push(e.key);
            }
        }
        long.sort();
        let out = dir.path().join("export.jsonl");

        clock.advance(std::time::Duration::from_micros(59_999_999));
        let report = m.export_to_file(&out).unwrap();
        assert_eq!(
            (report.exported, report.expired),
            (5, 0),
            "{backend:?}: one microsecond before"
        );

        clock.advance(std::time::Duration::from_micros(1));
        let stats = m.get_statistics();
        let report = m.export_to_file(&out).unwrap();
        assert_eq!(
            (report.exported, report.expired, report.failed),
            (2, 3, 0),
            "{backend:?}: at expires_at"
        );
        let keys: Vec<String> = lines_of(&out)
            .iter()
            .map(|l| CacheEntry::from_json_str(l).unwrap().key)
            .collect();
        assert_eq!(keys, long, "{backend:?}");
        assert_eq!(m.get_statistics(), stats, "{backend:?}: nothing deleted or counted");
        assert_eq!(stats.l1_stats.current_size, 5);
        assert_eq!(stats.l1_stats.evictions_ttl + stats.l2_stats.evictions_ttl, 0);
        m.close().unwrap();
        drop(m);

        // A new manager finds the expired entries still in L2 and L3.
        let m = open(make_config(), &ring, Some(&clock));
        let report = m.export_to_file(&out).unwrap();
        assert_eq!((report.exported, report.expired), (2, 3), "{backend:?}");
        let stats = m.get_statistics();
        assert_eq!(
            (stats.l2_stats.current_size, stats.l3_stats.current_size),
            (5, 5),
            "{backend:?}"
        );
        // A get is a use: it finds the expired entry in L2 and deletes it everywhere.
        assert!(m.get(&short[0]).is_none());
        let stats = m.get_statistics();
        assert_eq!(stats.l2_stats.evictions_ttl, 1, "{backend:?}");
        assert_eq!(
            (stats.l2_stats.current_size, stats.l3_stats.current_size),
            (4, 4),
            "{backend:?}"
        );
    }
}

#[test]
fn unreadable_entries_are_left_out_and_named() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::at(T0);
        {
            let m = open_at(dir.path(), backend, 100, &test_ring(), &clock);
            for e in sample_entries(T0) {
                m.put(&e).unwrap();
            }
            m.close().unwrap();
        }
        // Another key: the three entries with a credential cannot be read (refused at open
        // unless asked: see tests/damaged/unreadable_kept.rs).
        let config = config(dir.path(), backend, 100).build().unwrap();
        let m = open_checked(config, &test_ring(), Some(&clock), KeyCheck::Skip);
        let stats = m.get_statistics();
        let out = dir.path().join("export.jsonl");
        let report = m.export_to_file(&out).unwrap();
        assert_eq!(
            (report.exported, report.expired, report.failed),
            (1, 0, 3),
            "{backend:?}"
        );
        let failed: Vec<&str> = report.failures.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(failed, ["alpha", "mid", "zeta"], "{backend:?}");
        for (key, reason) in &report.failures {
            assert!(!reason.is_empty(), "{key}");
            assert_no_secret(reason.as_bytes(), &SAMPLE_SECRETS);
        }
        assert_eq!(lines_of(&out).len(), 1);
        let mut after = m.get_statistics();
        // Met in L2 and in L3, and counted there; left in place.
        assert_eq!(
            (after.l2_stats.unreadable, after.l3_stats.unreadable),
            (3, 3),
            "{backend:?}"
        );
        after.l2_stats.unreadable = 0;
        after.l3_stats.unreadable = 0;
        assert_eq!(after, stats, "{backend:?}: the export deletes nothing");
    }
}

/// A JSON warm file of four proxies with every combination of credentials.
fn write_round_trip_input(dir: &Path) -> PathBuf {
    let path = dir.join("input.json");
    let rows = serde_json::json!([
        {"proxy_url": "http://10.1.0.1:8080", "username": "round-user-1", "password": "round-pass-1",
         "source": "alpha", "key": "rt-1"},
        {"proxy_url": "socks5://10.1.0.2:1080", "password": "round-pass-2", "source": "beta"},
        {"proxy_url": "https://10.1.0.3:8443", "username": "round-user-3"},
        {"proxy_url": "http://10.1.0.4:3128", "source": "gamma", "key": "rt-4"},
    ]);
    fs::write(&path, rows.to_string()).unwrap();
    path
}

const ROUND_TRIP_SECRETS: [&str; 4] = ["round-user-1", "round-pass-1", "round-pass-2", "round-user-3"];

/// (key, proxy_url, source, username, password) of a warmed entry.
type Expected = (
    String,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The entries of the warmed round-trip input.
fn round_trip_expected() -> Vec<Expected> {
    vec![
        (
            "rt-1".to_owned(),
            "http://10.1.0.1:8080",
            "alpha",
            Some("round-user-1"),
            Some("round-pass-1"),
        ),
        (
            generate_cache_key("socks5://10.1.0.2:1080"),
            "socks5://10.1.0.2:1080",
            "beta",
            None,
            Some("round-pass-2"),
        ),
        (
            generate_cache_key("https://10.1.0.3:8443"),
            "https://10.1.0.3:8443",
            DEFAULT_WARM_SOURCE,
            Some("round-user-3"),
            None,
        ),
        ("rt-4".to_owned(), "http://10.1.0.4:3128", "gamma", None, None),
    ]
}

fn clean(report: &WarmReport, loaded: u64) {
    assert_eq!(
        report,
        &WarmReport {
            loaded,
            ..WarmReport::default()
        }
    );
}

fn secret(s: Option<&str>) -> Option<Secret> {
    s.map(Secret::new)
}

/// Warms the round-trip input into a new cache; the cache and its export in `options`.
fn warmed_and_exported(
    dir: &Path,
    backend: L2BackendType,
    ring: &Arc<KeyRing>,
    credentials: ExportCredentials,
) -> (CacheManager, PathBuf) {
    let clock = TestClock::at(T0);
    let m = open_at(&dir.join("a"), backend, 100, ring, &clock);
    clean(&m.warm_from_file(write_round_trip_input(dir), None).unwrap(), 4);
    for (key, url, source, user, pass) in round_trip_expected() {
        let e = m.get(&key).unwrap();
        assert_eq!((e.proxy_url.as_str(), e.source.as_str()), (url, source));
        assert_eq!((e.username, e.password), (secret(user), secret(pass)), "{key}");
    }
    let out = dir.join("export.jsonl");
    let report = m.export_to_file_with(&out, ExportOptions { credentials }).unwrap();
    assert_eq!(report.exported, 4);
    (m, out)
}

#[test]
fn masked_export_warms_without_credentials() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let (_a, export) = warmed_and_exported(dir.path(), backend, &ring, ExportCredentials::Masked);
        let bytes = fs::read(&export).unwrap();
        assert_no_secret(&bytes, &ROUND_TRIP_SECRETS);
        let masks = lines_of(&export)
            .iter()
            .map(|l| l.matches("\"***\"").count())
            .sum::<usize>();
        assert_eq!(masks, 4, "one mask per credential");

        // Same key and other backend, then another key and the same backend.
        for (name, ring, target) in [("b", Arc::clone(&ring), other(backend)), ("c", test_ring(), backend)] {
            let clock = TestClock::at(T0 + time::Duration::hours(1));
            let m = open_at(&dir.path().join(name), target, 100, &ring, &clock);
            clean(&m.warm_from_file(&export, None).unwrap(), 4);
            for (key, url, source, _, _) in round_trip_expected() {
                let e = m.get(&key).unwrap_or_else(|| panic!("{backend:?}->{target:?} {key}"));
                assert_eq!((e.proxy_url.as_str(), e.source.as_str()), (url, source));
                assert_eq!(e.username, None, "{key}: \"***\" is not a credential");
                assert_eq!(e.password, None, "{key}: \"***\" is not a credential");
                assert_eq!(e.fetch_time, clock.now(), "warmed now, not at the export's time");
                assert_eq!(e.ttl_seconds, 3600);
            }
        }
    }
}

#[test]
fn encrypted_export_carries_tokens_only_the_same_key_opens() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let (a, export) = warmed_and_exported(dir.path(), backend, &ring, ExportCredentials::Encrypted);
        let bytes = fs::read(&export).unwrap();
        assert_no_secret(&bytes, &ROUND_TRIP_SECRETS);
        assert_eq!(mode(&export), 0o600);

        // The masked export of the same cache is each line's prefix: the 21 fields, then the
        // tokens of the credentials that are set.
        let masked = dir.path().join("masked.jsonl");
        a.export_to_file(&masked).unwrap();
        let masked = lines_of(&masked);
        let lines = lines_of(&export);
        assert_eq!(lines.len(), 4);
        let key_text = ring.current().to_base64();
        let mut tokens = Vec::new();
        for (line, plain) in lines.iter().zip(&masked) {
            assert!(line.starts_with(&plain[..plain.len() - 1]), "{line}");
            let raw: Value = serde_json::from_str(line).unwrap();
            let key = raw["key"].as_str().unwrap();
            let (_, _, _, user, pass) = round_trip_expected().into_iter().find(|r| r.0 == key).unwrap();
            let mut extra = Vec::new();
            for (field, want) in [("username", user), ("password", pass)] {
                let encrypted = format!("{field}_encrypted");
                assert_eq!(raw[field].as_str(), want.map(|_| "***"), "{key}.{field}");
                let Some(want) = want else {
                    assert!(raw.get(&encrypted).is_none(), "{key}.{encrypted}");
                    continue;
                };
                let hex = raw[&encrypted].as_str().unwrap();
                assert!(
                    hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{hex}"
                );
                let token_bytes = hex_decode(hex);
                let token = Token::parse(std::str::from_utf8(&token_bytes).unwrap()).unwrap();
                assert_eq!(ring.decrypt(&token).unwrap(), Secret::new(want));
                let opened = fernet_reference::open(key_text.expose_secret(), &token_bytes).unwrap();
                assert_eq!(opened.plaintext, want.as_bytes(), "a Fernet token of the current key");
                tokens.push(hex.to_owned());
                tokens.push(String::from_utf8(token_bytes).unwrap());
                extra.push(encrypted);
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            assert_field_order(line, &extra);
        }

        // The same key on another machine (other backend, other directory, its own ring
        // object), and a ring that has rotated it to "previous": credentials come back.
        let same_key = Arc::new(KeyRing::new(ring.current().clone(), []));
        let rotated = Arc::new(KeyRing::new(FernetKey::generate(), [ring.current().clone()]));
        for (name, ring, target) in [("b", same_key, other(backend)), ("r", rotated, backend)] {
            let m = open_at(&dir.path().join(name), target, 100, &ring, &TestClock::at(T0));
            clean(&m.warm_from_file(&export, None).unwrap(), 4);
            for (key, url, source, user, pass) in round_trip_expected() {
                let e = m.get(&key).unwrap();
                assert_eq!((e.proxy_url.as_str(), e.source.as_str()), (url, source));
                assert_eq!((e.username, e.password), (secret(user), secret(pass)), "{name} {key}");
            }
            // Stored under this cache's own key: a restart reads them back from L2/L3.
            m.close().unwrap();
            drop(m);
            let m = open_at(&dir.path().join(name), target, 100, &ring, &TestClock::at(T0));
            let e = m.get("rt-1").unwrap();
            assert_eq!(e.password, Some(Secret::new("round-pass-1")), "{name}");
        }

        // Another key: each row with a credential fails, naming the field, showing nothing.
        let m = open_at(&dir.path().join("c"), backend, 100, &test_ring(), &TestClock::at(T0));
        let report = m.warm_from_file(&export, None).unwrap();
        assert_eq!((report.loaded, report.skipped, report.failed), (1, 0, 3), "{backend:?}");
        let line_of = |key: &str| {
            let n = lines
                .iter()
                .position(|l| l.starts_with(&format!("{{\"key\": \"{key}\"")))
                .unwrap();
            n as u64 + 1
        };
        let mut expected: Vec<(u64, &str)> = round_trip_expected()
            .iter()
            .filter_map(|(key, _, _, user, pass)| match (user, pass) {
                (Some(_), _) => Some((line_of(key), "`username_encrypted`")),
                (None, Some(_)) => Some((line_of(key), "`password_encrypted`")),
                (None, None) => None,
            })
            .collect();
        expected.sort();
        assert_eq!(report.issues.len(), expected.len());
        for (issue, (at, field)) in report.issues.iter().zip(&expected) {
            assert_eq!(issue.location, RowLocation::Line(*at));
            assert_eq!(issue.kind, IssueKind::Failed);
            assert!(issue.reason.contains(field), "{}", issue.reason);
            let shown = issue.to_string();
            assert_no_secret(shown.as_bytes(), &ROUND_TRIP_SECRETS);
            for token in &tokens {
                assert!(!shown.contains(token.as_str()), "a token in {shown}");
            }
        }
        assert!(m.get("rt-4").is_some());
        assert!(m.get("rt-1").is_none());
    }
}

/// Writes `lines` as a JSONL file `name` in `dir`.
fn jsonl(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn warm_ttl_is_the_override_else_the_sources_else_the_default() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let input = jsonl(
            dir.path(),
            "ttl.jsonl",
            &[
                r#"{"proxy_url": "http://10.5.0.1:80", "source": "src"}"#,
                r#"{"proxy_url": "http://10.5.0.2:80", "source": "other"}"#,
                r#"{"proxy_url": "http://10.5.0.3:80"}"#,
            ],
        );
        let cases: [(&str, Option<u64>, [u64; 3]); 3] = [
            ("none", None, [120, 600, 300]),
            ("override", Some(90), [90, 90, 90]),
            ("max", Some(MAX_TTL_SECONDS), [MAX_TTL_SECONDS; 3]),
        ];
        for (name, ttl_override, ttls) in cases {
            let clock = TestClock::at(T0);
            let config = config(&dir.path().join(name), backend, 100)
                .default_ttl_seconds(600)
                .source_ttl("src", 120)
                .source_ttl(DEFAULT_WARM_SOURCE, 300)
                .build()
                .unwrap();
            let m = open(config, &ring, Some(&clock));
            clean(&m.warm_from_file(&input, ttl_override).unwrap(), 3);
            for (i, ttl) in (1..).zip(ttls) {
                let url = format!("http://10.5.0.{i}:80");
                let e = m.get(&generate_cache_key(&url)).unwrap();
                assert_eq!(e.ttl_seconds, ttl, "{backend:?} {name} {url}");
                assert_eq!(e.fetch_time, T0, "{name}: fetched at the manager's now");
                assert_eq!(
                    e.expires_at - e.fetch_time,
                    time::Duration::seconds(i64::try_from(ttl).unwrap()),
                    "{backend:?} {name} {url}"
                );
            }
            assert_eq!(
                m.get(&generate_cache_key("http://10.5.0.3:80")).unwrap().source,
                DEFAULT_WARM_SOURCE
            );
        }

        // Out of range: refused before anything is read or stored.
        let m = open_at(&dir.path().join("bad"), backend, 100, &ring, &TestClock::at(T0));
        for bad in [0, MAX_TTL_SECONDS + 1, u64::MAX] {
            match m.warm_from_file(&input, Some(bad)) {
                Err(ManagerError::InvalidTtl { value, max }) => {
                    assert_eq!((value, max), (bad, MAX_TTL_SECONDS));
                }
                other => panic!("{backend:?} ttl {bad}: {other:?}"),
            }
        }
        assert_eq!(m.get_statistics().total_size(), 0, "{backend:?}");
    }
}

#[test]
fn warm_defaults_the_key_and_the_source_and_drops_masks() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let input = jsonl(
            dir.path(),
            "defaults.jsonl",
            &[
                r#"{"proxy_url": "http://10.2.0.1:80"}"#,
                r#"{"proxy_url": "http://10.2.0.2:80", "key": "", "source": ""}"#,
                r#"{"proxy_url": "http://10.2.0.3:80", "key": "   ", "source": "  s3  ", "username": "***", "password": "***"}"#,
                r#"{"proxy_url": "http://10.2.0.4:80", "key": "given-key", "source": "s4", "password": " p4 "}"#,
            ],
        );
        let m = open_at(dir.path(), backend, 100, &test_ring(), &TestClock::at(T0));
        clean(&m.warm_from_file(&input, None).unwrap(), 4);
        let expected = [
            (
                generate_cache_key("http://10.2.0.1:80"),
                "http://10.2.0.1:80",
                DEFAULT_WARM_SOURCE,
                None,
            ),
            (
                generate_cache_key("http://10.2.0.2:80"),
                "http://10.2.0.2:80",
                DEFAULT_WARM_SOURCE,
                None,
            ),
            (
                generate_cache_key("http://10.2.0.3:80"),
                "http://10.2.0.3:80",
                "s3",
                None,
            ),
            ("given-key".to_owned(), "http://10.2.0.4:80", "s4", Some("p4")),
        ];
        assert_eq!(DEFAULT_WARM_SOURCE, "warmed");
        assert_eq!(
            generate_cache_key("http://10.2.0.1:80"),
            CacheManager::generate_cache_key("http://10.2.0.1:80")
        );
        for (key, url, source, password) in expected {
            let e = m.get(&key).unwrap_or_else(|| panic!("{backend:?} {key}"));
            assert_eq!((e.proxy_url.as_str(), e.source.as_str()), (url, source), "{backend:?}");
            assert_eq!(e.username, None, "{key}");
            assert_eq!(e.password, secret(password), "{key}");
        }
        assert_eq!(m.get_statistics().l2_stats.current_size, 4);
    }
}

#[test]
fn warm_reports_each_bad_row_where_it_is_and_counts_replaced_keys() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let m = open_at(dir.path(), backend, 100, &test_ring(), &TestClock::at(T0));

        let input = jsonl(
            dir.path(),
            "rows.jsonl",
            &[
                r#"{"proxy_url": "http://10.3.0.1:80", "source": "first"}"#,
                r#"{broken"#,
                r#"{"source": "no-url"}"#,
                "",
                r#"{"proxy_url": "ftp://10.3.0.9:21"}"#,
                r#"{"proxy_url": "http://10.3.0.1:80", "source": "second"}"#,
                r#"{"proxy_url": "http://10.3.0.2:80", "key": "same"}"#,
                r#"{"proxy_url": "http://10.3.0.3:80", "key": "same", "source": "last"}"#,
                "[1]",
                r#"{"proxy_url": "http://10.3.0.1:80", "source": "third"}"#,
            ],
        );
        let report = m.warm_from_file(&input, None).unwrap();
        assert_eq!(
            (report.loaded, report.skipped, report.failed, report.replaced),
            (5, 3, 1, 3),
            "{backend:?}"
        );
        let issues: Vec<(RowLocation, IssueKind)> = report.issues.iter().map(|i| (i.location, i.kind)).collect();
        assert_eq!(
            issues,
            [
                (RowLocation::Line(2), IssueKind::Failed),
                (RowLocation::Line(3), IssueKind::Skipped),
                (RowLocation::Line(5), IssueKind::Skipped),
                (RowLocation::Line(9), IssueKind::Skipped),
            ]
        );
        let reasons: Vec<&str> = report.issues.iter().map(|i| i.reason.as_str()).collect();
        assert!(reasons[0].starts_with("invalid JSON"), "{}", reasons[0]);
        assert_eq!(reasons[1], "missing `proxy_url`");
        assert!(reasons[2].contains("scheme `ftp`"), "{}", reasons[2]);
        assert_eq!(reasons[3], "not a JSON object (found array)");
        assert_eq!(report.issues[1].to_string(), "line 3: skipped: missing `proxy_url`");
        // The last row of a key wins.
        assert_eq!(
            m.get(&generate_cache_key("http://10.3.0.1:80")).unwrap().source,
            "third"
        );
        let same = m.get("same").unwrap();
        assert_eq!(
            (same.proxy_url.as_str(), same.source.as_str()),
            ("http://10.3.0.3:80", "last")
        );
        assert_eq!(m.get_statistics().l2_stats.current_size, 2, "{backend:?}: two keys");

        // JSON: items, 1-based.
        let path = dir.path().join("items.json");
        fs::write(
            &path,
            r#"[{"proxy_url": "http://10.4.0.1:80"}, null, {"nope": 1}, {"proxy_url": "http://10.4.0.2:80", "username": true}, {"proxy_url": "http://10.4.0.3:80"}]"#,
        )
        .unwrap();
        let report = m.warm_from_file(&path, None).unwrap();
        assert_eq!(
            (report.loaded, report.skipped, report.failed, report.replaced),
            (2, 3, 0, 0)
        );
        let issues: Vec<String> = report.issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            issues,
            [
                "item 2: skipped: not a JSON object (found null)",
                "item 3: skipped: missing `proxy_url`",
                "item 4: skipped: field `username` is a boolean; expected a string or a number",
            ]
        );

        // CSV: records and the physical line each starts on (a quoted field spans lines).
        let path = dir.path().join("rows.csv");
        fs::write(
            &path,
            "proxy_url,username,password,source\n\
             http://10.6.0.1:80,csv-user,\"two\nlines\",csv\n\
             ,u,p,csv\n\
             not-a-url,,,csv\n\
             http://10.6.0.2:80\n",
        )
        .unwrap();
        let report = m.warm_from_file(&path, None).unwrap();
        assert_eq!((report.loaded, report.skipped, report.failed), (2, 2, 0));
        let at: Vec<RowLocation> = report.issues.iter().map(|i| i.location).collect();
        assert_eq!(
            at,
            [
                RowLocation::Row { record: 2, line: 4 },
                RowLocation::Row { record: 3, line: 5 }
            ]
        );
        assert_eq!(
            report.issues[0].to_string(),
            "row 2 (line 4): skipped: missing `proxy_url`"
        );
        let e = m.get(&generate_cache_key("http://10.6.0.1:80")).unwrap();
        assert_eq!(e.password, Some(Secret::new("two\nlines")));
        assert_eq!(e.username, Some(Secret::new("csv-user")));
        assert_eq!(
            m.get(&generate_cache_key("http://10.6.0.2:80")).unwrap().source,
            "warmed"
        );
    }
}
