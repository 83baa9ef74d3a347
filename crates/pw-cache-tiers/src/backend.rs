//! The backends' side of the tier contract: [`TierBackend`], the operations of a storage
//! backend with plain results, and the one [`CacheTier`] implementation of every backend, which
//! records their outcomes in the tier's [`TierHealth`].
//!
//! A backend (JSONL, the two SQLite tiers, Redis) implements [`TierBackend`] and gets
//! [`CacheTier`] from the blanket `impl<B: TierBackend> CacheTier for B`: no backend calls
//! [`TierHealth::observe`] for an operation of the contract. Which outcomes count is decided
//! here, method by method, the same for every backend:
//! - recorded ([`TierHealth::observe`]: a tier failure counts one failure, a success resets
//!   the count): every operation that uses the storage, from `get` to `probe`;
//! - not recorded: `tier_type`, `health`, `keeps_health_detail`, `evictions`,
//!   `unreadable_skipped` (no storage is used) and `close` (a tier being closed is not failing).
//!
//! The memory tier never fails: it implements [`CacheTier`] itself.

use pw_cache_model::{AccessRecord, CacheEntry, CacheTierType, HealthDetail, OffsetDateTime};

use crate::error::TierError;
use crate::tier::{CacheTier, FailureMark, Rotated, TierHealth, defaults};

/// A storage backend: the operations of [`CacheTier`], each returning what it did, with no
/// bookkeeping. Every type that implements it is a [`CacheTier`] whose operations record their
/// outcomes in [`TierBackend::health`] (see the module docs for which do).
///
/// Each method is the [`CacheTier`] method of the same name; see there for what it must do.
///
/// **Defaults.** Where [`CacheTier`] has a default made of other operations (or of none) that
/// some backend relies on, the method here returns an `Option`: `Some` with the backend's own
/// result (recorded), or `None` (the default) for "no operation of its own": the tier then runs
/// [`CacheTier`]'s default, whose steps are the tier's operations, each recorded as it runs, and
/// an operation of none (`compact`, `flush`) records nothing. So a backend that has no
/// `compact` never resets the failure count by answering `Ok(0)`.
///
/// Both traits name the same methods: where both are in scope, call them fully qualified
/// (`TierBackend::get(tier, key)` runs the backend's `get` and records nothing;
/// `CacheTier::get(tier, key)` records it).
pub trait TierBackend: Send + Sync {
    /// [`CacheTier::tier_type`].
    fn tier_type(&self) -> CacheTierType;

    /// The tier's failure counter, in which [`CacheTier`]'s operations record their outcomes
    /// ([`CacheTier::health`]).
    fn health(&self) -> &TierHealth;

    /// [`CacheTier::get`].
    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError>;

    /// [`CacheTier::peek`].
    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError>;

    /// [`CacheTier::put`].
    fn put(&self, entry: &CacheEntry) -> Result<(), TierError>;

    /// [`CacheTier::put_if_absent_with`]; `None`: its default (`contains`, then `put`).
    fn put_if_absent_with(
        &self,
        entry: &CacheEntry,
        still_below: &mut dyn FnMut() -> bool,
    ) -> Option<Result<bool, TierError>> {
        let _ = (entry, still_below);
        None
    }

    /// [`CacheTier::delete`].
    fn delete(&self, key: &str) -> Result<bool, TierError>;

    /// [`CacheTier::clear`].
    fn clear(&self) -> Result<usize, TierError>;

    /// [`CacheTier::rotate_credentials`]; `None`: its default (`peek`, then `put`).
    fn rotate_credentials(&self, key: &str) -> Option<Result<Rotated, TierError>> {
        let _ = key;
        None
    }

    /// [`CacheTier::delete_if_unchanged_since`]; `None`: its default (`delete`).
    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Option<Result<bool, TierError>> {
        let _ = (key, since);
        None
    }

    /// [`CacheTier::clear_unchanged_since`]; `None`: its default (`clear`).
    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Option<Result<usize, TierError>> {
        let _ = since;
        None
    }

    /// [`CacheTier::size`].
    fn size(&self) -> Result<usize, TierError>;

    /// [`CacheTier::keys`].
    fn keys(&self) -> Result<Vec<String>, TierError>;

    /// [`CacheTier::contains`].
    fn contains(&self, key: &str) -> Result<bool, TierError>;

    /// [`CacheTier::cleanup_expired`].
    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError>;

    /// [`CacheTier::keeps_health_detail`] (the same default: `true`).
    fn keeps_health_detail(&self) -> bool {
        true
    }

    /// [`CacheTier::record_accesses`].
    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError>;

    /// [`CacheTier::mark_failure`] (no default: a backend that can be shared must make it
    /// atomic where the entry lives).
    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError>;

    /// [`CacheTier::health_detail`]; `None`: its default (`peek`).
    fn health_detail(&self, key: &str) -> Option<Result<Option<HealthDetail>, TierError>> {
        let _ = key;
        None
    }

    /// [`CacheTier::evictions`] (the same default: 0).
    fn evictions(&self) -> u64 {
        0
    }

    /// [`CacheTier::unreadable_skipped`] (the same default: 0).
    fn unreadable_skipped(&self) -> u64 {
        0
    }

    /// [`CacheTier::credential_sample`].
    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError>;

    /// [`CacheTier::remove_unreadable`]; `None`: its default (`keys`, `peek` each, `delete`
    /// the unreadable ones).
    fn remove_unreadable(&self) -> Option<Result<usize, TierError>> {
        None
    }

    /// [`CacheTier::compact`]; `None`: nothing to drop (`Ok(0)`, not recorded).
    fn compact(&self) -> Option<Result<usize, TierError>> {
        None
    }

    /// [`CacheTier::flush`]; `None`: nothing kept for later (`Ok(())`, not recorded).
    fn flush(&self) -> Option<Result<(), TierError>> {
        None
    }

    /// [`CacheTier::close`] (not recorded).
    fn close(&self) -> Result<(), TierError>;

    /// [`CacheTier::probe`].
    fn probe(&self) -> Result<(), TierError>;
}

/// `result`, recorded in `backend`'s health.
fn recorded<B: TierBackend + ?Sized, T>(backend: &B, result: Result<T, TierError>) -> Result<T, TierError> {
    TierBackend::health(backend).observe(result)
}

/// The backend's own result (`Some`), recorded; else `default`, [`CacheTier`]'s default, whose
/// steps record themselves.
fn recorded_or<B: TierBackend + ?Sized, T>(
    backend: &B,
    own: Option<Result<T, TierError>>,
    default: impl FnOnce() -> Result<T, TierError>,
) -> Result<T, TierError> {
    match own {
        Some(result) => recorded(backend, result),
        None => default(),
    }
}

/// Every backend's [`CacheTier`]: its operations, their outcomes recorded (see the module docs).
impl<B: TierBackend> CacheTier for B {
    fn tier_type(&self) -> CacheTierType {
        TierBackend::tier_type(self)
    }

    fn get(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        recorded(self, TierBackend::get(self, key))
    }

    fn peek(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        recorded(self, TierBackend::peek(self, key))
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), TierError> {
        recorded(self, TierBackend::put(self, entry))
    }

    fn put_if_absent_with(&self, entry: &CacheEntry, still_below: &mut dyn FnMut() -> bool) -> Result<bool, TierError> {
        let own = TierBackend::put_if_absent_with(self, entry, &mut *still_below);
        recorded_or(self, own, || defaults::put_if_absent_with(self, entry, still_below))
    }

    fn delete(&self, key: &str) -> Result<bool, TierError> {
        recorded(self, TierBackend::delete(self, key))
    }

    fn clear(&self) -> Result<usize, TierError> {
        recorded(self, TierBackend::clear(self))
    }

    fn rotate_credentials(&self, key: &str) -> Result<Rotated, TierError> {
        let own = TierBackend::rotate_credentials(self, key);
        recorded_or(self, own, || defaults::rotate_credentials(self, key))
    }

    fn delete_if_unchanged_since(&self, key: &str, since: OffsetDateTime) -> Result<bool, TierError> {
        let own = TierBackend::delete_if_unchanged_since(self, key, since);
        recorded_or(self, own, || defaults::delete_if_unchanged_since(self, key, since))
    }

    fn clear_unchanged_since(&self, since: OffsetDateTime) -> Result<usize, TierError> {
        let own = TierBackend::clear_unchanged_since(self, since);
        recorded_or(self, own, || defaults::clear_unchanged_since(self, since))
    }

    fn size(&self) -> Result<usize, TierError> {
        recorded(self, TierBackend::size(self))
    }

    fn keys(&self) -> Result<Vec<String>, TierError> {
        recorded(self, TierBackend::keys(self))
    }

    fn contains(&self, key: &str) -> Result<bool, TierError> {
        recorded(self, TierBackend::contains(self, key))
    }

    fn cleanup_expired(&self, now: OffsetDateTime) -> Result<usize, TierError> {
        recorded(self, TierBackend::cleanup_expired(self, now))
    }

    fn health(&self) -> &TierHealth {
        TierBackend::health(self)
    }

    fn keeps_health_detail(&self) -> bool {
        TierBackend::keeps_health_detail(self)
    }

    fn record_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        recorded(self, TierBackend::record_accesses(self, records))
    }

    fn mark_failure(&self, key: &str, evict_at: Option<u64>) -> Result<FailureMark, TierError> {
        recorded(self, TierBackend::mark_failure(self, key, evict_at))
    }

    fn health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        let own = TierBackend::health_detail(self, key);
        recorded_or(self, own, || defaults::health_detail(self, key))
    }

    fn evictions(&self) -> u64 {
        TierBackend::evictions(self)
    }

    fn unreadable_skipped(&self) -> u64 {
        TierBackend::unreadable_skipped(self)
    }

    fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        recorded(self, TierBackend::credential_sample(self, limit))
    }

    fn remove_unreadable(&self) -> Result<usize, TierError> {
        let own = TierBackend::remove_unreadable(self);
        recorded_or(self, own, || defaults::remove_unreadable(self))
    }

    fn compact(&self) -> Result<usize, TierError> {
        recorded_or(self, TierBackend::compact(self), defaults::compact)
    }

    fn flush(&self) -> Result<(), TierError> {
        recorded_or(self, TierBackend::flush(self), defaults::flush)
    }

    fn close(&self) -> Result<(), TierError> {
        TierBackend::close(self)
    }

    fn probe(&self) -> Result<(), TierError> {
        recorded(self, TierBackend::probe(self))
    }
}
