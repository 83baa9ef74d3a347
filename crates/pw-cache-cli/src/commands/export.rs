//! `export`: `CacheManager::export_to_file_with` of an existing cache.

use pw_cache::{ExportCredentials, ExportOptions};
use serde_json::json;

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, open_cache, report_json, say_json,
};
use crate::cli::ExportArgs;
use crate::progress::Progress;

/// How many unreadable entries are listed.
const FAILURES_SHOWN: usize = 20;

/// Runs `export`: the summary (or with `--json` the report) in `out`. Exit 1 when an entry could
/// not be read (it is left out and named).
pub fn run(args: &ExportArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase(format!("exporting to {}", args.out.display()));
    let credentials = if args.encrypted_credentials {
        ExportCredentials::Encrypted
    } else {
        ExportCredentials::Masked
    };
    let report = manager
        .export_to_file_with(&args.out, ExportOptions { credentials })
        .map_err(Fatal::from)?;
    drop(progress);

    let outcome = Outcome::partial_if(report.failed > 0);
    if args.json {
        let failures: Vec<_> = report
            .failures
            .iter()
            .map(|(key, reason)| json!({"key": key, "reason": reason}))
            .collect();
        let fields = json!({
            "out": args.out.display().to_string(),
            "credentials": match credentials {
                ExportCredentials::Masked => "masked",
                ExportCredentials::Encrypted => "encrypted",
            },
            "exported": report.exported,
            "expired": report.expired,
            "failed": report.failed,
            "failures": failures,
        });
        say_json(out, &report_json(&manager, fields))?;
        return Ok(outcome.and(close(manager)));
    }
    say!(out, "export  {}", args.out.display());
    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out, "keys    {}", describe_keys(manager.key_ring()));
    say!(
        out,
        "credentials {}",
        match credentials {
            ExportCredentials::Masked => "masked as \"***\"",
            ExportCredentials::Encrypted =>
                "as Fernet tokens under the current key (username_encrypted, password_encrypted)",
        }
    );
    say!(out);
    say!(out, "exported {:>8}", report.exported);
    say!(out, "expired  {:>8}  (left out, not deleted)", report.expired);
    say!(out, "failed   {:>8}", report.failed);
    if !report.failures.is_empty() {
        say!(out);
        for (key, reason) in report.failures.iter().take(FAILURES_SHOWN) {
            say!(out, "  {key}: {reason}");
        }
        let more = report.failures.len().saturating_sub(FAILURES_SHOWN);
        if more > 0 {
            say!(
                out,
                "  ... and {more} more (`pw-cache stats --json` lists every unreadable key)"
            );
        }
    }
    Ok(outcome.and(close(manager)))
}
