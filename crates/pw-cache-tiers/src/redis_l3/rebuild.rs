//! The index rebuild ([Damaged indexes](super#damaged-indexes)): the indexes made again from
//! the entry hashes, in steps, none of them long.

use std::collections::HashMap;

use crate::error::TierError;

use super::names::glob_escape;
use super::scripts::{SCRIPT_CHUNK, SCRIPTS};
use super::tier::RedisL3Tier;

/// Keys asked for per `SCAN` (and `ZSCAN`) call of an index rebuild.
const SCAN_COUNT: usize = 1000;

impl RedisL3Tier {
    pub(super) fn rebuild_indexes(&self) -> Result<usize, TierError> {
        const OP: &str = "rebuild index";
        let rebuild = &SCRIPTS.rebuild;
        self.script_once::<i64>(OP, rebuild, &["reset"])?;
        // Every entry key, with its created_at.
        let entry_prefix = format!("{}e:", self.names.prefix);
        let pattern = format!("{}*", glob_escape(&entry_prefix));
        let mut found: HashMap<String, f64> = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, names): (u64, Vec<Vec<u8>>) = self.run(OP, None, |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(c)
            })?;
            let keys: Vec<String> = names
                .iter()
                .filter_map(|name| name.strip_prefix(entry_prefix.as_bytes()))
                .filter_map(|key| {
                    std::str::from_utf8(key)
                        .inspect_err(|_| {
                            tracing::warn!(prefix = %self.names.prefix, "an entry key that is not UTF-8 is left out of the index");
                        })
                        .ok()
                })
                .map(str::to_owned)
                .collect();
            if !keys.is_empty() {
                let mut args = vec!["stamps"];
                args.extend(keys.iter().map(String::as_str));
                let stamps: Vec<String> = self.script_once(OP, rebuild, &args)?;
                for (key, stamp) in keys.into_iter().zip(stamps) {
                    found.insert(key, stamp.parse().unwrap_or(0.0));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut ordered: Vec<(f64, String)> = found.into_iter().map(|(key, at)| (at, key)).collect();
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let policy = self.policy_arg();
        let mut indexed = 0;
        for chunk in ordered.chunks(SCRIPT_CHUNK) {
            let mut args = vec!["add", policy];
            args.extend(chunk.iter().map(|(_, key)| key.as_str()));
            let n: i64 = self.script_once(OP, rebuild, &args)?;
            indexed += usize::try_from(n).unwrap_or(0);
        }
        // Index members without an entry.
        let mut members: std::collections::HashSet<String> = std::collections::HashSet::new();
        for index in [&self.names.idx, &self.names.exp, &self.names.ins] {
            let mut cursor: u64 = 0;
            loop {
                let (next, pairs): (u64, Vec<Vec<u8>>) = self.run(OP, None, |c| {
                    redis::cmd("ZSCAN")
                        .arg(index)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query(c)
                })?;
                members.extend(
                    pairs
                        .into_iter()
                        .step_by(2)
                        .filter_map(|member| String::from_utf8(member).ok()),
                );
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let members: Vec<String> = members.into_iter().collect();
        let mut dropped = 0;
        for chunk in members.chunks(SCRIPT_CHUNK) {
            let mut args = vec!["drop"];
            args.extend(chunk.iter().map(String::as_str));
            let n: i64 = self.script_once(OP, rebuild, &args)?;
            dropped += usize::try_from(n).unwrap_or(0);
        }
        let n: i64 = self.script_once(OP, rebuild, &["finish"])?;
        tracing::warn!(
            prefix = %self.names.prefix,
            entries = n,
            found = indexed,
            dropped,
            "rebuilt the Redis L3 indexes from the entry hashes"
        );
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
