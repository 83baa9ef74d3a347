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
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{CryptoError, KeySource};
use crate::key::FernetKey;

/// File name of the key file a cache creates in its directory when no key is configured.
pub const DEFAULT_KEY_FILE_NAME: &str = "pw-cache.key";

const HEADER: &str = "# pw-cache credential encryption key (Fernet), made because no key was configured.\n\
# Keep it private (mode 0600) and back it up with the cache: without it the stored\n\
# credentials cannot be read. To manage keys yourself, see docs/security.md.\n";

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CryptoError + '_ {
    move |source| CryptoError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the keys of a key file; `Ok(None)` when the file does not exist.
pub fn read_key_file(path: &Path) -> Result<Option<Vec<FernetKey>>, CryptoError> {
    let text = match fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    warn_if_exposed(path);
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
    Ok(Some(keys))
}

/// Creates the key file holding `key`, unless it exists. Returns whether this call created it.
pub fn create_key_file(path: &Path, key: &FernetKey) -> Result<bool, CryptoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::private_fs::create_dir_all(&dir).map_err(io_error(&dir))?;
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
/// Returns the keys and whether this call created the file.
pub fn load_or_create_key_file(path: &Path) -> Result<(Vec<FernetKey>, bool), CryptoError> {
    if let Some(keys) = read_key_file(path)? {
        return Ok((keys, false));
    }
    let created = create_key_file(path, &FernetKey::generate())?;
    let keys = read_key_file(path)?.ok_or_else(|| CryptoError::KeyFileIo {
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

fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "key file is readable by other users; run `chmod 600` on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
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
}
