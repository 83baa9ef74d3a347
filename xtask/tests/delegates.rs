//! `cargo xtask` keeps `bench` and runs every other command through the `pw_cache_cli` library:
//! `show-config` and `stats` on a copy of the fixtures give the same stdout and exit code as
//! `pw-cache` (the library run in this process, and the installed binary when `PW_CACHE_BIN`
//! names it). The commands themselves are tested in crates/pw-cache-cli/tests/cli/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use pw_cache_tests::{fixture_keys, proxywhirl_fixtures};

/// The key variables, removed from the children's environment (the keys come from a key file).
const KEY_VARIABLES: [&str; 2] = ["PROXYWHIRL_CACHE_ENCRYPTION_KEY", "PROXYWHIRL_CACHE_KEY_PREVIOUS"];

/// Exit code, stdout and stderr of a process.
fn run(program: &Path, args: &[OsString]) -> (i32, String, String) {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for name in KEY_VARIABLES {
        cmd.env_remove(name);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `pw-cache <args>` run by the library in this process: exit code and summary.
fn library(args: &[OsString]) -> (i32, String) {
    let mut argv = vec![OsString::from("pw-cache")];
    argv.extend(args.iter().cloned());
    let cli = pw_cache_cli::Cli::parse_from(argv);
    let mut out = String::new();
    let result = pw_cache_cli::execute(&cli.command, &mut out);
    (i32::from(pw_cache_cli::exit_code(&result)), out)
}

fn xtask() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
}

/// A copy of the fixtures' JSONL L2 and L3, with their keys in the key file `pw-cache.key` (so
/// that no key variable is needed in this process).
fn fixture_cache(dir: &Path) -> Vec<OsString> {
    let fixtures = proxywhirl_fixtures();
    let l2 = dir.join("l2");
    std::fs::create_dir(&l2).unwrap();
    for f in std::fs::read_dir(fixtures.join("jsonl_l2")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), l2.join(f.file_name())).unwrap();
    }
    let l3 = dir.join("proxywhirl.db");
    std::fs::copy(fixtures.join("l3/proxywhirl.db"), &l3).unwrap();
    let (current, previous) = fixture_keys();
    let key_file = l2.join("pw-cache.key");
    std::fs::write(&key_file, format!("{current}\n{previous}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    [
        "--l2-dir".into(),
        l2.into(),
        "--l2-backend".into(),
        "jsonl".into(),
        "--l3-db".into(),
        l3.into(),
    ]
    .into()
}

#[test]
fn operator_commands_give_what_pw_cache_gives() {
    let dir = tempfile::tempdir().unwrap();
    let cache = fixture_cache(dir.path());
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"default_ttl_seconds": 600}"#).unwrap();
    let with = |command: &str, rest: &[OsString], extra: &[&str]| -> Vec<OsString> {
        let mut args = vec![OsString::from(command)];
        args.extend(rest.iter().cloned());
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let cases = [
        with("show-config", &[], &[]),
        with("show-config", &["--file".into(), config.into()], &[]),
        with("stats", &cache, &[]),
        with("stats", &cache, &["--json"]),
        with("inspect", &cache, &["--limit", "3"]),
        with("get", &cache, &["no-such-key"]),
    ];
    let keys_in_env = KEY_VARIABLES.iter().any(|v| std::env::var_os(v).is_some());
    let installed = std::env::var_os("PW_CACHE_BIN").filter(|p| !p.is_empty());
    for args in &cases {
        let (code, stdout, stderr) = run(xtask(), args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if !keys_in_env {
            // The library here reads the key file as the child does.
            let (lib_code, lib_stdout) = library(args);
            assert_eq!((code, &stdout), (lib_code, &lib_stdout), "{args:?}: {stderr}");
        }
        if let Some(bin) = &installed {
            let (bin_code, bin_stdout, bin_stderr) = run(Path::new(bin), args);
            assert_eq!(
                (code, &stdout, &stderr),
                (bin_code, &bin_stdout, &bin_stderr),
                "{args:?}"
            );
        }
        let want = if args[0] == "get" { 1 } else { 0 };
        assert_eq!(code, want, "{args:?}: {stderr}");
    }
    // An error is the same one line, exit 2.
    let missing = with(
        "stats",
        &[],
        &[
            "--l2-dir",
            "/nonexistent/l2",
            "--l2-backend",
            "jsonl",
            "--l3-db",
            "/nonexistent/db",
        ],
    );
    let (code, stdout, stderr) = run(xtask(), &missing);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "error: the L2 directory /nonexistent/l2 does not exist (--l2-dir)\n"
    );
}

#[test]
fn help_lists_bench_and_the_operator_commands() {
    let (code, stdout, _) = run(xtask(), &["--help".into()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Usage: cargo xtask <COMMAND>"), "{stdout}");
    for command in [
        "bench",
        "migrate-jsonl",
        "warm",
        "export",
        "stats",
        "get",
        "inspect",
        "rotate-key",
        "cleanup",
        "show-config",
    ] {
        assert!(stdout.contains(command), "{command}:\n{stdout}");
    }
    // pw-cache's text after the command list (keys, exit codes), however clap wraps it.
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words(&stdout).contains(&words(pw_cache_cli::AFTER_HELP)), "{stdout}");
    let (code, stdout, _) = run(xtask(), &["bench".into(), "--help".into()]);
    assert_eq!(code, 0);
    for option in ["--sizes", "--vs-python", "--redis", "--only"] {
        assert!(stdout.contains(option), "{option}:\n{stdout}");
    }
    let (code, stdout, _) = run(xtask(), &["stats".into(), "--help".into()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Usage: cargo xtask stats"), "{stdout}");
    for args in [
        &[][..],
        &["no-such-command".into()][..],
        &["bench".into(), "--sizes".into(), "x".into()][..],
    ] {
        let (code, stdout, _) = run(xtask(), args);
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}");
    }
}
