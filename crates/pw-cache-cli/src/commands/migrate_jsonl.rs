//! `migrate-jsonl`: a JSONL L2 directory into the SQLite L2 database, through
//! `SqliteL2Tier::migrate_from_jsonl` (one transaction; entries already held as they are are
//! skipped, so a second run writes nothing; the source is only read).

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use pw_cache::tiers::sqlite_l2::DB_FILE_NAME;
use pw_cache::{CacheTierConfig, DEFAULT_KEY_FILE_NAME, EnvKeys, KeyRing, MigrationReport, SqliteL2Tier};

use serde_json::{Value, json};

use super::{
    CmdResult, Fatal, Outcome, describe_keys, has_shards, keys_json, print_key_warnings, require_dir, require_key,
    say_json,
};
use crate::cli::MigrateArgs;
use crate::progress::Progress;

/// How many failures are listed.
const FAILURES_SHOWN: usize = 20;

/// Runs `migrate-jsonl`: the summary (or with `--json` the report) in `out`. Exit 1 when an
/// entry or line could not be migrated.
pub fn run(args: &MigrateArgs, out: &mut String) -> CmdResult {
    require_dir(&args.from, "the JSONL directory", "--from")?;
    if !has_shards(&args.from) {
        eprintln!(
            "warning: {} holds no JSONL shard file (shard_00.jsonl ... shard_15.jsonl): nothing to migrate",
            args.from.display()
        );
    }
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| args.from.join(DEFAULT_KEY_FILE_NAME));
    // The source's credentials can only be read with its key: never make up a new one.
    require_key(false, &key_file)?;
    let ring = Arc::new(
        KeyRing::resolve(None, &EnvKeys::from_process(), &key_file)
            .map_err(|e| Fatal::context("cannot set up the encryption keys", e))?,
    );
    print_key_warnings(&ring);

    let progress = Progress::start(format!("migrating {}", args.from.display()));
    let report = if args.dry_run {
        dry_run(args, &ring)?
    } else {
        let tier = SqliteL2Tier::open(&args.to, &CacheTierConfig::unbounded(), Arc::clone(&ring))
            .map_err(|e| Fatal::context("cannot open the SQLite L2 database", e))?;
        let report = tier
            .migrate_from_jsonl(&args.from)
            .map_err(|e| Fatal::context("migration failed", e))?;
        pw_cache::CacheTier::close(&tier).map_err(|e| Fatal::context("cannot close the SQLite L2 database", e))?;
        report
    };
    drop(progress);

    if args.json {
        say_json(out, &as_json(args, &ring, &report))?;
    } else {
        print_report(args, &ring, &report, out);
    }
    Ok(Outcome::partial_if(report.failed > 0))
}

/// Migrates into a temporary copy of the target database (or an empty one): what a real run
/// would do, with nothing created or changed in `--to`.
fn dry_run(args: &MigrateArgs, ring: &Arc<KeyRing>) -> Result<MigrationReport, Fatal> {
    // Private whatever the umask: it holds a copy of the database, credential tokens included
    // (and a directory group or others may write is refused by the tiers' trust check).
    let scratch = tempfile::Builder::new()
        .prefix(".pw-cache-dry-run-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| Fatal::context("cannot create a temporary directory", e))?;
    let target = args.to.join(DB_FILE_NAME);
    if target.exists() {
        // The database and its write-ahead log: what a reader of the database sees.
        for suffix in ["", "-wal"] {
            let mut from = target.clone().into_os_string();
            from.push(suffix);
            let from = PathBuf::from(from);
            if from.exists() {
                let to = scratch.path().join(format!("{DB_FILE_NAME}{suffix}"));
                fs::copy(&from, &to)
                    .map_err(|e| Fatal::context(format_args!("cannot copy {} for the dry run", from.display()), e))?;
            }
        }
    }
    let tier = SqliteL2Tier::open(scratch.path(), &CacheTierConfig::unbounded(), Arc::clone(ring))
        .map_err(|e| Fatal::context(format_args!("cannot open (a copy of) {}", target.display()), e))?;
    let report = tier
        .migrate_from_jsonl(&args.from)
        .map_err(|e| Fatal::context("migration failed", e))?;
    drop(tier);
    Ok(report)
}

/// The `--json` report (docs/cli.md): damaged lines (reported per directory) apart from the
/// entries that could not be migrated (per key).
fn as_json(args: &MigrateArgs, ring: &KeyRing, report: &MigrationReport) -> Value {
    let from = args.from.display().to_string();
    let (damage, keys): (Vec<_>, Vec<_>) = report.failures.iter().partition(|(what, _)| *what == from);
    let damaged: Vec<Value> = damage.iter().map(|(_, why)| json!(why)).collect();
    let failures: Vec<Value> = keys
        .iter()
        .map(|(key, why)| {
            let why = why.strip_prefix(&format!("entry {key:?}: ")).unwrap_or(why);
            json!({"key": key, "reason": why})
        })
        .collect();
    json!({
        "from": from,
        "to": args.to.join(DB_FILE_NAME).display().to_string(),
        "dry_run": args.dry_run,
        "keys": keys_json(ring),
        "migrated": report.migrated,
        "skipped": report.skipped,
        "failed": report.failed,
        "superseded": report.superseded,
        "damaged_lines": damaged,
        "failures": failures,
    })
}

fn print_report(args: &MigrateArgs, ring: &KeyRing, report: &MigrationReport, out: &mut String) {
    let target = args.to.join(DB_FILE_NAME);
    say!(out, "from    {}", args.from.display());
    say!(out, "to      {}", target.display());
    say!(out, "keys    {}", describe_keys(ring));
    if args.dry_run {
        say!(
            out,
            "dry run: migrated into a temporary copy; nothing was written to {}",
            args.to.display()
        );
    }
    say!(out);
    say!(out, "migrated   {:>8}", report.migrated);
    say!(
        out,
        "skipped    {:>8}  (already in the database as they are)",
        report.skipped
    );
    say!(out, "failed     {:>8}", report.failed);
    say!(
        out,
        "superseded {:>8}  (older lines of a key a later line replaced; not migrated)",
        report.superseded
    );
    if !report.failures.is_empty() {
        say!(out);
        // Damaged lines are reported per directory, unreadable entries per key: the damage
        // first (a few lines at most), then the keys.
        let from = args.from.display().to_string();
        let (damage, keys): (Vec<_>, Vec<_>) = report.failures.iter().partition(|(what, _)| *what == from);
        for (what, why) in &damage {
            say!(out, "  {what}: {why}");
        }
        for (key, why) in keys.iter().take(FAILURES_SHOWN) {
            // The tier's reason names the entry again: once is enough.
            let why = why.strip_prefix(&format!("entry {key:?}: ")).unwrap_or(why);
            say!(out, "  {key}: {why}");
        }
        let more = keys.len().saturating_sub(FAILURES_SHOWN);
        if more > 0 {
            say!(out, "  ... and {more} more");
        }
    }
    if let pw_cache::KeyOrigin::KeyFile { path, .. } = ring.origin() {
        let beside = args.to.join(DEFAULT_KEY_FILE_NAME);
        if !beside.exists() && path != &beside {
            say!(out);
            say!(
                out,
                "note: credentials are encrypted with the key file {}; a cache on {} looks for {} (copy it \
                 there, or set PROXYWHIRL_CACHE_ENCRYPTION_KEY)",
                path.display(),
                args.to.display(),
                beside.display()
            );
        }
    }
    say!(
        out,
        "the source was only read: nothing was deleted from {}",
        args.from.display()
    );
}
