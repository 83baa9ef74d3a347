//! The oldest Redis the tier runs on ([`MIN_REDIS_VERSION`]), and the check of the server's
//! version at open (see [Redis version](super#redis-version)).

use crate::error::TierError;

use super::pool::connection_survives;
use super::tier::RedisL3Tier;

/// The oldest Redis the tier runs on (major, minor): its scripts declare flags (`#!lua`), so
/// that a server over `maxmemory` refuses a write script as a whole, and the index rebuild reads
/// `PEXPIRETIME`; both came with Redis 7.0.
pub const MIN_REDIS_VERSION: (u32, u32) = (7, 0);

/// Whether `version` (`7.0.15`) is at least `(major, minor)`; text that is not a version is not.
pub(super) fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.trim().split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        (Some(Ok(a)), None) => a > major || (a == major && minor == 0),
        _ => false,
    }
}

impl RedisL3Tier {
    /// Fails with [`TierError::UnsupportedServer`] when the server says (`INFO server`) it is
    /// older than [`MIN_REDIS_VERSION`]. A server that does not say (`INFO` refused by an ACL)
    /// is not checked here: its first script would fail.
    pub(super) fn check_server_version(&self) -> Result<(), TierError> {
        let info: Option<String> = self.run("check server version", None, |c| {
            match redis::cmd("INFO").arg("server").query::<String>(c) {
                Ok(text) => Ok(Some(text)),
                Err(e) if connection_survives(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        let Some(version) = info.as_deref().and_then(|text| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix("redis_version:"))
                .map(str::to_owned)
        }) else {
            return Ok(());
        };
        if version_at_least(&version, MIN_REDIS_VERSION) {
            return Ok(());
        }
        let (major, minor) = MIN_REDIS_VERSION;
        Err(TierError::UnsupportedServer {
            reason: format!(
                "Redis {version} is older than {major}.{minor}, which the Redis L3 tier needs (its Lua scripts \
                 declare flags, so that a server over maxmemory refuses their writes)"
            ),
        })
    }
}
