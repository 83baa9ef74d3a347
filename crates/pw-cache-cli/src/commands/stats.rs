//! `stats`: what a cache holds, tier by tier, through `CacheManager::inspect` (every entry read
//! and decrypted, none used).

use std::collections::BTreeSet;

use pw_cache::{CacheInspection, CacheManager, HealthStatus, TierInspection};
use serde_json::{Value, json};

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, human_bytes, open_cache, report_json,
    say_json,
};
use crate::cli::StatsArgs;
use crate::progress::Progress;

/// How many corrupt keys the table lists per tier (`--json` lists them all).
const CORRUPT_KEYS_SHOWN: usize = 10;

/// Runs `stats`: the table (or with `--json` the JSON object) in `out`. Exit 1 when some
/// entries cannot be read.
pub fn run(args: &StatsArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase("reading every entry");
    let inspection = manager
        .inspect_with_progress(&|done, total| progress.step(done, total))
        .map_err(Fatal::from)?;
    drop(progress);
    if args.json {
        say_json(out, &as_json(&manager, &inspection))?;
    } else {
        print_table(&manager, &inspection, out);
    }
    // Unreadable entries are reported (exit 1): they are left in place, and the operator
    // decides (a key to add, or `cleanup --remove-unreadable`).
    let unreadable = inspection.tiers.values().any(|t| t.corrupt > 0);
    Ok(close(manager).and(Outcome::partial_if(unreadable)))
}

/// The health statuses to show: the model's, in its order, then any other found.
fn health_columns(inspection: &CacheInspection) -> Vec<String> {
    let mut columns: Vec<String> = HealthStatus::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let others: BTreeSet<&String> = inspection
        .tiers
        .values()
        .flat_map(|t| t.health.keys())
        .filter(|k| !columns.contains(k))
        .collect();
    columns.extend(others.into_iter().cloned());
    columns
}

fn print_table(manager: &CacheManager, inspection: &CacheInspection, out: &mut String) {
    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out, "keys    {}", describe_keys(manager.key_ring()));
    say!(out);
    let health = health_columns(inspection);
    let mut header = format!(
        "{:<5}{:>9}{:>9}{:>9}{:>12}",
        "tier", "entries", "expired", "corrupt", "on disk"
    );
    for status in &health {
        header.push_str(&format!("{:>11}", status));
    }
    say!(out, "{header}");
    for (tier, t) in &inspection.tiers {
        let size = t.bytes_on_disk.map_or_else(|| "-".to_owned(), human_bytes);
        let mut line = format!(
            "{:<5}{:>9}{:>9}{:>9}{:>12}",
            tier.to_string(),
            t.entries,
            t.expired,
            t.corrupt,
            size
        );
        for status in &health {
            line.push_str(&format!("{:>11}", t.health.get(status).copied().unwrap_or(0)));
        }
        say!(out, "{line}");
    }
    for (tier, t) in &inspection.tiers {
        if t.corrupt > 0 {
            say!(out);
            print_corrupt(&tier.to_string(), t, out);
        }
    }
    if inspection.tiers.values().any(|t| t.corrupt > 0) {
        say!(out);
        say!(
            out,
            "expired counts the entries that could be read; unreadable entries are never expired or removed \
             by the cache (`cleanup --remove-unreadable` removes them)"
        );
    }
}

fn print_corrupt(tier: &str, t: &TierInspection, out: &mut String) {
    let shown: Vec<&str> = t
        .corrupt_keys
        .iter()
        .take(CORRUPT_KEYS_SHOWN)
        .map(String::as_str)
        .collect();
    let more = t.corrupt_keys.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more (--json lists them all)")
    } else {
        String::new()
    };
    say!(
        out,
        "{tier}: {} entries cannot be read with these keys (damaged, or a credential under a key the ring lacks): {}{tail}",
        t.corrupt,
        shown.join(", ")
    );
    // No readable entry holds a credential: every credentialed one is among the unreadable.
    let cause = if t.with_credentials == 0 {
        "likely cause: the key is not the one the credentials were written with (none of this tier's \
         credentials opens); add the right key, or list it in PROXYWHIRL_CACHE_KEY_PREVIOUS"
    } else {
        "likely cause: damaged records, or credentials written under a key the ring lacks (others open)"
    };
    say!(out, "{tier}: {cause}");
}

/// The `--json` object (its fields are documented in docs/cli.md).
fn as_json(manager: &CacheManager, inspection: &CacheInspection) -> Value {
    let mut tiers = serde_json::Map::new();
    for (tier, t) in &inspection.tiers {
        tiers.insert(
            tier.to_string(),
            json!({
                "entries": t.entries,
                "expired": t.expired,
                "with_credentials": t.with_credentials,
                "corrupt": t.corrupt,
                "corrupt_keys": t.corrupt_keys,
                "health": t.health,
                "bytes_on_disk": t.bytes_on_disk,
            }),
        );
    }
    let sum = |f: fn(&TierInspection) -> u64| inspection.tiers.values().map(f).sum::<u64>();
    report_json(
        manager,
        json!({
            "tiers": tiers,
            "totals": {
                "entries": sum(|t| t.entries),
                "expired": sum(|t| t.expired),
                "corrupt": sum(|t| t.corrupt),
                "bytes_on_disk": sum(|t| t.bytes_on_disk.unwrap_or(0)),
            },
        }),
    )
}
