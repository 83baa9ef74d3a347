//! A process writing through a `CacheManager` is killed with SIGKILL at random moments; after
//! each kill the cache opens, no file is corrupt, and every write acknowledged before the kill is
//! there (issue 9).
//!
//! # The durability each backend promises, as tested here
//!
//! A put that returned has its entry in every disk tier that stored it, and a delete that
//! returned has removed it, in a way that survives a crash of the **process** (SIGKILL, panic,
//! OOM kill): what the process wrote is in the kernel, which writes it out by itself.
//! - **SQLite (L2 and L3)**: WAL mode with `synchronous = NORMAL`; each put and delete is one
//!   transaction, committed when it returns. A committed transaction survives a process crash;
//!   a power loss or OS crash may lose the last committed transactions (the WAL is not fsynced
//!   at each commit), never corrupt the file.
//! - **JSONL (L2)**: a put appends its line with `write(2)` before it returns, not fsynced: it
//!   survives a process crash, not necessarily a power loss. A delete, a compaction or an
//!   eviction rewrites the shard into `shard_NN.jsonl.tmp`, fsyncs it, renames it over the shard
//!   and fsyncs the directory: all or nothing, and durable even across a power loss. A process
//!   killed in the middle of an append leaves a torn last line, which the format allows: it is
//!   skipped and counted as damage, never served, and the next append ends it first. A process
//!   killed in the middle of a rewrite leaves a `.tmp` file, removed by the next open.
//! - Not promised across a crash: the use of entries (`access_count`, `last_accessed`), which
//!   L1 keeps and writes below in batches (`USE_BATCH`) or at flush and close. So this test never
//!   looks at use counters, only at entries.
//!
//! Power loss is not tested (it would take a VM or a block device that drops writes).
//!
//! # What the test does
//!
//! For each backend configuration — JSONL L2 + L3, SQLite L2 + L3, L3 alone (L2 disabled by the
//! config) — [`BASE_TRIALS`] × scale trials run on one cache directory, each on what the
//! previous kills left. In each, a child (this binary with [`CHILD_VAR`] set) opens a manager
//! (L1 of [`L1_MAX`] entries; the key from the key file) and runs a seeded endless mix of puts of
//! new keys with credentials, updates and deletes of its live keys and reads, appending each
//! acknowledged write to its log with one `write(2)` after the operation returned. The parent
//! kills it with SIGKILL after a random delay: most often up to [`MAX_DELAY_MS`] after the child
//! said it started writing, sometimes counted from the spawn (a kill while the child starts or
//! opens the cache). The child's writes never pause, so kills land inside operations: appends,
//! shard rewrites, SQLite commits. After each kill the parent:
//! - checks the files: SQLite `PRAGMA integrity_check` is `ok`; in the JSONL shards every line
//!   is an entry, except torn lines, which are at most one per kill and were the last line of
//!   their shard when made; the tier reports exactly those as damage, and at most one stray
//!   `.tmp` file, and nothing else;
//! - regenerates the child's operations from its seed: the log must be a prefix of them, and at
//!   most the one write after the log's last line was in flight when the kill came;
//! - checks that each disk tier, opened directly, holds every acknowledged entry of the trial in
//!   its last version (every field but use, credentials decrypted), nothing acknowledged as
//!   deleted, exactly the keys of the earlier trials, and for the key of the write in flight
//!   either its state before or after that write;
//! - opens a manager (it must open, every tier serving) and reads the same through it, with no
//!   corruption counted; then deletes the key of the write in flight, so that every key is
//!   known again for the next trial.
//!
//! At the end a new manager serves every entry left by all the trials and none deleted.
//!
//! `PW_CACHE_RELIABILITY_SCALE=n` multiplies the trials (default 1: 20 kills per backend);
//! `PW_CACHE_RELIABILITY_SEED` changes the seed of the kill delays and the children's work.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pw_cache::tiers::jsonl::decode_line;
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTierConfig, CacheTierType, EnvKeys, HealthStatus, JsonlTier, KeyRing,
    L2BackendType, OffsetDateTime, Secret, TierStatus, default_key_file,
};
use pw_cache_tests::child_process::{PATIENCE, spawn_self};
use pw_cache_tests::managers::{config, open_tier};

const CHILD_VAR: &str = "PW_CACHE_TEST_CRASH_CHILD";
/// Multiplies [`BASE_TRIALS`] (longer runs: see `docs/reliability.md`).
const SCALE_VAR: &str = "PW_CACHE_RELIABILITY_SCALE";
/// Changes the seed of the kill delays and of the children's operations.
const SEED_VAR: &str = "PW_CACHE_RELIABILITY_SEED";
/// Kills per backend at scale 1.
const BASE_TRIALS: usize = 20;
/// Longest delay between the child starting to write and its kill.
const MAX_DELAY_MS: u64 = 150;
/// Longest delay between the spawn and the kill, when counted from the spawn.
const MAX_EARLY_DELAY_MS: u64 = 40;
/// L1's bound: small, so that L1 evicts and promotes.
const L1_MAX: u64 = 16;
/// SIGKILL.
const SIGKILL: i32 = 9;

/// splitmix64: a small seeded generator, so a run can be replayed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The backend configurations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// JSONL L2 + SQLite L3.
    Jsonl,
    /// SQLite L2 + SQLite L3.
    Sqlite,
    /// SQLite L3 alone: L2 disabled by the config.
    L3Only,
}

impl Backend {
    fn parse(s: &str) -> Self {
        match s {
            "jsonl" => Self::Jsonl,
            "sqlite" => Self::Sqlite,
            "l3" => Self::L3Only,
            _ => panic!("unknown backend {s}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Sqlite => "sqlite",
            Self::L3Only => "l3",
        }
    }

    /// The L2 backend, `None` when L2 is disabled.
    fn l2(self) -> Option<L2BackendType> {
        match self {
            Self::Jsonl => Some(L2BackendType::Jsonl),
            Self::Sqlite => Some(L2BackendType::Sqlite),
            Self::L3Only => None,
        }
    }

    fn config(self, dir: &Path) -> CacheConfig {
        let builder = config(dir, self.l2().unwrap_or(L2BackendType::Jsonl), L1_MAX);
        match self.l2() {
            Some(_) => builder,
            None => builder.l2_config(CacheTierConfig::disabled()),
        }
        .build()
        .unwrap()
    }

    /// The disk tiers, L2 first.
    fn tiers(self) -> Vec<CacheTierType> {
        match self.l2() {
            Some(_) => vec![CacheTierType::L2, CacheTierType::L3],
            None => vec![CacheTierType::L3],
        }
    }
}

/// A manager on the cache under `dir`, its key from the key file (none is configured).
fn open_manager(dir: &Path, backend: Backend) -> CacheManager {
    CacheManager::builder(backend.config(dir))
        .env_keys(EnvKeys::default())
        .open()
        .unwrap_or_else(|e| panic!("the {} cache does not open: {e}", backend.name()))
}

/// Fetch time of version 0 (Unix µs): when the run started, handed to the children.
static BASE_TIME: OnceLock<i64> = OnceLock::new();

fn base_time() -> i64 {
    *BASE_TIME.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_micros()).unwrap()
    })
}

/// A key: trial `t`'s `n`-th new key.
type Id = (usize, usize);

fn url((t, n): Id) -> String {
    format!("http://192.168.{}.{}:{}", n / 250, n % 250 + 1, 10_000 + t)
}

fn key(id: Id) -> String {
    CacheManager::generate_cache_key(&url(id))
}

/// Version `v` of entry `id`: source, fetch time (`v` µs after the start) and password say which.
fn entry(id: Id, v: u64) -> CacheEntry {
    let (t, n) = id;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(base_time() + v as i64) * 1000).unwrap();
    CacheEntry::new_at(url(id), format!("trial{t}-v{v}"), 30 * 86_400, at)
        .unwrap()
        .with_credentials(
            Some(Secret::new(format!("crash-user-{t}-{n}"))),
            Some(Secret::new(format!("crash-pw {t}/{n}/v{v} ü\"\\"))),
        )
}

/// Every field of an entry but its use (`access_count`, `last_accessed`, `evicted_from_l1`:
/// not promised across a crash), credentials in clear.
#[derive(Debug, PartialEq)]
struct View {
    key: String,
    proxy_url: String,
    source: String,
    fetch_time: OffsetDateTime,
    ttl_seconds: u64,
    expires_at: OffsetDateTime,
    health_status: HealthStatus,
    failure_count: u64,
    username: Option<String>,
    password: Option<String>,
}

fn view(e: &CacheEntry) -> View {
    View {
        key: e.key.clone(),
        proxy_url: e.proxy_url.clone(),
        source: e.source.clone(),
        fetch_time: e.fetch_time,
        ttl_seconds: e.ttl_seconds,
        expires_at: e.expires_at,
        health_status: e.health_status,
        failure_count: e.failure_count,
        username: e.username.as_ref().map(|s| s.expose_secret().to_owned()),
        password: e.password.as_ref().map(|s| s.expose_secret().to_owned()),
    }
}

/// One operation of a child, on key `n` of its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Puts version `v` (0: a new key; more: an update of a live key).
    Put { n: usize, v: u64 },
    /// Deletes a live key.
    Delete { n: usize },
    /// Reads a live key.
    Get { n: usize },
}

impl Op {
    /// Its line in the log (`None` for a read, which is not logged).
    fn log_line(self, i: usize) -> Option<String> {
        match self {
            Op::Put { n, v } => Some(format!("{i} P {n} {v}\n")),
            Op::Delete { n } => Some(format!("{i} D {n}\n")),
            Op::Get { .. } => None,
        }
    }
}

/// A child's endless operations, from its seed: the parent replays them to know what the
/// child did and what it was doing when killed.
struct Workload {
    rng: Rng,
    next_key: usize,
    /// Live keys and their versions.
    live: Vec<(usize, u64)>,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            next_key: 0,
            live: Vec::new(),
        }
    }
}

impl Iterator for Workload {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let roll = self.rng.below(100);
        if self.live.is_empty() || roll < 55 {
            let n = self.next_key;
            self.next_key += 1;
            self.live.push((n, 0));
            return Some(Op::Put { n, v: 0 });
        }
        let at = self.rng.below(self.live.len() as u64) as usize;
        Some(if roll < 75 {
            self.live[at].1 += 1;
            let (n, v) = self.live[at];
            Op::Put { n, v }
        } else if roll < 90 {
            Op::Delete {
                n: self.live.swap_remove(at).0,
            }
        } else {
            Op::Get { n: self.live[at].0 }
        })
    }
}

/// In a child, the test harness captures a panic's message into the child's stdout, which is
/// not kept: print it on stderr.
fn report_panics(trial: usize) {
    std::panic::set_hook(Box::new(move |info| {
        let _ = writeln!(std::io::stderr(), "child of trial {trial}: {info}");
    }));
}

fn child(spec: &str) {
    let [dir, backend, trial, seed, base] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("bad child spec {spec}");
    };
    let (dir, backend) = (Path::new(dir), Backend::parse(backend));
    let t: usize = trial.parse().unwrap();
    report_panics(t);
    BASE_TIME.set(base.parse().unwrap()).unwrap();
    let manager = open_manager(dir, backend);
    let mut log = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(format!("acks-{t}.log")))
        .unwrap();
    std::fs::write(dir.join(format!("started-{t}")), "").unwrap();
    let start = Instant::now();
    let mut versions = BTreeMap::new();
    for (i, op) in Workload::new(seed.parse().unwrap()).enumerate() {
        match op {
            Op::Put { n, v } => {
                let stored = manager.put(&entry((t, n), v)).unwrap();
                assert!(stored.l3 && stored.l2 == backend.l2().is_some(), "{stored:?}");
                versions.insert(n, v);
            }
            Op::Delete { n } => {
                assert!(manager.delete(&key((t, n))), "delete of live key {n} found nothing");
                versions.remove(&n);
            }
            Op::Get { n } => {
                let got = manager.get(&key((t, n))).unwrap_or_else(|| panic!("live key {n} lost"));
                assert_eq!(view(&got), view(&entry((t, n), versions[&n])));
            }
        }
        // Acknowledged: one write(2) of the whole line, after the operation returned.
        if let Some(line) = op.log_line(i) {
            log.write_all(line.as_bytes()).unwrap();
        }
        assert!(start.elapsed() < PATIENCE, "never killed");
    }
}

/// Waits until the child of trial `t` says it started writing (failing if it ended first).
fn wait_started(dir: &Path, t: usize, child: &mut Child) {
    let start = Instant::now();
    while !dir.join(format!("started-{t}")).exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("trial {t}: the child ended before it started writing: {status} (its message is above)");
        }
        assert!(start.elapsed() < PATIENCE, "trial {t}: the child never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `PRAGMA integrity_check` of the database at `path` (if it exists) is `ok`.
fn integrity_check(path: &Path) {
    if !path.exists() {
        return;
    }
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let result: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(result, ["ok"], "{}", path.display());
}

/// What the parent knows of the cache across trials.
#[derive(Default)]
struct Known {
    /// Every live entry and its version.
    live: BTreeMap<Id, u64>,
    /// Every key deleted (acknowledged, or settled by the parent).
    deleted: BTreeSet<Id>,
    /// Torn JSONL lines made by earlier kills, still in the shards (then ended by a newline).
    torn: HashSet<Vec<u8>>,
}

/// What a run saw, for its summary.
#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    early_kills: usize,
    acknowledged: usize,
    in_flight_done: usize,
    in_flight_not_done: usize,
    torn_lines: usize,
    stray_temp_files: u64,
    torn_log_lines: usize,
}

/// The state of one key as far as the trial's acknowledged writes go: its version, or `None`
/// when deleted.
type TrialModel = BTreeMap<usize, Option<u64>>;

/// Reads the log of trial `t` and replays the child's operations: the acknowledged state of
/// every key the trial wrote, and the write that may have been in flight when the kill came.
fn replay(dir: &Path, t: usize, seed: u64, tally: &mut Tally) -> (TrialModel, Option<Op>) {
    let bytes = std::fs::read(dir.join(format!("acks-{t}.log"))).unwrap_or_default();
    let text = String::from_utf8(bytes).unwrap();
    // A line the kill cut (no newline) is not acknowledged: the write it logs may be in flight.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    tally.torn_log_lines += usize::from(complete.len() < text.len());
    let mut logged = complete.lines();
    let mut model = TrialModel::new();
    for (i, op) in Workload::new(seed).enumerate() {
        let Some(line) = op.log_line(i) else {
            continue;
        };
        let Some(got) = logged.next() else {
            return (model, Some(op));
        };
        assert_eq!(
            format!("{got}\n"),
            line,
            "trial {t}: the log is not the child's operations"
        );
        tally.acknowledged += 1;
        match op {
            Op::Put { n, v } => model.insert(n, Some(v)),
            Op::Delete { n } => model.insert(n, None),
            Op::Get { .. } => unreachable!("reads are not logged"),
        };
    }
    unreachable!("the operations are endless")
}

/// The states a key may be in: the acknowledged one, and for the key of the write in flight
/// also the one after it.
fn allowed(t: usize, model: &TrialModel, in_flight: Option<Op>, n: usize) -> Vec<Option<u64>> {
    let acked = model.get(&n).copied().flatten();
    let mut states = vec![acked];
    match in_flight {
        Some(Op::Put { n: m, v }) if m == n => states.push(Some(v)),
        Some(Op::Delete { n: m }) if m == n => states.push(None),
        _ => {}
    }
    assert!(
        model.contains_key(&n) || states.len() > 1,
        "trial {t}: key {n} was never written"
    );
    states
}

/// Whether `got` is `state` of key `id`.
fn is_state(got: Option<&CacheEntry>, id: Id, state: Option<u64>) -> bool {
    match (got, state) {
        (None, None) => true,
        (Some(e), Some(v)) => view(e) == view(&entry(id, v)),
        _ => false,
    }
}

fn describe(got: Option<&CacheEntry>) -> String {
    got.map_or("absent".to_owned(), |e| format!("{:?}", view(e)))
}

/// Checks the JSONL shards line by line: every line is an entry, except torn lines (a line the
/// kill cut: the start of an entry, not JSON), which were the last line of their shard when made
/// and are at most one per kill. Returns the torn lines the shards hold.
fn check_shards(dir: &Path, t: usize, ring: &KeyRing, known: &mut Known, tally: &mut Tally) -> u64 {
    let mut held = 0;
    let mut new = 0;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("shard_") && name.ends_with(".jsonl"))
        .collect();
    files.sort();
    for name in files {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        for segment in bytes.split_inclusive(|&b| b == b'\n') {
            let terminated = segment.ends_with(b"\n");
            let line = segment.strip_suffix(b"\n").unwrap_or(segment);
            if decode_line(line, ring).is_ok() {
                continue;
            }
            let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
            assert!(
                line.starts_with(b"{\"key\": \"") && serde_json::from_slice::<serde_json::Value>(line).is_err(),
                "trial {t}: {name} holds a damaged line that is no torn append: {shown:?}"
            );
            held += 1;
            if !known.torn.contains(line) {
                assert!(
                    !terminated,
                    "trial {t}: {name}: a new torn line that is not the last: {shown:?}"
                );
                known.torn.insert(line.to_vec());
                new += 1;
            }
        }
    }
    assert!(new <= 1, "trial {t}: {new} torn lines from one kill");
    tally.torn_lines += new;
    held
}

fn run(test_name: &str, backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let trials = BASE_TRIALS * env_number(SCALE_VAR, 1).max(1) as usize;
    let seed = env_number(SEED_VAR, 0xC4A5_4C11) ^ ((backend as u64) << 40);
    eprintln!("{test_name}: {trials} kills, seed {seed}");
    let mut rng = Rng(seed);
    let mut known = Known::default();
    let mut tally = Tally::default();
    let cfg = backend.config(dir);
    let key_file = default_key_file(&cfg);
    let started = Instant::now();
    for t in 0..trials {
        let child_seed = rng.next();
        let spec = format!("{}|{}|{t}|{child_seed}|{}", dir.display(), backend.name(), base_time());
        let mut child = spawn_self(module_path!(), test_name, CHILD_VAR, spec);
        // One kill in five is timed from the spawn: it may come while the child opens the cache.
        let early = rng.below(5) == 0;
        let delay = if early {
            tally.early_kills += 1;
            rng.below(MAX_EARLY_DELAY_MS * 1000)
        } else {
            wait_started(dir, t, &mut child);
            rng.below(MAX_DELAY_MS * 1000)
        };
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "trial {t}: the child ended before the kill: {status} (its message is above)"
        );
        tally.kills += 1;
        if !key_file.exists() {
            // Killed before it made the key: it wrote nothing.
            assert!(!dir.join(format!("acks-{t}.log")).exists(), "trial {t}");
            continue;
        }
        let ring = Arc::new(KeyRing::resolve(None, &EnvKeys::default(), &key_file).unwrap());
        check_trial(dir, backend, t, child_seed, &ring, &mut known, &mut tally);
    }

    // Every entry left by all the trials, and none deleted, through a new manager.
    let manager = open_manager(dir, backend);
    for (id, v) in &known.live {
        let got = manager.get(&key(*id));
        assert!(
            is_state(got.as_ref(), *id, Some(*v)),
            "{id:?}: {}",
            describe(got.as_ref())
        );
    }
    for id in &known.deleted {
        assert!(manager.get(&key(*id)).is_none(), "{id:?}: deleted, yet served");
    }
    manager.close().unwrap();
    eprintln!(
        "{test_name}: {tally:?}, {} entries left, {} deleted, {:?}",
        known.live.len(),
        known.deleted.len(),
        started.elapsed()
    );
}

/// Everything checked after the kill of trial `t`.
fn check_trial(
    dir: &Path,
    backend: Backend,
    t: usize,
    seed: u64,
    ring: &Arc<KeyRing>,
    known: &mut Known,
    tally: &mut Tally,
) {
    // The files: not corrupt.
    integrity_check(&dir.join("l3/cache.db"));
    match backend.l2() {
        Some(L2BackendType::Sqlite) => integrity_check(&dir.join("l2/l2_cache.db")),
        Some(L2BackendType::Jsonl) => {
            let l2 = dir.join("l2");
            let torn = check_shards(&l2, t, ring, known, tally);
            let tier = JsonlTier::open(&l2, &CacheTierConfig::unbounded(), Arc::clone(ring)).unwrap();
            let damage = tier.damage();
            tally.stray_temp_files += damage.stray_temp_files;
            assert!(damage.stray_temp_files <= 1, "trial {t}: {damage:?}");
            assert_eq!(
                pw_cache::JsonlDamage {
                    stray_temp_files: damage.stray_temp_files,
                    undecodable_lines: torn,
                    ..Default::default()
                },
                damage,
                "trial {t}: only torn lines and a stray temporary file may be left by a kill"
            );
        }
        None => assert!(!dir.join("l2").exists(), "L2 is disabled, yet written"),
    }

    let (model, in_flight) = replay(dir, t, seed, tally);
    let mut keys: BTreeSet<usize> = model.keys().copied().collect();
    let flight_key = in_flight.and_then(|op| match op {
        Op::Put { n, .. } | Op::Delete { n } => Some(n),
        Op::Get { .. } => None,
    });
    keys.extend(flight_key);

    // Each disk tier, opened directly (before a manager promotes anything): the trial's keys in
    // an allowed state, and exactly the keys known from the earlier trials besides.
    for tier_type in backend.tiers() {
        let tier = open_tier(dir, tier_type, backend.l2().unwrap_or(L2BackendType::Jsonl), ring);
        let mut want: BTreeSet<String> = known.live.keys().map(|id| key(*id)).collect();
        for &n in &keys {
            let got = tier
                .peek(&key((t, n)))
                .unwrap_or_else(|e| panic!("trial {t}, {tier_type}: key {n}: {e}"));
            let states = allowed(t, &model, in_flight, n);
            assert!(
                states.iter().any(|s| is_state(got.as_ref(), (t, n), *s)),
                "trial {t}, {tier_type}: key {n} is {}, acknowledged {states:?} (in flight: {in_flight:?})",
                describe(got.as_ref())
            );
            if got.is_some() {
                want.insert(key((t, n)));
            }
        }
        let held: BTreeSet<String> = tier.keys().unwrap().into_iter().collect();
        assert_eq!(held.len(), want.len(), "trial {t}, {tier_type}: entries");
        assert!(held == want, "trial {t}, {tier_type}: not the keys known");
        tier.close().unwrap();
    }

    // A manager opens on what the kill left, serves the same, counts no corruption.
    let manager = open_manager(dir, backend);
    for tier_type in backend.tiers() {
        assert_eq!(
            manager.tier_status(tier_type),
            TierStatus::Serving,
            "trial {t}: {tier_type}"
        );
    }
    for &n in &keys {
        let got = manager.get(&key((t, n)));
        let states = allowed(t, &model, in_flight, n);
        assert!(
            states.iter().any(|s| is_state(got.as_ref(), (t, n), *s)),
            "trial {t}, manager: key {n} is {}, acknowledged {states:?}",
            describe(got.as_ref())
        );
        if Some(n) == flight_key {
            let acked = model.get(&n).copied().flatten();
            if is_state(got.as_ref(), (t, n), acked) && states.len() > 1 {
                tally.in_flight_not_done += 1;
            } else {
                tally.in_flight_done += 1;
            }
        }
    }
    let stats = manager.get_statistics();
    for (tier, s) in [
        ("L1", &stats.l1_stats),
        ("L2", &stats.l2_stats),
        ("L3", &stats.l3_stats),
    ] {
        assert_eq!(
            s.evictions_corruption, 0,
            "trial {t}: {tier} found unreadable entries: {stats:?}"
        );
    }
    // The key of the write in flight is settled: deleted, so that every key is known again.
    if let Some(n) = flight_key {
        manager.delete(&key((t, n)));
    }
    manager.close().unwrap();
    for (n, state) in model {
        match state {
            Some(v) if Some(n) != flight_key => {
                known.live.insert((t, n), v);
            }
            _ => {
                known.deleted.insert((t, n));
            }
        }
    }
    if let Some(n) = flight_key {
        known.deleted.insert((t, n));
    }
}

#[test]
fn killing_a_writer_loses_nothing_acknowledged_jsonl_l2() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("killing_a_writer_loses_nothing_acknowledged_jsonl_l2", Backend::Jsonl);
}

#[test]
fn killing_a_writer_loses_nothing_acknowledged_sqlite_l2() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("killing_a_writer_loses_nothing_acknowledged_sqlite_l2", Backend::Sqlite);
}

#[test]
fn killing_a_writer_loses_nothing_acknowledged_l3_alone() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("killing_a_writer_loses_nothing_acknowledged_l3_alone", Backend::L3Only);
}
