//! No credential in plaintext anywhere: a broad workload with known secrets (markers
//! `pw-secret-user-<n>` / `pw-secret-pass-<n>`) goes through every path that writes files, for
//! both L2 backends, and then every byte of every file under the cache directories is scanned.
//!
//! Paths exercised: manager put / get (promotion) / L1 eviction (use recorded below) / L2
//! eviction at its bound / delete / replace / health invalidation (marked and evicted) / TTL
//! cleanup / flush / clear / close; export, masked and encrypted; warm from JSONL, CSV and JSON
//! files (plaintext credentials, credentials inside URLs, bad rows holding secrets) and from an
//! encrypted export; credential rotation to a new key (with compaction); migration of the JSONL
//! directory to SQLite; a key file.
//!
//! What must hold:
//! - no file under the cache, export and migration directories (`-wal`, `-shm`, temporary
//!   files, the key file and the exports included; the warm input files excluded: they are the
//!   plaintext the user gave) contains any marker, in plaintext, lowercase or uppercase hex, or
//!   base64 (standard or url-safe, at each of the three alignments a secret can have inside a
//!   larger encoded text); scanned while the managers run (WAL files present) and after;
//! - no file but the key file holds the key file's key, and no file at all holds a key given in
//!   the configuration (plaintext, raw bytes or their hex);
//! - `Debug` and `Display` of entries, managers, configs, key rings, keys, tokens, reports and
//!   errors hold none of them;
//! - the library's logs, captured at TRACE level by a subscriber installed here (every event
//!   and span field recorded through a `Visit`), hold none of them.
//!
//! `PW_CACHE_RELIABILITY_SCALE=N` multiplies the workload's entries (30 by default).
//!
//! `tests/security/secrets.rs` covers `Debug`/serde/errors of a single entry and config; this file
//! covers everything else.
//!
//! This binary has no other module: the subscriber it installs is global to the process, so any
//! other test here would log into the scanned capture, and would run with TRACE logging on because
//! of it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use pw_cache::tiers::jsonl::{encode_line, hex_encode, shard_file_name};
use pw_cache::tiers::sqlite_l2::SqliteL2Tier;
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTier, CacheTierConfig, EnvKeys, ExportCredentials, ExportOptions,
    FernetKey, HealthInvalidation, JsonlTier, KeyCheck, KeyRing, L2BackendType, ManagerError, OffsetDateTime, Secret,
    SqliteL3Tier, Token,
};
use pw_cache_tests::managers::TestClock;

/// Every credential of this file starts with this: any occurrence of it, in any encoding, is a
/// leak (nothing else in a cache ever holds it).
const MARKER: &str = "pw-secret-";

/// `PW_CACHE_RELIABILITY_SCALE` (default 1): the workload puts 30 × scale entries.
fn scale() -> u32 {
    std::env::var("PW_CACHE_RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn user(n: u32) -> String {
    format!("{MARKER}user-{n}")
}

fn pass(n: u32) -> String {
    format!("{MARKER}pass-{n}")
}

// ---------------------------------------------------------------------------------------------
// Log capture

/// Everything the library logged in this process, as `level target: field=value ...` lines.
static LOG: Mutex<String> = Mutex::new(String::new());

/// A subscriber that enables everything (TRACE) and records every field of every event and span.
struct Capture {
    next_span: std::sync::atomic::AtomicU64,
}

/// Writes each field as ` name=value`.
struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.0, " {}={value} ({value:?})", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {} {}:", span.metadata().level(), span.metadata().name());
        span.record(&mut Fields(&mut line));
        line.push('\n');
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&line);
        let id = self.next_span.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record:");
        values.record(&mut Fields(&mut line));
        line.push('\n');
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&line);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        line.push('\n');
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&line);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs [`Capture`] as the process's subscriber (once; every thread, the library's
/// background threads included, logs to it).
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture {
            next_span: std::sync::atomic::AtomicU64::new(0),
        })
        .expect("no other subscriber in this test binary");
    });
}

fn logs() -> String {
    LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

// ---------------------------------------------------------------------------------------------
// Scanning

/// What to look for, in every encoding a file could hold it in.
struct Needles {
    /// (what, bytes).
    needles: Vec<(String, Vec<u8>)>,
}

impl Needles {
    fn new() -> Self {
        Needles { needles: Vec::new() }
    }

    /// `secret` as text, lowercase and uppercase hex, and base64 (standard and url-safe) at
    /// the three alignments it can have inside a longer encoded text (the characters shared
    /// with its neighbours left out).
    fn text(mut self, name: &str, secret: &[u8]) -> Self {
        self.needles.push((format!("{name} (plaintext)"), secret.to_vec()));
        let hex = hex_encode(secret);
        self.needles.push((format!("{name} (hex)"), hex.clone().into_bytes()));
        self.needles
            .push((format!("{name} (HEX)"), hex.to_uppercase().into_bytes()));
        for (engine_name, engine) in [("base64", &STANDARD), ("url-safe base64", &URL_SAFE)] {
            for lead in 0..3usize {
                let mut input = vec![0u8; lead];
                input.extend_from_slice(secret);
                let encoded = engine.encode(&input);
                let encoded = encoded.trim_end_matches('=');
                // Characters that hold leading zero bytes or the unknown byte after the
                // secret are left out: 4 per group touched by the lead, and the last 4.
                let start = if lead == 0 { 0 } else { 4 };
                let end = encoded.len().saturating_sub(4);
                if end > start + 8 {
                    self.needles.push((
                        format!("{name} ({engine_name}, offset {lead})"),
                        encoded.as_bytes()[start..end].to_vec(),
                    ));
                }
            }
        }
        self
    }

    /// Raw bytes and their hex (key material).
    fn raw(mut self, name: &str, bytes: &[u8]) -> Self {
        self.needles.push((format!("{name} (raw bytes)"), bytes.to_vec()));
        self.needles
            .push((format!("{name} (raw hex)"), hex_encode(bytes).into_bytes()));
        self
    }

    /// Which needles `haystack` holds.
    fn found_in(&self, haystack: &[u8]) -> Vec<&str> {
        self.needles
            .iter()
            .filter(|(_, needle)| contains(haystack, needle))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let last_start = match haystack.len().checked_sub(needle.len()) {
        Some(n) => n,
        None => return false,
    };
    let mut i = 0;
    while i <= last_start {
        match haystack[i..=last_start].iter().position(|b| *b == first) {
            None => return false,
            Some(p) => {
                i += p;
                if &haystack[i + 1..i + needle.len()] == rest {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

/// The credential markers in every encoding (`pw-secret-user-` and `pw-secret-pass-`: long
/// enough that each base64 alignment keeps 12 characters of them).
fn credential_needles() -> Needles {
    Needles::new()
        .text("a username marker", format!("{MARKER}user-").as_bytes())
        .text("a password marker", format!("{MARKER}pass-").as_bytes())
}

/// A key's text and raw bytes.
fn key_needles(name: &str, key: &Secret) -> Needles {
    let raw = URL_SAFE.decode(key.expose_secret()).unwrap();
    Needles::new()
        .text(name, key.expose_secret().as_bytes())
        .raw(name, &raw)
}

/// Every regular file under `root`, except those under `exclude`.
fn files_under(root: &Path, exclude: &[&Path]) -> Vec<PathBuf> {
    fn walk(dir: &Path, exclude: &[&Path], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if exclude.iter().any(|x| path.starts_with(x)) {
                continue;
            }
            if path.is_dir() {
                walk(&path, exclude, out);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, exclude, &mut out);
    out.sort();
    out
}

/// Scans every file under `root` (but `exclude`) for `needles`, allowing key material only in
/// `key_file`; what was found, and the files scanned.
fn scan(
    root: &Path,
    exclude: &[&Path],
    needles: &Needles,
    allowed: &[(&Path, &Needles)],
) -> (Vec<String>, Vec<PathBuf>) {
    let files = files_under(root, exclude);
    let mut found = Vec::new();
    for file in &files {
        // A file may vanish between listing and reading (a temporary file, a WAL at close).
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        for what in needles.found_in(&bytes) {
            found.push(format!("{}: {what}", file.display()));
        }
        for (allowed_in, key) in allowed {
            if file != allowed_in {
                for what in key.found_in(&bytes) {
                    found.push(format!("{}: {what}", file.display()));
                }
            }
        }
    }
    (found, files)
}

/// Every piece of text shown (Debug, Display) is checked against the same needles.
#[derive(Default)]
struct Shown(Vec<(String, String)>);

impl Shown {
    fn add(&mut self, what: &str, text: String) {
        self.0.push((what.to_owned(), text));
    }

    fn check(&self, needles: &[&Needles]) {
        let mut leaks = Vec::new();
        for (what, text) in &self.0 {
            for n in needles {
                for found in n.found_in(text.as_bytes()) {
                    leaks.push(format!("{what}: {found}: {text}"));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets shown:\n{}", leaks.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// The workload

/// The directories of one run.
struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }
    fn l2(&self) -> PathBuf {
        self.cache().join("l2")
    }
    fn l3(&self) -> PathBuf {
        self.cache().join("l3").join("cache.db")
    }
    fn exports(&self) -> PathBuf {
        self.root.path().join("exports")
    }
    fn inputs(&self) -> PathBuf {
        self.root.path().join("inputs")
    }
    fn migrated(&self) -> PathBuf {
        self.root.path().join("migrated")
    }
    fn key_file(&self) -> PathBuf {
        self.l2().join(pw_cache::DEFAULT_KEY_FILE_NAME)
    }
}

fn config(dirs: &Dirs, backend: L2BackendType, key: Option<&Secret>) -> CacheConfig {
    CacheConfig::builder()
        .l1_config(CacheTierConfig::bounded(4))
        .l2_config(CacheTierConfig::bounded(20))
        .l3_config(CacheTierConfig::unbounded())
        .l2_backend(backend)
        .l2_cache_dir(dirs.l2())
        .l3_database_path(dirs.l3())
        .encryption_key(key.cloned())
        .build()
        .unwrap()
}

fn try_open(
    dirs: &Dirs,
    backend: L2BackendType,
    key: Option<&Secret>,
    clock: &TestClock,
    check: KeyCheck,
) -> Result<CacheManager, ManagerError> {
    let clock = clock.clone();
    CacheManager::builder(config(dirs, backend, key))
        .env_keys(EnvKeys::new(None, None))
        .clock(move || clock.now())
        .probe_interval(Duration::from_millis(20))
        .key_check(check)
        .open()
}

fn open(dirs: &Dirs, backend: L2BackendType, key: Option<&Secret>, clock: &TestClock) -> CacheManager {
    try_open(dirs, backend, key, clock, KeyCheck::Strict).unwrap()
}

/// Entry `n` with the credentials its number says: both, one of them, or none.
fn entry(n: u32, clock: &TestClock, ttl: u64) -> CacheEntry {
    let e = CacheEntry::new_at(
        format!("http://10.91.{}.{}:8080", n / 256, n % 256),
        "scan",
        ttl,
        clock.now(),
    )
    .unwrap();
    match n % 5 {
        0 => e,
        1 => e.with_credentials(Some(Secret::new(user(n))), None),
        2 => e.with_credentials(None, Some(Secret::new(pass(n)))),
        _ => e.with_credentials(Some(Secret::new(user(n))), Some(Secret::new(pass(n)))),
    }
}

/// Writes the warm inputs (plaintext credentials: excluded from the scans).
fn write_warm_inputs(dirs: &Dirs) -> Vec<PathBuf> {
    let inputs = dirs.inputs();
    std::fs::create_dir_all(&inputs).unwrap();
    let mut jsonl = String::new();
    for n in 200..208 {
        let _ = writeln!(
            jsonl,
            r#"{{"proxy_url": "http://10.92.0.{n}:3128", "username": "{}", "password": "{}", "source": "warm"}}"#,
            user(n),
            pass(n)
        );
    }
    // Bad rows holding secrets: reported without them.
    let _ = writeln!(
        jsonl,
        r#"{{"proxy_url": "ftp://{}:{}@10.92.1.1:21"}}"#,
        user(208),
        pass(208)
    );
    let _ = writeln!(
        jsonl,
        r#"{{"proxy_url": "http://{}:{}@10.92.1.2:80", "password": "{}"}}"#,
        user(209),
        pass(209),
        pass(209)
    );
    let _ = writeln!(
        jsonl,
        r#"{{"proxy_url": "http://10.92.1.3:80", "password": true, "username": "{}"}}"#,
        user(210)
    );
    let _ = writeln!(
        jsonl,
        r#"{{"proxy_url": "http://10.92.1.4:80", "password": "{}"#,
        pass(211)
    );
    let _ = writeln!(
        jsonl,
        r#"{{"proxy_url": "http://10.92.1.5:80", "password_encrypted": "{}"}}"#,
        hex_encode(pass(212).as_bytes())
    );
    let _ = writeln!(jsonl, r#"{{"proxy_url": "http://u:{}@10.92.1.6:99999"}}"#, pass(213));
    // Credentials inside URLs (moved out of the URL, percent-decoded), in CSV.
    let mut csv = String::from("proxy_url,source\n");
    for n in 220..226 {
        let _ = writeln!(csv, "http://{}:{}%40x@10.92.2.{n}:8080,warm-csv", user(n), pass(n));
    }
    let _ = writeln!(csv, "\"socks5://{}:{}@10.92.3.1\",warm-csv", user(226), pass(226));
    // JSON: plain credentials, a non-object item, credentials in the URL.
    let json = format!(
        r#"[{{"proxy_url": "http://10.92.4.1:8080", "username": "{}", "password": "{}"}}, null,
           {{"proxy_url": "https://{}:{}@10.92.4.2:8443"}},
           {{"proxy_url": "http://10.92.4.3:8080", "username": ["{}"]}}]"#,
        user(230),
        pass(230),
        user(231),
        pass(231),
        user(232)
    );
    let files = vec![
        inputs.join("warm.jsonl"),
        inputs.join("warm.csv"),
        inputs.join("warm.json"),
    ];
    std::fs::write(&files[0], jsonl).unwrap();
    std::fs::write(&files[1], csv).unwrap();
    std::fs::write(&files[2], json).unwrap();
    files
}

/// The whole workload on `backend`, scanning as it goes.
fn workload(backend: L2BackendType) {
    capture_logs();
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(dirs.exports()).unwrap();
    let clock = TestClock::at(OffsetDateTime::now_utc());
    let creds = credential_needles();
    let mut shown = Shown::default();

    // Run 1: a key file made for the cache; every manager path.
    let m = open(&dirs, backend, None, &clock);
    let file_key = Secret::new(
        std::fs::read_to_string(dirs.key_file())
            .unwrap()
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap()
            .trim()
            .to_owned(),
    );
    FernetKey::parse(file_key.expose_secret(), pw_cache::KeySource::Explicit { index: 0 }).unwrap();
    let file_key_needles = key_needles("the key file's key", &file_key);
    shown.add("manager", format!("{m:?}"));
    shown.add("config", format!("{:?}", m.config()));
    shown.add("key ring", format!("{:?}", m.key_ring()));
    shown.add("current key", format!("{:?}", m.key_ring().current()));
    let token = m.key_ring().encrypt(&Secret::new(pass(0)));
    shown.add("token", format!("{token:?}"));

    let entries: Vec<CacheEntry> = (1000..1000 + 30 * scale())
        .map(|n| entry(n, &clock, if n % 4 == 0 { 60 } else { 3600 }))
        .collect();
    for e in &entries {
        let stored = m.put(e).unwrap();
        shown.add("stored", format!("{stored:?}"));
        shown.add("entry", format!("{e:?} {e:#?}"));
        shown.add("entry line", e.to_json_line());
        shown.add("entry json", serde_json::to_string(e).unwrap());
    }
    for e in &entries {
        if let Some(got) = m.get(&e.key) {
            shown.add("served", format!("{got:?}"));
        }
    }
    assert!(m.delete(&entries[0].key));
    assert!(m.delete(&entries[1].key));
    assert!(matches!(
        m.invalidate_by_health(&entries[2].key),
        HealthInvalidation::Marked { .. }
    ));
    let evicted = (0..10)
        .map(|_| m.invalidate_by_health(&entries[3].key))
        .find(|o| matches!(o, HealthInvalidation::Evicted { .. }));
    assert!(evicted.is_some(), "evicted at the threshold");
    let replaced = entry(104, &clock, 3600).with_key(entries[4].key.clone());
    m.put(&replaced).unwrap();
    m.flush().unwrap();
    let masked = m.export_to_file(dirs.exports().join("masked.jsonl")).unwrap();
    shown.add("export report", format!("{masked:?}"));
    let encrypted_export = dirs.exports().join("encrypted.jsonl");
    let report = m
        .export_to_file_with(
            &encrypted_export,
            ExportOptions {
                credentials: ExportCredentials::Encrypted,
            },
        )
        .unwrap();
    assert!(report.exported > 0);
    shown.add("export report", format!("{report:?}"));
    shown.add("inspection", format!("{:?}", m.inspect().unwrap()));
    shown.add("statistics", format!("{:?}", m.get_statistics()));
    shown.add("breakdown", format!("{:?}", m.statistics_breakdown()));

    // Scanned while running: the WAL files are there.
    let (found, files) = scan(
        dirs.root.path(),
        &[&dirs.inputs()],
        &creds,
        &[(&dirs.key_file(), &file_key_needles)],
    );
    assert!(found.is_empty(), "{backend:?}, while running:\n{}", found.join("\n"));
    let mut sidecars = vec!["cache.db-wal", "cache.db-shm"];
    if backend == L2BackendType::Sqlite {
        sidecars.extend(["l2_cache.db-wal", "l2_cache.db-shm"]);
    }
    for sidecar in sidecars {
        assert!(
            files.iter().any(|f| f.to_string_lossy().ends_with(sidecar)),
            "the scan saw {sidecar}: {files:?}"
        );
    }

    // Warm from files with plaintext credentials, and bad rows holding secrets.
    for input in write_warm_inputs(&dirs) {
        let report = m.warm_from_file(&input, None).unwrap();
        assert!(report.loaded > 0, "{}: {report:?}", input.display());
        shown.add("warm report", format!("{report:?}"));
        for issue in &report.issues {
            shown.add("warm issue", issue.to_string());
        }
    }
    // Errors of the manager.
    let errors: Vec<ManagerError> = vec![
        m.warm_from_file(dirs.inputs().join("warm.jsonl"), Some(0)).unwrap_err(),
        m.warm_from_file(dirs.inputs().join("missing.json"), None).unwrap_err(),
        m.put(&entry(300, &clock, 60).with_key("")).unwrap_err(),
        m.put_with_key("another-key", &entry(301, &clock, 60)).unwrap_err(),
    ];
    for e in &errors {
        shown.add("manager error", format!("{e} / {e:?}"));
    }
    // Expired entries removed by the cleaner (JSONL shards rewritten).
    clock.advance(Duration::from_secs(120));
    let cleanup = m.cleanup_now();
    assert!(cleanup.removed.iter().sum::<usize>() > 0, "{cleanup:?}");
    shown.add("cleanup", format!("{cleanup:?}"));
    m.close().unwrap();
    shown.add("closed manager", format!("{m:?}"));
    drop(m);
    let (found, _) = scan(
        dirs.root.path(),
        &[&dirs.inputs()],
        &creds,
        &[(&dirs.key_file(), &file_key_needles)],
    );
    assert!(found.is_empty(), "{backend:?}, after run 1:\n{}", found.join("\n"));

    // Run 2: a new key in the config (the key file's joins as previous): rotate, warm from the
    // encrypted export (tokens of the old key), export again.
    let new_key = FernetKey::generate().to_base64();
    let new_key_needles = key_needles("the configured key", &new_key);
    // Refused until the key is said to be new (the key file's key alone opens what is stored).
    let refused = try_open(&dirs, backend, Some(&new_key), &clock, KeyCheck::Strict).unwrap_err();
    assert!(matches!(refused, ManagerError::KeyFileKeyOnly { .. }), "{refused:?}");
    shown.add("key check refusal", format!("{refused} / {refused:?}"));
    let m = try_open(&dirs, backend, Some(&new_key), &clock, KeyCheck::NewKey).unwrap();
    shown.add(
        "config with key",
        format!("{:?} {:?}", m.config(), m.config().to_builder()),
    );
    shown.add(
        "environment keys",
        format!("{:?}", EnvKeys::new(Some(new_key.clone()), Some(file_key.clone()))),
    );
    // A credential given where a key goes: refused without being shown.
    let bad = CacheManager::builder(config(&dirs, backend, Some(&Secret::new(pass(999)))))
        .env_keys(EnvKeys::new(None, None))
        .open()
        .unwrap_err();
    assert!(matches!(bad, ManagerError::Keys(_)), "{bad:?}");
    shown.add("key error", format!("{bad} / {bad:?}"));
    shown.add("manager", format!("{m:?}"));
    let rotation = m.rotate_credentials().unwrap();
    assert!(rotation.failed.is_empty(), "{rotation:?}");
    shown.add("rotation", format!("{rotation:?}"));
    let warmed = m.warm_from_file(&encrypted_export, None).unwrap();
    assert!(warmed.loaded > 0 && warmed.failed == 0, "{warmed:?}");
    shown.add("warm report", format!("{warmed:?}"));
    m.export_to_file_with(
        dirs.exports().join("encrypted-new-key.jsonl"),
        ExportOptions {
            credentials: ExportCredentials::Encrypted,
        },
    )
    .unwrap();
    for n in 400..420 {
        m.put(&entry(n, &clock, 3600)).unwrap();
    }
    let (found, _) = scan(
        dirs.root.path(),
        &[&dirs.inputs()],
        &creds,
        &[(&dirs.key_file(), &file_key_needles), (Path::new(""), &new_key_needles)],
    );
    assert!(found.is_empty(), "{backend:?}, after rotation:\n{}", found.join("\n"));
    m.close().unwrap();
    drop(m);

    // The JSONL directory migrated to SQLite.
    if backend == L2BackendType::Jsonl {
        let ring = Arc::new(KeyRing::from_secrets(&new_key, std::slice::from_ref(&file_key)).unwrap());
        let tier = SqliteL2Tier::open(dirs.migrated(), &CacheTierConfig::unbounded(), ring).unwrap();
        let report = tier.migrate_from_jsonl(dirs.l2()).unwrap();
        assert!(report.migrated > 0 && report.failed == 0, "{report:?}");
        shown.add("migration", format!("{report:?}"));
        shown.add("migrated tier", format!("{tier:?}"));
        tier.close().unwrap();
    }

    // Run 3: clear, and a few more writes.
    let m = open(&dirs, backend, Some(&new_key), &clock);
    assert!(m.clear() > 0);
    for n in 500..510 {
        m.put(&entry(n, &clock, 3600)).unwrap();
    }
    m.close().unwrap();
    drop(m);

    let (found, files) = scan(
        dirs.root.path(),
        &[&dirs.inputs()],
        &creds,
        &[(&dirs.key_file(), &file_key_needles), (Path::new(""), &new_key_needles)],
    );
    assert!(found.is_empty(), "{backend:?}, at the end:\n{}", found.join("\n"));
    // The scans saw what they should have.
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for expected in [
        "masked.jsonl",
        "encrypted.jsonl",
        pw_cache::DEFAULT_KEY_FILE_NAME,
        "cache.db",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(expected)),
            "{expected} not scanned: {names:?}"
        );
    }
    assert!(
        std::fs::read_to_string(dirs.key_file())
            .unwrap()
            .contains(file_key.expose_secret()),
        "the key file holds its key"
    );

    shown.check(&[&creds, &file_key_needles, &new_key_needles]);
    let log = logs();
    assert!(
        log.contains("INFO") && log.contains("DEBUG"),
        "the subscriber captured the library's logs down to DEBUG: {log}"
    );
    let leaks: Vec<&str> = [&creds, &file_key_needles, &new_key_needles]
        .iter()
        .flat_map(|n| n.found_in(log.as_bytes()))
        .collect();
    assert!(leaks.is_empty(), "{backend:?}: logs hold {leaks:?}:\n{log}");
}

#[test]
fn jsonl_backend_writes_no_secret_anywhere() {
    workload(L2BackendType::Jsonl);
}

#[test]
fn sqlite_backend_writes_no_secret_anywhere() {
    workload(L2BackendType::Sqlite);
}

/// Damaged files that hold a secret where a token should be (a writer that stored plaintext):
/// the errors, `Debug` and logs of reading them never echo it.
#[test]
fn damaged_files_holding_plaintext_are_never_echoed() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let ring = Arc::new(KeyRing::new(FernetKey::generate(), []));
    let creds = credential_needles();
    let mut shown = Shown::default();
    let now = OffsetDateTime::now_utc();
    let base = |n: u32| {
        CacheEntry::new_at(format!("http://10.93.0.{n}:8080"), "damaged", 3600, now)
            .unwrap()
            .with_credentials(Some(Secret::new("placeholder")), Some(Secret::new("placeholder")))
    };

    // JSONL lines: hex of the plaintext, the plaintext itself, the plaintext inside an object.
    let l2 = dir.path().join("l2");
    std::fs::create_dir_all(&l2).unwrap();
    let mut keys = Vec::new();
    let mut lines = String::new();
    for (n, value) in [
        (1, serde_json::Value::from(hex_encode(pass(901).as_bytes()))),
        (2, serde_json::Value::from(pass(902))),
        (3, serde_json::json!({ "secret": pass(903) })),
        (4, serde_json::json!([pass(904)])),
        (
            5,
            serde_json::Value::from(hex_encode(format!("gAAAAA{}", pass(905)).as_bytes())),
        ),
    ] {
        let e = base(n);
        let mut v: serde_json::Value = serde_json::from_str(&encode_line(&e, &ring).unwrap()).unwrap();
        v["password_encrypted"] = value;
        lines.push_str(&v.to_string());
        lines.push('\n');
        keys.push(e.key);
    }
    // All in one shard file: the tier serves misplaced keys.
    std::fs::write(l2.join(shard_file_name(0)), &lines).unwrap();
    {
        let tier = JsonlTier::open(&l2, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
        for key in &keys {
            let err = tier.get(key).unwrap_err();
            assert!(err.is_corrupt_entry(), "{err}");
            shown.add("jsonl error", format!("{err} / {err:?}"));
        }
        shown.add("jsonl damage", format!("{:?}", tier.damage()));
    }
    // A SQLite row holding the plaintext as its token.
    let l3 = dir.path().join("l3.db");
    {
        let tier = SqliteL3Tier::open(&l3, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
        let e = base(6);
        tier.put(&e).unwrap();
        let conn = rusqlite::Connection::open(&l3).unwrap();
        conn.execute(
            "UPDATE cache_entries SET password_encrypted = ?1, username_encrypted = ?2 WHERE key = ?3",
            rusqlite::params![pass(906).into_bytes(), user(906), e.key],
        )
        .unwrap();
        let err = tier.get(&e.key).unwrap_err();
        assert!(err.is_corrupt_entry(), "{err}");
        shown.add("sqlite error", format!("{err} / {err:?}"));
        keys.push(e.key);
    }
    // The manager on both, opened whatever the key check says (some stored tokens open, the
    // damaged ones do not): every lookup is an unreadable entry, logged and left in place.
    let config = CacheConfig::builder()
        .l1_config(CacheTierConfig::bounded(4))
        .l2_config(CacheTierConfig::unbounded())
        .l3_config(CacheTierConfig::unbounded())
        .l2_backend(L2BackendType::Jsonl)
        .l2_cache_dir(&l2)
        .l3_database_path(&l3)
        .build()
        .unwrap();
    let m = CacheManager::builder(config)
        .key_ring(Arc::clone(&ring))
        .key_check(KeyCheck::Skip)
        .open()
        .unwrap();
    let export = m.export_to_file(dir.path().join("export.jsonl")).unwrap();
    assert_eq!(export.failed as usize, keys.len(), "{export:?}");
    shown.add("export report", format!("{export:?}"));
    shown.add("inspection", format!("{:?}", m.inspect().unwrap()));
    for key in &keys {
        assert_eq!(m.get(key), None);
    }
    let stats = m.get_statistics();
    assert_eq!(
        stats.l2_stats.evictions_corruption + stats.l3_stats.evictions_corruption,
        0,
        "nothing unreadable is removed by lookups"
    );
    assert!(stats.l2_stats.unreadable + stats.l3_stats.unreadable >= keys.len() as u64);
    m.close().unwrap();
    // Crypto errors on their own.
    for bytes in [pass(907).into_bytes(), format!("gAAAAAB{}", pass(908)).into_bytes()] {
        let err = ring.decrypt_bytes(&bytes).unwrap_err();
        shown.add("crypto error", format!("{err} / {err:?}"));
        if let Err(err) = Token::from_bytes(&bytes) {
            shown.add("token error", format!("{err} / {err:?}"));
        }
    }
    shown.check(&[&creds]);
    let log = logs();
    assert!(log.contains("unreadable entry"), "the lookups were logged: {log}");
    let leaks = creds.found_in(log.as_bytes());
    assert!(leaks.is_empty(), "logs hold {leaks:?}:\n{log}");
}

/// The scanner finds a secret in each encoding, embedded in other text at any alignment, and
/// finds nothing in a token of it.
#[test]
fn the_scanner_finds_every_encoding() {
    let needles = credential_needles();
    let secret = pass(77);
    for lead in 0..3 {
        for tail in 0..3 {
            let mut plain = b"xy".repeat(lead + 3);
            plain.truncate(lead + 3);
            plain.extend_from_slice(secret.as_bytes());
            plain.extend_from_slice(&b"!?"[..tail.min(2)]);
            for encoded in [
                plain.clone(),
                hex_encode(&plain).into_bytes(),
                hex_encode(&plain).to_uppercase().into_bytes(),
                STANDARD.encode(&plain).into_bytes(),
                URL_SAFE.encode(&plain).into_bytes(),
                STANDARD.encode(&plain).trim_end_matches('=').as_bytes().to_vec(),
            ] {
                let mut haystack = b"some other bytes \x00".to_vec();
                haystack.extend_from_slice(&encoded);
                haystack.extend_from_slice(b" and more");
                assert!(
                    !needles.found_in(&haystack).is_empty(),
                    "lead {lead}, tail {tail}: {}",
                    String::from_utf8_lossy(&encoded)
                );
            }
        }
    }
    let ring = KeyRing::new(FernetKey::generate(), []);
    let token = ring.encrypt(&Secret::new(secret));
    let mut haystack = token.as_bytes().to_vec();
    haystack.extend_from_slice(hex_encode(token.as_bytes()).as_bytes());
    assert_eq!(needles.found_in(&haystack), Vec::<&str>::new());
    let key = FernetKey::generate().to_base64();
    let key_needles = key_needles("key", &key);
    let raw = URL_SAFE.decode(key.expose_secret()).unwrap();
    for haystack in [
        key.expose_secret().as_bytes().to_vec(),
        raw.clone(),
        hex_encode(&raw).into_bytes(),
    ] {
        assert!(!key_needles.found_in(&haystack).is_empty());
    }
}
