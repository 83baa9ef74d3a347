//! Trust checks on the paths a cache uses, as ssh and gpg make them: a directory that holds the
//! cache (the L2 directory, the key file's directory, the L3 database's directory) must be owned
//! by the user running the cache (or by root) and not writable by group or others; otherwise
//! another local user could have made it (in a shared place such as `/tmp`) with a key or
//! databases of their own in it, or could replace files in it later.
//!
//! The owner check is never relaxed. The mode check can be, by [`Trust::AllowGroupOtherWritable`]
//! (a directory shared with a group on purpose); the default is [`Trust::Strict`].
//!
//! Its parents are checked too, as ssh checks the path to `authorized_keys`: each must be owned
//! by this user or root and not writable by group or others unless it is sticky (as `/tmp` is:
//! then others cannot rename what is not theirs), and a symbolic link met on the way must be
//! owned by this user or root. A parent that another user can change lets that user move the
//! cache directory away and put their own in its place between two opens. See
//! [`pw_cache::docs::security`], "Threat model: who may write the cache directory".
//!
//! [`pw_cache::docs::security`]: https://docs.rs/pw-cache/latest/pw_cache/docs/security/index.html

use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

/// How strictly [`check_dir`] and the key file's checks treat what they find.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Trust {
    /// Owned by this user (or root) and not writable by group or others: the default.
    #[default]
    Strict,
    /// Owned by this user (or root); a directory writable by group or others is accepted (for
    /// a directory shared with a group on purpose). The owner check stays.
    AllowGroupOtherWritable,
}

/// The owner of a path, for messages: its uid, and its name when `/etc/passwd` has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The numeric user id.
    pub uid: u32,
    /// The user's name, when it could be looked up cheaply.
    pub name: Option<String>,
}

impl Owner {
    fn of(uid: u32) -> Self {
        Self {
            uid,
            name: user_name(uid),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "uid {} ({name})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// A path the cache refuses to use. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Owned by another user than this one (and not root): it may have been planted.
    #[error(
        "{what} {} is owned by {owner}, not by this user (uid {current_uid}) or root (mode {mode:03o}): \
         refusing to use it, another local user may have planted it; remove it or use a path of your own",
        path.display()
    )]
    NotOwned {
        /// What the path is (`directory`, `key file`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: Owner,
        /// This process's effective uid.
        current_uid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory writable by group or others, under [`Trust::Strict`].
    #[error(
        "{what} {} is writable by group or others (owner {owner}, mode {mode:03o}): another local user \
         could plant or replace files in it; run `chmod go-w` on it, or allow it explicitly \
         (Trust::AllowGroupOtherWritable)",
        path.display()
    )]
    WritableByOthers {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: Owner,
        /// Its permission bits.
        mode: u32,
    },
    /// A parent of the directory, or a symbolic link on the way to it, that another user owns.
    #[error(
        "directory {} lies under {}, which is owned by {owner} (mode {mode:03o}), not by this user or \
         root: that user could move it away and put their own in its place; use a \
         directory under one you own (such as $XDG_CACHE_HOME)",
        path.display(),
        parent.display()
    )]
    ParentNotOwned {
        /// The directory being checked.
        path: PathBuf,
        /// The parent (or link) that is not safe.
        parent: PathBuf,
        /// Its owner.
        owner: Owner,
        /// Its permission bits.
        mode: u32,
    },
    /// A parent of the directory that group or others may write and that is not sticky, under
    /// [`Trust::Strict`].
    #[error(
        "directory {} lies under {}, which group or others may write and which is not sticky (owner \
         {owner}, mode {mode:03o}): another local user could move it away and put their own in its \
         place; run `chmod go-w` (or `chmod +t`) on it, use a directory under one you own, or allow \
         it explicitly (Trust::AllowGroupOtherWritable)",
        path.display(),
        parent.display()
    )]
    ParentWritableByOthers {
        /// The directory being checked.
        path: PathBuf,
        /// The parent that is not safe.
        parent: PathBuf,
        /// Its owner.
        owner: Owner,
        /// Its permission bits.
        mode: u32,
    },
    /// Not the kind of file expected (a key file that is a FIFO, a device, a directory ...).
    #[error("{what} {} is {found}, not {expected}", path.display())]
    WrongType {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What was found there (`a FIFO`, `a character device` ...).
        found: &'static str,
        /// What was expected there (`a regular file`, `a directory`).
        expected: &'static str,
    },
    /// A key file that is a symbolic link: never followed.
    #[error(
        "{what} {} is a symbolic link: refused (a link could point anywhere, e.g. at another user's key); \
         point the cache at the file itself",
        path.display()
    )]
    Symlink {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A key file larger than [`crate::key_file::MAX_KEY_FILE_BYTES`].
    #[error("{what} {} is larger than {limit} bytes: not a key file", path.display())]
    TooLarge {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The path could not be created or examined.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// This process's effective user id (0 where there are no user ids).
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::geteuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Checks that the directory `path` can be trusted under `trust`: it is a directory (a
/// symbolic link to one counts, if the link itself is owned by this user or root), owned by this
/// user or root, and (unless relaxed) not writable by group or others; and its parents are safe
/// (see the module docs). Reads nothing inside it.
pub fn check_dir(path: &Path, trust: Trust) -> Result<(), TrustError> {
    check_dir_itself(path, trust)?;
    check_parents(path, trust)
}

/// [`check_dir`] without the parents.
fn check_dir_itself(path: &Path, trust: Trust) -> Result<(), TrustError> {
    const WHAT: &str = "directory";
    let io_err = |source| TrustError::Io {
        what: WHAT,
        path: path.to_path_buf(),
        source,
    };
    let link = fs::symlink_metadata(path).map_err(io_err)?;
    if link.file_type().is_symlink() {
        check_owner(WHAT, path, &link)?;
    }
    let meta = fs::metadata(path).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(TrustError::WrongType {
            what: WHAT,
            path: path.to_path_buf(),
            found: kind_of(&meta),
            expected: "a directory",
        });
    }
    check_owner(WHAT, path, &meta)?;
    let mode = mode_of(&meta);
    if trust == Trust::Strict && mode & 0o022 != 0 {
        return Err(TrustError::WritableByOthers {
            what: WHAT,
            path: path.to_path_buf(),
            owner: Owner::of(uid_of(&meta)),
            mode,
        });
    }
    Ok(())
}

/// Checks the way to the directory `path`: every symbolic link among the components of `path`
/// (made absolute) is owned by this user or root, and every parent of the directory it resolves
/// to is owned by this user or root and, under [`Trust::Strict`], not writable by group or
/// others unless sticky.
fn check_parents(path: &Path, trust: Trust) -> Result<(), TrustError> {
    const WHAT: &str = "directory";
    let io_err = |at: &Path, source| TrustError::Io {
        what: WHAT,
        path: at.to_path_buf(),
        source,
    };
    let absolute = std::path::absolute(path).map_err(|e| io_err(path, e))?;
    // Links on the way as written (the last component, the directory itself, is checked by
    // `check_dir_itself`).
    for prefix in absolute.ancestors().skip(1) {
        let meta = fs::symlink_metadata(prefix).map_err(|e| io_err(prefix, e))?;
        if meta.file_type().is_symlink() {
            parent_owner(path, prefix, &meta)?;
        }
    }
    // The directories it really lies in.
    let real = fs::canonicalize(path).map_err(|e| io_err(path, e))?;
    for parent in real.ancestors().skip(1) {
        let meta = fs::metadata(parent).map_err(|e| io_err(parent, e))?;
        parent_owner(path, parent, &meta)?;
        let mode = mode_of(&meta);
        let sticky = mode & 0o1000 != 0;
        if trust == Trust::Strict && mode & 0o022 != 0 && !sticky {
            return Err(TrustError::ParentWritableByOthers {
                path: path.to_path_buf(),
                parent: parent.to_path_buf(),
                owner: Owner::of(uid_of(&meta)),
                mode,
            });
        }
    }
    Ok(())
}

/// Fails unless the parent (or link) `parent` of `path`, described by `meta`, is owned by this
/// user or root.
fn parent_owner(path: &Path, parent: &Path, meta: &Metadata) -> Result<(), TrustError> {
    let Some(uid) = foreign_owner(meta) else {
        return Ok(());
    };
    Err(TrustError::ParentNotOwned {
        path: path.to_path_buf(),
        parent: parent.to_path_buf(),
        owner: Owner::of(uid),
        mode: mode_of(meta),
    })
}

/// Creates the directory `path` and its missing parents (each new one mode
/// [`crate::private_fs::DIR_MODE`]), then checks it with [`check_dir`]: a directory that was
/// already there (or that someone else made in between) is used only if it can be trusted.
/// The tiers call this for their directories.
pub fn create_trusted_dir_all(path: &Path, trust: Trust) -> Result<(), TrustError> {
    crate::private_fs::create_dir_all(path).map_err(|source| TrustError::Io {
        what: "directory",
        path: path.to_path_buf(),
        source,
    })?;
    check_dir(path, trust)
}

/// Fails unless `meta` (of `path`) is owned by this user or root.
pub(crate) fn check_owner(what: &'static str, path: &Path, meta: &Metadata) -> Result<(), TrustError> {
    let Some(uid) = foreign_owner(meta) else {
        return Ok(());
    };
    Err(TrustError::NotOwned {
        what,
        path: path.to_path_buf(),
        owner: Owner::of(uid),
        current_uid: current_uid(),
        mode: mode_of(meta),
    })
}

/// The owner of `meta` when it is neither this user nor root (the one owner rule of every check).
fn foreign_owner(meta: &Metadata) -> Option<u32> {
    let uid = uid_of(meta);
    (uid != current_uid() && uid != 0).then_some(uid)
}

/// The permission bits of `meta` (0 where there are none).
pub(crate) fn mode_of(meta: &Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

fn uid_of(meta: &Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.uid()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        current_uid()
    }
}

/// What kind of file `meta` describes, for messages.
pub(crate) fn kind_of(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// The name of `uid` in `/etc/passwd` (read up to 1 MiB), if any.
fn user_name(uid: u32) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    fs::File::open("/etc/passwd")
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
        .ok()?;
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A uid with no user entry: another user, for owner checks (the tests run as root).
    const OTHER_UID: u32 = 12345;

    fn chown(path: &Path, uid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
    }

    #[test]
    fn own_private_directory_is_trusted_and_created() {
        let root = tempfile::tempdir().unwrap();
        check_dir(root.path(), Trust::Strict).unwrap();
        let new = root.path().join("a/b");
        create_trusted_dir_all(&new, Trust::Strict).unwrap();
        assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn directory_of_another_user_is_refused_even_relaxed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("planted");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("pw-cache.key"), "x").unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        chown(&dir, OTHER_UID);
        for trust in [Trust::Strict, Trust::AllowGroupOtherWritable] {
            let err = create_trusted_dir_all(&dir, trust).unwrap_err();
            assert!(
                matches!(&err, TrustError::NotOwned { owner, .. } if owner.uid == OTHER_UID),
                "{err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&dir.display().to_string()) && msg.contains("uid 12345") && msg.contains("mode 700"),
                "{msg}"
            );
        }
        assert_eq!(fs::read_to_string(dir.join("pw-cache.key")).unwrap(), "x");
    }

    #[test]
    fn symlink_to_own_directory_owned_by_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("mine");
        fs::create_dir(&target).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        check_dir(&link, Trust::Strict).unwrap();
        chown(&link, OTHER_UID);
        assert!(matches!(
            check_dir(&link, Trust::Strict),
            Err(TrustError::NotOwned { .. })
        ));
    }

    #[test]
    fn writable_by_group_or_others_is_refused_unless_allowed() {
        let root = tempfile::tempdir().unwrap();
        for mode in [0o770, 0o702, 0o1777] {
            fs::set_permissions(root.path(), fs::Permissions::from_mode(mode)).unwrap();
            let err = check_dir(root.path(), Trust::Strict).unwrap_err();
            assert!(matches!(err, TrustError::WritableByOthers { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(&root.path().display().to_string()) && msg.contains(&format!("mode {mode:03o}")),
                "{msg}"
            );
            check_dir(root.path(), Trust::AllowGroupOtherWritable).unwrap();
        }
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        check_dir(root.path(), Trust::Strict).unwrap();
    }

    #[test]
    fn a_parent_of_another_user_is_refused_even_relaxed() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("theirs");
        let dir = parent.join("cache");
        create_trusted_dir_all(&dir, Trust::Strict).unwrap();
        chown(&parent, OTHER_UID);
        for trust in [Trust::Strict, Trust::AllowGroupOtherWritable] {
            let err = check_dir(&dir, trust).unwrap_err();
            let TrustError::ParentNotOwned {
                path, parent: p, owner, ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!((path, p, owner.uid), (&dir, &parent, OTHER_UID));
            let msg = err.to_string();
            assert!(
                msg.contains(&parent.display().to_string()) && msg.contains("uid 12345"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_parent_writable_by_others_is_refused_unless_sticky_or_allowed() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("shared");
        let dir = parent.join("cache");
        create_trusted_dir_all(&dir, Trust::Strict).unwrap();
        for mode in [0o777, 0o775, 0o757] {
            fs::set_permissions(&parent, fs::Permissions::from_mode(mode)).unwrap();
            let err = check_dir(&dir, Trust::Strict).unwrap_err();
            assert!(
                matches!(&err, TrustError::ParentWritableByOthers { parent: p, mode: m, .. } if p == &parent && *m == mode),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("mode {mode:03o}")), "{err}");
            check_dir(&dir, Trust::AllowGroupOtherWritable).unwrap();
        }
        // Sticky, as /tmp: others cannot rename what is not theirs.
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).unwrap();
        check_dir(&dir, Trust::Strict).unwrap();
        // A grandparent counts as well.
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            check_dir(&dir, Trust::Strict),
            Err(TrustError::ParentWritableByOthers { .. })
        ));
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o700)).unwrap();
        check_dir(&dir, Trust::Strict).unwrap();
    }

    #[test]
    fn a_link_of_another_user_on_the_way_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        create_trusted_dir_all(&real.join("cache"), Trust::Strict).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dir = link.join("cache");
        check_dir(&dir, Trust::Strict).unwrap();
        chown(&link, OTHER_UID);
        let err = check_dir(&dir, Trust::AllowGroupOtherWritable).unwrap_err();
        assert!(
            matches!(&err, TrustError::ParentNotOwned { parent, .. } if parent == &link),
            "{err}"
        );
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            create_trusted_dir_all(&file, Trust::Strict),
            Err(TrustError::Io { .. } | TrustError::WrongType { .. })
        ));
    }
}
