//! Switching a tier off and on while the cache runs ([`CacheManager::set_tier_enabled`]), as
//! proxywhirl's `manager.l2_tier.enabled = False` does.
//!
//! A tier switched off is skipped by every operation of the manager, as a degraded one is
//! (module docs of [`super`], "Degradation"), but it is not probed back into service:
//! - **L1**: switching it off records the use of its dirty entries below and empties it (its
//!   entries are in L2/L3); switching it on empties it again (a put racing the switch may have
//!   left a copy), so it fills from lookups as a new L1 does.
//! - **L2, L3**: the writes and deletes it misses while off are noted, as for a degraded tier;
//!   switched on, it serves at once, lookups skip the keys it missed, and the probe thread
//!   removes its stale copies of them (and replays a missed clear). At close, what a tier
//!   still switched off missed is replayed too, so a later process does not read stale copies.
//!
//! A tier's direct handle ([`CacheManager::tier`]) is not affected.

use std::sync::atomic::Ordering;

use pw_cache_model::CacheTierType;
use pw_cache_tiers::CacheTier;

use super::CacheManager;
use crate::error::ManagerError;

impl CacheManager {
    /// Switches the tier at `level` on (`true`) or off (`false`); returns whether the level is
    /// configured (a level the config disables cannot be switched on). Switching to the state
    /// a tier is in does nothing. What a switch does to each tier: L1 is emptied
    /// (the use of its dirty entries recorded below first), and emptied again when switched
    /// on; L2 and L3 note what they miss, serve at once when switched on (lookups skipping the
    /// keys they missed) and have their stale copies removed by the probe thread, or at close.
    pub fn set_tier_enabled(&self, level: CacheTierType, enabled: bool) -> Result<bool, ManagerError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(ManagerError::Closed);
        }
        if level == CacheTierType::L1 {
            let Some(l1) = inner.l1.as_ref() else {
                return Ok(false);
            };
            let was_off = inner.l1_off.swap(!enabled, Ordering::AcqRel);
            if was_off != enabled {
                // Already in that state.
                return Ok(true);
            }
            let mut failures = Vec::new();
            if !enabled {
                failures = inner.flush_l1(l1);
            }
            // Entries a lookup or put raced into L1 around the switch are dropped either way.
            if let Err(e) = l1.clear() {
                failures.push(format!("l1: {e}"));
            }
            if !failures.is_empty() {
                return Err(ManagerError::Incomplete {
                    op: "switch L1",
                    failures,
                });
            }
            return Ok(true);
        }
        let Some(slot) = inner.slot(level) else {
            return Ok(false);
        };
        let was_off = slot.switched_off.swap(!enabled, Ordering::AcqRel);
        if enabled && was_off && slot.resync_pending() {
            inner.wake_maintenance();
        }
        Ok(true)
    }

    /// Whether the tier at `level` is configured and switched on (a degraded tier is on: the
    /// manager skips it until a probe succeeds; [`CacheStatistics`] says it is degraded).
    ///
    /// [`CacheStatistics`]: crate::CacheStatistics
    pub fn tier_enabled(&self, level: CacheTierType) -> bool {
        let inner = &self.inner;
        match level {
            CacheTierType::L1 => inner.l1.is_some() && !inner.l1_off.load(Ordering::Acquire),
            _ => inner
                .slot(level)
                .is_some_and(|s| !s.switched_off.load(Ordering::Acquire)),
        }
    }
}
