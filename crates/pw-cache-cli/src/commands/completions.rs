//! `completions`: the completion script of a shell for `pw-cache`, by `clap_complete`.

use clap::CommandFactory;

use super::{CmdResult, Outcome};
use crate::cli::{Cli, CompletionsArgs};

/// Runs `completions`: the script in `out`, for the command named `pw-cache`.
pub fn run(args: &CompletionsArgs, out: &mut String) -> CmdResult {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "pw-cache", &mut script);
    out.push_str(&String::from_utf8_lossy(&script));
    Ok(Outcome::Done)
}
