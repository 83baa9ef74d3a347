//! `pw_cache._native.cli(argv)`: the `pw-cache` command (the `pw-cache-cli` crate) for the
//! Python package's console script, so `pip install` gives the same command as `cargo install`.

use pyo3::prelude::*;

/// Runs the `pw-cache` command with `argv` (the program's name first) and returns its exit
/// code (0 done, 1 partial, 2 unusable input or bad usage). Its summary goes to the process's
/// stdout and its errors to stderr, as the binary's do. The GIL is released while it runs.
#[pyfunction]
pub fn cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| pw_cache_cli::run_code(argv))
}
