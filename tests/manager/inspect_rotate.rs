//! `CacheManager::inspect` counts what each tier holds without using it (checked against
//! proxywhirl's fixtures and the manifest), and `CacheManager::rotate_credentials` moves every
//! credential to the current key: afterwards the previous key can be dropped, and no record
//! under the old key is left in the files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pw_cache::{
    CacheConfig, CacheEntry, CacheManager, CacheTierConfig, CacheTierType, FernetKey, KeyCheck, KeyRing, L2BackendType,
    ManagerError, OffsetDateTime, Secret,
};
use pw_cache_tests::managers::BACKENDS;
use pw_cache_tests::{fixture_ring, manifest, proxywhirl_fixtures};

fn config(l2: &Path, backend: L2BackendType, l3: &Path) -> CacheConfig {
    CacheConfig::builder()
        .l1_config(CacheTierConfig::disabled())
        .l2_config(CacheTierConfig::unbounded())
        .l3_config(CacheTierConfig::unbounded())
        .l2_backend(backend)
        .l2_cache_dir(l2)
        .l3_database_path(l3)
        .build()
        .unwrap()
}

fn try_open(
    l2: &Path,
    backend: L2BackendType,
    l3: &Path,
    ring: &Arc<KeyRing>,
    check: KeyCheck,
) -> Result<CacheManager, ManagerError> {
    CacheManager::builder(config(l2, backend, l3))
        .key_ring(Arc::clone(ring))
        .key_check(check)
        .open()
}

fn open(l2: &Path, backend: L2BackendType, l3: &Path, ring: &Arc<KeyRing>) -> CacheManager {
    try_open(l2, backend, l3, ring, KeyCheck::Strict).unwrap()
}

/// Opened with a ring that may open nothing stored: refused unless asked (checked here), then
/// opened anyway.
fn open_unchecked(l2: &Path, backend: L2BackendType, l3: &Path, ring: &Arc<KeyRing>) -> CacheManager {
    assert!(matches!(
        try_open(l2, backend, l3, ring, KeyCheck::Strict),
        Err(ManagerError::WrongKey { .. })
    ));
    try_open(l2, backend, l3, ring, KeyCheck::Skip).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

#[test]
fn inspect_counts_the_fixtures_as_the_manifest_says() {
    let dir = tempfile::tempdir().unwrap();
    let (l2, l3) = (dir.path().join("l2"), dir.path().join("l3"));
    copy_dir(&proxywhirl_fixtures().join("jsonl_l2"), &l2);
    copy_dir(&proxywhirl_fixtures().join("l3"), &l3);
    let db = l3.join("proxywhirl.db");
    let m = open(&l2, L2BackendType::Jsonl, &db, &fixture_ring());
    let now = OffsetDateTime::now_utc();
    let report = m.inspect().unwrap();
    assert!(!report.tiers.contains_key(&CacheTierType::L1), "L1 is disabled");
    for (tier, store) in [(CacheTierType::L2, "jsonl_l2"), (CacheTierType::L3, "sqlite_l3")] {
        let entries = manifest()["stores"][store]["entries"].as_array().unwrap().clone();
        let got = &report.tiers[&tier];
        assert_eq!(got.entries, entries.len() as u64, "{tier}");
        assert_eq!((got.corrupt, got.corrupt_keys.len()), (0, 0), "{tier}");
        let expired = entries
            .iter()
            .filter(|e| {
                let at = pw_cache::model::timestamp::parse_isoformat(e["expires_at"].as_str().unwrap()).unwrap();
                now >= at
            })
            .count() as u64;
        // Entries may expire between the two clocks: allow what expires in that instant.
        assert!(got.expired >= expired, "{tier}: {} < {expired}", got.expired);
        let mut health: BTreeMap<String, u64> = BTreeMap::new();
        for e in &entries {
            *health
                .entry(e["health_status"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(got.health, health, "{tier}");
        assert!(got.bytes_on_disk.unwrap() > 0, "{tier}");
    }
    // Inspecting is not a use: nothing counted, nothing removed.
    let stats = m.get_statistics();
    assert_eq!(
        (stats.l2_stats.hits, stats.l3_stats.hits, stats.l2_stats.evictions_ttl),
        (0, 0, 0)
    );
    assert_eq!(m.inspect().unwrap(), report_with_same_expiry(&m, &report));
}

/// `report` re-read (the expired count may grow with the clock, nothing else may change).
fn report_with_same_expiry(m: &CacheManager, report: &pw_cache::CacheInspection) -> pw_cache::CacheInspection {
    let mut again = m.inspect().unwrap();
    for (tier, t) in again.tiers.iter_mut() {
        t.expired = report.tiers[tier].expired;
    }
    again
}

#[test]
fn inspect_finds_entries_the_ring_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let (l2, l3) = (dir.path().join("l2"), dir.path().join("l3"));
    copy_dir(&proxywhirl_fixtures().join("jsonl_l2"), &l2);
    copy_dir(&proxywhirl_fixtures().join("l3"), &l3);
    let stranger = Arc::new(KeyRing::new(FernetKey::generate(), []));
    let m = open_unchecked(&l2, L2BackendType::Jsonl, &l3.join("proxywhirl.db"), &stranger);
    let report = m.inspect().unwrap();
    let with_credentials = manifest()["stores"]["sqlite_l3"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["username"].is_null() || !e["password"].is_null())
        .count() as u64;
    assert_eq!(report.tiers[&CacheTierType::L3].corrupt, with_credentials);
    assert_eq!(report.tiers[&CacheTierType::L2].corrupt, with_credentials);
    // Nothing was removed by looking.
    assert_eq!(report.tiers[&CacheTierType::L3].entries, 200);
}

#[test]
fn rotation_moves_every_credential_to_the_current_key() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (l2, l3) = (dir.path().join("l2"), dir.path().join("db").join("cache.db"));
        let old = FernetKey::generate();
        let new = FernetKey::generate();
        let old_only = Arc::new(KeyRing::new(old.clone(), []));
        let both = Arc::new(KeyRing::new(new.clone(), [old.clone()]));
        let new_only = Arc::new(KeyRing::new(new, []));
        let entries: Vec<CacheEntry> = (0..10)
            .map(|i| {
                let e = CacheEntry::new(format!("http://10.9.0.{i}:80"), "rotate", 3600).unwrap();
                if i < 7 {
                    e.with_credentials(
                        Some(Secret::new(format!("user-{i}"))),
                        Some(Secret::new(format!("pass-{i}"))),
                    )
                } else {
                    e
                }
            })
            .collect();
        {
            let m = open(&l2, backend, &l3, &old_only);
            for e in &entries {
                m.put(e).unwrap();
            }
        }
        let before = open_unchecked(&l2, backend, &l3, &new_only).inspect().unwrap();
        assert_eq!(
            before.tiers[&CacheTierType::L2].corrupt,
            7,
            "{backend}: unreadable without the old key"
        );
        let m = open(&l2, backend, &l3, &both);
        let report = m.rotate_credentials().unwrap();
        assert!(report.failed.is_empty(), "{backend}: {:?}", report.failed);
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            assert_eq!(report.rewritten[&tier], 7, "{backend} {tier}");
            assert_eq!(report.without_credentials[&tier], 3, "{backend} {tier}");
        }
        drop(m);
        // The old key can go: everything reads with the new one alone...
        let m = open(&l2, backend, &l3, &new_only);
        let after = m.inspect().unwrap();
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            assert_eq!(
                (after.tiers[&tier].entries, after.tiers[&tier].corrupt),
                (10, 0),
                "{backend} {tier}"
            );
        }
        for e in &entries {
            let got = m.get(&e.key).unwrap();
            assert_eq!((got.username, got.password), (e.username.clone(), e.password.clone()));
        }
        drop(m);
        // ... and nothing under the old key is left: the old key alone opens no credential.
        let stale = open_unchecked(&l2, backend, &l3, &old_only).inspect().unwrap();
        for tier in [CacheTierType::L2, CacheTierType::L3] {
            assert_eq!(stale.tiers[&tier].corrupt, 7, "{backend} {tier}");
        }
        if backend == L2BackendType::Jsonl {
            // No superseded line keeps an old token: every line of every shard is live.
            let lines: usize = std::fs::read_dir(&l2)
                .unwrap()
                .map(|f| f.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
                .sum();
            assert_eq!(lines, 10, "compacted after rotation");
        }
    }
}

#[test]
fn long_operations_report_progress_up_to_their_total() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let (l2, l3) = (dir.path().join("l2"), dir.path().join("l3"));
    copy_dir(&proxywhirl_fixtures().join("jsonl_l2"), &l2);
    copy_dir(&proxywhirl_fixtures().join("l3"), &l3);
    let m = open(&l2, L2BackendType::Jsonl, &l3.join("proxywhirl.db"), &fixture_ring());
    let seen = Mutex::new(Vec::new());
    let record = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
    let check = |seen: &Mutex<Vec<(u64, u64)>>, total: u64| {
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(calls.len() as u64, total);
        assert!(
            calls
                .iter()
                .enumerate()
                .all(|(i, &(d, t))| d == i as u64 + 1 && t == total)
        );
    };
    m.inspect_with_progress(&record).unwrap();
    check(&seen, 400);
    m.rotate_credentials_with_progress(&record).unwrap();
    check(&seen, 400);
    let warm = dir.path().join("w.jsonl");
    std::fs::write(
        &warm,
        "{\"proxy_url\": \"http://10.9.9.1:80\"}\nnot json\n{\"proxy_url\": \"http://10.9.9.2:80\"}\n",
    )
    .unwrap();
    m.warm_from_file_with_progress(&warm, None, &record).unwrap();
    // A warm reports bytes of the file read (the rows' count is not known before its end): up
    // to the file's size, which the last call reports as both.
    let size = std::fs::metadata(&warm).unwrap().len();
    let calls = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!calls.is_empty());
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
    assert!(
        calls.iter().all(|&(read, total)| read <= total && total == size),
        "{calls:?}"
    );
    assert_eq!(calls.last(), Some(&(size, size)));
}
