//! Security of what is on disk and in memory: trusted directories, planted files and inputs too
//! large to hold, private file modes, the key file, and credentials kept out of Debug, Display,
//! serde and errors.
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod file_permissions;
mod files_and_limits;
mod key_file;
mod secrets;
mod trusted_dirs;
