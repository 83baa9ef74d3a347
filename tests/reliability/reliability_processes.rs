//! Several OS processes sharing one cache directory lose nothing, corrupt nothing and see each
//! other's writes (issue 9; proxywhirl 0.3.3 loses 16-22% of its puts here).
//!
//! For each backend configuration — JSONL L2 + L3, SQLite L2 + L3, and L3 alone (L2 disabled
//! by the config) — 2 and then 4 copies of this test binary (run with [`CHILD_VAR`] set) open a
//! `CacheManager` on one directory at the same moment: they race to create the key file (no key
//! is configured), the shards and the databases. L1 holds [`L1_MAX`] entries, so evictions,
//! demotions and promotions happen all the time. Each process:
//! - puts [`BASE_OPS`] × scale entries of its own (credentials on four in five), and at random
//!   updates ([`UPDATE_PERCENT`]) or deletes ([`DELETE_PERCENT`]) one of its live entries after
//!   each put; every other put it also churns one of its [`HOT`] "hot" keys (update, delete,
//!   put again), which every other process keeps reading;
//! - reads, between its writes, random keys and hot keys of the other processes: whatever it
//!   gets must be one whole version of that entry (URL, source, fetch time, credentials of the
//!   same version); and its own keys, which must be exactly as it last wrote them (a deleted
//!   one absent: another process's read must never bring it back);
//! - appends every acknowledged operation to its own log `acks-<p>.log`: a put that returned
//!   `Ok` with every enabled disk tier storing it, a delete that returned (and found the key);
//! - once every process is done (marker files, waited for with a bound), checks through the
//!   same manager, not reopened, that every acknowledged entry of every other process is there
//!   in its last version, credentials included, and every deleted one absent. A process's L1 is
//!   its own and is not told of other processes' writes: it may still hold another process's
//!   older version of a hot key. So the check first reads `2 × L1_MAX` of the process's own
//!   keys, which pushes every other process's entry out of its L1, and then reads what the
//!   shared tiers hold.
//!
//! Afterwards this process checks the files and what they hold: SQLite `PRAGMA integrity_check`
//! is `ok`; the JSONL shards have no damage at all ([`JsonlTier::damage`] clean) and no
//! temporary file is left; each disk tier, opened directly, holds exactly the acknowledged
//! entries in their last version (every field but the use counters, credentials decrypted) and
//! nothing deleted; a new manager serves all of them, serves nothing deleted, and its statistics
//! count no corruption (every child's statistics counted none either).
//!
//! Three more tests go after what the runs above hit by chance. A read by another process
//! during a delete must not bring the entry back
//! ([`a_read_during_a_delete_does_not_bring_the_entry_back`]: the delete is stopped half way
//! with a [`Gated`] tier, two managers on one directory standing for two processes). Another
//! process recording its use of an entry must not undo an update
//! ([`recording_use_does_not_undo_another_process_update`]: two tiers racing, many times). And
//! eight processes creating one cache at once must all open it
//! ([`processes_creating_the_cache_at_once_all_open_it`]).
//!
//! `PW_CACHE_RELIABILITY_SCALE=n` multiplies the operations per process (default 1: 300 puts,
//! about 540 acknowledged writes and 1200 reads per process) and the rounds of the opening test;
//! `PW_CACHE_RELIABILITY_SEED` changes the seed of the random choices.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use pw_cache::{
    AccessRecord, CacheConfig, CacheEntry, CacheManager, CacheTier, CacheTierConfig, CacheTierType, EnvKeys,
    HealthStatus, JsonlTier, KeyRing, L2BackendType, OffsetDateTime, Secret, TierStatus, default_key_file,
};
use pw_cache_tests::child_process::{PATIENCE, spawn_self, wait_for};
use pw_cache_tests::managers::{config, open_tier};

const CHILD_VAR: &str = "PW_CACHE_TEST_RELIABILITY_PROCESS_CHILD";
/// Multiplies [`BASE_OPS`] (longer runs: see `docs/reliability.md`).
const SCALE_VAR: &str = "PW_CACHE_RELIABILITY_SCALE";
/// Changes the seed of every process's random choices.
const SEED_VAR: &str = "PW_CACHE_RELIABILITY_SEED";
/// Puts of new keys per process at scale 1.
const BASE_OPS: usize = 300;
/// L1's bound: small, so that L1 evicts and promotes all the time.
const L1_MAX: u64 = 16;
/// Hot keys per process.
const HOT: usize = 4;
/// Chance (percent), after each put, of updating one of the process's live entries.
const UPDATE_PERCENT: u64 = 20;
/// Chance (percent), after each put, of deleting one of the process's live entries.
const DELETE_PERCENT: u64 = 10;
/// Fetch time of version 0 (Unix µs): when the run started (the parent's clock, handed to the
/// children), so that a read's use is newer than what is stored and gets recorded below L1.
static BASE_TIME: OnceLock<i64> = OnceLock::new();

fn base_time() -> i64 {
    *BASE_TIME.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_micros()).unwrap()
    })
}

/// splitmix64: a small seeded generator, so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
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

fn scale() -> usize {
    env_number(SCALE_VAR, 1).max(1) as usize
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
}

/// A manager on the cache under `dir`, its key from the key file (none is configured).
fn open_manager(dir: &Path, backend: Backend) -> CacheManager {
    CacheManager::builder(backend.config(dir))
        .env_keys(EnvKeys::default())
        .open()
        .unwrap_or_else(|e| panic!("open the {} cache: {e}", backend.name()))
}

/// One key of a process: a regular one (`r<n>`) or a hot one (`h<n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Id {
    Regular(usize),
    Hot(usize),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Regular(n) => write!(f, "r{n}"),
            Id::Hot(n) => write!(f, "h{n}"),
        }
    }
}

impl Id {
    fn parse(s: &str) -> Self {
        let n = s[1..].parse().unwrap_or_else(|_| panic!("bad id {s}"));
        match &s[..1] {
            "r" => Id::Regular(n),
            "h" => Id::Hot(n),
            _ => panic!("bad id {s}"),
        }
    }
}

fn url(p: usize, id: Id) -> String {
    match id {
        Id::Regular(n) => format!("http://10.{p}.{}.{}:3128", n / 250, n % 250 + 1),
        Id::Hot(n) => format!("http://172.16.{p}.{}:8080", n + 1),
    }
}

/// Version `v` of the entry `id` of process `p`: the source, fetch time (`v` µs after the
/// start) and password say which version it is; no credentials on one regular key in five.
fn entry(p: usize, id: Id, v: u64) -> CacheEntry {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(base_time() + v as i64) * 1000).unwrap();
    let e = CacheEntry::new_at(url(p, id), format!("proc{p}-v{v}"), 30 * 86_400, at).unwrap();
    if matches!(id, Id::Regular(n) if n % 5 == 4) {
        return e;
    }
    e.with_credentials(
        Some(Secret::new(format!("user-{p}-{id}"))),
        Some(Secret::new(format!("pw {p}/{id}/v{v} é\"\\✓"))),
    )
}

fn key(p: usize, id: Id) -> String {
    CacheManager::generate_cache_key(&url(p, id))
}

/// The version an entry says it is (from its source).
fn version_of(e: &CacheEntry) -> u64 {
    let (_, v) = e
        .source
        .rsplit_once("-v")
        .unwrap_or_else(|| panic!("{}: source {}", e.key, e.source));
    v.parse().unwrap_or_else(|_| panic!("{}: source {}", e.key, e.source))
}

/// Every field of an entry but its use (`access_count`, `last_accessed`, `evicted_from_l1`,
/// which other processes' reads change), credentials in clear.
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

/// What a process acknowledged, per key: the last version put, or `None` when deleted last.
type Model = BTreeMap<Id, Option<u64>>;

fn log_name(p: usize) -> String {
    format!("acks-{p}.log")
}

/// Reads process `p`'s log of acknowledged operations into its model.
fn read_log(dir: &Path, p: usize) -> Model {
    let text = std::fs::read_to_string(dir.join(log_name(p))).unwrap();
    let mut model = Model::new();
    for line in text.lines() {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["P", id, v] => {
                model.insert(Id::parse(id), Some(v.parse().unwrap()));
            }
            ["D", id] => {
                let previous = model.insert(Id::parse(id), None);
                assert!(matches!(previous, Some(Some(_))), "process {p} deleted {id}, not live");
            }
            _ => panic!("bad line in {}: {line:?}", log_name(p)),
        }
    }
    model
}

/// A process's writes: through its manager, each acknowledged one appended to its log.
struct Writer<'a> {
    manager: &'a CacheManager,
    backend: Backend,
    p: usize,
    log: std::fs::File,
    model: Model,
    /// Live regular keys (to pick updates and deletes from).
    live: Vec<usize>,
    /// Next version of each hot key.
    hot_next: [u64; HOT],
}

impl Writer<'_> {
    fn ack(&mut self, line: String) {
        self.log.write_all(line.as_bytes()).unwrap();
    }

    fn put(&mut self, id: Id, v: u64) {
        let stored = self
            .manager
            .put(&entry(self.p, id, v))
            .unwrap_or_else(|e| panic!("process {}: put {id} v{v}: {e}", self.p));
        assert!(
            stored.l3 && stored.l2 == self.backend.l2().is_some(),
            "process {}: put {id} v{v} not stored by every disk tier: {stored:?}",
            self.p
        );
        self.ack(format!("P {id} {v}\n"));
        self.model.insert(id, Some(v));
    }

    fn delete(&mut self, id: Id) {
        assert!(
            self.manager.delete(&key(self.p, id)),
            "process {}: delete of live {id} found nothing",
            self.p
        );
        self.ack(format!("D {id}\n"));
        self.model.insert(id, None);
    }

    /// Update, delete or put again one hot key.
    fn churn(&mut self, h: usize, rng: &mut Rng) {
        let id = Id::Hot(h);
        let live = matches!(self.model.get(&id), Some(Some(_)));
        if live && rng.percent(50) {
            self.delete(id);
        } else {
            let v = self.hot_next[h];
            self.hot_next[h] += 1;
            self.put(id, v);
        }
    }

    /// Reads one of this process's own keys: exactly as last written, or absent if deleted.
    fn read_own(&self, id: Id) {
        let got = self.manager.get(&key(self.p, id));
        match self.model.get(&id) {
            Some(Some(v)) => {
                let got = got.unwrap_or_else(|| panic!("process {}: own {id} v{v} lost", self.p));
                assert_eq!(view(&got), view(&entry(self.p, id, *v)), "process {}: own {id}", self.p);
            }
            Some(None) => assert!(
                got.is_none(),
                "process {}: own {id}, deleted, is back: {:?}",
                self.p,
                got.map(|e| e.source)
            ),
            None => {}
        }
    }
}

/// Reads key `id` of process `q`, which may be being written: absent, or one whole version.
fn read_other(manager: &CacheManager, q: usize, id: Id) {
    if let Some(got) = manager.get(&key(q, id)) {
        let v = version_of(&got);
        assert_eq!(
            view(&got),
            view(&entry(q, id, v)),
            "process {q}'s {id}: a torn or mixed entry"
        );
    }
}

fn statistics_clean(manager: &CacheManager, backend: Backend, who: &str) {
    let stats = manager.get_statistics();
    for (tier, s) in [
        ("L1", &stats.l1_stats),
        ("L2", &stats.l2_stats),
        ("L3", &stats.l3_stats),
    ] {
        assert_eq!(
            s.evictions_corruption, 0,
            "{who}: {tier} found unreadable entries: {stats:?}"
        );
    }
    let l2 = if backend.l2().is_some() {
        TierStatus::Serving
    } else {
        TierStatus::Disabled
    };
    assert_eq!(manager.tier_status(CacheTierType::L2), l2, "{who}");
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Serving, "{who}");
    assert_eq!(stats.l2_degraded, backend.l2().is_none(), "{who}");
    assert!(!stats.l3_degraded, "{who}");
}

/// Waits until process `q` is done, failing at once if a process failed (and after
/// [`PATIENCE`] × the scale: the work grows with it).
fn wait_for_sibling(dir: &Path, q: usize, start: Instant) {
    let patience = PATIENCE * u32::try_from(scale()).unwrap_or(u32::MAX);
    while !dir.join(format!("done-{q}")).exists() {
        assert!(!dir.join("failed").exists(), "another process failed");
        assert!(start.elapsed() < patience, "waited too long for process {q}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a child, the test harness captures a panic's message into the child's stdout, which is
/// not kept: print it on stderr, and leave a `failed` marker for the other processes.
fn report_panics(dir: &Path, p: usize) {
    let marker = dir.join("failed");
    std::panic::set_hook(Box::new(move |info| {
        let _ = writeln!(std::io::stderr(), "child process {p}: {info}");
        let _ = std::fs::write(&marker, format!("{p}"));
    }));
}

fn child(spec: &str) {
    let [dir, backend, procs, p, ops, seed, base] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("bad child spec {spec}");
    };
    BASE_TIME.set(base.parse().unwrap()).unwrap();
    let (dir, backend) = (Path::new(dir), Backend::parse(backend));
    let [procs, p, ops] = [procs, p, ops].map(|n| n.parse::<usize>().unwrap());
    report_panics(dir, p);
    let mut rng = Rng(seed.parse().unwrap());
    let others: Vec<usize> = (0..procs).filter(|&q| q != p).collect();
    let start = Instant::now();
    wait_for(dir, "go", start);
    // All processes open the cache at once: key file, shards, databases created by whoever wins.
    let manager = open_manager(dir, backend);
    let log = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(log_name(p)))
        .unwrap();
    let mut w = Writer {
        manager: &manager,
        backend,
        p,
        log,
        model: Model::new(),
        live: Vec::new(),
        hot_next: [0; HOT],
    };
    for i in 0..ops {
        w.put(Id::Regular(i), 0);
        w.live.push(i);
        let roll = rng.next() % 100;
        if roll < UPDATE_PERCENT {
            let n = w.live[rng.below(w.live.len())];
            let Some(Some(v)) = w.model.get(&Id::Regular(n)).copied() else {
                unreachable!("a live key has a version")
            };
            w.put(Id::Regular(n), v + 1);
        } else if roll < UPDATE_PERCENT + DELETE_PERCENT {
            let n = w.live.swap_remove(rng.below(w.live.len()));
            w.delete(Id::Regular(n));
        }
        if i % 2 == 0 {
            w.churn(rng.below(HOT), &mut rng);
        }
        // The others' keys, being written right now: regular ones, and hot ones twice as often.
        read_other(&manager, others[rng.below(others.len())], Id::Regular(rng.below(ops)));
        for _ in 0..2 {
            read_other(&manager, others[rng.below(others.len())], Id::Hot(rng.below(HOT)));
        }
        let own = if rng.percent(50) {
            Id::Hot(rng.below(HOT))
        } else {
            Id::Regular(rng.below(i + 1))
        };
        w.read_own(own);
    }
    std::fs::write(dir.join(format!("done-{p}")), "").unwrap();
    for q in &others {
        wait_for_sibling(dir, *q, start);
    }

    // Everyone is done. Push the others' entries out of this process's L1 (it may hold older
    // versions of them: no process tells another's L1 of its writes), then read the shared tiers.
    let live = w.live.clone();
    assert!(live.len() >= 2 * L1_MAX as usize, "too few live keys to fill L1");
    for n in &live[..2 * L1_MAX as usize] {
        w.read_own(Id::Regular(*n));
    }
    for &q in &others {
        let theirs = read_log(dir, q);
        for (id, state) in &theirs {
            let got = manager.get(&key(q, *id));
            match state {
                Some(v) => {
                    let got = got.unwrap_or_else(|| panic!("process {p} does not see process {q}'s {id} v{v}"));
                    assert_eq!(
                        view(&got),
                        view(&entry(q, *id, *v)),
                        "process {p} reading process {q}'s {id}"
                    );
                }
                None => assert!(
                    got.is_none(),
                    "process {p} sees process {q}'s deleted {id}: {:?}",
                    got.map(|e| e.source)
                ),
            }
        }
    }
    // And its own, all of them.
    for id in w.model.keys() {
        w.read_own(*id);
    }
    let stats = manager.get_statistics();
    assert!(stats.l1_stats.evictions_lru > 0 && stats.promotions > 0, "{stats:?}");
    statistics_clean(&manager, backend, &format!("process {p}"));
    manager.close().unwrap();
}

/// `PRAGMA integrity_check` of the database at `path` is `ok`.
fn integrity_check(path: &Path) {
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

/// Checks that `tier` holds exactly what the processes acknowledged.
fn check_tier(tier: &dyn CacheTier, models: &[Model], what: &str) {
    let mut live = 0;
    for (p, model) in models.iter().enumerate() {
        for (id, state) in model {
            let k = key(p, *id);
            match state {
                Some(v) => {
                    live += 1;
                    let got = tier
                        .peek(&k)
                        .unwrap_or_else(|e| panic!("{what}: process {p}'s {id}: {e}"))
                        .unwrap_or_else(|| panic!("{what}: process {p}'s {id} v{v} lost"));
                    assert_eq!(view(&got), view(&entry(p, *id, *v)), "{what}: process {p}'s {id}");
                }
                None => assert!(
                    !tier.contains(&k).unwrap(),
                    "{what}: process {p}'s deleted {id} is there"
                ),
            }
        }
    }
    assert_eq!(tier.size().unwrap(), live, "{what}: entries");
}

fn run(test_name: &str, backend: Backend, procs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ops = BASE_OPS * scale();
    let seed = env_number(SEED_VAR, 0x9E11_AB1E);
    eprintln!("{test_name}: {procs} processes × {ops} puts, seed {seed}");
    let started = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            let seed = seed ^ ((p as u64 + 1) << 32) ^ ((procs as u64) << 48);
            let spec = format!(
                "{}|{}|{procs}|{p}|{ops}|{seed}|{}",
                dir.path().display(),
                backend.name(),
                base_time()
            );
            spawn_self(module_path!(), test_name, CHILD_VAR, spec)
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let statuses: Vec<_> = children.into_iter().map(|mut c| c.wait().unwrap()).collect();
    for (p, status) in statuses.iter().enumerate() {
        assert!(status.success(), "process {p} failed: {status} (its message is above)");
    }
    let models: Vec<Model> = (0..procs).map(|p| read_log(dir.path(), p)).collect();
    let acked: usize = (0..procs)
        .map(|p| {
            std::fs::read_to_string(dir.path().join(log_name(p)))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    let live: usize = models.iter().map(|m| m.values().filter(|s| s.is_some()).count()).sum();
    eprintln!(
        "{test_name}: {acked} acknowledged writes, {live} entries live, children took {:?}",
        started.elapsed()
    );

    // The files: not damaged, nothing left over.
    let cfg = backend.config(dir.path());
    let ring = Arc::new(KeyRing::resolve(None, &EnvKeys::default(), &default_key_file(&cfg)).unwrap());
    integrity_check(&dir.path().join("l3/cache.db"));
    match backend.l2() {
        Some(L2BackendType::Sqlite) => integrity_check(&dir.path().join("l2/l2_cache.db")),
        Some(L2BackendType::Jsonl) => {
            let tier =
                JsonlTier::open(dir.path().join("l2"), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
            assert!(tier.damage().is_clean(), "{:?}", tier.damage());
            let names: Vec<String> = std::fs::read_dir(dir.path().join("l2"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !(n.starts_with("shard_") && n.ends_with(".jsonl")) && n != "pw-cache.key")
                .collect();
            assert!(names.is_empty(), "left in the L2 directory: {names:?}");
        }
        None => assert!(!dir.path().join("l2").exists(), "L2 is disabled, yet written"),
    }

    // Each disk tier, opened directly, holds exactly what was acknowledged (before any manager
    // reads, which would promote L3's copies into L2).
    if let Some(l2) = backend.l2() {
        let tier = open_tier(dir.path(), CacheTierType::L2, l2, &ring);
        check_tier(tier.as_ref(), &models, "L2");
    }
    let tier = open_tier(dir.path(), CacheTierType::L3, L2BackendType::Jsonl, &ring);
    check_tier(tier.as_ref(), &models, "L3");
    drop(tier);

    // A new manager serves every acknowledged entry, and nothing deleted.
    let manager = open_manager(dir.path(), backend);
    for (p, model) in models.iter().enumerate() {
        for (id, state) in model {
            let got = manager.get(&key(p, *id));
            match state {
                Some(v) => {
                    let got = got.unwrap_or_else(|| panic!("new manager: process {p}'s {id} v{v} lost"));
                    assert_eq!(view(&got), view(&entry(p, *id, *v)), "new manager: process {p}'s {id}");
                }
                None => assert!(got.is_none(), "new manager: process {p}'s deleted {id} is there"),
            }
        }
    }
    statistics_clean(&manager, backend, "new manager");
    manager.close().unwrap();
}

#[test]
fn jsonl_l2_two_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("jsonl_l2_two_processes", Backend::Jsonl, 2);
}

#[test]
fn jsonl_l2_four_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("jsonl_l2_four_processes", Backend::Jsonl, 4);
}

#[test]
fn sqlite_l2_two_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("sqlite_l2_two_processes", Backend::Sqlite, 2);
}

#[test]
fn sqlite_l2_four_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("sqlite_l2_four_processes", Backend::Sqlite, 4);
}

#[test]
fn l3_alone_two_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("l3_alone_two_processes", Backend::L3Only, 2);
}

#[test]
fn l3_alone_four_processes() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("l3_alone_four_processes", Backend::L3Only, 4);
}

/// Stops a delete of a [`Gated`] tier until the test lets it go on: the moment at which another
/// process has to act to hit a race, made certain.
struct Gate {
    armed: AtomicBool,
    reached: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

/// The test's side of a [`Gate`].
struct GateControl {
    reached: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl GateControl {
    fn wait_reached(&self) {
        self.reached
            .recv_timeout(PATIENCE)
            .expect("the gated operation never came");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

fn gate() -> (Arc<Gate>, GateControl) {
    let (reached_tx, reached_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let gate = Gate {
        armed: AtomicBool::new(false),
        reached: Mutex::new(reached_tx),
        release: Mutex::new(release_rx),
    };
    (
        Arc::new(gate),
        GateControl {
            reached: reached_rx,
            release: release_tx,
        },
    )
}

impl Gate {
    /// The next delete stops.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.lock().unwrap().send(()).unwrap();
            self.release
                .lock()
                .unwrap()
                .recv_timeout(PATIENCE)
                .expect("the test never released the gate");
        }
    }
}

/// A tier that does what `inner` does, except that a delete can stop at its [`Gate`] before it
/// starts, or (`after_get`) a get can stop there once it has read.
struct Gated {
    inner: Box<dyn CacheTier>,
    gate: Arc<Gate>,
    after_get: bool,
}

impl CacheTier for Gated {
    fn tier_type(&self) -> CacheTierType {
        self.inner.tier_type()
    }
    fn get(&self, key: &str) -> Result<Option<CacheEntry>, pw_cache::TierError> {
        let found = self.inner.get(key);
        if self.after_get {
            self.gate.pass();
        }
        found
    }
    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, pw_cache::TierError> {
        self.inner.peek(key)
    }
    fn put(&self, entry: &CacheEntry) -> Result<(), pw_cache::TierError> {
        self.inner.put(entry)
    }
    fn put_if_absent_with(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Result<bool, pw_cache::TierError> {
        self.inner.put_if_absent_with(entry, still_below)
    }
    fn delete(&self, key: &str) -> Result<bool, pw_cache::TierError> {
        if !self.after_get {
            self.gate.pass();
        }
        self.inner.delete(key)
    }
    fn clear(&self) -> Result<usize, pw_cache::TierError> {
        self.inner.clear()
    }
    fn size(&self) -> Result<usize, pw_cache::TierError> {
        self.inner.size()
    }
    fn keys(&self) -> Result<Vec<String>, pw_cache::TierError> {
        self.inner.keys()
    }
    fn contains(&self, key: &str) -> Result<bool, pw_cache::TierError> {
        self.inner.contains(key)
    }
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, pw_cache::TierError> {
        self.inner.cleanup_expired(now)
    }
    fn health(&self) -> &pw_cache::TierHealth {
        self.inner.health()
    }
    fn keeps_health_detail(&self) -> bool {
        self.inner.keeps_health_detail()
    }
    fn health_detail(&self, key: &str) -> Result<Option<pw_cache::HealthDetail>, pw_cache::TierError> {
        self.inner.health_detail(key)
    }
    fn evictions(&self) -> u64 {
        self.inner.evictions()
    }
    fn compact(&self) -> Result<usize, pw_cache::TierError> {
        self.inner.compact()
    }
    fn flush(&self) -> Result<(), pw_cache::TierError> {
        self.inner.flush()
    }
    fn close(&self) -> Result<(), pw_cache::TierError> {
        self.inner.close()
    }
    fn probe(&self) -> Result<(), pw_cache::TierError> {
        self.inner.probe()
    }
}

/// A manager on the cache under `dir` with `ring`, as another process would open it.
fn manager_with(dir: &Path, backend: Backend, ring: &Arc<KeyRing>) -> CacheManager {
    CacheManager::builder(backend.config(dir))
        .key_ring(Arc::clone(ring))
        .open()
        .unwrap()
}

/// [`manager_with`], its L3 [`Gated`] (gets when `after_get`, deletes otherwise).
fn manager_with_gated_l3(
    dir: &Path,
    backend: Backend,
    ring: &Arc<KeyRing>,
    after_get: bool,
) -> (CacheManager, Arc<Gate>, GateControl) {
    let (gate, control) = gate();
    let l3 = Gated {
        inner: open_tier(dir, CacheTierType::L3, L2BackendType::Jsonl, ring),
        gate: Arc::clone(&gate),
        after_get,
    };
    let manager = CacheManager::builder(backend.config(dir))
        .key_ring(Arc::clone(ring))
        .l3_tier(Box::new(l3))
        .open()
        .unwrap();
    (manager, gate, control)
}

/// The race the multi-process runs above hit with hot keys, made certain (two managers on one
/// directory are two processes: neither knows of the other's key locks or L1). A manager's
/// delete removes the key from L1, then L2, then L3. A lookup by another process between the
/// L2 and the L3 delete misses L2, finds L3's copy and promotes it into L2, where it stays after
/// the delete returned: a deleted entry is served again, by every process, until it expires.
#[test]
fn a_read_during_a_delete_does_not_bring_the_entry_back() {
    let mut failures = Vec::new();
    for backend in [Backend::Jsonl, Backend::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let ring = pw_cache_tests::managers::test_ring();
        let (deleting, gate, control) = manager_with_gated_l3(dir.path(), backend, &ring, false);
        let reading = manager_with(dir.path(), backend, &ring);
        let e = entry(0, Id::Hot(0), 0);
        deleting.put(&e).unwrap();
        gate.arm();
        let seen = std::thread::scope(|s| {
            let delete = s.spawn(|| deleting.delete(&e.key));
            control.wait_reached();
            // The delete is done with L1 and L2, not yet with L3: the other process reads.
            let seen = reading.get(&e.key).is_some();
            control.release();
            assert!(delete.join().unwrap(), "{backend:?}: the delete found nothing");
            seen
        });
        // The delete has returned: nothing may serve the entry any more.
        drop((deleting, reading));
        let in_l2 = open_tier(dir.path(), CacheTierType::L2, backend.l2().unwrap(), &ring)
            .contains(&e.key)
            .unwrap();
        let served = manager_with(dir.path(), backend, &ring).get(&e.key).is_some();
        if in_l2 || served {
            failures.push(format!(
                "{backend:?}: an entry deleted while another process read it (and found it: {seen}) is back: \
                 in L2 {in_l2}, served by a new manager {served}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The other side of that race (seen once in CI, with hot keys): a lookup that missed L2 and
/// found L3's copy promotes it into L2. If another process puts a newer version, or deletes
/// the key, between the lookup's L3 read and its L2 write, an upsert of the copy would undo
/// that write: an older version (or a deleted entry) served from L2 after the put (or delete)
/// returned. The lookup is stopped right after its L3 read; the other manager writes; then the
/// lookup goes on. L2 must hold what the other manager wrote.
#[test]
fn a_promotion_from_l3_does_not_undo_another_process_write() {
    let mut failures = Vec::new();
    for backend in [Backend::Jsonl, Backend::Sqlite] {
        for delete in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let ring = pw_cache_tests::managers::test_ring();
            let (reading, gate, control) = manager_with_gated_l3(dir.path(), backend, &ring, true);
            let writing = manager_with(dir.path(), backend, &ring);
            let (v1, v2) = (entry(0, Id::Hot(0), 1), entry(0, Id::Hot(0), 2));
            // Version 1 in L3 alone, as between a put's L2 and L3 writes after a delete.
            writing.put(&v1).unwrap();
            let l2 = open_tier(dir.path(), CacheTierType::L2, backend.l2().unwrap(), &ring);
            assert!(l2.delete(&v1.key).unwrap());
            gate.arm();
            let found = std::thread::scope(|s| {
                let lookup = s.spawn(|| reading.get(&v1.key));
                control.wait_reached();
                if delete {
                    assert!(writing.delete(&v1.key), "{backend:?}: the delete found nothing");
                } else {
                    writing.put(&v2).unwrap();
                }
                control.release();
                lookup.join().unwrap()
            });
            // The lookup itself read version 1 before the write: it may return it.
            assert_eq!(found.map(|e| e.source), Some(v1.source.clone()), "{backend:?}");
            let held = l2.get(&v1.key).unwrap().map(|e| e.source);
            let want = if delete { None } else { Some(v2.source.clone()) };
            if held != want {
                failures.push(format!(
                    "{backend:?}, {}: L2 holds {held:?} after the other process's write, not {want:?}",
                    if delete { "delete" } else { "put" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The JSONL tier records use (`record_accesses`: the use another process's L1 saw, written
/// on L1 eviction, flush and close) with the trait's default: read the entry, then put it back
/// with the use applied. Another process's update landing between the read and the put is
/// undone: the older version is written back over it, after the update returned (a delete is
/// undone the same way). Here two tiers on one directory (two processes: separate indexes, the
/// same file locks) race: one puts a new version of a key again and again, reading it back
/// after each put; the other records use of that key in a loop. Every read-back must be the
/// version just put, and the last one must stay. SQLite L2, which records use with an `UPDATE`
/// of the use columns, runs as a control.
#[test]
fn recording_use_does_not_undo_another_process_update() {
    let updates = 300 * scale() as u64;
    let mut failures = Vec::new();
    for l2 in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let ring = pw_cache_tests::managers::test_ring();
        let writing = open_tier(dir.path(), CacheTierType::L2, l2, &ring);
        let recording = open_tier(dir.path(), CacheTierType::L2, l2, &ring);
        let id = Id::Regular(0);
        writing.put(&entry(0, id, 0)).unwrap();
        let done = AtomicBool::new(false);
        let (undone, records) = std::thread::scope(|s| {
            let recorder = s.spawn(|| {
                let mut records = 0;
                while !done.load(Ordering::SeqCst) {
                    let mut used = entry(0, id, 0);
                    used.access_count = records;
                    used.last_accessed = OffsetDateTime::now_utc();
                    recording.record_accesses(&[AccessRecord::of(&used, true)]).unwrap();
                    records += 1;
                }
                records
            });
            let mut undone = Vec::new();
            for v in 1..=updates {
                writing.put(&entry(0, id, v)).unwrap();
                let got = writing.peek(&key(0, id)).unwrap().map(|e| version_of(&e));
                if got != Some(v) {
                    undone.push((v, got));
                }
            }
            done.store(true, Ordering::SeqCst);
            (undone, recorder.join().unwrap())
        });
        let last = open_tier(dir.path(), CacheTierType::L2, l2, &ring)
            .peek(&key(0, id))
            .unwrap()
            .map(|e| version_of(&e));
        if !undone.is_empty() || last != Some(updates) {
            failures.push(format!(
                "{l2:?}: of {updates} updates raced by {records} use records, {} read back older \
                 (put, read back): {:?}; left: {last:?}",
                undone.len(),
                &undone[..undone.len().min(5)]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Several processes creating one cache at once all open it. Switching a new database to WAL
/// takes its exclusive lock, and SQLite may answer `SQLITE_BUSY` without calling the busy
/// handler when waiting could deadlock (connections racing to upgrade their locks): measured,
/// one open in 70 or so fails with "set WAL mode …: database is locked" when eight processes
/// create the cache together, none when the database exists already. Run [`scale`] × 10
/// rounds of eight processes.
#[test]
fn processes_creating_the_cache_at_once_all_open_it() {
    const OPEN_VAR: &str = "PW_CACHE_TEST_RELIABILITY_OPEN_CHILD";
    const PROCESSES: usize = 8;
    let rounds = 10 * scale();
    if let Ok(dir) = std::env::var(OPEN_VAR) {
        let dir = Path::new(&dir);
        wait_for(dir, "go", Instant::now());
        let manager = CacheManager::builder(Backend::Sqlite.config(dir))
            .env_keys(EnvKeys::default())
            .open();
        if let Err(e) = manager {
            let _ = writeln!(std::io::stderr(), "child: open failed: {e}");
            std::process::exit(3);
        }
        return;
    }
    let mut failed = 0;
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let dir = dir.path().display().to_string();
                spawn_self(
                    module_path!(),
                    "processes_creating_the_cache_at_once_all_open_it",
                    OPEN_VAR,
                    dir,
                )
            })
            .collect();
        std::fs::write(dir.path().join("go"), "").unwrap();
        for mut c in children {
            failed += usize::from(!c.wait().unwrap().success());
        }
    }
    assert_eq!(failed, 0, "{failed} of {} opens failed", rounds * PROCESSES);
}
