//! Writing a line: an entry as proxywhirl 0.3.3 writes it, byte for byte ([`encode_line`]).

use pw_cache_crypto::KeyRing;
use pw_cache_model::timestamp::{isoformat, isoformat_option};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime, Secret};
use serde::Serialize;

use super::hex_encode;
use crate::error::TierError;

/// The line as written, fields in the reference's order (`JsonlCacheTier.put`'s `data` dict).
#[derive(Serialize)]
struct LineOut<'a> {
    key: &'a str,
    proxy_url: &'a str,
    source: &'a str,
    #[serde(with = "isoformat")]
    fetch_time: OffsetDateTime,
    #[serde(with = "isoformat")]
    last_accessed: OffsetDateTime,
    access_count: u64,
    ttl_seconds: u64,
    #[serde(with = "isoformat")]
    expires_at: OffsetDateTime,
    health_status: HealthStatus,
    failure_count: u64,
    evicted_from_l1: bool,
    #[serde(with = "isoformat_option")]
    last_health_check: Option<OffsetDateTime>,
    consecutive_health_failures: u64,
    consecutive_health_successes: u64,
    recovery_attempt: u64,
    #[serde(with = "isoformat_option")]
    next_check_time: Option<OffsetDateTime>,
    last_health_error: Option<&'a str>,
    total_health_checks: u64,
    total_health_check_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    username_encrypted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_encrypted: Option<String>,
}

/// The shard line of `entry` (without the newline), exactly as proxywhirl 0.3.3 writes it:
/// `json.dumps` text (`", "` and `": "` separators, non-ASCII escaped), the reference's field
/// order, timestamps in `isoformat()`, and each credential that is set (an empty string
/// included) encrypted with the ring's current key and written as lowercase hex of the token's
/// bytes; an absent credential has no field.
pub fn encode_line(entry: &CacheEntry, ring: &KeyRing) -> Result<String, TierError> {
    let seal = |secret: &Option<Secret>| secret.as_ref().map(|s| hex_encode(ring.encrypt(s).as_bytes()));
    let line = LineOut {
        key: &entry.key,
        proxy_url: &entry.proxy_url,
        source: &entry.source,
        fetch_time: entry.fetch_time,
        last_accessed: entry.last_accessed,
        access_count: entry.access_count,
        ttl_seconds: entry.ttl_seconds,
        expires_at: entry.expires_at,
        health_status: entry.health_status,
        failure_count: entry.failure_count,
        evicted_from_l1: entry.evicted_from_l1,
        last_health_check: entry.last_health_check,
        consecutive_health_failures: entry.consecutive_health_failures,
        consecutive_health_successes: entry.consecutive_health_successes,
        recovery_attempt: entry.recovery_attempt,
        next_check_time: entry.next_check_time,
        last_health_error: entry.last_health_error.as_deref(),
        total_health_checks: entry.total_health_checks,
        total_health_check_failures: entry.total_health_check_failures,
        username_encrypted: seal(&entry.username),
        password_encrypted: seal(&entry.password),
    };
    pw_cache_model::pyjson::to_string(&line).map_err(|e| TierError::InvalidEntry {
        key: entry.key.clone(),
        reason: format!("cannot be written as JSON: {e}"),
    })
}
