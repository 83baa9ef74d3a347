//! Unit tests of one shard line: the format written, what is read back, damage, lax values.

use super::*;
use pw_cache_crypto::FernetKey;
use pw_cache_model::fields;
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
    assert_eq!(
        parsed.surrogates,
        [fields::SOURCE, fields::LAST_HEALTH_ERROR, "(a member name)"]
    );
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
