//! `pw-cache warm`: every warm input of the fixtures gives the result the pw-cache column of
//! `docs/warm.md`'s table documents (loaded / skipped / failed, exit 1 when a row was skipped or
//! failed; exit 2 with a one-line message naming the file for a file-level error), into both L2
//! backends; and a warm with no key configured creates the key file and says so. A file that
//! cannot be used (bad CSV header, JSON document that is not an array of objects or is over the
//! size limit, unsupported extension, missing, a directory, unreadable) fails before the cache is opened: nothing is
//! created in a new cache's place, and an existing cache's files are left byte for byte.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{Keys, TestCache, pw_cache, set_mode, tree, without_file_capabilities};
use pw_cache_tests::{manifest, proxywhirl_fixtures};

/// The document holding the table.
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/warm.md");

/// What pw-cache does with a case, as the table says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Counts(u64, u64, u64),
    Error(String),
    NotRepresentable,
}

/// `(input, ttl_override, outcome)` of each row of the results table.
fn table() -> Vec<(String, String, Outcome)> {
    let text = std::fs::read_to_string(DOC).unwrap();
    let backticked = |cell: &str| -> String {
        let start = cell.find('`').unwrap() + 1;
        let len = cell[start..].find('`').unwrap();
        cell[start..start + len].to_owned()
    };
    text.lines()
        .skip_while(|l| !l.starts_with("| input | ttl_override |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let ours = cells[3];
            let counts: Vec<u64> = ours.split('/').filter_map(|p| p.trim().parse().ok()).collect();
            let outcome = if let [l, s, f] = counts.as_slice() {
                Outcome::Counts(*l, *s, *f)
            } else if ours.starts_with("not representable") {
                Outcome::NotRepresentable
            } else if ours.starts_with("error") {
                Outcome::Error(backticked(ours))
            } else {
                panic!("not understood: {line}");
            };
            (backticked(cells[0]), cells[1].to_owned(), outcome)
        })
        .collect()
}

#[test]
fn every_fixture_warm_file_gives_the_documented_counts() {
    let rows = table();
    assert_eq!(
        rows.len(),
        manifest()["warm"].as_array().unwrap().len(),
        "one row per case"
    );
    for backend in ["jsonl", "sqlite"] {
        for (input, ttl, outcome) in &rows {
            let cache = TestCache::empty(backend);
            // A copy of the input: the fixtures are never handed to the binary.
            let fixture = proxywhirl_fixtures().join(input);
            let file = cache.dir.path().join(fixture.file_name().unwrap());
            if fixture.exists() {
                std::fs::copy(&fixture, &file).unwrap();
            }
            let mut args = vec![OsString::from("warm"), "--file".into(), file.clone().into()];
            args.extend(cache.args());
            if ttl != "none" {
                args.extend(["--ttl".into(), OsString::from(ttl)]);
            }
            let run = pw_cache(&args, Keys::Both);
            let case = format!("{backend} {input} ttl {ttl}");
            match outcome {
                Outcome::Counts(loaded, skipped, failed) => {
                    let code = if skipped + failed > 0 { 1 } else { 0 };
                    let run = run.expect_code(code);
                    assert_eq!(
                        (run.count("loaded"), run.count("skipped"), run.count("failed")),
                        (*loaded, *skipped, *failed),
                        "{case}:\n{}",
                        run.stdout
                    );
                    // Each bad row is listed with its location.
                    let listed = run
                        .stdout
                        .lines()
                        .filter(|l| l.contains(": skipped: ") || l.contains(": failed: "));
                    assert_eq!(listed.count() as u64, skipped + failed, "{case}:\n{}", run.stdout);
                    assert!(run.stderr.is_empty(), "{case}: {}", run.stderr);
                }
                Outcome::Error(name) if name == "ManagerError::InvalidTtl" => {
                    // Refused by the command line before anything is opened.
                    assert_eq!(run.code, 2, "{case}");
                    assert!(run.stderr.contains("--ttl"), "{case}: {}", run.stderr);
                    assert!(!cache.l2.exists(), "{case}: nothing created");
                }
                Outcome::Error(name) => {
                    let message = run.one_line_error();
                    assert!(message.contains(&file.display().to_string()), "{case}: {message}");
                    let hint = match name.as_str() {
                        "ManagerError::Warm(WarmFileError::Unsupported)" => "unsupported",
                        "ManagerError::Warm(WarmFileError::Io)" => "No such file",
                        "ManagerError::Warm(WarmFileError::NotArray)" => "must be an array",
                        "ManagerError::Warm(WarmFileError::Json)" => "invalid JSON",
                        "ManagerError::Warm(WarmFileError::CsvHeader)" => "proxy_url",
                        other => panic!("{case}: error {other} not expected"),
                    };
                    assert!(message.contains(hint), "{case}: {message}");
                    // The file is checked before the cache is opened: nothing is created.
                    assert!(
                        !cache.l2.exists() && !cache.l3.parent().unwrap().exists(),
                        "{case}: a cache was created for a file that cannot be used"
                    );
                }
                Outcome::NotRepresentable => {
                    // A negative TTL is a usage error.
                    assert_eq!(run.code, 2, "{case}: {}", run.stderr);
                }
            }
        }
    }
}

#[test]
fn warmed_entries_are_in_both_tiers() {
    let cache = TestCache::empty("sqlite");
    let file = proxywhirl_fixtures().join("warm/warm_input.csv");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    args.extend(["--ttl".into(), "600".into()]);
    let run = pw_cache(&args, Keys::Both).expect_code(1);
    assert!(run.stdout.contains("600 s"), "{}", run.stdout);
    let distinct = run.count("loaded") - 1; // row 7 replaces row 1's key
    assert!(run.stdout.contains("1 replaced"), "{}", run.stdout);
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::Both)
        .expect_code(0)
        .json();
    for tier in ["l2", "l3"] {
        assert_eq!(stats["tiers"][tier]["entries"], distinct, "{tier}");
        assert_eq!(stats["tiers"][tier]["corrupt"], 0, "{tier}");
    }
    for ((_, key), entry) in cache.entries(&common::both_keys()) {
        assert_eq!(entry.unwrap().ttl_seconds, 600, "{key}");
    }
}

#[test]
fn a_warm_without_a_key_creates_the_key_file_and_says_so() {
    let cache = TestCache::empty("jsonl");
    let file = proxywhirl_fixtures().join("warm/warm_input.jsonl");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    let run = pw_cache(&args, Keys::Unset).expect_code(1);
    let key_file = cache.l2.join("pw-cache.key");
    assert!(key_file.exists());
    assert!(
        run.stdout
            .contains(&format!("key file {} (created now", key_file.display())),
        "{}",
        run.stdout
    );
    // The key never shows; the next command finds the file and reads everything.
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!run.stdout.contains(key.trim()));
    let stats = pw_cache(cache.command("stats", &["--json"]), Keys::Unset)
        .expect_code(0)
        .json();
    assert_eq!(stats["keys"]["origin"], "key_file");
    assert_eq!(stats["tiers"]["l2"]["entries"], 5);
    assert_eq!(stats["totals"]["corrupt"], 0);
}

#[test]
fn the_config_file_gives_the_ttls_and_bounds() {
    let cache = TestCache::empty("jsonl");
    let config = cache.dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"per_source_ttl": {"csv-src": 900}, "l2_config": {"max_entries": 2}}"#,
    )
    .unwrap();
    let file = proxywhirl_fixtures().join("warm/warm_input.csv");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    args.extend(["--config".into(), config.clone().into()]);
    pw_cache(&args, Keys::Both).expect_code(1);
    let entries = cache.entries(&common::both_keys());
    let l3: Vec<_> = entries.iter().filter(|((tier, _), _)| tier == "l3").collect();
    assert_eq!(l3.len(), 6, "L3 is unbounded");
    assert_eq!(entries.len() - l3.len(), 2, "L2 holds max_entries");
    for ((tier, key), entry) in &entries {
        let entry = entry.as_ref().unwrap();
        let want = if entry.source == "csv-src" { 900 } else { 3600 };
        assert_eq!(entry.ttl_seconds, want, "{tier} {key} ({})", entry.source);
    }
    assert!(l3.iter().any(|(_, e)| e.as_ref().unwrap().source == "csv-src"));
}

/// Runs `warm --file file` into a fresh cache and into a copy of the fixtures' cache, for both
/// backends, with the keys in the environment and without (the key file would be created), and
/// asserts each run exits 2 with one line naming the file and saying `hint`, and creates or
/// changes nothing.
fn assert_refused_and_nothing_created(file: &Path, hint: &str) {
    for backend in ["jsonl", "sqlite"] {
        for keys in [Keys::Both, Keys::Unset] {
            for cache in [TestCache::empty(backend), TestCache::fixtures(backend)] {
                let case = format!("{} into {backend} ({keys:?}, {})", file.display(), cache.l2.exists());
                let before = tree(cache.dir.path());
                let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
                args.extend(cache.args());
                let run = pw_cache(&args, keys);
                let message = run.one_line_error();
                assert!(message.contains(&file.display().to_string()), "{case}: {message}");
                assert!(message.contains(hint), "{case}: {message}");
                assert!(run.stdout.is_empty(), "{case}: {}", run.stdout);
                assert_eq!(tree(cache.dir.path()), before, "{case}: the cache's directory changed");
                if before.is_empty() {
                    assert!(!cache.l2.exists() && !cache.l3.parent().unwrap().exists(), "{case}");
                }
            }
        }
    }
}

/// Files `warm` cannot use at all, each with what its message says.
fn unusable_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let files: [(&str, &[u8], &str); 8] = [
        (
            "no_proxy_url.csv",
            b"url,username,password\nhttp://a.example:1,u,p\n",
            "invalid CSV header: no `proxy_url` column (columns found: `url`, `username`, `password`)",
        ),
        ("empty.csv", b"", "invalid CSV header: no header row"),
        (
            "headerless.csv",
            b"http://a.example:1,u,p\n",
            "the first line looks like data",
        ),
        (
            "object.json",
            br#"{"proxy_url": "http://a.example:1"}"#,
            "a JSON warm file must be an array of objects, found object",
        ),
        (
            "truncated.json",
            br#"[{"proxy_url": "http://a.example:1"}, {"#,
            "invalid JSON at line 1",
        ),
        ("latin1.json", b"[{\"source\": \"caf\xe9\"}]", "not valid UTF-8"),
        (
            "proxies.txt",
            b"proxy_url\nhttp://a.example:1\n",
            "unsupported warm file extension `.txt`",
        ),
        ("proxies", b"[]", "unsupported warm file extension (none)"),
    ];
    let mut out = Vec::new();
    for (name, bytes, hint) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        out.push((path, hint));
    }
    // A `.json` document over the limit (sparse: no disk), refused by its size.
    let huge = dir.join("huge.json");
    let limit = pw_cache::model::limits::MAX_WARM_JSON_BYTES;
    std::fs::File::create(&huge).unwrap().set_len(limit + 1).unwrap();
    out.push((huge, "more than the limit of 67108864 bytes for a .json document"));
    out.push((dir.join("missing.jsonl"), "No such file or directory"));
    out.push((dir.join("missing.csv"), "No such file or directory"));
    for name in ["a-directory.csv", "a-directory.jsonl", "a-directory.json"] {
        std::fs::create_dir(dir.join(name)).unwrap();
        out.push((dir.join(name), "the warm file is not a file"));
    }
    out
}

#[test]
fn a_file_that_cannot_be_used_creates_and_changes_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    for (file, hint) in unusable_files(inputs.path()) {
        assert_refused_and_nothing_created(&file, hint);
    }
}

#[test]
fn an_unreadable_file_creates_and_changes_nothing() {
    let inputs = tempfile::tempdir().unwrap();
    let valid = proxywhirl_fixtures().join("warm");
    // Valid files (warm loads them when they are readable), made unreadable; and one in a
    // directory that cannot be searched.
    let mut files = Vec::new();
    for name in ["warm_input.csv", "warm_input.jsonl", "warm_input.json"] {
        let path = inputs.path().join(name);
        std::fs::copy(valid.join(name), &path).unwrap();
        set_mode(&path, 0o000);
        files.push(path);
    }
    let closed = inputs.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::copy(valid.join("warm_input.csv"), closed.join("inside.csv")).unwrap();
    set_mode(&closed, 0o000);
    files.push(closed.join("inside.csv"));
    without_file_capabilities(|| {
        for file in &files {
            assert_refused_and_nothing_created(file, "cannot read the warm file: Permission denied");
        }
    });
    set_mode(&closed, 0o700);
    // Readable again, the same files warm (rows skipped: exit 1).
    for file in &files {
        set_mode(file, 0o600);
        let cache = TestCache::empty("jsonl");
        let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
        args.extend(cache.args());
        let run = pw_cache(&args, Keys::Both).expect_code(1);
        assert!(run.count("loaded") > 0, "{}", run.stdout);
    }
}

#[test]
fn a_jsonl_file_has_no_header_its_bad_lines_are_counted() {
    // Unlike a CSV header, a bad first line of a JSONL file is one row's problem: counted, the
    // rest loaded (as proxywhirl counts it), exit 1.
    let inputs = tempfile::tempdir().unwrap();
    let file = inputs.path().join("bad_first_line.jsonl");
    std::fs::write(&file, "proxy_url,username\n{\"proxy_url\": \"http://a.example:1\"}\n").unwrap();
    let cache = TestCache::empty("sqlite");
    let mut args = vec![OsString::from("warm"), "--file".into(), file.into()];
    args.extend(cache.args());
    let run = pw_cache(&args, Keys::Both).expect_code(1);
    assert_eq!((run.count("loaded"), run.count("failed")), (1, 1), "{}", run.stdout);
}
