//! Every bound of the reference's `CacheConfig` is enforced, in code and in config files alike,
//! with an error that names the field; values on the bound are accepted.

use pw_cache::{CacheConfig, CacheConfigBuilder, CacheTierConfig, ConfigError, EvictionPolicy, L2BackendType};

type Setter = fn(CacheConfigBuilder, u64) -> CacheConfigBuilder;

/// (field, lowest accepted value, how to set it in code)
fn lower_bounds() -> Vec<(&'static str, u64, Setter)> {
    vec![
        ("default_ttl_seconds", 60, |b, v| b.default_ttl_seconds(v)),
        ("ttl_cleanup_interval", 10, |b, v| b.ttl_cleanup_interval(v)),
        ("cleanup_interval_seconds", 5, |b, v| b.cleanup_interval_seconds(v)),
        ("failure_threshold", 1, |b, v| b.failure_threshold(v as u32)),
        ("statistics_interval", 1, |b, v| b.statistics_interval(v)),
        ("l1_config.max_entries", 1, |b, v| {
            b.l1_config(CacheTierConfig::bounded(v))
        }),
        ("l2_config.max_entries", 1, |b, v| {
            b.l2_config(CacheTierConfig::bounded(v))
        }),
        ("l3_config.max_entries", 1, |b, v| {
            b.l3_config(CacheTierConfig::bounded(v))
        }),
        ("per_source_ttl[\"free\"]", 60, |b, v| b.source_ttl("free", v)),
    ]
}

#[test]
fn below_every_lower_bound_is_rejected_naming_the_field() {
    for (field, min, set) in lower_bounds() {
        assert!(
            set(CacheConfig::builder(), min).build().is_ok(),
            "{field} = {min} is on the bound"
        );
        let err = set(CacheConfig::builder(), min - 1).build().unwrap_err();
        assert!(
            matches!(&err, ConfigError::OutOfBounds { field: f, value, .. } if f == field && *value == min - 1),
            "{field}: {err:?}"
        );
        let message = err.to_string();
        let bound = if min == 60 {
            "between 60 and".to_owned()
        } else {
            format!(">= {min}")
        };
        assert!(message.contains(field) && message.contains(&bound), "{message}");
    }
}

#[test]
fn ttls_have_an_upper_bound() {
    let max = pw_cache::MAX_TTL_SECONDS;
    assert!(CacheConfig::builder().default_ttl_seconds(max).build().is_ok());
    let err = CacheConfig::builder().default_ttl_seconds(max + 1).build().unwrap_err();
    assert!(err.to_string().contains("default_ttl_seconds"), "{err}");
    let err = CacheConfig::builder().source_ttl("s", u64::MAX).build().unwrap_err();
    assert!(err.to_string().contains("per_source_ttl[\"s\"]"), "{err}");
}

#[test]
fn empty_paths_are_rejected() {
    let err = CacheConfig::builder().l2_cache_dir("").build().unwrap_err();
    assert!(err.to_string().contains("l2_cache_dir"), "{err}");
    let err = CacheConfig::builder().l3_database_path("").build().unwrap_err();
    assert!(err.to_string().contains("l3_database_path"), "{err}");
}

#[test]
fn config_files_go_through_the_same_validation() {
    for (field, min, _) in lower_bounds() {
        let json = match field.split_once('.') {
            Some((tier, _)) => format!(r#"{{"{tier}": {{"max_entries": {}}}}}"#, min - 1),
            None if field.starts_with("per_source_ttl") => format!(r#"{{"per_source_ttl": {{"free": {}}}}}"#, min - 1),
            None => format!(r#"{{"{field}": {}}}"#, min - 1),
        };
        let err = CacheConfig::from_json_str(&json).unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
}

#[test]
fn config_file_errors_name_the_field() {
    let err = CacheConfig::from_json_str(r#"{"l1_config": {"eviction_policy": "random"}}"#).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("l1_config.eviction_policy") && message.contains("lru, lfu, fifo"),
        "{message}"
    );

    let err = CacheConfig::from_json_str(r#"{"l2_backend": "redis"}"#).unwrap_err();
    assert!(err.to_string().contains("l2_backend"), "{err}");

    let err = CacheConfig::from_json_str(r#"{"default_ttl": 600}"#).unwrap_err();
    assert!(
        err.to_string().contains("default_ttl"),
        "a typo is an error, not a silent default: {err}"
    );

    let err = CacheConfig::from_json_str(r#"{"failure_threshold": -1}"#).unwrap_err();
    assert!(err.to_string().contains("failure_threshold"), "{err}");
}

#[test]
fn a_valid_file_sets_every_field() {
    let config = CacheConfig::from_json_str(
        r#"{
            "l1_config": {"max_entries": 10, "eviction_policy": "LFU"},
            "l2_config": {"enabled": false},
            "l2_backend": "sqlite",
            "l3_config": {"max_entries": 100000, "eviction_policy": "fifo"},
            "default_ttl_seconds": 600,
            "ttl_cleanup_interval": 30,
            "enable_background_cleanup": true,
            "cleanup_interval_seconds": 15,
            "per_source_ttl": {"free": 120},
            "l2_cache_dir": "/tmp/l2",
            "l3_database_path": "/tmp/l3.db",
            "encryption_key": "a-key",
            "health_check_invalidation": false,
            "failure_threshold": 7,
            "enable_statistics": false,
            "statistics_interval": 9
        }"#,
    )
    .unwrap();
    assert_eq!(
        config.l1_config(),
        &CacheTierConfig::bounded(10).with_policy(EvictionPolicy::Lfu)
    );
    assert!(!config.l2_config().enabled);
    assert_eq!(config.l2_backend(), L2BackendType::Sqlite);
    assert_eq!(config.l3_config().eviction_policy, EvictionPolicy::Fifo);
    assert_eq!(
        (
            config.default_ttl_seconds(),
            config.ttl_cleanup_interval(),
            config.cleanup_interval_seconds()
        ),
        (600, 30, 15)
    );
    assert!(config.enable_background_cleanup());
    assert_eq!(config.ttl_for_source("free"), 120);
    assert_eq!(config.l2_cache_dir(), std::path::Path::new("/tmp/l2"));
    assert_eq!(config.l3_database_path(), std::path::Path::new("/tmp/l3.db"));
    assert_eq!(config.encryption_key().map(|k| k.expose_secret()), Some("a-key"));
    assert!(!config.health_check_invalidation() && !config.enable_statistics());
    assert_eq!((config.failure_threshold(), config.statistics_interval()), (7, 9));
}
