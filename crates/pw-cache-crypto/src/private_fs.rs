//! Files and directories that hold secrets, or anything derived from them, are created private:
//! directories `0700`, files `0600` (owner only), whatever the process umask allows beyond
//! that. A cache holds credentials (encrypted) and its key file holds the key that opens them;
//! other local users have no reason to read either, and a token they cannot read is one they
//! cannot try to open. Existing directories and files keep the modes they have: their owner
//! chose them.
//!
//! Every tier and the key file create their paths through this module.
//!
//! Cache files are regular files, never followed through a symbolic link: another local user
//! who can write to a shared cache directory could otherwise plant `shard_00.jsonl ->
//! /some/file/of/ours` and have us append to (or SQLite write into) a file they chose.
//! [`open_regular`] opens with `O_NOFOLLOW` (a symlink at the path is an error, not
//! followed) and `O_NONBLOCK` (a FIFO planted at the path does not block the open), and
//! [`check_regular`] refuses a descriptor that is not a regular file. [`precreate_file`] does
//! the same for files another library opens afterwards by name (`O_CREAT | O_EXCL`, which never
//! follows a link, then `lstat` of an existing path: [`check_path_regular`]).

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of directories this crate's users create.
pub const DIR_MODE: u32 = 0o700;

/// The mode of files this crate's users create.
pub const FILE_MODE: u32 = 0o600;

/// `fs::create_dir_all`, each directory it creates mode [`DIR_MODE`].
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path)
}

/// `OpenOptions::new()` whose `create`/`create_new` make the file mode [`FILE_MODE`].
pub fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Turns the error of an open with `O_NOFOLLOW` into one that says why: `ELOOP` is what
/// `O_NOFOLLOW` gives for a symbolic link at the path.
pub fn not_followed(e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is a symbolic link: refused (cache files are never followed through a link)",
        );
    }
    e
}

/// Opens `path` with `options` plus `O_NOFOLLOW` (a symbolic link at the path is an error, see
/// [`not_followed`], not followed) and `O_NONBLOCK` (a FIFO at the path does not block the
/// open; nothing changes for a regular file), and checks that it is a regular file
/// ([`check_regular`]).
pub fn open_regular(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(not_followed)?;
    check_regular(&file)?;
    Ok(file)
}

/// The metadata of `file` (an `fstat` of its descriptor) if it is a regular file; else an
/// error saying it is not one (a directory, a FIFO, a device, a socket).
pub fn check_regular(file: &File) -> io::Result<Metadata> {
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(not_regular(&meta))
    }
}

fn not_regular(meta: &Metadata) -> io::Error {
    let what = if meta.is_dir() {
        "a directory"
    } else if meta.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file (a FIFO, a device or a socket)"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("the path is {what}: refused (cache files must be regular files)"),
    )
}

/// Checks with `lstat` that `path`, if it exists, is a regular file and not a symbolic link;
/// whether it exists. For paths another library opens by name (SQLite follows symlinks): the
/// check and that library's open are two steps, so a file swapped for a link between them is
/// not caught here (SQLite's own `SQLITE_OPEN_NOFOLLOW` narrows that for the database file).
pub fn check_path_regular(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(meta) => Err(not_regular(&meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `path` empty, mode [`FILE_MODE`], if it does not exist (an existing file is left as
/// it is). For files another library creates later with default modes (SQLite databases:
/// SQLite gives their `-wal` and `-shm` files the database file's mode).
///
/// The path must be a regular file or nothing: a symbolic link (even to a regular file, or
/// dangling), a directory or a FIFO at the path is an error and nothing is written. (The
/// create is `O_CREAT | O_EXCL`, which never follows a link; an existing path is then checked
/// with `lstat`, so an existing read-only file is fine.)
pub fn precreate_file(path: &Path) -> io::Result<()> {
    match open_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_path_regular(path).map(drop),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_paths_are_private_and_existing_ones_untouched() {
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nested = root.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&nested)), (0o700, 0o700));
        assert_eq!(mode(root.path()), 0o755, "an existing directory keeps its mode");
        let file = nested.join("f");
        precreate_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        precreate_file(&file).unwrap();
        assert_eq!(mode(&file), 0o640, "an existing file keeps its mode");
        let other = nested.join("g");
        open_options().write(true).create(true).open(&other).unwrap();
        assert_eq!(mode(&other), 0o600);
    }

    #[test]
    fn precreate_refuses_links_and_non_regular_files() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        std::fs::write(&target, b"theirs").unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = precreate_file(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let dangling = root.path().join("dangling");
        std::os::unix::fs::symlink(root.path().join("nowhere"), &dangling).unwrap();
        assert!(precreate_file(&dangling).is_err());
        assert!(
            !root.path().join("nowhere").exists(),
            "a dangling link is not created through"
        );
        let e = precreate_file(root.path()).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert!(check_path_regular(&link).is_err());
        assert!(check_path_regular(&target).unwrap());
        assert!(!check_path_regular(&root.path().join("none")).unwrap());
    }
}
