//! Benchmarks of the JSONL tier at 10,000 entries, with the workload of
//! `../shared/bench/bench_python.py` (the baseline of proxywhirl 0.3.3: 238 puts/s, 93 gets/s),
//! from [`pw_cache_benches::workload`]: entry `i` has `proxy_url = http://10.{i>>16&255}.{i>>8&255}.{i&255}:{8000 + i % 1000}`, its
//! generated key, source `fetched/user/api/warmed`, TTL one day, and credentials (`user{i}`,
//! `pass-{i}-secret`) on odd `i`; miss keys are the keys of `http://miss.example:{i}`.
//!
//! Phases: `put` (all N into an empty directory, in order), `get_hit` (all N in order),
//! `get_miss` (N miss keys); plus `put_update` (N updates of held keys: appends, with
//! compaction as dead lines build up) and `open` (indexing a directory of N entries).
//! Throughput is printed as items/s. The directory is under `/dev/shm` when it exists (as the
//! Python baseline's `--dir /dev/shm`), so the numbers are the tier's, not the disk's.
//!
//! Run: `cargo bench -p pw-cache-benches --bench jsonl_tier`.

// A benchmark that hits an error has nothing to measure: it stops there, as a test would.
#![allow(
    clippy::unwrap_used,
    reason = "a bench that cannot set up its data should stop at once, with the error"
)]

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, OnceLock};

use divan::Bencher;
use divan::counter::ItemsCount;
use pw_cache::model::timestamp;
use pw_cache::{CacheTier, CacheTierConfig, FernetKey, JsonlTier, KeyRing};
use pw_cache_benches::workload::Workload;

const N: usize = 10_000;

fn main() {
    divan::main();
    // Statics are not dropped: remove the shared directory here.
    if let Some((dir, _)) = FULL.get() {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

static RING: LazyLock<Arc<KeyRing>> = LazyLock::new(bench_ring);

/// The workload's entries and miss keys (its mixed sequence is not used here).
static WORKLOAD: LazyLock<Workload> = LazyLock::new(|| Workload::new(N, timestamp::now_utc()));

/// Where bench files go: `/dev/shm` when there is one (the reference's numbers were on tmpfs).
fn bench_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() { shm } else { std::env::temp_dir() }
}

/// A ring with one fresh key.
fn bench_ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

fn empty_tier() -> (tempfile::TempDir, JsonlTier) {
    let dir = tempfile::tempdir_in(bench_root()).unwrap();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&RING)).unwrap();
    (dir, tier)
}

/// A directory holding the N entries, and a tier open on it (made once, on first use).
static FULL: OnceLock<(tempfile::TempDir, JsonlTier)> = OnceLock::new();

fn full() -> &'static (tempfile::TempDir, JsonlTier) {
    FULL.get_or_init(|| {
        let (dir, tier) = empty_tier();
        for e in WORKLOAD.entries.iter() {
            tier.put(e).unwrap();
        }
        (dir, tier)
    })
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn put(bencher: Bencher) {
    let entries = &WORKLOAD.entries;
    bencher
        .counter(ItemsCount::new(N))
        .with_inputs(empty_tier)
        .bench_local_values(|(dir, tier)| {
            for e in entries {
                tier.put(e).unwrap();
            }
            (dir, tier)
        });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn put_update(bencher: Bencher) {
    let tier = &full().1;
    let entries = &WORKLOAD.entries;
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        for e in entries {
            tier.put(e).unwrap();
        }
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn get_hit(bencher: Bencher) {
    let tier = &full().1;
    let entries = &WORKLOAD.entries;
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        for e in entries {
            assert!(tier.get(&e.key).unwrap().is_some());
        }
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn get_miss(bencher: Bencher) {
    let tier = &full().1;
    let keys = &WORKLOAD.miss_keys;
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        for k in keys {
            assert!(tier.get(k).unwrap().is_none());
        }
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn open(bencher: Bencher) {
    let dir = full().0.path();
    bencher
        .counter(ItemsCount::new(N))
        .bench_local(|| JsonlTier::open(dir, &CacheTierConfig::unbounded(), Arc::clone(&RING)).unwrap());
}

/// `put` into a tier bounded at N/2 (LRU): the second half of the puts each evict an entry,
/// which costs a rewrite of the victim's shard.
#[divan::bench(sample_count = 3, sample_size = 1)]
fn put_bounded_half(bencher: Bencher) {
    let entries = &WORKLOAD.entries;
    bencher
        .counter(ItemsCount::new(N))
        .with_inputs(|| {
            let dir = tempfile::tempdir_in(bench_root()).unwrap();
            let config = CacheTierConfig::bounded(N as u64 / 2);
            let tier = JsonlTier::open(dir.path(), &config, Arc::clone(&RING)).unwrap();
            (dir, tier)
        })
        .bench_local_values(|(dir, tier)| {
            for e in entries {
                tier.put(e).unwrap();
            }
            (dir, tier)
        });
}
