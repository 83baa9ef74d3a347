//! `.jsonl` warm files: one JSON object per physical line, read a line at a time; a line longer
//! than [`MAX_LINE_BYTES`] is read past, never held.

use std::io::{self, BufRead, Read};
use std::path::Path;

use serde_json::Value;

use super::json::{json_message, value_item};
use super::row::issue;
use super::{Input, IssueKind, MAX_LINE_BYTES, RowLocation, WarmFileError, WarmItem, too_long};

/// The most bytes of a line held at once: its content, a `\r` and the `\n`.
const LINE_WITH_TERMINATOR: u64 = MAX_LINE_BYTES as u64 + 2;

/// The lines of a `.jsonl` file.
pub(super) struct JsonlLines<R> {
    /// The file, after its byte order mark.
    input: Input<R>,
    /// The line being read (at most [`LINE_WITH_TERMINATOR`] bytes).
    line: Vec<u8>,
    /// The 1-based physical line last read.
    number: u64,
}

/// A line read by [`JsonlLines::read_line`].
enum Line {
    /// The end of the file.
    End,
    /// A line, now in [`JsonlLines::line`] without its `\n` or `\r\n`.
    Text,
    /// A line longer than [`MAX_LINE_BYTES`] (without its terminator), read past.
    TooLong(usize),
}

impl<R: Read> JsonlLines<R> {
    /// Starts reading `input`: skips a byte order mark (reading the first bytes finds what
    /// opening does not: a directory opens, then fails to read).
    pub(super) fn start(mut input: Input<R>, path: &Path) -> Result<Self, WarmFileError> {
        input.skip_bom().map_err(|source| WarmFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            input,
            line: Vec::new(),
            number: 0,
        })
    }

    /// How many bytes of the file were read so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.input.bytes_read()
    }

    /// The row or issue of the next line that is not blank; [`None`] at the end of the file.
    ///
    /// # Errors
    ///
    /// A failed read.
    pub(super) fn next(&mut self) -> io::Result<Option<WarmItem>> {
        loop {
            let read = self.read_line()?;
            self.number = self.number.saturating_add(1);
            let location = RowLocation::Line(self.number);
            match read {
                Line::End => return Ok(None),
                Line::TooLong(len) => {
                    return Ok(Some(issue(location, IssueKind::Failed, too_long("line", len))));
                }
                Line::Text => {}
            }
            let line = match std::str::from_utf8(&self.line) {
                Ok(line) => line,
                Err(e) => {
                    let reason = format!(
                        "line is not valid UTF-8 (invalid byte at column {})",
                        e.valid_up_to() + 1
                    );
                    return Ok(Some(issue(location, IssueKind::Failed, reason)));
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(match serde_json::from_str::<Value>(line) {
                Ok(value) => value_item(location, &value),
                Err(e) => {
                    let reason = format!("invalid JSON: {} at column {}", json_message(&e), e.column());
                    issue(location, IssueKind::Failed, reason)
                }
            }));
        }
    }

    /// Reads the next physical line (ended by `\n`, or by the end of the file) into
    /// [`JsonlLines::line`], without its `\n` and one `\r` before it; a line longer than
    /// [`MAX_LINE_BYTES`] is read past [`MAX_LINE_BYTES`] at a time and only measured.
    fn read_line(&mut self) -> io::Result<Line> {
        self.line.clear();
        let read = (&mut self.input)
            .take(LINE_WITH_TERMINATOR)
            .read_until(b'\n', &mut self.line)?;
        if read == 0 {
            return Ok(Line::End);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else if u64::try_from(read).unwrap_or(u64::MAX) >= LINE_WITH_TERMINATOR {
            // No `\n` in the most a line may take: too long whatever follows.
            return self.read_past(read);
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > MAX_LINE_BYTES {
            return Ok(Line::TooLong(self.line.len()));
        }
        Ok(Line::Text)
    }

    /// Reads past the rest of a line of which `read` bytes (in [`JsonlLines::line`], no `\n`
    /// among them) were read: its length without its terminator.
    fn read_past(&mut self, read: usize) -> io::Result<Line> {
        let mut len = read;
        let mut last = self.line.last().copied();
        loop {
            self.line.clear();
            let read = (&mut self.input)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut self.line)?;
            if read == 0 {
                break;
            }
            let ended = self.line.last() == Some(&b'\n');
            if ended {
                self.line.pop();
            }
            if let Some(&byte) = self.line.last() {
                last = Some(byte);
            }
            len = len.saturating_add(self.line.len());
            if ended {
                break;
            }
        }
        self.line.clear();
        if last == Some(b'\r') {
            len = len.saturating_sub(1);
        }
        Ok(Line::TooLong(len))
    }
}
