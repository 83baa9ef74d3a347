//! Several hosts (managers, and separate OS processes) sharing one Redis L3 (issue 10).
//!
//! Each "host" has its own L1 and its own L2 directory; all share one Redis namespace and one
//! key. What must hold:
//! - a change on one host (update, delete, health invalidation, clear) reaches the other
//!   hosts' L1 and L2 copies within [`BOUND`] (`docs/fleet.md` states it);
//! - 4 processes × 500 puts into one Redis lose nothing, and every process reads every other's
//!   entries, credentials included;
//! - Redis killed in the middle of a run: gets and puts keep working from the local tiers, each
//!   within [`OP_BOUND`], the L3 is flagged degraded, and it serves again by itself once Redis
//!   is back, with every entry Redis acknowledged still there;
//! - a fleet refuses a key this host just generated, and an L3 without a URL;
//! - health marks are atomic in the shared L3 (issue 23): two hosts reporting one failure each
//!   count 2; four hosts reporting failures of the same 200 proxies at once lose none and evict
//!   each proxy exactly once at the threshold; marks racing a credential update never write the
//!   old password back.
//!
//! Every server is started by the test on a free 127.0.0.1 port (`pw_cache_tests::redis_server`).
//!
//! This binary has no other module: its timing bounds (how soon other hosts follow a change, how
//! long an operation takes while Redis is down) are measured with only its own tests in the
//! process, as before.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTierConfig, CacheTierType, EnvKeys, HealthInvalidation, KeyRing,
    L2BackendType, L3BackendType, ManagerError, Secret, TierStatus,
};
use pw_cache_tests::child_process::{PATIENCE, spawn_self, wait_for};
use pw_cache_tests::managers;
use pw_cache_tests::redis_server::RedisServer;

/// How soon another host's change must be visible on this host (the stated guarantee, with a
/// margin for a loaded test machine: measured delays are a few milliseconds).
const BOUND: Duration = Duration::from_secs(1);
/// How long one get or put may take while Redis is down (connect and command timeouts are
/// 250 ms each).
const OP_BOUND: Duration = Duration::from_secs(2);
const CHILD_VAR: &str = "PW_CACHE_TEST_FLEET_CHILD";
const PUTS_PER_PROCESS: usize = 500;

/// A host's config: L1 of `l1_max`, its own L2 (`backend`) under `dir`, L3 in Redis.
fn host_config(dir: &Path, backend: L2BackendType, l1_max: u64, url: &str) -> CacheConfig {
    managers::config(dir, backend, l1_max)
        .l3_backend(L3BackendType::Redis)
        .redis_url(Some(Secret::new(url)))
        .redis_namespace("fleet-test")
        .build()
        .unwrap()
}

fn host(dir: &Path, backend: L2BackendType, url: &str, ring: &Arc<KeyRing>) -> CacheManager {
    let manager = CacheManager::builder(host_config(dir, backend, 100, url))
        .key_ring(Arc::clone(ring))
        .probe_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Serving);
    manager
}

fn entry(url: &str, source: &str, password: &str) -> CacheEntry {
    CacheEntry::new(url, source, 3600)
        .unwrap()
        .with_credentials(Some(Secret::new("fleet-user")), Some(Secret::new(password)))
}

/// Polls until `condition` holds; the time it took. Fails after [`BOUND`].
fn within_bound(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < BOUND, "{what}: not within {BOUND:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
    start.elapsed()
}

fn password_of(manager: &CacheManager, key: &str) -> Option<String> {
    manager
        .get(key)
        .map(|e| e.password.map(|p| p.expose_secret().to_owned()).unwrap_or_default())
}

/// Updates, health invalidations, deletes and a clear made on host A reach host B's L1 and L2
/// within the bound; B's own writes reach A the same way. Run for both L2 backends.
#[test]
fn changes_on_one_host_reach_the_other_hosts_copies() {
    let server = RedisServer::start();
    let ring = managers::test_ring();
    for backend in managers::BACKENDS {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = host(dir_a.path(), backend, &server.url(), &ring);
        let b = host(dir_b.path(), backend, &server.url(), &ring);
        let mut delays = Vec::new();

        // Update: B caches version 1 (L1 and L2), A writes version 2.
        let v1 = entry("http://10.9.0.1:8080", "fleet", "pass-v1");
        let key = v1.key.clone();
        a.put(&v1).unwrap();
        assert_eq!(password_of(&b, &key).as_deref(), Some("pass-v1"));
        a.put(&entry("http://10.9.0.1:8080", "fleet", "pass-v2")).unwrap();
        delays.push(within_bound("an update", || {
            password_of(&b, &key).as_deref() == Some("pass-v2")
        }));
        // B's L2 was refreshed too: a third host reading B's L2 directory sees version 2.
        let b_l2 = managers::open_tier(dir_b.path(), CacheTierType::L2, backend, &ring);
        let in_l2 = b_l2.get(&key).unwrap().expect("B's L2 holds the entry");
        assert_eq!(in_l2.password.unwrap().expose_secret(), "pass-v2", "{backend:?}");
        drop(b_l2);

        // Health invalidation up to eviction on A: B stops handing the proxy out.
        assert!(b.get(&key).is_some());
        let mut outcome = HealthInvalidation::NotFound;
        for _ in 0..10 {
            outcome = a.invalidate_by_health(&key);
            if matches!(outcome, HealthInvalidation::Evicted { .. }) {
                break;
            }
        }
        assert!(matches!(outcome, HealthInvalidation::Evicted { .. }), "{outcome:?}");
        delays.push(within_bound("a health eviction", || b.get(&key).is_none()));

        // A health mark short of eviction reaches B as the new failure count.
        let e = entry("http://10.9.0.2:8080", "fleet", "p");
        a.put(&e).unwrap();
        assert_eq!(b.get(&e.key).unwrap().failure_count, 0);
        assert!(matches!(
            a.invalidate_by_health(&e.key),
            HealthInvalidation::Marked { .. }
        ));
        delays.push(within_bound("a health mark", || {
            b.get(&e.key).is_some_and(|got| got.failure_count == 1)
        }));

        // Delete on B reaches A.
        assert!(a.get(&e.key).is_some());
        assert!(b.delete(&e.key));
        delays.push(within_bound("a delete", || a.get(&e.key).is_none()));

        // Clear on A empties B's L1 and L2.
        let kept = entry("http://10.9.0.3:8080", "fleet", "p3");
        b.put(&kept).unwrap();
        assert!(a.get(&kept.key).is_some());
        a.clear();
        delays.push(within_bound("a clear", || b.get(&kept.key).is_none()));

        delays.sort();
        eprintln!(
            "{backend:?} L2: change-to-visible delays {:?} (max {:?})",
            delays,
            delays.last().unwrap()
        );
        a.close().unwrap();
        b.close().unwrap();
    }
}

/// Redis killed in the middle of a run: the manager keeps serving and storing from L1/L2,
/// each operation within the bound, flags L3 degraded, and serves from it again once Redis is
/// back (with `appendfsync always`, every entry Redis acknowledged is still there).
#[test]
fn redis_killed_and_restarted_mid_run() {
    let mut server = RedisServer::start();
    let ring = managers::test_ring();
    let dir = tempfile::tempdir().unwrap();
    let manager = host(dir.path(), L2BackendType::Sqlite, &server.url(), &ring);
    let before: Vec<CacheEntry> = (0..20)
        .map(|i| entry(&format!("http://10.8.0.{i}:80"), "before", &format!("p{i}")))
        .collect();
    for e in &before {
        let stored = manager.put(e).unwrap();
        assert!(stored.l3, "acknowledged by Redis");
    }

    server.kill();
    let mut during = Vec::new();
    for (i, old) in before.iter().enumerate() {
        let e = entry(&format!("http://10.8.1.{i}:80"), "during", &format!("q{i}"));
        let start = Instant::now();
        let stored = manager.put(&e).expect("L1 and L2 still store");
        assert!(stored.l1 && stored.l2, "{stored:?}");
        assert!(
            start.elapsed() < OP_BOUND,
            "a put took {:?} with Redis down",
            start.elapsed()
        );
        let start = Instant::now();
        assert!(manager.get(&old.key).is_some(), "served from L1/L2");
        assert!(
            start.elapsed() < OP_BOUND,
            "a get took {:?} with Redis down",
            start.elapsed()
        );
        during.push(e);
    }
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Degraded);
    assert!(manager.get_statistics().l3_degraded);

    server.restart();
    let start = Instant::now();
    while manager.tier_status(CacheTierType::L3) != TierStatus::Serving {
        assert!(start.elapsed() < PATIENCE, "L3 never recovered");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everything acknowledged is served; what Redis acknowledged before the kill is in Redis.
    for e in before.iter().chain(&during) {
        let got = manager.get(&e.key).expect("acknowledged entry lost");
        assert_eq!(
            got.password.unwrap().expose_secret(),
            e.password.as_ref().unwrap().expose_secret()
        );
    }
    let options = pw_cache::RedisL3Options::new(Secret::new(server.url())).with_namespace("fleet-test");
    let l3 = pw_cache::RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    for e in &before {
        assert!(
            pw_cache::CacheTier::get(&l3, &e.key).unwrap().is_some(),
            "acknowledged by Redis, lost"
        );
    }
    manager.close().unwrap();
}

/// A child: puts its share with credentials, marks itself done, waits for the others, reads
/// every process's entries (through Redis: each L1 holds few), and checks them.
fn child(spec: &str) {
    let mut parts = spec.split(';');
    let (dir, url, p, procs) = (
        Path::new(parts.next().unwrap()).to_path_buf(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().parse::<usize>().unwrap(),
    );
    let key_text = std::fs::read_to_string(dir.join("key")).unwrap();
    let ring = Arc::new(KeyRing::from_secrets(&Secret::new(key_text.trim()), &[]).unwrap());
    let own = dir.join(format!("host-{p}"));
    let manager = CacheManager::builder(host_config(&own, L2BackendType::Jsonl, 50, &url))
        .key_ring(ring)
        .env_keys(EnvKeys::new(None, None))
        .open()
        .unwrap();
    for i in 0..PUTS_PER_PROCESS {
        let e = entry(
            &format!("http://10.{p}.{}.{}:80", i / 256, i % 256),
            "proc",
            &format!("p{p}-{i}"),
        );
        let stored = manager.put(&e).unwrap();
        assert!(stored.l3, "process {p}: put {i} not in Redis");
    }
    std::fs::write(dir.join(format!("done-{p}")), b"").unwrap();
    let start = Instant::now();
    for q in 0..procs {
        wait_for(&dir, &format!("done-{q}"), start);
    }
    for q in 0..procs {
        for i in 0..PUTS_PER_PROCESS {
            let key = pw_cache::generate_cache_key(&format!("http://10.{q}.{}.{}:80", i / 256, i % 256));
            let got = manager
                .get(&key)
                .unwrap_or_else(|| panic!("process {p}: {q}'s entry {i} lost"));
            assert_eq!(got.password.unwrap().expose_secret(), format!("p{q}-{i}"));
        }
    }
    // Process 0's first entry, in every process's L1; then process 0 evicts it by health, and
    // every other process must stop serving it within the bound.
    let hot = pw_cache::generate_cache_key("http://10.0.0.0:80");
    assert!(manager.get(&hot).is_some());
    std::fs::write(dir.join(format!("ready-{p}")), b"").unwrap();
    let start = Instant::now();
    if p == 0 {
        for q in 0..procs {
            wait_for(&dir, &format!("ready-{q}"), start);
        }
        while !matches!(manager.invalidate_by_health(&hot), HealthInvalidation::Evicted { .. }) {}
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        std::fs::write(dir.join("evicted.tmp"), at.as_nanos().to_string()).unwrap();
        std::fs::rename(dir.join("evicted.tmp"), dir.join("evicted")).unwrap();
    } else {
        wait_for(&dir, "evicted", start);
        let at: u128 = std::fs::read_to_string(dir.join("evicted")).unwrap().parse().unwrap();
        let evicted_at = std::time::UNIX_EPOCH + Duration::from_nanos(u64::try_from(at).unwrap());
        while manager.get(&hot).is_some() {
            let waited = std::time::SystemTime::now()
                .duration_since(evicted_at)
                .unwrap_or_default();
            assert!(
                waited < BOUND,
                "process {p} still serves the evicted entry after {waited:?}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let delay = std::time::SystemTime::now()
            .duration_since(evicted_at)
            .unwrap_or_default();
        std::fs::write(dir.join(format!("delay-{p}")), format!("{delay:?}")).unwrap();
    }
    manager.close().unwrap();
    std::fs::write(dir.join(format!("checked-{p}")), b"").unwrap();
}

/// 4 processes × 500 puts into one Redis: nothing lost, each reads all the others' entries;
/// then a health eviction in one process removes the entry from the others' L1 within the
/// bound (the delays are printed).
#[test]
fn four_processes_share_one_redis_and_lose_nothing() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        child(&spec);
        return;
    }
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = pw_cache::FernetKey::generate().to_base64();
    std::fs::write(dir.path().join("key"), key.expose_secret()).unwrap();
    let procs = 4;
    let children: Vec<_> = (0..procs)
        .map(|p| {
            let spec = format!("{};{};{p};{procs}", dir.path().display(), server.url());
            spawn_self(
                module_path!(),
                "four_processes_share_one_redis_and_lose_nothing",
                CHILD_VAR,
                spec,
            )
        })
        .collect();
    for (p, mut child) in children.into_iter().enumerate() {
        let status = child.wait().unwrap();
        assert!(status.success(), "process {p} failed: {status}");
        assert!(dir.path().join(format!("checked-{p}")).exists());
    }
    let delays: Vec<String> = (1..procs)
        .map(|p| std::fs::read_to_string(dir.path().join(format!("delay-{p}"))).unwrap())
        .collect();
    eprintln!("health eviction in process 0 -> gone from the other processes' L1 after {delays:?}");
    let options = pw_cache::RedisL3Options::new(Secret::new(server.url())).with_namespace("fleet-test");
    let ring = Arc::new(KeyRing::from_secrets(&key, &[]).unwrap());
    let l3 = pw_cache::RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), ring).unwrap();
    // Every put is there but the one process 0 evicted.
    assert_eq!(pw_cache::CacheTier::size(&l3).unwrap(), procs * PUTS_PER_PROCESS - 1);
}

/// A fleet needs one key on every host: a key this host just generated is refused, and so is
/// an L3 without a URL; the errors say what to configure.
#[test]
fn a_fleet_refuses_a_generated_key_and_a_missing_url() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let err = CacheManager::builder(host_config(dir.path(), L2BackendType::Jsonl, 10, &server.url()))
        .env_keys(EnvKeys::new(None, None))
        .open()
        .unwrap_err();
    assert!(matches!(err, ManagerError::SharedKeyRequired { .. }), "{err}");
    assert!(err.to_string().contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY"), "{err}");

    // No URL in the config (and none in the environment of this test).
    if std::env::var_os(pw_cache::REDIS_URL_ENV).is_none() {
        let config = managers::config(dir.path(), L2BackendType::Jsonl, 10)
            .l3_backend(L3BackendType::Redis)
            .build()
            .unwrap();
        let err = CacheManager::builder(config)
            .key_ring(managers::test_ring())
            .open()
            .unwrap_err();
        assert!(err.to_string().contains(pw_cache::REDIS_URL_ENV), "{err}");
    }
}

/// A clear on one host while another host keeps reading the entry: the reader must not put a
/// copy it read from its L2 back into its L1 after the clear emptied L1 (the clear and the
/// lookups exclude each other), so the entry is gone from it within the bound, every time.
#[test]
fn a_remote_clear_racing_lookups_leaves_no_stale_copy() {
    let server = RedisServer::start();
    let ring = managers::test_ring();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(dir_a.path(), L2BackendType::Sqlite, &server.url(), &ring);
    let b = Arc::new(host(dir_b.path(), L2BackendType::Sqlite, &server.url(), &ring));
    for round in 0..40 {
        let e = entry(&format!("http://10.7.0.{round}:80"), "race", "p");
        b.put(&e).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (b, key, stop) = (Arc::clone(&b), e.key.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = b.get(&key);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(2));
        a.clear();
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
        within_bound(&format!("round {round}: a clear racing lookups"), || {
            b.get(&e.key).is_none()
        });
    }
    a.close().unwrap();
    b.close().unwrap();
}

/// A host that keeps writing (a put every 2 ms) while Redis is down gets its L3 back within 3 s
/// of Redis returning, although every put meanwhile adds to what it missed; and its replay of
/// what it missed never deletes a newer write: another host's puts, acknowledged by Redis after
/// the restart, of the very keys the first host missed, are all still in Redis afterwards.
#[test]
fn a_busy_host_gets_redis_back_and_its_replay_deletes_no_newer_write() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let mut server = RedisServer::start();
    let ring = managers::test_ring();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(
        CacheManager::builder(host_config(dir_a.path(), L2BackendType::Sqlite, 100, &server.url()))
            .key_ring(Arc::clone(&ring))
            .probe_interval(Duration::from_millis(100))
            .open()
            .unwrap(),
    );
    let url = |i: usize| format!("http://10.12.{}.{}:80", i / 250, i % 250);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    // Host A: a put every 2 ms, each of a new proxy, for the whole test.
    let writer = {
        let (a, stop, written) = (Arc::clone(&a), Arc::clone(&stop), Arc::clone(&written));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                a.put(&entry(&url(i), "a", "a-pass")).expect("L1/L2 store it");
                i += 1;
                written.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    let start = Instant::now();
    while a.tier_status(CacheTierType::L3) != TierStatus::Degraded {
        assert!(start.elapsed() < PATIENCE, "L3 never degraded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let first_missed = written.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    let last_missed = written.load(Ordering::SeqCst).saturating_sub(1);
    assert!(
        last_missed > first_missed + 100,
        "A kept writing: {first_missed}..{last_missed}"
    );

    server.restart();
    let restarted = Instant::now();
    // Host B, right after the restart: puts of proxies A put (and L3 missed) while Redis was
    // down; those Redis acknowledges must survive A's replay.
    let b = host(dir_b.path(), L2BackendType::Sqlite, &server.url(), &ring);
    let mut acknowledged = Vec::new();
    for i in (first_missed + 10..last_missed).step_by(5) {
        let e = entry(&url(i), "b", "b-pass");
        if b.put(&e).unwrap().l3 {
            acknowledged.push(e.key);
        }
    }
    assert!(
        acknowledged.len() > 10,
        "B's puts reached Redis: {}",
        acknowledged.len()
    );
    while a.tier_status(CacheTierType::L3) != TierStatus::Serving {
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "a host writing every 2 ms did not get L3 back within 3 s of Redis returning"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let recovered_in = restarted.elapsed();
    // A's replay of what it missed runs while A keeps writing.
    while a.missed_keys(CacheTierType::L3) > 0 {
        assert!(restarted.elapsed() < PATIENCE, "the replay never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    let replayed_in = restarted.elapsed();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let options = pw_cache::RedisL3Options::new(Secret::new(server.url())).with_namespace("fleet-test");
    let l3 = pw_cache::RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    for key in &acknowledged {
        let held = pw_cache::CacheTier::get(&l3, key)
            .unwrap()
            .unwrap_or_else(|| panic!("B's acknowledged put of {key} was deleted by A's replay"));
        assert_eq!(held.source, "b", "{key}");
    }
    // What A put after the recovery went to Redis directly.
    let after = entry(&url(written.load(Ordering::SeqCst) + 1), "a", "a-pass");
    assert!(a.put(&after).unwrap().l3);
    eprintln!(
        "L3 back {recovered_in:?} after Redis returned, replay done after {replayed_in:?}; A missed {} puts; B's {} \
         acknowledged puts kept",
        last_missed - first_missed,
        acknowledged.len()
    );
    a.close().unwrap();
    b.close().unwrap();
}

/// Proxies each health-mark test reports failures of.
const MARKED_PROXIES: usize = 200;

/// A host for the health-mark tests: L1 large enough to hold every proxy (so each host marks
/// from its own cached copy, the case that lost updates), its own L2, the shared Redis L3;
/// eviction at `threshold` failures.
fn marking_host(dir: &Path, backend: L2BackendType, url: &str, ring: &Arc<KeyRing>, threshold: u32) -> CacheManager {
    let config = managers::config(dir, backend, 1024)
        .l3_backend(L3BackendType::Redis)
        .redis_url(Some(Secret::new(url)))
        .redis_namespace("fleet-marks")
        .failure_threshold(threshold)
        .health_check_invalidation(true)
        // What these tests check is counting, not latency: a loaded test machine must not
        // time a command out (and so degrade the L3) in the middle of them.
        .redis_connect_timeout_ms(2000)
        .redis_command_timeout_ms(2000)
        .build()
        .unwrap();
    let manager = CacheManager::builder(config)
        .key_ring(Arc::clone(ring))
        .probe_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Serving);
    manager
}

/// The shared L3 itself, read as another host would.
fn shared_l3(server: &RedisServer, ring: &Arc<KeyRing>) -> pw_cache::RedisL3Tier {
    let options = pw_cache::RedisL3Options::new(Secret::new(server.url())).with_namespace("fleet-marks");
    pw_cache::RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), Arc::clone(ring)).unwrap()
}

fn marked_proxies(password: &str) -> Vec<CacheEntry> {
    (0..MARKED_PROXIES)
        .map(|i| entry(&format!("http://10.6.{}.{}:8080", i / 256, i % 256), "marks", password))
        .collect()
}

/// Every host caches every proxy (L1 and L2) before the marks.
fn cache_everywhere(hosts: &[CacheManager], proxies: &[CacheEntry]) {
    for host in hosts {
        for e in proxies {
            assert!(host.get(&e.key).is_some());
        }
    }
}

/// Two hosts each report one failure of the same 200 proxies, one after the other: the second
/// host's mark counts on top of the first's, whatever its own cached copy says (the first
/// host's change event has not reached it yet). Every count ends at 2, in Redis and
/// as the second host's result.
#[test]
fn two_hosts_reporting_one_failure_each_count_two() {
    let server = RedisServer::start();
    let ring = managers::test_ring();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hosts = [
        marking_host(dir_a.path(), L2BackendType::Jsonl, &server.url(), &ring, 10),
        marking_host(dir_b.path(), L2BackendType::Sqlite, &server.url(), &ring, 10),
    ];
    let proxies = marked_proxies("p");
    for e in &proxies {
        hosts[0].put(e).unwrap();
    }
    cache_everywhere(&hosts, &proxies);
    // Per proxy, A's failure then B's, right after it: B's cached copy predates A's mark
    // (A's change event has had no time to reach B).
    let mut results = [Vec::new(), Vec::new()];
    for e in &proxies {
        for (h, host) in hosts.iter().enumerate() {
            results[h].push(host.invalidate_by_health(&e.key));
        }
    }
    let l3 = shared_l3(&server, &ring);
    let in_redis: Vec<u64> = proxies
        .iter()
        .map(|e| pw_cache::CacheTier::peek(&l3, &e.key).unwrap().unwrap().failure_count)
        .collect();
    let lost = in_redis.iter().filter(|&&n| n != 2).count();
    eprintln!("two hosts, one failure each: {lost} of {MARKED_PROXIES} counts in Redis are not 2");
    assert_eq!(lost, 0, "counts in Redis: {in_redis:?}");
    for (h, want) in [(0, 1), (1, 2)] {
        for (i, got) in results[h].iter().enumerate() {
            assert_eq!(
                *got,
                HealthInvalidation::Marked { failure_count: want },
                "host {h}, proxy {i}"
            );
        }
    }
    // Each host serves the count Redis holds (host A once B's events have reached it).
    for host in &hosts {
        for e in &proxies {
            within_bound("the second host's mark", || {
                host.get(&e.key)
                    .is_some_and(|got| (got.failure_count, got.health_status) == (2, pw_cache::HealthStatus::Unhealthy))
            });
        }
    }
    for host in hosts {
        host.close().unwrap();
    }
}

/// Four hosts (threads, each with its own manager, L1 and L2) report one failure each of the
/// same 200 proxies at once, at threshold 3: every failure is counted (per proxy the four
/// results are the counts 1, 2, 3 once each and one "not found"), each proxy is evicted exactly
/// once, by the mark that reached 3, and none is left in Redis or served by any host.
#[test]
fn four_hosts_marking_at_once_count_every_failure_and_evict_once() {
    const HOSTS: usize = 4;
    let server = RedisServer::start();
    let ring = managers::test_ring();
    let dirs: Vec<_> = (0..HOSTS).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<CacheManager> = dirs
        .iter()
        .enumerate()
        .map(|(h, dir)| {
            let backend = managers::BACKENDS[h % 2];
            marking_host(dir.path(), backend, &server.url(), &ring, 3)
        })
        .collect();
    let proxies = marked_proxies("p");
    for e in &proxies {
        hosts[0].put(e).unwrap();
    }
    cache_everywhere(&hosts, &proxies);
    let barrier = std::sync::Barrier::new(HOSTS);
    let start = Instant::now();
    let results: Vec<Vec<(usize, HealthInvalidation)>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(h, host)| {
                let (barrier, proxies) = (&barrier, &proxies);
                s.spawn(move || {
                    barrier.wait();
                    // Each host starts at another place, so that every proxy sees contention.
                    (0..MARKED_PROXIES)
                        .map(|i| {
                            let k = (i + h * MARKED_PROXIES / HOSTS) % MARKED_PROXIES;
                            (k, host.invalidate_by_health(&proxies[k].key))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = start.elapsed();
    let (per_proxy, wrong) = pw_cache_tests::marks::four_marks_per_proxy(&results, MARKED_PROXIES);
    let evictions = |n: usize| {
        per_proxy
            .iter()
            .filter(|o| {
                o.iter()
                    .filter(|o| matches!(o, HealthInvalidation::Evicted { .. }))
                    .count()
                    == n
            })
            .count()
    };
    let left = pw_cache::CacheTier::size(&shared_l3(&server, &ring)).unwrap();
    eprintln!(
        "four hosts x {MARKED_PROXIES} proxies at once in {took:?}: {} proxies with a failure lost or counted \
         twice; evicted once: {}, never: {}, more than once: {}; {left} left in Redis",
        wrong.len(),
        evictions(1),
        evictions(0),
        MARKED_PROXIES - evictions(1) - evictions(0),
    );
    if let Some(&k) = wrong.first() {
        panic!(
            "proxy {k}: {:?}, not one 'not found' and the counts 1, 2, 3 (evicted)",
            per_proxy[k]
        );
    }
    assert_eq!(left, 0, "none left in Redis");
    for (h, host) in hosts.iter().enumerate() {
        for e in &proxies {
            within_bound(&format!("host {h}: an eviction"), || host.get(&e.key).is_none());
        }
    }
    let evictions: u64 = hosts.iter().map(|m| m.get_statistics().l3_stats.evictions_health).sum();
    assert_eq!(evictions, MARKED_PROXIES as u64, "one L3 health eviction per proxy");
    for host in hosts {
        host.close().unwrap();
    }
}

/// One host updates the credentials of 200 proxies while three hosts report failures of them:
/// a mark changes only the failure count and status, so no mark writes back the old password
/// from its host's cached copy. Every proxy ends with the new password in Redis and on every
/// host.
#[test]
fn marks_racing_a_credential_update_never_restore_the_old_password() {
    const HOSTS: usize = 4;
    let server = RedisServer::start();
    let ring = managers::test_ring();
    let dirs: Vec<_> = (0..HOSTS).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<CacheManager> = dirs
        .iter()
        .enumerate()
        .map(|(h, dir)| marking_host(dir.path(), managers::BACKENDS[h % 2], &server.url(), &ring, 1000))
        .collect();
    let old = marked_proxies("old-password");
    let new = marked_proxies("new-password");
    for e in &old {
        hosts[0].put(e).unwrap();
    }
    cache_everywhere(&hosts, &old);
    let barrier = std::sync::Barrier::new(HOSTS);
    std::thread::scope(|s| {
        for (h, host) in hosts.iter().enumerate() {
            let (barrier, new) = (&barrier, &new);
            s.spawn(move || {
                barrier.wait();
                for i in 0..MARKED_PROXIES {
                    if h == 0 {
                        host.put(&new[i]).unwrap();
                    } else {
                        let k = (i + h * MARKED_PROXIES / HOSTS) % MARKED_PROXIES;
                        let outcome = host.invalidate_by_health(&new[k].key);
                        assert!(
                            matches!(outcome, HealthInvalidation::Marked { .. }),
                            "host {h}, proxy {k}: {outcome:?}"
                        );
                    }
                }
            });
        }
    });
    let l3 = shared_l3(&server, &ring);
    let mut old_left = 0;
    let mut marks_kept = 0;
    for e in &new {
        let held = pw_cache::CacheTier::peek(&l3, &e.key).unwrap().unwrap();
        if held.password.as_ref().map(|p| p.expose_secret()) != Some("new-password") {
            old_left += 1;
        }
        marks_kept += held.failure_count;
    }
    eprintln!(
        "credential update racing 3 x {MARKED_PROXIES} marks: {old_left} of {MARKED_PROXIES} proxies hold the \
         old password in Redis; {marks_kept} marks landed after the update (a put replaces the count)"
    );
    assert_eq!(old_left, 0);
    for (h, host) in hosts.iter().enumerate() {
        for e in &new {
            within_bound(&format!("host {h}: the update"), || {
                password_of(host, &e.key).as_deref() == Some("new-password")
            });
        }
    }
    for host in hosts {
        host.close().unwrap();
    }
}

/// A rotation of the shared L3's credentials (`rotate_credentials`, the `rotate-key` command)
/// run by one host while another host puts new passwords: no new password is reverted to the
/// old one (the rotation writes re-encrypted tokens only where the stored ones are still those
/// it read).
#[test]
fn a_rotation_never_undoes_another_hosts_put() {
    let server = RedisServer::start();
    let (old, new) = (pw_cache::FernetKey::generate(), pw_cache::FernetKey::generate());
    let old_ring = Arc::new(KeyRing::new(old.clone(), []));
    let both = Arc::new(KeyRing::new(new, [old]));
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let writer = host(dirs[0].path(), L2BackendType::Sqlite, &server.url(), &old_ring);
    let keys: Vec<String> = (0..200)
        .map(|i| {
            let e = entry(&format!("http://10.13.0.{i}:80"), "rotate", "old-pass");
            writer.put(&e).unwrap();
            e.key
        })
        .collect();
    writer.close().unwrap();
    let a = host(dirs[1].path(), L2BackendType::Sqlite, &server.url(), &both);
    let b = host(dirs[2].path(), L2BackendType::Sqlite, &server.url(), &both);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..200 {
                b.put(&entry(&format!("http://10.13.0.{i}:80"), "rotate", &format!("new-{i}")))
                    .unwrap();
            }
        });
        s.spawn(|| a.rotate_credentials().unwrap());
    });
    let options = pw_cache::RedisL3Options::new(Secret::new(server.url())).with_namespace("fleet-test");
    let l3 = pw_cache::RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), Arc::clone(&both)).unwrap();
    let reverted: Vec<&String> = keys
        .iter()
        .filter(|key| {
            let held = pw_cache::CacheTier::get(&l3, key).unwrap().unwrap();
            held.password.unwrap().expose_secret() == "old-pass"
        })
        .collect();
    assert!(
        reverted.is_empty(),
        "{} new passwords reverted by the rotation",
        reverted.len()
    );
    a.close().unwrap();
    b.close().unwrap();
}
