//! `pw-cache get` and `pw-cache inspect` on copies of the fixtures: `get` shows every field the
//! manifest has (credentials as `***`, never the secret) and which tiers hold the key, exit 1 for
//! a key no tier holds or one a tier cannot read; `inspect` lists one row per key with the
//! manifest's counts, filters and limits them, exits 1 when some are unreadable; neither changes
//! anything.

use crate::common;

use std::ffi::OsString;

use common::{Keys, TestCache, has_credentials, pw_cache, store_entries};
use serde_json::{Value, json};

/// A username and a password no fixture has, long enough to be found if printed.
const USER: &str = "get-test-user-7Qz9";
const PASS: &str = "get-test-pass-Xk42";
const URL: &str = "http://10.66.0.7:3128";

/// A cache holding one entry with [`USER`] and [`PASS`] (L2 `backend`), warmed from a file.
fn cache_with_credentials(backend: &'static str) -> TestCache {
    let cache = TestCache::empty(backend);
    let file = cache.dir.path().join("one.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"proxy_url\": \"{URL}\", \"username\": \"{USER}\", \"password\": \"{PASS}\", \"source\": \"t\"}}\n"
        ),
    )
    .unwrap();
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    pw_cache(&args, Keys::Both).expect_code(0);
    cache
}

/// Panics if `run` printed either credential anywhere.
fn assert_no_secret(run: &common::Run) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for secret in [USER, PASS] {
        assert!(!all.contains(secret), "a credential was printed:\n{all}");
    }
}

#[test]
fn get_shows_a_credentialed_entry_masked_never_its_secrets() {
    for backend in ["jsonl", "sqlite"] {
        let cache = cache_with_credentials(backend);
        let key = pw_cache::CacheManager::generate_cache_key(URL);
        // By key and by URL, as text and as JSON.
        let text = pw_cache(cache.command("get", &[&key]), Keys::Both).expect_code(0);
        assert_no_secret(&text);
        let field = |name: &str| -> String {
            let line = text
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} line:\n{}", text.stdout));
            line.split_whitespace().nth(1).unwrap().to_owned()
        };
        assert_eq!(
            (field("username"), field("password")),
            ("***".to_owned(), "***".to_owned())
        );
        assert_eq!(field("proxy_url"), URL);
        assert!(text.stdout.contains("l2      readable, live"), "{}", text.stdout);
        assert!(text.stdout.contains("l3      readable, live"), "{}", text.stdout);
        let by_url = pw_cache(cache.command("get", &["--url", URL]), Keys::Both).expect_code(0);
        assert_no_secret(&by_url);
        assert!(by_url.stdout.contains(&format!("key     {key}")), "{}", by_url.stdout);

        let json = pw_cache(cache.command("get", &[&key, "--json"]), Keys::Both).expect_code(0);
        assert_no_secret(&json);
        let v = json.json();
        assert_eq!(
            (&v["key"], &v["found"], &v["from"]),
            (&json!(key), &json!(true), &json!("l2"))
        );
        assert_eq!(
            (&v["entry"]["username"], &v["entry"]["password"]),
            (&json!("***"), &json!("***"))
        );
        assert_eq!(v["entry"]["proxy_url"], URL);
        for tier in ["l2", "l3"] {
            let t = &v["tiers"][tier];
            assert_eq!(
                (&t["held"], &t["readable"], &t["expired"]),
                (&json!(true), &json!(true), &json!(false))
            );
            assert_eq!(t["entry"]["password"], "***", "{tier}");
        }
        assert_eq!(v["l2_backend"], backend);
        assert_eq!(v["keys"]["origin"], "environment");
    }
}

#[test]
fn get_shows_the_manifests_fields() {
    let cache = TestCache::fixtures("jsonl");
    let entries: Vec<Value> = store_entries("jsonl_l2")
        .into_iter()
        .filter(|e| e["python_get"] == "ok" && e["synthetic"] == false)
        .collect();
    // One with a credential and one without; one expired.
    let with = entries.iter().find(|e| has_credentials(e)).unwrap();
    let without = entries.iter().find(|e| !has_credentials(e)).unwrap();
    for want in [with, without] {
        let key = want["key"].as_str().unwrap();
        let v = pw_cache(cache.command("get", &[key, "--json"]), Keys::Both)
            .expect_code(0)
            .json();
        let got = &v["tiers"]["l2"]["entry"];
        for field in pw_cache_tests::ENTRY_FIELDS {
            let expected = match field {
                "username" | "password" if !want[field].is_null() => json!("***"),
                "proxy_url" => json!(masked(want[field].as_str().unwrap())),
                _ => want[field].clone(),
            };
            assert_eq!(got[field], expected, "{key} {field}");
        }
    }
}

/// `url` with the user information of its authority shown as `***` (as the commands show it).
fn masked(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[test]
fn a_proxy_url_with_credentials_in_it_is_shown_masked() {
    // The fixtures hold URLs with `user:pass@` (proxywhirl stored them; pw-cache refuses to).
    let cache = TestCache::fixtures("jsonl");
    let with_userinfo: Vec<Value> = store_entries("jsonl_l2")
        .into_iter()
        .filter(|e| e["python_get"] == "ok" && masked(e["proxy_url"].as_str().unwrap()) != e["proxy_url"])
        .collect();
    assert!(!with_userinfo.is_empty(), "the fixtures have such a URL");
    for e in &with_userinfo {
        let url = e["proxy_url"].as_str().unwrap();
        let userinfo = &url[url.find("://").unwrap() + 3..url.rfind('@').unwrap()];
        let key = e["key"].as_str().unwrap();
        for extra in [&[key][..], &[key, "--json"][..]] {
            let run = pw_cache(cache.command("get", extra), Keys::Both).expect_code(0);
            assert!(!run.stdout.contains(userinfo), "{}", run.stdout);
            assert!(run.stdout.contains(&masked(url)), "{}", run.stdout);
        }
    }
    let run = pw_cache(cache.command("inspect", &[]), Keys::Both).expect_code(0);
    for e in &with_userinfo {
        let url = e["proxy_url"].as_str().unwrap();
        assert!(
            !run.stdout.contains(url) && run.stdout.contains(&masked(url)),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn get_of_a_key_no_tier_holds_is_exit_1() {
    let cache = TestCache::fixtures("sqlite");
    let run = pw_cache(cache.command("get", &["no-such-key"]), Keys::Both).expect_code(1);
    assert!(run.stdout.contains("no-such-key is in no tier"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let v = pw_cache(cache.command("get", &["no-such-key", "--json"]), Keys::Both)
        .expect_code(1)
        .json();
    assert_eq!(
        (&v["found"], &v["entry"], &v["from"]),
        (&json!(false), &Value::Null, &Value::Null)
    );
    assert_eq!(v["tiers"]["l3"]["held"], false);
}

#[test]
fn an_entry_a_tier_cannot_read_is_named_and_exit_1() {
    let cache = TestCache::fixtures("jsonl");
    common::warm_under_previous_key(&cache);
    let v = pw_cache(cache.command("inspect", &["--unreadable", "--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    let first = &v["entries"][0];
    assert_eq!(first["state"], "unreadable", "{v}");
    let key = first["key"].as_str().unwrap();
    let got = pw_cache(cache.command("get", &[key, "--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    assert_eq!(got["found"], true);
    for tier in first["tiers"].as_array().unwrap() {
        let t = &got["tiers"][tier.as_str().unwrap()];
        assert_eq!((&t["held"], &t["readable"]), (&json!(true), &json!(false)), "{got}");
        assert!(t["error"].as_str().unwrap().contains(key), "{got}");
    }
    let text = pw_cache(cache.command("get", &[key]), Keys::CurrentOnly).expect_code(1);
    assert!(text.stdout.contains("unreadable: "), "{}", text.stdout);
    // With both keys it reads.
    pw_cache(cache.command("get", &[key]), Keys::Both).expect_code(0);
}

#[test]
fn inspect_lists_every_key_once_with_the_manifests_counts() {
    for backend in ["jsonl", "sqlite"] {
        let cache = TestCache::fixtures(backend);
        let v = pw_cache(cache.command("inspect", &["--json"]), Keys::Both)
            .expect_code(0)
            .json();
        assert_eq!(
            v["counts"],
            json!({"keys": 200, "live": 160, "expired": 40, "unreadable": 0}),
            "{backend}"
        );
        let entries = v["entries"].as_array().unwrap();
        assert_eq!(
            (entries.len(), &v["listed"], &v["matching"]),
            (200, &json!(200), &json!(200))
        );
        let store = store_entries(cache.l2_store());
        let with_credentials = store.iter().filter(|e| has_credentials(e)).count();
        assert_eq!(
            entries.iter().filter(|e| e["has_credentials"] == true).count(),
            with_credentials,
            "{backend}"
        );
        for e in entries {
            assert_eq!(e["tiers"], json!(["l2", "l3"]), "{e}");
            assert_eq!(e["from"], "l2");
            assert_eq!(e["unreadable_in"], json!([]));
            let want = store.iter().find(|w| w["key"] == e["key"]).unwrap();
            for field in ["source", "expires_at", "health_status"] {
                assert_eq!(e[field], want[field], "{backend} {field}");
            }
            assert_eq!(e["proxy_url"], masked(want["proxy_url"].as_str().unwrap()));
        }
        // Filters and limits.
        let expired = pw_cache(cache.command("inspect", &["--expired", "--json"]), Keys::Both)
            .expect_code(0)
            .json();
        assert_eq!(expired["listed"], 40);
        assert!(
            expired["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["state"] == "expired")
        );
        let limited = pw_cache(cache.command("inspect", &["--limit", "3", "--json"]), Keys::Both)
            .expect_code(0)
            .json();
        assert_eq!((&limited["listed"], &limited["matching"]), (&json!(3), &json!(200)));

        // The table: a header, a row per key, the counts.
        let run = pw_cache(cache.command("inspect", &[]), Keys::Both).expect_code(0);
        assert!(run.stdout.contains("key "), "{}", run.stdout);
        let rows = run.stdout.lines().filter(|l| l.contains(" l2,l3 ")).count();
        assert_eq!(rows, 200, "{}", run.stdout);
        assert!(
            run.stdout
                .contains("200 keys: 160 live, 40 expired, 0 unreadable; 200 listed"),
            "{}",
            run.stdout
        );
        let run = pw_cache(cache.command("inspect", &["--limit", "5"]), Keys::Both).expect_code(0);
        assert!(run.stdout.contains("195 more match (--limit)"), "{}", run.stdout);
    }
}

#[test]
fn inspect_names_the_unreadable_entries_and_exits_1() {
    let cache = TestCache::fixtures("sqlite");
    common::warm_under_previous_key(&cache);
    let v = pw_cache(cache.command("inspect", &["--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    let unreadable = v["counts"]["unreadable"].as_u64().unwrap();
    assert!(unreadable >= 1, "{v}");
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    assert_eq!(
        stats["tiers"]["l3"]["corrupt"].as_u64().unwrap(),
        unreadable,
        "the unreadable keys are those stats counts"
    );
    let only = pw_cache(cache.command("inspect", &["--unreadable", "--json"]), Keys::CurrentOnly)
        .expect_code(1)
        .json();
    assert_eq!(only["listed"].as_u64().unwrap(), unreadable);
    for e in only["entries"].as_array().unwrap() {
        assert_eq!(e["proxy_url"], Value::Null, "nothing shown of what cannot be read");
        assert!(!e["unreadable_in"].as_array().unwrap().is_empty());
    }
    let text = pw_cache(cache.command("inspect", &["--unreadable"]), Keys::CurrentOnly).expect_code(1);
    assert!(text.stdout.contains("(l3): "), "{}", text.stdout);
}

#[test]
fn looking_changes_nothing() {
    let cache = TestCache::fixtures("jsonl");
    // The first open upgrades the L3 database's schema version: the baseline is after it.
    pw_cache(cache.command("stats", &[]), Keys::Both).expect_code(0);
    let shards = common::snapshot(&cache.l2);
    let entries = cache.entries(&common::both_keys());
    let key = store_entries("jsonl_l2")[0]["key"].as_str().unwrap().to_owned();
    for args in [
        vec!["inspect"],
        vec!["inspect", "--json"],
        vec!["get", key.as_str()],
        vec!["get", key.as_str(), "--json"],
    ] {
        let (command, extra) = args.split_first().unwrap();
        pw_cache(cache.command(command, extra), Keys::Both).expect_code(0);
    }
    assert_eq!(common::snapshot(&cache.l2), shards, "the shard files are only read");
    let after = cache.entries(&common::both_keys());
    assert!(
        after == entries,
        "no entry changed (access counts, last access, expiry)"
    );
    assert!(!cache.l2.join("pw-cache.key").exists(), "no key file is made");
}
