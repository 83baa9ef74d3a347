//! Fuzz target `warm_json`: see [`pw_cache_fuzz::check_warm_json`] for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pw_cache_fuzz::check_warm_json(data));
