//! Writing MCL text logs: MCL's `WriteFile` and `LogNetwork`
//! (`mcl/logging/file.py`), to the character.
//!
//! The header and record lines themselves are written by `header`
//! and `line`, next to their parsers.
//!
//! What MCL does, and this module does too:
//! - The header is written when the first record arrives (a writer that
//!   never receives anything creates no file), into `<prefix>.tmp`, or
//!   `<prefix>_000.tmp` when splitting is on (`max_entries` and/or
//!   `max_time`). Only the first part of a split set has the header.
//! - Splitting: with `max_entries`, a record that would be entry
//!   `max_entries + 1` of the current part starts a new part; with
//!   `max_time`, a record `>= max_time` after the first record of the current
//!   part starts a new one (the first condition met splits). Parts are
//!   renamed `.tmp` → `.log` as they are finished and on close; names are
//!   `<prefix>_%03i` (so `_1000` after `_999`).
//! - `LogNetwork` takes one time origin when it starts, shared by every file
//!   (so all headers carry the same `created`), and writes into a new
//!   directory `<root>/<YYYYmmddTHHMMSS>_<hostname>` (local time) with one
//!   file set per message type, named after the type.
//!
//! Where this module differs from MCL:
//! - Payload bytes are written as received (MCL decoded and re-encoded them).
//! - Files are never overwritten: MCL checked only the first `.tmp`, and its
//!   rename silently replaced an existing `.log`.
//! - The file stays open; each record line (or a batch of whole lines, see
//!   [`WriteOptions::flush_bytes`]) is written with one `write`, so a crash
//!   leaves a `.tmp` whose complete lines are all readable. MCL opened and
//!   closed the file for every record.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::mcl::header::{civil_from_days, format_created, header_text, HeaderStyle};
use crate::format::mcl::layout::part_path;
use crate::format::mcl::line::format_line;
use crate::record::{is_log_time, not_a_log_time};
use crate::sys::now_ns;
use crate::{Error, Record, Result};

/// Options of [`WriteFile`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOptions {
    /// `>>> Type` in the header; `None` writes `>>> None` (raw data).
    pub message_type: Option<String>,
    /// The header's `revision` (MCL: a git hash, or empty).
    pub revision: String,
    /// The header's `created`: [`format_created`] of the time origin.
    pub created: String,
    /// Entries per file before a new part starts.
    pub max_entries: Option<u64>,
    /// Nanoseconds per file before a new part starts.
    pub max_time_ns: Option<i64>,
    pub header_style: HeaderStyle,
    /// Whole lines are kept until this many bytes are waiting, then written
    /// at once. 0 (the default): every line is written as it comes, so a
    /// crash loses nothing already handed over. Either way, a line is never
    /// split across writes except by a short write of the OS.
    pub flush_bytes: usize,
    /// `fsync` each part before it is renamed to `.log`.
    pub sync_on_close: bool,
}

fn check_text(name: &'static str, value: &str) -> Result<()> {
    if value.contains(['\n', '\r']) {
        return Err(Error::invalid(name, "must be a single line"));
    }
    Ok(())
}

/// Writes one message type's records to a log file or split set.
pub struct WriteFile {
    prefix: PathBuf,
    options: WriteOptions,
    split: bool,
    file: Option<File>,
    file_number: u64,
    header_written: bool,
    file_entries: u64,
    file_start_ns: Option<i64>,
    entries: u64,
    pending: Vec<u8>,
    finished: Vec<PathBuf>,
    closed: bool,
}

impl WriteFile {
    /// Prepare to write `<prefix>.log` (or `<prefix>_NNN.log` parts). The
    /// prefix has no extension; its directory must exist. Nothing is created
    /// before the first record.
    pub fn create(prefix: impl Into<PathBuf>, options: WriteOptions) -> Result<WriteFile> {
        let prefix = prefix.into();
        if prefix.is_dir() {
            return Err(Error::Io {
                path: prefix,
                message: "is a directory; give a file prefix inside it".into(),
            });
        }
        let name = prefix.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.is_empty() {
            return Err(Error::invalid(
                "prefix",
                format!("'{}' has no file name", prefix.display()),
            ));
        }
        if name.ends_with(".log") || name.ends_with(".tmp") {
            return Err(Error::invalid(
                "prefix",
                format!(
                    "'{}': give the prefix without the .log/.tmp extension",
                    prefix.display()
                ),
            ));
        }
        let dir = match prefix.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir,
                message: "the directory does not exist".into(),
            });
        }
        if options.max_entries == Some(0) {
            return Err(Error::invalid("maxEntries", "must be an integer > 0"));
        }
        if options.max_time_ns.is_some_and(|t| t <= 0) {
            return Err(Error::invalid("maxTime", "must be > 0"));
        }
        if let Some(t) = &options.message_type {
            if t.is_empty() || t.chars().any(char::is_whitespace) {
                return Err(Error::invalid(
                    "messageType",
                    format!("'{t}' must be a non-empty name without spaces"),
                ));
            }
        }
        check_text("revision", &options.revision)?;
        check_text("created", &options.created)?;
        let split = options.max_entries.is_some() || options.max_time_ns.is_some();
        let writer = WriteFile {
            prefix,
            options,
            split,
            file: None,
            file_number: 0,
            header_written: false,
            file_entries: 0,
            file_start_ns: None,
            entries: 0,
            pending: Vec::new(),
            finished: Vec::new(),
            closed: false,
        };
        for ext in ["tmp", "log"] {
            let path = writer.path(0, ext);
            if path.exists() {
                return Err(Error::Io {
                    path,
                    message: "already exists; a log is never overwritten".into(),
                });
            }
        }
        Ok(writer)
    }

    fn path(&self, number: u64, ext: &str) -> PathBuf {
        part_path(&self.prefix, self.split.then_some(number), ext)
    }

    /// The `.tmp` file being written, once the first record created it.
    pub fn current_path(&self) -> Option<PathBuf> {
        self.file
            .as_ref()
            .map(|_| self.path(self.file_number, "tmp"))
    }

    /// Records written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The parts finished (renamed to `.log`) so far.
    pub fn finished(&self) -> &[PathBuf] {
        &self.finished
    }

    fn open_part(&mut self) -> Result<()> {
        let tmp = self.path(self.file_number, "tmp");
        let log = self.path(self.file_number, "log");
        if log.exists() {
            return Err(Error::Io {
                path: log,
                message: "already exists; a log is never overwritten".into(),
            });
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, &e))?;
        self.file = Some(file);
        Ok(())
    }

    /// Write the waiting whole lines, continuing after a short write.
    fn write_pending(&mut self) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        while !self.pending.is_empty() {
            match file.write(&self.pending) {
                Ok(0) => {
                    let path = self.path(self.file_number, "tmp");
                    return Err(Error::io(&path, &io::Error::from(io::ErrorKind::WriteZero)));
                }
                Ok(n) if n == self.pending.len() => self.pending.clear(),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path(self.file_number, "tmp"), &e)),
            }
        }
        Ok(())
    }

    /// Finish the current part: write, optionally sync, rename to `.log`.
    fn finish_part(&mut self) -> Result<()> {
        self.write_pending()?;
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let tmp = self.path(self.file_number, "tmp");
        if self.options.sync_on_close {
            file.sync_all().map_err(|e| Error::io(&tmp, &e))?;
        }
        drop(file);
        let log = self.path(self.file_number, "log");
        std::fs::rename(&tmp, &log).map_err(|e| Error::io(&tmp, &e))?;
        self.finished.push(log);
        self.file_number += 1;
        Ok(())
    }

    /// Write one record, `elapsed_ns` after the time origin; a time the
    /// reader could not read back ([`is_log_time`]) is refused.
    pub fn write(&mut self, elapsed_ns: i64, topic: &str, payload: &[u8]) -> Result<()> {
        if !is_log_time(elapsed_ns) {
            return Err(not_a_log_time("elapsedTime", elapsed_ns as f64 / 1e9));
        }
        if self.closed {
            return Err(Error::State(format!(
                "{}: the log writer is closed",
                self.prefix.display()
            )));
        }
        if !self.header_written {
            self.open_part()?;
            let header = header_text(
                self.options.message_type.as_deref(),
                &self.options.revision,
                &self.options.created,
                self.options.header_style,
            );
            self.pending.extend_from_slice(header.as_bytes());
            self.header_written = true;
            self.write_pending()?;
        }
        let mut rotate = false;
        if let Some(max) = self.options.max_entries {
            self.file_entries += 1;
            if self.file_entries > max {
                rotate = true;
            }
        }
        if let Some(max) = self.options.max_time_ns {
            let start = *self.file_start_ns.get_or_insert(elapsed_ns);
            if elapsed_ns.saturating_sub(start) >= max {
                rotate = true;
            }
        }
        if rotate {
            self.finish_part()?;
            self.open_part()?;
            self.file_entries = 1;
            self.file_start_ns = Some(elapsed_ns);
        }
        format_line(&mut self.pending, elapsed_ns, topic, payload);
        self.entries += 1;
        if self.pending.len() >= self.options.flush_bytes {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Write a record read from a log (its time is already elapsed time).
    pub fn write_record(&mut self, record: &Record) -> Result<()> {
        self.write(record.time_ns, &record.topic, &record.payload)
    }

    /// Write every waiting line now.
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending()
    }

    /// Write what is waiting and rename the last part to `.log`. Returns
    /// every finished file, in order (none if no record was written).
    pub fn close(mut self) -> Result<Vec<PathBuf>> {
        self.close_inner()?;
        Ok(std::mem::take(&mut self.finished))
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.finish_part()
    }
}

impl Drop for WriteFile {
    /// A writer dropped without `close` still finishes its files.
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

/// The time origin of a recording: one instant on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOrigin {
    /// CLOCK_MONOTONIC ns (the clock of the listener's receive times).
    pub monotonic_ns: i64,
    /// Microseconds since the Unix epoch (UTC), for the header's `created`.
    pub unix_us: i64,
}

impl TimeOrigin {
    pub fn now() -> TimeOrigin {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64);
        TimeOrigin {
            monotonic_ns: now_ns(),
            unix_us,
        }
    }
}

/// One file set of a [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderStream {
    /// File prefix inside the recording directory (MCL: the type's name).
    pub name: String,
    /// `>>> Type` of the header; `None` for raw data.
    pub message_type: Option<String>,
}

impl RecorderStream {
    /// A stream of a message type, named after it (as MCL's `LogNetwork`).
    pub fn of_type(message_type: &str) -> RecorderStream {
        RecorderStream {
            name: message_type.to_string(),
            message_type: Some(message_type.to_string()),
        }
    }
}

/// Options of a [`Recorder`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecorderOptions {
    /// Where the recording directory is created (must exist).
    pub root: PathBuf,
    /// Write into this directory instead of `<root>/<stamp>_<hostname>`
    /// (created if missing).
    pub directory: Option<PathBuf>,
    pub revision: String,
    /// The header's `created`; `None`: the time origin's.
    pub created: Option<String>,
    pub max_entries: Option<u64>,
    pub max_time_ns: Option<i64>,
    pub header_style: HeaderStyle,
    pub flush_bytes: usize,
    pub sync_on_close: bool,
    /// Host name in the directory name; `None`: this host's.
    pub hostname: Option<String>,
}

/// This host's name (MCL: `socket.gethostname().strip()`, `unknown` if empty).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length, which is what is passed;
    // gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).trim().to_string()
    } else {
        String::new()
    };
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// `time.strftime('%Y%m%dT%H%M%S')` (local time) of a Unix time in seconds.
pub fn local_timestamp(unix_secs: i64) -> String {
    let t = unix_secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, properly aligned values for the
    // duration of the call; localtime_r is the thread-safe variant.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        let days = unix_secs.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let r = unix_secs.rem_euclid(86_400);
        return format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
            r / 3600,
            r / 60 % 60,
            r % 60
        );
    }
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The directory of a recording started at `origin` (`options.directory`,
/// or `<root>/<YYYYmmddTHHMMSS>_<hostname>`), created if missing.
pub fn recording_directory(options: &RecorderOptions, origin: TimeOrigin) -> Result<PathBuf> {
    let directory = match &options.directory {
        Some(dir) => dir.clone(),
        None => {
            if !options.root.is_dir() {
                return Err(Error::Io {
                    path: options.root.clone(),
                    message: "the log directory does not exist".into(),
                });
            }
            let host = options.hostname.clone().unwrap_or_else(hostname);
            options.root.join(format!(
                "{}_{}",
                local_timestamp(origin.unix_us.div_euclid(1_000_000)),
                host
            ))
        }
    };
    std::fs::create_dir_all(&directory).map_err(|e| Error::io(&directory, &e))?;
    Ok(directory)
}

/// MCL's `LogNetwork`: a recording directory with one file set per stream,
/// all sharing one time origin.
pub struct Recorder {
    directory: PathBuf,
    origin: TimeOrigin,
    writers: Vec<WriteFile>,
}

impl Recorder {
    /// Start a recording now.
    pub fn create(options: RecorderOptions, streams: &[RecorderStream]) -> Result<Recorder> {
        Self::create_at(options, streams, TimeOrigin::now())
    }

    /// Start a recording with the given time origin.
    pub fn create_at(
        options: RecorderOptions,
        streams: &[RecorderStream],
        origin: TimeOrigin,
    ) -> Result<Recorder> {
        if streams.is_empty() {
            return Err(Error::invalid(
                "streams",
                "a recording needs at least one stream",
            ));
        }
        for (i, s) in streams.iter().enumerate() {
            if s.name.is_empty()
                || s.name.contains(['/', '\\', '\0'])
                || s.name == "."
                || s.name == ".."
            {
                return Err(Error::invalid(
                    "streams",
                    format!("'{}' is not a valid file name", s.name),
                ));
            }
            if streams[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::invalid(
                    "streams",
                    format!("two streams are named '{}'", s.name),
                ));
            }
        }
        let directory = recording_directory(&options, origin)?;
        let created = options
            .created
            .clone()
            .unwrap_or_else(|| format_created(origin.unix_us));
        let writers = streams
            .iter()
            .map(|s| {
                WriteFile::create(
                    directory.join(&s.name),
                    WriteOptions {
                        message_type: s.message_type.clone(),
                        revision: options.revision.clone(),
                        created: created.clone(),
                        max_entries: options.max_entries,
                        max_time_ns: options.max_time_ns,
                        header_style: options.header_style,
                        flush_bytes: options.flush_bytes,
                        sync_on_close: options.sync_on_close,
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Recorder {
            directory,
            origin,
            writers,
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub fn origin(&self) -> TimeOrigin {
        self.origin
    }

    fn writer(&mut self, stream: usize) -> Result<&mut WriteFile> {
        let count = self.writers.len();
        self.writers.get_mut(stream).ok_or_else(|| {
            Error::invalid(
                "stream",
                format!("{stream} is not a stream of this recording (it has {count})"),
            )
        })
    }

    /// Write a message received at `received_at_ns` (CLOCK_MONOTONIC).
    pub fn write(
        &mut self,
        stream: usize,
        received_at_ns: i64,
        topic: &str,
        payload: &[u8],
    ) -> Result<()> {
        let elapsed = received_at_ns.saturating_sub(self.origin.monotonic_ns);
        self.writer(stream)?.write(elapsed, topic, payload)
    }

    /// Write a record at its own (elapsed) time, to the stream `record.stream`.
    pub fn write_record(&mut self, record: &Record) -> Result<()> {
        self.writer(record.stream as usize)?.write_record(record)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writers.iter_mut().try_for_each(WriteFile::flush)
    }

    /// Finish every file; returns them all (the first error, after trying
    /// to close every writer).
    pub fn close(self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let mut first_error = None;
        for w in self.writers {
            match w.close() {
                Ok(f) => files.extend(f),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(files),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_timestamp_has_its_fixed_width() {
        assert_eq!(local_timestamp(0).len(), 15);
    }
}
