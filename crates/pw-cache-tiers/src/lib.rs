//! # pw-cache-tiers
//!
//! The storage backends of pw-cache, each behind one tier contract ([`CacheTier`]), each in its
//! own module, each the one owner of its on-disk format:
//! - L1 memory: bounded, with real LRU, LFU and FIFO policies;
//! - L2 JSONL: proxywhirl's 16 sharded `shard_NN.jsonl` files, cross-process locked;
//! - L2 SQLite: proxywhirl's `l2_cache.db` (`l2_cache` table);
//! - L3 SQLite: proxywhirl's `cache_entries` and `health_history`;
//! - L3 Redis (cargo feature `redis`, off by default): the same entries and health history in
//!   a Redis shared by several hosts, with change events for their upper tiers.
//!
//! ## Status
//! All four backends are here: the tier contract, typed errors, degradation, the memory tier,
//! the JSONL tier and the two SQLite tiers (pooled connections, WAL, eviction policies, schema
//! version, JSONL migration, health history); with the `redis` feature, the Redis L3 tier
//! (`redis_l3`: pooled connections with timeouts, Lua scripts, change events). Health history
//! is one trait for both L3 backends ([`HealthHistory`]). Formats: `docs/formats.md`.
//!
//! ## Backends
//! A backend implements [`TierBackend`]: the operations of [`CacheTier`] with plain results.
//! [`CacheTier`] comes with it from one blanket impl (`backend.rs`), which records each
//! outcome in the tier's [`TierHealth`] (the memory tier, which never fails, implements
//! [`CacheTier`] itself). The SQLite rows and the Redis hashes are read and written by one
//! entry codec (`entry_codec.rs`: each backend gives typed access to its values, the codec
//! names each field once, by `pw_cache_model::fields`).
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

#![forbid(unsafe_code)]

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
