//! Every change to a shard file, made under its exclusive lock: appending a key's line, the
//! atomic rewrite (temporary file, fsync, identity check, rename) that drops lines and carries
//! the unreadable ones over byte for byte, and removing the file.

use std::collections::{HashMap, HashSet};
#[cfg(test)]
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind, Write};
#[cfg(test)]
use std::path::Path;
use std::sync::Arc;

use pw_cache_crypto::private_fs;

use super::file::{Ident, READ_WHOLE, WRITE_BUFFER, copy_range, read_line, read_range, span, sync_dir};
use super::lock::LockGuard;
use super::slot::{Rank, Slot, SlotState};
use super::{MAX_REOPEN, Shard};
use crate::error::TierError;

/// What a rewrite does with the live line of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Carried over.
    Keep,
    /// Left out: the key is removed.
    Remove,
    /// Would have been removed, but the entry cannot be read: carried over, marked unreadable
    /// and reported in [`Rewritten::kept_unreadable`].
    KeepUnreadable,
}

/// What a rewrite did.
#[derive(Debug, Default)]
pub(crate) struct Rewritten {
    /// Keys removed.
    pub(crate) removed: Vec<String>,
    /// Keys whose verdict was [`Verdict::KeepUnreadable`].
    pub(crate) kept_unreadable: Vec<String>,
    /// Stray lines carried over verbatim.
    pub(crate) carried_stray: u64,
    /// Stray lines dropped (only by the operator's removal).
    pub(crate) dropped_stray: u64,
}

/// A test's hook, run after the temporary file of a rewrite is written and before the shard
/// file's identity is checked for the rename: it plays another writer working meanwhile.
#[cfg(test)]
pub(crate) struct RenameHook(pub(crate) Box<dyn FnMut(&Path) + Send>);

#[cfg(test)]
impl fmt::Debug for RenameHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RenameHook")
    }
}

impl Shard {
    /// Appends `line` (without terminator) as the live line of `key`; `creds` says whether it
    /// holds a credential token (encrypted with the ring's current key, so known to open).
    /// `_guard` proves the exclusive lock is held and the index is
    /// current, so the file ends where the index does.
    pub(crate) fn append(
        &mut self,
        _guard: &LockGuard,
        key: &str,
        line: &[u8],
        creds: bool,
        rank: Rank,
        expires: i64,
    ) -> Result<(), TierError> {
        let (Some(file), Some(before)) = (self.file.clone(), self.ident) else {
            return Err(self.not_locked());
        };
        let lead = u64::from(self.unterminated);
        let mut buf = Vec::with_capacity(line.len() + 2);
        if self.unterminated {
            // End the cut line first, so it stays one damaged line and ours stays intact.
            buf.push(b'\n');
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if let Err(e) = (&*file).write_all(&buf) {
            // Part of the line may be on disk: read the file again next time.
            self.ident = None;
            return Err(TierError::io("append to shard", &self.path)(e));
        }
        let after = match file.metadata() {
            Ok(m) => Ident::of(&m),
            Err(e) => {
                self.ident = None;
                return Err(TierError::io("stat shard", &self.path)(e));
            }
        };
        if after.len != before.len + buf.len() as u64 {
            // Someone wrote without the lock: trust only a fresh read.
            self.ident = None;
            return Ok(());
        }
        self.ident = Some(after);
        self.unterminated = false;
        let prior = self.index.get(key).and_then(Slot::rank);
        self.insert(
            key.to_owned(),
            Slot {
                offset: before.len + lead,
                len: line.len(),
                home: self.id,
                term: 1,
                creds,
                verified: true,
                corrupt: false,
                state: SlotState::Valid {
                    rank: rank.after(prior),
                    expires,
                },
            },
        );
        Ok(())
    }

    /// Replaces the file with one holding the lines `verdict` keeps, in their order and byte for
    /// byte (each with its own terminator; a last line without one gets `\n`): every live line
    /// whose verdict is not [`Verdict::Remove`], and every stray line unless `drop_stray`.
    /// Superseded and blank lines are dropped. `verdict` sees each live key, its slot and its
    /// line's bytes.
    ///
    /// The new file is written to `shard_NN.jsonl.tmp` and fsynced. Then, still under the lock,
    /// the shard file's identity (device, inode, length, mtime) is checked against what was read:
    /// a writer that does not take our lock (proxywhirl renames its own rewrite over the shard)
    /// may have changed it meanwhile, and renaming over its file would lose its lines. If so, the
    /// temporary file is dropped, the lock taken again on the file now at the path, its changes
    /// read, and the rewrite done again from there. Otherwise the temporary file is renamed over
    /// the shard and the directory fsynced.
    ///
    /// Nothing is written when nothing would change (no key removed, no stray line to drop, no
    /// dead line). Returns what was done, and the lock (held on the file now at the path).
    pub(crate) fn rewrite(
        &mut self,
        mut guard: LockGuard,
        drop_stray: bool,
        mut verdict: impl FnMut(&str, &Slot, &[u8]) -> Verdict,
    ) -> Result<(Rewritten, LockGuard), TierError> {
        for _ in 0..MAX_REOPEN {
            let (Some(file), Some(ident)) = (self.file.clone(), self.ident) else {
                return Err(self.not_locked());
            };
            // A file within READ_WHOLE is read at once (one read); a larger one line by line, so
            // a rewrite holds at most one line and one chunk of a long stray line.
            let old = if ident.len <= READ_WHOLE {
                Some(read_range(&file, 0, ident.len, &self.path)?)
            } else {
                None
            };
            let mut scratch = Vec::new();
            let mut done = Rewritten::default();
            for (key, slot) in &self.index {
                let bytes = match &old {
                    Some(old) => span(old, slot.offset, slot.len),
                    None => read_line(&file, slot.offset, slot.len, ident.len, &mut scratch),
                };
                let Some(bytes) = bytes else {
                    self.ident = None;
                    return Err(self.past_end());
                };
                match verdict(key, slot, bytes) {
                    Verdict::Keep => {}
                    Verdict::Remove => done.removed.push(key.clone()),
                    Verdict::KeepUnreadable => done.kept_unreadable.push(key.clone()),
                }
            }
            let drop_stray = drop_stray && !self.stray.is_empty();
            if done.removed.is_empty() && !drop_stray && self.counts.dead() == 0 {
                self.mark_unreadable(&done.kept_unreadable);
                return Ok((done, guard));
            }
            let gone: HashSet<&str> = done.removed.iter().map(String::as_str).collect();
            // (offset, content length, terminator length) of every line kept, in file order.
            let mut kept: Vec<(u64, usize, u8)> = self
                .index
                .iter()
                .filter(|(k, _)| !gone.contains(k.as_str()))
                .map(|(_, s)| (s.offset, s.len, s.term))
                .collect();
            if !drop_stray {
                kept.extend(self.stray.iter().map(|l| (l.offset, l.len, l.term)));
            }
            kept.sort_unstable();
            if kept
                .iter()
                .any(|&(offset, len, term)| offset.saturating_add((len + usize::from(term)) as u64) > ident.len)
            {
                self.ident = None;
                return Err(self.past_end());
            }
            let mut moved = HashMap::with_capacity(kept.len());
            let (new_file, meta) = self.write_tmp(|out| {
                let mut written = 0u64;
                let mut chunk = Vec::new();
                for &(offset, len, term) in &kept {
                    moved.insert(offset, written);
                    let with_term = len + usize::from(term);
                    match &old {
                        Some(old) => match span(old, offset, with_term) {
                            Some(bytes) => out.write_all(bytes)?,
                            None => return Err(io::Error::other("the index points past the end of the file")),
                        },
                        None => copy_range(&file, offset, with_term as u64, &mut chunk, out)?,
                    }
                    written += with_term as u64;
                    if term == 0 {
                        out.write_all(b"\n")?;
                        written += 1;
                    }
                }
                Ok(())
            })?;
            #[cfg(test)]
            if let Some(hook) = self.before_rename.as_mut() {
                (hook.0)(&self.path);
            }
            if !self.path_still_is(ident)? {
                // Changed by a writer without our lock: our rewrite would lose its lines.
                let _ = fs::remove_file(&self.tmp_path);
                drop(guard);
                tracing::debug!(shard = self.id, "JSONL shard changed during a rewrite; rewriting again");
                guard = self.lock_exclusive()?;
                continue;
            }
            if let Err(e) = fs::rename(&self.tmp_path, &self.path) {
                let _ = fs::remove_file(&self.tmp_path);
                return Err(TierError::io("rename temporary file over", &self.path)(e));
            }
            // The file is replaced: the index must describe the new one from here on.
            for key in &done.removed {
                self.remove(key);
            }
            for slot in self.index.values_mut() {
                if let Some(&offset) = moved.get(&slot.offset) {
                    slot.offset = offset;
                    slot.term = slot.term.max(1);
                }
            }
            if drop_stray {
                done.dropped_stray = self.stray.len() as u64;
                self.stray.clear();
                self.counts.undecodable = 0;
                self.counts.non_entry = 0;
            } else {
                done.carried_stray = self.stray.len() as u64;
                for line in &mut self.stray {
                    if let Some(&offset) = moved.get(&line.offset) {
                        line.offset = offset;
                        line.term = line.term.max(1);
                    }
                }
            }
            self.counts.blank = 0;
            self.counts.superseded = 0;
            self.mark_unreadable(&done.kept_unreadable);
            self.unterminated = false;
            self.file = Some(Arc::new(new_file));
            self.writable = true;
            self.ident = Some(Ident::of(&meta));
            sync_dir(&self.dir)?;
            return Ok((done, guard));
        }
        Err(self.unstable())
    }

    /// Marks the live lines of `keys` as holding an unreadable token.
    fn mark_unreadable(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(slot) = self.index.get_mut(key)
                && !slot.corrupt
                && !slot.is_invalid()
            {
                slot.corrupt = true;
                self.corrupt += 1;
            }
        }
    }

    /// Whether the file at the path is still the one described by `ident` (same device, inode,
    /// length and mtime).
    fn path_still_is(&self, ident: Ident) -> Result<bool, TierError> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Ident::of(&meta) == ident),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TierError::io("stat shard", &self.path)(e)),
        }
    }

    fn past_end(&self) -> TierError {
        TierError::Io {
            op: "rewrite shard",
            path: self.path.clone(),
            source: io::Error::other("the index points past the end of the file"),
        }
    }

    /// Writes what `fill` writes to a fresh temporary file (buffered) and fsyncs it.
    fn write_tmp(&self, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(File, Metadata), TierError> {
        let tmp = &self.tmp_path;
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io("remove temporary file", tmp)(e)),
        }
        let written = (|| {
            let f = private_fs::open_regular(private_fs::open_options().read(true).append(true).create_new(true), tmp)?;
            let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, f);
            fill(&mut out)?;
            let f = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            f.sync_all()?;
            let meta = f.metadata()?;
            Ok::<_, io::Error>((f, meta))
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(tmp);
            TierError::io("write temporary file", tmp)(e)
        })
    }

    /// Removes the shard file (under its exclusive lock); returns the keys it held.
    pub(crate) fn remove_file(&mut self) -> Result<Vec<String>, TierError> {
        if !self.path.exists() {
            self.forget();
            return Ok(Vec::new());
        }
        let guard = self.lock_exclusive()?;
        let keys = self.index.keys().cloned().collect();
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io("remove shard", &self.path)(e)),
        }
        self.forget();
        drop(guard);
        Ok(keys)
    }
}
