//! `pw-cache export`: a warmed cache exported with `--encrypted-credentials` and warmed into
//! a new cache gives equal entries, credentials included (and never in clear in the file); the
//! masked export holds no credential; the export of the fixtures counts what the manifest says
//! and changes nothing.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::{Keys, TestCache, both_keys, pw_cache, pw_cache_with_env};
use pw_cache::FernetKey;
use pw_cache_tests::proxywhirl_fixtures;

fn warm(cache: &TestCache, file: &Path, keys: Keys) -> common::Run {
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    pw_cache(&args, keys)
}

#[test]
fn an_encrypted_export_warms_into_equal_entries() {
    let a = TestCache::empty("jsonl");
    for input in ["warm_input.json", "warm_input.jsonl", "warm_input.csv"] {
        warm(&a, &proxywhirl_fixtures().join("warm").join(input), Keys::Both).expect_code(1);
    }
    let a_entries = a.entries(&both_keys());
    let a_l3: Vec<_> = a_entries.iter().filter(|((tier, _), _)| tier == "l3").collect();
    let with_credentials = a_l3
        .iter()
        .filter(|(_, e)| {
            let e = e.as_ref().unwrap();
            e.username.is_some() || e.password.is_some()
        })
        .count();
    assert!(
        with_credentials >= 5,
        "the warm inputs have credentials: {with_credentials}"
    );

    let out = a.dir.path().join("export.jsonl");
    let run = pw_cache(
        a.command("export", &["--out", out.to_str().unwrap(), "--encrypted-credentials"]),
        Keys::Both,
    )
    .expect_code(0);
    assert_eq!(run.count("exported"), a_l3.len() as u64, "{}", run.stdout);
    assert_eq!((run.count("expired"), run.count("failed")), (0, 0));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), a_l3.len());
    assert!(text.contains("\"password_encrypted\": \""), "tokens are exported");
    for (_, e) in &a_l3 {
        let e = e.as_ref().unwrap();
        for secret in [&e.username, &e.password].into_iter().flatten() {
            let plain = secret.expose_secret();
            assert!(
                !text.contains(&format!("\"{plain}\"")),
                "a credential in clear in the export"
            );
        }
    }

    let b = TestCache::empty("sqlite");
    let run = warm(&b, &out, Keys::Both).expect_code(0);
    assert_eq!(run.count("loaded"), a_l3.len() as u64, "{}", run.stdout);
    let b_entries = b.entries(&both_keys());
    assert_eq!(b_entries.len(), a_entries.len());
    for ((tier, key), got) in &b_entries {
        let got = got.as_ref().unwrap();
        let want = a_entries[&(tier.clone(), key.clone())].as_ref().unwrap();
        // A warmed entry is new: fetched now, never accessed. Everything else is the same.
        assert_eq!(
            (
                &got.key,
                &got.proxy_url,
                &got.source,
                got.ttl_seconds,
                got.health_status
            ),
            (
                &want.key,
                &want.proxy_url,
                &want.source,
                want.ttl_seconds,
                want.health_status
            ),
            "{tier} {key}"
        );
        assert_eq!(
            (&got.username, &got.password),
            (&want.username, &want.password),
            "{tier} {key}"
        );
    }

    // A cache with another key cannot open the tokens: each row with a credential fails, named.
    let c = TestCache::empty("jsonl");
    let stranger = FernetKey::generate().to_base64();
    let mut args = vec![OsString::from("warm"), "--file".into(), out.clone().into()];
    args.extend(c.args());
    let run = pw_cache_with_env(&args, Keys::Unset, &[(common::ENV_CURRENT, stranger.expose_secret())]).expect_code(1);
    assert_eq!(run.count("failed"), with_credentials as u64, "{}", run.stdout);
    assert!(
        run.stdout.contains("cannot be decrypted with the configured keys"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(stranger.expose_secret()));
}

#[test]
fn the_masked_export_of_the_fixtures_matches_the_manifest_and_changes_nothing() {
    let cache = TestCache::fixtures("jsonl");
    let before = common::snapshot(&cache.l2);
    let out = cache.dir.path().join("masked.jsonl");
    let run = pw_cache(cache.command("export", &["--out", out.to_str().unwrap()]), Keys::Both).expect_code(0);
    // proxywhirl exported the 160 live entries (and deleted the 40 expired ones; we count them).
    let want = pw_cache_tests::manifest()["export"]["result"]["exported"]
        .as_u64()
        .unwrap();
    assert_eq!(
        (run.count("exported"), run.count("expired"), run.count("failed")),
        (want, 200 - want, 0)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count() as u64, want);
    assert!(!text.contains("_encrypted"), "no token in a masked export");
    assert!(text.contains("\"password\": \"***\""));
    assert_eq!(common::snapshot(&cache.l2), before, "exporting changes nothing");
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    assert_eq!(stats["tiers"]["l3"]["entries"], 200);
}
