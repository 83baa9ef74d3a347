//! Files and directories that hold secrets, or anything derived from them, are created private:
//! directories `0700`, files `0600` (owner only), whatever the process umask allows beyond
//! that. A cache holds credentials (encrypted) and its key file holds the key that opens them;
//! other local users have no reason to read either, and a token they cannot read is one they
//! cannot try to open. Existing directories and files keep the modes they have: their owner
//! chose them.
//!
//! Every tier and the key file create their paths through this module.

use std::fs::{DirBuilder, OpenOptions};
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

/// Creates `path` empty, mode [`FILE_MODE`], if it does not exist (an existing file is left as
/// it is). For files another library creates later with default modes (SQLite databases:
/// SQLite gives their `-wal` and `-shm` files the database file's mode).
pub fn precreate_file(path: &Path) -> io::Result<()> {
    match open_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
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
}
