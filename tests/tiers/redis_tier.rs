//! What only the Redis L3 tier does, against a `redis-server` of each test's own on 127.0.0.1:
//! credentials only as tokens, Redis's own expiry, the history cap, change events between tier
//! instances (and their resynchronisation after a restart), bounded failures with the server
//! gone, durability of what it acknowledged, and a URL password that never shows. The
//! behaviour it shares with the SQLite L3 is in `tests/tiers/l3_behaviour.rs`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pw_cache::tiers::health_history::{HealthCheck, HealthHistory};
use pw_cache::tiers::redis_l3::{ChangeKind, RedisL3Options, RedisL3Tier, RemoteEvent};
use pw_cache::{CacheEntry, CacheTier, CacheTierConfig, HealthStatus, KeyRing, OffsetDateTime, Secret, TierError};
use pw_cache_tests::managers::test_ring;
use pw_cache_tests::redis_server::RedisServer;
use pw_cache_tests::wait_until;
use time::macros::datetime;

/// What "fails fast" means here: well above the 250 ms timeouts, far below a TCP stall.
const FAST: Duration = Duration::from_secs(2);

use pw_cache_tests::l3_entries::entry;

fn options(url: String, namespace: &str) -> RedisL3Options {
    RedisL3Options::new(Secret::new(url)).with_namespace(namespace)
}

fn open(
    server: &RedisServer,
    namespace: &str,
    config: &CacheTierConfig,
    ring: &std::sync::Arc<KeyRing>,
) -> RedisL3Tier {
    RedisL3Tier::open(&options(server.url(), namespace), config, std::sync::Arc::clone(ring)).unwrap()
}

fn check(key: &str, s: i64) -> HealthCheck {
    HealthCheck {
        proxy_key: key.to_owned(),
        check_time: datetime!(2026-11-20 12:00 UTC) + time::Duration::seconds(s),
        status: HealthStatus::Healthy,
        response_time_ms: Some(40.0),
        error_message: None,
        check_url: "https://example.invalid/ip".to_owned(),
    }
}

/// Every key of the server's database 0.
fn all_keys(conn: &mut redis::Connection) -> Vec<Vec<u8>> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn credentials_are_never_in_redis_in_plaintext() {
    let server = RedisServer::start();
    let ring = test_ring();
    let tier = open(&server, "secrets", &CacheTierConfig::bounded(1000), &ring);
    let (user, pass) = ("user-PLAINTEXT-7f3a", "pass-PLAINTEXT-9c1e");
    for i in 0..20 {
        let e = entry(i).with_credentials(Some(Secret::new(user)), Some(Secret::new(pass)));
        tier.put(&e).unwrap();
        tier.record_health_check(&check(&e.key, i)).unwrap();
        tier.get(&e.key).unwrap().unwrap();
    }
    tier.flush().unwrap();
    let back = tier.get("k007").unwrap().unwrap();
    assert_eq!(
        back.password.unwrap().expose_secret(),
        pass,
        "read back through the ring"
    );

    let mut conn = server.connection();
    let keys = all_keys(&mut conn);
    assert!(keys.len() > 20, "entries, histories, indexes: {}", keys.len());
    let mut values_seen = 0;
    for key in &keys {
        assert!(key.starts_with(b"pwc:{secrets}:"), "{}", String::from_utf8_lossy(key));
        let dump: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut conn).unwrap();
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(key).query(&mut conn).unwrap(),
            "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query(&mut conn).unwrap(),
            "string" => vec![redis::cmd("GET").arg(key).query(&mut conn).unwrap()],
            other => panic!("unexpected type {other}"),
        };
        for value in values.iter().chain([&dump]) {
            values_seen += 1;
            for secret in [user, pass] {
                assert!(
                    !contains(value, secret.as_bytes()),
                    "{secret} in {}",
                    String::from_utf8_lossy(key)
                );
            }
        }
        if kind == "hash" {
            let token: Vec<u8> = redis::cmd("HGET")
                .arg(key)
                .arg("password_encrypted")
                .query(&mut conn)
                .unwrap();
            assert!(token.starts_with(b"gAAAAA"), "a Fernet token's text");
        }
    }
    assert!(values_seen > 500);
    // Nor in what the server wrote to disk (its append-only file).
    let mut files = vec![server.dir().to_path_buf()];
    let mut scanned = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            scanned += bytes.len();
            for secret in [user, pass] {
                assert!(!contains(&bytes, secret.as_bytes()), "{secret} in {}", path.display());
            }
        }
    }
    assert!(scanned > 10_000, "the append-only file was read ({scanned} bytes)");
}

#[test]
fn entries_vanish_by_redis_expiry_without_any_cleanup() {
    let server = RedisServer::start();
    let tier = open(&server, "expiry", &CacheTierConfig::bounded(100), &test_ring());
    let now = pw_cache::model::timestamp::now_utc();
    let mut short = CacheEntry::new_at("http://10.9.9.9:1", "fetched", 1, now).unwrap();
    short.expires_at = now + time::Duration::milliseconds(2000);
    tier.put(&short).unwrap();
    tier.record_health_check(&check(&short.key, 0)).unwrap();
    tier.put(&entry(1)).unwrap();
    assert!(tier.get(&short.key).unwrap().is_some());
    assert_eq!(tier.size().unwrap(), 2);
    let started = Instant::now();
    wait_until("Redis to expire the entry", || tier.get(&short.key).unwrap().is_none());
    let gone_after = started.elapsed();
    assert!(gone_after < Duration::from_secs(6), "{gone_after:?}");
    assert!(!tier.contains(&short.key).unwrap());
    assert_eq!(tier.size().unwrap(), 1, "size does not count what Redis expired");
    assert_eq!(tier.keys().unwrap(), ["k001"]);
    let mut conn = server.connection();
    let history: bool = redis::cmd("EXISTS")
        .arg(format!("{}h:{}", tier.key_prefix(), short.key))
        .query(&mut conn)
        .unwrap();
    assert!(!history, "the history expired with its entry");
    let indexed: u64 = redis::cmd("ZCARD")
        .arg(format!("{}idx", tier.key_prefix()))
        .query(&mut conn)
        .unwrap();
    assert_eq!(indexed, 1, "the index no longer holds it");
    // An entry already expired is not stored (and replaces what was there).
    let mut stale = entry(1);
    stale.expires_at = now - time::Duration::seconds(1);
    tier.put(&stale).unwrap();
    assert_eq!(tier.get("k001").unwrap(), None);
    assert_eq!(tier.size().unwrap(), 0);
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn history_keeps_the_newest_checks_up_to_the_cap() {
    let server = RedisServer::start();
    let tier = RedisL3Tier::open(
        &options(server.url(), "cap").with_history_cap(5),
        &CacheTierConfig::unbounded(),
        test_ring(),
    )
    .unwrap();
    tier.put(&entry(0)).unwrap();
    let ids: Vec<i64> = (0..8)
        .map(|s| tier.record_health_check(&check("k000", s)).unwrap())
        .collect();
    let kept: Vec<i64> = tier.health_history("k000", 100).unwrap().iter().map(|r| r.id).collect();
    let mut want = ids[3..].to_vec();
    want.reverse();
    assert_eq!(kept, want);
    let len: u64 = redis::cmd("LLEN")
        .arg(format!("{}h:k000", tier.key_prefix()))
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(len, 5);
}

/// Waits for the next event (at most 10 s).
fn next_event(rx: &mpsc::Receiver<(Instant, RemoteEvent)>) -> (Instant, RemoteEvent) {
    rx.recv_timeout(Duration::from_secs(10)).expect("an event within 10 s")
}

fn listen(
    tier: &RedisL3Tier,
) -> (
    pw_cache::tiers::redis_l3::Subscription,
    mpsc::Receiver<(Instant, RemoteEvent)>,
) {
    let (tx, rx) = mpsc::channel();
    let sub = tier
        .subscribe(move |event| {
            let _ = tx.send((Instant::now(), event));
        })
        .unwrap();
    (sub, rx)
}

fn changed(key: &str, kind: ChangeKind) -> RemoteEvent {
    RemoteEvent::Changed {
        key: key.to_owned(),
        kind,
    }
}

#[test]
fn events_reach_the_other_instances_and_not_the_publisher() {
    let server = RedisServer::start();
    let ring = test_ring();
    let config = CacheTierConfig::unbounded();
    let a = open(&server, "events", &config, &ring);
    let b = open(&server, "events", &config, &ring);
    let elsewhere = open(&server, "other", &config, &ring);
    assert_ne!(a.origin(), b.origin());
    let (sub_a, rx_a) = listen(&a);
    let (sub_b, rx_b) = listen(&b);
    let (sub_other, rx_other) = listen(&elsewhere);

    let mut delays = Vec::new();
    let mut expect = |rx: &mpsc::Receiver<(Instant, RemoteEvent)>, sent: Instant, want: RemoteEvent| {
        let (at, got) = next_event(rx);
        assert_eq!(got, want);
        delays.push(at.duration_since(sent));
    };
    let sent = Instant::now();
    a.put(&entry(1)).unwrap();
    expect(&rx_b, sent, changed("k001", ChangeKind::Put));
    let sent = Instant::now();
    a.record_health_check(&check("k001", 0)).unwrap();
    expect(&rx_b, sent, changed("k001", ChangeKind::Health));
    let sent = Instant::now();
    a.delete("k001").unwrap();
    expect(&rx_b, sent, changed("k001", ChangeKind::Delete));
    let sent = Instant::now();
    b.put(&entry(2).with_key("a key: with spaces")).unwrap();
    expect(&rx_a, sent, changed("a key: with spaces", ChangeKind::Put));
    let sent = Instant::now();
    a.clear().unwrap();
    expect(&rx_b, sent, RemoteEvent::Cleared);
    for i in 0..50 {
        let sent = Instant::now();
        a.put(&entry(i)).unwrap();
        expect(&rx_b, sent, changed(&format!("k{i:03}"), ChangeKind::Put));
    }
    delays.sort();
    eprintln!(
        "event delay over {} events on loopback: median {:?}, max {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(delays[delays.len() - 1] < FAST);

    // Neither the publisher nor another namespace hears them.
    std::thread::sleep(Duration::from_millis(200));
    assert!(rx_a.try_recv().is_err(), "a heard its own events");
    assert!(rx_other.try_recv().is_err(), "another namespace heard them");
    assert!(rx_b.try_recv().is_err(), "b heard more than was published");
    // Dropping a subscription stops its thread promptly, and delivery with it.
    let started = Instant::now();
    drop(sub_b);
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    a.put(&entry(99)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx_b.try_recv().is_err());
    drop((sub_a, sub_other));
}

#[test]
fn the_subscriber_resyncs_after_a_server_restart() {
    let mut server = RedisServer::start();
    let ring = test_ring();
    let config = CacheTierConfig::unbounded();
    let a = open(&server, "resync", &config, &ring);
    let b = open(&server, "resync", &config, &ring);
    let (_sub, rx) = listen(&b);
    a.put(&entry(1)).unwrap();
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Put));
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    server.restart();
    let started = Instant::now();
    assert_eq!(next_event(&rx).1, RemoteEvent::Resync);
    eprintln!("resubscribed {:?} after the restart", started.elapsed());
    // Events flow again; `a`'s pooled connections died with the server and are replaced.
    a.put(&entry(2)).unwrap();
    assert_eq!(next_event(&rx).1, changed("k002", ChangeKind::Put));
    // A subscription silent for longer than its keepalive is still there (its PING is no event).
    std::thread::sleep(Duration::from_millis(2500));
    a.put(&entry(3)).unwrap();
    assert_eq!(next_event(&rx).1, changed("k003", ChangeKind::Put));
    assert_eq!(
        a.health().consecutive_failures(),
        0,
        "a dead pooled connection is no failure"
    );
    assert_eq!(
        a.get("k001").unwrap().unwrap(),
        entry(1),
        "acknowledged before the kill"
    );
}

#[test]
fn open_against_a_stopped_server_fails_fast_and_typed() {
    let mut server = RedisServer::start();
    server.kill();
    let started = Instant::now();
    let err = RedisL3Tier::open(
        &options(server.url(), "stopped"),
        &CacheTierConfig::unbounded(),
        test_ring(),
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < FAST, "{elapsed:?}");
    assert!(
        matches!(err, TierError::Remote { .. }) && err.is_tier_failure(),
        "{err}"
    );
    eprintln!("open against a stopped server failed after {elapsed:?}: {err}");
    // Nor can it subscribe: an open tier whose server went away fails that fast too.
    server.restart();
    let tier = open(&server, "stopped", &CacheTierConfig::unbounded(), &test_ring());
    server.kill();
    let started = Instant::now();
    let err = tier.subscribe(|_| {}).unwrap_err();
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    assert!(matches!(err, TierError::Remote { .. }), "{err}");
}

/// `rediss://` to a server that speaks plain Redis on that port fails fast with a typed error
/// (this crate builds with `redis-tls`; the case without the feature is a unit test of
/// `pw_cache_tiers::redis_l3`).
#[test]
fn rediss_to_a_plain_port_is_a_typed_error() {
    let server = RedisServer::start();
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let err = RedisL3Tier::open(&options(url, "tls"), &CacheTierConfig::unbounded(), test_ring()).unwrap_err();
    assert!(matches!(err, TierError::Remote { .. }), "{err}");
}

#[test]
fn a_killed_server_fails_fast_degrades_and_recovers_with_nothing_acknowledged_lost() {
    let mut server = RedisServer::start();
    let tier = open(&server, "kill", &CacheTierConfig::bounded(1000), &test_ring());
    for i in 0..50 {
        tier.put(&entry(i)).unwrap();
        tier.record_health_check(&check(&format!("k{i:03}"), i)).unwrap();
    }
    server.kill();
    let mut slowest = Duration::ZERO;
    for i in 0..3 {
        let started = Instant::now();
        let err = if i % 2 == 0 {
            tier.get("k000").unwrap_err()
        } else {
            tier.put(&entry(100 + i)).unwrap_err()
        };
        slowest = slowest.max(started.elapsed());
        assert!(
            matches!(err, TierError::Remote { .. }) && err.is_tier_failure(),
            "{err}"
        );
    }
    assert!(slowest < FAST, "{slowest:?}");
    eprintln!("with the server killed, the slowest failing get/put took {slowest:?}");
    assert!(tier.health().is_disabled(), "three failures in a row");
    let started = Instant::now();
    assert!(tier.probe().is_err());
    assert!(started.elapsed() < FAST);

    server.restart();
    tier.probe().unwrap();
    assert!(!tier.health().is_disabled(), "a successful probe resets");
    assert_eq!(tier.size().unwrap(), 50);
    for i in 0..50 {
        let key = format!("k{i:03}");
        assert_eq!(tier.get(&key).unwrap().unwrap(), entry(i), "{key}");
        assert_eq!(tier.health_history(&key, 10).unwrap().len(), 1, "{key}");
    }
    tier.put(&entry(60)).unwrap();
}

#[test]
fn no_debug_output_or_error_shows_the_url_password() {
    const PW: &str = "sekrit-pw";
    let mut server = RedisServer::start_with_password(PW);
    let url = server.url();
    assert!(url.contains(PW));
    let opts = options(url.clone(), "pw");
    let tier = RedisL3Tier::open(&opts, &CacheTierConfig::bounded(10), test_ring()).unwrap();
    tier.put(&entry(1)).unwrap();
    assert!(tier.get("k001").unwrap().is_some());
    let mut texts = vec![format!("{opts:?}"), format!("{tier:?}")];
    let port = server.port();
    // Wrong password, no password, a URL that does not parse.
    for bad in [
        format!("redis://:wrong-{PW}@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
        format!("redis://:{PW}@127.0.0.1:notaport"),
        format!("redis://user%3A:{PW}@127.0.0.1:{port}/x"),
    ] {
        let err = RedisL3Tier::open(&options(bad, "pw"), &CacheTierConfig::unbounded(), test_ring()).unwrap_err();
        assert!(matches!(err, TierError::Remote { .. }), "{err}");
        texts.extend([err.to_string(), format!("{err:?}")]);
    }
    // Every operation with the server gone.
    let (sub, _rx) = listen(&tier);
    server.kill();
    let errors = [
        tier.get("k001").unwrap_err(),
        tier.put(&entry(2)).unwrap_err(),
        tier.probe().unwrap_err(),
        tier.subscribe(|_| {}).unwrap_err(),
        tier.record_health_check(&check("k001", 0)).unwrap_err(),
    ];
    for err in errors {
        texts.extend([err.to_string(), format!("{err:?}")]);
    }
    drop(sub);
    for text in &texts {
        assert!(!text.contains(PW), "{text}");
        assert!(!text.contains(&url), "{text}");
    }
    eprintln!("{}", texts.join("\n"));
}

#[test]
fn unreadable_values_are_corrupt_entries_not_tier_failures() {
    let server = RedisServer::start();
    let tier = open(&server, "damaged", &CacheTierConfig::unbounded(), &test_ring());
    for i in 0..5 {
        tier.put(&entry(i).with_credentials(None, Some(Secret::new("pw"))))
            .unwrap();
    }
    let mut conn = server.connection();
    let key = |k: &str| format!("{}e:{k}", tier.key_prefix());
    let foreign = pw_cache::FernetKey::generate();
    let other_ring = KeyRing::new(foreign, []);
    let foreign_token = other_ring.encrypt(&Secret::new("x"));
    for (k, field, value, column) in [
        ("k000", "fetch_time", "yesterday", Some("fetch_time")),
        ("k001", "access_count", "-1", Some("access_count")),
        ("k002", "health_status", "sick", Some("health_status")),
        ("k003", "password_encrypted", foreign_token.as_str(), None),
    ] {
        let () = redis::cmd("HSET")
            .arg(key(k))
            .arg(field)
            .arg(value)
            .query(&mut conn)
            .unwrap();
        let err = tier.get(k).unwrap_err();
        assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{k}: {err}");
        if let Some(column) = column {
            assert!(matches!(err, TierError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(column), "{err}");
        } else {
            assert!(matches!(err, TierError::Crypto { .. }), "{err}");
        }
    }
    // A key of another type where an entry should be.
    let () = redis::cmd("SET")
        .arg(key("k004"))
        .arg("not a hash")
        .query(&mut conn)
        .unwrap();
    let err = tier.get("k004").unwrap_err();
    assert!(matches!(err, TierError::Corrupt { .. }), "{err}");
    assert_eq!(tier.health().consecutive_failures(), 0);
    // A put replaces the damage.
    tier.put(&entry(4)).unwrap();
    assert_eq!(tier.get("k004").unwrap().unwrap(), entry(4));
}

/// The entry hash of `key`, field by field.
fn hash_of(server: &RedisServer, tier: &RedisL3Tier, key: &str) -> std::collections::BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("{}e:{key}", tier.key_prefix()))
        .query(&mut server.connection())
        .unwrap()
}

/// A health mark is one script on the entry as stored: only `failure_count` and
/// `health_status` change (not the tokens, not `updated_at`, not the expiry); marks from two
/// tier instances and four threads all count; an entry the marking instance cannot read, or
/// whose fields are damaged, is left as it is; the mark that reaches the threshold removes the
/// entry with its history and indexes, and the other instances hear `put` for a mark and `del`
/// for the eviction.
#[test]
fn health_marks_change_two_fields_count_every_writer_and_evict_once() {
    use pw_cache::FailureMark;
    let server = RedisServer::start();
    let ring = test_ring();
    let config = CacheTierConfig::unbounded();
    let (a, b) = (
        open(&server, "marks", &config, &ring),
        open(&server, "marks", &config, &ring),
    );
    let (sub, rx) = listen(&b);
    let e = entry(1).with_credentials(Some(Secret::new("u")), Some(Secret::new("pw")));
    a.put(&e).unwrap();
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Put));
    a.record_health_check(&check("k001", 0)).unwrap();
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Health));
    let before = hash_of(&server, &a, "k001");
    assert_eq!(
        a.mark_failure("k001", None).unwrap(),
        FailureMark::Marked { failure_count: 1 }
    );
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Put));
    assert_eq!(
        b.mark_failure("k001", None).unwrap(),
        FailureMark::Marked { failure_count: 2 }
    );
    let after = hash_of(&server, &a, "k001");
    for (field, was) in &before {
        let want = match field.as_str() {
            "failure_count" => "2",
            "health_status" => "unhealthy",
            _ => was.as_str(),
        };
        assert_eq!(after[field], want, "{field}");
    }
    assert_eq!(after.len(), before.len());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}e:k001", a.key_prefix()))
        .query(&mut server.connection())
        .unwrap();
    assert!(ttl > 0, "the hash keeps its expiry");
    drop(sub);
    // Two instances, four threads: every mark counts.
    std::thread::scope(|s| {
        for tier in [&a, &b, &a, &b] {
            s.spawn(move || {
                for _ in 0..25 {
                    assert!(matches!(
                        tier.mark_failure("k001", None),
                        Ok(FailureMark::Marked { .. })
                    ));
                }
            });
        }
    });
    assert_eq!(a.peek("k001").unwrap().unwrap().failure_count, 102);
    // Marks racing puts of a new version (each put moves `updated_at`, so a mark that read the
    // entry before a put is refused by its script and reads again): every mark succeeds, and
    // the new version's credentials stay.
    let new = e
        .clone()
        .with_credentials(Some(Secret::new("u")), Some(Secret::new("new-pw")));
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..25 {
                a.put(&new).unwrap();
            }
        });
        for tier in [&a, &b] {
            s.spawn(move || {
                for _ in 0..25 {
                    assert!(matches!(
                        tier.mark_failure("k001", None),
                        Ok(FailureMark::Marked { .. })
                    ));
                }
            });
        }
    });
    let held = a.peek("k001").unwrap().unwrap();
    assert_eq!(held.password.unwrap().expose_secret(), "new-pw");
    assert!(held.failure_count <= 50);
    // Unreadable (a token no key of the ring opens, a damaged field): left as it is, at any
    // threshold.
    let stranger = open(&server, "marks", &config, &test_ring());
    let held = hash_of(&server, &a, "k001");
    let err = stranger.mark_failure("k001", Some(1)).unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    assert_eq!(hash_of(&server, &a, "k001"), held, "untouched");
    let () = redis::cmd("HSET")
        .arg(format!("{}e:k001", a.key_prefix()))
        .arg("fetch_time")
        .arg("yesterday")
        .query(&mut server.connection())
        .unwrap();
    let damaged = hash_of(&server, &a, "k001");
    assert_ne!(damaged, held);
    assert!(a.mark_failure("k001", Some(1)).unwrap_err().is_corrupt_entry());
    assert_eq!(hash_of(&server, &a, "k001"), damaged, "untouched");
    assert_eq!(a.health().consecutive_failures(), 0);
    // The threshold: one mark reaches it and removes everything of the entry; the other
    // instances hear `put` for a mark, `del` for the eviction.
    let (sub, rx) = listen(&a);
    b.put(&e).unwrap();
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Put));
    b.record_health_check(&check("k001", 1)).unwrap();
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Health));
    assert_eq!(
        b.mark_failure("k001", Some(2)).unwrap(),
        FailureMark::Marked { failure_count: 1 }
    );
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Put), "b's mark");
    assert_eq!(
        b.mark_failure("k001", Some(2)).unwrap(),
        FailureMark::Evicted { failure_count: 2 }
    );
    assert_eq!(next_event(&rx).1, changed("k001", ChangeKind::Delete), "b's eviction");
    assert_eq!(a.mark_failure("k001", Some(2)).unwrap(), FailureMark::Absent);
    assert!(
        a.health_history("k001", 10).unwrap().is_empty(),
        "its history went with it"
    );
    assert_eq!((a.size().unwrap(), a.keys().unwrap().len()), (0, 0));
    drop(sub);
}

#[test]
fn several_writers_keep_every_put_and_the_bound() {
    let server = RedisServer::start();
    let ring = test_ring();
    // Two tier instances (two hosts), two threads each.
    let all = [
        open(&server, "writers", &CacheTierConfig::unbounded(), &ring),
        open(&server, "writers", &CacheTierConfig::unbounded(), &ring),
    ];
    std::thread::scope(|s| {
        for (t, tier) in (0..4).zip(all.iter().cycle()) {
            s.spawn(move || {
                for i in 0..250 {
                    tier.put(&entry(t * 1000 + i)).unwrap();
                }
            });
        }
    });
    assert_eq!(all[0].size().unwrap(), 1000);
    assert_eq!(all[1].keys().unwrap().len(), 1000);

    let bounded = [
        open(&server, "bounded", &CacheTierConfig::bounded(50), &ring),
        open(&server, "bounded", &CacheTierConfig::bounded(50), &ring),
    ];
    std::thread::scope(|s| {
        for (t, tier) in (0..4).zip(bounded.iter().cycle()) {
            s.spawn(move || {
                for i in 0..100 {
                    tier.put(&entry(t * 1000 + i)).unwrap();
                    assert!(tier.size().unwrap() <= 50);
                }
            });
        }
    });
    assert_eq!(bounded[0].size().unwrap(), 50);
    assert_eq!(bounded[0].evictions() + bounded[1].evictions(), 350);
}

/// Large batches run as several scripts, none near the command timeout: 3,000 entries, 700
/// use records, an expiry cleanup of 2,100 and a clear of the rest all complete with the
/// right counts, and the clear publishes exactly one event, after its last chunk.
#[test]
fn large_batches_are_split_and_complete() {
    use pw_cache::AccessRecord;

    let server = RedisServer::start();
    let ring = test_ring();
    let tier = open(&server, "big", &CacheTierConfig::unbounded(), &ring);
    let other = open(&server, "big", &CacheTierConfig::unbounded(), &ring);
    let now = OffsetDateTime::now_utc();
    let entries: Vec<CacheEntry> = (0..3000)
        .map(|i| {
            // The first 2,100 expire a minute from now, the rest in a year.
            let ttl = if i < 2100 { 60 } else { 365 * 86_400 };
            CacheEntry::new_at(format!("http://10.1.{}.{}:80", i / 256, i % 256), "big", ttl, now)
                .unwrap()
                .with_key(format!("big{i:05}"))
        })
        .collect();
    for e in &entries {
        tier.put(e).unwrap();
    }
    assert_eq!(tier.size().unwrap(), 3000);

    let records: Vec<AccessRecord> = entries[..700]
        .iter()
        .map(|e| {
            let mut used = e.clone();
            used.access_count = 7;
            used.last_accessed = now + time::Duration::seconds(1);
            AccessRecord::of(&used, true)
        })
        .collect();
    assert_eq!(tier.record_accesses(&records).unwrap(), 700);
    assert_eq!(tier.peek("big00699").unwrap().unwrap().access_count, 7);
    assert_eq!(tier.peek("big00700").unwrap().unwrap().access_count, 0);

    assert_eq!(tier.cleanup_expired(now + time::Duration::seconds(61)).unwrap(), 2100);
    assert_eq!(tier.size().unwrap(), 900);

    let (_sub, rx) = listen(&other);
    assert_eq!(tier.clear().unwrap(), 900);
    assert_eq!(tier.size().unwrap(), 0);
    assert_eq!(next_event(&rx).1, RemoteEvent::Cleared);
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "one clear, one event"
    );
}

/// A history record longer than `MAX_HEALTH_RECORD_BYTES`, written into the list by another
/// client (5 MB), is reported by its length and never sent over: the read stays small. (The
/// server still reads the record to measure it: a record of hundreds of MB makes the read time
/// out, a typed failure.) A check
/// with a field over its limit is refused on write, nothing stored.
#[test]
fn history_records_over_their_limits_are_refused_and_never_read_whole() {
    use pw_cache::model::limits::{MAX_HEALTH_RECORD_BYTES, MAX_LAST_HEALTH_ERROR_BYTES, MAX_PROXY_URL_BYTES};
    let server = RedisServer::start();
    let tier = open(&server, "hlimits", &CacheTierConfig::unbounded(), &test_ring());
    tier.put(&entry(0)).unwrap();
    let list = format!("{}h:k000", tier.key_prefix());
    for bad in [
        HealthCheck {
            error_message: Some("e".repeat(MAX_LAST_HEALTH_ERROR_BYTES + 1)),
            ..check("k000", 1)
        },
        HealthCheck {
            check_url: format!("http://{}", "u".repeat(MAX_PROXY_URL_BYTES)),
            ..check("k000", 1)
        },
    ] {
        let err = tier.record_health_check(&bad).unwrap_err();
        assert!(matches!(err, TierError::InvalidEntry { .. }), "{err}");
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }
    let len: u64 = redis::cmd("LLEN").arg(&list).query(&mut server.connection()).unwrap();
    assert_eq!(len, 0, "nothing stored");

    tier.record_health_check(&check("k000", 2)).unwrap();
    let huge = vec![b'x'; 5 << 20];
    let () = redis::cmd("LPUSH")
        .arg(&list)
        .arg(&huge)
        .query(&mut server.connection())
        .unwrap();
    let err = tier.health_history("k000", 10).unwrap_err();
    assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{} bytes long", 5 << 20)) && msg.contains(&MAX_HEALTH_RECORD_BYTES.to_string()),
        "{msg}"
    );
}
