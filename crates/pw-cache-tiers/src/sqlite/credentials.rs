//! The entries' credential tokens: rotation to the ring's current key
//! ([`crate::CacheTier::rotate_credentials`]) and samples of the stored tokens
//! ([`crate::CacheTier::credential_sample`]).

use rusqlite::types::ValueRef;

use super::store::Store;
use crate::error::TierError;

impl Store {
    /// [`CacheTier::rotate_credentials`]: the row read (checked readable) and its two token
    /// columns rewritten in one write transaction; nothing else changes (`updated_at` included).
    pub(crate) fn rotate_credentials(&self, key: &str) -> Result<crate::Rotated, TierError> {
        self.write("rotate credentials", |tx| {
            let Some(stored) = self.read(tx, key)? else {
                return Ok(crate::Rotated::Absent);
            };
            let (username, password) = (stored.username.clone(), stored.password.clone());
            if username.is_none() && password.is_none() {
                return Ok(crate::Rotated::NoCredentials);
            }
            // Readable as a whole (an unreadable row is left as it is).
            drop(stored.open(&self.ring)?);
            let rotate = |token: Option<Vec<u8>>| {
                token
                    .map(|bytes| self.ring.rotate_bytes(&bytes))
                    .transpose()
                    .map_err(|source| TierError::Crypto {
                        key: key.to_owned(),
                        source,
                    })
            };
            let (username, password) = (rotate(username)?, rotate(password)?);
            tx.prepare_cached(self.layout.statements().rotate_tokens)
                .and_then(|mut stmt| stmt.execute(rusqlite::params![key, username, password]))
                .map_err(self.err("rotate credentials"))?;
            Ok(crate::Rotated::Rewritten)
        })
    }

    /// Up to `limit` stored credential tokens: from the first and the last rows holding one.
    pub(crate) fn credential_sample(&self, limit: usize) -> Result<Vec<Vec<u8>>, TierError> {
        let conn = self.conn()?;
        let s = self.layout.statements();
        let half = i64::try_from(limit.div_ceil(2)).unwrap_or(i64::MAX);
        let mut tokens = Vec::new();
        for sql in [s.sample_first, s.sample_last] {
            let mut stmt = conn.prepare_cached(sql).map_err(self.err("sample credentials"))?;
            let mut rows = stmt.query([half]).map_err(self.err("sample credentials"))?;
            while let Some(row) = rows.next().map_err(self.err("sample credentials"))? {
                for i in 0..2 {
                    if let Ok(ValueRef::Blob(bytes) | ValueRef::Text(bytes)) = row.get_ref(i)
                        && !bytes.is_empty()
                        && tokens.len() < limit
                        && !tokens.iter().any(|t: &Vec<u8>| t.as_slice() == bytes)
                    {
                        tokens.push(bytes.to_vec());
                    }
                }
            }
        }
        Ok(tokens)
    }
}
