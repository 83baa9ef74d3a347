//! What each fuzz target of pw-cache feeds to the library and what it checks.
//!
//! One function per target (`check_<target>`), taking the fuzzer's bytes. A check returns
//! normally when the library behaved; it panics (a crash for libFuzzer, a failed test for
//! `cargo test`) when the library panicked or broke one of its documented promises.
//!
//! This file is the whole logic of the targets: `fuzz_targets/*.rs` only call it, and
//! `tests/damaged/fuzz_regressions.rs` includes it (`#[path]`) to replay the committed corpora and
//! the crash regressions in CI without cargo-fuzz. It therefore uses nothing but `pw-cache`,
//! `base64`, `serde_json` and `std` (all dependencies of both crates).

use std::path::Path;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use pw_cache::crypto::TokenProblem;
use pw_cache::model::timestamp::{format_isoformat, from_unix_seconds, parse_isoformat, to_unix_seconds};
use pw_cache::tiers::jsonl::{decode_line, encode_line, hex_decode, hex_encode};
use pw_cache::warm_file::{IssueKind, RowLocation, WarmCredential, WarmFile, WarmFormat, parse_warm_bytes};
use pw_cache::{CryptoError, KeyRing, Secret, Token};

/// The current key of the fixtures (`tests/fixtures/proxywhirl-0.3.3/key_current.txt`): a
/// public test key, so that the fixtures' shard lines decode with their credentials.
const FIXTURE_KEY_CURRENT: &str = include_str!("../../tests/fixtures/proxywhirl-0.3.3/key_current.txt");
/// The previous key of the fixtures (`key_previous.txt`).
const FIXTURE_KEY_PREVIOUS: &str = include_str!("../../tests/fixtures/proxywhirl-0.3.3/key_previous.txt");

/// The ring every target uses: the fixtures' current and previous keys.
pub fn ring() -> &'static KeyRing {
    static RING: LazyLock<KeyRing> = LazyLock::new(|| {
        KeyRing::from_secrets(
            &Secret::new(FIXTURE_KEY_CURRENT.trim()),
            &[Secret::new(FIXTURE_KEY_PREVIOUS.trim())],
        )
        .expect("the fixtures' keys are valid Fernet keys")
    });
    &RING
}

// ---------------------------------------------------------------------------------------------
// jsonl_line
// ---------------------------------------------------------------------------------------------

/// `jsonl_line`: `decode_line(data)` with the fixtures' ring.
///
/// - A failure is a typed error that counts as a corrupt entry (`TierError::is_corrupt_entry`),
///   as `decode_line` documents.
/// - A success re-encodes (`encode_line`) to one line of ASCII JSON (the reference's
///   `json.dumps` escapes non-ASCII) that decodes to an equal entry, credentials included.
pub fn check_jsonl_line(data: &[u8]) {
    let ring = ring();
    let entry = match decode_line(data, ring) {
        Ok(entry) => entry,
        Err(err) => {
            assert!(
                err.is_corrupt_entry(),
                "decode_line failed with a non-corruption error: {err}"
            );
            return;
        }
    };
    let line = encode_line(&entry, ring)
        .unwrap_or_else(|err| panic!("a decoded entry cannot be encoded again: {err}\nentry: {entry:?}"));
    assert!(
        line.is_ascii() && !line.contains('\n') && !line.contains('\r'),
        "encode_line wrote a line that is not one line of ASCII: {line}"
    );
    let back = decode_line(line.as_bytes(), ring)
        .unwrap_or_else(|err| panic!("a re-encoded line does not decode: {err}\nline: {line}"));
    assert!(
        back == entry,
        "round trip changed the entry\nbefore: {entry:?}\nafter:  {back:?}\nline: {line}"
    );
    // The credentials themselves (Debug hides them, so compare them explicitly).
    let expose = |s: &Option<Secret>| s.as_ref().map(|s| s.expose_secret().to_owned());
    assert_eq!(
        expose(&back.username),
        expose(&entry.username),
        "username changed in the round trip"
    );
    assert_eq!(
        expose(&back.password),
        expose(&entry.password),
        "password changed in the round trip"
    );
}

// ---------------------------------------------------------------------------------------------
// warm_json, warm_jsonl, warm_csv
// ---------------------------------------------------------------------------------------------

/// `warm_json`: `parse_warm_bytes(Json, data)`; see [`check_warm_file`]. When the input is a JSON
/// array (after an optional BOM), every item is exactly one row or one issue.
pub fn check_warm_json(data: &[u8]) {
    let Some(file) = parse_and_check(WarmFormat::Json, data) else {
        return;
    };
    let text = std::str::from_utf8(data).expect("a JSON warm file that parsed is UTF-8");
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => assert_eq!(
            file.rows.len() + file.issues.len(),
            items.len(),
            "every item of the array must be one row or one issue"
        ),
        other => panic!("parse_warm_bytes accepted a JSON document that is not an array: {other:?}"),
    }
}

/// `warm_jsonl`: `parse_warm_bytes(Jsonl, data)`; see [`check_warm_file`]. JSONL never fails as
/// a whole, and every line that is not blank (after an optional BOM; `\n` or `\r\n` endings)
/// is exactly one row or one issue.
pub fn check_warm_jsonl(data: &[u8]) {
    let file = parse_and_check(WarmFormat::Jsonl, data).expect("JSONL warm files never fail as a whole");
    let body = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let counted = body
        .split(|&b| b == b'\n')
        .map(|raw| raw.strip_suffix(b"\r").unwrap_or(raw))
        .filter(|raw| std::str::from_utf8(raw).map_or(true, |line| !line.trim().is_empty()))
        .count();
    assert_eq!(
        file.rows.len() + file.issues.len(),
        counted,
        "every non-blank line must be one row or one issue"
    );
}

/// `warm_csv`: `parse_warm_bytes(Csv, data)`; see [`check_warm_file`].
pub fn check_warm_csv(data: &[u8]) {
    let _ = parse_and_check(WarmFormat::Csv, data);
}

/// Parses `data` as `format` and checks the result ([`check_warm_file`]); `None` when the file
/// failed as a whole (a typed `WarmFileError`, which is fine).
fn parse_and_check(format: WarmFormat, data: &[u8]) -> Option<WarmFile> {
    let file = parse_warm_bytes(format, data, Path::new("fuzz-input")).ok()?;
    check_warm_file(format, data, &file);
    Some(file)
}

/// The promises of `pw_cache::warm_file` for a file that parsed:
///
/// - locations have the format's kind (JSON items, JSONL lines, CSV rows), start at 1, and a
///   line number is at most the number of lines of the input; rows and issues are each in file
///   order, and no location has both a row and an issue, or two of either;
/// - a row's `proxy_url` is non-empty, trimmed, free of whitespace, control characters and
///   backslashes, starts with a proxy scheme and `://`, and holds no userinfo (no `@`);
/// - a plaintext credential is non-empty and never the export mask `***`; a token is non-empty
///   printable ASCII; `source` and `key` are non-empty and trimmed when present;
/// - an issue has a reason.
pub fn check_warm_file(format: WarmFormat, data: &[u8], file: &WarmFile) {
    assert_eq!(file.format, format);
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let ordinal = |location: RowLocation| -> u64 {
        let (n, line) = match (format, location) {
            (WarmFormat::Json, RowLocation::Item(n)) => (n, None),
            (WarmFormat::Jsonl, RowLocation::Line(n)) => (n, Some(n)),
            (WarmFormat::Csv, RowLocation::Row { record, line }) => (record, Some(line)),
            (format, location) => panic!("a {format} file reported the location {location:?}"),
        };
        assert!(n >= 1, "locations are 1-based: {location:?}");
        if let Some(line) = line {
            assert!(
                (1..=lines).contains(&line),
                "{location:?} is not a line of a {lines}-line input"
            );
        }
        n
    };
    let row_ordinals: Vec<u64> = file.rows.iter().map(|row| ordinal(row.location)).collect();
    let issue_ordinals: Vec<u64> = file.issues.iter().map(|issue| ordinal(issue.location)).collect();
    for (what, ordinals) in [("rows", &row_ordinals), ("issues", &issue_ordinals)] {
        assert!(
            ordinals.windows(2).all(|w| w[0] < w[1]),
            "{what} are not in file order or repeat a location: {ordinals:?}"
        );
    }
    let mut all: Vec<(u64, RowLocation)> = file
        .rows
        .iter()
        .map(|r| r.location)
        .chain(file.issues.iter().map(|i| i.location))
        .map(|location| (ordinal(location), location))
        .collect();
    all.sort_by_key(|&(n, _)| n);
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "a location has both a row and an issue: {all:?}"
    );
    if format == WarmFormat::Csv {
        let starts: Vec<u64> = all
            .iter()
            .map(|(_, location)| match location {
                RowLocation::Row { line, .. } => *line,
                _ => unreachable!("checked above"),
            })
            .collect();
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "CSV records start on decreasing lines: {all:?}"
        );
    }

    for row in &file.rows {
        let url = row.proxy_url.as_str();
        assert!(
            !url.is_empty() && url.trim() == url,
            "proxy_url is empty or not trimmed: {url:?}"
        );
        assert!(
            !url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\'),
            "proxy_url holds whitespace, a control character or a backslash: {url:?}"
        );
        let (scheme, rest) = url
            .split_once("://")
            .unwrap_or_else(|| panic!("proxy_url does not start with a scheme and `://`: {url:?}"));
        assert!(
            ["http", "https", "socks4", "socks4a", "socks5", "socks5h"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme)),
            "proxy_url does not start with a proxy scheme: {url:?}"
        );
        // The authority as written (up to the first `/`, `?` or `#`): what an RFC 3986 reader
        // such as Python's `urllib.parse` (proxywhirl) takes as the host and port.
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        assert!(
            !authority.is_empty(),
            "proxy_url has no host as written (`scheme://` then `/`): {url:?}"
        );
        assert!(!url.contains('@'), "proxy_url still holds userinfo: {url:?}");
        for credential in [&row.username, &row.password].into_iter().flatten() {
            match credential {
                WarmCredential::Plain(secret) => {
                    let value = secret.expose_secret();
                    assert!(!value.is_empty(), "an empty plaintext credential at {:?}", row.location);
                    assert!(
                        value != "***",
                        "the export mask became a credential at {:?}",
                        row.location
                    );
                }
                WarmCredential::Token(token) => assert!(
                    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()),
                    "a token that is not printable ASCII at {:?}",
                    row.location
                ),
            }
        }
        for (name, value) in [("source", &row.source), ("key", &row.key)] {
            if let Some(value) = value {
                assert!(
                    !value.is_empty() && value.trim() == value,
                    "{name} is empty or not trimmed at {:?}: {value:?}",
                    row.location
                );
            }
        }
    }
    for issue in &file.issues {
        assert!(!issue.reason.is_empty(), "an issue without a reason: {issue:?}");
        assert!(matches!(issue.kind, IssueKind::Skipped | IssueKind::Failed));
    }
}

// ---------------------------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------------------------

/// `token`: arbitrary bytes as a stored token and as hex.
///
/// - `KeyRing::decrypt_bytes(data)` fails with a typed token error (`is_corrupt_token`):
///   `MalformedToken` exactly when `Token::from_stored_bytes` (the reading of stored bytes as
///   Python's `cryptography` reads them) refuses the shape, else `TokenRejected` or `NotUtf8`;
///   a shape that `Token::from_bytes` passes keeps the bytes as given, one that only the
///   lenient reading passes is held in canonical url-safe base64.
/// - `hex_decode(text)` is `Some` exactly for an even number of hex digits of either case, and
///   then `hex_encode` gives the text back in lowercase; the decoded bytes go through
///   `decrypt_bytes` too (as a JSONL credential field does).
pub fn check_token(data: &[u8]) {
    let _ = check_stored_token(data);
    let text = String::from_utf8_lossy(data);
    let decoded = hex_decode(&text);
    let is_hex = text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
    assert_eq!(
        decoded.is_some(),
        is_hex,
        "hex_decode disagrees on whether {text:?} is hex"
    );
    if let Some(bytes) = decoded {
        assert_eq!(bytes.len() * 2, text.len());
        assert_eq!(hex_encode(&bytes), text.to_ascii_lowercase(), "hex does not round-trip");
        let _ = check_stored_token(&bytes);
    }
}

/// `decrypt_bytes` of arbitrary bytes: a typed error, consistent with the shape check. Returns
/// the result for the callers that know what to expect.
fn check_stored_token(bytes: &[u8]) -> Result<String, CryptoError> {
    let shaped = Token::from_stored_bytes(bytes);
    let result = ring().decrypt_bytes(bytes).map(|s| s.expose_secret().to_owned());
    match (&shaped, &result) {
        (Err(CryptoError::MalformedToken(problem)), Err(CryptoError::MalformedToken(again))) => {
            assert_eq!(problem, again);
            if bytes.is_empty() {
                assert_eq!(*problem, TokenProblem::Empty);
            }
        }
        (Err(err), _) => {
            panic!("Token::from_stored_bytes failed with an unexpected error: {err:?}, then {result:?}")
        }
        (Ok(token), result) => {
            if Token::from_bytes(bytes).is_ok() {
                assert_eq!(token.as_bytes(), bytes, "a token does not keep its bytes");
            } else {
                // Read leniently: the same token in canonical text, which the strict check takes.
                assert!(
                    Token::from_bytes(token.as_bytes()).is_ok_and(|t| t == *token),
                    "a token read leniently is not canonical"
                );
            }
            let decoded = URL_SAFE
                .decode(token.as_bytes())
                .expect("a token that passed the shape check is base64");
            let stamp: [u8; 8] = decoded[1..9].try_into().expect("8 bytes");
            assert_eq!(token.timestamp(), u64::from_be_bytes(stamp), "wrong token timestamp");
            match result {
                Ok(_) | Err(CryptoError::TokenRejected | CryptoError::NotUtf8) => {}
                Err(err) => panic!("decrypt_bytes of a well-shaped token failed with {err:?}"),
            }
        }
    }
    if let Err(err) = &result {
        assert!(err.is_corrupt_token(), "a token error that is not corruption: {err:?}");
    }
    result
}

// ---------------------------------------------------------------------------------------------
// token_mutation
// ---------------------------------------------------------------------------------------------

/// Valid tokens of the fixtures' keys (made with Python `cryptography` 48, fixed IVs) and what
/// they decrypt to (`None`: a plaintext that is not UTF-8).
pub const VALID_TOKENS: [(&str, Option<&str>); 6] = [
    (
        "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD5f7UwwY-1lMrRv5lK_y8GdXN-VDaZOrYe0Va1LM8n-hx1gbJdgJYRm3n3E9RiGUcA==",
        Some(""),
    ),
    (
        "gAAAAABlU_EAEBESExQVFhcYGRobHB0eH4hklz5uGSvrNKr8czIu6OnKVHKUtz6dtr0_6FeUp5iDl57deVZZOaNY3qNY5IFTmw==",
        Some("user"),
    ),
    // Previous key.
    (
        "gAAAAABfXhAAICEiIyQlJicoKSorLC0uL9FRpz8WREZh0mDZLxdJF9xGnV3CtTSN9siHkQkbfkslTS-1TcVst1OzxiOY8FjQlQ==",
        Some("pässwörd-🔑"),
    ),
    // Timestamp 0, a plaintext of exactly one block (so two blocks with the padding).
    (
        "gAAAAAAAAAAAMDEyMzQ1Njc4OTo7PD0-P0_swvarC0rXZfgCPFiU-BaBv9UROZ4bNsTMATEp2Xdgtjp1UesoL9T5HRLFISnhaq4by31GFMSVKOyHU_9vD34=",
        Some("0123456789abcdef"),
    ),
    // Previous key, timestamp 2^40, three blocks.
    (
        "gAAAAQAAAAAAQEFCQ0RFRkdISUpLTE1OT9xX-L8_rL6mte6dc7z0Tf_V-ZGCP4PXHwztMm5MwMtdSo-04imJd4PHkwFw_rWwVX9Dm9m6zugRwp6sUqwd9aomiHNxYsi3meZzI46oSxq7",
        Some("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ),
    // Authentic, but the plaintext is b"\xff\xfe not utf-8".
    (
        "gAAAAABlU_EBUFFSU1RVVldYWVpbXF1eXyVMc1YdrezoQ7NwEF5ixcO0uiksVkM8l4Zx8pzsFGe5Ea8JUgJ8PKSjYTHvc4_Sfg==",
        None,
    ),
];

/// `token_mutation`: a valid token, mutated as `data` says, through `decrypt_bytes`.
///
/// `data[0]` picks one of [`VALID_TOKENS`]; each following triple `(a, b, c)` is one edit at
/// position `a` (modulo the length + 1): `b % 8` chooses replace with `c`, xor with `c | 1`,
/// insert `c`, delete, truncate — ops 0-4 on the token's text, ops 5-7 (replace, xor, truncate)
/// on its decoded bytes, re-encoded as canonical url-safe base64.
///
/// The unchanged token decrypts to its plaintext (or `NotUtf8`), and so does a text that
/// Python's `cryptography` reads as the same token (`Token::from_stored_bytes`: whitespace,
/// padding, unused bits); any other text is refused with a typed error: no forgery, no panic,
/// whatever the shape.
pub fn check_token_mutation(data: &[u8]) {
    let Some((&pick, edits)) = data.split_first() else {
        return;
    };
    let (original, plaintext) = VALID_TOKENS[usize::from(pick) % VALID_TOKENS.len()];
    let mut text = original.as_bytes().to_vec();
    for edit in edits.chunks_exact(3) {
        let (a, op, c) = (usize::from(edit[0]), edit[1] % 8, edit[2]);
        if op < 5 {
            let at = a % (text.len() + 1);
            match op {
                0 if at < text.len() => text[at] = c,
                1 if at < text.len() => text[at] ^= c | 1,
                2 => text.insert(at, c),
                3 if at < text.len() => {
                    text.remove(at);
                }
                4 => text.truncate(at),
                _ => {}
            }
        } else if let Ok(mut raw) = URL_SAFE.decode(&text) {
            let at = a % (raw.len() + 1);
            match op {
                5 if at < raw.len() => raw[at] = c,
                6 if at < raw.len() => raw[at] ^= c | 1,
                7 => raw.truncate(at),
                _ => {}
            }
            text = URL_SAFE.encode(&raw).into_bytes();
        }
    }
    let result = check_stored_token(&text);
    let same_token = Token::from_stored_bytes(&text).is_ok_and(|t| t.as_str() == original);
    if same_token {
        match (plaintext, &result) {
            (Some(want), Ok(got)) => assert_eq!(got, want, "a valid token decrypted to something else"),
            (None, Err(CryptoError::NotUtf8)) => {}
            (want, got) => panic!(
                "the token {original} as {:?} gave {got:?}, expected {want:?}",
                String::from_utf8_lossy(&text)
            ),
        }
    } else {
        assert!(
            result.is_err(),
            "a mutated token was accepted: {}",
            String::from_utf8_lossy(&text)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// timestamp
// ---------------------------------------------------------------------------------------------

/// `timestamp`: `parse_isoformat` of arbitrary text, and Unix seconds of arbitrary floats.
///
/// - A parsed value has microsecond precision; `format_isoformat` writes it as text that parses
///   back to the same instant and the same offset ("the entry's own offset kept"), and formats
///   identically again.
/// - `to_unix_seconds` and `from_unix_seconds` agree (within the f64 precision) both ways:
///   from a parsed value, and from the first 8 bytes of `data` read as an f64.
pub fn check_timestamp(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_timestamp_text(text);
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        check_unix_seconds(f64::from_le_bytes(*bytes));
    }
}

/// The text part of [`check_timestamp`].
fn check_timestamp_text(text: &str) {
    let Ok(dt) = parse_isoformat(text) else {
        return;
    };
    assert_eq!(dt.nanosecond() % 1000, 0, "{text:?} parsed below the microsecond");
    let written = format_isoformat(dt);
    let back = parse_isoformat(&written)
        .unwrap_or_else(|err| panic!("{text:?} parsed, but its formatted {written:?} does not: {err}"));
    assert!(
        back == dt && back.offset() == dt.offset(),
        "{text:?} parsed as {dt}, was written {written:?}, which reads back as {back}"
    );
    assert_eq!(format_isoformat(back), written, "formatting is not stable for {text:?}");
    let seconds = to_unix_seconds(dt);
    if let Ok(again) = from_unix_seconds(seconds) {
        let drift = (again - dt).whole_microseconds().abs();
        // |seconds| < 2^38 for years 1..=9999: an f64 there is exact to 2^-14 s (61 µs).
        assert!(drift <= 64, "{text:?} -> {seconds} s -> {again}: drifted by {drift} µs");
    }
}

/// The float part of [`check_timestamp`].
fn check_unix_seconds(seconds: f64) {
    if let Ok(dt) = from_unix_seconds(seconds) {
        assert!((1..=9999).contains(&dt.year()), "{seconds} s became year {}", dt.year());
        assert!(dt.offset().is_utc(), "{seconds} s is not read as UTC");
        let back = to_unix_seconds(dt);
        // Rounded to the microsecond, then one f64 rounding each way.
        let tolerance = 0.5e-6 + seconds.abs() * 4.0 * f64::EPSILON;
        assert!(
            (back - seconds).abs() <= tolerance,
            "{seconds} s -> {dt} -> {back} s: off by {}",
            (back - seconds).abs()
        );
    }
}
