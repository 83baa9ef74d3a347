//! A Redis L3 shared by a fleet of hosts (cargo feature `redis`): opening it from the config,
//! and keeping this host's L1 and L2 coherent with the other hosts' changes.
//!
//! Every host writes through to the shared L3, which publishes each put, delete, clear and
//! health check on the namespace's channel (see `pw_cache_tiers::redis_l3`). The manager
//! subscribes and, for each change made by another host:
//! - **L1**: drops its copy, so the next lookup reads the new version from below;
//! - **L2** (a local disk tier, optional): a deleted entry is deleted; a changed entry that L2
//!   holds is replaced by L3's new version (one append for JSONL), or deleted if L3 no longer
//!   has it;
//! - **clear**: empties L1 and L2;
//! - **resync** (the subscriber lost its connection and reconnected, so changes may have been
//!   missed): empties L1. L2 is kept: it may hold entries this host stored while Redis was
//!   unreachable, which L3 does not have; its copies of entries changed meanwhile stay until
//!   they are written again or expire. A fleet that needs strict coherence runs without a
//!   local L2 (see [`docs::fleet`]).
//!
//! The change is applied under the key's lock, so it never interleaves with this host's own
//! lookup or put of the same key.
//!
//! [`docs::fleet`]: crate::docs::fleet

use std::sync::{Arc, Weak};

use pw_cache_crypto::{KeyOrigin, KeyRing};
use pw_cache_model::{CacheConfig, CacheTierType, REDIS_URL_ENV, Secret};
use pw_cache_tiers::redis_l3::{ChangeKind, RedisL3Options, RedisL3Tier, RemoteEvent, Subscription};
use pw_cache_tiers::{CacheTier, TierError};

use super::Inner;
use crate::error::ManagerError;

/// Opens the Redis L3 the config describes: the URL from the config, else from
/// [`REDIS_URL_ENV`]. Refuses a key ring whose key this host just generated: other hosts could
/// not read the credentials it writes.
pub(super) fn open_l3(config: &CacheConfig, ring: &Arc<KeyRing>) -> Result<RedisL3Tier, ManagerError> {
    if let KeyOrigin::KeyFile { path, created: true } = ring.origin() {
        return Err(ManagerError::SharedKeyRequired { key_file: path.clone() });
    }
    let url = match config.redis_url() {
        Some(url) => url.clone(),
        None => match std::env::var(REDIS_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Secret::new(url.trim().to_owned()),
            _ => {
                return Err(open_failed(TierError::Remote {
                    op: "open",
                    reason: format!("no Redis URL: set redis_url in the config or {REDIS_URL_ENV}"),
                }));
            }
        },
    };
    pw_cache_model::config::check_redis_url(&url).map_err(|e| {
        open_failed(TierError::Remote {
            op: "open",
            reason: e.to_string(),
        })
    })?;
    let options = RedisL3Options::new(url)
        .with_namespace(config.redis_namespace())
        .with_connect_timeout(config.redis_connect_timeout())
        .with_command_timeout(config.redis_command_timeout());
    RedisL3Tier::open(&options, config.l3_config(), Arc::clone(ring)).map_err(open_failed)
}

/// The manager's error for an L3 that cannot be opened or subscribed to.
fn open_failed(source: TierError) -> ManagerError {
    ManagerError::OpenTier {
        tier: CacheTierType::L3,
        source,
    }
}

/// Subscribes `manager` (not yet fully built: events arriving before it is are dropped, and
/// there is nothing to invalidate then) to the changes other hosts make to `tier`.
pub(super) fn subscribe(tier: &RedisL3Tier, manager: Weak<Inner>) -> Result<Subscription, ManagerError> {
    tier.subscribe(move |event| {
        if let Some(inner) = manager.upgrade() {
            inner.on_remote_event(&event);
        }
    })
    .map_err(open_failed)
}

impl Inner {
    /// Applies another host's change to this host's L1 and L2 (see the module documentation).
    fn on_remote_event(&self, event: &RemoteEvent) {
        if self.is_closed() {
            return;
        }
        match event {
            RemoteEvent::Changed { key, kind } => {
                let _guard = self.locks.lock(key);
                self.drop_l1_copy(key);
                self.refresh_l2_copy(key, *kind);
            }
            RemoteEvent::Cleared => {
                self.clear_local_tiers(true);
            }
            RemoteEvent::Resync => {
                tracing::warn!("the Redis L3's change feed reconnected: L1 emptied (changes may have been missed)");
                self.clear_local_tiers(false);
            }
        }
    }

    /// Drops L1's copy of `key` (another host changed the entry), and its unrecorded use.
    fn drop_l1_copy(&self, key: &str) {
        if let Some(l1) = &self.l1 {
            let _ = l1.delete(key);
        }
    }

    /// Empties L1 (and L2 when `with_l2`) without touching L3: another host cleared the shared
    /// L3, or changes to it may have been missed.
    fn clear_local_tiers(&self, with_l2: bool) {
        // No lookup may promote a copy from L2 (or L3's old version) into L1 between the clears.
        let _all = self.locks.lock_all();
        if let Some(l1) = &self.l1 {
            let _ = l1.clear();
        }
        if with_l2 && let Some(l2) = &self.l2 {
            self.clear_slot(l2);
        }
    }

    /// Replaces or removes L2's copy of `key` after another host changed it.
    fn refresh_l2_copy(&self, key: &str, kind: ChangeKind) {
        let (Some(l2), Some(l3)) = (&self.l2, &self.l3) else {
            return;
        };
        if kind == ChangeKind::Delete {
            self.delete_from(l2, key);
            return;
        }
        match l2.tier.contains(key) {
            Ok(false) => {}
            Ok(true) => match l3.tier.peek(key) {
                Ok(Some(fresh)) => {
                    if let Err(why) = self.write_to(l2, &fresh) {
                        tracing::warn!(key, error = %why, "could not refresh L2's copy after a remote change");
                        self.delete_from(l2, key);
                    }
                }
                Ok(None) | Err(_) => {
                    self.delete_from(l2, key);
                }
            },
            Err(e) => {
                tracing::warn!(key, error = %e, "could not check L2's copy after a remote change");
            }
        }
    }
}
