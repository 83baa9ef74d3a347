//! An entry as its Redis hash holds it: the fields written for a [`CacheEntry`]
//! ([`entry_fields`]), their typed reads back ([`Fields`]), and the limits of their lengths
//! ([`FIELD_LIMITS`], [`HASH_BUDGET_BYTES`]).

use std::collections::HashMap;
use std::fmt;

use pw_cache_crypto::KeyRing;
use pw_cache_model::limits;
use pw_cache_model::timestamp::{from_unix_seconds, to_unix_seconds};
use pw_cache_model::{CacheEntry, HealthDetail, HealthStatus, OffsetDateTime};

use crate::error::TierError;

/// A float as stored: Rust's shortest text that reads back as the same `f64`.
pub(super) fn real(x: f64) -> String {
    format!("{x}")
}

/// Unix milliseconds of `at`, rounded up (the hash lives until `expires_at` at least).
pub(super) fn unix_millis_ceil(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp() * 1_000_000 + i64::from(at.microsecond());
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

/// Longest value of a field of an entry hash that holds a number, a time or the health status:
/// an `i64` is at most 20 characters, Rust's shortest text of a Unix time in seconds about 20.
const SHORT_FIELD_MAX_BYTES: usize = 64;

/// Every field of an entry hash, with the longest value the tier writes into it and reads from
/// it (`pw_cache_model::limits` for the text fields; a longer stored value makes the entry
/// unreadable without being read).
pub(super) const FIELD_LIMITS: [(&str, usize); 23] = [
    ("key", limits::MAX_KEY_BYTES),
    ("proxy_url", limits::MAX_PROXY_URL_BYTES),
    ("username_encrypted", limits::MAX_CREDENTIAL_TOKEN_BYTES),
    ("password_encrypted", limits::MAX_CREDENTIAL_TOKEN_BYTES),
    ("source", limits::MAX_SOURCE_BYTES),
    ("fetch_time", SHORT_FIELD_MAX_BYTES),
    ("last_accessed", SHORT_FIELD_MAX_BYTES),
    ("access_count", SHORT_FIELD_MAX_BYTES),
    ("ttl_seconds", SHORT_FIELD_MAX_BYTES),
    ("expires_at", SHORT_FIELD_MAX_BYTES),
    ("health_status", SHORT_FIELD_MAX_BYTES),
    ("failure_count", SHORT_FIELD_MAX_BYTES),
    ("last_health_check", SHORT_FIELD_MAX_BYTES),
    ("consecutive_health_failures", SHORT_FIELD_MAX_BYTES),
    ("consecutive_health_successes", SHORT_FIELD_MAX_BYTES),
    ("recovery_attempt", SHORT_FIELD_MAX_BYTES),
    ("next_check_time", SHORT_FIELD_MAX_BYTES),
    ("last_health_error", limits::MAX_LAST_HEALTH_ERROR_BYTES),
    ("total_health_checks", SHORT_FIELD_MAX_BYTES),
    ("total_health_check_failures", SHORT_FIELD_MAX_BYTES),
    ("evicted_from_l1", SHORT_FIELD_MAX_BYTES),
    ("created_at", SHORT_FIELD_MAX_BYTES),
    ("updated_at", SHORT_FIELD_MAX_BYTES),
];

/// The limit of `field` in [`FIELD_LIMITS`] (0 for a field that is not there).
pub(super) fn field_limit(field: &str) -> usize {
    FIELD_LIMITS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(0, |(_, limit)| *limit)
}

/// The most memory (`MEMORY USAGE`) an entry hash whose fields are within their limits takes,
/// with room to spare: twice the sum of the limits (the allocator rounds a value up, by a
/// quarter at most) plus 4 KB (the hash's own structures). A hash within it is read whole
/// (at most this much is transferred); a larger one field by field, each checked first.
pub(super) const HASH_BUDGET_BYTES: usize = {
    let mut sum = 0;
    let mut i = 0;
    while i < FIELD_LIMITS.len() {
        sum += FIELD_LIMITS[i].1;
        i += 1;
    }
    2 * sum + 4096
};
// At most this much of one hash is ever transferred: keep it small.
const _: () = assert!(HASH_BUDGET_BYTES < 64 * 1024);

/// `key` for an error: as it is, or its start when it is longer than a key may be.
fn shown_key(key: &str) -> String {
    if key.len() <= limits::MAX_KEY_BYTES {
        return key.to_owned();
    }
    let mut end = 64;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

/// The fields of `entry`'s hash (all but `created_at` and `updated_at`), credentials encrypted
/// with the ring's current key. An entry with a field longer than its limit
/// (`pw_cache_model::limits`) is refused: [`TierError::InvalidEntry`], naming the field.
pub(super) fn entry_fields(entry: &CacheEntry, ring: &KeyRing) -> Result<Vec<(&'static str, String)>, TierError> {
    if entry.key.is_empty() {
        return Err(TierError::InvalidEntry {
            key: String::new(),
            reason: "the key is empty".to_owned(),
        });
    }
    if let Some(over) = limits::first_oversized(entry) {
        return Err(TierError::InvalidEntry {
            key: shown_key(&entry.key),
            reason: over.to_string(),
        });
    }
    // The SQLite L3's bound: the same entries are storable in both.
    let int = |field: &str, value: u64| {
        i64::try_from(value)
            .map(|v| v.to_string())
            .map_err(|_| TierError::InvalidEntry {
                key: entry.key.clone(),
                reason: format!("{field} {value} does not fit a 64-bit signed integer"),
            })
    };
    let mut out = vec![("key", entry.key.clone()), ("proxy_url", entry.proxy_url.clone())];
    if let Some(s) = &entry.username {
        out.push(("username_encrypted", ring.encrypt(s).as_str().to_owned()));
    }
    if let Some(s) = &entry.password {
        out.push(("password_encrypted", ring.encrypt(s).as_str().to_owned()));
    }
    out.extend([
        ("source", entry.source.clone()),
        ("fetch_time", real(to_unix_seconds(entry.fetch_time))),
        ("last_accessed", real(to_unix_seconds(entry.last_accessed))),
        ("access_count", int("access_count", entry.access_count)?),
        ("ttl_seconds", int("ttl_seconds", entry.ttl_seconds)?),
        ("expires_at", real(to_unix_seconds(entry.expires_at))),
        ("health_status", entry.health_status.as_str().to_owned()),
        ("failure_count", int("failure_count", entry.failure_count)?),
    ]);
    if let Some(t) = entry.last_health_check {
        out.push(("last_health_check", real(to_unix_seconds(t))));
    }
    out.extend([
        (
            "consecutive_health_failures",
            int("consecutive_health_failures", entry.consecutive_health_failures)?,
        ),
        (
            "consecutive_health_successes",
            int("consecutive_health_successes", entry.consecutive_health_successes)?,
        ),
        ("recovery_attempt", int("recovery_attempt", entry.recovery_attempt)?),
    ]);
    if let Some(t) = entry.next_check_time {
        out.push(("next_check_time", real(to_unix_seconds(t))));
    }
    if let Some(e) = &entry.last_health_error {
        out.push(("last_health_error", e.clone()));
    }
    out.extend([
        (
            "total_health_checks",
            int("total_health_checks", entry.total_health_checks)?,
        ),
        (
            "total_health_check_failures",
            int("total_health_check_failures", entry.total_health_check_failures)?,
        ),
        (
            "evicted_from_l1",
            if entry.evicted_from_l1 { "1" } else { "0" }.to_owned(),
        ),
    ]);
    // What is written can be read back: tokens and numbers within their limits too.
    if let Some((field, value)) = out.iter().find(|(field, value)| value.len() > field_limit(field)) {
        return Err(TierError::InvalidEntry {
            key: entry.key.clone(),
            reason: format!(
                "{field} is {} bytes long as stored, more than its limit of {} bytes",
                value.len(),
                field_limit(field)
            ),
        });
    }
    Ok(out)
}

/// Typed reads of one hash's fields; a value that does not fit is [`TierError::Corrupt`].
pub(super) struct Fields<'a> {
    key: &'a str,
    map: HashMap<&'a str, &'a [u8]>,
}

impl<'a> Fields<'a> {
    /// `flat` is `HGETALL`'s reply: name, value, name, value …
    pub(super) fn new(key: &'a str, flat: &'a [Vec<u8>]) -> Self {
        let map = flat
            .chunks_exact(2)
            .filter_map(|pair| Some((std::str::from_utf8(&pair[0]).ok()?, pair[1].as_slice())))
            .collect();
        Self { key, map }
    }

    /// The `key` field must be the key the hash was read under: a hash naming another key is
    /// unreadable, never served (nor written back) as that other key.
    pub(super) fn check_key(&self) -> Result<(), TierError> {
        let stored = self.text("key")?;
        if stored == self.key {
            Ok(())
        } else {
            Err(self.corrupt(
                "key",
                format_args!("holds {:?}, not the key it is stored under", shown_key(&stored)),
            ))
        }
    }

    fn corrupt(&self, field: &str, what: impl fmt::Display) -> TierError {
        TierError::Corrupt {
            key: self.key.to_owned(),
            reason: format!("field {field}: {what}"),
        }
    }

    pub(super) fn optional_text(&self, field: &str) -> Result<Option<String>, TierError> {
        self.map
            .get(field)
            .map(|bytes| {
                std::str::from_utf8(bytes)
                    .map(str::to_owned)
                    .map_err(|_| self.corrupt(field, "not UTF-8"))
            })
            .transpose()
    }

    fn text(&self, field: &str) -> Result<String, TierError> {
        self.optional_text(field)?.ok_or_else(|| self.corrupt(field, "missing"))
    }

    fn optional_time(&self, field: &str) -> Result<Option<OffsetDateTime>, TierError> {
        let Some(text) = self.optional_text(field)? else {
            return Ok(None);
        };
        let seconds: f64 = text
            .parse()
            .map_err(|_| self.corrupt(field, format_args!("{text:?} is not a number")))?;
        from_unix_seconds(seconds).map(Some).map_err(|e| self.corrupt(field, e))
    }

    fn time(&self, field: &str) -> Result<OffsetDateTime, TierError> {
        self.optional_time(field)?.ok_or_else(|| self.corrupt(field, "missing"))
    }

    fn count(&self, field: &str) -> Result<u64, TierError> {
        let text = self.text(field)?;
        text.parse()
            .map_err(|_| self.corrupt(field, format_args!("{text:?} is not a non-negative integer")))
    }

    /// Non-zero is true; absent is false (as the SQLite tiers read NULL).
    fn flag(&self, field: &str) -> Result<bool, TierError> {
        match self.optional_text(field)? {
            None => Ok(false),
            Some(text) => text
                .parse::<i64>()
                .map(|n| n != 0)
                .map_err(|_| self.corrupt(field, format_args!("{text:?} is not an integer"))),
        }
    }

    fn status(&self, field: &str) -> Result<HealthStatus, TierError> {
        self.text(field)?.parse().map_err(|e| self.corrupt(field, e))
    }

    /// A credential token's bytes; absent or empty is no credential.
    pub(super) fn token(&self, field: &str) -> Option<&'a [u8]> {
        self.map.get(field).copied().filter(|bytes| !bytes.is_empty())
    }

    pub(super) fn entry(&self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        self.check_key()?;
        let mut entry = CacheEntry {
            key: self.text("key")?,
            proxy_url: self.text("proxy_url")?,
            username: None,
            password: None,
            source: self.text("source")?,
            fetch_time: self.time("fetch_time")?,
            last_accessed: self.time("last_accessed")?,
            access_count: self.count("access_count")?,
            ttl_seconds: self.count("ttl_seconds")?,
            expires_at: self.time("expires_at")?,
            health_status: self.status("health_status")?,
            failure_count: self.count("failure_count")?,
            evicted_from_l1: self.flag("evicted_from_l1")?,
            last_health_check: None,
            consecutive_health_failures: 0,
            consecutive_health_successes: 0,
            recovery_attempt: 0,
            next_check_time: None,
            last_health_error: None,
            total_health_checks: 0,
            total_health_check_failures: 0,
        };
        self.health_detail()?.apply_to(&mut entry);
        let open = |field: &str| {
            self.token(field)
                .map(|bytes| ring.decrypt_bytes(bytes))
                .transpose()
                .map_err(|source| TierError::Crypto {
                    key: self.key.to_owned(),
                    source,
                })
        };
        entry.username = open("username_encrypted")?;
        entry.password = open("password_encrypted")?;
        Ok(entry)
    }

    pub(super) fn health_detail(&self) -> Result<HealthDetail, TierError> {
        Ok(HealthDetail {
            last_health_check: self.optional_time("last_health_check")?,
            consecutive_health_failures: self.count("consecutive_health_failures")?,
            consecutive_health_successes: self.count("consecutive_health_successes")?,
            recovery_attempt: self.count("recovery_attempt")?,
            next_check_time: self.optional_time("next_check_time")?,
            last_health_error: self.optional_text("last_health_error")?,
            total_health_checks: self.count("total_health_checks")?,
            total_health_check_failures: self.count("total_health_check_failures")?,
        })
    }
}

/// The eight health fields, in the order
/// [`RedisL3Tier::health_detail`](crate::CacheTier::health_detail) reads them.
pub(super) const HEALTH_FIELDS: [&str; 8] = [
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
];
