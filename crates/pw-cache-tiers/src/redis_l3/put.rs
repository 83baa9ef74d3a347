//! The put: one script that stores the entry and evicts what the bound requires, asking back
//! for the eviction candidates so that this side checks which ones it can read (unreadable
//! entries are never evicted).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use pw_cache_model::CacheEntry;
use pw_cache_model::timestamp::{self, to_unix_seconds};

use crate::entry_codec::UPDATED_AT;
use crate::error::TierError;
use crate::jsonl::EVICTION_BATCH_DIVISOR;
use crate::touches::{Touch, Touches};

use super::codec::{Fields, entry_fields, real, unix_millis_ceil};
use super::replies::{PutReply, Stored};
use super::scripts::SCRIPTS;
use super::tier::RedisL3Tier;

impl RedisL3Tier {
    pub(super) fn store(&self, entry: &CacheEntry) -> Result<(), TierError> {
        let fields = entry_fields(entry, &self.ring)?;
        if let Some(touches) = &self.touches {
            touches.forget(&entry.key);
        }
        let now = real(to_unix_seconds(timestamp::now_utc()));
        let max = self.max_entries.map(|m| m.to_string()).unwrap_or_default();
        let expire_ms = unix_millis_ceil(entry.expires_at).to_string();
        let expires_at = real(to_unix_seconds(entry.expires_at));
        let last_accessed = real(to_unix_seconds(entry.last_accessed));
        let access_count = entry.access_count.to_string();
        let divisor = EVICTION_BATCH_DIVISOR.to_string();
        let policy = self.policy_arg();
        let mut batch: Option<HashMap<String, Touch>> = None;
        // Hits applied by an earlier round (the script applies them before it asks which
        // entries to evict): never restored afterwards.
        let mut touches_applied = false;
        // First: ask for candidates (this many beyond the entries needed) when eviction is due;
        // then: the readable ones, with the version read.
        let mut want: usize = 8;
        let mut verified: Option<Vec<(String, String)>> = None;
        // Only unreadable entries are left to evict: store above the bound.
        let mut over = false;
        // Evicted by earlier rounds.
        let mut evicted_before = 0;
        let result = loop {
            let touch_args = batch.as_ref().map(Self::touch_args).unwrap_or_default();
            // First round: whether hits are pending (the script asks for them when it must
            // evict); second round: the hits taken, if any.
            let has_touches = match &batch {
                None if self.touches.as_ref().is_some_and(|t| !t.is_empty()) => "1",
                Some(_) if !touch_args.is_empty() => "1",
                _ => "0",
            };
            let ntouch = (touch_args.len() / 3).to_string();
            let nfields = fields.len().to_string();
            let (want_arg, nverified) = match &verified {
                Some(list) => ("0".to_owned(), list.len().to_string()),
                None => (want.to_string(), "0".to_owned()),
            };
            let mut args: Vec<&str> = vec![
                &entry.key,
                &max,
                policy,
                &divisor,
                &expire_ms,
                &expires_at,
                &now,
                &last_accessed,
                &access_count,
                has_touches,
                &ntouch,
            ];
            args.extend(touch_args.iter().map(String::as_str));
            args.push(&nfields);
            for (name, value) in &fields {
                args.push(name);
                args.push(value);
            }
            args.push(&want_arg);
            args.push(&nverified);
            for (key, stamp) in verified.iter().flatten() {
                args.push(key);
                args.push(stamp);
            }
            args.push(if over { "1" } else { "0" });
            let reply: Result<redis::Value, TierError> = self.script("write entry", &SCRIPTS.put, &args);
            match reply.and_then(|value| PutReply::parse(&value)) {
                Ok(PutReply::SendHits) if batch.is_none() => {
                    batch = Some(self.touches.as_ref().map(Touches::take).unwrap_or_default());
                }
                Ok(PutReply::Candidates {
                    need,
                    touched,
                    evicted,
                    candidates,
                }) => {
                    evicted_before += evicted;
                    if verified.take().is_some() {
                        // Round two found the tier full again: start over with these.
                        want = 8;
                    }
                    if touched {
                        // Applied: not sent again, never restored.
                        touches_applied = true;
                        batch = Some(HashMap::new());
                    }
                    let (chosen, skipped) = self.readable_victims(&candidates, need);
                    if chosen.len() < need && candidates.len() >= need.saturating_add(want) {
                        // Unreadable entries took places: look further down the order.
                        want = want.saturating_mul(4).saturating_add(need);
                        continue;
                    }
                    if skipped > 0 {
                        self.unreadable_skipped.fetch_add(skipped, Ordering::Relaxed);
                        if chosen.len() < need && !self.over_bound_warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                prefix = %self.names.prefix,
                                unreadable = skipped,
                                "Redis L3 above max_entries: the entries left to evict are unreadable, and \
                                 unreadable entries are never evicted (remove them explicitly if they are garbage)"
                            );
                        }
                    }
                    over = chosen.len() < need;
                    verified = Some(chosen);
                }
                Ok(PutReply::Done { evicted, touched }) => {
                    let evicted = evicted + evicted_before;
                    if !touched
                        && !touches_applied
                        && let (Some(b), Some(touches)) = (batch.take(), &self.touches)
                    {
                        touches.restore(b);
                    }
                    break Ok(evicted);
                }
                Ok(other) => {
                    break Err(TierError::Remote {
                        op: "write entry",
                        reason: format!("unexpected script reply {other:?}"),
                    });
                }
                Err(e) => {
                    if !touches_applied && let (Some(b), Some(touches)) = (batch.take(), &self.touches) {
                        touches.restore(b);
                    }
                    break Err(e);
                }
            }
        };
        let evicted = result?;
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
            tracing::debug!(prefix = %self.names.prefix, evicted, "evicted cache entries");
        }
        Ok(())
    }

    /// The first `need` candidates (key, hash) that can be read, with the `updated_at` read
    /// (an index entry without its hash is taken with an empty one: the script drops it from
    /// the index); how many were skipped as unreadable (damaged, too long, naming another key).
    pub(super) fn readable_victims(
        &self,
        candidates: &[(String, Stored)],
        need: usize,
    ) -> (Vec<(String, String)>, u64) {
        let mut chosen = Vec::with_capacity(need);
        let mut skipped = 0;
        for (key, stored) in candidates {
            if chosen.len() == need {
                break;
            }
            let flat = match stored {
                Stored::Absent => {
                    chosen.push((key.clone(), String::new()));
                    continue;
                }
                Stored::Unreadable(_) => {
                    skipped += 1;
                    continue;
                }
                Stored::Fields(flat) => flat,
            };
            let hash = Fields::new(key, flat);
            match hash.entry(&self.ring) {
                Ok(_) => {
                    let stamp = hash.text_of(UPDATED_AT).ok().flatten().unwrap_or_default();
                    chosen.push((key.clone(), stamp));
                }
                Err(_) => skipped += 1,
            }
        }
        (chosen, skipped)
    }
}
