//! The tiers on their own: the memory tier's policies, the L3 backends (SQLite and Redis, over TLS
//! too), health history, and the JSONL to SQLite migration.
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod health_history;
mod l3_behaviour;
mod memory_policies;
mod migrate_jsonl;
mod redis_tier;
mod redis_tls;
