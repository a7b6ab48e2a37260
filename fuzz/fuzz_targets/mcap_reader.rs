//! MCAP files from arbitrary bytes, and files written by `McapWriter` (with
//! input-chosen messages, chunking and compression) then damaged by
//! input-chosen edits, so that the input gets past the magic, the chunk
//! CRCs and the summary. The reader must never panic, must end, must give
//! records in time order, seek and rewind consistently, and give back an
//! undamaged file's messages exactly.
//!
//! Input: byte 0 picks the mode (bit 0: written, else raw). Raw: the rest
//! is the file. Written: the rest describes the file (see `written`).
//!
//! With `NETREPLAY_FUZZ_SEEDS=<dir>` in the environment, the first run
//! writes seed inputs there (raw copies of written files, and written-mode
//! descriptions): `fuzz/run.sh` seeds the corpus so.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netreplay_core::engine::{open_mcap, LogReader};
use netreplay_core::format::mcap::{Compression, McapOptions, McapWriteOptions, McapWriter};
use netreplay_core::format::{OnError, RecordSource};
use netreplay_core::{Error, Record, MAX_TIME_NS};

/// One scratch directory per process (the pid keeps parallel runs apart).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("netreplay-fuzz-mcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

/// The input, read front to back; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, k| v | u64::from(self.u8()) << (8 * k))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const TOPICS: [&str; 4] = ["a", "b/c", "", "/a/rather/longer/topic/name"];
const TYPES: [Option<&str>; 4] = [None, Some("T"), Some("pkg/U"), None];
const CHUNK_SIZES: [u64; 5] = [1, 40, 200, 4096, 1 << 20];

/// A message written: (log time, channel key, topic, payload).
struct Written {
    log_time: u64,
    /// Index of (type, topic) in order of first use: the writer numbers its
    /// channels in that order, and equal log times go by channel.
    channel: usize,
    kind: Option<&'static str>,
    topic: &'static str,
    payload: Vec<u8>,
}

/// Write the file `bytes` describes: compression, chunk size, a base time,
/// then up to 48 messages (topic, type, time step, flush, payload).
fn written(path: &Path, bytes: &mut Bytes) -> Vec<Written> {
    let head = bytes.u8();
    let compression = [Compression::None, Compression::Lz4, Compression::Zstd][head as usize % 3];
    let chunk_size = CHUNK_SIZES[(head as usize >> 2) % CHUNK_SIZES.len()];
    let base = if head & 0x40 != 0 {
        bytes.u64()
    } else {
        u64::from(bytes.u16()) * 1_000_000
    };
    let count = bytes.u8() % 49;
    let _ = std::fs::remove_file(path);
    let mut writer = McapWriter::create(
        path,
        &McapWriteOptions {
            compression,
            chunk_size,
        },
    )
    .expect("create");
    let mut keys: Vec<(Option<&'static str>, &'static str)> = Vec::new();
    let mut out = Vec::new();
    let mut time = base;
    for _ in 0..count {
        let sel = bytes.u8();
        let key = (TYPES[(sel >> 2) as usize & 3], TOPICS[sel as usize & 3]);
        let channel = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        time = match (sel >> 4) & 3 {
            0 => time,
            1 => time.saturating_add(u64::from(bytes.u8())),
            2 if sel & 0x80 != 0 => time.saturating_sub(u64::from(bytes.u16()) * 1000),
            2 => time.saturating_add(u64::from(bytes.u16()) * 1000),
            _ => base.wrapping_add(bytes.u64()),
        };
        let len = bytes.u8() as usize % 80;
        let payload = bytes.take(len).to_vec();
        writer
            .write(key.0, key.1, "msgpack", time, &payload)
            .expect("write");
        if sel & 0x40 != 0 && sel & 0x80 != 0 {
            writer.flush().expect("flush");
        }
        out.push(Written {
            log_time: time,
            channel,
            kind: key.0,
            topic: key.1,
            payload,
        });
    }
    writer.close().expect("close");
    out
}

/// Byte edits to `file`: overwrite, xor, truncate, insert, a u64 written in.
fn damage(file: &mut Vec<u8>, bytes: &mut Bytes) {
    for _ in 0..8 {
        if bytes.is_empty() {
            return;
        }
        let op = bytes.u8();
        let at = if file.is_empty() {
            0
        } else {
            bytes.u16() as usize % file.len()
        };
        match op % 5 {
            0 if !file.is_empty() => file[at] = bytes.u8(),
            1 if !file.is_empty() => file[at] ^= 1 << (bytes.u8() % 8),
            2 => file.truncate(at),
            3 => {
                let n = bytes.u8() as usize % 16;
                let ins = bytes.take(n).to_vec();
                file.splice(at..at, ins);
            }
            4 => {
                let v = bytes.u64().to_le_bytes();
                let end = (at + 8).min(file.len());
                file[at..end].copy_from_slice(&v[..end - at]);
            }
            _ => {}
        }
    }
}

struct Pass {
    records: Vec<Record>,
    /// Records before the first error.
    clean: usize,
    errors: usize,
    skipped: u64,
}

/// Read to the end, going on after errors. Errors are bounded by the file
/// (at most one per record-sized stretch of it); records by the calls.
fn read_all(reader: &mut LogReader, len: usize, what: &str) -> Pass {
    let max_errors = len / 9 + 4;
    let mut pass = Pass {
        records: Vec::new(),
        clean: usize::MAX,
        errors: 0,
        skipped: 0,
    };
    let mut last = i64::MIN;
    for _ in 0..(1usize << 24) {
        match reader.next_record() {
            Ok(Some(r)) => {
                assert!(
                    r.time_ns >= last,
                    "{what}: time {} after {last} (record {})",
                    r.time_ns,
                    pass.records.len()
                );
                assert!((0..=MAX_TIME_NS).contains(&r.time_ns), "{what}: time {}", r.time_ns);
                assert!((r.stream as usize) < reader.streams().len(), "{what}: stream");
                last = r.time_ns;
                pass.records.push(r);
            }
            Ok(None) => {
                assert!(matches!(reader.next_record(), Ok(None)), "{what}: end not sticky");
                if pass.clean == usize::MAX {
                    pass.clean = pass.records.len();
                }
                pass.skipped = reader.skipped();
                return pass;
            }
            Err(Error::Malformed { .. }) => {
                if pass.clean == usize::MAX {
                    pass.clean = pass.records.len();
                }
                pass.errors += 1;
                assert!(
                    pass.errors <= max_errors,
                    "{what}: {} errors from {len} bytes, no end",
                    pass.errors
                );
            }
            Err(other) => panic!("{what}: unexpected error: {other}"),
        }
    }
    panic!("{what}: no end after 2^24 records");
}

fn open(path: &Path, on_error: OnError) -> netreplay_core::Result<LogReader> {
    open_mcap(
        &[path.to_path_buf()],
        &McapOptions {
            on_error,
            ..McapOptions::default()
        },
    )
}

fn key(r: &Record) -> (i64, &str, &[u8]) {
    (r.time_ns, &r.topic, &r.payload)
}

/// Seek to `t`: every record read after it has a time ≥ `t` (the first
/// one is where the seek put the reader, the rest follow in time order).
fn check_seek(reader: &mut LogReader, t: i64, len: usize, full: &[Record], exact: bool) {
    reader.seek(t).expect("seek");
    let after = read_all(reader, len, "after seek");
    if let Some(r) = after.records.first() {
        assert!(r.time_ns >= t, "seek to {t} gave {}", r.time_ns);
    }
    if exact {
        let want: Vec<_> = full.iter().filter(|r| r.time_ns >= t).map(key).collect();
        let got: Vec<_> = after.records.iter().map(key).collect();
        assert!(got == want, "seek to {t}: {} records, want {}", got.len(), want.len());
    }
}

/// The properties every file has, damaged or not; returns the records of
/// a read under `Skip`, when the file opens.
fn check_file(path: &Path, len: usize, seed: u64, exact: bool) -> Option<Vec<Record>> {
    let fail = match open(path, OnError::Fail) {
        Ok(mut reader) => Some(read_all(&mut reader, len, "fail")),
        Err(Error::Malformed { .. } | Error::Layout { .. }) => None,
        Err(other) => panic!("unexpected open error: {other}"),
    };
    let mut reader = match open(path, OnError::Skip) {
        Ok(reader) => reader,
        Err(Error::Malformed { .. } | Error::Layout { .. }) => {
            assert!(fail.is_none(), "opens under Fail, not under Skip");
            return None;
        }
        Err(other) => panic!("unexpected open error: {other}"),
    };
    let fail = fail.expect("opens under Skip, not under Fail");
    let skip = read_all(&mut reader, len, "skip");
    assert_eq!(fail.skipped, 0, "skips under Fail");
    // Up to the first error, Fail reads what Skip reads (the times: equal
    // times are grouped by channel, and an error ends a group).
    let fail_times: Vec<i64> = fail.records[..fail.clean].iter().map(|r| r.time_ns).collect();
    let skip_times: Vec<i64> = skip.records.iter().map(|r| r.time_ns).collect();
    assert!(
        skip_times.starts_with(&fail_times),
        "Fail read {} records before its first error, not a prefix of Skip's {}",
        fail.clean,
        skip.records.len()
    );
    if let Some((first, last)) = reader.time_range().expect("time_range") {
        assert!(first <= last, "time_range ({first}, {last})");
    }

    // A rewind reads the same again.
    reader.reset().expect("reset");
    let again = read_all(&mut reader, len, "after reset");
    assert!(
        again.records == skip.records,
        "after reset: {} records, first read {}",
        again.records.len(),
        skip.records.len()
    );

    // Seeks: to a record's time, next to it, to the extremes.
    let times = &skip_times;
    let picks = [
        i64::MIN,
        i64::MAX,
        0,
        -1,
        times.get(seed as usize % times.len().max(1)).copied().unwrap_or(1),
        times.get((seed >> 8) as usize % times.len().max(1)).map_or(2, |t| t + 1),
        times.last().map_or(3, |t| t - 1),
    ];
    for k in 0..3 {
        let t = picks[(seed >> (16 + 4 * k)) as usize % picks.len()];
        check_seek(&mut reader, t, len, &skip.records, exact);
    }
    Some(skip.records)
}

fn write_seeds(dir: &Path) {
    let mut k = 0;
    let mut put = |bytes: &[u8]| {
        std::fs::write(dir.join(format!("seed-{k}")), bytes).expect("write seed");
        k += 1;
    };
    let path = scratch().join("seed.mcap");
    // Written-mode descriptions: every compression, a few chunk sizes.
    for head in [0u8, 1, 2, 4, 5, 9, 14, 0x42] {
        let mut d = vec![1, head];
        if head & 0x40 != 0 {
            d.extend_from_slice(&[0xf0; 8]); // a base near the end of u64
        } else {
            d.extend_from_slice(&[0x10, 0x27]);
        }
        d.push(6); // messages
        for (sel, payload) in [
            (0x00u8, &b"\x81\xa1a\x01"[..]),
            (0x15, b"\x92\xc0\xc0"),
            (0x06, b""),
            (0x10, b"\xc4\x03abc"),
            (0xe1, b"\x90"),
            (0x0b, b"\xa5hello"),
        ] {
            d.push(sel);
            if (sel >> 4) & 3 == 1 {
                d.push(7);
            } else if (sel >> 4) & 3 == 2 {
                d.extend_from_slice(&[3, 0]);
            }
            d.push(payload.len() as u8);
            d.extend_from_slice(payload);
        }
        put(&d);
        // The same file as raw bytes.
        written(&path, &mut Bytes(&d[1..]));
        let mut raw = vec![0];
        raw.extend(std::fs::read(&path).expect("read"));
        put(&raw);
    }
    // An empty file, and one of one message.
    put(&[1, 2, 0, 0, 0]);
    put(&[1, 0, 0, 0, 1, 0, 1, 0x80]);
}

fuzz_target!(|data: &[u8]| {
    static SEEDS: OnceLock<()> = OnceLock::new();
    SEEDS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("NETREPLAY_FUZZ_SEEDS") {
            write_seeds(Path::new(&dir));
        }
    });
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let path = scratch().join("one.mcap");
    let seed = rest
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    if mode & 1 == 0 {
        std::fs::write(&path, rest).expect("write");
        check_file(&path, rest.len(), seed, false);
        return;
    }
    let mut bytes = Bytes(rest);
    let messages = written(&path, &mut bytes);
    let mut file = std::fs::read(&path).expect("read back");
    if !bytes.is_empty() {
        damage(&mut file, &mut bytes);
        std::fs::write(&path, &file).expect("write");
        check_file(&path, file.len(), seed, false);
        return;
    }

    // Undamaged: it opens (unless its times span more than a log can), and
    // reads back what was written, in log-time order, ties by channel.
    let span = messages
        .iter()
        .map(|m| m.log_time)
        .fold(None, |acc: Option<(u64, u64)>, t| {
            Some(acc.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
        });
    if span.is_some_and(|(a, b)| b - a > MAX_TIME_NS as u64) {
        match open(&path, OnError::Fail) {
            Err(Error::Layout { .. }) => return,
            Err(other) => panic!("a span too long: {other}"),
            Ok(_) => panic!("a span too long opened"),
        }
    }
    let records = check_file(&path, file.len(), seed, true).expect("a written file opens");
    let base = span.map_or(0, |s| s.0);
    let mut sorted: Vec<&Written> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.log_time, m.channel)); // stable: file order next
    let mut got: Vec<_> = records.iter().map(key).collect();
    let mut want: Vec<_> = sorted
        .iter()
        .map(|m| ((m.log_time - base) as i64, m.topic, &m.payload[..]))
        .collect();
    // Equal log times on one channel keep file order within a chunk only:
    // split across chunks they come in the order the mcap crate's indexed
    // reader loads them (README, "MCAP mapping"). Within such a run, compare
    // the payloads as a set.
    let order_within_ties = |v: &mut Vec<(i64, &str, &[u8])>| {
        v.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.cmp(b.2)));
    };
    if (0..got.len()).any(|i| got.get(i) != want.get(i)) {
        order_within_ties(&mut got);
        order_within_ties(&mut want);
    }
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "read back {} records, wrote {}; record {i}: read {:?}, want {:?} (channel {:?})",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i),
            sorted.get(i).map(|m| m.channel)
        );
    }
    let mut reader = open(&path, OnError::Fail).expect("opens");
    assert_eq!(
        reader.time_range().expect("time_range"),
        span.map(|(a, b)| (0, (b - a) as i64))
    );
    // One stream per channel, in channel id order (the order of first use),
    // of the channel's type; times count from the first message.
    for (r, m) in records.iter().zip(&sorted) {
        assert_eq!(r.stream as usize, m.channel, "stream of {:?}", m.topic);
        let info = &reader.streams()[r.stream as usize];
        assert_eq!(info.message_type.as_deref(), m.kind);
        assert_eq!(info.time_base_ns, base);
    }
});
