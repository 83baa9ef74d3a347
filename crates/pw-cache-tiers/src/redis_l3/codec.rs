//! An entry as its Redis hash holds it: the Redis side of the entry codec
//! (`crate::entry_codec`): the fields written for a [`CacheEntry`] ([`entry_fields`], through
//! [`HashArgs`]), their typed reads back ([`Fields`]), and the limits of their lengths
//! ([`FIELD_LIMITS`], [`HASH_BUDGET_BYTES`]).

use std::collections::HashMap;
use std::fmt;

use pw_cache_crypto::{KeyRing, Token};
use pw_cache_model::timestamp::{from_unix_seconds, to_unix_seconds};
use pw_cache_model::{CacheEntry, HealthDetail, HealthStatus, OffsetDateTime};
use pw_cache_model::{fields, limits};

use crate::entry_codec::{
    CREATED_AT, Field, FieldSink, FieldSource, UPDATED_AT, decode_entry, decode_health_detail, encode_entry,
};
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
    (fields::KEY, limits::MAX_KEY_BYTES),
    (fields::PROXY_URL, limits::MAX_PROXY_URL_BYTES),
    (fields::USERNAME_ENCRYPTED, limits::MAX_CREDENTIAL_TOKEN_BYTES),
    (fields::PASSWORD_ENCRYPTED, limits::MAX_CREDENTIAL_TOKEN_BYTES),
    (fields::SOURCE, limits::MAX_SOURCE_BYTES),
    (fields::FETCH_TIME, SHORT_FIELD_MAX_BYTES),
    (fields::LAST_ACCESSED, SHORT_FIELD_MAX_BYTES),
    (fields::ACCESS_COUNT, SHORT_FIELD_MAX_BYTES),
    (fields::TTL_SECONDS, SHORT_FIELD_MAX_BYTES),
    (fields::EXPIRES_AT, SHORT_FIELD_MAX_BYTES),
    (fields::HEALTH_STATUS, SHORT_FIELD_MAX_BYTES),
    (fields::FAILURE_COUNT, SHORT_FIELD_MAX_BYTES),
    (fields::LAST_HEALTH_CHECK, SHORT_FIELD_MAX_BYTES),
    (fields::CONSECUTIVE_HEALTH_FAILURES, SHORT_FIELD_MAX_BYTES),
    (fields::CONSECUTIVE_HEALTH_SUCCESSES, SHORT_FIELD_MAX_BYTES),
    (fields::RECOVERY_ATTEMPT, SHORT_FIELD_MAX_BYTES),
    (fields::NEXT_CHECK_TIME, SHORT_FIELD_MAX_BYTES),
    (fields::LAST_HEALTH_ERROR, limits::MAX_LAST_HEALTH_ERROR_BYTES),
    (fields::TOTAL_HEALTH_CHECKS, SHORT_FIELD_MAX_BYTES),
    (fields::TOTAL_HEALTH_CHECK_FAILURES, SHORT_FIELD_MAX_BYTES),
    (fields::EVICTED_FROM_L1, SHORT_FIELD_MAX_BYTES),
    (CREATED_AT, SHORT_FIELD_MAX_BYTES),
    (UPDATED_AT, SHORT_FIELD_MAX_BYTES),
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

/// The fields of `entry`'s hash (all but `created_at` and `updated_at`), credentials encrypted
/// with the ring's current key ([`encode_entry`] into [`HashArgs`]). An entry with a field longer
/// than its limit (`pw_cache_model::limits`) is refused: [`TierError::InvalidEntry`], naming the
/// field.
pub(super) fn entry_fields(entry: &CacheEntry, ring: &KeyRing) -> Result<Vec<(&'static str, String)>, TierError> {
    let mut args = HashArgs(Vec::with_capacity(21));
    encode_entry(entry, ring, &mut args)?;
    let out = args.0;
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

/// The fields of an entry's hash as a put sends them, in order: every value as text (times in
/// Rust's shortest round-trip form, counts and the flag as integers, tokens as their text), an
/// absent optional value as an absent field.
pub(super) struct HashArgs(Vec<(&'static str, String)>);

impl<'a> FieldSink<'a> for HashArgs {
    // The SQLite L3's bound: the same entries are storable in both.
    const INTEGER: &'static str = "a 64-bit signed integer";

    /// A text field longer than its limit.
    fn accept(&mut self, entry: &CacheEntry) -> Result<(), TierError> {
        match limits::first_oversized(entry) {
            Some(over) => Err(TierError::InvalidEntry {
                key: TierError::shown_key(&entry.key),
                reason: over.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn text(&mut self, field: Field, value: &'a str) {
        self.0.push((field.name(), value.to_owned()));
    }

    fn optional_text(&mut self, field: Field, value: Option<&'a str>) {
        if let Some(text) = value {
            self.text(field, text);
        }
    }

    fn time(&mut self, field: Field, value: OffsetDateTime) {
        self.0.push((field.name(), real(to_unix_seconds(value))));
    }

    fn optional_time(&mut self, field: Field, value: Option<OffsetDateTime>) {
        if let Some(time) = value {
            self.time(field, time);
        }
    }

    fn count(&mut self, field: Field, value: i64) {
        self.0.push((field.name(), value.to_string()));
    }

    fn flag(&mut self, field: Field, value: bool) {
        self.0.push((field.name(), if value { "1" } else { "0" }.to_owned()));
    }

    fn status(&mut self, field: Field, value: HealthStatus) {
        self.0.push((field.name(), value.as_str().to_owned()));
    }

    fn token(&mut self, field: Field, token: Option<Token>) {
        if let Some(token) = token {
            self.0.push((field.name(), token.as_str().to_owned()));
        }
    }
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
        let stored = FieldSource::text(self, Field::Key)?;
        if stored == self.key {
            Ok(())
        } else {
            Err(self.corrupt(
                fields::KEY,
                format_args!(
                    "holds {:?}, not the key it is stored under",
                    TierError::shown_key(&stored)
                ),
            ))
        }
    }

    fn corrupt(&self, field: &str, what: impl fmt::Display) -> TierError {
        TierError::Corrupt {
            key: self.key.to_owned(),
            reason: format!("field {field}: {what}"),
        }
    }

    /// The text of the field `name`, if the hash has it (any field, such as `updated_at`).
    pub(super) fn text_of(&self, name: &str) -> Result<Option<String>, TierError> {
        self.map
            .get(name)
            .map(|bytes| {
                std::str::from_utf8(bytes)
                    .map(str::to_owned)
                    .map_err(|_| self.corrupt(name, "not UTF-8"))
            })
            .transpose()
    }

    /// The bytes of the credential token in the field `name`; absent or empty is no credential.
    pub(super) fn token_of(&self, name: &str) -> Option<&'a [u8]> {
        self.map.get(name).copied().filter(|bytes| !bytes.is_empty())
    }

    /// The entry, once its `key` field is checked ([`Fields::check_key`]), its credentials
    /// decrypted with any key of `ring`.
    pub(super) fn entry(&self, ring: &KeyRing) -> Result<CacheEntry, TierError> {
        self.check_key()?;
        decode_entry(self, true)?.open(ring)
    }

    /// The eight health-check detail fields.
    pub(super) fn health_detail(&self) -> Result<HealthDetail, TierError> {
        decode_health_detail(self)
    }
}

/// Each field as this tier writes it: text; a time as a number of seconds; a count as a
/// non-negative integer; the flag as an integer (non-zero is true; absent is false, as the
/// SQLite tiers read NULL). An optional value is an absent field.
impl FieldSource for Fields<'_> {
    fn text(&self, field: Field) -> Result<String, TierError> {
        self.optional_text(field)?
            .ok_or_else(|| self.corrupt(field.name(), "missing"))
    }

    fn optional_text(&self, field: Field) -> Result<Option<String>, TierError> {
        self.text_of(field.name())
    }

    fn time(&self, field: Field) -> Result<OffsetDateTime, TierError> {
        self.optional_time(field)?
            .ok_or_else(|| self.corrupt(field.name(), "missing"))
    }

    fn optional_time(&self, field: Field) -> Result<Option<OffsetDateTime>, TierError> {
        let Some(text) = self.optional_text(field)? else {
            return Ok(None);
        };
        let seconds: f64 = text
            .parse()
            .map_err(|_| self.corrupt(field.name(), format_args!("{text:?} is not a number")))?;
        from_unix_seconds(seconds)
            .map(Some)
            .map_err(|e| self.corrupt(field.name(), e))
    }

    fn count(&self, field: Field) -> Result<u64, TierError> {
        let text = self.text(field)?;
        text.parse()
            .map_err(|_| self.corrupt(field.name(), format_args!("{text:?} is not a non-negative integer")))
    }

    fn flag(&self, field: Field) -> Result<bool, TierError> {
        match self.optional_text(field)? {
            None => Ok(false),
            Some(text) => text
                .parse::<i64>()
                .map(|n| n != 0)
                .map_err(|_| self.corrupt(field.name(), format_args!("{text:?} is not an integer"))),
        }
    }

    fn status(&self, field: Field) -> Result<HealthStatus, TierError> {
        self.text(field)?.parse().map_err(|e| self.corrupt(field.name(), e))
    }

    fn token(&self, field: Field) -> Result<Option<Vec<u8>>, TierError> {
        Ok(self.token_of(field.name()).map(<[u8]>::to_vec))
    }
}
