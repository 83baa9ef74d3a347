//! Files a cache creates are private: directories `0700`, files `0600` (see
//! `pw_cache::crypto::private_fs` for why). Checked on every path the manager, its key file,
//! a JSONL→SQLite migration and an export create, for both L2 backends, with a permissive
//! umask-free mode check (`mode & 0o777`). Existing directories keep their modes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pw_cache::{CacheEntry, CacheManager, ExportCredentials, ExportOptions, Secret, SqliteL2Tier};
use pw_cache_tests::managers::{BACKENDS, config};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every path under `root` (not `root` itself), depth first.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

fn assert_private(root: &Path) -> usize {
    let paths = walk(root);
    for path in &paths {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(path), want, "{} is {:o}", path.display(), mode(path));
    }
    paths.len()
}

fn with_credentials(i: u32) -> CacheEntry {
    CacheEntry::new(format!("http://10.77.0.{i}:8080"), "fetched", 3600)
        .unwrap()
        .with_credentials(Some(Secret::new(format!("u{i}"))), Some(Secret::new(format!("p{i}"))))
}

#[test]
fn a_cache_its_key_file_and_exports_are_created_private() {
    for backend in BACKENDS {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = root.path().join("nested").join("cache");
        // No key configured: the manager creates its key file in the L2 directory.
        let m = CacheManager::open(config(&cache, backend, 2).build().unwrap()).unwrap();
        for i in 0..8 {
            m.put(&with_credentials(i)).unwrap();
        }
        for i in 0..8 {
            m.get(&with_credentials(i).key).unwrap();
        }
        m.flush().unwrap();
        let exports = root.path().join("exports");
        std::fs::create_dir(&exports).unwrap();
        std::fs::set_permissions(&exports, std::fs::Permissions::from_mode(0o700)).unwrap();
        m.export_to_file(exports.join("masked.jsonl")).unwrap();
        let encrypted = ExportOptions {
            credentials: ExportCredentials::Encrypted,
        };
        m.export_to_file_with(exports.join("encrypted.jsonl"), encrypted)
            .unwrap();
        // While open: SQLite's -wal and -shm files exist now and must be private too.
        let checked = assert_private(&root.path().join("nested"));
        assert!(checked >= 6, "{backend}: {checked} paths");
        assert_private(&exports);
        assert!(cache.join("l2").join(pw_cache::DEFAULT_KEY_FILE_NAME).is_file());
        m.close().unwrap();
        assert_private(&root.path().join("nested"));
        assert_eq!(
            mode(root.path()),
            0o755,
            "{backend}: an existing directory keeps its mode"
        );
    }
}

#[test]
fn a_migrated_database_is_private() {
    let root = tempfile::tempdir().unwrap();
    let ring = Arc::new(pw_cache_tests::fixture_key_ring());
    let source = pw_cache_tests::proxywhirl_fixtures().join("jsonl_l2");
    let target = root.path().join("migrated");
    let tier = SqliteL2Tier::open(&target, &pw_cache::CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    let report = tier.migrate_from_jsonl(&source).unwrap();
    assert!(report.migrated > 0, "{report:?}");
    assert!(assert_private(&target) >= 1);
}
