//! The JSONL tier against proxywhirl 0.3.3's `JsonlCacheTier` files, both ways:
//! - every entry of the fixtures' `jsonl_l2/` reads back as Python read it (manifest.json),
//!   field by field, credentials included;
//! - what we write is, line for line, what proxywhirl writes (byte for byte but for the
//!   Fernet tokens, whose IVs are random: those decrypt to the same values), and proxywhirl's
//!   reader rules (re-implemented below) read it back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pw_cache::crypto::KeyRing;
use pw_cache::tiers::CacheTier;
use pw_cache::tiers::jsonl::{JsonlTier, NUM_SHARDS, encode_line, shard_file_name, shard_of};
use pw_cache::{CacheEntry, CacheTierConfig, HealthStatus, Secret};
use pw_cache_tests::{
    ENTRY_FIELDS, assert_tier_matches_manifest, entry_as_manifest, fernet_reference, fixture_keys, fixture_ring,
    hex_decode, manifest, proxywhirl_fixtures,
};
use serde_json::Value;

/// A copy of the fixtures' `jsonl_l2/` (the fixtures are never written to).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(proxywhirl_fixtures().join("jsonl_l2")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn manifest_entries() -> Vec<Value> {
    manifest()["stores"]["jsonl_l2"]["entries"].as_array().unwrap().clone()
}

#[test]
fn every_fixture_entry_reads_back_as_python_read_it() {
    let dir = fixture_copy();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_tier_matches_manifest(&tier, "jsonl_l2");
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    assert_eq!(tier.dead_lines(), 0);
}

#[test]
fn the_shard_rule_is_the_fixtures() {
    for want in manifest_entries() {
        let key = want["key"].as_str().unwrap();
        assert_eq!(shard_of(key) as u64, want["md5_shard"].as_u64().unwrap(), "{key}");
        let location = &want["physical_locations"][0]["shard_file"];
        assert_eq!(location.as_str().unwrap(), shard_file_name(shard_of(key)), "{key}");
    }
}

/// Replaces the value of every `"..._encrypted": "<hex>"` field by `<token>`, returning the
/// line and the hex values in order.
fn mask_tokens(line: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut tokens = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("_encrypted\": \"") {
        let start = at + "_encrypted\": \"".len();
        let end = start + rest[start..].find('"').unwrap();
        out.push_str(&rest[..start]);
        out.push_str("<token>");
        tokens.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    out.push_str(rest);
    (out, tokens)
}

/// What a token decrypts to, by the Fernet spec implemented independently of our crypto crate,
/// trying the fixtures' keys as Python's `MultiFernet` does.
fn python_decrypt(hex: &str) -> String {
    let bytes = hex_decode(hex);
    let (current, previous) = fixture_keys();
    let opened = fernet_reference::open(&current, &bytes)
        .or_else(|| fernet_reference::open(&previous, &bytes))
        .expect("a token the fixture keys open");
    String::from_utf8(opened.plaintext).unwrap()
}

#[test]
fn our_shards_are_the_references_line_for_line() {
    let fixtures = fixture_copy();
    let source = JsonlTier::open(fixtures.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let ours = JsonlTier::open(out.path(), &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    // Put every fixture entry, in the fixtures' file order, into an empty directory.
    for shard in 0..NUM_SHARDS {
        let text = std::fs::read_to_string(fixtures.path().join(shard_file_name(shard))).unwrap();
        for line in text.lines() {
            let key = serde_json::from_str::<Value>(line).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned();
            ours.put(&source.get(&key).unwrap().unwrap()).unwrap();
        }
    }
    let manifest: BTreeMap<String, Value> = manifest_entries()
        .into_iter()
        .map(|e| (e["key"].as_str().unwrap().to_owned(), e))
        .collect();
    let mut compared = 0;
    for shard in 0..NUM_SHARDS {
        let name = shard_file_name(shard);
        let theirs = std::fs::read_to_string(fixtures.path().join(&name)).unwrap();
        let mine = std::fs::read_to_string(out.path().join(&name)).unwrap();
        assert!(mine.ends_with('\n') && !mine.contains('\r'), "{name}");
        assert_eq!(mine.lines().count(), theirs.lines().count(), "{name}");
        for (t, m) in theirs.lines().zip(mine.lines()) {
            let ((t_masked, t_tokens), (m_masked, m_tokens)) = (mask_tokens(t), mask_tokens(m));
            assert_eq!(m_masked, t_masked, "{name}");
            assert_eq!(m_tokens.len(), t_tokens.len(), "{name}");
            if !m_tokens.is_empty() {
                assert_ne!(m_tokens, t_tokens, "fresh tokens have fresh IVs");
            }
            let key = serde_json::from_str::<Value>(m).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned();
            let want = &manifest[&key];
            let fields: Vec<&str> = ["username", "password"]
                .into_iter()
                .filter(|f| m.contains(&format!("\"{f}_encrypted\"")))
                .collect();
            for (field, hex) in fields.iter().zip(&m_tokens) {
                assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert_eq!(python_decrypt(hex), want[*field].as_str().unwrap(), "{key}.{field}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 200);
}

/// The field names of a flat JSON object, in their order in the text: the strings at depth 1
/// that are followed by `:`.
fn field_order(json: &str) -> Vec<String> {
    let (mut names, mut depth, mut chars) = (Vec::new(), 0, json.char_indices().peekable());
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let mut end = i + 1;
                while let Some((j, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = j;
                            break;
                        }
                        _ => {}
                    }
                }
                let is_name = json[end + 1..].trim_start().starts_with(':');
                if depth == 1 && is_name {
                    names.push(serde_json::from_str::<String>(&json[i..=end]).unwrap());
                }
            }
            _ => {}
        }
    }
    names
}

/// proxywhirl 0.3.3's reader (`_rebuild_index` + `_read_shard`), in a few lines: for each
/// shard 0..16, for each line (universal newlines), skip blank lines and lines `json.loads`
/// rejects, and keep `data` under `data["key"]`, the last line (and the last shard) winning.
fn python_read(dir: &Path) -> BTreeMap<String, (usize, Value, String)> {
    let mut entries = BTreeMap::new();
    for shard in 0..NUM_SHARDS {
        let Ok(text) = std::fs::read_to_string(dir.join(shard_file_name(shard))) else {
            continue;
        };
        for line in text.replace("\r\n", "\n").replace('\r', "\n").split_inclusive('\n') {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(data) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(key) = data.get("key").and_then(Value::as_str) {
                entries.insert(key.to_owned(), (shard, data.clone(), line.trim_end().to_owned()));
            }
        }
    }
    entries
}

/// A JSONL line's plain fields: the entry's, without the credentials (stored encrypted, last).
fn plain_fields() -> Vec<&'static str> {
    ENTRY_FIELDS
        .into_iter()
        .filter(|f| !matches!(*f, "username" | "password"))
        .collect()
}

fn tricky_entries() -> Vec<CacheEntry> {
    let base = CacheEntry::new("http://[2001:db8::1]:3128", "список", 600).unwrap();
    let mut with_health = base.clone().with_key("health");
    with_health.health_status = HealthStatus::Degraded;
    with_health.last_health_check = Some(with_health.fetch_time);
    with_health.next_check_time = Some(with_health.expires_at);
    with_health.last_health_error = Some("timeout \"5s\" \\ 😀".to_owned());
    with_health.total_health_checks = u64::from(u32::MAX) + 1;
    vec![
        base.clone(),
        base.clone()
            .with_key("empty-password")
            .with_credentials(Some(Secret::new("u")), Some(Secret::new(""))),
        base.clone()
            .with_key("ключ-ü")
            .with_credentials(Some(Secret::new("пароль-密码-🔑-\"'\\")), None),
        base.with_key("nul")
            .with_credentials(None, Some(Secret::new("a\0b\nc"))),
        with_health,
    ]
}

#[test]
fn what_we_write_reads_back_by_our_rules_and_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let ring = fixture_ring();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    let entries = tricky_entries();
    for e in &entries {
        tier.put(e).unwrap();
    }
    // A fresh tier reads them back equal.
    let fresh = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    for e in &entries {
        assert_eq!(fresh.get(&e.key).unwrap().as_ref(), Some(e), "{}", e.key);
    }
    // proxywhirl's reader finds each in its md5 shard, with the reference's fields in order.
    let python = python_read(dir.path());
    assert_eq!(python.len(), entries.len());
    for e in &entries {
        let (shard, data, line) = &python[&e.key];
        assert_eq!(*shard, shard_of(&e.key), "{}", e.key);
        assert_eq!(mask_tokens(line).0, encode_line_without_tokens(e, &ring), "{}", e.key);
        let order = field_order(line);
        let mut want: Vec<&str> = plain_fields();
        if e.username.is_some() {
            want.push("username_encrypted");
        }
        if e.password.is_some() {
            want.push("password_encrypted");
        }
        assert_eq!(order, want, "{}", e.key);
        assert!(line.is_ascii(), "ensure_ascii");
        for (field, secret) in [("username", &e.username), ("password", &e.password)] {
            let hex = data.get(format!("{field}_encrypted")).and_then(Value::as_str);
            assert_eq!(
                hex.map(python_decrypt).as_deref(),
                secret.as_ref().map(Secret::expose_secret)
            );
        }
        // Every plain field is the value Python's `CacheEntry(**data)` would get.
        let manifest_like = entry_as_manifest(e);
        for field in plain_fields() {
            assert_eq!(data[field], manifest_like[field], "{}.{field}", e.key);
        }
    }
}

/// Our line for `e`, tokens masked as [`mask_tokens`] does (they differ at every encryption).
fn encode_line_without_tokens(e: &CacheEntry, ring: &KeyRing) -> String {
    mask_tokens(&encode_line(e, ring).unwrap()).0
}
