//! A corpus of damaged cache files, each opened through its tier and through a `CacheManager`.
//!
//! Every case starts from an intact copy of proxywhirl 0.3.3's files (`tests/fixtures/
//! proxywhirl-0.3.3/`: 200 entries per store, what Python read back in `manifest.json`), damages
//! it in one way, and says what must happen:
//! - the tier either opens, or fails with a typed error (the variant is matched), never a panic
//!   (every library call runs under `catch_unwind`);
//! - every intact entry is served exactly as Python read it (all 21 fields, credentials
//!   decrypted); an unreadable entry is a corrupt-entry error (never a tier failure), a lost one
//!   a miss;
//! - the damage is counted: [`JsonlDamage`] right after opening and after the lookups, and the
//!   manager's `unreadable` of the tier once per lookup of an unreadable entry, which stays where
//!   it is (never removed: `evictions_corruption` stays 0, and the next run finds it again);
//! - the manager opens on the same damage (or fails with `ManagerError::OpenTier` naming the
//!   tier and wrapping the same typed error), keeps the tier serving, takes new writes, and a
//!   second run still serves every intact entry.
//!
//! `tests/damaged/jsonl_damaged.rs` already covers a hand-made JSONL directory (blank, garbage and
//! non-entry lines, a duplicate, a cut last line, CRLF, a misplaced key, an invalid entry, an
//! unknown-key token, the two temporary-file names) and how later writes treat the damage. This
//! file adds the damage on proxywhirl's own files, the manager's view of all of it, the SQLite
//! tiers (L2 and L3), and the kinds of damage that file lacks: cuts in the middle of shards,
//! undecodable bytes, nesting beyond the parser's limit, tokens that are not hex or fail their
//! HMAC, duplicates across shards, a ring without the key the credentials were written with,
//! timestamp variants, empty files, truncated and garbage databases (and `-wal`/`-shm`), a
//! database path that is a directory, missing columns and damaged rows.
//!
//! `timestamp_variants_keep_their_instant_when_written_back` checks, for every timestamp form
//! the reader accepts, that writing the entry back (a tier put, a manager health invalidation)
//! keeps the instant it was read as.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use pw_cache::model::timestamp::{format_isoformat, parse_isoformat};
use pw_cache::tiers::jsonl::{JsonlDamage, hex_decode, hex_encode, shard_file_name, shard_of};
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTier, CacheTierConfig, CacheTierType, FernetKey, JsonlTier, KeyCheck,
    KeyRing, L2BackendType, ManagerError, OffsetDateTime, Secret, SqliteL2Tier, SqliteL3Tier, TierError, TierStatus,
};
use pw_cache_tests::managers::TestClock;
use pw_cache_tests::{ENTRY_FIELDS, entry_as_manifest, fixture_keys, fixture_ring, manifest, proxywhirl_fixtures};
use rusqlite::Connection;
use serde_json::Value;
use time::macros::{datetime, offset};

// ---------------------------------------------------------------------------------------------
// Stores and fixtures

/// Which of proxywhirl's stores a case damages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Jsonl,
    SqliteL2,
    L3,
}

impl Store {
    /// The store's name in `manifest.json`.
    fn manifest_name(self) -> &'static str {
        match self {
            Store::Jsonl => "jsonl_l2",
            Store::SqliteL2 => "sqlite_l2",
            Store::L3 => "sqlite_l3",
        }
    }

    fn tier(self) -> CacheTierType {
        match self {
            Store::L3 => CacheTierType::L3,
            _ => CacheTierType::L2,
        }
    }

    /// The directory holding the store's files under `base` (what the manager's config says).
    fn dir(self, base: &Path) -> PathBuf {
        match self {
            Store::L3 => base.join("l3"),
            _ => base.join("l2"),
        }
    }

    /// The database file (SQLite stores).
    fn db(self, base: &Path) -> PathBuf {
        match self {
            Store::Jsonl => panic!("the JSONL store has no database"),
            Store::SqliteL2 => base.join("l2").join("l2_cache.db"),
            Store::L3 => base.join("l3").join("proxywhirl.db"),
        }
    }

    /// Copies the intact fixture files of the store under `base` (the database file alone: the
    /// fixtures' WAL is empty).
    fn copy_fixture(self, base: &Path) {
        let to = self.dir(base);
        std::fs::create_dir_all(&to).unwrap();
        let from = proxywhirl_fixtures();
        match self {
            Store::Jsonl => {
                for shard in 0..16 {
                    let name = shard_file_name(shard);
                    std::fs::copy(from.join("jsonl_l2").join(&name), to.join(&name)).unwrap();
                }
            }
            Store::SqliteL2 => {
                std::fs::copy(from.join("sqlite_l2/l2_cache.db"), self.db(base)).unwrap();
            }
            Store::L3 => {
                std::fs::copy(from.join("l3/proxywhirl.db"), self.db(base)).unwrap();
            }
        }
    }

    /// The store's tier on the files under `base`.
    fn open_tier(self, base: &Path, ring: &Arc<KeyRing>) -> Result<Tier, TierError> {
        let cfg = CacheTierConfig::unbounded();
        let ring = Arc::clone(ring);
        Ok(match self {
            Store::Jsonl => Tier::Jsonl(JsonlTier::open(self.dir(base), &cfg, ring)?),
            Store::SqliteL2 => Tier::Other(Box::new(SqliteL2Tier::open(self.dir(base), &cfg, ring)?)),
            Store::L3 => Tier::Other(Box::new(SqliteL3Tier::open(self.db(base), &cfg, ring)?)),
        })
    }

    /// A manager with L1 and this store's tier only, on the files under `base`.
    fn manager_config(self, base: &Path) -> CacheConfig {
        let (l2, l3) = match self {
            Store::L3 => (CacheTierConfig::disabled(), CacheTierConfig::unbounded()),
            _ => (CacheTierConfig::unbounded(), CacheTierConfig::disabled()),
        };
        CacheConfig::builder()
            .l1_config(CacheTierConfig::bounded(1000))
            .l2_config(l2)
            .l3_config(l3)
            .l2_backend(if self == Store::SqliteL2 {
                L2BackendType::Sqlite
            } else {
                L2BackendType::Jsonl
            })
            .l2_cache_dir(base.join("l2"))
            .l3_database_path(base.join("l3").join("proxywhirl.db"))
            .build()
            .unwrap()
    }
}

/// An opened tier: the JSONL one is kept concrete for its damage counters.
enum Tier {
    Jsonl(JsonlTier),
    Other(Box<dyn CacheTier>),
}

impl Tier {
    fn as_dyn(&self) -> &dyn CacheTier {
        match self {
            Tier::Jsonl(t) => t,
            Tier::Other(t) => &**t,
        }
    }

    fn damage(&self) -> Option<JsonlDamage> {
        match self {
            Tier::Jsonl(t) => Some(t.damage()),
            Tier::Other(_) => None,
        }
    }
}

/// `manifest.json`, parsed once.
fn manifest_json() -> &'static Value {
    static MANIFEST: OnceLock<Value> = OnceLock::new();
    MANIFEST.get_or_init(manifest)
}

/// The manifest's entries of a store, by key: the 21 fields of each, as Python read them.
fn fixture_entries(store: Store) -> BTreeMap<String, Value> {
    manifest_json()["stores"][store.manifest_name()]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let fields: serde_json::Map<String, Value> =
                ENTRY_FIELDS.iter().map(|f| ((*f).to_owned(), e[*f].clone())).collect();
            (e["key"].as_str().unwrap().to_owned(), Value::Object(fields))
        })
        .collect()
}

/// `path` with `suffix` appended (`l2_cache.db` → `l2_cache.db-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Runs `f`, failing the test with a clear message if the library panicked.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("the library panicked during {what}: {msg}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSONL shard editing

/// The lines of shard `shard` under `base` (without terminators).
fn shard_lines(base: &Path, shard: usize) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(Store::Jsonl.dir(base).join(shard_file_name(shard))).unwrap();
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

/// Writes `lines` as shard `shard`, each ended by `\n`.
fn write_shard(base: &Path, shard: usize, lines: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    write_shard_bytes(base, shard, &bytes);
}

fn write_shard_bytes(base: &Path, shard: usize, bytes: &[u8]) {
    std::fs::write(Store::Jsonl.dir(base).join(shard_file_name(shard)), bytes).unwrap();
}

/// The key of a shard line (an intact fixture line).
fn key_of(line: &[u8]) -> String {
    let v: Value = serde_json::from_slice(line).unwrap();
    v["key"].as_str().unwrap().to_owned()
}

/// The line as a JSON object (field order is not kept: it does not matter to readers).
fn parse_line(line: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(line).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn unparse(map: &serde_json::Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(map).unwrap()
}

/// Replaces `from` by `to` once in `line` (the text must be there).
fn replace_once(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

// ---------------------------------------------------------------------------------------------
// What a case expects

/// How a case's store must open.
enum Open {
    /// It opens.
    Ok,
    /// It fails with the error this predicate accepts (named for messages).
    Fails(&'static str, fn(&TierError) -> bool),
}

/// What a case expects of the damaged store.
struct Expect {
    open: Open,
    /// Served exactly as given (the 21 fields of the manifest form).
    intact: BTreeMap<String, Value>,
    /// Unreadable: a corrupt-entry error from the tier, a counted miss from the manager.
    corrupt: Vec<String>,
    /// Not there at all: a plain miss.
    absent: Vec<String>,
    /// Of `intact`, how many may instead fail as a tier failure (a damaged database page:
    /// SQLite reports the page, not the entry). The others must be served.
    unreadable_pages: usize,
    /// JSONL: the damage counted right after opening; `corrupt_entries` after the lookups is
    /// checked separately (one per corrupt entry whose credentials fail).
    damage: JsonlDamage,
    /// JSONL: how many of `corrupt` are counted in `corrupt_entries` once looked up (tokens
    /// that fail; invalid entries are counted in `invalid_entries` at open already).
    corrupt_tokens: u64,
    /// Paths (under the base) that must exist, and must not, once the store opened.
    present_after_open: Vec<PathBuf>,
    absent_after_open: Vec<PathBuf>,
    /// The ring to open with (default: the fixtures', current and previous key).
    ring: Option<Arc<KeyRing>>,
}

impl Expect {
    /// Every fixture entry of `store` intact, nothing else.
    fn intact(store: Store) -> Self {
        Expect {
            open: Open::Ok,
            intact: fixture_entries(store),
            corrupt: Vec::new(),
            absent: Vec::new(),
            unreadable_pages: 0,
            damage: JsonlDamage::default(),
            corrupt_tokens: 0,
            present_after_open: Vec::new(),
            absent_after_open: Vec::new(),
            ring: None,
        }
    }

    fn fails(name: &'static str, predicate: fn(&TierError) -> bool) -> Self {
        Expect {
            open: Open::Fails(name, predicate),
            intact: BTreeMap::new(),
            ..Expect::intact(Store::Jsonl)
        }
    }

    /// `key` is no longer served: it becomes corrupt.
    fn corrupt(&mut self, key: &str) {
        assert!(self.intact.remove(key).is_some(), "{key} was not intact");
        self.corrupt.push(key.to_owned());
    }

    /// `key` is no longer served: it is gone.
    fn lost(&mut self, key: &str) {
        assert!(self.intact.remove(key).is_some(), "{key} was not intact");
        self.absent.push(key.to_owned());
    }
}

/// One damage kind.
struct Case {
    name: &'static str,
    store: Store,
    /// Damages the intact copy of the store under the base directory; what to expect.
    damage: fn(&Path) -> Expect,
}

// ---------------------------------------------------------------------------------------------
// The runner

/// The fields a manager's lookup changes (it is a use).
const USE_FIELDS: [&str; 2] = ["access_count", "last_accessed"];

fn assert_served(got: &CacheEntry, want: &Value, skip: &[&str], context: &str) {
    let got = entry_as_manifest(got);
    for field in ENTRY_FIELDS {
        if !skip.contains(&field) {
            assert_eq!(got[field], want[field], "{context}: field {field}");
        }
    }
}

/// Opens the damaged store through its tier, then (on a second damaged copy) through a
/// manager, and checks what `case` expects.
fn run(case: &Case) {
    let ring_for = |e: &Expect| e.ring.clone().unwrap_or_else(fixture_ring);
    let context = case.name;

    // Through the tier.
    let base = tempfile::tempdir().unwrap();
    case.store.copy_fixture(base.path());
    let expect = (case.damage)(base.path());
    let ring = ring_for(&expect);
    let opened = no_panic(&format!("{context}: opening the tier"), || {
        case.store.open_tier(base.path(), &ring)
    });
    let tier = match (&expect.open, opened) {
        (Open::Fails(name, predicate), Err(e)) => {
            assert!(predicate(&e), "{context}: expected {name}, got {e:?}");
            assert!(e.is_tier_failure(), "{context}: {e:?}");
            check_manager_open_fails(case, name, *predicate);
            return;
        }
        (Open::Fails(name, _), Ok(_)) => panic!("{context}: opened, expected {name}"),
        (Open::Ok, Err(e)) => panic!("{context}: cannot open: {e:?}"),
        (Open::Ok, Ok(t)) => t,
    };
    for p in &expect.present_after_open {
        assert!(base.path().join(p).exists(), "{context}: {} is gone", p.display());
    }
    for p in &expect.absent_after_open {
        assert!(
            !base.path().join(p).exists(),
            "{context}: {} is still there",
            p.display()
        );
    }
    if let Some(damage) = tier.damage() {
        assert_eq!(damage, expect.damage, "{context}: damage counted at open");
    }
    let t = tier.as_dyn();
    let mut failed_pages = 0;
    for (key, want) in &expect.intact {
        match no_panic(&format!("{context}: get {key}"), || t.get(key)) {
            Ok(Some(got)) => assert_served(&got, want, &[], &format!("{context}: tier get {key}")),
            Ok(None) => panic!("{context}: intact entry {key} missing"),
            Err(e) if expect.unreadable_pages > 0 && e.is_tier_failure() => {
                assert!(matches!(e, TierError::Sqlite { .. }), "{context}: {key}: {e:?}");
                failed_pages += 1;
            }
            Err(e) => panic!("{context}: intact entry {key}: {e:?}"),
        }
    }
    assert_eq!(
        failed_pages, expect.unreadable_pages,
        "{context}: entries on damaged pages"
    );
    for key in &expect.corrupt {
        for _ in 0..2 {
            let err = no_panic(&format!("{context}: get {key}"), || t.get(key)).unwrap_err();
            assert!(
                err.is_corrupt_entry() && !err.is_tier_failure(),
                "{context}: {key}: {err:?}"
            );
        }
    }
    for key in &expect.absent {
        assert_eq!(
            no_panic(&format!("{context}: get {key}"), || t.get(key)).unwrap(),
            None,
            "{context}: {key} should be absent"
        );
    }
    if let Some(damage) = tier.damage() {
        assert_eq!(
            damage,
            JsonlDamage {
                corrupt_entries: expect.corrupt_tokens,
                ..expect.damage
            },
            "{context}: damage after the lookups"
        );
    }
    if expect.unreadable_pages == 0 {
        assert_eq!(
            t.health().consecutive_failures(),
            0,
            "{context}: damage is not a tier failure"
        );
        let mut keys = no_panic(&format!("{context}: keys"), || t.keys()).unwrap();
        keys.sort();
        let mut want: Vec<String> = expect
            .intact
            .keys()
            .cloned()
            .chain(expect.corrupt.iter().cloned())
            .collect();
        want.sort();
        assert_eq!(keys, want, "{context}: keys held");
        // `size` counts what `keys` lists: rows no key names (a NULL or BLOB key) are neither.
        assert_eq!(t.size().unwrap(), want.len(), "{context}: size");
    }
    drop(tier);

    // Through a manager, on a fresh damaged copy.
    let base = tempfile::tempdir().unwrap();
    case.store.copy_fixture(base.path());
    let expect = (case.damage)(base.path());
    let ring = ring_for(&expect);
    let tier_type = case.store.tier();
    let clock = TestClock::at(datetime!(2024-01-01 00:00:00 UTC));
    let open_manager = |clock: &TestClock| {
        let clock = clock.clone();
        no_panic(&format!("{context}: opening the manager"), || {
            // A ring that opens none of the sampled credentials is refused at open (checked in
            // `tests/damaged/unreadable_kept.rs`); opened anyway here, to see what it does with
            // them.
            CacheManager::builder(case.store.manager_config(base.path()))
                .key_ring(Arc::clone(&ring))
                .key_check(KeyCheck::Skip)
                .clock(move || clock.now())
                .open()
        })
        .unwrap_or_else(|e| panic!("{context}: manager: {e:?}"))
    };
    let m = open_manager(&clock);
    let stats_of = |m: &CacheManager| {
        let stats = m.get_statistics();
        match tier_type {
            CacheTierType::L3 => stats.l3_stats,
            _ => stats.l2_stats,
        }
    };
    let corruption = |m: &CacheManager| stats_of(m).unreadable;
    let removed = |m: &CacheManager| stats_of(m).evictions_corruption;
    let mut served = 0;
    for (key, want) in &expect.intact {
        match no_panic(&format!("{context}: manager get {key}"), || m.get(key)) {
            Some(got) => {
                served += 1;
                assert_served(&got, want, &USE_FIELDS, &format!("{context}: manager get {key}"));
                assert_eq!(
                    got.access_count,
                    want["access_count"].as_u64().unwrap() + 1,
                    "{context}: {key}: a lookup is a use"
                );
                assert_eq!(got.last_accessed, clock.now(), "{context}: {key}");
            }
            None => assert!(expect.unreadable_pages > 0, "{context}: intact entry {key} not served"),
        }
    }
    assert_eq!(
        served,
        expect.intact.len() - expect.unreadable_pages,
        "{context}: entries served by the manager"
    );
    assert_eq!(corruption(&m), 0, "{context}: intact lookups count no corruption");
    for key in &expect.absent {
        assert_eq!(m.get(key), None, "{context}: {key}");
    }
    assert_eq!(corruption(&m), 0, "{context}: absent keys are no corruption");
    for key in &expect.corrupt {
        assert_eq!(m.get(key), None, "{context}: corrupt {key} served");
    }
    assert_eq!(
        corruption(&m),
        expect.corrupt.len() as u64,
        "{context}: one unreadable count per lookup of an unreadable entry"
    );
    // Left in place: found (and counted) again, never removed.
    for key in &expect.corrupt {
        assert_eq!(m.get(key), None, "{context}: corrupt {key} served");
    }
    assert_eq!(
        corruption(&m),
        2 * expect.corrupt.len() as u64,
        "{context}: counted again"
    );
    assert_eq!(removed(&m), 0, "{context}: nothing unreadable removed");
    if expect.unreadable_pages == 0 {
        assert_eq!(m.tier_status(tier_type), TierStatus::Serving, "{context}");
    }
    // The damaged store takes new entries.
    let fresh = CacheEntry::new_at("http://10.200.0.1:3128", "after-damage", 3600, clock.now())
        .unwrap()
        .with_credentials(Some(Secret::new("u")), Some(Secret::new("p")));
    let stored = m.put(&fresh).unwrap();
    if expect.unreadable_pages == 0 {
        match tier_type {
            CacheTierType::L3 => assert!(stored.l3, "{context}: {stored:?}"),
            _ => assert!(stored.l2, "{context}: {stored:?}"),
        }
    }
    no_panic(&format!("{context}: close"), || m.close()).unwrap();
    drop(m);

    // A second run: intact entries still there, unreadable ones gone from the files.
    let m = open_manager(&clock);
    for (key, want) in &expect.intact {
        if let Some(got) = m.get(key) {
            assert_served(&got, want, &USE_FIELDS, &format!("{context}: second run {key}"));
        } else {
            assert!(expect.unreadable_pages > 0, "{context}: second run lost {key}");
        }
    }
    for key in expect.corrupt.iter().chain(&expect.absent) {
        assert_eq!(m.get(key), None, "{context}: second run {key}");
    }
    assert_eq!(
        corruption(&m),
        expect.corrupt.len() as u64,
        "{context}: the unreadable entries are still there in the second run"
    );
    assert_eq!(removed(&m), 0, "{context}: nothing unreadable removed");
    if expect.unreadable_pages == 0 {
        assert_eq!(m.get(&fresh.key).unwrap().source, "after-damage", "{context}");
    }
    m.close().unwrap();
}

/// The manager on the same damage fails to open, naming the tier and the same typed error.
fn check_manager_open_fails(case: &Case, name: &str, predicate: fn(&TierError) -> bool) {
    let base = tempfile::tempdir().unwrap();
    case.store.copy_fixture(base.path());
    let expect = (case.damage)(base.path());
    let ring = expect.ring.clone().unwrap_or_else(fixture_ring);
    let result = no_panic(&format!("{}: opening the manager", case.name), || {
        CacheManager::builder(case.store.manager_config(base.path()))
            .key_ring(ring)
            .open()
    });
    match result {
        Err(ManagerError::OpenTier { tier, source }) => {
            assert_eq!(tier, case.store.tier(), "{}", case.name);
            assert!(predicate(&source), "{}: expected {name}, got {source:?}", case.name);
        }
        Err(other) => panic!("{}: expected OpenTier, got {other:?}", case.name),
        Ok(_) => panic!("{}: the manager opened, expected {name}", case.name),
    }
}

fn is_sqlite_code(e: &TierError, code: rusqlite::ErrorCode) -> bool {
    matches!(e, TierError::Sqlite { source, .. } if source.sqlite_error_code() == Some(code))
}

// ---------------------------------------------------------------------------------------------
// JSONL damage

/// Shards cut in the middle of a line: what precedes the cut is served, the cut line is one
/// undecodable line, what followed is lost.
fn jsonl_truncated_mid_line(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    // (shard, line cut, where in the line): the first line, a middle line, the last line, and
    // inside a credential token.
    for (shard, cut_line, at) in [
        (0, 0, Cut::Half),
        (3, 4, Cut::Half),
        (7, 11, Cut::Third),
        (9, 1, Cut::InToken),
    ] {
        let lines = shard_lines(base, shard);
        let mut bytes = Vec::new();
        for line in &lines[..cut_line] {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        let line = &lines[cut_line];
        let keep = match at {
            Cut::Half => line.len() / 2,
            Cut::Third => line.len() / 3,
            Cut::InToken => {
                let text = String::from_utf8(line.clone()).unwrap();
                text.find("\"password_encrypted\": \"").unwrap() + 40
            }
        };
        bytes.extend_from_slice(&line[..keep]);
        write_shard_bytes(base, shard, &bytes);
        for line in &lines[cut_line..] {
            e.lost(&key_of(line));
        }
    }
    e.damage.undecodable_lines = 4;
    e
}

#[derive(Clone, Copy)]
enum Cut {
    Half,
    Third,
    InToken,
}

/// A shard whose last line lost only its newline: every entry is intact, nothing is damage.
fn jsonl_last_newline_cut(base: &Path) -> Expect {
    for shard in [5, 12] {
        let path = Store::Jsonl.dir(base).join(shard_file_name(shard));
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.pop(), Some(b'\n'));
        std::fs::write(&path, bytes).unwrap();
    }
    Expect::intact(Store::Jsonl)
}

/// Lines damaged in every way a line can be: bytes that are not JSON or not UTF-8, JSON that
/// is no entry, entries with broken fields, credentials that are not hex or fail their HMAC;
/// and harmless variations (unknown fields, surrounding whitespace, uppercase hex, empty and
/// null credentials) that are served.
fn jsonl_corrupt_lines(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    // Shard 11 (16 lines): lines that lose or break their entry, and variations that do not.
    let mut lines = shard_lines(base, 11);
    assert!(lines.len() >= 13);
    // Not JSON: invalid UTF-8 and control bytes; two objects on one line; a NUL inside.
    e.lost(&key_of(&lines[0]));
    lines[0] = b"\xff\xfe{\"key\": \x00\x01 garbage \xc3\x28".to_vec();
    e.lost(&key_of(&lines[1]));
    lines[1] = [lines[1].clone(), lines[1].clone()].concat();
    e.lost(&key_of(&lines[2]));
    let mid = lines[2].len() / 2;
    lines[2][mid] = 0;
    // Nesting far beyond the parser's recursion limit: in an unknown field of an entry it is
    // skipped (the entry is served); as a whole line it is not JSON. No stack overflow.
    let depth = 100_000;
    let mut text = String::from_utf8(lines[11].clone()).unwrap();
    text.pop();
    lines[11] = format!("{text}, \"deep\": {}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    e.lost(&key_of(&lines[12]));
    lines[12] = format!("{}{}", "{\"key\": ".repeat(depth), "}".repeat(depth)).into_bytes();
    // JSON, not an entry: a numeric key, an array.
    let key = key_of(&lines[3]);
    e.lost(&key);
    lines[3] = replace_once(&lines[3], &format!("\"key\": \"{key}\""), "\"key\": 42");
    e.lost(&key_of(&lines[4]));
    lines[4] = [b"[".as_slice(), &lines[4], b"]"].concat();
    // Entries with broken fields: invalid, reported corrupt.
    for (i, change) in [
        ("ttl_seconds", Some(Value::from(-5))),
        ("access_count", Some(Value::from(1.5))),
        ("health_status", Some(Value::from("sick"))),
        ("proxy_url", None),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, c)| (5 + n, c))
    {
        let mut map = parse_line(&lines[i]);
        match change {
            (field, Some(value)) => map.insert(field.to_owned(), value),
            (field, None) => map.remove(field),
        };
        e.corrupt(&key_of(&lines[i]));
        lines[i] = unparse(&map);
    }
    // Not damage: unknown fields and whitespace around the object; empty and null credential
    // fields (no credential).
    let mut map = parse_line(&lines[9]);
    map.insert("future_field".to_owned(), serde_json::json!({"nested": [1, 2, null]}));
    lines[9] = [b"  \t".as_slice(), &unparse(&map), b" \t ".as_slice()].concat();
    let key = key_of(&lines[10]);
    let mut map = parse_line(&lines[10]);
    map.insert("password_encrypted".to_owned(), Value::from(""));
    map.insert("username_encrypted".to_owned(), Value::Null);
    lines[10] = unparse(&map);
    let want = e.intact.get_mut(&key).unwrap();
    want["username"] = Value::Null;
    want["password"] = Value::Null;
    write_shard(base, 11, &lines);

    // Shard 4 (10 passwords): credentials that cannot be read: not hex, odd length, an HMAC
    // that fails; and one in uppercase hex (read).
    let mut lines = shard_lines(base, 4);
    let with_password: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].windows(18).any(|w| w == b"password_encrypted"))
        .collect();
    assert!(with_password.len() >= 4);
    for (n, how) in [Token::NotHex, Token::OddLength, Token::BadHmac]
        .into_iter()
        .enumerate()
    {
        let i = with_password[n];
        let mut map = parse_line(&lines[i]);
        let hex = map["password_encrypted"].as_str().unwrap().to_owned();
        let broken = match how {
            Token::NotHex => format!("zz{}", &hex[2..]),
            Token::OddLength => hex[1..].to_owned(),
            Token::BadHmac => {
                // A character in the middle of the token's text (ciphertext) changed to another
                // base64 character: still a token, no longer the one its HMAC signs.
                let mut bytes = hex_decode(&hex).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
                hex_encode(&bytes)
            }
        };
        map.insert("password_encrypted".to_owned(), Value::from(broken));
        e.corrupt(&key_of(&lines[i]));
        lines[i] = unparse(&map);
    }
    let i = with_password[3];
    let mut map = parse_line(&lines[i]);
    let hex = map["password_encrypted"].as_str().unwrap().to_uppercase();
    map.insert("password_encrypted".to_owned(), Value::from(hex));
    lines[i] = unparse(&map);
    write_shard(base, 4, &lines);

    e.damage = JsonlDamage {
        undecodable_lines: 4,
        non_entry_lines: 2,
        invalid_entries: 4,
        ..JsonlDamage::default()
    };
    e.corrupt_tokens = 3;
    e
}

#[derive(Clone, Copy)]
enum Token {
    NotHex,
    OddLength,
    BadHmac,
}

/// Every shard with CRLF line endings, and one with mixed endings and blank CRLF lines.
fn jsonl_crlf(base: &Path) -> Expect {
    for shard in 0..16 {
        let lines = shard_lines(base, shard);
        let mut bytes = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(if shard == 6 && i % 2 == 1 { b"\n" } else { b"\r\n" });
            if shard == 6 && i == 2 {
                bytes.extend_from_slice(b"\r\n \r\n");
            }
        }
        write_shard_bytes(base, shard, &bytes);
    }
    let mut e = Expect::intact(Store::Jsonl);
    e.damage.blank_lines = 2;
    e
}

/// Temporary files of interrupted rewrites (`shard_NN.jsonl.tmp`, ours: removed, never read,
/// even when complete), proxywhirl's `shard_NN.tmp` and other files that are not shards (left
/// alone, never read).
fn jsonl_stray_temp_files(base: &Path) -> Expect {
    let dir = Store::Jsonl.dir(base);
    let ring = fixture_ring();
    let extra = |n: u8| {
        let e = CacheEntry::new_at(
            format!("http://10.77.0.{n}:8080"),
            "stray",
            3600,
            datetime!(2024-01-01 00:00:00 UTC),
        )
        .unwrap()
        .with_credentials(None, Some(Secret::new("stray-password")));
        (e.key.clone(), pw_cache::tiers::jsonl::encode_line(&e, &ring).unwrap())
    };
    let mut e = Expect::intact(Store::Jsonl);
    // A complete rewrite of shard 1 (one more entry) that was never renamed: not the shard.
    let (k1, line1) = extra(1);
    let mut full = std::fs::read(dir.join(shard_file_name(1))).unwrap();
    full.extend_from_slice(line1.as_bytes());
    full.push(b'\n');
    std::fs::write(dir.join("shard_01.jsonl.tmp"), full).unwrap();
    // Half a rewrite of shard 11.
    std::fs::write(dir.join("shard_11.jsonl.tmp"), b"{\"key\": \"half-wr").unwrap();
    // proxywhirl's temporary file, a shard beyond the 16, a probe file left by a crash.
    let (k2, line2) = extra(2);
    std::fs::write(dir.join("shard_06.tmp"), format!("{line2}\n")).unwrap();
    let (k3, line3) = extra(3);
    std::fs::write(dir.join("shard_16.jsonl"), format!("{line3}\n")).unwrap();
    std::fs::write(dir.join(".pw-cache-probe-1-0"), b"probe\n").unwrap();
    e.absent.extend([k1, k2, k3]);
    e.damage.stray_temp_files = 2;
    e.absent_after_open = ["shard_01.jsonl.tmp", "shard_11.jsonl.tmp"]
        .iter()
        .map(|f| Path::new("l2").join(f))
        .collect();
    e.present_after_open = ["shard_06.tmp", "shard_16.jsonl"]
        .iter()
        .map(|f| Path::new("l2").join(f))
        .collect();
    e
}

/// Keys in the wrong shard and keys on several lines: a misplaced key is served; its home
/// shard wins over a misplaced copy; within a shard the last line wins; between two misplaced
/// copies in one shard, the last.
fn jsonl_wrong_shard_and_duplicates(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    let mut shards: Vec<Vec<Vec<u8>>> = (0..16).map(|s| shard_lines(base, s)).collect();
    let changed = |line: &[u8], failure_count: u64| {
        let mut map = parse_line(line);
        map.insert("failure_count".to_owned(), Value::from(failure_count));
        unparse(&map)
    };
    // A: moved from shard 0 to shard 1.
    let a = shards[0].remove(2);
    shards[1].push(a);
    // B: a stale copy in shard 3 of an entry that stays home in shard 2.
    let b = shards[2][1].clone();
    shards[3].insert(0, changed(&b, 777));
    // C: updated in place in its own shard (appended again): the last line wins.
    let c = shards[5][3].clone();
    let c_key = key_of(&c);
    shards[5].push(changed(&c, 555));
    e.intact.get_mut(&c_key).unwrap()["failure_count"] = Value::from(555);
    // D: a changed line first, the original after it: the original wins.
    let d = shards[8][0].clone();
    shards[8].insert(0, changed(&d, 444));
    // E: moved to shard 10 and updated there.
    let e_line = shards[9].remove(0);
    let e_key = key_of(&e_line);
    shards[10].push(changed(&e_line, 333));
    shards[10].push(e_line.clone());
    shards[10].push(changed(&e_line, 222));
    e.intact.get_mut(&e_key).unwrap()["failure_count"] = Value::from(222);
    for (s, lines) in shards.iter().enumerate() {
        write_shard(base, s, lines);
    }
    assert_ne!(shard_of(&key_of(&b)), 3);
    // A, B's copy and E are out of their md5 shard.
    e.damage.misplaced_keys = 3;
    e
}

/// Opened with a ring that lacks the key the credentials were encrypted with (the fixtures'
/// previous key alone: proxywhirl encrypted every credential of the fixtures under the current
/// one): every entry with a credential is unreadable, the others are served.
fn jsonl_unknown_key_tokens(_base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    e.ring = Some(previous_key_only());
    for key in with_credentials(Store::Jsonl) {
        e.corrupt(&key);
    }
    e.corrupt_tokens = e.corrupt.len() as u64;
    e
}

/// One entry per shard re-encrypted under a key no one has, the rest intact.
fn jsonl_stranger_tokens(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    let stranger = KeyRing::new(FernetKey::generate(), []);
    for shard in 0..16 {
        let mut lines = shard_lines(base, shard);
        let i = lines
            .iter()
            .position(|l| l.windows(18).any(|w| w == b"username_encrypted"))
            .unwrap_or(0);
        let mut map = parse_line(&lines[i]);
        let token = stranger.encrypt(&Secret::new("someone else's"));
        map.insert(
            "username_encrypted".to_owned(),
            Value::from(hex_encode(token.as_bytes())),
        );
        e.corrupt(&key_of(&lines[i]));
        lines[i] = unparse(&map);
        write_shard(base, shard, &lines);
    }
    e.corrupt_tokens = 16;
    e
}

/// The fixtures' previous key alone.
fn previous_key_only() -> Arc<KeyRing> {
    Arc::new(KeyRing::from_secrets(&Secret::new(fixture_keys().1), &[]).unwrap())
}

/// The keys of `store`'s entries that hold a credential.
fn with_credentials(store: Store) -> Vec<String> {
    let keys: Vec<String> = fixture_entries(store)
        .into_iter()
        .filter(|(_, want)| !want["username"].is_null() || !want["password"].is_null())
        .map(|(key, _)| key)
        .collect();
    assert!(keys.len() > 50, "{} entries with credentials", keys.len());
    keys
}

/// A timestamp as written: the text, and the instant (and offset) it must read back as.
type Variant = fn(OffsetDateTime) -> (String, OffsetDateTime);

fn ymd_hms(t: OffsetDateTime) -> (String, String) {
    (
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
    )
}

/// `n` fraction digits: the microseconds' digits, then `789` (beyond the microsecond).
fn with_digits(t: OffsetDateTime, n: usize) -> (String, OffsetDateTime) {
    let u = t.to_offset(offset!(UTC));
    let (date, time) = ymd_hms(u);
    let digits = format!("{:06}789", u.microsecond());
    let frac = &digits[..n];
    let kept: u32 = format!("{:0<6}", &frac[..n.min(6)]).parse().unwrap();
    (
        format!("{date}T{time}.{frac}+00:00"),
        u.replace_microsecond(kept).unwrap(),
    )
}

const VARIANTS: [(&str, Variant); 15] = [
    ("Z", |t| {
        let u = t.to_offset(offset!(UTC));
        let (d, h) = ymd_hms(u);
        (format!("{d}T{h}.{:06}Z", u.microsecond()), u)
    }),
    ("space separator", |t| {
        let u = t.to_offset(offset!(UTC));
        let (d, h) = ymd_hms(u);
        (format!("{d} {h}.{:06}+00:00", u.microsecond()), u)
    }),
    ("1 fraction digit", |t| with_digits(t, 1)),
    ("2 fraction digits", |t| with_digits(t, 2)),
    ("3 fraction digits", |t| with_digits(t, 3)),
    ("4 fraction digits", |t| with_digits(t, 4)),
    ("5 fraction digits", |t| with_digits(t, 5)),
    ("6 fraction digits", |t| with_digits(t, 6)),
    ("7 fraction digits", |t| with_digits(t, 7)),
    ("9 fraction digits", |t| with_digits(t, 9)),
    ("naive", |t| {
        let u = t.to_offset(offset!(UTC));
        let (d, h) = ymd_hms(u);
        (format!("{d}T{h}.{:06}", u.microsecond()), u)
    }),
    ("naive, space, no fraction", |t| {
        let u = t.to_offset(offset!(UTC));
        let (d, h) = ymd_hms(u);
        (format!("{d} {h}"), u.replace_microsecond(0).unwrap())
    }),
    ("compact offset +0530", |t| {
        let w = t.to_offset(offset!(+5:30));
        let (d, h) = ymd_hms(w);
        (format!("{d}T{h}.{:06}+0530", w.microsecond()), w)
    }),
    ("negative offset -08:00", |t| {
        let w = t.to_offset(offset!(-8));
        let (d, h) = ymd_hms(w);
        (format!("{d}T{h}.{:06}-08:00", w.microsecond()), w)
    }),
    ("no seconds", |t| {
        let u = t.to_offset(offset!(UTC));
        let (d, _) = ymd_hms(u);
        (
            format!("{d}T{:02}:{:02}+00:00", u.hour(), u.minute()),
            u.replace_second(0).unwrap().replace_microsecond(0).unwrap(),
        )
    }),
];

/// Timestamp fields of a JSONL line.
const TIME_FIELDS: [&str; 5] = [
    "fetch_time",
    "last_accessed",
    "expires_at",
    "last_health_check",
    "next_check_time",
];

/// Every timestamp of an entry written another way Python's `fromisoformat` reads (one entry
/// per variant): served as the same instant; and timestamps that are no date (one entry each):
/// invalid entries.
fn jsonl_timestamp_variants(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    let mut shards: Vec<Vec<Vec<u8>>> = (0..16).map(|s| shard_lines(base, s)).collect();
    let mut targets = (0..16).flat_map(|s| (0..2).map(move |i| (s, i)));
    for (name, variant) in VARIANTS {
        let (s, i) = targets.next().unwrap();
        let key = key_of(&shards[s][i]);
        let mut map = parse_line(&shards[s][i]);
        let want = e.intact.get_mut(&key).unwrap();
        for field in TIME_FIELDS {
            let Some(text) = map[field].as_str() else {
                continue;
            };
            let (written, read) = variant(parse_isoformat(text).unwrap());
            assert!(parse_isoformat(&written).is_ok(), "{name}: {written}");
            map.insert(field.to_owned(), Value::from(written));
            want[field] = Value::from(format_isoformat(read));
        }
        shards[s][i] = unparse(&map);
    }
    let bad: [(&str, Value); 6] = [
        ("expires_at", Value::from("2099-02-30T00:00:00+00:00")),
        ("expires_at", Value::from("2099-04-16T25:61:00+00:00")),
        ("fetch_time", Value::from("16/04/2099 10:00")),
        ("fetch_time", Value::from("")),
        // pydantic reads a number as Unix time, but refuses a boolean.
        ("last_accessed", Value::from(true)),
        // Python 3.11 refuses a lowercase `z`.
        ("expires_at", Value::from("2099-04-16T10:00:00.000000z")),
    ];
    for (field, value) in bad {
        let (s, i) = targets.next().unwrap();
        let key = key_of(&shards[s][i]);
        let mut map = parse_line(&shards[s][i]);
        map.insert(field.to_owned(), value);
        shards[s][i] = unparse(&map);
        e.corrupt(&key);
    }
    for (s, lines) in shards.iter().enumerate() {
        write_shard(base, s, lines);
    }
    e.damage.invalid_entries = 6;
    e
}

/// Empty shard files, and shards of nothing but blank lines.
fn jsonl_empty_files(base: &Path) -> Expect {
    let mut e = Expect::intact(Store::Jsonl);
    for shard in 0..16 {
        for line in shard_lines(base, shard) {
            e.lost(&key_of(&line));
        }
        let bytes: &[u8] = match shard {
            3 => b"\n\n",
            4 => b"   \r\n\t\n",
            _ => b"",
        };
        write_shard_bytes(base, shard, bytes);
    }
    e.damage.blank_lines = 4;
    e
}

/// A shard path that is a directory: the tier cannot read it, a typed I/O failure.
fn jsonl_shard_is_a_directory(base: &Path) -> Expect {
    let path = Store::Jsonl.dir(base).join(shard_file_name(5));
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    Expect::fails("TierError::Io", |e| matches!(e, TierError::Io { .. }))
}

// ---------------------------------------------------------------------------------------------
// SQLite damage (L2 and L3)

fn sqlite_truncated_to_pages(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(3 * 4096).unwrap();
    Expect::fails("SQLITE_CORRUPT", |e| {
        is_sqlite_code(e, rusqlite::ErrorCode::DatabaseCorrupt)
    })
}

fn sqlite_truncated_mid_header(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(50).unwrap();
    Expect::fails("SQLITE_CORRUPT", |e| {
        is_sqlite_code(e, rusqlite::ErrorCode::DatabaseCorrupt)
    })
}

/// The last 100 bytes cut: the file still opens; an entry on the cut page (L2) is a typed
/// failure, every other entry is served.
fn sqlite_truncated_tail(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    let len = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len - 100).unwrap();
    let mut e = Expect::intact(store);
    // Which page the cut reaches is a property of the fixture: L2's last page holds an
    // entry, L3's does not.
    e.unreadable_pages = usize::from(store == Store::SqliteL2);
    e
}

fn sqlite_garbage(store: Store, base: &Path) -> Expect {
    std::fs::write(store.db(base), garbage(16 * 1024, 9)).unwrap();
    Expect::fails("SQLITE_NOTADB", |e| {
        is_sqlite_code(e, rusqlite::ErrorCode::NotADatabase)
    })
}

/// A valid SQLite header followed by garbage.
fn sqlite_garbage_after_header(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    let mut bytes = std::fs::read(&db).unwrap();
    let junk = garbage(bytes.len() - 100, 11);
    bytes[100..].copy_from_slice(&junk);
    std::fs::write(&db, bytes).unwrap();
    Expect::fails("a typed SQLite failure", |e| matches!(e, TierError::Sqlite { .. }))
}

/// Garbage `-wal` and `-shm` files beside an intact database (a WAL whose header does not
/// check out is ignored, a wal-index is rebuilt): every entry is served.
fn sqlite_garbage_sidecars(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    std::fs::write(sidecar(&db, "-wal"), garbage(64 * 1024, 5)).unwrap();
    std::fs::write(sidecar(&db, "-shm"), garbage(32 * 1024, 7)).unwrap();
    Expect::intact(store)
}

/// The database path is a directory: a typed failure, refused before SQLite opens it (a
/// database path must be a regular file: see `private_fs::precreate_file`).
fn sqlite_db_is_a_directory(store: Store, base: &Path) -> Expect {
    let db = store.db(base);
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    Expect::fails(
        "TierError::Io (not a regular file)",
        |e| matches!(e, TierError::Io { source, .. } if source.to_string().contains("directory")),
    )
}

/// An empty file is an empty database: it opens, the tables are created, nothing is served.
fn sqlite_empty_file(store: Store, base: &Path) -> Expect {
    std::fs::write(store.db(base), b"").unwrap();
    let mut e = Expect::intact(store);
    let keys: Vec<String> = e.intact.keys().cloned().collect();
    for key in keys {
        e.lost(&key);
    }
    e
}

fn raw(store: Store, base: &Path) -> Connection {
    Connection::open(store.db(base)).unwrap()
}

fn sqlite_l2_missing_column(base: &Path) -> Expect {
    raw(Store::SqliteL2, base)
        .execute_batch("ALTER TABLE l2_cache DROP COLUMN evicted_from_l1")
        .unwrap();
    Expect::fails(
        "TierError::Schema",
        |e| matches!(e, TierError::Schema { reason, .. } if reason.contains("evicted_from_l1")),
    )
}

fn sqlite_l3_missing_base_column(base: &Path) -> Expect {
    raw(Store::L3, base)
        .execute_batch("ALTER TABLE cache_entries DROP COLUMN updated_at")
        .unwrap();
    Expect::fails(
        "TierError::Schema",
        |e| matches!(e, TierError::Schema { reason, .. } if reason.contains("updated_at")),
    )
}

fn sqlite_l3_history_missing_column(base: &Path) -> Expect {
    raw(Store::L3, base)
        .execute_batch("ALTER TABLE health_history DROP COLUMN check_url")
        .unwrap();
    Expect::fails(
        "TierError::Schema",
        |e| matches!(e, TierError::Schema { reason, .. } if reason.contains("check_url")),
    )
}

/// An L3 database from before proxywhirl's health monitoring: the columns are added back
/// (as proxywhirl's `_migrate_health_columns` does), every entry is served with their
/// defaults.
fn sqlite_l3_without_health_columns(base: &Path) -> Expect {
    let conn = raw(Store::L3, base);
    for (column, _) in pw_cache::tiers::sqlite_l3::HEALTH_COLUMNS {
        conn.execute_batch(&format!("ALTER TABLE cache_entries DROP COLUMN {column}"))
            .unwrap();
    }
    let mut e = Expect::intact(Store::L3);
    for want in e.intact.values_mut() {
        for field in ["last_health_check", "next_check_time", "last_health_error"] {
            want[field] = Value::Null;
        }
        for field in [
            "consecutive_health_failures",
            "consecutive_health_successes",
            "recovery_attempt",
            "total_health_checks",
            "total_health_check_failures",
        ] {
            want[field] = Value::from(0);
        }
        want["evicted_from_l1"] = Value::from(false);
    }
    e
}

/// Rows whose values do not fit their fields (corrupt entries), rows no key can name (left
/// out), credentials that fail, and values that read fine (an INTEGER time, a negative
/// `access_count`, a TEXT token).
fn sqlite_damaged_rows(store: Store, base: &Path) -> Expect {
    let table = if store == Store::L3 {
        "cache_entries"
    } else {
        "l2_cache"
    };
    let mut e = Expect::intact(store);
    let conn = raw(store, base);
    let keys: Vec<String> = e.intact.keys().cloned().collect();
    let with_password: Vec<String> = keys
        .iter()
        .filter(|k| !e.intact[*k]["password"].is_null())
        .cloned()
        .collect();
    let without: Vec<&String> = keys.iter().filter(|k| !with_password.contains(k)).collect();
    let set = |key: &str, assignment: &str| {
        let n = conn
            .execute(&format!("UPDATE {table} SET {assignment} WHERE key = ?1"), [key])
            .unwrap();
        assert_eq!(n, 1, "{key}: {assignment}");
    };
    let corrupt = [
        "fetch_time = '2024-05-01T00:00:00+00:00'",
        "expires_at = 'tomorrow'",
        "expires_at = 9e999",
        "expires_at = 1e13",
        "last_accessed = X'00'",
        "failure_count = -1",
        "access_count = 1.5",
        "ttl_seconds = 'long'",
        "health_status = 'sick'",
        "proxy_url = X'C328'",
        "source = X'FF00'",
        "username_encrypted = 42",
    ];
    for (n, assignment) in corrupt.iter().enumerate() {
        set(without[n], assignment);
        e.corrupt(without[n]);
    }
    // Credentials: bytes that are no token, a token whose HMAC fails.
    set(&with_password[0], "password_encrypted = X'00010203'");
    e.corrupt(&with_password[0]);
    let token: Vec<u8> = conn
        .query_row(
            &format!("SELECT password_encrypted FROM {table} WHERE key = ?1"),
            [&with_password[1]],
            |r| r.get(0),
        )
        .unwrap();
    let mut bad = token.clone();
    let mid = bad.len() / 2;
    bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
    conn.execute(
        &format!("UPDATE {table} SET password_encrypted = ?2 WHERE key = ?1"),
        rusqlite::params![&with_password[1], bad],
    )
    .unwrap();
    e.corrupt(&with_password[1]);
    // Rows no key names: NULL and BLOB keys (listed by nobody, found by no lookup).
    let null_key = without[12].clone();
    set(&null_key, "key = NULL");
    e.lost(&null_key);
    let blob_key = without[13].clone();
    set(&blob_key, "key = CAST(key AS BLOB)");
    e.lost(&blob_key);
    // Values that read fine: an INTEGER time, a negative access_count (read as 0, as
    // proxywhirl's model has no lower bound for it), a TEXT token, an empty BLOB (no credential).
    set(without[14], "fetch_time = 1700000000");
    e.intact.get_mut(without[14]).unwrap()["fetch_time"] = Value::from("2023-11-14T22:13:20+00:00");
    set(without[15], "access_count = -1");
    e.intact.get_mut(without[15]).unwrap()["access_count"] = Value::from(0);
    let token: Vec<u8> = conn
        .query_row(
            &format!("SELECT password_encrypted FROM {table} WHERE key = ?1"),
            [&with_password[2]],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        &format!("UPDATE {table} SET password_encrypted = ?2 WHERE key = ?1"),
        rusqlite::params![&with_password[2], String::from_utf8(token).unwrap()],
    )
    .unwrap();
    set(&with_password[3], "password_encrypted = X''");
    e.intact.get_mut(&with_password[3]).unwrap()["password"] = Value::Null;
    e
}

/// A ring without the key the credentials were encrypted with: every entry with a credential
/// is unreadable.
fn sqlite_unknown_key_tokens(store: Store) -> Expect {
    let mut e = Expect::intact(store);
    e.ring = Some(previous_key_only());
    for key in with_credentials(store) {
        e.corrupt(&key);
    }
    e
}

// ---------------------------------------------------------------------------------------------
// The cases

const JSONL_CASES: [Case; 11] = [
    Case {
        name: "jsonl: shards cut mid-line",
        store: Store::Jsonl,
        damage: jsonl_truncated_mid_line,
    },
    Case {
        name: "jsonl: last newline cut",
        store: Store::Jsonl,
        damage: jsonl_last_newline_cut,
    },
    Case {
        name: "jsonl: corrupt lines",
        store: Store::Jsonl,
        damage: jsonl_corrupt_lines,
    },
    Case {
        name: "jsonl: CRLF line endings",
        store: Store::Jsonl,
        damage: jsonl_crlf,
    },
    Case {
        name: "jsonl: stray temporary files",
        store: Store::Jsonl,
        damage: jsonl_stray_temp_files,
    },
    Case {
        name: "jsonl: wrong shard and duplicate keys",
        store: Store::Jsonl,
        damage: jsonl_wrong_shard_and_duplicates,
    },
    Case {
        name: "jsonl: tokens under an unknown key",
        store: Store::Jsonl,
        damage: jsonl_unknown_key_tokens,
    },
    Case {
        name: "jsonl: tokens under a stranger's key",
        store: Store::Jsonl,
        damage: jsonl_stranger_tokens,
    },
    Case {
        name: "jsonl: ISO timestamp variants",
        store: Store::Jsonl,
        damage: jsonl_timestamp_variants,
    },
    Case {
        name: "jsonl: empty files",
        store: Store::Jsonl,
        damage: jsonl_empty_files,
    },
    Case {
        name: "jsonl: a shard that is a directory",
        store: Store::Jsonl,
        damage: jsonl_shard_is_a_directory,
    },
];

/// The SQLite cases, for L2 (`l2_cache.db`) and L3 (`proxywhirl.db`).
macro_rules! sqlite_cases {
    ($store:expr, $prefix:literal) => {
        [
            Case {
                name: concat!($prefix, ": truncated to 3 pages"),
                store: $store,
                damage: |b| sqlite_truncated_to_pages($store, b),
            },
            Case {
                name: concat!($prefix, ": truncated in the header"),
                store: $store,
                damage: |b| sqlite_truncated_mid_header($store, b),
            },
            Case {
                name: concat!($prefix, ": last 100 bytes cut"),
                store: $store,
                damage: |b| sqlite_truncated_tail($store, b),
            },
            Case {
                name: concat!($prefix, ": garbage file"),
                store: $store,
                damage: |b| sqlite_garbage($store, b),
            },
            Case {
                name: concat!($prefix, ": garbage after a valid header"),
                store: $store,
                damage: |b| sqlite_garbage_after_header($store, b),
            },
            Case {
                name: concat!($prefix, ": garbage -wal and -shm files"),
                store: $store,
                damage: |b| sqlite_garbage_sidecars($store, b),
            },
            Case {
                name: concat!($prefix, ": the database is a directory"),
                store: $store,
                damage: |b| sqlite_db_is_a_directory($store, b),
            },
            Case {
                name: concat!($prefix, ": empty file"),
                store: $store,
                damage: |b| sqlite_empty_file($store, b),
            },
            Case {
                name: concat!($prefix, ": damaged rows"),
                store: $store,
                damage: |b| sqlite_damaged_rows($store, b),
            },
            Case {
                name: concat!($prefix, ": tokens under an unknown key"),
                store: $store,
                damage: |_| sqlite_unknown_key_tokens($store),
            },
        ]
    };
}

#[test]
fn jsonl_damage() {
    for case in &JSONL_CASES {
        run(case);
    }
}

#[test]
fn sqlite_l2_damage() {
    for case in &sqlite_cases!(Store::SqliteL2, "sqlite l2") {
        run(case);
    }
    run(&Case {
        name: "sqlite l2: a column missing",
        store: Store::SqliteL2,
        damage: sqlite_l2_missing_column,
    });
}

#[test]
fn l3_damage() {
    for case in &sqlite_cases!(Store::L3, "l3") {
        run(case);
    }
    for case in [
        Case {
            name: "l3: a base column missing",
            store: Store::L3,
            damage: sqlite_l3_missing_base_column,
        },
        Case {
            name: "l3: a health_history column missing",
            store: Store::L3,
            damage: sqlite_l3_history_missing_column,
        },
        Case {
            name: "l3: no health columns (an older proxywhirl)",
            store: Store::L3,
            damage: sqlite_l3_without_health_columns,
        },
    ] {
        run(&case);
    }
}

/// Every timestamp form the JSONL reader accepts keeps its instant when the entry is written
/// back (a put re-encodes it in `isoformat()`), through the tier and through the manager
/// (a health invalidation stores the updated entry where it was found).
#[test]
fn timestamp_variants_keep_their_instant_when_written_back() {
    let extra: [(&str, &str); 3] = [
        ("offset with seconds", "2099-04-16T10:00:00.250000+05:30:15"),
        ("negative offset with seconds", "2099-04-16T10:00:00-00:00:01"),
        ("offset with seconds, no fraction", "2099-04-16T10:00:00+01:02:03"),
    ];
    let base_time = datetime!(2099-04-16 10:00:00.123456 UTC);
    let mut forms: Vec<(String, String)> = VARIANTS
        .iter()
        .map(|(name, variant)| ((*name).to_owned(), variant(base_time).0))
        .collect();
    forms.extend(extra.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())));
    let mut failures = Vec::new();
    for (name, text) in &forms {
        let instant = parse_isoformat(text).unwrap();
        let base = tempfile::tempdir().unwrap();
        Store::Jsonl.copy_fixture(base.path());
        let mut lines = shard_lines(base.path(), 0);
        let key = key_of(&lines[0]);
        let mut map = parse_line(&lines[0]);
        map.insert("expires_at".to_owned(), Value::from(text.as_str()));
        lines[0] = unparse(&map);
        write_shard(base.path(), 0, &lines);
        let ring = fixture_ring();
        // Through the tier.
        {
            let tier = JsonlTier::open(
                Store::Jsonl.dir(base.path()),
                &CacheTierConfig::unbounded(),
                Arc::clone(&ring),
            )
            .unwrap();
            let got = tier.get(&key).unwrap().unwrap();
            assert_eq!(got.expires_at, instant, "{name}: read");
            tier.put(&got).unwrap();
        }
        let tier = JsonlTier::open(
            Store::Jsonl.dir(base.path()),
            &CacheTierConfig::unbounded(),
            Arc::clone(&ring),
        )
        .unwrap();
        let back = tier.get(&key).unwrap().unwrap().expires_at;
        if back != instant {
            failures.push(format!(
                "{name}: {text:?} written back as {:?} ({} s off)",
                format_isoformat(instant),
                (back - instant).whole_seconds()
            ));
        }
        drop(tier);
        // Through the manager: a health invalidation rewrites the entry in L2.
        let clock = TestClock::at(datetime!(2024-01-01 00:00:00 UTC));
        let m = {
            let clock = clock.clone();
            CacheManager::builder(Store::Jsonl.manager_config(base.path()))
                .key_ring(Arc::clone(&ring))
                .clock(move || clock.now())
                .open()
                .unwrap()
        };
        m.invalidate_by_health(&key);
        m.close().unwrap();
        let tier = JsonlTier::open(Store::Jsonl.dir(base.path()), &CacheTierConfig::unbounded(), ring).unwrap();
        let stored = tier.get(&key).unwrap().unwrap();
        assert_eq!(stored.failure_count, 1, "{name}: the invalidation was stored");
        if stored.expires_at != instant {
            failures.push(format!("{name}: {text:?} changed by the manager's write"));
        }
    }
    assert!(failures.is_empty(), "instants changed:\n{}", failures.join("\n"));
}
