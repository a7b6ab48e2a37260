//! MCL text decode throughput, end to end through the public reader API.
//!
//! ```text
//! cargo run --release --example decode -p netreplay-core -- /tmp/decode-bench.log [records]
//! ```
//!
//! Generates the log at the given path if it does not exist (default 2 M
//! records of ~100-byte msgpack maps, hex-encoded, a handful of interleaved
//! topics, 1 ms apart, times written as MCL does), reads it once to bring it
//! into the page cache, then times five full reads and reports the best.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use netreplay_core::engine::open_file;
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;

const DEFAULT_RECORDS: u64 = 2_000_000;
const RUNS: usize = 5;
const TOPICS: [&str; 5] = ["vehicle/state", "cam/front", "imu", "gps/fix", ""];

fn put_str(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 32, "fixstr only");
    out.push(0xa0 | s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_be_bytes());
}

/// A typed MCL payload of ~100 bytes: a msgpack map with a few float, int
/// and string fields, as a vehicle-state message would have.
fn payload(k: u64, t: f64, out: &mut Vec<u8>) {
    out.clear();
    out.push(0x88); // fixmap, 8 entries
    put_str(out, "name");
    put_str(out, "VehicleState");
    put_str(out, "timestamp");
    put_f64(out, t);
    put_str(out, "x");
    put_f64(out, (k as f64 * 0.01).sin() * 100.0);
    put_str(out, "y");
    put_f64(out, (k as f64 * 0.01).cos() * 100.0);
    put_str(out, "heading");
    put_f64(out, (k % 3600) as f64 / 10.0);
    put_str(out, "speed");
    out.push(0xca);
    out.extend_from_slice(&((k % 300) as f32 / 10.0).to_be_bytes());
    put_str(out, "seq");
    out.push(0xce);
    out.extend_from_slice(&(k as u32).to_be_bytes());
    put_str(out, "status");
    put_str(out, if k % 97 == 0 { "DEGRADED" } else { "OK" });
}

fn generate(path: &Path, records: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    w.write_all(
        b"#-----------------------------------------------------------------\n\
          # MCL_LOG\n\
          #     -- version     1.0\n\
          #     -- revision\n\
          #     -- created     1970-01-01 00:00:00\n\
          #\n\
          #      >>> VehicleState\n\
          #\n\
          #     <Time>    <Topic>     <Payload>\n\
          #-----------------------------------------------------------------\n",
    )?;
    let mut bytes = Vec::new();
    let mut line = Vec::new();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for k in 0..records {
        let t = k as f64 / 1e3;
        payload(k, t, &mut bytes);
        // Topics interleave irregularly, as several publishers would.
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let topic = TOPICS[((rng >> 33) % TOPICS.len() as u64) as usize];
        line.clear();
        // MCL's layout: '%1.5f' right-justified to 12, the topic's repr
        // left-justified to 8, then the payload's hex.
        write!(line, "{t:>12.5}    {:<8}    ", format!("'{topic}'"))?;
        for b in &bytes {
            write!(line, "{b:02x}")?;
        }
        line.push(b'\n');
        w.write_all(&line)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// One full read: (records, payload bytes, topic bytes).
fn read_all(path: &Path) -> (u64, u64, u64) {
    let mut reader = open_file(path, &ReadOptions::default()).expect("open");
    let (mut n, mut payload, mut topic) = (0u64, 0u64, 0u64);
    while let Some(r) = reader.next_record().expect("decode") {
        n += 1;
        payload += r.payload.len() as u64;
        topic += r.topic.len() as u64;
        std::hint::black_box(&r);
    }
    (n, payload, topic)
}

/// Peak resident set size (`VmHWM`, Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/tmp/decode-bench.log".to_string());
    let records: u64 = args
        .next()
        .map(|s| s.parse().expect("records: a number"))
        .unwrap_or(DEFAULT_RECORDS);
    let path = Path::new(&path);
    if !path.exists() {
        eprintln!("generating {} ({records} records)...", path.display());
        generate(path, records).expect("generate the log");
    }
    let size = std::fs::metadata(path).expect("stat").len();

    // Warm-up: brings the file into the page cache.
    let (count, payload, _) = read_all(path);
    println!(
        "{}: {:.1} MB, {count} records, {:.1} payload bytes/record",
        path.display(),
        size as f64 / 1e6,
        payload as f64 / count as f64
    );

    let mut best = f64::INFINITY;
    for run in 1..=RUNS {
        let start = Instant::now();
        let got = read_all(path);
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(got.0, count, "every run reads every record");
        println!(
            "run {run}: {:.3} s  {:.0} MB/s  {:.2} M records/s",
            secs,
            size as f64 / 1e6 / secs,
            count as f64 / 1e6 / secs
        );
        best = best.min(secs);
    }
    println!(
        "best of {RUNS}: {:.0} MB/s ({:.3} GB/s), {:.2} M records/s",
        size as f64 / 1e6 / best,
        size as f64 / 1e9 / best,
        count as f64 / 1e6 / best
    );
    if let Some(peak) = peak_rss() {
        println!("peak RSS (VmHWM): {:.1} MB", peak as f64 / 1e6);
    }
}
