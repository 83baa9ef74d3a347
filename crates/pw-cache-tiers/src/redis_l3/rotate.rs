//! Credential rotation ([`CacheTier::rotate_credentials`]): read the entry, re-encrypt its
//! tokens with the ring's current key, then one script that writes them only if the stored
//! ones are still those read.

use pw_cache_model::fields;

use crate::error::TierError;
#[cfg(doc)]
use crate::tier::CacheTier;

use super::codec::Fields;
use super::mark_failure::MARK_ATTEMPTS;
use super::scripts::ROTATE_SCRIPT;
use super::tier::RedisL3Tier;

impl RedisL3Tier {
    /// [`CacheTier::rotate_credentials`]: reads the entry (checked readable), re-encrypts its
    /// tokens here, and writes them with [`ROTATE_LUA`](super::scripts::ROTATE_LUA) only if the
    /// stored ones are still those read; else reads again (up to [`MARK_ATTEMPTS`] times).
    pub(super) fn rotate_tokens(&self, key: &str) -> Result<crate::Rotated, TierError> {
        let name = self.names.entry(key);
        for _ in 0..MARK_ATTEMPTS {
            let flat: Vec<Vec<u8>> =
                self.run("read entry", Some(key), |c| redis::cmd("HGETALL").arg(&name).query(c))?;
            if flat.is_empty() {
                return Ok(crate::Rotated::Absent);
            }
            let hash = Fields::new(key, &flat);
            drop(hash.entry(&self.ring)?);
            let (username, password) = (
                hash.token_of(fields::USERNAME_ENCRYPTED),
                hash.token_of(fields::PASSWORD_ENCRYPTED),
            );
            if username.is_none() && password.is_none() {
                return Ok(crate::Rotated::NoCredentials);
            }
            let rotate = |token: Option<&[u8]>| -> Result<(String, String), TierError> {
                let Some(bytes) = token else {
                    return Ok((String::new(), String::new()));
                };
                let rotated = self.ring.rotate_bytes(bytes).map_err(|source| TierError::Crypto {
                    key: key.to_owned(),
                    source,
                })?;
                Ok((
                    String::from_utf8_lossy(bytes).into_owned(),
                    String::from_utf8_lossy(&rotated).into_owned(),
                ))
            };
            let ((old_user, new_user), (old_pass, new_pass)) = (rotate(username)?, rotate(password)?);
            let done: i64 = self.script(
                "rotate credentials",
                &ROTATE_SCRIPT,
                &[key, &old_user, &new_user, &old_pass, &new_pass],
            )?;
            match done {
                1 => return Ok(crate::Rotated::Rewritten),
                -1 => return Ok(crate::Rotated::Absent),
                _ => {}
            }
        }
        Err(TierError::Remote {
            op: "rotate credentials",
            reason: format!("the entry's credentials changed between the read and the write {MARK_ATTEMPTS} times"),
        })
    }
}
