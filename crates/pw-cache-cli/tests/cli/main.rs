//! The `xtask` binary run as a process (`CARGO_BIN_EXE_xtask`), one module per command or
//! behaviour, on copies of proxywhirl 0.3.3's fixture caches; [`common`] runs it with the
//! fixtures' keys in its environment and checks every run for a panic or a leaked secret.
//!
//! One test binary for all of them: linking is what a change costs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod common;

mod bad_input;
mod cleanup;
mod closed_pipe;
mod export_roundtrip;
mod help;
mod key_warnings;
mod migrate_jsonl;
mod redis_l3;
mod rotate_key;
mod stats;
mod warm;
