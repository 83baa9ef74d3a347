//! `cargo xtask`: project chores and operator commands for pw-cache.
//!
//! Exit codes: 0 success, 2 bad usage or unusable input (the message names the path or field).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pw_cache::CacheConfig;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "pw-cache chores and operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a JSON cache configuration (or the embedded defaults) and print the effective one.
    ShowConfig {
        /// A JSON config file; every field is optional and defaults as proxywhirl's.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ShowConfig { file } => show_config(file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn show_config(file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
            CacheConfig::from_json_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => CacheConfig::default(),
    };
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}
