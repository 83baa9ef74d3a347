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
//! What serde_json refuses but `json.loads` reads is read from a rewritten copy of the line
//! (the stored line never changes; a line serde_json reads pays nothing for it):
//! - an integer literal beyond `u64` (or below `i64::MIN`), which serde_json would hand over as
//!   a float, in an integer member reads as Python's `int` does: `2**64 + 5` in `access_count`
//!   reads as `u64::MAX`, reported as above (a float literal that large stays refused, as
//!   pydantic refuses it);
//! - a lone surrogate escape (`"\ud800"`), which a Python `str` holds and no Rust string can,
//!   reads as U+FFFD, reported by a warning naming the key and the member;
//! - `NaN`, `Infinity`, `-Infinity` (and a number beyond a float, `1e400`) in a member of the
//!   entry make it an unreadable entry of its key, as pydantic refuses them in every field (in
//!   a member the entry does not have they are ignored, as pydantic ignores it).
//!
//! Credentials: a `*_encrypted` member that is a non-empty string is hex (either case, ASCII
//! whitespace between bytes, as `bytes.fromhex`) of a token (read as Python's `cryptography`
//! reads it: see `pw_cache_crypto::KeyRing::decrypt_bytes`); one that Python finds false
//! (absent, `null`, `""`, `false`, `0`, `[]`, `{}`) is no credential, and then a `username` or
//! `password` member in plaintext is the credential, as `CacheEntry(**data)` takes it (a
//! string; anything else makes the entry unreadable). A line holding a plaintext credential is
//! reported once (the field, never the value); we never write one.
//!
//! Limits: a lone surrogate in the key makes another key (U+FFFD in its place), which may then
//! be misplaced (found in a shard other than its md5 shard); an integer of more than 4300
//! digits, on which `json.loads` raises, leaves the line undecodable.

mod relax;

use std::borrow::Cow;
use std::fmt;

use pw_cache_crypto::KeyRing;
use pw_cache_model::lax::{self, Count, LaxBool, LooseCount};
use pw_cache_model::timestamp::{isoformat, isoformat_option};
use pw_cache_model::{CacheEntry, HealthStatus, OffsetDateTime, Secret};
use serde::de::{self, IgnoredAny, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::TierError;

/// The members of a line that are integers in the reference's model (`int` fields), read with
/// `pw_cache_model::lax`'s [`Count`] and [`LooseCount`].
const INT_MEMBERS: [&str; 8] = [
    "access_count",
    "ttl_seconds",
    "failure_count",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "total_health_checks",
    "total_health_check_failures",
];

/// Every member [`LineIn`] reads (others are ignored, as pydantic ignores them).
const ENTRY_MEMBERS: [&str; 23] = [
    "key",
    "proxy_url",
    "source",
    "fetch_time",
    "last_accessed",
    "access_count",
    "ttl_seconds",
    "expires_at",
    "health_status",
    "failure_count",
    "evicted_from_l1",
    "last_health_check",
    "consecutive_health_failures",
    "consecutive_health_successes",
    "recovery_attempt",
    "next_check_time",
    "last_health_error",
    "total_health_checks",
    "total_health_check_failures",
    "username_encrypted",
    "password_encrypted",
    "username",
    "password",
];

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
    surrogates: Vec<String>,
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
        let plaintext: Vec<&str> = [("username", &self.username), ("password", &self.password)]
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
    fn token_fields(&self) -> impl Iterator<Item = &str> {
        [&self.username_encrypted, &self.password_encrypted]
            .into_iter()
            .filter_map(|f| f.as_deref().filter(|h| !h.is_empty()))
    }

    /// Why the entry cannot be read although its members parsed: a credential stored in
    /// plaintext that is not a string, where the reference would take it (its encrypted
    /// field is false).
    fn plaintext_problem(&self) -> Option<String> {
        [
            ("username", &self.username_encrypted, &self.username),
            ("password", &self.password_encrypted, &self.password),
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
    fn into_owned(self) -> LineIn<'static> {
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
    fn tokens_open(&self, ring: &KeyRing) -> bool {
        self.token_fields().all(|hex| token_opens(hex, ring))
    }
}

/// Whether the stored hex `hex` of a credential token reads with `ring` (the plaintext is
/// dropped, zeroized, at once). Hex of no bytes (only whitespace) reads: as `""`.
fn token_opens(hex: &str, ring: &KeyRing) -> bool {
    stored_hex_decode(hex).is_some_and(|bytes| bytes.is_empty() || ring.decrypt_bytes(&bytes).is_ok())
}

/// A credential member in plaintext (`"username": "alice"`), as pydantic reads it for a
/// `SecretStr | None` field: a string; `null` is no credential (the member is `None`);
/// anything else is refused when the reference would take the member.
pub(crate) enum Plain {
    /// A string.
    Text(Secret),
    /// Not a string: what it is ("a number", ...).
    NotAString(&'static str),
}

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a credential in plaintext")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Plain, E> {
        Ok(Plain::Text(Secret::new(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Plain, E> {
        Ok(Plain::Text(Secret::new(v)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Plain, E> {
        Ok(Plain::NotAString("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Plain, E> {
        Ok(Plain::NotAString("a number"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Plain::NotAString("an array (or NaN, Infinity)"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Plain::NotAString("an object"))
    }
}

/// Reads a credential token member (`username_encrypted`, `password_encrypted`) as the
/// reference tests it: a string (hex, decoded later; `""` is no credential), or a value Python
/// finds false (`null`, `false`, `0`, `0.0`, `[]`, `{}`), which is no credential either: the
/// reference leaves it in the data, where pydantic ignores it. Any other value (`true`, `5`, a
/// non-empty array or object) is refused: the reference fails on it (`bytes.fromhex` of a
/// value that is not a string).
fn token_member<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    deserializer.deserialize_any(TokenMemberVisitor)
}

struct TokenMemberVisitor;

impl<'de> Visitor<'de> for TokenMemberVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hex of a token, or a value Python finds false (null, false, 0, [], {})")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        } else {
            Ok(None)
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if v == 0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Signed(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if v == 0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Unsigned(v), &self))
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v == 0.0 {
            Ok(None)
        } else {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(None),
            Some(_) => Err(de::Error::invalid_type(Unexpected::Seq, &self)),
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(None),
            Some(_) => Err(de::Error::invalid_type(Unexpected::Map, &self)),
        }
    }
}

/// The members of a line that say whose credentials it holds: what checking its tokens needs,
/// without the cost of reading the whole entry (its timestamps above all).
#[derive(Deserialize)]
struct TokensIn<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "token_member")]
    username_encrypted: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "token_member")]
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
    let open = |hex: &str| token_opens(hex, ring);
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
/// that is not hex, or is the hex of no bytes, is left out.
pub(crate) fn stored_tokens(line: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<TokensIn<'_>>(line) {
        Ok(tokens) => tokens
            .fields()
            .filter_map(stored_hex_decode)
            .filter(|t| !t.is_empty())
            .collect(),
        Err(_) => match classify(line) {
            Classified::Entry(parsed) => parsed
                .token_fields()
                .filter_map(stored_hex_decode)
                .filter(|t| !t.is_empty())
                .collect(),
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
            let Some(serde_json::Value::String(key)) = map.get("key") else {
                return Classified::NonEntry;
            };
            let key = key.clone();
            let expires = map.get("expires_at").and_then(|v| lax::timestamp::deserialize(v).ok());
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
        "username",
        line.username_encrypted.as_deref(),
        line.username,
        ring,
    )?;
    let password = credential(
        &key,
        "password",
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

/// The credential `field` (`username`, `password`) of the entry `key`, with the reference's
/// precedence: the token in `{field}_encrypted` when that member is true (a non-empty string:
/// the reference decrypts it and puts the plaintext in place of the `field` member), else the
/// `field` member in plaintext, else none.
fn credential(
    key: &str,
    field: &'static str,
    hex: Option<&str>,
    plain: Option<Plain>,
    ring: &KeyRing,
) -> Result<Option<Secret>, TierError> {
    // The reference tests the field for truthiness: absent, null and "" are no credential.
    let Some(hex) = hex.filter(|h| !h.is_empty()) else {
        return match plain {
            None => Ok(None),
            Some(Plain::Text(secret)) => Ok(Some(secret)),
            Some(Plain::NotAString(what)) => Err(TierError::Corrupt {
                key: key.to_owned(),
                reason: format!("{field} is {what}, not a string"),
            }),
        };
    };
    let bytes = stored_hex_decode(hex).ok_or_else(|| TierError::Corrupt {
        key: key.to_owned(),
        reason: format!("{field}_encrypted is not hex"),
    })?;
    if bytes.is_empty() {
        // Only whitespace: the reference's encryptor reads no bytes as "".
        return Ok(Some(Secret::new(String::new())));
    }
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

/// The value of a hex digit of either case.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Hex of either case, as Python's `bytes.fromhex` (without its whitespace tolerance: see
/// `stored_hex_decode`); `None` for an odd length or a non-hex digit.
pub fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

/// The hex of a stored credential token, read as proxywhirl reads it with Python 3.11's
/// `bytes.fromhex`: either case, and ASCII whitespace (space, `\t`, `\n`, `\x0b`, `\x0c`,
/// `\r`) before any byte and at the end, never between the two digits of a byte (`"67 41\n"`
/// reads, `"6 741"` does not); any other byte is refused. The strict [`hex_decode`] first, so a
/// token as we write it pays nothing more.
pub(crate) fn stored_hex_decode(hex: &str) -> Option<Vec<u8>> {
    if let Some(bytes) = hex_decode(hex) {
        return Some(bytes);
    }
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut digits = hex.bytes();
    let mut out = Vec::with_capacity(hex.len() / 2);
    loop {
        let high = match digits.find(|&b| !is_space(b)) {
            None => return Some(out),
            Some(b) => hex_digit(b)?,
        };
        let low = hex_digit(digits.next()?)?;
        out.push(high << 4 | low);
    }
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

    /// The members every line below shares (the required ones).
    const BASE: &str = r#""proxy_url": "http://10.0.0.1:8080", "source": "s", "fetch_time": "2100-01-01T00:00:00+00:00", "last_accessed": "2100-01-01T00:00:00+00:00", "ttl_seconds": 3600, "expires_at": "2100-01-01T01:00:00+00:00""#;

    fn with(extra: &str) -> String {
        format!(r#"{{"key": "k", {BASE}{extra}}}"#)
    }

    fn entry_of(line: &str) -> LineIn<'static> {
        match classify(line.as_bytes()) {
            Classified::Entry(parsed) => parsed.into_owned(),
            Classified::Invalid { reason, .. } => panic!("{line}: invalid: {reason}"),
            _ => panic!("{line}: not an entry"),
        }
    }

    fn invalid_reason(line: &str) -> String {
        match classify(line.as_bytes()) {
            Classified::Invalid { key, reason, .. } => {
                assert_eq!(key, "k", "{line}");
                reason
            }
            Classified::Entry(_) => panic!("{line}: read as an entry"),
            _ => panic!("{line}: not an entry of its key"),
        }
    }

    // Each expectation below was checked against proxywhirl 0.3.3 (JsonlCacheTier.get) with
    // pydantic 2.14.4.

    #[test]
    fn integer_literals_beyond_u64_read_as_pythons_int_does() {
        let big = entry_of(&with(r#", "access_count": 18446744073709551621"#));
        assert_eq!(big.access_count.value, u64::MAX);
        assert_eq!(big.access_count.out_of_range, Some(18_446_744_073_709_551_621));
        // 2**64 itself, which is `u64::MAX as f64`: the integer, not the float, decides.
        let ttl = entry_of(&with(r#", "ttl_seconds": 18446744073709551616"#));
        assert_eq!(
            (ttl.ttl_seconds.value, ttl.ttl_seconds.out_of_range),
            (u64::MAX, Some(1 << 64))
        );
        let huge = entry_of(&with(&format!(r#", "total_health_checks": 1{}"#, "0".repeat(400))));
        assert_eq!(huge.total_health_checks.value, u64::MAX);
        let below = entry_of(&with(r#", "access_count": -18446744073709551616"#));
        assert_eq!(
            (below.access_count.value, below.access_count.out_of_range),
            (0, Some(-(1 << 64)))
        );
        // What pydantic refuses stays refused: a negative bounded count, a float that large (2e19,
        // 1e20), an integer in a string or time field.
        for extra in [
            r#", "ttl_seconds": -18446744073709551616"#,
            r#", "access_count": 2e19"#,
            r#", "failure_count": 1e20"#,
            r#", "source": 18446744073709551616"#,
            r#", "last_health_check": 18446744073709551616"#,
        ] {
            invalid_reason(&with(extra));
        }
        // An unknown member of any size is ignored.
        let ignored = entry_of(&with(&format!(r#", "zz": {}"#, "9".repeat(400))));
        assert_eq!(ignored.access_count.value, 0);
    }

    #[test]
    fn lone_surrogates_read_as_the_replacement_character() {
        let ring = ring();
        let line = format!(
            r#"{{"key": "k", {}, "last_health_error": "x\udc00y", "\ud800": 1}}"#,
            BASE.replace(r#""source": "s""#, r#""source": "\ud800""#)
        );
        let parsed = entry_of(&line);
        assert_eq!(parsed.source, "\u{fffd}");
        assert_eq!(parsed.surrogates, ["source", "last_health_error", "(a member name)"]);
        let e = decode_line(line.as_bytes(), &ring).unwrap();
        assert_eq!(
            (e.source.as_str(), e.last_health_error.as_deref()),
            ("\u{fffd}", Some("x\u{fffd}y"))
        );
        // A pair is a character, as always; the key itself may hold one.
        let pair = entry_of(&with(r#", "last_health_error": "\ud83d\ude00""#));
        assert!(pair.surrogates.is_empty());
        let key = entry_of(
            r#"{"key": "a\udbff", "proxy_url": "u", "source": "s", "fetch_time": 0, "last_accessed": "2100-01-01T00:00:00+00:00", "ttl_seconds": 1, "expires_at": 1}"#,
        );
        assert_eq!(
            (key.key.as_ref(), key.surrogates.as_slice()),
            ("a\u{fffd}", ["key".to_owned()].as_slice())
        );
        // A line that is not JSON for other reasons stays so.
        assert!(matches!(classify(br#"{"key": "\ud800", "#), Classified::Undecodable));
        // Broken otherwise: an unreadable entry of its key, no longer a line without a key.
        let reason = invalid_reason(&with(r#", "last_health_error": "\ud800", "failure_count": -1"#));
        assert!(reason.contains("-1"), "{reason}");
    }

    #[test]
    fn stored_hex_reads_as_bytes_fromhex() {
        // Python 3.11: bytes.fromhex skips ASCII whitespace before each byte and at the end.
        for (hex, want) in [
            ("ab cd", Some(&b"\xab\xcd"[..])),
            (" abcd", Some(b"\xab\xcd")),
            ("abcd ", Some(b"\xab\xcd")),
            ("ab\tcd", Some(b"\xab\xcd")),
            ("ab\ncd\n", Some(b"\xab\xcd")),
            ("ab\x0bcd", Some(b"\xab\xcd")),
            ("ab\x0ccd", Some(b"\xab\xcd")),
            ("ab\rcd", Some(b"\xab\xcd")),
            ("ab  \n cd", Some(b"\xab\xcd")),
            ("AB Cd", Some(b"\xab\xcd")),
            ("", Some(b"")),
            (" \n", Some(b"")),
            ("a bcd", None),
            ("ab c", None),
            ("a", None),
            ("ab\x1ccd", None),
            ("ab\x1fcd", None),
            ("ab\x00cd", None),
            ("ab\u{a0}cd", None),
            ("ab\u{3000}cd", None),
            ("ab\u{85}cd", None),
            ("zz", None),
        ] {
            assert_eq!(stored_hex_decode(hex).as_deref(), want, "{hex:?}");
        }
        // The strict reading stays strict.
        assert!(hex_decode("ab cd").is_none());

        let ring = ring();
        let e = entry().with_credentials(None, Some(Secret::new("pw")));
        let line = encode_line(&e, &ring).unwrap();
        let hex = line.rsplit('"').nth(1).unwrap().to_owned();
        let spaced: String = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        for stored in [spaced, format!("{hex}\n"), format!("\t{}", hex.to_uppercase())] {
            let odd = line.replace(&hex, &stored.replace('\n', "\\n").replace('\t', "\\t"));
            assert_eq!(decode_line(odd.as_bytes(), &ring).unwrap(), e, "{stored:?}");
            assert!(credentials_open(odd.as_bytes(), "fe229370330820fe", &ring));
            assert_eq!(stored_tokens(odd.as_bytes()), [hex_decode(&hex).unwrap()]);
        }
        // Only whitespace: bytes.fromhex gives b"", which proxywhirl's encryptor reads as "".
        let blank = line.replace(&hex, " ");
        assert_eq!(
            decode_line(blank.as_bytes(), &ring)
                .unwrap()
                .password
                .unwrap()
                .expose_secret(),
            ""
        );
        assert!(stored_tokens(blank.as_bytes()).is_empty());
    }

    #[test]
    fn plaintext_credentials_read_with_the_references_precedence() {
        let ring = ring();
        let token = hex_encode(ring.encrypt(&Secret::new("bob")).as_bytes());
        let user = |extra: &str| {
            decode_line(with(extra).as_bytes(), &ring).map(|e| e.username.map(|s| s.expose_secret().to_owned()))
        };
        for (extra, want) in [
            (r#", "username": "alice""#.to_owned(), Some("alice")),
            (r#", "username": """#.to_owned(), Some("")),
            (r#", "username": null"#.to_owned(), None),
            (String::new(), None),
            (
                format!(r#", "username": "alice", "username_encrypted": "{token}""#),
                Some("bob"),
            ),
            (
                format!(r#", "username_encrypted": "{token}", "username": 5"#),
                Some("bob"),
            ),
        ] {
            assert_eq!(user(&extra).unwrap().as_deref(), want, "{extra}");
        }
        // An encrypted member Python finds false leaves the plaintext one.
        for falsy in ["\"\"", "null", "false", "0", "0.0", "[]", "{}"] {
            let extra = format!(r#", "username_encrypted": {falsy}, "username": "alice""#);
            assert_eq!(user(&extra).unwrap().as_deref(), Some("alice"), "{falsy}");
        }
        // The password too.
        let e = decode_line(with(r#", "password": "hunter2""#).as_bytes(), &ring).unwrap();
        assert_eq!(e.password.unwrap().expose_secret(), "hunter2");
        // Refused where the reference fails: a plaintext credential that is not a string, a
        // true encrypted member that is not a string.
        for extra in [
            r#", "username": 5"#,
            r#", "password": true"#,
            r#", "username": ["alice"]"#,
            r#", "username_encrypted": "", "username": {}"#,
            r#", "username_encrypted": true"#,
            r#", "password_encrypted": 5"#,
            r#", "username_encrypted": [1]"#,
        ] {
            invalid_reason(&with(extra));
            assert!(
                decode_line(with(extra).as_bytes(), &ring)
                    .unwrap_err()
                    .is_corrupt_entry(),
                "{extra}"
            );
        }
        // We never write one: a put of the entry encrypts it.
        let e = decode_line(with(r#", "username": "alice""#).as_bytes(), &ring).unwrap();
        let written = encode_line(&e, &ring).unwrap();
        assert!(
            !written.contains("alice") && !written.contains(r#""username":"#),
            "{written}"
        );
        assert!(written.contains(r#""username_encrypted": ""#));
        assert_eq!(decode_line(written.as_bytes(), &ring).unwrap(), e);
    }

    #[test]
    fn nan_and_infinity_make_an_unreadable_entry_of_the_key() {
        for value in ["NaN", "Infinity", "-Infinity", "1e400", "-1E+999"] {
            let reason = invalid_reason(&with(&format!(r#", "access_count": {value}"#)));
            assert!(
                reason.contains("access_count") && reason.contains("NaN"),
                "{value}: {reason}"
            );
        }
        // Every member of an entry refuses them (pydantic does), and says so.
        for member in ENTRY_MEMBERS {
            let line = format!(r#"{{"key": "k", {BASE}, "{member}": NaN}}"#);
            if member == "key" {
                // The last "key" wins, as in json.loads: no string key, no entry.
                assert!(matches!(classify(line.as_bytes()), Classified::NonEntry));
                continue;
            }
            let reason = invalid_reason(&line);
            assert!(reason.starts_with(member), "{member}: {reason}");
        }
        // In a member the entry does not have, they are ignored, as pydantic ignores it.
        let ignored = entry_of(&with(
            r#", "created_at": NaN, "meta": {"a": [Infinity, -Infinity, 1e400]}"#,
        ));
        assert_eq!(ignored.key, "k");
        // The key itself cannot be NaN (no string key: no entry), and the line stays what it was.
        assert!(matches!(classify(br#"{"key": NaN}"#), Classified::NonEntry));
        assert!(matches!(classify(b"NaN"), Classified::NonEntry));
        assert!(matches!(classify(br#"{"key": "k", "a": NaN"#), Classified::Undecodable));
        let err = decode_line(with(r#", "ttl_seconds": NaN"#).as_bytes(), &ring()).unwrap_err();
        assert!(
            matches!(&err, TierError::Corrupt { key, reason } if key == "k" && reason.contains("NaN")),
            "{err}"
        );
    }
}
