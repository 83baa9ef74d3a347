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
//! - **Unix seconds** ([`to_unix_seconds`], [`from_unix_seconds`]) are the SQLite tiers' REAL
//!   columns, converted exactly as CPython 3.11 does: `datetime.timestamp()` one way (the
//!   microseconds since the epoch divided by 10⁶, correctly rounded), and
//!   `datetime.fromtimestamp(x, tz=timezone.utc)` the other (the fraction scaled to microseconds
//!   and rounded half to even). So a value Python wrote reads back to the same microsecond
//!   Python reads, and what we write Python reads back as we meant it.

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
///
/// Called on every cache operation, so the calendar conversion (16 ns of the 56 ns this took
/// with `OffsetDateTime::now_utc`) is done once per second per thread: the date and time of
/// the current second are kept, and only the microseconds change within it.
pub fn now_utc() -> OffsetDateTime {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        /// The last whole second converted, in Unix seconds, and its date and time.
        static SECOND: Cell<(u64, OffsetDateTime)> = const { Cell::new(NO_SECOND) };
    }
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => SECOND
            .try_with(|second| utc_at(since_epoch, second))
            // A thread past its thread-locals' destruction converts without the cache.
            .unwrap_or_else(|_| utc_at(since_epoch, &Cell::new(NO_SECOND))),
        // A clock set before 1970: the plain conversion.
        Err(_) => truncate_to_micros(OffsetDateTime::now_utc()),
    }
}

/// What [`utc_at`]'s cache holds before its first conversion: no second matches it.
const NO_SECOND: (u64, OffsetDateTime) = (u64::MAX, OffsetDateTime::UNIX_EPOCH);

/// The UTC date-time `since_epoch` after the Unix epoch, truncated to the microsecond;
/// `second` holds the last whole second converted (updated when the second changes).
fn utc_at(since_epoch: std::time::Duration, second: &std::cell::Cell<(u64, OffsetDateTime)>) -> OffsetDateTime {
    let secs = since_epoch.as_secs();
    let (cached_secs, cached) = second.get();
    let base = if cached_secs == secs {
        cached
    } else {
        // Out of `time`'s range (beyond the year 9999) only for a clock set wildly wrong:
        // then `OffsetDateTime::now_utc`'s own conversion, as this function always did.
        let Some(base) = i64::try_from(secs)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        else {
            return truncate_to_micros(OffsetDateTime::now_utc());
        };
        second.set((secs, base));
        base
    };
    // Below 10^6: always a valid microsecond.
    base.replace_microsecond(since_epoch.subsec_micros()).unwrap_or(base)
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
    let mut text = dt.format(description).unwrap_or_else(|_| dt.to_string());
    // Python writes an offset's seconds when they are not zero (`+05:30:15`).
    let seconds = dt.offset().seconds_past_minute();
    if seconds != 0 {
        text.push_str(&format!(":{:02}", seconds.unsigned_abs()));
    }
    text
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

/// Microseconds between 1970-01-01T00:00:00Z and `dt` (negative before), counting only whole
/// microseconds of `dt` (what Python's `datetime` holds).
fn unix_micros(dt: OffsetDateTime) -> i64 {
    // Years -9999..=9999: about 3.2e17 µs at most, far inside an i64.
    dt.unix_timestamp() * 1_000_000 + i64::from(dt.microsecond())
}

/// `dt` as Unix seconds, exactly as Python's `datetime.timestamp()` computes it for an aware
/// datetime: the whole microseconds since the epoch divided by 10⁶, rounded once to the nearest
/// `f64` (ties to even), the way Python divides two integers. Any offset; sub-microsecond digits
/// are dropped first.
pub fn to_unix_seconds(dt: OffsetDateTime) -> f64 {
    let micros = unix_micros(dt);
    // Below 2^53 the integer is exact as an f64 and IEEE division rounds once: Python's result.
    if micros.unsigned_abs() <= 1 << 53 {
        return micros as f64 / 1e6;
    }
    correctly_rounded_micros(micros)
}

/// `micros / 10⁶` rounded once to the nearest f64, ties to even, for |micros| > 2^53 (before
/// 1685 or after 2255), where `micros as f64` already rounds: the quotient of the rounded value
/// is within one ulp of the true one, so the answer is it or a neighbour, chosen by exact
/// integer comparison.
fn correctly_rounded_micros(micros: i64) -> f64 {
    let m = i128::from(micros.unsigned_abs());
    let approx = micros.unsigned_abs() as f64 / 1e6;
    // |c - m/10⁶| scaled by 10⁶ · 2^s, with c = mantissa · 2^-s (s > 0 in this range).
    let error = |c: f64| -> (i128, u32, bool) {
        let bits = c.to_bits();
        let mantissa = i128::from(bits & ((1 << 52) - 1) | 1 << 52);
        let shift = 1075 - ((bits >> 52) & 0x7ff) as u32;
        ((mantissa * 1_000_000 - (m << shift)).abs(), shift, mantissa % 2 == 0)
    };
    let mut best = approx;
    let (mut best_err, mut best_shift, mut best_even) = error(approx);
    for c in [approx.next_down(), approx.next_up()] {
        let (err, shift, even) = error(c);
        // Compare err / 2^shift with best_err / 2^best_shift without dividing.
        let lhs = err << best_shift.saturating_sub(shift);
        let rhs = best_err << shift.saturating_sub(best_shift);
        if lhs < rhs || (lhs == rhs && even && !best_even) {
            (best, best_err, best_shift, best_even) = (c, err, shift, even);
        }
    }
    if micros < 0 { -best } else { best }
}

/// The UTC date-time of Unix seconds `seconds`, exactly as Python's
/// `datetime.fromtimestamp(seconds, tz=timezone.utc)`: the fraction is scaled to microseconds
/// and rounded half to even (`0.9999995` is the next second).
///
/// Errors, as Python raises: NaN or an infinity, or a time outside years 1..=9999.
pub fn from_unix_seconds(seconds: f64) -> Result<OffsetDateTime, TimestampError> {
    let input = || seconds.to_string();
    if !seconds.is_finite() {
        return Err(TimestampError::new(&input(), "not a finite number of seconds"));
    }
    // CPython's _PyTime_DoubleToDenominator: modf, scale, round half even, carry.
    let mut whole = seconds.trunc();
    let mut micros = ((seconds - whole) * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        whole += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        whole -= 1.0;
    }
    // Years 1..=9999 lie within ±2.6e11 s: anything beyond cannot be a date (and the cast
    // below is exact for every value that passes).
    let out_of_range = || TimestampError::new(&input(), "outside years 1..=9999");
    if whole.abs() > 1e12 {
        return Err(out_of_range());
    }
    let dt = OffsetDateTime::from_unix_timestamp(whole as i64)
        .ok()
        .and_then(|dt| dt.replace_microsecond(micros as u32).ok())
        .filter(|dt| (1..=9999).contains(&dt.year()))
        .ok_or_else(out_of_range)?;
    Ok(dt)
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
mod offset_seconds_tests {
    use super::*;

    #[test]
    fn offsets_with_seconds_are_written_as_python_writes_them() {
        // datetime(2099, 4, 16, 10, 0, 0, 250000, timezone(timedelta(hours=5, minutes=30, seconds=15))).isoformat()
        for (text, written) in [
            (
                "2099-04-16T10:00:00.250000+05:30:15",
                "2099-04-16T10:00:00.250000+05:30:15",
            ),
            ("2099-04-16T10:00:00-00:00:01", "2099-04-16T10:00:00-00:00:01"),
            ("2099-04-16T10:00:00+01:02:03", "2099-04-16T10:00:00+01:02:03"),
        ] {
            let parsed = parse_isoformat(text).unwrap();
            assert_eq!(format_isoformat(parsed), written);
            assert_eq!(parse_isoformat(&format_isoformat(parsed)).unwrap(), parsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_cached_second_converts_like_time_does() {
        use std::cell::Cell;
        use std::time::Duration;
        let second = Cell::new(NO_SECOND);
        // Within one second, across seconds, days, a leap day and a year's end, backwards
        // (a clock set back) and forwards again: each against `time`'s own conversion.
        let starts = [
            0_u64,
            1_763_683_199, // 2025-11-20T23:59:59
            1_709_164_799, // 2024-02-28T23:59:59
            1_709_251_199, // 2024-02-29T23:59:59
            1_767_225_599, // 2025-12-31T23:59:59
            1_000_000_000,
            253_402_300_799, // 9999-12-31T23:59:59
        ];
        for start in starts {
            for step_micros in [0_u64, 1, 999_999, 1_000_000, 1_234_567, 86_400_000_000] {
                for k in 0..4 {
                    let micros = start * 1_000_000 + step_micros * k + 999;
                    let since = Duration::from_micros(micros) + Duration::from_nanos(789);
                    let Some(plain) = OffsetDateTime::UNIX_EPOCH.checked_add(time::Duration::try_from(since).unwrap())
                    else {
                        continue; // beyond the year 9999
                    };
                    let want = truncate_to_micros(plain);
                    assert_eq!(utc_at(since, &second), want, "{since:?}");
                }
            }
        }
        let now = now_utc();
        assert_eq!(now.offset(), UtcOffset::UTC);
        assert_eq!(now.nanosecond() % 1_000, 0);
        let plain = OffsetDateTime::now_utc();
        assert!(
            (plain - now).abs() < time::Duration::seconds(5),
            "{now} against {plain}"
        );
    }

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

    /// Python 3.11: `datetime(...).timestamp()` of each value, as `float.hex()`.
    #[test]
    fn unix_seconds_are_pythons_timestamp() {
        for (dt, python) in [
            (datetime!(2026-11-20 23:00:00.123456 UTC), "0x1.ac0343c07e6b4p+30"),
            (datetime!(2099-11-12 08:01:02.091362 UTC), "0x1.e889b97c2ec70p+31"),
            (datetime!(0001-01-01 00:00:00 UTC), "-0x1.cef23ee000000p+35"),
            (datetime!(9999-12-31 23:59:59.999999 UTC), "0x1.d7ffa20c00000p+37"),
            (datetime!(1969-12-31 23:59:59.5 UTC), "-0x1.0000000000000p-1"),
            (datetime!(2300-01-01 00:00:00.000001 UTC), "0x1.365aed8000001p+33"),
            (datetime!(5000-06-15 12:34:56.789013 UTC), "0x1.6441ac3f0c9fdp+36"),
            (datetime!(1600-03-01 01:02:03.999999 UTC), "-0x1.5bd1f6ba00001p+33"),
            (datetime!(2255-06-05 23:47:34.740993 UTC), "0x1.0c6f7a0b5ed8ep+33"),
            (datetime!(2255-06-05 23:47:34.740995 UTC), "0x1.0c6f7a0b5ed8fp+33"),
            // The offset does not change the instant.
            (datetime!(2026-11-21 04:30:00.123456 +05:30), "0x1.ac0343c07e6b4p+30"),
        ] {
            assert_eq!(to_unix_seconds(dt), parse_hex_float(python), "{dt}");
        }
    }

    /// Python 3.11: `datetime.fromtimestamp(x, tz=timezone.utc).isoformat()`.
    #[test]
    fn from_unix_seconds_is_pythons_fromtimestamp() {
        for (x, python) in [
            ("0x1.0c6f7a0b5ed8dp-21", "1970-01-01T00:00:00+00:00"),
            ("0x1.92a737110e454p-20", "1970-01-01T00:00:00.000002+00:00"),
            ("0x1.000008637bd06p+0", "1970-01-01T00:00:01.000001+00:00"),
            ("-0x1.0c6f7a0b5ed8dp-21", "1970-01-01T00:00:00+00:00"),
            ("0x1.98c567351faa8p+30", "2024-04-30T20:51:25.280924+00:00"),
            ("0x1.e889b97c2ec70p+31", "2099-11-12T08:01:02.091362+00:00"),
            ("0x1.954fc40000000p+30", "2023-11-14T22:13:20+00:00"),
            ("0x1.ffffef39085f5p-1", "1970-01-01T00:00:01+00:00"),
            ("0x1.ffffef8eee9adp-1", "1970-01-01T00:00:01+00:00"),
            ("-0x1.421f5f40d8376p-23", "1970-01-01T00:00:00+00:00"),
            ("0x1.ad7f29abcaf48p-24", "1970-01-01T00:00:00+00:00"),
            ("0x1.e8951add69722p+31", "2099-11-16T15:36:14.705949+00:00"),
            ("0x1.ac0349d520419p+30", "2026-11-20T23:06:29.281500+00:00"),
            ("-0x1.cef23ee000000p+35", "0001-01-01T00:00:00+00:00"),
            ("-0x1.0000000000000p-1", "1969-12-31T23:59:59.500000+00:00"),
        ] {
            let dt = from_unix_seconds(parse_hex_float(x)).unwrap();
            assert_eq!(format_isoformat(dt), python, "{x}");
            assert_eq!(dt.offset(), UtcOffset::UTC);
        }
    }

    #[test]
    fn from_unix_seconds_rejects_what_python_rejects() {
        for x in [
            253_402_300_800.0, // year 10000
            -62_135_596_801.0, // year 0
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e20,
            -1e300,
        ] {
            let err = from_unix_seconds(x).unwrap_err();
            assert!(err.to_string().contains("invalid timestamp"), "{x}: {err}");
        }
    }

    #[test]
    fn unix_seconds_round_trip_to_the_microsecond() {
        // Within ±2^33 s of the epoch (years 1697..2242) an f64 resolves better than half a
        // microsecond, so every microsecond-precise time comes back unchanged, in Python as here;
        // a spread of values is checked.
        let limit: i64 = (1 << 33) * 1_000_000;
        let mut micros = -limit + 1;
        while micros < limit {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
            assert_eq!(from_unix_seconds(to_unix_seconds(dt)).unwrap(), dt, "{micros}");
            micros += 7_777_777_777_777;
        }
    }

    /// Reads Python's `float.hex()` text.
    fn parse_hex_float(text: &str) -> f64 {
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1.0, rest),
            None => (1.0, text),
        };
        let rest = rest.strip_prefix("0x1.").unwrap();
        let (mantissa, exponent) = rest.split_once('p').unwrap();
        let fraction = u64::from_str_radix(mantissa, 16).unwrap();
        let bits = (((exponent.parse::<i64>().unwrap() + 1023) as u64) << 52) | fraction;
        sign * f64::from_bits(bits)
    }
}
