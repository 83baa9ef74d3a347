//! Every subcommand answers `--help` with its documentation and the options the issue spells;
//! usage errors exit 2 with clap's message.

use crate::common;

use common::{Keys, pw_cache};

#[test]
fn every_subcommand_documents_its_options() {
    let cases: [(&str, &[&str]); 10] = [
        (
            "migrate-jsonl",
            &["--from <DIR>", "--to <DIR>", "--dry-run", "--key-file <FILE>", "--json"],
        ),
        (
            "warm",
            &[
                "--file <FILE>",
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--l3-db <PATH>",
                "--ttl <SECS>",
                "--json",
            ],
        ),
        (
            "export",
            &[
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--l3-db <PATH>",
                "--out <FILE>",
                "--encrypted-credentials",
                "--json",
            ],
        ),
        (
            "stats",
            &["--l2-dir <DIR>", "--l2-backend <BACKEND>", "--l3-db <PATH>", "--json"],
        ),
        (
            "rotate-key",
            &[
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--l3-db <PATH>",
                "--new-key",
                "--json",
            ],
        ),
        (
            "cleanup",
            &[
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--l3-db <PATH>",
                "--remove-unreadable",
                "--json",
            ],
        ),
        ("show-config", &["--file <FILE>", "--json"]),
        (
            "get",
            &[
                "[KEY]",
                "--url <URL>",
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--json",
            ],
        ),
        (
            "inspect",
            &[
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--expired",
                "--unreadable",
                "--limit <N>",
                "--json",
            ],
        ),
        (
            "completions",
            &["<SHELL>", "bash", "zsh", "fish", "elvish", "powershell"],
        ),
    ];
    for (command, options) in cases {
        let run = pw_cache([command, "--help"], Keys::Unset).expect_code(0);
        for option in options {
            assert!(
                run.stdout.contains(option),
                "{command} --help lacks {option}:\n{}",
                run.stdout
            );
        }
        assert!(
            run.stdout.contains(&format!("Usage: pw-cache {command}")),
            "{command}: {}",
            run.stdout
        );
        if command.ends_with("-key") || command == "stats" || command == "warm" {
            assert!(
                run.stdout.contains("jsonl") && run.stdout.contains("sqlite"),
                "{}",
                run.stdout
            );
        }
    }
    let top = pw_cache(["--help"], Keys::Unset).expect_code(0);
    for command in [
        "migrate-jsonl",
        "warm",
        "export",
        "stats",
        "rotate-key",
        "cleanup",
        "show-config",
        "get",
        "inspect",
        "completions",
    ] {
        assert!(top.stdout.contains(command), "{command}:\n{}", top.stdout);
    }
    assert!(top.stdout.contains("Exit codes") && top.stdout.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY"));
    assert!(top.stdout.contains("--version"), "{}", top.stdout);
    assert!(
        !top.stdout.contains("bench"),
        "bench is `cargo xtask`'s, not pw-cache's"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["no-such-command"][..],
        &["stats", "--l2-dir", "x"][..],
        &["stats", "--l2-dir", "x", "--l2-backend", "redis", "--l3-db", "y"][..],
        &["migrate-jsonl", "--from", "x"][..],
        &["get", "--l2-dir", "x", "--l2-backend", "jsonl", "--l3-db", "y"][..],
        &[
            "get",
            "k",
            "--url",
            "http://1.2.3.4:80",
            "--l2-dir",
            "x",
            "--l2-backend",
            "jsonl",
        ][..],
        &[
            "inspect",
            "--expired",
            "--unreadable",
            "--l2-dir",
            "x",
            "--l2-backend",
            "jsonl",
        ][..],
        &["completions"][..],
        &[
            "warm",
            "--file",
            "f.json",
            "--l2-dir",
            "x",
            "--l2-backend",
            "jsonl",
            "--l3-db",
            "y",
            "--ttl",
            "0",
        ][..],
    ] {
        let run = pw_cache(args, Keys::Unset);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
