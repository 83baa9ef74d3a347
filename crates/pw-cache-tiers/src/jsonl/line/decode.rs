//! Reading a line: what it is ([`classify`]: an entry, an entry that cannot be read, JSON that is
//! no entry, or no JSON), each value read as proxywhirl reads it, and the entry it holds with its
//! credentials decrypted ([`decode_line`], [`into_entry`]).

use std::borrow::Cow;

use pw_cache_crypto::KeyRing;
use pw_cache_model::lax::{self, Count, LaxBool, LooseCount};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime, fields};
use serde::Deserialize;

use super::credentials::{Plain, credential, token_member, token_opens};
use super::relax;
use crate::error::TierError;

/// The members of a line that are integers in the reference's model (`int` fields), read with
/// `pw_cache_model::lax`'s [`Count`] and [`LooseCount`].
const INT_MEMBERS: [&str; 8] = [
    fields::ACCESS_COUNT,
    fields::TTL_SECONDS,
    fields::FAILURE_COUNT,
    fields::CONSECUTIVE_HEALTH_FAILURES,
    fields::CONSECUTIVE_HEALTH_SUCCESSES,
    fields::RECOVERY_ATTEMPT,
    fields::TOTAL_HEALTH_CHECKS,
    fields::TOTAL_HEALTH_CHECK_FAILURES,
];

/// Every member [`LineIn`] reads (others are ignored, as pydantic ignores them).
pub(super) const ENTRY_MEMBERS: [&str; 23] = [
    fields::KEY,
    fields::PROXY_URL,
    fields::SOURCE,
    fields::FETCH_TIME,
    fields::LAST_ACCESSED,
    fields::ACCESS_COUNT,
    fields::TTL_SECONDS,
    fields::EXPIRES_AT,
    fields::HEALTH_STATUS,
    fields::FAILURE_COUNT,
    fields::EVICTED_FROM_L1,
    fields::LAST_HEALTH_CHECK,
    fields::CONSECUTIVE_HEALTH_FAILURES,
    fields::CONSECUTIVE_HEALTH_SUCCESSES,
    fields::RECOVERY_ATTEMPT,
    fields::NEXT_CHECK_TIME,
    fields::LAST_HEALTH_ERROR,
    fields::TOTAL_HEALTH_CHECKS,
    fields::TOTAL_HEALTH_CHECK_FAILURES,
    fields::USERNAME_ENCRYPTED,
    fields::PASSWORD_ENCRYPTED,
    fields::USERNAME,
    fields::PASSWORD,
];

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
    pub(super) source: Cow<'a, str>,
    #[serde(with = "lax::timestamp")]
    pub(crate) fetch_time: OffsetDateTime,
    #[serde(with = "lax::timestamp")]
    pub(crate) last_accessed: OffsetDateTime,
    #[serde(default)]
    pub(crate) access_count: LooseCount,
    pub(super) ttl_seconds: Count,
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
    pub(super) total_health_checks: Count,
    #[serde(default)]
    total_health_check_failures: Count,
    #[serde(default, borrow, deserialize_with = "token_member")]
    username_encrypted: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "token_member")]
    password_encrypted: Option<Cow<'a, str>>,
    /// A username stored in plaintext: pydantic takes it when `username_encrypted` is false.
    #[serde(default)]
    username: Option<Plain>,
    /// A password stored in plaintext: pydantic takes it when `password_encrypted` is false.
    #[serde(default)]
    password: Option<Plain>,
    /// The members whose strings had lone surrogate escapes, read as U+FFFD (see `relax`).
    #[serde(skip)]
    pub(super) surrogates: Vec<String>,
}

impl LineIn<'_> {
    /// The counts whose stored value was outside `u64` and read as the nearest one:
    /// `(field, stored, read as)`.
    fn out_of_range(&self) -> impl Iterator<Item = (&'static str, i128, u64)> {
        let loose = [(fields::ACCESS_COUNT, self.access_count)].map(|(f, c)| (f, c.out_of_range, c.value));
        let bounded = [
            (fields::TTL_SECONDS, self.ttl_seconds),
            (fields::FAILURE_COUNT, self.failure_count),
            (fields::CONSECUTIVE_HEALTH_FAILURES, self.consecutive_health_failures),
            (fields::CONSECUTIVE_HEALTH_SUCCESSES, self.consecutive_health_successes),
            (fields::RECOVERY_ATTEMPT, self.recovery_attempt),
            (fields::TOTAL_HEALTH_CHECKS, self.total_health_checks),
            (fields::TOTAL_HEALTH_CHECK_FAILURES, self.total_health_check_failures),
        ]
        .map(|(f, c)| (f, c.out_of_range, c.value));
        loose
            .into_iter()
            .chain(bounded)
            .filter_map(|(field, stored, value)| Some((field, stored?, value)))
    }

    /// Reports what was read other than as stored, each by a warning naming the key and the
    /// field, never a credential's value: each count read as the nearest legal value
    /// ([`LineIn::out_of_range`], with the stored value and the value read); each member
    /// whose lone surrogates were read as U+FFFD; and, once for the line, the credentials
    /// stored in plaintext.
    pub(crate) fn report_nearest(&self) {
        for (field, stored, read_as) in self.out_of_range() {
            tracing::warn!(
                key = %self.key,
                field,
                stored = %stored,
                read_as,
                "JSONL entry holds a value outside its field's range; read as the nearest legal value"
            );
        }
        if !self.surrogates.is_empty() || self.username.is_some() || self.password.is_some() {
            self.report_rewritten_or_plaintext();
        }
    }

    /// [`LineIn::report_nearest`] of the members whose lone surrogates were replaced and of
    /// plaintext credentials: out of the common path.
    #[cold]
    #[inline(never)]
    fn report_rewritten_or_plaintext(&self) {
        for field in &self.surrogates {
            tracing::warn!(
                key = %self.key,
                field = %field,
                "JSONL entry holds a lone surrogate escape (\\uD800-\\uDFFF), which no UTF-8 string \
                 can hold; read as U+FFFD"
            );
        }
        let plaintext: Vec<&str> = [(fields::USERNAME, &self.username), (fields::PASSWORD, &self.password)]
            .into_iter()
            .filter_map(|(field, plain)| plain.as_ref().map(|_| field))
            .collect();
        if !plaintext.is_empty() {
            tracing::warn!(
                key = %self.key,
                fields = %plaintext.join(", "),
                "JSONL entry holds a credential in plaintext (read as proxywhirl reads it when the \
                 encrypted field is absent or empty; a put of the entry stores it encrypted)"
            );
        }
    }

    /// The credential fields that are set (absent, `null` and `""` are no credential).
    pub(super) fn token_fields(&self) -> impl Iterator<Item = &str> {
        [&self.username_encrypted, &self.password_encrypted]
            .into_iter()
            .filter_map(|f| f.as_deref().filter(|h| !h.is_empty()))
    }

    /// Why the entry cannot be read although its members parsed: a credential stored in
    /// plaintext that is not a string, where the reference would take it (its encrypted
    /// field is false).
    fn plaintext_problem(&self) -> Option<String> {
        [
            (fields::USERNAME, &self.username_encrypted, &self.username),
            (fields::PASSWORD, &self.password_encrypted, &self.password),
        ]
        .into_iter()
        .find_map(|(field, token, plain)| match plain {
            Some(Plain::NotAString(what)) if token.as_deref().is_none_or(str::is_empty) => {
                Some(format!("{field} is {what}, not a string"))
            }
            _ => None,
        })
    }

    /// The same line, owning its text.
    pub(super) fn into_owned(self) -> LineIn<'static> {
        let owned = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        LineIn {
            key: owned(self.key),
            proxy_url: owned(self.proxy_url),
            source: owned(self.source),
            fetch_time: self.fetch_time,
            last_accessed: self.last_accessed,
            access_count: self.access_count,
            ttl_seconds: self.ttl_seconds,
            expires_at: self.expires_at,
            health_status: self.health_status,
            failure_count: self.failure_count,
            evicted_from_l1: self.evicted_from_l1,
            last_health_check: self.last_health_check,
            consecutive_health_failures: self.consecutive_health_failures,
            consecutive_health_successes: self.consecutive_health_successes,
            recovery_attempt: self.recovery_attempt,
            next_check_time: self.next_check_time,
            last_health_error: self.last_health_error,
            total_health_checks: self.total_health_checks,
            total_health_check_failures: self.total_health_check_failures,
            username_encrypted: self.username_encrypted.map(owned),
            password_encrypted: self.password_encrypted.map(owned),
            username: self.username,
            password: self.password,
            surrogates: self.surrogates,
        }
    }

    /// Whether the line holds a credential token.
    pub(crate) fn has_credentials(&self) -> bool {
        self.token_fields().next().is_some()
    }

    /// Whether every credential token is hex and opens with a key of `ring`. The plaintext is
    /// dropped (and zeroized) as soon as it is known.
    pub(super) fn tokens_open(&self, ring: &KeyRing) -> bool {
        self.token_fields().all(|hex| token_opens(hex, ring))
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

/// Parses a line without decrypting: the index's view of it, and the one reading of a line
/// every reader of the tier goes through (indexing, a get, [`decode_line`]).
///
/// A line serde_json refuses but `json.loads` reads (a lone surrogate escape, `NaN`, an
/// integer beyond `u64`: see `relax`) is read again from a rewritten copy (the stored line
/// is never changed): a lone surrogate reads as U+FFFD, an integer beyond `u64` in an
/// integer member as the nearest legal value, and `NaN` or `Infinity` in a member of the
/// entry makes it an unreadable entry of its key. Lines that serde_json reads pay nothing
/// for this.
pub(crate) fn classify(line: &[u8]) -> Classified<'_> {
    match serde_json::from_slice::<LineIn<'_>>(line) {
        Ok(parsed) => checked(parsed),
        // The slow path, for damaged lines only.
        Err(err) => match relax::relax(line, &INT_MEMBERS) {
            Some(relaxed) => classify_relaxed(relaxed),
            None => classify_damaged(line, err),
        },
    }
}

/// An entry whose members parsed, unless its plaintext credentials make it unreadable.
fn checked(parsed: LineIn<'_>) -> Classified<'_> {
    match parsed.plaintext_problem() {
        None => Classified::Entry(Box::new(parsed)),
        Some(reason) => Classified::Invalid {
            key: parsed.key.into_owned(),
            reason,
            expires: Some(parsed.expires_at),
        },
    }
}

/// Tells the kinds of damage apart in a line serde_json refused as an entry (`err`): an
/// object with repeated members (read, the last one winning as in `json.loads`), an invalid
/// entry of a key, JSON that is no entry, or no JSON.
fn classify_damaged(line: &[u8], err: serde_json::Error) -> Classified<'_> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Err(_) => Classified::Undecodable,
        Ok(serde_json::Value::Object(map)) => {
            let Some(serde_json::Value::String(key)) = map.get(fields::KEY) else {
                return Classified::NonEntry;
            };
            let key = key.clone();
            let expires = map
                .get(fields::EXPIRES_AT)
                .and_then(|v| lax::timestamp::deserialize(v).ok());
            // The object holds the last of repeated members, as `json.loads` does; serde's
            // derive refuses repeated members, so the entry may still be read from it.
            match LineIn::deserialize(serde_json::Value::Object(map)) {
                Ok(parsed) => checked(parsed),
                Err(_) => Classified::Invalid {
                    key,
                    reason: err.to_string(),
                    expires,
                },
            }
        }
        Ok(_) => Classified::NonEntry,
    }
}

/// Classifies the rewritten copy of a line (see [`classify`]).
fn classify_relaxed(relaxed: relax::Relaxed) -> Classified<'static> {
    let text = relaxed.text.as_bytes();
    let classified = match serde_json::from_slice::<LineIn<'_>>(text) {
        Ok(parsed) => checked(parsed),
        Err(err) => classify_damaged(text, err),
    };
    match classified {
        Classified::Entry(parsed) => {
            let mut parsed = parsed.into_owned();
            parsed.surrogates = relaxed.surrogates;
            Classified::Entry(Box::new(parsed))
        }
        Classified::Invalid { key, reason, expires } => {
            let non_finite: Vec<&str> = relaxed
                .non_finite
                .iter()
                .map(String::as_str)
                .filter(|m| ENTRY_MEMBERS.contains(m))
                .collect();
            let reason = if non_finite.is_empty() {
                reason
            } else {
                format!(
                    "{} holds NaN, Infinity or a number beyond a float: json.loads reads it, no field of an \
                     entry takes it",
                    non_finite.join(", ")
                )
            };
            Classified::Invalid { key, reason, expires }
        }
        Classified::NonEntry => Classified::NonEntry,
        Classified::Undecodable => Classified::Undecodable,
    }
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
            parsed.report_nearest();
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
    let username = credential(
        &key,
        fields::USERNAME,
        line.username_encrypted.as_deref(),
        line.username,
        ring,
    )?;
    let password = credential(
        &key,
        fields::PASSWORD,
        line.password_encrypted.as_deref(),
        line.password,
        ring,
    )?;
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
