#![doc = include_str!("../../../README.md")]
#![forbid(unsafe_code)]

/// The model layer ([`pw_cache_model`]): entries, configuration, statistics, timestamps.
pub use pw_cache_model as model;

/// The crypto layer ([`pw_cache_crypto`]): keys and tokens.
pub use pw_cache_crypto as crypto;

/// The storage layer ([`pw_cache_tiers`]): the four backends.
pub use pw_cache_tiers as tiers;

mod counters;
mod error;
mod key_locks;
mod manager;
mod sync;
mod warm;
pub mod warm_file;

pub use counters::StatisticsBreakdown;
pub use error::ManagerError;
pub use manager::{
    CacheInspection, CacheManager, CacheManagerBuilder, CleanupReport, DEFAULT_PROBE_INTERVAL, ExportCredentials,
    ExportOptions, ExportReport, HealthInvalidation, KEY_CHECK_SAMPLE, KeyCheck, RotationReport, Stored,
    TierInspection, TierStatus, TtlManager, USE_BATCH, UnreadableRemoval, default_key_file,
};
pub use warm::{DEFAULT_WARM_SOURCE, MAX_WARM_ISSUES_KEPT, WarmReport};
pub use warm_file::{IssueKind, RowLocation, WarmFileError, WarmIssue};

pub use pw_cache_model::{
    AccessRecord, CacheConfig, CacheConfigBuilder, CacheEntry, CacheStatistics, CacheTierConfig, CacheTierType,
    ConfigError, EntryError, EvictionPolicy, HealthDetail, HealthStatus, L2BackendType, L3BackendType, MAX_TTL_SECONDS,
    METRIC_NAMES, OffsetDateTime, ParseEnumError, REDIS_URL_ENV, Secret, TierStatistics, TimestampError,
    generate_cache_key,
};

pub use pw_cache_crypto::{
    CryptoError, DEFAULT_KEY_FILE_NAME, ENV_CURRENT_KEY, ENV_PREVIOUS_KEYS, EnvKeys, FernetKey, KeyOrigin, KeyRing,
    KeySource, MAX_KEY_FILE_BYTES, Token, Trust, TrustError,
};

#[cfg(feature = "redis")]
pub use pw_cache_tiers::redis_l3::{RedisL3Options, RedisL3Tier};
pub use pw_cache_tiers::{
    AccessOrder, CacheTier, FAILURE_THRESHOLD, FailureMark, HealthCheck, HealthHistory, HealthRecord, JsonlDamage,
    JsonlTier, L3OpenReport, MemoryTier, MigrationReport, Rotated, SqliteL2Tier, SqliteL3Tier, TierError, TierHealth,
};

/// The code in `docs/migrating-from-proxywhirl.md`, compiled as doctests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/migrating-from-proxywhirl.md")]
mod migrating_from_proxywhirl {}
