//! The cost of one get from the Redis L3 tier, on loopback: an entry with credentials (a user
//! name and a password, so each get decrypts two Fernet tokens), read by key from a
//! `redis-server` of the bench's own on 127.0.0.1 ([`pw_cache_benches::replay::RedisServer`]:
//! `appendonly yes`, `appendfsync always`, no snapshots, as the tests' servers).
//!
//! After 1,000 gets of warm-up, 15 rounds of 3,000 gets each; prints the time per get of the
//! fastest, the median and the slowest round. It was the ignored test `get_cost` of the
//! `redis_hardening` test binary (a measurement, not a check).
//!
//! Run: `cargo bench -p pw-cache-benches --bench redis_get` (needs `redis-server`; in release,
//! as every bench). Run without `--bench` (`cargo test --benches`), it does one short round,
//! to show it still works.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use pw_cache::tiers::redis_l3::{RedisL3Options, RedisL3Tier};
use pw_cache::{CacheEntry, CacheTier, CacheTierConfig, FernetKey, KeyRing, OffsetDateTime, Secret};
use pw_cache_benches::replay::RedisServer;

/// When the entry was fetched: 2020-01-01 00:00:01 UTC.
const FETCHED_UNIX: i64 = 1_577_836_801;
/// 100 years: the entry expires in 2120, so Redis's own expiry never interferes.
const TTL: u64 = 36_500 * 86_400;

fn main() -> Result<()> {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let (warm_up, rounds, per_round, label) = if bench {
        (1000, 15, 3000u32, "15 rounds of 3,000")
    } else {
        (10, 1, 100u32, "1 round of 100")
    };

    let server = RedisServer::start(&std::env::temp_dir())?;
    let options = RedisL3Options::new(Secret::new(server.url())).with_namespace("cost");
    let ring = Arc::new(KeyRing::new(FernetKey::generate(), []));
    let tier = RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), ring).context("opening the tier")?;
    let fetched = OffsetDateTime::from_unix_timestamp(FETCHED_UNIX).context("the fetch time")?;
    let entry = CacheEntry::new_at("http://10.0.0.1:8080", "fetched", TTL, fetched)
        .context("the entry")?
        .with_key("k001")
        .with_credentials(Some(Secret::new("user-of-the-proxy")), Some(Secret::new("a-password")));
    tier.put(&entry).context("put")?;

    let get = || -> Result<()> {
        let got = tier.get(&entry.key).context("get")?;
        ensure!(got.is_some(), "the entry is gone");
        Ok(())
    };
    for _ in 0..warm_up {
        get()?;
    }
    let mut each = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            get()?;
        }
        each.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round));
    }
    each.sort_by(f64::total_cmp);
    println!(
        "get: min {:.1} µs, median {:.1} µs, max {:.1} µs ({label})",
        each[0],
        each[each.len() / 2],
        each[each.len() - 1]
    );
    Ok(())
}
