//! Parsing of "warm" input files: the lists of proxies that `warm_from_file` loads into a cache.
//!
//! This module only reads: it turns a file into [`WarmRow`]s (usable rows) and [`WarmIssue`]s
//! (rows that were skipped or could not be read), and never touches a cache. One bad row never
//! aborts the file; only whole-file problems ([`WarmFileError`]) do.
//!
//! # Formats
//!
//! The format is chosen by the file's extension, case-insensitively ([`WarmFormat::from_path`]):
//!
//! - `.json`: one JSON document, an array of objects. A UTF-8 BOM is ignored. An invalid document
//!   or a top level that is not an array is a [`WarmFileError`]; an item that is not an object is
//!   skipped ([`RowLocation::Item`], 1-based).
//! - `.jsonl`: one JSON object per line (`\n` or `\r\n`). A UTF-8 BOM is ignored, blank lines are
//!   ignored. A line that is not UTF-8 or not JSON fails; a JSON value that is not an object is
//!   skipped ([`RowLocation::Line`], the 1-based physical line).
//! - `.csv`: a header row naming the columns, then one record per proxy. A UTF-8 BOM is ignored,
//!   header names are trimmed (and then compared case-sensitively), a `proxy_url` column is
//!   required. Records may have fewer fields than the header (the missing ones are absent) or more
//!   (the extra ones are ignored). Quoted fields may hold commas, quotes and newlines. A record
//!   that is not UTF-8 fails ([`RowLocation::Row`]: the 1-based record number, header not
//!   counted, and the physical line where the record starts).
//!
//! # Fields
//!
//! A row's fields are `proxy_url` (required), `username`, `password`, `source`, `key`, and
//! `username_encrypted` / `password_encrypted` (the lowercase hex of a Fernet token's ASCII
//! bytes, as in proxywhirl's JSONL shard lines; either case of hex digits is accepted). Every
//! other field is ignored, so the lines of an export (all 21 entry fields) or of a JSONL shard can
//! be warmed directly.
//!
//! - Every string is trimmed ([`str::trim`]); an empty string after trimming is absent.
//! - In JSON, a number stands for its JSON text (`42` is `"42"`), `null` is absent, and a boolean,
//!   an object or an array in any of the fields above makes the row skipped.
//! - `"***"` (the mask proxywhirl's export writes in place of a credential) is not a credential: a
//!   `username` or `password` of `"***"` is absent.
//! - `username_encrypted` wins over `username` (and `password_encrypted` over `password`). Its hex
//!   must decode to printable ASCII (a Fernet token's text), else the row is skipped. The token is
//!   returned as [`WarmCredential::Token`]; decrypting it is the caller's job.
//! - `proxy_url` must be a proxy URL: scheme `http`, `https`, `socks4`, `socks4a`, `socks5` or
//!   `socks5h`, written as `scheme://`, a non-empty host, a port (or the scheme's default: the
//!   socks schemes have none), no path other than `/`, no query, no fragment, no whitespace, control
//!   character or backslash.
//! - The stored `proxy_url` is the trimmed text as written (not a normalized form: an IDN host stays
//!   as written, no `/` is added), minus its userinfo: credentials embedded in the URL
//!   (`http://user:pass@host:port`) are removed from it, percent-decoded and become the row's
//!   username and password. The URL's credentials and a `username`/`password` field (plain or
//!   encrypted) in the same row contradict each other: the row is skipped.
//! - `source` and `key` absent are [`None`]; the caller applies its defaults (`"warmed"`, a key
//!   generated from the URL).
//!
//! No reason, `Debug` output or error carries a credential: credentials are [`Secret`]s, tokens
//! print as their length, and reasons only name fields.
//!
//! # Differences from proxywhirl 0.3.3's `warm_from_file`
//!
//! proxywhirl 0.3.3 (see `tests/fixtures/proxywhirl-0.3.3/warm/` and its manifest):
//! - aborted the whole import on a `null` array item or on a JSONL line holding a JSON value that
//!   is not an object (the rows after it were lost); here such items are skipped and reading goes
//!   on;
//! - read a CSV file with a BOM with the header `"\u{feff}proxy_url"`, so it skipped every row;
//!   here the BOM is ignored;
//! - stored `str()` of non-string values (`"True"`, `"{'a': 1}"`, `"None"` as a source); here
//!   booleans, objects and arrays make the row skipped and `null` is absent;
//! - stored `"***"` (its own export mask) as a username and as a password;
//! - stored URLs with embedded credentials as they were, credentials in plaintext; here they are
//!   moved out of the URL;
//! - accepted any `proxy_url` text (`"not a url at all"`) and did not trim values (`" src "`,
//!   `"  http://spaces.example:1  "`); here URLs are validated and every value is trimmed;
//! - used `"key": 0` as "no key" (Python's falsy `0`); here it is the key `"0"`.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use pw_cache_model::Secret;
use pw_cache_model::limits::{self, MAX_LINE_BYTES};
use pw_cache_tiers::jsonl::hex_decode;
use serde_json::{Map, Value};
use url::Url;

/// The field holding the proxy URL (required).
const PROXY_URL: &str = "proxy_url";
/// The plaintext username field.
const USERNAME: &str = "username";
/// The plaintext password field.
const PASSWORD: &str = "password";
/// The hex of a Fernet token of the username.
const USERNAME_ENCRYPTED: &str = "username_encrypted";
/// The hex of a Fernet token of the password.
const PASSWORD_ENCRYPTED: &str = "password_encrypted";
/// The source field.
const SOURCE: &str = "source";
/// The cache key field.
const KEY: &str = "key";

/// What proxywhirl's export writes in place of a credential: never a credential itself.
const MASK: &str = "***";

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The URL schemes a proxy URL may have.
const PROXY_SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// Which parser a path gets, by its extension (case-insensitive): `.json`, `.jsonl` or `.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarmFormat {
    /// `.json`: one JSON array of objects.
    Json,
    /// `.jsonl`: one JSON object per line.
    Jsonl,
    /// `.csv`: a header row, then one record per proxy.
    Csv,
}

impl WarmFormat {
    /// The format for `path`'s extension, compared case-insensitively.
    ///
    /// # Errors
    ///
    /// [`WarmFileError::Unsupported`] for any other extension, or none.
    pub fn from_path(path: &Path) -> Result<Self, WarmFileError> {
        let extension = path
            .extension()
            .map(|ext| ext.to_string_lossy().into_owned())
            .unwrap_or_default();
        match extension.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            _ => Err(WarmFileError::Unsupported {
                path: path.to_path_buf(),
                extension,
            }),
        }
    }

    /// The extension of the format, lowercase and without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

impl fmt::Display for WarmFormat {
    /// `JSON`, `JSONL` or `CSV`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Jsonl => "JSONL",
            Self::Csv => "CSV",
        })
    }
}

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowLocation {
    /// JSONL: the 1-based physical line.
    Line(u64),
    /// JSON: the 1-based index in the top-level array.
    Item(u64),
    /// CSV: the 1-based data record number (the header is not counted) and the 1-based physical
    /// line where the record starts (a quoted field may span lines).
    Row {
        /// The 1-based record number, header excluded.
        record: u64,
        /// The 1-based physical line (counted by `\n`) where the record's first field starts.
        line: u64,
    },
}

impl fmt::Display for RowLocation {
    /// `line 3`, `item 4` or `row 2 (line 3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Item(item) => write!(f, "item {item}"),
            Self::Row { record, line } => write!(f, "row {record} (line {line})"),
        }
    }
}

/// A credential as given in the file.
#[derive(Clone, PartialEq, Eq)]
pub enum WarmCredential {
    /// A plaintext value (from `username`/`password` or from the URL's userinfo).
    Plain(Secret),
    /// The text of a Fernet token (from `username_encrypted`/`password_encrypted`), still to be
    /// decrypted by the caller.
    Token(String),
}

impl fmt::Debug for WarmCredential {
    /// `Plain(***)` or `Token(<N bytes>)`: never the value, not even the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(secret) => f.debug_tuple("Plain").field(secret).finish(),
            Self::Token(token) => f
                .debug_tuple("Token")
                .field(&format_args!("<{} bytes>", token.len()))
                .finish(),
        }
    }
}

/// One usable row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmRow {
    /// Where the row is in its file.
    pub location: RowLocation,
    /// The validated proxy URL: trimmed, as written, without userinfo.
    pub proxy_url: String,
    /// The username, if any.
    pub username: Option<WarmCredential>,
    /// The password, if any.
    pub password: Option<WarmCredential>,
    /// The source; [`None`] when absent (the caller uses `"warmed"`).
    pub source: Option<String>,
    /// The cache key; [`None`] when absent (the caller generates it from `proxy_url`).
    pub key: Option<String>,
}

/// Whether a bad row was skipped (readable but unusable) or failed (unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueKind {
    /// The row was read but is unusable (missing or invalid field, not an object, ...).
    Skipped,
    /// The row could not be read (invalid JSON, invalid UTF-8, CSV error).
    Failed,
}

impl fmt::Display for IssueKind {
    /// `skipped` or `failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        })
    }
}

/// A row that did not become a [`WarmRow`], and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmIssue {
    /// Where the row is in its file.
    pub location: RowLocation,
    /// Skipped or failed.
    pub kind: IssueKind,
    /// Why, naming fields but never showing a credential.
    pub reason: String,
}

impl fmt::Display for WarmIssue {
    /// `line 5: failed: invalid JSON: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.kind, self.reason)
    }
}

/// What a warm file holds: its usable rows and the issues of the others, both in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmFile {
    /// The format the file was read as.
    pub format: WarmFormat,
    /// The usable rows.
    pub rows: Vec<WarmRow>,
    /// The rows that were skipped or failed.
    pub issues: Vec<WarmIssue>,
}

impl WarmFile {
    /// How many rows were skipped.
    pub fn skipped(&self) -> usize {
        self.issues.iter().filter(|i| i.kind == IssueKind::Skipped).count()
    }

    /// How many rows failed.
    pub fn failed(&self) -> usize {
        self.issues.iter().filter(|i| i.kind == IssueKind::Failed).count()
    }
}

/// A problem with the whole file (a problem with one row is a [`WarmIssue`] instead).
#[derive(Debug, thiserror::Error)]
pub enum WarmFileError {
    /// The extension is not `.json`, `.jsonl` or `.csv`.
    #[error(
        "{}: unsupported warm file extension {}, expected .json, .jsonl or .csv",
        .path.display(),
        show_extension(.extension)
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Its extension as written, without the dot (empty when it has none).
        extension: String,
    },
    /// The file could not be read (not found, a directory, no permission, ...).
    #[error("{}: cannot read the warm file: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The JSON document is not UTF-8.
    #[error("{}: the JSON document is not valid UTF-8 (at byte {offset}, line {line})", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The byte offset of the first invalid byte.
        offset: usize,
        /// The 1-based line of the first invalid byte.
        line: usize,
    },
    /// The `.json` file is not a valid JSON document.
    #[error("{}: invalid JSON at line {line} column {column}: {message}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error (0 if unknown).
        line: usize,
        /// The 1-based column of the error (0 if unknown).
        column: usize,
        /// serde_json's message, without its location.
        message: String,
    },
    /// The `.json` file's top level is not an array.
    #[error("{}: a JSON warm file must be an array of objects, found {found}", .path.display())]
    NotArray {
        /// The file.
        path: PathBuf,
        /// The JSON type found: `object`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
    },
    /// The CSV file has no header row, or no `proxy_url` column.
    #[error("{}: invalid CSV header: {reason}", .path.display())]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the columns found.
        reason: String,
    },
}

/// `` `.txt` `` or `(none)`, for [`WarmFileError::Unsupported`].
fn show_extension(extension: &str) -> String {
    if extension.is_empty() {
        "(none)".to_owned()
    } else {
        format!("`.{extension}`")
    }
}

/// Reads and parses the warm file at `path`, its format chosen by its extension.
///
/// # Errors
///
/// A [`WarmFileError`] for an unsupported extension, an unreadable file or a whole-file problem
/// (see [`parse_warm_bytes`]). Problems of single rows are [`WarmFile::issues`] instead.
pub fn read_warm_file(path: &Path) -> Result<WarmFile, WarmFileError> {
    let format = WarmFormat::from_path(path)?;
    let io_error = |source| WarmFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_warm(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_error)?;
    parse_warm_bytes(format, &bytes, path)
}

/// Opens a warm file: a regular file, not through a symbolic link (`O_NOFOLLOW`, then an
/// `fstat` of the descriptor). A link (`x.jsonl -> /dev/urandom`), a FIFO, a device or a
/// directory is refused before anything is read.
fn open_warm(path: &Path) -> io::Result<std::fs::File> {
    pw_cache_crypto::private_fs::open_regular(std::fs::OpenOptions::new().read(true), path)
}

/// Checks, without a cache and without reading its rows, whether the warm file at `path` can be
/// used at all: the problems of the whole file that [`read_warm_file`] (and so
/// `CacheManager::warm_from_file`) would fail with, found before anything is created for it.
/// Returns the file's format.
///
/// What is checked, by format:
/// - every format: the extension ([`WarmFileError::Unsupported`]), that the file can be opened
///   and read ([`WarmFileError::Io`]: missing, a directory, no permission, a symbolic link, not a
///   regular file);
/// - `.csv`: the header row ([`WarmFileError::CsvHeader`]: none, or no `proxy_url` column). Only
///   the header row is read;
/// - `.json`: the whole document ([`WarmFileError::NotUtf8`], [`WarmFileError::Json`],
///   [`WarmFileError::NotArray`]): an error anywhere in it makes the whole file unusable, so it
///   is read and parsed in full (its items are not turned into rows);
/// - `.jsonl`: nothing more (every other problem of a JSONL file is a line's). Only its first
///   bytes are read.
///
/// For a file that does not change in between, and reads without an I/O fault past what this
/// reads, [`read_warm_file`] fails exactly when this does, with the same error. Problems of
/// single rows are not looked at: they never make the file unusable.
///
/// # Errors
///
/// The [`WarmFileError`] [`read_warm_file`] would return.
pub fn check_warm_file(path: &Path) -> Result<WarmFormat, WarmFileError> {
    let format = WarmFormat::from_path(path)?;
    let io_error = |source| WarmFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_warm(path).map_err(io_error)?;
    if format == WarmFormat::Json {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        json_items(&bytes, path)?;
        return Ok(format);
    }
    // Reading the first bytes finds what opening does not (a directory opens, then fails to
    // read); for CSV they are also where a byte order mark would be.
    let mut start = Vec::with_capacity(BOM.len());
    file.by_ref()
        .take(BOM.len() as u64)
        .read_to_end(&mut start)
        .map_err(io_error)?;
    if format == WarmFormat::Csv {
        let rest = start.strip_prefix(BOM).unwrap_or(&start);
        let mut reader = csv_reader(rest.chain(file));
        csv_header(&mut reader, path)?;
    }
    Ok(format)
}

/// Parses a warm file already read, as `format` (for fuzzing and tests). `path_for_errors` only
/// names the file in errors.
///
/// # Errors
///
/// - JSON: [`WarmFileError::NotUtf8`], [`WarmFileError::Json`], [`WarmFileError::NotArray`].
/// - CSV: [`WarmFileError::CsvHeader`].
/// - JSONL: none (every problem is a row's).
pub fn parse_warm_bytes(format: WarmFormat, bytes: &[u8], path_for_errors: &Path) -> Result<WarmFile, WarmFileError> {
    let mut out = Collector::default();
    match format {
        WarmFormat::Json => parse_json(bytes, path_for_errors, &mut out)?,
        WarmFormat::Jsonl => parse_jsonl(bytes, &mut out),
        WarmFormat::Csv => parse_csv(bytes, path_for_errors, &mut out)?,
    }
    Ok(WarmFile {
        format,
        rows: out.rows,
        issues: out.issues,
    })
}

// ---------------------------------------------------------------------------------------------
// Per format
// ---------------------------------------------------------------------------------------------

/// A `.json` document: an array of objects.
fn parse_json(bytes: &[u8], path: &Path, out: &mut Collector) -> Result<(), WarmFileError> {
    for (index, item) in (1u64..).zip(&json_items(bytes, path)?) {
        out.value(RowLocation::Item(index), item);
    }
    Ok(())
}

/// The items of a `.json` document, or why the document is unusable.
fn json_items(bytes: &[u8], path: &Path) -> Result<Vec<Value>, WarmFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
            + 1;
        WarmFileError::NotUtf8 {
            path: path.to_path_buf(),
            offset,
            line,
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document: Value = serde_json::from_str(text).map_err(|e| WarmFileError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
    })?;
    match document {
        Value::Array(items) => Ok(items),
        other => Err(WarmFileError::NotArray {
            path: path.to_path_buf(),
            found: json_type(&other),
        }),
    }
}

/// A `.jsonl` file: one object per line.
fn parse_jsonl(bytes: &[u8], out: &mut Collector) {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    for (number, raw) in (1u64..).zip(bytes.split(|&b| b == b'\n')) {
        let location = RowLocation::Line(number);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            out.issue(location, IssueKind::Failed, too_long("line", raw.len()));
            continue;
        }
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(e) => {
                let reason = format!(
                    "line is not valid UTF-8 (invalid byte at column {})",
                    e.valid_up_to() + 1
                );
                out.issue(location, IssueKind::Failed, reason);
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => out.value(location, &value),
            Err(e) => {
                let reason = format!("invalid JSON: {} at column {}", json_message(&e), e.column());
                out.issue(location, IssueKind::Failed, reason);
            }
        }
    }
}

/// A `.csv` file: a header row, then records.
fn parse_csv(bytes: &[u8], path: &Path, out: &mut Collector) -> Result<(), WarmFileError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut reader = csv_reader(bytes);
    let (header, columns) = csv_header(&mut reader, path)?;

    // The header was read by the csv reader; the records are read with csv-core (the parser
    // under it, with the same defaults) into an output buffer that grows to at most
    // MAX_LINE_BYTES: a longer record is read past, not held.
    let mut offset = usize::try_from(reader.position().byte())
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let mut core = csv_core::Reader::new();
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter::default();
    for number in 1u64.. {
        let start = offset;
        let Some(read) = next_record(&mut core, bytes, &mut offset) else {
            break;
        };
        let location = RowLocation::Row {
            record: number,
            line: lines.line_at(bytes, start as u64),
        };
        match read {
            CsvRecord::TooLong(len) => out.issue(location, IssueKind::Failed, too_long("record", len)),
            CsvRecord::Fields { buf, ends } => {
                record.clear();
                let mut from = 0;
                for &end in &ends {
                    record.push_field(&buf[from..end]);
                    from = end;
                }
                match columns.raw_row(&record, &header) {
                    Ok(raw) => out.row(location, raw),
                    Err(reason) => out.issue(location, IssueKind::Failed, reason),
                }
            }
        }
    }
    Ok(())
}

/// A CSV record read by [`next_record`].
enum CsvRecord {
    /// Its fields: `buf[ends[i - 1]..ends[i]]` (from 0 for the first).
    Fields {
        /// The fields' bytes, one after the other.
        buf: Vec<u8>,
        /// Where each field ends in `buf`.
        ends: Vec<usize>,
    },
    /// A record longer than [`MAX_LINE_BYTES`] (its fields' bytes), read past.
    TooLong(usize),
}

/// The first output buffer of [`next_record`]; it doubles up to [`MAX_LINE_BYTES`].
const CSV_FIRST_BUFFER: usize = 4096;

/// Reads the record at `bytes[*offset..]` with `core`, moving `offset` past it; `None` at
/// the end. Holds at most [`MAX_LINE_BYTES`] of the record's fields (and as many field ends
/// as a record of that length can have).
fn next_record(core: &mut csv_core::Reader, bytes: &[u8], offset: &mut usize) -> Option<CsvRecord> {
    use csv_core::ReadRecordResult;
    let mut buf = vec![0u8; CSV_FIRST_BUFFER];
    let mut ends = vec![0usize; 16];
    let (mut nout, mut nend) = (0usize, 0usize);
    // Bytes of fields read past once the record was found too long.
    let mut dropped: Option<usize> = None;
    loop {
        let input = bytes.get(*offset..).unwrap_or_default();
        let (result, nin, out, end) = core.read_record(input, &mut buf[nout..], &mut ends[nend..]);
        *offset += nin;
        nout += out;
        nend += end;
        match result {
            // An empty input tells csv-core the input ended: the next call finishes the record.
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull if dropped.is_none() && buf.len() < MAX_LINE_BYTES => {
                buf.resize((buf.len() * 2).min(MAX_LINE_BYTES), 0);
            }
            ReadRecordResult::OutputFull => {
                dropped = Some(dropped.unwrap_or(0) + nout);
                (nout, nend) = (0, 0);
            }
            ReadRecordResult::OutputEndsFull if dropped.is_none() && ends.len() < MAX_LINE_BYTES => {
                ends.resize(ends.len() * 2, 0);
            }
            ReadRecordResult::OutputEndsFull => {
                // As many fields as bytes allowed: the record is too long.
                dropped = Some(dropped.unwrap_or(0) + nout);
                (nout, nend) = (0, 0);
            }
            ReadRecordResult::Record => break,
            ReadRecordResult::End if dropped.is_none() && nout == 0 && nend == 0 => return None,
            ReadRecordResult::End => break,
        }
    }
    Some(match dropped {
        Some(len) => CsvRecord::TooLong(len + nout),
        None => {
            buf.truncate(nout);
            ends.truncate(nend);
            CsvRecord::Fields { buf, ends }
        }
    })
}

/// The reason of a row skipped because its line or record (`what`) is `len` bytes long.
fn too_long(what: &str, len: usize) -> String {
    format!("{what} is {len} bytes long, more than the limit of {MAX_LINE_BYTES} bytes")
}

/// The longest text each field of a warm row may hold, from the model's limits
/// ([`pw_cache_model::limits`]): a longer one makes the row fail before anything is done with
/// the value (no URL parsing, no decryption). `proxy_url` may carry percent-encoded credentials
/// (3 bytes per byte at most), an encrypted credential is the hex of a token (2 characters per
/// byte, with room for whitespace).
fn field_limit(name: &str) -> usize {
    match name {
        PROXY_URL => limits::MAX_PROXY_URL_BYTES + 2 * 3 * limits::MAX_CREDENTIAL_BYTES + 2,
        USERNAME | PASSWORD => limits::MAX_CREDENTIAL_BYTES,
        USERNAME_ENCRYPTED | PASSWORD_ENCRYPTED => 4 * limits::MAX_CREDENTIAL_TOKEN_BYTES,
        SOURCE => limits::MAX_SOURCE_BYTES,
        _ => limits::MAX_KEY_BYTES,
    }
}

/// The CSV reader of a warm file (after its byte order mark).
fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input)
}

/// Reads the header row: its (trimmed) column names and where the fields are, or why the file
/// cannot be used (no header row, no `proxy_url` column).
fn csv_header<R: Read>(reader: &mut csv::Reader<R>, path: &Path) -> Result<(Vec<String>, CsvColumns), WarmFileError> {
    let header_error = |reason: String| WarmFileError::CsvHeader {
        path: path.to_path_buf(),
        reason,
    };
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| {
            if !e.is_io_error() {
                return header_error(format!("cannot read the header row: {e}"));
            }
            // Reading failed (only when reading from a file): as `read_warm_file` reports it.
            match e.into_kind() {
                csv::ErrorKind::Io(source) => WarmFileError::Io {
                    path: path.to_path_buf(),
                    source,
                },
                other => header_error(format!("cannot read the header row: {other:?}")),
            }
        })?
        .iter()
        .map(|name| String::from_utf8_lossy(name).trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(header_error(
            "no header row (the file is empty or its first line has no column names)".to_owned(),
        ));
    }
    let columns = CsvColumns::new(&header);
    if columns.proxy_url.is_none() {
        return Err(header_error(missing_url_column(&header)));
    }
    Ok((header, columns))
}

/// Physical line numbers of CSV records, counted by `\n` in the bytes.
///
/// [`csv::Position::line`] is not used: a record's position is where the csv reader started
/// reading it, before the line terminator of the previous record when that is `\r\n`, and
/// before the blank lines it skips, so its line is too small in CRLF files and after blank lines.
#[derive(Default)]
struct LineCounter {
    /// The byte offset counted up to.
    offset: usize,
    /// How many `\n` lie before `offset`.
    newlines: u64,
}

impl LineCounter {
    /// The 1-based line of the record the csv reader started reading at byte `start`: the first
    /// byte after `start` that is not `\r` or `\n` (the terminators and blank lines the reader
    /// skipped). Offsets must not decrease from call to call.
    fn line_at(&mut self, bytes: &[u8], start: u64) -> u64 {
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(bytes.len());
        let skipped = bytes
            .get(start..)
            .map_or(0, |rest| rest.iter().take_while(|&&b| b == b'\r' || b == b'\n').count());
        let target = start + skipped;
        if let Some(span) = bytes.get(self.offset..target) {
            self.newlines += span.iter().map(|&b| u64::from(b == b'\n')).sum::<u64>();
            self.offset = target;
        }
        self.newlines + 1
    }
}

/// Where each field we read is in a CSV record (the first column of that name).
struct CsvColumns {
    /// `proxy_url`.
    proxy_url: Option<usize>,
    /// `username`.
    username: Option<usize>,
    /// `password`.
    password: Option<usize>,
    /// `username_encrypted`.
    username_encrypted: Option<usize>,
    /// `password_encrypted`.
    password_encrypted: Option<usize>,
    /// `source`.
    source: Option<usize>,
    /// `key`.
    key: Option<usize>,
}

impl CsvColumns {
    /// Finds the columns in the (trimmed) header names.
    fn new(header: &[String]) -> Self {
        let find = |name: &str| header.iter().position(|h| h == name);
        Self {
            proxy_url: find(PROXY_URL),
            username: find(USERNAME),
            password: find(PASSWORD),
            username_encrypted: find(USERNAME_ENCRYPTED),
            password_encrypted: find(PASSWORD_ENCRYPTED),
            source: find(SOURCE),
            key: find(KEY),
        }
    }

    /// The fields of one record, or why it is unreadable (a field that is not UTF-8).
    fn raw_row(&self, record: &csv::ByteRecord, header: &[String]) -> Result<RawRow, String> {
        let mut fields = Vec::with_capacity(record.len());
        for (index, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok(text) => fields.push(text),
                Err(_) => {
                    return Err(match header.get(index).map(String::as_str) {
                        Some(name) if RawRow::NAMES.contains(&name) => format!("field `{name}` is not valid UTF-8"),
                        _ => format!("column {} is not valid UTF-8", index + 1),
                    });
                }
            }
        }
        let get = |column: Option<usize>| {
            column
                .and_then(|i| fields.get(i))
                .map_or(Field::Absent, |t| Field::text(t))
        };
        Ok(RawRow {
            proxy_url: get(self.proxy_url),
            username: get(self.username),
            password: get(self.password),
            username_encrypted: get(self.username_encrypted),
            password_encrypted: get(self.password_encrypted),
            source: get(self.source),
            key: get(self.key),
        })
    }
}

/// The reason of a [`WarmFileError::CsvHeader`] for a header without `proxy_url`.
///
/// A header row holding a URL is a data row (the file has no header): its cells may be
/// credentials, so they are not shown. Other names are shown when they look like column names.
fn missing_url_column(header: &[String]) -> String {
    if header.iter().any(|name| name.contains("://")) {
        return "no `proxy_url` column: the first line looks like data, not a header (it holds a URL); \
                the first line must name the columns, e.g. `proxy_url,username,password,source,key`"
            .to_owned();
    }
    let shown: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let plain = name.chars().count() <= 64
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
            if name.is_empty() {
                format!("(column {} has no name)", index + 1)
            } else if plain {
                format!("`{name}`")
            } else {
                format!("(column {}: name not shown)", index + 1)
            }
        })
        .collect();
    format!("no `proxy_url` column (columns found: {})", shown.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// The rows and issues found so far.
#[derive(Default)]
struct Collector {
    /// Usable rows.
    rows: Vec<WarmRow>,
    /// Skipped and failed rows.
    issues: Vec<WarmIssue>,
}

impl Collector {
    /// Records an issue.
    fn issue(&mut self, location: RowLocation, kind: IssueKind, reason: String) {
        self.issues.push(WarmIssue { location, kind, reason });
    }

    /// A JSON value that should be an object.
    fn value(&mut self, location: RowLocation, value: &Value) {
        match value {
            Value::Object(map) => self.row(location, RawRow::from_json(map)),
            other => {
                let reason = format!("not a JSON object (found {})", json_type(other));
                self.issue(location, IssueKind::Skipped, reason);
            }
        }
    }

    /// A row's fields: a row, or a skipped row.
    fn row(&mut self, location: RowLocation, raw: RawRow) {
        match build_row(location, raw) {
            Ok(row) => self.rows.push(row),
            Err(reason) => self.issue(location, IssueKind::Skipped, reason),
        }
    }
}

/// One field of a row as read, before interpretation.
enum Field {
    /// Missing, `null`, or empty after trimming.
    Absent,
    /// A trimmed, non-empty text (a JSON number is its JSON text).
    Text(String),
    /// A JSON type that is refused: `a boolean`, `an object`, `an array`.
    WrongType(&'static str),
}

impl Field {
    /// A text field: trimmed, empty is absent.
    fn text(value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() {
            Self::Absent
        } else {
            Self::Text(value.to_owned())
        }
    }

    /// A JSON field.
    fn json(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Absent,
            Some(Value::String(s)) => Self::text(s),
            Some(Value::Number(n)) => Self::text(&n.to_string()),
            Some(Value::Bool(_)) => Self::WrongType("a boolean"),
            Some(Value::Object(_)) => Self::WrongType("an object"),
            Some(Value::Array(_)) => Self::WrongType("an array"),
        }
    }

    /// The text, if any.
    fn into_text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            Self::Absent | Self::WrongType(_) => None,
        }
    }
}

/// The fields of one row that this module reads.
struct RawRow {
    /// `proxy_url`.
    proxy_url: Field,
    /// `username`.
    username: Field,
    /// `password`.
    password: Field,
    /// `username_encrypted`.
    username_encrypted: Field,
    /// `password_encrypted`.
    password_encrypted: Field,
    /// `source`.
    source: Field,
    /// `key`.
    key: Field,
}

impl RawRow {
    /// The names of the fields read, in the order they are checked.
    const NAMES: [&'static str; 7] = [
        PROXY_URL,
        USERNAME,
        PASSWORD,
        USERNAME_ENCRYPTED,
        PASSWORD_ENCRYPTED,
        SOURCE,
        KEY,
    ];

    /// The fields of a JSON object.
    fn from_json(map: &Map<String, Value>) -> Self {
        let get = |name: &str| Field::json(map.get(name));
        Self {
            proxy_url: get(PROXY_URL),
            username: get(USERNAME),
            password: get(PASSWORD),
            username_encrypted: get(USERNAME_ENCRYPTED),
            password_encrypted: get(PASSWORD_ENCRYPTED),
            source: get(SOURCE),
            key: get(KEY),
        }
    }

    /// The fields with their names, in [`RawRow::NAMES`] order.
    fn fields(&self) -> [(&'static str, &Field); 7] {
        [
            (PROXY_URL, &self.proxy_url),
            (USERNAME, &self.username),
            (PASSWORD, &self.password),
            (USERNAME_ENCRYPTED, &self.username_encrypted),
            (PASSWORD_ENCRYPTED, &self.password_encrypted),
            (SOURCE, &self.source),
            (KEY, &self.key),
        ]
    }
}

/// Applies the row rules (see the module documentation): a row, or the reason to skip it.
fn build_row(location: RowLocation, raw: RawRow) -> Result<WarmRow, String> {
    for (name, field) in raw.fields() {
        match field {
            Field::WrongType(found) => {
                return Err(format!("field `{name}` is {found}; expected a string or a number"));
            }
            Field::Text(text) if text.len() > field_limit(name) => {
                // The length only: the value may be a credential.
                return Err(format!(
                    "field `{name}` is {} bytes long, more than its limit of {} bytes",
                    text.len(),
                    field_limit(name)
                ));
            }
            Field::Text(_) | Field::Absent => {}
        }
    }
    let RawRow {
        proxy_url,
        username,
        password,
        username_encrypted,
        password_encrypted,
        source,
        key,
    } = raw;
    let Some(proxy_url) = proxy_url.into_text() else {
        return Err(format!("missing `{PROXY_URL}`"));
    };
    let url = ProxyUrl::parse(&proxy_url)?;
    let username = credential(username, USERNAME_ENCRYPTED, username_encrypted)?;
    let password = credential(password, PASSWORD_ENCRYPTED, password_encrypted)?;
    let (username, password) = if url.username.is_some() || url.password.is_some() {
        if username.is_some() || password.is_some() {
            return Err(format!(
                "credentials given both in `{PROXY_URL}` and in `{USERNAME}`/`{PASSWORD}`"
            ));
        }
        (
            url.username.map(|u| WarmCredential::Plain(Secret::new(u))),
            url.password.map(|p| WarmCredential::Plain(Secret::new(p))),
        )
    } else {
        (username, password)
    };
    Ok(WarmRow {
        location,
        proxy_url: url.stored,
        username,
        password,
        source: source.into_text(),
        key: key.into_text(),
    })
}

/// A credential from its plain and encrypted fields: the encrypted one wins; `"***"` is absent.
fn credential(plain: Field, encrypted_name: &str, encrypted: Field) -> Result<Option<WarmCredential>, String> {
    if let Some(hex) = encrypted.into_text() {
        return decode_token(encrypted_name, &hex).map(|token| Some(WarmCredential::Token(token)));
    }
    Ok(plain
        .into_text()
        .filter(|value| value != MASK)
        .map(|value| WarmCredential::Plain(Secret::new(value))))
}

/// The text of a Fernet token from the hex of its bytes.
fn decode_token(name: &str, hex: &str) -> Result<String, String> {
    let bytes = hex_decode(hex).ok_or_else(|| format!("field `{name}` is not valid hex"))?;
    let refused = || format!("field `{name}` does not decode to a Fernet token (printable ASCII text)");
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(refused());
    }
    String::from_utf8(bytes).map_err(|_| refused())
}

/// The value of one hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `%XX` percent-decoding (an invalid `%` sequence stays as written), then UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A validated proxy URL, split from its credentials.
struct ProxyUrl {
    /// The text to store: as written, without userinfo.
    stored: String,
    /// The percent-decoded username of the userinfo, if non-empty and not `"***"`.
    username: Option<String>,
    /// The percent-decoded password of the userinfo, if non-empty and not `"***"`.
    password: Option<String>,
}

impl ProxyUrl {
    /// Validates a trimmed, non-empty `proxy_url`. The reason never shows the URL (it may hold
    /// credentials).
    fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("`{PROXY_URL}` is not a valid proxy URL: {e}"))?;
        let scheme = url.scheme();
        if !PROXY_SCHEMES.contains(&scheme) {
            return Err(format!(
                "`{PROXY_URL}` scheme `{scheme}` is not a proxy scheme \
                 (expected http, https, socks4, socks4a, socks5 or socks5h)"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
            return Err(format!(
                "`{PROXY_URL}` contains whitespace, a control character or a backslash"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{PROXY_URL}` has no host"));
        }
        if url.port_or_known_default().is_none() {
            return Err(format!(
                "`{PROXY_URL}` has no port (scheme `{scheme}` has no default port)"
            ));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!("`{PROXY_URL}` has a path; expected only scheme://host:port"));
        }
        if url.query().is_some() {
            return Err(format!("`{PROXY_URL}` has a query; expected only scheme://host:port"));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "`{PROXY_URL}` has a fragment; expected only scheme://host:port"
            ));
        }

        // Remove the userinfo from the text as written: the authority runs from "://" to the
        // first '/', '?' or '#'; the userinfo ends at its last '@' (as the URL standard reads it).
        let written_scheme = text
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .zip(text.get(scheme.len()..))
            .and_then(|(s, rest)| rest.strip_prefix("://").map(|rest| (s, rest)));
        let Some((written_scheme, rest)) = written_scheme else {
            return Err(format!("`{PROXY_URL}` must start with `{scheme}://`"));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // The url crate skips extra slashes after `http:` and `https:` (`http:///host`), but an
        // RFC 3986 reader (Python's urllib.parse, so proxywhirl) sees an empty authority there.
        if authority.is_empty() {
            return Err(format!(
                "`{PROXY_URL}` has no host after `{written_scheme}://` (an extra `/`?)"
            ));
        }
        let (had_userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (true, authority.get(at + 1..).unwrap_or_default()),
            None => (false, authority),
        };
        let stored = format!("{written_scheme}://{host_port}{tail}");

        let url_has_userinfo = !url.username().is_empty() || url.password().is_some();
        let separated = if had_userinfo {
            Url::parse(&stored).is_ok_and(|check| {
                check.username().is_empty()
                    && check.password().is_none()
                    && check.host_str() == url.host_str()
                    && check.port_or_known_default() == url.port_or_known_default()
            })
        } else {
            !url_has_userinfo
        };
        if !separated {
            return Err(format!("`{PROXY_URL}` credentials could not be separated from the URL"));
        }

        let decode = |part: &str| {
            percent_decode(part)
                .ok_or_else(|| format!("`{PROXY_URL}` userinfo is not valid UTF-8 once percent-decoded"))
        };
        let keep = |value: String| Some(value).filter(|v| !v.is_empty() && v != MASK);
        let username = keep(decode(url.username())?);
        let password = match url.password() {
            Some(password) => keep(decode(password)?),
            None => None,
        };
        Ok(Self {
            stored,
            username,
            password,
        })
    }
}

/// The name of a JSON value's type, for reasons and errors.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn json_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/proxywhirl-0.3.3");

    fn fixture(name: &str) -> PathBuf {
        Path::new(FIXTURES).join("warm").join(name)
    }

    fn read(name: &str) -> WarmFile {
        read_warm_file(&fixture(name)).unwrap()
    }

    fn parse(format: WarmFormat, text: &str) -> WarmFile {
        parse_warm_bytes(format, text.as_bytes(), Path::new("test")).unwrap()
    }

    /// The plaintext of a credential, or `token:<text>` for a token.
    fn cred(c: &Option<WarmCredential>) -> Option<String> {
        c.as_ref().map(|c| match c {
            WarmCredential::Plain(s) => s.expose_secret().to_owned(),
            WarmCredential::Token(t) => format!("token:{t}"),
        })
    }

    /// (location, url, username, password, source, key) of every row.
    type Summary = (
        RowLocation,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );

    fn summary(file: &WarmFile) -> Vec<Summary> {
        file.rows
            .iter()
            .map(|r| {
                (
                    r.location,
                    r.proxy_url.clone(),
                    cred(&r.username),
                    cred(&r.password),
                    r.source.clone(),
                    r.key.clone(),
                )
            })
            .collect()
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn row(location: RowLocation, url: &str) -> Summary {
        (location, url.to_owned(), None, None, None, None)
    }

    fn issues(file: &WarmFile) -> Vec<(RowLocation, IssueKind, &str)> {
        file.issues
            .iter()
            .map(|i| (i.location, i.kind, i.reason.as_str()))
            .collect()
    }

    /// The row or the skip reason of a single-row JSONL file.
    fn one(line: &str) -> Result<WarmRow, String> {
        let file = parse(WarmFormat::Jsonl, line);
        match (file.rows.as_slice(), file.issues.as_slice()) {
            ([row], []) => Ok(row.clone()),
            ([], [issue]) => {
                assert_eq!(issue.kind, IssueKind::Skipped, "{issue}");
                Err(issue.reason.clone())
            }
            _ => panic!("expected one row or one issue: {file:?}"),
        }
    }

    fn url_of(proxy_url: &str) -> Result<String, String> {
        let line = serde_json::json!({ "proxy_url": proxy_url }).to_string();
        one(&line).map(|r| r.proxy_url)
    }

    /// Asserts that no secret appears in the file's Debug output nor in any reason.
    fn assert_hidden(file: &WarmFile, secrets: &[&str]) {
        let debug = format!("{file:?}");
        let reasons: Vec<String> = file.issues.iter().map(ToString::to_string).collect();
        for secret in secrets {
            assert!(!debug.contains(secret), "{secret:?} in {debug}");
            for reason in &reasons {
                assert!(!reason.contains(secret), "{secret:?} in {reason}");
            }
        }
    }

    // --- fixtures written for proxywhirl 0.3.3 -----------------------------------------------

    #[test]
    fn fixture_warm_input_json() {
        let file = read("warm_input.json");
        assert_eq!(file.format, WarmFormat::Json);
        use RowLocation::Item;
        assert_eq!(
            summary(&file),
            vec![
                row(Item(1), "http://1.2.3.4:8080"),
                (
                    Item(2),
                    "http://5.6.7.8:3128".into(),
                    s("alice"),
                    s("s3cr3t"),
                    s("json-src"),
                    None
                ),
                (
                    Item(3),
                    "socks5://[2001:db8::1]:1080".into(),
                    None,
                    None,
                    s("ipv6"),
                    s("custom-key-1")
                ),
                (Item(9), "http://1.2.3.4:8080".into(), None, None, s("dup"), None),
                (Item(10), "http://9.9.9.9:9".into(), s("42"), None, s("7"), None),
                (
                    Item(12),
                    "http://пример.рф:8080".into(),
                    s("пользователь"),
                    s("пароль🔑"),
                    None,
                    None
                ),
                row(Item(13), "http://k.example:1"),
                (Item(14), "http://k2.example:1".into(), None, None, None, s("0")),
                (Item(15), "http://k3.example:1".into(), None, None, None, s("123")),
                row(Item(17), "http://extra.example:1"),
                (
                    Item(18),
                    "http://embedded.example:8080".into(),
                    s("user"),
                    s("pw"),
                    None,
                    None
                ),
                row(Item(20), "http://src-null.example:1"),
                row(Item(22), "http://spaces.example:1"),
            ]
        );
        let skipped = IssueKind::Skipped;
        assert_eq!(
            issues(&file),
            vec![
                (Item(4), skipped, "missing `proxy_url`"),
                (Item(5), skipped, "missing `proxy_url`"),
                (
                    Item(6),
                    skipped,
                    "`proxy_url` is not a valid proxy URL: relative URL without a base"
                ),
                (Item(7), skipped, "missing `proxy_url`"),
                (Item(8), skipped, "not a JSON object (found string)"),
                (
                    Item(11),
                    skipped,
                    "`proxy_url` is not a valid proxy URL: relative URL without a base"
                ),
                (Item(16), skipped, "not a JSON object (found array)"),
                (
                    Item(19),
                    skipped,
                    "field `username` is a boolean; expected a string or a number"
                ),
                (
                    Item(21),
                    skipped,
                    "field `username` is an object; expected a string or a number"
                ),
            ]
        );
        assert_eq!((file.rows.len(), file.skipped(), file.failed()), (13, 9, 0));
        assert_hidden(&file, &["alice", "s3cr3t", "пользователь", "пароль🔑", "user:pw"]);
    }

    #[test]
    fn fixture_warm_input_jsonl() {
        let file = read("warm_input.jsonl");
        assert_eq!(file.format, WarmFormat::Jsonl);
        use RowLocation::Line;
        assert_eq!(
            summary(&file),
            vec![
                (
                    Line(1),
                    "http://10.0.0.1:8080".into(),
                    s("jl-user"),
                    s("jl-pass"),
                    s("jsonl-src"),
                    None
                ),
                row(Line(4), "http://10.0.0.2:8080"),
                (
                    Line(9),
                    "http://10.0.0.3:8080".into(),
                    None,
                    s("only-pass"),
                    None,
                    s("jl-custom")
                ),
                (
                    Line(10),
                    "http://10.0.0.1:8080".into(),
                    None,
                    None,
                    s("jsonl-dup"),
                    None
                ),
                (Line(11), "http://юникод.example:1".into(), s("ü"), None, None, None),
                row(Line(12), "http://trailing.example:1"),
            ]
        );
        let (skipped, failed) = (IssueKind::Skipped, IssueKind::Failed);
        assert_eq!(
            issues(&file),
            vec![
                (Line(5), failed, "invalid JSON: key must be a string at column 2"),
                (Line(6), skipped, "missing `proxy_url`"),
                (Line(7), skipped, "not a JSON object (found array)"),
                (Line(8), skipped, "not a JSON object (found string)"),
                (
                    Line(13),
                    failed,
                    "invalid JSON: EOF while parsing a string at column 27"
                ),
            ]
        );
        assert_eq!((file.rows.len(), file.skipped(), file.failed()), (6, 3, 2));
        assert_hidden(&file, &["jl-user", "jl-pass", "only-pass"]);
    }

    #[test]
    fn fixture_warm_input_csv() {
        let file = read("warm_input.csv");
        assert_eq!(file.format, WarmFormat::Csv);
        let at = |record, line| RowLocation::Row { record, line };
        assert_eq!(
            summary(&file),
            vec![
                (at(1, 2), "http://30.0.0.1:8080".into(), None, None, s("csv-src"), None),
                (
                    at(2, 3),
                    "http://30.0.0.2:8080".into(),
                    s("csvuser"),
                    s("csv,pass\"with\nnewline"),
                    s("csv-src"),
                    None
                ),
                row(at(4, 6), "http://30.0.0.3:8080"),
                (
                    at(5, 7),
                    "http://30.0.0.4:8080".into(),
                    s("u4"),
                    s("p4"),
                    s("csv-src"),
                    s("csv-custom-key")
                ),
                (
                    at(6, 8),
                    "socks5://30.0.0.5:1080".into(),
                    s("ünï"),
                    s("пароль"),
                    None,
                    None
                ),
                (
                    at(7, 9),
                    "http://30.0.0.1:8080".into(),
                    s("dupuser"),
                    s("duppass"),
                    s("csv-dup"),
                    None
                ),
                (
                    at(9, 11),
                    "http://30.0.0.6:8080".into(),
                    s("spaced"),
                    s("spaced"),
                    s("src"),
                    None
                ),
            ]
        );
        let skipped = IssueKind::Skipped;
        assert_eq!(
            issues(&file),
            vec![
                (at(3, 5), skipped, "missing `proxy_url`"),
                (
                    at(8, 10),
                    skipped,
                    "`proxy_url` is not a valid proxy URL: relative URL without a base"
                ),
            ]
        );
        assert_hidden(&file, &["csv,pass", "duppass", "пароль", "csvuser"]);
    }

    #[test]
    fn fixture_warm_bom_csv_reads_its_row() {
        let file = read("warm_bom.csv");
        assert_eq!(
            summary(&file),
            vec![(
                RowLocation::Row { record: 1, line: 2 },
                "http://32.0.0.1:80".into(),
                s("a"),
                None,
                None,
                None
            )]
        );
        assert!(file.issues.is_empty());
    }

    #[test]
    fn fixture_warm_abort_json_skips_the_null_item_and_goes_on() {
        let file = read("warm_abort.json");
        assert_eq!(
            summary(&file),
            vec![
                row(RowLocation::Item(1), "http://21.0.0.1:80"),
                row(RowLocation::Item(3), "http://21.0.0.2:80"),
            ]
        );
        assert_eq!(
            issues(&file),
            vec![(
                RowLocation::Item(2),
                IssueKind::Skipped,
                "not a JSON object (found null)"
            )]
        );
    }

    #[test]
    fn fixture_warm_abort_jsonl_skips_the_number_line_and_goes_on() {
        let file = read("warm_abort.jsonl");
        assert_eq!(
            summary(&file),
            vec![
                row(RowLocation::Line(1), "http://20.0.0.1:80"),
                row(RowLocation::Line(3), "http://20.0.0.2:80"),
            ]
        );
        assert_eq!(
            issues(&file),
            vec![(
                RowLocation::Line(2),
                IssueKind::Skipped,
                "not a JSON object (found number)"
            )]
        );
    }

    #[test]
    fn fixture_whole_file_errors() {
        let err = read_warm_file(&fixture("warm_invalid.json")).unwrap_err();
        match &err {
            WarmFileError::Json {
                path,
                line,
                column,
                message,
            } => {
                assert!(path.ends_with("warm_invalid.json"));
                assert_eq!((*line, *column), (1, 37));
                assert_eq!(message, "EOF while parsing a value");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains("warm_invalid.json: invalid JSON at line 1 column 37"),
            "{err}"
        );

        let err = read_warm_file(&fixture("warm_not_array.json")).unwrap_err();
        assert!(
            matches!(&err, WarmFileError::NotArray { found: "object", path } if path.ends_with("warm_not_array.json")),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("must be an array of objects, found object"),
            "{err}"
        );

        let err = read_warm_file(&fixture("warm_no_url_column.csv")).unwrap_err();
        match &err {
            WarmFileError::CsvHeader { path, reason } => {
                assert!(path.ends_with("warm_no_url_column.csv"));
                assert_eq!(
                    reason,
                    "no `proxy_url` column (columns found: `url`, `username`, `password`)"
                );
            }
            other => panic!("{other:?}"),
        }

        let err = read_warm_file(&fixture("warm_unsupported.txt")).unwrap_err();
        assert!(
            matches!(&err, WarmFileError::Unsupported { extension, .. } if extension == "txt"),
            "{err:?}"
        );
        assert!(
            err.to_string().ends_with(
                "warm_unsupported.txt: unsupported warm file extension `.txt`, expected .json, .jsonl or .csv"
            ),
            "{err}"
        );

        let err = read_warm_file(&fixture("does_not_exist.jsonl")).unwrap_err();
        match &err {
            WarmFileError::Io { path, source } => {
                assert!(path.ends_with("does_not_exist.jsonl"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("does_not_exist.jsonl: cannot read"), "{err}");
    }

    #[test]
    fn export_lines_drop_the_mask_and_move_embedded_credentials() {
        let path = Path::new(FIXTURES).join("export/export.jsonl");
        let file = read_warm_file(&path).unwrap();
        assert_eq!((file.rows.len(), file.issues.len()), (160, 0), "{:?}", file.issues);
        let with_credentials: Vec<_> = summary(&file)
            .into_iter()
            .filter(|r| r.2.is_some() || r.3.is_some())
            .map(|(loc, url, user, pass, _, _)| (loc, url, user, pass))
            .collect();
        assert_eq!(
            with_credentials,
            vec![
                (
                    RowLocation::Line(3),
                    "socks5://206.118.211.176:443".into(),
                    s("embed"),
                    s("pw")
                ),
                (
                    RowLocation::Line(31),
                    "http://69.28.168.141:80".into(),
                    s("embed"),
                    s("pw")
                ),
                (
                    RowLocation::Line(158),
                    "https://209.215.12.228:1080".into(),
                    s("embed"),
                    s("pw")
                ),
            ]
        );
        assert!(file.rows.iter().all(|r| !r.proxy_url.contains('@')));
        assert!(file.rows.iter().all(|r| r.key.is_some()));
        // 14 export lines have `"source": ""`: absent.
        assert_eq!(file.rows.iter().filter(|r| r.source.is_none()).count(), 14);
    }

    #[test]
    fn shard_lines_give_tokens_and_refuse_double_credentials() {
        let path = Path::new(FIXTURES).join("jsonl_l2/shard_13.jsonl");
        let file = read_warm_file(&path).unwrap();
        // Line 1 and 7 have "embed:pw@" in the URL and encrypted fields: contradictory.
        let conflict = "credentials given both in `proxy_url` and in `username`/`password`";
        assert_eq!(
            issues(&file),
            vec![
                (RowLocation::Line(1), IssueKind::Skipped, conflict),
                (RowLocation::Line(7), IssueKind::Skipped, conflict),
            ]
        );
        assert_eq!(file.rows.len(), 12);
        let tokens: Vec<&str> = file
            .rows
            .iter()
            .flat_map(|r| [&r.username, &r.password])
            .filter_map(|c| match c {
                Some(WarmCredential::Token(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(!tokens.is_empty());
        // A Fernet token: version byte 0x80, so urlsafe base64 starting "gAAAAA".
        assert!(tokens.iter().all(|t| t.starts_with("gAAAAA")), "{tokens:?}");
        let debug = format!("{file:?}");
        assert!(tokens.iter().all(|t| !debug.contains(t)));
        assert!(debug.contains("Token(<"), "{debug}");
    }

    // --- formats -----------------------------------------------------------------------------

    #[test]
    fn format_from_path_is_case_insensitive() {
        assert_eq!(WarmFormat::from_path(Path::new("a/b.JSON")).unwrap(), WarmFormat::Json);
        assert_eq!(WarmFormat::from_path(Path::new("b.JsonL")).unwrap(), WarmFormat::Jsonl);
        assert_eq!(WarmFormat::from_path(Path::new("b.Csv")).unwrap(), WarmFormat::Csv);
        let err = WarmFormat::from_path(Path::new("noext")).unwrap_err();
        assert!(matches!(&err, WarmFileError::Unsupported { extension, .. } if extension.is_empty()));
        assert!(err.to_string().contains("extension (none)"), "{err}");
        assert!(WarmFormat::from_path(Path::new("x.json.gz")).is_err());
        assert_eq!(WarmFormat::Jsonl.to_string(), "JSONL");
        assert_eq!(WarmFormat::Csv.extension(), "csv");
    }

    #[test]
    fn locations_display() {
        assert_eq!(RowLocation::Line(3).to_string(), "line 3");
        assert_eq!(RowLocation::Item(4).to_string(), "item 4");
        assert_eq!(RowLocation::Row { record: 2, line: 3 }.to_string(), "row 2 (line 3)");
        let issue = WarmIssue {
            location: RowLocation::Line(5),
            kind: IssueKind::Failed,
            reason: "invalid JSON: x".into(),
        };
        assert_eq!(issue.to_string(), "line 5: failed: invalid JSON: x");
    }

    #[test]
    fn jsonl_crlf_bom_and_blank_lines() {
        let text = "\u{feff}{\"proxy_url\": \"http://a.example:1\"}\r\n\r\n  \t\r\n{\"proxy_url\": \"http://b.example:2\", \"password\": \"p\"}\r\n";
        let file = parse(WarmFormat::Jsonl, text);
        assert_eq!(
            summary(&file),
            vec![
                row(RowLocation::Line(1), "http://a.example:1"),
                (
                    RowLocation::Line(4),
                    "http://b.example:2".into(),
                    None,
                    s("p"),
                    None,
                    None
                ),
            ]
        );
        assert!(file.issues.is_empty());
        assert!(parse(WarmFormat::Jsonl, "").rows.is_empty());
    }

    #[test]
    fn jsonl_invalid_utf8_line_fails_and_the_next_is_read() {
        let mut bytes = b"{\"proxy_url\": \"http://a.example:1\", \"source\": \"\xff\"}\n".to_vec();
        bytes.extend_from_slice(b"{\"proxy_url\": \"http://b.example:1\"}");
        let file = parse_warm_bytes(WarmFormat::Jsonl, &bytes, Path::new("t.jsonl")).unwrap();
        assert_eq!(summary(&file), vec![row(RowLocation::Line(2), "http://b.example:1")]);
        assert_eq!(
            issues(&file),
            vec![(
                RowLocation::Line(1),
                IssueKind::Failed,
                "line is not valid UTF-8 (invalid byte at column 48)"
            )]
        );
    }

    #[test]
    fn json_bom_not_utf8_and_empty_array() {
        let file = parse(WarmFormat::Json, "\u{feff}[{\"proxy_url\": \"http://a.example:1\"}]");
        assert_eq!(summary(&file), vec![row(RowLocation::Item(1), "http://a.example:1")]);
        assert_eq!(parse(WarmFormat::Json, "[]").rows, vec![]);

        let err =
            parse_warm_bytes(WarmFormat::Json, b"[\n{\"proxy_url\": \"\xfe\"}]", Path::new("x.json")).unwrap_err();
        assert!(
            matches!(
                err,
                WarmFileError::NotUtf8 {
                    offset: 17,
                    line: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        for (text, found) in [
            ("\"s\"", "string"),
            ("1", "number"),
            ("true", "boolean"),
            ("null", "null"),
        ] {
            let err = parse_warm_bytes(WarmFormat::Json, text.as_bytes(), Path::new("x.json")).unwrap_err();
            assert!(
                matches!(err, WarmFileError::NotArray { found: f, .. } if f == found),
                "{err:?}"
            );
        }
        let err = parse_warm_bytes(WarmFormat::Json, b"", Path::new("x.json")).unwrap_err();
        assert!(matches!(err, WarmFileError::Json { .. }), "{err:?}");
    }

    /// A directory under the system's temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!("pw-cache-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The variant of a whole-file error, `ok` for none.
    fn verdict<T>(result: &Result<T, WarmFileError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(WarmFileError::Unsupported { .. }) => "Unsupported",
            Err(WarmFileError::Io { .. }) => "Io",
            Err(WarmFileError::NotUtf8 { .. }) => "NotUtf8",
            Err(WarmFileError::Json { .. }) => "Json",
            Err(WarmFileError::NotArray { .. }) => "NotArray",
            Err(WarmFileError::CsvHeader { .. }) => "CsvHeader",
        }
    }

    #[test]
    fn check_warm_file_fails_exactly_when_reading_does() {
        let dir = TempDir::new("check-warm-file");
        let bom = "\u{feff}";
        let files: [(&str, Vec<u8>, &str); 20] = [
            ("ok.csv", b"proxy_url\nhttp://a.example:1\n".to_vec(), "ok"),
            ("bom.csv", format!("{bom}proxy_url,x\n").into_bytes(), "ok"),
            // A quoted header name spanning lines, and rows that fail: the header is all that counts.
            ("quoted.csv", b"\"a\nb\",proxy_url\n\xff,\xfe\n".to_vec(), "ok"),
            ("bom_only.csv", bom.as_bytes().to_vec(), "CsvHeader"),
            ("empty.csv", Vec::new(), "CsvHeader"),
            ("short.csv", b"a".to_vec(), "CsvHeader"),
            ("no_url.csv", b"url,user\nhttp://a.example:1,x\n".to_vec(), "CsvHeader"),
            ("data.csv", b"http://u:p@a.example:1,u,p\n".to_vec(), "CsvHeader"),
            ("ok.json", b"[{\"proxy_url\": 1}, null]".to_vec(), "ok"),
            ("bom.json", format!("{bom}[]").into_bytes(), "ok"),
            (
                "object.json",
                b"{\"proxy_url\": \"http://a.example:1\"}".to_vec(),
                "NotArray",
            ),
            ("truncated.json", b"[{\"proxy_url\": ".to_vec(), "Json"),
            ("empty.json", Vec::new(), "Json"),
            ("latin1.json", b"[\"\xe9\"]".to_vec(), "NotUtf8"),
            ("garbage.jsonl", b"not json\n\xff\n[1]\n".to_vec(), "ok"),
            ("empty.jsonl", Vec::new(), "ok"),
            ("UPPER.CSV", b"proxy_url\n".to_vec(), "ok"),
            ("proxies.txt", b"proxy_url\n".to_vec(), "Unsupported"),
            ("no_extension", b"[]".to_vec(), "Unsupported"),
            ("ok.jsonl", b"{}\n".to_vec(), "ok"),
        ];
        let mut cases = Vec::new();
        for (name, bytes, want) in files {
            std::fs::write(dir.0.join(name), bytes).unwrap();
            cases.push((name.to_owned(), want));
        }
        // Not there, or a directory (which opens, then fails to read).
        for name in ["missing.csv", "missing.json", "missing.jsonl"] {
            cases.push((name.to_owned(), "Io"));
        }
        for name in ["dir.csv", "dir.json", "dir.jsonl"] {
            std::fs::create_dir(dir.0.join(name)).unwrap();
            cases.push((name.to_owned(), "Io"));
        }
        for (name, want) in cases {
            let path = dir.0.join(&name);
            let checked = check_warm_file(&path);
            let read = read_warm_file(&path).map(|file| file.format);
            assert_eq!(verdict(&checked), want, "{name}: {checked:?}");
            assert_eq!(
                checked.map_err(|e| e.to_string()),
                read.map_err(|e| e.to_string()),
                "{name}: the check and the read disagree"
            );
        }
    }

    #[test]
    fn csv_header_rules() {
        let file = parse(
            WarmFormat::Csv,
            " key , proxy_url ,Username\nk1,http://a.example:1,ignored\n\n\"k2\",\"http://b.example:2\"\n",
        );
        assert_eq!(
            summary(&file),
            vec![
                (
                    RowLocation::Row { record: 1, line: 2 },
                    "http://a.example:1".into(),
                    None,
                    None,
                    None,
                    s("k1")
                ),
                (
                    RowLocation::Row { record: 2, line: 4 },
                    "http://b.example:2".into(),
                    None,
                    None,
                    None,
                    s("k2")
                ),
            ]
        );

        let header_err = |text: &str| match parse_warm_bytes(WarmFormat::Csv, text.as_bytes(), Path::new("h.csv")) {
            Err(WarmFileError::CsvHeader { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(header_err("").starts_with("no header row"));
        assert!(header_err("\u{feff}").starts_with("no header row"));
        assert_eq!(
            header_err("Proxy_URL,x\n"),
            "no `proxy_url` column (columns found: `Proxy_URL`, `x`)"
        );
        // A headerless file: its first line is data and may hold credentials; never shown.
        let reason = header_err("http://u:HuNtEr2@a.example:1,alice,HuNtEr2\n");
        assert!(reason.contains("looks like data"), "{reason}");
        assert!(!reason.contains("HuNtEr2") && !reason.contains("alice"), "{reason}");
        let reason = header_err("url,p@ss:w0rd!,\n");
        assert_eq!(
            reason,
            "no `proxy_url` column (columns found: `url`, (column 2: name not shown), (column 3 has no name))"
        );
    }

    #[test]
    fn csv_invalid_utf8_record_fails_and_the_next_is_read() {
        let bytes =
            b"proxy_url,password,other\nhttp://a.example:1,\xff\xfe,x\nhttp://b.example:1,,\xff\nhttp://c.example:1\n";
        let file = parse_warm_bytes(WarmFormat::Csv, bytes, Path::new("u.csv")).unwrap();
        assert_eq!(
            summary(&file),
            vec![row(RowLocation::Row { record: 3, line: 4 }, "http://c.example:1")]
        );
        assert_eq!(
            issues(&file),
            vec![
                (
                    RowLocation::Row { record: 1, line: 2 },
                    IssueKind::Failed,
                    "field `password` is not valid UTF-8"
                ),
                (
                    RowLocation::Row { record: 2, line: 3 },
                    IssueKind::Failed,
                    "column 3 is not valid UTF-8"
                ),
            ]
        );
    }

    #[test]
    fn csv_crlf_and_mask() {
        let file = parse(
            WarmFormat::Csv,
            "proxy_url,username,password\r\nhttp://a.example:1,***,***\r\nhttp://b.example:1,bob,\" *** \"\r\n",
        );
        assert_eq!(
            summary(&file),
            vec![
                row(RowLocation::Row { record: 1, line: 2 }, "http://a.example:1"),
                (
                    RowLocation::Row { record: 2, line: 3 },
                    "http://b.example:1".into(),
                    s("bob"),
                    None,
                    None,
                    None
                ),
            ]
        );
    }

    #[test]
    fn csv_line_numbers_follow_physical_lines() {
        // Blank lines, CRLF and a quoted field spanning lines: each record's line is where its
        // first field starts.
        let text = "proxy_url,password\r\n\r\nhttp://a.example:1,\"x\r\ny\"\r\n\n\r\nhttp://b.example:1\nnope\r\n";
        let file = parse(WarmFormat::Csv, text);
        assert_eq!(
            summary(&file),
            vec![
                (
                    RowLocation::Row { record: 1, line: 3 },
                    "http://a.example:1".into(),
                    None,
                    s("x\r\ny"),
                    None,
                    None
                ),
                row(RowLocation::Row { record: 2, line: 7 }, "http://b.example:1"),
            ]
        );
        assert_eq!(
            issues(&file),
            vec![(
                RowLocation::Row { record: 3, line: 8 },
                IssueKind::Skipped,
                "`proxy_url` is not a valid proxy URL: relative URL without a base"
            )]
        );
    }

    // --- row rules ---------------------------------------------------------------------------

    #[test]
    fn value_types() {
        let r =
            one(r#"{"proxy_url": "http://a.example:1", "username": 1.5, "password": -3, "source": "  ", "key": 7}"#)
                .unwrap();
        assert_eq!(
            (cred(&r.username), cred(&r.password), r.source, r.key),
            (s("1.5"), s("-3"), None, s("7"))
        );
        for (field, value, found) in [
            ("password", "false", "a boolean"),
            ("source", "[]", "an array"),
            ("key", "{}", "an object"),
            ("password_encrypted", "true", "a boolean"),
            ("proxy_url", "true", "a boolean"),
        ] {
            let mut line = format!(r#"{{"{field}": {value}"#);
            if field != "proxy_url" {
                line.push_str(r#", "proxy_url": "http://a.example:1""#);
            }
            line.push('}');
            assert_eq!(
                one(&line).unwrap_err(),
                format!("field `{field}` is {found}; expected a string or a number")
            );
        }
        // Other fields are not read, so their types do not matter.
        assert!(one(r#"{"proxy_url": "http://a.example:1", "ttl_seconds": true, "x": {}}"#).is_ok());
    }

    #[test]
    fn masked_credentials_are_absent() {
        let r = one(r#"{"proxy_url": "http://a.example:1", "username": "***", "password": " *** "}"#).unwrap();
        assert_eq!((r.username, r.password), (None, None));
        let r = one(r#"{"proxy_url": "http://***:***@a.example:1"}"#).unwrap();
        assert_eq!(
            (r.proxy_url.as_str(), r.username, r.password),
            ("http://a.example:1", None, None)
        );
        // "***" is no credential, so it does not conflict with the URL's.
        let r = one(r#"{"proxy_url": "http://u:p@a.example:1", "password": "***"}"#).unwrap();
        assert_eq!((cred(&r.username), cred(&r.password)), (s("u"), s("p")));
    }

    #[test]
    fn encrypted_fields_decode_and_win() {
        let token = "gAAAAABk-_x=";
        let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
        let line = format!(
            r#"{{"proxy_url": "http://a.example:1", "username": "plain", "username_encrypted": "{hex}", "password_encrypted": "{}"}}"#,
            hex.to_uppercase()
        );
        let r = one(&line).unwrap();
        assert_eq!(r.username, Some(WarmCredential::Token(token.to_owned())));
        assert_eq!(r.password, Some(WarmCredential::Token(token.to_owned())));
        assert_eq!(format!("{:?}", r.username), "Some(Token(<12 bytes>))");

        for (hex, reason) in [
            ("abc", "field `password_encrypted` is not valid hex"),
            ("zz", "field `password_encrypted` is not valid hex"),
            ("***", "field `password_encrypted` is not valid hex"),
            (
                "0a41",
                "field `password_encrypted` does not decode to a Fernet token (printable ASCII text)",
            ),
            (
                "c3bc",
                "field `password_encrypted` does not decode to a Fernet token (printable ASCII text)",
            ),
        ] {
            let line = format!(r#"{{"proxy_url": "http://a.example:1", "password_encrypted": "{hex}"}}"#);
            assert_eq!(one(&line).unwrap_err(), reason, "{hex}");
        }
        let r = one(r#"{"proxy_url": "http://a.example:1", "password_encrypted": " ", "password": "x"}"#).unwrap();
        assert_eq!(cred(&r.password), s("x"));
    }

    #[test]
    fn proxy_url_accepted_forms() {
        for (input, stored) in [
            ("http://a.example:8080", "http://a.example:8080"),
            ("http://a.example", "http://a.example"),
            ("https://a.example/", "https://a.example/"),
            ("HTTP://A.example:1", "HTTP://A.example:1"),
            ("socks4://1.2.3.4:1080", "socks4://1.2.3.4:1080"),
            ("socks4a://a.example:1080", "socks4a://a.example:1080"),
            ("socks5h://a.example:1080/", "socks5h://a.example:1080/"),
            ("socks5://[::1]:1080", "socks5://[::1]:1080"),
            ("http://пример.рф:8080", "http://пример.рф:8080"),
            ("\u{3000} http://a.example:1 \n", "http://a.example:1"),
            ("http://@a.example:1", "http://a.example:1"),
        ] {
            assert_eq!(url_of(input).as_deref(), Ok(stored), "{input:?}");
        }
    }

    #[test]
    fn proxy_url_refused_forms() {
        let invalid = "`proxy_url` is not a valid proxy URL";
        for (input, reason) in [
            (
                "ftp://a.example:21",
                "`proxy_url` scheme `ftp` is not a proxy scheme".to_owned(),
            ),
            (
                "a.example:8080",
                "`proxy_url` scheme `a.example` is not a proxy scheme".to_owned(),
            ),
            ("1.2.3.4:8080", format!("{invalid}: relative URL without a base")),
            (
                "socks5://a.example",
                "`proxy_url` has no port (scheme `socks5` has no default port)".to_owned(),
            ),
            ("socks5:///", "`proxy_url` has no host".to_owned()),
            ("socks5://:1080", format!("{invalid}: empty host")),
            ("http://:80", format!("{invalid}: empty host")),
            ("http://a.example:99999", format!("{invalid}: invalid port number")),
            ("http://a.example:1/x", "`proxy_url` has a path".to_owned()),
            ("http://a.example:1/?", "`proxy_url` has a query".to_owned()),
            ("http://a.example:1#f", "`proxy_url` has a fragment".to_owned()),
            ("http:a.example:1", "`proxy_url` must start with `http://`".to_owned()),
            ("http:/a.example:1", "`proxy_url` must start with `http://`".to_owned()),
            ("http://a.ex\tample:1", "`proxy_url` contains whitespace".to_owned()),
            ("http://a.example:1\\", "`proxy_url` contains whitespace".to_owned()),
        ] {
            let err = url_of(input).unwrap_err();
            assert!(err.starts_with(&reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn userinfo_is_moved_out_of_the_url() {
        let r = one(r#"{"proxy_url": "socks5://us%65r%40x:p%C3%A4ss%3A@[::1]:1080/", "source": "s"}"#).unwrap();
        assert_eq!(r.proxy_url, "socks5://[::1]:1080/");
        assert_eq!((cred(&r.username), cred(&r.password)), (s("user@x"), s("päss:")));
        // A literal '@' in the password: the userinfo ends at the last '@'.
        let r = one(r#"{"proxy_url": "http://u:p@ss@a.example:1"}"#).unwrap();
        assert_eq!(r.proxy_url, "http://a.example:1");
        assert_eq!((cred(&r.username), cred(&r.password)), (s("u"), s("p@ss")));
        // Only a username; only a password; non-ASCII is percent-encoded by the parser.
        let r = one(r#"{"proxy_url": "http://ü@a.example:1"}"#).unwrap();
        assert_eq!((cred(&r.username), cred(&r.password)), (s("ü"), None));
        let r = one(r#"{"proxy_url": "http://:pw@a.example:1"}"#).unwrap();
        assert_eq!((cred(&r.username), cred(&r.password)), (None, s("pw")));
        // An invalid % sequence stays as written.
        let r = one(r#"{"proxy_url": "http://u%zz:p%4@a.example:1"}"#).unwrap();
        assert_eq!((cred(&r.username), cred(&r.password)), (s("u%zz"), s("p%4")));

        assert_eq!(
            one(r#"{"proxy_url": "http://u%ff:p@a.example:1"}"#).unwrap_err(),
            "`proxy_url` userinfo is not valid UTF-8 once percent-decoded"
        );
        for other in [
            r#""username": "bob""#,
            r#""password": "x""#,
            r#""password_encrypted": "6141""#,
        ] {
            let line = format!(r#"{{"proxy_url": "http://u:p@a.example:1", {other}}}"#);
            assert_eq!(
                one(&line).unwrap_err(),
                "credentials given both in `proxy_url` and in `username`/`password`"
            );
        }
    }

    #[test]
    fn credentials_never_shown() {
        let secret = "HuNtEr2";
        let text = [
            // Valid rows: credentials from fields and from the URL.
            format!(r#"{{"proxy_url": "http://a.example:1", "username": "{secret}u", "password": "{secret}p"}}"#),
            format!(r#"{{"proxy_url": "http://{secret}x:{secret}y@a.example:1"}}"#),
            // Refused rows whose URL holds credentials: every kind of URL problem.
            format!(r#"{{"proxy_url": "socks5://u:{secret}@a.example"}}"#),
            format!(r#"{{"proxy_url": "http://u:{secret}@a.example:99999"}}"#),
            format!(r#"{{"proxy_url": "ftp://u:{secret}@a.example:1"}}"#),
            format!(r#"{{"proxy_url": "http://u:{secret}@a.example:1/path?q#f"}}"#),
            format!(r#"{{"proxy_url": "http://u:{secret}@a.example:1", "password": "{secret}"}}"#),
            format!(r#"{{"proxy_url": "http://a.example:1", "password": true, "username": "{secret}"}}"#),
            format!(r#"{{"proxy_url": "http://u:{secret}%ff@a.example:1"}}"#),
            format!(r#"{{"proxy_url": "http://u:{secret} @a.example:1"}}"#),
            // Unreadable lines.
            format!(r#"{{"proxy_url": "http://a.example:1", "password": "{secret}"#),
            format!(r#"{{"password": "{secret}\q"}}"#),
        ]
        .join("\n");
        let file = parse(WarmFormat::Jsonl, &text);
        assert_eq!((file.rows.len(), file.skipped(), file.failed()), (2, 8, 2), "{file:?}");
        assert_hidden(&file, &[secret]);
        let r = &file.rows[1];
        assert_eq!(r.proxy_url, "http://a.example:1");
        assert_eq!(cred(&r.password), Some(format!("{secret}y")));
    }
}
