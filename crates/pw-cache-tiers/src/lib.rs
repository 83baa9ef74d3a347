#![doc = include_str!("../README.md")]
//!
//! ## Formats
//! Each backend's module says how it uses its format; the formats themselves (every file,
//! table, column and Redis key, precisely enough to write a reader or a writer) are specified in
//! the guide [`pw_cache::docs::formats`] of the crate `pw-cache`. Health history is one trait
//! for both L3 backends ([`HealthHistory`]).
//!
//! ## Backends
//! A backend implements [`TierBackend`]: the operations of [`CacheTier`] with plain results.
//! [`CacheTier`] comes with it from one blanket impl (`backend.rs`), which records each
//! outcome in the tier's [`TierHealth`] (the memory tier, which never fails, implements
//! [`CacheTier`] itself). The SQLite rows and the Redis hashes are read and written by one
//! entry codec (`entry_codec.rs`: each backend gives typed access to its values, the codec
//! names each field once, by [`pw_cache_model::fields`]).
//!
//! ## Unreadable entries
//! An entry a tier cannot read back — a damaged record, a value outside its field, a credential
//! token that no key of the ring opens — is **not expired and not garbage**. Every backend
//! follows one rule: a lookup reports it ([`TierError::is_corrupt_entry`]) and changes
//! nothing; expiry cleanup, eviction, compaction and recording use leave it where it is, byte
//! for byte, and count the skip ([`CacheTier::unreadable_skipped`]); only a put of the same key
//! (the caller's new data), a delete of that key, a clear, or the operator's explicit
//! [`CacheTier::remove_unreadable`] replaces or removes it. A tier that holds nothing but
//! unreadable entries may so stay above its `max_entries`.
//!
//! ## Non-goals
//! A tier never moves entries between levels (promotion, demotion) and keeps no hit/miss
//! statistics: the manager in `pw-cache` does both.
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod entry_codec;
mod error;
pub mod health_history;
pub mod jsonl;
mod locks;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis_l3;
pub mod sqlite;
mod tier;
mod touches;

// The SQLite modules at the paths they had before `sqlite/` held them all.
pub use sqlite::checkpoint;
pub use sqlite::l2 as sqlite_l2;
pub use sqlite::l3 as sqlite_l3;

pub use backend::TierBackend;
pub use error::TierError;
pub use health_history::HealthHistory;
pub use jsonl::{JsonlDamage, JsonlTier};
pub use memory::{AccessOrder, MemoryTier};
#[cfg(feature = "redis")]
pub use redis_l3::{ChangeKind, RedisL3Options, RedisL3Tier, RemoteEvent, Subscription};
pub use sqlite_l2::{MigrationReport, SqliteL2Tier};
pub use sqlite_l3::{HealthCheck, HealthRecord, L3OpenReport, SqliteL3Tier};
pub use tier::{CacheTier, FAILURE_THRESHOLD, FailureMark, Rotated, TierHealth};

// The layers below, for a crate that depends on `pw-cache-tiers` alone: every type this crate's
// API takes or returns is nameable from here.

/// The model layer ([`pw_cache_model`]): entries, configuration, statistics, timestamps.
pub use pw_cache_model as model;

/// The crypto layer ([`pw_cache_crypto`]): the key ring every disk tier takes, and the trust
/// checks of its directories.
pub use pw_cache_crypto as crypto;

#[doc(no_inline)]
pub use pw_cache_model::{
    AccessRecord, CacheEntry, CacheTierConfig, CacheTierType, EntryError, EvictionPolicy, HealthDetail, HealthStatus,
    OffsetDateTime, Secret,
};

#[doc(no_inline)]
pub use pw_cache_crypto::{CryptoError, FernetKey, KeyRing, Trust, TrustError};

/// The SQLite binding of the SQLite tiers: [`TierError::Sqlite`] holds its error, and the
/// functions of [`checkpoint`] take its connections.
#[doc(no_inline)]
pub use rusqlite;

/// The connection pool of the SQLite tiers: [`TierError::Pool`] holds its error.
#[doc(no_inline)]
pub use r2d2;
