//! Every subcommand answers `--help` with its documentation and the options the issue spells;
//! usage errors exit 2 with clap's message.

use crate::common;

use common::{Keys, xtask};

#[test]
fn every_subcommand_documents_its_options() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "migrate-jsonl",
            &["--from <DIR>", "--to <DIR>", "--dry-run", "--key-file <FILE>"],
        ),
        (
            "warm",
            &[
                "--file <FILE>",
                "--l2-dir <DIR>",
                "--l2-backend <BACKEND>",
                "--l3-db <PATH>",
                "--ttl <SECS>",
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
            ],
        ),
        (
            "stats",
            &["--l2-dir <DIR>", "--l2-backend <BACKEND>", "--l3-db <PATH>", "--json"],
        ),
        (
            "rotate-key",
            &["--l2-dir <DIR>", "--l2-backend <BACKEND>", "--l3-db <PATH>"],
        ),
        (
            "cleanup",
            &["--l2-dir <DIR>", "--l2-backend <BACKEND>", "--l3-db <PATH>"],
        ),
        ("show-config", &["--file <FILE>"]),
    ];
    for (command, options) in cases {
        let run = xtask([command, "--help"], Keys::Unset).expect_code(0);
        for option in options {
            assert!(
                run.stdout.contains(option),
                "{command} --help lacks {option}:\n{}",
                run.stdout
            );
        }
        if command.ends_with("-key") || command == "stats" || command == "warm" {
            assert!(
                run.stdout.contains("jsonl") && run.stdout.contains("sqlite"),
                "{}",
                run.stdout
            );
        }
    }
    let top = xtask(["--help"], Keys::Unset).expect_code(0);
    for command in [
        "migrate-jsonl",
        "warm",
        "export",
        "stats",
        "rotate-key",
        "cleanup",
        "show-config",
    ] {
        assert!(top.stdout.contains(command), "{command}:\n{}", top.stdout);
    }
    assert!(top.stdout.contains("Exit codes") && top.stdout.contains("PROXYWHIRL_CACHE_ENCRYPTION_KEY"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["no-such-command"][..],
        &["stats", "--l2-dir", "x"][..],
        &["stats", "--l2-dir", "x", "--l2-backend", "redis", "--l3-db", "y"][..],
        &["migrate-jsonl", "--from", "x"][..],
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
        let run = xtask(args, Keys::Unset);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
