//! Warm: pre-populating the cache from a JSON, JSONL or CSV file of proxies.

use std::collections::HashSet;
use std::path::Path;

use pw_cache_crypto::Token;
use pw_cache_model::{CacheEntry, MAX_TTL_SECONDS, Secret, generate_cache_key};

use crate::error::ManagerError;
use crate::manager::CacheManager;
use crate::warm_file::{IssueKind, WarmCredential, WarmIssue, WarmItem, WarmReader, WarmRow};

/// The source of a warmed entry whose row names none (the reference's).
pub const DEFAULT_WARM_SOURCE: &str = "warmed";

/// What a warm did, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Rows stored.
    pub loaded: u64,
    /// Rows that were read but not usable (no or invalid `proxy_url`, a field of the wrong
    /// type ...).
    pub skipped: u64,
    /// Rows that could not be read (invalid JSON line, damaged CSV record), or whose entry
    /// could not be made or stored (an encrypted credential no key opens, every tier failing).
    pub failed: u64,
    /// Loaded rows whose key an earlier row of the same file had: the later row replaced it
    /// (they are also counted in `loaded`, as the reference counts them).
    pub replaced: u64,
    /// The first [`MAX_WARM_ISSUES_KEPT`] skipped or failed rows: where each is and why, in
    /// file order.
    pub issues: Vec<WarmIssue>,
    /// Skipped or failed rows past the first [`MAX_WARM_ISSUES_KEPT`], counted in `skipped` and
    /// `failed` but not kept in `issues` (so that a file of junk lines costs no memory per line).
    pub issues_omitted: u64,
}

/// How many issues a [`WarmReport`] keeps; the rest are counted (`issues_omitted`).
pub const MAX_WARM_ISSUES_KEPT: usize = 10_000;

impl CacheManager {
    /// Loads the proxies of a warm file into every tier: `.json` (an array of objects),
    /// `.jsonl` (an object per line) or `.csv` (a header row with `proxy_url`), by extension.
    ///
    /// Fields: `proxy_url` (required, a valid proxy URL), `username`, `password`, `source`
    /// (default [`DEFAULT_WARM_SOURCE`]), `key` (generated from the URL when empty), and the
    /// `username_encrypted` / `password_encrypted` tokens of an encrypted export. TTL:
    /// `ttl_override`, else the source's `per_source_ttl`, else `default_ttl_seconds`; every
    /// entry is fetched "now". A bad row is reported (with its line, item or row number) and
    /// the rest of the file is loaded; only a file that cannot be used at all is an error. The
    /// exact rules, and how they differ from the reference, are in `warm_file`'s documentation.
    ///
    /// The file is read a row at a time ([`WarmReader`]) and each row stored as it comes, so
    /// memory does not grow with the file's size: it holds one line or record (at most
    /// [`MAX_LINE_BYTES`](pw_cache_model::limits::MAX_LINE_BYTES)), the keys seen (for
    /// [`WarmReport::replaced`]) and the issues. A `.json` document is held whole, up to
    /// [`MAX_WARM_JSON_BYTES`](pw_cache_model::limits::MAX_WARM_JSON_BYTES).
    ///
    /// # Errors
    ///
    /// [`ManagerError::InvalidTtl`] and [`ManagerError::Closed`] before the file is opened;
    /// [`ManagerError::Warm`] for a file that cannot be used at all, found before any row is
    /// stored (what `warm_file::check_warm_file` finds), or for a read that fails in the middle
    /// of the file: the rows before it stay stored.
    pub fn warm_from_file(
        &self,
        path: impl AsRef<Path>,
        ttl_override: Option<u64>,
    ) -> Result<WarmReport, ManagerError> {
        self.warm_from_file_with_progress(path, ttl_override, &|_, _| {})
    }

    /// [`CacheManager::warm_from_file`], calling `progress(read, size)` as the file is read:
    /// `read` is how many bytes of the file were read so far, `size` its size in bytes (as found
    /// when it was opened; `read` when more was read, the file having grown). The rows' count is
    /// not known before the file is read to its end, so progress is in bytes. It is called after
    /// a row whose reading read more of the file (the file is read through a 64 KiB buffer, and
    /// a `.json` document whole before its first row), and once at the end with `read` the bytes
    /// read in all.
    ///
    /// # Errors
    ///
    /// As [`CacheManager::warm_from_file`].
    pub fn warm_from_file_with_progress(
        &self,
        path: impl AsRef<Path>,
        ttl_override: Option<u64>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<WarmReport, ManagerError> {
        if let Some(ttl) = ttl_override
            && !(1..=MAX_TTL_SECONDS).contains(&ttl)
        {
            return Err(ManagerError::InvalidTtl {
                value: ttl,
                max: MAX_TTL_SECONDS,
            });
        }
        if self.is_closed() {
            return Err(ManagerError::Closed);
        }
        let mut reader = WarmReader::open(path.as_ref())?;
        let size = reader.file_len().unwrap_or(0);
        let mut report = WarmReport::default();
        let fetch_time = self.now();
        let mut seen = HashSet::new();
        let mut reported = 0;
        // The reader hands rows and issues over in file order: the issues stay in it.
        while let Some(item) = reader.next() {
            let issue = match item? {
                WarmItem::Row(row) => {
                    let location = row.location;
                    match self.warm_row(row, ttl_override, fetch_time) {
                        Ok(key) => {
                            report.loaded += 1;
                            if !seen.insert(key) {
                                report.replaced += 1;
                            }
                            None
                        }
                        Err(reason) => Some(WarmIssue {
                            location,
                            kind: IssueKind::Failed,
                            reason,
                        }),
                    }
                }
                WarmItem::Issue(issue) => Some(issue),
            };
            if let Some(issue) = issue {
                match issue.kind {
                    IssueKind::Skipped => report.skipped += 1,
                    IssueKind::Failed => report.failed += 1,
                }
                if report.issues.len() < MAX_WARM_ISSUES_KEPT {
                    report.issues.push(issue);
                } else {
                    report.issues_omitted += 1;
                }
            }
            let read = reader.bytes_read();
            if read != reported {
                reported = read;
                progress(read, size.max(read));
            }
        }
        let read = reader.bytes_read();
        progress(read, size.max(read));
        Ok(report)
    }

    /// Stores one row; its key, or why it could not be stored.
    fn warm_row(
        &self,
        row: WarmRow,
        ttl_override: Option<u64>,
        fetch_time: pw_cache_model::OffsetDateTime,
    ) -> Result<String, String> {
        let source = row.source.unwrap_or_else(|| DEFAULT_WARM_SOURCE.to_owned());
        let ttl = ttl_override.unwrap_or_else(|| self.config().ttl_for_source(&source));
        let key = row.key.unwrap_or_else(|| generate_cache_key(&row.proxy_url));
        let username = self.open_credential("username", row.username)?;
        let password = self.open_credential("password", row.password)?;
        let entry = CacheEntry::new_at(row.proxy_url, source, ttl, fetch_time)
            .map_err(|e| e.to_string())?
            .with_key(key.clone())
            .with_credentials(username, password);
        self.put(&entry).map_err(|e| e.to_string())?;
        Ok(key)
    }

    fn open_credential(&self, field: &str, credential: Option<WarmCredential>) -> Result<Option<Secret>, String> {
        match credential {
            None => Ok(None),
            Some(WarmCredential::Plain(secret)) => Ok(Some(secret)),
            Some(WarmCredential::Token(text)) => Token::parse(&text)
                .and_then(|token| self.key_ring().decrypt(&token))
                .map(Some)
                .map_err(|e| format!("`{field}_encrypted` cannot be decrypted with the configured keys: {e}")),
        }
    }
}
