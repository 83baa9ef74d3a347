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

/// A proxy URL holding credentials would be written to disk as it is (the URL is not
/// encrypted): the manager refuses it with a typed error that does not repeat them, stores
/// nothing, and no file under the cache holds them.
#[test]
fn a_proxy_url_holding_credentials_is_refused() {
    use pw_cache::ManagerError;
    use pw_cache_tests::managers;

    let dir = tempfile::tempdir().unwrap();
    let config = managers::config(dir.path(), pw_cache::L2BackendType::Jsonl, 10)
        .build()
        .unwrap();
    let manager = managers::open(config, &managers::test_ring(), None);
    for url in [
        "http://alice:hunter2-url@10.0.0.1:8080",
        "socks5://hunter2-url@10.0.0.2:1080",
    ] {
        let entry = CacheEntry::new(url, "user", 60).unwrap();
        let err = manager.put(&entry).unwrap_err();
        assert!(matches!(err, ManagerError::InvalidEntry { .. }), "{err:?}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("hunter2-url") && !text.contains("alice"), "{text}");
        }
        assert!(manager.get(&entry.key).is_none(), "{url}: stored anyway");
    }
    // The same proxy with its credentials where they belong is stored, encrypted.
    let entry = CacheEntry::new("http://10.0.0.1:8080", "user", 60)
        .unwrap()
        .with_credentials(Some(Secret::new("alice")), Some(Secret::new("hunter2-url")));
    manager.put(&entry).unwrap();
    manager.close().unwrap();
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(b"hunter2-url".len()).any(|w| w == b"hunter2-url"),
            "{} holds the password in plaintext",
            file.display()
        );
    }
}

/// `new_entry` and `put` validate `proxy_url` with the one validator warm uses: a text that is
/// not a proxy URL is refused as warm refuses it, with the same reason, and nothing is stored.
#[test]
fn new_entry_put_and_warm_refuse_the_same_urls() {
    use pw_cache::ManagerError;
    use pw_cache_tests::managers;

    let dir = tempfile::tempdir().unwrap();
    let config = managers::config(dir.path(), pw_cache::L2BackendType::Sqlite, 10)
        .build()
        .unwrap();
    let manager = managers::open(config, &managers::test_ring(), None);
    for (url, why) in [
        ("not a url", "is not a valid proxy URL"),
        ("ftp://10.0.0.1:21", "is not a proxy scheme"),
        ("http://10.0.0.1:8080/path", "has a path"),
    ] {
        let err = manager.new_entry(url, "user").unwrap_err();
        assert!(
            matches!(&err, ManagerError::InvalidEntry { reason, .. } if reason.contains(why)),
            "{url}: {err}"
        );
        let entry = CacheEntry::new(url, "user", 60).unwrap();
        let err = manager.put(&entry).unwrap_err();
        assert!(
            matches!(&err, ManagerError::InvalidEntry { reason, .. } if reason.contains(why)),
            "{url}: {err}"
        );
        assert!(manager.get(&entry.key).is_none());
        let file = dir.path().join("warm.csv");
        std::fs::write(&file, format!("proxy_url\n\"{url}\"\n")).unwrap();
        let report = manager.warm_from_file(&file, None).unwrap();
        assert_eq!(report.loaded, 0, "{url}");
        assert!(report.issues[0].reason.contains(why), "{url}: {report:?}");
    }
    manager.new_entry("socks5://10.0.0.1:1080", "user").unwrap();
    manager.close().unwrap();
}

/// Every file under `root`.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
