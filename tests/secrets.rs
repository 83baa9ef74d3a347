//! Credentials never leave an entry or a config through Debug, Display, serde or errors.

use pw_cache::{CacheConfig, CacheEntry, EntryError, Secret};

const USER: &str = "user-7f3a91";
const PASS: &str = "pass-0b5c2e";
const KEY: &str = "key-aa81d4";

fn entry() -> CacheEntry {
    CacheEntry::new("http://10.1.2.3:3128", "fetched", 3600)
        .unwrap()
        .with_credentials(Some(Secret::new(USER)), Some(Secret::new(PASS)))
}

fn assert_clean(what: &str, text: &str) {
    for secret in [USER, PASS, KEY] {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

#[test]
fn entry_outputs_hold_no_secret() {
    let e = entry();
    assert_clean("Debug", &format!("{e:?}"));
    assert_clean("pretty Debug", &format!("{e:#?}"));
    assert_clean("serde_json", &serde_json::to_string(&e).unwrap());
    assert_clean("JSON line", &e.to_json_line());
    assert_clean("Display of a credential", &format!("{}", e.password.as_ref().unwrap()));
    // ... and yet the values are there, behind an explicit call.
    assert_eq!(e.username.as_ref().unwrap().expose_secret(), USER);
    assert_eq!(e.password.as_ref().unwrap().expose_secret(), PASS);
}

#[test]
fn errors_hold_no_secret() {
    let mut raw: serde_json::Value = serde_json::from_str(&entry().to_json_line()).unwrap();
    raw["username"] = USER.into();
    raw["password"] = PASS.into();
    raw["expires_at"] = "not a time".into();
    let err = CacheEntry::from_json_str(&raw.to_string()).unwrap_err();
    assert!(
        matches!(&err, EntryError::Json { path, .. } if path == "expires_at"),
        "{err}"
    );
    assert_clean("entry error", &err.to_string());
    assert_clean("entry error Debug", &format!("{err:?}"));
}

#[test]
fn config_outputs_hold_no_key() {
    let config = CacheConfig::builder()
        .encryption_key(Some(Secret::new(KEY)))
        .build()
        .unwrap();
    assert_clean("config Debug", &format!("{config:?}"));
    assert_clean("config JSON", &serde_json::to_string(&config).unwrap());
    assert_clean("builder Debug", &format!("{:?}", config.to_builder()));
}
