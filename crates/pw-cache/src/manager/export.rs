//! Export: every live entry of the cache to a JSONL file, in the reference's export format.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use pw_cache_model::CacheEntry;
use pw_cache_tiers::jsonl::hex_encode;

use super::CacheManager;
use super::lookup::{Answer, Read};
use crate::error::ManagerError;

/// How credentials appear in an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportCredentials {
    /// `"***"` when set, `null` when not: the reference's export, which no one can import
    /// credentials from.
    #[default]
    Masked,
    /// As [`ExportCredentials::Masked`], plus `username_encrypted` / `password_encrypted`:
    /// the Fernet token of each credential under the cache's current key, as lowercase hex of
    /// its bytes (the JSONL shard encoding). A cache whose key ring holds that key (another
    /// machine with the same key) imports them with [`CacheManager::warm_from_file`]. Never
    /// plaintext.
    Encrypted,
}

/// Options of [`CacheManager::export_to_file_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// How credentials are written.
    pub credentials: ExportCredentials,
}

/// What an export wrote and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Entries written, one line each.
    pub exported: u64,
    /// Expired entries left out (not deleted: an export changes nothing).
    pub expired: u64,
    /// Entries that could not be read, left out; with `failures` naming each.
    pub failed: u64,
    /// `(key, reason)` of each entry left out because it could not be read.
    pub failures: Vec<(String, String)>,
}

impl CacheManager {
    /// Writes every live entry to `path` as JSONL, credentials masked
    /// ([`ExportCredentials::Masked`]). See [`CacheManager::export_to_file_with`].
    pub fn export_to_file(&self, path: impl AsRef<Path>) -> Result<ExportReport, ManagerError> {
        self.export_to_file_with(path, ExportOptions::default())
    }

    /// Writes every live entry of every serving tier to `path`, one JSON object per line,
    /// fields in the model's order (the reference's export line, byte for byte), keys in
    /// sorted order; an entry held by several tiers is written once, from the highest.
    ///
    /// Unlike the reference, exporting is not a use: no access count, promotion or deletion;
    /// expired entries are left out and counted. The file is replaced atomically (written
    /// beside it, synced, renamed), created with mode 0600: with
    /// [`ExportCredentials::Encrypted`] it holds tokens. On error nothing is replaced.
    ///
    /// Only a regular file (or nothing) at `path` is replaced: a symbolic link, a FIFO, a
    /// directory or a device there is an error ([`ManagerError::Export`]) before anything is
    /// read, and is checked again (`lstat`) right before the rename.
    pub fn export_to_file_with(
        &self,
        path: impl AsRef<Path>,
        options: ExportOptions,
    ) -> Result<ExportReport, ManagerError> {
        let path = path.as_ref();
        let refuse = |source| ManagerError::Export {
            path: path.to_path_buf(),
            source,
        };
        pw_cache_crypto::private_fs::check_path_regular(path).map_err(refuse)?;
        let inner = &self.inner;
        // Entries L1 evicted go down first, so the tiers below hold what L1 held.
        inner.record_evicted_use(1, true);
        let mut keys = BTreeSet::new();
        if let Some(l1) = &inner.l1 {
            keys.extend(pw_cache_tiers::CacheTier::keys(l1).unwrap_or_default());
        }
        for slot in inner.slots().filter(|s| s.serving()) {
            let tier_keys = slot.tier.keys().map_err(|source| ManagerError::ExportTier {
                tier: slot.kind,
                source,
            })?;
            keys.extend(tier_keys);
        }
        let write_err = |source| ManagerError::Export {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".pw-cache-export-")
            .tempfile_in(&dir)
            .map_err(write_err)?;
        let mut report = ExportReport::default();
        let now = self.inner.now();
        {
            let mut out = BufWriter::new(tmp.as_file());
            for key in &keys {
                let entry = match self.peek_entry(key) {
                    Ok(Some(entry)) => entry,
                    Ok(None) => continue,
                    Err(reason) => {
                        report.failed += 1;
                        report.failures.push((key.clone(), reason));
                        continue;
                    }
                };
                if entry.is_expired_at(now) {
                    report.expired += 1;
                    continue;
                }
                let line = match options.credentials {
                    ExportCredentials::Masked => entry.to_json_line(),
                    ExportCredentials::Encrypted => self.line_with_tokens(&entry),
                };
                out.write_all(line.as_bytes()).map_err(write_err)?;
                out.write_all(b"\n").map_err(write_err)?;
                report.exported += 1;
            }
            out.flush().map_err(write_err)?;
        }
        tmp.as_file().sync_all().map_err(write_err)?;
        pw_cache_crypto::private_fs::check_path_regular(path).map_err(refuse)?;
        tmp.persist(path).map_err(|e| write_err(e.error))?;
        // The rename is durable once the directory is synced.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(report)
    }

    /// The entry under `key` from the highest serving tier that holds a current copy, without
    /// it being a use; `Err` with the reason when that copy cannot be read.
    fn peek_entry(&self, key: &str) -> Result<Option<CacheEntry>, String> {
        let inner = &self.inner;
        if let Some(l1) = &inner.l1
            && let Ok(Some(entry)) = pw_cache_tiers::CacheTier::peek(l1, key)
        {
            return Ok(Some(entry));
        }
        let mut last_error = None;
        let found = inner.walk_below(key, Read::Peek, |slot, answer| match answer {
            Answer::Found(mut entry) => {
                inner.complete_health_detail(slot, &mut entry);
                ControlFlow::Break(entry)
            }
            Answer::Absent => ControlFlow::Continue(()),
            Answer::Unreadable(e) => {
                crate::counters::bump(&inner.counters.tier(slot.kind).unreadable, 1);
                last_error = Some(format!("{}: {e}", slot.kind));
                ControlFlow::Continue(())
            }
            // Reported in the export's failures; not counted towards the tier's degradation.
            Answer::Failed(e) => {
                last_error = Some(format!("{}: {e}", slot.kind));
                ControlFlow::Continue(())
            }
        });
        match found {
            Some(entry) => Ok(Some(entry)),
            None => last_error.map_or(Ok(None), Err),
        }
    }

    /// The export line of `entry` with its credentials' tokens appended.
    fn line_with_tokens(&self, entry: &CacheEntry) -> String {
        let mut line = entry.to_json_line();
        // The line is a JSON object: it ends with `}`.
        line.pop();
        let ring = &self.inner.ring;
        for (field, secret) in [
            ("username_encrypted", &entry.username),
            ("password_encrypted", &entry.password),
        ] {
            if let Some(secret) = secret {
                let token = ring.encrypt(secret);
                let _ = write!(line, ", \"{field}\": \"{}\"", hex_encode(token.as_bytes()));
            }
        }
        line.push('}');
        line
    }
}
