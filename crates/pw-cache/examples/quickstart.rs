//! The quickstart: a cache on the embedded default configuration.
//!
//! Run with `cargo run -p pw-cache --example quickstart`. It keeps the cache where the default
//! configuration says, under `.cache/` in the current directory (L2 JSONL shards in
//! `.cache/proxies/`, L3 in `.cache/db/proxywhirl.db`, and — as no key is configured — the
//! generated key in `.cache/proxies/pw-cache.key`, mode 0600). Run it twice: the second run
//! finds the first run's proxies, credentials readable. `rm -rf .cache` starts over.

use pw_cache::{CacheConfig, CacheManager, CacheTierType, Secret};

const PROXIES: [(&str, &str, &str); 3] = [
    ("http://10.0.0.1:8080", "alice", "correct-horse"),
    ("socks5://10.0.0.2:1080", "bob", "battery-staple"),
    ("http://10.0.0.3:3128", "carol", "tr0ub4dor"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = CacheConfig::default();
    println!(
        "cache: L2 ({}) in {}, L3 in {}",
        config.l2_backend(),
        config.l2_cache_dir().display(),
        config.l3_database_path().display()
    );

    // 1. Open the cache. An earlier run's proxies are on disk, not in memory: a get finds
    //    them in L2 and promotes them to L1.
    let cache = CacheManager::open(config.clone())?;
    println!("key: {:?}", cache.key_ring().origin());
    let mut found = 0;
    for (url, ..) in PROXIES {
        let key = CacheManager::generate_cache_key(url);
        if let Some(entry) = cache.get(&key) {
            found += 1;
            let user = entry.username.as_ref().map(Secret::expose_secret).unwrap_or_default();
            println!(
                "  from an earlier run: {url} user={user} password={:?} used {} times",
                entry.password, entry.access_count
            );
        }
    }
    if found == 0 {
        println!("  nothing cached yet: storing {} proxies", PROXIES.len());
        for (url, user, password) in PROXIES {
            let entry = cache
                .new_entry(url, "quickstart")?
                .with_credentials(Some(Secret::new(user)), Some(Secret::new(password)));
            let stored = cache.put(&entry)?;
            println!("  put {url}: {stored:?}");
        }
    }
    // Writes L1's access counts down to L2/L3 and closes the databases.
    cache.close()?;
    drop(cache);

    // 2. A new manager on the same files (as after a restart): L1 is empty, so each get is
    //    an L1 miss, an L2 hit and a promotion; the second get of each is an L1 hit.
    let cache = CacheManager::open(config)?;
    for (url, user, _) in PROXIES {
        let key = CacheManager::generate_cache_key(url);
        let entry = cache.get(&key).ok_or("an entry stored above is missing")?;
        let again = cache.get(&key).ok_or("an entry stored above is missing")?;
        let readable = entry.username.as_ref().map(Secret::expose_secret) == Some(user);
        println!(
            "  after restart: {url} credentials readable: {readable}, access_count {} -> {}",
            entry.access_count, again.access_count
        );
    }

    let stats = cache.get_statistics();
    println!("\nstatistics:");
    for (tier, s) in [
        (CacheTierType::L1, stats.l1_stats),
        (CacheTierType::L2, stats.l2_stats),
        (CacheTierType::L3, stats.l3_stats),
    ] {
        println!(
            "  {tier}: {} hits, {} misses, {} entries",
            s.hits, s.misses, s.current_size
        );
    }
    println!("  promotions {}, demotions {}", stats.promotions, stats.demotions);
    for (name, value) in stats.to_metrics_dict() {
        println!("  {name:<24} {value}");
    }
    cache.close()?;
    Ok(())
}
