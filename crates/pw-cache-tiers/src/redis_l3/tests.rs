//! Unit tests of the Redis L3 tier that need no server (the integration tests in `tests/`
//! run one).

/// Without the `redis-tls` feature a `rediss://` URL is a typed error at open, before any
/// connection, naming the feature.
#[cfg(not(feature = "redis-tls"))]
#[test]
fn rediss_without_the_tls_feature_is_a_typed_error() {
    let options = RedisL3Options::new(Secret::new("rediss://:pw-not-shown@127.0.0.1:1"));
    let ring = Arc::new(KeyRing::new(pw_cache_crypto::FernetKey::generate(), []));
    let err = RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), ring).unwrap_err();
    assert!(matches!(err, TierError::Remote { .. }), "{err}");
    assert!(!err.to_string().contains("pw-not-shown"), "{err}");
}

use std::time::Duration;

use pw_cache_crypto::KeyRing;
use pw_cache_model::limits;
use pw_cache_model::{CacheEntry, Secret};

use crate::error::TierError;

use super::codec::{FIELD_LIMITS, Fields, entry_fields, field_limit, real, unix_millis_ceil};
use super::names::glob_escape;
use super::redact::Redactor;
use super::replies::Stored;
use super::scripts::{
    CLEANUP_LUA, CLEAR_LUA, DELETE_LUA, KEYS_LUA, PRUNE_HISTORY_LUA, PUT_LUA, READ_HISTORY_LUA, READ_LUA, REBUILD_LUA,
    RECORD_CHECK_LUA, RECORD_USES_LUA, SIZE_LUA, TOUCH_LUA, with_entry_fields,
};
use super::subscriber::parse_event;
use super::version::version_at_least;
use super::{ChangeKind, RedisL3Options, RemoteEvent};
// For the test without the `redis-tls` feature.
#[cfg(not(feature = "redis-tls"))]
use {super::RedisL3Tier, pw_cache_model::CacheTierConfig, std::sync::Arc};

#[test]
fn redactor_masks_url_userinfo_and_password() {
    let r = Redactor::new("redis://user:p%40ss@example.invalid:6379/2");
    let text = "failed redis://user:p%40ss@example.invalid:6379/2 with p@ss, p%40ss, user:p%40ss";
    assert_eq!(r.clean(text), "failed *** with ***, ***, ***");
    assert_eq!(r.clean("user_script:1"), "user_script:1", "a user name is no secret");
    let r = Redactor::new("redis://:sekrit@127.0.0.1:1/");
    assert_eq!(r.clean("x sekrit y"), "x *** y");
    assert_eq!(Redactor::new("redis://127.0.0.1:6379").clean("nothing"), "nothing");
}

#[test]
fn options_debug_hides_the_url() {
    let o = RedisL3Options::new(Secret::new("redis://:sekrit@127.0.0.1:1"));
    let text = format!("{o:?}");
    assert!(!text.contains("sekrit") && !text.contains("127.0.0.1"), "{text}");
}

#[test]
fn bad_options_are_refused() {
    let url = || Secret::new("redis://127.0.0.1:1");
    for o in [
        RedisL3Options::new(url()).with_namespace(""),
        RedisL3Options::new(url()).with_namespace("a}b"),
        RedisL3Options::new(url()).with_namespace("a b"),
        RedisL3Options::new(url()).with_pool_size(0),
        RedisL3Options::new(url()).with_history_cap(0),
        RedisL3Options::new(url()).with_command_timeout(Duration::ZERO),
    ] {
        assert!(matches!(o.check(), Err(TierError::Remote { .. })), "{o:?}");
    }
    assert!(RedisL3Options::new(url()).check().is_ok());
}

#[test]
fn events_parse_and_skip_their_own_origin() {
    let me = 0xabc;
    assert_eq!(parse_event(b"0000000000000abc put k", me), None);
    assert_eq!(
        parse_event(b"00000000000000ff put a key with spaces", me),
        Some(RemoteEvent::Changed {
            key: "a key with spaces".to_owned(),
            kind: ChangeKind::Put
        })
    );
    assert_eq!(parse_event(b"ff clear -", me), Some(RemoteEvent::Cleared));
    assert_eq!(
        parse_event(b"ff health k", me),
        Some(RemoteEvent::Changed {
            key: "k".to_owned(),
            kind: ChangeKind::Health
        })
    );
    assert_eq!(parse_event(b"ff nonsense k", me), None);
    assert_eq!(parse_event(b"zz put k", me), None);
}

#[test]
fn expiry_is_rounded_up_to_the_millisecond() {
    use time::macros::datetime;
    assert_eq!(unix_millis_ceil(datetime!(1970-01-01 00:00:01 UTC)), 1000);
    assert_eq!(unix_millis_ceil(datetime!(1970-01-01 00:00:01.000001 UTC)), 1001);
    assert_eq!(unix_millis_ceil(datetime!(1969-12-31 23:59:59.9995 UTC)), 0);
}

#[test]
fn floats_are_written_shortest() {
    assert_eq!(real(1_700_000_000.123_456), "1700000000.123456");
    assert_eq!(real(1.0), "1");
    assert_eq!(real(0.1), "0.1");
}

/// Every script declares its flags: those that may grow memory none (refused over
/// `maxmemory`), those that only delete `allow-oom`, the read `no-writes`.
#[test]
fn every_script_declares_its_flags() {
    for (script, flags) in [
        (PUT_LUA, "#!lua\n"),
        (TOUCH_LUA, "#!lua\n"),
        (RECORD_USES_LUA, "#!lua\n"),
        (RECORD_CHECK_LUA, "#!lua\n"),
        (REBUILD_LUA, "#!lua\n"),
        (DELETE_LUA, "#!lua flags=allow-oom\n"),
        (CLEAR_LUA, "#!lua flags=allow-oom\n"),
        (CLEANUP_LUA, "#!lua flags=allow-oom\n"),
        (SIZE_LUA, "#!lua flags=allow-oom\n"),
        (KEYS_LUA, "#!lua flags=allow-oom\n"),
        (PRUNE_HISTORY_LUA, "#!lua flags=allow-oom\n"),
        (READ_LUA, "#!lua flags=no-writes\n"),
        (READ_HISTORY_LUA, "#!lua flags=no-writes\n"),
    ] {
        assert!(script.starts_with(flags), "{flags:?}: {}", &script[..40]);
        let built = with_entry_fields(script);
        assert!(built.starts_with(flags) && built.contains("local BUDGET = ") && !built.contains("@"));
    }
}

/// The token limit is the length of the token of the longest credential, as the ring makes
/// it; every field's limit is in the scripts' table.
#[test]
fn limits_match_the_tokens_and_the_scripts() {
    let ring = KeyRing::new(pw_cache_crypto::FernetKey::generate(), []);
    for n in [0, 1, 15, 16, 17, 100, limits::MAX_CREDENTIAL_BYTES] {
        let token = ring.encrypt(&Secret::new("x".repeat(n)));
        assert_eq!(token.as_str().len(), limits::fernet_token_len(n), "{n}");
    }
    let built = with_entry_fields(READ_LUA);
    for (field, limit) in FIELD_LIMITS {
        assert!(built.contains(&format!("['{field}'] = {limit}")), "{field}");
        assert_eq!(field_limit(field), limit);
    }
    assert_eq!(field_limit("password_encrypted"), limits::MAX_CREDENTIAL_TOKEN_BYTES);
}

#[test]
fn versions_compare() {
    assert!(version_at_least("7.0.15", (7, 0)));
    assert!(version_at_least("7.2.4", (7, 0)));
    assert!(version_at_least("10.0.0", (7, 0)));
    assert!(version_at_least("8", (7, 0)));
    assert!(!version_at_least("6.2.14", (7, 0)));
    assert!(!version_at_least("6", (7, 0)));
    assert!(!version_at_least("garbage", (7, 0)));
}

#[test]
fn scan_patterns_are_escaped() {
    assert_eq!(glob_escape("pwc:{a*b?[c]\\}:e:"), "pwc:{a\\*b\\?\\[c\\]\\\\}:e:");
    assert_eq!(glob_escape("pwc:{pw-cache}:e:"), "pwc:{pw-cache}:e:");
}

#[test]
fn read_replies_parse() {
    use redis::Value::{Array, BulkString, Int};
    let bulk = |s: &str| BulkString(s.as_bytes().to_vec());
    assert!(matches!(Stored::parse(Array(vec![])), Some(Stored::Absent)));
    let Some(Stored::Unreadable(reason)) =
        Stored::parse(Array(vec![bulk("!size"), bulk("proxy_url"), Int(67_108_864)]))
    else {
        panic!("a marker")
    };
    assert!(
        reason.contains("proxy_url") && reason.contains("67108864") && reason.contains("2048"),
        "{reason}"
    );
    assert!(matches!(
        Stored::parse(Array(vec![bulk("!type")])),
        Some(Stored::Unreadable(_))
    ));
    // A field that looks like a marker is a field.
    assert!(matches!(
        Stored::parse(Array(vec![bulk("!size"), bulk("x")])),
        Some(Stored::Fields(_))
    ));
    // A hash read whole: its values are checked here.
    let Some(Stored::Unreadable(reason)) = Stored::parse(Array(vec![bulk("source"), bulk(&"s".repeat(1025))])) else {
        panic!("too long")
    };
    assert!(reason.contains("source") && reason.contains("1025"), "{reason}");
    assert!(matches!(
        Stored::parse(Array(vec![bulk("key"), bulk("k"), bulk("other"), bulk(&"x".repeat(9000))])),
        Some(Stored::Fields(flat)) if flat.len() == 4
    ));
    assert!(Stored::parse(Int(1)).is_none());
}

#[test]
fn a_hash_naming_another_key_is_corrupt() {
    let ring = KeyRing::new(pw_cache_crypto::FernetKey::generate(), []);
    let entry = CacheEntry::new("http://10.0.0.1:80", "s", 60)
        .unwrap()
        .with_key("victim");
    let mut flat: Vec<Vec<u8>> = entry_fields(&entry, &ring)
        .unwrap()
        .into_iter()
        .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.into_bytes()])
        .collect();
    assert!(Fields::new("victim", &flat).entry(&ring).is_ok());
    let err = Fields::new("decoy", &flat).entry(&ring).unwrap_err();
    assert!(
        matches!(err, TierError::Corrupt { .. }) && err.to_string().contains("field key"),
        "{err}"
    );
    assert!(Fields::new("decoy", &flat).check_key().is_err());
    flat.truncate(0);
    assert!(Fields::new("decoy", &flat).check_key().is_err(), "no key field");
}
