//! Never lose what you cannot read: a wrong key is refused at open, and a manager opened anyway
//! leaves every entry it cannot read byte for byte where it is, on every backend (JSONL, SQLite
//! L2, SQLite L3, Redis L3).
//!
//! Each case writes entries with key A (six with credentials, four without), then:
//! 1. opens with key B from the environment: refused with `ManagerError::WrongKey`, whose message
//!    names the variable the key came from and holds no key; nothing is created or changed;
//! 2. opens with key B anyway (`KeyCheck::Skip`) and runs every operation of the rule: lookups of
//!    the unreadable keys, health marks of them, puts of other keys past `max_entries` (eviction),
//!    a health mark to the threshold of a readable entry, an export, a warm, the TTL cleaner
//!    with the clock past every entry's expiry, lookups of expired readable entries, flush and
//!    close; every unreadable entry's stored bytes are unchanged, and `unreadable` counts each
//!    lookup that met one;
//! 3. reopens with key A: every credential reads back as written;
//! 4. removes the unreadable entries on the operator's request (`remove_unreadable`, key B):
//!    exactly those go, counted in `evictions_corruption`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pw_cache::model::timestamp::now_utc;
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTierConfig, CacheTierType, ENV_CURRENT_KEY, EnvKeys, FernetKey,
    HealthInvalidation, KeyCheck, L2BackendType, L3BackendType, ManagerError, Secret, TierStatistics,
};
use pw_cache_tests::managers::TestClock;
use pw_cache_tests::redis_server::RedisServer;

/// Where the entries under test live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Jsonl,
    SqliteL2,
    SqliteL3,
    Redis,
}

const ALL: [Backend; 4] = [Backend::Jsonl, Backend::SqliteL2, Backend::SqliteL3, Backend::Redis];

/// The bound of the tier under test: puts of new keys past it must evict.
const MAX: u64 = 12;

const NAMESPACE: &str = "unreadable-kept";

struct Case {
    backend: Backend,
    dir: tempfile::TempDir,
    redis: Option<RedisServer>,
}

impl Case {
    fn new(backend: Backend) -> Self {
        Self {
            backend,
            dir: tempfile::tempdir().unwrap(),
            redis: (backend == Backend::Redis).then(RedisServer::start),
        }
    }

    fn l2_dir(&self) -> PathBuf {
        self.dir.path().join("l2")
    }

    fn l3_db(&self) -> PathBuf {
        self.dir.path().join("l3").join("cache.db")
    }

    fn tier(&self) -> CacheTierType {
        match self.backend {
            Backend::Jsonl | Backend::SqliteL2 => CacheTierType::L2,
            Backend::SqliteL3 | Backend::Redis => CacheTierType::L3,
        }
    }

    /// L1 (small, so that puts evict from it and close flushes its use), and the tier under
    /// test alone below it, bounded to [`MAX`].
    fn config(&self) -> CacheConfig {
        let builder = CacheConfig::builder()
            .l1_config(CacheTierConfig::bounded(4))
            .enable_background_cleanup(false)
            .l2_cache_dir(self.l2_dir())
            .l3_database_path(self.l3_db());
        let builder = match self.backend {
            Backend::Jsonl | Backend::SqliteL2 => builder
                .l2_config(CacheTierConfig::bounded(MAX))
                .l3_config(CacheTierConfig::disabled())
                .l2_backend(if self.backend == Backend::Jsonl {
                    L2BackendType::Jsonl
                } else {
                    L2BackendType::Sqlite
                }),
            Backend::SqliteL3 => builder
                .l2_config(CacheTierConfig::disabled())
                .l3_config(CacheTierConfig::bounded(MAX)),
            Backend::Redis => builder
                .l2_config(CacheTierConfig::disabled())
                .l3_config(CacheTierConfig::bounded(MAX))
                .l3_backend(L3BackendType::Redis)
                .redis_url(Some(Secret::new(self.redis.as_ref().unwrap().url())))
                .redis_namespace(NAMESPACE),
        };
        builder.build().unwrap()
    }

    fn open(&self, key: &FernetKey, check: KeyCheck, clock: &TestClock) -> Result<CacheManager, ManagerError> {
        let clock = clock.clone();
        CacheManager::builder(self.config())
            .env_keys(EnvKeys::new(Some(key.to_base64()), None))
            .key_check(check)
            .clock(move || clock.now())
            .open()
    }

    fn stats(&self, m: &CacheManager) -> TierStatistics {
        let stats = m.get_statistics();
        match self.tier() {
            CacheTierType::L2 => stats.l2_stats,
            _ => stats.l3_stats,
        }
    }

    /// What the store holds of each of `keys`, as bytes: the JSONL lines naming the key, the
    /// SQLite row's values, the Redis hash's fields and its expiry time.
    fn stored(&self, keys: &[String]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for key in keys {
            let held = match self.backend {
                Backend::Jsonl => jsonl_lines(&self.l2_dir(), key),
                Backend::SqliteL2 => sqlite_row(&self.l2_dir().join("l2_cache.db"), "l2_cache", key),
                Backend::SqliteL3 => sqlite_row(&self.l3_db(), "cache_entries", key),
                Backend::Redis => redis_hash(self.redis.as_ref().unwrap(), key),
            };
            assert!(!held.is_empty(), "{:?}: {key} is not stored", self.backend);
            out.insert(key.clone(), held);
        }
        out
    }

    /// Every file and directory under the cache's directory (what an open may have created),
    /// but SQLite's `-wal`/`-shm` files, which any reader of a WAL database may leave.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let path = f.unwrap().path();
                if path.is_dir() {
                    stack.push(path.clone());
                }
                let name = path.to_string_lossy();
                if !name.ends_with("-wal") && !name.ends_with("-shm") {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }
}

fn jsonl_lines(dir: &Path, key: &str) -> String {
    let mut lines = String::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                if value["key"] == key {
                    lines.push_str(line);
                    lines.push('\n');
                }
            }
        }
    }
    lines
}

fn sqlite_row(db: &Path, table: &str, key: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} WHERE key = ?1")).unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([key]).unwrap();
    let mut out = String::new();
    while let Some(row) = rows.next().unwrap() {
        for i in 0..columns {
            let value: rusqlite::types::Value = row.get(i).unwrap();
            out.push_str(&format!("{value:?}|"));
        }
        out.push('\n');
    }
    out
}

fn redis_hash(server: &RedisServer, key: &str) -> String {
    let mut conn = server.connection();
    let name = format!("pwc:{{{NAMESPACE}}}:e:{key}");
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(&name).query(&mut conn).unwrap();
    if fields.is_empty() {
        return String::new();
    }
    fields.sort();
    let expiry: i64 = redis::cmd("PEXPIRETIME").arg(&name).query(&mut conn).unwrap();
    format!("{fields:?} expires {expiry}")
}

fn entry(url: &str, clock: &TestClock, credentials: bool) -> CacheEntry {
    let e = CacheEntry::new_at(url, "kept", 3600, clock.now()).unwrap();
    if credentials {
        e.with_credentials(Some(Secret::new("user-kept")), Some(Secret::new(format!("pw-{url}"))))
    } else {
        e
    }
}

/// Writes six entries with credentials and four without under `key`; their keys.
fn write_with(case: &Case, key: &FernetKey, clock: &TestClock) -> (Vec<String>, Vec<String>) {
    let m = case.open(key, KeyCheck::Strict, clock).unwrap();
    let mut credentialed = Vec::new();
    let mut plain = Vec::new();
    for i in 0..10 {
        let e = entry(&format!("http://10.77.0.{i}:8080"), clock, i < 6);
        m.put(&e).unwrap();
        if i < 6 { &mut credentialed } else { &mut plain }.push(e.key);
    }
    m.close().unwrap();
    (credentialed, plain)
}

#[test]
fn a_wrong_key_is_refused_and_what_it_cannot_read_is_kept() {
    for backend in ALL {
        check_backend(backend);
    }
}

fn check_backend(backend: Backend) {
    let case = Case::new(backend);
    let (key_a, key_b) = (FernetKey::generate(), FernetKey::generate());
    let clock = TestClock::at(pw_cache::model::timestamp::truncate_to_micros(now_utc()));
    let (unreadable, plain) = write_with(&case, &key_a, &clock);
    let before = case.stored(&unreadable);
    let files = case.files();

    // 1. Refused, naming where the key came from, never the key; nothing changed.
    let refused = case.open(&key_b, KeyCheck::Strict, &clock).unwrap_err();
    assert!(
        matches!(refused, ManagerError::WrongKey { .. }),
        "{backend:?}: {refused:?}"
    );
    let text = refused.to_string();
    assert!(text.contains(ENV_CURRENT_KEY), "{backend:?}: {text}");
    assert!(
        !text.contains(key_b.to_base64().expose_secret()),
        "{backend:?}: the key is shown"
    );
    assert_eq!(case.stored(&unreadable), before, "{backend:?}: refusal changed nothing");
    assert_eq!(case.files(), files, "{backend:?}: refusal created nothing");

    // 2. Opened anyway: every operation of the rule.
    let m = case.open(&key_b, KeyCheck::Skip, &clock).unwrap();
    for key in &unreadable {
        assert_eq!(m.get(key), None, "{backend:?}: {key}");
    }
    assert_eq!(
        case.stats(&m).unreadable,
        unreadable.len() as u64,
        "{backend:?}: one per lookup"
    );
    for key in &unreadable {
        assert_eq!(m.invalidate_by_health(key), HealthInvalidation::NotFound, "{backend:?}");
    }
    // Readable entries are served, and a health mark of one reaches the threshold.
    let marked = &plain[0];
    assert!(m.get(marked).is_some(), "{backend:?}: readable entry");
    let mut last = HealthInvalidation::NotFound;
    for _ in 0..3 {
        last = m.invalidate_by_health(marked);
    }
    assert!(
        matches!(last, HealthInvalidation::Evicted { .. }),
        "{backend:?}: {last:?}"
    );
    // Puts of new keys, well past the bound: only readable entries may be evicted.
    for i in 0..(2 * MAX) {
        m.put(&entry(&format!("http://10.78.0.{i}:8080"), &clock, i % 2 == 0))
            .unwrap();
    }
    let report = m.export_to_file(case.dir.path().join("export.jsonl")).unwrap();
    assert!(report.failed >= unreadable.len() as u64, "{backend:?}: {report:?}");
    let warm = case.dir.path().join("warm.jsonl");
    std::fs::write(
        &warm,
        "{\"proxy_url\": \"http://10.79.0.1:8080\", \"username\": \"w\", \"password\": \"p\"}\n",
    )
    .unwrap();
    assert_eq!(m.warm_from_file(&warm, None).unwrap().loaded, 1, "{backend:?}");
    // Every entry is now past its expiry: the cleaner removes what it can read, nothing else.
    clock.advance(Duration::from_secs(7200));
    let cleaned = m.cleanup_now();
    assert!(cleaned.failures.is_empty(), "{backend:?}: {cleaned:?}");
    assert!(cleaned.total() > 0, "{backend:?}: readable expired entries are removed");
    for key in plain.iter().chain(&unreadable) {
        assert_eq!(m.get(key), None, "{backend:?}: {key}");
    }
    m.flush().unwrap();
    let counted = case.stats(&m).unreadable;
    assert!(counted >= 2 * unreadable.len() as u64, "{backend:?}: {counted}");
    assert_eq!(case.stats(&m).evictions_corruption, 0, "{backend:?}: nothing removed");
    m.close().unwrap();
    drop(m);
    assert_eq!(
        case.stored(&unreadable),
        before,
        "{backend:?}: an unreadable entry changed"
    );

    // 3. With the right key they read back as written, although past their expiry on the
    //    manager's clock: looked at with the writer's clock.
    let writer_clock = TestClock::at(clock.now() - time::Duration::seconds(7200));
    let m = case.open(&key_a, KeyCheck::Strict, &writer_clock).unwrap();
    for key in &unreadable {
        let got = m.get(key).unwrap_or_else(|| panic!("{backend:?}: {key} lost"));
        assert_eq!(got.username.as_ref().map(Secret::expose_secret), Some("user-kept"));
        assert!(
            got.password
                .as_ref()
                .unwrap()
                .expose_secret()
                .starts_with("pw-http://10.77.0.")
        );
    }
    m.close().unwrap();
    drop(m);

    // 4. The operator's removal, with key B: exactly the unreadable entries go.
    let m = case.open(&key_b, KeyCheck::Skip, &writer_clock).unwrap();
    let removal = m.remove_unreadable();
    assert!(removal.failed.is_empty(), "{backend:?}: {removal:?}");
    assert_eq!(removal.total(), unreadable.len() as u64, "{backend:?}: {removal:?}");
    assert_eq!(
        case.stats(&m).evictions_corruption,
        unreadable.len() as u64,
        "{backend:?}"
    );
    for key in &unreadable {
        assert_eq!(m.get(key), None, "{backend:?}");
    }
    assert_eq!(case.stats(&m).unreadable, 0, "{backend:?}: none left to meet");
    m.close().unwrap();
}

/// With a key file and a configured key that opens none of the stored credentials (the key
/// file's key does), the configured key is not silently demoted: refused as a likely typo,
/// unless it is said to be new; a key file an open created is removed with its refusal.
#[test]
fn a_configured_key_is_not_silently_put_behind_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        CacheConfig::builder()
            .l1_config(CacheTierConfig::disabled())
            .enable_background_cleanup(false)
            .l2_cache_dir(dir.path().join("l2"))
            .l3_database_path(dir.path().join("l3").join("cache.db"))
            .build()
            .unwrap()
    };
    let open = |env: EnvKeys, check: KeyCheck| CacheManager::builder(config()).env_keys(env).key_check(check).open();
    // A run without a key: the key file is made, and credentials written under it.
    let m = open(EnvKeys::new(None, None), KeyCheck::Strict).unwrap();
    let e = CacheEntry::new("http://10.80.0.1:8080", "kf", 3600)
        .unwrap()
        .with_credentials(Some(Secret::new("u")), Some(Secret::new("p")));
    m.put(&e).unwrap();
    m.close().unwrap();
    drop(m);
    let mistyped = EnvKeys::new(Some(FernetKey::generate().to_base64()), None);
    let err = open(mistyped.clone(), KeyCheck::Strict).unwrap_err();
    assert!(matches!(err, ManagerError::KeyFileKeyOnly { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(ENV_CURRENT_KEY) && text.contains("pw-cache.key"),
        "{text}"
    );
    // Said to be new: opens, and the key file's key still reads what it wrote.
    let m = open(mistyped, KeyCheck::NewKey).unwrap();
    assert_eq!(m.get(&e.key).unwrap().password, e.password);
    m.close().unwrap();
    drop(m);

    // No key and no key file, but credentials stored: the new key file is wrong, refused,
    // and removed again.
    let key_file = dir.path().join("l2").join("pw-cache.key");
    std::fs::remove_file(&key_file).unwrap();
    let err = open(EnvKeys::new(None, None), KeyCheck::Strict).unwrap_err();
    assert!(matches!(err, ManagerError::WrongKey { .. }), "{err:?}");
    assert!(err.to_string().contains("pw-cache.key"), "{err}");
    assert!(!key_file.exists(), "the key file made by the refused open is removed");
}
