//! Writing MCL text logs: MCL's `WriteFile` and `LogNetwork`
//! (`mcl/logging/file.py`), to the character.
//!
//! What MCL does, and this module does too:
//! - The header is written when the first record arrives (a writer that
//!   never receives anything creates no file), into `<prefix>.tmp`, or
//!   `<prefix>_000.tmp` when splitting is on (`max_entries` and/or
//!   `max_time`). Only the first part of a split set has the header.
//! - Header lines: `#` + 65 `-`, then each text line as `# <line>`, a blank
//!   line as `#`, then the `#---` line again. Version `%1.1f` (`1.0`),
//!   `created` is Python's `str(datetime)` of the (UTC) time origin.
//! - Record lines: `'%1.5f' % elapsed` right-justified to 12 characters, 4
//!   spaces, the topic as `'%s'` left-justified to 8, 4 spaces, the payload
//!   as lowercase hex, `\n`.
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
//! Header variants found in MCL's own files: the current `WriteFile` writes
//! blank header lines as `#`, while the writer that produced the typed
//! fixture logs (`UnitTestMessageA.log`, `…B.log`) prefixed every line with
//! `# `, blank ones included (`hdr = [COMMENT_CHARACTER + ' ' + line for
//! line in lines]`); [`HeaderStyle::Legacy`] reproduces that. An empty
//! revision is written as `#     -- revision` with no trailing spaces, as
//! in MCL's `RawUnitTestData.log` (MCL's code would leave four spaces
//! there; its readers do not care).
//!
//! Where this module differs from MCL:
//! - Payload bytes are written as received (MCL decoded and re-encoded them).
//! - A topic containing `'`, `\` or control characters is written as a
//!   Python string literal (MCL wrote `'%s'`, which no reader can parse back).
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

use crate::record::{is_log_time, not_a_log_time};
use crate::sys::now_ns;
use crate::{Error, Record, Result};

/// `#` followed by 65 dashes.
pub const COMMENT_BLOCK: &str =
    "#-----------------------------------------------------------------";
const TIME_PADDING: usize = 12;
const TOPIC_PADDING: usize = 8;

/// How blank header lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderStyle {
    /// MCL's current `WriteFile`: `#`.
    #[default]
    Mcl,
    /// The earlier writer (MCL's typed fixture logs): `# `.
    Legacy,
}

/// The header block, every line ending in `\n`.
pub fn header_text(
    message_type: Option<&str>,
    revision: &str,
    created: &str,
    style: HeaderStyle,
) -> String {
    let field = |name: &str, value: &str| {
        let line = format!("    -- {name:<11} {value}");
        line.trim_end().to_string()
    };
    let lines = [
        "MCL_LOG".to_string(),
        field("version", "1.0"),
        field("revision", revision),
        field("created", created),
        String::new(),
        "Each line of this file records a packet of data transmitted over the".into(),
        "network. The columns in this file are:".into(),
        String::new(),
        "    1) The time when the data frame was received relative".into(),
        "       to when this file was created.".into(),
        "    2) The topic associated with the data frame.".into(),
        "    3) The binary data stored as a hex string.".into(),
        String::new(),
        "The following data type was recorded in this file:".into(),
        String::new(),
        format!("     >>> {}", message_type.unwrap_or("None")),
        String::new(),
        format!(
            "{:>width$}    {:<8}    <Payload>",
            "<Time>",
            "<Topic>",
            width = TIME_PADDING - 2
        ),
    ];
    let mut out = String::with_capacity(1024);
    out.push_str(COMMENT_BLOCK);
    out.push('\n');
    for line in &lines {
        if line.is_empty() {
            out.push_str(match style {
                HeaderStyle::Mcl => "#",
                HeaderStyle::Legacy => "# ",
            });
        } else {
            out.push_str("# ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(COMMENT_BLOCK);
    out.push('\n');
    out
}

/// Elapsed nanoseconds as MCL writes them: Python's `'%1.5f'` of the
/// elapsed seconds (microsecond resolution, as `timedelta.total_seconds()`),
/// right-justified to 12 characters.
pub fn format_elapsed(out: &mut Vec<u8>, elapsed_ns: i64) {
    let micros = (i128::from(elapsed_ns) + 500).div_euclid(1000);
    let seconds = micros as f64 / 1e6;
    // Rust's `{:.5}` rounds the exact binary value, ties to even: the same
    // digits as Python's correctly rounded `%f`.
    let _ = write!(out, "{seconds:>TIME_PADDING$.5}");
}

fn needs_literal(topic: &str) -> bool {
    topic
        .chars()
        .any(|c| c == '\'' || c == '\\' || c.is_control())
}

/// A topic as MCL writes it (`'%s'`), or as a Python string literal when
/// the plain form could not be read back; left-justified to 8 bytes.
pub fn format_topic(out: &mut Vec<u8>, topic: &str) {
    let start = out.len();
    if !needs_literal(topic) {
        out.push(b'\'');
        out.extend_from_slice(topic.as_bytes());
        out.push(b'\'');
    } else {
        let quote = if topic.contains('\'') && !topic.contains('"') {
            '"'
        } else {
            '\''
        };
        let mut text = String::with_capacity(topic.len() + 8);
        text.push(quote);
        for c in topic.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                '\t' => text.push_str("\\t"),
                c if c == quote => {
                    text.push('\\');
                    text.push(c);
                }
                c if c.is_control() => {
                    let _ =
                        std::fmt::Write::write_fmt(&mut text, format_args!("\\x{:02x}", c as u32));
                }
                c => text.push(c),
            }
        }
        text.push(quote);
        out.extend_from_slice(text.as_bytes());
    }
    let written = out.len() - start;
    out.resize(out.len() + TOPIC_PADDING.saturating_sub(written), b' ');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One record line, `\n` included.
pub fn format_line(out: &mut Vec<u8>, elapsed_ns: i64, topic: &str, payload: &[u8]) {
    format_elapsed(out, elapsed_ns);
    out.extend_from_slice(b"    ");
    format_topic(out, topic);
    out.extend_from_slice(b"    ");
    out.reserve(payload.len() * 2 + 1);
    for &b in payload {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'\n');
}

/// Python's `str(datetime)` of a UTC time given in microseconds since the
/// Unix epoch: `YYYY-MM-DD HH:MM:SS`, then `.ffffff` if not a whole second.
pub fn format_created(unix_us: i64) -> String {
    let secs = unix_us.div_euclid(1_000_000);
    let micros = unix_us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

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
        let mut name = self.prefix.as_os_str().to_owned();
        if self.split {
            name.push(format!("_{number:03}.{ext}"));
        } else {
            name.push(format!(".{ext}"));
        }
        PathBuf::from(name)
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

    fn line(elapsed_ns: i64, topic: &str, payload: &[u8]) -> String {
        let mut out = Vec::new();
        format_line(&mut out, elapsed_ns, topic, payload);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_follow_mcl_columns() {
        assert_eq!(
            line(10_000_000, "", &[0x90]),
            "     0.01000    ''          90\n"
        );
        assert_eq!(
            line(10_000_000_000, "", &[0x91, 0x00]),
            "    10.00000    ''          9100\n"
        );
        assert_eq!(
            line(1_500_000, "gnss", &[0xab]),
            "     0.00150    'gnss'      ab\n"
        );
        assert_eq!(
            line(0, "a_long_topic", &[0x01]),
            "     0.00000    'a_long_topic'    01\n"
        );
        assert_eq!(
            line(1_234_567_890_123, "", &[0x01]),
            "  1234.56789    ''          01\n"
        );
        assert_eq!(
            line(-5_000_000, "", &[0x01]),
            "    -0.00500    ''          01\n"
        );
    }

    #[test]
    fn time_rounds_like_python() {
        let t = |ns: i64| {
            let mut out = Vec::new();
            format_elapsed(&mut out, ns);
            String::from_utf8(out).unwrap().trim().to_string()
        };
        // '%1.5f' % 0.015625 == '0.01562' (an exact tie, to even).
        assert_eq!(t(15_625_000), "0.01562");
        assert_eq!(t(46_875_000), "0.04688");
        // Microsecond resolution, as timedelta.total_seconds().
        assert_eq!(t(5_499), "0.00001");
        assert_eq!(t(123_456_789), "0.12346");
    }

    #[test]
    fn odd_topics_become_python_literals() {
        assert_eq!(line(0, "it's", &[1]), "     0.00000    \"it's\"      01\n");
        assert_eq!(
            line(0, "a\\b\n", &[1]),
            "     0.00000    'a\\\\b\\n'    01\n"
        );
        for topic in ["it's", "a\\b\n", "both'\"", "tab\there", "\u{7f}x", "é ü"] {
            let mut out = Vec::new();
            format_topic(&mut out, topic);
            let text = String::from_utf8(out).unwrap();
            let (parsed, _) = crate::format::mcl::parse_topic(text.trim_end().as_bytes()).unwrap();
            assert_eq!(parsed, topic, "{text}");
        }
    }

    #[test]
    fn created_is_python_str_of_datetime() {
        assert_eq!(format_created(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_created(1_433_160_896_123_456),
            "2015-06-01 12:14:56.123456"
        );
        assert_eq!(format_created(951_782_400_000_000), "2000-02-29 00:00:00");
        assert_eq!(format_created(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(local_timestamp(0).len(), 15);
    }

    #[test]
    fn headers_in_both_styles() {
        let h = header_text(Some("A"), "", "1970-01-01 00:00:00", HeaderStyle::Mcl);
        assert!(h.starts_with(&format!("{COMMENT_BLOCK}\n# MCL_LOG\n#     -- version     1.0\n#     -- revision\n#     -- created     1970-01-01 00:00:00\n#\n")));
        assert!(h.contains("\n#      >>> A\n#\n#     <Time>    <Topic>     <Payload>\n"));
        assert!(h.ends_with(&format!("{COMMENT_BLOCK}\n")));
        assert_eq!(h.lines().count(), 20);
        let legacy = header_text(None, "abc", "x", HeaderStyle::Legacy);
        assert!(legacy.contains("\n#     -- revision    abc\n"));
        assert!(legacy.contains("\n#      >>> None\n# \n"));
        assert!(!legacy.contains("\n#\n"));
        let (parsed, _, lines) = crate::format::mcl::parse_header(h.as_bytes());
        let parsed = parsed.unwrap();
        assert_eq!(parsed.message_type.as_deref(), Some("A"));
        assert_eq!(parsed.created.as_deref(), Some("1970-01-01 00:00:00"));
        assert_eq!(lines, 20);
    }
}
