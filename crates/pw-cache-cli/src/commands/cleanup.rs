//! `cleanup`: `CacheManager::cleanup_now` of an existing cache, and with `--remove-unreadable`
//! the operator's removal of what the keys cannot read (`CacheManager::remove_unreadable`).

use pw_cache::{CacheManager, CacheTierType, CleanupReport, UnreadableRemoval};
use serde_json::{Map, Value, json};

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, open_cache, report_json, say_json,
};
use crate::cli::CleanupArgs;
use crate::progress::Progress;

/// Runs `cleanup`: the summary (or with `--json` the report) in `out`. Exit 1 when a tier's
/// cleanup or removal failed.
pub fn run(args: &CleanupArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase("removing expired entries");
    let report = manager.cleanup_now();
    drop(progress);

    if args.json {
        let left = unreadable_left(&manager)?;
        let removal = args.remove_unreadable.then(|| manager.remove_unreadable());
        let outcome = Outcome::partial_if(!report.failures.is_empty()).and(Outcome::partial_if(
            removal.as_ref().is_some_and(|r| !r.failed.is_empty()),
        ));
        say_json(out, &report_json(&manager, as_json(&report, &left, removal.as_ref())))?;
        return Ok(close(manager).and(outcome));
    }

    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out);
    say!(out, "expired entries removed");
    for (i, tier) in [CacheTierType::L1, CacheTierType::L2, CacheTierType::L3]
        .iter()
        .enumerate()
    {
        // L1 is off in these commands: it holds nothing of the cache on disk.
        if *tier != CacheTierType::L1 {
            say!(out, "  {:<6}{:>8}", tier.to_string(), report.removed[i]);
        }
    }
    say!(out, "  {:<6}{:>8}", "total", report.total());
    for (tier, reason) in &report.failures {
        say!(out, "  {tier}: cleanup failed: {reason}");
    }
    let mut outcome = Outcome::partial_if(!report.failures.is_empty());
    let left = unreadable_left(&manager)?;
    if args.remove_unreadable {
        outcome = outcome.and(remove_unreadable(&manager, &left, out));
    } else if left.iter().any(|(_, n)| *n > 0) {
        say!(out);
        for (tier, n) in left.iter().filter(|(_, n)| *n > 0) {
            say!(
                out,
                "  {tier}: {n} unreadable entries left in place (never expired; --remove-unreadable removes them)"
            );
        }
    }
    Ok(close(manager).and(outcome))
}

/// Unreadable entries per disk tier, as `inspect` counts them (every entry read, none used).
fn unreadable_left(manager: &CacheManager) -> Result<Vec<(CacheTierType, u64)>, Fatal> {
    let inspection = manager.inspect().map_err(Fatal::from)?;
    Ok(inspection
        .tiers
        .iter()
        .filter(|(tier, _)| **tier != CacheTierType::L1)
        .map(|(tier, t)| (*tier, t.corrupt))
        .collect())
}

/// Says what will go and why, removes it, says what went.
fn remove_unreadable(manager: &CacheManager, found: &[(CacheTierType, u64)], out: &mut String) -> Outcome {
    say!(out);
    say!(out, "keys    {}", describe_keys(manager.key_ring()));
    say!(
        out,
        "removing the entries these keys cannot read: damaged records, and credentials under a key the ring \
         lacks (and, in JSONL shards, lines that are no entry)"
    );
    for (tier, n) in found {
        say!(out, "  {:<6}{:>8} found unreadable", tier.to_string(), n);
    }
    let removal = manager.remove_unreadable();
    say!(out, "unreadable entries removed");
    for (tier, n) in &removal.removed {
        say!(out, "  {:<6}{:>8}", tier.to_string(), n);
    }
    say!(out, "  {:<6}{:>8}", "total", removal.total());
    for (tier, reason) in &removal.failed {
        say!(out, "  {tier}: removal failed: {reason}");
    }
    Outcome::partial_if(!removal.failed.is_empty())
}

/// Counts per tier as a JSON object, with their `total`.
fn counts_json<'a>(counts: impl Iterator<Item = (&'a CacheTierType, u64)>) -> Value {
    let mut out = Map::new();
    let mut total = 0;
    for (tier, n) in counts {
        total += n;
        out.insert(tier.to_string(), json!(n));
    }
    out.insert("total".to_owned(), json!(total));
    Value::Object(out)
}

/// The `--json` report's own fields (docs/cli.md).
fn as_json(report: &CleanupReport, left: &[(CacheTierType, u64)], removal: Option<&UnreadableRemoval>) -> Value {
    // `removed` is per L1, L2, L3; L1 is off in these commands: it holds nothing of the cache on
    // disk.
    let tiers = [(CacheTierType::L2, 1), (CacheTierType::L3, 2)];
    let expired = counts_json(tiers.iter().map(|(tier, i)| (tier, report.removed[*i] as u64)));
    let failures: Vec<Value> = report
        .failures
        .iter()
        .map(|(tier, reason)| json!({"tier": tier.to_string(), "reason": reason}))
        .collect();
    let found = counts_json(left.iter().map(|(tier, n)| (tier, *n)));
    let (removed, removal_failures) = match removal {
        Some(removal) => {
            let failed: Vec<Value> = removal
                .failed
                .iter()
                .map(|(tier, reason)| json!({"tier": tier.to_string(), "reason": reason}))
                .collect();
            (counts_json(removal.removed.iter().map(|(t, n)| (t, *n))), json!(failed))
        }
        None => (Value::Null, json!([])),
    };
    json!({
        "expired_removed": expired,
        "failures": failures,
        "unreadable_found": found,
        "unreadable_removed": removed,
        "removal_failures": removal_failures,
    })
}
