#![doc = include_str!("../README.md")]
//!
//! ## Contents
//!
//! - [`CacheEntry`]: one cached proxy, its 21 fields in the reference's order; its JSON form
//!   is the reference's export line, byte for byte ([`pyjson`]).
//! - [`Secret`]: credentials and keys; zeroized on drop, `***` in `Debug`, `Display` and serde.
//! - [`CacheConfig`] / [`CacheTierConfig`]: every field, default and bound of the reference,
//!   validated on construction and on deserialization alike ([`ConfigError`] names the field).
//! - [`TierStatistics`] / [`CacheStatistics`]: counters and the reference's formulas.
//! - [`timestamp`]: Python `isoformat()` text, both directions, microsecond precision.
//! - [`generate_cache_key`]: the reference's key of a proxy URL.
//! - [`limits`]: the longest text each field of an entry may hold, for every backend.
//! - [`fields`]: the name of each field of an entry, as every format spells it.
//!
//! ## Non-goals
//! No on-disk format lives here except the shared JSON conventions: the JSONL shard line (with
//! encrypted credentials) belongs to the JSONL tier, the SQLite rows to the SQLite tiers, and
//! tokens to `pw-cache-crypto`. This crate never encrypts, never touches a file.

#![forbid(unsafe_code)]

pub mod access;
pub mod config;
pub mod entry;
pub mod enums;
pub mod fields;
pub mod key;
pub mod lax;
pub mod limits;
pub mod proxy_url;
pub mod pyjson;
pub mod secret;
pub mod stats;
pub mod timestamp;

pub use access::{AccessRecord, HealthDetail};
pub use config::{
    CacheConfig, CacheConfigBuilder, CacheTierConfig, ConfigError, DEFAULT_REDIS_NAMESPACE, MAX_TTL_SECONDS,
    REDIS_URL_ENV,
};
pub use entry::{CacheEntry, EntryError, mask_proxy_url_userinfo, proxy_url_has_userinfo};
pub use enums::{CacheTierType, EvictionPolicy, HealthStatus, L2BackendType, L3BackendType, ParseEnumError};
pub use key::{CACHE_KEY_LEN, generate_cache_key};
pub use proxy_url::{InvalidProxyUrl, ProxyUrl, validate_proxy_url};
pub use secret::Secret;
pub use stats::{CacheStatistics, METRIC_NAMES, TierStatistics};
/// The date-time type of every timestamp in the model (re-exported from `time`).
#[doc(no_inline)]
pub use time::OffsetDateTime;
/// The UTC offset a parsed timestamp had ([`TimestampAdjustment::kept_offset`]; re-exported
/// from `time`).
#[doc(no_inline)]
pub use time::UtcOffset;
pub use timestamp::{TimestampAdjustment, TimestampError};
