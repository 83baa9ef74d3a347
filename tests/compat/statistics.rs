//! Statistics formulas and JSON form against proxywhirl 0.3.3: the counters the manifest
//! recorded after an export, with Python's computed values beside them.

use pw_cache::model::{pyjson, stats::METRIC_NAMES};
use pw_cache::{CacheStatistics, TierStatistics};
use pw_cache_tests::manifest;
use serde_json::Value;

fn python_statistics() -> Value {
    manifest()["export"]["statistics_after_export"].clone()
}

#[test]
fn derived_values_match_pythons() {
    let python = python_statistics();
    let stats: CacheStatistics = serde_json::from_value(python.clone()).unwrap();
    assert_eq!(stats.l2_stats.hits, 160);
    assert_eq!(stats.overall_hit_rate(), python["overall_hit_rate"].as_f64().unwrap());
    assert_eq!(stats.total_size(), python["total_size"].as_u64().unwrap());
    for (tier, t) in [
        ("l1_stats", stats.l1_stats),
        ("l2_stats", stats.l2_stats),
        ("l3_stats", stats.l3_stats),
    ] {
        assert_eq!(t.hit_rate(), python[tier]["hit_rate"].as_f64().unwrap(), "{tier}");
        assert_eq!(
            t.total_evictions(),
            python[tier]["total_evictions"].as_u64().unwrap(),
            "{tier}"
        );
    }
}

#[test]
fn json_form_is_pythons_model_dump() {
    let python = python_statistics();
    let stats: CacheStatistics = serde_json::from_value(python.clone()).unwrap();
    let ours: Value = serde_json::to_value(stats).unwrap();
    assert_eq!(ours, python, "same keys and values");
    // Same key order, as Python's json.dumps(model_dump()) would print it.
    let text = pyjson::to_string(&stats).unwrap();
    let mut last = 0;
    for key in [
        "l1_stats",
        "l2_stats",
        "l3_stats",
        "promotions",
        "demotions",
        "l1_degraded",
        "l2_degraded",
        "l3_degraded",
        "overall_hit_rate",
        "total_size",
    ] {
        let at = text.find(&format!("\"{key}\": ")).unwrap();
        assert!(at >= last, "{key} out of order in {text}");
        last = at;
    }
    assert!(
        text.contains(r#""hits": 0, "misses": 200, "current_size": 160, "evictions_lru": 0"#),
        "{text}"
    );
}

#[test]
fn metrics_dict_matches_the_reference_formula() {
    let stats: CacheStatistics = serde_json::from_value(python_statistics()).unwrap();
    let metrics = stats.to_metrics_dict();
    assert_eq!(metrics.map(|(name, _)| name), METRIC_NAMES);
    let get = |name: &str| metrics.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(get("cache.l1.hit_rate"), 0.0);
    assert_eq!(get("cache.l2.hit_rate"), 1.0);
    assert_eq!(get("cache.overall.hit_rate"), 160.0 / 360.0);
    assert_eq!(get("cache.total_size"), 480.0);
    assert_eq!(get("cache.promotions"), 160.0);
    assert_eq!(get("cache.l3.size"), 160.0);
}

#[test]
fn docstring_examples_of_the_reference() {
    // TierStatistics(hits=100, misses=20).hit_rate -> 0.8333...
    let t = TierStatistics {
        hits: 100,
        misses: 20,
        ..Default::default()
    };
    assert_eq!(format!("{:.4}", t.hit_rate()), "0.8333");
    // stats = CacheStatistics(); stats.l1_stats.hits = 100; stats.overall_hit_rate -> 1.0
    let mut s = CacheStatistics::default();
    s.l1_stats.hits = 100;
    assert_eq!(s.overall_hit_rate(), 1.0);
}
