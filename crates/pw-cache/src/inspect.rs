//! Looking inside a cache and re-encrypting it: what the operator commands (`cargo xtask stats`,
//! `cargo xtask rotate-key`) are built on.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use pw_cache_model::{CacheTierType, L2BackendType};
use pw_cache_tiers::CacheTier;

use crate::error::ManagerError;
use crate::manager::{CacheManager, TierSlot};

/// What one tier holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierInspection {
    /// Entries held (readable or not).
    pub entries: u64,
    /// Of those, expired (still stored: nothing was removed to count them).
    pub expired: u64,
    /// Of those, unreadable: damaged, or a credential no key of the ring opens.
    pub corrupt: u64,
    /// The keys of the unreadable entries, sorted.
    pub corrupt_keys: Vec<String>,
    /// Readable entries per health status (`healthy`, `unhealthy`, `unknown` ...).
    pub health: BTreeMap<String, u64>,
    /// Bytes of the tier's files (`None` for a tier in memory or one given to the builder).
    pub bytes_on_disk: Option<u64>,
}

/// What a cache holds, tier by tier (a tier that is disabled is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheInspection {
    /// L1, L2 and L3, those that are enabled and serving.
    pub tiers: BTreeMap<CacheTierType, TierInspection>,
}

/// What [`CacheManager::rotate_credentials`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Entries with credentials rewritten under the current key, per tier.
    pub rewritten: BTreeMap<CacheTierType, u64>,
    /// Entries without credentials (nothing to rotate), per tier.
    pub without_credentials: BTreeMap<CacheTierType, u64>,
    /// `(tier, key, reason)` of every entry that could not be read or rewritten.
    pub failed: Vec<(CacheTierType, String, String)>,
}

impl CacheManager {
    /// Reads every entry of every serving tier without using it (no access, promotion or
    /// removal) and counts them: entries, expired, unreadable, per health status, bytes on
    /// disk. It reads and decrypts every entry: O(entries).
    pub fn inspect(&self) -> Result<CacheInspection, ManagerError> {
        let inner = &self.inner;
        let now = inner.now();
        let mut out = CacheInspection::default();
        let mut inspect_tier = |kind: CacheTierType, tier: &dyn CacheTier, bytes: Option<u64>| {
            let keys = tier
                .keys()
                .map_err(|source| ManagerError::ListKeys { tier: kind, source })?;
            let mut t = TierInspection {
                bytes_on_disk: bytes,
                ..TierInspection::default()
            };
            for key in keys {
                t.entries += 1;
                match tier.peek(&key) {
                    Ok(Some(entry)) => {
                        if entry.is_expired_at(now) {
                            t.expired += 1;
                        }
                        *t.health.entry(entry.health_status.to_string()).or_default() += 1;
                    }
                    Ok(None) => t.entries -= 1,
                    Err(e) if e.is_corrupt_entry() => {
                        t.corrupt += 1;
                        t.corrupt_keys.push(key);
                    }
                    Err(source) => return Err(ManagerError::ListKeys { tier: kind, source }),
                }
            }
            t.corrupt_keys.sort();
            out.tiers.insert(kind, t);
            Ok(())
        };
        if let Some(l1) = &inner.l1 {
            inspect_tier(CacheTierType::L1, l1, None)?;
        }
        for slot in inner.slots().filter(|s| s.serving()) {
            inspect_tier(slot.kind, &*slot.tier, self.bytes_on_disk(slot))?;
        }
        Ok(out)
    }

    /// Re-encrypts every stored credential of every serving disk tier under the ring's current
    /// key (entries written with a previous key are read with it and written back), then
    /// compacts the tiers so no superseded record keeps an old token on disk. Afterwards the
    /// previous keys can be dropped: everything reads with the current key alone. Each entry is
    /// rewritten under its key's lock, with its data unchanged.
    pub fn rotate_credentials(&self) -> Result<RotationReport, ManagerError> {
        let inner = &self.inner;
        let mut report = RotationReport::default();
        inner.settle_demotions();
        for slot in inner.slots().filter(|s| s.serving()) {
            let keys = slot.tier.keys().map_err(|source| ManagerError::ListKeys {
                tier: slot.kind,
                source,
            })?;
            for key in keys {
                let _guard = inner.lock_key(&key);
                match slot.tier.peek(&key) {
                    Ok(Some(entry)) if entry.username.is_none() && entry.password.is_none() => {
                        *report.without_credentials.entry(slot.kind).or_default() += 1;
                    }
                    Ok(Some(entry)) => match slot.tier.put(&entry) {
                        Ok(()) => *report.rewritten.entry(slot.kind).or_default() += 1,
                        Err(e) => report.failed.push((slot.kind, key.clone(), e.to_string())),
                    },
                    Ok(None) => {}
                    Err(e) => report.failed.push((slot.kind, key.clone(), e.to_string())),
                }
            }
            if let Err(e) = slot.tier.compact() {
                report
                    .failed
                    .push((slot.kind, String::new(), format!("compaction: {e}")));
            }
        }
        Ok(report)
    }

    /// Bytes of a configured disk tier's files.
    fn bytes_on_disk(&self, slot: &TierSlot) -> Option<u64> {
        let config = &self.inner.config;
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let with_wal = |db: &Path| {
            let name = db.as_os_str().to_owned();
            let mut total = size(db);
            for suffix in ["-wal", "-shm"] {
                let mut side = name.clone();
                side.push(suffix);
                total += size(Path::new(&side));
            }
            total
        };
        if !slot.configured {
            return None;
        }
        Some(match (slot.kind, config.l2_backend()) {
            (CacheTierType::L3, _) => with_wal(config.l3_database_path()),
            (_, L2BackendType::Sqlite) => {
                with_wal(&config.l2_cache_dir().join(pw_cache_tiers::sqlite_l2::DB_FILE_NAME))
            }
            (_, L2BackendType::Jsonl) => (0..pw_cache_tiers::jsonl::NUM_SHARDS)
                .map(|i| size(&config.l2_cache_dir().join(pw_cache_tiers::jsonl::shard_file_name(i))))
                .sum(),
        })
    }
}
