//! The names of a [`CacheEntry`]'s fields, defined once: the reference's names, which every
//! format of pw-cache uses as they are — the entry's JSON form, the JSONL shard line's members,
//! the SQLite columns, the Redis hash fields — and the errors and warnings that name a field.
//!
//! [`ENTRY_FIELDS`] lists them in the reference's order (the order of [`CacheEntry`]'s fields
//! and of its JSON form); [`HEALTH_DETAIL_FIELDS`] the eight of a
//! [`HealthDetail`](crate::HealthDetail), the ones proxywhirl's `l2_cache` table has no column
//! for. [`USERNAME_ENCRYPTED`] and [`PASSWORD_ENCRYPTED`] name the stored credential tokens.
//!
//! [`CacheEntry`]: crate::CacheEntry

/// `key`: the cache key.
pub const KEY: &str = "key";
/// `proxy_url`: the proxy's URL.
pub const PROXY_URL: &str = "proxy_url";
/// `username`: the credential's user name, as plaintext (the JSON form; a JSONL line may hold
/// it when the token is absent).
pub const USERNAME: &str = "username";
/// `password`: the credential's password, as plaintext (as [`USERNAME`]).
pub const PASSWORD: &str = "password";
/// `source`: where the proxy was found.
pub const SOURCE: &str = "source";
/// `fetch_time`: when it was fetched.
pub const FETCH_TIME: &str = "fetch_time";
/// `last_accessed`: its last use.
pub const LAST_ACCESSED: &str = "last_accessed";
/// `access_count`: its uses.
pub const ACCESS_COUNT: &str = "access_count";
/// `ttl_seconds`: its time to live.
pub const TTL_SECONDS: &str = "ttl_seconds";
/// `expires_at`: when it expires.
pub const EXPIRES_AT: &str = "expires_at";
/// `health_status`: its health.
pub const HEALTH_STATUS: &str = "health_status";
/// `failure_count`: failures recorded against it.
pub const FAILURE_COUNT: &str = "failure_count";
/// `evicted_from_l1`: whether L1 evicted it.
pub const EVICTED_FROM_L1: &str = "evicted_from_l1";
/// `last_health_check`: time of the last health check.
pub const LAST_HEALTH_CHECK: &str = "last_health_check";
/// `consecutive_health_failures`: failed checks in a row.
pub const CONSECUTIVE_HEALTH_FAILURES: &str = "consecutive_health_failures";
/// `consecutive_health_successes`: passed checks in a row.
pub const CONSECUTIVE_HEALTH_SUCCESSES: &str = "consecutive_health_successes";
/// `recovery_attempt`: recovery attempts so far.
pub const RECOVERY_ATTEMPT: &str = "recovery_attempt";
/// `next_check_time`: when the next check is due.
pub const NEXT_CHECK_TIME: &str = "next_check_time";
/// `last_health_error`: the last check's error.
pub const LAST_HEALTH_ERROR: &str = "last_health_error";
/// `total_health_checks`: checks in all.
pub const TOTAL_HEALTH_CHECKS: &str = "total_health_checks";
/// `total_health_check_failures`: failed checks in all.
pub const TOTAL_HEALTH_CHECK_FAILURES: &str = "total_health_check_failures";

/// `username_encrypted`: the stored token of [`USERNAME`] (JSONL: its hex; SQLite: a BLOB of
/// its bytes; Redis: its text).
pub const USERNAME_ENCRYPTED: &str = "username_encrypted";
/// `password_encrypted`: the stored token of [`PASSWORD`] (as [`USERNAME_ENCRYPTED`]).
pub const PASSWORD_ENCRYPTED: &str = "password_encrypted";

/// The eight health-check detail fields, in the reference's order (the fields of a
/// [`HealthDetail`](crate::HealthDetail); the last eight of [`ENTRY_FIELDS`]).
pub const HEALTH_DETAIL_FIELDS: [&str; 8] = [
    LAST_HEALTH_CHECK,
    CONSECUTIVE_HEALTH_FAILURES,
    CONSECUTIVE_HEALTH_SUCCESSES,
    RECOVERY_ATTEMPT,
    NEXT_CHECK_TIME,
    LAST_HEALTH_ERROR,
    TOTAL_HEALTH_CHECKS,
    TOTAL_HEALTH_CHECK_FAILURES,
];

/// Every field of an entry, in the reference's order (its JSON form's).
pub const ENTRY_FIELDS: [&str; 21] = [
    KEY,
    PROXY_URL,
    USERNAME,
    PASSWORD,
    SOURCE,
    FETCH_TIME,
    LAST_ACCESSED,
    ACCESS_COUNT,
    TTL_SECONDS,
    EXPIRES_AT,
    HEALTH_STATUS,
    FAILURE_COUNT,
    EVICTED_FROM_L1,
    LAST_HEALTH_CHECK,
    CONSECUTIVE_HEALTH_FAILURES,
    CONSECUTIVE_HEALTH_SUCCESSES,
    RECOVERY_ATTEMPT,
    NEXT_CHECK_TIME,
    LAST_HEALTH_ERROR,
    TOTAL_HEALTH_CHECKS,
    TOTAL_HEALTH_CHECK_FAILURES,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheEntry;

    #[test]
    fn the_names_are_the_json_forms_members_in_order() {
        let line = CacheEntry::new("http://1.2.3.4:8080", "s", 60).unwrap().to_json_line();
        let mut members: Vec<String> = match serde_json::from_str(&line).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        };
        members.sort();
        let mut sorted = ENTRY_FIELDS.map(str::to_owned).to_vec();
        sorted.sort();
        assert_eq!(members, sorted, "the same names");
        let at: Vec<usize> = ENTRY_FIELDS
            .iter()
            .map(|name| line.find(&format!("\"{name}\": ")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "in the same order: {line}");
    }

    #[test]
    fn the_health_detail_is_the_entry_fields_after_the_flag() {
        let at = ENTRY_FIELDS.iter().position(|f| *f == EVICTED_FROM_L1).unwrap();
        assert_eq!(ENTRY_FIELDS[at + 1..], HEALTH_DETAIL_FIELDS);
    }
}
