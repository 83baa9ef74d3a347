//! Looking inside a cache and re-encrypting it: what the operator commands (`cargo xtask stats`,
//! `cargo xtask rotate-key`) are built on.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use pw_cache_model::{CacheTierType, L2BackendType};
use pw_cache_tiers::CacheTier;

use super::{CacheManager, TierSlot};
use crate::error::ManagerError;

/// What one tier holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierInspection {
    /// Entries held (readable or not).
    pub entries: u64,
    /// Of the readable ones, expired (still stored: nothing was removed to count them). An
    /// unreadable entry is never counted as expired: its expiry cannot be trusted, and it is
    /// never removed as expired.
    pub expired: u64,
    /// Of the readable ones, those holding a credential (a username or a password).
    pub with_credentials: u64,
    /// Of those, unreadable: damaged, or a credential no key of the ring opens.
    pub corrupt: u64,
    /// The keys of the unreadable entries, sorted.
    pub corrupt_keys: Vec<String>,
    /// Readable entries per health status (`healthy`, `unhealthy`, `unknown` ...).
    pub health: BTreeMap<String, u64>,
    /// Bytes of the tier's files (`None` for a tier in memory, one given to the builder, or L3
    /// in Redis).
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

/// What [`CacheManager::remove_unreadable`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnreadableRemoval {
    /// Entries (and, in a JSONL tier, lines that are no entry) removed, per tier.
    pub removed: BTreeMap<CacheTierType, u64>,
    /// `(tier, reason)` of every tier whose removal failed (what it held is unchanged, or
    /// partly removed where the tier removes entry by entry).
    pub failed: Vec<(CacheTierType, String)>,
}

impl UnreadableRemoval {
    /// Removed from all tiers together.
    pub fn total(&self) -> u64 {
        self.removed.values().sum()
    }
}

impl CacheManager {
    /// The operator's explicit removal of every entry no serving disk tier can read: damaged
    /// records, values outside their fields that cannot be read as the nearest legal value,
    /// credential tokens no key of the ring opens (and, in a JSONL tier, lines that are not
    /// entries). Nothing else removes such data (see [`docs::reliability`], "Never lose what you
    /// cannot read"). Counted in each tier's `evictions_corruption`.
    ///
    /// Check first that the key ring is the right one: with a wrong key every credentialed
    /// entry is unreadable. [`CacheManager::inspect`] lists what this would remove.
    ///
    /// [`docs::reliability`]: crate::docs::reliability
    pub fn remove_unreadable(&self) -> UnreadableRemoval {
        let inner = &self.inner;
        let mut report = UnreadableRemoval::default();
        // The use of evicted entries is written first: nothing queued names a removed key after.
        inner.record_evicted_use(1, true);
        let _all = inner.locks.lock_all();
        for slot in inner.slots() {
            if !slot.serving() {
                report.failed.push((slot.kind, "degraded: skipped".to_owned()));
                continue;
            }
            match slot.tier.remove_unreadable() {
                Ok(n) => {
                    report.removed.insert(slot.kind, n as u64);
                    crate::counters::bump(&inner.counters.tier(slot.kind).evictions_corruption, n as u64);
                    if n > 0 {
                        tracing::warn!(tier = %slot.kind, removed = n, "unreadable entries removed at the operator's request");
                    }
                }
                Err(e) => report.failed.push((slot.kind, e.to_string())),
            }
        }
        report
    }

    /// Reads every entry of every serving tier without using it (no access, promotion or
    /// removal) and counts them: entries, expired, unreadable, per health status, bytes on
    /// disk. It reads and decrypts every entry: O(entries).
    pub fn inspect(&self) -> Result<CacheInspection, ManagerError> {
        self.inspect_with_progress(&|_, _| {})
    }

    /// [`CacheManager::inspect`], calling `progress(done, total)` after each entry.
    pub fn inspect_with_progress(&self, progress: &dyn Fn(u64, u64)) -> Result<CacheInspection, ManagerError> {
        let inner = &self.inner;
        let now = inner.now();
        let mut tiers: Vec<(CacheTierType, &dyn CacheTier, Option<u64>)> = Vec::new();
        if let Some(l1) = &inner.l1 {
            tiers.push((CacheTierType::L1, l1, None));
        }
        for slot in inner.slots().filter(|s| s.serving()) {
            tiers.push((slot.kind, &*slot.tier, self.bytes_on_disk(slot)));
        }
        let listed = list_keys(&tiers)?;
        let total = listed.iter().map(|keys| keys.len() as u64).sum();
        let mut done = 0;
        let mut out = CacheInspection::default();
        for ((kind, tier, bytes), keys) in tiers.into_iter().zip(listed) {
            let mut t = TierInspection {
                bytes_on_disk: bytes,
                ..TierInspection::default()
            };
            for key in keys {
                match tier.peek(&key) {
                    Ok(Some(entry)) => {
                        t.entries += 1;
                        if entry.is_expired_at(now) {
                            t.expired += 1;
                        }
                        if entry.username.is_some() || entry.password.is_some() {
                            t.with_credentials += 1;
                        }
                        *t.health.entry(entry.health_status.to_string()).or_default() += 1;
                    }
                    Ok(None) => {}
                    Err(e) if e.is_corrupt_entry() => {
                        t.entries += 1;
                        t.corrupt += 1;
                        t.corrupt_keys.push(key);
                    }
                    Err(source) => return Err(ManagerError::ListKeys { tier: kind, source }),
                }
                done += 1;
                progress(done, total);
            }
            t.corrupt_keys.sort();
            out.tiers.insert(kind, t);
        }
        Ok(out)
    }

    /// Re-encrypts every stored credential of every serving disk tier under the ring's current
    /// key (entries written with a previous key are read with it and written back), then
    /// compacts the tiers so no superseded record keeps an old token on disk. Afterwards the
    /// previous keys can be dropped: everything reads with the current key alone. Each entry is
    /// rewritten under its key's lock, with its data unchanged.
    pub fn rotate_credentials(&self) -> Result<RotationReport, ManagerError> {
        self.rotate_credentials_with_progress(&|_, _| {})
    }

    /// [`CacheManager::rotate_credentials`], calling `progress(done, total)` after each entry.
    pub fn rotate_credentials_with_progress(
        &self,
        progress: &dyn Fn(u64, u64),
    ) -> Result<RotationReport, ManagerError> {
        let inner = &self.inner;
        let mut report = RotationReport::default();
        inner.record_evicted_use(1, true);
        let slots: Vec<&TierSlot> = inner.slots().filter(|s| s.serving()).collect();
        let tiers: Vec<(CacheTierType, &dyn CacheTier, Option<u64>)> =
            slots.iter().map(|s| (s.kind, &*s.tier, None)).collect();
        let listed = list_keys(&tiers)?;
        let total = listed.iter().map(|keys| keys.len() as u64).sum();
        let mut done = 0;
        for (slot, keys) in slots.into_iter().zip(listed) {
            for key in keys {
                let _guard = inner.locks.lock(&key);
                // Atomically where the tier is shared: another host's put, mark or delete in
                // between is never undone (`CacheTier::rotate_credentials`).
                match slot.tier.rotate_credentials(&key) {
                    Ok(pw_cache_tiers::Rotated::NoCredentials) => {
                        *report.without_credentials.entry(slot.kind).or_default() += 1;
                    }
                    Ok(pw_cache_tiers::Rotated::Rewritten) => *report.rewritten.entry(slot.kind).or_default() += 1,
                    Ok(pw_cache_tiers::Rotated::Absent) => {}
                    Err(e) => report.failed.push((slot.kind, key.clone(), e.to_string())),
                }
                done += 1;
                progress(done, total);
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

/// The keys of each tier, in order.
fn list_keys(tiers: &[(CacheTierType, &dyn CacheTier, Option<u64>)]) -> Result<Vec<Vec<String>>, ManagerError> {
    tiers
        .iter()
        .map(|(kind, tier, _)| {
            tier.keys()
                .map_err(|source| ManagerError::ListKeys { tier: *kind, source })
        })
        .collect()
}
