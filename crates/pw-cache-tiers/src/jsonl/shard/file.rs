//! The shard file itself: what identifies the content indexed ([`Ident`]), opening it, reading
//! it in bounded chunks, and making renames in its directory durable.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use pw_cache_crypto::private_fs;

use crate::error::TierError;

/// What identifies the content we indexed: which inode, how long, last modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ident {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) len: u64,
    pub(super) mtime: (i64, i64),
}

impl Ident {
    pub(super) fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    pub(super) fn same_file(&self, other: &Ident) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// How many bytes of a shard are read at a time when indexing it or copying a long line.
pub(super) const READ_CHUNK: usize = 1 << 20;

/// Up to [`READ_CHUNK`] of `left` bytes.
pub(super) fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(READ_CHUNK, |left| left.min(READ_CHUNK))
}

/// Reads bytes `from..to` of `file`.
pub(super) fn read_range(file: &File, from: u64, to: u64, path: &Path) -> Result<Vec<u8>, TierError> {
    let len = usize::try_from(to.saturating_sub(from)).map_err(|_| TierError::Io {
        op: "read shard",
        path: path.to_owned(),
        source: io::Error::new(ErrorKind::OutOfMemory, "shard file larger than the address space"),
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, from)
        .map_err(TierError::io("read shard", path))?;
    Ok(buf)
}

/// Where the line that goes on at `from` ends, before `to`: the offset of its terminator and
/// the terminator's length (`\n`, `\r\n`, `\r`; 0 when the line runs to `to`). Reads
/// [`READ_CHUNK`] bytes at a time, holding nothing more.
pub(super) fn line_end(file: &File, mut from: u64, to: u64) -> io::Result<(u64, u8)> {
    let mut buf = vec![0u8; chunk_len(to.saturating_sub(from))];
    while from < to {
        let n = chunk_len(to - from);
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n' || b == b'\r') {
            let at = from + i as u64;
            if buf[i] == b'\n' {
                return Ok((at, 1));
            }
            let next = if i + 1 < n {
                Some(buf[i + 1])
            } else if at + 1 < to {
                let mut next = [0u8; 1];
                file.read_exact_at(&mut next, at + 1)?;
                Some(next[0])
            } else {
                None
            };
            return Ok((at, if next == Some(b'\n') { 2 } else { 1 }));
        }
        from += n as u64;
    }
    Ok((to, 0))
}

/// A shard up to this long is read whole by a rewrite (one read); a longer one line by line.
pub(super) const READ_WHOLE: u64 = 64 << 20;

/// The write buffer of a rewrite's temporary file.
pub(super) const WRITE_BUFFER: usize = 1 << 20;

/// Bytes `offset..offset + len` of `file` (`file_len` long) into `scratch`, if they are there.
pub(super) fn read_line<'a>(
    file: &File,
    offset: u64,
    len: usize,
    file_len: u64,
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    if offset.checked_add(len as u64)? > file_len {
        return None;
    }
    scratch.clear();
    scratch.resize(len, 0);
    file.read_exact_at(scratch, offset).ok()?;
    Some(scratch)
}

/// Copies `len` bytes of `file` from `offset` to `out`, [`READ_CHUNK`] at a time through
/// `chunk`.
pub(super) fn copy_range(
    file: &File,
    mut offset: u64,
    mut len: u64,
    chunk: &mut Vec<u8>,
    out: &mut dyn Write,
) -> io::Result<()> {
    while len > 0 {
        let n = chunk_len(len);
        chunk.resize(n, 0);
        file.read_exact_at(&mut chunk[..n], offset)?;
        out.write_all(&chunk[..n])?;
        offset += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// Bytes `offset..offset + len` of `bytes`, if they are there.
pub(super) fn span(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// Opens an existing shard for reading and appending, or only reading when that is refused.
/// Never through a symbolic link, and only a regular file (see [`private_fs::open_regular`]).
pub(super) fn open_existing(path: &Path) -> io::Result<(Arc<File>, bool)> {
    match private_fs::open_regular(OpenOptions::new().read(true).append(true), path) {
        Ok(f) => Ok((Arc::new(f), true)),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(e),
        Err(_) => private_fs::open_regular(OpenOptions::new().read(true), path).map(|f| (Arc::new(f), false)),
    }
}

/// Fsyncs a directory, making renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), TierError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(TierError::io("sync directory", dir))
}
