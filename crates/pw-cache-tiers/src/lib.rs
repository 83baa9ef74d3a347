//! # pw-cache-tiers
//!
//! The storage backends of pw-cache, each behind one tier contract, each in its own module:
//! - L1 memory: bounded, with real LRU, LFU and FIFO policies;
//! - L2 JSONL: proxywhirl's 16 sharded `shard_NN.jsonl` files, cross-process locked;
//! - L2 SQLite: proxywhirl's `l2_cache.db` (`l2_cache` table);
//! - L3 SQLite: proxywhirl's `cache_entries` and `health_history`.
//!
//! ## Status
//! This crate is the skeleton of the layer (issues 4 and 5 fill it): it builds, it depends
//! only on [`pw_cache_model`] and [`pw_cache_crypto`], and it exports nothing yet.
//!
//! ## Non-goals
//! A tier never moves entries between levels (promotion, demotion): the manager in `pw-cache`
//! does.

#![forbid(unsafe_code)]
