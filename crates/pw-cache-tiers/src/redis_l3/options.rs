//! [`RedisL3Options`]: where the server is (its URL, a secret that `Debug` never shows),
//! the namespace, timeouts, pool size and history cap, with their defaults; the client they
//! make, and the check that every value is usable.

use std::fmt;
use std::time::Duration;

use pw_cache_model::Secret;

use crate::error::TierError;

/// The namespace of [`RedisL3Options::new`].
pub const DEFAULT_NAMESPACE: &str = "pw-cache";
/// How long making a connection may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a command may wait to be written or answered, by default.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// Most pooled connections, by default.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Most health checks kept per entry, by default.
pub const DEFAULT_HISTORY_CAP: usize = 1000;

/// How to reach the Redis server and lay out the tier in it.
///
/// `Debug` never shows the URL: it may carry a password (`redis://:pw@host:6379`).
#[derive(Clone)]
pub struct RedisL3Options {
    /// `redis://[user][:password@]host[:port][/db]`, or `rediss://…` with the `redis-tls`
    /// feature.
    pub url: Secret,
    /// Prefix of every key: `pwc:{namespace}:…`. Not empty; no `{`, `}`, whitespace or
    /// control characters.
    pub namespace: String,
    /// Longest time to make a connection, and to wait for a pooled one.
    pub connect_timeout: Duration,
    /// Longest time a command may wait to be written or answered.
    pub command_timeout: Duration,
    /// Most connections in the pool (at least 1). An operation waits for a free one at most
    /// the connect timeout, so it should be at least the number of threads using the tier at
    /// once.
    pub pool_size: u32,
    /// Most health checks kept per entry (at least 1): recording one more drops the first
    /// recorded.
    pub history_cap: usize,
    /// PEM certificates of the authorities a `rediss://` server's certificate must chain to,
    /// instead of the public ones (webpki's roots): for a server with a private CA. Needs the
    /// `redis-tls` feature.
    pub tls_root_certs_pem: Option<Vec<u8>>,
}

impl RedisL3Options {
    /// The server at `url`, with the defaults: namespace [`DEFAULT_NAMESPACE`], timeouts
    /// [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_COMMAND_TIMEOUT`], [`DEFAULT_POOL_SIZE`]
    /// connections, [`DEFAULT_HISTORY_CAP`] checks per entry.
    pub fn new(url: Secret) -> Self {
        Self {
            url,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            history_cap: DEFAULT_HISTORY_CAP,
            tls_root_certs_pem: None,
        }
    }

    /// With this namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// With this connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With this command timeout.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// With at most this many pooled connections.
    pub fn with_pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Keeping at most this many health checks per entry.
    pub fn with_history_cap(mut self, history_cap: usize) -> Self {
        self.history_cap = history_cap;
        self
    }

    /// Trusting these PEM root certificates for `rediss://` (see
    /// [`RedisL3Options::tls_root_certs_pem`]).
    pub fn with_tls_root_certs_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certs_pem = Some(pem.into());
        self
    }

    /// The client for the URL (and root certificates).
    pub(super) fn client(&self) -> Result<redis::Client, String> {
        #[cfg(feature = "redis-tls")]
        {
            // redis builds its rustls config with the process's default crypto provider, which
            // rustls cannot pick by itself when another crate of the build enables a second
            // one (it would panic): make `ring` the default unless one is set already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url = self.url.expose_secret();
        match &self.tls_root_certs_pem {
            None => redis::Client::open(url).map_err(|e| e.to_string()),
            #[cfg(feature = "redis-tls")]
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(|e| e.to_string()),
            #[cfg(not(feature = "redis-tls"))]
            Some(_) => Err("TLS root certificates need the `redis-tls` feature of pw-cache-tiers".to_owned()),
        }
    }

    /// Fails unless every value is usable.
    pub(super) fn check(&self) -> Result<(), TierError> {
        let bad = |reason: String| {
            Err(TierError::Remote {
                op: "check options",
                reason,
            })
        };
        let ns = &self.namespace;
        if !pw_cache_model::config::is_usable_redis_namespace(ns) {
            return bad(format!(
                "namespace {ns:?} must be non-empty, without braces, whitespace or control characters"
            ));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return bad("timeouts must be longer than zero".to_owned());
        }
        if self.pool_size == 0 || self.history_cap == 0 {
            return bad("pool_size and history_cap must be at least 1".to_owned());
        }
        Ok(())
    }
}

impl fmt::Debug for RedisL3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisL3Options")
            .field("url", &"***")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("history_cap", &self.history_cap)
            .field(
                "tls_root_certs_pem",
                &self.tls_root_certs_pem.as_ref().map(|pem| pem.len()),
            )
            .finish()
    }
}
