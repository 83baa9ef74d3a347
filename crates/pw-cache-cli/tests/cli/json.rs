//! `--json` on every reading command and report: one JSON document on stdout with the fields
//! docs/cli.md lists, the same counts as the text summary, and the same exit code; an error is
//! still one line on stderr with nothing on stdout.

use crate::common;

use std::ffi::OsString;

use common::{Keys, TestCache, pw_cache};
use pw_cache_tests::proxywhirl_fixtures;
use serde_json::{Value, json};

/// The members of a JSON object, sorted.
fn members(v: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    out.sort_unstable();
    out
}

/// The members every report of a cache has, plus `own`, sorted.
fn with_cache_members<'a>(own: &[&'a str]) -> Vec<&'a str> {
    let mut out = vec!["keys", "l2_backend", "l2_dir", "l3_backend", "l3_db"];
    out.extend(own);
    out.sort_unstable();
    out
}

#[test]
fn show_config_is_json_either_way() {
    let text = pw_cache(["show-config"], Keys::Unset).expect_code(0);
    let json = pw_cache(["show-config", "--json"], Keys::Unset).expect_code(0);
    assert_eq!(text.stdout, json.stdout);
    let v = json.json();
    assert_eq!(v["default_ttl_seconds"], 3600, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, r#"{"default_ttl_seconds": 7}"#).unwrap();
    let run = pw_cache(["show-config", "--json", "--file", file.to_str().unwrap()], Keys::Unset);
    assert!(run.one_line_error().contains("default_ttl_seconds"));
    assert!(run.stdout.is_empty());
}

#[test]
fn stats_json_has_its_documented_fields() {
    let cache = TestCache::fixtures("sqlite");
    let v = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    assert_eq!(members(&v), with_cache_members(&["tiers", "totals"]));
    assert_eq!(
        members(&v["tiers"]["l2"]),
        [
            "bytes_on_disk",
            "corrupt",
            "corrupt_keys",
            "entries",
            "expired",
            "health",
            "with_credentials"
        ]
    );
    assert_eq!(
        members(&v["totals"]),
        ["bytes_on_disk", "corrupt", "entries", "expired"]
    );
    assert_eq!(
        (&v["l3_backend"], &v["l2_backend"]),
        (&json!("sqlite"), &json!("sqlite"))
    );
}

#[test]
fn warm_json_reports_what_the_summary_does_with_the_same_exit_code() {
    let file = proxywhirl_fixtures().join("warm/warm_input.csv");
    let run = |json: bool| {
        let cache = TestCache::empty("jsonl");
        let mut args = vec![OsString::from("warm"), "--file".into(), file.clone().into()];
        args.extend(cache.args());
        args.extend(["--ttl".into(), "600".into(), "--max-issues".into(), "1".into()]);
        if json {
            args.push("--json".into());
        }
        pw_cache(&args, Keys::Both)
    };
    let text = run(false);
    let v = run(true).expect_code(text.code).json();
    assert_eq!(text.code, 1, "the file has bad rows");
    assert_eq!(
        members(&v),
        with_cache_members(&[
            "failed",
            "file",
            "issues",
            "issues_omitted",
            "key_file_created",
            "loaded",
            "replaced",
            "skipped",
            "ttl"
        ])
    );
    for field in ["loaded", "skipped", "failed"] {
        assert_eq!(v[field], text.count(field), "{field}");
    }
    assert_eq!(
        (&v["ttl"], &v["replaced"], &v["key_file_created"]),
        (&json!(600), &json!(1), &json!(false))
    );
    let issues = v["issues"].as_array().unwrap();
    // Every issue, not only --max-issues of them.
    assert_eq!(issues.len() as u64, text.count("skipped") + text.count("failed"));
    assert!(issues.len() > 1);
    for issue in issues {
        assert_eq!(members(issue), ["kind", "location", "reason"]);
        assert!(issue["kind"] == "skipped" || issue["kind"] == "failed", "{issue}");
    }
    assert_eq!(v["file"], file.display().to_string());
}

#[test]
fn a_warm_that_creates_the_key_file_says_so() {
    let cache = TestCache::empty("sqlite");
    let mut args = vec![OsString::from("warm"), "--file".into()];
    args.push(proxywhirl_fixtures().join("warm/warm_input.json").into());
    args.extend(cache.args());
    args.push("--json".into());
    let run = pw_cache(&args, Keys::Unset);
    let v = run.json();
    assert_eq!(v["key_file_created"], true, "{v}");
    assert_eq!(v["keys"]["origin"], "key_file");
    assert_eq!(
        v["keys"]["key_file"],
        cache.l2.join("pw-cache.key").display().to_string()
    );
}

#[test]
fn export_json_reports_the_counts() {
    let cache = TestCache::fixtures("jsonl");
    let out = cache.dir.path().join("out.jsonl");
    let v = pw_cache(
        cache.command("export", &["--out", out.to_str().unwrap(), "--json"]),
        Keys::Both,
    )
    .expect_code(0)
    .json();
    assert_eq!(
        members(&v),
        with_cache_members(&["credentials", "expired", "exported", "failed", "failures", "out"])
    );
    let want = pw_cache_tests::manifest()["export"]["result"]["exported"].clone();
    assert_eq!(
        (&v["exported"], &v["expired"], &v["failed"], &v["failures"]),
        (&want, &json!(200 - want.as_u64().unwrap()), &json!(0), &json!([]))
    );
    assert_eq!(
        (&v["credentials"], &v["out"]),
        (&json!("masked"), &json!(out.display().to_string()))
    );
    let out2 = cache.dir.path().join("out2.jsonl");
    let v = pw_cache(
        cache.command(
            "export",
            &["--out", out2.to_str().unwrap(), "--json", "--encrypted-credentials"],
        ),
        Keys::Both,
    )
    .expect_code(0)
    .json();
    assert_eq!(v["credentials"], "encrypted");
}

#[test]
fn migrate_jsonl_json_reports_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jsonl");
    common::copy_dir(&proxywhirl_fixtures().join("jsonl_l2"), &src);
    let dst = dir.path().join("sqlite");
    let args = |dry: bool| {
        let mut a = vec![
            OsString::from("migrate-jsonl"),
            "--from".into(),
            src.clone().into(),
            "--to".into(),
            dst.clone().into(),
            "--json".into(),
        ];
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let v = pw_cache(args(false), Keys::Both).expect_code(0).json();
    assert_eq!(
        members(&v),
        [
            "damaged_lines",
            "dry_run",
            "failed",
            "failures",
            "from",
            "keys",
            "migrated",
            "skipped",
            "superseded",
            "to"
        ]
    );
    assert_eq!(
        (&v["migrated"], &v["skipped"], &v["failed"]),
        (&json!(200), &json!(0), &json!(0))
    );
    assert_eq!(v["to"], dst.join("l2_cache.db").display().to_string());
    let again = pw_cache(args(true), Keys::Both).expect_code(0).json();
    assert_eq!(
        (&again["dry_run"], &again["migrated"], &again["skipped"]),
        (&json!(true), &json!(0), &json!(200))
    );
}

#[test]
fn cleanup_json_reports_what_went() {
    let cache = TestCache::fixtures("sqlite");
    let v = pw_cache(cache.command("cleanup", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    assert_eq!(
        members(&v),
        with_cache_members(&[
            "expired_removed",
            "failures",
            "removal_failures",
            "unreadable_found",
            "unreadable_removed"
        ])
    );
    assert_eq!(v["expired_removed"], json!({"l2": 40, "l3": 40, "total": 80}));
    assert_eq!(v["unreadable_found"], json!({"l2": 0, "l3": 0, "total": 0}));
    assert_eq!(v["unreadable_removed"], Value::Null);

    common::warm_under_previous_key(&cache);
    let v = pw_cache(
        cache.command("cleanup", &["--json", "--remove-unreadable"]),
        Keys::CurrentOnly,
    )
    .expect_code(0)
    .json();
    let found = v["unreadable_found"]["total"].as_u64().unwrap();
    assert!(found >= 2, "{v}");
    assert_eq!(v["unreadable_removed"]["total"].as_u64().unwrap(), found, "{v}");
}

#[test]
fn rotate_key_json_reports_per_tier() {
    let cache = TestCache::fixtures("jsonl");
    let v = pw_cache(cache.command("rotate-key", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    assert_eq!(
        members(&v),
        with_cache_members(&["failures", "previous_keys_can_be_dropped", "tiers"])
    );
    for tier in ["l2", "l3"] {
        let t = &v["tiers"][tier];
        assert_eq!(members(t), ["failed", "rewritten", "without_credentials"]);
        assert_eq!(
            t["rewritten"].as_u64().unwrap() + t["without_credentials"].as_u64().unwrap(),
            200,
            "{tier}: {v}"
        );
    }
    assert_eq!(
        (&v["failures"], &v["previous_keys_can_be_dropped"]),
        (&json!([]), &json!(true))
    );
}

#[test]
fn an_error_with_json_is_one_line_on_stderr_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let l2 = dir.path().join("no-l2");
    let l3 = dir.path().join("no.db");
    for (command, extra) in [
        ("stats", vec![]),
        ("inspect", vec![]),
        ("get", vec!["k"]),
        ("cleanup", vec![]),
        ("rotate-key", vec![]),
        ("export", vec!["--out", "x.jsonl"]),
    ] {
        let mut args = common::args(command, &common::cache_args(&l2, "jsonl", &l3));
        args.extend(extra.iter().map(OsString::from));
        args.push("--json".into());
        let run = pw_cache(&args, Keys::Both);
        assert!(run.one_line_error().contains("does not exist"), "{command}");
        assert!(run.stdout.is_empty(), "{command}: {}", run.stdout);
    }
}
