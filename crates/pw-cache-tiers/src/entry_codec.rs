//! The entry codec of the databases (the SQLite tiers' rows, the Redis tier's hashes): which
//! field holds what, read and written once for both. A backend gives typed access to what it
//! stores — [`FieldSource`] for a stored entry (a row, a hash), [`FieldSink`] for the values a
//! write binds or sends (as rusqlite's `FromSql` and `ToSql` do for one value) — and
//! [`decode_entry`], [`decode_health_detail`] and [`encode_entry`] do the rest, so a field added
//! to an entry is one edit here (and one column in the SQL).
//!
//! How each kind of value is stored and read back stays each backend's: SQLite binds REALs and
//! INTEGERs and reads them as proxywhirl's reader does (`sqlite/row.rs`), Redis writes and
//! reads text (`redis_l3/codec.rs`), each with its own errors. (The JSONL tier's line is JSON
//! with serde's derives: `jsonl/line/`.)

use pw_cache_crypto::{KeyRing, Token};
use pw_cache_model::fields as names;
use pw_cache_model::{CacheEntry, HealthDetail, HealthStatus, OffsetDateTime, Secret};

use crate::error::TierError;

/// `created_at`: when the row or hash was first written (SQLite L3, Redis).
pub(crate) const CREATED_AT: &str = "created_at";
/// `updated_at`: when it was last written (SQLite L3, Redis).
pub(crate) const UPDATED_AT: &str = "updated_at";

/// A stored field of an entry, in the order the SQLite tiers select them: its discriminant is
/// the column's index in their `get` statement (see [`Field::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Key,
    ProxyUrl,
    UsernameEncrypted,
    PasswordEncrypted,
    Source,
    FetchTime,
    LastAccessed,
    AccessCount,
    TtlSeconds,
    ExpiresAt,
    HealthStatus,
    FailureCount,
    EvictedFromL1,
    LastHealthCheck,
    ConsecutiveHealthFailures,
    ConsecutiveHealthSuccesses,
    RecoveryAttempt,
    NextCheckTime,
    LastHealthError,
    TotalHealthChecks,
    TotalHealthCheckFailures,
}

impl Field {
    /// Every field, in [`Field::index`] order.
    #[cfg(test)]
    pub(crate) const ALL: [Field; 21] = [
        Field::Key,
        Field::ProxyUrl,
        Field::UsernameEncrypted,
        Field::PasswordEncrypted,
        Field::Source,
        Field::FetchTime,
        Field::LastAccessed,
        Field::AccessCount,
        Field::TtlSeconds,
        Field::ExpiresAt,
        Field::HealthStatus,
        Field::FailureCount,
        Field::EvictedFromL1,
        Field::LastHealthCheck,
        Field::ConsecutiveHealthFailures,
        Field::ConsecutiveHealthSuccesses,
        Field::RecoveryAttempt,
        Field::NextCheckTime,
        Field::LastHealthError,
        Field::TotalHealthChecks,
        Field::TotalHealthCheckFailures,
    ];

    /// Its name in every format (`pw_cache_model::fields`).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Field::Key => names::KEY,
            Field::ProxyUrl => names::PROXY_URL,
            Field::UsernameEncrypted => names::USERNAME_ENCRYPTED,
            Field::PasswordEncrypted => names::PASSWORD_ENCRYPTED,
            Field::Source => names::SOURCE,
            Field::FetchTime => names::FETCH_TIME,
            Field::LastAccessed => names::LAST_ACCESSED,
            Field::AccessCount => names::ACCESS_COUNT,
            Field::TtlSeconds => names::TTL_SECONDS,
            Field::ExpiresAt => names::EXPIRES_AT,
            Field::HealthStatus => names::HEALTH_STATUS,
            Field::FailureCount => names::FAILURE_COUNT,
            Field::EvictedFromL1 => names::EVICTED_FROM_L1,
            Field::LastHealthCheck => names::LAST_HEALTH_CHECK,
            Field::ConsecutiveHealthFailures => names::CONSECUTIVE_HEALTH_FAILURES,
            Field::ConsecutiveHealthSuccesses => names::CONSECUTIVE_HEALTH_SUCCESSES,
            Field::RecoveryAttempt => names::RECOVERY_ATTEMPT,
            Field::NextCheckTime => names::NEXT_CHECK_TIME,
            Field::LastHealthError => names::LAST_HEALTH_ERROR,
            Field::TotalHealthChecks => names::TOTAL_HEALTH_CHECKS,
            Field::TotalHealthCheckFailures => names::TOTAL_HEALTH_CHECK_FAILURES,
        }
    }

    /// Its column's index in the SQLite tiers' `get` statement (and in the statements that
    /// select the same columns): `l2_cache`'s 13 columns in their order, then L3's 8 health
    /// columns.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// The stored values of one entry, read typed and by field, each as the backend reads it; a
/// value that cannot be read is [`TierError::Corrupt`] naming the field.
pub(crate) trait FieldSource {
    /// Text.
    fn text(&self, field: Field) -> Result<String, TierError>;
    /// Text, or none.
    fn optional_text(&self, field: Field) -> Result<Option<String>, TierError>;
    /// A time.
    fn time(&self, field: Field) -> Result<OffsetDateTime, TierError>;
    /// A time, or none.
    fn optional_time(&self, field: Field) -> Result<Option<OffsetDateTime>, TierError>;
    /// A count that proxywhirl's model bounds with `ge=0`.
    fn count(&self, field: Field) -> Result<u64, TierError>;
    /// `access_count`, a count proxywhirl's model does not bound below. The default reads it
    /// as [`FieldSource::count`].
    fn use_count(&self, field: Field) -> Result<u64, TierError> {
        self.count(field)
    }
    /// A flag.
    fn flag(&self, field: Field) -> Result<bool, TierError>;
    /// A health status.
    fn status(&self, field: Field) -> Result<HealthStatus, TierError>;
    /// A credential token's bytes, or none.
    fn token(&self, field: Field) -> Result<Option<Vec<u8>>, TierError>;
}

/// Where the values of an entry being written go, each stored as the backend stores it. `'a`
/// is the entry's: text can be taken without a copy.
pub(crate) trait FieldSink<'a> {
    /// What a count is stored as, for the error of one beyond `i64::MAX` (`"a SQLite
    /// INTEGER"`).
    const INTEGER: &'static str;

    /// What the backend refuses before anything is encoded (an [`TierError::InvalidEntry`]);
    /// called once the key is known not to be empty. The default refuses nothing.
    fn accept(&mut self, entry: &CacheEntry) -> Result<(), TierError> {
        let _ = entry;
        Ok(())
    }
    /// Text.
    fn text(&mut self, field: Field, value: &'a str);
    /// Text, or none.
    fn optional_text(&mut self, field: Field, value: Option<&'a str>);
    /// A time.
    fn time(&mut self, field: Field, value: OffsetDateTime);
    /// A time, or none.
    fn optional_time(&mut self, field: Field, value: Option<OffsetDateTime>);
    /// A count.
    fn count(&mut self, field: Field, value: i64);
    /// A flag.
    fn flag(&mut self, field: Field, value: bool);
    /// A health status.
    fn status(&mut self, field: Field, value: HealthStatus);
    /// A credential token (encrypted with the ring's current key), or none.
    fn token(&mut self, field: Field, token: Option<Token>);
}

/// An entry as read: every field but the credentials, which are still tokens.
pub(crate) struct StoredEntry {
    entry: CacheEntry,
    pub(crate) username: Option<Vec<u8>>,
    pub(crate) password: Option<Vec<u8>>,
}

impl StoredEntry {
    /// The entry, its credentials decrypted with any key of `ring`.
    pub(crate) fn open(self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        let StoredEntry {
            mut entry,
            username,
            password,
        } = self;
        let open = |token: Option<Vec<u8>>| {
            token
                .map(|bytes| ring.decrypt_bytes(&bytes))
                .transpose()
                .map_err(|source| TierError::Crypto {
                    key: entry.key.clone(),
                    source,
                })
        };
        let username = open(username)?;
        let password = open(password)?;
        entry.username = username;
        entry.password = password;
        Ok(entry)
    }
}

/// Reads an entry from `source`, in the reference's field order (so the first field that
/// cannot be read is the one named): the health-check detail only when `health_detail` (a
/// table without those columns gives them their defaults), the tokens last.
pub(crate) fn decode_entry(source: &impl FieldSource, health_detail: bool) -> Result<StoredEntry, TierError> {
    let mut entry = CacheEntry {
        key: source.text(Field::Key)?,
        proxy_url: source.text(Field::ProxyUrl)?,
        username: None,
        password: None,
        source: source.text(Field::Source)?,
        fetch_time: source.time(Field::FetchTime)?,
        last_accessed: source.time(Field::LastAccessed)?,
        access_count: source.use_count(Field::AccessCount)?,
        ttl_seconds: source.count(Field::TtlSeconds)?,
        expires_at: source.time(Field::ExpiresAt)?,
        health_status: source.status(Field::HealthStatus)?,
        failure_count: source.count(Field::FailureCount)?,
        evicted_from_l1: source.flag(Field::EvictedFromL1)?,
        last_health_check: None,
        consecutive_health_failures: 0,
        consecutive_health_successes: 0,
        recovery_attempt: 0,
        next_check_time: None,
        last_health_error: None,
        total_health_checks: 0,
        total_health_check_failures: 0,
    };
    if health_detail {
        decode_health_detail(source)?.apply_to(&mut entry);
    }
    Ok(StoredEntry {
        username: source.token(Field::UsernameEncrypted)?,
        password: source.token(Field::PasswordEncrypted)?,
        entry,
    })
}

/// Reads the eight health-check detail fields from `source`, in their order.
pub(crate) fn decode_health_detail(source: &impl FieldSource) -> Result<HealthDetail, TierError> {
    Ok(HealthDetail {
        last_health_check: source.optional_time(Field::LastHealthCheck)?,
        consecutive_health_failures: source.count(Field::ConsecutiveHealthFailures)?,
        consecutive_health_successes: source.count(Field::ConsecutiveHealthSuccesses)?,
        recovery_attempt: source.count(Field::RecoveryAttempt)?,
        next_check_time: source.optional_time(Field::NextCheckTime)?,
        last_health_error: source.optional_text(Field::LastHealthError)?,
        total_health_checks: source.count(Field::TotalHealthChecks)?,
        total_health_check_failures: source.count(Field::TotalHealthCheckFailures)?,
    })
}

/// Writes every field of `entry` into `sink`, credentials encrypted with `ring`'s current key,
/// in the L3 columns' order (`cache_entries`: the health detail before `evicted_from_l1`).
///
/// Refused ([`TierError::InvalidEntry`], nothing written that counts): an empty key; what the
/// sink refuses ([`FieldSink::accept`]); a count beyond `i64::MAX`, naming the field (every
/// count is checked, also where the sink keeps no health detail).
pub(crate) fn encode_entry<'a, S: FieldSink<'a>>(
    entry: &'a CacheEntry,
    ring: &KeyRing,
    sink: &mut S,
) -> Result<(), TierError> {
    TierError::require_key(&entry.key)?;
    sink.accept(entry)?;
    let int = |field: Field, value: u64| {
        i64::try_from(value).map_err(|_| TierError::InvalidEntry {
            key: entry.key.clone(),
            reason: format!("{} {value} does not fit {}", field.name(), S::INTEGER),
        })
    };
    let seal = |secret: &Option<Secret>| secret.as_ref().map(|s| ring.encrypt(s));
    sink.text(Field::Key, &entry.key);
    sink.text(Field::ProxyUrl, &entry.proxy_url);
    sink.token(Field::UsernameEncrypted, seal(&entry.username));
    sink.token(Field::PasswordEncrypted, seal(&entry.password));
    sink.text(Field::Source, &entry.source);
    sink.time(Field::FetchTime, entry.fetch_time);
    sink.time(Field::LastAccessed, entry.last_accessed);
    sink.count(Field::AccessCount, int(Field::AccessCount, entry.access_count)?);
    sink.count(Field::TtlSeconds, int(Field::TtlSeconds, entry.ttl_seconds)?);
    sink.time(Field::ExpiresAt, entry.expires_at);
    sink.status(Field::HealthStatus, entry.health_status);
    sink.count(Field::FailureCount, int(Field::FailureCount, entry.failure_count)?);
    sink.optional_time(Field::LastHealthCheck, entry.last_health_check);
    for (field, value) in [
        (Field::ConsecutiveHealthFailures, entry.consecutive_health_failures),
        (Field::ConsecutiveHealthSuccesses, entry.consecutive_health_successes),
        (Field::RecoveryAttempt, entry.recovery_attempt),
    ] {
        sink.count(field, int(field, value)?);
    }
    sink.optional_time(Field::NextCheckTime, entry.next_check_time);
    sink.optional_text(Field::LastHealthError, entry.last_health_error.as_deref());
    for (field, value) in [
        (Field::TotalHealthChecks, entry.total_health_checks),
        (Field::TotalHealthCheckFailures, entry.total_health_check_failures),
    ] {
        sink.count(field, int(field, value)?);
    }
    sink.flag(Field::EvictedFromL1, entry.evicted_from_l1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_are_the_models_with_tokens_for_credentials() {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        let expected: Vec<&str> = names::ENTRY_FIELDS
            .iter()
            .map(|&name| match name {
                names::USERNAME => names::USERNAME_ENCRYPTED,
                names::PASSWORD => names::PASSWORD_ENCRYPTED,
                other => other,
            })
            .collect();
        assert_eq!(names, expected);
        assert!(Field::ALL.iter().enumerate().all(|(i, f)| f.index() == i));
    }
}
