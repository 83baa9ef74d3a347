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
