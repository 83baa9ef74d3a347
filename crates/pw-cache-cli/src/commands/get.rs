//! `get`: one entry of a cache, read from each disk tier without being used
//! ([`pw_cache::CacheTier::peek`]: no access counted, no promotion, nothing removed): every field,
//! credentials as `***`, and which tiers hold it.

use pw_cache::model::fields::ENTRY_FIELDS;
use pw_cache::model::mask_proxy_url_userinfo;
use pw_cache::{CacheEntry, CacheManager, CacheTier, CacheTierType};
use serde_json::{Map, Value, json};

use super::{
    Access, CmdResult, Fatal, Outcome, close, describe_cache, describe_keys, open_cache, report_json, say_json,
};
use crate::cli::GetArgs;
use crate::progress::Progress;

/// What one tier holds under a key.
#[derive(Debug)]
pub(crate) enum Held {
    /// Nothing.
    Absent,
    /// A readable entry.
    Entry(Box<CacheEntry>),
    /// Something it cannot read (damaged, a credential under a key the ring lacks), or a
    /// failure reading it: why.
    Unreadable(String),
}

/// The disk tiers the manager has, in lookup order (L1 is off in these commands).
pub(crate) fn disk_tiers(manager: &CacheManager) -> Vec<(CacheTierType, &dyn CacheTier)> {
    [CacheTierType::L2, CacheTierType::L3]
        .into_iter()
        .filter_map(|level| manager.tier(level).map(|tier| (level, tier)))
        .collect()
}

/// What `tier` holds under `key`, read without being used.
pub(crate) fn peek(tier: &dyn CacheTier, key: &str) -> Held {
    match tier.peek(key) {
        Ok(Some(entry)) => Held::Entry(Box::new(entry)),
        Ok(None) => Held::Absent,
        // The tiers' errors name keys, fields and paths, never a credential or a key.
        Err(e) => Held::Unreadable(e.to_string()),
    }
}

/// `entry` as JSON, as an export writes it: credentials `"***"` when set (never the secret),
/// `null` when not; the proxy URL's user information, if it has any, masked.
pub(crate) fn entry_json(entry: &CacheEntry) -> Value {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Some(url) = value.get_mut("proxy_url") {
        // The library refuses to store a URL with credentials, but a file written by something
        // else may hold one, and nothing printed may show a credential.
        *url = json!(mask_proxy_url_userinfo(&entry.proxy_url));
    }
    value
}

/// A JSON value as the text output shows it: a string as it is, `null` as `-`.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `get`: the entry's fields and tiers (or with `--json` one JSON object) in `out`. Exit 1
/// when no tier holds the key, or a tier holds it but cannot read it.
pub fn run(args: &GetArgs, out: &mut String) -> CmdResult {
    let key = match (&args.key, &args.url) {
        (Some(key), _) => key.clone(),
        (None, Some(url)) => CacheManager::generate_cache_key(url),
        (None, None) => return Err(Fatal("give the entry's KEY, or --url URL".to_owned())),
    };
    let progress = Progress::start("opening the cache");
    let manager = open_cache(&args.cache, Access::Existing)?;
    progress.phase(format!("reading {key}"));
    let held: Vec<(CacheTierType, Held)> = disk_tiers(&manager)
        .into_iter()
        .map(|(level, tier)| (level, peek(tier, &key)))
        .collect();
    drop(progress);

    let found = held.iter().any(|(_, h)| !matches!(h, Held::Absent));
    let unreadable = held.iter().any(|(_, h)| matches!(h, Held::Unreadable(_)));
    let outcome = Outcome::partial_if(!found || unreadable);
    let url = args.url.as_deref().map(|url| mask_proxy_url_userinfo(url).into_owned());
    if args.json {
        say_json(out, &report_json(&manager, as_json(&key, url.as_deref(), &held)))?;
    } else {
        print_entry(&manager, &key, url.as_deref(), &held, out);
    }
    Ok(close(manager).and(outcome))
}

fn print_entry(manager: &CacheManager, key: &str, url: Option<&str>, held: &[(CacheTierType, Held)], out: &mut String) {
    say!(out, "key     {key}");
    if let Some(url) = url {
        say!(out, "url     {url}");
    }
    say!(out, "cache   {}", describe_cache(manager.config()));
    say!(out, "keys    {}", describe_keys(manager.key_ring()));
    say!(out);
    for (level, h) in held {
        let state = match h {
            Held::Absent => "not held".to_owned(),
            Held::Entry(entry) if entry.is_expired() => "readable, expired (still stored)".to_owned(),
            Held::Entry(_) => "readable, live".to_owned(),
            Held::Unreadable(why) => format!("unreadable: {why}"),
        };
        say!(out, "{:<8}{state}", level.to_string());
    }
    let readable: Vec<(CacheTierType, Value)> = held
        .iter()
        .filter_map(|(level, h)| match h {
            Held::Entry(entry) => Some((*level, entry_json(entry))),
            _ => None,
        })
        .collect();
    let Some((first, shown)) = readable.first() else {
        say!(out);
        if held.iter().all(|(_, h)| matches!(h, Held::Absent)) {
            say!(out, "{key} is in no tier");
        } else {
            say!(out, "no tier holding {key} can read it");
        }
        return;
    };
    say!(out);
    say!(out, "entry (as {first} holds it)");
    for field in ENTRY_FIELDS {
        say!(out, "  {field:<30}{}", text_of(&shown[field]));
    }
    for (level, other) in &readable[1..] {
        let differs: Vec<&str> = ENTRY_FIELDS
            .iter()
            .copied()
            .filter(|field| other[field] != shown[field])
            .collect();
        if !differs.is_empty() {
            say!(out, "the {level} copy differs in: {}", differs.join(", "));
        }
    }
}

/// The `--json` object's own fields (docs/cli.md).
fn as_json(key: &str, url: Option<&str>, held: &[(CacheTierType, Held)]) -> Value {
    let mut tiers = Map::new();
    let mut first = None;
    for (level, h) in held {
        let tier = match h {
            Held::Absent => json!({"held": false, "readable": null, "expired": null, "error": null, "entry": null}),
            Held::Entry(entry) => {
                let value = entry_json(entry);
                if first.is_none() {
                    first = Some((level.to_string(), value.clone()));
                }
                json!({"held": true, "readable": true, "expired": entry.is_expired(), "error": null, "entry": value})
            }
            Held::Unreadable(why) => {
                json!({"held": true, "readable": false, "expired": null, "error": why, "entry": null})
            }
        };
        tiers.insert(level.to_string(), tier);
    }
    let (from, entry) = first.map_or((Value::Null, Value::Null), |(level, value)| (json!(level), value));
    json!({
        "key": key,
        "url": url,
        "found": held.iter().any(|(_, h)| !matches!(h, Held::Absent)),
        "from": from,
        "entry": entry,
        "tiers": tiers,
    })
}
