//! MCL text logs: header, records, split sets and directories (DESIGN.md).
//!
//! Files are memory-mapped and decoded lazily, one line per call: opening a
//! log reads its header only, never the whole file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::format::source::{OnError, RecordSource, TimeWindow};
use crate::format::wire::check_value;
use crate::record::is_log_time;
use crate::sys::GuardedMap;
use crate::{Error, Record, Result, StreamInfo};

mod writer;
pub use writer::*;

/// Fields of an MCL log header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub version: Option<String>,
    pub revision: Option<String>,
    pub created: Option<String>,
    /// `>>> Type`; `None` for raw data (`>>> None`) or when the line is missing.
    pub message_type: Option<String>,
    /// `>>> None`: the stream holds raw data, not typed messages.
    pub raw: bool,
}

/// Options shared by [`open_file`] and [`open_directory`].
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

/// Parse the `#` block at the top of a file. Returns the header (if the file
/// starts with one), the byte offset of the first line after it and the
/// number of lines it spans.
pub fn parse_header(bytes: &[u8]) -> (Option<Header>, usize, u64) {
    let mut pos = 0;
    let mut lines = 0;
    let mut header = Header::default();
    while pos < bytes.len() && bytes[pos] == b'#' {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        let text = String::from_utf8_lossy(&bytes[pos + 1..end]);
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("--") {
            let rest = rest.trim_start();
            let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let value = Some(value.trim().to_string());
            match key {
                "version" => header.version = value,
                "revision" => header.revision = value,
                "created" => header.created = value,
                _ => {}
            }
        } else if let Some(rest) = text.strip_prefix(">>>") {
            let name = rest.trim();
            if name == "None" {
                header.raw = true;
            } else if !name.is_empty() {
                header.message_type = Some(name.to_string());
            }
        }
        pos = (end + 1).min(bytes.len());
        lines += 1;
    }
    if lines == 0 {
        (None, 0, 0)
    } else {
        (Some(header), pos, lines)
    }
}

/// Elapsed seconds as text to integer nanoseconds, exactly for up to nine
/// decimals (what MCL writes); other finite forms go through `f64`.
pub fn parse_time_ns(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut whole: i64 = 0;
    let mut frac: i64 = 0;
    let mut frac_digits = 0u32;
    let mut seen_dot = false;
    let mut seen_digit = false;
    let mut simple = true;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i64::from(b - b'0');
                if seen_dot {
                    if frac_digits < 9 {
                        frac = frac * 10 + d;
                        frac_digits += 1;
                    } else if frac_digits == 9 {
                        // Round half up on the tenth decimal, ignore the rest.
                        if d >= 5 {
                            frac += 1;
                        }
                        frac_digits += 1;
                    }
                } else {
                    whole = whole.checked_mul(10)?.checked_add(d)?;
                    if whole > i64::MAX / 1_000_000_000 - 1 {
                        return None;
                    }
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => {
                simple = false;
                break;
            }
        }
    }
    if simple {
        if !seen_digit {
            return None;
        }
        let scale = 10i64.pow(9 - frac_digits.min(9));
        let ns = whole * 1_000_000_000 + frac * scale;
        let ns = if negative { -ns } else { ns };
        return is_log_time(ns).then_some(ns);
    }
    let value: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    let ns = (value * 1e9).round();
    // `as` saturates: a value out of range stays out of range.
    (value.is_finite() && is_log_time(ns as i64)).then_some(ns as i64)
}

/// `10^(9 - k)`: the scale of a fraction with `k` decimals, in nanoseconds.
const FRAC_SCALE: [i64; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// [`parse_time_ns`] for the form MCL writes, `<digits>.<digits>` (at most
/// nine of each) followed by whitespace or the end, with the length it
/// spans; `None` for any other form, which the caller parses the general
/// way. It spares the separate scan for the end of the column and the
/// general parser's per-digit checks.
fn parse_plain_time(line: &[u8]) -> Option<(i64, usize)> {
    let mut whole: i64 = 0;
    let mut i = 0;
    while i < 9 {
        match line.get(i) {
            Some(&b @ b'0'..=b'9') => whole = whole * 10 + i64::from(b - b'0'),
            _ => break,
        }
        i += 1;
    }
    if i == 0 || line.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let frac_start = i;
    let mut frac: i64 = 0;
    while i - frac_start < 9 {
        match line.get(i) {
            Some(&b @ b'0'..=b'9') => frac = frac * 10 + i64::from(b - b'0'),
            _ => break,
        }
        i += 1;
    }
    let frac_digits = i - frac_start;
    // A tenth decimal (rounding) or anything but whitespace: the general way.
    if frac_digits == 0 || line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    Some((whole * 1_000_000_000 + frac * FRAC_SCALE[frac_digits], i))
}

const HEX_INVALID: u8 = 0xff;
const HEX_VALUES: [u8; 256] = {
    let mut table = [HEX_INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decode hex text into `out` (appended). Errors give the offending offset.
pub fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    // The fast path only succeeds on valid input; anything else is decoded
    // again by the scalar loop, which finds and names the first bad digit.
    if decode_hex_fast(hex, out) {
        return Ok(());
    }
    decode_hex_scalar(hex, out)
}

/// Sixteen digits at a time with SSE2 (baseline on x86_64, so no runtime
/// detection). `false`, with `out` unchanged, when the input is shorter
/// than 16 digits, of odd length or not all hex.
#[cfg(target_arch = "x86_64")]
fn decode_hex_fast(hex: &[u8], out: &mut Vec<u8>) -> bool {
    use std::arch::x86_64::*;

    let n = hex.len();
    if n < 16 || n % 2 != 0 {
        return false;
    }
    out.reserve(n / 2);
    let base = out.len();
    let src = hex.as_ptr();
    // Every load reads 16 bytes at `src + at` with `at + 16 <= n` (the loop
    // conditions and `n >= 16` guarantee it). Every store writes 16 bytes at
    // `dst + at / 2` with `at + 32 <= n`, or 8 with `at + 16 <= n`.
    // SAFETY: so loads stay inside `hex` and stores inside the `n / 2` bytes
    // reserved past `base`, which nothing else uses (`out` is borrowed
    // exclusively, `hex` is another allocation); all unaligned accesses.
    let complete = unsafe {
        let dst = out.as_mut_ptr().add(base);
        let zero_char = _mm_set1_epi8(b'0' as i8);
        let a_char = _mm_set1_epi8(b'a' as i8);
        let lower_case = _mm_set1_epi8(0x20);
        let nine = _mm_set1_epi8(9);
        let five = _mm_set1_epi8(5);
        let ten = _mm_set1_epi8(10);
        let low_byte = _mm_set1_epi16(0x00ff);
        // 16 digits at `at` -> 8 byte values in the 16-bit lanes, and a
        // mask with a bit set for each digit that is valid hex.
        let decode16 = |at: usize| {
            let v = _mm_loadu_si128(src.add(at).cast::<__m128i>());
            // Unsigned `x <= k` is `min(x, k) == x`; SSE2 has no unsigned compare.
            let digit = _mm_sub_epi8(v, zero_char);
            let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(digit, nine), digit);
            // `| 0x20` folds 'A'-'F' onto 'a'-'f' and nothing else onto them.
            let letter = _mm_sub_epi8(_mm_or_si128(v, lower_case), a_char);
            let is_letter = _mm_cmpeq_epi8(_mm_min_epu8(letter, five), letter);
            let nibbles = _mm_or_si128(
                _mm_and_si128(is_digit, digit),
                _mm_and_si128(is_letter, _mm_add_epi8(letter, ten)),
            );
            let valid = _mm_movemask_epi8(_mm_or_si128(is_digit, is_letter));
            // Lane = high nibble | low nibble << 8 (little endian).
            let bytes = _mm_or_si128(
                _mm_slli_epi16(_mm_and_si128(nibbles, low_byte), 4),
                _mm_srli_epi16(nibbles, 8),
            );
            (bytes, valid)
        };
        let mut at = 0;
        let mut complete = true;
        while at + 32 <= n {
            let (lo, lo_valid) = decode16(at);
            let (hi, hi_valid) = decode16(at + 16);
            if lo_valid & hi_valid != 0xffff {
                complete = false;
                break;
            }
            _mm_storeu_si128(dst.add(at / 2).cast(), _mm_packus_epi16(lo, hi));
            at += 32;
        }
        // 0 to 30 digits left: up to two blocks of 16, the last one ending at
        // `n` (it may overlap digits already done; they decode the same).
        let tail = |at: usize| {
            let (bytes, valid) = decode16(at);
            _mm_storel_epi64(dst.add(at / 2).cast(), _mm_packus_epi16(bytes, bytes));
            valid == 0xffff
        };
        if complete && n - at > 16 {
            complete = tail(at);
            at += 16;
        }
        if complete && at < n {
            complete = tail(n - 16);
        }
        complete
    };
    if complete {
        // SAFETY: the stores above initialised all `n / 2` bytes past `base`
        // (the 32-digit blocks cover digits [0, at), the tail blocks
        // [at, n)), within the capacity reserved above.
        unsafe { out.set_len(base + n / 2) };
    }
    complete
}

#[cfg(not(target_arch = "x86_64"))]
fn decode_hex_fast(_hex: &[u8], _out: &mut Vec<u8>) -> bool {
    false
}

/// The reference decoder, one digit pair at a time; also the one that
/// names the first bad digit.
fn decode_hex_scalar(hex: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    if hex.len() % 2 != 0 {
        return Err(format!(
            "payload hex has an odd length ({} digits)",
            hex.len()
        ));
    }
    out.reserve(hex.len() / 2);
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = HEX_VALUES[pair[0] as usize];
        let lo = HEX_VALUES[pair[1] as usize];
        if hi == HEX_INVALID || lo == HEX_INVALID {
            let at = if hi == HEX_INVALID { 2 * i } else { 2 * i + 1 };
            return Err(format!(
                "payload is not hex: {:?} at column {} of the payload",
                hex[at] as char,
                at + 1
            ));
        }
        out.push((hi << 4) | lo);
    }
    Ok(())
}

/// Decode a topic written as a Python `repr` of a string: `''`, `'abc'`,
/// `"it's"`, with backslash escapes. Returns the topic and the bytes consumed.
pub fn parse_topic(text: &[u8]) -> std::result::Result<(String, usize), String> {
    let mut start = 0;
    // Python 2 unicode/bytes prefixes.
    if matches!(text.first(), Some(b'u') | Some(b'b')) {
        start = 1;
    }
    let quote = match text.get(start) {
        Some(&q @ (b'\'' | b'"')) => q,
        _ => return Err("topic is not a quoted string".into()),
    };
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < text.len() {
        let b = text[i];
        if b == quote {
            let topic = String::from_utf8(out).map_err(|_| "topic is not UTF-8".to_string())?;
            return Ok((topic, i + 1));
        }
        if b == b'\\' {
            let esc = *text.get(i + 1).ok_or("topic ends inside an escape")?;
            i += 2;
            match esc {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'0' => out.push(0),
                b'x' | b'u' | b'U' => {
                    let width = match esc {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let digits = text
                        .get(i..i + width)
                        .ok_or("topic ends inside an escape")?;
                    let code = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|s| u32::from_str_radix(s, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or("invalid escape in topic")?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(code.encode_utf8(&mut buf).as_bytes());
                    i += width;
                }
                other => out.push(other),
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    Err("topic has no closing quote".into())
}

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

/// `Prefix_NNN.log` → (`Prefix`, NNN).
fn split_part(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".log")?;
    let (prefix, number) = stem.rsplit_once('_')?;
    if number.len() < 3 || !number.bytes().all(|b| b.is_ascii_digit()) || prefix.is_empty() {
        return None;
    }
    Some((prefix, number.parse().ok()?))
}

/// The parts of the split set `prefix_NNN.log`, in number order.
fn find_split_set(prefix: &Path) -> Result<Vec<PathBuf>> {
    let dir = match prefix.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let want = prefix.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(prefix, &e))?;
    let mut parts = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some((p, n)) = name.to_str().and_then(split_part) {
            if p == want {
                parts.push((n, entry.path()));
            }
        }
    }
    parts.sort();
    Ok(parts.into_iter().map(|(_, p)| p).collect())
}

/// The parts `ReadFile` reads: the file itself, or the split set
/// `<path>_NNN.log` when `path` is a prefix.
pub fn file_parts(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.is_dir() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            message: "is a directory (use ReadDirectory)".into(),
        });
    } else {
        let parts = find_split_set(path).unwrap_or_default();
        if parts.is_empty() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: "no such file, nor a split set <path>_000.log, ...".into(),
            });
        }
        parts
    })
}

/// The streams of a recording directory `ReadDirectory` reads, in name
/// order (raw streams only with `include_raw`); their headers must agree
/// on `created`.
pub fn directory_streams(dir: &Path, options: &ReadOptions) -> Result<Vec<MclStream>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, &e))?;
    // Key: the stream's name (split prefix or file name); BTreeMap keeps name order.
    let mut sets: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".log") || !entry.path().is_file() {
            continue;
        }
        match split_part(name) {
            Some((prefix, n)) => sets
                .entry(prefix.to_string())
                .or_default()
                .push((n, entry.path())),
            None => sets
                .entry(name.trim_end_matches(".log").to_string())
                .or_default()
                .push((0, entry.path())),
        }
    }
    if sets.is_empty() {
        return Err(Error::Layout {
            path: dir.to_path_buf(),
            reason: "no MCL log files (*.log) in this directory".into(),
        });
    }
    let mut streams = Vec::new();
    let mut created: Option<(String, PathBuf)> = None;
    for (_, mut parts) in sets {
        parts.sort();
        let parts: Vec<PathBuf> = parts.into_iter().map(|(_, p)| p).collect();
        let stream = MclStream::open(&parts, options.on_error)?;
        let Some(header) = stream.header() else {
            return Err(Error::Layout {
                path: parts[0].clone(),
                reason: "has no MCL header; every log in a directory needs one".into(),
            });
        };
        let this_created = header.created.clone().unwrap_or_default();
        match &created {
            None => created = Some((this_created, parts[0].clone())),
            Some((first, first_path)) if *first != this_created => {
                return Err(Error::Layout {
                    path: parts[0].clone(),
                    reason: format!(
                        "created '{}' differs from '{}' in {}: the files are not one recording",
                        this_created,
                        first,
                        first_path.display()
                    ),
                });
            }
            _ => {}
        }
        if header.raw && !options.include_raw {
            continue;
        }
        streams.push(stream);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parses_exactly() {
        assert_eq!(parse_time_ns(b"0.01000"), Some(10_000_000));
        assert_eq!(parse_time_ns(b"10.00000"), Some(10_000_000_000));
        assert_eq!(parse_time_ns(b"1"), Some(1_000_000_000));
        assert_eq!(parse_time_ns(b"-0.5"), Some(-500_000_000));
        assert_eq!(parse_time_ns(b"0.0000000015"), Some(2));
        assert_eq!(parse_time_ns(b"1e-3"), Some(1_000_000));
        assert_eq!(parse_time_ns(b"abc"), None);
        assert_eq!(parse_time_ns(b""), None);
        assert_eq!(parse_time_ns(b"."), None);
        assert_eq!(parse_time_ns(b"nan"), None);
        assert_eq!(parse_time_ns(b"inf"), None);
        // One range with the writer: ±9e9 s, whatever the notation.
        assert_eq!(
            parse_time_ns(b"9000000000.0"),
            Some(9_000_000_000_000_000_000)
        );
        assert_eq!(parse_time_ns(b"-9e9"), Some(-9_000_000_000_000_000_000));
        assert_eq!(parse_time_ns(b"9000000000.00001"), None);
        assert_eq!(parse_time_ns(b"9223372035.9"), None);
        assert_eq!(parse_time_ns(b"-9000000000.1"), None);
        assert_eq!(parse_time_ns(b"1e300"), None);
    }

    #[test]
    fn hex_decodes_and_reports_bad_digits() {
        let mut out = Vec::new();
        decode_hex(b"00ffA0", &mut out).unwrap();
        assert_eq!(out, vec![0, 255, 160]);
        assert!(decode_hex(b"abc", &mut Vec::new())
            .unwrap_err()
            .contains("odd length"));
        let err = decode_hex(b"00zz", &mut Vec::new()).unwrap_err();
        assert!(err.contains("'z'") && err.contains("column 3"), "{err}");
    }

    #[test]
    fn fast_hex_path_matches_the_scalar_decoder() {
        // Every length around the 16- and 32-digit blocks, mixed case.
        let bytes: Vec<u8> = (0..80u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=bytes.len() {
            let lower: String = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
            let mixed: String = lower
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 3 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for hex in [lower, mixed] {
                let mut out = vec![0xee]; // appends after what is there
                decode_hex(hex.as_bytes(), &mut out).unwrap();
                assert_eq!(out[0], 0xee);
                assert_eq!(&out[1..], &bytes[..n], "{hex}");
            }
        }
        // Every byte value at every position of inputs that take the fast
        // path: rejected exactly when not hex, with the scalar's message.
        for n in [16usize, 18, 32, 46, 64, 66] {
            let good: Vec<u8> = (0..n).map(|i| b"0123456789abcdefABCDEF"[i % 22]).collect();
            for at in 0..n {
                for b in 0..=255u8 {
                    let mut hex = good.clone();
                    hex[at] = b;
                    let mut fast = Vec::new();
                    let got = decode_hex(&hex, &mut fast);
                    let mut slow = Vec::new();
                    let want = decode_hex_scalar(&hex, &mut slow);
                    assert_eq!(got, want, "n {n} at {at} byte {b:#x}");
                    if got.is_ok() {
                        assert_eq!(fast, slow, "n {n} at {at} byte {b:#x}");
                    } else {
                        assert!(
                            want.unwrap_err().contains(&format!("column {}", at + 1)),
                            "n {n} at {at} byte {b:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn plain_time_path_matches_the_general_parser() {
        // (text, whether it takes the plain path)
        let cases: &[(&str, bool)] = &[
            ("0.00000", true),
            ("0.01000", true),
            ("12.5", true),
            ("007.250", true),
            ("1.000000001", true),
            ("123456789.123456789", true),
            ("5.", false),
            (".5", false),
            ("1234567890.5", false),
            ("1.0000000015", false),
            ("0.1e3", false),
            ("-0.5", false),
            ("+1.5", false),
            ("1.2.3", false),
            ("1.2x", false),
            ("0x1.0", false),
            ("abc", false),
            ("", false),
        ];
        for &(text, plain) in cases {
            for sep in ["", " ", "\t", "    ''  80"] {
                let line = format!("{text}{sep}");
                let end = line
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(line.len());
                let general = parse_time_ns(&line.as_bytes()[..end]);
                match parse_plain_time(line.as_bytes()) {
                    Some((ns, used)) => {
                        assert!(plain, "{line:?} is not plain");
                        assert_eq!(Some(ns), general, "{line:?}");
                        assert_eq!(used, end, "{line:?}");
                    }
                    None => assert!(!plain, "{line:?} should take the plain path"),
                }
            }
        }
    }

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

    #[test]
    fn topics_follow_python_repr() {
        assert_eq!(parse_topic(b"'' 83").unwrap(), (String::new(), 2));
        assert_eq!(parse_topic(b"'abc'").unwrap(), ("abc".into(), 5));
        assert_eq!(parse_topic(br#""it's""#).unwrap(), ("it's".into(), 6));
        assert_eq!(parse_topic(br"'a\'b\\c'").unwrap().0, r"a'b\c");
        assert_eq!(parse_topic(br"'\xe9'").unwrap().0, "é");
        assert_eq!(parse_topic(b"u'x'").unwrap(), ("x".into(), 4));
        assert!(parse_topic(b"'open").is_err());
        assert!(parse_topic(b"bare").is_err());
    }

    #[test]
    fn header_fields_are_parsed() {
        let text = b"#---\n# MCL_LOG\n#     -- version     1.0\n#     -- revision\n#     -- created     1970-01-01 00:00:00\n#\n#      >>> UnitTestMessageA\n#---\n     0.00000    ''          80\n";
        let (header, start, lines) = parse_header(text);
        let header = header.unwrap();
        assert_eq!(header.version.as_deref(), Some("1.0"));
        assert_eq!(header.revision.as_deref(), Some(""));
        assert_eq!(header.created.as_deref(), Some("1970-01-01 00:00:00"));
        assert_eq!(header.message_type.as_deref(), Some("UnitTestMessageA"));
        assert!(!header.raw);
        assert_eq!(lines, 8);
        assert!(text[start..].starts_with(b"     0.00000"));
        assert_eq!(parse_header(b"0.1 '' 80\n"), (None, 0, 0));
        let (raw, _, _) = parse_header(b"#  >>> None\n");
        assert!(raw.unwrap().raw);
    }

    #[test]
    fn split_names() {
        assert_eq!(split_part("Cam_000.log"), Some(("Cam", 0)));
        assert_eq!(split_part("A_b_012.log"), Some(("A_b", 12)));
        assert_eq!(split_part("Cam_01.log"), None);
        assert_eq!(split_part("Cam.log"), None);
        assert_eq!(split_part("Cam_000.tmp"), None);
    }
}
