//! The Redis L3 tier over TLS (`rediss://`, cargo feature `redis-tls`), against a TLS-only
//! `redis-server` of each test's own on 127.0.0.1 whose certificate a private CA, made by the
//! test, signed: with that CA trusted the tier stores, reads and hears other instances' events
//! (the subscriber's connection is TLS too: the server has no plain port); without it, or with a
//! plain `redis://` URL, opening fails fast with a typed error that shows no password.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use pw_cache::tiers::redis_l3::{ChangeKind, RedisL3Options, RedisL3Tier, RemoteEvent};
use pw_cache::{CacheEntry, CacheTier, CacheTierConfig, KeyRing, Secret, TierError};
use pw_cache_tests::managers::test_ring;
use pw_cache_tests::redis_server::{RedisServer, TlsFiles};

/// What "fails fast" means here: well above the 250 ms timeouts, far below a TCP stall.
const FAST: Duration = Duration::from_secs(2);

const USER: &str = "user-over-tls-4d2c";
const PASS: &str = "pass-over-tls-81fe";

fn entry(i: i64) -> CacheEntry {
    pw_cache_tests::l3_entries::entry(i).with_credentials(Some(Secret::new(USER)), Some(Secret::new(PASS)))
}

fn options(url: &str) -> RedisL3Options {
    RedisL3Options::new(Secret::new(url)).with_namespace("tls")
}

/// `options(url)` trusting only the CA of `tls`.
fn trusting(url: &str, tls: &TlsFiles) -> RedisL3Options {
    options(url).with_tls_root_certs_pem(tls.ca_cert_pem.as_bytes())
}

fn open(opts: &RedisL3Options, ring: &Arc<KeyRing>) -> Result<RedisL3Tier, TierError> {
    RedisL3Tier::open(opts, &CacheTierConfig::unbounded(), Arc::clone(ring))
}

/// Opens with `opts`, which must fail fast with a tier failure; returns its texts (`Display`
/// and `Debug`).
fn open_fails_fast(what: &str, opts: &RedisL3Options) -> [String; 2] {
    let started = Instant::now();
    let result = open(opts, &test_ring());
    let elapsed = started.elapsed();
    let err = result.expect_err(what);
    eprintln!("{what}: open failed after {elapsed:?}: {err}");
    assert!(elapsed < FAST, "{what}: {elapsed:?}");
    assert!(
        matches!(err, TierError::Remote { .. }) && err.is_tier_failure(),
        "{what}: {err:?}"
    );
    [err.to_string(), format!("{err:?}")]
}

fn changed(key: &str, kind: ChangeKind) -> RemoteEvent {
    RemoteEvent::Changed {
        key: key.to_owned(),
        kind,
    }
}

/// Waits for the next event (at most 10 s).
fn next_event(rx: &mpsc::Receiver<RemoteEvent>) -> RemoteEvent {
    rx.recv_timeout(Duration::from_secs(10)).expect("an event within 10 s")
}

fn assert_credentials(got: &CacheEntry) {
    assert_eq!(got.username.as_ref().map(Secret::expose_secret), Some(USER));
    assert_eq!(got.password.as_ref().map(Secret::expose_secret), Some(PASS));
}

#[test]
fn with_its_private_ca_a_tier_over_rediss_stores_reads_and_hears_events() {
    let tls = TlsFiles::generate();
    let server = RedisServer::start_tls(&tls);
    let url = server.url();
    assert_eq!(url, format!("rediss://127.0.0.1:{}", server.port()));
    let ring = test_ring();
    let a = open(&trusting(&url, &tls), &ring).unwrap();
    let b = open(&trusting(&url, &tls), &ring).unwrap();
    let (tx, rx) = mpsc::channel();
    let sub = b
        .subscribe(move |event| {
            let _ = tx.send(event);
        })
        .unwrap();

    let sent = Instant::now();
    a.put(&entry(1)).unwrap();
    assert_eq!(next_event(&rx), changed("k001", ChangeKind::Put));
    eprintln!("event over TLS after {:?}", sent.elapsed());
    let got = b.get("k001").unwrap().expect("b reads what a stored");
    assert_eq!(got, entry(1));
    assert_credentials(&got);
    assert_credentials(&a.get("k001").unwrap().unwrap());

    // A subscription silent for longer than its 1 s keepalive (a PING, then reads that time
    // out, over TLS) still delivers.
    std::thread::sleep(Duration::from_millis(1500));
    a.delete("k001").unwrap();
    assert_eq!(next_event(&rx), changed("k001", ChangeKind::Delete));
    a.put(&entry(2)).unwrap();
    assert_eq!(next_event(&rx), changed("k002", ChangeKind::Put));
    assert!(b.get("k001").unwrap().is_none());

    // Stored as Fernet tokens, as over a plain connection (read here over TLS too).
    let mut conn = server.connection();
    let token: Vec<u8> = redis::cmd("HGET")
        .arg(format!("{}e:k002", a.key_prefix()))
        .arg("password_encrypted")
        .query(&mut conn)
        .unwrap();
    assert!(token.starts_with(b"gAAAAA"), "a Fernet token's text");

    // The certificate's DNS name is checked as well as its IP address.
    let by_name = format!("rediss://localhost:{}", server.port());
    let c = open(&trusting(&by_name, &tls), &ring).unwrap();
    assert_credentials(&c.get("k002").unwrap().unwrap());

    for tier in [&a, &b, &c] {
        assert_eq!(tier.health().consecutive_failures(), 0);
    }
    drop(sub);
}

#[test]
fn without_its_private_ca_rediss_fails_fast_typed_and_shows_no_password() {
    const PW: &str = "tls-pw-secret";
    let tls = TlsFiles::generate();
    let server = RedisServer::start_tls_with_password(&tls, PW);
    let url = server.url();
    assert_eq!(url, format!("rediss://:{PW}@127.0.0.1:{}", server.port()));
    // With the CA the password is accepted: the failures below are the certificate's.
    let tier = open(&trusting(&url, &tls), &test_ring()).unwrap();
    tier.put(&entry(1)).unwrap();
    assert_credentials(&tier.get("k001").unwrap().unwrap());

    let other_ca = TlsFiles::generate();
    let cases = [
        ("webpki's public roots only", options(&url)),
        ("another private CA", trusting(&url, &other_ca)),
    ];
    for (what, opts) in &cases {
        let texts = open_fails_fast(what, opts);
        for text in &texts {
            assert!(!text.contains(PW), "{what}: {text}");
            assert!(!text.contains(&url), "{what}: {text}");
            assert!(
                text.to_lowercase().contains("certificate"),
                "{what}: a certificate failure, not another: {text}"
            );
        }
    }
}

#[test]
fn a_plain_redis_url_against_the_tls_port_fails_fast_and_typed() {
    let tls = TlsFiles::generate();
    let server = RedisServer::start_tls(&tls);
    let url = format!("redis://127.0.0.1:{}", server.port());
    open_fails_fast("redis:// on the TLS port", &options(&url));
    open_fails_fast("redis:// on the TLS port, CA given", &trusting(&url, &tls));
    // The server is fine: over TLS the same port serves.
    open(&trusting(&server.url(), &tls), &test_ring()).unwrap();
}
