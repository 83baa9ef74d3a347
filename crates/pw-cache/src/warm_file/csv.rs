//! `.csv` warm files: a header row, then records read one at a time with csv-core into a buffer
//! of at most [`MAX_LINE_BYTES`]; a longer record is read past, never held.

use std::io::{self, BufRead, Read};
use std::path::Path;

use super::row::{
    self, Field, KEY, PASSWORD, PASSWORD_ENCRYPTED, PROXY_URL, RawRow, SOURCE, USERNAME, USERNAME_ENCRYPTED,
};
use super::{BOM, Input, IssueKind, MAX_LINE_BYTES, RowLocation, WarmFileError, WarmItem, too_long};

/// The records of a `.csv` file, after its header row.
pub(super) struct CsvRecords<R> {
    /// The file, after the header row.
    input: Input<R>,
    /// The parser of the records (boxed: its tables take a few KB).
    core: Box<csv_core::Reader>,
    /// The header's (trimmed) column names.
    header: Vec<String>,
    /// Where the fields read are.
    columns: CsvColumns,
    /// How many `\n` the header row's reader consumed.
    header_newlines: u64,
    /// Where the record being read starts.
    lines: LineCounter,
    /// The 1-based number of the last record read (the header is not counted).
    number: u64,
}

impl<R: Read> CsvRecords<R> {
    /// Starts reading `input`: skips a byte order mark, reads the header row.
    ///
    /// # Errors
    ///
    /// [`WarmFileError::CsvHeader`] (no header row, no `proxy_url` column, a header row longer
    /// than [`MAX_LINE_BYTES`]), [`WarmFileError::Io`].
    pub(super) fn start(mut input: Input<R>, path: &Path) -> Result<Self, WarmFileError> {
        let io_error = |source| WarmFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        input.skip_bom().map_err(io_error)?;
        // A csv-core reader skips a byte order mark of its own when its first read gets 3 bytes or
        // more, and takes a read left empty by that for the end of the file: its first read gets
        // a byte past a mark whenever the file has one (as when the whole file was its input).
        input.peek(BOM.len() + 1).map_err(io_error)?;
        let mut lines = LineCounter::default();
        let (header, columns, header_newlines) = csv_header(&mut input, &mut lines, path)?;
        // The records are read by a reader of their own, which skips a byte order mark too.
        input.peek(BOM.len() + 1).map_err(io_error)?;
        Ok(Self {
            input,
            core: Box::new(csv_core::Reader::new()),
            header,
            columns,
            header_newlines,
            lines,
            number: 0,
        })
    }

    /// How many bytes of the file were read so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.input.bytes_read()
    }

    /// How many `\n` were consumed so far (after the byte order mark): csv-core counts every
    /// one its reader consumes ([`csv_core::Reader::line`] is one more than that count).
    fn newlines(&self) -> u64 {
        self.header_newlines.saturating_add(self.core.line().saturating_sub(1))
    }

    /// The row or issue of the next record; [`None`] at the end of the file.
    ///
    /// # Errors
    ///
    /// A failed read.
    pub(super) fn next(&mut self) -> io::Result<Option<WarmItem>> {
        self.lines.begin_record(self.newlines());
        let Some(read) = next_record(&mut self.core, &mut self.input, &mut self.lines)? else {
            return Ok(None);
        };
        self.number = self.number.saturating_add(1);
        let location = RowLocation::Row {
            record: self.number,
            line: self.lines.record_line(),
        };
        Ok(Some(match read {
            CsvRecord::TooLong(len) => row::issue(location, IssueKind::Failed, too_long("record", len)),
            CsvRecord::Fields(fields) => match self.columns.raw_row(&fields, &self.header) {
                Ok(raw) => row::item(location, raw),
                Err(reason) => row::issue(location, IssueKind::Failed, reason),
            },
        }))
    }
}

/// A CSV record read by [`next_record`].
enum CsvRecord {
    /// Its fields.
    Fields(CsvFields),
    /// A record longer than [`MAX_LINE_BYTES`] (its fields' bytes), read past.
    TooLong(usize),
}

/// The fields of a record: `buf[ends[i - 1]..ends[i]]` (from 0 for the first).
struct CsvFields {
    /// The fields' bytes, one after the other.
    buf: Vec<u8>,
    /// Where each field ends in `buf`.
    ends: Vec<usize>,
}

impl CsvFields {
    /// Each field's bytes.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        self.ends.iter().map(move |&end| {
            let field = self.buf.get(from..end).unwrap_or_default();
            from = end;
            field
        })
    }
}

/// The first output buffer of [`next_record`]; it doubles up to [`MAX_LINE_BYTES`].
const CSV_FIRST_BUFFER: usize = 4096;

/// Reads the next record of `input` with `core`, showing `lines` the bytes consumed; `None` at
/// the end. Holds at most [`MAX_LINE_BYTES`] of the record's fields (and as many field ends as a
/// record of that length can have).
fn next_record<R: Read>(
    core: &mut csv_core::Reader,
    input: &mut Input<R>,
    lines: &mut LineCounter,
) -> io::Result<Option<CsvRecord>> {
    use csv_core::ReadRecordResult;
    let mut buf = vec![0u8; CSV_FIRST_BUFFER];
    let mut ends = vec![0usize; 16];
    let (mut nout, mut nend) = (0usize, 0usize);
    // Bytes of fields read past once the record was found too long.
    let mut dropped: Option<usize> = None;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // An empty input (the end of the file) tells csv-core the input ended: it finishes the
        // record, then says `End`.
        let (result, nin, out, end) = core.read_record(
            available,
            buf.get_mut(nout..).unwrap_or_default(),
            ends.get_mut(nend..).unwrap_or_default(),
        );
        lines.consumed(available.get(..nin).unwrap_or(available));
        input.consume(nin);
        nout += out;
        nend += end;
        match result {
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
            ReadRecordResult::End if dropped.is_none() && nout == 0 && nend == 0 => return Ok(None),
            ReadRecordResult::End => break,
        }
    }
    Ok(Some(match dropped {
        Some(len) => CsvRecord::TooLong(len + nout),
        None => {
            buf.truncate(nout);
            ends.truncate(nend);
            CsvRecord::Fields(CsvFields { buf, ends })
        }
    }))
}

/// Reads the header row with a csv-core reader of its own: its (trimmed) column names, where the
/// fields are and how many `\n` it took, or why the file cannot be used (no header row, no
/// `proxy_url` column, a header row longer than [`MAX_LINE_BYTES`]).
fn csv_header<R: Read>(
    input: &mut Input<R>,
    lines: &mut LineCounter,
    path: &Path,
) -> Result<(Vec<String>, CsvColumns, u64), WarmFileError> {
    let header_error = |reason: String| WarmFileError::CsvHeader {
        path: path.to_path_buf(),
        reason,
    };
    let mut core = csv_core::Reader::new();
    let read = next_record(&mut core, input, lines).map_err(|source| WarmFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let header: Vec<String> = match read {
        None => Vec::new(),
        Some(CsvRecord::TooLong(len)) => {
            return Err(header_error(format!(
                "the header row is {len} bytes long, more than the limit of {MAX_LINE_BYTES} bytes"
            )));
        }
        Some(CsvRecord::Fields(fields)) => fields
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_owned())
            .collect(),
    };
    if header.iter().all(String::is_empty) {
        return Err(header_error(
            "no header row (the file is empty or its first line has no column names)".to_owned(),
        ));
    }
    let columns = CsvColumns::new(&header);
    if columns.proxy_url.is_none() {
        return Err(header_error(missing_url_column(&header)));
    }
    Ok((header, columns, core.line().saturating_sub(1)))
}

/// The physical line where a CSV record starts: its first byte that is not `\r` or `\n` (the
/// terminators and blank lines the reader skips before it).
///
/// [`csv_core::Reader::line`] alone does not tell it: it counts the `\n` consumed, so when a
/// record is returned it is past the record, and when the next is begun it is before the line
/// terminator of the previous record when that is `\r\n` and before the blank lines skipped.
/// This looks at the bytes consumed until the record's first byte.
#[derive(Default)]
struct LineCounter {
    /// How many `\n` were consumed before the record began.
    start: u64,
    /// How many `\n` were consumed since, before its first byte.
    leading: u64,
    /// The 1-based line of the record being read, once its first byte was consumed.
    record_line: Option<u64>,
}

impl LineCounter {
    /// A new record starts with the next byte consumed, `newlines` `\n` having been consumed.
    fn begin_record(&mut self, newlines: u64) {
        *self = Self {
            start: newlines,
            leading: 0,
            record_line: None,
        };
    }

    /// Looks at bytes the reader consumed, until the record's first byte.
    fn consumed(&mut self, bytes: &[u8]) {
        if self.record_line.is_some() {
            return;
        }
        for &byte in bytes {
            match byte {
                b'\n' => self.leading += 1,
                b'\r' => {}
                _ => {
                    self.record_line = Some(self.start + self.leading + 1);
                    return;
                }
            }
        }
    }

    /// The 1-based line where the record read starts.
    fn record_line(&self) -> u64 {
        self.record_line.unwrap_or(self.start + self.leading + 1)
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
    fn raw_row(&self, record: &CsvFields, header: &[String]) -> Result<RawRow, String> {
        let mut fields = Vec::with_capacity(record.ends.len());
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
