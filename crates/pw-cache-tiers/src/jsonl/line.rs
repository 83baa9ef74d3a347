//! One line of a shard: an entry as proxywhirl's `JsonlCacheTier` writes it, credentials as
//! lowercase hex of their Fernet token bytes.
//!
//! [`encode_line`] writes the line byte for byte as proxywhirl 0.3.3 does
//! (`json.dumps(data)`, the reference's field order); [`decode_line`] reads it back, decrypting
//! the credentials. The index of a shard uses [`classify`], which parses a line without
//! decrypting anything and says what it is (an entry, an entry that cannot be read, a JSON value
//! that is no entry, or no JSON at all).
//!
//! # Reading what proxywhirl reads
//!
//! proxywhirl reads a line with `json.loads`, turns string timestamps into datetimes with
//! `datetime.fromisoformat`, and builds `CacheEntry(**data)` with pydantic v2 in lax mode. So a
//! line it reads is one we read, with the rules of `pw_cache_model::lax`: integers written as
//! `"5"` or `5.0` or `true`, booleans as `"yes"`, `"off"`, `1`, `0.0`, timestamps as Unix seconds
//! (milliseconds above 2e10) as well as isoformat strings, and a member repeated in the object
//! (the last one wins, as in `json.loads`). The reference bounds every count with `ge=0` except
//! `access_count`: a negative `access_count` reads as 0, a count above `u64::MAX` as `u64::MAX`,
//! each reported by a warning that names the key and the field (never a credential); a negative
//! bounded count, which pydantic refuses, leaves the entry unreadable, as everything proxywhirl
//! fails to read does.
//!
//! Limits: an integer literal beyond `u64::MAX`, which serde_json hands over as a float, is
//! refused (pydantic takes it: it is a Python `int`); `NaN`, `Infinity` and lone surrogate
//! escapes, which `json.loads` takes, are not JSON to serde_json, so such a line is unreadable
//! (and kept as such); a `username` or `password` member in plaintext, which pydantic would take
//! as the credential, is ignored (proxywhirl never writes one).

use std::borrow::Cow;

use pw_cache_crypto::KeyRing;
use pw_cache_model::lax::{self, Count, LaxBool, LooseCount};
use pw_cache_model::timestamp::{isoformat, isoformat_option};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime, Secret};
use serde::{Deserialize, Serialize};

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

/// The line as read. Required and defaulted fields as the model's JSON form (the reference's
/// pydantic defaults), each value read as pydantic's lax mode reads it (`pw_cache_model::lax`);
/// unknown fields are ignored.
#[derive(Deserialize)]
pub(crate) struct LineIn<'a> {
    #[serde(borrow)]
    pub(crate) key: Cow<'a, str>,
    #[serde(borrow)]
    proxy_url: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(with = "lax::timestamp")]
    pub(crate) fetch_time: OffsetDateTime,
    #[serde(with = "lax::timestamp")]
    pub(crate) last_accessed: OffsetDateTime,
    #[serde(default)]
    pub(crate) access_count: LooseCount,
    ttl_seconds: Count,
    #[serde(with = "lax::timestamp")]
    pub(crate) expires_at: OffsetDateTime,
    #[serde(default)]
    health_status: HealthStatus,
    #[serde(default)]
    failure_count: Count,
    #[serde(default)]
    evicted_from_l1: LaxBool,
    #[serde(default, with = "lax::timestamp_option")]
    last_health_check: Option<OffsetDateTime>,
    #[serde(default)]
    consecutive_health_failures: Count,
    #[serde(default)]
    consecutive_health_successes: Count,
    #[serde(default)]
    recovery_attempt: Count,
    #[serde(default, with = "lax::timestamp_option")]
    next_check_time: Option<OffsetDateTime>,
    #[serde(default)]
    last_health_error: Option<String>,
    #[serde(default)]
    total_health_checks: Count,
    #[serde(default)]
    total_health_check_failures: Count,
    #[serde(default)]
    username_encrypted: Option<String>,
    #[serde(default)]
    password_encrypted: Option<String>,
}

impl LineIn<'_> {
    /// The counts whose stored value was outside `u64` and read as the nearest one:
    /// `(field, stored, read as)`.
    fn out_of_range(&self) -> impl Iterator<Item = (&'static str, i128, u64)> {
        let loose = [("access_count", self.access_count)].map(|(f, c)| (f, c.out_of_range, c.value));
        let bounded = [
            ("ttl_seconds", self.ttl_seconds),
            ("failure_count", self.failure_count),
            ("consecutive_health_failures", self.consecutive_health_failures),
            ("consecutive_health_successes", self.consecutive_health_successes),
            ("recovery_attempt", self.recovery_attempt),
            ("total_health_checks", self.total_health_checks),
            ("total_health_check_failures", self.total_health_check_failures),
        ]
        .map(|(f, c)| (f, c.out_of_range, c.value));
        loose
            .into_iter()
            .chain(bounded)
            .filter_map(|(field, stored, value)| Some((field, stored?, value)))
    }

    /// Reports each count read as the nearest legal value ([`LineIn::out_of_range`]): a
    /// warning naming the key, the field, the stored value and the value read.
    pub(crate) fn report_out_of_range(&self) {
        for (field, stored, read_as) in self.out_of_range() {
            tracing::warn!(
                key = %self.key,
                field,
                stored = %stored,
                read_as,
                "JSONL entry holds a value outside its field's range; read as the nearest legal value"
            );
        }
    }

    /// The credential fields that are set (absent, `null` and `""` are no credential).
    fn token_fields(&self) -> impl Iterator<Item = &str> {
        [&self.username_encrypted, &self.password_encrypted]
            .into_iter()
            .filter_map(|f| f.as_deref().filter(|h| !h.is_empty()))
    }

    /// Whether the line holds a credential token.
    pub(crate) fn has_credentials(&self) -> bool {
        self.token_fields().next().is_some()
    }

    /// Whether every credential token is hex and opens with a key of `ring`. The plaintext is
    /// dropped (and zeroized) as soon as it is known.
    fn tokens_open(&self, ring: &KeyRing) -> bool {
        self.token_fields()
            .all(|hex| hex_decode(hex).is_some_and(|bytes| ring.decrypt_bytes(&bytes).is_ok()))
    }
}

/// The members of a line that say whose credentials it holds: what checking its tokens needs,
/// without the cost of reading the whole entry (its timestamps above all).
#[derive(Deserialize)]
struct TokensIn<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default, borrow)]
    username_encrypted: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    password_encrypted: Option<Cow<'a, str>>,
}

impl TokensIn<'_> {
    /// The credential fields that are set (absent, `null` and `""` are no credential).
    fn fields(&self) -> impl Iterator<Item = &str> {
        [&self.username_encrypted, &self.password_encrypted]
            .into_iter()
            .filter_map(|f| f.as_deref().filter(|h| !h.is_empty()))
    }
}

/// Whether `line`, the indexed line of `key` (an entry when indexed), is that key's entry with
/// credentials that open with `ring` (nothing is kept of them).
pub(crate) fn credentials_open(line: &[u8], key: &str, ring: &KeyRing) -> bool {
    let open = |hex: &str| hex_decode(hex).is_some_and(|bytes| ring.decrypt_bytes(&bytes).is_ok());
    match serde_json::from_slice::<TokensIn<'_>>(line) {
        Ok(tokens) => tokens.key == key && tokens.fields().all(open),
        // A member written twice, or not an entry after all: the full reading decides.
        Err(_) => match classify(line) {
            Classified::Entry(parsed) => parsed.key == key && parsed.tokens_open(ring),
            _ => false,
        },
    }
}

/// The credential tokens of an entry's line, as stored (hex-decoded, not decrypted); a field
/// that is not hex is left out.
pub(crate) fn stored_tokens(line: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<TokensIn<'_>>(line) {
        Ok(tokens) => tokens.fields().filter_map(hex_decode).collect(),
        Err(_) => match classify(line) {
            Classified::Entry(parsed) => parsed.token_fields().filter_map(hex_decode).collect(),
            _ => Vec::new(),
        },
    }
}

/// What one non-blank line of a shard is.
pub(crate) enum Classified<'a> {
    /// An entry (credentials not checked).
    Entry(Box<LineIn<'a>>),
    /// A JSON object with a string `key` whose other fields do not make an entry.
    Invalid {
        /// The entry's key.
        key: String,
        /// What is wrong (serde's message).
        reason: String,
        /// Its `expires_at` field, when that alone can be read.
        expires: Option<OffsetDateTime>,
    },
    /// Valid JSON that is not an object with a string `key` (`42`, `null`, `"x"`, `[]`).
    NonEntry,
    /// Not JSON (truncated, garbage, not UTF-8).
    Undecodable,
}

/// Parses a line without decrypting: the index's view of it.
pub(crate) fn classify(line: &[u8]) -> Classified<'_> {
    match serde_json::from_slice::<LineIn<'_>>(line) {
        Ok(parsed) => Classified::Entry(Box::new(parsed)),
        // The slow path, for damaged lines only: tell the three kinds of damage apart.
        Err(err) => match serde_json::from_slice::<serde_json::Value>(line) {
            Err(_) => Classified::Undecodable,
            Ok(serde_json::Value::Object(map)) => {
                let Some(serde_json::Value::String(key)) = map.get("key") else {
                    return Classified::NonEntry;
                };
                let key = key.clone();
                let expires = map.get("expires_at").and_then(|v| lax::timestamp::deserialize(v).ok());
                // The object holds the last of repeated members, as `json.loads` does; serde's
                // derive refuses repeated members, so the entry may still be read from it.
                match LineIn::deserialize(serde_json::Value::Object(map)) {
                    Ok(parsed) => Classified::Entry(Box::new(parsed)),
                    Err(_) => Classified::Invalid {
                        key,
                        reason: err.to_string(),
                        expires,
                    },
                }
            }
            Ok(_) => Classified::NonEntry,
        },
    }
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

/// Reads one shard line (without its line terminator) back into an entry, decrypting the
/// credentials with `ring`. Values are read as proxywhirl reads them (see the module docs): a
/// count outside our range is read as the nearest legal value and reported by a warning.
///
/// Errors are about the line, never the tier: [`TierError::Corrupt`] when it is not an entry
/// (the key is empty when the line has none) or a credential is not hex,
/// [`TierError::Crypto`] when no key of the ring opens a credential token. Both are
/// [`TierError::is_corrupt_entry`]. An empty or `null` credential field is no credential, as the
/// reference reads it.
pub fn decode_line(line: &[u8], ring: &KeyRing) -> Result<CacheEntry, TierError> {
    match classify(line) {
        Classified::Entry(parsed) => {
            parsed.report_out_of_range();
            into_entry(*parsed, ring)
        }
        Classified::Invalid { key, reason, .. } => Err(TierError::Corrupt { key, reason }),
        Classified::NonEntry => Err(TierError::Corrupt {
            key: String::new(),
            reason: "the line is JSON but not an object with a string \"key\"".to_owned(),
        }),
        Classified::Undecodable => Err(TierError::Corrupt {
            key: String::new(),
            reason: "the line is not JSON".to_owned(),
        }),
    }
}

/// Builds the entry of a parsed line, decrypting its credentials.
pub(crate) fn into_entry(line: LineIn<'_>, ring: &KeyRing) -> Result<CacheEntry, TierError> {
    let key = line.key.into_owned();
    let username = open_credential(&key, "username_encrypted", line.username_encrypted.as_deref(), ring)?;
    let password = open_credential(&key, "password_encrypted", line.password_encrypted.as_deref(), ring)?;
    Ok(CacheEntry {
        key,
        proxy_url: line.proxy_url.into_owned(),
        username,
        password,
        source: line.source.into_owned(),
        fetch_time: line.fetch_time,
        last_accessed: line.last_accessed,
        access_count: line.access_count.value,
        ttl_seconds: line.ttl_seconds.value,
        expires_at: line.expires_at,
        health_status: line.health_status,
        failure_count: line.failure_count.value,
        evicted_from_l1: line.evicted_from_l1.0,
        last_health_check: line.last_health_check,
        consecutive_health_failures: line.consecutive_health_failures.value,
        consecutive_health_successes: line.consecutive_health_successes.value,
        recovery_attempt: line.recovery_attempt.value,
        next_check_time: line.next_check_time,
        last_health_error: line.last_health_error,
        total_health_checks: line.total_health_checks.value,
        total_health_check_failures: line.total_health_check_failures.value,
    })
}

fn open_credential(
    key: &str,
    field: &'static str,
    hex: Option<&str>,
    ring: &KeyRing,
) -> Result<Option<Secret>, TierError> {
    // The reference tests the field for truthiness: absent, null and "" are no credential.
    let Some(hex) = hex.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let bytes = hex_decode(hex).ok_or_else(|| TierError::Corrupt {
        key: key.to_owned(),
        reason: format!("{field} is not hex"),
    })?;
    ring.decrypt_bytes(&bytes)
        .map(Some)
        .map_err(|source| TierError::Crypto {
            key: key.to_owned(),
            source,
        })
}

/// Lowercase hex, as Python's `bytes.hex()`: how a shard line (and an encrypted export) holds a
/// token's bytes.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex of either case, as Python's `bytes.fromhex` (without its whitespace tolerance); `None`
/// for an odd length or a non-hex digit.
pub fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pw_cache_crypto::FernetKey;
    use time::macros::datetime;

    fn ring() -> KeyRing {
        KeyRing::new(FernetKey::generate(), [])
    }

    fn entry() -> CacheEntry {
        CacheEntry::new_at(
            "http://1.2.3.4:8080",
            "источник",
            3600,
            datetime!(2026-11-20 23:00:00.5 UTC),
        )
        .unwrap()
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(hex_encode(b"gA=\x00\xff"), "67413d00ff");
        assert_eq!(hex_decode("67413D00ff").unwrap(), b"gA=\x00\xff");
        assert_eq!(hex_decode(""), Some(vec![]));
        assert!(hex_decode("abc").is_none());
        assert!(hex_decode("zz").is_none());
        assert!(hex_decode("é1").is_none());
    }

    #[test]
    fn line_without_credentials_is_the_references() {
        let line = encode_line(&entry(), &ring()).unwrap();
        assert_eq!(
            line,
            r#"{"key": "fe229370330820fe", "proxy_url": "http://1.2.3.4:8080", "source": "\u0438\u0441\u0442\u043e\u0447\u043d\u0438\u043a", "fetch_time": "2026-11-20T23:00:00.500000+00:00", "last_accessed": "2026-11-20T23:00:00.500000+00:00", "access_count": 0, "ttl_seconds": 3600, "expires_at": "2026-11-21T00:00:00.500000+00:00", "health_status": "unknown", "failure_count": 0, "evicted_from_l1": false, "last_health_check": null, "consecutive_health_failures": 0, "consecutive_health_successes": 0, "recovery_attempt": 0, "next_check_time": null, "last_health_error": null, "total_health_checks": 0, "total_health_check_failures": 0}"#
        );
    }

    #[test]
    fn credentials_round_trip_empty_string_included() {
        let ring = ring();
        let e = entry().with_credentials(Some(Secret::new("")), Some(Secret::new("pässword")));
        let line = encode_line(&e, &ring).unwrap();
        assert!(line.contains(r#""username_encrypted": "674141"#), "{line}");
        assert!(!line.contains("pässword"));
        assert_eq!(decode_line(line.as_bytes(), &ring).unwrap(), e);
    }

    #[test]
    fn unknown_key_is_a_corrupt_entry() {
        let e = entry().with_credentials(None, Some(Secret::new("x")));
        let line = encode_line(&e, &ring()).unwrap();
        let err = decode_line(line.as_bytes(), &ring()).unwrap_err();
        assert!(
            matches!(err, TierError::Crypto { ref key, .. } if key == "fe229370330820fe"),
            "{err}"
        );
        assert!(err.is_corrupt_entry());
    }

    #[test]
    fn classifies_damage() {
        assert!(matches!(classify(b"{\"key\": \"k\", \"proxy"), Classified::Undecodable));
        assert!(matches!(classify(b"\xff\xfe"), Classified::Undecodable));
        for non_entry in [&b"42"[..], b"null", b"\"x\"", b"[\"key\"]", b"{}", b"{\"key\": 1}"] {
            assert!(matches!(classify(non_entry), Classified::NonEntry));
        }
        match classify(b"{\"key\": \"k\", \"ttl_seconds\": -1}") {
            Classified::Invalid { key, .. } => assert_eq!(key, "k"),
            _ => panic!("expected an invalid entry"),
        }
        let bad_hex = encode_line(&entry(), &ring())
            .unwrap()
            .replace('}', r#", "password_encrypted": "xyz"}"#);
        let err = decode_line(bad_hex.as_bytes(), &ring()).unwrap_err();
        assert!(
            matches!(err, TierError::Corrupt { .. }) && err.is_corrupt_entry(),
            "{err}"
        );
    }
}
