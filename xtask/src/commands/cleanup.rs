//! `cleanup`: `CacheManager::cleanup_now` of an existing cache.

use pw_cache::CacheTierType;

use super::{Access, CmdResult, close, describe_cache, open_cache};
use crate::cli::CacheOnlyArgs;
use crate::progress::Progress;

/// Runs `cleanup`.
pub(crate) fn run(args: &CacheOnlyArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase("removing expired entries");
    let report = manager.cleanup_now();
    drop(progress);

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
    let closed = close(manager);
    Ok(closed.and(super::Outcome::partial_if(!report.failures.is_empty())))
}
