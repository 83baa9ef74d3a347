//! `rotate-key`: `CacheManager::rotate_credentials` of an existing cache.

use std::collections::BTreeSet;

use pw_cache::{CacheTierType, ENV_PREVIOUS_KEYS, KeyCheck, KeyOrigin, RotationReport};
use serde_json::{Value, json};

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, key_file_of, open_cache_checked,
    report_json, say_json,
};
use crate::cli::RotateKeyArgs;
use crate::progress::Progress;

/// How many failures are listed.
const FAILURES_SHOWN: usize = 20;

/// Runs `rotate-key`: the summary (or with `--json` the report) in `out`. Exit 1 when an entry
/// could not be rewritten.
pub fn run(args: &RotateKeyArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let check = if args.new_key {
        KeyCheck::NewKey
    } else {
        KeyCheck::Strict
    };
    let manager = open_cache_checked(&args.cache, Access::Existing, check)?;
    progress.phase("re-encrypting every credential under the current key");
    let report = manager
        .rotate_credentials_with_progress(&|done, total| progress.step(done, total))
        .map_err(Fatal::from)?;
    drop(progress);

    let tiers: BTreeSet<CacheTierType> = report
        .rewritten
        .keys()
        .chain(report.without_credentials.keys())
        .chain(report.failed.iter().map(|(tier, _, _)| tier))
        .copied()
        .collect();
    let outcome = Outcome::partial_if(!report.failed.is_empty());
    if args.json {
        say_json(out, &report_json(&manager, as_json(&report, &tiers)))?;
        return Ok(outcome.and(close(manager)));
    }
    let ring = manager.key_ring();
    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out, "keys    {}", describe_keys(ring));
    say!(out);
    say!(
        out,
        "{:<5}{:>11}{:>22}{:>8}",
        "tier",
        "rewritten",
        "without credentials",
        "failed"
    );
    for tier in &tiers {
        let failed = report.failed.iter().filter(|(t, _, _)| t == tier).count();
        say!(
            out,
            "{:<5}{:>11}{:>22}{:>8}",
            tier.to_string(),
            report.rewritten.get(tier).copied().unwrap_or(0),
            report.without_credentials.get(tier).copied().unwrap_or(0),
            failed
        );
    }
    say!(out);
    if report.failed.is_empty() {
        let previous = ring.len().saturating_sub(1);
        if previous == 0 {
            say!(
                out,
                "every credential is now under the current key (there was no previous key)"
            );
        } else {
            let key_file = key_file_of(&args.cache, manager.config());
            let sources = match ring.origin() {
                KeyOrigin::KeyFile { path, .. } => {
                    format!(
                        "{ENV_PREVIOUS_KEYS}, and the lines after the first of {}",
                        path.display()
                    )
                }
                _ if key_file.exists() => format!("{ENV_PREVIOUS_KEYS}, and the key file {}", key_file.display()),
                _ => ENV_PREVIOUS_KEYS.to_owned(),
            };
            say!(
                out,
                "every credential is now under the current key: the {previous} previous key{} can be dropped ({sources})",
                if previous == 1 { "" } else { "s" },
            );
        }
    } else {
        for (tier, key, reason) in report.failed.iter().take(FAILURES_SHOWN) {
            if key.is_empty() {
                say!(out, "  {tier}: {reason}");
            } else {
                say!(out, "  {tier} {key}: {reason}");
            }
        }
        let more = report.failed.len().saturating_sub(FAILURES_SHOWN);
        if more > 0 {
            say!(out, "  ... and {more} more");
        }
        say!(
            out,
            "keep the previous keys: these entries are still under them, or unreadable"
        );
    }
    Ok(outcome.and(close(manager)))
}

/// The `--json` report's own fields (docs/cli.md).
fn as_json(report: &RotationReport, tiers: &BTreeSet<CacheTierType>) -> Value {
    let mut per_tier = serde_json::Map::new();
    for tier in tiers {
        per_tier.insert(
            tier.to_string(),
            json!({
                "rewritten": report.rewritten.get(tier).copied().unwrap_or(0),
                "without_credentials": report.without_credentials.get(tier).copied().unwrap_or(0),
                "failed": report.failed.iter().filter(|(t, _, _)| t == tier).count(),
            }),
        );
    }
    let failures: Vec<Value> = report
        .failed
        .iter()
        .map(|(tier, key, reason)| {
            json!({
                "tier": tier.to_string(),
                "key": (!key.is_empty()).then_some(key),
                "reason": reason,
            })
        })
        .collect();
    json!({
        "tiers": per_tier,
        "failures": failures,
        "previous_keys_can_be_dropped": report.failed.is_empty(),
    })
}
