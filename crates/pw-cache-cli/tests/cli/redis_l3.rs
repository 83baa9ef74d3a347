//! The cache commands on a Redis L3 (`--l3-backend redis`, the URL in PW_CACHE_REDIS_URL):
//! `warm` fills it, `stats` counts it from another host's L2 directory, `export` writes it
//! masked, `rotate-key` re-encrypts it under the current key, `cleanup` runs on it; and the
//! usage errors say what is missing. A redis-server of the test's own on 127.0.0.1.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::{Keys, args, pw_cache_with_env};
use pw_cache_tests::redis_server::RedisServer;

const ROWS: usize = 5;

/// The cache options of a host whose L2 is `l2` (JSONL) and whose L3 is the Redis namespace.
fn redis_args(l2: &Path) -> Vec<OsString> {
    [
        "--l2-dir",
        l2.to_str().unwrap(),
        "--l2-backend",
        "jsonl",
        "--l3-backend",
        "redis",
        "--redis-namespace",
        "pw-cache-cli-test",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

fn command(name: &str, l2: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut out = args(name, &redis_args(l2));
    out.extend(extra.iter().map(OsString::from));
    out
}

#[test]
fn the_cache_commands_work_on_a_redis_l3() {
    let server = RedisServer::start();
    let url = server.url();
    let env = [("PW_CACHE_REDIS_URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let (host_a, host_b) = (dir.path().join("a"), dir.path().join("b"));

    let warm = dir.path().join("proxies.jsonl");
    let rows: String = (0..ROWS)
        .map(|i| {
            format!(
                "{{\"proxy_url\": \"http://10.77.0.{i}:8080\", \"username\": \"fleet-user-{i}\", \
                 \"password\": \"fleet-pass-{i}\", \"source\": \"fleet\"}}\n"
            )
        })
        .collect();
    std::fs::write(&warm, rows).unwrap();
    let mut warm_args = command("warm", &host_a, &[]);
    warm_args.extend([OsString::from("--file"), warm.clone().into()]);
    pw_cache_with_env(warm_args, Keys::Both, &env).expect_code(0);

    // Another host (its own, empty L2 directory) sees the entries in the shared L3.
    std::fs::create_dir_all(&host_b).unwrap();
    let stats = pw_cache_with_env(command("stats", &host_b, &["--json"]), Keys::Both, &env)
        .expect_code(0)
        .json();
    assert_eq!(stats["l3_backend"], "redis");
    assert_eq!(stats["tiers"]["l3"]["entries"], ROWS as u64, "{stats}");
    assert_eq!(stats["tiers"]["l3"]["corrupt"], 0, "{stats}");
    assert_eq!(
        stats["tiers"]["l3"]["bytes_on_disk"],
        serde_json::Value::Null,
        "not on this host's disk"
    );

    // Export from host B: every entry, credentials masked.
    let out = dir.path().join("export.jsonl");
    let mut export_args = command("export", &host_b, &[]);
    export_args.extend([OsString::from("--out"), out.clone().into()]);
    pw_cache_with_env(export_args, Keys::Both, &env).expect_code(0);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert_eq!(exported.lines().count(), ROWS, "{exported}");
    assert!(!exported.contains("fleet-pass-"), "an export holds a password");

    // Rotate to the current key, then the current key alone opens every credential.
    pw_cache_with_env(command("rotate-key", &host_b, &[]), Keys::Both, &env).expect_code(0);
    let stats = pw_cache_with_env(command("stats", &host_b, &["--json"]), Keys::CurrentOnly, &env)
        .expect_code(0)
        .json();
    assert_eq!(stats["tiers"]["l3"]["corrupt"], 0, "{stats}");
    assert_eq!(stats["tiers"]["l3"]["entries"], ROWS as u64, "{stats}");

    // Cleanup runs on Redis (nothing is expired: TTLs are the default hour).
    let run = pw_cache_with_env(command("cleanup", &host_b, &[]), Keys::Both, &env).expect_code(0);
    assert_eq!(run.count("l3"), 0, "{}", run.stdout);
}

#[test]
fn usage_errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite L3 (the default) without --l3-db.
    let run = pw_cache_with_env(
        args(
            "stats",
            &["--l2-dir", dir.path().to_str().unwrap(), "--l2-backend", "jsonl"].map(OsString::from),
        ),
        Keys::Both,
        &[],
    )
    .expect_code(2);
    assert!(run.one_line_error().contains("--l3-db"), "{}", run.stderr);

    // Redis L3 without a URL anywhere.
    let warm = dir.path().join("x.jsonl");
    std::fs::write(&warm, "{\"proxy_url\": \"http://10.0.0.1:80\"}\n").unwrap();
    let run = pw_cache_with_env(
        command("warm", &dir.path().join("l2"), &["--file", warm.to_str().unwrap()]),
        Keys::Both,
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("PW_CACHE_REDIS_URL"), "{}", run.stderr);
}
