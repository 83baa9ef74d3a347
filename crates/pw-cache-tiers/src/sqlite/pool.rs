//! Connections to a tier's database: the pool and what every connection gets when it is made
//! (busy handler, pragmas, the WAL hook), the spare connection kept in front of the pool, and
//! the checks made before SQLite opens the files (no symbolic link: `SQLITE_OPEN_NOFOLLOW` and
//! `lstat`). See [`crate::sqlite`], "Connections".

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use pw_cache_crypto::private_fs;
use r2d2::{ManageConnection, Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use super::checkpoint;
use super::store::{Store, sql_error};
use crate::error::TierError;

/// How long an operation waits for another connection's lock before failing with
/// `SQLITE_BUSY`; also how long it waits for a pooled connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements cached per connection (more than either tier uses).
pub const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Most connections a tier's pool holds.
pub const MAX_CONNECTIONS: u32 = 8;

/// The most page cache one connection keeps, in KiB (32 MiB; so at most
/// [`MAX_CONNECTIONS`] × 32 MiB per tier, reached only by a database that large read by that
/// many threads at once).
pub const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// Busy-handler calls that sleep [`BUSY_SPIN_SLEEP`] before the handler sleeps a millisecond.
const BUSY_SPINS: i32 = 100;
const BUSY_SPIN_SLEEP: Duration = Duration::from_micros(50);

/// The busy handler: `true` to retry. About 5 ms of short sleeps, then 1 ms sleeps up to
/// [`BUSY_TIMEOUT`] in all.
fn busy_wait(attempt: i32) -> bool {
    const LONG_SLEEPS: i32 = (BUSY_TIMEOUT.as_millis() as i32) - 5;
    if attempt < BUSY_SPINS {
        std::thread::sleep(BUSY_SPIN_SLEEP);
        true
    } else if attempt < BUSY_SPINS + LONG_SLEEPS {
        std::thread::sleep(Duration::from_millis(1));
        true
    } else {
        false
    }
}

/// The per-connection setup (see [`crate::sqlite`], "Connections").
fn init_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_wait))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Replaces the automatic checkpoint: see crate::sqlite::checkpoint.
    conn.wal_hook(Some(checkpoint::note_wal_frames));
    Ok(())
}

/// The connection pool, closed by taking it out.
pub(super) type SqlitePool = Pool<SqliteConnectionManager>;

/// A pool of connections to `path`, each set up by `init_connection`, made on demand.
pub(super) fn new_pool(path: &Path) -> SqlitePool {
    Pool::builder()
        .max_size(MAX_CONNECTIONS)
        .min_idle(Some(1))
        .test_on_check_out(false)
        .connection_timeout(BUSY_TIMEOUT)
        .build_unchecked(connection_manager(path))
}

/// The flags of every connection to a tier's database: r2d2_sqlite's defaults (read-write,
/// create, no mutex, URI) and `SQLITE_OPEN_NOFOLLOW`: SQLite refuses a database path that is a
/// symbolic link (it checks with `lstat` before its `open`).
pub(crate) fn open_flags() -> OpenFlags {
    OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW
}

/// The connection manager of the database at `path` (see [`open_flags`]).
fn connection_manager(path: &Path) -> SqliteConnectionManager {
    SqliteConnectionManager::file(path)
        .with_flags(open_flags())
        .with_init(init_connection)
}

/// Refuses a database whose file, `-wal` or `-shm` file is a symbolic link or not a regular
/// file (checked with `lstat`; missing ones are fine). SQLite opens these by name itself: a
/// link planted between this check and SQLite's open is not caught here (for the database file
/// `SQLITE_OPEN_NOFOLLOW` catches it too; SQLite opens the `-wal` and `-shm` files without it).
pub(super) fn check_database_files(path: &Path) -> Result<(), TierError> {
    private_fs::check_path_regular(path).map_err(TierError::io("open database file", path))?;
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let side = PathBuf::from(name);
        private_fs::check_path_regular(&side).map_err(TierError::io("open database file", &side))?;
    }
    Ok(())
}

/// The first connection to the database at `path`, made before the pool (the tier runs its
/// schema on it): the files checked first ([`check_database_files`]), the database put in WAL
/// mode.
pub(super) fn open_first(path: &Path) -> Result<Connection, TierError> {
    check_database_files(path)?;
    let manager = connection_manager(path);
    let first = manager.connect().map_err(sql_error("open database", path))?;
    // Several processes creating the database at once: the switch to WAL can be refused
    // with SQLITE_BUSY at once (no busy handler call); retry it within the busy timeout.
    let started = std::time::Instant::now();
    let mode: String = loop {
        match first.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(BUSY_SPIN_SLEEP);
            }
            other => break other.map_err(sql_error("set WAL mode", path))?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "cache database is not in WAL mode");
    }
    Ok(first)
}

/// A connection from a store's pool. Going back to the pool, it asks for a WAL checkpoint when
/// a commit made through it left the log long enough (see [`crate::sqlite::checkpoint`]).
pub(crate) struct Conn<'a> {
    /// `Some` until the drop.
    conn: Option<PooledConnection<SqliteConnectionManager>>,
    store: &'a Store,
    /// The store's pool generation when the connection was handed out.
    generation: u64,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // `None` only inside `drop`.
        self.conn
            .as_deref()
            .unwrap_or_else(|| unreachable!("a connection used after its drop"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a connection used after its drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        self.store.checkpointer.after_commit(&conn);
        // Kept aside for the next operation, unless another connection is, or the connection
        // is inside a transaction (left open by an error: it goes back to the pool as
        // before), or the pool was replaced or closed since it was handed out.
        if conn.is_autocommit()
            && let Ok(mut spare) = self.store.spare.try_lock()
            && spare.is_none()
            && self.store.generation.load(Ordering::Acquire) == self.generation
        {
            *spare = Some(conn);
        }
    }
}

impl Store {
    /// A connection from the pool ([`TierError::Closed`] after [`Store::close`]).
    ///
    /// The connection the last operation gave back is kept aside (one, for whichever thread
    /// comes next) and handed out without going through the pool: r2d2's checkout and
    /// check-in take its mutex and read the clock five times, and a SQLite-L2 hit checks out
    /// two connections (L2, L3). A thread that finds the spare taken uses the pool. The spare is dropped when the pool is replaced ([`Store::probe`]) or closed.
    pub(crate) fn conn(&self) -> Result<Conn<'_>, TierError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(conn) = self.spare.try_lock().ok().and_then(|mut spare| spare.take()) {
            return Ok(Conn {
                conn: Some(conn),
                store: self,
                generation,
            });
        }
        // Clone the pool (an Arc) and let go of the lock before waiting for a connection.
        let pool = crate::locks::read(&self.pool)
            .clone()
            .ok_or_else(|| TierError::Closed {
                path: self.path.clone(),
            })?;
        let conn = pool.get().map_err(|source| TierError::Pool {
            path: self.path.clone(),
            source,
        })?;
        Ok(Conn {
            conn: Some(conn),
            store: self,
            generation,
        })
    }

    /// Drops the spare connection (back to its pool) and keeps connections in use now from
    /// becoming the spare: the pool is being replaced or closed.
    pub(super) fn drop_spare(&self) {
        let spare = {
            let mut spare = crate::locks::lock(&self.spare);
            self.generation.fetch_add(1, Ordering::AcqRel);
            spare.take()
        };
        drop(spare);
    }
}
