//! Health history: the record of each health check of a proxy, kept by an L3 tier next to the
//! proxy's entry ([`HealthHistory`]). Both L3 backends keep it: SQLite in its `health_history`
//! table ([`crate::SqliteL3Tier`]), Redis in a capped list per entry (`RedisL3Tier`, feature
//! `redis`). [`pw_cache::docs::formats`] specifies both.
//!
//! The contract, the same for every backend:
//! - history belongs to an entry: recording a check for a key no entry has is refused
//!   ([`crate::TierError::InvalidEntry`], nothing stored, not a tier failure), and removing the
//!   entry (delete, clear, expiry, eviction) removes its history; updating it does not;
//! - records are listed newest first (by check time, then id), at most a given number;
//! - pruning removes the checks older than a time, of every proxy.
//!
//! [`pw_cache::docs::formats`]: https://docs.rs/pw-cache/latest/pw_cache/docs/formats/index.html

use pw_cache_model::{HealthStatus, OffsetDateTime};

use crate::error::TierError;
use crate::tier::CacheTier;

/// One health check of a proxy, as the history holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// The cache key of the proxy's entry (which must exist when the check is recorded).
    pub proxy_key: String,
    /// When the check ran (stored as REAL Unix seconds; read back in UTC, to the microsecond).
    pub check_time: OffsetDateTime,
    /// What the check found.
    pub status: HealthStatus,
    /// How long the proxy took to answer, in milliseconds (finite, not negative).
    pub response_time_ms: Option<f64>,
    /// The error the check saw.
    pub error_message: Option<String>,
    /// The URL the check fetched through the proxy.
    pub check_url: String,
}

impl HealthCheck {
    /// Checks what every backend refuses before storing anything: a response time that is
    /// negative or not finite, a text field over its limit (`proxy_key`: `MAX_KEY_BYTES`,
    /// `check_url`: `MAX_PROXY_URL_BYTES`, `error_message`: `MAX_LAST_HEALTH_ERROR_BYTES`, of
    /// [`pw_cache_model::limits`]) ([`TierError::InvalidEntry`]).
    pub(crate) fn validate(&self) -> Result<(), TierError> {
        self.check_lengths().map_err(|reason| TierError::InvalidEntry {
            key: TierError::shown_key(&self.proxy_key),
            reason,
        })?;
        match self.response_time_ms {
            Some(ms) if !(ms.is_finite() && ms >= 0.0) => Err(TierError::InvalidEntry {
                key: self.proxy_key.clone(),
                reason: format!("response_time_ms {ms} is not a finite, non-negative number"),
            }),
            _ => Ok(()),
        }
    }
}

impl HealthCheck {
    /// Why a text field of the check is over its limit (a reason naming the field and its
    /// length, never its text), if one is.
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        use pw_cache_model::limits::{MAX_KEY_BYTES, MAX_LAST_HEALTH_ERROR_BYTES, MAX_PROXY_URL_BYTES};
        let fields = [
            ("proxy_key", self.proxy_key.len(), MAX_KEY_BYTES),
            ("check_url", self.check_url.len(), MAX_PROXY_URL_BYTES),
            (
                "error_message",
                self.error_message.as_ref().map_or(0, String::len),
                MAX_LAST_HEALTH_ERROR_BYTES,
            ),
        ];
        for (field, len, limit) in fields {
            if len > limit {
                return Err(format!(
                    "{field} is {len} bytes long, more than the limit of {limit} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// A recorded health check with its id (ids grow with each record).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRecord {
    /// The record's id (SQLite: the row's `id`).
    pub id: i64,
    /// The check.
    pub check: HealthCheck,
}

/// An L3 tier that keeps the health history of its entries (see the module docs for the
/// contract). Every call counts in the tier's [`CacheTier::health`] like its other operations.
pub trait HealthHistory: CacheTier {
    /// Records a health check; its id.
    ///
    /// Errors: [`TierError::InvalidEntry`] when no entry has `check.proxy_key` or the response
    /// time is negative or not finite; nothing is stored then.
    fn record_health_check(&self, check: &HealthCheck) -> Result<i64, TierError>;

    /// The health checks recorded for `proxy_key`, newest first (by check time, then id), at
    /// most `limit`. A record that cannot be read is a [`TierError::Corrupt`] naming its id.
    fn health_history(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError>;

    /// Deletes the health checks older than `older_than` (`check_time < older_than`), of every
    /// proxy; how many.
    fn prune_health_history(&self, older_than: OffsetDateTime) -> Result<usize, TierError>;
}
