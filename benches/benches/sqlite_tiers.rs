//! Benchmarks of the SQLite tiers at 10,000 and 100,000 entries, beside a raw rusqlite
//! baseline on the same schema (the database the tier creates), with the same pragmas
//! (WAL, `synchronous = NORMAL`, `foreign_keys = ON`, the tiers' page cache) and cached
//! prepared statements ([`pw_cache_benches::raw`]), doing the same statements by hand: no pool, no row decoding, no encryption (its rows carry tokens
//! made beforehand). The difference between a tier and its baseline is what the tier adds:
//! the pool, typed decoding, and Fernet (two encryptions per put, two decryptions per get for
//! entries with credentials: see `fernet_*`).
//!
//! The workload is `../shared/bench/bench_python.py`'s (the baseline of proxywhirl 0.3.3), from
//! [`pw_cache_benches::workload`]: entry `i` has
//! `proxy_url = http://10.{i>>16&255}.{i>>8&255}.{i&255}:{8000 + i % 1000}`, its generated key,
//! source `fetched/user/api/warmed`, TTL one day, and credentials (`user{i}`, `pass-{i}-secret`)
//! on odd `i`; miss keys are the keys of `http://miss.example:{i}`.
//!
//! Phases (each sample runs all N operations; throughput is printed as items/s):
//! - `put`: N puts into an empty database, one autocommit upsert each (unbounded tier);
//! - `get_hit`: N gets of held keys, in order; `get_miss`: N gets of absent keys;
//! - `put_bounded_half` (10,000 only): N puts into a tier bounded at N/2 (LRU), so half the
//!   puts run at the bound (count, batched eviction).
//!
//! The full databases are filled once per size with one batched transaction. Files live under
//! `/dev/shm` when it exists, so the numbers are the tiers', not the disk's.
//!
//! Run: `cargo bench -p pw-cache-benches --bench sqlite_tiers`.

// A benchmark that hits an error has nothing to measure: it stops there, as a test would.
#![allow(
    clippy::unwrap_used,
    reason = "a bench that cannot set up its data should stop at once, with the error"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use divan::Bencher;
use divan::counter::ItemsCount;
use pw_cache::model::timestamp;
use pw_cache::tiers::sqlite_l2::DB_FILE_NAME;
use pw_cache::{CacheTier, CacheTierConfig, FernetKey, KeyRing, SqliteL2Tier, SqliteL3Tier};
use pw_cache_benches::raw::{self, Table, Tokens};
use pw_cache_benches::workload::Workload;
use rusqlite::Connection;

const SIZES: [usize; 2] = [10_000, 100_000];
const MAX: usize = 100_000;

fn main() {
    divan::main();
    // Statics are not dropped: remove the shared directories here.
    for full in FULL.lock().unwrap().drain(..) {
        let _ = std::fs::remove_dir_all(full.dir.path());
    }
}

static RING: LazyLock<Arc<KeyRing>> = LazyLock::new(bench_ring);

/// The workload's first `MAX` entries and miss keys (its mixed sequence is not used here).
static WORKLOAD: LazyLock<Workload> = LazyLock::new(|| Workload::new(MAX, timestamp::now_utc()));

/// Where bench files go: `/dev/shm` when there is one (the reference's numbers were on tmpfs).
fn bench_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() { shm } else { std::env::temp_dir() }
}

/// A ring with one fresh key.
fn bench_ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

/// Each entry's credential tokens, made once (the baseline's rows).
static TOKENS: LazyLock<Vec<Tokens>> = LazyLock::new(|| raw::tokens(&WORKLOAD.entries, &RING));

/// An empty database with the tier's schema, at `dir/l2_cache.db` or `dir/l3.db`.
fn create(table: Table, dir: &Path) -> PathBuf {
    raw::create(table, dir, &RING).unwrap()
}

/// The baseline's connection: the tiers' pragmas and checkpoints.
fn raw_connection(path: &Path) -> raw::Db {
    raw::connection(path).unwrap()
}

/// The baseline's put of entry `i`: one autocommit upsert, tokens made beforehand.
fn raw_put(conn: &Connection, table: Table, i: usize) -> usize {
    raw::put(conn, table, &WORKLOAD.entries[i], &TOKENS[i]).unwrap()
}

/// The baseline's get: one indexed read, the row's values copied out (no decoding).
fn raw_get(conn: &Connection, table: Table, key: &str) -> Option<Vec<rusqlite::types::Value>> {
    raw::get(conn, table, key).unwrap()
}

/// A directory holding an L2 and an L3 database of the first `n` entries, for the tiers and
/// for the baselines (four files, so that no bench reads another's).
struct Full {
    n: usize,
    dir: tempfile::TempDir,
}

impl Full {
    fn l2_dir(&self, raw: bool) -> PathBuf {
        self.dir.path().join(if raw { "raw-l2" } else { "l2" })
    }

    fn l3_dir(&self, raw: bool) -> PathBuf {
        self.dir.path().join(if raw { "raw-l3" } else { "l3" })
    }

    fn path(&self, table: Table, raw: bool) -> PathBuf {
        match table {
            Table::L2 => self.l2_dir(raw).join(DB_FILE_NAME),
            Table::L3 => self.l3_dir(raw).join("l3.db"),
        }
    }
}

static FULL: Mutex<Vec<Arc<Full>>> = Mutex::new(Vec::new());

/// The databases of `n` entries, filled on first use with one transaction each.
fn full(n: usize) -> Arc<Full> {
    let mut all = FULL.lock().unwrap();
    if let Some(f) = all.iter().find(|f| f.n == n) {
        return Arc::clone(f);
    }
    let full = Arc::new(Full {
        n,
        dir: tempfile::tempdir_in(bench_root()).unwrap(),
    });
    for (table, raw) in [
        (Table::L2, false),
        (Table::L2, true),
        (Table::L3, false),
        (Table::L3, true),
    ] {
        let dir = match table {
            Table::L2 => full.l2_dir(raw),
            Table::L3 => full.l3_dir(raw),
        };
        std::fs::create_dir_all(&dir).unwrap();
        let path = create(table, &dir);
        let mut conn = raw_connection(&path);
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            raw_put(&tx, table, i);
        }
        tx.commit().unwrap();
        conn.committed();
    }
    all.push(Arc::clone(&full));
    full
}

fn open_tier(table: Table, full: &Full) -> Box<dyn CacheTier> {
    match table {
        Table::L2 => {
            Box::new(SqliteL2Tier::open(full.l2_dir(false), &CacheTierConfig::unbounded(), Arc::clone(&RING)).unwrap())
        }
        Table::L3 => Box::new(
            SqliteL3Tier::open(
                full.path(Table::L3, false),
                &CacheTierConfig::unbounded(),
                Arc::clone(&RING),
            )
            .unwrap(),
        ),
    }
}

fn empty_tier(table: Table, config: &CacheTierConfig) -> (tempfile::TempDir, Box<dyn CacheTier>) {
    let dir = tempfile::tempdir_in(bench_root()).unwrap();
    let tier: Box<dyn CacheTier> = match table {
        Table::L2 => Box::new(SqliteL2Tier::open(dir.path(), config, Arc::clone(&RING)).unwrap()),
        Table::L3 => Box::new(SqliteL3Tier::open(dir.path().join("l3.db"), config, Arc::clone(&RING)).unwrap()),
    };
    (dir, tier)
}

fn tier_put(bencher: Bencher, table: Table, n: usize) {
    LazyLock::force(&WORKLOAD);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| empty_tier(table, &CacheTierConfig::unbounded()))
        .bench_local_values(|(dir, tier)| {
            for e in &WORKLOAD.entries[..n] {
                tier.put(e).unwrap();
            }
            (dir, tier)
        });
}

fn tier_get_hit(bencher: Bencher, table: Table, n: usize) {
    let full = full(n);
    let tier = open_tier(table, &full);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        for e in &WORKLOAD.entries[..n] {
            assert!(tier.get(&e.key).unwrap().is_some());
        }
    });
}

fn tier_get_miss(bencher: Bencher, table: Table, n: usize) {
    let full = full(n);
    let tier = open_tier(table, &full);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        for k in &WORKLOAD.miss_keys[..n] {
            assert!(tier.get(k).unwrap().is_none());
        }
    });
}

fn raw_put_all(bencher: Bencher, table: Table, n: usize) {
    LazyLock::force(&TOKENS);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| {
            let dir = tempfile::tempdir_in(bench_root()).unwrap();
            let conn = raw_connection(&create(table, dir.path()));
            (dir, conn)
        })
        .bench_local_values(|(dir, conn)| {
            for i in 0..n {
                conn.put(table, &WORKLOAD.entries[i], &TOKENS[i]).unwrap();
            }
            (dir, conn)
        });
}

fn raw_get_hit(bencher: Bencher, table: Table, n: usize) {
    let full = full(n);
    let conn = raw_connection(&full.path(table, true));
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        for e in &WORKLOAD.entries[..n] {
            assert!(raw_get(&conn, table, &e.key).is_some());
        }
    });
}

fn raw_get_miss(bencher: Bencher, table: Table, n: usize) {
    let full = full(n);
    let conn = raw_connection(&full.path(table, true));
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        for k in &WORKLOAD.miss_keys[..n] {
            assert!(raw_get(&conn, table, k).is_none());
        }
    });
}

fn put_bounded_half(bencher: Bencher, table: Table, n: usize) {
    LazyLock::force(&WORKLOAD);
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| empty_tier(table, &CacheTierConfig::bounded(n as u64 / 2)))
        .bench_local_values(|(dir, tier)| {
            for e in &WORKLOAD.entries[..n] {
                tier.put(e).unwrap();
            }
            (dir, tier)
        });
}

mod l2 {
    use super::*;

    #[divan::bench(args = SIZES, sample_count = 3, sample_size = 1)]
    fn put(bencher: Bencher, n: usize) {
        tier_put(bencher, Table::L2, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_hit(bencher: Bencher, n: usize) {
        tier_get_hit(bencher, Table::L2, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_miss(bencher: Bencher, n: usize) {
        tier_get_miss(bencher, Table::L2, n);
    }

    #[divan::bench(args = [10_000], sample_count = 3, sample_size = 1)]
    fn put_bounded_half(bencher: Bencher, n: usize) {
        super::put_bounded_half(bencher, Table::L2, n);
    }
}

mod l2_raw_baseline {
    use super::*;

    #[divan::bench(args = SIZES, sample_count = 3, sample_size = 1)]
    fn put(bencher: Bencher, n: usize) {
        raw_put_all(bencher, Table::L2, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_hit(bencher: Bencher, n: usize) {
        raw_get_hit(bencher, Table::L2, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_miss(bencher: Bencher, n: usize) {
        raw_get_miss(bencher, Table::L2, n);
    }
}

mod l3 {
    use super::*;

    #[divan::bench(args = SIZES, sample_count = 3, sample_size = 1)]
    fn put(bencher: Bencher, n: usize) {
        tier_put(bencher, Table::L3, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_hit(bencher: Bencher, n: usize) {
        tier_get_hit(bencher, Table::L3, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_miss(bencher: Bencher, n: usize) {
        tier_get_miss(bencher, Table::L3, n);
    }

    #[divan::bench(args = [10_000], sample_count = 3, sample_size = 1)]
    fn put_bounded_half(bencher: Bencher, n: usize) {
        super::put_bounded_half(bencher, Table::L3, n);
    }
}

mod l3_raw_baseline {
    use super::*;

    #[divan::bench(args = SIZES, sample_count = 3, sample_size = 1)]
    fn put(bencher: Bencher, n: usize) {
        raw_put_all(bencher, Table::L3, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_hit(bencher: Bencher, n: usize) {
        raw_get_hit(bencher, Table::L3, n);
    }

    #[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
    fn get_miss(bencher: Bencher, n: usize) {
        raw_get_miss(bencher, Table::L3, n);
    }
}

/// The Fernet work a tier adds for an entry with credentials: two tokens per put, two per get.
mod fernet {
    use super::*;

    #[divan::bench(sample_count = 20, sample_size = 100)]
    fn encrypt_two(bencher: Bencher) {
        let e = &WORKLOAD.entries[1];
        bencher.bench_local(|| {
            (
                RING.encrypt(e.username.as_ref().unwrap()),
                RING.encrypt(e.password.as_ref().unwrap()),
            )
        });
    }

    #[divan::bench(sample_count = 20, sample_size = 100)]
    fn decrypt_two(bencher: Bencher) {
        let (user, pass) = &TOKENS[1];
        let (user, pass) = (user.clone().unwrap(), pass.clone().unwrap());
        bencher.bench_local(|| (RING.decrypt_bytes(&user).unwrap(), RING.decrypt_bytes(&pass).unwrap()));
    }
}
