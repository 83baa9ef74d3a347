//! The JSON form of an entry against proxywhirl 0.3.3's: `export/export.jsonl` (written by
//! `CacheManager.export_to_file`) and the entries of `manifest.json`.

use pw_cache::{CacheEntry, HealthStatus, Secret};
use pw_cache_tests::{ENTRY_FIELDS, export_lines, manifest};
use serde_json::Value;

#[test]
fn every_export_line_reads_as_an_entry() {
    let lines = export_lines();
    assert_eq!(lines.len(), 160, "the manifest says 160 entries were exported");
    for (i, line) in lines.iter().enumerate() {
        let entry = CacheEntry::from_json_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let raw: Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry.key, raw["key"].as_str().unwrap());
        assert_eq!(entry.proxy_url, raw["proxy_url"].as_str().unwrap());
        assert_eq!(entry.source, raw["source"].as_str().unwrap());
        assert_eq!(entry.access_count, raw["access_count"].as_u64().unwrap());
        assert_eq!(entry.ttl_seconds, raw["ttl_seconds"].as_u64().unwrap());
        assert_eq!(entry.health_status.as_str(), raw["health_status"].as_str().unwrap());
        assert_eq!(entry.last_health_error.as_deref(), raw["last_health_error"].as_str());
    }
}

#[test]
fn masked_credentials_read_as_no_credential() {
    let mut masked = 0;
    for line in export_lines() {
        let raw: Value = serde_json::from_str(&line).unwrap();
        let entry = CacheEntry::from_json_str(&line).unwrap();
        for (field, value) in [("username", &entry.username), ("password", &entry.password)] {
            match &raw[field] {
                Value::String(s) => {
                    assert_eq!(s, "***", "the export never holds a credential");
                    assert!(value.is_none(), "\"***\" must not become the secret \"***\"");
                    masked += 1;
                }
                Value::Null => assert!(value.is_none()),
                other => panic!("{field} is {other}"),
            }
        }
    }
    assert!(masked > 50, "the fixture has masked credentials to test ({masked})");
}

#[test]
fn serializing_gives_the_reference_export_line_byte_for_byte() {
    for line in export_lines() {
        let raw: Value = serde_json::from_str(&line).unwrap();
        let mut entry = CacheEntry::from_json_str(&line).unwrap();
        // The export only says *that* a credential was set; give the entry one so it masks it.
        if raw["username"].is_string() {
            entry.username = Some(Secret::new("some-user"));
        }
        if raw["password"].is_string() {
            entry.password = Some(Secret::new("some-password"));
        }
        assert_eq!(entry.to_json_line(), line);
    }
}

#[test]
fn field_names_and_order_are_the_references() {
    let entry = CacheEntry::new("http://1.2.3.4:8080", "fetched", 3600).unwrap();
    let line = entry.to_json_line();
    let positions: Vec<usize> = ENTRY_FIELDS
        .iter()
        .map(|f| {
            line.find(&format!("\"{f}\": "))
                .unwrap_or_else(|| panic!("{f} missing from {line}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "fields out of order: {line}");
    let object: serde_json::Map<String, Value> = serde_json::from_str(&line).unwrap();
    assert_eq!(object.len(), ENTRY_FIELDS.len());
}

#[test]
fn every_manifest_entry_reads_as_an_entry_with_its_credentials() {
    let manifest = manifest();
    let mut with_credentials = 0;
    for (store, data) in manifest["stores"].as_object().unwrap() {
        for raw in data["entries"].as_array().unwrap() {
            let entry = CacheEntry::from_json_str(&raw.to_string()).unwrap_or_else(|e| panic!("{store}: {e}"));
            let secret = |field: &str| raw[field].as_str().map(Secret::new);
            assert_eq!(entry.username, secret("username"), "{store} {}", entry.key);
            assert_eq!(entry.password, secret("password"), "{store} {}", entry.key);
            with_credentials += usize::from(entry.password.is_some());
            assert_eq!(entry.failure_count, raw["failure_count"].as_u64().unwrap());
            assert_eq!(entry.total_health_checks, raw["total_health_checks"].as_u64().unwrap());
            assert_eq!(entry.evicted_from_l1, raw["evicted_from_l1"].as_bool().unwrap());
            assert_eq!(
                entry.health_status,
                raw["health_status"].as_str().unwrap().parse::<HealthStatus>().unwrap()
            );
        }
    }
    assert!(with_credentials > 100, "{with_credentials}");
}
