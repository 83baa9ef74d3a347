//! The replay of `bench_python.py` through pw-cache: the same configurations, phases, caps and
//! output schema, with `"impl": "pw-cache"`, so that the two outputs can be joined on
//! `(config, backend, n, phase)` and divided.
//!
//! Configurations, for each size `n`:
//! - `tier_memory`, `tier_jsonl`, `tier_sqlite_l2`, `tier_sqlite_l3`: one tier alone, unbounded,
//!   phases `put`, `get_hit`, `get_miss`;
//! - `manager_jsonl`, `manager_sqlite`: the [`CacheManager`] with L1 bounded at `n / 10`, L2
//!   (JSONL or SQLite) and L3 unbounded, phases `put`, `get_hit`, `get_miss`, `mixed`;
//! - `floor_io` and `floor_full` (backend `sqlite`), at each size of `--sizes` and `--big`:
//!   floors under `manager_sqlite`, in raw rusqlite on the same files, schema and pragmas
//!   ([`crate::raw`]), with the same bounded [`MemoryTier`] as L1 (so their `stats_delta` shows
//!   the manager's L1 hits), and none of the manager's bookkeeping (key locks, statistics, the
//!   pool, typed decoding, expiry, health invalidation).
//!   - `floor_io` is the I/O no implementation on these files can skip: a put is the two
//!     durable upserts (L2, L3; tokens made beforehand, so not even the encryption is counted);
//!     a get that misses L1 is the L2 read, the decryption of its credentials and the
//!     promotion into L1; a miss is the L2 and the L3 read. Its ratio to proxywhirl's manager
//!     is the most any implementation could reach on this machine.
//!   - `floor_full` adds what the manager keeps that proxywhirl's L2 file cannot give: on an
//!     L2 hit, L3's health-check detail (`l2_cache` has no columns for it), and the use of
//!     each entry L1 evicts recorded in L2 and L3 (batches of [`pw_cache::USE_BATCH`] in key
//!     order, one transaction per tier, on a thread of its own with its own connections, as
//!     the manager's use writer). The manager against it is the cost of the manager's own
//!     code;
//! - for each `--big` size: `tier_sqlite_l2`, `manager_sqlite`, `floor_io` and `floor_full`;
//! - with `--redis`, `manager_redis` at each size: the manager with L3 in a `redis-server` of
//!   its own on 127.0.0.1 (`appendfsync always`) and a JSONL or a SQLite L2 (backend
//!   `jsonl+redis`, `sqlite+redis`). proxywhirl has no counterpart.
//!
//! Every put is durable when it returns, as in proxywhirl: the manager writes through to L2 and
//! L3 before `put` returns (one SQLite transaction or one appended JSONL line per tier), and
//! nothing is deferred. Each phase stops at `cap` seconds, like the reference's; a cut put phase
//! is completed untimed through the same calls, so later phases see all `n` entries.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheStatistics, CacheTier, CacheTierConfig, FernetKey, JsonlTier, KeyRing,
    L2BackendType, MemoryTier, SqliteL2Tier, SqliteL3Tier,
};
use serde_json::{Map, Value, json};

use crate::raw::{self, Table};
use crate::workload::Workload;

/// The value of `impl` in every record.
pub const IMPL: &str = "pw-cache";

/// What to run.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The sizes every configuration runs at.
    pub sizes: Vec<usize>,
    /// The extra sizes for the SQLite configurations.
    pub big: Vec<usize>,
    /// The parent of the temporary cache directories.
    pub dir: PathBuf,
    /// The most seconds a phase runs before it is cut.
    pub cap: Duration,
    /// Only these configurations (all when empty).
    pub only: Vec<String>,
    /// Also run `manager_redis` (JSONL and SQLite L2, L3 in a `redis-server` started on
    /// 127.0.0.1) at every size of `sizes`.
    pub redis: bool,
}

/// The tier configurations, in the reference's order.
pub const TIER_KINDS: [&str; 4] = ["memory", "jsonl", "sqlite_l2", "sqlite_l3"];

/// The manager configurations (L2 backends), in the reference's order.
pub const MANAGER_BACKENDS: [&str; 2] = ["jsonl", "sqlite"];

/// Where the records go: each is printed as one JSON line on `out`.
pub struct Emitter<'a> {
    out: &'a mut dyn Write,
    storage: String,
}

impl<'a> Emitter<'a> {
    /// Records for a run whose files are under `dir`.
    pub fn new(out: &'a mut dyn Write, dir: &Path) -> Self {
        let storage = if dir.starts_with("/dev/shm") {
            "tmpfs".to_owned()
        } else {
            format!("disk:{}", dir.display())
        };
        Self { out, storage }
    }

    /// The storage label (`tmpfs` or `disk:DIR`, as the reference writes it).
    pub fn storage(&self) -> &str {
        &self.storage
    }

    fn emit(&mut self, record: Value) -> Result<()> {
        writeln!(self.out, "{record}").context("writing a record")?;
        self.out.flush().context("writing a record")
    }
}

/// Runs every configuration of `options`, one record per (configuration, phase), then a
/// `total` record.
pub fn run(options: &ReplayOptions, emitter: &mut Emitter<'_>) -> Result<()> {
    let start = Instant::now();
    let want = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    for &n in &options.sizes {
        for kind in TIER_KINDS {
            if want(&format!("tier_{kind}")) {
                tier(options, emitter, kind, n)?;
            }
        }
        for backend in MANAGER_BACKENDS {
            if want(&format!("manager_{backend}")) {
                manager(options, emitter, backend, n)?;
            }
        }
        for full in [false, true] {
            if want(floor_name(full)) {
                floor(options, emitter, n, full)?;
            }
        }
        if options.redis && want("manager_redis") {
            for backend in ["jsonl+redis", "sqlite+redis"] {
                let server = RedisServer::start(&options.dir)?;
                manager_on(options, emitter, backend, n, Some(&server))?;
            }
        }
    }
    for &n in &options.big {
        if want("tier_sqlite_l2") {
            tier(options, emitter, "sqlite_l2", n)?;
        }
        if want("manager_sqlite") {
            manager(options, emitter, "sqlite", n)?;
        }
        for full in [false, true] {
            if want(floor_name(full)) {
                floor(options, emitter, n, full)?;
            }
        }
    }
    let total = json!({
        "impl": IMPL,
        "phase": "total",
        "wall_seconds": round(start.elapsed().as_secs_f64(), 1),
        "sqlite": rusqlite_version(),
        "cap_seconds": options.cap.as_secs_f64(),
        "storage": emitter.storage(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    emitter.emit(total)
}

fn rusqlite_version() -> &'static str {
    rusqlite::version()
}

/// Runs `op` over `ops` until done or `cap` has passed (checked after each op, as the
/// reference does); how many ran and how long it took.
fn run_phase<T>(ops: &[T], cap: Duration, mut op: impl FnMut(&T)) -> (usize, Duration) {
    let start = Instant::now();
    let deadline = start + cap;
    let mut done = 0;
    for item in ops {
        op(item);
        done += 1;
        // Reading the clock costs ~20 ns; check every 64 ops, as the phases run for seconds.
        if done % 64 == 0 && Instant::now() > deadline {
            break;
        }
    }
    (done, start.elapsed())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[allow(clippy::cast_precision_loss, reason = "op counts are far below 2^53")]
fn rate(done: usize, secs: Duration) -> Value {
    let s = secs.as_secs_f64();
    if s > 0.0 {
        json!(round(done as f64 / s, 1))
    } else {
        Value::Null
    }
}

/// One phase's record, in the reference's field order.
fn record(base: &Map<String, Value>, phase: &str, planned: usize, done: usize, secs: Duration) -> Map<String, Value> {
    let mut rec = base.clone();
    rec.insert("phase".into(), json!(phase));
    rec.insert("ops_planned".into(), json!(planned));
    rec.insert("ops_done".into(), json!(done));
    rec.insert("complete".into(), json!(done == planned));
    rec.insert("seconds".into(), json!(round(secs.as_secs_f64(), 4)));
    rec.insert("ops_per_sec".into(), rate(done, secs));
    rec
}

fn base(emitter: &Emitter<'_>, config: &str, backend: &str, n: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("impl".into(), json!(IMPL));
    m.insert("config".into(), json!(config));
    m.insert("backend".into(), json!(backend));
    m.insert("n".into(), json!(n));
    m.insert("storage".into(), json!(emitter.storage()));
    m
}

fn bench_dir(options: &ReplayOptions) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(&options.dir).with_context(|| format!("creating {}", options.dir.display()))?;
    tempfile::Builder::new()
        .prefix("pwbench-")
        .tempdir_in(&options.dir)
        .with_context(|| format!("creating a directory in {}", options.dir.display()))
}

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

/// One tier alone, unbounded: put, get_hit, get_miss.
fn tier(options: &ReplayOptions, emitter: &mut Emitter<'_>, kind: &str, n: usize) -> Result<()> {
    let work = Workload::new(n, pw_cache::model::timestamp::now_utc());
    let dir = bench_dir(options)?;
    let unbounded = CacheTierConfig::unbounded();
    let tier: Box<dyn CacheTier> = match kind {
        "memory" => Box::new(MemoryTier::new(&unbounded)),
        "jsonl" => Box::new(JsonlTier::open(dir.path().join("l2"), &unbounded, ring())?),
        "sqlite_l2" => Box::new(SqliteL2Tier::open(dir.path().join("l2"), &unbounded, ring())?),
        _ => Box::new(SqliteL3Tier::open(dir.path().join("l3.db"), &unbounded, ring())?),
    };
    let b = base(emitter, &format!("tier_{kind}"), kind, n);
    let mut failures = 0usize;

    let (done, secs) = run_phase(&work.entries, options.cap, |e| {
        failures += usize::from(tier.put(e).is_err())
    });
    let mut rec = record(&b, "put", n, done, secs);
    if done < n {
        let fill = Instant::now();
        for e in &work.entries[done..] {
            failures += usize::from(tier.put(e).is_err());
        }
        rec.insert(
            "untimed_fill_seconds".into(),
            json!(round(fill.elapsed().as_secs_f64(), 2)),
        );
    }
    rec.insert("failures".into(), json!(failures));
    emitter.emit(Value::Object(rec))?;

    let mut returned = 0usize;
    let (done, secs) = run_phase(&work.entries, options.cap, |e| {
        returned += usize::from(matches!(tier.get(&e.key), Ok(Some(_))));
    });
    let mut rec = record(&b, "get_hit", n, done, secs);
    rec.insert("returned_entries".into(), json!(returned));
    emitter.emit(Value::Object(rec))?;

    let mut returned = 0usize;
    let (done, secs) = run_phase(&work.miss_keys, options.cap, |k| {
        returned += usize::from(matches!(tier.get(k), Ok(Some(_))));
    });
    let mut rec = record(&b, "get_miss", n, done, secs);
    rec.insert("returned_entries".into(), json!(returned));
    emitter.emit(Value::Object(rec))?;
    tier.close()?;
    Ok(())
}

/// The counters `bench_python.py` reports in `stats_delta`.
fn flat_stats(s: &CacheStatistics) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (name, t) in [("l1", &s.l1_stats), ("l2", &s.l2_stats), ("l3", &s.l3_stats)] {
        for (field, v) in [
            ("hits", t.hits),
            ("misses", t.misses),
            ("evictions_lru", t.evictions_lru),
            ("evictions_ttl", t.evictions_ttl),
            ("evictions_health", t.evictions_health),
        ] {
            m.insert(format!("{name}_{field}"), v);
        }
    }
    m.insert("promotions".into(), s.promotions);
    m.insert("demotions".into(), s.demotions);
    m
}

fn stats_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Value {
    let mut d = Map::new();
    for (k, a) in after {
        let b = before.get(k).copied().unwrap_or(0);
        if *a != b {
            d.insert(k.clone(), json!(a.wrapping_sub(b)));
        }
    }
    Value::Object(d)
}

/// The manager config of the reference's benchmark: L1 bounded at `n / 10`, L2 and L3
/// unbounded, files under `dir`.
pub fn manager_config(backend: L2BackendType, n: usize, dir: &Path) -> Result<CacheConfig> {
    let l1_max = (n / 10).max(1) as u64;
    Ok(CacheConfig::builder()
        .l1_config(CacheTierConfig::bounded(l1_max))
        .l2_config(CacheTierConfig::unbounded())
        .l3_config(CacheTierConfig::unbounded())
        .l2_backend(backend)
        .l2_cache_dir(dir.join("l2"))
        .l3_database_path(dir.join("l3").join("proxywhirl.db"))
        .build()?)
}

/// The manager: put, get_hit, get_miss, mixed.
fn manager(options: &ReplayOptions, emitter: &mut Emitter<'_>, backend: &str, n: usize) -> Result<()> {
    manager_on(options, emitter, backend, n, None)
}

/// [`manager`], with L3 in `redis` when given (a fresh server and namespace).
fn manager_on(
    options: &ReplayOptions,
    emitter: &mut Emitter<'_>,
    backend: &str,
    n: usize,
    redis: Option<&RedisServer>,
) -> Result<()> {
    let work = Workload::new(n, pw_cache::model::timestamp::now_utc());
    let dir = bench_dir(options)?;
    let l2 = if backend.starts_with("jsonl") {
        L2BackendType::Jsonl
    } else {
        L2BackendType::Sqlite
    };
    let mut config = manager_config(l2, n, dir.path())?;
    if let Some(server) = redis {
        config = config
            .to_builder()
            .l3_backend(pw_cache::L3BackendType::Redis)
            .redis_url(Some(pw_cache::Secret::new(server.url())))
            .redis_namespace(format!("bench-{n}"))
            .build()?;
    }
    let m = CacheManager::builder(config).key_ring(ring()).open()?;
    let mut b = base(emitter, "manager", backend, n);
    b.insert("l1_max".into(), json!((n / 10).max(1)));

    // put
    let before = flat_stats(&m.get_statistics());
    let mut failures = 0usize;
    let (done, secs) = run_phase(&work.entries, options.cap, |e| {
        failures += usize::from(m.put(e).is_err())
    });
    let mut rec = record(&b, "put", n, done, secs);
    if done < n {
        let fill = Instant::now();
        for e in &work.entries[done..] {
            failures += usize::from(m.put(e).is_err());
        }
        rec.insert(
            "untimed_fill_seconds".into(),
            json!(round(fill.elapsed().as_secs_f64(), 2)),
        );
    }
    rec.insert(
        "stats_delta".into(),
        stats_delta(&before, &flat_stats(&m.get_statistics())),
    );
    rec.insert("failures".into(), json!(failures));
    emitter.emit(Value::Object(rec))?;

    // get_hit, get_miss, mixed
    let keys: Vec<&str> = work.entries.iter().map(|e| e.key.as_str()).collect();
    let miss: Vec<&str> = work.miss_keys.iter().map(String::as_str).collect();
    let mixed: Vec<&str> = work.mixed.iter().map(|&i| work.entries[i].key.as_str()).collect();
    for (phase, ops) in [("get_hit", &keys), ("get_miss", &miss), ("mixed", &mixed)] {
        let before = flat_stats(&m.get_statistics());
        let mut returned = 0usize;
        let (done, secs) = run_phase(ops, options.cap, |k| returned += usize::from(m.get(k).is_some()));
        let mut rec = record(&b, phase, ops.len(), done, secs);
        rec.insert(
            "stats_delta".into(),
            stats_delta(&before, &flat_stats(&m.get_statistics())),
        );
        rec.insert("returned_entries".into(), json!(returned));
        emitter.emit(Value::Object(rec))?;
    }
    m.close()?;
    Ok(())
}

/// `floor_io` or (`full`) `floor_full`.
fn floor_name(full: bool) -> &'static str {
    if full { "floor_full" } else { "floor_io" }
}

/// A floor under the SQLite manager (see the module's docs): put, get_hit, get_miss, mixed.
fn floor(options: &ReplayOptions, emitter: &mut Emitter<'_>, n: usize, full: bool) -> Result<()> {
    let work = Workload::new(n, pw_cache::model::timestamp::now_utc());
    let dir = bench_dir(options)?;
    let ring = ring();
    let l2_path = raw::create(Table::L2, &dir.path().join("l2"), &ring)?;
    let l3_path = raw::create(Table::L3, &dir.path().join("l3"), &ring)?;
    let (l2, l3) = (raw::connection(&l2_path)?, raw::connection(&l3_path)?);
    let tokens = raw::tokens(&work.entries, &ring);
    // floor_full: the use of each entry L1 evicts, queued as the manager queues it.
    let evicted = Arc::new(std::sync::Mutex::new(Vec::<raw::Use>::new()));
    let mut l1 = MemoryTier::new(&CacheTierConfig::bounded((n / 10).max(1) as u64));
    if full {
        let queue = Arc::clone(&evicted);
        l1 = l1.with_locked_eviction_sink(move |e, _flagged| {
            let count = i64::try_from(e.access_count).unwrap_or(i64::MAX);
            let last = pw_cache::model::timestamp::to_unix_seconds(e.last_accessed);
            if let Ok(mut q) = queue.lock() {
                q.push((e.key.clone(), count, last));
            }
        });
    }
    // floor_full records the queued uses on a thread of its own with its own connections, as
    // the manager's use writer does: once a batch is full (`force`: whatever is queued).
    let (batches, writer) = if full {
        let (send, receive) = std::sync::mpsc::channel::<Vec<raw::Use>>();
        let writer = std::thread::spawn(move || -> Result<()> {
            let (mut l2, mut l3) = (raw::connection(&l2_path)?, raw::connection(&l3_path)?);
            for batch in receive {
                l2.record_uses(Table::L2, &batch)?;
                l3.record_uses(Table::L3, &batch)?;
            }
            Ok(())
        });
        (Some(send), Some(writer))
    } else {
        (None, None)
    };
    let flush = |force: bool| -> Result<()> {
        let Some(batches) = &batches else {
            return Ok(());
        };
        let mut batch = {
            let mut q = evicted.lock().map_err(|_| anyhow::anyhow!("use queue poisoned"))?;
            if q.is_empty() || (!force && q.len() < pw_cache::USE_BATCH) {
                return Ok(());
            }
            std::mem::take(&mut *q)
        };
        batch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        batches
            .send(batch)
            .map_err(|_| anyhow::anyhow!("the use writer stopped"))
    };
    let mut b = base(emitter, floor_name(full), "sqlite", n);
    b.insert("l1_max".into(), json!((n / 10).max(1)));

    // put: L1, then the two durable upserts (the same untimed for what a cut phase left).
    let put = |i: usize| -> Result<()> {
        let e = &work.entries[i];
        l1.put(e)?;
        l2.put(Table::L2, e, &tokens[i])?;
        l3.put(Table::L3, e, &tokens[i])?;
        flush(false)
    };
    let mut failures = 0usize;
    let indices: Vec<usize> = (0..n).collect();
    let (done, secs) = run_phase(&indices, options.cap, |&i| failures += usize::from(put(i).is_err()));
    let mut rec = record(&b, "put", n, done, secs);
    for &i in &indices[done..] {
        put(i)?;
    }
    rec.insert("failures".into(), json!(failures));
    emitter.emit(Value::Object(rec))?;

    // A get: L1; on a miss the L2 read, the credentials decrypted and the entry promoted into
    // L1; on an L2 miss the L3 read.
    let mut counts = BTreeMap::<&str, u64>::new();
    let get = |i: Option<usize>, key: &str, counts: &mut BTreeMap<&str, u64>| -> Result<bool> {
        if l1.get(key)?.is_some() {
            *counts.entry("l1_hits").or_default() += 1;
            return Ok(true);
        }
        *counts.entry("l1_misses").or_default() += 1;
        if let Some(row) = raw::get(&l2, Table::L2, key)? {
            let credentials = raw::decrypt_credentials(&ring, &row)?;
            drop(credentials);
            if full {
                raw::health_detail(&l3, key)?;
            }
            if let Some(i) = i {
                l1.put(&work.entries[i])?;
                flush(false)?;
            }
            *counts.entry("l2_hits").or_default() += 1;
            return Ok(true);
        }
        *counts.entry("l2_misses").or_default() += 1;
        let found = raw::get(&l3, Table::L3, key)?.is_some();
        *counts.entry(if found { "l3_hits" } else { "l3_misses" }).or_default() += 1;
        Ok(found)
    };
    let miss_ops: Vec<(Option<usize>, &str)> = work.miss_keys.iter().map(|k| (None, k.as_str())).collect();
    let hit_ops: Vec<(Option<usize>, &str)> = work
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (Some(i), e.key.as_str()))
        .collect();
    let mixed_ops: Vec<(Option<usize>, &str)> = work
        .mixed
        .iter()
        .map(|&i| (Some(i), work.entries[i].key.as_str()))
        .collect();
    for (phase, ops) in [("get_hit", &hit_ops), ("get_miss", &miss_ops), ("mixed", &mixed_ops)] {
        counts.clear();
        let (mut returned, mut failures) = (0usize, 0usize);
        let (done, secs) = run_phase(ops, options.cap, |&(i, key)| match get(i, key, &mut counts) {
            Ok(found) => returned += usize::from(found),
            Err(_) => failures += 1,
        });
        let mut rec = record(&b, phase, ops.len(), done, secs);
        rec.insert("stats_delta".into(), json!(counts));
        rec.insert("returned_entries".into(), json!(returned));
        rec.insert("failures".into(), json!(failures));
        emitter.emit(Value::Object(rec))?;
    }
    flush(true)?;
    drop(batches);
    match writer.map(std::thread::JoinHandle::join) {
        Some(Ok(written)) => written,
        Some(Err(_)) => Err(anyhow::anyhow!("the use writer panicked")),
        None => Ok(()),
    }
}

/// Fills an unbounded L1 with `n` workload entries and returns the resident memory it added,
/// in bytes per entry (from `/proc/self/status`: `VmRSS` after, minus `VmRSS` before; the
/// entries are built one at a time and only the tier's copies are kept).
pub fn l1_bytes_per_entry(n: usize) -> Result<f64> {
    let t0 = pw_cache::model::timestamp::now_utc();
    let tier = MemoryTier::new(&CacheTierConfig::unbounded());
    let before = rss_bytes()?;
    for i in 0..n {
        let e: CacheEntry = crate::workload::entry(i, t0);
        tier.put(&e)?;
    }
    let after = rss_bytes()?;
    anyhow::ensure!(tier.size()? == n, "the tier holds {} entries, not {n}", tier.size()?);
    #[allow(clippy::cast_precision_loss, reason = "byte counts are far below 2^53")]
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

/// The resident set size of this process, in bytes.
fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS has no value")?
        .parse()
        .context("VmRSS is not a number")?;
    Ok(kb * 1024)
}

/// A `redis-server` of the benchmark's own on a free 127.0.0.1 port, persisting as
/// `docs/fleet.md` recommends (`appendonly yes`, `appendfsync always`) into a directory under
/// the benchmark's directory; killed on drop.
pub struct RedisServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and waits (at most 10 s) until it answers `PING`.
    pub fn start(parent: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pwbench-redis-")
            .tempdir_in(parent)
            .context("creating the Redis directory")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (install it: apt-get install redis-server)")?;
        let server = Self { child, port, _dir: dir };
        let start = Instant::now();
        while !server.answers_ping() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
