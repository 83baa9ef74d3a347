//! `per_source_ttl` is applied (proxywhirl 0.3.3 defines it and never reads it): an entry
//! created through the manager, or warmed, from a source with an override gets that TTL;
//! other sources get `default_ttl_seconds`; a warm's `ttl_override` beats both. A put keeps
//! the TTL the entry was made with.

use std::time::Duration;

use pw_cache::{CacheEntry, L2BackendType};
use pw_cache_tests::managers::{TestClock, config, open, test_ring};
use time::macros::datetime;

fn manager(dir: &std::path::Path, clock: &TestClock) -> pw_cache::CacheManager {
    let cfg = config(dir, L2BackendType::Sqlite, 100)
        .default_ttl_seconds(900)
        .source_ttl("free-list", 120)
        .source_ttl("premium", 86_400)
        .build()
        .unwrap();
    open(cfg, &test_ring(), Some(clock))
}

fn lifetime(e: &CacheEntry) -> Duration {
    Duration::try_from(e.expires_at - e.fetch_time).unwrap()
}

#[test]
fn new_entries_get_their_sources_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(datetime!(2026-11-21 08:00:00.25 UTC));
    let m = manager(dir.path(), &clock);
    for (source, ttl) in [
        ("free-list", 120),
        ("premium", 86_400),
        ("other", 900),
        ("Free-List", 900),
    ] {
        let e = m.new_entry("http://10.8.0.1:80", source).unwrap();
        assert_eq!(e.ttl_seconds, ttl, "{source}");
        assert_eq!(lifetime(&e), Duration::from_secs(ttl), "{source}");
        assert_eq!(e.fetch_time, clock.now(), "made at the manager's now");
        assert_eq!(e.key, pw_cache::generate_cache_key("http://10.8.0.1:80"));
    }
}

#[test]
fn a_put_keeps_the_entrys_own_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(datetime!(2026-11-21 08:00 UTC));
    let m = manager(dir.path(), &clock);
    let e = CacheEntry::new_at("http://10.8.0.2:80", "free-list", 7200, clock.now()).unwrap();
    m.put(&e).unwrap();
    assert_eq!(m.get(&e.key).unwrap().ttl_seconds, 7200);
}

#[test]
fn warmed_entries_get_override_else_source_else_default() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(datetime!(2026-11-21 08:00 UTC));
    let m = manager(dir.path(), &clock);
    let file = dir.path().join("warm.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"proxy_url\": \"http://10.8.1.1:80\", \"source\": \"free-list\"}\n",
            "{\"proxy_url\": \"http://10.8.1.2:80\", \"source\": \"premium\"}\n",
            "{\"proxy_url\": \"http://10.8.1.3:80\"}\n",
        ),
    )
    .unwrap();
    let report = m.warm_from_file(&file, None).unwrap();
    assert_eq!(report.loaded, 3);
    let ttl = |url: &str| m.get(&pw_cache::generate_cache_key(url)).unwrap().ttl_seconds;
    assert_eq!(ttl("http://10.8.1.1:80"), 120);
    assert_eq!(ttl("http://10.8.1.2:80"), 86_400);
    assert_eq!(ttl("http://10.8.1.3:80"), 900, "source \"warmed\" has no override");
    m.warm_from_file(&file, Some(300)).unwrap();
    for url in ["http://10.8.1.1:80", "http://10.8.1.2:80", "http://10.8.1.3:80"] {
        assert_eq!(ttl(url), 300, "{url}: the override wins");
    }
}
