//! Issue 24, for the commands: what the library finds worth a warning about the key file (it is
//! readable by group or others) is printed on stderr, not only logged; a cache directory owned
//! by another user is refused with one error line naming it, its owner and its mode.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Keys, TestCache, pw_cache};
use pw_cache::DEFAULT_KEY_FILE_NAME;
use pw_cache_tests::fixture_keys;

#[test]
fn exposed_key_file_is_warned_about_on_stderr() {
    let cache = TestCache::fixtures("jsonl");
    let key_file = cache.l2.join(DEFAULT_KEY_FILE_NAME);
    let (current, previous) = fixture_keys();
    std::fs::write(&key_file, format!("{current}\n{previous}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = pw_cache(cache.command("stats", &[]), Keys::Unset).expect_code(0);
    assert!(!run.stderr.contains("warning: key file"), "{}", run.stderr);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = pw_cache(cache.command("stats", &[]), Keys::Unset).expect_code(0);
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
    let run = pw_cache(cache.command("stats", &[]), Keys::Both);
    let error = run.one_line_error();
    assert!(
        error.contains(&cache.l2.display().to_string()) && error.contains("uid 12345") && error.contains("mode 7"),
        "{error}"
    );
}

/// A cache directory a real second user planted (in a shared sticky directory, full of links to
/// root-only files: see `pw_cache_tests::planted`): every command that opens a cache refuses it
/// with the library's error on one line, exit 2, and the files the links point at are unchanged.
#[test]
fn planted_directory_of_links_is_refused_by_every_command() {
    use pw_cache_tests::planted::{OTHER_UID, plant_links};
    for backend in ["jsonl", "sqlite"] {
        let planted = plant_links(16);
        let before = planted.snapshot();
        let warm_file = planted.root.path().join("warm.csv");
        std::fs::write(&warm_file, "proxy_url,password\nhttp://10.9.9.9:8080,pw\n").unwrap();
        let out = planted.root.path().join("export.jsonl");
        let cache = common::cache_args(&planted.l2, backend, &planted.l3);
        let commands: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
            ("stats", vec![]),
            ("warm", vec!["--file".into(), warm_file.clone().into()]),
            ("export", vec!["--out".into(), out.clone().into()]),
            ("rotate-key", vec![]),
            ("cleanup", vec![]),
        ];
        for (command, extra) in commands {
            let mut args = common::args(command, &cache);
            args.extend(extra);
            for keys in [Keys::Unset, Keys::Both] {
                let run = pw_cache(&args, keys);
                let error = run.one_line_error();
                assert!(
                    error.contains(&planted.l2.display().to_string()) && error.contains(&format!("uid {OTHER_UID}")),
                    "{backend} {command}: {error}"
                );
            }
        }
        assert!(!out.exists(), "{backend}: nothing exported");
        assert!(planted.snapshot() == before, "{backend}: a root-only file changed");
    }
}
