//! `pw-cache rotate-key`: the entries whose credentials were written with the previous key
//! are re-encrypted under the current one, so that afterwards the current key alone reads
//! everything (`stats` shows 0 corrupt) and the previous key alone opens no credential. Before,
//! without the previous key, `stats` shows exactly those entries as corrupt, and a rotation
//! without it names them and exits 1.

use crate::common;

use std::collections::BTreeSet;
use std::ffi::OsString;

use common::{Keys, TestCache, both_keys, has_credentials, pw_cache, store_entries};
use pw_cache_tests::proxywhirl_fixtures;
use serde_json::json;

/// The `tier rewritten without failed` row of the rotation table.
fn row(stdout: &str, tier: &str) -> [u64; 3] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(tier))
        .unwrap_or_else(|| panic!("{stdout}"));
    let n: Vec<u64> = line.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect();
    [n[0], n[1], n[2]]
}

#[test]
fn rotation_moves_the_previous_keys_credentials_to_the_current_key() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        let store = cache.l2_store();
        // Entries written by an operator whose current key was the fixtures' previous one.
        for input in ["warm_input.jsonl", "warm_input.csv"] {
            let mut args = vec![OsString::from("warm"), "--file".into()];
            args.push(proxywhirl_fixtures().join("warm").join(input).into());
            args.extend(cache.args());
            pw_cache(&args, Keys::Swapped).expect_code(1);
        }
        let fixture_keys: BTreeSet<String> = store_entries(store)
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_owned())
            .collect();
        let entries = cache.entries(&both_keys());
        let warmed: Vec<_> = entries
            .iter()
            .filter(|((tier, key), _)| tier == "l2" && !fixture_keys.contains(key))
            .map(|((_, key), e)| (key.clone(), e.as_ref().unwrap().clone()))
            .collect();
        let old_key_credentials: BTreeSet<String> = warmed
            .iter()
            .filter(|(_, e)| e.username.is_some() || e.password.is_some())
            .map(|(k, _)| k.clone())
            .chain(
                // The manifest's entries with a credential under the previous key (none in
                // these fixtures: theirs have no credentials).
                store_entries(store)
                    .iter()
                    .filter(|e| has_credentials(e) && e["encrypted_with"] == "previous")
                    .map(|e| e["key"].as_str().unwrap().to_owned()),
            )
            .collect();
        let k = old_key_credentials.len() as u64;
        assert!(k >= 5, "{backend}: the warm inputs have credentials ({k})");
        let total = 200 + warmed.len() as u64;
        let with_credentials = store_entries(store).iter().filter(|e| has_credentials(e)).count() as u64 + k;

        // Before: without the previous key, exactly those are unreadable (reported: exit 1).
        let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
            .expect_code(1)
            .json();
        for tier in ["l2", "l3"] {
            assert_eq!(stats["tiers"][tier]["entries"], total, "{backend} {tier}");
            assert_eq!(
                stats["tiers"][tier]["corrupt_keys"],
                json!(old_key_credentials),
                "{backend} {tier}"
            );
        }

        // A rotation without the previous key cannot rewrite them: named, exit 1.
        let run = pw_cache(cache.command("rotate-key", &[]), Keys::CurrentOnly).expect_code(1);
        for tier in ["l2", "l3"] {
            assert_eq!(
                row(&run.stdout, tier),
                [with_credentials - k, total - with_credentials, k],
                "{backend}"
            );
        }
        assert!(
            old_key_credentials.iter().all(|key| run.stdout.contains(key.as_str())),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("keep the previous keys"), "{}", run.stdout);

        // With both keys: every credential rewritten.
        let run = pw_cache(cache.command("rotate-key", &[]), Keys::Both).expect_code(0);
        for tier in ["l2", "l3"] {
            assert_eq!(
                row(&run.stdout, tier),
                [with_credentials, total - with_credentials, 0],
                "{backend}"
            );
        }
        assert!(run.stdout.contains("can be dropped"), "{}", run.stdout);

        // After: the current key alone reads everything...
        let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
            .expect_code(0)
            .json();
        for tier in ["l2", "l3"] {
            assert_eq!(stats["tiers"][tier]["entries"], total, "{backend} {tier}");
            assert_eq!(stats["tiers"][tier]["corrupt"], 0, "{backend} {tier}");
        }
        // ... with the credentials unchanged ...
        let after = cache.entries(&common::one_key(true));
        for ((tier, key), entry) in &entries {
            let (was, now) = (
                entry.as_ref().unwrap(),
                after[&(tier.clone(), key.clone())].as_ref().unwrap(),
            );
            assert_eq!(
                (&was.username, &was.password),
                (&now.username, &now.password),
                "{backend} {tier} {key}"
            );
        }
        // ... and nothing is left under the previous key: alone, it opens no credential, so
        // it is refused as the wrong key.
        let refused = pw_cache(cache.command("stats", &["--json"]), Keys::PreviousOnly).expect_code(2);
        assert!(
            refused.stderr.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY") && refused.stderr.contains("opens any"),
            "{backend}: {}",
            refused.stderr
        );
        let _ = with_credentials;
    }
}

/// A configured key that opens none of the stored credentials, while the key file's key does,
/// is refused as a likely typo (exit 2, naming the variable and the key file); `--new-key`
/// rotates onto it, after which the key file's key is no longer needed.
#[test]
fn a_new_key_must_be_said_to_be_new() {
    let cache = TestCache::empty("sqlite");
    let mut args = vec![OsString::from("warm"), "--file".into()];
    args.push(proxywhirl_fixtures().join("warm").join("warm_input.jsonl").into());
    args.extend(cache.args());
    // No key: the key file is made, and the credentials written under it.
    pw_cache(&args, Keys::Unset).expect_code(1);
    let key_file = cache.l2.join("pw-cache.key");
    assert!(key_file.is_file());
    let new_key = pw_cache::FernetKey::generate().to_base64();
    let env = [("PROXYWHIRL_CACHE_ENCRYPTION_KEY", new_key.expose_secret())];
    let refused = common::pw_cache_with_env(cache.command("rotate-key", &[]), Keys::Unset, &env).expect_code(2);
    assert!(
        refused.stderr.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY")
            && refused.stderr.contains("--new-key")
            && refused.stderr.contains(&key_file.display().to_string()),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains(new_key.expose_secret()),
        "the key is never shown"
    );
    let run = common::pw_cache_with_env(cache.command("rotate-key", &["--new-key"]), Keys::Unset, &env).expect_code(0);
    assert!(run.stdout.contains("can be dropped"), "{}", run.stdout);
    // Afterwards the new key alone (no key file) reads everything.
    std::fs::remove_file(&key_file).unwrap();
    let stats = common::pw_cache_with_env(cache.command("stats", &["--json"]), Keys::Unset, &env)
        .expect_code(0)
        .json();
    assert_eq!(stats["tiers"]["l2"]["corrupt"], 0);
}
