//! `pw-cache completions <shell>` prints the shell's completion script for `pw-cache` on stdout.

use crate::common;

use common::{Keys, pw_cache};

#[test]
fn every_shell_gets_a_script_naming_the_command_and_its_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = pw_cache(["completions", shell], Keys::Unset).expect_code(0);
        assert!(run.stderr.is_empty(), "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("pw-cache"), "{shell}:\n{}", run.stdout);
        for command in ["migrate-jsonl", "rotate-key", "inspect"] {
            assert!(run.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    let bash = pw_cache(["completions", "bash"], Keys::Unset).expect_code(0);
    assert!(
        bash.stdout.contains("complete -F _pw-cache") || bash.stdout.contains("_pw__cache"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("--l2-backend"), "options are completed");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let run = pw_cache(["completions", "tcsh"], Keys::Unset);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("bash"),
        "the message lists the shells: {}",
        run.stderr
    );
}
