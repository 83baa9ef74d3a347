//! Credential tokens against proxywhirl 0.3.3: every token in the fixtures (JSONL hex, SQLite
//! BLOBs; current and previous key) decrypts to what Python read back; the tokens we make are
//! valid Fernet under the current key; rotation moves old tokens to the current key.

use std::collections::HashMap;

use pw_cache::Secret;
use pw_cache::crypto::{CryptoError, KeyRing, Token};
use pw_cache_tests::{
    fernet_reference, fixture_key_ring, fixture_keys, hex_decode, manifest, proxywhirl_fixtures, read_fixture,
};
use serde_json::Value;

fn current_only_ring() -> KeyRing {
    KeyRing::from_secrets(&Secret::new(fixture_keys().0), &[]).unwrap()
}

/// key -> manifest entry, for one store.
fn manifest_entries(store: &str) -> HashMap<String, Value> {
    manifest()["stores"][store]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Checks one stored token against the manifest's plaintext; returns which key opened it.
fn check(ring: &KeyRing, token: Option<Vec<u8>>, expected: &Value, what: &str) -> Option<usize> {
    match (token, expected.as_str()) {
        (None, None) => None,
        (Some(bytes), Some(plain)) => {
            let token = Token::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                ring.decrypt(&token)
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .expose_secret(),
                plain,
                "{what}"
            );
            ring.key_index(&token)
        }
        (token, plain) => panic!("{what}: stored {:?} but Python read {plain:?}", token.map(|t| t.len())),
    }
}

/// Checks that previous-key entries (per the manifest) are opened by key 1, others by key 0.
fn check_key_used(index: Option<usize>, entry: &Value, what: &str) {
    if let Some(index) = index {
        let expected = if entry["encrypted_with"] == "previous" { 1 } else { 0 };
        assert_eq!(index, expected, "{what}");
    }
}

/// How many credentials Python read back from a store (each is one stored token).
fn credential_count(entries: &HashMap<String, Value>) -> usize {
    entries
        .values()
        .map(|e| usize::from(e["username"].is_string()) + usize::from(e["password"].is_string()))
        .sum()
}

/// Tokens made by Python's `cryptography` with the fixtures' previous key, and Python's own
/// `MultiFernet.rotate` of them (`fixtures/python-tokens/make_tokens.py`). The proxywhirl
/// fixtures hold no credential under the previous key: its "previous" entries have none.
fn python_tokens() -> Vec<Value> {
    let path = proxywhirl_fixtures().join("../python-tokens/python_tokens.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["tokens"].as_array().unwrap().clone()
}

#[test]
fn jsonl_hex_tokens_decrypt_to_the_manifest_values() {
    let ring = fixture_key_ring();
    let entries = manifest_entries("jsonl_l2");
    let mut tokens = 0;
    for shard in 0..16 {
        for line in read_fixture(&format!("jsonl_l2/shard_{shard:02}.jsonl")).lines() {
            let raw: Value = serde_json::from_str(line).unwrap();
            let entry = &entries[raw["key"].as_str().unwrap()];
            for field in ["username", "password"] {
                let stored = raw[format!("{field}_encrypted")].as_str().map(hex_decode);
                let what = format!("shard {shard} {} {field}", raw["key"]);
                tokens += usize::from(stored.is_some());
                let index = check(&ring, stored, &entry[field], &what);
                check_key_used(index, entry, &what);
            }
        }
    }
    assert_eq!(
        tokens,
        credential_count(&entries),
        "every credential Python read has its token"
    );
}

/// (key, username token, password token) of a SQLite table.
type TokenRow = (String, Option<Vec<u8>>, Option<Vec<u8>>);

fn sqlite_tokens(db: &str, table: &str) -> Vec<TokenRow> {
    let conn = rusqlite::Connection::open_with_flags(
        proxywhirl_fixtures().join(db),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT key, username_encrypted, password_encrypted FROM {table}"
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn sqlite_blob_tokens_decrypt_to_the_manifest_values() {
    let ring = fixture_key_ring();
    for (store, db, table) in [
        ("sqlite_l2", "sqlite_l2/l2_cache.db", "l2_cache"),
        ("sqlite_l3", "l3/proxywhirl.db", "cache_entries"),
    ] {
        let entries = manifest_entries(store);
        let rows = sqlite_tokens(db, table);
        assert_eq!(rows.len(), 200, "{store}");
        let mut tokens = 0;
        for (key, username, password) in rows {
            let entry = &entries[&key];
            for (field, stored) in [("username", username), ("password", password)] {
                let what = format!("{store} {key} {field}");
                tokens += usize::from(stored.is_some());
                let index = check(&ring, stored, &entry[field], &what);
                check_key_used(index, entry, &what);
            }
        }
        assert_eq!(tokens, credential_count(&entries), "{store}");
    }
}

#[test]
fn python_previous_key_tokens_need_the_previous_key() {
    let (full, current_only) = (fixture_key_ring(), current_only_ring());
    for t in python_tokens() {
        let token = Token::parse(t["previous_key_token"].as_str().unwrap()).unwrap();
        assert!(matches!(current_only.decrypt(&token), Err(CryptoError::TokenRejected)));
        assert_eq!(
            full.decrypt(&token).unwrap().expose_secret(),
            t["plaintext"].as_str().unwrap()
        );
        assert_eq!(full.key_index(&token), Some(1));
        assert_eq!(token.timestamp(), t["timestamp"].as_u64().unwrap());
    }
}

#[test]
fn our_tokens_are_fernet_under_the_current_key() {
    let (current, previous) = fixture_keys();
    let ring = fixture_key_ring();
    for plain in ["", "user", "p@ss:w0rd/with,csv\"chars", "пароль", "\0"] {
        let token = ring.encrypt(&Secret::new(plain));
        // What Python's MultiFernet([current, previous]).decrypt does: verify with the current key.
        let opened = fernet_reference::open(&current, token.as_bytes()).expect("valid under the current key");
        assert_eq!(opened.plaintext, plain.as_bytes());
        assert!(
            fernet_reference::open(&previous, token.as_bytes()).is_none(),
            "not valid under another key"
        );
        assert_eq!(opened.timestamp, token.timestamp());
    }
}

#[test]
fn rotating_a_previous_key_token_keeps_its_timestamp() {
    let (current, _) = fixture_keys();
    let (full, current_only) = (fixture_key_ring(), current_only_ring());
    for t in python_tokens() {
        let plain = t["plaintext"].as_str().unwrap();
        let old = Token::parse(t["previous_key_token"].as_str().unwrap()).unwrap();
        let rotated = full.rotate(&old).unwrap();
        // As Python's MultiFernet.rotate: same timestamp, readable by a ring of the new key only.
        assert_eq!(rotated.timestamp(), t["python_rotated_timestamp"].as_u64().unwrap());
        assert_eq!(current_only.decrypt(&rotated).unwrap().expose_secret(), plain);
        let opened = fernet_reference::open(&current, rotated.as_bytes()).unwrap();
        assert_eq!(
            (opened.timestamp, opened.plaintext.as_slice()),
            (old.timestamp(), plain.as_bytes())
        );
        // Python's own rotation output reads the same with ours.
        let python_rotated = Token::parse(t["python_rotated_token"].as_str().unwrap()).unwrap();
        assert_eq!(current_only.decrypt(&python_rotated).unwrap().expose_secret(), plain);
    }
}
