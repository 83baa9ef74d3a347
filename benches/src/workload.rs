//! The benchmark workload of proxywhirl's `bench_python.py`, ported exactly: the same entries,
//! keys, credentials, miss keys and zipf-distributed op sequence, so that the two benchmarks
//! replay the same operations and their rates can be divided.
//!
//! - Entry `i` (`0 <= i < n`): `proxy_url = http://10.{i>>16&255}.{i>>8&255}.{i&255}:{8000 + i % 1000}`,
//!   key = the first 16 hex digits of its SHA-256, source `["fetched", "user", "api", "warmed"][i % 4]`,
//!   TTL 86,400 s from `t0` (fetch time = last access = `t0`), health unknown, no accesses;
//!   odd `i` have username `user{i}` and password `pass-{i}-secret`.
//! - Miss keys: the keys of `http://miss.example:{i}`, `i < n`.
//! - [`SplitMix64`] seeded with `0x5EED` shuffles `0..n` (Fisher-Yates from the top), then
//!   draws `10 n` zipf ranks (`s = 1.1`) by inverting the running sum of the weights
//!   `1/(r+1)^s`; rank `r` maps to entry `perm[r]`.

use pw_cache::{CacheEntry, OffsetDateTime, Secret, generate_cache_key};

/// The sources, by `i % 4`.
pub const SOURCES: [&str; 4] = ["fetched", "user", "api", "warmed"];

/// The TTL of every entry, in seconds.
pub const TTL_SECONDS: u64 = 86_400;

/// The seed of the workload's generator.
pub const SEED: u64 = 0x5EED;

/// The zipf exponent of the mixed phase.
pub const ZIPF_S: f64 = 1.1;

/// How many mixed-phase gets per entry.
pub const MIXED_PER_ENTRY: usize = 10;

/// The splitmix64 generator (Steele, Lea and Flood), as `bench_python.py` writes it.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator with `seed` as its state.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`: the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        // 53 bits fit a f64 exactly.
        #[allow(clippy::cast_precision_loss, reason = "a 53-bit integer is exact in an f64")]
        let top = (self.next_u64() >> 11) as f64;
        top * (1.0 / (1u64 << 53) as f64)
    }
}

/// The proxy URL of entry `i`.
pub fn url_of(i: usize) -> String {
    format!(
        "http://10.{}.{}.{}:{}",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
        8000 + i % 1000
    )
}

/// Entry `i`, fetched at `t0`.
pub fn entry(i: usize, t0: OffsetDateTime) -> CacheEntry {
    // The URL is well formed and the TTL far below the bound: `new_at` cannot fail here.
    let e = CacheEntry::new_at(url_of(i), SOURCES[i % 4], TTL_SECONDS, t0)
        .unwrap_or_else(|e| unreachable!("workload entry {i} is valid: {e}"));
    if i % 2 == 1 {
        e.with_credentials(
            Some(Secret::new(format!("user{i}"))),
            Some(Secret::new(format!("pass-{i}-secret"))),
        )
    } else {
        e
    }
}

/// The whole workload for `n` entries.
#[derive(Debug)]
pub struct Workload {
    /// Entries `0..n`, in order (the put and get_hit phases).
    pub entries: Vec<CacheEntry>,
    /// `n` keys that no entry has (the get_miss phase).
    pub miss_keys: Vec<String>,
    /// `10 n` indices into `entries`, zipf-distributed (the mixed phase).
    pub mixed: Vec<usize>,
}

impl Workload {
    /// The workload for `n` entries fetched at `t0`.
    pub fn new(n: usize, t0: OffsetDateTime) -> Self {
        let entries = (0..n).map(|i| entry(i, t0)).collect();
        let miss_keys = (0..n)
            .map(|i| generate_cache_key(&format!("http://miss.example:{i}")))
            .collect();
        Self {
            entries,
            miss_keys,
            mixed: mixed_indices(n),
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The mixed phase's entry indices for `n` entries: the permutation, then `10 n` zipf draws,
/// from one [`SplitMix64`] seeded with [`SEED`].
pub fn mixed_indices(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut rng = SplitMix64::new(SEED);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // `i + 1 <= n` fits u64 and the remainder is below it: both casts are exact.
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0_f64;
    for r in 0..n {
        #[allow(clippy::cast_precision_loss, reason = "ranks are far below 2^53")]
        let rank = (r + 1) as f64;
        acc += 1.0 / rank.powf(ZIPF_S);
        cdf.push(acc);
    }
    let total = acc;
    (0..MIXED_PER_ENTRY * n)
        .map(|_| {
            let x = rng.uniform() * total;
            // Python's bisect_right: the first index whose value is greater than x.
            let r = cdf.partition_point(|&c| c <= x);
            perm[r.min(n - 1)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The SHA-256 of the mixed indices, one decimal per line, as `bench_python.py` draws them
    /// (computed with its `build_workload` and proxywhirl 0.3.3's Python; see the test below).
    const PYTHON_MIXED_SHA256_N1000: &str = include_str!("../testdata/mixed_n1000.sha256");

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of splitmix64 from seed 0 (Vigna's reference implementation).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn mixed_indices_are_those_of_bench_python() {
        let mixed = mixed_indices(1000);
        assert_eq!(mixed.len(), 10_000);
        let text: String = mixed.iter().map(|i| format!("{i}\n")).collect();
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PYTHON_MIXED_SHA256_N1000.trim());
    }

    #[test]
    fn entries_follow_the_reference_shape() {
        let t0 = pw_cache::model::timestamp::now_utc();
        let w = Workload::new(1000, t0);
        assert_eq!(w.entries[0].proxy_url, "http://10.0.0.0:8000");
        assert_eq!(w.entries[999].proxy_url, "http://10.0.3.231:8999");
        assert_eq!(w.entries[0].key, generate_cache_key("http://10.0.0.0:8000"));
        assert!(w.entries[0].username.is_none());
        assert_eq!(
            w.entries[3].password.as_ref().map(Secret::expose_secret),
            Some("pass-3-secret")
        );
        assert_eq!(w.entries[2].source, "api");
        assert_eq!(w.miss_keys.len(), 1000);
        assert!(w.miss_keys.iter().all(|k| w.entries.iter().all(|e| &e.key != k)));
    }
}
