//! The Redis L3 tier against a server that is full, tampered with or damaged (issue 23, points
//! 4-6), each test on a `redis-server` of its own on 127.0.0.1:
//! - `maxmemory` with `noeviction`: a full server refuses the tier's puts (a typed tier
//!   failure, so the manager degrades L3 and serves from L1/L2), memory stays at the limit,
//!   deletes still work; a server older than Redis 7.0 is refused at open;
//! - a hash whose `key` field names another key is unreadable, never served or written back as
//!   that key, and kept;
//! - entries with a field longer than its limit (`pw_cache::model::limits`) are refused on put
//!   and unreadable on read, without the value being transferred;
//! - indexes replaced by garbage or deleted are rebuilt from the entry hashes.
//!
//! The tests of this file run one at a time ([`serial`]): one measures the process's peak
//! memory.
//!
//! This binary has no other module, for the same reason: no other test may run beside them
//! (some of them also bound the time of single operations).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pw_cache::model::limits;
use pw_cache::tiers::redis_l3::{RedisL3Options, RedisL3Tier};
use pw_cache::{
    CacheEntry, CacheManager, CacheTier, CacheTierConfig, CacheTierType, EvictionPolicy, HealthInvalidation, KeyRing,
    L2BackendType, L3BackendType, OffsetDateTime, Secret, TierError, TierStatus,
};
use pw_cache_tests::l3_entries::entry;
use pw_cache_tests::managers::{self, test_ring};
use pw_cache_tests::redis_server::RedisServer;
use pw_cache_tests::wait_until;

/// One test at a time: the peak memory of the process is measured by one of them.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_tier(server: &RedisServer, namespace: &str, config: &CacheTierConfig, ring: &Arc<KeyRing>) -> RedisL3Tier {
    let options = RedisL3Options::new(Secret::new(server.url())).with_namespace(namespace);
    RedisL3Tier::open(&options, config, Arc::clone(ring)).unwrap()
}

fn hash_name(tier: &RedisL3Tier, key: &str) -> String {
    format!("{}e:{key}", tier.key_prefix())
}

/// Every field and value of a hash, sorted.
fn hash_of(conn: &mut redis::Connection, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(name).query(conn).unwrap();
    fields.sort();
    fields
}

/// The keys of a namespace's entry hashes in Redis (`SCAN`), sorted.
fn entry_hashes(conn: &mut redis::Connection, tier: &RedisL3Tier) -> Vec<String> {
    let pattern = format!("{}e:*", tier.key_prefix());
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

fn used_memory(conn: &mut redis::Connection) -> u64 {
    info_field(conn, "memory", "used_memory")
}

/// Makes the server full from here on: `maxmemory` just above what it uses, `noeviction`.
/// Returns the limit.
fn limit_memory(conn: &mut redis::Connection, headroom: u64) -> u64 {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(conn)
        .unwrap();
    let limit = used_memory(conn) + headroom;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query(conn)
        .unwrap();
    limit
}

fn with_password(e: CacheEntry, password: &str) -> CacheEntry {
    e.with_credentials(Some(Secret::new("user-of-the-proxy")), Some(Secret::new(password)))
}

// --- maxmemory ---------------------------------------------------------------------------

/// With `maxmemory` and `noeviction`, the tier's puts are refused once the server is full: a
/// typed tier failure (three in a row disable the tier), with `used_memory` kept within one
/// entry of the limit, while a plain `SET` is refused too. Reads, size, deletes and clear still
/// work on the full server, and after a clear puts are accepted again.
#[test]
fn a_full_server_refuses_the_tiers_puts_and_still_deletes() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let ring = test_ring();
    let tier = open_tier(&server, "full", &CacheTierConfig::unbounded(), &ring);
    for i in 0..10 {
        tier.put(&with_password(entry(i), "pw")).unwrap();
    }
    let limit = limit_memory(&mut conn, 256 * 1024);

    // Until three puts in a row were refused (right at the limit, a refused put may be
    // followed by an accepted one: the server's own buffers come and go).
    let mut refused = None;
    let mut stored = 10;
    for i in 10..20_000 {
        match tier.put(&with_password(entry(i), &"p".repeat(200))) {
            Ok(()) => stored += 1,
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
        if tier.health().is_disabled() {
            break;
        }
    }
    let err = refused.unwrap_or_else(|| {
        panic!(
            "20,000 puts accepted: used_memory {} against a maxmemory of {limit}",
            used_memory(&mut conn)
        )
    });
    assert!(err.is_tier_failure() && !err.is_corrupt_entry(), "{err}");
    assert!(matches!(err, TierError::Remote { .. }), "{err:?}");
    assert!(err.to_string().contains("maxmemory"), "{err}");
    let used = used_memory(&mut conn);
    assert!(
        used <= limit + 64 * 1024,
        "used_memory {used} is more than 64 KB above maxmemory {limit}"
    );
    eprintln!("stored {stored} entries; refused at used_memory {used} (maxmemory {limit})");

    // Three refusals in a row: the tier reports itself failing.
    assert!(tier.health().is_disabled());
    // What only reads or deletes still works on the full server.
    assert_eq!(tier.get("k003").unwrap().unwrap().proxy_url, entry(3).proxy_url);
    assert_eq!(tier.size().unwrap(), stored);
    assert!(tier.delete("k004").unwrap());
    assert!(!tier.health().is_disabled(), "a success resets the count");
    assert_eq!(tier.size().unwrap(), stored - 1);
    assert!(used_memory(&mut conn) <= limit + 64 * 1024);
    // A clear makes room again.
    assert_eq!(tier.clear().unwrap(), stored - 1);
    tier.put(&entry(1)).unwrap();
    assert_eq!(tier.size().unwrap(), 1);
}

/// A manager on a Redis L3 that fills up: L3's puts are refused, the manager degrades L3 after
/// three of them and keeps storing and serving from L1/L2; the probe's write is refused as long
/// as the server is full; once memory is freed, L3 serves again.
#[test]
fn a_full_server_degrades_l3_and_the_manager_serves_from_l1_and_l2() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let ring = test_ring();
    let dir = tempfile::tempdir().unwrap();
    let config = managers::config(dir.path(), L2BackendType::Jsonl, 10_000)
        .l3_backend(L3BackendType::Redis)
        .redis_url(Some(Secret::new(server.url())))
        .redis_namespace("full-fleet")
        .build()
        .unwrap();
    let manager = CacheManager::builder(config)
        .key_ring(Arc::clone(&ring))
        .probe_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    // Connections made and scripts loaded before the server is full.
    for i in 0..5 {
        manager.put(&entry(50_000 + i)).unwrap();
        manager.delete(&entry(50_000 + i).key);
    }
    let limit = limit_memory(&mut conn, 64 * 1024);

    let mut keys = Vec::new();
    let mut refused_at = None;
    for i in 0..20_000 {
        let e = with_password(entry(i), &"p".repeat(200));
        let stored = manager.put(&e).unwrap();
        assert!(stored.l1 && stored.l2, "{stored:?}");
        keys.push(e.key.clone());
        if !stored.l3 && refused_at.is_none() {
            refused_at = Some(i);
        }
        if manager.tier_status(CacheTierType::L3) == TierStatus::Degraded {
            break;
        }
    }
    let refused_at = refused_at.expect("Redis refused none of the manager's puts");
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Degraded);
    assert!(manager.get_statistics().l3_degraded);
    let used = used_memory(&mut conn);
    eprintln!("L3 refused put {refused_at}, degraded; used_memory {used} (maxmemory {limit})");
    let in_redis: usize = redis::cmd("ZCARD")
        .arg("pwc:{full-fleet}:idx")
        .query(&mut conn)
        .unwrap();
    assert!(in_redis < keys.len(), "{in_redis} of {} in Redis", keys.len());

    // Serving from L1/L2: what was refused by L3 and what is put now.
    for i in 20_000..20_050 {
        let e = with_password(entry(i), "later");
        let stored = manager.put(&e).unwrap();
        assert!(stored.l1 && stored.l2 && !stored.l3, "{stored:?}");
        keys.push(e.key.clone());
    }
    for key in &keys {
        assert!(manager.get(key).is_some(), "{key}");
    }
    assert!(manager.get(&entry(refused_at).key).is_some());
    // Well over the limit now (right at it, a write may pass between two refusals): the
    // probe's write is refused, L3 stays degraded.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used - 128 * 1024)
        .query(&mut conn)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(manager.tier_status(CacheTierType::L3), TierStatus::Degraded);

    // Room again: the probe brings L3 back.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut conn)
        .unwrap();
    wait_until("L3 serving again", || {
        manager.tier_status(CacheTierType::L3) == TierStatus::Serving
    });
}

/// Reads the commands of one RESP client and answers them as a Redis 6.2 would (`PING`,
/// `INFO`; `+OK` to anything else).
fn answer_as_redis_6(stream: std::net::TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let Some(n) = line.trim().strip_prefix('*').and_then(|n| n.parse::<usize>().ok()) else {
            return;
        };
        let mut args = Vec::new();
        for _ in 0..n {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let len: usize = line.trim().trim_start_matches('$').parse().unwrap();
            let mut arg = vec![0; len + 2];
            reader.read_exact(&mut arg).unwrap();
            arg.truncate(len);
            args.push(String::from_utf8_lossy(&arg).to_uppercase());
        }
        let reply = match args.first().map(String::as_str) {
            Some("PING") => "+PONG\r\n".to_owned(),
            Some("INFO") => {
                let text = "# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n";
                format!("${}\r\n{text}\r\n", text.len())
            }
            _ => "+OK\r\n".to_owned(),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The tier needs Redis 7.0 (script flags): an older server is refused at open, typed.
#[test]
fn a_server_older_than_redis_7_is_refused_at_open() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_as_redis_6(stream));
        }
    });
    let options = RedisL3Options::new(Secret::new(format!("redis://127.0.0.1:{port}")));
    let err = RedisL3Tier::open(&options, &CacheTierConfig::unbounded(), test_ring()).unwrap_err();
    assert!(matches!(err, TierError::UnsupportedServer { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("6.2.14") && text.contains("7.0"), "{text}");
}

// --- a hash's own key field ------------------------------------------------------------------

/// `decoy.key = victim`: every read of the decoy is a typed corrupt error naming the field; the
/// decoy is never served as the victim, its credentials are not sampled, expiry cleanup skips
/// it and nothing deletes it; the victim's hash is never changed.
#[test]
fn a_hash_naming_another_key_is_unreadable_and_kept() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let ring = test_ring();
    let tier = open_tier(&server, "decoy", &CacheTierConfig::unbounded(), &ring);
    let victim = with_password(entry(1), "victim-pass");
    let decoy = with_password(entry(2), "decoy-pass");
    tier.put(&victim).unwrap();
    tier.put(&decoy).unwrap();
    let () = redis::cmd("HSET")
        .arg(hash_name(&tier, &decoy.key))
        .arg("key")
        .arg(&victim.key)
        .query(&mut conn)
        .unwrap();
    let victim_before = hash_of(&mut conn, &hash_name(&tier, &victim.key));
    let decoy_before = hash_of(&mut conn, &hash_name(&tier, &decoy.key));

    for err in [
        tier.get(&decoy.key).unwrap_err(),
        tier.peek(&decoy.key).unwrap_err(),
        tier.health_detail(&decoy.key).unwrap_err(),
    ] {
        assert!(matches!(err, TierError::Corrupt { .. }), "{err:?}");
        assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
        let text = err.to_string();
        assert!(text.contains("field key") && text.contains(&victim.key), "{text}");
        assert!(!text.contains("decoy-pass") && !text.contains("victim-pass"), "{text}");
    }
    assert_eq!(tier.health().consecutive_failures(), 0);
    // The victim reads as itself.
    let got = tier.get(&victim.key).unwrap().unwrap();
    assert_eq!(got.password.unwrap().expose_secret(), "victim-pass");
    // The decoy's tokens are not sampled.
    let decoy_token: Vec<u8> = redis::cmd("HGET")
        .arg(hash_name(&tier, &decoy.key))
        .arg("password_encrypted")
        .query(&mut conn)
        .unwrap();
    let sample = tier.credential_sample(10).unwrap();
    assert_eq!(sample.len(), 2, "the victim's two tokens");
    assert!(!sample.contains(&decoy_token));

    assert_eq!(victim_before, hash_of(&mut conn, &hash_name(&tier, &victim.key)));
    assert_eq!(decoy_before, hash_of(&mut conn, &hash_name(&tier, &decoy.key)));
    // Expiry cleanup long after both expired: the victim goes, the decoy stays, skipped.
    let later = OffsetDateTime::now_utc() + time::Duration::days(365 * 200);
    assert_eq!(tier.cleanup_expired(later).unwrap(), 1);
    assert_eq!(tier.unreadable_skipped(), 1);
    assert_eq!(decoy_before, hash_of(&mut conn, &hash_name(&tier, &decoy.key)));
    assert_eq!(tier.keys().unwrap(), vec![decoy.key.clone()]);
}

/// A bounded tier never evicts a decoy as a readable entry: it is skipped like any unreadable
/// one (and the victim it names is evicted under its own key only).
#[test]
fn eviction_skips_a_hash_naming_another_key() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut config = CacheTierConfig::bounded(3);
    config.eviction_policy = EvictionPolicy::Fifo;
    let tier = open_tier(&server, "decoy-evict", &config, &test_ring());
    for i in 0..3 {
        tier.put(&entry(i)).unwrap();
    }
    // k000, first in line for eviction, names k001.
    let () = redis::cmd("HSET")
        .arg(hash_name(&tier, "k000"))
        .arg("key")
        .arg("k001")
        .query(&mut conn)
        .unwrap();
    let decoy_before = hash_of(&mut conn, &hash_name(&tier, "k000"));
    tier.put(&entry(3)).unwrap();
    assert_eq!(tier.unreadable_skipped(), 1);
    assert_eq!(decoy_before, hash_of(&mut conn, &hash_name(&tier, "k000")));
    let mut keys = tier.keys().unwrap();
    keys.sort();
    assert!(
        keys.contains(&"k000".to_owned()) && keys.contains(&"k003".to_owned()),
        "{keys:?}"
    );
}

/// Through a manager (another host, reading L3): a get of the decoy is a miss, never the
/// victim's entry; a health mark of the decoy marks nothing; the victim's hash in Redis is
/// unchanged and the decoy's is still there.
#[test]
fn a_manager_never_serves_or_writes_a_decoy_as_its_victim() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let ring = test_ring();
    let host = |dir: &Path| {
        let config = managers::config(dir, L2BackendType::Jsonl, 100)
            .l3_backend(L3BackendType::Redis)
            .redis_url(Some(Secret::new(server.url())))
            .redis_namespace("decoy-fleet")
            .build()
            .unwrap();
        CacheManager::builder(config)
            .key_ring(Arc::clone(&ring))
            .probe_interval(Duration::from_millis(50))
            .open()
            .unwrap()
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(dir_a.path());
    let victim = with_password(
        CacheEntry::new("http://10.7.0.1:8080", "fleet", 3600).unwrap(),
        "victim-pass",
    );
    let decoy = with_password(
        CacheEntry::new("http://10.7.0.2:8080", "fleet", 3600).unwrap(),
        "decoy-pass",
    );
    a.put(&victim).unwrap();
    a.put(&decoy).unwrap();
    let prefix = "pwc:{decoy-fleet}:";
    let (victim_hash, decoy_hash) = (format!("{prefix}e:{}", victim.key), format!("{prefix}e:{}", decoy.key));
    let () = redis::cmd("HSET")
        .arg(&decoy_hash)
        .arg("key")
        .arg(&victim.key)
        .query(&mut conn)
        .unwrap();
    let victim_before = hash_of(&mut conn, &victim_hash);
    let decoy_before = hash_of(&mut conn, &decoy_hash);

    let b = host(dir_b.path());
    assert!(b.get(&decoy.key).is_none(), "the decoy is served");
    for _ in 0..5 {
        let outcome = b.invalidate_by_health(&decoy.key);
        assert_eq!(outcome, HealthInvalidation::NotFound);
    }
    assert!(b.get_statistics().l3_stats.unreadable >= 1, "counted, not served");
    b.flush().unwrap();
    assert_eq!(victim_before, hash_of(&mut conn, &victim_hash), "the victim changed");
    assert_eq!(decoy_before, hash_of(&mut conn, &decoy_hash), "the decoy changed");
    // The victim itself is served as itself, unmarked.
    let got = b.get(&victim.key).expect("the victim");
    assert_eq!(got.password.unwrap().expose_secret(), "victim-pass");
    assert_eq!(got.failure_count, 0);
    drop(b);
    // B's L2 holds no copy of the decoy.
    let b_l2 = managers::open_tier(dir_b.path(), CacheTierType::L2, L2BackendType::Jsonl, &ring);
    assert!(b_l2.get(&decoy.key).unwrap().is_none());
}

// --- size limits ---------------------------------------------------------------------------

/// An entry with a field longer than its limit is refused on put, typed, naming the field and
/// never a credential; nothing of it is written. At the limit, it is stored and read back.
#[test]
fn oversized_entries_are_refused_on_put_and_nothing_is_written() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let tier = open_tier(&server, "limits", &CacheTierConfig::unbounded(), &test_ring());
    let secret = "s".repeat(limits::MAX_CREDENTIAL_BYTES + 1);
    let cases: Vec<(&str, CacheEntry)> = vec![
        ("proxy_url", {
            let mut e = entry(1);
            e.proxy_url = format!("http://{}.example:80", "h".repeat(limits::MAX_PROXY_URL_BYTES));
            e
        }),
        ("source", {
            let mut e = entry(2);
            e.source = "s".repeat(limits::MAX_SOURCE_BYTES + 1);
            e
        }),
        ("last_health_error", {
            let mut e = entry(3);
            e.last_health_error = Some("e".repeat(limits::MAX_LAST_HEALTH_ERROR_BYTES + 1));
            e
        }),
        ("password", with_password(entry(4), &secret)),
        (
            "username",
            entry(5).with_credentials(Some(Secret::new(secret.clone())), None),
        ),
        ("key", entry(6).with_key("k".repeat(limits::MAX_KEY_BYTES + 1))),
    ];
    for (field, e) in &cases {
        let err = tier.put(e).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{field}: {err:?}");
        assert!(!err.is_tier_failure() && !err.is_corrupt_entry(), "{err}");
        let text = err.to_string();
        assert!(text.contains(field), "{text}");
        assert!(!text.contains(&secret) && text.len() < 400, "{text}");
        let exists: bool = redis::cmd("EXISTS")
            .arg(hash_name(&tier, &e.key))
            .query(&mut conn)
            .unwrap();
        assert!(!exists, "{field}: written");
    }
    assert_eq!(tier.size().unwrap(), 0);
    assert_eq!(tier.health().consecutive_failures(), 0);

    // Every field at its limit: stored and read back.
    let mut e =
        with_password(entry(7), &"p".repeat(limits::MAX_CREDENTIAL_BYTES)).with_key("k".repeat(limits::MAX_KEY_BYTES));
    e.username = Some(Secret::new("u".repeat(limits::MAX_CREDENTIAL_BYTES)));
    e.source = "s".repeat(limits::MAX_SOURCE_BYTES);
    e.last_health_error = Some("e".repeat(limits::MAX_LAST_HEALTH_ERROR_BYTES));
    e.proxy_url = format!("http://{}", "h".repeat(limits::MAX_PROXY_URL_BYTES - 7));
    tier.put(&e).unwrap();
    assert_eq!(tier.get(&e.key).unwrap().unwrap(), e);
}

/// This process's peak resident memory (`VmHWM`), in KB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A 64 MB field written by another client (built by the server itself, so that this process
/// never holds it): a get is a typed corrupt error naming the field and its size, quickly
/// (far under the 250 ms command timeout) and without the value reaching this process (its
/// peak memory does not grow by tens of MB); the entry stays in Redis, untouched by expiry
/// cleanup and eviction, which skip it the same way.
#[test]
fn a_64_mb_field_is_unreadable_without_being_transferred() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut config = CacheTierConfig::bounded(3);
    config.eviction_policy = EvictionPolicy::Fifo;
    let tier = open_tier(&server, "huge", &config, &test_ring());
    for i in 0..3 {
        tier.put(&entry(i)).unwrap();
    }
    const SIZE: i64 = 64 * 1024 * 1024;
    let name = hash_name(&tier, "k000");
    let () = redis::cmd("EVAL")
        .arg("redis.call('HSET', KEYS[1], 'proxy_url', string.rep('x', tonumber(ARGV[1])))")
        .arg(1)
        .arg(&name)
        .arg(SIZE)
        .query(&mut conn)
        .unwrap();
    let peak_before = peak_rss_kb();

    for read in 0..2 {
        let start = Instant::now();
        let err = if read == 0 {
            tier.get("k000").unwrap_err()
        } else {
            tier.peek("k000").unwrap_err()
        };
        let took = start.elapsed();
        assert!(matches!(err, TierError::Corrupt { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("proxy_url") && text.contains(&SIZE.to_string()), "{text}");
        assert!(took < Duration::from_millis(100), "read {read} took {took:?}");
    }
    // Eviction (k000 is first in FIFO order) and expiry cleanup skip it without reading it.
    let start = Instant::now();
    tier.put(&entry(3)).unwrap();
    assert!(start.elapsed() < Duration::from_millis(200), "{:?}", start.elapsed());
    assert_eq!(tier.unreadable_skipped(), 1);
    let later = OffsetDateTime::now_utc() + time::Duration::days(365 * 200);
    let start = Instant::now();
    tier.cleanup_expired(later).unwrap();
    assert!(start.elapsed() < Duration::from_millis(200), "{:?}", start.elapsed());
    assert_eq!(tier.unreadable_skipped(), 2);
    assert_eq!(tier.credential_sample(10).unwrap().len(), 0);
    // The health detail reads its own fields only.
    let start = Instant::now();
    assert!(tier.health_detail("k000").unwrap().is_some());
    assert!(start.elapsed() < Duration::from_millis(100), "{:?}", start.elapsed());

    let grown_mb = (peak_rss_kb().saturating_sub(peak_before)) / 1024;
    assert!(grown_mb < 16, "peak memory grew by {grown_mb} MB");
    let len: i64 = redis::cmd("HSTRLEN")
        .arg(&name)
        .arg("proxy_url")
        .query(&mut conn)
        .unwrap();
    assert_eq!(len, SIZE, "the entry is still in Redis, as it was");
    assert_eq!(tier.health().consecutive_failures(), 0);
}

// --- index damage --------------------------------------------------------------------------

const ENTRIES: i64 = 50;

fn filled(server: &RedisServer, namespace: &str, config: &CacheTierConfig) -> RedisL3Tier {
    let tier = open_tier(server, namespace, config, &test_ring());
    for i in 0..ENTRIES {
        tier.put(&entry(i)).unwrap();
    }
    tier
}

fn all_keys() -> Vec<String> {
    (0..ENTRIES).map(|i| entry(i).key).collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

/// After `damage`, size and keys count every entry hash again, and clear removes them all.
fn check_rebuilt(server: &RedisServer, namespace: &str, damage: &[&[&str]]) {
    let tier = filled(server, namespace, &CacheTierConfig::unbounded());
    let mut conn = server.connection();
    for command in damage {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(arg.replace("NS", tier.key_prefix()));
        }
        let _: redis::Value = cmd.query(&mut conn).unwrap();
    }
    assert_eq!(tier.size().unwrap(), ENTRIES as usize, "{damage:?}");
    assert_eq!(sorted(tier.keys().unwrap()), all_keys(), "{damage:?}");
    for index in ["idx", "exp", "ins"] {
        let n: i64 = redis::cmd("ZCARD")
            .arg(format!("{}{index}", tier.key_prefix()))
            .query(&mut conn)
            .unwrap();
        assert_eq!(n, ENTRIES, "{index} after {damage:?}");
    }
    assert_eq!(tier.clear().unwrap(), ENTRIES as usize, "{damage:?}");
    assert_eq!(entry_hashes(&mut conn, &tier), Vec::<String>::new(), "{damage:?}");
    assert_eq!(tier.size().unwrap(), 0);
    assert_eq!(tier.health().consecutive_failures(), 0);
}

/// An index key replaced by a value of another type (`SET pwc:{ns}:idx garbage`): found by
/// the next operation, rebuilt from the entry hashes.
#[test]
fn an_index_replaced_by_garbage_is_rebuilt() {
    let _serial = serial();
    let server = RedisServer::start();
    check_rebuilt(&server, "garbage-idx", &[&["SET", "NSidx", "garbage"]]);
    check_rebuilt(&server, "garbage-exp", &[&["SET", "NSexp", "garbage"]]);
    check_rebuilt(
        &server,
        "garbage-ins",
        &[&["DEL", "NSins"], &["HSET", "NSins", "f", "v"]],
    );
    check_rebuilt(
        &server,
        "garbage-all",
        &[&["SET", "NSidx", "g"], &["SET", "NSexp", "g"], &["SET", "NSins", "g"]],
    );
}

/// A deleted index: one of the three (the others then disagree with it), or all three (`seq`
/// says entries were indexed): rebuilt the same way.
#[test]
fn a_deleted_index_is_rebuilt() {
    let _serial = serial();
    let server = RedisServer::start();
    check_rebuilt(&server, "deleted-idx", &[&["DEL", "NSidx"]]);
    check_rebuilt(&server, "deleted-exp", &[&["DEL", "NSexp"]]);
    check_rebuilt(&server, "deleted-all", &[&["DEL", "NSidx", "NSexp", "NSins"]]);
}

/// A put into a damaged index is not written past it: the index is rebuilt first, so the
/// bound still holds and the new entry is indexed.
#[test]
fn a_put_rebuilds_a_damaged_index_and_keeps_the_bound() {
    let _serial = serial();
    let server = RedisServer::start();
    let tier = filled(&server, "bounded", &CacheTierConfig::bounded(ENTRIES as u64));
    let mut conn = server.connection();
    let () = redis::cmd("SET")
        .arg(format!("{}idx", tier.key_prefix()))
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    tier.put(&entry(100)).unwrap();
    assert_eq!(tier.size().unwrap(), ENTRIES as usize);
    assert_eq!(entry_hashes(&mut conn, &tier).len(), ENTRIES as usize);
    assert!(tier.contains("k100").unwrap());
}

/// Damage done while no tier was open is found at open (the indexes are whole right after it),
/// and [`RedisL3Tier::rebuild_index`] keeps the insertion order of the entries (by their
/// `created_at`) and drops index members without an entry.
#[test]
fn open_finds_a_lost_index_and_the_rebuild_keeps_the_insertion_order() {
    let _serial = serial();
    let server = RedisServer::start();
    let mut conn = server.connection();
    let tier = filled(&server, "at-open", &CacheTierConfig::unbounded());
    let prefix = tier.key_prefix().to_owned();
    drop(tier);
    let () = redis::cmd("DEL")
        .arg(format!("{prefix}idx"))
        .arg(format!("{prefix}exp"))
        .arg(format!("{prefix}ins"))
        .query(&mut conn)
        .unwrap();
    let tier = open_tier(&server, "at-open", &CacheTierConfig::unbounded(), &test_ring());
    let ins: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}ins"))
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(ins, all_keys(), "rebuilt at open, in the order of insertion");

    // An index member without its entry is dropped by a rebuild.
    let () = redis::cmd("DEL")
        .arg(hash_name(&tier, "k007"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(tier.rebuild_index().unwrap(), ENTRIES as usize - 1);
    assert_eq!(tier.size().unwrap(), ENTRIES as usize - 1);
    let mut expected = all_keys();
    expected.retain(|k| k != "k007");
    assert_eq!(sorted(tier.keys().unwrap()), expected);
}
