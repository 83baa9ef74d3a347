//! The shared part of both SQLite tiers' interface: one [`TierBackend`] implementation for
//! both (each operation the [`Store`]'s; the level and whether the table keeps the health
//! detail follow from the store's [`Layout`]), from which both get [`CacheTier`], and the
//! inherent methods both have (`evictions`, `flush`, `close`).

use pw_cache_model::{AccessRecord, CacheEntry, CacheTierType, HealthDetail, OffsetDateTime};

use super::l2::SqliteL2Tier;
use super::l3::SqliteL3Tier;
use super::statements::Layout;
use super::store::Store;
use crate::backend::TierBackend;
use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, Rotated, TierHealth};

/// A SQLite tier: the store it runs. Both tiers' [`TierBackend`] is the one below.
pub(crate) trait SqliteTier: Send + Sync {
    /// The store of the tier's table.
    fn store(&self) -> &Store;
}

impl SqliteTier for SqliteL2Tier {
    fn store(&self) -> &Store {
        &self.store
    }
}

impl SqliteTier for SqliteL3Tier {
    fn store(&self) -> &Store {
        &self.store
    }
}

/// Both SQLite tiers: each operation the `Store`'s. SQLite has no compaction of its own
/// ([`CacheTier::compact`]'s default).
impl<T: SqliteTier> TierBackend for T {
    /// The store's layout: `l2_cache` is L2, `cache_entries` L3.
    fn tier_type(&self) -> CacheTierType {
        match self.store().layout {
            Layout::L2 => CacheTierType::L2,
            Layout::L3 => CacheTierType::L3,
        }
    }

    fn health(&self) -> &TierHealth {
        &self.store().health
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store().get(key)
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store().peek(key)
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.store().put(entry)
    }

    /// The check, `still_below` and the write in one write transaction.
    fn put_if_absent_with(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Option<Result<bool, TierError>> {
        Some(self.store().put_if_absent_with(entry, still_below))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.store().delete(key)
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.store().clear()
    }

    /// Read, checked readable and its tokens rewritten in one write transaction.
    fn rotate_credentials(&self, key: &str) -> Option<Result<Rotated, TierError>> {
        Some(self.store().rotate_credentials(key))
    }

    /// L3 compares `updated_at`; L2 has no write time and deletes.
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Option<Result<bool, TierError>> {
        Some(self.store().delete_if_unchanged_since(key, since))
    }

    /// L3 compares `updated_at`; L2 has no write time and clears.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Option<Result<usize, TierError>> {
        Some(self.store().clear_unchanged_since(since))
    }

    fn size(&self) -> Result<usize, TierError> {
        self.store().size()
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.store().keys()
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.store().contains(key)
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.store().cleanup_expired(now)
    }

    /// L3's table has the health-check columns; L2's (proxywhirl's `l2_cache`) has not.
    fn keeps_health_detail(&self) -> bool {
        self.store().layout == Layout::L3
    }

    /// One transaction of `UPDATE`s of the three use columns.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.store().record_accesses(records)
    }

    /// Read, checked readable and updated (or deleted) in one write transaction.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.store().mark_failure(key, evict_at)
    }

    /// L3 reads the eight columns alone (no credential is decrypted).
    fn health_detail(&self, key: &str) -> Option<Result<Option<HealthDetail>, TierError>> {
        Some(self.store().health_detail(key))
    }

    fn evictions(&self) -> u64 {
        self.store().evictions()
    }

    fn unreadable_skipped(&self) -> u64 {
        self.store().unreadable_skipped()
    }

    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.store().credential_sample(limit)
    }

    /// Every row is read and its tokens checked in one write transaction.
    fn remove_unreadable(&self) -> Option<Result<usize, TierError>> {
        Some(self.store().remove_unreadable())
    }

    /// The get hits noted for LRU/LFU so far.
    fn flush(&self) -> Option<Result<(), TierError>> {
        Some(self.store().flush_touches())
    }

    fn close(&self) -> Result<(), TierError> {
        self.store().close()
    }

    /// A write transaction that changes nothing (see [`crate::sqlite`]).
    fn probe(&self) -> Result<(), TierError> {
        self.store().probe()
    }
}

impl SqliteL2Tier {
    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    /// Writes the get hits noted for LRU/LFU so far (also done by itself, see
    /// [`crate::sqlite`]).
    pub fn flush(&self) -> Result<(), TierError> {
        CacheTier::flush(self)
    }

    /// Checkpoints the background thread has completed (tests).
    #[cfg(test)]
    pub(crate) fn background_checkpoints(&self) -> u64 {
        self.store.checkpointer.completed()
    }

    /// Whether the checkpoint thread is running (tests).
    #[cfg(test)]
    pub(crate) fn checkpoint_thread_running(&self) -> bool {
        self.store.checkpointer.running()
    }

    /// Writes pending hits and closes the database's connections. Later operations fail with
    /// [`TierError::Closed`]; closing again does nothing. Dropping the tier closes it too.
    pub fn close(&self) -> Result<(), TierError> {
        CacheTier::close(self)
    }
}

impl SqliteL3Tier {
    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    /// Writes the get hits noted for LRU/LFU so far (also done by itself, see
    /// [`crate::sqlite`]).
    pub fn flush(&self) -> Result<(), TierError> {
        CacheTier::flush(self)
    }

    /// Checkpoints the background thread has completed (tests).
    #[cfg(test)]
    pub(crate) fn background_checkpoints(&self) -> u64 {
        self.store.checkpointer.completed()
    }

    /// Whether the checkpoint thread is running (tests).
    #[cfg(test)]
    pub(crate) fn checkpoint_thread_running(&self) -> bool {
        self.store.checkpointer.running()
    }

    /// Writes pending hits and closes the database's connections. Later operations fail with
    /// [`TierError::Closed`]; closing again does nothing. Dropping the tier closes it too.
    pub fn close(&self) -> Result<(), TierError> {
        CacheTier::close(self)
    }
}
