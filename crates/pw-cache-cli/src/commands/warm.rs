//! `warm`: `CacheManager::warm_from_file` into a cache, created if missing.

use std::fs;
use std::path::Path;

use pw_cache::WarmReport;
use pw_cache::warm_file::check_warm_file;
use serde_json::{Value, json};

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, key_file_created, open_cache, report_json,
    say_json,
};
use crate::cli::WarmArgs;
use crate::progress::Progress;

/// Runs `warm`: the summary (or with `--json` the report) in `out`. Exit 1 when a row was
/// skipped or failed.
pub fn run(args: &WarmArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start(format!("checking {}", args.file.display()));
    check_file(&args.file)?;
    progress.phase("opening the cache");
    let manager = open_cache(&args.cache, Access::CreateIfMissing)?;
    progress.phase(format!("warming from {}", args.file.display()));
    let report = manager
        // Progress in bytes of the file read: its rows are not counted before its end.
        .warm_from_file_with_progress(&args.file, args.ttl, &|read, size| progress.step_bytes(read, size))
        .map_err(Fatal::from)?;
    drop(progress);

    let outcome = Outcome::partial_if(report.skipped + report.failed > 0);
    if args.json {
        say_json(out, &report_json(&manager, as_json(args, &manager, &report)))?;
        return Ok(outcome.and(close(manager)));
    }
    say!(out, "warm    {}", args.file.display());
    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out, "keys    {}", describe_keys(manager.key_ring()));
    match args.ttl {
        Some(ttl) => say!(out, "ttl     {ttl} s for every entry"),
        None => say!(out, "ttl     per source (per_source_ttl, else default_ttl_seconds)"),
    }
    say!(out);
    let replaced = if report.replaced > 0 {
        format!(
            "  ({} replaced an earlier row of the file with the same key)",
            report.replaced
        )
    } else {
        String::new()
    };
    say!(out, "loaded  {:>8}{replaced}", report.loaded);
    say!(out, "skipped {:>8}", report.skipped);
    say!(out, "failed  {:>8}", report.failed);
    if !report.issues.is_empty() {
        say!(out);
        for issue in report.issues.iter().take(args.max_issues) {
            // Locations and reasons name fields, never a credential.
            say!(out, "  {issue}");
        }
        let more = report.issues.len().saturating_sub(args.max_issues);
        if more > 0 {
            say!(
                out,
                "  ... and {more} more (--max-issues {} lists them all)",
                report.issues.len()
            );
        }
        if report.issues_omitted > 0 {
            say!(
                out,
                "  ... and {} more not kept (a report keeps the first {})",
                report.issues_omitted,
                pw_cache::MAX_WARM_ISSUES_KEPT
            );
        }
    }
    Ok(outcome.and(close(manager)))
}

/// The `--json` report's own fields (docs/cli.md): every issue the report kept, not only
/// `--max-issues` of them.
fn as_json(args: &WarmArgs, manager: &pw_cache::CacheManager, report: &WarmReport) -> Value {
    let issues: Vec<Value> = report
        .issues
        .iter()
        .map(|issue| {
            json!({
                "location": issue.location.to_string(),
                "kind": issue.kind.to_string(),
                "reason": issue.reason,
            })
        })
        .collect();
    json!({
        "file": args.file.display().to_string(),
        "key_file_created": key_file_created(manager.key_ring()),
        "ttl": args.ttl,
        "loaded": report.loaded,
        "replaced": report.replaced,
        "skipped": report.skipped,
        "failed": report.failed,
        "issues": issues,
        "issues_omitted": report.issues_omitted,
    })
}

/// Fails when the warm file cannot be used at all (what would make the library's warm fail
/// rather than count bad rows), before the cache is opened and so before anything is created
/// for it: not a regular file, missing or unreadable, an unsupported extension, a `.csv` header
/// without `proxy_url`, a `.json` document that is not an array or is over
/// `pw_cache::model::limits::MAX_WARM_JSON_BYTES`.
fn check_file(file: &Path) -> Result<(), Fatal> {
    match fs::metadata(file) {
        // Not a FIFO or a device either: reading one could block or never end.
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(Fatal(format!("{}: the warm file is not a file", file.display()))),
        Err(e) => {
            return Err(Fatal(format!("{}: cannot read the warm file: {e}", file.display())));
        }
    }
    check_warm_file(file).map_err(|e| Fatal(e.to_string()))?;
    Ok(())
}
