//! The tier contract ([`CacheTier`]) and graceful degradation ([`TierHealth`]).

use std::sync::atomic::{AtomicU32, Ordering};

use pw_cache_model::{AccessRecord, CacheEntry, CacheTierType, HealthDetail, HealthStatus, OffsetDateTime};

use crate::error::TierError;

/// Consecutive failures after which a tier reports itself disabled (the reference's 3).
pub const FAILURE_THRESHOLD: u32 = 3;

/// One storage level. Every backend implements it; the manager composes them.
///
/// - Results are typed: `Ok(None)` from [`CacheTier::get`] is a miss; an error is either a
///   failing tier ([`TierError::is_tier_failure`], counted by [`TierHealth`]) or one unreadable
///   entry ([`TierError::is_corrupt_entry`]).
/// - Tiers are `Send + Sync` and take `&self`: many threads use one tier at once.
/// - A tier stores an entry under `entry.key`, always.
/// - Expiry uses the model's one boundary: an entry is expired when `now >= expires_at`.
pub trait CacheTier: Send + Sync {
    /// Which level this tier is.
    fn tier_type(&self) -> CacheTierType;

    /// The entry under `key`, or `None`. Expired entries are returned as stored: the caller
    /// decides (the manager deletes them everywhere and counts a TTL eviction).
    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError>;

    /// The entry under `key` like [`CacheTier::get`], but not a use of it: nothing the
    /// eviction policy orders by changes (an export or an inspection reads this way). The
    /// default calls `get`: a backend whose `get` records use must override it.
    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        self.get(key)
    }

    /// Stores `entry` under `entry.key`, replacing what was there.
    fn put(&self, entry: &CacheEntry) -> Result<(), TierError>;

    /// Stores `entry`, a copy found in the tier below, unless this tier holds `entry.key`
    /// already, and only if `still_below()` (called after this tier's check, while this tier
    /// holds its write lock for the key where it has one: SQLite's write transaction, a JSONL
    /// shard's file lock) says the tier below still holds that version. Returns whether it
    /// stored `entry`.
    ///
    /// This is how a lookup promotes a copy from L3 into L2 without racing another process:
    /// a put writes L2 before L3 and a delete removes L3 before L2, so under L2's lock either
    /// L2 already holds a newer version (nothing is stored), or L3 no longer holds the copy
    /// (nothing is stored), or whatever changes the key next must wait for this lock and
    /// comes after. An upsert instead could write the copy over a newer put, or back after a
    /// delete. The default (no lock across the two steps) suits tiers of one process.
    fn put_if_absent_with(&self, entry: &CacheEntry, still_below: &mut dyn FnMut() -> bool) -> Result<bool, TierError> {
        defaults::put_if_absent_with(self, entry, still_below)
    }

    /// Removes `key`; whether it was there.
    fn delete(&self, key: &str) -> Result<bool, TierError>;

    /// Removes everything; how many entries there were.
    fn clear(&self) -> Result<usize, TierError>;

    /// Re-encrypts the credentials of the entry under `key` under the ring's current key,
    /// changing nothing else; what it did. An unreadable entry is an error (and left as it is).
    ///
    /// Where other processes write the tier, this must not write back a copy read earlier: a
    /// put, health mark or delete made by another process between the read and the write would
    /// be undone. SQLite does the read and the write in one transaction; Redis writes the new
    /// tokens only if the stored ones are still those it read. The default reads the entry and
    /// puts it back: right for a tier of one process whose caller holds the key's lock.
    fn rotate_credentials(&self, key: &str) -> Result<Rotated, TierError> {
        defaults::rotate_credentials(self, key)
    }

    /// Removes `key` only if the tier's copy was last written at or before `since` (its
    /// `updated_at`, in the writers' UTC clock), or holds no such time; whether it removed it.
    ///
    /// This is how a process replays, once a tier is back, a write or delete of `key` it missed
    /// while the tier was failing (its copy is stale): a copy another process wrote after that
    /// miss is newer than anything this process knew, and is kept. The default removes the
    /// key whatever it holds: right for a tier no other process writes, and for backends that
    /// keep no write time (proxywhirl's `l2_cache` table, JSONL shards).
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        defaults::delete_if_unchanged_since(self, key, since)
    }

    /// Removes every entry last written at or before `since` (see
    /// [`CacheTier::delete_if_unchanged_since`]); how many. The replay of a clear this process
    /// missed: what others wrote since is kept. The default clears everything.
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        defaults::clear_unchanged_since(self, since)
    }

    /// How many entries the tier holds.
    fn size(&self) -> Result<usize, TierError>;

    /// Every key the tier holds (no order promised).
    fn keys(&self) -> Result<Vec<String>, TierError>;

    /// Whether `key` is held (expired or not).
    fn contains(&self, key: &str) -> Result<bool, TierError>;

    /// Removes every entry expired at `now` (`now >= expires_at`); how many.
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError>;

    /// The tier's failure counter.
    fn health(&self) -> &TierHealth;

    /// Whether the tier stores the health-check detail fields of an entry
    /// (`last_health_check`, `consecutive_health_failures`, `consecutive_health_successes`,
    /// `recovery_attempt`, `next_check_time`, `last_health_error`, `total_health_checks`,
    /// `total_health_check_failures`). A tier that does not (proxywhirl's `l2_cache` table has
    /// no columns for them) returns entries with those fields at their defaults.
    fn keeps_health_detail(&self) -> bool {
        true
    }

    /// Records the use the layer above saw of these entries (see [`AccessRecord`]: only
    /// `access_count`, `last_accessed` and `evicted_from_l1` change, and a record older than
    /// the stored `last_accessed` changes nothing); how many entries changed. Keys the tier does
    /// not hold, or holds unreadable, are skipped. A backend records a batch in one write where
    /// it can; the default reads and rewrites each entry.
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        let mut changed = 0;
        for record in records {
            let mut entry = match self.peek(&record.key) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e) if e.is_corrupt_entry() => continue,
                Err(e) => return Err(e),
            };
            if record.apply_to(&mut entry) {
                self.put(&entry)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Records one failed health check of the entry under `key`, atomically where the entry
    /// lives: `failure_count + 1` and `health_status = unhealthy`, and nothing else of the
    /// entry changes (not its credentials, not its use, not its health-check detail). When
    /// `evict_at` is given and the count this mark produced is at least `evict_at`, the entry
    /// is removed instead, in the same atomic step. Not a use of the entry.
    ///
    /// What makes it safe for a tier shared by several processes or hosts:
    /// - **No lost failure.** The count is read and written in one step that no other writer of
    ///   the key can interleave with (a Redis script, a SQLite write transaction, a JSONL
    ///   shard's exclusive lock): N marks from N hosts add N.
    /// - **One eviction.** The threshold is decided on the count this mark produced, in that
    ///   same step, so exactly one mark crosses it and removes the entry; the marks after it
    ///   find the key [`FailureMark::Absent`].
    /// - **No stale write.** Only the two fields change: an update made by another writer
    ///   before the mark (new credentials, say) is kept, never overwritten by an older copy.
    /// - **Unreadable entries are left alone** (the crate docs, "Unreadable entries"): an entry
    ///   the tier cannot read (a damaged record, a token no key of the ring opens) is neither
    ///   changed nor removed; the mark returns the corrupt-entry error
    ///   ([`TierError::is_corrupt_entry`]) the lookup would.
    ///
    /// An expired entry is marked like any other (as [`CacheTier::get`] returns it as stored):
    /// the caller decides about expiry first.
    ///
    /// The backends of this crate: memory changes the entry in place under its shard's lock
    /// (the entry's flag kept); JSONL reads and appends the marked line (tokens encrypted
    /// again, their values unchanged), or rewrites the shard without the key, under the
    /// shard's exclusive file lock; SQLite reads, checks and updates the two columns (or
    /// deletes the row) in one `BEGIN IMMEDIATE` transaction; Redis reads and checks the entry,
    /// then runs one script that refuses if the entry changed since the read (a put or a
    /// recorded use moved its `updated_at`), reading again up to 32 times before it reports
    /// [`TierError::Remote`]. None of them moves the entry in the eviction order.
    ///
    /// The default reads the entry ([`CacheTier::peek`]), then puts it back marked or deletes
    /// it: two steps, right only for a tier used by one process whose caller holds the key's
    /// lock across the call (such as a custom tier given to the manager's builder). A backend
    /// that can be shared must override it.
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        let Some(mut entry) = self.peek(key)? else {
            return Ok(FailureMark::Absent);
        };
        let failure_count = entry.failure_count.saturating_add(1);
        if evict_at.is_some_and(|at| failure_count >= at) {
            self.delete(key)?;
            return Ok(FailureMark::Evicted { failure_count });
        }
        entry.failure_count = failure_count;
        entry.health_status = HealthStatus::Unhealthy;
        self.put(&entry)?;
        Ok(FailureMark::Marked { failure_count })
    }

    /// The health-check detail of the entry under `key` (not a use of it), or `None`. The
    /// default reads the whole entry; a backend that can read the detail alone should.
    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        defaults::health_detail(self, key)
    }

    /// Entries this tier evicted by its own policy to stay within `max_entries`, since it was
    /// opened (0 for a tier that never evicts).
    fn evictions(&self) -> u64 {
        0
    }

    /// Unreadable entries (a damaged record, a credential token no key of the ring opens) that
    /// this tier's own operations met and left where they were since it was opened: expiry
    /// cleanup, eviction, compaction. An unreadable entry is never expired, evicted or
    /// rewritten (see the crate docs, "Unreadable entries"); this counts how often one was
    /// skipped. Lookups that return [`TierError::is_corrupt_entry`] errors are not counted
    /// here: their caller counts them.
    fn unreadable_skipped(&self) -> u64 {
        0
    }

    /// Up to `limit` credential tokens as stored (each token's bytes, as
    /// `pw_cache_crypto::KeyRing::decrypt_bytes` takes them), so that a key ring can be checked
    /// against what the tier holds before it is used. Not a use of any entry; changes nothing.
    /// The default has none to give (a tier that cannot sample is not checked).
    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// The operator's explicit removal of what this tier cannot read: entries whose record is
    /// damaged or whose credentials no key of the ring opens (a backend with lines that are not
    /// entries at all, such as JSONL, removes those too). Returns how many entries (or lines)
    /// it removed. Nothing else in this workspace removes unreadable data: the manager calls
    /// this only when an operator asks (`CacheManager::remove_unreadable`). The default looks
    /// every key up without using it and deletes those that are unreadable.
    fn remove_unreadable(&self) -> Result<usize, TierError> {
        defaults::remove_unreadable(self)
    }

    /// Drops superseded records from storage, so that nothing replaced or deleted (e.g. a
    /// credential token under a retired key) stays on disk; how many files or pages were
    /// rewritten. The default has nothing to drop.
    fn compact(&self) -> Result<usize, TierError> {
        defaults::compact()
    }

    /// Writes whatever the tier keeps in memory for later (e.g. batched hit records). The
    /// default has nothing to write.
    fn flush(&self) -> Result<(), TierError> {
        defaults::flush()
    }

    /// Writes what [`CacheTier::flush`] writes and releases the tier's resources; later
    /// operations may fail with [`TierError::Closed`]. The default only flushes.
    fn close(&self) -> Result<(), TierError> {
        self.flush()
    }

    /// Checks that the tier can serve again after failures: it must exercise what failed
    /// (a write to the storage, not only a read), without changing any entry. A success is
    /// recorded in [`CacheTier::health`]. The default reads the size.
    fn probe(&self) -> Result<(), TierError> {
        self.size().map(drop)
    }
}

/// The default bodies of [`CacheTier`]'s methods that a backend may rely on: used by the trait's
/// defaults and by the [`TierBackend`](crate::TierBackend) blanket impl (for a backend without
/// an operation of its own), so each is written once. Each runs on the tier's [`CacheTier`]
/// operations, which record their outcomes as usual; the default itself records nothing.
pub(crate) mod defaults {
    use pw_cache_model::{CacheEntry, HealthDetail, OffsetDateTime};

    use super::{CacheTier, Rotated};
    use crate::error::TierError;

    /// [`CacheTier::put_if_absent_with`]'s default: the check, `still_below`, the put.
    pub(crate) fn put_if_absent_with<T: CacheTier + ?Sized>(
        tier: &T,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Result<bool, TierError> {
        if tier.contains(&entry.key)? || !still_below() {
            return Ok(false);
        }
        tier.put(entry)?;
        Ok(true)
    }

    /// [`CacheTier::rotate_credentials`]'s default: the entry read and put back.
    pub(crate) fn rotate_credentials<T: CacheTier + ?Sized>(tier: &T, key: &str) -> Result<Rotated, TierError> {
        match tier.peek(key)? {
            None => Ok(Rotated::Absent),
            Some(entry) if entry.username.is_none() && entry.password.is_none() => Ok(Rotated::NoCredentials),
            Some(entry) => {
                tier.put(&entry)?;
                Ok(Rotated::Rewritten)
            }
        }
    }

    /// [`CacheTier::delete_if_unchanged_since`]'s default: a delete, whatever the key holds.
    pub(crate) fn delete_if_unchanged_since<T: CacheTier + ?Sized>(
        tier: &T,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<bool, TierError> {
        let _ = since;
        tier.delete(key)
    }

    /// [`CacheTier::clear_unchanged_since`]'s default: a clear.
    pub(crate) fn clear_unchanged_since<T: CacheTier + ?Sized>(
        tier: &T,
        since: OffsetDateTime,
    ) -> Result<usize, TierError> {
        let _ = since;
        tier.clear()
    }

    /// [`CacheTier::health_detail`]'s default: the whole entry read.
    pub(crate) fn health_detail<T: CacheTier + ?Sized>(tier: &T, key: &str) -> Result<Option<HealthDetail>, TierError> {
        Ok(tier.peek(key)?.map(|entry| HealthDetail::of(&entry)))
    }

    /// [`CacheTier::remove_unreadable`]'s default: every key looked up without using it, the
    /// unreadable ones deleted.
    pub(crate) fn remove_unreadable<T: CacheTier + ?Sized>(tier: &T) -> Result<usize, TierError> {
        let mut removed = 0;
        for key in tier.keys()? {
            match tier.peek(&key) {
                Err(e) if e.is_corrupt_entry() => {
                    if tier.delete(&key)? {
                        removed += 1;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// [`CacheTier::compact`]'s default: nothing to drop.
    pub(crate) fn compact() -> Result<usize, TierError> {
        Ok(0)
    }

    /// [`CacheTier::flush`]'s default: nothing to write.
    pub(crate) fn flush() -> Result<(), TierError> {
        Ok(())
    }
}

/// What [`CacheTier::rotate_credentials`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// No entry under the key.
    Absent,
    /// The entry holds no credential: nothing to re-encrypt.
    NoCredentials,
    /// Its credentials are now encrypted with the ring's current key.
    Rewritten,
}

/// What [`CacheTier::mark_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMark {
    /// The tier holds no entry under the key: nothing was changed.
    Absent,
    /// The entry was marked and kept: `failure_count` is now this, `health_status` unhealthy.
    Marked {
        /// The entry's `failure_count` after this mark.
        failure_count: u64,
    },
    /// This mark brought `failure_count` to the threshold it was given (or beyond): the entry
    /// was removed from the tier.
    Evicted {
        /// The count this mark reached (the entry is gone).
        failure_count: u64,
    },
}

impl FailureMark {
    /// The failure count the mark produced (`None` when the key was absent).
    pub fn failure_count(self) -> Option<u64> {
        match self {
            FailureMark::Absent => None,
            FailureMark::Marked { failure_count } | FailureMark::Evicted { failure_count } => Some(failure_count),
        }
    }
}

/// Counts consecutive failures of a tier: at [`FAILURE_THRESHOLD`] the tier reports itself
/// disabled; any success resets the count (so a tier comes back by itself).
#[derive(Debug, Default)]
pub struct TierHealth {
    consecutive_failures: AtomicU32,
}

impl TierHealth {
    /// A healthy counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the outcome of an operation and passes it through: an error that is a tier
    /// failure counts one failure; success resets; other errors (a corrupt entry, bad input)
    /// leave the count as it is.
    pub fn observe<T>(&self, result: Result<T, TierError>) -> Result<T, TierError> {
        match &result {
            Ok(_) => self.record_success(),
            Err(e) if e.is_tier_failure() => self.record_failure(),
            Err(_) => {}
        }
        result
    }

    /// Runs `op` and records its outcome ([`TierHealth::observe`]): how a public operation
    /// outside [`CacheTier`] (health history, an index rebuild, a migration) counts in the
    /// tier's health, its body written once, in the closure.
    pub(crate) fn record<T>(&self, op: impl FnOnce() -> Result<T, TierError>) -> Result<T, TierError> {
        self.observe(op())
    }

    /// Records a success: the count goes back to zero.
    pub fn record_success(&self) {
        // Skip the write when already zero: successes are the hot path.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure.
    pub fn record_failure(&self) {
        let failures = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures == FAILURE_THRESHOLD {
            tracing::warn!(failures, "cache tier disabled after consecutive failures");
        }
    }

    /// Consecutive failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Whether the tier has failed [`FAILURE_THRESHOLD`] times in a row.
    pub fn is_disabled(&self) -> bool {
        self.consecutive_failures() >= FAILURE_THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_err() -> TierError {
        TierError::Io {
            op: "read",
            path: "/x".into(),
            source: std::io::Error::other("boom"),
        }
    }

    #[test]
    fn disabled_at_threshold_and_reset_by_success() {
        let h = TierHealth::new();
        for _ in 0..FAILURE_THRESHOLD - 1 {
            let _ = h.observe::<()>(Err(io_err()));
        }
        assert!(!h.is_disabled());
        let _ = h.observe::<()>(Err(io_err()));
        assert!(h.is_disabled());
        h.observe(Ok(())).unwrap();
        assert!(!h.is_disabled());
        assert_eq!(h.consecutive_failures(), 0);
    }

    #[test]
    fn corrupt_entries_are_not_tier_failures() {
        let h = TierHealth::new();
        for _ in 0..10 {
            let _ = h.observe::<()>(Err(TierError::Corrupt {
                key: "k".into(),
                reason: "r".into(),
            }));
        }
        assert!(!h.is_disabled());
    }
}
