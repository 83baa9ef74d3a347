//! WAL checkpoints of the SQLite tiers, made by a background thread instead of the writer
//! whose commit crossed SQLite's threshold.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a *checkpoint* copies them back into
//! the database file (and `fsync`s both) so the log can start over. SQLite's default
//! (`wal_autocheckpoint = 1000`) runs it inside the commit that takes the log past 1,000
//! pages: that put then pays for a thousand pages' copy and two `fsync`s, and waits for the
//! disk. Here:
//!
//! - every connection gets a **WAL hook** ([`note_wal_frames`]), which replaces the automatic
//!   checkpoint and only records, in a thread-local, how many pages the log holds after each
//!   commit;
//! - after the statements that committed ([`Checkpointer::after_commit`]: for the tiers, when
//!   a connection goes back to the pool), a log of [`CHECKPOINT_FRAMES`] pages or more **asks
//!   the checkpoint thread** for a checkpoint, once per cycle, and returns at once. The thread
//!   (its own connection) runs `PASSIVE` checkpoints, and runs another while the writer
//!   appended more than an eighth of [`CHECKPOINT_FRAMES`] during the last one (at most
//!   [`CHASE_ROUNDS`]), copying the bulk of the log and `fsync`ing;
//! - the first commit after the thread is done **copies the tail** itself (the pages committed
//!   during the thread's last round). Only a checkpoint that leaves nothing behind lets the log
//!   start over, and only the writer can make sure no commit lands during it; a log left to
//!   grow while the thread chases it makes every page lookup slower;
//! - a log of [`BACKSTOP_FRAMES`] pages or more (the thread fell behind, or could not start)
//!   is checkpointed by the writer itself, as SQLite would (while the thread's checkpoint
//!   runs, the writer's is busy and the log grows by what is committed meanwhile).
//!
//! The log starting over (a commit that leaves fewer than [`CHECKPOINT_FRAMES`] pages) begins
//! the next cycle. What this design gains on a disk, and costs where a checkpoint waits for no
//! disk (tmpfs), is measured in [`pw_cache::docs::performance`], "Background checkpoints".
//!
//! Durability does not change: a commit is in the log when it returns, whoever copies it into
//! the database file later, and a checkpoint is the same operation on either thread.
//! `PASSIVE` never waits for readers or writers: it copies what it can. The thread starts at
//! the first request and is stopped (and joined) by the tier's close. Other programs writing
//! the same file (proxywhirl) keep SQLite's automatic checkpoint on their connections.
//!
//! [`pw_cache::docs::performance`]: https://docs.rs/pw-cache/latest/pw_cache/docs/performance/index.html

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Pages in the log from which a commit asks for a background checkpoint (SQLite's default
/// automatic checkpoint threshold).
pub const CHECKPOINT_FRAMES: i32 = 1000;

/// Pages in the log from which the writer checkpoints it itself (16 MiB of 4 KiB pages).
pub const BACKSTOP_FRAMES: i32 = 4 * CHECKPOINT_FRAMES;

/// How long the checkpoint thread waits for another connection's lock.
const THREAD_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Most `PASSIVE` checkpoints the thread runs for one request (see [`Checkpointer`]).
pub const CHASE_ROUNDS: usize = 4;

thread_local! {
    /// Pages in the log after the last commit made on this thread (0: none since taken).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

/// The WAL hook to install on every connection that writes (`conn.wal_hook(Some(note_wal_frames))`):
/// it replaces SQLite's automatic checkpoint and records, for [`Checkpointer::after_commit`]
/// on the same thread, how many pages the log holds after each commit.
pub fn note_wal_frames(_wal: &Wal, pages: i32) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|frames| frames.set(pages));
    Ok(())
}

/// Runs a `PASSIVE` checkpoint on `conn`: (pages in the log, pages copied), or `None` when
/// SQLite answered busy (another connection is checkpointing).
pub fn checkpoint_passive(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        let busy: i64 = row.get(0)?;
        Ok((busy == 0).then(|| (row.get(1), row.get(2))))
    })
    .and_then(|done| done.map(|(log, copied)| Ok((log?, copied?))).transpose())
}

/// Checkpoints the log, then again while the writer appended more than an eighth of
/// [`CHECKPOINT_FRAMES`] during the last round (at most [`CHASE_ROUNDS`] rounds), so the tail
/// the writer copies itself stays short: (pages in the log, pages copied) of the last round,
/// `None` when SQLite answered busy.
fn chase(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    let mut last = None;
    for _ in 0..CHASE_ROUNDS {
        let Some((log, copied)) = checkpoint_passive(conn)? else {
            return Ok(last);
        };
        let grew = last.map_or(i64::MAX, |(previous, _)| log - previous);
        last = Some((log, copied));
        if grew <= i64::from(CHECKPOINT_FRAMES / 8) {
            break;
        }
    }
    Ok(last)
}

/// [`Checkpointer::requested`] before a cycle's request.
const NOT_REQUESTED: u64 = u64::MAX;

/// What the writer does after a commit ([`Checkpointer::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterCommit {
    /// Nothing: the log is short, or the thread is copying it.
    Nothing,
    /// Ask the thread for a checkpoint.
    Request,
    /// Checkpoint on the writer's connection (the tail the thread left, or a log past
    /// [`BACKSTOP_FRAMES`]).
    Checkpoint,
}

/// The background checkpoints of one database file (see the module docs). The thread opens
/// its own connection for each request (so it takes no pool slot, and a database file
/// replaced under the tier is the one checkpointed), starts at the first request and stops
/// with [`Checkpointer::stop`] or the drop.
#[derive(Debug)]
pub struct Checkpointer {
    path: PathBuf,
    thread: Mutex<Option<Worker>>,
    /// Requests the thread has finished.
    done: Arc<AtomicU64>,
    /// `done` when this cycle's checkpoint was asked for ([`NOT_REQUESTED`]: not yet).
    requested: AtomicU64,
    /// Set by [`Checkpointer::stop`]: a request still queued is dropped.
    stopping: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Worker {
    requests: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    /// The checkpointer of the database at `path`; no thread until the first request.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            thread: Mutex::new(None),
            done: Arc::new(AtomicU64::new(0)),
            requested: AtomicU64::new(NOT_REQUESTED),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// To call after a connection with [`note_wal_frames`] as its WAL hook ran statements on
    /// this thread (and before another connection commits on it): asks the thread for a
    /// checkpoint, or checkpoints on `conn`, as the log's size after the last commit requires.
    /// Costs a thread-local read when nothing was committed. A failed checkpoint is logged,
    /// never returned: the commit it follows has succeeded.
    pub fn after_commit(&self, conn: &Connection) {
        let frames = WAL_FRAMES.with(Cell::take);
        if frames == 0 {
            return; // nothing committed
        }
        match self.decide(frames) {
            AfterCommit::Nothing => {}
            AfterCommit::Request => self.request(),
            AfterCommit::Checkpoint => {
                if let Err(e) = checkpoint_passive(conn) {
                    tracing::warn!(path = %self.path.display(), error = %e, "WAL checkpoint failed");
                }
            }
        }
    }

    /// What a commit that left `frames` pages in the log does.
    pub(crate) fn decide(&self, frames: i32) -> AfterCommit {
        if frames < CHECKPOINT_FRAMES {
            // The log started over: a new cycle.
            self.requested.store(NOT_REQUESTED, Ordering::Relaxed);
            return AfterCommit::Nothing;
        }
        if frames >= BACKSTOP_FRAMES {
            return AfterCommit::Checkpoint;
        }
        let done = self.done.load(Ordering::Relaxed);
        match self.requested.load(Ordering::Relaxed) {
            NOT_REQUESTED => {
                self.requested.store(done, Ordering::Relaxed);
                AfterCommit::Request
            }
            // The thread copied the bulk: the writer copies the tail, so the log starts over.
            asked if done > asked => AfterCommit::Checkpoint,
            _ => AfterCommit::Nothing,
        }
    }

    /// Asks the thread for a checkpoint, starting it if needed. Never waits for one.
    fn request(&self) {
        let mut thread = crate::locks::lock(&self.thread);
        if let Some(worker) = thread.as_ref() {
            match worker.requests.try_send(()) {
                // Sent, or a request is already waiting: it will see this commit's pages too.
                Ok(()) | Err(TrySendError::Full(())) => return,
                // The thread is gone (it panicked): start another.
                Err(TrySendError::Disconnected(())) => {}
            }
        }
        let (requests, received) = mpsc::sync_channel::<()>(1);
        let (path, done, stopping) = (self.path.clone(), self.done.clone(), self.stopping.clone());
        let spawned = std::thread::Builder::new()
            .name("pw-cache-checkpoint".into())
            .spawn(move || {
                for () in received {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    // Without SQLITE_OPEN_CREATE: a database removed meanwhile is not made.
                    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
                    let outcome = Connection::open_with_flags(&path, flags).and_then(|conn| {
                        // Opening the log may wait for another connection's lock; nobody
                        // waits for this thread.
                        conn.busy_timeout(THREAD_BUSY_TIMEOUT)?;
                        chase(&conn)
                    });
                    match outcome {
                        Ok(Some((log, copied))) => {
                            tracing::trace!(path = %path.display(), log, copied, "checkpointed the WAL");
                        }
                        Ok(None) => tracing::trace!(path = %path.display(), "WAL checkpoint busy"),
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
                        {
                            tracing::trace!(path = %path.display(), "WAL checkpoint busy");
                        }
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "WAL checkpoint failed"),
                    }
                    // Done either way: the writer copies what is left.
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        match spawned {
            Ok(handle) => {
                // The channel is empty: this cannot fail.
                let _ = requests.try_send(());
                *thread = Some(Worker { requests, handle });
            }
            // No thread: the writer copies the log at the next commit, as SQLite would.
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not start the checkpoint thread");
                self.done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Requests the thread has finished.
    #[cfg(test)]
    pub(crate) fn completed(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Whether the thread is running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> bool {
        crate::locks::lock(&self.thread).is_some()
    }

    /// Stops the thread once its current checkpoint, if any, is done (a request still
    /// waiting is dropped). Later requests start it again.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let worker = crate::locks::lock(&self.thread).take();
        if let Some(Worker { requests, handle }) = worker {
            drop(requests);
            if handle.join().is_err() {
                tracing::warn!(path = %self.path.display(), "the checkpoint thread panicked");
            }
        }
        self.stopping.store(false, Ordering::Relaxed);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_asks_once_then_copies_the_tail_after_the_thread() {
        let c = Checkpointer::new(Path::new("unused.db"));
        assert_eq!(c.decide(10), AfterCommit::Nothing);
        assert_eq!(c.decide(CHECKPOINT_FRAMES - 1), AfterCommit::Nothing);
        assert_eq!(c.decide(CHECKPOINT_FRAMES), AfterCommit::Request);
        // The thread is at it: later commits neither ask again nor checkpoint.
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 8), AfterCommit::Nothing);
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 16), AfterCommit::Nothing);
        c.done.fetch_add(1, Ordering::Relaxed);
        // The thread is done: the writer copies the tail (until the log starts over).
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 24), AfterCommit::Checkpoint);
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 32), AfterCommit::Checkpoint);
        // The log started over: a new cycle asks again.
        assert_eq!(c.decide(8), AfterCommit::Nothing);
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 3), AfterCommit::Request);
        assert_eq!(c.decide(CHECKPOINT_FRAMES + 11), AfterCommit::Nothing);
    }

    #[test]
    fn a_log_past_the_backstop_is_checkpointed_by_the_writer() {
        let c = Checkpointer::new(Path::new("unused.db"));
        assert_eq!(c.decide(CHECKPOINT_FRAMES), AfterCommit::Request);
        // The thread fell behind.
        assert_eq!(c.decide(BACKSTOP_FRAMES - 1), AfterCommit::Nothing);
        assert_eq!(c.decide(BACKSTOP_FRAMES), AfterCommit::Checkpoint);
        assert_eq!(c.decide(BACKSTOP_FRAMES + 500), AfterCommit::Checkpoint);
    }
}
