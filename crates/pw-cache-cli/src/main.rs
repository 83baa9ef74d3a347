//! The `pw-cache` command: operator commands for a proxywhirl-compatible proxy cache. Everything
//! is in the `pw_cache_cli` library (`pw-cache --help`, docs/cli.md).

fn main() -> std::process::ExitCode {
    pw_cache_cli::run(std::env::args_os())
}
