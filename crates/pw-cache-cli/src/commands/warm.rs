//! `warm`: `CacheManager::warm_from_file` into a cache, created if missing.

use std::fs;
use std::path::Path;

use pw_cache::warm_file::check_warm_file;

use super::{Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, open_cache};
use crate::cli::WarmArgs;
use crate::progress::Progress;

/// Runs `warm`.
pub(crate) fn run(args: &WarmArgs, out: &mut String) -> CmdResult {
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
    let outcome = Outcome::partial_if(report.skipped + report.failed > 0);
    Ok(outcome.and(close(manager)))
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
