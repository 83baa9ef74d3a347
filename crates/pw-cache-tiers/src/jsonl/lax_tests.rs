//! Unit tests of lax reading: a line proxywhirl 0.3.3 reads (`json.loads`, `fromisoformat` on
//! strings, pydantic's lax `CacheEntry(**data)`) reads for us too; what it refuses stays
//! unreadable. Each line here was read by the real proxywhirl (`JsonlCacheTier.get`) to check the
//! expectation.

use std::fmt::{self, Write as _};
use std::sync::Mutex as StdMutex;

use pw_cache_crypto::FernetKey;
use pw_cache_model::Secret;
use time::macros::datetime;

use super::*;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

/// The fields every line below shares (the required ones).
const BASE: &str = r#""proxy_url": "http://10.0.0.1:8080", "source": "s", "fetch_time": "2100-01-01T00:00:00+00:00", "last_accessed": "2100-01-01T00:00:00+00:00", "ttl_seconds": 3600, "expires_at": "2100-01-01T01:00:00+00:00""#;

/// A directory holding `lines` (each `(key, line)`) in their md5 shards, and a tier on it.
fn tier_with(lines: &[(String, String)]) -> (tempfile::TempDir, JsonlTier) {
    let dir = tempfile::tempdir().unwrap();
    let mut shards: HashMap<usize, String> = HashMap::new();
    for (key, line) in lines {
        let text = shards.entry(shard_of(key)).or_default();
        text.push_str(line);
        text.push('\n');
    }
    for (shard, text) in shards {
        fs::write(dir.path().join(shard_file_name(shard)), text).unwrap();
    }
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), ring()).unwrap();
    (dir, tier)
}

fn line(key: &str, extra: &str) -> (String, String) {
    (key.to_owned(), format!(r#"{{"key": "{key}", {BASE}{extra}}}"#))
}

#[test]
fn integers_booleans_and_numeric_times_are_read_as_pydantic_reads_them() {
    let all = (
        "lax-all".to_owned(),
        r#"{"key": "lax-all", "proxy_url": "http://10.0.0.1:8080", "source": "s", "fetch_time": 1700000000, "last_accessed": 1700000000123, "access_count": "5", "ttl_seconds": 3600.0, "expires_at": "2100-01-01T00:00:00+00:00", "failure_count": "2", "evicted_from_l1": "yes", "consecutive_health_failures": true, "consecutive_health_successes": " 3 ", "recovery_attempt": "1_0", "next_check_time": 1700000000.5, "total_health_checks": 7.0, "total_health_check_failures": "4.00"}"#.to_owned(),
    );
    let (_dir, tier) = tier_with(std::slice::from_ref(&all));
    let e = tier.get("lax-all").unwrap().unwrap();
    assert_eq!(
        (
            e.access_count,
            e.ttl_seconds,
            e.failure_count,
            e.evicted_from_l1,
            e.consecutive_health_failures,
            e.consecutive_health_successes,
            e.recovery_attempt,
            e.total_health_checks,
            e.total_health_check_failures,
        ),
        (5, 3600, 2, true, 1, 3, 10, 7, 4)
    );
    assert_eq!(e.fetch_time, datetime!(2023-11-14 22:13:20 UTC));
    assert_eq!(e.last_accessed, datetime!(2023-11-14 22:13:20.123 UTC), "milliseconds");
    assert_eq!(e.next_check_time, Some(datetime!(2023-11-14 22:13:20.5 UTC)));
    assert!(tier.damage().is_clean());
}

#[test]
fn evicted_from_l1_takes_what_pydantic_takes_for_a_bool() {
    let cases = [
        ("true", true),
        ("false", false),
        ("1", true),
        ("0", false),
        ("1.0", true),
        ("0.0", false),
        (r#""true""#, true),
        (r#""False""#, false),
        (r#""YES""#, true),
        (r#""no""#, false),
        (r#""On""#, true),
        (r#""off""#, false),
        (r#""1""#, true),
        (r#""0""#, false),
        (r#""t""#, true),
        (r#""F""#, false),
        (r#""y""#, true),
        (r#""N""#, false),
    ];
    let lines: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (v, _))| line(&format!("bool-{i}"), &format!(r#", "evicted_from_l1": {v}"#)))
        .collect();
    let (_dir, tier) = tier_with(&lines);
    for (i, (v, want)) in cases.iter().enumerate() {
        let e = tier.get(&format!("bool-{i}")).unwrap().unwrap();
        assert_eq!(e.evicted_from_l1, *want, "{v}");
    }
}

#[test]
fn a_repeated_member_reads_as_its_last_value() {
    let (_dir, tier) = tier_with(&[line("dup", r#", "failure_count": 1, "failure_count": 3"#)]);
    assert_eq!(tier.get("dup").unwrap().unwrap().failure_count, 3);
    assert!(tier.damage().is_clean());
}

#[test]
fn what_proxywhirl_refuses_stays_unreadable() {
    let refused = [
        line("neg-failure", r#", "failure_count": -1"#),
        line("frac-access", r#", "access_count": 5.5"#),
        line("exp-access", r#", "access_count": "1e3""#),
        line("space-bool", r#", "evicted_from_l1": " true""#),
        line("two-bool", r#", "evicted_from_l1": 2"#),
        line("null-count", r#", "recovery_attempt": null"#),
        (
            "str-time".to_owned(),
            format!(
                r#"{{"key": "str-time", {}}}"#,
                BASE.replace(
                    r#""fetch_time": "2100-01-01T00:00:00+00:00""#,
                    r#""fetch_time": "1700000000""#
                )
            ),
        ),
        (
            "bool-time".to_owned(),
            format!(
                r#"{{"key": "bool-time", {}}}"#,
                BASE.replace(r#""fetch_time": "2100-01-01T00:00:00+00:00""#, r#""fetch_time": true"#)
            ),
        ),
        (
            "neg-ttl".to_owned(),
            format!(
                r#"{{"key": "neg-ttl", {}}}"#,
                BASE.replace(r#""ttl_seconds": 3600"#, r#""ttl_seconds": "-5""#)
            ),
        ),
    ];
    let (dir, tier) = tier_with(&refused);
    for (key, _) in &refused {
        let err = tier.get(key).unwrap_err();
        assert!(err.is_corrupt_entry(), "{key}: {err}");
    }
    assert_eq!(tier.damage().invalid_entries, refused.len() as u64);
    // And they are kept: a put and a delete of other keys rewrite their shards around them.
    for (key, text) in &refused {
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|k| shard_of(k) == shard_of(key))
            .unwrap();
        let e = CacheEntry::new_at("http://10.0.0.2:1", "s", 60, datetime!(2100-01-01 0:00 UTC))
            .unwrap()
            .with_key(&other);
        tier.put(&e).unwrap();
        assert!(tier.delete(&other).unwrap());
        let shard = fs::read_to_string(dir.path().join(shard_file_name(shard_of(key)))).unwrap();
        assert!(shard.lines().any(|l| l == text), "{key}: {shard}");
    }
}

/// Runs `f` with a subscriber that keeps the WARN events (their fields, as text) of this
/// thread.
pub(super) fn capture_warnings<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    struct Capture(Arc<StdMutex<Vec<String>>>);
    struct Fields<'a>(&'a mut String);
    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }
    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = String::new();
                event.record(&mut Fields(&mut text));
                self.0.lock().unwrap().push(text);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let out = tracing::subscriber::with_default(Capture(Arc::clone(&seen)), f);
    let seen = seen.lock().unwrap().clone();
    (out, seen)
}

#[test]
fn counts_out_of_our_range_read_as_the_nearest_and_are_reported() {
    let ring = ring();
    let with_credentials = CacheEntry::new_at("http://10.0.0.3:1", "s", 60, datetime!(2100-01-01 0:00 UTC))
        .unwrap()
        .with_key("neg-access")
        .with_credentials(Some(Secret::new("the-user")), Some(Secret::new("the-password")));
    let text = encode_line(&with_credentials, &ring)
        .unwrap()
        .replace(r#""access_count": 0"#, r#""access_count": -1"#);
    let big = line("big-count", r#", "total_health_checks": "18446744073709551616""#);
    let dir = tempfile::tempdir().unwrap();
    for (key, l) in [("neg-access".to_owned(), text.clone()), big] {
        let path = dir.path().join(shard_file_name(shard_of(&key)));
        let mut all = fs::read_to_string(&path).unwrap_or_default();
        all.push_str(&l);
        all.push('\n');
        fs::write(path, all).unwrap();
    }
    let (tier, warnings) =
        capture_warnings(|| JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap());
    let e = tier.get("neg-access").unwrap().unwrap();
    assert_eq!(
        e.access_count, 0,
        "access_count has no bound in the reference: -1 reads as 0"
    );
    assert_eq!(e.password.as_ref().map(Secret::expose_secret), Some("the-password"));
    assert_eq!(tier.get("big-count").unwrap().unwrap().total_health_checks, u64::MAX);
    assert!(tier.damage().is_clean(), "not damage: {:?}", tier.damage());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let neg = warnings.iter().find(|w| w.contains("neg-access")).unwrap();
    assert!(
        neg.contains("field=\"access_count\"") && neg.contains("stored=-1") && neg.contains("read_as=0"),
        "{neg}"
    );
    let big = warnings.iter().find(|w| w.contains("big-count")).unwrap();
    assert!(
        big.contains("field=\"total_health_checks\"") && big.contains("stored=18446744073709551616"),
        "{big}"
    );
    for w in &warnings {
        assert!(
            !w.contains("the-password") && !w.contains("the-user") && !w.contains("67414141"),
            "{w}"
        );
    }
    // decode_line, the reader of other callers, reports too.
    let (decoded, warnings) = capture_warnings(|| decode_line(text.as_bytes(), &ring).unwrap());
    assert_eq!(decoded.access_count, 0);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

/// Puts and deletes another key of `key`'s shard (a rewrite of the shard), then says whether
/// the shard still holds `text` as one of its lines.
fn kept_through_a_rewrite(dir: &Path, tier: &JsonlTier, key: &str, text: &str) -> bool {
    let other = (0..)
        .map(|i| format!("other-{i}"))
        .find(|k| shard_of(k) == shard_of(key))
        .unwrap();
    let e = CacheEntry::new_at("http://10.0.0.2:1", "s", 60, datetime!(2100-01-01 0:00 UTC))
        .unwrap()
        .with_key(&other);
    tier.put(&e).unwrap();
    assert!(tier.delete(&other).unwrap());
    let shard = fs::read_to_string(dir.join(shard_file_name(shard_of(key)))).unwrap();
    shard.lines().any(|l| l == text)
}

#[test]
fn an_integer_literal_beyond_u64_reads_as_the_nearest_and_is_reported() {
    let big = line("big-literal", r#", "access_count": 18446744073709551621"#);
    let ((dir, tier), warnings) = capture_warnings(|| tier_with(std::slice::from_ref(&big)));
    assert_eq!(tier.get("big-literal").unwrap().unwrap().access_count, u64::MAX);
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("big-literal")
            && warnings[0].contains("field=\"access_count\"")
            && warnings[0].contains("stored=18446744073709551621"),
        "{warnings:?}"
    );
    assert!(kept_through_a_rewrite(dir.path(), &tier, "big-literal", &big.1));
}

#[test]
fn a_lone_surrogate_reads_as_u_fffd_and_the_line_is_left_as_it_is() {
    let odd = line("lone", r#", "last_health_error": "a\ud800b""#);
    let ((dir, tier), warnings) = capture_warnings(|| tier_with(std::slice::from_ref(&odd)));
    assert_eq!(tier.keys().unwrap(), ["lone"], "indexed");
    assert_eq!(tier.size().unwrap(), 1);
    let (e, get_warnings) = capture_warnings(|| tier.get("lone").unwrap().unwrap());
    assert_eq!(e.last_health_error.as_deref(), Some("a\u{fffd}b"));
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    // Reported when the line is indexed, naming the key and the member.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("key=lone") && warnings[0].contains("field=last_health_error"),
        "{warnings:?}"
    );
    assert!(get_warnings.is_empty(), "{get_warnings:?}");
    // The stored line is never rewritten for it.
    let shard = dir.path().join(shard_file_name(shard_of("lone")));
    assert_eq!(fs::read_to_string(&shard).unwrap(), format!("{}\n", odd.1));
    assert!(kept_through_a_rewrite(dir.path(), &tier, "lone", &odd.1));
    assert_eq!(tier.get("lone").unwrap().unwrap(), e);
}

#[test]
fn plaintext_credentials_are_read_and_reported_once_per_line() {
    let lines = [
        line("plain-both", r#", "username": "alice", "password": "hunter2""#),
        line("plain-user", r#", "username": "carol""#),
    ];
    let ((_dir, tier), warnings) = capture_warnings(|| tier_with(&lines));
    let e = tier.get("plain-both").unwrap().unwrap();
    assert_eq!(e.username.as_ref().map(Secret::expose_secret), Some("alice"));
    assert_eq!(e.password.as_ref().map(Secret::expose_secret), Some("hunter2"));
    let e = tier.get("plain-user").unwrap().unwrap();
    assert_eq!(e.username.as_ref().map(Secret::expose_secret), Some("carol"));
    assert!(e.password.is_none());
    assert_eq!(warnings.len(), 2, "one per line: {warnings:?}");
    let both = warnings.iter().find(|w| w.contains("plain-both")).unwrap();
    assert!(both.contains("username, password"), "{both}");
    for w in &warnings {
        assert!(
            !w.contains("alice") && !w.contains("hunter2") && !w.contains("carol"),
            "{w}"
        );
    }
    // A put of the entry stores it encrypted.
    tier.put(&e).unwrap();
    let shard = fs::read_to_string(tier.shard_path(shard_of("plain-user"))).unwrap();
    let last = shard.lines().last().unwrap();
    assert!(
        last.contains("\"username_encrypted\": \"") && !last.contains("carol"),
        "{last}"
    );
    assert_eq!(tier.get("plain-user").unwrap().unwrap(), e);
}

#[test]
fn nan_makes_an_unreadable_entry_that_is_indexed_and_kept() {
    let nan = line("nan-count", r#", "access_count": NaN"#);
    let ignored = line("nan-extra", r#", "created_at": -Infinity"#);
    let (dir, tier) = tier_with(&[nan.clone(), ignored]);
    let mut keys = tier.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["nan-count", "nan-extra"]);
    assert_eq!(tier.size().unwrap(), 2);
    let err = tier.get("nan-count").unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    assert!(
        err.to_string().contains("access_count") && err.to_string().contains("NaN"),
        "{err}"
    );
    assert_eq!(tier.damage().invalid_entries, 1);
    assert_eq!(tier.damage().undecodable_lines, 0);
    // A member the entry does not have is ignored, as pydantic ignores it.
    assert_eq!(tier.get("nan-extra").unwrap().unwrap().key, "nan-extra");
    assert!(kept_through_a_rewrite(dir.path(), &tier, "nan-count", &nan.1));
    // Not even expiry cleanup or eviction removes it.
    assert_eq!(tier.cleanup_expired(datetime!(2200-01-01 0:00 UTC)).unwrap(), 1);
    assert!(kept_through_a_rewrite(dir.path(), &tier, "nan-count", &nan.1));
}
