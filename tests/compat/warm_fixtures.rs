//! Every warm input proxywhirl 0.3.3 was given (`manifest.json` `warm[]`), warmed by pw-cache,
//! gives exactly the result stated in the table of `docs/warm.md`, and that table's reference
//! columns are the manifest's counts: the document can drift from neither.
//!
//! Entry by entry, every entry the reference loaded is loaded by pw-cache with the same key,
//! URL, source, credentials and TTL, except the documented differences (URL trimmed,
//! credentials moved out of the URL, `str()` of non-strings refused, `"None"` or `""` source,
//! `0` as a key, invalid URLs), each asserted with pw-cache's own value; and pw-cache loads
//! nothing else but the rows the reference lost by aborting or by misreading a BOM.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use pw_cache::{CacheManager, L2BackendType, ManagerError, Secret, WarmFileError, generate_cache_key};
use pw_cache_tests::managers::{BACKENDS, config, open, test_ring};
use pw_cache_tests::{manifest, proxywhirl_fixtures};
use serde_json::Value;

/// The document holding the table.
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/warm.md");

/// loaded / skipped / failed.
type Counts = (u64, u64, u64);

/// What pw-cache does with a case, as the table says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A [`pw_cache::WarmReport`] with these counts.
    Counts(Counts),
    /// This typed error, named as [`error_name`] names it.
    Error(String),
    /// The case's `ttl_override` cannot be passed: the API takes `Option<u64>`.
    NotRepresentable,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    input: String,
    ttl_override: String,
    reference: Counts,
    ours: Outcome,
    why: String,
}

fn parse_counts(cell: &str) -> Option<Counts> {
    let parts: Vec<u64> = cell.split('/').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [l, s, f] => Some((*l, *s, *f)),
        _ => None,
    }
}

/// The text between the first pair of backticks.
fn backticked(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// The rows of the table whose header starts `| input | ttl_override |`.
fn table() -> Vec<Row> {
    let text = fs::read_to_string(DOC).unwrap_or_else(|e| panic!("{DOC}: {e}"));
    let mut lines = text.lines().skip_while(|l| !l.starts_with("| input | ttl_override |"));
    let header = lines.next().unwrap_or_else(|| panic!("no results table in {DOC}"));
    assert_eq!(header.matches('|').count(), 6, "five columns: {header}");
    let separator = lines.next().unwrap();
    assert!(
        separator.starts_with("|---") || separator.starts_with("| ---"),
        "{separator}"
    );
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [input, ttl_override, reference, ours, why] = cells.as_slice() else {
                panic!("not five cells: {line}");
            };
            let ours = if let Some(counts) = parse_counts(ours) {
                Outcome::Counts(counts)
            } else if ours.starts_with("not representable") {
                Outcome::NotRepresentable
            } else if ours.starts_with("error") {
                Outcome::Error(backticked(ours).unwrap_or_else(|| panic!("{line}")).to_owned())
            } else {
                panic!("pw-cache cell not understood: {line}");
            };
            Row {
                input: backticked(input).unwrap_or_else(|| panic!("{line}")).to_owned(),
                ttl_override: (*ttl_override).to_owned(),
                reference: parse_counts(reference).unwrap_or_else(|| panic!("{line}")),
                ours,
                why: (*why).to_owned(),
            }
        })
        .collect()
}

/// A manifest case's `ttl_override` as the table writes it.
fn ttl_cell(case: &Value) -> String {
    match &case["ttl_override"] {
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

fn counts_of(value: &Value) -> Counts {
    let n = |field: &str| value[field].as_u64().unwrap();
    (n("loaded"), n("skipped"), n("failed"))
}

/// The table row of a manifest case (exactly one).
fn row_for<'a>(rows: &'a [Row], case: &Value) -> &'a Row {
    let input = case["input"].as_str().unwrap();
    let ttl = ttl_cell(case);
    let found: Vec<&Row> = rows
        .iter()
        .filter(|r| r.input == input && r.ttl_override == ttl)
        .collect();
    assert_eq!(found.len(), 1, "{input} ttl {ttl}: rows {found:?}");
    found[0]
}

fn cases() -> Vec<Value> {
    manifest()["warm"].as_array().unwrap().clone()
}

fn error_name(error: &ManagerError) -> String {
    let warm = match error {
        ManagerError::InvalidTtl { .. } => return "ManagerError::InvalidTtl".to_owned(),
        ManagerError::Warm(warm) => match warm {
            WarmFileError::Unsupported { .. } => "Unsupported",
            WarmFileError::Io { .. } => "Io",
            WarmFileError::NotUtf8 { .. } => "NotUtf8",
            WarmFileError::Json { .. } => "Json",
            WarmFileError::NotArray { .. } => "NotArray",
            WarmFileError::CsvHeader { .. } => "CsvHeader",
            WarmFileError::TooLarge { .. } => "TooLarge",
        },
        other => panic!("not a warm error: {other:?}"),
    };
    format!("ManagerError::Warm(WarmFileError::{warm})")
}

/// A fresh cache under `dir` (L1 large enough to hold every fixture).
fn fresh(dir: &Path, backend: L2BackendType) -> CacheManager {
    open(config(dir, backend, 1000).build().unwrap(), &test_ring(), None)
}

/// Copies the case's input into `dir` (when it exists) and warms the copy.
fn warm_case(m: &CacheManager, case: &Value, dir: &Path) -> Result<Outcome, ManagerError> {
    let input = case["input"].as_str().unwrap();
    let fixture = proxywhirl_fixtures().join(input);
    let copy = dir.join(fixture.file_name().unwrap());
    if fixture.exists() {
        fs::copy(&fixture, &copy).unwrap();
    } else {
        assert_eq!(input, "warm/does_not_exist.jsonl", "a fixture is missing");
    }
    let ttl = match &case["ttl_override"] {
        Value::Null => None,
        v => match v.as_u64() {
            Some(ttl) => Some(ttl),
            None => {
                assert!(v.as_i64().is_some_and(|t| t < 0), "{input}: {v}");
                return Ok(Outcome::NotRepresentable);
            }
        },
    };
    let report = m.warm_from_file(&copy, ttl)?;
    Ok(Outcome::Counts((report.loaded, report.skipped, report.failed)))
}

#[test]
fn the_tables_reference_columns_are_the_manifests() {
    let rows = table();
    let cases = cases();
    assert_eq!(rows.len(), cases.len(), "one row per manifest case");
    assert_eq!(cases.len(), 14);
    for case in &cases {
        let row = row_for(&rows, case);
        assert_eq!(row.reference, counts_of(&case["result"]), "{}", row.input);
        assert!(!row.why.is_empty(), "{}: say why", row.input);
    }
}

#[test]
fn pw_cache_gives_the_tables_result_for_every_fixture() {
    let rows = table();
    for backend in BACKENDS {
        for case in cases() {
            let row = row_for(&rows, &case);
            let dir = tempfile::tempdir().unwrap();
            let m = fresh(&dir.path().join("cache"), backend);
            let got = warm_case(&m, &case, dir.path()).unwrap_or_else(|e| {
                if row.input == "warm/does_not_exist.jsonl" {
                    assert!(
                        matches!(&e, ManagerError::Warm(WarmFileError::Io { source, .. })
                            if source.kind() == io::ErrorKind::NotFound),
                        "{e:?}"
                    );
                }
                Outcome::Error(error_name(&e))
            });
            assert_eq!(got, row.ours, "{backend:?} {} ttl {}", row.input, row.ttl_override);
            if !matches!(got, Outcome::Counts(_)) {
                assert_eq!(m.get_statistics().total_size(), 0, "{}: nothing stored", row.input);
            }
        }
    }
}

/// What pw-cache stores for an entry the reference loaded, where it intentionally differs.
enum Differs {
    /// Stored, with these values (key `None`: generated from `proxy_url`).
    Stored {
        key: Option<&'static str>,
        proxy_url: &'static str,
        source: &'static str,
        username: Option<&'static str>,
        password: Option<&'static str>,
    },
    /// The row is skipped: nothing is stored for it.
    Skipped,
}

/// The intentional differences, by input file and the reference's key.
fn difference(input: &str, reference_key: &str) -> Option<Differs> {
    use Differs::{Skipped, Stored};
    Some(match (input, reference_key) {
        // `"key": 0` is the key "0", not "no key" (Python's falsy 0).
        ("warm/warm_input.json", "9502a381e7c6d94a") => Stored {
            key: Some("0"),
            proxy_url: "http://k2.example:1",
            source: "warmed",
            username: None,
            password: None,
        },
        // Not a proxy URL.
        ("warm/warm_input.json", "a9cf7bdc1fe733c8") | ("warm/warm_input.csv", "ba63a4e55d666e64") => Skipped,
        // `true` and an object as credentials are refused, not stored as "True", "{'a': 1}".
        ("warm/warm_input.json", "3bb709402d0059be" | "fd8a97dbe2913263") => Skipped,
        // Credentials moved out of the URL (and the key generated from the URL without them).
        ("warm/warm_input.json", "d0dd4aa649d4a06c") => Stored {
            key: None,
            proxy_url: "http://embedded.example:8080",
            source: "warmed",
            username: Some("user"),
            password: Some("pw"),
        },
        // `"source": null` is no source, not "None".
        ("warm/warm_input.json", "ccbafc59f91464fe") => Stored {
            key: None,
            proxy_url: "http://src-null.example:1",
            source: "warmed",
            username: None,
            password: None,
        },
        // The URL is trimmed (and the key generated from the trimmed URL).
        ("warm/warm_input.json", "d2c15d7a256a39f8") => Stored {
            key: None,
            proxy_url: "http://spaces.example:1",
            source: "warmed",
            username: None,
            password: None,
        },
        // A record without the source column has no source, not "None".
        ("warm/warm_input.csv", "b2917b7d0a20713b") => Stored {
            key: None,
            proxy_url: "http://30.0.0.3:8080",
            source: "warmed",
            username: None,
            password: None,
        },
        // An empty source is no source.
        ("warm/warm_input.csv", "0700c6db7ab296dc") => Stored {
            key: None,
            proxy_url: "socks5://30.0.0.5:1080",
            source: "warmed",
            username: Some("ünï"),
            password: Some("пароль"),
        },
        // Every value trimmed.
        ("warm/warm_input.csv", "55f599c5b7fce6d8") => Stored {
            key: None,
            proxy_url: "http://30.0.0.6:8080",
            source: "src",
            username: Some("spaced"),
            password: Some("spaced"),
        },
        _ => return None,
    })
}

/// Entries pw-cache loads that the reference lost: (input, proxy_url, username).
const ONLY_OURS: [(&str, &str, Option<&str>); 3] = [
    // The reference aborted at line 2 (the number 42).
    ("warm/warm_abort.jsonl", "http://20.0.0.2:80", None),
    // The reference aborted at item 2 (null).
    ("warm/warm_abort.json", "http://21.0.0.2:80", None),
    // The reference read the header as "\u{feff}proxy_url" and skipped the row.
    ("warm/warm_bom.csv", "http://32.0.0.1:80", Some("a")),
];

fn secret(value: Option<&str>) -> Option<Secret> {
    value.map(Secret::new)
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

#[test]
fn loaded_entries_match_the_references_or_differ_as_documented() {
    let mut differences_seen = 0;
    let mut same_seen = 0;
    for backend in BACKENDS {
        for case in cases() {
            let input = case["input"].as_str().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let m = fresh(&dir.path().join("cache"), backend);
            let Ok(Outcome::Counts(_)) = warm_case(&m, &case, dir.path()) else {
                continue;
            };
            let mut keys = BTreeSet::new();
            for want in case["entries_in_l1_insertion_order"].as_array().unwrap() {
                let ref_key = want["key"].as_str().unwrap();
                let ref_url = want["proxy_url"].as_str().unwrap();
                let ttl = want["ttl_seconds"].as_u64().unwrap();
                if want["key_is_generated"] == Value::Bool(true) {
                    assert_eq!(generate_cache_key(ref_url), ref_key, "the reference's key function");
                }
                let what = format!("{backend:?} {input} {ref_key}");
                match difference(input, ref_key) {
                    None => {
                        let got = m.get(ref_key).unwrap_or_else(|| panic!("{what}: not loaded"));
                        assert_eq!(got.proxy_url, ref_url, "{what}");
                        assert_eq!(got.source, want["source"].as_str().unwrap(), "{what}");
                        assert_eq!(got.username, secret(text(&want["username"])), "{what}: username");
                        assert_eq!(got.password, secret(text(&want["password"])), "{what}: password");
                        assert_eq!(got.ttl_seconds, ttl, "{what}");
                        keys.insert(ref_key.to_owned());
                        same_seen += 1;
                    }
                    Some(Differs::Skipped) => {
                        assert!(m.get(ref_key).is_none(), "{what}: should be skipped");
                        differences_seen += 1;
                    }
                    Some(Differs::Stored {
                        key,
                        proxy_url,
                        source,
                        username,
                        password,
                    }) => {
                        let key = key.map_or_else(|| generate_cache_key(proxy_url), str::to_owned);
                        let got = m.get(&key).unwrap_or_else(|| panic!("{what}: not under {key}"));
                        let ours = (
                            key.as_str(),
                            got.proxy_url.as_str(),
                            got.source.as_str(),
                            got.username.as_ref().map(Secret::expose_secret),
                            got.password.as_ref().map(Secret::expose_secret),
                        );
                        assert_eq!(ours, (key.as_str(), proxy_url, source, username, password), "{what}");
                        let theirs = (
                            ref_key,
                            ref_url,
                            want["source"].as_str().unwrap(),
                            text(&want["username"]),
                            text(&want["password"]),
                        );
                        assert_ne!(ours, theirs, "{what}: listed as a difference but equal");
                        assert_eq!(got.ttl_seconds, ttl, "{what}");
                        keys.insert(key);
                        differences_seen += 1;
                    }
                }
            }
            for (_, url, username) in ONLY_OURS.iter().filter(|(i, _, _)| *i == input) {
                let key = generate_cache_key(url);
                let got = m
                    .get(&key)
                    .unwrap_or_else(|| panic!("{backend:?} {input}: {url} not loaded"));
                assert_eq!(got.proxy_url, *url);
                assert_eq!(got.source, "warmed");
                assert_eq!(got.username, secret(*username));
                assert_eq!(got.ttl_seconds, 3600);
                keys.insert(key);
            }
            // Nothing else was loaded.
            let stats = m.get_statistics();
            assert_eq!(stats.l1_stats.current_size, keys.len() as u64, "{backend:?} {input}");
            assert_eq!(stats.l2_stats.current_size, keys.len() as u64, "{backend:?} {input}");
            assert_eq!(stats.l3_stats.current_size, keys.len() as u64, "{backend:?} {input}");
        }
    }
    assert_eq!(differences_seen, 2 * 11, "every listed difference was met");
    assert!(same_seen > 2 * 20, "{same_seen}");
}
