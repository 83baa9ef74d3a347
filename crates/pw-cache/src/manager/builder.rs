//! [`CacheManagerBuilder`]: opening a manager, step by step.
//!
//! [`CacheManagerBuilder::open`] runs the steps below in this order, each a function of its
//! own; the first that fails ends the open, and what the earlier ones opened is dropped:
//!
//! 1. [`check_l2_dir`]: an L2 directory that is not a directory is refused before the keys;
//! 2. [`resolve_keys`]: the key ring (the builder's, else the config, the environment, the
//!    key file);
//! 3. [`open_tiers`]: the enabled disk tiers (the builder's, else the configured backends);
//! 4. [`check_key_ring`]: a sample of stored credentials is opened with the ring
//!    ([`KeyCheck`]);
//! 5. [`open_l1`]: L1, whose eviction sink queues the use of the entries it evicts;
//! 6. the shared state is built, and a Redis L3 subscribed to ([`DiskTiers::subscribe`],
//!    feature `redis`): subscribing needs the manager, so it runs while the state is built;
//! 7. [`start_cleaner`]: the background TTL cleaner, when the config enables it.
//!
//! The other background threads (the probe of degraded tiers, the use writer) start later,
//! when first needed.

use std::path::{Path, PathBuf};
#[cfg(feature = "redis")]
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use pw_cache_crypto::{DEFAULT_KEY_FILE_NAME, EnvKeys, FernetKey, KeyOrigin, KeyRing, Trust};
use pw_cache_model::{AccessRecord, CacheConfig, CacheTierType, L2BackendType, L3BackendType, OffsetDateTime};
#[cfg(feature = "redis")]
use pw_cache_tiers::redis_l3::{RedisL3Tier, Subscription};
use pw_cache_tiers::{AccessOrder, CacheTier, JsonlTier, MemoryTier, SqliteL2Tier, SqliteL3Tier, TierError};

use super::degradation::{Maintenance, TierSlot};
use super::lookup::PROMOTING;
#[cfg(feature = "redis")]
use super::remote;
use super::ttl::TtlManager;
use super::use_log::{EvictedUse, UseWriter};
use super::{CacheManager, DEFAULT_PROBE_INTERVAL, Inner};
use crate::counters::{Counters, bump};
use crate::error::ManagerError;
use crate::key_locks::KeyLocks;

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
    /// close; see [`docs::reliability`]).
    ///
    /// [`docs::reliability`]: crate::docs::reliability
    Skip,
}

/// Where the manager reads the time (see [`CacheManagerBuilder::clock`]).
pub(super) type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

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
    l1_shards: usize,
    key_check: KeyCheck,
    trust: Trust,
}

impl CacheManagerBuilder {
    /// A builder of a manager for `config`, everything else by default
    /// ([`CacheManager::builder`]).
    pub(super) fn new(config: CacheConfig) -> Self {
        Self {
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
            l1_shards: 0,
            key_check: KeyCheck::default(),
        }
    }

    /// How the directories the cache uses are checked before anything in them is read: the L2
    /// directory, the key file's directory, the L3 database's directory (default
    /// [`Trust::Strict`]: owned by this user or root, not writable by group or others). Every
    /// policy refuses a directory or a key file owned by another user; see
    /// [`pw_cache_crypto::trust`] and [`docs::security`].
    ///
    /// [`docs::security`]: crate::docs::security
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

    /// How many shards L1 is split into (default 0: [`MemoryTier::default_shard_count`], one
    /// shard below 128 entries and up to 16 above, each shard holding its part of
    /// `max_entries` and evicting its own victim, as moka and quick_cache do). `1` gives an L1
    /// whose `max_entries` is exact, as proxywhirl's is: it evicts only when the whole tier is
    /// full, and then the policy's victim among all its entries, at the cost of one lock for
    /// every thread's puts (hits are noted per thread either way). See
    /// [`pw_cache_tiers::memory`], "Shards and the policy".
    pub fn l1_shards(mut self, shards: usize) -> Self {
        self.l1_shards = shards;
        self
    }

    /// Resolves the keys, opens the enabled tiers and starts the background cleaner when the
    /// config enables it (the steps are listed in the module docs).
    pub fn open(self) -> Result<CacheManager, ManagerError> {
        let config = self.config;
        if config.l2_config().enabled && self.l2.is_none() {
            check_l2_dir(&config)?;
        }
        let ring = match self.ring {
            Some(ring) => ring,
            None => resolve_keys(&config, self.env, self.key_file, self.trust)?,
        };
        let mut tiers = open_tiers(&config, &ring, self.l2, self.l3, self.trust)?;
        check_key_ring(&ring, &tiers, self.key_check)?;
        let counters = Arc::new(Counters::default());
        let evicted_use = Arc::new(EvictedUse::default());
        // L2 and a local L3 only: a Redis L3 is not in its slot yet (it goes there when
        // subscribed to, below), so with a Redis L3 and no L2, L1's evictions queue no use.
        let has_lower = tiers.l2.is_some() || tiers.l3.is_some();
        let l1_shape = (self.l1_access_order, self.l1_shards);
        let l1 = open_l1(&config, l1_shape, &counters, &evicted_use, has_lower);
        #[cfg(feature = "redis")]
        let mut subscribe_failure = None;
        let inner = Arc::new_cyclic(|weak_self| {
            #[cfg(feature = "redis")]
            let subscription = tiers.subscribe(weak_self).unwrap_or_else(|e| {
                subscribe_failure = Some(e);
                None
            });
            Inner {
                config,
                ring,
                l1,
                l1_off: AtomicBool::new(false),
                l2: tiers.l2.take(),
                l3: tiers.l3.take(),
                counters,
                locks: KeyLocks::new(),
                evicted_use,
                maintenance: Maintenance::default(),
                use_writer: UseWriter::default(),
                probe_interval: self.probe_interval,
                clock: self.clock,
                closed: AtomicBool::new(false),
                weak_self: weak_self.clone(),
                #[cfg(feature = "redis")]
                subscription: Mutex::new(subscription),
            }
        });
        #[cfg(feature = "redis")]
        if let Some(e) = subscribe_failure {
            return Err(e);
        }
        let ttl = start_cleaner(&inner);
        Ok(CacheManager { inner, ttl })
    }
}

/// Refuses an L2 directory that is not a directory (a regular file, or a path under one).
/// Checked before the keys: the default key file lives in the L2 directory, and a
/// "directory" that is a file would otherwise be reported as a key-file error.
fn check_l2_dir(config: &CacheConfig) -> Result<(), ManagerError> {
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
    Ok(())
}

/// The key ring when the builder was given none: the config's key, else the environment's
/// (`env`, else the process's), else the key file's (`key_file`, else
/// [`default_key_file`]), created when absent. With no disk tier, a key for this process.
fn resolve_keys(
    config: &CacheConfig,
    env: Option<EnvKeys>,
    key_file: Option<PathBuf>,
    trust: Trust,
) -> Result<Arc<KeyRing>, ManagerError> {
    if !config.l2_config().enabled && !config.l3_config().enabled {
        // Nothing is written anywhere: a key for this process is all that is needed.
        return Ok(Arc::new(KeyRing::new(FernetKey::generate(), [])));
    }
    let key_file = key_file.unwrap_or_else(|| default_key_file(config));
    let env = env.unwrap_or_else(EnvKeys::from_process);
    KeyRing::resolve_trusting(config.encryption_key(), &env, &key_file, trust)
        .map(Arc::new)
        .map_err(ManagerError::Keys)
}

/// The disk tiers an open found or opened, in their slots (all but a Redis L3).
struct DiskTiers {
    l2: Option<TierSlot>,
    l3: Option<TierSlot>,
    /// A Redis L3, put in its slot by [`DiskTiers::subscribe`].
    #[cfg(feature = "redis")]
    shared_l3: Option<RedisL3Tier>,
}

impl DiskTiers {
    /// Every disk tier, L2 first, to sample credentials from.
    fn sampled(&self) -> Vec<(CacheTierType, &dyn CacheTier)> {
        let mut sampled: Vec<(CacheTierType, &dyn CacheTier)> = Vec::new();
        if let Some(slot) = &self.l2 {
            sampled.push((CacheTierType::L2, &*slot.tier));
        }
        if let Some(slot) = &self.l3 {
            sampled.push((CacheTierType::L3, &*slot.tier));
        }
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.shared_l3 {
            sampled.push((CacheTierType::L3, tier));
        }
        sampled
    }

    /// Subscribes `manager` (being built: events arriving before it is are dropped) to a Redis
    /// L3's changes, and puts that tier in the L3 slot; `None` without a Redis L3.
    #[cfg(feature = "redis")]
    fn subscribe(&mut self, manager: &Weak<Inner>) -> Result<Option<Subscription>, ManagerError> {
        let Some(tier) = self.shared_l3.take() else {
            return Ok(None);
        };
        let subscription = remote::subscribe(&tier, manager.clone());
        // Not `configured`: it has no files on this host.
        self.l3 = Some(TierSlot::new(Box::new(tier), CacheTierType::L3, false));
        subscription.map(Some)
    }
}

/// Opens the enabled disk tiers: the builder's (`l2`, `l3`), else the configured backends.
fn open_tiers(
    config: &CacheConfig,
    ring: &Arc<KeyRing>,
    l2: Option<Box<dyn CacheTier>>,
    l3: Option<Box<dyn CacheTier>>,
    trust: Trust,
) -> Result<DiskTiers, ManagerError> {
    let open_err = |tier| move |source| ManagerError::OpenTier { tier, source };
    let l2 = match (config.l2_config().enabled, l2) {
        (false, _) => None,
        (true, Some(tier)) => Some(TierSlot::new(tier, CacheTierType::L2, false)),
        (true, None) => {
            let tier: Box<dyn CacheTier> = match config.l2_backend() {
                L2BackendType::Jsonl => Box::new(
                    JsonlTier::open_trusting(config.l2_cache_dir(), config.l2_config(), Arc::clone(ring), trust)
                        .map_err(open_err(CacheTierType::L2))?,
                ),
                L2BackendType::Sqlite => Box::new(
                    SqliteL2Tier::open_trusting(config.l2_cache_dir(), config.l2_config(), Arc::clone(ring), trust)
                        .map_err(open_err(CacheTierType::L2))?,
                ),
            };
            Some(TierSlot::new(tier, CacheTierType::L2, true))
        }
    };
    #[cfg(feature = "redis")]
    let mut shared_l3 = None;
    let l3 = match (config.l3_config().enabled, l3) {
        (false, _) => None,
        (true, Some(tier)) => Some(TierSlot::new(tier, CacheTierType::L3, false)),
        (true, None) => match config.l3_backend() {
            L3BackendType::Sqlite => Some(TierSlot::new(
                Box::new(
                    SqliteL3Tier::open_trusting(config.l3_database_path(), config.l3_config(), Arc::clone(ring), trust)
                        .map_err(open_err(CacheTierType::L3))?,
                ),
                CacheTierType::L3,
                true,
            )),
            #[cfg(feature = "redis")]
            L3BackendType::Redis => {
                shared_l3 = Some(remote::open_l3(config, ring)?);
                None
            }
            #[cfg(not(feature = "redis"))]
            L3BackendType::Redis => return Err(ManagerError::RedisFeatureMissing),
        },
    };
    Ok(DiskTiers {
        l2,
        l3,
        #[cfg(feature = "redis")]
        shared_l3,
    })
}

/// Checks `ring` against the credentials `tiers` hold ([`check_keys`]). A key file this open
/// created encrypted nothing: it is removed when the check refuses the ring.
fn check_key_ring(ring: &KeyRing, tiers: &DiskTiers, check: KeyCheck) -> Result<(), ManagerError> {
    let refused = check_keys(ring, &tiers.sampled(), check);
    if refused.is_err()
        && let KeyOrigin::KeyFile { path, created: true } = ring.origin()
    {
        let _ = std::fs::remove_file(path);
    }
    refused
}

/// L1, when the config enables it. Its eviction sink runs under L1's shard lock, so the use
/// of a dirty entry is queued before anyone can see the entry gone from L1, and a hit (which
/// flags the entry under the same lock) is never missed. It counts every eviction (and
/// those a promotion caused) and, when there are tiers below (`has_lower`), the demotion and
/// the use of a dirty entry.
fn open_l1(
    config: &CacheConfig,
    (order, shards): (AccessOrder, usize),
    counters: &Arc<Counters>,
    evicted_use: &Arc<EvictedUse>,
    has_lower: bool,
) -> Option<MemoryTier> {
    config.l1_config().enabled.then(|| {
        let counters = Arc::clone(counters);
        let evicted_use = Arc::clone(evicted_use);
        let l1_config = config.l1_config();
        let shards = match shards {
            0 => MemoryTier::default_shard_count(l1_config.max_entries),
            n => n,
        };
        let tier = MemoryTier::with_shards(l1_config, shards).with_access_order(order);
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
    })
}

/// The TTL cleaner of `inner`, started when the config enables background cleanup.
fn start_cleaner(inner: &Arc<Inner>) -> TtlManager {
    // Handed over as a `Weak<dyn ttl::Expire>`: the cleaner knows nothing else of the manager.
    let cache: Weak<Inner> = Arc::downgrade(inner);
    let ttl = TtlManager::new(cache, Duration::from_secs(inner.config.cleanup_interval_seconds()));
    if inner.config.enable_background_cleanup() {
        ttl.start();
    }
    ttl
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
