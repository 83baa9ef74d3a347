//! Timestamps as the reference writes them: Python's `datetime.isoformat()`.
//!
//! This module is the one place that turns a [`OffsetDateTime`] into text and back.
//!
//! - **Precision** is the microsecond, as Python's `datetime`: [`now_utc`] and every parse
//!   truncate to it, so a value written and read back compares equal.
//! - **Formatting** ([`format_isoformat`]) is byte-identical to `isoformat()`:
//!   `2026-11-20T23:00:00.123456+00:00`, the fraction left out when it is zero, the entry's own
//!   offset kept (`-05:00` stays `-05:00`).
//! - **Parsing** ([`parse_isoformat`]) accepts what Python 3.11's `fromisoformat` accepts in
//!   practice: `T`, `t` or a space between date and time; seconds optional; 1 to 9 fraction
//!   digits (truncated to microseconds); `Z`/`z`, `±HH:MM`, `±HHMM`, `±HH` or `±HH:MM:SS`
//!   offsets. A **naive** timestamp (no offset) is read as UTC: proxywhirl only ever writes
//!   UTC, and its SQLite tiers read back UTC, so UTC is the only reading that matches what the
//!   writer meant (proxywhirl itself crashes comparing a naive value against an aware one).

use std::fmt;

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A timestamp string that is not a Python isoformat date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: {reason}")]
pub struct TimestampError {
    /// The offending text (cut to 64 characters).
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

impl TimestampError {
    fn new(input: &str, reason: impl fmt::Display) -> Self {
        Self {
            input: input.chars().take(64).collect(),
            reason: reason.to_string(),
        }
    }
}

const WITH_FRACTION: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
);
const WITHOUT_FRACTION: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]");
/// Date, separator, time; seconds and fraction optional.
const LOCAL_PART: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
);
/// An offset without the `Z` form: `+05:00`, `+0500`, `+05`, `+05:00:00`.
const OFFSET_PART: &[BorrowedFormatItem<'static>] = format_description!(
    "[offset_hour sign:mandatory][optional [[optional [:]][offset_minute][optional [[optional [:]][offset_second]]]]]"
);

/// Drops everything below the microsecond.
pub fn truncate_to_micros(dt: OffsetDateTime) -> OffsetDateTime {
    let micros = dt.microsecond();
    dt.replace_microsecond(micros).unwrap_or(dt)
}

/// The current time in UTC, at microsecond precision.
pub fn now_utc() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

/// Formats exactly as Python's `datetime.isoformat()` does for an aware datetime, keeping the
/// value's own offset. Sub-microsecond digits are truncated.
pub fn format_isoformat(dt: OffsetDateTime) -> String {
    let dt = truncate_to_micros(dt);
    let description = if dt.microsecond() == 0 {
        WITHOUT_FRACTION
    } else {
        WITH_FRACTION
    };
    // Formatting with a fixed description only fails for years outside 0..=9999, which
    // `time` cannot represent without its `large-dates` feature: unreachable here.
    dt.format(description).unwrap_or_else(|_| dt.to_string())
}

/// Parses an isoformat timestamp (see the module docs for what is accepted).
pub fn parse_isoformat(input: &str) -> Result<OffsetDateTime, TimestampError> {
    let text = input.trim();
    // The date-time part ends at the first sign or `Z` after the time began (index 10 is the
    // separator; the date's own '-' come before it).
    let split = text
        .char_indices()
        .skip(11)
        .find(|&(_, c)| matches!(c, '+' | '-' | 'Z' | 'z'))
        .map(|(i, _)| i);
    let (local, offset) = match split {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let local = PrimitiveDateTime::parse(local, LOCAL_PART).map_err(|e| TimestampError::new(input, e))?;
    let offset = match offset {
        "" | "Z" | "z" => UtcOffset::UTC,
        other => UtcOffset::parse(other, OFFSET_PART).map_err(|e| TimestampError::new(input, e))?,
    };
    // Python's tzinfo offsets are strictly within a day; `time` allows up to 25:59:59.
    if offset.whole_hours().abs() >= 24 {
        return Err(TimestampError::new(
            input,
            "UTC offset must be strictly between -24:00 and +24:00",
        ));
    }
    Ok(truncate_to_micros(local.assume_offset(offset)))
}

/// Serde helpers for a required timestamp field in isoformat.
pub mod isoformat {
    use super::*;

    /// Writes [`format_isoformat`].
    pub fn serialize<S: Serializer>(value: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_isoformat(*value))
    }

    /// Reads [`parse_isoformat`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        parse_isoformat(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for an optional timestamp field in isoformat (`null` when absent).
pub mod isoformat_option {
    use super::*;

    /// Writes [`format_isoformat`] or `null`.
    pub fn serialize<S: Serializer>(value: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(dt) => serializer.serialize_str(&format_isoformat(*dt)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads [`parse_isoformat`] or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
        let text = Option::<std::borrow::Cow<'_, str>>::deserialize(deserializer)?;
        text.map(|t| parse_isoformat(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_python() {
        // Right-hand sides are what CPython 3.11's isoformat() prints for the same values.
        for (dt, python) in [
            (
                datetime!(2026-11-20 23:00:00.123456 UTC),
                "2026-11-20T23:00:00.123456+00:00",
            ),
            (datetime!(2026-11-20 23:00:00 UTC), "2026-11-20T23:00:00+00:00"),
            (
                datetime!(2026-11-20 23:00:00.000001 UTC),
                "2026-11-20T23:00:00.000001+00:00",
            ),
            (
                datetime!(2026-11-20 23:00:00.1234569 UTC),
                "2026-11-20T23:00:00.123456+00:00",
            ),
            (datetime!(0001-01-01 00:00:00 -05:30), "0001-01-01T00:00:00-05:30"),
        ] {
            assert_eq!(format_isoformat(dt), python);
        }
    }

    #[test]
    fn parses_variants() {
        let want = datetime!(2026-11-20 23:00:00.123456 UTC);
        for text in [
            "2026-11-20T23:00:00.123456+00:00",
            "2026-11-20T23:00:00.123456Z",
            "2026-11-20t23:00:00.123456z",
            "2026-11-20 23:00:00.123456+00:00",
            "2026-11-20T23:00:00.1234567+00:00",
            "2026-11-20T23:00:00.123456789+0000",
            "2026-11-20T23:00:00.123456",
            "2026-11-20T18:00:00.123456-05:00",
            "2026-11-20T18:00:00.123456-05",
            "2026-11-21T04:30:00.123456+05:30:00",
        ] {
            assert_eq!(parse_isoformat(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            parse_isoformat("2026-11-20T23:00+00:00").unwrap(),
            datetime!(2026-11-20 23:00 UTC)
        );
        assert_eq!(
            parse_isoformat("2026-11-20T23:00:00.5").unwrap(),
            datetime!(2026-11-20 23:00:00.5 UTC)
        );
    }

    #[test]
    fn keeps_the_offset() {
        let dt = parse_isoformat("2099-01-02T03:04:05.000006-05:00").unwrap();
        assert_eq!(dt.offset(), UtcOffset::from_hms(-5, 0, 0).unwrap());
        assert_eq!(format_isoformat(dt), "2099-01-02T03:04:05.000006-05:00");
    }

    #[test]
    fn rejects_garbage_with_a_typed_error() {
        for text in [
            "",
            "x",
            "2026-13-01T00:00:00",
            "2026-11-20T25:00:00",
            "2026-11-20T23:00:00+25:00",
            "2026-11-20",
            "2026-11-20T23:00:00 trailing",
        ] {
            let err = parse_isoformat(text).unwrap_err();
            assert!(err.to_string().contains("invalid timestamp"), "{text}: {err}");
        }
    }

    #[test]
    fn now_is_microsecond_precise() {
        assert_eq!(now_utc().nanosecond() % 1000, 0);
    }
}
