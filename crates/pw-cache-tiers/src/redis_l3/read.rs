//! Reads: an entry hash by the read script, which never transfers a field longer than its
//! limit; get and peek, keys, an entry's health detail, the credential sample.

use pw_cache_model::timestamp::{self, to_unix_seconds};
use pw_cache_model::{CacheEntry, HealthDetail, fields};

use crate::error::TierError;

use super::codec::Fields;
use super::replies::Stored;
use super::scripts::SCRIPTS;
use super::tier::RedisL3Tier;

impl RedisL3Tier {
    /// The hash of `key` (only `fields`; none: every field of an entry), read by the read
    /// script: nothing longer than its limit is transferred. `Ok(None)` when there is none; an
    /// unreadable one is [`TierError::Corrupt`].
    pub(super) fn read_hash(
        &self,
        op: &'static str,
        key: &str,
        fields: &[&str],
    ) -> Result<Option<Vec<Vec<u8>>>, TierError> {
        let name = self.names.entry(key);
        let value: redis::Value = self.run(op, Some(key), |c| {
            let mut inv = SCRIPTS.read.prepare_invoke();
            inv.key(&name);
            for field in fields {
                inv.arg(*field);
            }
            inv.invoke(c)
        })?;
        match Stored::parse(value) {
            Some(Stored::Absent) => Ok(None),
            Some(Stored::Fields(flat)) => Ok(Some(flat)),
            Some(Stored::Unreadable(reason)) => {
                let e = TierError::Corrupt {
                    key: key.to_owned(),
                    reason,
                };
                tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
                Err(e)
            }
            None => Err(TierError::Remote {
                op,
                reason: "unexpected reply from the read script".to_owned(),
            }),
        }
    }

    pub(super) fn read_entry(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let Some(flat) = self.read_hash("read entry", key, &[])? else {
            return Ok(None);
        };
        Fields::new(key, &flat).entry(&self.ring).map(Some).inspect_err(|e| {
            tracing::warn!(key, prefix = %self.names.prefix, error = %e, "unreadable entry in Redis");
        })
    }

    pub(super) fn lookup(&self, key: &str) -> Result<Option<CacheEntry>, TierError> {
        let Some(entry) = self.read_entry(key)? else {
            return Ok(None);
        };
        if let Some(touches) = &self.touches
            && let Some(batch) = touches.record(key, to_unix_seconds(timestamp::now_utc()))
            && let Err(e) = self.write_touches(batch)
        {
            // Hits only order evictions: losing a batch of them is not worth failing a get.
            tracing::warn!(prefix = %self.names.prefix, error = %e, "could not record cache hits");
        }
        Ok(Some(entry))
    }

    pub(super) fn list_keys(&self) -> Result<Vec<String>, TierError> {
        let raw: Vec<Vec<u8>> = self.script("list keys", &SCRIPTS.keys, &[])?;
        Ok(raw
            .into_iter()
            .filter_map(|k| {
                String::from_utf8(k)
                    .inspect_err(|_| tracing::warn!(prefix = %self.names.prefix, "skipped a key that is not UTF-8"))
                    .ok()
            })
            .collect())
    }

    pub(super) fn read_health_detail(&self, key: &str) -> Result<Option<HealthDetail>, TierError> {
        let mut names = vec![fields::KEY];
        names.extend(fields::HEALTH_DETAIL_FIELDS);
        let Some(flat) = self.read_hash("read health detail", key, &names)? else {
            return Ok(None);
        };
        let hash = Fields::new(key, &flat);
        hash.check_key()?;
        hash.health_detail().map(Some)
    }

    /// Up to `limit` stored credential tokens, from the entries first in the index. Entries
    /// whose hash names another key, or holds a field longer than its limit, give none.
    pub(super) fn sample_tokens(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // (Capped: Lua reads it as a double.)
        let limit_arg = limit.min(1 << 30).to_string();
        let keys: Vec<String> = self.script("sample credentials", &SCRIPTS.keys, &[&limit_arg])?;
        let mut tokens = Vec::new();
        for key in keys {
            const TOKENS: [&str; 2] = [fields::USERNAME_ENCRYPTED, fields::PASSWORD_ENCRYPTED];
            let flat = match self.read_hash("sample credentials", &key, &[fields::KEY, TOKENS[0], TOKENS[1]]) {
                Ok(Some(flat)) => flat,
                Ok(None) => continue,
                Err(e) if e.is_corrupt_entry() => continue,
                Err(e) => return Err(e),
            };
            let hash = Fields::new(&key, &flat);
            if hash.check_key().is_err() {
                continue;
            }
            for token in TOKENS.into_iter().filter_map(|field| hash.token_of(field)) {
                if tokens.len() < limit {
                    tokens.push(token.to_vec());
                }
            }
            if tokens.len() >= limit {
                break;
            }
        }
        Ok(tokens)
    }
}
