//! [`CacheEntry`]: one cached proxy with its metadata, and its JSON form (the reference's
//! `CacheEntry.model_dump(mode="json")`, the export line).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::enums::HealthStatus;
use crate::key::generate_cache_key;
use crate::proxy_url::CREDENTIAL_MASK;
use crate::secret::{Secret, masked_option};
use crate::timestamp::{self, isoformat, isoformat_option};

/// An entry that cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// `fetch_time + ttl_seconds` does not fit a date-time (years 1..=9999).
    #[error("ttl_seconds {ttl_seconds} puts expires_at beyond the representable range")]
    TtlOutOfRange {
        /// The TTL that was asked for.
        ttl_seconds: u64,
    },
    /// A JSON entry that does not match the model; `path` names the field.
    #[error("invalid cache entry at `{path}`: {message}")]
    Json {
        /// Where in the document, e.g. `ttl_seconds` or `.` for the whole value.
        path: String,
        /// What was wrong (serde's message; it never contains a credential: those fields take
        /// any string).
        message: String,
    },
}

/// A single cached proxy with its TTL, health and access metadata: the 21 fields of the
/// reference's `CacheEntry`, in its order (which is the order of the JSON form).
///
/// Credentials are [`Secret`]s: they print as `***` in `Debug`, and the JSON form writes
/// `"***"` for a credential that is set (the reference's export), `null` otherwise. Reading
/// such JSON back, `"***"` means "no credential known", never the secret `***`.
///
/// Timestamps are at microsecond precision, as Python's `datetime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Unique cache key; for generated keys, [`generate_cache_key`] of `proxy_url`.
    pub key: String,
    /// Full proxy URL (`scheme://host:port`).
    pub proxy_url: String,
    /// Proxy username: encrypted at rest in L2/L3.
    #[serde(default, with = "masked_option")]
    pub username: Option<Secret>,
    /// Proxy password: encrypted at rest in L2/L3.
    #[serde(default, with = "masked_option")]
    pub password: Option<Secret>,
    /// Where the proxy came from (`fetched`, `user`, a list's name...).
    pub source: String,
    /// When the proxy was fetched.
    #[serde(with = "isoformat")]
    pub fetch_time: OffsetDateTime,
    /// Last time the cache served it.
    #[serde(with = "isoformat")]
    pub last_accessed: OffsetDateTime,
    /// How many times the cache served it.
    #[serde(default)]
    pub access_count: u64,
    /// Time to live, in seconds.
    pub ttl_seconds: u64,
    /// Absolute expiry; the entry is expired from this instant on ([`CacheEntry::is_expired_at`]).
    #[serde(with = "isoformat")]
    pub expires_at: OffsetDateTime,
    /// Health of the proxy.
    #[serde(default)]
    pub health_status: HealthStatus,
    /// Consecutive failures reported through health invalidation.
    #[serde(default)]
    pub failure_count: u64,
    /// Whether L1 evicted it (it was demoted to a lower tier).
    #[serde(default)]
    pub evicted_from_l1: bool,
    /// Last health check.
    #[serde(default, with = "isoformat_option")]
    pub last_health_check: Option<OffsetDateTime>,
    /// Health checks failed in a row.
    #[serde(default)]
    pub consecutive_health_failures: u64,
    /// Health checks passed in a row.
    #[serde(default)]
    pub consecutive_health_successes: u64,
    /// Current recovery attempt.
    #[serde(default)]
    pub recovery_attempt: u64,
    /// When the next health check is due.
    #[serde(default, with = "isoformat_option")]
    pub next_check_time: Option<OffsetDateTime>,
    /// Error of the last failed health check.
    #[serde(default)]
    pub last_health_error: Option<String>,
    /// Health checks performed.
    #[serde(default)]
    pub total_health_checks: u64,
    /// Health checks failed.
    #[serde(default)]
    pub total_health_check_failures: u64,
}

/// Whether `proxy_url` carries credentials in its authority (`scheme://user:pass@host`): an `@`
/// between `://` and the first `/`, `?` or `#`. A cache manager refuses to store such a URL,
/// because the URL is written to disk in plaintext; the credentials belong in
/// [`CacheEntry::username`] and [`CacheEntry::password`], which are encrypted.
pub fn proxy_url_has_userinfo(proxy_url: &str) -> bool {
    split_authority(proxy_url).is_some_and(|(_, authority, _)| authority.contains('@'))
}

/// `proxy_url` for display: the user information of its authority, if any, replaced by `***`
/// (`http://u:p@host:80` → `http://***@host:80`; the userinfo ends at the authority's last `@`).
/// A URL without userinfo comes back as it is.
pub fn mask_proxy_url_userinfo(proxy_url: &str) -> Cow<'_, str> {
    match split_authority(proxy_url) {
        Some((scheme, authority, tail)) => match authority.rfind('@') {
            Some(at) => Cow::Owned(format!("{scheme}://{CREDENTIAL_MASK}@{}{tail}", &authority[at + 1..])),
            None => Cow::Borrowed(proxy_url),
        },
        None => Cow::Borrowed(proxy_url),
    }
}

/// `scheme`, authority and the rest of `scheme://authority…`: the authority runs from `://` to
/// the first `/`, `?` or `#`.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    Some((scheme, authority, tail))
}

impl CacheEntry {
    /// A fresh entry for `proxy_url`, the common case: key generated from the URL, fetched and
    /// last accessed now, expiring `ttl_seconds` from now, health unknown, no credentials.
    pub fn new(proxy_url: impl Into<String>, source: impl Into<String>, ttl_seconds: u64) -> Result<Self, EntryError> {
        Self::new_at(proxy_url, source, ttl_seconds, timestamp::now_utc())
    }

    /// As [`CacheEntry::new`], with "now" given (truncated to microseconds).
    pub fn new_at(
        proxy_url: impl Into<String>,
        source: impl Into<String>,
        ttl_seconds: u64,
        now: OffsetDateTime,
    ) -> Result<Self, EntryError> {
        let now = timestamp::truncate_to_micros(now);
        let proxy_url = proxy_url.into();
        Ok(Self {
            key: generate_cache_key(&proxy_url),
            proxy_url,
            username: None,
            password: None,
            source: source.into(),
            fetch_time: now,
            last_accessed: now,
            access_count: 0,
            ttl_seconds,
            expires_at: expiry_after(now, ttl_seconds)?,
            health_status: HealthStatus::Unknown,
            failure_count: 0,
            evicted_from_l1: false,
            last_health_check: None,
            consecutive_health_failures: 0,
            consecutive_health_successes: 0,
            recovery_attempt: 0,
            next_check_time: None,
            last_health_error: None,
            total_health_checks: 0,
            total_health_check_failures: 0,
        })
    }

    /// Sets the credentials (either may be `None`).
    pub fn with_credentials(mut self, username: Option<Secret>, password: Option<Secret>) -> Self {
        self.username = username;
        self.password = password;
        self
    }

    /// Replaces the generated key with `key`.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Sets a new TTL counted from `fetch_time` (`expires_at = fetch_time + ttl_seconds`).
    pub fn set_ttl(&mut self, ttl_seconds: u64) -> Result<(), EntryError> {
        self.expires_at = expiry_after(self.fetch_time, ttl_seconds)?;
        self.ttl_seconds = ttl_seconds;
        Ok(())
    }

    /// Whether the entry has expired now: `now >= expires_at`, the one boundary every tier uses.
    pub fn is_expired(&self) -> bool {
        self.is_expired_at(timestamp::now_utc())
    }

    /// Whether the entry has expired at `now` (`now >= expires_at`).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    /// Whether the proxy is healthy enough to use (status [`HealthStatus::Healthy`]).
    pub fn is_healthy(&self) -> bool {
        self.health_status.is_healthy()
    }

    /// Records a cache hit at `now`: `access_count + 1`, `last_accessed = now`.
    pub fn touch(&mut self, now: OffsetDateTime) {
        self.access_count = self.access_count.saturating_add(1);
        self.last_accessed = timestamp::truncate_to_micros(now);
    }

    /// The JSON form as the reference writes it (`json.dumps(entry.model_dump(mode="json"))`,
    /// one export line without the newline): credentials masked, byte-identical to Python's.
    pub fn to_json_line(&self) -> String {
        // Cannot fail: every field is a string, number, bool or null under a static key.
        crate::pyjson::to_string(self).unwrap_or_default()
    }

    /// Reads the JSON form; the error names the offending field. Unknown fields are ignored,
    /// as the reference does.
    pub fn from_json_str(json: &str) -> Result<Self, EntryError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| EntryError::Json {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }
}

fn expiry_after(start: OffsetDateTime, ttl_seconds: u64) -> Result<OffsetDateTime, EntryError> {
    i64::try_from(ttl_seconds)
        .ok()
        .and_then(|secs| start.checked_add(Duration::seconds(secs)))
        .ok_or(EntryError::TtlOutOfRange { ttl_seconds })
}

#[cfg(test)]
mod tests {
    #[test]
    fn userinfo_is_found_in_the_authority_only() {
        for url in [
            "http://u:p@1.2.3.4:80",
            "socks5://u@h:1",
            "http://@h:1",
            "https://a:b@c@h/x",
        ] {
            assert!(proxy_url_has_userinfo(url), "{url}");
        }
        for url in [
            "http://1.2.3.4:80",
            "http://h:1/a@b",
            "http://h:1?x=@",
            "http://h#@",
            "a@b",
            "",
        ] {
            assert!(!proxy_url_has_userinfo(url), "{url}");
        }
    }

    #[test]
    fn user_information_is_masked() {
        assert_eq!(mask_proxy_url_userinfo("http://1.2.3.4:80"), "http://1.2.3.4:80");
        assert_eq!(
            mask_proxy_url_userinfo("http://u:p@1.2.3.4:80/x@y"),
            "http://***@1.2.3.4:80/x@y"
        );
        assert_eq!(mask_proxy_url_userinfo("socks5://a:b@c@h:1"), "socks5://***@h:1");
    }

    use super::*;
    use time::macros::datetime;

    fn sample() -> CacheEntry {
        CacheEntry::new_at(
            "http://1.2.3.4:8080",
            "fetched",
            3600,
            datetime!(2026-11-20 23:00:00.5 UTC),
        )
        .unwrap()
        .with_credentials(Some(Secret::new("alice")), Some(Secret::new("s3cr3t")))
    }

    #[test]
    fn constructor_fills_key_and_times() {
        let e = sample();
        assert_eq!(e.key, "fe229370330820fe");
        assert_eq!(e.fetch_time, e.last_accessed);
        assert_eq!(e.expires_at, datetime!(2026-11-21 00:00:00.5 UTC));
        assert_eq!(e.health_status, HealthStatus::Unknown);
    }

    #[test]
    fn expiry_boundary_is_inclusive() {
        let e = sample();
        assert!(!e.is_expired_at(e.expires_at - Duration::microseconds(1)));
        assert!(e.is_expired_at(e.expires_at));
        assert!(e.is_expired_at(e.expires_at + Duration::microseconds(1)));
    }

    #[test]
    fn huge_ttl_is_an_error_not_a_panic() {
        let err = CacheEntry::new("http://x:1", "s", u64::MAX).unwrap_err();
        assert_eq!(err, EntryError::TtlOutOfRange { ttl_seconds: u64::MAX });
        let mut e = sample();
        assert!(e.set_ttl(i64::MAX as u64).is_err());
        assert_eq!(e.ttl_seconds, 3600, "a rejected TTL changes nothing");
    }

    #[test]
    fn json_masks_credentials_and_reads_mask_as_none() {
        let line = sample().to_json_line();
        assert!(!line.contains("alice") && !line.contains("s3cr3t"), "{line}");
        assert!(line.contains(r#""username": "***", "password": "***""#), "{line}");
        let back = CacheEntry::from_json_str(&line).unwrap();
        assert_eq!(back.username, None);
        assert_eq!(back.password, None);
    }

    #[test]
    fn json_error_names_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json_line()).unwrap();
        v["ttl_seconds"] = serde_json::json!(-1);
        let err = CacheEntry::from_json_str(&v.to_string()).unwrap_err();
        assert!(
            matches!(&err, EntryError::Json { path, .. } if path == "ttl_seconds"),
            "{err}"
        );
        v["ttl_seconds"] = serde_json::json!(1);
        v["health_status"] = serde_json::json!("sick");
        let err = CacheEntry::from_json_str(&v.to_string()).unwrap_err();
        assert!(err.to_string().contains("health_status"), "{err}");
        assert!(matches!(CacheEntry::from_json_str("42"), Err(EntryError::Json { .. })));
    }

    #[test]
    fn touch_counts_access() {
        let mut e = sample();
        let later = datetime!(2026-11-20 23:30:00 UTC);
        e.touch(later);
        assert_eq!((e.access_count, e.last_accessed), (1, later));
    }
}
