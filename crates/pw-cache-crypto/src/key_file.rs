//! The key file: where a cache with no configured key keeps the key it made, so that the next
//! process (or the next run) reads what this one wrote.
//!
//! Format: UTF-8 text; blank lines and lines starting with `#` are ignored; the first key line
//! is the current key, further key lines are previous keys (oldest last).
//!
//! Creation is atomic and never overwrites: the key is written to a temporary file created
//! with mode 0600 in the same directory, synced, then hard-linked to the final name, which
//! fails if the name exists. Of several processes racing to create it, exactly one wins and
//! every other one reads the winner's key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{CryptoError, KeySource};
use crate::key::FernetKey;
use crate::trust::{Trust, TrustError};

/// File name of the key file a cache creates in its directory when no key is configured.
pub const DEFAULT_KEY_FILE_NAME: &str = "pw-cache.key";

const HEADER: &str = "# pw-cache credential encryption key (Fernet), made because no key was configured.\n\
# Keep it private (mode 0600) and back it up with the cache: without it the stored\n\
# credentials cannot be read. To manage keys yourself, see docs/security.md.\n";

/// The largest key file read, in bytes: a header and a few hundred keys (each key line is 45
/// bytes). A larger file is refused ([`TrustError::TooLarge`]) and at most this many bytes plus
/// one are read from it.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CryptoError + '_ {
    move |source| CryptoError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    }
}

/// The keys of a key file, and what is worth telling its owner about it.
#[derive(Debug)]
pub struct KeyFileContents {
    /// The keys, current first.
    pub keys: Vec<FernetKey>,
    /// Warnings for an operator (the file is readable by group or others ...), each a sentence
    /// naming the file. Also logged with `tracing`.
    pub warnings: Vec<String>,
}

/// Reads the keys of a key file; `Ok(None)` when the file does not exist. Checked as
/// [`read_key_file_trusting`] with [`Trust::Strict`]; its warnings only go to `tracing`.
pub fn read_key_file(path: &Path) -> Result<Option<Vec<FernetKey>>, CryptoError> {
    Ok(read_key_file_trusting(path, Trust::Strict)?.map(|contents| contents.keys))
}

/// The directory of the key file `path`.
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads the keys of a key file; `Ok(None)` when the file (or its directory) does not exist.
///
/// Before anything in it is opened, its directory is checked ([`crate::trust::check_dir`] under
/// `trust`). The file itself is opened without following a symbolic link and without blocking
/// (a FIFO does not hang the open), then, on the open file: it must be a regular file
/// ([`TrustError::WrongType`]), owned by this user or root ([`TrustError::NotOwned`]: a key
/// another user planted is refused, whatever `trust`), and at most [`MAX_KEY_FILE_BYTES`]
/// long ([`TrustError::TooLarge`]). A file readable by group or others is read, with a
/// warning in [`KeyFileContents::warnings`]: the key is already exposed, and refusing it would
/// make its credentials unreadable without protecting them.
pub fn read_key_file_trusting(path: &Path, trust: Trust) -> Result<Option<KeyFileContents>, CryptoError> {
    let dir = dir_of(path);
    match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        _ => crate::trust::check_dir(&dir, trust)?,
    }
    let Some(file) = open_no_follow(path)? else {
        return Ok(None);
    };
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(TrustError::WrongType {
            what: WHAT,
            path: path.to_path_buf(),
            found: crate::trust::kind_of(&meta),
            expected: "a regular file",
        }
        .into());
    }
    crate::trust::check_owner(WHAT, path, &meta)?;
    let too_large = || TrustError::TooLarge {
        what: WHAT,
        path: path.to_path_buf(),
        limit: MAX_KEY_FILE_BYTES,
    };
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(too_large().into());
    }
    let mut text = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io_error(path))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(too_large().into());
    }
    let mut warnings = Vec::new();
    let mode = crate::trust::mode_of(&meta);
    if cfg!(unix) && mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:03o}"),
            "key file is readable by other users; run `chmod 600` on it"
        );
        warnings.push(format!(
            "key file {} is accessible to group or others (mode {mode:03o}): other local users may have \
             read the key that opens the cached credentials; run `chmod 600` on it (and rotate the key if \
             others had access)",
            path.display()
        ));
    }
    let text = std::str::from_utf8(&text).map_err(|_| CryptoError::InvalidKey {
        origin: KeySource::KeyFile {
            path: path.to_path_buf(),
            line: 1,
        },
        reason: "the file is not UTF-8 text".to_owned(),
    })?;
    let keys = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(i, line)| {
            FernetKey::parse(
                line,
                KeySource::KeyFile {
                    path: path.to_path_buf(),
                    line: i + 1,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(CryptoError::EmptyKeyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(KeyFileContents { keys, warnings }))
}

/// What the key file is called in errors.
const WHAT: &str = "key file";

/// Opens `path` read-only without following a final symbolic link and without blocking (a
/// FIFO with no writer opens at once); `Ok(None)` when it does not exist.
fn open_no_follow(path: &Path) -> Result<Option<File>, CryptoError> {
    #[cfg(unix)]
    let opened = {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|errno| {
            if errno == rustix::io::Errno::LOOP {
                Err(TrustError::Symlink {
                    what: WHAT,
                    path: path.to_path_buf(),
                })
            } else {
                Ok(io::Error::from(errno))
            }
        })
    };
    #[cfg(not(unix))]
    let opened = File::open(path).map_err(Ok::<io::Error, TrustError>);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(Err(symlink)) => Err(symlink.into()),
        Err(Ok(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(Ok(e)) => Err(io_error(path)(e)),
    }
}

/// Creates the key file holding `key`, unless it exists. Returns whether this call created it.
/// Its directory is created if missing and checked under [`Trust::Strict`]
/// ([`create_key_file_trusting`] to relax the mode check).
pub fn create_key_file(path: &Path, key: &FernetKey) -> Result<bool, CryptoError> {
    create_key_file_trusting(path, key, Trust::Strict)
}

/// [`create_key_file`], the directory checked under `trust` ([`crate::trust::check_dir`]).
pub fn create_key_file_trusting(path: &Path, key: &FernetKey, trust: Trust) -> Result<bool, CryptoError> {
    let dir = dir_of(path);
    crate::trust::create_trusted_dir_all(&dir, trust)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(DEFAULT_KEY_FILE_NAME),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let written = write_private(&tmp, key).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    let created = written.map_err(io_error(path))?;
    if created {
        // Make the new name durable; a failure here is not worth failing the open for.
        let _ = File::open(&dir).and_then(|d| d.sync_all());
    }
    Ok(created)
}

/// Reads the key file, creating it with a new random key first when it does not exist.
/// Returns the keys and whether this call created the file. Checked under [`Trust::Strict`].
pub fn load_or_create_key_file(path: &Path) -> Result<(Vec<FernetKey>, bool), CryptoError> {
    load_or_create_key_file_trusting(path, Trust::Strict).map(|(contents, created)| (contents.keys, created))
}

/// [`load_or_create_key_file`] under `trust` (see [`read_key_file_trusting`]), with the
/// file's warnings.
pub fn load_or_create_key_file_trusting(path: &Path, trust: Trust) -> Result<(KeyFileContents, bool), CryptoError> {
    if let Some(contents) = read_key_file_trusting(path, trust)? {
        return Ok((contents, false));
    }
    let created = create_key_file_trusting(path, &FernetKey::generate(), trust)?;
    let keys = read_key_file_trusting(path, trust)?.ok_or_else(|| CryptoError::KeyFileIo {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "key file vanished right after it was created"),
    })?;
    Ok((keys, created))
}

fn write_private(path: &Path, key: &FernetKey) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let encoded = key.to_base64();
    let mut content = Zeroizing::new(String::with_capacity(HEADER.len() + 64));
    content.push_str(HEADER);
    content.push_str(encoded.expose_secret());
    content.push('\n');
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pw-cache.key");
        let (first, created) = load_or_create_key_file(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        assert!(
            !create_key_file(&path, &FernetKey::generate()).unwrap(),
            "an existing file is kept"
        );
        assert_eq!(read_key_file(&path).unwrap().unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn reads_previous_keys_and_skips_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (a, b) = (FernetKey::generate(), FernetKey::generate());
        let text = format!(
            "# c\n\n{}\n  {}  \n",
            a.to_base64().expose_secret(),
            b.to_base64().expose_secret()
        );
        fs::write(&path, text).unwrap();
        assert_eq!(read_key_file(&path).unwrap().unwrap(), vec![a, b]);
    }

    #[test]
    fn bad_files_are_typed_errors_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, "# only a comment\n").unwrap();
        assert!(matches!(read_key_file(&path), Err(CryptoError::EmptyKeyFile { .. })));
        fs::write(&path, "# c\nnot-a-key\n").unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains(&path.display().to_string()) && !err.contains("not-a-key"),
            "{err}"
        );
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_key_file(&path).is_err());
        assert!(read_key_file(&dir.path().join("missing")).unwrap().is_none());
    }

    #[cfg(unix)]
    mod untrusted {
        use super::*;
        use std::os::unix::fs::PermissionsExt;
        use std::time::{Duration, Instant};

        /// A uid with no user entry: another user (the tests run as root).
        const OTHER_UID: u32 = 12345;

        fn key_text() -> String {
            format!("{}\n", FernetKey::generate().to_base64().expose_secret())
        }

        #[test]
        fn planted_key_file_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DEFAULT_KEY_FILE_NAME);
            fs::write(&path, key_text()).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&path, Some(OTHER_UID), None).unwrap();
            for trust in [Trust::Strict, Trust::AllowGroupOtherWritable] {
                let err = read_key_file_trusting(&path, trust).unwrap_err();
                assert!(
                    matches!(&err, CryptoError::Untrusted(TrustError::NotOwned { owner, .. }) if owner.uid == OTHER_UID),
                    "{err}"
                );
                let msg = err.to_string();
                assert!(
                    msg.contains(&path.display().to_string()) && msg.contains("uid 12345"),
                    "{msg}"
                );
                assert!(load_or_create_key_file_trusting(&path, trust).is_err());
            }
        }

        #[test]
        fn key_file_in_a_directory_of_another_user_is_not_opened() {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("planted");
            fs::create_dir(&dir).unwrap();
            let path = dir.join(DEFAULT_KEY_FILE_NAME);
            // Its own key file would be accepted: the directory is refused before it is opened.
            fs::write(&path, key_text()).unwrap();
            std::os::unix::fs::chown(&dir, Some(OTHER_UID), None).unwrap();
            let err = read_key_file(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::Untrusted(TrustError::NotOwned { .. })),
                "{err}"
            );
            // And a missing key file is not created there.
            fs::remove_file(&path).unwrap();
            assert!(load_or_create_key_file(&path).is_err());
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing is created in it");
        }

        #[test]
        fn fifo_key_file_fails_at_once() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k");
            let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
            assert!(made.success());
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let result = read_key_file(&p).map(|_| ());
                let _ = tx.send((result, started.elapsed()));
            });
            let (result, took) = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("reading a FIFO key file hangs");
            let err = result.unwrap_err();
            assert!(
                matches!(
                    &err,
                    CryptoError::Untrusted(TrustError::WrongType { found: "a FIFO", .. })
                ),
                "{err}"
            );
            assert!(err.to_string().contains(&path.display().to_string()), "{err}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        }

        #[test]
        fn symlinked_key_file_is_refused_and_its_target_unchanged() {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("target");
            let text = key_text();
            fs::write(&target, &text).unwrap();
            let link = dir.path().join(DEFAULT_KEY_FILE_NAME);
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let err = read_key_file(&link).unwrap_err();
            assert!(
                matches!(err, CryptoError::Untrusted(TrustError::Symlink { .. })),
                "{err}"
            );
            assert!(load_or_create_key_file(&link).is_err());
            assert_eq!(fs::read_to_string(&target).unwrap(), text);
            // A dangling link is not followed to create its target either.
            let dangling = dir.path().join("dangling");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
            assert!(load_or_create_key_file(&dangling).is_err());
            assert!(!dir.path().join("nowhere").exists());
        }

        #[test]
        fn dev_zero_and_oversized_files_are_refused_with_bounded_reads() {
            let dir = tempfile::tempdir().unwrap();
            let link = dir.path().join("zero-link");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            let err = read_key_file(&link).unwrap_err();
            assert!(
                matches!(err, CryptoError::Untrusted(TrustError::Symlink { .. })),
                "{err}"
            );
            let err = read_key_file(Path::new("/dev/zero")).unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::Untrusted(TrustError::WrongType {
                        found: "a character device",
                        ..
                    })
                ),
                "{err}"
            );
            let big = dir.path().join("big");
            let mut text = key_text();
            while text.len() as u64 <= MAX_KEY_FILE_BYTES {
                text.push_str("# padding padding padding padding padding padding padding\n");
            }
            fs::write(&big, &text).unwrap();
            let err = read_key_file(&big).unwrap_err();
            assert!(
                matches!(
                    err,
                    CryptoError::Untrusted(TrustError::TooLarge {
                        limit: MAX_KEY_FILE_BYTES,
                        ..
                    })
                ),
                "{err}"
            );
            // Exactly the limit is fine.
            text.truncate(MAX_KEY_FILE_BYTES as usize - 1);
            text.push('\n');
            fs::write(&big, &text).unwrap();
            assert_eq!(read_key_file(&big).unwrap().unwrap().len(), 1);
        }

        #[test]
        fn readable_key_file_is_read_with_a_warning() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k");
            fs::write(&path, key_text()).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                read_key_file_trusting(&path, Trust::Strict)
                    .unwrap()
                    .unwrap()
                    .warnings
                    .is_empty()
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let contents = read_key_file_trusting(&path, Trust::Strict).unwrap().unwrap();
            assert_eq!(contents.keys.len(), 1);
            assert!(
                matches!(contents.warnings.as_slice(), [w] if w.contains(&path.display().to_string()) && w.contains("644")),
                "{:?}",
                contents.warnings
            );
        }

        #[test]
        fn key_file_directory_writable_by_others_is_refused_unless_allowed() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
            let err = load_or_create_key_file(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::Untrusted(TrustError::WritableByOthers { .. })),
                "{err}"
            );
            assert!(!path.exists());
            let (_, created) = load_or_create_key_file_trusting(&path, Trust::AllowGroupOtherWritable).unwrap();
            assert!(created);
            assert!(read_key_file(&path).is_err(), "still refused under the strict default");
        }
    }
}
