//! `pw-cache migrate-jsonl`: the fixtures' `jsonl_l2/` migrates into an `l2_cache.db` holding
//! exactly the manifest's entries; a second run changes no row; a dry run creates and changes
//! nothing in `--to`; the source's bytes never change; entries that cannot be read are counted,
//! named with their reason, and make the exit code 1.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::{Keys, Run, has_credentials, pw_cache, snapshot, store_entries};
use pw_cache::{CacheTierConfig, SqliteL2Tier};
use pw_cache_tests::{assert_tier_matches_manifest, fixture_ring, proxywhirl_fixtures};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

/// A copy of `jsonl_l2/` in `dir/src`, and where the database goes: `dir/dst`.
fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = dir.join("src");
    common::copy_dir(&proxywhirl_fixtures().join("jsonl_l2"), &src);
    (src, dir.join("dst"))
}

fn migrate(src: &Path, dst: &Path, extra: &[&str], keys: Keys) -> Run {
    let mut args: Vec<OsString> = vec![
        "migrate-jsonl".into(),
        "--from".into(),
        src.into(),
        "--to".into(),
        dst.into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    pw_cache(args, keys)
}

/// Every row of `l2_cache`, every column, in key order.
fn rows(db: &Path) -> Vec<Vec<SqlValue>> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM l2_cache ORDER BY key").unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_fixtures_jsonl_migrates_to_the_manifests_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = setup(dir.path());
    let before = snapshot(&src);
    let run = migrate(&src, &dst, &[], Keys::Both).expect_code(0);
    assert_eq!(
        (
            run.count("migrated"),
            run.count("skipped"),
            run.count("failed"),
            run.count("superseded")
        ),
        (200, 0, 0, 0),
        "{}",
        run.stdout
    );
    assert_eq!(snapshot(&src), before, "the source is only read");
    assert!(
        !dst.join("pw-cache.key").exists() && !src.join("pw-cache.key").exists(),
        "keys came from the environment"
    );
    // The SQLite L2 table has no health-detail columns: the migrated entries are the ones
    // proxywhirl's DiskCacheTier holds (the `sqlite_l2` store: same 200 entries as `jsonl_l2`).
    let tier = SqliteL2Tier::open(&dst, &CacheTierConfig::unbounded(), fixture_ring()).unwrap();
    assert_tier_matches_manifest(&tier, "sqlite_l2");
}

#[test]
fn a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = setup(dir.path());
    let before = snapshot(&src);
    migrate(&src, &dst, &[], Keys::Both).expect_code(0);
    let db = dst.join("l2_cache.db");
    let first = rows(&db);
    assert_eq!(first.len(), 200);
    let run = migrate(&src, &dst, &[], Keys::Both).expect_code(0);
    assert_eq!(
        (run.count("migrated"), run.count("skipped"), run.count("failed")),
        (0, 200, 0),
        "{}",
        run.stdout
    );
    // Row for row, column for column: not even a credential token was re-encrypted.
    assert_eq!(rows(&db), first);
    assert_eq!(snapshot(&src), before, "nothing deleted or changed in the source");
}

#[test]
fn a_dry_run_creates_and_changes_nothing_in_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = setup(dir.path());
    let run = migrate(&src, &dst, &["--dry-run"], Keys::Both).expect_code(0);
    assert_eq!(run.count("migrated"), 200, "{}", run.stdout);
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(!dst.exists(), "a dry run does not create --to");

    migrate(&src, &dst, &[], Keys::Both).expect_code(0);
    let target = snapshot(&dst);
    // Against an existing database the dry run says what a real run would do: nothing.
    let run = migrate(&src, &dst, &["--dry-run"], Keys::Both).expect_code(0);
    assert_eq!(
        (run.count("migrated"), run.count("skipped")),
        (0, 200),
        "{}",
        run.stdout
    );
    assert_eq!(snapshot(&dst), target, "the target's files are unchanged");
}

#[test]
fn unreadable_entries_and_lines_are_counted_named_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = setup(dir.path());
    {
        use std::io::Write;
        let mut shard = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("shard_03.jsonl"))
            .unwrap();
        writeln!(shard, "not json at all").unwrap();
    }
    let before = snapshot(&src);
    // With the previous key alone, the credentials written under the current key cannot be read.
    let run = migrate(&src, &dst, &[], Keys::PreviousOnly).expect_code(1);
    let unreadable: Vec<String> = store_entries("jsonl_l2")
        .iter()
        .filter(|e| has_credentials(e) && e["encrypted_with"] == "current")
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unreadable.len(), 100);
    assert_eq!(run.count("migrated"), 100, "{}", run.stdout);
    assert_eq!(run.count("failed"), 100 + 1, "{}", run.stdout);
    // Reasons: each listed failure names its key (the first ones), and the damaged line.
    assert!(run.stdout.contains("no key of the ring opens"), "{}", run.stdout);
    assert!(run.stdout.contains("not JSON"), "{}", run.stdout);
    assert!(run.stdout.contains("more"), "a long list is cut: {}", run.stdout);
    let named = unreadable.iter().filter(|k| run.stdout.contains(k.as_str())).count();
    assert!(named >= 10, "{named} keys named:\n{}", run.stdout);
    assert_eq!(snapshot(&src), before);
}

#[test]
fn a_missing_source_or_key_is_exit_2_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let dst = dir.path().join("dst");
    let run = migrate(&missing, &dst, &[], Keys::Both);
    let message = run.one_line_error();
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("does not exist"),
        "{message}"
    );
    assert!(!dst.exists());

    // No key in the environment and no key file beside the shards: the credentials could not
    // be read, and no new key is made up.
    let (src, dst) = setup(dir.path());
    let run = migrate(&src, &dst, &[], Keys::Unset);
    let message = run.one_line_error();
    assert!(message.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY"), "{message}");
    assert!(
        message.contains(&src.join("pw-cache.key").display().to_string()),
        "{message}"
    );
    assert!(!dst.exists() && !src.join("pw-cache.key").exists());
}

/// Under umask 000 the dry run's scratch copy of the database is still private (0700): made
/// with the umask's mode it would be 0777, which the tiers' trust check refuses (and which
/// another user could read).
#[test]
fn a_dry_run_under_umask_000_keeps_its_scratch_copy_private() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = setup(dir.path());
    let (current, previous) = pw_cache_tests::fixture_keys();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(common::binary())
        .args(["migrate-jsonl", "--from"])
        .arg(&src)
        .arg("--to")
        .arg(&dst)
        .arg("--dry-run")
        .env("PROXYWHIRL_CACHE_ENCRYPTION_KEY", current)
        .env("PROXYWHIRL_CACHE_KEY_PREVIOUS", previous)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::count_in(&stdout, "migrated"), 200, "{stdout}");
    assert!(!dst.exists(), "a dry run does not create --to");
}
