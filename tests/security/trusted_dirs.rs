//! Issue 24: a cache directory, key file or database directory that another local user could
//! have planted is refused by `CacheManager::open`, before anything in it is read or changed:
//! - a directory owned by another uid (with its own key file and empty shards or `l2_cache.db`)
//!   is refused, naming the path, the owner and the mode, with or without a configured key;
//! - a directory writable by group or others is refused, unless `Trust::AllowGroupOtherWritable`;
//! - a key file owned by another uid, a symbolic link or a FIFO is refused;
//! - the L3 database's directory is checked as the L2 directory is.
//!
//! The tests run as root: `chown` to a uid with no user entry stands for another user.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pw_cache::tiers::TierError;
use pw_cache::tiers::jsonl::shard_file_name;
use pw_cache::{
    CacheConfig, CacheManager, CacheTierConfig, CryptoError, DEFAULT_KEY_FILE_NAME, EnvKeys, FernetKey, L2BackendType,
    ManagerError, Trust, TrustError,
};
use pw_cache_tests::managers::{config, test_ring};

/// Another user: a uid with no user entry.
const OTHER_UID: u32 = 12345;

fn env_key() -> EnvKeys {
    EnvKeys::new(Some(FernetKey::generate().to_base64()), None)
}

fn open(config: CacheConfig, env: EnvKeys, trust: Trust) -> Result<CacheManager, ManagerError> {
    CacheManager::builder(config).env_keys(env).trust(trust).open()
}

/// Every path under `dir` with its size, mode, owner and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, u32, u32, i64, i64)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            (path, m.len(), m.mode(), m.uid(), m.mtime(), m.mtime_nsec())
        })
        .collect();
    out.sort();
    out
}

/// `dir/l2` made as another user would plant it: their key file, empty files of `backend`.
fn plant(dir: &Path, backend: L2BackendType) -> PathBuf {
    let l2 = dir.join("l2");
    fs::create_dir(&l2).unwrap();
    let key = l2.join(DEFAULT_KEY_FILE_NAME);
    fs::write(&key, format!("{}\n", FernetKey::generate().to_base64().expose_secret())).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    match backend {
        L2BackendType::Jsonl => {
            for i in 0..4 {
                fs::write(l2.join(shard_file_name(i)), "").unwrap();
            }
        }
        L2BackendType::Sqlite => fs::write(l2.join("l2_cache.db"), "").unwrap(),
    }
    for path in fs::read_dir(&l2).unwrap() {
        std::os::unix::fs::chown(path.unwrap().path(), Some(OTHER_UID), None).unwrap();
    }
    fs::set_permissions(&l2, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&l2, Some(OTHER_UID), None).unwrap();
    l2
}

#[test]
fn planted_cache_directory_is_refused_and_left_untouched() {
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let dir = tempfile::tempdir().unwrap();
        let l2 = plant(dir.path(), backend);
        let before = snapshot(&l2);
        let cfg = || {
            config(dir.path(), backend, 10)
                .l3_config(CacheTierConfig::disabled())
                .build()
                .unwrap()
        };

        // No key configured: the planted key is not used.
        let err = open(cfg(), EnvKeys::default(), Trust::Strict).err().unwrap();
        let ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { path, owner, mode, .. })) = &err else {
            panic!("{backend:?}: {err}");
        };
        assert_eq!((path, owner.uid, *mode), (&l2, OTHER_UID, 0o700));
        let msg = err.to_string();
        assert!(
            msg.contains(&l2.display().to_string()) && msg.contains("uid 12345") && msg.contains("mode 700"),
            "{msg}"
        );
        // A configured key, and the relaxed policy: still refused (the owner check stays).
        for trust in [Trust::Strict, Trust::AllowGroupOtherWritable] {
            let err = open(cfg(), env_key(), trust).err().unwrap();
            assert!(
                matches!(
                    err,
                    ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { .. }))
                ),
                "{err}"
            );
        }
        // With a ring given (no key file looked at), the tier's own check refuses it.
        let err = CacheManager::builder(cfg()).key_ring(test_ring()).open().err().unwrap();
        assert!(
            matches!(
                &err,
                ManagerError::OpenTier {
                    source: TierError::Untrusted(TrustError::NotOwned { .. }),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(snapshot(&l2), before, "{backend:?}: nothing in the directory changed");
    }
}

#[test]
fn directory_writable_by_others_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let l2 = dir.path().join("l2");
    fs::create_dir(&l2).unwrap();
    fs::set_permissions(&l2, fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = || {
        config(dir.path(), L2BackendType::Jsonl, 10)
            .l3_config(CacheTierConfig::disabled())
            .build()
            .unwrap()
    };
    for env in [EnvKeys::default(), env_key()] {
        let err = open(cfg(), env, Trust::Strict).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("writable by group or others")
                && msg.contains(&l2.display().to_string())
                && msg.contains("777"),
            "{msg}"
        );
        assert_eq!(fs::read_dir(&l2).unwrap().count(), 0, "nothing created in it");
    }
    let manager = open(cfg(), EnvKeys::default(), Trust::AllowGroupOtherWritable).unwrap();
    manager.close().unwrap();
    assert!(l2.join(DEFAULT_KEY_FILE_NAME).is_file());
}

#[test]
fn l3_database_directory_of_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l3 = dir.path().join("l3");
    fs::create_dir(&l3).unwrap();
    std::os::unix::fs::chown(&l3, Some(OTHER_UID), None).unwrap();
    let cfg = config(dir.path(), L2BackendType::Jsonl, 10)
        .l2_config(CacheTierConfig::disabled())
        .build()
        .unwrap();
    // The key file would be beside the database: refused there first without a key...
    let err = open(cfg.clone(), EnvKeys::default(), Trust::Strict).err().unwrap();
    assert!(
        matches!(
            err,
            ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { .. }))
        ),
        "{err}"
    );
    // ...and with one: the key file's directory is still checked, as a key file there would
    // join the ring...
    let err = open(cfg.clone(), env_key(), Trust::AllowGroupOtherWritable)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { .. }))
        ),
        "{err}"
    );
    // ...and with a ring given, by the L3 tier.
    let err = CacheManager::builder(cfg)
        .key_ring(test_ring())
        .trust(Trust::AllowGroupOtherWritable)
        .open()
        .err()
        .unwrap();
    assert!(
        matches!(
            &err,
            ManagerError::OpenTier {
                source: TierError::Untrusted(TrustError::NotOwned { .. }),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read_dir(&l3).unwrap().count(), 0);
}

#[test]
fn planted_symlinked_or_fifo_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        config(dir.path(), L2BackendType::Jsonl, 10)
            .l3_config(CacheTierConfig::disabled())
            .build()
            .unwrap()
    };
    let l2 = dir.path().join("l2");
    fs::create_dir(&l2).unwrap();
    let key = l2.join(DEFAULT_KEY_FILE_NAME);

    // A key file owned by another user in the user's own directory.
    fs::write(&key, format!("{}\n", FernetKey::generate().to_base64().expose_secret())).unwrap();
    std::os::unix::fs::chown(&key, Some(OTHER_UID), None).unwrap();
    let err = open(cfg(), EnvKeys::default(), Trust::Strict).err().unwrap();
    assert!(
        matches!(
            err,
            ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { .. }))
        ),
        "{err}"
    );
    fs::remove_file(&key).unwrap();

    // A symbolic link to a key elsewhere: refused, its target unchanged.
    let target = dir.path().join("elsewhere.key");
    let text = format!("{}\n", FernetKey::generate().to_base64().expose_secret());
    fs::write(&target, &text).unwrap();
    std::os::unix::fs::symlink(&target, &key).unwrap();
    let err = open(cfg(), EnvKeys::default(), Trust::Strict).err().unwrap();
    assert!(
        matches!(
            err,
            ManagerError::Keys(CryptoError::Untrusted(TrustError::Symlink { .. }))
        ),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), text);
    fs::remove_file(&key).unwrap();

    // A FIFO: fails at once instead of waiting for a writer.
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let config = cfg();
    std::thread::spawn(move || {
        let started = Instant::now();
        let err = open(config, EnvKeys::default(), Trust::Strict)
            .err()
            .map(|e| e.to_string());
        let _ = tx.send((err, started.elapsed()));
    });
    let (err, took) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("opening with a FIFO key file hangs");
    let err = err.unwrap();
    assert!(
        err.contains("is a FIFO") && err.contains(&key.display().to_string()),
        "{err}"
    );
    assert!(took < Duration::from_secs(5));
}

/// A real second user (a process running as another uid) makes the cache directory in a shared
/// sticky directory, with the shards, the databases, their logs and the key file linked to
/// files only root may touch: every way of opening the cache is refused, naming the directory
/// and its owner, and the files the links point at are byte for byte what they were.
#[test]
fn a_second_user_s_directory_of_links_to_root_only_files_is_refused_and_they_are_unchanged() {
    use pw_cache_tests::planted::{OTHER_UID as PLANTER, plant_links};
    for backend in [L2BackendType::Jsonl, L2BackendType::Sqlite] {
        let planted = plant_links(16);
        let before = planted.snapshot();
        let cfg = |l3: bool| {
            let mut b = CacheConfig::builder()
                .l2_cache_dir(&planted.l2)
                .l2_backend(backend)
                .l2_config(CacheTierConfig::unbounded());
            b = if l3 {
                b.l3_database_path(&planted.l3)
            } else {
                b.l3_config(CacheTierConfig::disabled())
            };
            b.build().unwrap()
        };
        let attempts: Vec<(&str, Result<CacheManager, ManagerError>)> = vec![
            ("no key", open(cfg(false), EnvKeys::default(), Trust::Strict)),
            ("a configured key", open(cfg(false), env_key(), Trust::Strict)),
            (
                "a configured key, relaxed",
                open(cfg(true), env_key(), Trust::AllowGroupOtherWritable),
            ),
            ("a ring", CacheManager::builder(cfg(true)).key_ring(test_ring()).open()),
        ];
        for (how, result) in attempts {
            let err = result.err().unwrap_or_else(|| panic!("{backend:?}, {how}: opened"));
            let msg = err.to_string();
            assert!(
                msg.contains(&planted.l2.display().to_string()) && msg.contains(&format!("uid {PLANTER}")),
                "{backend:?}, {how}: {msg}"
            );
            assert!(
                matches!(
                    err,
                    ManagerError::Keys(CryptoError::Untrusted(TrustError::NotOwned { .. }))
                        | ManagerError::OpenTier {
                            source: TierError::Untrusted(TrustError::NotOwned { .. }),
                            ..
                        }
                ),
                "{backend:?}, {how}: {err:?}"
            );
        }
        // The tiers on their own refuse it too.
        let err = pw_cache::tiers::JsonlTier::open(&planted.l2, &CacheTierConfig::unbounded(), test_ring())
            .err()
            .unwrap();
        assert!(
            matches!(err, TierError::Untrusted(TrustError::NotOwned { .. })),
            "{err}"
        );
        let err = pw_cache::tiers::SqliteL3Tier::open(&planted.l3, &CacheTierConfig::unbounded(), test_ring())
            .err()
            .unwrap();
        assert!(
            matches!(err, TierError::Untrusted(TrustError::NotOwned { .. })),
            "{err}"
        );
        assert!(planted.snapshot() == before, "{backend:?}: a root-only file changed");
    }
}

/// The cache directory is the user's own, but a parent of it belongs to another user (who could
/// move it away and put another in its place): refused under every policy; a parent writable
/// by others without the sticky bit: refused unless relaxed.
#[test]
fn a_cache_directory_under_another_user_s_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    let cfg = || {
        config(&theirs, L2BackendType::Sqlite, 10)
            .l3_config(CacheTierConfig::disabled())
            .build()
            .unwrap()
    };
    open(cfg(), env_key(), Trust::Strict).unwrap().close().unwrap();
    std::os::unix::fs::chown(&theirs, Some(OTHER_UID), None).unwrap();
    for trust in [Trust::Strict, Trust::AllowGroupOtherWritable] {
        let err = open(cfg(), env_key(), trust).err().unwrap();
        assert!(
            matches!(
                &err,
                ManagerError::Keys(CryptoError::Untrusted(TrustError::ParentNotOwned { parent, .. })) if parent == &theirs
            ),
            "{err}"
        );
    }
    std::os::unix::fs::chown(&theirs, Some(0), None).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
    let err = open(cfg(), env_key(), Trust::Strict).err().unwrap();
    assert!(err.to_string().contains("not sticky"), "{err}");
    open(cfg(), env_key(), Trust::AllowGroupOtherWritable)
        .unwrap()
        .close()
        .unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o1777)).unwrap();
    open(cfg(), env_key(), Trust::Strict).unwrap().close().unwrap();
}
