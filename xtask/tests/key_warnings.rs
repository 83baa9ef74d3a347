//! Issue 24, for the commands: what the library finds worth a warning about the key file (it is
//! readable by group or others) is printed on stderr, not only logged; a cache directory owned
//! by another user is refused with one error line naming it, its owner and its mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Keys, TestCache, xtask};
use pw_cache::DEFAULT_KEY_FILE_NAME;
use pw_cache_tests::fixture_keys;

#[test]
fn exposed_key_file_is_warned_about_on_stderr() {
    let cache = TestCache::fixtures("jsonl");
    let key_file = cache.l2.join(DEFAULT_KEY_FILE_NAME);
    let (current, previous) = fixture_keys();
    std::fs::write(&key_file, format!("{current}\n{previous}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = xtask(cache.command("stats", &[]), Keys::Unset).expect_code(0);
    assert!(!run.stderr.contains("warning: key file"), "{}", run.stderr);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = xtask(cache.command("stats", &[]), Keys::Unset).expect_code(0);
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: key file"))
        .unwrap_or_else(|| panic!("no key file warning in:\n{}", run.stderr));
    assert!(
        warning.contains(&key_file.display().to_string()) && warning.contains("644"),
        "{warning}"
    );
}

#[test]
fn cache_directory_of_another_user_is_refused() {
    let cache = TestCache::fixtures("sqlite");
    std::os::unix::fs::chown(&cache.l2, Some(12345), None).unwrap();
    let run = xtask(cache.command("stats", &[]), Keys::Both);
    let error = run.one_line_error();
    assert!(
        error.contains(&cache.l2.display().to_string()) && error.contains("uid 12345") && error.contains("mode 7"),
        "{error}"
    );
}
