//! `show-config`: check a JSON cache configuration and print the effective one.

use pw_cache::CacheConfig;

use super::{CmdResult, Fatal, Outcome};
use crate::cli::ShowConfigArgs;

/// Reads `--file` (or takes the defaults), validates it, and prints it as JSON (the key masked).
/// The output is the same JSON document with `--json` or without.
pub fn run(args: &ShowConfigArgs, out: &mut String) -> CmdResult {
    let config = match args.file.as_deref() {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Fatal::context(format_args!("cannot read config file {}", path.display()), e))?;
            CacheConfig::from_json_str(&text).map_err(|e| Fatal::context(path.display(), e))?
        }
        None => CacheConfig::default(),
    };
    let text = serde_json::to_string_pretty(&config).map_err(|e| Fatal::context("cannot print the config", e))?;
    say!(out, "{text}");
    Ok(Outcome::Done)
}
