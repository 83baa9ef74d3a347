//! Uses: the get hits of a bounded LRU or LFU tier, noted in memory and written in batches (the
//! touch script), and the use records of [`CacheTier::record_accesses`].

use std::collections::HashMap;

use pw_cache_model::AccessRecord;
use pw_cache_model::timestamp::{self, to_unix_seconds};

use crate::error::TierError;
#[cfg(doc)]
use crate::tier::CacheTier;
use crate::touches::Touch;

use super::codec::real;
use super::scripts::SCRIPTS;
use super::tier::RedisL3Tier;

/// Use records applied by one script: a batch of them (the manager sends up to its
/// `USE_BATCH`) is split so that no script runs near the command timeout.
const RECORD_CHUNK: usize = 256;

impl RedisL3Tier {
    pub(super) fn touch_args(batch: &HashMap<String, Touch>) -> Vec<String> {
        let mut args = Vec::with_capacity(batch.len() * 3);
        for (key, t) in batch {
            args.extend([key.clone(), real(t.last), t.hits.min(i64::MAX as u64).to_string()]);
        }
        args
    }

    pub(super) fn write_touches(&self, batch: HashMap<String, Touch>) -> Result<(), TierError> {
        if batch.is_empty() {
            return Ok(());
        }
        let args = Self::touch_args(&batch);
        let policy = self.policy_arg();
        let mut all: Vec<&str> = vec![policy];
        all.extend(args.iter().map(String::as_str));
        self.script::<i64>("record hits", &SCRIPTS.touch, &all).map(drop)
    }

    pub(super) fn flush_touches(&self) -> Result<(), TierError> {
        match &self.touches {
            Some(touches) => self.write_touches(touches.take()),
            None => Ok(()),
        }
    }

    pub(super) fn write_accesses(&self, records: &[AccessRecord]) -> Result<usize, TierError> {
        if records.is_empty() {
            return Ok(0);
        }
        if records.len() > RECORD_CHUNK {
            // One script per chunk, so that none runs near the command timeout (a use record
            // stands alone: the batch need not be atomic as a whole).
            let mut changed = 0;
            for chunk in records.chunks(RECORD_CHUNK) {
                changed += self.write_accesses(chunk)?;
            }
            return Ok(changed);
        }
        let updated_at = real(to_unix_seconds(timestamp::now_utc()));
        let policy = self.policy_arg();
        let mut values = Vec::with_capacity(records.len() * 3);
        for r in records {
            values.extend([
                r.access_count.min(i64::MAX as u64).to_string(),
                real(to_unix_seconds(r.last_accessed)),
                if r.evicted_from_l1 { "1" } else { "0" }.to_owned(),
            ]);
        }
        let mut args: Vec<&str> = vec![policy, &updated_at];
        for (r, v) in records.iter().zip(values.chunks_exact(3)) {
            args.extend([r.key.as_str(), &v[0], &v[1], &v[2]]);
        }
        let n: i64 = self.script("record uses", &SCRIPTS.record_uses, &args)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
