//! Building a manager, and its life until it is closed or dropped:
//! - the key ring comes from the config's key, else the environment, else the key file (made
//!   mode 0600 in `l2_cache_dir`, or beside the L3 database without L2), which the next run
//!   reads so that it opens the credentials the first one wrote; a malformed key is
//!   `ManagerError::Keys` naming where it came from, never its text, and creates nothing;
//! - each tier can be disabled by the config: puts say where they stored, `tier_status` says
//!   Disabled, the statistics flag it, and a disabled tier leaves no file; `l2_backend` picks
//!   JSONL shards or `l2_cache.db`;
//! - `put_with_key` with another key than the entry's is `KeyMismatch` and stores nothing, an
//!   empty key is `InvalidEntry`, an unusable L2 or L3 path is `OpenTier` naming the tier;
//! - the TTL manager is off by default, `start`/`stop` are idempotent, the config starts it at
//!   open, it removes expired entries from every tier by itself (at start and then every
//!   interval) and counts them as the cleaner's, and its thread ends when the manager is
//!   closed or dropped;
//! - after `close`, puts fail with `Closed`, lookups miss and nothing touches the files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pw_cache::tiers::jsonl::{shard_file_name, shard_of};
use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTierConfig, CacheTierType, DEFAULT_KEY_FILE_NAME, ENV_CURRENT_KEY,
    ENV_PREVIOUS_KEYS, EnvKeys, FernetKey, HealthInvalidation, KeyOrigin, KeyRing, L2BackendType, ManagerError,
    OffsetDateTime, Secret, Stored, TierStatus,
};
use pw_cache_tests::child_process::spawn_self;
use pw_cache_tests::managers::{TestClock, config, open, open_tier, test_ring};
use pw_cache_tests::wait_until;

fn entry(url: &str) -> CacheEntry {
    CacheEntry::new(url, "open-test", 3600)
        .unwrap()
        .with_credentials(Some(Secret::new("user-open")), Some(Secret::new(format!("pw-{url}-é"))))
}

/// A manager whose keys come from `config` and `env` (never from this process's environment).
fn open_with_env(config: CacheConfig, env: EnvKeys) -> Result<CacheManager, ManagerError> {
    CacheManager::builder(config).env_keys(env).open()
}

fn key_file(dir: &Path) -> PathBuf {
    dir.join("l2").join(DEFAULT_KEY_FILE_NAME)
}

/// Everything under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn the_config_key_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let (configured, from_env) = (FernetKey::generate(), FernetKey::generate());
    let cfg = config(dir.path(), L2BackendType::Jsonl, 10)
        .encryption_key(Some(configured.to_base64()))
        .build()
        .unwrap();
    let m = open_with_env(cfg, EnvKeys::new(Some(from_env.to_base64()), None)).unwrap();
    assert_eq!(m.key_ring().origin(), &KeyOrigin::Config);
    assert_eq!(m.key_ring().current(), &configured);
    put_close_and_read_with_key_alone(m, dir.path(), L2BackendType::Jsonl, configured, "http://10.80.0.1:8080");
}

/// Puts an entry through `m` and closes it; checks that no key file was made (the key came
/// from elsewhere) and that the entry reads back in a manager holding `key` alone.
fn put_close_and_read_with_key_alone(m: CacheManager, dir: &Path, backend: L2BackendType, key: FernetKey, url: &str) {
    let e = entry(url);
    m.put(&e).unwrap();
    m.close().unwrap();
    assert!(
        !key_file(dir).exists(),
        "a key from the config or the environment makes no key file"
    );
    let m = open(
        config(dir, backend, 10).build().unwrap(),
        &Arc::new(KeyRing::new(key, [])),
        None,
    );
    assert_eq!(m.get(&e.key).unwrap().password, e.password);
}

#[test]
fn the_environment_key_comes_next() {
    let dir = tempfile::tempdir().unwrap();
    let (current, previous) = (FernetKey::generate(), FernetKey::generate());
    let cfg = config(dir.path(), L2BackendType::Sqlite, 10).build().unwrap();
    let env = EnvKeys::new(Some(current.to_base64()), Some(previous.to_base64()));
    let m = open_with_env(cfg, env).unwrap();
    assert_eq!(m.key_ring().origin(), &KeyOrigin::Environment);
    assert_eq!(m.key_ring().current(), &current);
    assert_eq!(m.key_ring().len(), 2, "current and previous");
    put_close_and_read_with_key_alone(m, dir.path(), L2BackendType::Sqlite, current, "http://10.80.0.2:8080");
}

#[test]
fn without_a_key_the_key_file_is_made_and_read_by_the_next_run() {
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let file = key_file(dir.path());
        let e = entry("http://10.80.0.3:8080");
        let cfg = || config(dir.path(), backend, 10).build().unwrap();
        let first = {
            let m = open_with_env(cfg(), EnvKeys::default()).unwrap();
            assert_eq!(
                m.key_ring().origin(),
                &KeyOrigin::KeyFile {
                    path: file.clone(),
                    created: true
                },
                "{backend}"
            );
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600,
                "{backend}"
            );
            m.put(&e).unwrap();
            m.close().unwrap();
            m.key_ring().current().clone()
        };
        // The second run (an empty L1): the same key, the credentials readable.
        let m = open_with_env(cfg(), EnvKeys::default()).unwrap();
        assert_eq!(
            m.key_ring().origin(),
            &KeyOrigin::KeyFile {
                path: file.clone(),
                created: false
            },
            "{backend}"
        );
        assert_eq!(m.key_ring().current(), &first, "{backend}");
        let got = m.get(&e.key).unwrap();
        assert_eq!(
            (got.username, got.password),
            (e.username.clone(), e.password.clone()),
            "{backend}"
        );
    }
}

#[test]
fn without_l2_the_key_file_sits_beside_the_l3_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        config(dir.path(), L2BackendType::Jsonl, 10)
            .l2_config(CacheTierConfig::disabled())
            .build()
            .unwrap()
    };
    let e = entry("http://10.80.0.4:8080");
    let m = open_with_env(cfg(), EnvKeys::default()).unwrap();
    let file = dir.path().join("l3").join(DEFAULT_KEY_FILE_NAME);
    assert_eq!(
        m.key_ring().origin(),
        &KeyOrigin::KeyFile {
            path: file.clone(),
            created: true
        }
    );
    m.put(&e).unwrap();
    m.close().unwrap();
    assert!(!dir.path().join("l2").exists(), "L2 is disabled: no L2 directory");
    let m = open_with_env(cfg(), EnvKeys::default()).unwrap();
    assert_eq!(m.get(&e.key).unwrap().password, e.password);
}

#[test]
fn a_bad_key_names_its_source_never_its_text() {
    let bad = "not-a-fernet-key-SECRET-TEXT-4242";
    let good = FernetKey::generate().to_base64();
    let cases = [
        (
            Some(Secret::new(bad)),
            EnvKeys::default(),
            "the configured encryption_key",
        ),
        // A bad configured key is an error even with a good one in the environment.
        (
            Some(Secret::new(bad)),
            EnvKeys::new(Some(good.clone()), None),
            "the configured encryption_key",
        ),
        (None, EnvKeys::new(Some(Secret::new(bad)), None), ENV_CURRENT_KEY),
        (
            None,
            EnvKeys::new(Some(good.clone()), Some(Secret::new(bad))),
            ENV_PREVIOUS_KEYS,
        ),
    ];
    for (config_key, env, source) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), L2BackendType::Jsonl, 10)
            .encryption_key(config_key)
            .build()
            .unwrap();
        let err = open_with_env(cfg, env).unwrap_err();
        assert!(matches!(err, ManagerError::Keys(_)), "{source}: {err:?}");
        let (text, debug) = (err.to_string(), format!("{err:?}"));
        assert!(text.contains(source), "{source}: {text}");
        assert!(
            !text.contains("SECRET-TEXT") && !debug.contains("SECRET-TEXT"),
            "{source}: {debug}"
        );
        assert_eq!(tree(dir.path()), Vec::<String>::new(), "{source}: nothing made");
    }
}

// ---------------------------------------------------------------------------------------------
// Tiers

#[test]
fn each_tier_can_be_disabled_and_leaves_no_file() {
    let on_off = |on: bool| {
        if on {
            CacheTierConfig::unbounded()
        } else {
            CacheTierConfig::disabled()
        }
    };
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        for (l1, l2, l3) in [
            (false, true, true),
            (true, false, true),
            (true, true, false),
            (true, false, false),
            (false, false, true),
            (false, true, false),
        ] {
            let case = format!("{backend} l1={l1} l2={l2} l3={l3}");
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(dir.path(), backend, 10)
                .l1_config(on_off(l1))
                .l2_config(on_off(l2))
                .l3_config(on_off(l3))
                .build()
                .unwrap();
            // Keys as a user gets them: a key file is made only where a disk tier is.
            let m = open_with_env(cfg, EnvKeys::default()).unwrap();
            let status = |on: bool| if on { TierStatus::Serving } else { TierStatus::Disabled };
            assert_eq!(
                [CacheTierType::L1, CacheTierType::L2, CacheTierType::L3].map(|t| m.tier_status(t)),
                [status(l1), status(l2), status(l3)],
                "{case}"
            );
            let stats = m.get_statistics();
            assert_eq!(
                (stats.l1_degraded, stats.l2_degraded, stats.l3_degraded),
                (!l1, !l2, !l3),
                "{case}: a disabled tier is flagged degraded, as documented"
            );
            let e = entry("http://10.81.0.1:8080");
            assert_eq!(m.put(&e).unwrap(), Stored { l1, l2, l3 }, "{case}");
            let got = m.get(&e.key).unwrap();
            assert_eq!(got.password, e.password, "{case}");
            m.close().unwrap();
            drop(m);
            assert_eq!(dir.path().join("l2").exists(), l2, "{case}: L2 directory");
            assert_eq!(dir.path().join("l3").exists(), l3, "{case}: L3 directory");
            assert_eq!(dir.path().join("l3/cache.db").exists(), l3, "{case}: L3 database");
        }
        // Only L1: nothing at all on disk, not even a key file.
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), backend, 10)
            .l2_config(CacheTierConfig::disabled())
            .l3_config(CacheTierConfig::disabled())
            .build()
            .unwrap();
        let m = open_with_env(cfg, EnvKeys::default()).unwrap();
        let e = entry("http://10.81.0.2:8080");
        assert_eq!(
            m.put(&e).unwrap(),
            Stored {
                l1: true,
                l2: false,
                l3: false
            }
        );
        assert_eq!(m.get(&e.key).unwrap().password, e.password);
        m.close().unwrap();
        assert_eq!(tree(dir.path()), Vec::<String>::new(), "{backend}: memory only");
    }
}

#[test]
fn with_every_tier_disabled_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), L2BackendType::Jsonl, 10)
        .l1_config(CacheTierConfig::disabled())
        .l2_config(CacheTierConfig::disabled())
        .l3_config(CacheTierConfig::disabled())
        .build()
        .unwrap();
    let m = open_with_env(cfg, EnvKeys::default()).unwrap();
    let e = entry("http://10.81.0.3:8080");
    assert!(matches!(m.put(&e), Err(ManagerError::NotStored { .. })));
    assert_eq!(m.get(&e.key), None);
    m.close().unwrap();
    assert_eq!(tree(dir.path()), Vec::<String>::new());
}

#[test]
fn l2_backend_picks_shards_or_database() {
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let m = open(config(dir.path(), backend, 10).build().unwrap(), &test_ring(), None);
        let e = entry("http://10.82.0.1:8080");
        m.put(&e).unwrap();
        m.close().unwrap();
        let l2 = dir.path().join("l2");
        let shard = l2.join(shard_file_name(shard_of(&e.key)));
        let db = l2.join("l2_cache.db");
        let shards = fs::read_dir(&l2)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().file_name().to_string_lossy().starts_with("shard_"))
            .count();
        match backend {
            L2BackendType::Jsonl => {
                assert!(shard.exists() && !db.exists(), "{:?}", tree(&l2));
                assert_eq!(shards, 1, "one shard file per shard used");
            }
            L2BackendType::Sqlite => {
                assert!(db.exists(), "{:?}", tree(&l2));
                assert_eq!(shards, 0, "{:?}", tree(&l2));
            }
        }
    }
}

#[test]
fn put_with_another_key_is_a_mismatch_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let cfg = || config(dir.path(), L2BackendType::Jsonl, 10).build().unwrap();
    let m = open(cfg(), &ring, None);
    let e = entry("http://10.83.0.1:8080");
    match m.put_with_key("another-key", &e) {
        Err(ManagerError::KeyMismatch { argument, entry_key }) => {
            assert_eq!((argument.as_str(), entry_key.as_str()), ("another-key", e.key.as_str()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.get(&e.key), None);
    assert_eq!(m.get("another-key"), None);
    let stats = m.get_statistics();
    assert_eq!(
        (
            stats.l1_stats.current_size,
            stats.l2_stats.current_size,
            stats.l3_stats.current_size
        ),
        (0, 0, 0)
    );
    // The entry's own key is the reference's call.
    assert_eq!(
        m.put_with_key(&e.key, &e).unwrap(),
        Stored {
            l1: true,
            l2: true,
            l3: true
        }
    );
    m.close().unwrap();
    let m = open(cfg(), &ring, None);
    assert_eq!(m.get("another-key"), None);
    assert_eq!(m.get(&e.key).unwrap().password, e.password);
}

#[test]
fn an_empty_key_is_an_invalid_entry() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(
        config(dir.path(), L2BackendType::Sqlite, 10).build().unwrap(),
        &test_ring(),
        None,
    );
    let e = entry("http://10.83.0.2:8080").with_key("");
    assert!(matches!(m.put(&e), Err(ManagerError::InvalidEntry { .. })), "put");
    assert!(
        matches!(m.put_with_key("", &e), Err(ManagerError::InvalidEntry { .. })),
        "put_with_key"
    );
    assert_eq!(m.get(""), None);
    let stats = m.get_statistics();
    assert_eq!(
        (
            stats.l1_stats.current_size,
            stats.l2_stats.current_size,
            stats.l3_stats.current_size
        ),
        (0, 0, 0)
    );
}

#[test]
fn an_unusable_tier_path_is_an_open_error_naming_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-regular-file");
    fs::write(&file, "not a directory").unwrap();
    let base = || config(dir.path(), L2BackendType::Jsonl, 10);
    let cases = [
        (
            CacheTierType::L3,
            L2BackendType::Jsonl,
            base().l3_database_path(file.join("cache.db")),
        ),
        (
            CacheTierType::L2,
            L2BackendType::Jsonl,
            base().l2_cache_dir(file.join("l2")),
        ),
        (
            CacheTierType::L2,
            L2BackendType::Sqlite,
            base().l2_backend(L2BackendType::Sqlite).l2_cache_dir(file.join("l2")),
        ),
    ];
    for (tier, backend, cfg) in cases {
        let err = CacheManager::builder(cfg.build().unwrap())
            .key_ring(test_ring())
            .open()
            .unwrap_err();
        match &err {
            ManagerError::OpenTier { tier: named, .. } => assert_eq!(*named, tier, "{backend}: {err}"),
            other => panic!("{tier} {backend}: {other:?}"),
        }
        assert!(err.to_string().contains(&tier.to_string()), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// The TTL manager

#[test]
fn the_cleaner_is_off_by_default_and_start_stop_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(
        config(dir.path(), L2BackendType::Jsonl, 10).build().unwrap(),
        &test_ring(),
        None,
    );
    let ttl = m.ttl_manager();
    assert!(!ttl.is_running(), "off unless the config enables it");
    assert_eq!(
        ttl.interval(),
        Duration::from_secs(m.config().cleanup_interval_seconds())
    );
    ttl.stop();
    assert!(!ttl.is_running());
    ttl.start();
    ttl.start();
    assert!(ttl.is_running());
    wait_until("a first cleanup", || ttl.runs() >= 1);
    ttl.stop();
    ttl.stop();
    assert!(!ttl.is_running());
    let runs = ttl.runs();
    // Started again, it cleans again at once.
    ttl.start();
    assert!(ttl.is_running());
    wait_until("a cleanup after a restart", || ttl.runs() > runs);
    m.close().unwrap();
    assert!(!m.ttl_manager().is_running(), "close stops it");
}

#[test]
fn the_background_cleaner_removes_expired_entries_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ring = test_ring();
    let clock = TestClock::at(OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap());
    let cfg = |background: bool| {
        config(dir.path(), L2BackendType::Sqlite, 10)
            .enable_background_cleanup(background)
            .cleanup_interval_seconds(5)
            .build()
            .unwrap()
    };
    let short = |url: &str| CacheEntry::new_at(url, "short", 60, clock.now()).unwrap();

    // Stored on disk by an earlier run, expired since.
    let old = short("http://10.84.0.1:8080");
    let m = open(cfg(false), &ring, Some(&clock));
    m.put(&old).unwrap();
    m.close().unwrap();
    drop(m);
    clock.advance(Duration::from_secs(60));

    // The config starts the cleaner at open; its first run removes the expired entry.
    let m = open(cfg(true), &ring, Some(&clock));
    assert!(m.ttl_manager().is_running());
    assert_eq!(m.ttl_manager().interval(), Duration::from_secs(5));
    wait_until("the first cleanup", || m.ttl_manager().runs() >= 1);
    assert_eq!(m.statistics_breakdown().cleaner_evictions_ttl, [0, 1, 1]);
    for tier in [CacheTierType::L2, CacheTierType::L3] {
        let direct = open_tier(dir.path(), tier, L2BackendType::Sqlite, &ring);
        assert_eq!(direct.peek(&old.key).unwrap(), None, "{tier}");
    }

    // Put now (L1, L2 and L3), expired a minute later: the next periodic run removes it
    // everywhere, with no lookup.
    let fresh = short("http://10.84.0.2:8080");
    m.put(&fresh).unwrap();
    clock.advance(Duration::from_secs(60));
    let runs = m.ttl_manager().runs();
    wait_until("the next periodic cleanup", || m.ttl_manager().runs() > runs);
    assert_eq!(m.statistics_breakdown().cleaner_evictions_ttl, [1, 2, 2]);
    let stats = m.get_statistics();
    assert_eq!(
        (
            stats.l1_stats.evictions_ttl,
            stats.l2_stats.evictions_ttl,
            stats.l3_stats.evictions_ttl
        ),
        (1, 2, 2),
        "the cleaner's removals are TTL evictions"
    );
    assert_eq!(
        (
            stats.l1_stats.current_size,
            stats.l2_stats.current_size,
            stats.l3_stats.current_size
        ),
        (0, 0, 0)
    );
    let before = m.get_statistics();
    assert_eq!(m.get(&fresh.key), None);
    let after = m.get_statistics();
    assert_eq!(
        after.l3_stats.misses,
        before.l3_stats.misses + 1,
        "a plain miss: it was already gone"
    );
    assert_eq!(after.l1_stats.evictions_ttl, before.l1_stats.evictions_ttl);
}

/// Set in the child process of [`the_cleaner_thread_ends_with_the_manager`].
const THREAD_CHILD: &str = "PW_CACHE_TEST_TTL_THREAD_CHILD";

/// Threads of this process named `name` (the OS name, as `top -H` shows it).
fn threads_named(name: &str) -> usize {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn the_cleaner_thread_ends_with_the_manager() {
    if std::env::var_os(THREAD_CHILD).is_none() {
        // Alone in a process, so that no other test's cleaner is counted.
        let status = spawn_self(
            module_path!(),
            "the_cleaner_thread_ends_with_the_manager",
            THREAD_CHILD,
            "1".into(),
        )
        .wait()
        .unwrap();
        assert!(
            status.success(),
            "the child process failed: {status} (its output is above)"
        );
        return;
    }
    // The harness captures what the child prints (and its stdout goes nowhere): report a panic
    // straight to the inherited stderr.
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "child process: {info}");
    }));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), L2BackendType::Jsonl, 10)
        .enable_background_cleanup(true)
        .cleanup_interval_seconds(5)
        .build()
        .unwrap();
    assert_eq!(threads_named("pw-cache-ttl"), 0);
    let ring = test_ring();
    // Dropped.
    let m = open(cfg.clone(), &ring, None);
    assert!(m.ttl_manager().is_running());
    wait_until("the cleaner thread", || threads_named("pw-cache-ttl") == 1);
    drop(m);
    wait_until("the cleaner thread to end after drop", || {
        threads_named("pw-cache-ttl") == 0
    });
    // Closed.
    let m = open(cfg, &ring, None);
    wait_until("the cleaner thread", || threads_named("pw-cache-ttl") == 1);
    m.close().unwrap();
    assert!(!m.ttl_manager().is_running());
    wait_until("the cleaner thread to end after close", || {
        threads_named("pw-cache-ttl") == 0
    });
}

// ---------------------------------------------------------------------------------------------
// Close

#[test]
fn after_close_puts_fail_lookups_miss_and_the_files_are_left_alone() {
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let ring = test_ring();
        let cfg = || config(dir.path(), backend, 10).build().unwrap();
        let m = open(cfg(), &ring, None);
        let e = entry("http://10.85.0.1:8080");
        m.put(&e).unwrap();
        m.close().unwrap();
        m.close().unwrap();
        let other = entry("http://10.85.0.2:8080");
        assert!(matches!(m.put(&other), Err(ManagerError::Closed)), "{backend}");
        assert!(
            matches!(m.put_with_key(&other.key, &other), Err(ManagerError::Closed)),
            "{backend}"
        );
        assert_eq!(m.get(&e.key), None, "{backend}");
        assert!(!m.delete(&e.key), "{backend}");
        assert_eq!(
            m.invalidate_by_health(&e.key),
            HealthInvalidation::NotFound,
            "{backend}"
        );
        assert_eq!(m.cleanup_now().total(), 0, "{backend}");
        assert_eq!(m.clear(), 0, "{backend}: clear after close");
        drop(m);
        // Nothing done after close reached the files.
        let m = open(cfg(), &ring, None);
        assert_eq!(m.get(&e.key).unwrap().password, e.password, "{backend}");
        assert_eq!(m.get(&other.key), None, "{backend}");
        let e2 = m.get(&e.key).unwrap();
        assert_eq!(e2.failure_count, 0, "{backend}");
    }
}

/// An L2 directory that is a regular file is reported as such, naming the directory, before
/// any key is looked for (the default key file would be inside it), and nothing is created.
#[test]
fn an_l2_directory_that_is_a_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let l2 = dir.path().join("l2");
    std::fs::write(&l2, b"not a directory").unwrap();
    let config = pw_cache::CacheConfig::builder()
        .l2_cache_dir(&l2)
        .l3_database_path(dir.path().join("l3").join("cache.db"))
        .build()
        .unwrap();
    let err = pw_cache::CacheManager::builder(config)
        .env_keys(pw_cache::EnvKeys::new(None, None))
        .open()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            pw_cache::ManagerError::OpenTier {
                tier: pw_cache::CacheTierType::L2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains(&l2.display().to_string()) && text.contains("not a directory"),
        "{text}"
    );
    assert!(!text.contains("key"), "not about keys: {text}");
    assert_eq!(std::fs::read(&l2).unwrap(), b"not a directory");
    assert!(!dir.path().join("l3").exists(), "nothing created");
}
