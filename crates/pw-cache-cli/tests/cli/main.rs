//! The `pw-cache` binary run as a process, one module per command or behaviour, on copies of
//! proxywhirl 0.3.3's fixture caches; [`common`] runs it with the fixtures' keys in its
//! environment and checks every run for a panic or a leaked secret.
//!
//! The binary is `$PW_CACHE_BIN` when set (the installed command: `test.sh` sets it after
//! `cargo install --path crates/pw-cache-cli`), else the one cargo built (`CARGO_BIN_EXE_pw-cache`).
//!
//! One test binary for all of them: linking is what a change costs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

mod bad_input;
mod binary;
mod cleanup;
mod closed_pipe;
mod completions;
mod export_roundtrip;
mod get_inspect;
mod help;
mod json;
mod key_warnings;
mod migrate_jsonl;
mod redis_l3;
mod rotate_key;
mod stats;
mod warm;
