//! Unusable input exits 2 with one line naming the path or the key's source (never the key),
//! creates nothing, and never panics: a missing directory or database, a file that is not a
//! database, a malformed key in either variable, no key at all, the wrong backend, an unwritable
//! export path, a missing config file; for `warm`, which creates what is missing, a path taken by
//! something else (an L2 directory that is a file, an L3 database that is a directory or not a
//! database, a key file that is a directory) is found before anything is created.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{ENV_CURRENT, ENV_PREVIOUS, Keys, TestCache, cache_args, pw_cache, pw_cache_with_env, tree};

/// The commands that read an existing cache, with what else each needs.
fn reading_commands(dir: &Path) -> Vec<(&'static str, Vec<OsString>)> {
    let out = dir.join("out.jsonl");
    vec![
        ("stats", vec![]),
        ("stats", vec!["--json".into()]),
        ("export", vec!["--out".into(), out.into()]),
        ("rotate-key", vec![]),
        ("cleanup", vec![]),
    ]
}

fn run(command: &str, cache: &[OsString], extra: &[OsString], keys: Keys) -> common::Run {
    let mut args = vec![OsString::from(command)];
    args.extend(cache.iter().cloned());
    args.extend(extra.iter().cloned());
    pw_cache(&args, keys)
}

fn assert_names(message: &str, path: &Path, what: &str) {
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(what), "{message}");
}

#[test]
fn a_missing_cache_is_exit_2_naming_the_path_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let l2 = dir.path().join("no-l2");
    let l3 = dir.path().join("no-l3").join("cache.db");
    for (command, extra) in reading_commands(dir.path()) {
        for backend in ["jsonl", "sqlite"] {
            let r = run(command, &cache_args(&l2, backend, &l3), &extra, Keys::Both);
            assert_names(r.one_line_error(), &l2, "does not exist");
        }
        // L2 there, L3 missing.
        let cache = TestCache::fixtures("jsonl");
        let r = run(command, &cache_args(&cache.l2, "jsonl", &l3), &extra, Keys::Both);
        assert_names(r.one_line_error(), &l3, "does not exist");
        // An L2 directory without its SQLite database.
        let empty = dir.path().join("empty-l2");
        std::fs::create_dir_all(&empty).unwrap();
        let r = run(command, &cache_args(&empty, "sqlite", &cache.l3), &extra, Keys::Both);
        assert_names(r.one_line_error(), &empty.join("l2_cache.db"), "does not exist");
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "{command}: nothing created"
        );
    }
    assert!(!l2.exists() && !l3.parent().unwrap().exists(), "nothing created");
    assert!(!dir.path().join("out.jsonl").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is not a SQLite database, just some bytes that are long enough to look like a header";
    for (command, extra) in reading_commands(dir.path()) {
        // As L3.
        let cache = TestCache::fixtures("jsonl");
        std::fs::write(&cache.l3, garbage).unwrap();
        let r = run(command, &cache.args(), &extra, Keys::Both);
        assert_names(r.one_line_error(), &cache.l3, "not a database");
        assert_eq!(std::fs::read(&cache.l3).unwrap(), garbage, "left as it was");
        // As the SQLite L2 database.
        let cache = TestCache::fixtures("sqlite");
        let db = cache.l2.join("l2_cache.db");
        std::fs::write(&db, garbage).unwrap();
        let r = run(command, &cache.args(), &extra, Keys::Both);
        assert_names(r.one_line_error(), &db, "not a database");
        assert_eq!(std::fs::read(&db).unwrap(), garbage, "left as it was");
    }
}

#[test]
fn a_malformed_key_is_exit_2_naming_the_variable_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "SECRET-SHOULD-NOT-SHOW-not-a-fernet-key";
    let cache = TestCache::fixtures("jsonl");
    let warm_target = TestCache::empty("sqlite");
    let warm_file = pw_cache_tests::proxywhirl_fixtures().join("warm/warm_input.jsonl");
    let mut warm = vec![OsString::from("warm"), "--file".into(), warm_file.into()];
    warm.extend(warm_target.args());
    let mut all: Vec<Vec<OsString>> = reading_commands(dir.path())
        .into_iter()
        .map(|(command, extra)| {
            let mut args = vec![OsString::from(command)];
            args.extend(cache.args());
            args.extend(extra);
            args
        })
        .collect();
    all.push(warm);
    for args in &all {
        for (variable, keys) in [(ENV_CURRENT, Keys::Unset), (ENV_PREVIOUS, Keys::CurrentOnly)] {
            let r = pw_cache_with_env(args, keys, &[(variable, bad)]);
            let message = r.one_line_error();
            assert!(
                message.contains(&format!("environment variable {variable}")),
                "{message}"
            );
            assert!(!message.contains(bad) && !r.stdout.contains(bad), "{message}");
        }
    }
    assert!(!warm_target.l2.exists(), "warm created nothing");
    assert!(!cache.l2.join("pw-cache.key").exists());
}

#[test]
fn no_key_at_all_is_exit_2_and_no_key_file_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TestCache::fixtures("jsonl");
    let key_file = cache.l2.join("pw-cache.key");
    for (command, extra) in reading_commands(dir.path()) {
        let r = run(command, &cache.args(), &extra, Keys::Unset);
        let message = r.one_line_error();
        assert!(message.contains(ENV_CURRENT), "{message}");
        assert_names(message, &key_file, "no encryption key");
        assert!(!key_file.exists(), "{command} made a key file");
    }
    // `--key-file` names another place to look.
    let elsewhere = dir.path().join("keys").join("cache.key");
    let mut extra = vec![OsString::from("--key-file"), elsewhere.clone().into()];
    extra.push("--json".into());
    let r = run("stats", &cache.args(), &extra, Keys::Unset);
    assert_names(r.one_line_error(), &elsewhere, "no encryption key");
}

#[test]
fn the_wrong_backend_is_exit_2_with_a_hint() {
    let jsonl = TestCache::fixtures("jsonl");
    let r = run("stats", &cache_args(&jsonl.l2, "sqlite", &jsonl.l3), &[], Keys::Both);
    let message = r.one_line_error();
    assert!(message.contains("--l2-backend jsonl"), "{message}");
    assert!(!jsonl.l2.join("l2_cache.db").exists(), "no database created");
    let sqlite = TestCache::fixtures("sqlite");
    let r = run("stats", &cache_args(&sqlite.l2, "jsonl", &sqlite.l3), &[], Keys::Both);
    assert!(r.one_line_error().contains("--l2-backend sqlite"));
    assert!(!sqlite.l2.join("shard_00.jsonl").exists(), "no shard created");
    // Not even `warm`, which creates a cache, writes beside the other backend's files.
    let file = pw_cache_tests::proxywhirl_fixtures().join("warm/warm_input.jsonl");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache_args(&jsonl.l2, "sqlite", &jsonl.l3));
    assert!(
        pw_cache(&args, Keys::Both)
            .one_line_error()
            .contains("--l2-backend jsonl")
    );
    assert!(!jsonl.l2.join("l2_cache.db").exists(), "no database created");
}

#[test]
fn other_unusable_paths_are_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TestCache::fixtures("jsonl");
    // An export into a directory that does not exist.
    let out = dir.path().join("no-such-dir").join("out.jsonl");
    let r = run(
        "export",
        &cache.args(),
        &["--out".into(), out.clone().into()],
        Keys::Both,
    );
    assert!(
        r.one_line_error()
            .contains(&out.parent().unwrap().display().to_string())
    );
    // A config file that is missing, or not a config.
    let config = dir.path().join("config.json");
    let r = run(
        "stats",
        &cache.args(),
        &["--config".into(), config.clone().into()],
        Keys::Both,
    );
    assert_names(r.one_line_error(), &config, "cannot read config file");
    std::fs::write(&config, r#"{"default_ttl_seconds": 1}"#).unwrap();
    let r = run(
        "stats",
        &cache.args(),
        &["--config".into(), config.clone().into()],
        Keys::Both,
    );
    assert!(r.one_line_error().contains("default_ttl_seconds"), "{}", r.stderr);
    // A warm file that is a directory.
    let mut args = vec![OsString::from("warm"), "--file".into(), dir.path().into()];
    args.extend(TestCache::empty("jsonl").args());
    let r = pw_cache(&args, Keys::Both);
    assert_names(r.one_line_error(), dir.path(), "not a file");
}

/// `warm` of a valid file with these cache options.
fn warm_args(cache: &[OsString]) -> Vec<OsString> {
    let file = pw_cache_tests::proxywhirl_fixtures().join("warm/warm_input.jsonl");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.iter().cloned());
    args
}

#[test]
fn an_l2_directory_that_is_a_file_is_named_as_such_and_nothing_is_created() {
    for backend in ["jsonl", "sqlite"] {
        let dir = tempfile::tempdir().unwrap();
        let l2 = dir.path().join("l2");
        std::fs::write(&l2, b"not a directory").unwrap();
        let l3 = dir.path().join("l3").join("cache.db");
        let before = tree(dir.path());
        // With a key in the environment and without (where the key file would be looked for, and
        // made, in the L2 directory): the directory is the problem, not the key.
        for keys in [Keys::Both, Keys::Unset] {
            let r = pw_cache(warm_args(&cache_args(&l2, backend, &l3)), keys);
            let message = r.one_line_error();
            assert_eq!(
                message,
                format!("error: the L2 directory {} is not a directory (--l2-dir)", l2.display()),
                "{backend} {keys:?}"
            );
            assert!(!message.contains("key"), "{message}");
            // A directory to be made under it.
            let under = l2.join("cache");
            let r = pw_cache(warm_args(&cache_args(&under, backend, &l3)), keys);
            assert_names(r.one_line_error(), &l2, "is not a directory (--l2-dir)");
            assert_eq!(
                tree(dir.path()),
                before,
                "{backend} {keys:?}: nothing created or changed"
            );
        }
        // The commands that read a cache say the same.
        for (command, extra) in reading_commands(dir.path()) {
            let r = run(command, &cache_args(&l2, backend, &l3), &extra, Keys::Both);
            assert_names(r.one_line_error(), &l2, "is not a directory (--l2-dir)");
        }
        assert_eq!(tree(dir.path()), before, "{backend}: nothing created or changed");
    }
}

#[test]
fn a_warm_into_paths_taken_by_something_else_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is not a SQLite database, just some bytes that are long enough to look like a header";
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let a_dir = dir.path().join("a-dir");
    std::fs::create_dir(&a_dir).unwrap();
    let not_db = dir.path().join("not-a-db.db");
    std::fs::write(&not_db, garbage).unwrap();
    let sqlite_l2 = dir.path().join("l2-with-bad-db");
    std::fs::create_dir(&sqlite_l2).unwrap();
    std::fs::write(sqlite_l2.join("l2_cache.db"), garbage).unwrap();
    let (l2, l3) = (dir.path().join("new-l2"), dir.path().join("new-l3").join("cache.db"));
    let before = tree(dir.path());
    // (the cache options, the path named, what is said of it).
    let key_file = |path: PathBuf| -> Vec<OsString> {
        let mut args = cache_args(&l2, "jsonl", &l3);
        args.extend(["--key-file".into(), path.into()]);
        args
    };
    let cases: Vec<(Vec<OsString>, PathBuf, &str)> = vec![
        (
            cache_args(&l2, "jsonl", &a_dir),
            a_dir.clone(),
            "is not a file (--l3-db)",
        ),
        (
            cache_args(&l2, "sqlite", &a_file.join("cache.db")),
            a_file.clone(),
            "is not a directory (--l3-db)",
        ),
        (
            cache_args(&l2, "sqlite", &not_db),
            not_db.clone(),
            "is not a SQLite database (--l3-db)",
        ),
        (
            cache_args(&sqlite_l2, "sqlite", &l3),
            sqlite_l2.join("l2_cache.db"),
            "is not a SQLite database (--l2-dir)",
        ),
        (key_file(a_dir.clone()), a_dir.clone(), "is not a file (--key-file)"),
        (
            key_file(a_file.join("pw-cache.key")),
            a_file.clone(),
            "is not a directory (--key-file)",
        ),
    ];
    for (cache, named, what) in cases {
        for keys in [Keys::Both, Keys::Unset] {
            let r = pw_cache(warm_args(&cache), keys);
            let message = r.one_line_error();
            assert_names(message, &named, what);
            assert_eq!(tree(dir.path()), before, "{message}: nothing created or changed");
        }
    }
}
