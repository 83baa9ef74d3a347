//! Compatibility with proxywhirl 0.3.3: its files, tokens, keys, timestamps and statistics, read
//! as Python read them and written as it writes them (the fixtures in `tests/fixtures/`).
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod cache_keys;
mod compat_export;
mod compat_jsonl;
mod compat_sqlite_l2;
mod compat_sqlite_l3;
mod compat_tokens;
mod fernet_spec;
mod odd_values;
mod statistics;
mod timestamps;
mod warm_fixtures;
