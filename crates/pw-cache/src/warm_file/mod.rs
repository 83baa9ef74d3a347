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
//! # Reading
//!
//! [`WarmReader`] reads a file and hands its rows and issues over one at a time, in file order
//! ([`WarmItem`]); [`read_warm_file`] collects them into a [`WarmFile`], and
//! `CacheManager::warm_from_file` stores each row as it comes. Memory does not grow with the
//! file:
//!
//! - `.jsonl` and `.csv` files are streamed through a buffered reader: a line or record is read
//!   at most [`MAX_LINE_BYTES`] (1 MiB) at a time; a longer one is read past without being held
//!   and is a failed row ([`RowLocation::Line`] or [`RowLocation::Row`] as for any other).
//! - A `.json` document must be parsed whole to know whether it is valid (which
//!   [`check_warm_file`] promises before anything is stored), so its bytes are held whole: one
//!   larger than [`MAX_WARM_JSON_BYTES`] (64 MiB) is refused ([`WarmFileError::TooLarge`]) by its
//!   size before anything is read, and never more than that limit is read from it even if it
//!   grows meanwhile. It is parsed twice, an item at a time (checked, then handed over), never
//!   into the tree of the whole document. Big lists belong in JSONL.
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
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use pw_cache_model::Secret;
use pw_cache_model::limits::{MAX_LINE_BYTES, MAX_WARM_JSON_BYTES};

mod csv;
mod json;
mod jsonl;
mod row;
#[cfg(test)]
mod tests;

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The size of the buffer a warm file is read through.
const READ_BUFFER: usize = 64 * 1024;

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
    /// The CSV file has no header row, no `proxy_url` column, or a header row longer than
    /// [`MAX_LINE_BYTES`].
    #[error("{}: invalid CSV header: {reason}", .path.display())]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the columns found.
        reason: String,
    },
    /// The `.json` document is larger than [`MAX_WARM_JSON_BYTES`]: it would have to be held and
    /// parsed whole. Nothing of it was read (or, when it grew while being read, one byte more
    /// than the limit).
    #[error(
        "{}: the JSON warm file is {len} bytes long, more than the limit of {limit} bytes for a .json \
         document (it is parsed whole); write big lists as JSONL (.jsonl, one object per line), \
         which is read a line at a time",
        .path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes: as `fstat` gave it, or, when it grew past the limit while being read
        /// (or is not a file), at least what was read (`limit + 1`).
        len: u64,
        /// The limit, [`MAX_WARM_JSON_BYTES`].
        limit: u64,
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

/// One row of a warm file, as [`WarmReader`] hands it over: usable, or an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmItem {
    /// A usable row.
    Row(WarmRow),
    /// A row that was skipped or failed.
    Issue(WarmIssue),
}

/// Reads a warm file's rows one at a time, in file order: an [`Iterator`] of [`WarmItem`]s.
///
/// Opening it ([`WarmReader::open`]) finds the problems of the whole file, exactly those
/// [`check_warm_file`] finds: for a `.csv` file it reads the header row, for a `.json` file the
/// whole document (at most [`MAX_WARM_JSON_BYTES`]), for a `.jsonl` file its first bytes. Then
/// each [`Iterator::next`] reads one more row: `.jsonl` and `.csv` files are read through a
/// buffer, one line or record (at most [`MAX_LINE_BYTES`] of it) at a time, so memory does not
/// grow with the file. The only error after opening is a failed read
/// ([`WarmFileError::Io`]); the reader then ends.
pub struct WarmReader<R = File> {
    /// The format the file is read as.
    format: WarmFormat,
    /// The file, for errors.
    path: PathBuf,
    /// The file's size when opened, if known.
    file_len: Option<u64>,
    /// Where the rows come from.
    source: Source<R>,
}

impl<R> fmt::Debug for WarmReader<R> {
    /// The path, the format and the size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("file_len", &self.file_len)
            .finish_non_exhaustive()
    }
}

/// The reader of each format.
enum Source<R> {
    /// A `.json` document, held whole and checked, its items parsed one at a time.
    Json(json::JsonItems),
    /// A `.jsonl` file, read a line at a time.
    Jsonl(jsonl::JsonlLines<R>),
    /// A `.csv` file, read a record at a time.
    Csv(csv::CsvRecords<R>),
    /// Reading failed: nothing more is read.
    Failed {
        /// Bytes read before the failure.
        bytes_read: u64,
    },
}

impl WarmReader<File> {
    /// Opens the warm file at `path` (its format chosen by its extension) and reads what tells
    /// whether it can be used at all (see [`WarmReader`]).
    ///
    /// # Errors
    ///
    /// The [`WarmFileError`] of a file that cannot be used: an unsupported extension, a file that
    /// cannot be opened or read (a symbolic link, not a regular file, ...), a `.json` document
    /// larger than [`MAX_WARM_JSON_BYTES`] (by `fstat`, before anything is read) or invalid, a
    /// `.csv` header without `proxy_url`.
    pub fn open(path: &Path) -> Result<Self, WarmFileError> {
        let format = WarmFormat::from_path(path)?;
        let io_error = |source| WarmFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_warm(path).map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        Self::start(format, file, Some(len), path)
    }
}

impl<R: Read> WarmReader<R> {
    /// A reader of the warm file `reader` holds, as `format` (a pipe, a socket, bytes in memory:
    /// [`WarmReader::open`] is the way to read a file). `path_for_errors` only names it in errors.
    /// Its size is unknown: [`WarmReader::file_len`] is [`None`], and a `.json` document is bounded
    /// by reading at most one byte more than [`MAX_WARM_JSON_BYTES`].
    ///
    /// # Errors
    ///
    /// As [`WarmReader::open`], but for the extension and the opening.
    pub fn from_reader(format: WarmFormat, reader: R, path_for_errors: &Path) -> Result<Self, WarmFileError> {
        Self::start(format, reader, None, path_for_errors)
    }

    /// Starts reading `reader`, of size `file_len` if known, as `format`.
    fn start(format: WarmFormat, reader: R, file_len: Option<u64>, path: &Path) -> Result<Self, WarmFileError> {
        let input = Input::new(reader);
        let source = match format {
            WarmFormat::Json => Source::Json(json::JsonItems::read(input, file_len, path)?),
            WarmFormat::Jsonl => Source::Jsonl(jsonl::JsonlLines::start(input, path)?),
            WarmFormat::Csv => Source::Csv(csv::CsvRecords::start(input, path)?),
        };
        Ok(Self {
            format,
            path: path.to_path_buf(),
            file_len,
            source,
        })
    }

    /// The format the file is read as.
    pub fn format(&self) -> WarmFormat {
        self.format
    }

    /// The file's size in bytes when it was opened ([`None`] for [`WarmReader::from_reader`]).
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    /// How many bytes of the file have been read so far: a little ahead of the rows handed over
    /// (the file is read through a buffer), all of it for a `.json` document (read whole when
    /// opened).
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Json(items) => items.bytes_read(),
            Source::Jsonl(lines) => lines.bytes_read(),
            Source::Csv(records) => records.bytes_read(),
            Source::Failed { bytes_read, .. } => *bytes_read,
        }
    }
}

impl<R: Read> Iterator for WarmReader<R> {
    type Item = Result<WarmItem, WarmFileError>;

    /// The next row or issue, in file order; [`None`] at the end of the file, and after an error.
    fn next(&mut self) -> Option<Self::Item> {
        let read = match &mut self.source {
            Source::Json(items) => return items.next().map(Ok),
            Source::Jsonl(lines) => lines.next(),
            Source::Csv(records) => records.next(),
            Source::Failed { .. } => return None,
        };
        match read {
            Ok(item) => item.map(Ok),
            Err(source) => {
                let bytes_read = self.bytes_read();
                self.source = Source::Failed { bytes_read };
                Some(Err(WarmFileError::Io {
                    path: self.path.clone(),
                    source,
                }))
            }
        }
    }
}

/// Reads and parses the warm file at `path`, its format chosen by its extension: the rows of a
/// [`WarmReader`], collected.
///
/// # Errors
///
/// A [`WarmFileError`] for an unsupported extension, an unreadable file or a whole-file problem
/// (see [`WarmReader::open`] and [`parse_warm_bytes`]). Problems of single rows are
/// [`WarmFile::issues`] instead.
pub fn read_warm_file(path: &Path) -> Result<WarmFile, WarmFileError> {
    collect(WarmReader::open(path)?)
}

/// Opens a warm file: a regular file, not through a symbolic link (`O_NOFOLLOW`, then an
/// `fstat` of the descriptor). A link (`x.jsonl -> /dev/urandom`), a FIFO, a device or a
/// directory is refused before anything is read.
fn open_warm(path: &Path) -> io::Result<File> {
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
/// - `.csv`: the header row ([`WarmFileError::CsvHeader`]: none, no `proxy_url` column, or longer
///   than [`MAX_LINE_BYTES`]). Only the header row is read;
/// - `.json`: its size ([`WarmFileError::TooLarge`] over [`MAX_WARM_JSON_BYTES`], by `fstat`,
///   before anything is read), then the whole document ([`WarmFileError::NotUtf8`],
///   [`WarmFileError::Json`], [`WarmFileError::NotArray`]): an error anywhere in it makes the
///   whole file unusable, so it is read and parsed in full (its items are not turned into rows);
/// - `.jsonl`: nothing more (every other problem of a JSONL file is a line's). Only its first
///   bytes are read.
///
/// This is what opening a [`WarmReader`] does. For a file that does not change in between, and
/// reads without an I/O fault past what this reads, [`read_warm_file`] fails exactly when this
/// does, with the same error. Problems of single rows are not looked at: they never make the
/// file unusable.
///
/// # Errors
///
/// The [`WarmFileError`] [`read_warm_file`] would return.
pub fn check_warm_file(path: &Path) -> Result<WarmFormat, WarmFileError> {
    WarmReader::open(path).map(|reader| reader.format())
}

/// Parses a warm file already read, as `format` (for fuzzing and tests). `path_for_errors` only
/// names the file in errors.
///
/// # Errors
///
/// - JSON: [`WarmFileError::TooLarge`] (more than [`MAX_WARM_JSON_BYTES`]),
///   [`WarmFileError::NotUtf8`], [`WarmFileError::Json`], [`WarmFileError::NotArray`].
/// - CSV: [`WarmFileError::CsvHeader`].
/// - JSONL: none (every problem is a row's).
pub fn parse_warm_bytes(format: WarmFormat, bytes: &[u8], path_for_errors: &Path) -> Result<WarmFile, WarmFileError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    collect(WarmReader::start(format, bytes, Some(len), path_for_errors)?)
}

/// Every row and issue of `reader`.
fn collect<R: Read>(reader: WarmReader<R>) -> Result<WarmFile, WarmFileError> {
    let mut file = WarmFile {
        format: reader.format(),
        rows: Vec::new(),
        issues: Vec::new(),
    };
    for item in reader {
        match item? {
            WarmItem::Row(row) => file.rows.push(row),
            WarmItem::Issue(issue) => file.issues.push(issue),
        }
    }
    Ok(file)
}

/// The reason of a row skipped because its line or record (`what`) is `len` bytes long.
fn too_long(what: &str, len: usize) -> String {
    format!("{what} is {len} bytes long, more than the limit of {MAX_LINE_BYTES} bytes")
}

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/// A reader that counts the bytes read through it.
struct Counting<R> {
    /// The reader.
    inner: R,
    /// Bytes read so far.
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count = self.count.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// The bytes of a warm file: read through a buffer of [`READ_BUFFER`] bytes, with a few bytes
/// looked at ahead ([`Input::peek`]: byte order marks) before they are consumed.
struct Input<R> {
    /// Bytes taken from `rest` and not consumed yet; they come first.
    ahead: Vec<u8>,
    /// The rest of the file.
    rest: BufReader<Counting<R>>,
}

impl<R: Read> Input<R> {
    /// The bytes of `reader`.
    fn new(reader: R) -> Self {
        Self {
            ahead: Vec::new(),
            rest: BufReader::with_capacity(
                READ_BUFFER,
                Counting {
                    inner: reader,
                    count: 0,
                },
            ),
        }
    }

    /// How many bytes were read from the file so far.
    fn bytes_read(&self) -> u64 {
        self.rest.get_ref().count
    }

    /// The next `n` bytes, fewer at the end of the file, without consuming them.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.ahead.len() < n {
            let available = match self.rest.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let take = available.len().min(n - self.ahead.len());
            self.ahead.extend_from_slice(available.get(..take).unwrap_or_default());
            self.rest.consume(take);
        }
        Ok(&self.ahead)
    }

    /// Consumes a UTF-8 byte order mark if the bytes start with one here.
    fn skip_bom(&mut self) -> io::Result<()> {
        if self.peek(BOM.len())?.starts_with(BOM) {
            self.consume(BOM.len());
        }
        Ok(())
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            if let (Some(to), Some(from)) = (buf.get_mut(..n), available.get(..n)) {
                to.copy_from_slice(from);
            }
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.ahead.is_empty() {
            self.rest.fill_buf()
        } else {
            Ok(&self.ahead)
        }
    }

    fn consume(&mut self, amount: usize) {
        if self.ahead.is_empty() {
            self.rest.consume(amount);
        } else {
            self.ahead.drain(..amount.min(self.ahead.len()));
        }
    }
}
