//! The L1 tier ([`pw_cache::MemoryTier`]) against the caches a user would pick instead,
//! `moka::sync::Cache` and `quick_cache::sync::Cache`, on the same keys, the same values and
//! the same capacity, at 1 and 2 threads.
//!
//! # What is measured
//!
//! The data is the workload of `bench_python.py` ([`pw_cache_benches::workload`]): the first
//! `n` entries (`n` = 10,000 and 100,000) and `n` miss keys. Every cache maps the entry's key
//! (a `String`) to the whole [`CacheEntry`], and every `get` returns a clone of the entry, as
//! the tier's [`CacheTier::get`] does (moka's and quick_cache's `get` clone the value too):
//! the clone (five small allocations for an entry with credentials) is part of every number.
//! Each candidate keeps its own policy: the tier its default (LRU, up to 16 shards of `std`
//! mutexes, foldhash), moka its TinyLFU (SipHash), quick_cache its CLOCK-PRO (ahash, `4 × cores`
//! shards). `PwCacheL1` has the tier's default `AccessOrder::PerThread`; `PwCacheL1Exact` is
//! the tier with `AccessOrder::Exact` (the threads' hits applied in the exact order they
//! happened: a shared sequence number per hit). `LockedMap` is not a cache: shards of mutexes
//! around a map, nothing recorded, nothing evicted (the gets only), to show what a lock per
//! hit alone scales to.
//!
//! - `get_hit`: gets of the `n` held keys, in the workload's order, from a cache of capacity
//!   `2 n` filled with the `n` entries beforehand (headroom so that no candidate evicts any:
//!   the fill is checked, and every get of the sample must hit).
//! - `get_miss`: gets of the `n` miss keys from that same filled cache.
//! - `insert_evict`: the `n` entries inserted into an empty cache of capacity `n / 10` (so 90 %
//!   of inserts evict, or for moka, are refused by its admission filter), the key and the entry
//!   cloned by each insert (the tier's `put` takes `&CacheEntry` and clones it; the others are
//!   given `key.clone()` and `entry.clone()`). moka defers its eviction work:
//!   `run_pending_tasks` ends each sample, so that the work is counted.
//!
//! Threads: the cases `t=1` and `t=2` run each sample on `t` threads sharing the cache (used
//! for `t=1` too, so the two pay the same fixed cost). For the gets, `entry_clone` and
//! `machine_scaling` the threads are spawned once per case and wait on a barrier between
//! samples ([`with_workers`]); `insert_evict`, whose samples each take a new cache, spawns
//! them per sample. For the gets each thread does
//! at least [`MIN_OPS_PER_THREAD`] gets (whole passes over the keys, thread `i` starting at
//! key `i n / t`); for `insert_evict` thread `i` inserts entries `i, i + t, i + 2t, ...`, so the
//! `n` inserts are split between the threads. The counter is the total number of operations
//! of the sample on all threads, so the items/s divan prints is the aggregate throughput and
//! `t=2` over `t=1` is the scaling (the target is ≥ 1.5 on a machine with 2 free cores).
//!
//! `machine_scaling` is the ceiling of that ratio on the machine at hand: the same threads
//! doing pure arithmetic ([`SplitMix64`] draws: no memory, no sharing). Where it is itself
//! below 1.5 (a shared machine, SMT siblings, a busy neighbour), no cache can reach 1.5 there:
//! compare a cache's ratio with this one. `entry_clone` is the floor of `get_hit`: the same
//! passes over the same entries, only cloning each (no cache), which every candidate pays.
//! `line_handoff` is the price of a line passing between the two cores (two threads handing
//! one counter back and forth): every lock-based cache's `t=2` pays it on each hit whose
//! shard the other thread used last, and it moves with the host's load.
//!
//! # Run
//!
//! ```text
//! cargo bench -p pw-cache-benches --bench l1_vs_moka
//! cargo bench -p pw-cache-benches --bench l1_vs_moka -- --sample-count 10 get_hit
//! ```
//!
//! Read the "items/s" lines: for each case, the tier's median against moka's and quick_cache's
//! (the issue's target: the tier's get within 2× of moka's, i.e. at least half its rate).

// A benchmark that hits an error has nothing to measure: it stops there, as a test would.
#![allow(
    clippy::unwrap_used,
    reason = "a bench that cannot set up its data should stop at once, with the error"
)]

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, LazyLock, Mutex};

use divan::Bencher;
use divan::counter::ItemsCount;
use pw_cache::{AccessOrder, CacheEntry, CacheTier, CacheTierConfig, MemoryTier};
use pw_cache_benches::workload::{SplitMix64, Workload};

/// The largest size: the workload is built once at this size and sliced.
const MAX: usize = 100_000;

/// The draws per thread per sample of `machine_scaling`.
const SPIN_DRAWS_PER_THREAD: usize = 4_000_000;

/// Each thread does at least this many gets per sample (whole passes over the keys), so that
/// spawning the threads is noise (below 1 %).
const MIN_OPS_PER_THREAD: usize = 100_000;

fn main() {
    divan::main();
}

/// The workload's entries and miss keys, `MAX` of each.
static WORKLOAD: LazyLock<Workload> = LazyLock::new(|| Workload::new(MAX, pw_cache::model::timestamp::now_utc()));

/// One case: `n` entries, `threads` threads.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    threads: usize,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n={} t={}", self.n, self.threads)
    }
}

const CASES: [Case; 4] = [
    Case { n: 10_000, threads: 1 },
    Case { n: 10_000, threads: 2 },
    Case { n: 100_000, threads: 1 },
    Case { n: 100_000, threads: 2 },
];

/// What the benches need of a cache: the tier's operations, in the others' terms.
trait Candidate: Sync {
    /// An empty cache of at most `capacity` entries.
    fn with_capacity(capacity: usize) -> Self;
    /// The entry under `key`, cloned.
    fn get(&self, key: &str) -> Option<CacheEntry>;
    /// Stores a copy of `entry` under its key.
    fn insert(&self, entry: &CacheEntry);
    /// Finishes deferred work (moka's eviction and admission).
    fn settle(&self) {}
}

/// The L1 tier, as the manager builds it (`MemoryTier::new`: default shards, policy and access
/// order, [`AccessOrder::PerThread`]).
struct PwCacheL1(MemoryTier);

impl Candidate for PwCacheL1 {
    fn with_capacity(capacity: usize) -> Self {
        Self(MemoryTier::new(&CacheTierConfig::bounded(capacity as u64)))
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        self.0.get(key).unwrap()
    }

    fn insert(&self, entry: &CacheEntry) {
        self.0.put(entry).unwrap();
    }
}

/// The L1 tier with [`AccessOrder::Exact`]: the threads' accesses applied in the exact order
/// they happened (a shared sequence number per hit). Otherwise [`PwCacheL1`].
struct PwCacheL1Exact(PwCacheL1);

impl Candidate for PwCacheL1Exact {
    fn with_capacity(capacity: usize) -> Self {
        let PwCacheL1(tier) = PwCacheL1::with_capacity(capacity);
        Self(PwCacheL1(tier.with_access_order(AccessOrder::Exact)))
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        self.0.get(key)
    }

    fn insert(&self, entry: &CacheEntry) {
        self.0.insert(entry);
    }
}

/// `moka::sync::Cache` with its defaults (TinyLFU, SipHash).
struct Moka(moka::sync::Cache<String, CacheEntry>);

impl Candidate for Moka {
    fn with_capacity(capacity: usize) -> Self {
        Self(moka::sync::Cache::new(capacity as u64))
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        self.0.get(key)
    }

    fn insert(&self, entry: &CacheEntry) {
        self.0.insert(entry.key.clone(), entry.clone());
    }

    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

/// `quick_cache::sync::Cache` with its defaults (CLOCK-PRO, ahash, `4 × cores` shards).
struct QuickCache(quick_cache::sync::Cache<String, CacheEntry>);

impl Candidate for QuickCache {
    fn with_capacity(capacity: usize) -> Self {
        Self(quick_cache::sync::Cache::new(capacity))
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        self.0.get(key)
    }

    fn insert(&self, entry: &CacheEntry) {
        self.0.insert(entry.key.clone(), entry.clone());
    }
}

/// Not a cache: the simplest design with a lock per hit, as the tier's (shards of `std` mutexes
/// around a map, the tier's default shard count and hasher). A get locks the key's shard,
/// looks the key up and clones the entry, and records nothing; an insert never evicts (so:
/// `get_hit` and `get_miss` only). A hit writes one line that the other core may hold, the
/// shard's lock word, and nothing else: its `t=2` / `t=1` shows what a lock per hit scales to
/// on the machine at that moment, with no policy's bookkeeping.
struct LockedMap {
    shards: Vec<CacheLine<LockedShard>>,
    shard_hasher: foldhash::fast::RandomState,
}

/// One shard of [`LockedMap`].
type LockedShard = Mutex<HashMap<String, CacheEntry, foldhash::fast::RandomState>>;

/// A value on 128-byte lines of its own, as the tier's shards are.
#[repr(align(128))]
struct CacheLine<T>(T);

impl LockedMap {
    fn shard(&self, key: &str) -> &LockedShard {
        let at = self.shard_hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[at].0
    }
}

impl Candidate for LockedMap {
    fn with_capacity(capacity: usize) -> Self {
        let count = MemoryTier::default_shard_count(Some(capacity as u64));
        Self {
            shards: (0..count).map(|_| CacheLine(Mutex::default())).collect(),
            shard_hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn get(&self, key: &str) -> Option<CacheEntry> {
        self.shard(key).lock().unwrap().get(key).cloned()
    }

    fn insert(&self, entry: &CacheEntry) {
        self.shard(&entry.key)
            .lock()
            .unwrap()
            .insert(entry.key.clone(), entry.clone());
    }
}

/// A cache of capacity `2 n` holding entries `0..n` (checked).
fn filled<C: Candidate>(n: usize) -> C {
    let cache = C::with_capacity(2 * n);
    for e in &WORKLOAD.entries[..n] {
        cache.insert(e);
    }
    cache.settle();
    let held = WORKLOAD.entries[..n]
        .iter()
        .filter(|e| cache.get(&e.key).is_some())
        .count();
    assert_eq!(held, n, "the filled cache must hold every entry");
    cache
}

/// Runs `op(thread)` on `threads` scoped threads and waits for them (threads spawned for the
/// call: for `insert_evict`, whose samples each take a cache of their own).
fn on_threads(threads: usize, op: impl Fn(usize) + Sync) {
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let op = &op;
            scope.spawn(move || op(thread));
        }
    });
}

/// Calls `bench` with a `run` that has each of `threads` workers do `op(worker)` once and
/// returns when all are done. The workers are spawned once, before `bench`, and wait on a
/// barrier between runs: threads spawned for each sample sometimes started on the core of the
/// thread that spawned them and shared it for part of a 10–20 ms sample, so the samples of
/// `t=2` were bimodal (1.0× to 2.0× one thread, even for `machine_scaling`), a scheduler's
/// delay measured as if it were the cache's.
fn with_workers(threads: usize, op: impl Fn(usize) + Sync, bench: impl FnOnce(&dyn Fn())) {
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (start, done, stop, failed, op) = (&start, &done, &stop, &failed, &op);
            scope.spawn(move || {
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    // A failed check must fail the bench, not leave the others at the barrier.
                    if panic::catch_unwind(AssertUnwindSafe(|| op(worker))).is_err() {
                        failed.store(true, Ordering::Release);
                    }
                    done.wait();
                }
            });
        }
        bench(&|| {
            start.wait();
            done.wait();
            assert!(
                !failed.load(Ordering::Acquire),
                "a worker's check failed (see its panic above)"
            );
        });
        stop.store(true, Ordering::Release);
        start.wait();
    });
}

/// `passes` passes of gets over `keys` on each of `case.threads` threads, thread `i` starting
/// at key `i n / t`; each get must return `Some` when `hit`, `None` otherwise.
fn gets<C: Candidate>(bencher: Bencher, cache: &C, keys: &[String], case: Case, hit: bool) {
    let n = keys.len();
    let passes = MIN_OPS_PER_THREAD.div_ceil(n);
    let bencher = bencher.counter(ItemsCount::new(case.threads * passes * n));
    let op = |thread| {
        let start = thread * n / case.threads;
        let mut found = 0usize;
        for _ in 0..passes {
            for key in keys[start..].iter().chain(&keys[..start]) {
                found += usize::from(divan::black_box(cache.get(key)).is_some());
            }
        }
        assert_eq!(found, if hit { passes * n } else { 0 });
    };
    with_workers(case.threads, op, |run| bencher.bench_local(run));
}

/// Gets of held keys: each returns a clone of the entry.
#[divan::bench(types = [PwCacheL1, PwCacheL1Exact, Moka, QuickCache, LockedMap], args = CASES, sample_count = 20, sample_size = 1)]
fn get_hit<C: Candidate>(bencher: Bencher, case: Case) {
    let cache = filled::<C>(case.n);
    let keys: Vec<String> = WORKLOAD.entries[..case.n].iter().map(|e| e.key.clone()).collect();
    gets(bencher, &cache, &keys, case, true);
}

/// Gets of absent keys, from the same filled cache.
#[divan::bench(types = [PwCacheL1, Moka, QuickCache, LockedMap], args = CASES, sample_count = 20, sample_size = 1)]
fn get_miss<C: Candidate>(bencher: Bencher, case: Case) {
    let cache = filled::<C>(case.n);
    gets(bencher, &cache, &WORKLOAD.miss_keys[..case.n], case, false);
}

/// `n` inserts into an empty cache of capacity `n / 10`: most of them evict (or are refused).
#[divan::bench(types = [PwCacheL1, PwCacheL1Exact, Moka, QuickCache], args = CASES, sample_count = 20, sample_size = 1)]
fn insert_evict<C: Candidate>(bencher: Bencher, case: Case) {
    let entries = &WORKLOAD.entries[..case.n];
    bencher
        .counter(ItemsCount::new(case.n))
        .with_inputs(|| C::with_capacity(case.n / 10))
        .bench_local_values(|cache| {
            on_threads(case.threads, |thread| {
                for e in entries.iter().skip(thread).step_by(case.threads) {
                    cache.insert(e);
                }
            });
            cache.settle();
            // Returned: the cache and what it still holds are dropped outside the timing.
            cache
        });
}

/// The machine's own scaling: `t` threads each drawing [`SPIN_DRAWS_PER_THREAD`] numbers from
/// a [`SplitMix64`] of its own (CPU only). The ceiling of any cache's `t=2` / `t=1` here.
#[divan::bench(args = [1, 2], sample_count = 20, sample_size = 1)]
fn machine_scaling(bencher: Bencher, threads: usize) {
    let bencher = bencher.counter(ItemsCount::new(threads * SPIN_DRAWS_PER_THREAD));
    let op = |thread| {
        let mut rng = SplitMix64::new(divan::black_box(thread as u64));
        let mut acc = 0u64;
        for _ in 0..SPIN_DRAWS_PER_THREAD {
            acc ^= rng.next_u64();
        }
        divan::black_box(acc);
    };
    with_workers(threads, op, |run| bencher.bench_local(run));
}

/// Handoffs per sample of `line_handoff`.
const HANDOFFS: u64 = 200_000;

/// The machine's price of a line passing between two cores: two threads hand one counter back
/// and forth, each waiting for the other's increment, [`HANDOFFS`] increments per sample.
/// Items/s are handoffs per second: `1,000 / Mitem/s` is the nanoseconds of one handoff, what a
/// hit pays each time it writes a line (a shard's lock word) that the other core wrote last.
/// It moves with the host's load (48–121 ns within one hour on the machine of
/// `docs/performance.md`, measured the same way before this case existed), and with it every
/// lock-based cache's `t=2` / `t=1`.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn line_handoff(bencher: Bencher) {
    let line = CacheLine(AtomicU64::new(0));
    let bencher = bencher.counter(ItemsCount::new(HANDOFFS as usize));
    let op = |worker: usize| {
        // Between samples the counter is a multiple of HANDOFFS, and it cannot pass the next
        // one before both workers are in: this sample's start, whichever worker loads first.
        let start = line.0.load(Ordering::Acquire) / HANDOFFS * HANDOFFS;
        for i in (worker as u64..HANDOFFS).step_by(2) {
            let mut spins = 0u32;
            while line.0.load(Ordering::Acquire) != start + i {
                spins += 1;
                if spins.is_multiple_of(1024) {
                    // One core, or the other worker descheduled: let it run.
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
            }
            line.0.store(start + i + 1, Ordering::Release);
        }
    };
    with_workers(2, op, |run| bencher.bench_local(run));
}

/// The floor of `get_hit`: the same passes and threads over the workload's entries, each only
/// cloned (no lookup, no lock), as every candidate's hit returns a clone.
#[divan::bench(args = CASES, sample_count = 20, sample_size = 1)]
fn entry_clone(bencher: Bencher, case: Case) {
    let entries = &WORKLOAD.entries[..case.n];
    let passes = MIN_OPS_PER_THREAD.div_ceil(case.n);
    let bencher = bencher.counter(ItemsCount::new(case.threads * passes * case.n));
    let op = |thread| {
        let start = thread * case.n / case.threads;
        for _ in 0..passes {
            for e in entries[start..].iter().chain(&entries[..start]) {
                divan::black_box(e.clone());
            }
        }
    };
    with_workers(case.threads, op, |run| bencher.bench_local(run));
}
