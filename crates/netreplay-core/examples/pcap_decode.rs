//! pcap decode throughput through the reader trait (`open_pcap`, the
//! reader a replay uses): file bytes per second, UDP payloads copied out.
//!
//! ```text
//! cargo run --release --example pcap_decode -p netreplay-core -- /tmp/decode-bench.pcap [packets] [payload bytes]
//! ```
//!
//! Writes the capture at the given path if it does not exist (default 2 M
//! Ethernet/IPv4/UDP packets with 1000-byte payloads, 1 ms apart, to four
//! destinations), reads it once to bring it into the page cache (and times
//! that open, which scans the file once to index it), then times five full
//! reads and prints the best, the median and the range.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use netreplay_core::engine::open_pcap;
use netreplay_core::format::pcap::PcapOptions;
use netreplay_core::format::RecordSource;

const RUNS: usize = 5;

fn write_capture(path: &Path, packets: u64, payload: usize) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    out.write_all(&262_144u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let mut frame = vec![0u8; 14 + 20 + 8 + payload];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (20 + 8 + payload) as u16;
    frame[14..34].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
    frame[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for k in 0..packets {
        let t_us = 1_700_000_000_000_000 + k * 1000;
        frame[34..36].copy_from_slice(&40000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&(26000 + (k % 4) as u16).to_be_bytes());
        frame[42] = k as u8;
        out.write_all(&((t_us / 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&((t_us % 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
    }
    out.flush()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/tmp/decode-bench.pcap".into());
    let packets: u64 = args
        .next()
        .map_or(2_000_000, |s| s.parse().expect("packets"));
    let payload: usize = args
        .next()
        .map_or(1000, |s| s.parse().expect("payload bytes"));
    let path = Path::new(&path);
    if !path.exists() {
        write_capture(path, packets, payload).expect("write the capture");
    }
    let bytes = std::fs::metadata(path).expect("stat").len() as f64;
    let opened = Instant::now();
    let mut reader = open_pcap(path, &PcapOptions::default()).expect("open");
    let open_s = opened.elapsed().as_secs_f64();
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        reader.reset().expect("reset");
        let started = Instant::now();
        let (mut n, mut payload_bytes) = (0u64, 0u64);
        while let Some(r) = reader.next_record().expect("read") {
            n += 1;
            payload_bytes += r.payload.len() as u64;
        }
        let s = started.elapsed().as_secs_f64();
        assert!(n > 0 && payload_bytes > 0);
        rates.push(bytes / s / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{}: {:.0} MB, open (index scan) {:.3} s = {:.2} GB/s; read: best {:.2} GB/s, median {:.2} GB/s, range {:.2}–{:.2} GB/s ({RUNS} reads)",
        path.display(),
        bytes / 1e6,
        open_s,
        bytes / open_s / 1e9,
        rates[RUNS - 1],
        rates[RUNS / 2],
        rates[0],
        rates[RUNS - 1],
    );
}
