//! Where a cache's keys come from, and in which order: [`KeyRing::resolve`].

use std::path::Path;

use pw_cache_model::Secret;

use crate::error::{CryptoError, KeySource};
use crate::key::FernetKey;
use crate::key_file::{load_or_create_key_file_trusting, read_key_file_trusting};
use crate::ring::{KeyOrigin, KeyRing};
use crate::trust::Trust;

/// The reference's variable for the current key.
pub const ENV_CURRENT_KEY: &str = "PROXYWHIRL_CACHE_ENCRYPTION_KEY";
/// The reference's variable for the previous key; here it may hold several, comma separated.
pub const ENV_PREVIOUS_KEYS: &str = "PROXYWHIRL_CACHE_KEY_PREVIOUS";

/// The key variables of an environment, read once. An empty variable counts as unset, as in
/// the reference.
#[derive(Debug, Clone, Default)]
pub struct EnvKeys {
    current: Option<Secret>,
    previous: Option<Secret>,
}

impl EnvKeys {
    /// Reads [`ENV_CURRENT_KEY`] and [`ENV_PREVIOUS_KEYS`] from this process's environment.
    /// A value that is not Unicode is kept (lossily) so that it fails as an invalid key that
    /// names its variable, rather than being ignored.
    pub fn from_process() -> Self {
        let read = |name: &str| {
            std::env::var_os(name)
                .map(|v| Secret::new(v.to_string_lossy().into_owned()))
                .filter(|s| !s.is_empty())
        };
        Self {
            current: read(ENV_CURRENT_KEY),
            previous: read(ENV_PREVIOUS_KEYS),
        }
    }

    /// Given values (tests, or a caller with its own configuration system).
    pub fn new(current: Option<Secret>, previous: Option<Secret>) -> Self {
        Self {
            current: current.filter(|s| !s.is_empty()),
            previous: previous.filter(|s| !s.is_empty()),
        }
    }

    /// The previous keys, parsed: comma separated, empty items ignored.
    fn previous_keys(&self) -> Result<Vec<FernetKey>, CryptoError> {
        let Some(list) = &self.previous else {
            return Ok(Vec::new());
        };
        list.expose_secret()
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .enumerate()
            .map(|(i, item)| FernetKey::parse(item, KeySource::EnvPrevious { index: i + 1 }))
            .collect()
    }
}

impl KeyRing {
    /// The ring of a cache, from the first source that has a key:
    ///
    /// 1. `config_key` (`CacheConfig::encryption_key`);
    /// 2. the environment's [`ENV_CURRENT_KEY`];
    /// 3. the key file at `key_file`, created with a new random key (mode 0600) when missing.
    ///
    /// Previous keys: those of [`ENV_PREVIOUS_KEYS`], then the key file's. When the current
    /// key comes from 1 or 2 and a key file exists (an earlier run without a configured key),
    /// its keys join the ring as previous keys, so what that run stored stays readable and can
    /// be rotated; the file is never created in that case.
    ///
    /// Falling back to the key file logs one warning naming the file.
    ///
    /// The key file and its directory are checked under [`Trust::Strict`] (see
    /// [`KeyRing::resolve_trusting`]): one owned by another user, a symbolic link, a file that
    /// is not a regular file or is too large is an error ([`CryptoError::Untrusted`]). What is
    /// worth a warning (a key file readable by others) is in [`KeyRing::warnings`].
    pub fn resolve(config_key: Option<&Secret>, env: &EnvKeys, key_file: &Path) -> Result<Self, CryptoError> {
        Self::resolve_trusting(config_key, env, key_file, Trust::Strict)
    }

    /// [`KeyRing::resolve`], the key file's directory checked under `trust`
    /// ([`crate::trust::check_dir`]); the key file's own checks are the same under any `trust`.
    pub fn resolve_trusting(
        config_key: Option<&Secret>,
        env: &EnvKeys,
        key_file: &Path,
        trust: Trust,
    ) -> Result<Self, CryptoError> {
        let env_previous = env.previous_keys()?;
        let configured = match (config_key, &env.current) {
            (Some(key), _) => Some((
                FernetKey::parse(key.expose_secret(), KeySource::Config)?,
                KeyOrigin::Config,
            )),
            (None, Some(key)) => Some((
                FernetKey::parse(key.expose_secret(), KeySource::EnvCurrent)?,
                KeyOrigin::Environment,
            )),
            (None, None) => None,
        };
        if let Some((current, origin)) = configured {
            let mut ring = KeyRing::new(current, env_previous).with_origin(origin);
            if let Some(contents) = read_key_file_trusting(key_file, trust)? {
                ring.add_key_file_previous(key_file.to_path_buf(), contents.keys);
                ring.add_warnings(contents.warnings);
            }
            return Ok(ring);
        }
        let (contents, created) = load_or_create_key_file_trusting(key_file, trust)?;
        let mut file_keys = contents.keys;
        tracing::warn!(
            path = %key_file.display(),
            created,
            "no encryption key configured: credentials are encrypted with the key in {} ({}). \
             Anyone who can read that file can read the cached credentials. To manage the key \
             yourself, set {ENV_CURRENT_KEY} or CacheConfig::encryption_key (and keep this key as \
             a previous key until its credentials are rotated); see docs/security.md",
            key_file.display(),
            if created { "created now, mode 0600" } else { "made by an earlier run" },
        );
        let current = file_keys.remove(0);
        let mut ring = KeyRing::new(current, env_previous).with_origin(KeyOrigin::KeyFile {
            path: key_file.to_path_buf(),
            created,
        });
        ring.add_previous(file_keys);
        ring.add_warnings(contents.warnings);
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FernetKey {
        FernetKey::generate()
    }

    #[test]
    fn precedence_config_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw-cache.key");
        let (c, e) = (key(), key());
        let env = EnvKeys::new(Some(e.to_base64()), None);

        let ring = KeyRing::resolve(Some(&c.to_base64()), &env, &file).unwrap();
        assert_eq!((ring.current(), ring.origin()), (&c, &KeyOrigin::Config));
        assert!(!file.exists(), "a configured key never creates the key file");

        let ring = KeyRing::resolve(None, &env, &file).unwrap();
        assert_eq!((ring.current(), ring.origin()), (&e, &KeyOrigin::Environment));

        let ring = KeyRing::resolve(None, &EnvKeys::default(), &file).unwrap();
        assert_eq!(
            ring.origin(),
            &KeyOrigin::KeyFile {
                path: file.clone(),
                created: true
            }
        );
        let again = KeyRing::resolve(None, &EnvKeys::default(), &file).unwrap();
        assert_eq!(again.current(), ring.current());
        assert_eq!(
            again.origin(),
            &KeyOrigin::KeyFile {
                path: file.clone(),
                created: false
            }
        );

        // Later configuring a key keeps the file's key readable as a previous key.
        let ring2 = KeyRing::resolve(Some(&c.to_base64()), &EnvKeys::default(), &file).unwrap();
        assert_eq!(ring2.len(), 2);
        let old = again.encrypt(&Secret::new("from the key-file era"));
        assert_eq!(ring2.key_index(&old), Some(1));
    }

    #[test]
    fn previous_keys_from_env_comma_separated() {
        let dir = tempfile::tempdir().unwrap();
        let (c, p1, p2) = (key(), key(), key());
        let list = format!(
            "{}, {},",
            p1.to_base64().expose_secret(),
            p2.to_base64().expose_secret()
        );
        let env = EnvKeys::new(Some(c.to_base64()), Some(Secret::new(list)));
        let ring = KeyRing::resolve(None, &env, &dir.path().join("k")).unwrap();
        assert_eq!(ring.len(), 3);
        let old = KeyRing::new(p2, []).encrypt(&Secret::new("x"));
        assert_eq!(ring.key_index(&old), Some(2));
    }

    #[test]
    fn invalid_keys_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let bad = Secret::new("bad-key-value");
        let cases = [
            (Some(&bad), EnvKeys::default(), "the configured encryption_key"),
            (None, EnvKeys::new(Some(bad.clone()), None), ENV_CURRENT_KEY),
            (
                None,
                EnvKeys::new(Some(key().to_base64()), Some(bad.clone())),
                "PROXYWHIRL_CACHE_KEY_PREVIOUS (key 1)",
            ),
        ];
        for (config, env, name) in cases {
            let err = KeyRing::resolve(config, &env, &file).unwrap_err().to_string();
            assert!(err.contains(name) && !err.contains("bad-key-value"), "{err}");
        }
        assert!(!file.exists());
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let env = EnvKeys::new(Some(Secret::new("")), Some(Secret::new("")));
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::resolve(None, &env, &dir.path().join("k")).unwrap();
        assert!(matches!(ring.origin(), KeyOrigin::KeyFile { created: true, .. }));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_warnings_reach_the_ring() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let ring = KeyRing::resolve(None, &EnvKeys::default(), &file).unwrap();
        assert!(ring.warnings().is_empty());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let ring = KeyRing::resolve(None, &EnvKeys::default(), &file).unwrap();
        assert!(
            matches!(ring.warnings(), [w] if w.contains("640")),
            "{:?}",
            ring.warnings()
        );
        // Also when the file only gives previous keys behind a configured key.
        let ring = KeyRing::resolve(Some(&key().to_base64()), &EnvKeys::default(), &file).unwrap();
        assert_eq!(ring.warnings().len(), 1);
    }
}
