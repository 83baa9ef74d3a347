//! [`CacheConfig`] and [`CacheTierConfig`]: every field, default and bound of the reference's
//! `CacheConfig`, built only through validation.
//!
//! A [`CacheConfig`] cannot hold an out-of-bound value: it is made by
//! [`CacheConfigBuilder::build`] (or `Default`), and serde reads it through the same builder
//! (`#[serde(try_from)]`), so a config file gets exactly the checks code gets. Unknown fields in
//! a config file are an error: a typo must not silently fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::enums::{EvictionPolicy, L2BackendType};
use crate::secret::{MASK, Secret};

/// The longest TTL accepted anywhere in the config: 100 years (36,525 days). Longer values
/// would push `expires_at` towards the end of the representable calendar.
pub const MAX_TTL_SECONDS: u64 = 36_525 * 86_400;

/// A configuration value that is out of bounds or malformed. Every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A number outside its allowed range.
    #[error("config field `{field}` is {value}, out of bounds: must be {bound}")]
    OutOfBounds {
        /// The field, e.g. `default_ttl_seconds` or `l1_config.max_entries`.
        field: String,
        /// The value that was given.
        value: u64,
        /// The bound, e.g. `>= 60`.
        bound: String,
    },
    /// A value that is not out of range but unusable.
    #[error("config field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A config document that could not be read; `path` is where in it.
    #[error("invalid config at `{path}`: {message}")]
    Parse {
        /// Where in the document (`.` for the top level).
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Configuration of one tier: whether it runs, how many entries it holds, what it evicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheTierConfig {
    /// Whether the tier is used at all.
    pub enabled: bool,
    /// At most this many entries (`None`: unlimited). Must be at least 1 when set.
    pub max_entries: Option<u64>,
    /// Which entry goes when the tier is full.
    pub eviction_policy: EvictionPolicy,
}

impl Default for CacheTierConfig {
    /// Enabled, unlimited, LRU (the reference's `CacheTierConfig()`).
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: None,
            eviction_policy: EvictionPolicy::Lru,
        }
    }
}

impl CacheTierConfig {
    /// Enabled, holding at most `max_entries`, LRU.
    pub fn bounded(max_entries: u64) -> Self {
        Self {
            max_entries: Some(max_entries),
            ..Self::default()
        }
    }

    /// Enabled, unlimited, LRU.
    pub fn unbounded() -> Self {
        Self::default()
    }

    /// Not used.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The same with another eviction policy.
    pub fn with_policy(mut self, eviction_policy: EvictionPolicy) -> Self {
        self.eviction_policy = eviction_policy;
        self
    }

    fn validate(&self, tier: &str) -> Result<(), ConfigError> {
        if let Some(max) = self.max_entries {
            at_least(&format!("{tier}.max_entries"), max, 1)?;
        }
        Ok(())
    }
}

/// Validated configuration of the whole cache. Build it with [`CacheConfig::builder`] or take
/// [`CacheConfig::default`] (the reference's defaults).
///
/// | field | default | bound |
/// |---|---|---|
/// | `l1_config` | 1,000 entries, LRU | `max_entries >= 1` |
/// | `l2_config` | 5,000 entries, LRU | `max_entries >= 1` |
/// | `l2_backend` | `jsonl` | `jsonl` or `sqlite` |
/// | `l3_config` | unlimited, LRU | `max_entries >= 1` |
/// | `default_ttl_seconds` | 3,600 | 60 ..= [`MAX_TTL_SECONDS`] |
/// | `ttl_cleanup_interval` | 60 | `>= 10` |
/// | `enable_background_cleanup` | false | |
/// | `cleanup_interval_seconds` | 60 | `>= 5` |
/// | `per_source_ttl` | empty | each 60 ..= [`MAX_TTL_SECONDS`] |
/// | `l2_cache_dir` | `.cache/proxies` | not empty |
/// | `l3_database_path` | `.cache/db/proxywhirl.db` | not empty |
/// | `encryption_key` | none | a secret; written as `"***"` |
/// | `health_check_invalidation` | true | |
/// | `failure_threshold` | 3 | `>= 1` |
/// | `enable_statistics` | true | |
/// | `statistics_interval` | 5 | `>= 1` |
///
/// Serialization writes the key as `"***"`; reading `"***"` back as a key is an error (a
/// masked dump is not a usable config), never a key of three asterisks.
// `Default` is derived: the builder's defaults are within every bound (tested).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CacheConfigBuilder", into = "CacheConfigBuilder")]
pub struct CacheConfig {
    /// The fields, checked by [`CacheConfigBuilder::build`].
    checked: CacheConfigBuilder,
}

impl CacheConfig {
    /// A builder holding the defaults.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder::default()
    }

    /// A builder holding this configuration, to change some of it.
    pub fn to_builder(&self) -> CacheConfigBuilder {
        self.checked.clone()
    }

    /// Reads a JSON config document; the error names the field (unknown fields included).
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }

    /// L1 (memory) tier.
    pub fn l1_config(&self) -> &CacheTierConfig {
        &self.checked.l1_config
    }
    /// L2 (disk) tier.
    pub fn l2_config(&self) -> &CacheTierConfig {
        &self.checked.l2_config
    }
    /// Which backend holds L2.
    pub fn l2_backend(&self) -> L2BackendType {
        self.checked.l2_backend
    }
    /// L3 (SQLite) tier.
    pub fn l3_config(&self) -> &CacheTierConfig {
        &self.checked.l3_config
    }
    /// TTL of entries whose source has no override, in seconds.
    pub fn default_ttl_seconds(&self) -> u64 {
        self.checked.default_ttl_seconds
    }
    /// Interval of the TTL manager's cleanup, in seconds.
    pub fn ttl_cleanup_interval(&self) -> u64 {
        self.checked.ttl_cleanup_interval
    }
    /// Whether a background thread removes expired entries.
    pub fn enable_background_cleanup(&self) -> bool {
        self.checked.enable_background_cleanup
    }
    /// Interval between background cleanup runs, in seconds.
    pub fn cleanup_interval_seconds(&self) -> u64 {
        self.checked.cleanup_interval_seconds
    }
    /// TTL overrides by source name, in seconds.
    pub fn per_source_ttl(&self) -> &BTreeMap<String, u64> {
        &self.checked.per_source_ttl
    }
    /// The TTL an entry from `source` gets: its override, else the default.
    pub fn ttl_for_source(&self, source: &str) -> u64 {
        self.checked
            .per_source_ttl
            .get(source)
            .copied()
            .unwrap_or(self.checked.default_ttl_seconds)
    }
    /// Directory of L2 (JSONL shards or `l2_cache.db`).
    pub fn l2_cache_dir(&self) -> &Path {
        &self.checked.l2_cache_dir
    }
    /// Path of the L3 database.
    pub fn l3_database_path(&self) -> &Path {
        &self.checked.l3_database_path
    }
    /// The configured Fernet key, if any.
    pub fn encryption_key(&self) -> Option<&Secret> {
        self.checked.encryption_key.as_ref()
    }
    /// Whether health failures invalidate entries.
    pub fn health_check_invalidation(&self) -> bool {
        self.checked.health_check_invalidation
    }
    /// Failures before an entry is invalidated.
    pub fn failure_threshold(&self) -> u32 {
        self.checked.failure_threshold
    }
    /// Whether statistics are kept.
    pub fn enable_statistics(&self) -> bool {
        self.checked.enable_statistics
    }
    /// Statistics aggregation interval, in seconds.
    pub fn statistics_interval(&self) -> u64 {
        self.checked.statistics_interval
    }
}

/// Builds a [`CacheConfig`]; [`CacheConfigBuilder::build`] checks every bound. Also the serde
/// form of a config document: every field optional, defaulting as the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfigBuilder {
    l1_config: CacheTierConfig,
    l2_config: CacheTierConfig,
    l2_backend: L2BackendType,
    l3_config: CacheTierConfig,
    default_ttl_seconds: u64,
    ttl_cleanup_interval: u64,
    enable_background_cleanup: bool,
    cleanup_interval_seconds: u64,
    per_source_ttl: BTreeMap<String, u64>,
    l2_cache_dir: PathBuf,
    l3_database_path: PathBuf,
    #[serde(deserialize_with = "deserialize_key")]
    encryption_key: Option<Secret>,
    health_check_invalidation: bool,
    failure_threshold: u32,
    enable_statistics: bool,
    statistics_interval: u64,
}

impl Default for CacheConfigBuilder {
    fn default() -> Self {
        Self {
            l1_config: CacheTierConfig::bounded(1000),
            l2_config: CacheTierConfig::bounded(5000),
            l2_backend: L2BackendType::Jsonl,
            l3_config: CacheTierConfig::unbounded(),
            default_ttl_seconds: 3600,
            ttl_cleanup_interval: 60,
            enable_background_cleanup: false,
            cleanup_interval_seconds: 60,
            per_source_ttl: BTreeMap::new(),
            l2_cache_dir: PathBuf::from(".cache/proxies"),
            l3_database_path: PathBuf::from(".cache/db/proxywhirl.db"),
            encryption_key: None,
            health_check_invalidation: true,
            failure_threshold: 3,
            enable_statistics: true,
            statistics_interval: 5,
        }
    }
}

/// Generates a consuming setter per field.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )+
    };
}

impl CacheConfigBuilder {
    setters! {
        /// L1 (memory) tier.
        l1_config: CacheTierConfig,
        /// L2 (disk) tier.
        l2_config: CacheTierConfig,
        /// Which backend holds L2.
        l2_backend: L2BackendType,
        /// L3 (SQLite) tier.
        l3_config: CacheTierConfig,
        /// Default TTL in seconds (60 ..= [`MAX_TTL_SECONDS`]).
        default_ttl_seconds: u64,
        /// TTL manager cleanup interval in seconds (>= 10).
        ttl_cleanup_interval: u64,
        /// Whether a background thread removes expired entries.
        enable_background_cleanup: bool,
        /// Background cleanup interval in seconds (>= 5).
        cleanup_interval_seconds: u64,
        /// Whether health failures invalidate entries.
        health_check_invalidation: bool,
        /// Failures before invalidation (>= 1).
        failure_threshold: u32,
        /// Whether statistics are kept.
        enable_statistics: bool,
        /// Statistics interval in seconds (>= 1).
        statistics_interval: u64,
    }

    /// Replaces every per-source TTL override (each 60 ..= [`MAX_TTL_SECONDS`]).
    pub fn per_source_ttl(mut self, overrides: impl IntoIterator<Item = (String, u64)>) -> Self {
        self.per_source_ttl = overrides.into_iter().collect();
        self
    }

    /// Sets the TTL of entries from `source`.
    pub fn source_ttl(mut self, source: impl Into<String>, ttl_seconds: u64) -> Self {
        self.per_source_ttl.insert(source.into(), ttl_seconds);
        self
    }

    /// Directory of L2.
    pub fn l2_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.l2_cache_dir = dir.into();
        self
    }

    /// Path of the L3 database.
    pub fn l3_database_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.l3_database_path = path.into();
        self
    }

    /// The Fernet key (urlsafe base64 of 32 bytes; checked when the key ring is built).
    pub fn encryption_key(mut self, key: Option<Secret>) -> Self {
        self.encryption_key = key;
        self
    }

    /// Checks every bound and returns the configuration, or the first field out of bounds.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        self.l1_config.validate("l1_config")?;
        self.l2_config.validate("l2_config")?;
        self.l3_config.validate("l3_config")?;
        ttl_in_range("default_ttl_seconds", self.default_ttl_seconds)?;
        at_least("ttl_cleanup_interval", self.ttl_cleanup_interval, 10)?;
        at_least("cleanup_interval_seconds", self.cleanup_interval_seconds, 5)?;
        for (source, ttl) in &self.per_source_ttl {
            ttl_in_range(&format!("per_source_ttl[{source:?}]"), *ttl)?;
        }
        not_empty("l2_cache_dir", &self.l2_cache_dir)?;
        not_empty("l3_database_path", &self.l3_database_path)?;
        at_least("failure_threshold", u64::from(self.failure_threshold), 1)?;
        at_least("statistics_interval", self.statistics_interval, 1)?;
        Ok(CacheConfig { checked: self })
    }
}

impl From<CacheConfig> for CacheConfigBuilder {
    fn from(config: CacheConfig) -> Self {
        config.checked
    }
}

impl TryFrom<CacheConfigBuilder> for CacheConfig {
    type Error = ConfigError;

    fn try_from(builder: CacheConfigBuilder) -> Result<Self, Self::Error> {
        builder.build()
    }
}

fn at_least(field: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::OutOfBounds {
            field: field.to_owned(),
            value,
            bound: format!(">= {min}"),
        });
    }
    Ok(())
}

fn ttl_in_range(field: &str, value: u64) -> Result<(), ConfigError> {
    if !(60..=MAX_TTL_SECONDS).contains(&value) {
        return Err(ConfigError::OutOfBounds {
            field: field.to_owned(),
            value,
            bound: format!("between 60 and {MAX_TTL_SECONDS} (100 years)"),
        });
    }
    Ok(())
}

fn not_empty(field: &str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "must not be empty".to_owned(),
        });
    }
    Ok(())
}

fn deserialize_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(s) if s == MASK => Err(serde::de::Error::custom(
            "encryption_key is the mask \"***\" of a serialized config, not a key: supply the real key",
        )),
        other => Ok(other.map(Secret::from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_references() {
        let c = CacheConfig::default();
        assert_eq!(c.l1_config().max_entries, Some(1000));
        assert_eq!(c.l2_config().max_entries, Some(5000));
        assert_eq!(c.l3_config().max_entries, None);
        assert_eq!(c.l2_backend(), L2BackendType::Jsonl);
        assert_eq!(
            (
                c.default_ttl_seconds(),
                c.ttl_cleanup_interval(),
                c.cleanup_interval_seconds()
            ),
            (3600, 60, 60)
        );
        assert!(!c.enable_background_cleanup());
        assert_eq!(c.l2_cache_dir(), Path::new(".cache/proxies"));
        assert_eq!(c.l3_database_path(), Path::new(".cache/db/proxywhirl.db"));
        assert!(c.encryption_key().is_none());
        assert!(c.health_check_invalidation());
        assert_eq!((c.failure_threshold(), c.statistics_interval()), (3, 5));
        assert!(c.enable_statistics());
        assert_eq!(CacheConfig::builder().build().unwrap(), c);
    }

    #[test]
    fn per_source_ttl_overrides_default() {
        let c = CacheConfig::builder().source_ttl("free", 120).build().unwrap();
        assert_eq!(c.ttl_for_source("free"), 120);
        assert_eq!(c.ttl_for_source("other"), 3600);
    }

    #[test]
    fn serialization_masks_the_key_and_masked_key_is_rejected() {
        let c = CacheConfig::builder()
            .encryption_key(Some(Secret::new("k-e-y")))
            .build()
            .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("k-e-y") && json.contains(r#""encryption_key":"***""#),
            "{json}"
        );
        assert!(!format!("{c:?}").contains("k-e-y"));
        let err = CacheConfig::from_json_str(&json).unwrap_err();
        assert!(err.to_string().contains("encryption_key"), "{err}");
    }

    #[test]
    fn json_round_trip_without_key() {
        let c = CacheConfig::builder()
            .l2_backend(L2BackendType::Sqlite)
            .l1_config(CacheTierConfig::bounded(10).with_policy(EvictionPolicy::Lfu))
            .source_ttl("api", 600)
            .build()
            .unwrap();
        let back = CacheConfig::from_json_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
