// The crate documentation is README.md, as crates.io shows it. Its links to the guides point to
// docs.rs; these definitions come first, and the first definition of a label wins, so in
// rustdoc the same links go to the modules of `docs` in the documentation at hand.
#![doc = "[architecture]: crate::docs::architecture\n\
          [migrating from proxywhirl]: crate::docs::migrating_from_proxywhirl\n\
          [warm]: crate::docs::warm\n\
          [formats]: crate::docs::formats\n\
          [security]: crate::docs::security\n\
          [reliability]: crate::docs::reliability\n\
          [performance]: crate::docs::performance\n\
          [fleet]: crate::docs::fleet\n"]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The model layer ([`pw_cache_model`]): entries, configuration, statistics, timestamps.
pub use pw_cache_model as model;

/// The crypto layer ([`pw_cache_crypto`]): keys and tokens.
pub use pw_cache_crypto as crypto;

/// The storage layer ([`pw_cache_tiers`]): the four backends.
pub use pw_cache_tiers as tiers;

mod counters;
pub mod docs;
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
    METRIC_NAMES, ParseEnumError, REDIS_URL_ENV, Secret, TierStatistics, TimestampError, generate_cache_key,
};

/// The date-time type of every timestamp (re-exported from `time`).
#[doc(no_inline)]
pub use pw_cache_model::OffsetDateTime;

pub use pw_cache_crypto::{
    CryptoError, DEFAULT_KEY_FILE_NAME, ENV_CURRENT_KEY, ENV_PREVIOUS_KEYS, EnvKeys, FernetKey, KeyOrigin, KeyRing,
    KeySource, MAX_KEY_FILE_BYTES, SampleCheck, Token, Trust, TrustError,
};

#[cfg(feature = "redis")]
pub use pw_cache_tiers::redis_l3::{RedisL3Options, RedisL3Tier};
pub use pw_cache_tiers::{
    AccessOrder, CacheTier, FAILURE_THRESHOLD, FailureMark, HealthCheck, HealthHistory, HealthRecord, JsonlDamage,
    JsonlTier, L3OpenReport, MemoryTier, MigrationReport, Rotated, SqliteL2Tier, SqliteL3Tier, TierError, TierHealth,
};

#[cfg(test)]
mod readme_tests {
    /// The first ```` ```rust ```` block of a markdown text.
    fn first_rust_block(markdown: &str) -> Option<&str> {
        let start = markdown.find("```rust\n")? + "```rust\n".len();
        let len = markdown[start..].find("\n```")?;
        Some(&markdown[start..start + len])
    }

    /// The repository's README shows the example of this crate's README, which runs as a doc
    /// test; this keeps the two the same. (Not in a packaged crate, which has no repository
    /// README next to it.)
    #[test]
    fn repository_readme_shows_the_crate_example() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let Ok(root) = std::fs::read_to_string(dir.join("../../README.md")) else {
            return;
        };
        let crate_readme = include_str!("../README.md");
        let example = first_rust_block(crate_readme).unwrap();
        assert!(example.contains("CacheManager::open"));
        assert_eq!(first_rust_block(&root), Some(example));
    }
}
