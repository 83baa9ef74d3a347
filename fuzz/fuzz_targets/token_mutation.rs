//! Fuzz target `token_mutation`: see [`pw_cache_fuzz::check_token_mutation`] for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pw_cache_fuzz::check_token_mutation(data));
