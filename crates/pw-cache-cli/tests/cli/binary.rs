//! Which binary the tests run, and `--version`: with `PW_CACHE_BIN` set (the installed command),
//! that file is the one every test runs; without it, the one cargo built.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::{Keys, PW_CACHE_BIN, pw_cache};

/// `pw-cache <version of this package>`.
fn version_line() -> String {
    format!("pw-cache {}\n", env!("CARGO_PKG_VERSION"))
}

#[test]
fn the_binary_run_is_pw_cache_bin_when_it_is_set() {
    let run = pw_cache(["--version"], Keys::Unset).expect_code(0);
    assert_eq!(run.stdout, version_line());
    match std::env::var_os(PW_CACHE_BIN).filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert_eq!(run.program, path, "the tests run $PW_CACHE_BIN");
            assert!(path.is_file(), "PW_CACHE_BIN={} is no file", path.display());
            // That file, run on its own, is this version of the command.
            let out = Command::new(&path).arg("--version").output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), version_line());
            eprintln!("testing the pw-cache binary {}", path.display());
        }
        None => {
            assert_eq!(run.program, PathBuf::from(env!("CARGO_BIN_EXE_pw-cache")));
        }
    }
}

#[test]
fn version_and_help_exit_0_on_stdout() {
    for args in [&["--version"][..], &["-V"][..], &["--help"][..], &["help", "get"][..]] {
        let run = pw_cache(args, Keys::Unset).expect_code(0);
        assert!(
            !run.stdout.is_empty() && run.stderr.is_empty(),
            "{args:?}: {}",
            run.stderr
        );
    }
    let help = pw_cache(["--help"], Keys::Unset).expect_code(0);
    assert!(help.stdout.contains("Usage: pw-cache <COMMAND>"), "{}", help.stdout);
}
