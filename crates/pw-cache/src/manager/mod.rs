//! [`CacheManager`]: the three tiers composed into one cache.
//!
//! # Concurrency
//!
//! Every operation on a key holds that key's lock ([`crate::key_locks`]) for its whole length,
//! across every tier it touches: a get that promotes, a put, a delete, a health invalidation
//! of one key never interleave, so no promotion is torn and no update is lost. No lock is
//! held across the disk I/O of another key: an entry that L1 evicts while a put of another key
//! holds that key's lock is *queued* for demotion, and written to L2/L3 after the lock is
//! released, under its own key's lock (or by the next operation on it, whichever comes first).
//! Statistics are atomics; the tiers do their own locking.
//!
//! # Access data and demotion
//!
//! A hit updates `access_count` and `last_accessed` in L1 only (no disk write on a hit): the
//! entry is *dirty* (L1 holds use the tiers below have not seen), which L1 keeps as the entry's
//! flag ([`MemoryTier::put_flagged`]), set under the shard lock the hit takes anyway, so a hit
//! looks up and locks nothing more. When L1 evicts a dirty
//! entry, its use (an [`AccessRecord`]: count, last access, `evicted_from_l1`) is queued, and
//! recorded in L2/L3 in batches of [`USE_BATCH`], one transaction of three-column `UPDATE`s per
//! tier ([`CacheTier::record_accesses`]), by a background thread that the operation filling a
//! batch wakes (so no get or put waits for a batch; if the thread falls
//! `USE_BACKLOG_BATCHES` batches behind, the operation that queues more writes them itself),
//! and on [`CacheManager::flush`] and close (which also record the use of dirty entries still
//! in L1).
//! Until then a lookup that misses L1 applies the queued use to what it reads below, so no use
//! is counted twice or lost while the process runs. An entry L1 evicts that is not dirty is
//! not written at all: L2/L3 already hold it as it was put. (The reference rewrites every
//! evicted entry, credentials re-encrypted, into both tiers.)
//!
//! What is deferred is use only, never an entry: a put is in L2/L3 when it returns. A crash
//! loses at most the use of `USE_BACKLOG_BATCHES + 1` batches of [`USE_BATCH`] evicted entries
//! (their counts and last access times are older in L2/L3). A put or delete of a key whose use
//! is in the batch being written waits for that batch, so older use never lands on what it
//! writes.
//!
//! # Degradation
//!
//! A tier fails [`pw_cache_tiers::FAILURE_THRESHOLD`] times in a row: it is flagged degraded
//! and skipped. A background thread (started only when needed) probes it every
//! [`CacheManagerBuilder::probe_interval`] with [`CacheTier::probe`], which writes; when a probe
//! succeeds the tier serves again at once (a clear it missed is replayed first). The keys
//! written or deleted while it was skipped (its copies of them are stale) are then removed from
//! it, each only if no other process wrote it since
//! ([`CacheTier::delete_if_unchanged_since`]); until a key's copy is removed or rewritten,
//! lookups of that key skip the tier, so a stale or deleted entry is never served from a
//! recovered tier, and a host that keeps writing is not kept out by its own new misses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pw_cache_crypto::{DEFAULT_KEY_FILE_NAME, EnvKeys, FernetKey, KeyRing, Trust};
use pw_cache_model::timestamp::now_utc;
use pw_cache_model::{
    AccessRecord, CacheConfig, CacheEntry, CacheStatistics, CacheTierType, HealthStatus, L2BackendType, L3BackendType,
    OffsetDateTime,
};
use pw_cache_tiers::{
    AccessOrder, CacheTier, FailureMark, JsonlTier, MemoryTier, SqliteL2Tier, SqliteL3Tier, TierError,
};

use crate::counters::{Counters, StatisticsBreakdown, bump};
use crate::error::ManagerError;
use crate::key_locks::KeyLocks;
use crate::sync::{KeyedSet, lock, try_lock, wait_timeout_while, wait_while};

mod export;
mod inspect;
#[cfg(feature = "redis")]
mod remote;
mod ttl;

pub use export::{ExportCredentials, ExportOptions, ExportReport};
pub use inspect::{CacheInspection, RotationReport, TierInspection, UnreadableRemoval};
pub use ttl::{CleanupReport, TtlManager};

/// Evicted entries' use is recorded in L2/L3 in batches of this many, by a background thread
/// (see `docs/architecture.md`).
pub const USE_BATCH: usize = 8192;

/// How often a degraded tier is probed, unless the builder says otherwise.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Keys remembered per tier while it is degraded; beyond this the tier is cleared on recovery
/// (of what was written before the overflow) instead of having each key removed (a cache may
/// lose entries, never serve stale ones).
const MAX_RESYNC_KEYS: usize = 100_000;

thread_local! {
    /// Set while this thread promotes an entry into L1, so the eviction callback (which runs
    /// on this thread) can tell a promotion's eviction from a put's.
    static PROMOTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// In which tiers a put stored the entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// L1 (memory) stored it.
    pub l1: bool,
    /// L2 (disk) stored it.
    pub l2: bool,
    /// L3 (SQLite) stored it.
    pub l3: bool,
}

/// What [`CacheManager::invalidate_by_health`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthInvalidation {
    /// No live entry under the key (absent or expired).
    NotFound,
    /// The entry was marked unhealthy with this many failures and kept (below the threshold,
    /// or health invalidation is off).
    Marked {
        /// `failure_count` after this failure.
        failure_count: u64,
    },
    /// The entry reached the threshold and was removed from every tier.
    Evicted {
        /// `failure_count` after this failure.
        failure_count: u64,
    },
}

/// How a tier is doing, as [`CacheManager::tier_status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierStatus {
    /// In use.
    Serving,
    /// Disabled by the configuration.
    Disabled,
    /// Skipped after repeated failures, waiting for a probe to succeed.
    Degraded,
}

/// What a degraded tier missed: keys written or deleted while it was skipped (its copies are
/// stale), each with when it last missed one (the system clock, as the tiers stamp
/// `updated_at`), or a clear (and when).
#[derive(Debug, Default)]
struct Resync {
    keys: HashMap<String, OffsetDateTime>,
    clear_all: bool,
    /// When the clear (or the overflow of `keys` standing for one) was last missed.
    cleared_at: Option<OffsetDateTime>,
}

/// A disk tier with the manager's view of its state.
pub(crate) struct TierSlot {
    pub(crate) tier: Box<dyn CacheTier>,
    pub(crate) kind: CacheTierType,
    /// Its files are on this host where the config says: opened from the config, not given
    /// to the builder, and not a Redis L3.
    pub(crate) configured: bool,
    degraded: AtomicBool,
    /// Consecutive failed writes (puts, deletes, clears). Reads succeeding in between do not
    /// reset it, so a tier that can be read but not written (a read-only directory) degrades.
    write_failures: AtomicU32,
    resync: Mutex<Resync>,
    /// Whether `resync` holds anything (read without the mutex on every lookup).
    resync_pending: AtomicBool,
}

impl TierSlot {
    fn new(tier: Box<dyn CacheTier>, kind: CacheTierType, configured: bool) -> Self {
        Self {
            tier,
            kind,
            configured,
            degraded: AtomicBool::new(false),
            write_failures: AtomicU32::new(0),
            resync: Mutex::new(Resync::default()),
            resync_pending: AtomicBool::new(false),
        }
    }

    pub(crate) fn serving(&self) -> bool {
        !self.degraded.load(Ordering::Acquire)
    }

    /// Whether this tier's copy of `key` may be stale (it missed a write or delete of it).
    pub(crate) fn stale(&self, key: &str) -> bool {
        if !self.resync_pending.load(Ordering::Acquire) {
            return false;
        }
        let resync = lock(&self.resync);
        resync.clear_all || resync.keys.contains_key(key)
    }

    /// The tier missed a write or delete of `key`.
    fn note_stale(&self, key: &str) {
        let now = now_utc();
        let mut resync = lock(&self.resync);
        if resync.clear_all {
            resync.cleared_at = Some(now);
        } else if resync.keys.len() >= MAX_RESYNC_KEYS && !resync.keys.contains_key(key) {
            resync.keys = HashMap::new();
            resync.clear_all = true;
            resync.cleared_at = Some(now);
        } else {
            resync.keys.insert(key.to_owned(), now);
        }
        self.resync_pending.store(true, Ordering::Release);
    }

    /// The tier missed a clear.
    fn note_cleared(&self) {
        let mut resync = lock(&self.resync);
        resync.keys = HashMap::new();
        resync.clear_all = true;
        resync.cleared_at = Some(now_utc());
        self.resync_pending.store(true, Ordering::Release);
    }

    /// The tier now holds the current state of `key`.
    fn note_fresh(&self, key: &str) {
        if self.resync_pending.load(Ordering::Acquire) {
            lock(&self.resync).keys.remove(key);
        }
    }
}

/// Use that L1 saw of entries it evicted, waiting to be recorded in L2/L3 in batches of
/// [`USE_BATCH`] ([`CacheTier::record_accesses`]: one transaction of `UPDATE`s of three
/// columns, instead of rewriting each entry).
#[derive(Default)]
struct EvictedUse {
    log: Mutex<UseLog>,
    /// `log.queued.len()`, stored under `log`'s lock by every change: read without the lock
    /// by [`Inner::hand_off_evicted_use`] after every get and put.
    queued_len: AtomicUsize,
    /// Held by the one thread writing a batch (others do not wait for it: they skip).
    writer: Mutex<()>,
}

#[derive(Default)]
struct UseLog {
    queued: UseSet,
    /// The batch being written: still visible to lookups until it is. Shared with the writer,
    /// which copies and sorts it without holding the log's lock.
    in_flight: Arc<UseSet>,
}

/// Access records, one per key, found by key.
type UseSet = KeyedSet<Queued>;

/// An [`AccessRecord`] in a [`UseSet`], hashed and compared by its key (as a `str`, so that
/// lookups by `&str` find it): the key is held once, in the record, not copied into a map key
/// beside it (that copy was 1.3 % of the SQLite manager's mixed phase).
struct Queued(AccessRecord);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Queued {}

impl std::hash::Hash for Queued {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` requires the same hash.
        self.0.key.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Queued {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl EvictedUse {
    /// Records how many are queued (`log` is locked by the caller).
    fn note_len(&self, log: &UseLog) {
        self.queued_len.store(log.queued.len(), Ordering::Relaxed);
    }

    /// How many are queued, without taking the lock (a moment ago).
    fn queued(&self) -> usize {
        self.queued_len.load(Ordering::Relaxed)
    }

    /// Queues `record` (a later record of the same key replaces an earlier one).
    fn queue(&self, record: AccessRecord) {
        let mut log = lock(&self.log);
        match log.queued.get(record.key.as_str()) {
            Some(queued) if queued.0.last_accessed > record.last_accessed => {}
            Some(_) => {
                log.queued.replace(Queued(record));
            }
            None => {
                log.queued.insert(Queued(record));
                self.note_len(&log);
            }
        }
    }

    /// The use of `key` not yet recorded below, if any (removed from the queue; a copy when it
    /// is being written).
    fn take(&self, key: &str) -> Option<AccessRecord> {
        let mut log = lock(&self.log);
        match log.queued.take(key) {
            Some(queued) => {
                self.note_len(&log);
                Some(queued.0)
            }
            None => log.in_flight.get(key).map(|in_flight| in_flight.0.clone()),
        }
    }

    /// Drops what is noted of `key` (it was replaced or deleted). When the batch being written
    /// holds it, waits for that batch, so that its older use cannot land on what the caller
    /// writes next (and the batch is no longer visible once it has landed). The caller holds
    /// the key's lock, so no lookup of `key` sees the batch in the meantime.
    fn forget(&self, key: &str) {
        let in_flight = {
            let mut log = lock(&self.log);
            if log.queued.remove(key) {
                self.note_len(&log);
            }
            log.in_flight.contains(key)
        };
        if in_flight {
            self.wait_for_writer();
        }
    }

    /// Returns once no batch is being written (the writer holds no key lock, so a caller
    /// holding some may wait).
    fn wait_for_writer(&self) {
        drop(lock(&self.writer));
    }

    /// Drops everything noted, after the batch being written (if any) has landed.
    fn clear(&self) {
        self.wait_for_writer();
        let mut log = lock(&self.log);
        let drained = (std::mem::take(&mut log.queued), std::mem::take(&mut log.in_flight));
        self.note_len(&log);
        drop(log);
        drop(drained);
    }
}

/// The background probe of degraded tiers: a thread that runs only while something needs it.
#[derive(Default)]
struct Maintenance {
    running: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The thread that records evicted entries' use ([`EvictedUse`]) in L2/L3, so that the
/// operation that fills a batch does not wait for its thousands of `UPDATE`s: started by the
/// first full batch, stopped by close and drop.
#[derive(Default)]
struct UseWriter {
    thread: Mutex<Option<JoinHandle<()>>>,
    signal: Arc<UseWriterSignal>,
}

#[derive(Default)]
struct UseWriterSignal {
    state: Mutex<UseWriterState>,
    wake: Condvar,
}

#[derive(Default)]
struct UseWriterState {
    /// A full batch is queued.
    pending: bool,
    stop: bool,
}

/// Full batches of evicted entries' use that may wait for the writer thread; beyond, the
/// operation that queues more writes them itself (after the batch being written), so the
/// queue stays bounded when the disk is slower than L1's evictions.
const USE_BACKLOG_BATCHES: usize = 4;

/// The shared state of a manager (the background threads hold a `Weak` of it).
pub(crate) struct Inner {
    pub(crate) config: CacheConfig,
    pub(crate) ring: Arc<KeyRing>,
    pub(crate) l1: Option<MemoryTier>,
    pub(crate) l2: Option<TierSlot>,
    pub(crate) l3: Option<TierSlot>,
    pub(crate) counters: Arc<Counters>,
    locks: KeyLocks,
    evicted_use: Arc<EvictedUse>,
    maintenance: Maintenance,
    use_writer: UseWriter,
    probe_interval: Duration,
    clock: Option<Clock>,
    closed: AtomicBool,
    weak_self: Weak<Inner>,
    /// The subscription to a shared L3's changes (feature `redis`), dropped (its thread
    /// stopped) by `close` or the manager's drop, on the caller's thread.
    remote: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// A three-level proxy cache: L1 memory, L2 disk (JSONL shards or SQLite), L3 SQLite.
///
/// Built from a [`CacheConfig`] with [`CacheManager::open`] (or [`CacheManager::builder`] for
/// keys, custom tiers and the probe interval). Any number of threads may share it (`&self`
/// everywhere; wrap it in an `Arc`). See `docs/architecture.md` for the concurrency, demotion
/// and degradation design, and `docs/migrating-from-proxywhirl.md` for every
/// difference from proxywhirl 0.3.3's `CacheManager`.
///
/// Dropping the manager stops its background threads and flushes L1's access data to the
/// disk tiers (errors are logged); [`CacheManager::close`] does the same and reports errors.
pub struct CacheManager {
    pub(crate) inner: Arc<Inner>,
    ttl: TtlManager,
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("l1", &self.tier_status(CacheTierType::L1))
            .field("l2", &self.tier_status(CacheTierType::L2))
            .field("l2_backend", &self.inner.config.l2_backend())
            .field("l3", &self.tier_status(CacheTierType::L3))
            .field("key_origin", self.inner.ring.origin())
            .finish_non_exhaustive()
    }
}

/// Credential tokens sampled from each disk tier when a manager opens, to check its keys.
pub const KEY_CHECK_SAMPLE: usize = 32;

/// What [`CacheManagerBuilder::open`] checks of the key ring before it uses it: a sample of
/// up to [`KEY_CHECK_SAMPLE`] stored credential tokens per disk tier is decrypted (and
/// forgotten) with each key of the ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyCheck {
    /// Refuse to open when tokens were sampled and no key of the ring opens any
    /// ([`ManagerError::WrongKey`]), or when only the key file's key opens them while a key is
    /// configured ([`ManagerError::KeyFileKeyOnly`]). The default.
    #[default]
    Strict,
    /// As `Strict`, but the configured key is new on purpose (a rotation away from the key
    /// file): tokens that only the key file's key opens are fine.
    NewKey,
    /// No check: open whatever the sample says. Entries no key opens are then unreadable, and
    /// left in place (never removed by lookups, expiry, eviction, health marks, export or
    /// close; see `docs/reliability.md`).
    Skip,
}

/// Where the manager reads the time (see [`CacheManagerBuilder::clock`]).
type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Builds a [`CacheManager`]: where keys come from, custom tiers, the probe interval.
#[must_use]
pub struct CacheManagerBuilder {
    clock: Option<Clock>,
    config: CacheConfig,
    env: Option<EnvKeys>,
    key_file: Option<PathBuf>,
    ring: Option<Arc<KeyRing>>,
    l2: Option<Box<dyn CacheTier>>,
    l3: Option<Box<dyn CacheTier>>,
    probe_interval: Duration,
    l1_access_order: AccessOrder,
    key_check: KeyCheck,
    trust: Trust,
}

impl CacheManagerBuilder {
    /// How the directories the cache uses are checked before anything in them is read: the L2
    /// directory, the key file's directory, the L3 database's directory (default
    /// [`Trust::Strict`]: owned by this user or root, not writable by group or others). Every
    /// policy refuses a directory or a key file owned by another user; see
    /// [`pw_cache_crypto::trust`] and `docs/security.md`.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// What to check of the keys against the stored credentials before opening (default
    /// [`KeyCheck::Strict`]: a wrong key is refused before any entry is read or written).
    pub fn key_check(mut self, check: KeyCheck) -> Self {
        self.key_check = check;
        self
    }

    /// The environment's keys to use instead of the process's
    /// ([`EnvKeys::from_process`]): for tests, or a caller that reads its own environment.
    pub fn env_keys(mut self, env: EnvKeys) -> Self {
        self.env = Some(env);
        self
    }

    /// Where the key file is kept when neither the config nor the environment has a key
    /// (default: `pw-cache.key` in `l2_cache_dir`, or beside the L3 database when L2 is
    /// disabled).
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Uses this key ring, ignoring the config's key, the environment and the key file.
    pub fn key_ring(mut self, ring: Arc<KeyRing>) -> Self {
        self.ring = Some(ring);
        self
    }

    /// Uses `tier` as L2 instead of opening the configured backend (it must be built with the
    /// same key ring as the manager's: see [`CacheManager::key_ring`]).
    pub fn l2_tier(mut self, tier: Box<dyn CacheTier>) -> Self {
        self.l2 = Some(tier);
        self
    }

    /// Uses `tier` as L3 instead of opening the SQLite database.
    pub fn l3_tier(mut self, tier: Box<dyn CacheTier>) -> Self {
        self.l3 = Some(tier);
        self
    }

    /// Reads "now" from `clock` instead of the system clock (UTC), for expiry, access times
    /// and warm fetch times: for tests and simulations. The tiers' own bookkeeping (eviction
    /// order) keeps the system clock.
    pub fn clock(mut self, clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How often a degraded tier is probed (default [`DEFAULT_PROBE_INTERVAL`]).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// How L1 orders the hits of different threads for its eviction policy (default
    /// [`AccessOrder::PerThread`]: each thread's hits in their order, which with one thread is
    /// exactly proxywhirl's LRU order). [`AccessOrder::Exact`] also keeps the order of hits
    /// made by different threads between two of L1's batch applications, at a cost to
    /// multi-threaded hits; see [`pw_cache_tiers::memory`], "Access order".
    pub fn l1_access_order(mut self, order: AccessOrder) -> Self {
        self.l1_access_order = order;
        self
    }

    /// Resolves the keys, opens the enabled tiers and starts the background cleaner when the
    /// config enables it.
    pub fn open(self) -> Result<CacheManager, ManagerError> {
        let config = self.config;
        let l2_enabled = config.l2_config().enabled;
        let l3_enabled = config.l3_config().enabled;
        // Before the keys: the default key file lives in the L2 directory, and a "directory"
        // that is a file would otherwise be reported as a key-file error.
        if l2_enabled && self.l2.is_none() {
            let dir = config.l2_cache_dir();
            let not_dir = match std::fs::metadata(dir) {
                Ok(meta) => !meta.is_dir(),
                // A path under a regular file.
                Err(e) => e.kind() == std::io::ErrorKind::NotADirectory,
            };
            if not_dir {
                return Err(ManagerError::OpenTier {
                    tier: CacheTierType::L2,
                    source: TierError::Io {
                        op: "use cache directory",
                        path: dir.to_path_buf(),
                        source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                    },
                });
            }
        }
        let ring = match self.ring {
            Some(ring) => ring,
            None if !l2_enabled && !l3_enabled => {
                // Nothing is written anywhere: a key for this process is all that is needed.
                Arc::new(KeyRing::new(FernetKey::generate(), []))
            }
            None => {
                let key_file = self.key_file.unwrap_or_else(|| default_key_file(&config));
                let env = self.env.unwrap_or_else(EnvKeys::from_process);
                Arc::new(
                    KeyRing::resolve_trusting(config.encryption_key(), &env, &key_file, self.trust)
                        .map_err(ManagerError::Keys)?,
                )
            }
        };
        let open_err = |tier| move |source| ManagerError::OpenTier { tier, source };
        let l2 = match (l2_enabled, self.l2) {
            (false, _) => None,
            (true, Some(tier)) => Some((tier, false)),
            (true, None) => Some((
                match config.l2_backend() {
                    L2BackendType::Jsonl => Box::new(
                        JsonlTier::open_trusting(
                            config.l2_cache_dir(),
                            config.l2_config(),
                            Arc::clone(&ring),
                            self.trust,
                        )
                        .map_err(open_err(CacheTierType::L2))?,
                    ) as Box<dyn CacheTier>,
                    L2BackendType::Sqlite => Box::new(
                        SqliteL2Tier::open_trusting(
                            config.l2_cache_dir(),
                            config.l2_config(),
                            Arc::clone(&ring),
                            self.trust,
                        )
                        .map_err(open_err(CacheTierType::L2))?,
                    ),
                },
                true,
            )),
        };
        #[cfg(feature = "redis")]
        let mut redis_l3 = None;
        let l3 = match (l3_enabled, self.l3) {
            (false, _) => None,
            (true, Some(tier)) => Some((tier, false)),
            (true, None) => match config.l3_backend() {
                L3BackendType::Sqlite => Some((
                    Box::new(
                        SqliteL3Tier::open_trusting(
                            config.l3_database_path(),
                            config.l3_config(),
                            Arc::clone(&ring),
                            self.trust,
                        )
                        .map_err(open_err(CacheTierType::L3))?,
                    ) as Box<dyn CacheTier>,
                    true,
                )),
                #[cfg(feature = "redis")]
                L3BackendType::Redis => {
                    redis_l3 = Some(remote::open_l3(&config, &ring)?);
                    None
                }
                #[cfg(not(feature = "redis"))]
                L3BackendType::Redis => return Err(ManagerError::RedisFeatureMissing),
            },
        };
        {
            let mut sampled: Vec<(CacheTierType, &dyn CacheTier)> = Vec::new();
            if let Some((tier, _)) = &l2 {
                sampled.push((CacheTierType::L2, &**tier));
            }
            if let Some((tier, _)) = &l3 {
                sampled.push((CacheTierType::L3, &**tier));
            }
            #[cfg(feature = "redis")]
            if let Some(tier) = &redis_l3 {
                sampled.push((CacheTierType::L3, tier));
            }
            if let Err(e) = check_keys(&ring, &sampled, self.key_check) {
                // A key file this open created encrypted nothing: it goes with the refusal.
                if let pw_cache_crypto::KeyOrigin::KeyFile { path, created: true } = ring.origin() {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
        }
        let counters = Arc::new(Counters::default());
        let evicted_use = Arc::new(EvictedUse::default());
        let has_lower = l2.is_some() || l3.is_some();
        let l1 = config.l1_config().enabled.then(|| {
            let counters = Arc::clone(&counters);
            let evicted_use = Arc::clone(&evicted_use);
            // Under L1's shard lock: the use is queued before anyone can see the entry gone from
            // L1, and a hit (which flags the entry under the same lock) is never missed.
            let tier = MemoryTier::new(config.l1_config()).with_access_order(self.l1_access_order);
            tier.with_locked_eviction_sink(move |entry, used| {
                let l1 = counters.tier(CacheTierType::L1);
                bump(&l1.evictions_lru, 1);
                if PROMOTING.get() {
                    bump(&counters.promotion_evictions, 1);
                }
                if has_lower {
                    bump(&counters.demotions, 1);
                    // Not flagged: L2/L3 hold the entry as it was put, nothing to write.
                    if used {
                        evicted_use.queue(AccessRecord::of(entry, true));
                    }
                }
            })
        });
        let interval = Duration::from_secs(config.cleanup_interval_seconds());
        let background = config.enable_background_cleanup();
        #[cfg_attr(not(feature = "redis"), allow(unused_mut, reason = "set only by the Redis L3"))]
        let mut remote_failure = None;
        let inner = Arc::new_cyclic(|weak_self| {
            #[cfg_attr(not(feature = "redis"), allow(unused_mut, reason = "set only by the Redis L3"))]
            let mut l3 = l3.map(|(t, configured)| TierSlot::new(t, CacheTierType::L3, configured));
            #[cfg_attr(not(feature = "redis"), allow(unused_mut, reason = "set only by the Redis L3"))]
            let mut remote: Option<Box<dyn std::any::Any + Send>> = None;
            #[cfg(feature = "redis")]
            if let Some(tier) = redis_l3 {
                match remote::subscribe(&tier, weak_self.clone()) {
                    Ok(subscription) => remote = Some(Box::new(subscription)),
                    Err(e) => remote_failure = Some(e),
                }
                // Not `configured`: it has no files on this host.
                l3 = Some(TierSlot::new(Box::new(tier), CacheTierType::L3, false));
            }
            Inner {
                config,
                ring,
                l1,
                l2: l2.map(|(t, configured)| TierSlot::new(t, CacheTierType::L2, configured)),
                l3,
                counters,
                locks: KeyLocks::new(),
                evicted_use,
                maintenance: Maintenance::default(),
                use_writer: UseWriter::default(),
                probe_interval: self.probe_interval,
                clock: self.clock,
                closed: AtomicBool::new(false),
                weak_self: weak_self.clone(),
                remote: Mutex::new(remote),
            }
        });
        if let Some(e) = remote_failure {
            return Err(e);
        }
        let ttl = TtlManager::new(Arc::downgrade(&inner), interval);
        if background {
            ttl.start();
        }
        Ok(CacheManager { inner, ttl })
    }
}

/// Checks `ring` against a sample of the credential tokens `tiers` hold (see [`KeyCheck`]).
fn check_keys(ring: &KeyRing, tiers: &[(CacheTierType, &dyn CacheTier)], check: KeyCheck) -> Result<(), ManagerError> {
    if check == KeyCheck::Skip {
        return Ok(());
    }
    let mut tokens = Vec::new();
    let mut names = Vec::new();
    for (kind, tier) in tiers {
        match tier.credential_sample(KEY_CHECK_SAMPLE) {
            Ok(sample) if !sample.is_empty() => {
                names.push(kind.to_string().to_uppercase());
                tokens.extend(sample);
            }
            Ok(_) => {}
            // A tier that cannot be read now is the degradation logic's business, not a key's.
            Err(e) => tracing::warn!(tier = %kind, error = %e, "could not sample credentials to check the key"),
        }
    }
    let result = ring.check_sample(&tokens);
    if result.sampled == 0 || result.opened > 0 {
        return Ok(());
    }
    let tiers = names.join(" and ");
    let origin = ring.origin().to_string();
    if result.opened_by_key_file_only > 0 {
        if check == KeyCheck::NewKey {
            return Ok(());
        }
        let key_file = ring.key_file_previous().map(Path::to_path_buf).unwrap_or_default();
        return Err(ManagerError::KeyFileKeyOnly {
            origin,
            key_file,
            sampled: result.sampled,
            tiers,
        });
    }
    Err(ManagerError::WrongKey {
        origin,
        previous: ring.len() - 1,
        sampled: result.sampled,
        tiers,
    })
}

/// Where the manager keeps its key file for `config` when no key is configured:
/// `pw-cache.key` in the L2 directory, or beside the L3 database when L2 is disabled.
pub fn default_key_file(config: &CacheConfig) -> PathBuf {
    if config.l2_config().enabled {
        config.l2_cache_dir().join(DEFAULT_KEY_FILE_NAME)
    } else {
        config
            .l3_database_path()
            .parent()
            .unwrap_or(Path::new("."))
            .join(DEFAULT_KEY_FILE_NAME)
    }
}

impl CacheManager {
    /// A manager for `config`: keys from the config, else the environment
    /// (`PROXYWHIRL_CACHE_ENCRYPTION_KEY`, previous keys in `PROXYWHIRL_CACHE_KEY_PREVIOUS`),
    /// else the key file (see [`CacheManagerBuilder::key_file`]); the enabled tiers opened.
    pub fn open(config: CacheConfig) -> Result<Self, ManagerError> {
        Self::builder(config).open()
    }

    /// A builder, for more than the config says.
    pub fn builder(config: CacheConfig) -> CacheManagerBuilder {
        CacheManagerBuilder {
            clock: None,
            config,
            env: None,
            key_file: None,
            trust: Trust::Strict,
            ring: None,
            l2: None,
            l3: None,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            l1_access_order: AccessOrder::default(),
            key_check: KeyCheck::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The key ring credentials are encrypted with (its origin says where the key came from).
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.inner.ring
    }

    /// The reference's cache key of a proxy URL ([`pw_cache_model::generate_cache_key`]).
    pub fn generate_cache_key(proxy_url: &str) -> String {
        pw_cache_model::generate_cache_key(proxy_url)
    }

    /// A new entry for `proxy_url` from `source`, with the TTL the config gives that source
    /// (`per_source_ttl`, else `default_ttl_seconds`); key generated from the URL.
    pub fn new_entry(&self, proxy_url: &str, source: &str) -> Result<CacheEntry, ManagerError> {
        CacheEntry::new_at(
            proxy_url,
            source,
            self.inner.config.ttl_for_source(source),
            self.inner.now(),
        )
        .map_err(|e| ManagerError::InvalidEntry {
            key: pw_cache_model::generate_cache_key(proxy_url),
            reason: e.to_string(),
        })
    }

    /// The live entry under `key`, looked up in L1, then L2, then L3; a hit below L1 is
    /// promoted to the tiers above. A hit counts as a use (`access_count + 1`,
    /// `last_accessed = now`). An expired entry is removed from every tier and the lookup is a
    /// miss. Tier failures and unreadable entries are misses of that tier (counted, logged).
    pub fn get(&self, key: &str) -> Option<CacheEntry> {
        let found = self.inner.get(key);
        self.inner.hand_off_evicted_use();
        found
    }

    /// Stores `entry` under `entry.key` in every enabled tier; succeeds when at least one
    /// stored it, and says which.
    ///
    /// Refused with [`ManagerError::InvalidEntry`], nothing stored: an empty key, and a
    /// `proxy_url` holding credentials (`scheme://user:pass@host`, see
    /// [`pw_cache_model::proxy_url_has_userinfo`]), which would reach the disk in plaintext.
    pub fn put(&self, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        let stored = self.inner.put(entry);
        self.inner.hand_off_evicted_use();
        stored
    }

    /// [`CacheManager::put`] with the reference's signature: `key` must be `entry.key`
    /// ([`ManagerError::KeyMismatch`] otherwise; nothing is stored).
    pub fn put_with_key(&self, key: &str, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        if key != entry.key {
            return Err(ManagerError::KeyMismatch {
                argument: key.to_owned(),
                entry_key: entry.key.clone(),
            });
        }
        self.put(entry)
    }

    /// Removes `key` from every tier; whether any tier held it.
    pub fn delete(&self, key: &str) -> bool {
        if self.inner.is_closed() {
            return false;
        }
        let _guard = self.inner.locks.lock(key);
        self.inner.delete_locked(key)
    }

    /// Removes everything from every tier; the number of entries removed, summed over the
    /// tiers (an entry held by three tiers counts three times, as in the reference).
    pub fn clear(&self) -> usize {
        self.inner.clear()
    }

    /// Records a failed health check of `key`: `failure_count + 1`, `health_status =
    /// unhealthy`. At `failure_threshold` (when `health_check_invalidation` is on) the entry
    /// is removed from every tier and counted in `evictions_health` of each tier that held
    /// it; below, the tiers that hold it are updated (it is not promoted).
    ///
    /// The failure is counted once, atomically, in the lowest serving tier (L3, else L2,
    /// else L1: where the entry is shared by other processes or hosts) with
    /// [`CacheTier::mark_failure`], which changes those two fields and nothing else, and
    /// decides the threshold on the count it produced; the tiers above take that count (or
    /// drop a copy that disagrees). So failures reported by several managers sharing an L3 all
    /// count, exactly one of them evicts, and no mark writes a cached copy over a newer version
    /// (`docs/fleet.md`). `NotFound` when no tier holds a readable live copy, or when the
    /// lowest tier no longer holds the key (deleted elsewhere, or evicted by its bound): the
    /// copies above are then dropped too. An expired entry is `NotFound` and removed (a TTL
    /// eviction). Unreadable copies are left as they are; the mark goes to the tier above.
    pub fn invalidate_by_health(&self, key: &str) -> HealthInvalidation {
        let outcome = self.inner.invalidate_by_health(key);
        self.inner.hand_off_evicted_use();
        outcome
    }

    /// The reference's statistics: per-tier hits, misses, sizes, evictions by reason,
    /// promotions, demotions, degraded flags (a tier is "degraded" when it is not serving:
    /// disabled by config, or skipped after failures, as in the reference). Evictions include
    /// what the reference never counts: the cleaner's TTL evictions, unreadable entries
    /// (`evictions_corruption`), L1 evictions caused by promotions, and L2/L3 evictions by
    /// their own `max_entries` ([`CacheManager::statistics_breakdown`] separates them).
    pub fn get_statistics(&self) -> CacheStatistics {
        self.inner.statistics()
    }

    /// The parts of [`CacheManager::get_statistics`]'s counters the reference does not have.
    pub fn statistics_breakdown(&self) -> StatisticsBreakdown {
        self.inner.counters.breakdown()
    }

    /// Whether `tier` is serving, disabled by the config or degraded.
    pub fn tier_status(&self, tier: CacheTierType) -> TierStatus {
        match tier {
            CacheTierType::L1 if self.inner.l1.is_some() => TierStatus::Serving,
            CacheTierType::L1 => TierStatus::Disabled,
            _ => match self.inner.slot(tier) {
                None => TierStatus::Disabled,
                Some(slot) if slot.serving() => TierStatus::Serving,
                Some(_) => TierStatus::Degraded,
            },
        }
    }

    /// How many keys `tier` missed (written or deleted while it was degraded) and still holds
    /// stale copies of: lookups of those keys skip it until the background replay has removed
    /// them (see the module docs, "Degradation"). A missed clear counts as one. 0 for a tier
    /// that is up to date, disabled, or L1.
    pub fn missed_keys(&self, tier: CacheTierType) -> usize {
        self.inner.slot(tier).map_or(0, |slot| {
            let resync = lock(&slot.resync);
            resync.keys.len() + usize::from(resync.clear_all)
        })
    }

    /// The background TTL cleaner (started at open when `enable_background_cleanup`).
    pub fn ttl_manager(&self) -> &TtlManager {
        &self.ttl
    }

    /// Removes expired entries from every serving tier now; how many from each.
    pub fn cleanup_now(&self) -> CleanupReport {
        self.inner.cleanup_now()
    }

    /// Writes L1's access data (and queued demotions) to L2/L3, and asks them to write what
    /// they batch. After it returns, a restart finds every use made so far.
    pub fn flush(&self) -> Result<(), ManagerError> {
        self.inner.flush()
    }

    /// Stops the background threads, flushes, and closes the tiers. Later operations fail
    /// ([`ManagerError::Closed`], or a miss). Closing twice does nothing.
    pub fn close(&self) -> Result<(), ManagerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.ttl.stop();
        self.inner.stop_maintenance();
        self.inner.stop_use_writer();
        self.inner.stop_remote();
        let flushed = self.inner.flush();
        let mut failures = self.inner.last_resync();
        self.inner.closed.store(true, Ordering::Release);
        for slot in self.inner.slots() {
            if let Err(e) = slot.tier.close() {
                failures.push(format!("{}: {e}", slot.kind));
            }
        }
        flushed?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ManagerError::Incomplete { op: "close", failures })
        }
    }
}

impl Drop for CacheManager {
    fn drop(&mut self) {
        self.ttl.stop();
        self.inner.stop_maintenance();
        self.inner.stop_use_writer();
        self.inner.stop_remote();
        if !self.inner.is_closed() {
            if let Err(e) = self.inner.flush() {
                tracing::warn!(error = %e, "flushing the cache on drop failed");
            }
            self.inner.last_resync();
        }
    }
}

impl Inner {
    /// Stops following a shared L3's changes (joins the subscriber thread, which never holds
    /// the last reference to `self` afterwards).
    fn stop_remote(&self) {
        let subscription = lock(&self.remote).take();
        drop(subscription);
    }

    /// Drops L1's copy of `key` (another host changed the entry), and its unrecorded use.
    #[cfg_attr(
        not(feature = "redis"),
        allow(dead_code, reason = "used by the Redis L3's change feed")
    )]
    pub(crate) fn drop_l1_copy(&self, key: &str) {
        if let Some(l1) = &self.l1 {
            let _ = l1.delete(key);
        }
    }

    /// Empties L1 (and L2 when `with_l2`) without touching L3: another host cleared the shared
    /// L3, or changes to it may have been missed.
    #[cfg_attr(
        not(feature = "redis"),
        allow(dead_code, reason = "used by the Redis L3's change feed")
    )]
    pub(crate) fn clear_local_tiers(&self, with_l2: bool) {
        // No lookup may promote a copy from L2 (or L3's old version) into L1 between the clears.
        let _all = self.locks.lock_all();
        if let Some(l1) = &self.l1 {
            let _ = l1.clear();
        }
        if with_l2 && let Some(l2) = &self.l2 {
            self.clear_slot(l2);
        }
    }

    /// Clears L1's flag of `key`: its L1 copy holds no use the tiers below lack (see the
    /// module docs' "Access data and demotion").
    fn unflag_l1(&self, key: &str) {
        if let Some(l1) = &self.l1 {
            l1.unflag(key);
        }
    }

    /// Now, from the builder's clock or the system's (microsecond precision).
    pub(crate) fn now(&self) -> OffsetDateTime {
        match &self.clock {
            Some(clock) => pw_cache_model::timestamp::truncate_to_micros(clock()),
            None => now_utc(),
        }
    }

    /// Takes every key's lock (see [`crate::key_locks`]): no operation on any key runs until the
    /// guard is dropped.
    pub(crate) fn lock_all_keys(&self) -> crate::key_locks::AllKeysGuard<'_> {
        self.locks.lock_all()
    }

    /// Takes the lock of `key` (see [`crate::key_locks`]).
    pub(crate) fn lock_key<'a>(&'a self, key: &'a str) -> crate::key_locks::KeyGuard<'a> {
        self.locks.lock(key)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn slot(&self, tier: CacheTierType) -> Option<&TierSlot> {
        match tier {
            CacheTierType::L1 => None,
            CacheTierType::L2 => self.l2.as_ref(),
            CacheTierType::L3 => self.l3.as_ref(),
        }
    }

    /// The disk tiers that are enabled, L2 first.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &TierSlot> {
        self.l2.iter().chain(self.l3.iter())
    }

    /// Records a failed operation of `slot`: when its health says it is disabled, flags it
    /// degraded and starts probing.
    fn failed(&self, slot: &TierSlot, op: &str, key: &str, error: &TierError) {
        tracing::warn!(tier = %slot.kind, op, key, error = %error, "cache tier operation failed");
        if !error.is_tier_failure() {
            return;
        }
        let write_failures = if matches!(op, "put" | "delete" | "clear" | "record uses" | "health mark") {
            slot.write_failures.fetch_add(1, Ordering::AcqRel).saturating_add(1)
        } else {
            slot.write_failures.load(Ordering::Acquire)
        };
        let disabled = slot.tier.health().is_disabled() || write_failures >= pw_cache_tiers::FAILURE_THRESHOLD;
        if disabled && !slot.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                tier = %slot.kind,
                failures = slot.tier.health().consecutive_failures(),
                "cache tier degraded: skipped until a probe succeeds"
            );
            self.wake_maintenance();
        }
    }

    /// Writes `entry` to `slot` if it is serving; records what the tier missed otherwise.
    pub(crate) fn write_to(&self, slot: &TierSlot, entry: &CacheEntry) -> Result<(), String> {
        self.write_with(slot, &entry.key, "put", || slot.tier.put(entry).map(|()| true))
            .map(|_| ())
    }

    /// Runs `write`, a write of `key` to `slot` that says whether it stored anything, if the
    /// slot is serving, and keeps the slot's record of what it missed: a key written is fresh
    /// there, a key not written because of a failure (or a degraded tier) is stale.
    fn write_with(
        &self,
        slot: &TierSlot,
        key: &str,
        op: &'static str,
        write: impl FnOnce() -> Result<bool, TierError>,
    ) -> Result<bool, String> {
        if !slot.serving() {
            slot.note_stale(key);
            return Err(format!("{}: degraded", slot.kind));
        }
        match write() {
            Ok(stored) => {
                slot.write_failures.store(0, Ordering::Release);
                if stored {
                    slot.note_fresh(key);
                }
                Ok(stored)
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, op, key, &e);
                self.wake_maintenance();
                Err(format!("{}: {e}", slot.kind))
            }
        }
    }

    /// Removes `key` from `slot`; whether it held it. A tier that cannot (degraded or failing)
    /// has the key noted as missed, to be removed when it recovers.
    pub(crate) fn delete_from(&self, slot: &TierSlot, key: &str) -> bool {
        if !slot.serving() {
            slot.note_stale(key);
            return false;
        }
        match slot.tier.delete(key) {
            Ok(held) => {
                slot.note_fresh(key);
                held
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, "delete", key, &e);
                self.wake_maintenance();
                false
            }
        }
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        if self.is_closed() {
            return None;
        }
        let _guard = self.locks.lock(key);
        let now = self.now();
        if let Some(l1) = &self.l1 {
            let counters = self.counters.tier(CacheTierType::L1);
            // Flagged (a use the tiers below have not seen) under L1's shard lock, where an
            // eviction of the key looks.
            let hit = l1.touch_flagging(key, |e| {
                if e.is_expired_at(now) {
                    return false;
                }
                e.access_count = e.access_count.saturating_add(1);
                e.last_accessed = now;
                true
            });
            match hit {
                Some(entry) if !entry.is_expired_at(now) => {
                    bump(&counters.hits, 1);
                    return Some(entry);
                }
                Some(_) => {
                    self.delete_readable_locked(key);
                    bump(&counters.evictions_ttl, 1);
                    return None;
                }
                None => bump(&counters.misses, 1),
            }
        }
        // Use of this key that L1 saw before evicting it and the tiers below have not recorded.
        let unrecorded = self.evicted_use.take(key);
        for slot in self.slots() {
            if !slot.serving() || slot.stale(key) {
                continue;
            }
            let counters = self.counters.tier(slot.kind);
            match slot.tier.get(key) {
                Ok(Some(entry)) if entry.is_expired_at(now) => {
                    self.delete_readable_locked(key);
                    bump(&counters.evictions_ttl, 1);
                    return None;
                }
                Ok(Some(mut entry)) => {
                    bump(&counters.hits, 1);
                    if let Some(record) = &unrecorded {
                        record.apply_to(&mut entry);
                    }
                    self.complete_health_detail(slot, &mut entry);
                    entry.access_count = entry.access_count.saturating_add(1);
                    entry.last_accessed = now;
                    self.promote_locked(&entry, slot.kind);
                    return Some(entry);
                }
                Ok(None) => bump(&counters.misses, 1),
                Err(e) if e.is_corrupt_entry() => {
                    // Unreadable is not expired: left where it is, counted, and the lookup goes
                    // on below (see `docs/reliability.md`, "Never lose what you cannot read").
                    bump(&counters.misses, 1);
                    bump(&counters.unreadable, 1);
                    tracing::warn!(tier = %slot.kind, key, error = %e, "unreadable entry skipped (left in place)");
                }
                Err(e) => {
                    bump(&counters.misses, 1);
                    self.failed(slot, "get", key, &e);
                }
            }
        }
        if let Some(record) = unrecorded {
            self.evicted_use.queue(record);
        }
        None
    }

    /// Fills the health-check detail of `entry`, read from `slot`, from L3 when `slot` does
    /// not keep it (SQLite L2): otherwise the defaults it reads back with would be promoted,
    /// and later written over L3's record.
    pub(crate) fn complete_health_detail(&self, slot: &TierSlot, entry: &mut CacheEntry) {
        if slot.tier.keeps_health_detail() {
            return;
        }
        let Some(l3) = self.l3.as_ref().filter(|l3| l3.serving() && !l3.stale(&entry.key)) else {
            return;
        };
        match l3.tier.health_detail(&entry.key) {
            Ok(Some(detail)) => detail.apply_to(entry),
            Ok(None) => {}
            Err(e) if e.is_tier_failure() => self.failed(l3, "get", &entry.key, &e),
            // An unreadable L3 copy is found and counted by the lookup that reaches it.
            Err(_) => {}
        }
    }

    /// Copies `entry`, found in `found_in`, to the tiers above it.
    fn promote_locked(&self, entry: &CacheEntry, found_in: CacheTierType) {
        if let Some(l1) = &self.l1 {
            // L1 is about to hold a use the tiers below have not seen: stored flagged, so that
            // an eviction right after the put finds it.
            PROMOTING.set(true);
            let stored = l1.put_flagged(entry, true);
            PROMOTING.set(false);
            if stored.is_ok() {
                bump(&self.counters.promotions, 1);
            }
        }
        if found_in == CacheTierType::L3
            && let (Some(l2), Some(l3)) = (&self.l2, &self.l3)
            && l2.serving()
        {
            // Into L2 only if absent, and only while L3 still holds this version (checked under
            // L2's lock): another process's newer put or delete is never undone by this copy.
            let mut still_below = || matches!(l3.tier.peek(&entry.key), Ok(Some(now)) if same_version(&now, entry));
            let promote = || l2.tier.put_if_absent_with(entry, &mut still_below);
            if self.write_with(l2, &entry.key, "promote", promote) == Ok(true) {
                bump(&self.counters.promotions, 1);
            }
        }
    }

    fn put(&self, entry: &CacheEntry) -> Result<Stored, ManagerError> {
        if entry.key.is_empty() {
            return Err(ManagerError::InvalidEntry {
                key: String::new(),
                reason: "the key is empty".to_owned(),
            });
        }
        if pw_cache_model::proxy_url_has_userinfo(&entry.proxy_url) {
            return Err(ManagerError::InvalidEntry {
                key: entry.key.clone(),
                reason: "proxy_url holds credentials (`user:pass@`), which would be stored in \
                         plaintext; give them as username and password, which are encrypted"
                    .to_owned(),
            });
        }
        if self.is_closed() {
            return Err(ManagerError::Closed);
        }
        let key = entry.key.as_str();
        let _guard = self.locks.lock(key);
        // Use noted of the previous entry is superseded. Unflagged first: an eviction of the old
        // entry after this records nothing, and the use an eviction just before it queued is
        // what `forget` drops (the other order left an eviction between the two free to queue
        // the old use, to be written over the new entry later).
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut stored = Stored::default();
        let mut failures = Vec::new();
        if let Some(l1) = &self.l1 {
            match l1.put(entry) {
                Ok(()) => stored.l1 = true,
                Err(e) => failures.push(format!("L1: {e}")),
            }
        }
        for slot in self.slots() {
            match self.write_to(slot, entry) {
                Ok(()) => match slot.kind {
                    CacheTierType::L2 => stored.l2 = true,
                    _ => stored.l3 = true,
                },
                Err(reason) => failures.push(reason),
            }
        }
        if stored == Stored::default() {
            return Err(ManagerError::NotStored {
                key: key.to_owned(),
                failures,
            });
        }
        Ok(stored)
    }

    /// Removes `key` from every tier (the caller holds its lock).
    /// Bottom up (L3, L2, then L1): another process that looks the key up meanwhile finds it
    /// gone below before it is gone above, so it cannot promote a copy from L3 back into L2
    /// after L2's delete (that copy would outlive the delete).
    fn delete_locked(&self, key: &str) -> bool {
        // Unflagged before the queued use is dropped, as in `put`.
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut deleted = false;
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            deleted |= self.delete_from(slot, key);
        }
        if let Some(l1) = &self.l1 {
            deleted |= l1.delete(key).unwrap_or(false);
        }
        deleted
    }

    /// Removes `key` from every tier whose copy can be read (or that holds none), bottom up as
    /// [`Inner::delete_locked`]; a tier whose copy is unreadable keeps it (counted in
    /// `unreadable`): removing what cannot be read is the operator's act
    /// ([`crate::CacheManager::remove_unreadable`]), never a side effect of expiry or health
    /// marks. Returns the tiers that held a copy and removed it. The caller holds the key's lock.
    fn delete_readable_locked(&self, key: &str) -> Vec<CacheTierType> {
        self.unflag_l1(key);
        self.evicted_use.forget(key);
        let mut removed = Vec::new();
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            if slot.serving() && !slot.stale(key) {
                match slot.tier.peek(key) {
                    Err(e) if e.is_corrupt_entry() => {
                        bump(&self.counters.tier(slot.kind).unreadable, 1);
                        continue;
                    }
                    Ok(None) => {
                        slot.note_fresh(key);
                        continue;
                    }
                    // Readable, or the tier failed to say: delete (a failure is noted as missed).
                    Ok(Some(_)) | Err(_) => {}
                }
            }
            if self.delete_from(slot, key) {
                removed.push(slot.kind);
            }
        }
        if let Some(l1) = &self.l1
            && l1.delete(key).unwrap_or(false)
        {
            removed.push(CacheTierType::L1);
        }
        removed
    }

    fn clear(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        // No lookup may promote a lower tier's copy into L1 between the clears.
        let _all = self.locks.lock_all();
        let mut total = 0;
        if let Some(l1) = &self.l1 {
            total += l1.clear().unwrap_or(0);
        }
        self.evicted_use.clear();
        for slot in self.slots() {
            total += self.clear_slot(slot);
        }
        total
    }

    /// Empties `slot`; how many entries it held. A tier that cannot (degraded or failing) has
    /// the clear noted as missed: none of its copies is served until it recovers and is cleared.
    fn clear_slot(&self, slot: &TierSlot) -> usize {
        if !slot.serving() {
            slot.note_cleared();
            return 0;
        }
        match slot.tier.clear() {
            Ok(n) => n,
            Err(e) => {
                slot.note_cleared();
                self.failed(slot, "clear", "", &e);
                self.wake_maintenance();
                0
            }
        }
    }

    /// See [`CacheManager::invalidate_by_health`]. The copy found first decides only whether
    /// the entry exists and has expired; the failure is counted by one atomic
    /// [`CacheTier::mark_failure`] in the authoritative tier ([`Inner::mark_authority`]), whose
    /// count is the result, and the tiers above take that count or lose their copy. Each tier
    /// changes the two fields of what it holds itself: no copy read here is ever written to
    /// another tier, so a version another host (or process) has stored since is never
    /// overwritten.
    fn invalidate_by_health(&self, key: &str) -> HealthInvalidation {
        if self.is_closed() {
            return HealthInvalidation::NotFound;
        }
        let _guard = self.locks.lock(key);
        let now = self.now();
        // Where a readable copy is, top down, without it being a use.
        let mut unreadable_seen = Vec::new();
        let Some((level, entry)) = self.find_readable_locked(key, &mut unreadable_seen) else {
            return HealthInvalidation::NotFound;
        };
        if entry.is_expired_at(now) {
            self.delete_readable_locked(key);
            bump(&self.counters.tier(level).evictions_ttl, 1);
            return HealthInvalidation::NotFound;
        }
        drop(entry);
        let threshold = u64::from(self.config.failure_threshold());
        let evict_at = self.config.health_check_invalidation().then_some(threshold);
        let Some((authority, mark)) = self.mark_authority(key, evict_at, &unreadable_seen) else {
            // No tier could take the mark (each failing, degraded or holding an unreadable copy).
            return HealthInvalidation::NotFound;
        };
        match mark {
            FailureMark::Absent => {
                // Deleted (by another host or process, or evicted by the tier's bound) since
                // the copies above were made: they go too.
                self.delete_readable_locked(key);
                HealthInvalidation::NotFound
            }
            FailureMark::Evicted { failure_count } => {
                bump(&self.counters.tier(authority).evictions_health, 1);
                for tier in self.delete_readable_locked(key) {
                    bump(&self.counters.tier(tier).evictions_health, 1);
                }
                tracing::info!(key, failure_count, "proxy evicted after failed health checks");
                HealthInvalidation::Evicted { failure_count }
            }
            FailureMark::Marked { failure_count } => {
                self.mark_above(key, authority, failure_count, &unreadable_seen);
                HealthInvalidation::Marked { failure_count }
            }
        }
    }

    /// The first readable copy of `key`, top down (L1, then each serving disk tier whose copy
    /// is not stale), without it being a use. Tiers whose copy cannot be read are counted in
    /// `unreadable` (and noted in `unreadable_seen`) and left as they are.
    fn find_readable_locked(
        &self,
        key: &str,
        unreadable_seen: &mut Vec<CacheTierType>,
    ) -> Option<(CacheTierType, CacheEntry)> {
        if let Some(l1) = &self.l1
            && let Ok(Some(entry)) = l1.peek(key)
        {
            return Some((CacheTierType::L1, entry));
        }
        for slot in self.slots() {
            if !slot.serving() || slot.stale(key) {
                continue;
            }
            match slot.tier.peek(key) {
                Ok(Some(entry)) => return Some((slot.kind, entry)),
                Ok(None) => {}
                Err(e) if e.is_corrupt_entry() => {
                    // Left in place; the mark goes to a readable copy, if any.
                    bump(&self.counters.tier(slot.kind).unreadable, 1);
                    unreadable_seen.push(slot.kind);
                }
                Err(e) => self.failed(slot, "get", key, &e),
            }
        }
        None
    }

    /// Marks a failure of `key` in the authoritative tier: the lowest that can take it, L3,
    /// else L2, else L1. That is where the entry is shared (a Redis L3 by a fleet, a SQLite
    /// file by processes), so the one atomic mark there is what counts. A disk tier is passed
    /// over (and the tier above tried) when it is degraded (the key is noted as missed there,
    /// so its copy goes when it recovers), when its copy is stale, when it fails (noted the
    /// same way), or when its copy cannot be read (left in place, counted in `unreadable`
    /// unless `unreadable_seen` says the lookup counted it already). Returns the tier that
    /// took the mark and what it did; `None` when none could.
    fn mark_authority(
        &self,
        key: &str,
        evict_at: Option<u64>,
        unreadable_seen: &[CacheTierType],
    ) -> Option<(CacheTierType, FailureMark)> {
        let slots: Vec<&TierSlot> = self.slots().collect();
        for slot in slots.into_iter().rev() {
            if let Some(mark) = self.mark_in(slot, key, evict_at, unreadable_seen) {
                return Some((slot.kind, mark));
            }
        }
        // L1 counts only for an entry it holds: absent there too, nothing took the mark.
        match self.l1.as_ref()?.mark_failure(key, evict_at) {
            Ok(FailureMark::Absent) | Err(_) => None,
            Ok(mark) => Some((CacheTierType::L1, mark)),
        }
    }

    /// Gives the tiers above `authority` the count it reached: each disk tier's copy gets the
    /// same atomic mark, and is dropped when the count it reaches differs (a copy of an older
    /// version: the next lookup reads the authority's); L1's copy, if any, takes the count and
    /// status in place (it keeps its unrecorded use and flag). Nothing is promoted.
    fn mark_above(&self, key: &str, authority: CacheTierType, failure_count: u64, unreadable_seen: &[CacheTierType]) {
        for slot in self.slots().filter(|slot| slot.kind < authority) {
            match self.mark_in(slot, key, None, unreadable_seen) {
                Some(FailureMark::Marked { failure_count: there }) if there != failure_count => {
                    self.delete_from(slot, key);
                }
                _ => {}
            }
        }
        if authority != CacheTierType::L1
            && let Some(l1) = &self.l1
        {
            l1.update(key, |e| {
                e.failure_count = failure_count;
                e.health_status = HealthStatus::Unhealthy;
            });
        }
    }

    /// [`CacheTier::mark_failure`] of `key` in `slot`, keeping the slot's record of what it
    /// missed: `None` when the slot is degraded (the key noted as missed), holds a stale copy,
    /// fails (noted as missed, counted towards degradation), holds an unreadable copy (left
    /// in place, counted in `unreadable` unless in `unreadable_seen`) or refuses the mark.
    fn mark_in(
        &self,
        slot: &TierSlot,
        key: &str,
        evict_at: Option<u64>,
        unreadable_seen: &[CacheTierType],
    ) -> Option<FailureMark> {
        if !slot.serving() {
            slot.note_stale(key);
            return None;
        }
        if slot.stale(key) {
            return None;
        }
        match slot.tier.mark_failure(key, evict_at) {
            Ok(mark) => {
                slot.write_failures.store(0, Ordering::Release);
                Some(mark)
            }
            Err(e) if e.is_corrupt_entry() => {
                if !unreadable_seen.contains(&slot.kind) {
                    bump(&self.counters.tier(slot.kind).unreadable, 1);
                }
                tracing::warn!(tier = %slot.kind, key, error = %e, "unreadable entry not marked (left in place)");
                None
            }
            Err(e) if !e.is_tier_failure() => {
                tracing::warn!(tier = %slot.kind, key, error = %e, "health mark refused");
                None
            }
            Err(e) => {
                slot.note_stale(key);
                self.failed(slot, "health mark", key, &e);
                self.wake_maintenance();
                None
            }
        }
    }

    /// Records the queued use of evicted entries in L2/L3 when at least `at_least` are queued
    /// (one [`CacheTier::record_accesses`] batch per tier); why each tier that did not record
    /// it did not. With `wait`, waits for a batch another thread is writing first; without,
    /// returns at once when one is (that thread carries on with what is queued next time).
    pub(crate) fn record_evicted_use(&self, at_least: usize, wait: bool) -> Vec<String> {
        let _writer = if wait {
            lock(&self.evicted_use.writer)
        } else {
            match try_lock(&self.evicted_use.writer) {
                Some(guard) => guard,
                None => return Vec::new(),
            }
        };
        let in_flight = {
            let mut log = lock(&self.evicted_use.log);
            if log.queued.is_empty() || log.queued.len() < at_least {
                return Vec::new();
            }
            let in_flight = Arc::new(std::mem::take(&mut log.queued));
            log.in_flight = Arc::clone(&in_flight);
            self.evicted_use.note_len(&log);
            in_flight
        };
        // Copied and sorted without the log's lock, which every L1 miss and eviction takes.
        let mut batch: Vec<AccessRecord> = in_flight.iter().map(|queued| queued.0.clone()).collect();
        drop(in_flight);
        // In key order: consecutive updates then walk the key index in order.
        batch.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let failures = self.record_uses(&batch);
        lock(&self.evicted_use.log).in_flight = Arc::default();
        bump(&self.counters.demotion_writes, batch.len() as u64);
        if !failures.is_empty() {
            tracing::warn!(
                entries = batch.len(),
                "the use of evicted entries was not recorded by every tier"
            );
        }
        failures
    }

    /// Records `batch` in every serving disk tier; why each tier that did not, did not. A
    /// degraded tier is skipped (and named): use only orders evictions, it is not worth a
    /// resync.
    fn record_uses(&self, batch: &[AccessRecord]) -> Vec<String> {
        let mut failures = Vec::new();
        if batch.is_empty() {
            return failures;
        }
        for slot in self.slots() {
            if !slot.serving() {
                failures.push(format!("{}: degraded", slot.kind));
                continue;
            }
            match slot.tier.record_accesses(batch) {
                Ok(_) => slot.write_failures.store(0, Ordering::Release),
                Err(e) => {
                    failures.push(format!("{}: {e}", slot.kind));
                    self.failed(slot, "record uses", "", &e);
                }
            }
        }
        failures
    }

    pub(crate) fn flush(&self) -> Result<(), ManagerError> {
        let mut failures = Vec::new();
        if let Some(l1) = &self.l1 {
            // The use of entries still in L1, as one batch.
            let mut batch = Vec::new();
            for key in l1.flagged_keys() {
                let _guard = self.locks.lock(&key);
                if !l1.unflag(&key) {
                    continue;
                }
                if let Ok(Some(entry)) = l1.peek(&key) {
                    batch.push(AccessRecord::of(&entry, false));
                }
            }
            let missed = self.record_uses(&batch);
            if !missed.is_empty() {
                // Noted again, for the next flush.
                for record in &batch {
                    l1.flag(&record.key);
                }
                failures.extend(missed);
            }
            bump(&self.counters.demotion_writes, batch.len() as u64);
        }
        failures.extend(self.record_evicted_use(1, true));
        for slot in self.slots() {
            if slot.serving()
                && let Err(e) = slot.tier.flush()
            {
                failures.push(format!("{}: {e}", slot.kind));
                self.failed(slot, "flush", "", &e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ManagerError::Incomplete { op: "flush", failures })
        }
    }

    pub(crate) fn statistics(&self) -> CacheStatistics {
        let mut stats = self.counters.snapshot();
        if let Some(l1) = &self.l1 {
            stats.l1_stats.current_size = l1.size().unwrap_or(0) as u64;
        }
        stats.l1_degraded = self.l1.is_none();
        stats.l2_degraded = self.l2.as_ref().is_none_or(|s| !s.serving());
        stats.l3_degraded = self.l3.as_ref().is_none_or(|s| !s.serving());
        for slot in self.slots() {
            let tier_stats = match slot.kind {
                CacheTierType::L2 => &mut stats.l2_stats,
                _ => &mut stats.l3_stats,
            };
            tier_stats.evictions_lru += slot.tier.evictions();
            tier_stats.unreadable += slot.tier.unreadable_skipped();
            if slot.serving() {
                tier_stats.current_size = slot.tier.size().unwrap_or(0) as u64;
            }
        }
        stats
    }

    pub(crate) fn cleanup_now(&self) -> CleanupReport {
        let now = self.now();
        let mut report = CleanupReport::default();
        if self.is_closed() {
            return report;
        }
        let mut failures = Vec::new();
        let mut record = |tier: CacheTierType, removed: usize| {
            let counters = self.counters.tier(tier);
            bump(&counters.evictions_ttl, removed as u64);
            bump(&counters.cleaner_ttl, removed as u64);
            report.removed[crate::counters::index(tier)] = removed;
        };
        if let Some(l1) = &self.l1 {
            record(CacheTierType::L1, l1.cleanup_expired(now).unwrap_or(0));
        }
        for slot in self.slots() {
            if !slot.serving() {
                failures.push((slot.kind, "degraded: skipped".to_owned()));
                continue;
            }
            match slot.tier.cleanup_expired(now) {
                Ok(n) => record(slot.kind, n),
                Err(e) => {
                    self.failed(slot, "cleanup", "", &e);
                    failures.push((slot.kind, e.to_string()));
                }
            }
        }
        report.failures = failures;
        report
    }

    /// Starts the probe thread unless it runs.
    fn wake_maintenance(&self) {
        if self.maintenance.running.swap(true, Ordering::AcqRel) {
            return;
        }
        if *lock(&self.maintenance.stop) {
            self.maintenance.running.store(false, Ordering::Release);
            return;
        }
        let weak = self.weak_self.clone();
        let interval = self.probe_interval;
        let spawned = thread::Builder::new()
            .name("pw-cache-probe".into())
            .spawn(move || maintenance_loop(&weak, interval));
        match spawned {
            Ok(handle) => {
                let previous = lock(&self.maintenance.thread).replace(handle);
                // A previous thread has ended (it cleared `running` before we could start).
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                self.maintenance.running.store(false, Ordering::Release);
                tracing::error!(error = %e, "cannot start the cache's probe thread");
            }
        }
    }

    fn stop_maintenance(&self) {
        *lock(&self.maintenance.stop) = true;
        self.maintenance.wake.notify_all();
        let handle = lock(&self.maintenance.thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// After an operation: hands a full batch of evicted entries' use to the writer thread,
    /// or writes it here when that thread is far behind or cannot run.
    pub(crate) fn hand_off_evicted_use(&self) {
        let queued = self.evicted_use.queued();
        if queued < USE_BATCH {
            return;
        }
        if queued >= USE_BACKLOG_BATCHES * USE_BATCH || !self.wake_use_writer() {
            self.record_evicted_use(USE_BATCH, true);
        }
    }

    /// Wakes the use writer (starting it the first time); `false` when it is stopped or
    /// cannot be started.
    fn wake_use_writer(&self) -> bool {
        let signal = &self.use_writer.signal;
        {
            let mut state = lock(&signal.state);
            if state.stop {
                return false;
            }
            state.pending = true;
        }
        signal.wake.notify_one();
        let mut thread = lock(&self.use_writer.thread);
        if thread.is_some() {
            return true;
        }
        let weak = self.weak_self.clone();
        let signal = Arc::clone(signal);
        match thread::Builder::new()
            .name("pw-cache-use-writer".into())
            .spawn(move || use_writer_loop(&weak, &signal))
        {
            Ok(handle) => {
                *thread = Some(handle);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the cache's use-writer thread");
                false
            }
        }
    }

    /// Stops the use writer after the batch it is writing (what is still queued is left to
    /// the caller's flush).
    fn stop_use_writer(&self) {
        lock(&self.use_writer.signal.state).stop = true;
        self.use_writer.signal.wake.notify_all();
        let handle = lock(&self.use_writer.thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// Waits `interval` unless stopped; whether to go on.
    fn maintenance_wait(&self, interval: Duration) -> bool {
        let stop = lock(&self.maintenance.stop);
        let stop = wait_timeout_while(&self.maintenance.wake, stop, interval, |stop| !*stop);
        !*stop
    }

    /// Probes degraded tiers and replays what tiers missed; whether anything is left to do.
    ///
    /// A tier whose probe succeeds serves again at once (unless it missed a clear, which is
    /// replayed first): writes go to it from then on, and lookups keep skipping the keys it
    /// missed until the replay has removed its copies of them, so a host that keeps writing
    /// gets the tier back within a probe interval, however many keys it misses meanwhile.
    fn maintain(&self) -> bool {
        let mut left = false;
        for slot in self.slots() {
            if !slot.serving() {
                match slot.tier.probe() {
                    Ok(()) => {
                        if self.replay_clear(slot) && self.reenable(slot) {
                            tracing::info!(tier = %slot.kind, "cache tier recovered: serving again");
                            if !self.replay(slot) {
                                left = true;
                            }
                        } else {
                            left = true;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(tier = %slot.kind, error = %e, "probe of degraded tier failed");
                        left = true;
                    }
                }
            } else if slot.resync_pending.load(Ordering::Acquire) && !self.replay(slot) {
                left = true;
            }
        }
        left
    }

    /// At close: one last probe and replay of every tier that missed writes; what is still
    /// missing afterwards, logged as an error and returned. The list of missed keys lives in
    /// memory only, so a tier that recovers only after this process ends may serve stale or
    /// deleted entries (see `docs/migrating-from-proxywhirl.md`, "Degradation").
    fn last_resync(&self) -> Vec<String> {
        self.maintain();
        let mut left = Vec::new();
        for slot in self.slots() {
            let pending = slot.resync_pending.load(Ordering::Acquire);
            if slot.serving() && !pending {
                continue;
            }
            let resync = lock(&slot.resync);
            if slot.serving() && !resync.clear_all && resync.keys.is_empty() {
                continue;
            }
            let what = if resync.clear_all {
                "a clear".to_owned()
            } else {
                format!("writes or deletes of {} keys", resync.keys.len())
            };
            tracing::error!(
                tier = %slot.kind,
                missed = %what,
                "closing with a tier that missed {what}: its stale copies may be served after a restart; \
                 clear that tier if it recovers later"
            );
            left.push(format!("{}: degraded, missed {what}", slot.kind));
        }
        left
    }

    /// Replays a clear `slot` missed (what others wrote since is kept); whether none is left.
    fn replay_clear(&self, slot: &TierSlot) -> bool {
        let cleared_at = {
            let resync = lock(&slot.resync);
            if !resync.clear_all {
                return true;
            }
            resync.cleared_at.unwrap_or_else(now_utc)
        };
        if slot.tier.clear_unchanged_since(cleared_at).is_err() {
            return false;
        }
        let mut resync = lock(&slot.resync);
        // A clear missed again meanwhile is replayed next time.
        if resync.cleared_at.is_none_or(|at| at <= cleared_at) {
            resync.clear_all = false;
            resync.cleared_at = None;
        }
        !resync.clear_all
    }

    /// Removes from `slot` its copies of the keys it missed, one key lock at a time, each only if no other
    /// process wrote it since this one missed it (`CacheTier::delete_if_unchanged_since`); whether
    /// all of it is done.
    fn replay(&self, slot: &TierSlot) -> bool {
        if !self.replay_clear(slot) {
            return false;
        }
        // The backlog as it is now: keys missed later are written to the tier directly once it
        // serves, and those missed while it fails again come next time.
        let backlog: Vec<(String, OffsetDateTime)> = lock(&slot.resync)
            .keys
            .iter()
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        for (key, missed_at) in &backlog {
            let _guard = self.locks.lock(key);
            // Still stale, and not missed again since (a put may have refreshed it)?
            if lock(&slot.resync).keys.get(key) != Some(missed_at) {
                continue;
            }
            if slot.tier.delete_if_unchanged_since(key, *missed_at).is_err() {
                return false;
            }
            let mut resync = lock(&slot.resync);
            if resync.keys.get(key) == Some(missed_at) {
                resync.keys.remove(key);
            }
        }
        let resync = lock(&slot.resync);
        if resync.keys.is_empty() && !resync.clear_all {
            slot.resync_pending.store(false, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Serves `slot` again unless it still has a clear to replay. Lookups keep skipping the
    /// keys it missed ([`TierSlot::stale`]) until the replay is done with them.
    fn reenable(&self, slot: &TierSlot) -> bool {
        if lock(&slot.resync).clear_all {
            return false;
        }
        slot.write_failures.store(0, Ordering::Release);
        slot.degraded.store(false, Ordering::Release);
        true
    }
}

/// Whether `a` and `b` are the same version of an entry: equal in everything but the use
/// (`access_count`, `last_accessed`, `evicted_from_l1`), which a lookup changes.
fn same_version(a: &CacheEntry, b: &CacheEntry) -> bool {
    let without_use = |e: &CacheEntry| {
        let mut e = e.clone();
        e.access_count = 0;
        e.last_accessed = e.fetch_time;
        e.evicted_from_l1 = false;
        e
    };
    without_use(a) == without_use(b)
}

/// Writes a batch of evicted entries' use each time one is full, until stopped. Holds the
/// manager only while writing.
fn use_writer_loop(weak: &Weak<Inner>, signal: &UseWriterSignal) {
    loop {
        {
            let mut state = wait_while(&signal.wake, lock(&signal.state), |state| !state.pending && !state.stop);
            if state.stop {
                return;
            }
            state.pending = false;
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        inner.record_evicted_use(USE_BATCH, true);
    }
}

fn maintenance_loop(weak: &Weak<Inner>, interval: Duration) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if !inner.maintenance_wait(interval) {
            inner.maintenance.running.store(false, Ordering::Release);
            return;
        }
        if !inner.maintain() {
            inner.maintenance.running.store(false, Ordering::Release);
            // Something may have degraded between the last check and now.
            let again = inner
                .slots()
                .any(|s| !s.serving() || s.resync_pending.load(Ordering::Acquire));
            if !again || inner.maintenance.running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}
