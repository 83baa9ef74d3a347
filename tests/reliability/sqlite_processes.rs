//! Two OS processes writing one L3 database at once lose nothing: each puts 500 entries (and
//! records a health check for every tenth), sees the other's without reopening, then updates
//! all of its entries and deletes every tenth. Both open the database when it does not exist
//! yet, so they also race to create its schema. A third process then finds every entry in its
//! last version and the history of the deleted entries gone. A bounded run shows the bound
//! holding with two writers.
//!
//! The test binary runs itself as the two children (`--exact <test>` with [`CHILD_VAR`] set).

use std::path::Path;
use std::time::{Duration, Instant};

use pw_cache::tiers::CacheTier;
use pw_cache::tiers::sqlite_l3::{HealthCheck, SqliteL3Tier};
use pw_cache::{CacheEntry, CacheTierConfig, HealthStatus, OffsetDateTime, Secret};
use pw_cache_tests::child_process::{PATIENCE, spawn_self, wait_for};
use pw_cache_tests::fixture_ring;

const CHILD_VAR: &str = "PW_CACHE_TEST_SQLITE_CHILD";
const PER_PROCESS: usize = 500;
/// The bound of the bounded run.
const BOUND: u64 = 600;

fn config(bounded: bool) -> CacheTierConfig {
    if bounded {
        CacheTierConfig::bounded(BOUND)
    } else {
        CacheTierConfig::unbounded()
    }
}

/// The `n`-th entry of process `proc` (credentials on odd `n`), as first put (`version` 0) or
/// updated (`version` 1).
fn entry(proc: usize, n: usize, version: u64) -> CacheEntry {
    let at = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap();
    let url = format!("http://10.{proc}.{}.{}:8080", n / 256, n % 256);
    let mut e = CacheEntry::new_at(url, format!("proc{proc}"), 3600, at)
        .unwrap()
        .with_key(format!("p{proc}-{n}"));
    e.access_count = version;
    e.health_status = if version == 0 {
        HealthStatus::Unknown
    } else {
        HealthStatus::Healthy
    };
    if n % 2 == 1 {
        e.with_credentials(
            Some(Secret::new(format!("u{proc}-{n}"))),
            Some(Secret::new(format!("p-{n}-é"))),
        )
    } else {
        e
    }
}

fn check(proc: usize, n: usize) -> HealthCheck {
    HealthCheck {
        proxy_key: format!("p{proc}-{n}"),
        check_time: OffsetDateTime::from_unix_timestamp(4_102_444_900).unwrap(),
        status: HealthStatus::Healthy,
        response_time_ms: Some(n as f64),
        error_message: None,
        check_url: "http://httpbin.org/ip".to_owned(),
    }
}

fn deleted(n: usize) -> bool {
    n.is_multiple_of(10)
}

fn child(spec: &str) {
    let [dir, proc, mode] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("bad child spec {spec}");
    };
    let (dir, proc, bounded) = (Path::new(dir), proc.parse::<usize>().unwrap(), mode == "bounded");
    let start = Instant::now();
    wait_for(dir, "go", start);
    // Both children open the database (not there yet) at the same time.
    let tier = SqliteL3Tier::open(dir.join("l3.db"), &config(bounded), fixture_ring()).unwrap();
    for n in 0..PER_PROCESS {
        tier.put(&entry(proc, n, 0)).unwrap();
        if bounded {
            assert!(tier.size().unwrap() as u64 <= BOUND);
        } else if n % 10 == 5 {
            tier.record_health_check(&check(proc, n)).unwrap();
        }
    }
    if bounded {
        return;
    }
    while tier.size().unwrap() < 2 * PER_PROCESS {
        assert!(start.elapsed() < PATIENCE, "the sibling's entries never showed up");
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in [0, 1] {
        for n in 0..PER_PROCESS {
            assert_eq!(tier.get(&format!("p{p}-{n}")).unwrap(), Some(entry(p, n, 0)));
        }
    }
    std::fs::write(dir.join(format!("checked-{proc}")), "").unwrap();
    wait_for(dir, &format!("checked-{}", 1 - proc), start);
    for n in 0..PER_PROCESS {
        tier.put(&entry(proc, n, 1)).unwrap();
    }
    for n in (0..PER_PROCESS).filter(|n| deleted(*n)) {
        assert!(tier.delete(&format!("p{proc}-{n}")).unwrap());
    }
}

fn run(test_name: &str, bounded: bool) {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2)
        .map(|proc| {
            let mode = if bounded { "bounded" } else { "unbounded" };
            spawn_self(
                module_path!(),
                test_name,
                CHILD_VAR,
                format!("{}|{proc}|{mode}", dir.path().display()),
            )
        })
        .collect();
    std::fs::write(dir.path().join("go"), "").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }

    // A third process (this one) reads what is left.
    let tier = SqliteL3Tier::open(dir.path().join("l3.db"), &config(bounded), fixture_ring()).unwrap();
    if bounded {
        let size = tier.size().unwrap() as u64;
        assert!((BOUND - BOUND / 64 - 1..=BOUND).contains(&size), "{size}");
        for key in tier.keys().unwrap() {
            let (proc, n) = key[1..].split_once('-').unwrap();
            let want = entry(proc.parse().unwrap(), n.parse().unwrap(), 0);
            assert_eq!(tier.get(&key).unwrap(), Some(want));
        }
        return;
    }
    assert_eq!(tier.size().unwrap(), 2 * (PER_PROCESS - PER_PROCESS / 10));
    for proc in 0..2 {
        for n in 0..PER_PROCESS {
            let key = format!("p{proc}-{n}");
            let want = (!deleted(n)).then(|| entry(proc, n, 1));
            assert_eq!(tier.get(&key).unwrap(), want, "{key}");
            let history = tier.health_history(&key, 10).unwrap();
            let want = usize::from(n % 10 == 5);
            assert_eq!(history.len(), want, "{key}: history kept by updates");
        }
    }
    assert_eq!(tier.orphaned_history().unwrap(), 0);
}

#[test]
fn two_processes_into_one_l3_database_lose_nothing() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("two_processes_into_one_l3_database_lose_nothing", false);
}

#[test]
fn two_processes_keep_the_bound() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    run("two_processes_keep_the_bound", true);
}
