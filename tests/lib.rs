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
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    /// How long a child waits for a sibling or a signal before failing.
    pub const PATIENCE: Duration = Duration::from_secs(120);

    /// The name the test harness gives the test function `name` of the module `module` (the
    /// caller's `module_path!()`): the module path without the crate's name, then `name`. It is
    /// what `--exact` matches, wherever the test's file sits in its binary.
    pub fn test_path(module: &str, name: &str) -> String {
        match module.split_once("::") {
            Some((_crate, path)) => format!("{path}::{name}"),
            None => name.to_owned(),
        }
    }

    /// Panics unless `test` is the name of exactly one test of this binary: a child told to
    /// run a name that matches no test runs nothing and exits 0, so its parent would go on as
    /// if it had played its part. Checked once per name (`--list --exact`).
    fn assert_is_one_test(exe: &Path, test: &str) {
        static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.iter().any(|name| name == test) {
            return;
        }
        let out = Command::new(exe)
            .args(["--list", "--exact", test])
            .stderr(Stdio::inherit())
            .output()
            .expect("list the tests of this binary");
        let listed = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.strip_suffix(": test") == Some(test))
            .count();
        assert_eq!(
            listed,
            1,
            "`{test}` is not the name of one test of {}: a child running it would run nothing",
            exe.display()
        );
        checked.push(test.to_owned());
    }

    /// Starts this test binary again, running only the test `test_name` of the module `module`
    /// (pass `module_path!()`), with `env_var` set to `spec`: the test sees the variable and
    /// plays the child.
    pub fn spawn_self(module: &str, test_name: &str, env_var: &str, spec: String) -> Child {
        let exe = std::env::current_exe().expect("test binary path");
        let test = test_path(module, test_name);
        assert_is_one_test(&exe, &test);
        Command::new(exe)
            // --nocapture: a failing child's panic message reaches the parent's stderr.
            .args(["--exact", &test, "--test-threads=1", "--quiet", "--nocapture"])
            .env(env_var, spec)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a child test process")
    }

    /// [`spawn_self`] under a limit of `limit_bytes` of address space (`ulimit -v`): an
    /// allocation past it fails, and Rust aborts the child, so a child that ends well never
    /// needed more.
    pub fn spawn_self_with_memory_limit(
        module: &str,
        test_name: &str,
        env_var: &str,
        spec: String,
        limit_bytes: u64,
    ) -> Child {
        let exe = std::env::current_exe().expect("test binary path");
        let test = test_path(module, test_name);
        assert_is_one_test(&exe, &test);
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", limit_bytes / 1024))
            .arg(exe)
            .args(["--exact", &test, "--test-threads=1", "--quiet", "--nocapture"])
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

/// Checking what concurrent health marks returned.
pub mod marks {
    use pw_cache::HealthInvalidation;

    /// Groups the outcomes of four marks of each proxy (`results`: per marking thread,
    /// `(proxy index, outcome)`), each group sorted by count, and lists the proxies whose four
    /// outcomes are not, in some order, "not found" once and the counts 1, 2 and 3 (evicted)
    /// once each: what four atomic marks at threshold 3 give, every failure counted and one
    /// eviction.
    pub fn four_marks_per_proxy(
        results: &[Vec<(usize, HealthInvalidation)>],
        proxies: usize,
    ) -> (Vec<Vec<HealthInvalidation>>, Vec<usize>) {
        let mut per_proxy = vec![Vec::new(); proxies];
        for (k, outcome) in results.iter().flatten() {
            per_proxy[*k].push(*outcome);
        }
        let want = [
            HealthInvalidation::NotFound,
            HealthInvalidation::Marked { failure_count: 1 },
            HealthInvalidation::Marked { failure_count: 2 },
            HealthInvalidation::Evicted { failure_count: 3 },
        ];
        let mut wrong = Vec::new();
        for (k, outcomes) in per_proxy.iter_mut().enumerate() {
            outcomes.sort_by_key(|o| match o {
                HealthInvalidation::NotFound => 0,
                HealthInvalidation::Marked { failure_count } | HealthInvalidation::Evicted { failure_count } => {
                    *failure_count
                }
            });
            if *outcomes != want {
                wrong.push(k);
            }
        }
        (per_proxy, wrong)
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
        open_checked(config, ring, clock, pw_cache::KeyCheck::Strict)
    }

    /// [`open`] with this key check (`KeyCheck::Skip` opens with a ring that reads nothing
    /// stored).
    pub fn open_checked(
        config: CacheConfig,
        ring: &Arc<KeyRing>,
        clock: Option<&TestClock>,
        check: pw_cache::KeyCheck,
    ) -> CacheManager {
        let mut builder = CacheManager::builder(config)
            .key_ring(Arc::clone(ring))
            .key_check(check);
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

/// A `redis-server` of the test's own, on a free port of 127.0.0.1, persisting to a temporary
/// directory with an append-only file synced on every write (so what it acknowledged survives
/// [`RedisServer::kill`](redis_server::RedisServer::kill)). Tests never reach any other
/// address. [`RedisServer::start_tls`](redis_server::RedisServer::start_tls) starts one that
/// speaks only TLS, with a certificate of a private CA ([`TlsFiles`](redis_server::TlsFiles)).
pub mod redis_server {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long a server may take to answer its first `PING`.
    pub const START_PATIENCE: Duration = Duration::from_secs(20);

    /// The names of a TLS server's files in its directory: CA certificate, server certificate,
    /// server key.
    const TLS_FILE_NAMES: [&str; 3] = ["tls-ca.crt", "tls-server.crt", "tls-server.key"];

    /// A private certificate authority and a server certificate it signed, as PEM, made in
    /// Rust (rcgen, ECDSA P-256 with `ring`): what a TLS server needs, and what its clients
    /// must trust. [`RedisServer::start_tls`] writes them into the server's directory.
    #[derive(Clone)]
    pub struct TlsFiles {
        /// The CA's self-signed certificate: the root a client trusts
        /// (`RedisL3Options::with_tls_root_certs_pem`).
        pub ca_cert_pem: String,
        /// The server's certificate, for `127.0.0.1` (an IP address SAN) and `localhost` (a DNS
        /// SAN), signed by the CA.
        pub server_cert_pem: String,
        /// The server's private key (PKCS#8).
        pub server_key_pem: String,
    }

    impl TlsFiles {
        /// A new CA and a server certificate it signed, both valid from a day ago to a day
        /// from now. Each call makes a CA of its own: one call's CA does not trust another's
        /// server.
        pub fn generate() -> Self {
            use rcgen::{
                BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
                KeyUsagePurpose,
            };
            let now = time::OffsetDateTime::now_utc();
            let day = time::Duration::days(1);

            let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
            ca.distinguished_name
                .push(DnType::CommonName, "pw-cache tests private CA");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            ca.not_before = now - day;
            ca.not_after = now + day;
            let ca_key = KeyPair::generate().expect("a CA key");
            let ca_cert = ca.self_signed(&ca_key).expect("a self-signed CA certificate");
            let issuer = Issuer::new(ca, ca_key);

            let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server parameters");
            server.distinguished_name.push(DnType::CommonName, "localhost");
            server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            server.use_authority_key_identifier_extension = true;
            server.not_before = now - day;
            server.not_after = now + day;
            let server_key = KeyPair::generate().expect("a server key");
            let server_cert = server
                .signed_by(&server_key, &issuer)
                .expect("a server certificate signed by the CA");

            Self {
                ca_cert_pem: pem("CERTIFICATE", ca_cert.der()),
                server_cert_pem: pem("CERTIFICATE", server_cert.der()),
                server_key_pem: pem("PRIVATE KEY", &server_key.serialize_der()),
            }
        }
    }

    /// `der` as a PEM block labelled `label` (RFC 7468: base64 in lines of 64 characters).
    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in text.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// A running (or killed) `redis-server`; dropping it kills it.
    pub struct RedisServer {
        binary: PathBuf,
        port: u16,
        dir: tempfile::TempDir,
        password: Option<String>,
        /// `Some` for a TLS-only server (its files are in `dir`).
        tls: Option<TlsFiles>,
        child: Option<Child>,
    }

    /// `/usr/bin/redis-server`, else `redis-server` on `PATH`; panics when there is none.
    fn binary() -> PathBuf {
        let usual = PathBuf::from("/usr/bin/redis-server");
        if usual.is_file() {
            return usual;
        }
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("redis-server"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "redis-server not found (looked at /usr/bin/redis-server and PATH): the Redis tests need it; \
                     install it with `apt-get install redis-server`"
                )
            })
    }

    /// A port of 127.0.0.1 free right now.
    fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1")
    }

    impl RedisServer {
        /// Starts a server without a password.
        pub fn start() -> Self {
            Self::start_inner(None, None)
        }

        /// Starts a server that requires `password` (`requirepass`).
        pub fn start_with_password(password: &str) -> Self {
            Self::start_inner(Some(password.to_owned()), None)
        }

        /// Starts a server without a password that speaks only TLS (no plain port), with the
        /// certificate and key of `tls` (written into its directory) and no client
        /// certificates asked for; [`RedisServer::url`] is then `rediss://…`.
        pub fn start_tls(tls: &TlsFiles) -> Self {
            Self::start_inner(None, Some(tls.clone()))
        }

        /// [`RedisServer::start_tls`], requiring `password` (`requirepass`).
        pub fn start_tls_with_password(tls: &TlsFiles, password: &str) -> Self {
            Self::start_inner(Some(password.to_owned()), Some(tls.clone()))
        }

        fn start_inner(password: Option<String>, tls: Option<TlsFiles>) -> Self {
            let mut server = Self {
                binary: binary(),
                port: free_port(),
                dir: tempfile::tempdir().expect("a temporary directory"),
                password,
                tls,
                child: None,
            };
            if let Some(tls) = &server.tls {
                let pems = [&tls.ca_cert_pem, &tls.server_cert_pem, &tls.server_key_pem];
                for (name, pem) in TLS_FILE_NAMES.into_iter().zip(pems) {
                    let path = server.dir.path().join(name);
                    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                }
            }
            server.spawn();
            server
        }

        /// `redis://127.0.0.1:<port>` (`rediss://` for a TLS server), with `:<password>@` when
        /// the server has one.
        pub fn url(&self) -> String {
            let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
            match &self.password {
                Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{}", self.port),
                None => format!("{scheme}://127.0.0.1:{}", self.port),
            }
        }

        /// The server's port on 127.0.0.1 (its TLS port for a TLS server).
        pub fn port(&self) -> u16 {
            self.port
        }

        /// The certificates of a TLS server; `None` for a plain one.
        pub fn tls(&self) -> Option<&TlsFiles> {
            self.tls.as_ref()
        }

        /// The server's directory (append-only files, log).
        pub fn dir(&self) -> &std::path::Path {
            self.dir.path()
        }

        /// A client of the server's URL; for a TLS server, trusting only its CA.
        fn client(&self) -> redis::Client {
            match &self.tls {
                None => redis::Client::open(self.url()),
                Some(tls) => redis::Client::build_with_tls(
                    self.url(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(tls.ca_cert_pem.clone().into_bytes()),
                    },
                ),
            }
            .expect("server URL")
        }

        /// A connection of its own to the server (authenticated; over TLS, trusting its CA, for
        /// a TLS server), with 5 s timeouts.
        pub fn connection(&self) -> redis::Connection {
            let conn = self
                .client()
                .get_connection_with_timeout(Duration::from_secs(5))
                .expect("connect to the test's redis-server");
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            conn
        }

        /// Kills the server with SIGKILL (no shutdown, no final save) and waits for it.
        pub fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// Kills the server if it runs, then starts it again on the same port and directory
        /// (it reloads its append-only file).
        pub fn restart(&mut self) {
            self.kill();
            self.spawn();
        }

        fn spawn(&mut self) {
            let dir = self.dir.path();
            let mut cmd = Command::new(&self.binary);
            if self.tls.is_some() {
                let [ca, cert, key] = TLS_FILE_NAMES.map(|name| dir.join(name));
                cmd.args(["--port", "0"])
                    .arg("--tls-port")
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca)
                    .args(["--tls-auth-clients", "no"]);
            } else {
                cmd.arg("--port").arg(self.port.to_string());
            }
            cmd.args(["--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir)
                .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
                .arg("--logfile")
                .arg(dir.join("redis.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(pw) = &self.password {
                cmd.args(["--requirepass", pw]);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
            self.child = Some(child);
            self.wait_ready();
        }

        /// Waits until the server answers `PING` (`+PONG`, or `-NOAUTH` with a password); a
        /// TLS server over TLS, trusting its CA (with the password, if any).
        fn wait_ready(&mut self) {
            let start = Instant::now();
            let mut last_error = String::new();
            loop {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("redis-server exited with {status}:\n{}", self.log());
                }
                let answered = if self.tls.is_some() {
                    self.ping_tls().map_err(|e| last_error = e).is_ok()
                } else {
                    self.ping_plain()
                };
                if answered {
                    return;
                }
                assert!(
                    start.elapsed() < START_PATIENCE,
                    "redis-server on 127.0.0.1:{} did not answer within {START_PATIENCE:?} (last error: \
                     {last_error}):\n{}",
                    self.port,
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// The server's log, or nothing when it cannot be read.
        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
        }

        /// Whether the plain port answers a `PING` now.
        fn ping_plain(&self) -> bool {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut reply = [0u8; 64];
            if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
                return false;
            }
            stream
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"))
        }

        /// A TLS handshake (the server's certificate checked against its CA) and a `PING`.
        fn ping_tls(&self) -> Result<(), String> {
            let patience = Duration::from_millis(500);
            let mut conn = self
                .client()
                .get_connection_with_timeout(patience)
                .map_err(|e| e.to_string())?;
            conn.set_read_timeout(Some(patience)).map_err(|e| e.to_string())?;
            conn.set_write_timeout(Some(patience)).map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query::<String>(&mut conn)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
        }
    }
}

/// The entries the L3 tests store (`tests/tiers/l3_behaviour.rs`, `tests/tiers/redis_tier.rs`,
/// `tests/tiers/redis_tls.rs`): numbered, fetched a second apart from [`l3_entries::T0`], expiring
/// a century later.
pub mod l3_entries {
    use pw_cache::{CacheEntry, OffsetDateTime};
    use time::macros::datetime;

    /// When entry 0 was fetched.
    pub const T0: OffsetDateTime = datetime!(2020-01-01 00:00 UTC);
    /// 100 years: entries fetched in 2020 expire in 2120.
    pub const TTL: u64 = 36_500 * 86_400;

    /// Entry `k{i:03}` (`http://10.0.0.{i}:8080` for `i` below 256; above, `i`'s bytes make the
    /// last three parts of the address), fetched and last used `i` seconds after [`T0`], no
    /// credentials.
    pub fn entry(i: i64) -> CacheEntry {
        CacheEntry::new_at(
            format!("http://10.{}.{}.{}:8080", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            "fetched",
            TTL,
            T0 + time::Duration::seconds(i),
        )
        .expect("a valid entry")
        .with_key(format!("k{i:03}"))
    }
}

/// A cache directory planted by another, unprivileged local user: a real process running as
/// [`planted::OTHER_UID`] makes it in a shared, sticky directory (as `/tmp` is) and fills it with
/// symbolic links to files only root may read or write. The tests run as root.
pub mod planted {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The other user: a uid (and gid) with no user entry, as `useradd` would give.
    pub const OTHER_UID: u32 = 12345;

    /// What was planted.
    pub struct Planted {
        /// Holds everything.
        pub root: tempfile::TempDir,
        /// The planted cache directory (`shared/cache/l2`), owned by the other user.
        pub l2: PathBuf,
        /// The planted L3 database path (a link), in `shared/cache/`.
        pub l3: PathBuf,
        /// The root-only files the links point at.
        pub targets: Vec<PathBuf>,
    }

    /// Each target's bytes, mode, owner and modification time.
    pub type Snapshot = Vec<(PathBuf, Vec<u8>, u32, u32, i64, i64)>;

    impl Planted {
        /// The targets as they are now.
        pub fn snapshot(&self) -> Snapshot {
            self.targets
                .iter()
                .map(|path| {
                    let m = std::fs::metadata(path).expect("target");
                    let bytes = std::fs::read(path).expect("read target");
                    (path.clone(), bytes, m.mode(), m.uid(), m.mtime(), m.mtime_nsec())
                })
                .collect()
        }
    }

    /// Plants `shared/cache/l2` with `shard_00.jsonl` … `shard_{shards-1}.jsonl`,
    /// `l2_cache.db`, `pw-cache.key` and its `-wal`/`-shm` names linked to root-only files
    /// (`private/secret.txt`, `private/app.db`: an SQLite database of an application), and
    /// `shared/cache/l3.db` linked to the database.
    pub fn plant_links(shards: usize) -> Planted {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let private = root.path().join("private");
        std::fs::create_dir(&private).expect("mkdir private");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let secret = private.join("secret.txt");
        std::fs::write(&secret, "root's own text\n").expect("write secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let db = private.join("app.db");
        {
            let conn = rusqlite::Connection::open(&db).expect("app db");
            conn.execute_batch("CREATE TABLE accounts (name TEXT); INSERT INTO accounts VALUES ('root');")
                .expect("app db schema");
        }
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir shared");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");

        let mut script = String::from("set -e; umask 022; mkdir cache cache/l2; ");
        let link = |target: &Path, name: &str| format!("ln -s '{}' '{name}'; ", target.display());
        for i in 0..shards {
            script += &link(
                &secret,
                &format!("cache/l2/{}", pw_cache::tiers::jsonl::shard_file_name(i)),
            );
        }
        script += &link(&db, "cache/l2/l2_cache.db");
        script += &link(&secret, "cache/l2/l2_cache.db-wal");
        script += &link(&secret, "cache/l2/l2_cache.db-shm");
        script += &link(&secret, &format!("cache/l2/{}", pw_cache::DEFAULT_KEY_FILE_NAME));
        script += &link(&db, "cache/l3.db");
        let status = Command::new("sh")
            .args(["-c", &script])
            .current_dir(&shared)
            .uid(OTHER_UID)
            .gid(OTHER_UID)
            .status()
            .expect("run sh as the other user");
        assert!(status.success(), "planting as uid {OTHER_UID} failed");
        let l2 = shared.join("cache/l2");
        assert_eq!(std::fs::symlink_metadata(&l2).expect("l2").uid(), OTHER_UID);
        Planted {
            l3: shared.join("cache/l3.db"),
            l2,
            targets: vec![secret, db],
            root,
        }
    }
}
