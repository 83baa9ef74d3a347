//! Reliability under concurrency and faults: threads and OS processes sharing one cache, writers
//! killed with SIGKILL, and faults (read-only files, garbage, a full disk) a tier degrades and
//! recovers from (docs/reliability.md).
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod crash_kill;
mod faults;
mod jsonl_processes;
mod manager_degradation;
mod manager_threads;
mod reliability_processes;
mod sqlite_processes;
