//! Every timestamp string that proxywhirl 0.3.3 wrote into the fixtures parses, and formats
//! back to the same bytes (Python's `isoformat()`), offsets other than +00:00 included.

use pw_cache::model::timestamp::{format_isoformat, parse_isoformat};
use pw_cache_tests::{fixture_files, strings_in};
use serde_json::Value;

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b' ')
}

/// Every timestamp-like string in every JSON or JSONL fixture file.
fn fixture_timestamps() -> Vec<String> {
    let mut out = Vec::new();
    for path in fixture_files() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let docs: Vec<Value> = match serde_json::from_str::<Value>(&text) {
            Ok(doc) => vec![doc],
            Err(_) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
        };
        for doc in &docs {
            out.extend(
                strings_in(doc)
                    .into_iter()
                    .filter(|s| looks_like_timestamp(s))
                    .map(str::to_owned),
            );
        }
    }
    out
}

#[test]
fn every_fixture_timestamp_parses_and_formats_back_identically() {
    let stamps = fixture_timestamps();
    assert!(
        stamps.len() > 3000,
        "expected thousands of timestamps, found {}",
        stamps.len()
    );
    let mut non_utc = 0;
    let mut without_fraction = 0;
    for s in &stamps {
        let dt = parse_isoformat(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format_isoformat(dt), *s, "round trip of {s}");
        non_utc += usize::from(!dt.offset().is_utc());
        without_fraction += usize::from(dt.microsecond() == 0);
    }
    assert!(non_utc > 0, "the fixtures hold offsets other than +00:00");
    assert!(without_fraction > 0, "the fixtures hold timestamps without a fraction");
}

#[test]
fn utc_formatting_is_byte_identical_to_python() {
    // Values and strings printed by CPython 3.11: datetime(...).isoformat().
    let cases = [
        ("2026-11-20T23:06:30.324602+00:00", 1_795_215_990_324_602_i128),
        ("2026-11-20T23:06:30+00:00", 1_795_215_990_000_000),
        ("2026-11-20T23:06:30.000001+00:00", 1_795_215_990_000_001),
        ("2099-06-23T12:33:57+00:00", 4_085_901_237_000_000),
        ("1970-01-01T00:00:00+00:00", 0),
    ];
    for (text, micros) in cases {
        let dt = pw_cache::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).unwrap();
        assert_eq!(format_isoformat(dt), text);
        assert_eq!(parse_isoformat(text).unwrap(), dt);
    }
}

#[test]
fn every_form_python_3_11_reads_is_read_as_the_same_instant() {
    use pw_cache::model::timestamp::parse_isoformat_with_adjustment;
    // Python 3.11.7: the instant of datetime.fromisoformat(text) in µs since the epoch (a naive
    // value taken as UTC).
    let cases = [
        ("2026-11-20", 1_795_132_800_000_000_i128),
        ("20261120", 1_795_132_800_000_000),
        ("20261120T230000", 1_795_215_600_000_000),
        ("20261120T2300", 1_795_215_600_000_000),
        ("2026-W47", 1_794_787_200_000_000),
        ("2026-W47-5", 1_795_132_800_000_000),
        ("2026W475", 1_795_132_800_000_000),
        ("2026-11-20T23", 1_795_215_600_000_000),
        ("2026-11-20T23:00:00,5", 1_795_215_600_500_000),
        ("2026-11-20x23:00", 1_795_215_600_000_000),
        ("2026-11-20T23:00:00.123456789", 1_795_215_600_123_456),
        ("2026-11-20T23:00:00+01:00:00.000007", 1_795_211_999_999_993),
        ("0001-01-01T00:00:00+01:00", -62_135_600_400_000_000),
        ("9999-12-31T23:59:59.999999-23:59:59", 253_402_387_198_999_999),
        ("2026-11-20T23:00:00Z", 1_795_215_600_000_000),
    ];
    for (text, micros) in cases {
        let (dt, adjustment) = parse_isoformat_with_adjustment(text).unwrap();
        assert_eq!(dt.unix_timestamp_nanos() / 1000, micros, "{text}");
        assert_eq!(parse_isoformat(text).unwrap(), dt);
        // Only the offset with microseconds is adjusted, and exactly.
        assert_eq!(adjustment.is_some(), text.ends_with(".000007"), "{text}");
        assert!(adjustment.is_none_or(|a: pw_cache::model::TimestampAdjustment| a.is_exact()));
        // What is read is written as Python writes it, and reads back the same.
        let written = format_isoformat(dt);
        let back = parse_isoformat(&written).unwrap();
        assert!(back == dt && back.offset() == dt.offset(), "{text} -> {written}");
    }
    // What Python 3.11 rejects: a lowercase z, an ordinal date, 24:00, surrounding spaces.
    for text in [
        "2026-11-20T23:00:00z",
        "2026-324",
        "2026-11-20T24:00:00",
        " 2026-11-20T23:00:00",
        "2026-11-20T23:00:00 ",
        "2026-11-20T23:00:00+24:00",
    ] {
        assert!(parse_isoformat(text).is_err(), "{text}");
    }
}
