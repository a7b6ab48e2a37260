//! MCL text logs from arbitrary bytes: the reader (file, split set,
//! directory) and the line parsers must never panic, and must agree with
//! simple reference versions where those are easy to state.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netreplay_core::format::mcl::{self, ReadOptions};
use netreplay_core::format::{detect, OnError, RecordSource};
use netreplay_core::{Error, Record};

/// One scratch directory per process (the pid keeps parallel runs apart).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("netreplay-fuzz-{}", std::process::id()));
        for sub in ["", "two", "split"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create scratch dir");
        }
        dir
    })
}

const HEADER_A: &[u8] = b"#---\n# MCL_LOG\n#     -- version     1.0\n#     -- created     1970-01-01 00:00:00\n#      >>> A\n#---\n";
const HEADER_B: &[u8] =
    b"#---\n# MCL_LOG\n#     -- created     1970-01-01 00:00:00\n#      >>> B\n#---\n";
const HEADER_RAW: &[u8] =
    b"#---\n# MCL_LOG\n#     -- created     1970-01-01 00:00:00\n#      >>> None\n#---\n";

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lines in `data`, counting a last line without `\n`.
fn line_count(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count() + usize::from(!data.ends_with(b"\n"))
}

struct Run {
    records: Vec<Record>,
    errors: u64,
    skipped: u64,
}

/// Read everything, going on after errors (the reader resumes after a bad
/// line). `calls` bounds the loop: each record and each error uses up a line.
fn read_all(reader: &mut dyn RecordSource, calls: usize, files: &[(&Path, usize)]) -> Run {
    let mut run = Run {
        records: Vec::new(),
        errors: 0,
        skipped: 0,
    };
    for _ in 0..calls {
        match reader.next_record() {
            Ok(Some(record)) => run.records.push(record),
            Ok(None) => {
                assert!(!reader.is_data_pending(), "pending after the end");
                // The end is sticky.
                assert!(matches!(reader.next_record(), Ok(None)));
                run.skipped = reader.skipped();
                return run;
            }
            Err(Error::Malformed {
                path,
                line,
                byte_offset,
                snippet,
                ..
            }) => {
                let (_, len) = files
                    .iter()
                    .find(|(p, _)| *p == path)
                    .unwrap_or_else(|| panic!("error names an unknown file {path:?}"));
                assert!(line >= 1, "line {line}");
                assert!(
                    (byte_offset as usize) < *len,
                    "offset {byte_offset} of {len}"
                );
                assert!(snippet.chars().count() <= 81, "snippet {snippet:?}");
                run.errors += 1;
            }
            Err(other) => panic!("unexpected error on a stable file: {other}"),
        }
    }
    panic!("no end after {calls} calls");
}

/// `open` twice (fail and skip): the records read past every error under
/// `Fail` are exactly the records of `Skip`, and the errors are the skips.
fn check_both_policies(
    open: impl Fn(OnError) -> netreplay_core::Result<netreplay_core::engine::LogReader>,
    calls: usize,
    files: &[(&Path, usize)],
    streams: usize,
    rewind: bool,
) {
    let fail = match open(OnError::Fail) {
        Ok(mut reader) => {
            assert!(reader.streams().len() <= streams);
            read_all(&mut reader, calls, files)
        }
        Err(Error::Malformed { .. } | Error::Layout { .. }) => {
            // The layout does not depend on the policy.
            assert!(open(OnError::Skip).is_err());
            return;
        }
        Err(other) => panic!("unexpected open error: {other}"),
    };
    let mut reader = open(OnError::Skip).expect("opened under Fail, so under Skip");
    let skip = read_all(&mut reader, calls, files);
    assert_eq!(skip.errors, 0, "errors under Skip");
    assert_eq!(fail.skipped, 0, "skips under Fail");
    assert_eq!(fail.errors, skip.skipped, "errors under Fail vs skips");
    assert!(
        fail.records == skip.records,
        "records differ between policies"
    );
    for r in &skip.records {
        assert!((r.stream as usize) < reader.streams().len());
    }
    if rewind {
        reader.reset().expect("reset");
        let again = read_all(&mut reader, calls, files);
        assert!(again.records == skip.records, "records differ after reset");
        // The skip count may or may not start again at a rewind.
        assert!(
            again.skipped == skip.skipped || again.skipped == 2 * skip.skipped,
            "skips after reset: {} then {}",
            skip.skipped,
            again.skipped
        );
    }
}

fn reference_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// `parse_time_ns` on `[+-]digits[.digits]`: exact, tenth decimal rounded
/// half up, further ones ignored; `None` outside the one range of log
/// times, ±9e9 s (`record::MAX_TIME_NS`), which the writer keeps to too.
fn reference_time(text: &[u8]) -> Option<Option<i64>> {
    let (negative, body) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, frac) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[..0]),
    };
    if !whole.iter().chain(frac).all(u8::is_ascii_digit) {
        return None; // not the simple form
    }
    if whole.is_empty() && frac.is_empty() {
        return Some(None);
    }
    let mut w: i128 = 0;
    for &d in whole {
        w = w * 10 + i128::from(d - b'0');
        if w > i128::from(i64::MAX / 1_000_000_000 - 1) {
            return Some(None);
        }
    }
    let mut f: i128 = 0;
    for k in 0..9 {
        f = f * 10 + frac.get(k).map_or(0, |d| i128::from(d - b'0'));
    }
    if frac.get(9).is_some_and(|&d| d >= b'5') {
        f += 1;
    }
    let ns = w * 1_000_000_000 + f;
    let ns = if negative { -ns } else { ns };
    if ns.abs() > i128::from(netreplay_core::MAX_TIME_NS) {
        return Some(None);
    }
    Some(Some(i64::try_from(ns).expect("fits")))
}

fn check_parsers(data: &[u8]) {
    // Header.
    let (header, start, lines) = mcl::parse_header(data);
    assert!(start <= data.len());
    match header {
        None => {
            assert_eq!((start, lines), (0, 0));
            assert!(data.first() != Some(&b'#'));
        }
        Some(h) => {
            assert!(lines >= 1);
            assert_eq!(lines as usize, line_count(&data[..start]));
            assert!(data[..start]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .all(|l| l[0] == b'#'));
            assert!(data.get(start) != Some(&b'#'));
            if let Some(t) = &h.message_type {
                assert!(!t.is_empty() && t != "None");
            }
        }
    }

    // Whole input, then the columns of the first lines.
    check_columns(data);
    for line in data.split(|&b| b == b'\n').take(8) {
        let mut cols = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|c| !c.is_empty());
        for col in cols.by_ref().take(3) {
            check_columns(col);
        }
        // The topic and after, as the reader sees them.
        if let Some(at) = line.iter().position(|&b| b == b'\'' || b == b'"') {
            check_columns(&line[at..]);
        }
    }
}

fn check_columns(text: &[u8]) {
    let got = mcl::parse_time_ns(text);
    if let Some(want) = reference_time(text) {
        assert_eq!(got, want, "time {:?}", String::from_utf8_lossy(text));
    } else if let Some(ns) = got {
        assert!(ns.unsigned_abs() <= 9_000_000_000_000_000_000, "time {ns}");
    }

    if let Ok((topic, used)) = mcl::parse_topic(text) {
        assert!((2..=text.len()).contains(&used), "used {used}");
        assert!(matches!(text[used - 1], b'\'' | b'"'));
        let quote = text[used - 1];
        let open = usize::from(matches!(text[0], b'u' | b'b'));
        assert_eq!(text[open], quote);
        if !text[..used].contains(&b'\\') {
            assert_eq!(topic.as_bytes(), &text[open + 1..used - 1]);
        }
    } else if let Some(&q @ (b'\'' | b'"')) = text.first() {
        // Without escapes, only a missing quote or bad UTF-8 fails.
        if let Some(end) = text[1..].iter().position(|&b| b == q) {
            let body = &text[1..1 + end];
            assert!(body.contains(&b'\\') || std::str::from_utf8(body).is_err());
        }
    }

    // Hex at both parities of the start, appended after existing bytes.
    for skip in 0..2.min(text.len() + 1) {
        let hex = &text[skip..];
        let mut out = vec![0x5a];
        let got = mcl::decode_hex(hex, &mut out);
        match reference_hex(hex) {
            Some(bytes) => {
                assert!(got.is_ok(), "valid hex rejected: {got:?}");
                assert_eq!(out[0], 0x5a);
                assert_eq!(&out[1..], &bytes[..]);
            }
            None => {
                assert!(got.is_err(), "invalid hex accepted");
            }
        }
    }
}

/// The times of the lines the reader's seek looks at, as it sees them: not
/// blank, not a comment, and a first column `parse_time_ns` takes.
fn line_times(data: &[u8]) -> Vec<i64> {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
            let end = line
                .iter()
                .rposition(|b| !blank(b) && *b != b'\r')
                .map_or(0, |i| i + 1);
            let content = line
                .get(start..end)
                .filter(|c| !c.is_empty() && c[0] != b'#')?;
            let token = content.split(u8::is_ascii_whitespace).next()?;
            mcl::parse_time_ns(token)
        })
        .collect()
}

/// On a file whose timed lines are in time order: `time_range` gives the
/// first and last of them, and a seek to a time picked by `hash` then a
/// read to the end gives the records of a full read from that time on.
fn check_seek(path: &Path, data: &[u8], hash: u64, calls: usize) {
    let timed = line_times(data);
    if !timed.is_sorted() {
        return; // seeks assume time-ordered logs
    }
    let options = ReadOptions {
        on_error: OnError::Skip,
        ..ReadOptions::default()
    };
    let mut reader = netreplay_core::engine::open_file(path, &options).expect("opened before");
    let range = reader.time_range().expect("time_range");
    assert_eq!(
        range,
        timed.first().zip(timed.last()).map(|(f, l)| (*f, *l))
    );
    let full = read_all(&mut reader, calls, &[(path, data.len())]).records;
    let t = match (hash >> 16) % 8 {
        0 => i64::MIN,
        1 => i64::MAX,
        _ if timed.is_empty() => (hash >> 24) as i64,
        k => timed[(hash >> 24) as usize % timed.len()] + (k as i64 % 3 - 1),
    };
    reader.seek(t).expect("seek");
    let after = read_all(&mut reader, calls, &[(path, data.len())]).records;
    let want: Vec<&Record> = full.iter().filter(|r| r.time_ns >= t).collect();
    assert!(
        after.iter().eq(want.iter().copied()),
        "seek to {t}: {} records, want {}",
        after.len(),
        want.len()
    );
}

fuzz_target!(|data: &[u8]| {
    check_parsers(data);
    // A file opens by its content: one that starts with an MCAP or capture
    // magic is read as that format (not this target's model), not as MCL.
    if detect::detect_bytes(data) != detect::Format::Mcl {
        return;
    }

    let dir = scratch();
    let calls = 2 * line_count(data) + 4;
    let hash = fnv(data);

    // One file.
    let path = dir.join("one.log");
    std::fs::write(&path, data).expect("write");
    let files = [(path.as_path(), data.len())];
    check_both_policies(
        |on_error| {
            netreplay_core::engine::open_file(
                &path,
                &ReadOptions {
                    on_error,
                    ..ReadOptions::default()
                },
            )
        },
        calls,
        &files,
        1,
        true,
    );
    check_seek(&path, data, hash, calls);

    // A quarter of the inputs: split at a line end into two files with headers.
    if !hash.is_multiple_of(4) || data.is_empty() {
        return;
    }
    let cut = (hash >> 8) as usize % data.len();
    let cut = data[cut..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| cut + i + 1);
    let (first, second) = data.split_at(cut);
    let calls = calls + 8;
    if hash & 0x10 == 0 {
        // Two streams of one recording, merged.
        let a = dir.join("two/A.log");
        let b = dir.join("two/B.log");
        let head_b = if hash & 0x20 == 0 {
            HEADER_B
        } else {
            HEADER_RAW
        };
        let text_a = [HEADER_A, first].concat();
        let text_b = [head_b, second].concat();
        std::fs::write(&a, &text_a).expect("write");
        std::fs::write(&b, &text_b).expect("write");
        let files = [(a.as_path(), text_a.len()), (b.as_path(), text_b.len())];
        let include_raw = hash & 0x40 != 0;
        check_both_policies(
            |on_error| {
                netreplay_core::engine::open_directory(
                    &dir.join("two"),
                    &ReadOptions {
                        on_error,
                        include_raw,
                        ..ReadOptions::default()
                    },
                )
            },
            calls,
            &files,
            2,
            false,
        );
    } else {
        // A split set: only the first part has a header.
        let p0 = dir.join("split/S_000.log");
        let p1 = dir.join("split/S_001.log");
        let text0 = [HEADER_A, first].concat();
        std::fs::write(&p0, &text0).expect("write");
        std::fs::write(&p1, second).expect("write");
        let files = [(p0.as_path(), text0.len()), (p1.as_path(), second.len())];
        let prefix = dir.join("split/S");
        check_both_policies(
            |on_error| {
                netreplay_core::engine::open_file(
                    &prefix,
                    &ReadOptions {
                        on_error,
                        ..ReadOptions::default()
                    },
                )
            },
            calls,
            &files,
            1,
            false,
        );
    }
});
