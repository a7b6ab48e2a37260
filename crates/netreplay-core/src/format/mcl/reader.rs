//! Reading one MCL stream (a file or a split set) from memory-mapped files,
//! one line per call.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::format::mcl::header::{parse_header, Header};
use crate::format::mcl::hex::decode_hex;
use crate::format::mcl::line::{parse_line_time, parse_topic};
use crate::format::msgpack::check_value;
use crate::format::source::{OnError, RecordSource, TimeWindow};
use crate::sys::GuardedMap;
use crate::{Error, Record, Result, StreamInfo};

/// Options of reading MCL logs (`engine::open_file`, `engine::open_directory`).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub window: TimeWindow,
    pub include_raw: bool,
    pub on_error: OnError,
}

const SNIPPET_CHARS: usize = 80;
/// How often (in bytes read) the length of an *unguarded* mapping (see
/// [`GuardedMap::is_guarded`]) is checked. This only narrows the window in
/// which a shrinking file can still kill the process; guarded mappings (the
/// normal case) rely on the SIGBUS guard instead.
const SHRINK_CHECK_BYTES: usize = 1 << 20;
/// How much of a file is read between two releases of the pages behind the
/// read position (see [`MappedFile::release_consumed`]). A power of two of
/// at least a page on every system, so multiples of it are page-aligned
/// offsets (the mapping itself starts on a page).
const RELEASE_BYTES: usize = 8 << 20;
/// How many distinct topics [`TopicCache`] keeps.
const TOPIC_CACHE_SIZE: usize = 8;
/// How much of a part is read at a time to find its first or last timed
/// line (see [`first_line_time`]); grows for longer lines.
const SCAN_CHUNK_BYTES: usize = 64 << 10;

fn snippet(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

/// One mapped MCL file, read line by line.
///
/// Another process may truncate the file while we read it. The mapping is
/// registered with [`crate::mapguard`], so pages past the new end read as
/// zeros instead of raising SIGBUS, and the guard's `truncated` flag is
/// checked after every line: the file then gives an [`Error::Io`] and no
/// record from the damaged stretch.
///
/// The pages already read are dropped from the mapping as reading advances
/// ([`MappedFile::release_consumed`]), so the resident size stays bounded
/// however large the file.
struct MappedFile {
    path: PathBuf,
    file: File,
    map: Option<GuardedMap>,
    header: Option<Header>,
    body_start: usize,
    header_lines: u64,
    pos: usize,
    /// Lines read since `counted_from` (a line start); the number of the
    /// line `next_line` returned last is `lines_before + line`.
    line: u64,
    counted_from: usize,
    /// Lines before `counted_from`; `None` after a seek until a line number
    /// is asked for (counting them means reading every byte before it).
    lines_before: Option<u64>,
    next_shrink_check: usize,
    /// Pages before this offset (a multiple of [`RELEASE_BYTES`], or the
    /// mapping's length) have been dropped from this process's mapping.
    released: usize,
}

impl MappedFile {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, &e))?;
        if meta.is_dir() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: "is a directory, not a log file".into(),
            });
        }
        let map = if meta.len() == 0 {
            None // mapping an empty file fails; it simply has no records
        } else {
            // Another process may truncate the file: `GuardedMap` registers the
            // mapping with the SIGBUS guard so that vanished pages read as
            // zeros and set a flag that `check_truncated` turns into an error
            // before anything read from them is used.
            // SAFETY: the map is read-only and never handed out beyond this
            // reader (records copy what they need); truncation is guarded.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, &e))?;
            // Read front to back: more read-ahead, and the kernel need not
            // keep the pages as recently used. Only advice; failure is harmless.
            let _ = map.advise(Advice::Sequential);
            Some(GuardedMap::new(map))
        };
        let bytes = map.as_deref().unwrap_or(&[]);
        let (header, body_start, header_lines) = parse_header(bytes);
        let mut opened = MappedFile {
            path: path.to_path_buf(),
            file,
            map,
            header,
            body_start,
            header_lines,
            pos: body_start,
            line: 0,
            counted_from: body_start,
            lines_before: Some(header_lines),
            next_shrink_check: body_start,
            released: 0,
        };
        // The file may have shrunk while its header was being read.
        opened.check_truncated()?;
        Ok(opened)
    }

    fn is_guarded(&self) -> bool {
        self.map.as_ref().is_some_and(GuardedMap::is_guarded)
    }

    /// The guard saw a page of this file vanish: stop reading it for good
    /// (until a rewind) with an error. One atomic load when all is well.
    fn check_truncated(&mut self) -> Result<()> {
        if self.map.as_ref().is_some_and(GuardedMap::truncated) {
            return Err(self.shrank(None));
        }
        Ok(())
    }

    /// The error for a file that shrank; stops reading it (its tail is gone).
    fn shrank(&mut self, now: Option<u64>) -> Error {
        let mapped = self.map.as_ref().map_or(0, |m| m.len());
        self.pos = mapped;
        let now = now.or_else(|| self.file.metadata().ok().map(|m| m.len()));
        let message = match now {
            Some(now) if now < mapped as u64 => {
                format!("file shrank while being read (was {mapped} bytes, now {now})")
            }
            // The guard saw a page vanish but the length is back: the file
            // was cut and grew again, or a page could not be read (I/O error).
            Some(now) => format!(
                "file shrank while being read (was {mapped} bytes, now {now}: it grew \
                 again, or a page of it could not be read)"
            ),
            None => format!("file shrank while being read (was {mapped} bytes)"),
        };
        Error::Io {
            path: self.path.clone(),
            message,
        }
    }

    fn rewind(&mut self) {
        self.move_to(self.body_start);
    }

    /// Read on from the line start `pos`.
    fn move_to(&mut self, pos: usize) {
        self.pos = pos;
        self.line = 0;
        self.counted_from = pos;
        self.lines_before = (pos == self.body_start).then_some(self.header_lines);
        self.next_shrink_check = pos;
        // Released pages fault back in from the file when read again. From 0,
        // the next release also drops the pages the seek probed before `pos`.
        self.released = 0;
    }

    /// Read on from the first line after the last line timed before `t_ns`
    /// (from the first line if there is none): the next record read is the
    /// first with time >= `t_ns` unless lines whose time does not parse come
    /// first, which are read (and reported) as usual. A binary search over
    /// the mapped bytes ([`seek_offset`]), touching a few pages per probe.
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        // Probing past the end of an unguarded mapping of a file that shrank
        // would kill the process: one `fstat` first (see `SHRINK_CHECK_BYTES`).
        if !self.is_guarded() {
            self.check_shrink()?;
        }
        // The pages read ahead of a position left behind would stay resident
        // until reading reached them again, if ever: repeated seeks would grow
        // the RSS by up to a read window each. Drop every page now; those
        // read next fault in again from the page cache.
        let len = self.map.as_ref().map_or(0, |m| m.len());
        self.drop_pages(0..len);
        let bytes = self.map.as_deref().unwrap_or(&[]);
        let pos = seek_offset(bytes, self.body_start, t_ns);
        self.move_to(pos);
        Ok(())
    }

    /// The number of the line `next_line` returned last. After a seek, the
    /// first call counts the lines before the seek position (one pass of
    /// `memchr` over them): only errors need it, so seeks stay cheap.
    fn line_number(&mut self) -> u64 {
        let before = match self.lines_before {
            Some(n) => n,
            None => {
                let bytes = self.map.as_deref().unwrap_or(&[]);
                let body = bytes.get(self.body_start..self.counted_from).unwrap_or(&[]);
                let n = self.header_lines + memchr::memchr_iter(b'\n', body).count() as u64;
                *self.lines_before.insert(n)
            }
        };
        before + self.line
    }

    /// Drop the pages before the read position from this process's mapping
    /// once another [`RELEASE_BYTES`] have been read, and all of them at the
    /// end of the file. Otherwise every page read stays resident (counted in
    /// our RSS) until the file is closed: a 2 GB log would cost 2 GB.
    /// Everything before `pos` has been consumed: records copy their bytes.
    fn release_consumed(&mut self) {
        let Some(map) = self.map.as_ref() else {
            return;
        };
        let end = if self.pos >= map.len() {
            map.len()
        } else {
            self.pos / RELEASE_BYTES * RELEASE_BYTES
        };
        if end <= self.released {
            return;
        }
        self.drop_pages(self.released..end);
        self.released = end;
    }

    /// Drop the pages of `range` (page-aligned start) from this process's
    /// mapping, to keep the RSS bounded.
    fn drop_pages(&self, range: std::ops::Range<usize>) {
        let Some(map) = self.map.as_ref() else {
            return;
        };
        if range.is_empty() {
            return;
        }
        // The mapping is a read-only, shared mapping of a file: MADV_DONTNEED
        // only unmaps the pages of the range, and the next access faults them
        // in again from the file with the same contents. Should the file have
        // shrunk meanwhile, that access meets the SIGBUS guard as a first
        // access would; pages the guard replaced with anonymous zeros read as
        // zeros again. No slice into the range is alive: `&self` borrows
        // nothing out, the lines handed out are byte ranges (decoded by now)
        // and records own copies of their bytes.
        // SAFETY: no byte Rust code may see changes (above); the range lies
        // inside the mapping and starts on a page boundary.
        let _ = unsafe {
            map.mmap()
                .unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.len())
        };
    }

    /// Compare the file's length with the mapping (one `fstat`). Used for
    /// unguarded mappings, and when a line does not decode: a truncation
    /// inside the last page zeroes its tail without any fault, so the guard's
    /// flag stays clear and only the length tells.
    fn check_shrink(&mut self) -> Result<()> {
        let mapped = self.map.as_ref().map_or(0, |m| m.len());
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, &e))?
            .len();
        if now < mapped as u64 {
            return Err(self.shrank(Some(now)));
        }
        self.next_shrink_check = self.pos.saturating_add(SHRINK_CHECK_BYTES);
        Ok(())
    }

    /// Next non-empty, non-comment line: (byte offset, trimmed bytes); its
    /// number is [`MappedFile::line_number`].
    fn next_line(&mut self) -> Result<Option<(usize, Range<usize>)>> {
        loop {
            let len = self.map.as_ref().map_or(0, |m| m.len());
            if self.pos >= self.released.saturating_add(RELEASE_BYTES) || self.pos >= len {
                self.release_consumed();
            }
            if self.pos >= len {
                return Ok(None);
            }
            if self.pos >= self.next_shrink_check && !self.is_guarded() {
                self.check_shrink()?;
            }
            let bytes = &self.map.as_ref().expect("non-empty file is mapped")[..];
            let start = self.pos;
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(len, |i| start + i);
            self.pos = end + 1;
            self.line += 1;
            let content = line_content(bytes, start, end);
            // Every byte of the line has been read: if a page of it was gone,
            // the guard has set the flag by now.
            self.check_truncated()?;
            if let Some(content) = content {
                return Ok(Some((start, content)));
            }
        }
    }
}

/// The content of the line `bytes[start..end]` (`end` at its `\n` or the
/// end), without surrounding blanks (and a `\r` before the `\n`); `None`
/// for a blank or comment line.
fn line_content(bytes: &[u8], start: usize, end: usize) -> Option<Range<usize>> {
    let mut line_end = end;
    while line_end > start && matches!(bytes[line_end - 1], b'\r' | b' ' | b'\t') {
        line_end -= 1;
    }
    let mut line_start = start;
    while line_start < line_end && matches!(bytes[line_start], b' ' | b'\t') {
        line_start += 1;
    }
    if line_start == line_end || bytes[line_start] == b'#' {
        return None;
    }
    Some(line_start..line_end)
}

/// The time of the line `bytes[start..end]`, if it is a record line whose
/// time column parses (the rest of the line is not looked at).
fn line_time(bytes: &[u8], start: usize, end: usize) -> Option<i64> {
    let content = line_content(bytes, start, end)?;
    parse_line_time(&bytes[content]).map(|(t, _)| t)
}

/// The first line start at or after `at` (`body_start` for any `at` up to
/// it; the end of `bytes` when no line starts there).
fn line_start_from(bytes: &[u8], body_start: usize, at: usize) -> usize {
    if at <= body_start {
        return body_start;
    }
    // `at` is a line start when the byte before it ends a line.
    memchr::memchr(b'\n', &bytes[at - 1..]).map_or(bytes.len(), |i| at + i)
}

/// The first timed line starting at or after the line start `from`: (its
/// start, its time). Blank, comment and untimed (malformed) lines are
/// passed over.
fn timed_line_from(bytes: &[u8], from: usize) -> Option<(usize, i64)> {
    let mut start = from;
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        if let Some(t) = line_time(bytes, start, end) {
            return Some((start, t));
        }
        start = end + 1;
    }
    None
}

/// Where reading resumes to seek `t_ns` in the body `bytes[body_start..]` of
/// a time-ordered file: the line start right after the last timed line with
/// time < `t_ns` (`body_start` if there is none), so the next timed line is
/// the first with time >= `t_ns`, the first of a run of equal times.
///
/// A lower-bound binary search over byte offsets: a probe at `p` reads the
/// first timed line starting at or after `p`, and holds when there is none
/// or its time is >= `t_ns`, which on ordered lines is false up to some
/// offset and true from it on. Each probe parses the time column of a line
/// or a few (past untimed ones); about log2(length) probes in all. On a
/// file that is not in time order it still ends on a line timed >= `t_ns`
/// right after one timed < `t_ns` (or at either end).
fn seek_offset(bytes: &[u8], body_start: usize, t_ns: i64) -> usize {
    let (mut lo, mut hi) = (body_start, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match timed_line_from(bytes, line_start_from(bytes, body_start, mid)) {
            // Every probe up to that line's start reads it: the first one
            // that can hold is just past it.
            Some((start, t)) if t < t_ns => lo = start + 1,
            _ => hi = mid,
        }
    }
    line_start_from(bytes, body_start, lo)
}

/// The time of the first line of `path` whose time parses (header and
/// comment lines are `#` lines, so they are passed over like blank ones),
/// read with plain reads: a stream keeps one part mapped at a time.
fn first_line_time(path: &Path) -> Result<Option<i64>> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let mut buf = Vec::new();
    let mut offset = 0u64; // of the end of `buf` in the file
    let mut start = 0; // of the line being looked at, in `buf`
    loop {
        if let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
            let end = start + i;
            if let Some(t) = line_time(&buf, start, end) {
                return Ok(Some(t));
            }
            start = end + 1;
            continue;
        }
        // Keep only the partial line, then read on (more for a long line).
        buf.drain(..start);
        start = 0;
        let have = buf.len();
        buf.resize(have + SCAN_CHUNK_BYTES.max(have), 0);
        let n = read_at(&file, path, &mut buf[have..], offset)?;
        buf.truncate(have + n);
        offset += n as u64;
        if n == 0 {
            return Ok(line_time(&buf, 0, buf.len()));
        }
    }
}

/// The time of the last line of `path` whose time parses, read backwards
/// from the end with plain reads.
fn last_line_time(path: &Path) -> Result<Option<i64>> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
    // `buf` holds the file from `buf_start` to the end of the line being
    // looked at (exclusive): lines after it have been dropped.
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = len;
    loop {
        if let Some(i) = memchr::memrchr(b'\n', &buf) {
            if let Some(t) = line_time(&buf, i + 1, buf.len()) {
                return Ok(Some(t));
            }
            buf.truncate(i);
            continue;
        }
        if buf_start == 0 {
            return Ok(line_time(&buf, 0, buf.len()));
        }
        // Read the stretch before `buf` (more for a long line) in front of it.
        let n = (SCAN_CHUNK_BYTES.max(buf.len()) as u64).min(buf_start) as usize;
        buf_start -= n as u64;
        let mut more = vec![0; n + buf.len()];
        let got = read_at(&file, path, &mut more[..n], buf_start)?;
        if got < n {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: format!("file shrank while being read (was {len} bytes)"),
            });
        }
        more[n..].copy_from_slice(&buf);
        buf = more;
    }
}

/// Read into `buf` from `offset` until it is full or the file ends; the
/// bytes read.
fn read_at(mut file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, &e))?;
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, &e)),
        }
    }
    Ok(done)
}

/// The topics seen last. Streams have few topics, often interleaved: a
/// repeated topic then costs a compare and a reference count instead of a
/// parse and an allocation.
#[derive(Default)]
struct TopicCache {
    /// Each topic, and whether it has no quote and no backslash: only such a
    /// topic can be written plainly (see `find`).
    topics: Vec<(Arc<str>, bool)>,
    /// The entry to replace next once the cache is full.
    next: usize,
}

impl TopicCache {
    /// The topic quoted at the start of `text` and the bytes its quoted form
    /// spans, when that form is plain (`'…'` or `"…"`, no escape, no prefix)
    /// and the topic is cached. A plain form means just its inner bytes, as
    /// [`parse_topic`] would return them.
    fn find(&self, text: &[u8]) -> Option<(Arc<str>, usize)> {
        let quote = *text.first()?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let body = &text[1..];
        // A topic without quotes or backslashes, then the quote, is exactly
        // a plain form of it: no scan for the closing quote is needed.
        self.topics
            .iter()
            .find(|(topic, plain)| {
                let topic = topic.as_bytes();
                *plain
                    && body.len() > topic.len()
                    && body[topic.len()] == quote
                    && &body[..topic.len()] == topic
            })
            .map(|(topic, _)| (topic.clone(), topic.len() + 2))
    }

    /// The shared copy of `topic`, added to the cache if new.
    fn intern(&mut self, topic: String) -> Arc<str> {
        if let Some((cached, _)) = self.topics.iter().find(|(t, _)| **t == *topic) {
            return cached.clone();
        }
        let plain = !topic.contains(['\'', '"', '\\']);
        let topic = Arc::<str>::from(topic);
        if self.topics.len() < TOPIC_CACHE_SIZE {
            self.topics.push((topic.clone(), plain));
        } else {
            self.topics[self.next] = (topic.clone(), plain);
            self.next = (self.next + 1) % TOPIC_CACHE_SIZE;
        }
        topic
    }
}

/// One MCL stream: a single file or a split set read as one.
///
/// Only the part being read is open (mapped, with its descriptor): a split
/// set of any number of parts holds one mapping at a time, and a finished
/// part is closed before the next is opened.
pub struct MclStream {
    info: [StreamInfo; 1],
    header: Option<Header>,
    /// The part being read: its index in `info[0].files`, and the file.
    file: Option<(usize, MappedFile)>,
    /// Each part's length when the stream was opened: a part cut before it
    /// is reached is reported as having shrunk, not read as a short file.
    sizes: Vec<u64>,
    /// Why the part to read could not be opened again at a rewind or a
    /// seek: the next read's error.
    reopen_error: Option<Error>,
    /// Each part's first line time ([`first_line_time`]) once a seek looked
    /// it up: the outer `None` when not yet known.
    first_times: Vec<Option<Option<i64>>>,
    topics: TopicCache,
    on_error: OnError,
    skipped: u64,
    done: bool,
}

impl MclStream {
    /// Open the stream whose parts are `parts` (in read order; at least
    /// one). Only the first part's header counts; later parts may repeat one.
    pub fn open(parts: &[PathBuf], on_error: OnError) -> Result<Self> {
        let Some(first_path) = parts.first() else {
            return Err(Error::State("a stream needs at least one file".into()));
        };
        let first = MappedFile::open(first_path)?;
        // One stat per part, no descriptor kept; the first is mapped already.
        let sizes = parts
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(p, &e))
            })
            .collect::<Result<Vec<_>>>()?;
        let header = first.header.clone();
        let message_type = header.as_ref().and_then(|h| h.message_type.clone());
        Ok(MclStream {
            info: [StreamInfo {
                message_type,
                files: parts.to_vec(),
                ..StreamInfo::default()
            }],
            header,
            file: Some((0, first)),
            first_times: vec![None; parts.len()],
            sizes,
            reopen_error: None,
            topics: TopicCache::default(),
            on_error,
            skipped: 0,
            done: false,
        })
    }

    /// Close the part being read and open part `index`, if there is one.
    fn open_part(&mut self, index: usize) -> Result<()> {
        self.file = None;
        if let Some(path) = self.info[0].files.get(index) {
            let file = MappedFile::open(path)?;
            let was = self.sizes.get(index).copied().unwrap_or(0);
            let now = file.map.as_ref().map_or(0, |m| m.len()) as u64;
            if now < was {
                return Err(Error::Io {
                    path: path.clone(),
                    message: format!(
                        "file shrank while its split set was being read (was {was} bytes \
                         when the set was opened, now {now})"
                    ),
                });
            }
            self.file = Some((index, file));
        }
        Ok(())
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The first timed part at or after part `from`: (its index, its first
    /// time); `None` when no part from there on has a timed line.
    fn timed_part_from(&mut self, from: usize) -> Result<Option<(usize, i64)>> {
        for index in from..self.first_times.len() {
            let time = match self.first_times[index] {
                Some(time) => time,
                None => {
                    let time = first_line_time(&self.info[0].files[index])?;
                    *self.first_times[index].insert(time)
                }
            };
            if let Some(time) = time {
                return Ok(Some((index, time)));
            }
        }
        Ok(None)
    }

    /// The part where the first record with time >= `t_ns` is, or from
    /// which reading on reaches it: the last part whose first timed line is
    /// before `t_ns` (a run of equal times may start at the end of the part
    /// before the one that begins with that time), part 0 if none is. A
    /// binary search over the parts' first line times, each looked up once.
    fn part_for(&mut self, t_ns: i64) -> Result<usize> {
        // The smallest index whose next timed part starts at >= t_ns.
        let (mut lo, mut hi) = (0, self.first_times.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.timed_part_from(mid)? {
                Some((index, t)) if t < t_ns => lo = index + 1,
                _ => hi = mid,
            }
        }
        Ok(lo.saturating_sub(1))
    }

    /// [`RecordSource::seek`] without the bookkeeping: open the part to read
    /// (unless it is open) and search it.
    fn seek_parts(&mut self, t_ns: i64) -> Result<()> {
        let index = if self.first_times.len() == 1 {
            0
        } else {
            self.part_for(t_ns)?
        };
        if !matches!(self.file, Some((open, _)) if open == index) {
            self.open_part(index)?;
        }
        match &mut self.file {
            Some((_, file)) => file.seek(t_ns),
            None => Ok(()), // `open_part` always opens an existing part
        }
    }

    fn decode(&mut self, range: std::ops::Range<usize>) -> std::result::Result<Record, String> {
        let (_, file) = self.file.as_ref().expect("a part is open");
        let line = &file.map.as_ref().expect("mapped")[range];
        let (time_ns, time_end) = parse_line_time(line)
            .ok_or_else(|| "elapsed time is not a number of seconds within ±9e9".to_string())?;
        let rest = trim_start(&line[time_end..]);
        if rest.is_empty() {
            return Err("missing topic and payload columns".into());
        }
        let (topic, used) = match self.topics.find(rest) {
            Some(cached) => cached,
            None => {
                let (text, used) = parse_topic(rest)?;
                (self.topics.intern(text), used)
            }
        };
        let after = &rest[used..];
        if !after.is_empty() && !after[0].is_ascii_whitespace() {
            return Err("no space after the topic".into());
        }
        let hex = trim_start(after);
        if hex.is_empty() {
            return Err("missing payload column".into());
        }
        let mut payload = crate::record::payload_buffer(hex.len() / 2);
        if let Err(reason) = decode_hex(hex, &mut payload) {
            // Whitespace is not hex, so valid hex has none: look for it (a
            // further column, the more telling error) only on failure.
            if let Some(extra) = hex.iter().position(|b| b.is_ascii_whitespace()) {
                return Err(format!(
                    "unexpected text after the payload at column {}",
                    extra + 1
                ));
            }
            return Err(reason);
        }
        // Payloads are msgpack (DESIGN.md): one that is not would fail in
        // every consumer, so it is a malformed record here, where the file
        // and line are known.
        if let Err(err) = check_value(&payload) {
            return Err(format!("payload is not one msgpack value: {err}"));
        }
        Ok(Record {
            time_ns,
            stream: 0,
            topic,
            payload,
        })
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[n..]
}

impl RecordSource for MclStream {
    fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(err) = self.reopen_error.take() {
            self.done = true;
            return Err(err);
        }
        while !self.done {
            let Some((index, file)) = self.file.as_mut() else {
                self.done = true;
                break;
            };
            let Some((offset, range)) = file.next_line()? else {
                let next = *index + 1;
                self.open_part(next)?;
                continue;
            };
            let decoded = self.decode(range.clone());
            let (_, file) = self.file.as_mut().expect("a part is open");
            // The file may have been cut between `next_line` and `decode`.
            file.check_truncated()?;
            if decoded.is_err() {
                // A cut inside the last page leaves zeros and no fault: a line
                // that does not decode may be one that was cut.
                file.check_shrink()?;
            }
            match decoded {
                Ok(record) => return Ok(Some(record)),
                Err(reason) => {
                    if self.on_error == OnError::Skip {
                        self.skipped += 1;
                        continue;
                    }
                    let line = file.line_number();
                    let bytes = &file.map.as_ref().expect("mapped")[range];
                    return Err(Error::Malformed {
                        path: file.path.clone(),
                        line,
                        byte_offset: offset as u64,
                        reason,
                        snippet: snippet(bytes),
                    });
                }
            }
        }
        Ok(None)
    }

    fn reset(&mut self) -> Result<()> {
        self.done = false;
        match &mut self.file {
            Some((0, file)) => file.rewind(),
            // Reopened: what went wrong with the file is the next read's error.
            _ => self.reopen_error = self.open_part(0).err(),
        }
        Ok(())
    }

    /// A binary search: over the parts by their first line times, then over
    /// the chosen part's mapped bytes (`seek_offset`); only that part is
    /// opened. Like [`RecordSource::reset`] it clears the end of the data,
    /// and what goes wrong opening or probing the part is the next read's
    /// error. Lines whose time does not parse are passed over by the search
    /// and read as usual. Line numbers in errors after a seek are counted
    /// when an error needs one.
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        self.done = false;
        self.reopen_error = self.seek_parts(t_ns).err();
        Ok(())
    }

    /// The first line time of the first timed part and the last line time
    /// of the last one, from plain reads of the parts' ends: lines whose
    /// time parses count, whatever follows the time.
    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        let Some((first_part, first)) = self.timed_part_from(0)? else {
            return Ok(None);
        };
        for path in self.info[0].files[first_part..].iter().rev() {
            if let Some(last) = last_line_time(path)? {
                return Ok(Some((first, last)));
            }
        }
        // The first timed part has a timed line, so the loop found one.
        Ok(Some((first, first)))
    }

    fn is_data_pending(&self) -> bool {
        !self.done
    }

    fn streams(&self) -> &[StreamInfo] {
        &self.info
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_cache_only_matches_plain_forms() {
        let mut cache = TopicCache::default();
        assert!(cache.find(b"'' 80").is_none(), "empty cache");
        let empty = cache.intern(String::new());
        let cam = cache.intern("cam".into());
        cache.intern("it's".into());
        assert!(
            Arc::ptr_eq(&cache.intern("cam".into()), &cam),
            "no duplicates"
        );
        let (t, used) = cache.find(b"'' 80").unwrap();
        assert!(Arc::ptr_eq(&t, &empty) && used == 2);
        let (t, used) = cache.find(b"'cam'   80").unwrap();
        assert!(Arc::ptr_eq(&t, &cam) && used == 5);
        let (t, used) = cache.find(b"\"cam\" 80").unwrap();
        assert!(Arc::ptr_eq(&t, &cam) && used == 5);
        // Not plain, or another topic: left to parse_topic.
        assert!(cache.find(b"'camera' 80").is_none());
        assert!(cache.find(b"'ca\\m' 80").is_none());
        assert!(cache.find(b"u'cam' 80").is_none());
        assert!(cache.find(b"cam 80").is_none());
        assert!(cache.find(b"'cam").is_none());
        // `'it's'` is the topic `it` followed by junk, never `it's`.
        assert!(cache.find(b"'it's' 80").is_none());
        assert!(cache.find(b"\"it's\" 80").is_none(), "has a quote: parsed");
        // Full: the oldest entries make room.
        for i in 0..TOPIC_CACHE_SIZE {
            cache.intern(format!("t{i}"));
        }
        assert_eq!(cache.topics.len(), TOPIC_CACHE_SIZE);
        assert!(cache.find(b"'t0' 80").is_some());
        assert!(cache.find(b"'t7' 80").is_some());
    }

    /// A log of `lines` records of `payload` bytes each (bytes 3..7 count
    /// the records).
    fn write_log(name: &str, lines: u32, payload: usize) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("netreplay-mcl-{}-{name}.log", std::process::id()));
        let mut text = String::from("#---\n# MCL_LOG\n#      >>> T\n");
        // A msgpack bin 16: its 3-byte head, then the count and filler.
        let pad = "ab".repeat(payload - 7);
        let len = payload - 3;
        for k in 0..lines {
            text.push_str(&format!(
                "{:>12.5}    ''    c5{len:04x}{k:08x}{pad}\n",
                f64::from(k) / 1e3
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn consumed_pages_are_released_and_rewind_reads_them_again() {
        // ~20 MiB: two periodic releases, then the rest at the end.
        let path = write_log("release", 20_000, 512);
        let mut stream = MclStream::open(std::slice::from_ref(&path), OnError::Fail).unwrap();
        let mut n = 0u32;
        while let Some(r) = stream.next_record().unwrap() {
            assert_eq!(r.payload[3..7], n.to_be_bytes());
            n += 1;
            let (_, file) = stream.file.as_ref().unwrap();
            assert_eq!(file.released % RELEASE_BYTES, 0);
            assert!(file.released <= file.pos);
            assert!(file.pos - file.released < RELEASE_BYTES + 2048);
        }
        assert_eq!(n, 20_000);
        // At the end the file is closed: mapping and descriptor are gone.
        assert!(stream.file.is_none(), "closed at the end");
        stream.reset().unwrap();
        assert_eq!(stream.file.as_ref().unwrap().1.released, 0);
        let mut again = 0u32;
        while let Some(r) = stream.next_record().unwrap() {
            assert_eq!(r.payload[3..7], again.to_be_bytes());
            again += 1;
        }
        assert_eq!(again, n);

        // Released pages of a file that then shrank: an error on rewind,
        // not a crash and not stale data.
        // (Stop short of the end, which closes the file.)
        stream.reset().unwrap();
        for _ in 1..n {
            assert!(stream.next_record().unwrap().is_some());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        stream.reset().unwrap();
        match stream.next_record() {
            Err(Error::Io { message, .. }) => assert!(message.contains("shrank"), "{message}"),
            other => panic!("expected the shrink error, got {other:?}"),
        }
        // Past the end the file was closed: a rewind opens it afresh and
        // finds it shorter than when the stream was opened.
        while stream.next_record().is_ok_and(|r| r.is_some()) {}
        stream.open_part(1).unwrap();
        assert!(stream.file.is_none());
        stream.reset().unwrap();
        match stream.next_record() {
            Err(Error::Io { message, .. }) => assert!(message.contains("shrank"), "{message}"),
            other => panic!("expected the shrink error, got {other:?}"),
        }
        assert!(stream.next_record().unwrap().is_none(), "then the end");
        let _ = std::fs::remove_file(&path);
    }

    /// xorshift: deterministic "random" numbers without a dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A header, then `n` record lines in time order (ties, gaps) mixed with
    /// blank, comment, CRLF and untimed lines; returns the text, where the
    /// body starts, and each timed line as (start, end past its newline,
    /// time).
    fn body(seed: &mut u64, n: usize) -> (Vec<u8>, usize, Vec<(usize, usize, i64)>) {
        let mut text = b"#---\n# MCL_LOG\n#      >>> T\n".to_vec();
        let body_start = text.len();
        let mut timed = Vec::new();
        let mut t: i64 = 0;
        for _ in 0..n {
            let r = rng(seed);
            let start = text.len();
            match r % 10 {
                0 => text.extend_from_slice(b"\n"),
                1 => text.extend_from_slice(b"   # a comment 1.5 ''\n"),
                2 => text.extend_from_slice(b"not-a-time '' 80\n"),
                _ => {
                    // Ties (0), small and large gaps.
                    t += [0, 0, 10_000, 1_000_000, 2_500_000_000][(r >> 8) as usize % 5];
                    let newline: &[u8] = if r >> 20 & 1 == 0 { b"\n" } else { b"\r\n" };
                    let line = format!(
                        "{:>12}.{:09}    ''    80",
                        t / 1_000_000_000,
                        t % 1_000_000_000
                    );
                    text.extend_from_slice(line.as_bytes());
                    text.extend_from_slice(newline);
                    timed.push((start, text.len(), t));
                }
            }
        }
        // Sometimes no newline at the very end.
        if rng(seed) % 2 == 0 && text.last() == Some(&b'\n') {
            text.pop();
            if text.last() == Some(&b'\r') {
                text.pop();
            }
            if let Some(last) = timed.last_mut() {
                last.1 = last.1.min(text.len());
            }
        }
        (text, body_start, timed)
    }

    #[test]
    fn seek_offset_agrees_with_a_linear_scan() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let (text, body_start, timed) = body(&mut seed, (round % 60) * 3);
            let mut targets = vec![i64::MIN, -1, 0, i64::MAX];
            for &(_, _, t) in &timed {
                targets.extend([t - 1, t, t + 1]);
            }
            for t in targets {
                // The line start after the last line timed before t.
                let want = timed
                    .iter()
                    .rfind(|(_, _, time)| *time < t)
                    .map_or(body_start, |(_, end, _)| *end);
                assert_eq!(
                    seek_offset(&text, body_start, t),
                    want,
                    "round {round} t {t}"
                );
                // From there, the next timed line is the first >= t.
                let next = timed_line_from(&text, want).map(|(_, time)| time);
                let first = timed.iter().find(|(_, _, time)| *time >= t).map(|x| x.2);
                assert_eq!(next, first, "round {round} t {t}");
            }
        }
        assert_eq!(seek_offset(b"", 0, 5), 0);
        assert_eq!(seek_offset(b"# only a header\n", 16, 5), 16);
    }

    #[test]
    fn first_and_last_line_times_read_across_chunks() {
        let dir = std::env::temp_dir().join(format!("netreplay-mcl-{}-ends", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // Lines longer than a read, so that each end takes several.
        let long = "ab".repeat(SCAN_CHUNK_BYTES);
        let text = format!(
            "#---\n# >>> T\n\nbad {long}\r\n  1.5  '' 80{long}\r\n# c\n2.0 '' 80\n3.25 '' {long}\nbad\n\n"
        );
        let path = write("long.log", text.as_bytes());
        assert_eq!(first_line_time(&path).unwrap(), Some(1_500_000_000));
        assert_eq!(last_line_time(&path).unwrap(), Some(3_250_000_000));
        let path = write("no-newline.log", b"0.5 '' 80\n0.75 '' 80");
        assert_eq!(first_line_time(&path).unwrap(), Some(500_000_000));
        assert_eq!(last_line_time(&path).unwrap(), Some(750_000_000));
        for (name, text) in [
            ("empty.log", &b""[..]),
            ("header.log", b"#---\n# >>> T\n#---\n"),
            ("untimed.log", b"x '' 80\n\n y"),
        ] {
            let path = write(name, text);
            assert_eq!(first_line_time(&path).unwrap(), None, "{name}");
            assert_eq!(last_line_time(&path).unwrap(), None, "{name}");
        }
        assert!(first_line_time(&dir.join("missing.log")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A split set `Seek_00N.log` of three parts; part 1 ends and part 2
    /// starts with the same time (2.0 s).
    fn write_parts(name: &str) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!("netreplay-mcl-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let parts: Vec<PathBuf> = [
            "#---\n# >>> T\n0.0 '' 00\n0.5 '' 01\n",
            "1.0 '' 02\n2.0 '' 03\n",
            "2.0 '' 04\n3.0 '' 05\n",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("Seek_{i:03}.log"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
        (dir, parts)
    }

    fn payloads(stream: &mut MclStream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(r) = stream.next_record().unwrap() {
            out.push(r.payload[0]);
        }
        out
    }

    #[test]
    fn a_seek_opens_only_the_part_it_reads() {
        let (dir, parts) = write_parts("parts");
        let mut stream = MclStream::open(&parts, OnError::Fail).unwrap();
        // (time, the part left open, the records read from there)
        let cases: &[(i64, usize, &[u8])] = &[
            (1_500_000_000, 1, &[3, 4, 5]),
            // The tie spans parts 1 and 2: its first record is in part 1.
            (2_000_000_000, 1, &[3, 4, 5]),
            (2_500_000_000, 2, &[5]),
            (0, 0, &[0, 1, 2, 3, 4, 5]),
            (600_000_000, 0, &[2, 3, 4, 5]),
            (1_000_000_000, 0, &[2, 3, 4, 5]),
            (9_000_000_000, 2, &[]),
            (i64::MIN, 0, &[0, 1, 2, 3, 4, 5]),
        ];
        for &(t, part, want) in cases {
            stream.seek(t).unwrap();
            assert_eq!(stream.file.as_ref().map(|f| f.0), Some(part), "t {t}");
            assert_eq!(payloads(&mut stream), want, "t {t}");
        }
        // Each part's first time was read once, and kept.
        assert_eq!(
            stream.first_times,
            vec![
                Some(Some(0)),
                Some(Some(1_000_000_000)),
                Some(Some(2_000_000_000))
            ]
        );
        assert_eq!(stream.time_range().unwrap(), Some((0, 3_000_000_000)));
        // A part that is gone is the next read's error, not the seek's.
        std::fs::remove_file(&parts[2]).unwrap();
        stream.seek(2_500_000_000).unwrap();
        match stream.next_record() {
            Err(Error::Io { path, .. }) => assert_eq!(path, parts[2]),
            other => panic!("expected the missing part, got {other:?}"),
        }
        assert!(stream.next_record().unwrap().is_none());
        // A seek clears that, as a rewind does.
        stream.seek(0).unwrap();
        for want in 0..4 {
            assert_eq!(stream.next_record().unwrap().unwrap().payload, [want]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pages_are_released_after_seeks_both_ways() {
        // ~10 MiB: a seek into the second release stretch, then back.
        let path = write_log("seek-release", 20_000, 512);
        let mut stream = MclStream::open(std::slice::from_ref(&path), OnError::Fail).unwrap();
        for (t, first) in [
            (15_000_000_000i64, 15_000u32),
            (2_000_000_000, 2_000),
            (0, 0),
        ] {
            stream.seek(t).unwrap();
            let mut n = first;
            while let Some(r) = stream.next_record().unwrap() {
                assert_eq!(r.payload[3..7], n.to_be_bytes());
                n += 1;
                if let Some((_, file)) = stream.file.as_ref() {
                    assert_eq!(file.released % RELEASE_BYTES, 0);
                    assert!(file.released <= file.pos);
                    assert!(file.pos - file.released < RELEASE_BYTES + 2048);
                }
                if n == first + 3_000 {
                    break;
                }
            }
            assert_eq!(n, (first + 3_000).min(20_000), "t {t}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn line_numbers_after_a_seek_are_counted_when_an_error_needs_one() {
        let path = std::env::temp_dir().join(format!(
            "netreplay-mcl-{}-seek-lines.log",
            std::process::id()
        ));
        // Line 7 is malformed (its time parses, its payload does not).
        std::fs::write(
            &path,
            "#---\n# >>> T\n0.1 '' 80\n\n# c\n0.2 '' 80\n0.3 '' zz\n0.4 '' 80\n",
        )
        .unwrap();
        let mut stream = MclStream::open(std::slice::from_ref(&path), OnError::Fail).unwrap();
        for t in [0, 150_000_000, 300_000_000] {
            stream.seek(t).unwrap();
            let file = &stream.file.as_ref().unwrap().1;
            assert_eq!(file.lines_before.is_some(), t == 0, "counted lazily");
            loop {
                match stream.next_record() {
                    Ok(Some(_)) => continue,
                    Err(Error::Malformed {
                        line, byte_offset, ..
                    }) => {
                        assert_eq!((line, byte_offset), (7, 38), "t {t}");
                        break;
                    }
                    other => panic!("t {t}: expected the malformed line, got {other:?}"),
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
