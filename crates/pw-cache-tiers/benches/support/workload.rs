//! The workload of `../shared/bench/bench_python.py`, shared by the tier benches: entry `i` has
//! `proxy_url = http://10.{i>>16&255}.{i>>8&255}.{i&255}:{8000 + i % 1000}`, source
//! `["fetched", "user", "api", "warmed"][i % 4]`, TTL one day from `t0`, and credentials
//! `user{i}` / `pass-{i}-secret` when `i` is odd; miss keys hash `http://miss.example:{i}`.

use std::path::PathBuf;
use std::sync::Arc;

use pw_cache_crypto::{FernetKey, KeyRing};
use pw_cache_model::{CacheEntry, OffsetDateTime, Secret, generate_cache_key};

const SOURCES: [&str; 4] = ["fetched", "user", "api", "warmed"];

/// Where bench files go: `/dev/shm` when there is one (the reference's numbers were on tmpfs).
pub(crate) fn bench_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() { shm } else { std::env::temp_dir() }
}

/// A ring with one fresh key.
pub(crate) fn bench_ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

/// Entries `0..n` of the workload, all fetched at `t0`.
pub(crate) fn entries(n: usize, t0: OffsetDateTime) -> Vec<CacheEntry> {
    (0..n)
        .map(|i| {
            let url = format!(
                "http://10.{}.{}.{}:{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255,
                8000 + i % 1000
            );
            let e = CacheEntry::new_at(url, SOURCES[i % 4], 86_400, t0).unwrap();
            if i % 2 == 1 {
                e.with_credentials(
                    Some(Secret::new(format!("user{i}"))),
                    Some(Secret::new(format!("pass-{i}-secret"))),
                )
            } else {
                e
            }
        })
        .collect()
}

/// Keys `0..n` that no entry has.
pub(crate) fn miss_keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| generate_cache_key(&format!("http://miss.example:{i}")))
        .collect()
}
