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

use crate::enums::{EvictionPolicy, L2BackendType, L3BackendType};
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
/// | `l3_backend` | `sqlite` | `sqlite` or `redis` |
/// | `redis_url` | none (then `PW_CACHE_REDIS_URL`) | `redis://` or `rediss://`; a secret, written as `"***"` |
/// | `redis_namespace` | `pw-cache` | 1-64 characters, none of `{}` or white space |
/// | `redis_connect_timeout_ms` | 250 | 1 ..= 60,000 |
/// | `redis_command_timeout_ms` | 250 | 1 ..= 60,000 |
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
    /// L3 (SQLite or Redis) tier.
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
    /// Which backend holds L3.
    pub fn l3_backend(&self) -> L3BackendType {
        self.checked.l3_backend
    }
    /// The Redis L3's URL, if configured (else the manager reads `PW_CACHE_REDIS_URL`).
    pub fn redis_url(&self) -> Option<&Secret> {
        self.checked.redis_url.as_ref()
    }
    /// The Redis L3's namespace.
    pub fn redis_namespace(&self) -> &str {
        &self.checked.redis_namespace
    }
    /// Connect timeout of the Redis L3.
    pub fn redis_connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.checked.redis_connect_timeout_ms)
    }
    /// Command timeout of the Redis L3.
    pub fn redis_command_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.checked.redis_command_timeout_ms)
    }
}

/// The namespace of a Redis L3 unless the config says otherwise.
pub const DEFAULT_REDIS_NAMESPACE: &str = "pw-cache";

/// The environment variable holding the Redis L3's URL when the config has none.
pub const REDIS_URL_ENV: &str = "PW_CACHE_REDIS_URL";

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
    l3_backend: L3BackendType,
    #[serde(deserialize_with = "deserialize_redis_url")]
    redis_url: Option<Secret>,
    redis_namespace: String,
    redis_connect_timeout_ms: u64,
    redis_command_timeout_ms: u64,
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
            l3_backend: L3BackendType::Sqlite,
            redis_url: None,
            redis_namespace: DEFAULT_REDIS_NAMESPACE.to_owned(),
            redis_connect_timeout_ms: 250,
            redis_command_timeout_ms: 250,
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
        /// L3 (SQLite or Redis) tier.
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
        /// Which backend holds L3.
        l3_backend: L3BackendType,
        /// Connect timeout of the Redis L3, in milliseconds (1 ..= 60,000).
        redis_connect_timeout_ms: u64,
        /// Command (read and write) timeout of the Redis L3, in milliseconds (1 ..= 60,000).
        redis_command_timeout_ms: u64,
    }

    /// The Redis L3's URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS). It may
    /// carry a password, so it is a [`Secret`]: never printed, written as `"***"`. When `None`,
    /// the manager reads `PW_CACHE_REDIS_URL`.
    pub fn redis_url(mut self, url: Option<Secret>) -> Self {
        self.redis_url = url;
        self
    }

    /// The Redis L3's namespace: every key it writes starts `pwc:{namespace}:`, so several
    /// caches can share one server, and the braces make it a Redis Cluster hash tag.
    pub fn redis_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.redis_namespace = namespace.into();
        self
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
        for (field, value) in [
            ("redis_connect_timeout_ms", self.redis_connect_timeout_ms),
            ("redis_command_timeout_ms", self.redis_command_timeout_ms),
        ] {
            in_range(field, value, 1, 60_000)?;
        }
        check_redis_namespace(&self.redis_namespace)?;
        if let Some(url) = &self.redis_url {
            check_redis_url(url)?;
        }
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

fn in_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::OutOfBounds {
            field: field.to_owned(),
            value,
            bound: format!("between {min} and {max}"),
        });
    }
    Ok(())
}

/// Whether `namespace` can be part of every Redis key and of a hash tag: not empty, and none of
/// `{`, `}`, white space or control characters. (The config also bounds it to 64 characters.)
pub fn is_usable_redis_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && !namespace
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
}

/// The namespace is part of every Redis key and of a hash tag: 1-64 characters, none of `{`,
/// `}`, white space or control characters.
fn check_redis_namespace(namespace: &str) -> Result<(), ConfigError> {
    if !is_usable_redis_namespace(namespace) || namespace.chars().count() > 64 {
        return Err(ConfigError::Invalid {
            field: "redis_namespace".to_owned(),
            reason: "must be 1 to 64 characters, without braces, white space or control characters".to_owned(),
        });
    }
    Ok(())
}

/// A Redis URL must say `redis://` or `rediss://`; the reason never repeats the URL (it may
/// carry a password).
pub fn check_redis_url(url: &Secret) -> Result<(), ConfigError> {
    let text = url.expose_secret().trim();
    let scheme_ok = ["redis://", "rediss://"].iter().any(|scheme| {
        text.len() > scheme.len() && text.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    if !scheme_ok {
        return Err(ConfigError::Invalid {
            field: "redis_url".to_owned(),
            reason: "must start with redis:// or rediss:// and name a host (the URL is not shown: it may hold a \
                     password)"
                .to_owned(),
        });
    }
    Ok(())
}

/// A secret field of a config document; the mask `"***"` a serialized config writes in its
/// place is refused with `refusal`, never read as the secret `***`.
fn deserialize_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
    refusal: &'static str,
) -> Result<Option<Secret>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(s) if s == MASK => Err(serde::de::Error::custom(refusal)),
        other => Ok(other.map(Secret::from)),
    }
}

fn deserialize_redis_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    deserialize_secret(
        deserializer,
        "redis_url is the mask \"***\" of a serialized config, not a URL: supply the real URL",
    )
}

fn deserialize_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    deserialize_secret(
        deserializer,
        "encryption_key is the mask \"***\" of a serialized config, not a key: supply the real key",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_settings_default_check_and_never_show_the_url() {
        let c = CacheConfig::default();
        assert_eq!(c.l3_backend(), L3BackendType::Sqlite);
        assert_eq!(c.redis_namespace(), DEFAULT_REDIS_NAMESPACE);
        assert!(c.redis_url().is_none());
        assert_eq!(c.redis_connect_timeout().as_millis(), 250);

        let url = "redis://:pw-in-url@127.0.0.1:6390/2";
        let c = CacheConfig::builder()
            .l3_backend(L3BackendType::Redis)
            .redis_url(Some(Secret::new(url)))
            .redis_namespace("fleet-a")
            .build()
            .unwrap();
        assert_eq!(c.redis_url().unwrap().expose_secret(), url);
        let shown = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("pw-in-url"), "{shown}");
        // A masked document is refused, not read as the URL `***`.
        let json = serde_json::to_string(&c).unwrap();
        let err = CacheConfig::from_json_str(&json).unwrap_err().to_string();
        assert!(err.contains("redis_url"), "{err}");

        for (builder, field) in [
            (
                CacheConfig::builder().redis_url(Some(Secret::new("http://:pw-in-url@h:1"))),
                "redis_url",
            ),
            (
                CacheConfig::builder().redis_url(Some(Secret::new("redis://"))),
                "redis_url",
            ),
            // A multi-byte character where the scheme would end: refused, not a panic.
            (
                CacheConfig::builder().redis_url(Some(Secret::new("redis:/é/pw-in-url@h"))),
                "redis_url",
            ),
            (CacheConfig::builder().redis_namespace(""), "redis_namespace"),
            (CacheConfig::builder().redis_namespace("a{b}"), "redis_namespace"),
            (CacheConfig::builder().redis_namespace("a b"), "redis_namespace"),
            (
                CacheConfig::builder().redis_connect_timeout_ms(0),
                "redis_connect_timeout_ms",
            ),
            (
                CacheConfig::builder().redis_command_timeout_ms(60_001),
                "redis_command_timeout_ms",
            ),
        ] {
            let err = builder.build().unwrap_err();
            let text = err.to_string();
            assert!(text.contains(field) && !text.contains("pw-in-url"), "{text}");
        }
        let ok = CacheConfig::from_json_str(r#"{"l3_backend": "Redis", "redis_url": "rediss://h:6380"}"#).unwrap();
        assert_eq!(ok.l3_backend(), L3BackendType::Redis);
    }

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
