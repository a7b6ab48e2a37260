//! Reading a large log keeps the process's resident memory small: the reader
//! releases the mapped pages it has read. A test binary of its own, with a
//! single test, so that no other test thread moves the RSS figures.
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use common::TempDir;
use netreplay_core::engine::open_file;
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;

const MB: u64 = 1 << 20;
/// Size of the generated log.
const LOG_BYTES: u64 = 256 * MB;
/// Allowed growth of the peak RSS while reading it all.
const MAX_GROWTH: u64 = 64 * MB;
const PAYLOAD_BYTES: usize = 500;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kb * 1024
}

/// Write a log of at least `bytes` bytes; the number of records. The lines
/// differ only in their times, so the payload's hex is made once.
fn write_log(path: &Path, bytes: u64) -> u64 {
    // A msgpack bin 16 holding the rest of the bytes.
    let body = (PAYLOAD_BYTES - 3) as u16;
    let hex: String = [0xc5]
        .into_iter()
        .chain(body.to_be_bytes())
        .chain((3..PAYLOAD_BYTES).map(|i| (i * 7) as u8))
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let header = "#---\n# MCL_LOG\n#     -- created     1970-01-01 00:00:00\n#      >>> Big\n";
    w.write_all(header.as_bytes()).unwrap();
    let mut written = header.len() as u64;
    let mut records = 0u64;
    while written < bytes {
        let line = format!("{:>12.5}    'rss'       {hex}\n", records as f64 / 1e3);
        w.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        records += 1;
    }
    w.flush().unwrap();
    records
}

#[test]
fn reading_a_large_log_keeps_rss_bounded() {
    let dir = TempDir::new("rss");
    let path = dir.join("big.log");
    let expected = write_log(&path, LOG_BYTES);
    let size = std::fs::metadata(&path).unwrap().len();

    // Reset the peak to the current RSS (Linux >= 4.0), so that VmHWM only
    // reflects what follows; without it the peak so far is the baseline.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let hwm_before = status_bytes("VmHWM");
    let file_before = status_bytes("RssFile");

    let mut reader = open_file(&path, &ReadOptions::default()).unwrap();
    let mut first = Vec::new();
    let mut count = 0u64;
    let mut file_peak = file_before;
    while let Some(record) = reader.next_record().unwrap() {
        assert_eq!(record.payload.len(), PAYLOAD_BYTES);
        if first.len() < 3 {
            first.push(record);
        }
        count += 1;
        if count % 4096 == 0 {
            file_peak = file_peak.max(status_bytes("RssFile"));
        }
    }
    let hwm_after = status_bytes("VmHWM");
    let file_after = status_bytes("RssFile");
    let hwm_growth = hwm_after.saturating_sub(hwm_before);
    let file_growth = file_peak.saturating_sub(file_before);
    eprintln!(
        "log {} MB, {count} records: VmHWM {} -> {} MB (+{} MB), RssFile {} -> peak {} -> {} MB",
        size / MB,
        hwm_before / MB,
        hwm_after / MB,
        hwm_growth / MB,
        file_before / MB,
        file_peak / MB,
        file_after / MB,
    );
    assert_eq!(count, expected, "every record was read");
    assert!(
        hwm_growth < MAX_GROWTH,
        "peak RSS grew by {} MB reading a {} MB log",
        hwm_growth / MB,
        size / MB
    );
    assert!(
        file_growth < MAX_GROWTH,
        "file-backed RSS grew by {} MB reading a {} MB log",
        file_growth / MB,
        size / MB
    );

    // Rewinding reads the released pages again from the file.
    reader.reset().unwrap();
    for want in &first {
        assert_eq!(reader.next_record().unwrap().as_ref(), Some(want));
    }

    // Seeks back and forth, reading on a while after each: the pages read
    // ahead of a position left behind are dropped too, so the file-backed
    // RSS stays about one read window however many seeks.
    let seeks_before = status_bytes("RssFile");
    let mut seeks_peak = seeks_before;
    let span_ns = (count as i64) * 1_000_000;
    for k in 0..40i64 {
        // Alternately far back and far ahead.
        let t = if k % 2 == 0 {
            span_ns / 8 + k * 1_000_000_000
        } else {
            span_ns - span_ns / 4 - k * 1_000_000_000
        };
        reader.seek(t).unwrap();
        for _ in 0..20_000 {
            if reader.next_record().unwrap().is_none() {
                break;
            }
        }
        seeks_peak = seeks_peak.max(status_bytes("RssFile"));
    }
    let seek_growth = seeks_peak.saturating_sub(seeks_before);
    eprintln!(
        "40 seeks, 20,000 records read after each: RssFile {} -> peak {} MB",
        seeks_before / MB,
        seeks_peak / MB
    );
    assert!(
        seek_growth < 32 * MB,
        "file-backed RSS grew by {} MB over 40 seeks",
        seek_growth / MB
    );
}
