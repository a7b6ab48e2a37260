//! Entry points for `bench/`: the engine's own stages timed without a JS
//! call per record, so the micro-benchmarks measure the stage, not N-API.
// Only the N-API registration uses these, and it is not compiled for tests.
#![cfg_attr(test, allow(dead_code))]

use std::path::Path;
use std::sync::Arc;

use napi_derive::napi;
use netreplay_core::engine::{ring, Slot};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::RecordSource;
use netreplay_core::Record;

use crate::errors::{to_napi, Code};

#[napi(object)]
pub struct DecodeCount {
    pub records: f64,
    pub payload_bytes: f64,
}

/// Decode a whole MCL log (file, split set or directory) on this thread and
/// count what came out.
#[napi(catch_unwind)]
pub fn bench_decode_log(path: String) -> napi::Result<DecodeCount, Code> {
    let path = Path::new(&path);
    let options = ReadOptions::default();
    let mut reader = netreplay_core::engine::open_path(path, &options).map_err(to_napi)?;
    let (mut records, mut payload_bytes) = (0u64, 0u64);
    while let Some(record) = reader.next_record().map_err(to_napi)? {
        records += 1;
        payload_bytes += record.payload.len() as u64;
    }
    Ok(DecodeCount {
        records: records as f64,
        payload_bytes: payload_bytes as f64,
    })
}

/// Push `records` records with `payload_bytes`-byte payloads through the
/// engine's SPSC ring (1024 slots) from a producer thread to this one; the
/// nanoseconds it took. Building each record (one allocation when the
/// payload is not empty) is part of the producer's work, as in a replay.
#[napi(catch_unwind)]
pub fn bench_ring(records: u32, payload_bytes: u32) -> f64 {
    let (mut producer, mut consumer) = ring(1024, usize::MAX);
    let topic: Arc<str> = Arc::from("bench");
    let start = std::time::Instant::now();
    let thread = std::thread::spawn(move || {
        for i in 0..records {
            let mut slot = Slot::Record(Record {
                time_ns: i as i64,
                stream: 0,
                topic: topic.clone(),
                payload: vec![0u8; payload_bytes as usize],
            });
            while let Err(back) = producer.push(slot) {
                slot = back;
                std::hint::spin_loop();
            }
        }
    });
    let mut received = 0;
    while received < records {
        match consumer.pop() {
            Some(_) => received += 1,
            None => std::hint::spin_loop(),
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    let _ = thread.join();
    elapsed
}

/// A deterministic xorshift64* generator for the bench's data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// 1 MiB that compresses about as well as sensor data does: 8-byte words,
/// two in three drawn from a dictionary of 64 (repeats an LZ compressor
/// finds), the rest random.
fn payload_pool() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dictionary: Vec<u64> = (0..64).map(|_| rng.next()).collect();
    let mut pool = Vec::with_capacity(1 << 20);
    while pool.len() < 1 << 20 {
        let r = rng.next();
        let word = if r % 3 == 0 {
            rng.next()
        } else {
            dictionary[(r >> 8) as usize % dictionary.len()]
        };
        pool.extend_from_slice(&word.to_le_bytes());
    }
    pool
}

/// Fill `out` with record `i`'s bytes: its number, then a slice of `pool`.
fn fill_payload(out: &mut [u8], i: u64, pool: &[u8], rng: &mut Rng) {
    let at = (rng.next() as usize) % (pool.len() - out.len());
    out.copy_from_slice(&pool[at..at + out.len()]);
    let n = out.len().min(8);
    out[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

fn invalid(what: &str, message: String) -> napi::Error<Code> {
    napi::Error::new(Code::InvalidArgument, format!("{what}: {message}"))
}

/// Write a new MCAP file of `records` messages with `payload_bytes`-byte
/// payloads (each a msgpack bin, so `ReadFile` decodes it), round-robin over
/// `topics` topics, one every 100 µs, in 1 MiB chunks compressed with
/// `compression` ('none', 'lz4', 'zstd'); the file's size in bytes.
#[napi(catch_unwind)]
pub fn bench_write_mcap(
    path: String,
    compression: String,
    records: u32,
    payload_bytes: u32,
    topics: u32,
) -> napi::Result<f64, Code> {
    use netreplay_core::format::mcap::{Compression, McapWriteOptions, McapWriter};
    if !(4..=65_535 + 3).contains(&payload_bytes) {
        return Err(invalid(
            "payloadBytes",
            format!("must be 4..65538, got {payload_bytes}"),
        ));
    }
    let compression = Compression::parse(&compression).map_err(to_napi)?;
    let options = McapWriteOptions {
        compression,
        chunk_size: 1 << 20,
    };
    let mut writer = McapWriter::create(&path, &options).map_err(to_napi)?;
    let names: Vec<String> = (0..topics.max(1)).map(|k| format!("/bench/{k}")).collect();
    let pool = payload_pool();
    let mut rng = Rng(1);
    let mut payload = vec![0u8; payload_bytes as usize];
    let body = payload_bytes as usize - 3;
    payload[0] = 0xc5; // msgpack bin 16
    payload[1..3].copy_from_slice(&(body as u16).to_be_bytes());
    for i in 0..u64::from(records) {
        fill_payload(&mut payload[3..], i, &pool, &mut rng);
        let topic = &names[(i % names.len() as u64) as usize];
        let log_time = 1_700_000_000_000_000_000 + i * 100_000;
        writer
            .write(
                Some("Bench"),
                topic,
                netreplay_core::format::mcap::MSGPACK,
                log_time,
                &payload,
            )
            .map_err(to_napi)?;
    }
    writer.close().map_err(to_napi)?;
    let size = std::fs::metadata(&path)
        .map_err(|e| invalid("path", e.to_string()))?
        .len();
    Ok(size as f64)
}

/// Write a new capture ('pcap': classic, µs; 'pcapng': one Ethernet
/// interface, µs, enhanced packet blocks) of `records` Ethernet/IPv4/UDP
/// frames to 127.0.0.1:9 with `payload_bytes`-byte payloads, one every
/// 100 µs; the file's size in bytes.
#[napi(catch_unwind)]
pub fn bench_write_capture(
    path: String,
    format: String,
    records: u32,
    payload_bytes: u32,
) -> napi::Result<f64, Code> {
    use std::io::Write;
    let ng = match format.as_str() {
        "pcap" => false,
        "pcapng" => true,
        other => {
            return Err(invalid(
                "format",
                format!("must be 'pcap' or 'pcapng', got '{other}'"),
            ))
        }
    };
    if !(8..=1472).contains(&payload_bytes) {
        return Err(invalid(
            "payloadBytes",
            format!("must be 8..1472, got {payload_bytes}"),
        ));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| invalid("path", e.to_string()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| invalid("path", e.to_string());
    if ng {
        // Section header block (little-endian, version 1.0, length unknown).
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        // Interface description block: Ethernet, snaplen 65535, no options (µs).
        shb.extend_from_slice(&1u32.to_le_bytes());
        shb.extend_from_slice(&20u32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&65_535u32.to_le_bytes());
        shb.extend_from_slice(&20u32.to_le_bytes());
        out.write_all(&shb).map_err(io)?;
    } else {
        let mut header = Vec::new();
        header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        header.extend_from_slice(&65_535u32.to_le_bytes());
        header.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        out.write_all(&header).map_err(io)?;
    }
    let pool = payload_pool();
    let mut rng = Rng(2);
    let frame_len = 14 + 20 + 8 + payload_bytes as usize;
    let mut frame = vec![0u8; frame_len];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = 14;
    frame[ip] = 0x45;
    frame[ip + 2..ip + 4].copy_from_slice(&((frame_len - 14) as u16).to_be_bytes());
    frame[ip + 6..ip + 8].copy_from_slice(&0x4000u16.to_be_bytes());
    frame[ip + 8] = 64;
    frame[ip + 9] = 17;
    frame[ip + 12..ip + 16].copy_from_slice(&[127, 0, 0, 1]);
    frame[ip + 16..ip + 20].copy_from_slice(&[127, 0, 0, 1]);
    let udp = ip + 20;
    frame[udp..udp + 2].copy_from_slice(&40_000u16.to_be_bytes());
    frame[udp + 2..udp + 4].copy_from_slice(&9u16.to_be_bytes());
    frame[udp + 4..udp + 6].copy_from_slice(&((8 + payload_bytes) as u16).to_be_bytes());
    let padding = (4 - frame_len % 4) % 4;
    for i in 0..u64::from(records) {
        frame[ip + 4..ip + 6].copy_from_slice(&(i as u16).to_be_bytes());
        frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let checksum = ipv4_checksum(&frame[ip..ip + 20]);
        frame[ip + 10..ip + 12].copy_from_slice(&checksum.to_be_bytes());
        fill_payload(&mut frame[udp + 8..], i, &pool, &mut rng);
        let us = 1_700_000_000_000_000u64 + i * 100;
        let mut head = Vec::with_capacity(28);
        if ng {
            let total = (28 + frame_len + padding + 4) as u32;
            head.extend_from_slice(&6u32.to_le_bytes());
            head.extend_from_slice(&total.to_le_bytes());
            head.extend_from_slice(&0u32.to_le_bytes());
            head.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
            head.extend_from_slice(&(us as u32).to_le_bytes());
            head.extend_from_slice(&(frame_len as u32).to_le_bytes());
            head.extend_from_slice(&(frame_len as u32).to_le_bytes());
            out.write_all(&head).map_err(io)?;
            out.write_all(&frame).map_err(io)?;
            out.write_all(&[0u8; 3][..padding]).map_err(io)?;
            out.write_all(&total.to_le_bytes()).map_err(io)?;
        } else {
            head.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
            head.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
            head.extend_from_slice(&(frame_len as u32).to_le_bytes());
            head.extend_from_slice(&(frame_len as u32).to_le_bytes());
            out.write_all(&head).map_err(io)?;
            out.write_all(&frame).map_err(io)?;
        }
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(file.metadata().map_err(io)?.len() as f64)
}

/// The Internet checksum (RFC 1071) of an IPv4 header.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Open the log at `path` (format by content) and time `seeks` seeks to
/// random times within its range (seeded by `seed`): nanoseconds from
/// `seek(t)` to the first record returned, one per seek. Each record must
/// be at or after its `t`.
#[napi(catch_unwind)]
pub fn bench_seek(path: String, seeks: u32, seed: u32) -> napi::Result<Vec<f64>, Code> {
    let mut reader = netreplay_core::engine::open_file(Path::new(&path), &ReadOptions::default())
        .map_err(to_napi)?;
    let Some((first, last)) = reader.time_range().map_err(to_napi)? else {
        return Err(invalid("path", "the log has no records to seek to".into()));
    };
    let mut rng = Rng(u64::from(seed) | 1 << 40);
    let span = (last - first).max(1) as u64;
    let mut times = Vec::with_capacity(seeks as usize);
    for _ in 0..seeks {
        let t = first + (rng.next() % span) as i64;
        let start = std::time::Instant::now();
        reader.seek(t).map_err(to_napi)?;
        let record = reader.next_record().map_err(to_napi)?;
        let elapsed = start.elapsed().as_nanos() as f64;
        match record {
            Some(r) if r.time_ns >= t => times.push(elapsed),
            Some(r) => {
                return Err(invalid(
                    "seek",
                    format!("seek({t}) returned a record at {}, before it", r.time_ns),
                ))
            }
            None => return Err(invalid("seek", format!("seek({t}) returned no record"))),
        }
    }
    Ok(times)
}
