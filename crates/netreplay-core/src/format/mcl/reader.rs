//! Reading one MCL stream (a file or a split set) from memory-mapped files,
//! one line per call.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::format::mcl::header::{parse_header, Header};
use crate::format::mcl::hex::decode_hex;
use crate::format::mcl::line::{parse_plain_time, parse_time_ns, parse_topic};
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
    line: u64,
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
            line: header_lines,
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
        self.pos = self.body_start;
        self.line = self.header_lines;
        self.next_shrink_check = self.body_start;
        // Released pages fault back in from the file when read again.
        self.released = 0;
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
        // The mapping is a read-only, shared mapping of a file: MADV_DONTNEED
        // only unmaps the pages of [released, end), and the next access (after
        // a rewind) faults them in again from the file with the same contents.
        // Should the file have shrunk meanwhile, that access meets the SIGBUS
        // guard as a first access would; pages the guard replaced with
        // anonymous zeros read as zeros again. No slice into the range is
        // alive anyway: `&mut self`, the lines handed out are byte ranges (the
        // last one, before `pos`, has been decoded by now) and records own
        // copies of their bytes.
        // SAFETY: no byte Rust code may see changes (above); the range lies
        // inside the mapping and starts on a page boundary.
        let _ = unsafe {
            map.mmap().unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                self.released,
                end - self.released,
            )
        };
        self.released = end;
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

    /// Next non-empty, non-comment line: (line number, byte offset, bytes).
    fn next_line(&mut self) -> Result<Option<(u64, usize, std::ops::Range<usize>)>> {
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
            let mut line_end = end;
            while line_end > start && matches!(bytes[line_end - 1], b'\r' | b' ' | b'\t') {
                line_end -= 1;
            }
            let mut line_start = start;
            while line_start < line_end && matches!(bytes[line_start], b' ' | b'\t') {
                line_start += 1;
            }
            let blank_or_comment = line_start == line_end || bytes[line_start] == b'#';
            // Every byte of the line has been read: if a page of it was gone,
            // the guard has set the flag by now.
            self.check_truncated()?;
            if blank_or_comment {
                continue;
            }
            return Ok(Some((self.line, start, line_start..line_end)));
        }
    }
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
    /// Why the first part could not be opened again at a rewind.
    reopen_error: Option<Error>,
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
            }],
            header,
            file: Some((0, first)),
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

    fn decode(&mut self, range: std::ops::Range<usize>) -> std::result::Result<Record, String> {
        let (_, file) = self.file.as_ref().expect("a part is open");
        let line = &file.map.as_ref().expect("mapped")[range];
        let (time_ns, time_end) = match parse_plain_time(line) {
            Some(parsed) => parsed,
            None => {
                let time_end = line
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap_or(line.len());
                let time_ns = parse_time_ns(&line[..time_end]).ok_or_else(|| {
                    "elapsed time is not a number of seconds within ±9e9".to_string()
                })?;
                (time_ns, time_end)
            }
        };
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
        let mut payload = Vec::with_capacity(hex.len() / 2);
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
            let Some((line, offset, range)) = file.next_line()? else {
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
}
