//! Shared helpers of the integration suite: where the fixtures are, and how to read them.
//!
//! The fixtures in `tests/fixtures/proxywhirl-0.3.3/` were written by the real proxywhirl 0.3.3
//! (see its README); `manifest.json` says what Python read back from each of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The directory of the proxywhirl 0.3.3 fixtures.
pub fn proxywhirl_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/proxywhirl-0.3.3")
}

/// The directory of the Fernet specification's test vectors.
pub fn fernet_spec_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fernet-spec")
}

/// A fixture file's text (`rel` under [`proxywhirl_fixtures`]).
pub fn read_fixture(rel: &str) -> String {
    let path = proxywhirl_fixtures().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// `manifest.json`, parsed.
pub fn manifest() -> Value {
    serde_json::from_str(&read_fixture("manifest.json")).expect("manifest.json is JSON")
}

/// Every file under the fixtures directory, recursively, sorted.
pub fn fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("fixture dir is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&proxywhirl_fixtures(), &mut out);
    out.sort();
    out
}

/// Every string value anywhere inside `value` (object keys excluded).
pub fn strings_in(value: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.as_str()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    out
}

/// The lines of the fixtures' `export/export.jsonl`.
pub fn export_lines() -> Vec<String> {
    read_fixture("export/export.jsonl").lines().map(str::to_owned).collect()
}
