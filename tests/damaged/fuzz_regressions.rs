//! The fuzz targets' inputs, replayed in CI without cargo-fuzz (see `fuzz/README.md`).
//!
//! Every file of the committed, minimized corpora (`fuzz/corpus/<target>/`) goes through the very
//! checks the fuzz targets make: `fuzz/src/lib.rs` is included here as a module, so the fuzzer
//! and this test cannot drift apart. A check fails on a panic of the library or a broken
//! promise (a decode that does not round-trip, an error that is not a typed corruption error, a
//! mutated token that is accepted, ...).
//!
//! Below the corpora are the regressions: each input a fuzzer found to crash a check, minimized,
//! with a test that feeds it to the same API and states the expected typed outcome.

use std::path::{Path, PathBuf};

use pw_cache::model::timestamp::{format_isoformat, parse_isoformat};
use pw_cache::tiers::jsonl::{decode_line, encode_line};

// Relative to this file's directory, `tests/damaged/`.
#[path = "../../fuzz/src/lib.rs"]
mod checks;

/// The committed corpus of a fuzz target.
fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Feeds every file of `target`'s corpus to `check`, and fails naming every file whose check
/// panicked. `at_least` guards against an empty or misplaced corpus.
fn replay(target: &str, at_least: usize, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= at_least,
        "{}: {} files, expected at least {at_least}",
        dir.display(),
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} corpus inputs of `{target}` fail their check (messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The corpora
// ---------------------------------------------------------------------------------------------

#[test]
fn corpus_jsonl_line() {
    replay("jsonl_line", 50, checks::check_jsonl_line);
}

#[test]
fn corpus_warm_json() {
    replay("warm_json", 20, checks::check_warm_json);
}

#[test]
fn corpus_warm_jsonl() {
    replay("warm_jsonl", 20, checks::check_warm_jsonl);
}

#[test]
fn corpus_warm_csv() {
    replay("warm_csv", 20, checks::check_warm_csv);
}

#[test]
fn corpus_token() {
    replay("token", 20, checks::check_token);
}

#[test]
fn corpus_token_mutation() {
    replay("token_mutation", 20, checks::check_token_mutation);
}

#[test]
fn corpus_timestamp() {
    replay("timestamp", 20, checks::check_timestamp);
}

/// The corpora replay real work: among the JSONL corpus, lines that decode (credentials
/// included) and lines that are refused as corrupt; the fixed tokens of `token_mutation` open.
#[test]
fn corpora_reach_both_outcomes() {
    let ring = checks::ring();
    let (mut decoded, mut with_credentials, mut refused) = (0, 0, 0);
    for entry in std::fs::read_dir(corpus_dir("jsonl_line")).unwrap() {
        match decode_line(&std::fs::read(entry.unwrap().path()).unwrap(), ring) {
            Ok(e) => {
                decoded += 1;
                with_credentials += usize::from(e.username.is_some() || e.password.is_some());
            }
            Err(err) => {
                assert!(err.is_corrupt_entry(), "{err}");
                refused += 1;
            }
        }
    }
    assert!(
        decoded >= 10 && with_credentials >= 5 && refused >= 10,
        "decoded {decoded} ({with_credentials} with credentials), refused {refused}"
    );
    for (index, (token, plaintext)) in checks::VALID_TOKENS.iter().enumerate() {
        let opened = ring.decrypt_bytes(token.as_bytes());
        match plaintext {
            Some(want) => assert_eq!(opened.unwrap().expose_secret(), *want),
            None => assert!(matches!(opened, Err(pw_cache::CryptoError::NotUtf8)), "{opened:?}"),
        }
        checks::check_token_mutation(&[u8::try_from(index).unwrap()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs that crashed a fuzz target
// ---------------------------------------------------------------------------------------------

/// Found by `timestamp` (its seed corpus, first run): `parse_isoformat` accepts an offset with
/// seconds, but `format_isoformat` wrote only `+05:30`, so the value moved by 15 s when written
/// back (Python's `isoformat()` writes `+05:30:15`). Fixed in the library since.
#[test]
fn regression_timestamp_offset_with_seconds() {
    for (input, written) in [
        ("2026-11-20T23:00:00+05:30:15", "2026-11-20T23:00:00+05:30:15"),
        ("2026-11-20T23:00:00.5-00:00:30", "2026-11-20T23:00:00.500000-00:00:30"),
        ("2026-11-20 23:00:00-23:59:59", "2026-11-20T23:00:00-23:59:59"),
    ] {
        checks::check_timestamp(input.as_bytes());
        let dt = parse_isoformat(input).unwrap();
        assert_eq!(format_isoformat(dt), written);
        assert_eq!(parse_isoformat(written).unwrap(), dt);
    }
}

/// The same bug through the JSONL line codec: a shard line whose timestamps carry an offset
/// with seconds must decode, re-encode and decode to the same entry.
#[test]
fn regression_jsonl_line_offset_with_seconds() {
    let line = br#"{"key": "k", "proxy_url": "http://1.2.3.4:80", "source": "s", "fetch_time": "2026-11-20T23:00:00+05:30:15", "last_accessed": "2026-11-20T23:00:00.25-01:00:01", "ttl_seconds": 60, "expires_at": "2026-11-20T23:01:00+05:30:15", "next_check_time": "2026-11-20T23:00:00+00:00:59"}"#;
    checks::check_jsonl_line(line);
    let ring = checks::ring();
    let entry = decode_line(line, ring).unwrap();
    let again = encode_line(&entry, ring).unwrap();
    assert!(
        again.contains(r#""fetch_time": "2026-11-20T23:00:00+05:30:15""#),
        "{again}"
    );
    assert_eq!(decode_line(again.as_bytes(), ring).unwrap(), entry);
}

/// Found by `warm_csv` (1.1 million executions in; minimized by `cargo fuzz tmin` to the input
/// below): for `http` and `https` the url crate (WHATWG) skips any number of slashes after
/// `scheme:`, so `http:///host:80` validated with the host `host`, but the row stored the text as
/// written, whose authority is empty for an RFC 3986 reader (Python's `urllib.parse`, so
/// proxywhirl: no host), and whose empty userinfo (`http:///@host`) was not removed. The module
/// documents a proxy URL as "written as `scheme://`, a non-empty host": such a row is skipped.
#[test]
fn regression_warm_url_with_extra_slashes() {
    use pw_cache::warm_file::{WarmFormat, parse_warm_bytes};

    // The minimized crash, through the target's own check (CSV), then every format.
    checks::check_warm_csv(b"proxy_url\nhttp:///@ana");
    for url in [
        "http:///@ana",
        "http:///ana:80",
        "http:////ana:80",
        "HTTPS:///ana",
        "http:///:@ana:80",
    ] {
        let inputs = [
            (WarmFormat::Csv, format!("proxy_url\n{url}\n")),
            (WarmFormat::Jsonl, format!("{{\"proxy_url\": \"{url}\"}}\n")),
            (WarmFormat::Json, format!("[{{\"proxy_url\": \"{url}\"}}]")),
        ];
        for (format, text) in inputs {
            match format {
                WarmFormat::Csv => checks::check_warm_csv(text.as_bytes()),
                WarmFormat::Jsonl => checks::check_warm_jsonl(text.as_bytes()),
                WarmFormat::Json => checks::check_warm_json(text.as_bytes()),
            }
            let file = parse_warm_bytes(format, text.as_bytes(), Path::new("regression")).unwrap();
            let stored: Vec<&str> = file.rows.iter().map(|row| row.proxy_url.as_str()).collect();
            assert!(stored.is_empty(), "{format} {url:?} was stored as {stored:?}");
            assert_eq!(file.skipped(), 1, "{format} {url:?}: {:?}", file.issues);
        }
    }
}
