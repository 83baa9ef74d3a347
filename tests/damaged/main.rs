//! Damaged and unreadable input: damaged files open or fail with a typed error and never a panic,
//! intact entries are served, damage is counted, and nothing the cache cannot read is lost.
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod damaged_corpus;
mod fuzz_regressions;
mod jsonl_damaged;
mod unreadable_kept;
