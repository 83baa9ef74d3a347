//! pw-cache's benchmarks (not published).
//!
//! - [`workload`]: the workload of proxywhirl's `bench_python.py`, ported exactly (its mixed
//!   sequence is checked against the one Python draws).
//! - [`replay`]: that benchmark's configurations and phases run through pw-cache, printing the
//!   same JSON records; `cargo xtask bench` runs it in release (binary `replay`) and, with
//!   `--vs-python`, runs the reference beside it and prints the ratios.
//! - [`raw`]: raw rusqlite on the SQLite tiers' schema and pragmas, the floor under them (the
//!   replay's `floor` configuration and the `sqlite_tiers` bench).
//! - `benches/`: divan benches of the L1 tier against moka and quick_cache, and of the SQLite
//!   tiers against raw rusqlite; `redis_get`, the cost of one get from the Redis L3 tier.
//!
//! See `docs/performance.md` for the figures and how to reproduce them.

pub mod compare;
pub mod raw;
pub mod replay;
pub mod workload;
