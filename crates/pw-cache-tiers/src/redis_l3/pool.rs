//! Connections: an r2d2 pool of them, each made within the connect timeout and with read and
//! write timeouts; running a command or a script on one (`run`, `script`), with a retry when a
//! pooled connection was found dead and an index rebuild when a script found the indexes
//! damaged; the probe, on new connections.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use r2d2::{ManageConnection, Pool};
use redis::{ConnectionLike, ErrorKind, RedisError, RedisResult, Script};

use crate::error::TierError;

use super::redact::Redactor;
use super::scripts::INDEX_DAMAGED_CODE;
use super::tier::RedisL3Tier;

/// A connection of the pool: the redis connection, whether it failed (then the pool drops
/// it), and how many operations it served (a dead connection that served none is no stale
/// one: its failure is not retried).
pub(super) struct PooledConn {
    conn: redis::Connection,
    broken: bool,
    uses: u64,
}

/// Makes connections within the connect timeout, with read and write timeouts.
pub(super) struct Connector {
    pub(super) client: redis::Client,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
}

impl Connector {
    pub(super) fn connect_raw(&self) -> RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }
}

/// Logs the pool's connection failures (the URL redacted) at debug level: the operation that
/// waited reports them.
#[derive(Debug)]
struct QuietErrors {
    redactor: Arc<Redactor>,
}

impl r2d2::HandleError<RedisError> for QuietErrors {
    fn handle_error(&self, error: RedisError) {
        tracing::debug!(error = %self.redactor.clean(&error.to_string()), "redis connection failed");
    }
}

pub(super) type RedisPool = Pool<ConnectorRef>;

/// Whether `e` leaves its connection usable (the server answered with an error).
pub(super) fn connection_survives(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType
    )
}

/// The pool's manager: the tier's connector (shared with the event subscriber and with the
/// pools a probe makes).
pub(super) struct ConnectorRef(Arc<Connector>);

impl ManageConnection for ConnectorRef {
    type Connection = PooledConn;
    type Error = RedisError;

    fn connect(&self) -> RedisResult<PooledConn> {
        Ok(PooledConn {
            conn: self.0.connect_raw()?,
            broken: false,
            uses: 0,
        })
    }

    fn is_valid(&self, conn: &mut PooledConn) -> RedisResult<()> {
        redis::cmd("PING").query::<()>(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        conn.broken || !conn.conn.is_open()
    }
}

impl RedisL3Tier {
    pub(super) fn new_pool(&self) -> RedisPool {
        Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(self.connector.connect_timeout)
            .error_handler(Box::new(QuietErrors {
                redactor: Arc::clone(&self.redactor),
            }))
            .build_unchecked(ConnectorRef(Arc::clone(&self.connector)))
    }

    pub(super) fn closed(&self) -> TierError {
        TierError::Closed {
            path: PathBuf::from(format!("redis {}", self.names.prefix.trim_end_matches(':'))),
        }
    }

    pub(super) fn remote(&self, op: &'static str, e: &dyn fmt::Display) -> TierError {
        TierError::Remote {
            op,
            reason: self.redactor.clean(&e.to_string()),
        }
    }

    /// Runs `f` on a pooled connection. A connection that fails is dropped; when a connection
    /// that served before is found dead (the server restarted since), `f` runs again on
    /// another, up to the pool's size. `WRONGTYPE` on `key` makes that entry corrupt.
    pub(super) fn run<T>(
        &self,
        op: &'static str,
        key: Option<&str>,
        mut f: impl FnMut(&mut redis::Connection) -> RedisResult<T>,
    ) -> Result<T, TierError> {
        let pool = crate::locks::read(&self.pool).clone().ok_or_else(|| self.closed())?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut conn = pool.get().map_err(|e| self.remote(op, &e))?;
            let reused = conn.uses > 0;
            conn.uses += 1;
            match f(&mut conn.conn) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !connection_survives(&e) {
                        conn.broken = true;
                    }
                    if reused && e.is_connection_dropped() && attempts <= self.pool_size {
                        tracing::debug!(op, "retrying on a new connection: a pooled one was dead");
                        continue;
                    }
                    if e.code() == Some(INDEX_DAMAGED_CODE) {
                        return Err(self.index_damaged(false));
                    }
                    if let Some(key) = key
                        && e.code() == Some("WRONGTYPE")
                    {
                        return Err(TierError::Corrupt {
                            key: key.to_owned(),
                            reason: "its Redis key holds a value of another type".to_owned(),
                        });
                    }
                    return Err(self.remote(op, &e));
                }
            }
        }
    }

    /// Runs `script` with the namespace's keys and common arguments, then `args`. A script
    /// that found the indexes damaged ran nothing: they are rebuilt
    /// ([`RedisL3Tier::rebuild_index`]) and it runs once more.
    pub(super) fn script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        args: &[&str],
    ) -> Result<T, TierError> {
        match self.script_once(op, script, args) {
            Err(TierError::Schema { .. }) => {
                tracing::warn!(prefix = %self.names.prefix, op, "the Redis L3 indexes are damaged: rebuilding them");
                self.rebuild_indexes()?;
                match self.script_once(op, script, args) {
                    Err(TierError::Schema { .. }) => Err(self.index_damaged(true)),
                    other => other,
                }
            }
            other => other,
        }
    }

    pub(super) fn script_once<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        args: &[&str],
    ) -> Result<T, TierError> {
        self.run(op, None, |c| self.invocation(script, args).invoke(c))
    }

    /// The error of damaged indexes (`after_rebuild`: still damaged after a rebuild).
    pub(super) fn index_damaged(&self, after_rebuild: bool) -> TierError {
        TierError::Schema {
            path: PathBuf::from(format!("redis {}", self.names.prefix.trim_end_matches(':'))),
            reason: if after_rebuild {
                "its indexes (idx, exp, ins) are still damaged after a rebuild".to_owned()
            } else {
                "its indexes (idx, exp, ins) are damaged: a key of another type, or sets out of step".to_owned()
            },
        }
    }

    pub(super) fn invocation<'s>(&self, script: &'s Script, args: &[&str]) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        let n = &self.names;
        inv.key(&n.idx)
            .key(&n.exp)
            .key(&n.ins)
            .key(&n.seq)
            .key(&n.hid)
            .arg(&n.prefix)
            .arg(format!("{:016x}", self.origin));
        for a in args {
            inv.arg(*a);
        }
        inv
    }

    pub(super) fn probe_server(&self) -> Result<(), TierError> {
        // Connections made while the server was away are dead: probe, and serve, with new ones.
        {
            let mut pool = crate::locks::write(&self.pool);
            if pool.is_none() {
                return Err(self.closed());
            }
            *pool = Some(self.new_pool());
        }
        let probe = &self.names.probe;
        let origin = format!("{:016x}", self.origin);
        self.run("probe", None, |c| {
            redis::cmd("PING").query::<()>(c)?;
            redis::cmd("SET")
                .arg(probe)
                .arg(&origin)
                .arg("PX")
                .arg(60_000)
                .query::<()>(c)?;
            redis::cmd("DEL").arg(probe).query::<()>(c)
        })
    }
}
