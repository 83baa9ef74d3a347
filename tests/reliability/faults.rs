//! Faults under a running `CacheManager`, for each disk tier (JSONL L2, SQLite L2, L3):
//!
//! - **A database replaced by garbage** (SQLite L2, L3): the file is overwritten in place while
//!   the manager runs, then either restored (the bytes it had) or removed (the operator deletes
//!   the broken file). For the JSONL L2, whose damage is never a tier failure, the shard files
//!   are replaced by garbage (renamed over, and overwritten in place), then removed.
//! - **Disk full**: (1) injected: a wrapper tier around the real one (given to the manager with
//!   `CacheManagerBuilder::l2_tier` / `l3_tier`) fails every write with the error a full disk
//!   gives that backend (`ENOSPC` for JSONL, `SQLITE_FULL` for SQLite) while a switch is on;
//!   (2) real: the tier's directory is on a tiny tmpfs filled up by a file, which is then
//!   removed. Mounting needs root (`CAP_SYS_ADMIN`); where `mount` fails, the real variant says
//!   so and passes, and the injected variant, which always runs, covers the behaviour.
//! - **A read-only directory** is covered by `tests/reliability/manager_degradation.rs` (real
//!   permissions, in a child process without the file capabilities), not repeated here.
//!
//! In every case the manager keeps serving every entry it acknowledged from the other tiers,
//! flags the failing tier degraded (`tier_status`, the statistics' `lN_degraded`), keeps it
//! degraded while its probe fails, serves from it again once the fault is removed (a short
//! probe interval), never serves from it an entry deleted or replaced while it was skipped, and
//! loses no acknowledged entry — in this run, and in the next one (a new manager on the same
//! files).
//!
//! `PW_CACHE_RELIABILITY_SCALE=N` starts each scenario with 8 × N acknowledged entries.
//!
//! The probe counts in these tests come from a pass-through wrapper around the real tier (it
//! forwards every call and counts the probes), so waits are for conditions, not for time.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pw_cache::tiers::jsonl::{JsonlDamage, shard_file_name};
use pw_cache::{
    AccessRecord, CacheConfig, CacheEntry, CacheManager, CacheTier, CacheTierConfig, CacheTierType, HealthDetail,
    JsonlTier, KeyRing, L2BackendType, OffsetDateTime, Secret, SqliteL2Tier, SqliteL3Tier, Stored, TierError,
    TierHealth, TierStatus,
};
use pw_cache_tests::managers::test_ring;
use pw_cache_tests::wait_until;

/// `PW_CACHE_RELIABILITY_SCALE` (default 1): each scenario starts with 8 × scale entries.
fn scale() -> u32 {
    std::env::var("PW_CACHE_RELIABILITY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// How often degraded tiers are probed here.
const PROBE: Duration = Duration::from_millis(20);

/// Successful probes after which a tier that is still degraded has not recovered.
const PROBES_TO_RECOVER: u64 = 25;

// ---------------------------------------------------------------------------------------------
// Targets, paths, managers

/// The tier a scenario breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    JsonlL2,
    SqliteL2,
    L3,
}

impl Target {
    fn tier(self) -> CacheTierType {
        match self {
            Target::L3 => CacheTierType::L3,
            _ => CacheTierType::L2,
        }
    }

    /// The L2 backend of the cache (L3 targets run over a JSONL L2).
    fn backend(self) -> L2BackendType {
        match self {
            Target::SqliteL2 => L2BackendType::Sqlite,
            _ => L2BackendType::Jsonl,
        }
    }

    fn sqlite(self) -> bool {
        self != Target::JsonlL2
    }

    /// What a put stores while the target is failing or degraded.
    fn without_target(self) -> Stored {
        Stored {
            l1: true,
            l2: self.tier() != CacheTierType::L2,
            l3: self.tier() != CacheTierType::L3,
        }
    }
}

const ALL: Stored = Stored {
    l1: true,
    l2: true,
    l3: true,
};

/// Where a cache's files are.
#[derive(Debug, Clone)]
struct Paths {
    l2: PathBuf,
    l3_db: PathBuf,
}

impl Paths {
    fn under(base: &Path) -> Self {
        Paths {
            l2: base.join("l2"),
            l3_db: base.join("l3").join("cache.db"),
        }
    }

    /// The target's database file (SQLite targets).
    fn db(&self, target: Target) -> PathBuf {
        match target {
            Target::SqliteL2 => self.l2.join("l2_cache.db"),
            Target::L3 => self.l3_db.clone(),
            Target::JsonlL2 => panic!("the JSONL tier has no database"),
        }
    }

    /// The directory holding the target's files.
    fn dir(&self, target: Target) -> PathBuf {
        match target {
            Target::L3 => self.l3_db.parent().unwrap().to_path_buf(),
            _ => self.l2.clone(),
        }
    }

    fn config(&self, target: Target) -> CacheConfig {
        CacheConfig::builder()
            // L1 holds two entries: lookups go down to the disk tiers.
            .l1_config(CacheTierConfig::bounded(2))
            .l2_config(CacheTierConfig::unbounded())
            .l3_config(CacheTierConfig::unbounded())
            .l2_backend(target.backend())
            .l2_cache_dir(&self.l2)
            .l3_database_path(&self.l3_db)
            .build()
            .unwrap()
    }

    /// The target's tier, opened directly on its files.
    fn open_target(&self, target: Target, ring: &Arc<KeyRing>) -> Box<dyn CacheTier> {
        let cfg = CacheTierConfig::unbounded();
        let ring = Arc::clone(ring);
        match target {
            Target::JsonlL2 => Box::new(JsonlTier::open(&self.l2, &cfg, ring).unwrap()),
            Target::SqliteL2 => Box::new(SqliteL2Tier::open(&self.l2, &cfg, ring).unwrap()),
            Target::L3 => Box::new(SqliteL3Tier::open(&self.l3_db, &cfg, ring).unwrap()),
        }
    }
}

/// A manager on `paths` whose target tier is the real one wrapped in a [`Wrapped`] (whose
/// switches are returned).
fn wrapped_manager(paths: &Paths, target: Target, ring: &Arc<KeyRing>) -> (CacheManager, Arc<Switches>) {
    let switches = Arc::new(Switches::default());
    let wrapper = Box::new(Wrapped {
        inner: paths.open_target(target, ring),
        sqlite: target.sqlite(),
        path: if target.sqlite() {
            paths.db(target)
        } else {
            paths.dir(target)
        },
        switches: Arc::clone(&switches),
        health: TierHealth::new(),
    });
    let builder = CacheManager::builder(paths.config(target))
        .key_ring(Arc::clone(ring))
        .probe_interval(PROBE);
    let builder = match target.tier() {
        CacheTierType::L3 => builder.l3_tier(wrapper),
        _ => builder.l2_tier(wrapper),
    };
    (builder.open().unwrap(), switches)
}

/// A plain manager on `paths` (the next run).
fn plain_manager(paths: &Paths, target: Target, ring: &Arc<KeyRing>) -> CacheManager {
    CacheManager::builder(paths.config(target))
        .key_ring(Arc::clone(ring))
        .probe_interval(PROBE)
        .open()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The wrapper tier

/// The switches and counters of a [`Wrapped`] tier.
#[derive(Default)]
struct Switches {
    /// Every write fails as on a full disk.
    full: AtomicBool,
    probes_ok: AtomicU64,
    probes_failed: AtomicU64,
}

impl Switches {
    fn probes_ok(&self) -> u64 {
        self.probes_ok.load(Ordering::SeqCst)
    }

    fn probes_failed(&self) -> u64 {
        self.probes_failed.load(Ordering::SeqCst)
    }
}

/// Forwards every call to the real tier `inner`; while `full` is on, every write (put, delete,
/// clear, recorded use, flush, compaction, the probe) fails with what a full disk gives the
/// backend, without reaching `inner`. Its health observes every result, as a real tier's does.
struct Wrapped {
    inner: Box<dyn CacheTier>,
    sqlite: bool,
    path: PathBuf,
    switches: Arc<Switches>,
    health: TierHealth,
}

impl Wrapped {
    /// The error of a write on a full disk: `SQLITE_FULL` for SQLite, `ENOSPC` otherwise.
    fn disk_full(&self, op: &'static str) -> TierError {
        if self.sqlite {
            TierError::Sqlite {
                op,
                path: self.path.clone(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some("database or disk is full".to_owned()),
                ),
            }
        } else {
            TierError::Io {
                op,
                path: self.path.clone(),
                source: std::io::Error::from_raw_os_error(28),
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&dyn CacheTier) -> Result<T, TierError>) -> Result<T, TierError> {
        self.health.observe(f(&*self.inner))
    }

    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&dyn CacheTier) -> Result<T, TierError>,
    ) -> Result<T, TierError> {
        if self.switches.full.load(Ordering::SeqCst) {
            return self.health.observe(Err(self.disk_full(op)));
        }
        self.read(f)
    }
}

impl CacheTier for Wrapped {
    fn tier_type(&self) -> CacheTierType {
        self.inner.tier_type()
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.read(|t| t.get(key))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.read(|t| t.peek(key))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.write("write entry", |t| t.put(entry))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.write("delete entry", |t| t.delete(key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.write("clear entries", |t| t.clear())
    }

    fn size(&self) -> Result<usize, TierError> {
        self.read(|t| t.size())
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.read(|t| t.keys())
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.read(|t| t.contains(key))
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.write("delete expired entries", |t| t.cleanup_expired(now))
    }

    fn health(&self) -> &TierHealth {
        &self.health
    }

    fn keeps_health_detail(&self) -> bool {
        self.inner.keeps_health_detail()
    }

    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.write("record uses", |t| t.record_accesses(records))
    }

    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        self.read(|t| t.health_detail(key))
    }

    fn evictions(&self) -> u64 {
        self.inner.evictions()
    }

    fn compact(&self) -> Result<usize, TierError> {
        self.write("compact", |t| t.compact())
    }

    fn flush(&self) -> Result<(), TierError> {
        self.write("flush", |t| t.flush())
    }

    fn close(&self) -> Result<(), TierError> {
        self.write("close", |t| t.close())
    }

    fn probe(&self) -> Result<(), TierError> {
        let result = self.write("probe", |t| t.probe());
        let counter = if result.is_ok() {
            &self.switches.probes_ok
        } else {
            &self.switches.probes_failed
        };
        counter.fetch_add(1, Ordering::SeqCst);
        result
    }
}

// ---------------------------------------------------------------------------------------------
// What the manager acknowledged

fn entry(url: &str, source: &str) -> CacheEntry {
    CacheEntry::new(url, source, 3600).unwrap().with_credentials(
        Some(Secret::new(format!("user-{url}"))),
        Some(Secret::new(format!("pw-{url}"))),
    )
}

/// Every put and delete the manager acknowledged, and what must be served for it.
#[derive(Default)]
struct Ledger {
    live: BTreeMap<String, CacheEntry>,
    deleted: Vec<String>,
}

impl Ledger {
    fn put(&mut self, m: &CacheManager, e: &CacheEntry) -> Stored {
        let stored = m.put(e).unwrap();
        self.live.insert(e.key.clone(), e.clone());
        self.deleted.retain(|k| *k != e.key);
        stored
    }

    fn delete(&mut self, m: &CacheManager, key: &str) {
        assert!(m.delete(key), "{key} was held");
        self.live.remove(key);
        self.deleted.push(key.to_owned());
    }

    /// Every live entry is served as acknowledged; no deleted one is.
    fn assert_served(&self, m: &CacheManager, context: &str) {
        for (key, want) in &self.live {
            let got = m
                .get(key)
                .unwrap_or_else(|| panic!("{context}: acknowledged entry {key} lost"));
            assert_same_entry(&got, want, &format!("{context}: {key}"));
        }
        for key in &self.deleted {
            assert_eq!(m.get(key), None, "{context}: deleted {key} served");
        }
    }
}

/// `got` is `want` as far as the cache's contents go (use data aside).
fn assert_same_entry(got: &CacheEntry, want: &CacheEntry, context: &str) {
    assert_eq!(got.key, want.key, "{context}");
    assert_eq!(got.proxy_url, want.proxy_url, "{context}");
    assert_eq!(got.source, want.source, "{context}");
    assert_eq!(got.username, want.username, "{context}");
    assert_eq!(got.password, want.password, "{context}");
    assert_eq!(got.expires_at, want.expires_at, "{context}");
}

fn degraded_flags(m: &CacheManager) -> (bool, bool, bool) {
    let s = m.get_statistics();
    (s.l1_degraded, s.l2_degraded, s.l3_degraded)
}

fn only_degraded(target: Target) -> (bool, bool, bool) {
    (
        false,
        target.tier() == CacheTierType::L2,
        target.tier() == CacheTierType::L3,
    )
}

// ---------------------------------------------------------------------------------------------
// The scenario every fault goes through

/// A fault of a scenario.
trait Fault {
    /// Breaks the target (the manager runs; `before` was acknowledged by every tier).
    fn inflict(&mut self, switches: &Switches);
    /// Removes the fault.
    fn repair(&mut self, switches: &Switches);
    /// Whether the target still holds what it held before the fault once repaired (a removed
    /// database starts empty: the other tiers hold the entries).
    fn keeps_contents(&self) -> bool {
        true
    }
    /// Failed probes to see before repairing (the tier must stay degraded through them).
    fn failed_probes_to_watch(&self) -> u64 {
        3
    }
}

/// Runs one fault on `target` with the cache at `paths`.
fn scenario(target: Target, paths: &Paths, fault: &mut dyn Fault) {
    let ring = test_ring();
    let tier = target.tier();
    let context = format!("{target:?}");
    let (m, switches) = wrapped_manager(paths, target, &ring);
    let mut ledger = Ledger::default();
    let before: Vec<CacheEntry> = (0..8 * scale())
        .map(|i| entry(&format!("http://10.80.{}.{}:8080", i / 256, i % 256), "before"))
        .collect();
    for e in &before {
        assert_eq!(ledger.put(&m, e), ALL, "{context}: acknowledged by every tier");
    }

    fault.inflict(&switches);

    // Puts succeed without the target until it is degraded.
    for n in 0.. {
        assert!(n < 2000, "{context}: 2000 puts and the tier is not degraded");
        let e = entry(&format!("http://10.81.{}.{}:8080", n / 256, n % 256), "during");
        let stored = ledger.put(&m, &e);
        let without = target.without_target();
        assert!(
            stored.l1 && (stored.l2 || !without.l2) && (stored.l3 || !without.l3),
            "{context}: the other tiers store: {stored:?}"
        );
        if m.tier_status(tier) == TierStatus::Degraded {
            assert_eq!(
                stored, without,
                "{context}: the put that degraded the tier failed in it"
            );
            break;
        }
    }
    assert_eq!(degraded_flags(&m), only_degraded(target), "{context}");

    // Degraded: everything acknowledged is served by the other tiers.
    ledger.assert_served(&m, &format!("{context}: degraded"));
    // What the target misses: a delete and a replacement of entries it holds, a new entry.
    ledger.delete(&m, &before[0].key);
    let replaced = entry(&before[1].proxy_url, "replaced-while-degraded");
    assert_eq!(ledger.put(&m, &replaced), target.without_target(), "{context}");
    let new = entry("http://10.82.0.1:8080", "while-degraded");
    assert_eq!(ledger.put(&m, &new), target.without_target(), "{context}");

    // The probe fails as long as the fault lasts.
    let failed = switches.probes_failed();
    let watch = fault.failed_probes_to_watch();
    wait_until(&format!("{context}: {watch} failed probes"), || {
        switches.probes_failed() >= failed + watch
    });
    assert_eq!(
        m.tier_status(tier),
        TierStatus::Degraded,
        "{context}: probe still failing"
    );
    ledger.assert_served(&m, &format!("{context}: still degraded"));

    fault.repair(&switches);
    let ok = switches.probes_ok();
    wait_until(
        &format!("{context}: the tier serving, or {PROBES_TO_RECOVER} successful probes"),
        || m.tier_status(tier) == TierStatus::Serving || switches.probes_ok() >= ok + PROBES_TO_RECOVER,
    );
    assert_eq!(
        m.tier_status(tier),
        TierStatus::Serving,
        "{context}: still degraded after {} successful probes once the fault was removed",
        switches.probes_ok() - ok
    );
    assert_eq!(degraded_flags(&m), (false, false, false), "{context}");
    // It serves at once; the keys it missed are dropped from it right after.
    wait_until(&format!("{context}: the tier to drop what it missed"), || {
        m.missed_keys(tier) == 0
    });

    // The recovered tier does not hold what it missed, and holds what it was not told about.
    {
        let direct = paths.open_target(target, &ring);
        assert_eq!(direct.peek(&before[0].key).unwrap(), None, "{context}: deleted key");
        if let Some(stale) = direct.peek(&before[1].key).unwrap() {
            assert_eq!(stale.source, replaced.source, "{context}: replaced key");
        }
        if let Some(held) = direct.peek(&new.key).unwrap() {
            assert_same_entry(&held, &new, &format!("{context}: put while degraded"));
        }
        if fault.keeps_contents() {
            for e in &before[2..] {
                let held = direct.peek(&e.key).unwrap();
                assert_same_entry(
                    &held.unwrap_or_else(|| panic!("{context}: {} lost by the tier", e.key)),
                    e,
                    &format!("{context}: held before the fault"),
                );
            }
        }
    }
    ledger.assert_served(&m, &format!("{context}: recovered"));
    let after = entry("http://10.83.0.1:8080", "after");
    assert_eq!(
        ledger.put(&m, &after),
        ALL,
        "{context}: the recovered tier stores again"
    );
    m.close().unwrap();
    drop(m);

    // The next run (no wrapper, L1 empty) finds every acknowledged entry.
    let m = plain_manager(paths, target, &ring);
    ledger.assert_served(&m, &format!("{context}: next run"));
    assert_eq!(m.tier_status(tier), TierStatus::Serving, "{context}: next run");
    m.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Disk full, injected

/// The wrapper's switch.
struct InjectedFull;

impl Fault for InjectedFull {
    fn inflict(&mut self, switches: &Switches) {
        switches.full.store(true, Ordering::SeqCst);
    }

    fn repair(&mut self, switches: &Switches) {
        switches.full.store(false, Ordering::SeqCst);
    }
}

fn injected_disk_full(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    scenario(target, &Paths::under(dir.path()), &mut InjectedFull);
}

#[test]
fn jsonl_l2_disk_full_injected() {
    injected_disk_full(Target::JsonlL2);
}

#[test]
fn sqlite_l2_disk_full_injected() {
    injected_disk_full(Target::SqliteL2);
}

#[test]
fn l3_disk_full_injected() {
    injected_disk_full(Target::L3);
}

/// Three consecutive failed writes degrade a tier, whatever the backend's error for a full
/// disk, and reads succeeding in between do not hide them.
#[test]
fn three_failed_writes_degrade_with_reads_succeeding_in_between() {
    for target in [Target::JsonlL2, Target::SqliteL2, Target::L3] {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let ring = test_ring();
        let (m, switches) = wrapped_manager(&paths, target, &ring);
        let held = entry("http://10.84.0.1:8080", "held");
        assert_eq!(m.put(&held).unwrap(), ALL);
        switches.full.store(true, Ordering::SeqCst);
        for i in 0..3 {
            assert_eq!(m.tier_status(target.tier()), TierStatus::Serving, "{target:?}: {i}");
            let e = entry(&format!("http://10.84.1.{i}:8080"), "full");
            assert_eq!(m.put(&e).unwrap(), target.without_target(), "{target:?}");
            // Reads of the target succeed (L1 holds two entries: `held` is read below it).
            for j in 0..3 {
                let filler = entry(&format!("http://10.84.2.{j}:8080"), "filler");
                let _ = m.get(&filler.key);
            }
            assert!(m.get(&held.key).is_some(), "{target:?}");
        }
        assert_eq!(m.tier_status(target.tier()), TierStatus::Degraded, "{target:?}");
        switches.full.store(false, Ordering::SeqCst);
        wait_until(&format!("{target:?} serving"), || {
            m.tier_status(target.tier()) == TierStatus::Serving
        });
        m.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Disk full, real: a tmpfs filled up

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`; `None` when this machine does not let us.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { at: at.to_path_buf() }),
            other => {
                eprintln!("cannot mount a tmpfs at {} ({other:?})", at.display());
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.at).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// Fills the file system holding `dir` with `dir/filler`, to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 16, 1 << 12, 1] {
        let buf = vec![0x5a; chunk];
        loop {
            match file.write(&buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    // Full: one more byte in a new file is refused.
    let refused = std::fs::write(dir.join("one-more-byte"), b"x").unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::StorageFull, "{refused}");
    let _ = std::fs::remove_file(dir.join("one-more-byte"));
    path
}

/// The target's file system filled up, then the filler removed.
struct RealFull {
    target: Target,
    paths: Paths,
    mount: PathBuf,
    filler: Option<PathBuf>,
}

impl Fault for RealFull {
    fn inflict(&mut self, _: &Switches) {
        if self.target.sqlite() {
            // An empty WAL: every commit needs new space (a WAL reused after a checkpoint
            // would take commits into space it already has).
            let conn = rusqlite::Connection::open(self.paths.db(self.target)).unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        self.filler = Some(fill(&self.mount));
    }

    fn repair(&mut self, _: &Switches) {
        std::fs::remove_file(self.filler.take().unwrap()).unwrap();
    }
}

fn real_disk_full(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("tmpfs");
    let Some(tmpfs) = Tmpfs::mount(&mount, "4m") else {
        eprintln!("{target:?}: no tmpfs here: the real disk-full case is skipped (the injected one ran)");
        return;
    };
    // The target's files on the tmpfs, the other tier's outside it.
    let mut paths = Paths::under(dir.path());
    match target.tier() {
        CacheTierType::L3 => paths.l3_db = mount.join("l3").join("cache.db"),
        _ => paths.l2 = mount.join("l2"),
    }
    let mut fault = RealFull {
        target,
        paths: paths.clone(),
        mount: mount.clone(),
        filler: None,
    };
    scenario(target, &paths, &mut fault);
    if target == Target::JsonlL2 {
        // Appends cut short by the full disk are damaged lines at most: the directory opens.
        let tier = JsonlTier::open(&paths.l2, &CacheTierConfig::unbounded(), test_ring()).unwrap();
        let damage = tier.damage();
        assert_eq!(
            (damage.non_entry_lines, damage.invalid_entries, damage.misplaced_keys),
            (0, 0, 0),
            "{damage:?}"
        );
    }
    drop(tmpfs);
}

#[test]
fn jsonl_l2_disk_full_on_a_tmpfs() {
    real_disk_full(Target::JsonlL2);
}

#[test]
fn sqlite_l2_disk_full_on_a_tmpfs() {
    real_disk_full(Target::SqliteL2);
}

#[test]
fn l3_disk_full_on_a_tmpfs() {
    real_disk_full(Target::L3);
}

// ---------------------------------------------------------------------------------------------
// A database replaced by garbage while running

/// What happens to the garbage once the fault is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Afterwards {
    /// The database's bytes from before the fault are written back.
    Restored,
    /// The garbage file is deleted (with its `-wal` and `-shm`).
    Removed,
}

struct Garbage {
    db: PathBuf,
    afterwards: Afterwards,
    snapshot: Vec<u8>,
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Deterministic pseudo-random bytes.
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

impl Fault for Garbage {
    fn inflict(&mut self, _: &Switches) {
        // Everything committed is in the database file (an empty WAL), so that the snapshot is
        // the whole database.
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(conn);
        self.snapshot = std::fs::read(&self.db).unwrap();
        // Overwritten in place: every connection sees it.
        let mut file = std::fs::OpenOptions::new().write(true).open(&self.db).unwrap();
        file.write_all(&garbage(self.snapshot.len(), 3)).unwrap();
        file.sync_all().unwrap();
    }

    fn repair(&mut self, _: &Switches) {
        match self.afterwards {
            Afterwards::Restored => {
                let mut file = std::fs::OpenOptions::new().write(true).open(&self.db).unwrap();
                file.write_all(&self.snapshot).unwrap();
                file.sync_all().unwrap();
            }
            Afterwards::Removed => {
                for suffix in ["", "-wal", "-shm"] {
                    match std::fs::remove_file(sidecar(&self.db, suffix)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }

    fn keeps_contents(&self) -> bool {
        self.afterwards == Afterwards::Restored
    }

    /// One: a probe of a garbage database waits out the pool's connection timeout (5 s)
    /// before it fails.
    fn failed_probes_to_watch(&self) -> u64 {
        1
    }
}

fn database_replaced_by_garbage(target: Target, afterwards: Afterwards) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let mut fault = Garbage {
        db: paths.db(target),
        afterwards,
        snapshot: Vec::new(),
    };
    scenario(target, &paths, &mut fault);
}

#[test]
fn sqlite_l2_database_replaced_by_garbage_then_restored() {
    database_replaced_by_garbage(Target::SqliteL2, Afterwards::Restored);
}

#[test]
fn l3_database_replaced_by_garbage_then_restored() {
    database_replaced_by_garbage(Target::L3, Afterwards::Restored);
}

#[test]
fn sqlite_l2_database_replaced_by_garbage_then_removed() {
    database_replaced_by_garbage(Target::SqliteL2, Afterwards::Removed);
}

#[test]
fn l3_database_replaced_by_garbage_then_removed() {
    database_replaced_by_garbage(Target::L3, Afterwards::Removed);
}

/// JSONL shards replaced by garbage (renamed over, or overwritten in place) while the manager
/// runs: damage, not a tier failure. The tier keeps serving (counting the damage), every
/// acknowledged entry is served from L3 and copied back into L2 by the lookup, new writes go
/// after the garbage; a compaction keeps the garbage (what the cache cannot read is never
/// dropped by it), the operator's `remove_unreadable` removes it, and the next run serves
/// everything.
#[test]
fn jsonl_shards_replaced_by_garbage_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let ring = test_ring();
    let target = Target::JsonlL2;
    let m = plain_manager(&paths, target, &ring);
    let mut ledger = Ledger::default();
    for i in 0..40 {
        let e = entry(&format!("http://10.85.0.{i}:8080"), "before");
        assert_eq!(ledger.put(&m, &e), ALL);
    }
    // Every shard replaced: even ones by a rename, odd ones in place.
    for shard in 0..16 {
        let path = paths.l2.join(shard_file_name(shard));
        let len = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
        let junk = garbage(len.max(3000) + shard * 17, shard as u64 + 1);
        if shard % 2 == 0 {
            let tmp = paths.l2.join(format!("garbage-{shard}"));
            std::fs::write(&tmp, &junk).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        } else if path.exists() {
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all(&junk).unwrap();
        } else {
            std::fs::write(&path, &junk).unwrap();
        }
    }
    {
        let direct = JsonlTier::open(&paths.l2, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
        assert_eq!(direct.size().unwrap(), 0, "no entry survives the garbage");
        assert!(direct.damage().undecodable_lines >= 16, "{:?}", direct.damage());
    }
    ledger.assert_served(&m, "served from L3");
    assert_eq!(
        m.tier_status(CacheTierType::L2),
        TierStatus::Serving,
        "damage is no failure"
    );
    assert_eq!(m.get_statistics().l2_stats.evictions_corruption, 0);
    // New writes go to both tiers, after the garbage.
    for i in 0..20 {
        let e = entry(&format!("http://10.85.1.{i}:8080"), "during");
        assert_eq!(ledger.put(&m, &e), ALL);
    }
    ledger.delete(&m, &pw_cache::generate_cache_key("http://10.85.0.0:8080"));
    {
        let direct = JsonlTier::open(&paths.l2, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
        for (key, want) in &ledger.live {
            // The lookups above copied the L3 entries back into L2.
            let held = direct
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{key} not back in L2"));
            assert_same_entry(&held, want, key);
        }
    }
    m.close().unwrap();
    drop(m);
    // A compaction keeps the garbage in place; the operator's removal drops it.
    {
        let direct = JsonlTier::open(&paths.l2, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
        let garbage = direct.damage().undecodable_lines;
        assert!(garbage >= 16, "{:?}", direct.damage());
        direct.compact().unwrap();
        assert_eq!(
            direct.damage().undecodable_lines,
            garbage,
            "compaction keeps unreadable lines"
        );
        assert_eq!(direct.remove_unreadable().unwrap() as u64, garbage);
        assert_eq!(direct.damage(), JsonlDamage::default(), "removed");
    }
    let direct = JsonlTier::open(&paths.l2, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    assert!(direct.damage().is_clean(), "{:?}", direct.damage());
    assert_eq!(direct.size().unwrap(), ledger.live.len());
    drop(direct);
    let m = plain_manager(&paths, target, &ring);
    ledger.assert_served(&m, "next run");
    m.close().unwrap();
}
