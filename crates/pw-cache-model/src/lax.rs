//! Lax readers: JSON values read as proxywhirl reads them.
//!
//! proxywhirl 0.3.3 reads a stored entry with `json.loads`, turns string timestamps into
//! datetimes with Python 3.11's `datetime.fromisoformat`, then builds `CacheEntry(**data)` with
//! pydantic v2 in lax mode (Python input). Pydantic's lax mode takes more than the JSON types
//! our model writes: `"5"` and `5.0` for an integer, `"yes"` and `1` for a boolean, a number of
//! Unix seconds for a date-time. A file another writer made that way is one proxywhirl reads,
//! so a reader of the same file must read it too. These are those rules, as serde types and
//! functions, for every reader of proxywhirl's files (the JSONL shard line, warm files):
//!
//! - [`LaxInt`]: an integer as pydantic reads an `int` field;
//! - [`Count`] and [`LooseCount`]: our `u64` counts read from it, with what was out of range
//!   (see below);
//! - [`LaxBool`]: a boolean as pydantic reads a `bool` field;
//! - [`timestamp`] and [`timestamp_option`]: a date-time as proxywhirl reads one (a string
//!   through [`parse_isoformat`], a number as pydantic reads Unix time).
//!
//! Everything pydantic refuses is refused here too (a serde error), so that what proxywhirl
//! cannot read stays unreadable.
//!
//! # Values out of our range
//!
//! Python's integers have no bound, ours are `u64`. The reference bounds most counts with
//! `Field(ge=0)`: for those ([`Count`]) a negative value is an error, as in pydantic, and a value
//! above `u64::MAX` reads as `u64::MAX`. `access_count` has no bound in the reference, so `-1`
//! is a value proxywhirl reads: [`LooseCount`] reads a negative value as 0. Either way the type
//! keeps the stored value ([`Count::out_of_range`]): this crate does no I/O and has no logger,
//! so reporting it (naming the entry and the field) is the caller's job.
//!
//! The rules were checked against pydantic 2.14.4 (pydantic-core 2.50.5), the version in
//! proxywhirl 0.3.3's environment.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
use time::OffsetDateTime;

use crate::timestamp::{TimestampError, parse_isoformat};

/// 2^63 as an `f64`: pydantic takes a float as an integer only strictly inside ±2^63.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// An integer as pydantic v2's lax mode reads an `int` field from what `json.loads` made:
///
/// - an integer, as it is;
/// - `true` / `false` as 1 / 0;
/// - a float with no fractional part strictly between -2^63 and 2^63 (`5.0`, `1e3`);
/// - a string: surrounding whitespace (Unicode `White_Space`) ignored, an optional sign, ASCII
///   digits with single `_` between digits (`1_000`), optionally followed by `.` and one or more
///   zeros (`5.000`). Not `5.`, `.5`, `1e3`, `0x10`, `5.5`.
///
/// Python's integers have no bound: the value saturates at `i128::MIN` / `i128::MAX`, which is
/// outside every range a caller checks.
///
/// A JSON integer literal beyond `u64::MAX` is one limit: serde_json hands it over as a float,
/// and a float that large is refused (as pydantic refuses the float; it would take the integer).
/// A reader that holds the JSON text hands such a literal over as a string of the same digits,
/// which reads as Python's `int` does (the JSONL tier does so, `pw-cache-tiers`' `jsonl::line`);
/// the float itself stays refused, since a float literal that large (`2e19`) is one pydantic
/// refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaxInt(pub i128);

impl LaxInt {
    /// Reads a string as pydantic does (see [`LaxInt`]); `None` when pydantic refuses it.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let digits = match rest.split_once('.') {
            Some((digits, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => digits,
            Some(_) => return None,
            None => rest,
        };
        let bytes = digits.as_bytes();
        if !bytes.first().is_some_and(u8::is_ascii_digit) || !bytes.last().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut value: i128 = 0;
        let mut after_underscore = false;
        for &b in bytes {
            match b {
                b'0'..=b'9' => {
                    value = value.saturating_mul(10).saturating_add(i128::from(b - b'0'));
                    after_underscore = false;
                }
                b'_' if !after_underscore => after_underscore = true,
                _ => return None,
            }
        }
        Some(Self(if negative { -value } else { value }))
    }

    /// Reads a float as pydantic does: integral and strictly inside ±2^63; `None` otherwise.
    pub fn from_f64(value: f64) -> Option<Self> {
        // NaN and the infinities fail the range test.
        if value > -TWO_POW_63 && value < TWO_POW_63 && value.fract() == 0.0 {
            // Exact: an integral float inside ±2^63 is an i64.
            Some(Self(value as i128))
        } else {
            None
        }
    }
}

impl<'de> Deserialize<'de> for LaxInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LaxIntVisitor)
    }
}

struct LaxIntVisitor;

impl Visitor<'_> for LaxIntVisitor {
    type Value = LaxInt;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer (or a boolean, an integral float, a string of an integer)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<LaxInt, E> {
        Ok(LaxInt(i128::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LaxInt, E> {
        Ok(LaxInt(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LaxInt, E> {
        Ok(LaxInt(i128::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<LaxInt, E> {
        Ok(LaxInt(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<LaxInt, E> {
        Ok(LaxInt(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<LaxInt, E> {
        LaxInt::from_f64(v).ok_or_else(|| E::invalid_value(Unexpected::Float(v), &"an integral number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LaxInt, E> {
        LaxInt::parse(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &"the text of an integer"))
    }
}

/// A count the reference bounds below (`Field(ge=0)`), read as pydantic reads it ([`LaxInt`]):
/// a negative value is an error, as in pydantic; a value above `u64::MAX` reads as `u64::MAX`
/// and is kept in [`Count::out_of_range`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// The value read: the stored one, or the nearest `u64` to it.
    pub value: u64,
    /// The stored value, when it was outside `u64` and [`Count::value`] is the nearest one.
    pub out_of_range: Option<i128>,
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let LaxInt(stored) = LaxInt::deserialize(deserializer)?;
        if stored < 0 {
            let unexpected = i64::try_from(stored).map_or(Unexpected::Other("a negative integer"), Unexpected::Signed);
            return Err(de::Error::invalid_value(unexpected, &"u64 (a count, at least 0)"));
        }
        Ok(nearest_u64(stored))
    }
}

/// A count the reference does not bound (`access_count: int`), read as pydantic reads it
/// ([`LaxInt`]): a negative value reads as 0 and a value above `u64::MAX` as `u64::MAX`, both
/// kept in [`LooseCount::out_of_range`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LooseCount {
    /// The value read: the stored one, or the nearest `u64` to it.
    pub value: u64,
    /// The stored value, when it was outside `u64` and [`LooseCount::value`] is the nearest one.
    pub out_of_range: Option<i128>,
}

impl<'de> Deserialize<'de> for LooseCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let LaxInt(stored) = LaxInt::deserialize(deserializer)?;
        let Count { value, out_of_range } = nearest_u64(stored);
        Ok(Self { value, out_of_range })
    }
}

/// The `u64` nearest to `stored`, and `stored` itself when that is not it.
fn nearest_u64(stored: i128) -> Count {
    match u64::try_from(stored) {
        Ok(value) => Count {
            value,
            out_of_range: None,
        },
        Err(_) => Count {
            value: if stored < 0 { 0 } else { u64::MAX },
            out_of_range: Some(stored),
        },
    }
}

/// A boolean as pydantic v2's lax mode reads a `bool` field: `true` / `false`; the numbers 0
/// and 1 (`0.0` and `1.0` too); the strings `0 off f false n no` and `1 on t true y yes`, in
/// any case, without surrounding whitespace. Anything else is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LaxBool(pub bool);

impl LaxBool {
    /// Reads a string as pydantic does; `None` when pydantic refuses it.
    pub fn parse(text: &str) -> Option<Self> {
        const TRUE: [&str; 6] = ["1", "on", "t", "true", "y", "yes"];
        const FALSE: [&str; 6] = ["0", "off", "f", "false", "n", "no"];
        if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
            Some(Self(true))
        } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
            Some(Self(false))
        } else {
            None
        }
    }
}

impl<'de> Deserialize<'de> for LaxBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LaxBoolVisitor)
    }
}

struct LaxBoolVisitor;

impl Visitor<'_> for LaxBoolVisitor {
    type Value = LaxBool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean (or 0, 1, or a string such as \"true\", \"no\", \"on\")")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<LaxBool, E> {
        Ok(LaxBool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LaxBool, E> {
        match v {
            0 => Ok(LaxBool(false)),
            1 => Ok(LaxBool(true)),
            _ => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LaxBool, E> {
        match v {
            0 => Ok(LaxBool(false)),
            1 => Ok(LaxBool(true)),
            _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<LaxBool, E> {
        if v == 0.0 {
            Ok(LaxBool(false))
        } else if v == 1.0 {
            Ok(LaxBool(true))
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LaxBool, E> {
        LaxBool::parse(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// Above this magnitude pydantic reads a Unix time as milliseconds, at or below it as seconds
/// (speedate's `MS_WATERSHED`: 2e10 s is in the year 2603).
pub const MS_WATERSHED: i64 = 20_000_000_000;

/// The UTC date-time of an integer Unix time, as pydantic reads one: seconds when
/// `|t| <= 2e10` ([`MS_WATERSHED`]), milliseconds above. Years 1..=9999, as Python's.
pub fn datetime_from_unix_int(t: i64) -> Result<OffsetDateTime, TimestampError> {
    let (seconds, micros) = if !(-MS_WATERSHED..=MS_WATERSHED).contains(&t) {
        (t.div_euclid(1000), t.rem_euclid(1000) * 1000)
    } else {
        (t, 0)
    };
    // Below 10^6: the cast cannot truncate.
    unix_datetime(seconds, micros as u32, || t.to_string())
}

/// The UTC date-time of a float Unix time, as pydantic reads one: seconds when
/// `|t| <= 2e10` ([`MS_WATERSHED`]), the fraction of a second rounded to the nearest microsecond;
/// milliseconds above, the fraction of a millisecond rounded to the nearest microsecond. Both
/// count from the floor (so `-1.5` is 23:59:58.5 of 1969-12-31) and round halves away from zero.
/// NaN and the infinities are errors, as times outside years 1..=9999.
pub fn datetime_from_unix_float(t: f64) -> Result<OffsetDateTime, TimestampError> {
    let input = || t.to_string();
    if !t.is_finite() {
        return Err(TimestampError {
            input: input(),
            reason: "not a finite number of seconds".to_owned(),
        });
    }
    let whole = t.floor();
    // Years 1..=9999 lie within ±2.6e14 ms: anything beyond is out of range (and the casts
    // below are exact for every value that passes).
    if whole.abs() > 1e15 {
        return Err(out_of_range(input()));
    }
    let (seconds, micros) = if t.abs() > MS_WATERSHED as f64 {
        let millis = whole as i64;
        // Within 0..=1000: the cast cannot truncate.
        let extra = ((t - whole) * 1_000.0).round() as u32;
        (millis.div_euclid(1000), millis.rem_euclid(1000) as u32 * 1000 + extra)
    } else {
        // Within 0..=10^6: the cast cannot truncate.
        (whole as i64, ((t - whole) * 1_000_000.0).round() as u32)
    };
    // A fraction rounded up to a whole second carries into the seconds.
    let (seconds, micros) = if micros >= 1_000_000 {
        (seconds + 1, micros - 1_000_000)
    } else {
        (seconds, micros)
    };
    unix_datetime(seconds, micros, input)
}

fn out_of_range(input: String) -> TimestampError {
    TimestampError {
        input,
        reason: "outside years 1..=9999".to_owned(),
    }
}

fn unix_datetime(seconds: i64, micros: u32, input: impl Fn() -> String) -> Result<OffsetDateTime, TimestampError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|dt| dt.replace_microsecond(micros).ok())
        .filter(|dt| (1..=9999).contains(&dt.year()))
        .ok_or_else(|| out_of_range(input()))
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = OffsetDateTime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an isoformat date-time string or a number of Unix seconds")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<OffsetDateTime, E> {
        datetime_from_unix_int(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<OffsetDateTime, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(out_of_range(v.to_string())))?;
        self.visit_i64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<OffsetDateTime, E> {
        datetime_from_unix_float(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<OffsetDateTime, E> {
        parse_isoformat(v).map_err(E::custom)
    }
}

/// Serde reader of a required date-time as proxywhirl reads one: a string through
/// [`parse_isoformat`] (Python's `datetime.fromisoformat`, which proxywhirl applies to strings),
/// an integer through [`datetime_from_unix_int`], a float through [`datetime_from_unix_float`]
/// (pydantic's reading of numbers). A boolean or anything else is an error.
pub mod timestamp {
    use super::*;

    /// Reads the date-time (see the module).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Serde reader of an optional date-time: `null` is `None`, anything else as [`timestamp`].
pub mod timestamp_option {
    use super::*;

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<OffsetDateTime>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null, an isoformat date-time string or a number of Unix seconds")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            timestamp::deserialize(deserializer).map(Some)
        }
    }

    /// Reads `null` or the date-time (see the module).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn int(json: &str) -> Option<i128> {
        serde_json::from_str::<LaxInt>(json).ok().map(|v| v.0)
    }

    #[test]
    fn integers_as_pydantic_reads_them() {
        // Each case checked against pydantic 2.14.4 (CacheEntry(ttl_seconds=...)).
        for (json, want) in [
            ("5", Some(5)),
            ("-1", Some(-1)),
            ("18446744073709551615", Some(u64::MAX as i128)),
            ("true", Some(1)),
            ("false", Some(0)),
            ("5.0", Some(5)),
            ("-0.0", Some(0)),
            ("1e3", Some(1000)),
            ("9.2e18", Some(9_200_000_000_000_000_000)),
            ("-9.2e18", Some(-9_200_000_000_000_000_000)),
            ("5.5", None),
            ("9.3e18", None),
            ("9223372036854775808.0", None),
            ("-9223372036854775808.0", None),
            ("1e20", None),
            ("null", None),
            ("[5]", None),
            ("{}", None),
            (r#""5""#, Some(5)),
            (r#"" 5 ""#, Some(5)),
            (r#""\t5\r\n""#, Some(5)),
            (r#""\u00a05""#, Some(5)),
            (r#""\u30005""#, Some(5)),
            (r#""+5""#, Some(5)),
            (r#""-0""#, Some(0)),
            (r#""05""#, Some(5)),
            (r#""1_000""#, Some(1000)),
            (r#""1_2_3""#, Some(123)),
            (r#""5.0""#, Some(5)),
            (r#""5.000""#, Some(5)),
            (r#""1_000.0""#, Some(1000)),
            (r#""-00.00""#, Some(0)),
            (r#""-1.0""#, Some(-1)),
            (
                r#""10000000000000000000000000""#,
                Some(10_000_000_000_000_000_000_000_000),
            ),
            (r#""5.""#, None),
            (r#"".5""#, None),
            (r#"".0""#, None),
            (r#""5.50""#, None),
            (r#""5.0_0""#, None),
            (r#""1e3""#, None),
            (r#""0x10""#, None),
            (r#""1__000""#, None),
            (r#""_1000""#, None),
            (r#""1000_""#, None),
            (r#""+_5""#, None),
            (r#""+-5""#, None),
            (r#""5 5""#, None),
            (r#""5 .0""#, None),
            (r#""\u001c5""#, None),
            (r#""\u00005""#, None),
            (r#""""#, None),
            (r#""  ""#, None),
            (r#""-""#, None),
            (r#""\uff15""#, None),
            (r#""\u0665""#, None),
        ] {
            assert_eq!(int(json), want, "{json}");
        }
        let huge = format!("\"{}\"", "9".repeat(60));
        assert_eq!(int(&huge), Some(i128::MAX));
        assert_eq!(int(&format!("\"-{}\"", "9".repeat(60))), Some(-i128::MAX));
    }

    #[test]
    fn counts_keep_what_was_out_of_range() {
        let count = |json: &str| serde_json::from_str::<Count>(json);
        assert_eq!(
            count("7").unwrap(),
            Count {
                value: 7,
                out_of_range: None
            }
        );
        assert!(count("-1").is_err(), "ge=0 in the reference: refused");
        assert!(count("\"-1\"").is_err());
        assert_eq!(count("\"-0\"").unwrap().value, 0);
        let big = count("\"18446744073709551616\"").unwrap();
        assert_eq!(
            (big.value, big.out_of_range),
            (u64::MAX, Some(18_446_744_073_709_551_616))
        );

        let loose = |json: &str| serde_json::from_str::<LooseCount>(json).unwrap();
        assert_eq!(
            loose("-1"),
            LooseCount {
                value: 0,
                out_of_range: Some(-1)
            }
        );
        assert_eq!(loose("\"-1.0\"").value, 0);
        assert_eq!(loose("-1e3").out_of_range, Some(-1000));
        assert_eq!(
            loose("3"),
            LooseCount {
                value: 3,
                out_of_range: None
            }
        );
        assert!(serde_json::from_str::<LooseCount>("-1.5").is_err());
    }

    #[test]
    fn booleans_as_pydantic_reads_them() {
        let b = |json: &str| serde_json::from_str::<LaxBool>(json).ok().map(|v| v.0);
        for (json, want) in [
            ("true", Some(true)),
            ("false", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("1.0", Some(true)),
            ("0.0", Some(false)),
            ("-0.0", Some(false)),
            ("2", None),
            ("-1", None),
            ("1.5", None),
            ("null", None),
            ("[]", None),
        ] {
            assert_eq!(b(json), want, "{json}");
        }
        for word in [
            "true", "True", "TRUE", "tRuE", "yes", "YES", "Yes", "on", "On", "1", "t", "T", "y", "Y",
        ] {
            assert_eq!(b(&format!("\"{word}\"")), Some(true), "{word}");
        }
        for word in ["false", "False", "no", "nO", "off", "Off", "0", "f", "F", "n", "N"] {
            assert_eq!(b(&format!("\"{word}\"")), Some(false), "{word}");
        }
        for word in [" true", "true ", "2", "", "1.0", "0.0", "yess", "nope"] {
            assert_eq!(b(&format!("\"{word}\"")), None, "{word:?}");
        }
    }

    fn ts(json: &str) -> Option<OffsetDateTime> {
        #[derive(serde::Deserialize)]
        struct T(#[serde(with = "timestamp")] OffsetDateTime);
        serde_json::from_str::<T>(json).ok().map(|t| t.0)
    }

    #[test]
    fn unix_times_as_pydantic_reads_them() {
        // Each case checked against pydantic 2.14.4 (CacheEntry(fetch_time=...)).
        for (json, want) in [
            ("0", Some(datetime!(1970-01-01 0:00 UTC))),
            ("1700000000", Some(datetime!(2023-11-14 22:13:20 UTC))),
            ("1700000000.5", Some(datetime!(2023-11-14 22:13:20.5 UTC))),
            ("20000000000", Some(datetime!(2603-10-11 11:33:20 UTC))),
            ("20000000001", Some(datetime!(1970-08-20 11:33:20.001 UTC))),
            ("-20000000000", Some(datetime!(1336-03-23 12:26:40 UTC))),
            ("-20000000001", Some(datetime!(1969-05-14 12:26:39.999 UTC))),
            ("1700000000000", Some(datetime!(2023-11-14 22:13:20 UTC))),
            ("1700000000123.456", Some(datetime!(2023-11-14 22:13:20.123456 UTC))),
            ("2e10", Some(datetime!(2603-10-11 11:33:20 UTC))),
            ("20000000001.0", Some(datetime!(1970-08-20 11:33:20.001 UTC))),
            ("20000000000.5", Some(datetime!(1970-08-20 11:33:20.0005 UTC))),
            ("-20000000000.5", Some(datetime!(1969-05-14 12:26:39.9995 UTC))),
            ("-1", Some(datetime!(1969-12-31 23:59:59 UTC))),
            ("-1.5", Some(datetime!(1969-12-31 23:59:58.5 UTC))),
            ("-1.9999996", Some(datetime!(1969-12-31 23:59:58 UTC))),
            ("20000000000.9995", Some(datetime!(1970-08-20 11:33:20.001 UTC))),
            ("-20000000000.0004", Some(datetime!(1969-05-14 12:26:40 UTC))),
            ("-20000000000.9996", Some(datetime!(1969-05-14 12:26:39.999 UTC))),
            ("1699999999999.9995", Some(datetime!(2023-11-14 22:13:20 UTC))),
            ("1700000000.0000005", Some(datetime!(2023-11-14 22:13:20 UTC))),
            ("1700000000.9999995", Some(datetime!(2023-11-14 22:13:21 UTC))),
            ("1700000000.1234567", Some(datetime!(2023-11-14 22:13:20.123457 UTC))),
            ("5e-07", Some(datetime!(1970-01-01 0:00:00.000001 UTC))),
            ("1.5e-06", Some(datetime!(1970-01-01 0:00:00.000002 UTC))),
            ("2.5e-06", Some(datetime!(1970-01-01 0:00:00.000003 UTC))),
            ("-5e-07", Some(datetime!(1970-01-01 0:00 UTC))),
            ("1.5e-07", Some(datetime!(1970-01-01 0:00 UTC))),
            ("9999999999999", Some(datetime!(2286-11-20 17:46:39.999 UTC))),
            ("253402300799999", Some(datetime!(9999-12-31 23:59:59.999 UTC))),
            ("253402300799999.5", Some(datetime!(9999-12-31 23:59:59.9995 UTC))),
            ("253402300799999.6", Some(datetime!(9999-12-31 23:59:59.999594 UTC))),
            ("-62135596800000", Some(datetime!(0001-01-01 0:00 UTC))),
            ("-62135596800001", None),
            ("-62135596800000.5", None),
            ("253402300800000", None),
            ("1e16", None),
            ("1e20", None),
            ("9223372036854775808", None),
            ("-9223372036854775808", None),
            ("true", None),
            ("null", None),
            ("[]", None),
        ] {
            assert_eq!(ts(json), want, "{json}");
        }
    }

    #[test]
    fn float_times_round_as_pydantic_rounds() {
        // serde_json's float parser can be one unit in the last place away from Python's (and
        // Rust's) correctly rounded one (1700000000123.4563 for this text): the conversion
        // itself, on the float Python parses, gives pydantic's microsecond.
        let t: f64 = "1700000000123.4565".parse().unwrap();
        assert_eq!(
            datetime_from_unix_float(t).unwrap(),
            datetime!(2023-11-14 22:13:20.123457 UTC)
        );
    }

    #[test]
    fn timestamp_strings_go_through_fromisoformat() {
        assert_eq!(
            ts(r#""2024-10-04T07:56:39.650771+00:00""#),
            Some(datetime!(2024-10-04 07:56:39.650771 UTC))
        );
        // A number in a string is not a Unix time: fromisoformat refuses it.
        assert_eq!(ts(r#""1700000000""#), None);
        assert_eq!(ts(r#""soon""#), None);

        #[derive(serde::Deserialize)]
        struct O(#[serde(with = "timestamp_option")] Option<OffsetDateTime>);
        let o = |json: &str| serde_json::from_str::<O>(json).ok().map(|o| o.0);
        assert_eq!(o("null"), Some(None));
        assert_eq!(o("0"), Some(Some(OffsetDateTime::UNIX_EPOCH)));
        assert_eq!(o("true"), None);
        assert_eq!(o(r#""x""#), None);
    }
}
