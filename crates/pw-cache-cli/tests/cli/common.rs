//! What the `pw-cache` integration tests share: running the binary as a process with the
//! fixtures' keys in its environment (never in the test's), copies of the fixture caches,
//! reading the summaries back, and the manifest's expectations.
//!
//! The binary is the one named by the environment variable `PW_CACHE_BIN` when it is set (the
//! installed command: `test.sh` installs it with `cargo install` and points this at it), else
//! the one cargo built for these tests (see [`binary`]).
//!
//! Every run is checked for what must never happen whatever the command: a panic, or a key or
//! a fixture credential in the output.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use pw_cache::{CacheEntry, CacheTier, CacheTierConfig, KeyRing, OffsetDateTime, SqliteL2Tier, SqliteL3Tier};
use pw_cache_tests::{fixture_keys, fixture_ring, manifest, proxywhirl_fixtures};
use serde_json::Value;

/// The key variables of the library.
pub(crate) const ENV_CURRENT: &str = "PROXYWHIRL_CACHE_ENCRYPTION_KEY";
/// The previous keys' variable.
pub(crate) const ENV_PREVIOUS: &str = "PROXYWHIRL_CACHE_KEY_PREVIOUS";

/// Which keys the child process gets in its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// The fixtures' current key, and their previous key as previous.
    Both,
    /// The fixtures' current key alone.
    CurrentOnly,
    /// The fixtures' previous key as the current one, alone.
    PreviousOnly,
    /// The fixtures' previous key as the current one, their current key as previous (what an
    /// operator had before rotating to the fixtures' current key).
    Swapped,
    /// No key variable at all (the key file, if any).
    Unset,
}

/// The environment variable naming the `pw-cache` binary to test (the installed one).
pub(crate) const PW_CACHE_BIN: &str = "PW_CACHE_BIN";

/// The `pw-cache` binary the tests run: `$PW_CACHE_BIN` when it is set and not empty, else the
/// one cargo built for this test binary.
pub(crate) fn binary() -> PathBuf {
    match std::env::var_os(PW_CACHE_BIN) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_pw-cache")),
    }
}

/// What a run of the binary gave.
#[derive(Debug)]
pub(crate) struct Run {
    /// The binary that ran.
    pub(crate) program: PathBuf,
    /// The exit code.
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl Run {
    /// Panics with the output unless the exit code is `code`.
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The number after `label` at the start of a line of stdout (`loaded   13`).
    pub(crate) fn count(&self, label: &str) -> u64 {
        count_in(&self.stdout, label)
    }

    /// The error message: exit 2, exactly one line on stderr starting `error: `.
    pub(crate) fn one_line_error(&self) -> &str {
        assert_eq!(self.code, 2, "exit code\n{}\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0]
    }

    /// The `--json` output, parsed.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// The number after `label` at the start of a line of `text`.
pub(crate) fn count_in(text: &str, label: &str) -> u64 {
    let found: Vec<u64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(label)?;
            if !rest.starts_with(char::is_whitespace) {
                return None;
            }
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    assert_eq!(found.len(), 1, "one `{label} N` line in:\n{text}");
    found[0]
}

/// Runs `pw-cache <args>` (the [`binary`]) with `keys` in its environment.
pub(crate) fn pw_cache<I, S>(args: I, keys: Keys) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    pw_cache_with_env(args, keys, &[])
}

/// [`pw_cache`] with more environment variables for the child.
pub(crate) fn pw_cache_with_env<I, S>(args: I, keys: Keys, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (current, previous) = fixture_keys();
    let program = binary();
    let mut cmd = Command::new(&program);
    cmd.args(args).env_remove(ENV_CURRENT).env_remove(ENV_PREVIOUS);
    match keys {
        Keys::Both => cmd.env(ENV_CURRENT, &current).env(ENV_PREVIOUS, &previous),
        Keys::CurrentOnly => cmd.env(ENV_CURRENT, &current),
        Keys::PreviousOnly => cmd.env(ENV_CURRENT, &previous),
        Keys::Swapped => cmd.env(ENV_CURRENT, &previous).env(ENV_PREVIOUS, &current),
        Keys::Unset => &mut cmd,
    };
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run the pw-cache binary {}: {e}", program.display()));
    let run = Run {
        program,
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    };
    check_nothing_leaks(&run);
    run
}

/// No panic, no backtrace, no key, no fixture credential in what a run printed.
fn check_nothing_leaks(run: &Run) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!all.contains(bad), "{bad}:\n{all}");
    }
    for secret in secrets() {
        assert!(
            !all.contains(secret.as_str()),
            "a key or credential was printed:\n{all}"
        );
    }
}

/// The fixtures' two keys and every credential of the manifest's stores and warm inputs that is
/// long enough not to occur by chance (5 characters or more).
pub(crate) fn secrets() -> &'static [String] {
    static SECRETS: OnceLock<Vec<String>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let (current, previous) = fixture_keys();
        let mut out: BTreeSet<String> = [current, previous].into();
        let m = manifest();
        for store in m["stores"].as_object().expect("stores").values() {
            for e in store["entries"].as_array().expect("entries") {
                for field in ["username", "password"] {
                    if let Some(s) = e[field].as_str() {
                        out.insert(s.to_owned());
                    }
                }
            }
        }
        // The warm inputs' credentials (what a warm file can hold in clear).
        for s in [
            "jl-user",
            "jl-pass",
            "only-pass",
            "csvuser",
            "dupuser",
            "duppass",
            "пароль",
        ] {
            out.insert(s.to_owned());
        }
        out.into_iter().filter(|s| s.chars().count() >= 5).collect()
    })
}

/// The cache options of a cache.
pub(crate) fn cache_args(l2: &Path, backend: &str, l3: &Path) -> Vec<OsString> {
    vec![
        "--l2-dir".into(),
        l2.into(),
        "--l2-backend".into(),
        backend.into(),
        "--l3-db".into(),
        l3.into(),
    ]
}

/// `command` followed by `rest`.
pub(crate) fn args(command: &str, rest: &[OsString]) -> Vec<OsString> {
    let mut out = vec![OsString::from(command)];
    out.extend(rest.iter().cloned());
    out
}

/// A cache under a temporary directory: L2 `backend` in `l2/`, L3 at `l3/cache.db`.
pub(crate) struct TestCache {
    /// Holds the files.
    pub(crate) dir: tempfile::TempDir,
    /// The L2 directory.
    pub(crate) l2: PathBuf,
    /// `jsonl` or `sqlite`.
    pub(crate) backend: &'static str,
    /// The L3 database.
    pub(crate) l3: PathBuf,
}

impl TestCache {
    /// An empty cache (nothing created yet).
    pub(crate) fn empty(backend: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let l2 = dir.path().join("l2");
        let l3 = dir.path().join("l3").join("cache.db");
        Self { dir, l2, backend, l3 }
    }

    /// A copy of the fixtures' cache: `jsonl_l2/` (or `sqlite_l2/l2_cache.db`) as L2 and
    /// `l3/proxywhirl.db` as L3.
    pub(crate) fn fixtures(backend: &'static str) -> Self {
        let cache = Self::empty(backend);
        let fixtures = proxywhirl_fixtures();
        std::fs::create_dir_all(&cache.l2).expect("mkdir l2");
        std::fs::create_dir_all(cache.l3.parent().expect("parent")).expect("mkdir l3");
        match backend {
            "jsonl" => copy_dir(&fixtures.join("jsonl_l2"), &cache.l2),
            "sqlite" => {
                std::fs::copy(fixtures.join("sqlite_l2/l2_cache.db"), cache.l2.join("l2_cache.db")).expect("copy");
            }
            other => panic!("backend {other}"),
        }
        std::fs::copy(fixtures.join("l3/proxywhirl.db"), &cache.l3).expect("copy L3");
        cache
    }

    /// Its cache options.
    pub(crate) fn args(&self) -> Vec<OsString> {
        cache_args(&self.l2, self.backend, &self.l3)
    }

    /// `command` with its cache options and `extra`.
    pub(crate) fn command(&self, command: &str, extra: &[&str]) -> Vec<OsString> {
        let mut out = args(command, &self.args());
        out.extend(extra.iter().map(OsString::from));
        out
    }

    /// The manifest store of its L2 tier.
    pub(crate) fn l2_store(&self) -> &'static str {
        if self.backend == "jsonl" {
            "jsonl_l2"
        } else {
            "sqlite_l2"
        }
    }

    /// Every entry of its L2 and L3 tiers, opened with `ring`, by tier then key (`Err` for an
    /// unreadable entry).
    pub(crate) fn entries(&self, ring: &Arc<KeyRing>) -> BTreeMap<(String, String), Result<CacheEntry, String>> {
        let cfg = CacheTierConfig::unbounded();
        let l2: Box<dyn CacheTier> = match self.backend {
            "jsonl" => Box::new(pw_cache::JsonlTier::open(&self.l2, &cfg, Arc::clone(ring)).expect("open L2")),
            _ => Box::new(SqliteL2Tier::open(&self.l2, &cfg, Arc::clone(ring)).expect("open L2")),
        };
        let l3 = SqliteL3Tier::open(&self.l3, &cfg, Arc::clone(ring)).expect("open L3");
        let mut out = BTreeMap::new();
        for (name, tier) in [("l2", &*l2), ("l3", &l3 as &dyn CacheTier)] {
            for key in tier.keys().expect("keys") {
                let entry = tier.peek(&key).map_err(|e| e.to_string()).map(|e| e.expect("listed"));
                out.insert((name.to_owned(), key), entry);
            }
        }
        out
    }
}

/// Copies every file of `from` into `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in std::fs::read_dir(from).expect("read dir") {
        let f = f.expect("entry");
        std::fs::copy(f.path(), to.join(f.file_name())).expect("copy");
    }
}

/// Every file of `dir` with its bytes.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let path = e.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            (path, bytes)
        })
        .collect()
}

/// Everything under `dir`, recursively (`dir` itself not included): each path with its file's
/// bytes, `None` for a directory; empty when `dir` does not exist.
pub(crate) fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            out.extend(tree(&path));
            out.insert(path, None);
        } else {
            let bytes = std::fs::read(&path).expect("read");
            out.insert(path, Some(bytes));
        }
    }
    out
}

/// Runs `f` on a thread of its own that has dropped the capabilities that let root ignore file
/// permissions (`CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH`, `CAP_FOWNER`), from its effective set
/// and from its bounding and inheritable sets (ambient cleared): the processes it starts (the
/// pw-cache binary) cannot have them either. Capabilities are per thread, so the rest of the test
/// binary keeps them. A capability that is not held is fine: permissions already bind.
pub(crate) fn without_file_capabilities<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use caps::{CapSet, Capability};
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _ = caps::clear(None, CapSet::Ambient);
                let _ = caps::clear(None, CapSet::Inheritable);
                for cap in [
                    Capability::CAP_DAC_OVERRIDE,
                    Capability::CAP_DAC_READ_SEARCH,
                    Capability::CAP_FOWNER,
                ] {
                    // The bounding set first: dropping from it needs CAP_SETPCAP, not these.
                    for set in [CapSet::Bounding, CapSet::Effective] {
                        match caps::has_cap(None, set, cap) {
                            Ok(true) => caps::drop(None, set, cap).expect("drop a capability"),
                            Ok(false) => {}
                            Err(e) => {
                                eprintln!("cannot read capability {cap} ({set:?}): {e} (assuming it is not held)")
                            }
                        }
                    }
                }
                // The permissions must bite: an unreadable file is refused.
                let dir = tempfile::tempdir().expect("temp dir");
                let probe = dir.path().join("probe");
                std::fs::write(&probe, b"x").expect("write");
                set_mode(&probe, 0o000);
                let refused = std::fs::read(&probe);
                set_mode(&probe, 0o600);
                assert_eq!(
                    refused
                        .map(drop)
                        .expect_err("an unreadable file was read: file permissions are not enforced")
                        .kind(),
                    std::io::ErrorKind::PermissionDenied
                );
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Sets the permission bits of `path`.
pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The manifest's entries of `store`.
pub(crate) fn store_entries(store: &str) -> Vec<Value> {
    manifest()["stores"][store]["entries"]
        .as_array()
        .expect("entries")
        .clone()
}

/// An entry's `expires_at`.
pub(crate) fn expires_at(entry: &Value) -> OffsetDateTime {
    pw_cache::model::timestamp::parse_isoformat(entry["expires_at"].as_str().expect("expires_at")).expect("timestamp")
}

/// Whether a manifest entry has a credential.
pub(crate) fn has_credentials(entry: &Value) -> bool {
    !entry["username"].is_null() || !entry["password"].is_null()
}

/// Entries of `store` per health status.
pub(crate) fn health_counts(store: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in store_entries(store) {
        *out.entry(e["health_status"].as_str().expect("status").to_owned())
            .or_default() += 1;
    }
    out
}

/// The fixtures' key ring (current and previous).
pub(crate) fn both_keys() -> Arc<KeyRing> {
    fixture_ring()
}

/// A ring of one fixture key: `current` (else the previous one).
pub(crate) fn one_key(current: bool) -> Arc<KeyRing> {
    let (c, p) = fixture_keys();
    let key = pw_cache::Secret::new(if current { c } else { p });
    Arc::new(KeyRing::from_secrets(&key, &[]).expect("fixture key"))
}

/// Warms `cache` from the fixtures' `warm_input.jsonl` with the fixtures' keys swapped (the
/// previous key current): entries whose credentials only the fixtures' previous key opens,
/// beside the fixtures' own. The warm file has bad lines: exit 1.
pub(crate) fn warm_under_previous_key(cache: &TestCache) {
    let mut args = vec![OsString::from("warm"), "--file".into()];
    args.push(proxywhirl_fixtures().join("warm").join("warm_input.jsonl").into());
    args.extend(cache.args());
    pw_cache(&args, Keys::Swapped).expect_code(1);
}
