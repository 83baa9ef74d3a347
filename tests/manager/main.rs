//! The `CacheManager`: opening it, its lookup paths, expiry, health, statistics, export and warm,
//! inspection and rotation, and the bounds of its configuration.
//!
//! One test binary, one module per behaviour (each module's documentation says what it checks); the
//! shared helpers are the `pw_cache_tests` library (`tests/lib.rs`).

mod config_bounds;
mod export_warm;
mod inspect_rotate;
mod manager_expiry;
mod manager_health;
mod manager_l1_capacity;
mod manager_l1_order;
mod manager_open;
mod manager_promotion;
mod manager_switch;
mod per_source_ttl;
