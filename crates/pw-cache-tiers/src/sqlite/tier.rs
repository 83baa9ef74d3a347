//! The shared part of both SQLite tiers' interface: the inherent methods both have
//! (`evictions`, `flush`, `close`) and their [`CacheTier`] implementation. Each method runs the
//! [`Store`](super::store::Store)'s, every result passing through the store's [`TierHealth`].
//! The two tiers' blocks are the same but for the level (`tier_type`) and
//! `keeps_health_detail`: a change to one is a change to the other.

use pw_cache_model::{AccessRecord, CacheEntry, CacheTierType, HealthDetail, OffsetDateTime};

use super::l2::SqliteL2Tier;
use super::l3::SqliteL3Tier;
use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, Rotated, TierHealth};

impl SqliteL2Tier {
    /// Entries this tier evicted to stay within `max_entries`, since it opened.
    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    /// Writes the get hits noted for LRU/LFU so far (also done by itself, see
    /// [`crate::sqlite`]).
    pub fn flush(&self) -> Result<(), TierError> {
        self.store.health.observe(self.store.flush_touches())
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
        self.store.close()
    }
}

impl CacheTier for SqliteL2Tier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L2
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store.health.observe(self.store.get(key))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store.health.observe(self.store.peek(key))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.store.health.observe(self.store.put(entry))
    }

    /// The check, `still_below` and the write in one write transaction.
    fn put_if_absent_with(&self, entry: &CacheEntry, still_below: &mut dyn FnMut() -> bool) -> Result<bool, TierError> {
        self.store
            .health
            .observe(self.store.put_if_absent_with(entry, still_below))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.store.health.observe(self.store.delete(key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.clear())
    }

    fn size(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.size())
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.store.health.observe(self.store.keys())
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.store.health.observe(self.store.contains(key))
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.store.health.observe(self.store.cleanup_expired(now))
    }

    fn health(&self) -> &TierHealth {
        &self.store.health
    }

    fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    fn unreadable_skipped(&self) -> u64 {
        self.store.unreadable_skipped()
    }

    /// L3 compares `updated_at`; L2 has no write time and deletes.
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        self.store
            .health
            .observe(self.store.delete_if_unchanged_since(key, since))
    }

    /// L3 compares `updated_at`; L2 has no write time and clears.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        self.store.health.observe(self.store.clear_unchanged_since(since))
    }

    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.store.health.observe(self.store.credential_sample(limit))
    }

    /// Every row is read and its tokens checked in one write transaction.
    fn remove_unreadable(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.remove_unreadable())
    }

    fn flush(&self) -> Result<(), TierError> {
        self.store.health.observe(self.store.flush_touches())
    }

    fn close(&self) -> Result<(), TierError> {
        self.store.close()
    }

    /// One transaction of `UPDATE`s of the three use columns.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.store.health.observe(self.store.record_accesses(records))
    }

    /// Read, checked readable and its tokens rewritten in one write transaction.
    fn rotate_credentials(&self, key: &str) -> Result<Rotated, TierError> {
        self.store.health.observe(self.store.rotate_credentials(key))
    }

    /// Read, checked readable and updated (or deleted) in one write transaction.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.store.health.observe(self.store.mark_failure(key, evict_at))
    }

    /// L3 reads the eight columns alone (no credential is decrypted).
    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        self.store.health.observe(self.store.health_detail(key))
    }

    /// L3's table has the health-check columns; L2's (proxywhirl's `l2_cache`) has not.
    fn keeps_health_detail(&self) -> bool {
        false
    }

    /// A write transaction that changes nothing (see [`crate::sqlite`]).
    fn probe(&self) -> Result<(), TierError> {
        self.store.health.observe(self.store.probe())
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
        self.store.health.observe(self.store.flush_touches())
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
        self.store.close()
    }
}

impl CacheTier for SqliteL3Tier {
    fn tier_type(&self) -> CacheTierType {
        CacheTierType::L3
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store.health.observe(self.store.get(key))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.store.health.observe(self.store.peek(key))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        self.store.health.observe(self.store.put(entry))
    }

    /// The check, `still_below` and the write in one write transaction.
    fn put_if_absent_with(&self, entry: &CacheEntry, still_below: &mut dyn FnMut() -> bool) -> Result<bool, TierError> {
        self.store
            .health
            .observe(self.store.put_if_absent_with(entry, still_below))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        self.store.health.observe(self.store.delete(key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.clear())
    }

    fn size(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.size())
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        self.store.health.observe(self.store.keys())
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        self.store.health.observe(self.store.contains(key))
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        self.store.health.observe(self.store.cleanup_expired(now))
    }

    fn health(&self) -> &TierHealth {
        &self.store.health
    }

    fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    fn unreadable_skipped(&self) -> u64 {
        self.store.unreadable_skipped()
    }

    /// L3 compares `updated_at`; L2 has no write time and deletes.
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        self.store
            .health
            .observe(self.store.delete_if_unchanged_since(key, since))
    }

    /// L3 compares `updated_at`; L2 has no write time and clears.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        self.store.health.observe(self.store.clear_unchanged_since(since))
    }

    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        self.store.health.observe(self.store.credential_sample(limit))
    }

    /// Every row is read and its tokens checked in one write transaction.
    fn remove_unreadable(&self) -> Result<usize, TierError> {
        self.store.health.observe(self.store.remove_unreadable())
    }

    fn flush(&self) -> Result<(), TierError> {
        self.store.health.observe(self.store.flush_touches())
    }

    fn close(&self) -> Result<(), TierError> {
        self.store.close()
    }

    /// One transaction of `UPDATE`s of the three use columns.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        self.store.health.observe(self.store.record_accesses(records))
    }

    /// Read, checked readable and its tokens rewritten in one write transaction.
    fn rotate_credentials(&self, key: &str) -> Result<Rotated, TierError> {
        self.store.health.observe(self.store.rotate_credentials(key))
    }

    /// Read, checked readable and updated (or deleted) in one write transaction.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        self.store.health.observe(self.store.mark_failure(key, evict_at))
    }

    /// L3 reads the eight columns alone (no credential is decrypted).
    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        self.store.health.observe(self.store.health_detail(key))
    }

    /// L3's table has the health-check columns; L2's (proxywhirl's `l2_cache`) has not.
    fn keeps_health_detail(&self) -> bool {
        true
    }

    /// A write transaction that changes nothing (see [`crate::sqlite`]).
    fn probe(&self) -> Result<(), TierError> {
        self.store.health.observe(self.store.probe())
    }
}
