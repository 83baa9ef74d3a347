//! Shared helpers of the integration suite: where the fixtures are, and how to read them.
//!
//! The fixtures in `tests/fixtures/proxywhirl-0.3.3/` were written by the real proxywhirl 0.3.3
//! (see its README); `manifest.json` says what Python read back from each of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The 21 fields of a `CacheEntry`, in the reference's order (the order of its JSON form).
pub const ENTRY_FIELDS: [&str; 21] = [
    "key",
    "proxy_url",
    "username",
    "password",
    "source",
    "fetch_time",
    "last_accessed",
    "access_count",
    "ttl_seconds",
    "expires_at",
    "health_status",
    "failure_count",
    "evicted_from_l1",
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
];

/// The directory of the proxywhirl 0.3.3 fixtures.
pub fn proxywhirl_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/proxywhirl-0.3.3")
}

/// The directory of the Fernet specification's test vectors.
pub fn fernet_spec_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fernet-spec")
}

/// A fixture file's text (`rel` under [`proxywhirl_fixtures`]).
pub fn read_fixture(rel: &str) -> String {
    let path = proxywhirl_fixtures().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// `manifest.json`, parsed.
pub fn manifest() -> Value {
    serde_json::from_str(&read_fixture("manifest.json")).expect("manifest.json is JSON")
}

/// Every file under the fixtures directory, recursively, sorted.
pub fn fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("fixture dir is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&proxywhirl_fixtures(), &mut out);
    out.sort();
    out
}

/// Every string value anywhere inside `value` (object keys excluded).
pub fn strings_in(value: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.as_str()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    out
}

/// The lines of the fixtures' `export/export.jsonl`.
pub fn export_lines() -> Vec<String> {
    read_fixture("export/export.jsonl").lines().map(str::to_owned).collect()
}

/// Decodes lowercase or uppercase hex (the JSONL tier's encoding of token bytes).
pub fn hex_decode(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd-length hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The fixtures' keys: (current, previous), as url-safe base64 text.
pub fn fixture_keys() -> (String, String) {
    (
        read_fixture("key_current.txt").trim().to_owned(),
        read_fixture("key_previous.txt").trim().to_owned(),
    )
}

/// The Fernet specification, implemented independently of the `fernet` crate (RustCrypto
/// primitives, following <https://github.com/fernet/spec/blob/master/Spec.md>), so that tests
/// can check the tokens pw-cache makes the way Python's `cryptography` would read them.
pub mod fernet_reference {
    use aes::Aes128;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// What a token holds, once verified.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Opened {
        /// Unix seconds.
        pub timestamp: u64,
        /// The 16-byte IV.
        pub iv: [u8; 16],
        /// The plaintext.
        pub plaintext: Vec<u8>,
    }

    fn split_key(key_b64: &str) -> ([u8; 16], [u8; 16]) {
        let key = URL_SAFE.decode(key_b64).expect("key is base64");
        assert_eq!(key.len(), 32);
        (key[..16].try_into().unwrap(), key[16..].try_into().unwrap())
    }

    /// The token the spec's "generate" makes from these inputs.
    pub fn generate(key_b64: &str, timestamp: u64, iv: [u8; 16], plaintext: &[u8]) -> String {
        let (signing, encryption) = split_key(key_b64);
        let ciphertext =
            cbc::Encryptor::<Aes128>::new(&encryption.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut token = vec![0x80];
        token.extend_from_slice(&timestamp.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&ciphertext);
        let mut mac = Hmac::<Sha256>::new_from_slice(&signing).unwrap();
        mac.update(&token);
        token.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE.encode(token)
    }

    /// The spec's "verify" without TTL, as Python's `Fernet.decrypt(token)`: `None` when the
    /// token is malformed or its HMAC does not match.
    pub fn open(key_b64: &str, token: &[u8]) -> Option<Opened> {
        let (signing, encryption) = split_key(key_b64);
        let data = URL_SAFE.decode(token).ok()?;
        if data.len() < 73 || data[0] != 0x80 {
            return None;
        }
        let (message, tag) = data.split_at(data.len() - 32);
        let mut mac = Hmac::<Sha256>::new_from_slice(&signing).unwrap();
        mac.update(message);
        mac.verify_slice(tag).ok()?;
        let timestamp = u64::from_be_bytes(message[1..9].try_into().unwrap());
        let iv: [u8; 16] = message[9..25].try_into().unwrap();
        let plaintext = cbc::Decryptor::<Aes128>::new(&encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&message[25..])
            .ok()?;
        Some(Opened {
            timestamp,
            iv,
            plaintext,
        })
    }
}

/// The entry as the manifest writes it: its JSON form, credentials in clear.
pub fn entry_as_manifest(e: &pw_cache::CacheEntry) -> Value {
    let mut v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
    for (field, secret) in [("username", &e.username), ("password", &e.password)] {
        v[field] = secret.as_ref().map_or(Value::Null, |s| Value::from(s.expose_secret()));
    }
    v
}

/// `PRAGMA table_info` of `table`, its foreign keys and, per index, its list row and columns.
pub fn sqlite_schema(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let rows = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let mut out = rows(&format!("PRAGMA table_info({table})"));
    out.extend(rows(&format!("PRAGMA foreign_key_list({table})")));
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_index_list(?1) ORDER BY name")
        .unwrap();
    let names: Vec<String> = stmt
        .query_map([table], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for name in names {
        out.push(name.clone());
        out.extend(rows(&format!(
            "SELECT \"unique\", origin, partial FROM pragma_index_list('{table}') WHERE name = '{name}'"
        )));
        out.extend(rows(&format!("PRAGMA index_info('{name}')")));
    }
    out
}

/// The fixtures' key ring: current key, then the previous one (as proxywhirl's MultiFernet).
pub fn fixture_key_ring() -> pw_cache::KeyRing {
    let (current, previous) = fixture_keys();
    pw_cache::KeyRing::from_secrets(&pw_cache::Secret::new(current), &[pw_cache::Secret::new(previous)])
        .expect("the fixtures' keys are valid")
}

/// [`fixture_key_ring`], shared, as tiers take it.
pub fn fixture_ring() -> std::sync::Arc<pw_cache::KeyRing> {
    std::sync::Arc::new(fixture_key_ring())
}

/// Checks that `tier`, opened on a copy of the fixtures' `store` (`jsonl_l2`, `sqlite_l2`,
/// `sqlite_l3`), serves every entry exactly as Python read it back (all 21 fields, credentials
/// decrypted), and holds the same keys.
pub fn assert_tier_matches_manifest(tier: &dyn pw_cache::CacheTier, store: &str) {
    let store = &manifest()["stores"][store];
    let entries = store["entries"].as_array().expect("manifest entries");
    assert_eq!(entries.len(), 200);
    for want in entries {
        assert_eq!(want["python_get"], "ok");
        let key = want["key"].as_str().expect("key");
        let got = tier
            .get(key)
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .unwrap_or_else(|| panic!("{key}: missing"));
        let got = entry_as_manifest(&got);
        for field in ENTRY_FIELDS {
            assert_eq!(got[field], want[field], "{key}.{field}");
        }
    }
    assert_eq!(
        tier.size().expect("size") as u64,
        store["python_size"].as_u64().expect("python_size")
    );
    let mut keys = tier.keys().expect("keys");
    keys.sort();
    let want: Vec<&str> = store["python_keys_sorted"]
        .as_array()
        .expect("python_keys_sorted")
        .iter()
        .map(|k| k.as_str().expect("key"))
        .collect();
    assert_eq!(keys, want);
}

/// Tests that run copies of themselves as separate OS processes.
pub mod child_process {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long a child waits for a sibling or a signal before failing.
    pub const PATIENCE: Duration = Duration::from_secs(120);

    /// Starts this test binary again, running only `test_name`, with `env_var` set to `spec`:
    /// the test sees the variable and plays the child.
    pub fn spawn_self(test_name: &str, env_var: &str, spec: String) -> Child {
        Command::new(std::env::current_exe().expect("test binary path"))
            .args(["--exact", test_name, "--test-threads=1", "--quiet"])
            .env(env_var, spec)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a child test process")
    }

    /// Waits until the marker file `dir/name` exists (at most [`PATIENCE`] after `start`).
    pub fn wait_for(dir: &Path, name: &str, start: Instant) {
        while !dir.join(name).exists() {
            assert!(start.elapsed() < PATIENCE, "waited too long for {name}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Building managers for the manager tests: a config under a directory, a key ring, a clock.
pub mod managers {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use pw_cache::{
        CacheConfig, CacheConfigBuilder, CacheManager, CacheTierConfig, FernetKey, KeyRing, L2BackendType,
        OffsetDateTime,
    };

    /// Both L2 backends, for tests that run on each.
    pub const BACKENDS: [L2BackendType; 2] = [L2BackendType::Jsonl, L2BackendType::Sqlite];

    /// A config for a cache under `dir`: L2 (`backend`) in `dir/l2`, L3 in `dir/l3/cache.db`,
    /// L1 bounded to `l1_max` entries (LRU), L2/L3 unbounded.
    pub fn config(dir: &Path, backend: L2BackendType, l1_max: u64) -> CacheConfigBuilder {
        CacheConfig::builder()
            .l1_config(CacheTierConfig::bounded(l1_max))
            .l2_config(CacheTierConfig::unbounded())
            .l3_config(CacheTierConfig::unbounded())
            .l2_backend(backend)
            .l2_cache_dir(dir.join("l2"))
            .l3_database_path(dir.join("l3").join("cache.db"))
    }

    /// A new random key ring (no previous keys).
    pub fn test_ring() -> Arc<KeyRing> {
        Arc::new(KeyRing::new(FernetKey::generate(), []))
    }

    /// A manager on `config` with `ring` and, if given, `clock`.
    pub fn open(config: CacheConfig, ring: &Arc<KeyRing>, clock: Option<&TestClock>) -> CacheManager {
        let mut builder = CacheManager::builder(config).key_ring(Arc::clone(ring));
        if let Some(clock) = clock {
            let clock = clock.clone();
            builder = builder.clock(move || clock.now());
        }
        builder.open().expect("open manager")
    }

    /// The L2 (`backend`) or L3 tier of the cache that [`config`] puts under `dir`, opened
    /// directly (another view of the same files than the manager's).
    pub fn open_tier(
        dir: &Path,
        tier: pw_cache::CacheTierType,
        backend: L2BackendType,
        ring: &Arc<KeyRing>,
    ) -> Box<dyn pw_cache::CacheTier> {
        let cfg = CacheTierConfig::unbounded();
        let ring = Arc::clone(ring);
        match (tier, backend) {
            (pw_cache::CacheTierType::L3, _) => {
                Box::new(pw_cache::SqliteL3Tier::open(dir.join("l3").join("cache.db"), &cfg, ring).expect("open L3"))
            }
            (pw_cache::CacheTierType::L2, L2BackendType::Jsonl) => {
                Box::new(pw_cache::JsonlTier::open(dir.join("l2"), &cfg, ring).expect("open L2"))
            }
            (pw_cache::CacheTierType::L2, L2BackendType::Sqlite) => {
                Box::new(pw_cache::SqliteL2Tier::open(dir.join("l2"), &cfg, ring).expect("open L2"))
            }
            (pw_cache::CacheTierType::L1, _) => panic!("L1 lives in the manager's memory"),
        }
    }

    /// A clock the test moves by hand (microseconds since the Unix epoch, shared by clones).
    #[derive(Clone)]
    pub struct TestClock(Arc<AtomicI64>);

    impl TestClock {
        /// A clock at `at`.
        pub fn at(at: OffsetDateTime) -> Self {
            let clock = Self(Arc::new(AtomicI64::new(0)));
            clock.set(at);
            clock
        }

        /// Now, by this clock.
        pub fn now(&self) -> OffsetDateTime {
            let micros = self.0.load(Ordering::SeqCst);
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).expect("clock in range")
        }

        /// Moves the clock to `at` (microsecond precision).
        pub fn set(&self, at: OffsetDateTime) {
            let micros = i64::try_from(at.unix_timestamp_nanos() / 1000).expect("clock in range");
            self.0.store(micros, Ordering::SeqCst);
        }

        /// Moves the clock by `by`.
        pub fn advance(&self, by: std::time::Duration) {
            self.set(self.now() + by);
        }
    }
}

/// How long a test waits for something that should happen before failing.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Polls `condition` every few milliseconds until it holds (fails after [`PATIENCE`]).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
