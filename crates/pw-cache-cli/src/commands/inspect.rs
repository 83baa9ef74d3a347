//! `inspect`: every entry of a cache, one row per key, read from each disk tier without being
//! used ([`pw_cache::CacheTier::peek`], as `CacheManager::inspect` reads them for `stats`): which
//! tiers hold it, live, expired or unreadable, its expiry, health, source and proxy URL, whether
//! it has a credential (never the credential).
//!
//! `stats` counts per tier; `inspect` lists the entries, each key once.

use std::collections::BTreeMap;

use pw_cache::{CacheEntry, CacheTierType};
use serde_json::{Value, json};

use super::get::{Held, disk_tiers, entry_json, peek, text_of};
use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, open_cache, report_json, say_json,
};
use crate::cli::InspectArgs;
use crate::progress::Progress;

/// What a row shows of a readable entry (the copy of the first tier that reads it).
#[derive(Debug)]
struct Summary {
    /// The tier it was read from.
    from: CacheTierType,
    /// Its JSON form (credentials `"***"`, the URL's user information masked).
    fields: Value,
    /// Expired (still stored).
    expired: bool,
    /// Has a username or a password.
    has_credentials: bool,
}

/// One key across the tiers.
#[derive(Debug, Default)]
struct Row {
    /// The tiers holding it, in lookup order.
    tiers: Vec<CacheTierType>,
    /// The tiers holding it that cannot read it, and why.
    unreadable: Vec<(CacheTierType, String)>,
    /// The first readable copy.
    summary: Option<Summary>,
}

impl Row {
    fn add(&mut self, level: CacheTierType, held: Held) {
        match held {
            Held::Absent => {}
            Held::Entry(entry) => {
                self.tiers.push(level);
                if self.summary.is_none() {
                    self.summary = Some(summarize(level, &entry));
                }
            }
            Held::Unreadable(why) => {
                self.tiers.push(level);
                self.unreadable.push((level, why));
            }
        }
    }

    /// `live`, `expired` or `unreadable` (some tier holding it cannot read it).
    fn state(&self) -> &'static str {
        match &self.summary {
            _ if !self.unreadable.is_empty() => "unreadable",
            Some(s) if s.expired => "expired",
            _ => "live",
        }
    }
}

fn summarize(from: CacheTierType, entry: &CacheEntry) -> Summary {
    Summary {
        from,
        fields: entry_json(entry),
        expired: entry.is_expired(),
        has_credentials: entry.username.is_some() || entry.password.is_some(),
    }
}

/// Runs `inspect`: the table (or with `--json` one JSON object) in `out`. Exit 1 when some
/// entries cannot be read.
pub fn run(args: &InspectArgs, out: &mut String) -> CmdResult {
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase("listing the keys");
    let tiers = disk_tiers(&manager);
    let listed = tiers
        .iter()
        .map(|(level, tier)| {
            tier.keys()
                .map_err(|e| Fatal(format!("cannot list the keys of the {level} tier: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total = listed.iter().map(|keys| keys.len() as u64).sum();
    progress.phase("reading every entry");
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut done = 0;
    for ((level, tier), keys) in tiers.iter().zip(listed) {
        for key in keys {
            let held = peek(*tier, &key);
            rows.entry(key).or_default().add(*level, held);
            done += 1;
            progress.step(done, total);
        }
    }
    drop(progress);
    // A key listed but gone before it was read (another process) is no row.
    rows.retain(|_, row| !row.tiers.is_empty());

    let count = |state: &str| rows.values().filter(|r| r.state() == state).count();
    let counts = json!({
        "keys": rows.len(),
        "live": count("live"),
        "expired": count("expired"),
        "unreadable": count("unreadable"),
    });
    let unreadable = count("unreadable") > 0;
    let wanted =
        |row: &Row| (!args.expired || row.state() == "expired") && (!args.unreadable || row.state() == "unreadable");
    let matching = rows.iter().filter(|(_, row)| wanted(row)).count();
    let shown: Vec<(&String, &Row)> = rows
        .iter()
        .filter(|(_, row)| wanted(row))
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if args.json {
        let entries: Vec<Value> = shown.iter().map(|(key, row)| row_json(key, row)).collect();
        let fields = json!({
            "counts": counts,
            "matching": matching,
            "listed": entries.len(),
            "entries": entries,
        });
        say_json(out, &report_json(&manager, fields))?;
    } else {
        say!(out, "cache   {}", describe_cache(manager.config()));
        say!(out, "keys    {}", describe_keys(manager.key_ring()));
        say!(out);
        print_table(&shown, out);
        say!(out);
        say!(
            out,
            "{} keys: {} live, {} expired, {} unreadable; {} listed",
            counts["keys"],
            counts["live"],
            counts["expired"],
            counts["unreadable"],
            shown.len()
        );
        if shown.len() < matching {
            say!(out, "{} more match (--limit)", matching - shown.len());
        }
    }
    Ok(close(manager).and(Outcome::partial_if(unreadable)))
}

const HEADER: [&str; 8] = [
    "key",
    "tiers",
    "state",
    "expires_at",
    "health",
    "credentials",
    "source",
    "proxy_url",
];

fn print_table(rows: &[(&String, &Row)], out: &mut String) {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|(key, row)| {
            let tiers: Vec<String> = row.tiers.iter().map(ToString::to_string).collect();
            let field = |name: &str| {
                row.summary
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |s| text_of(&s.fields[name]))
            };
            let credentials = match &row.summary {
                Some(s) if s.has_credentials => "yes",
                Some(_) => "no",
                None => "-",
            };
            [
                (*key).clone(),
                tiers.join(","),
                row.state().to_owned(),
                field("expires_at"),
                field("health_status"),
                credentials.to_owned(),
                field("source"),
                field("proxy_url"),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text
    };
    say!(out, "{}", line(&HEADER));
    for row in &cells {
        let row: Vec<&str> = row.iter().map(String::as_str).collect();
        say!(out, "{}", line(&row));
    }
    for (key, row) in rows {
        for (level, why) in &row.unreadable {
            say!(out, "{key} ({level}): {why}");
        }
    }
}

/// One entry of the `--json` object (docs/cli.md).
fn row_json(key: &str, row: &Row) -> Value {
    let field = |name: &str| row.summary.as_ref().map_or(Value::Null, |s| s.fields[name].clone());
    let unreadable: Vec<Value> = row
        .unreadable
        .iter()
        .map(|(level, why)| json!({"tier": level.to_string(), "reason": why}))
        .collect();
    json!({
        "key": key,
        "tiers": row.tiers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "state": row.state(),
        "from": row.summary.as_ref().map(|s| s.from.to_string()),
        "unreadable_in": unreadable,
        "proxy_url": field("proxy_url"),
        "source": field("source"),
        "expires_at": field("expires_at"),
        "expired": row.summary.as_ref().map(|s| s.expired),
        "health_status": field("health_status"),
        "has_credentials": row.summary.as_ref().map(|s| s.has_credentials),
    })
}
