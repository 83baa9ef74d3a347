//! Fuzz target `jsonl_line`: see [`pw_cache_fuzz::check_jsonl_line`] for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pw_cache_fuzz::check_jsonl_line(data));
