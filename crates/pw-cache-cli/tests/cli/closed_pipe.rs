//! A reader that goes away before the summary is written (`pw-cache stats | head -0`) is no
//! panic: the command still exits with its own code.

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{ENV_CURRENT, ENV_PREVIOUS, TestCache};
use pw_cache_tests::fixture_keys;

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let cache = TestCache::fixtures("jsonl");
    let (current, previous) = fixture_keys();
    let mut child = Command::new(common::binary())
        .args(cache.command("stats", &[]))
        .env(ENV_CURRENT, current)
        .env(ENV_PREVIOUS, previous)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
