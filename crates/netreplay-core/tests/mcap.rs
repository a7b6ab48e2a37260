//! MCAP reading, on files written by the `mcap` crate's own writer (not
//! netreplay's), and damaged copies of them: every chunk cut, CRCs
//! flipped, bad magic, random bytes. Never a panic; an error names the file
//! and the byte offset, or `skip` counts.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use common::TempDir;
use netreplay_core::engine::{open_file, open_mcap, open_path};
use netreplay_core::format::mcap::{
    Compression, McapOptions, McapTime, McapWriteOptions, McapWriter, PUBLISH_REORDER_NS,
};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::{OnError, RecordSource, TimeWindow};
use netreplay_core::{Error, Record};

/// Epoch ns of 2026-12-02, beyond 2^53.
const T0: u64 = 1_796_000_000_123_456_789;

struct Msg {
    channel: u16,
    log_time: u64,
    publish_time: u64,
    payload: Vec<u8>,
}

/// Options of the reference writer.
#[derive(Clone, Copy)]
struct Style {
    compression: Option<mcap::Compression>,
    chunk_size: Option<u64>,
    summary: bool,
    chunks: bool,
}

const PLAIN: Style = Style {
    compression: None,
    chunk_size: Some(4096),
    summary: true,
    chunks: true,
};

/// Channels 1 (`/a`, schema `A`, msgpack), 2 (`/b`, schema `B`, json) and
/// 3 (`/raw`, schemaless, cdr); `n` messages 1 ms apart round-robin, from T0.
fn messages(n: u64) -> Vec<Msg> {
    (0..n)
        .map(|i| Msg {
            channel: (i % 3 + 1) as u16,
            log_time: T0 + i * 1_000_000,
            publish_time: T0 + i * 1_000_000,
            payload: format!("payload {i:06} {}", "x".repeat((i % 50) as usize)).into_bytes(),
        })
        .collect()
}

fn write_reference(path: &Path, style: Style, msgs: &[Msg]) {
    let mut options = mcap::WriteOptions::new()
        .compression(style.compression)
        .chunk_size(style.chunk_size)
        .use_chunks(style.chunks);
    if !style.summary {
        options = options
            .emit_summary_records(false)
            .emit_chunk_indexes(false)
            .emit_statistics(false)
            .emit_summary_offsets(false)
            .emit_message_indexes(false);
    }
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = options.create(&mut buf).unwrap();
        let a = w.add_schema("A", "jsonschema", b"{}").unwrap();
        let b = w.add_schema("B", "jsonschema", b"{}").unwrap();
        let none = BTreeMap::new();
        w.add_channel_with_id(1, a, "/a", "msgpack", &none).unwrap();
        w.add_channel_with_id(2, b, "/b", "json", &none).unwrap();
        w.add_channel_with_id(3, 0, "/raw", "cdr", &none).unwrap();
        for (i, m) in msgs.iter().enumerate() {
            w.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: m.channel,
                    sequence: i as u32,
                    log_time: m.log_time,
                    publish_time: m.publish_time,
                },
                &m.payload,
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    std::fs::write(path, buf.into_inner()).unwrap();
}

fn read_all(source: &mut dyn RecordSource) -> Result<Vec<Record>, (Vec<Record>, Error)> {
    let mut out = Vec::new();
    loop {
        match source.next_record() {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return Ok(out),
            Err(e) => return Err((out, e)),
        }
    }
}

fn mcap_options(on_error: OnError) -> McapOptions {
    McapOptions {
        on_error,
        ..McapOptions::default()
    }
}

fn check_matches(records: &[Record], msgs: &[Msg], topics: &[&str]) {
    assert_eq!(records.len(), msgs.len());
    for (r, m) in records.iter().zip(msgs) {
        assert_eq!(r.time_ns as u64, m.log_time - msgs[0].log_time);
        assert_eq!(&*r.topic, topics[m.channel as usize - 1]);
        assert_eq!(r.payload, m.payload);
    }
}

const TOPICS: [&str; 3] = ["/a", "/b", "/raw"];

#[test]
fn reads_every_compression_with_and_without_summary_and_chunks() {
    let dir = TempDir::new("mcap-styles");
    let msgs = messages(600);
    let mut styles = Vec::new();
    for compression in [
        None,
        Some(mcap::Compression::Lz4),
        Some(mcap::Compression::Zstd),
    ] {
        for summary in [true, false] {
            styles.push(Style {
                compression,
                summary,
                ..PLAIN
            });
        }
    }
    styles.push(Style {
        chunks: false,
        ..PLAIN
    });
    styles.push(Style {
        chunks: false,
        summary: false,
        ..PLAIN
    });
    for (i, style) in styles.into_iter().enumerate() {
        let path = dir.path().join(format!("{i}.mcap"));
        write_reference(&path, style, &msgs);
        // Picked by content from ReadFile's path, whatever the name.
        let mut reader = open_file(&path, &ReadOptions::default()).unwrap();
        let streams = reader.streams().to_vec();
        assert_eq!(streams.len(), 3, "style {i}");
        assert_eq!(streams[0].message_type.as_deref(), Some("A"));
        assert_eq!(streams[0].encoding.as_deref(), Some("msgpack"));
        assert_eq!(streams[1].encoding.as_deref(), Some("json"));
        let schema = streams[1].schema.as_ref().unwrap();
        assert_eq!(
            (schema.name.as_str(), schema.encoding.as_str()),
            ("B", "jsonschema")
        );
        assert_eq!(schema.data, b"{}");
        // The schemaless channel has no type.
        assert_eq!(streams[2].message_type, None);
        assert_eq!(streams[2].schema, None);
        assert!(streams.iter().all(|s| s.time_base_ns == T0));
        let records = match read_all(&mut reader) {
            Ok(r) => r,
            // Without a summary the missing end is reported after every message.
            Err((r, e)) if !style.summary => {
                assert!(e.to_string().contains("without its data end"), "{e}");
                r
            }
            Err((_, e)) => panic!("style {i}: {e}"),
        };
        check_matches(&records, &msgs, &TOPICS);
        // Stream i is channel i + 1 (streams in channel id order).
        assert!(records
            .iter()
            .all(|r| TOPICS[r.stream as usize] == &*r.topic));
        assert_eq!(reader.time_range().unwrap(), Some((0, 599_000_000)));
        // The same again after a rewind.
        reader.reset().unwrap();
        let again = read_all(&mut reader).unwrap_or_else(|(r, _)| r);
        assert_eq!(again.len(), 600);
    }
}

#[test]
fn seeks_by_the_chunk_index_and_windows_push_down() {
    let dir = TempDir::new("mcap-seek");
    let path = dir.path().join("s.mcap");
    let msgs = messages(3000);
    write_reference(
        &path,
        Style {
            compression: Some(mcap::Compression::Zstd),
            ..PLAIN
        },
        &msgs,
    );
    let mut reader = open_file(&path, &ReadOptions::default()).unwrap();
    for t in [0i64, 1, 999_999, 1_000_000, 1_234_000_000, 2_999_000_000] {
        reader.seek(t).unwrap();
        let first = reader.next_record().unwrap().unwrap();
        let want = ((t + 999_999) / 1_000_000) * 1_000_000;
        assert_eq!(first.time_ns, want, "seek {t}");
    }
    reader.seek(3_000_000_000).unwrap();
    assert_eq!(reader.next_record().unwrap(), None);
    assert!(!reader.is_data_pending());

    let window = TimeWindow {
        min_ns: Some(100_000_000),
        max_ns: Some(200_000_000),
    };
    let mut windowed = open_mcap(
        std::slice::from_ref(&path),
        &McapOptions {
            window,
            ..McapOptions::default()
        },
    )
    .unwrap();
    let records = read_all(&mut windowed).unwrap();
    assert_eq!(records.len(), 101);
    assert_eq!(records[0].time_ns, 100_000_000);
    assert_eq!(
        windowed.time_range().unwrap(),
        Some((100_000_000, 200_000_000))
    );

    let mut topics = open_mcap(
        &[path],
        &McapOptions {
            topics: Some(vec!["/b".into()]),
            ..McapOptions::default()
        },
    )
    .unwrap();
    let records = read_all(&mut topics).unwrap();
    assert_eq!(records.len(), 1000);
    assert!(records.iter().all(|r| &*r.topic == "/b"));
}

#[test]
fn equal_log_times_go_by_channel_then_file_order() {
    let dir = TempDir::new("mcap-ties");
    let path = dir.path().join("t.mcap");
    // Written channel 3, 1, 2, 1 at one time, then 2 at a later one.
    let at = |channel, i: u64, log_time| Msg {
        channel,
        log_time,
        publish_time: log_time,
        payload: vec![i as u8],
    };
    let msgs = vec![
        at(3, 0, T0),
        at(1, 1, T0),
        at(2, 2, T0),
        at(1, 3, T0),
        at(2, 4, T0 + 5),
    ];
    write_reference(&path, PLAIN, &msgs);
    let mut reader = open_file(&path, &ReadOptions::default()).unwrap();
    let order: Vec<u8> = read_all(&mut reader)
        .unwrap()
        .iter()
        .map(|r| r.payload[0])
        .collect();
    assert_eq!(order, [1, 3, 2, 0, 4]);
}

#[test]
fn several_files_merge_by_absolute_log_time() {
    let dir = TempDir::new("mcap-merge");
    let (a, b) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"));
    let one = |log_time, tag: u8| Msg {
        channel: 1,
        log_time,
        publish_time: log_time,
        payload: vec![tag],
    };
    write_reference(&a, PLAIN, &[one(T0 + 10, 1), one(T0 + 30, 3)]);
    write_reference(
        &b,
        PLAIN,
        &[one(T0 + 20, 2), one(T0 + 30, 4), one(T0 + 40, 5)],
    );
    let mut reader = open_mcap(&[b.clone(), a.clone()], &McapOptions::default()).unwrap();
    let records = read_all(&mut reader).unwrap();
    let got: Vec<(i64, u8)> = records.iter().map(|r| (r.time_ns, r.payload[0])).collect();
    // Times from the earliest first message (a's); the tie by path order (b first).
    assert_eq!(got, [(0, 1), (10, 2), (20, 4), (20, 3), (30, 5)]);
    assert!(reader.streams().iter().all(|s| s.time_base_ns == T0 + 10));
    assert_eq!(reader.streams().len(), 6);
}

/// The offsets of `path`'s chunk records (from its summary).
fn chunk_offsets(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
    summary
        .chunk_indexes
        .iter()
        .map(|c| c.chunk_start_offset)
        .collect()
}

fn copy_with(path: &Path, to: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes);
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

#[test]
fn truncated_at_and_inside_every_chunk_errors_or_skips_never_panics() {
    let dir = TempDir::new("mcap-cut");
    let path = dir.path().join("full.mcap");
    let msgs = messages(400);
    for compression in [
        None,
        Some(mcap::Compression::Lz4),
        Some(mcap::Compression::Zstd),
    ] {
        write_reference(
            &path,
            Style {
                compression,
                chunk_size: Some(2048),
                ..PLAIN
            },
            &msgs,
        );
        let offsets = chunk_offsets(&path);
        assert!(offsets.len() > 5, "{} chunks", offsets.len());
        let len = std::fs::metadata(&path).unwrap().len();
        let mut cuts: Vec<u64> = offsets
            .iter()
            .flat_map(|&o| [o, o + 1, o + 20, o + 60, o + 300])
            .collect();
        cuts.extend([9, 8, 1, len - 1, len - 8]);
        for cut in cuts {
            let cut_path = copy_with(&path, &dir.path().join("cut.mcap"), |b| {
                b.truncate(cut as usize)
            });
            match open_mcap(std::slice::from_ref(&cut_path), &McapOptions::default()) {
                Err(e) => {
                    // Only a file cut inside its magic cannot be opened.
                    assert!(cut < 8, "cut {cut}: {e}");
                    assert!(
                        e.to_string().contains("cut.mcap")
                            && e.to_string().contains("byte offset 0"),
                        "{e}"
                    );
                }
                Ok(mut reader) => {
                    let (records, err) = match read_all(&mut reader) {
                        // Cut in the summary, after the data end: nothing is missing.
                        Ok(records) => {
                            assert!(cut > *offsets.last().unwrap(), "cut {cut} unreported");
                            assert_eq!(records.len(), msgs.len());
                            continue;
                        }
                        Err(e) => e,
                    };
                    let text = err.to_string();
                    assert!(
                        text.contains("cut.mcap") && text.contains("byte offset"),
                        "{text}"
                    );
                    assert!(records.len() <= msgs.len());
                    // Every message read is one written, in order.
                    check_matches(&records, &msgs[..records.len()], &TOPICS);
                    let mut skipping = open_mcap(
                        std::slice::from_ref(&cut_path),
                        &mcap_options(OnError::Skip),
                    )
                    .unwrap();
                    let skipped = read_all(&mut skipping).unwrap();
                    assert!(skipping.skipped() >= 1, "cut {cut}");
                    assert!(skipped.len() >= records.len());
                }
            }
        }
    }
}

#[test]
fn a_flipped_crc_names_the_chunk_and_skip_counts_it() {
    let dir = TempDir::new("mcap-crc");
    let path = dir.path().join("full.mcap");
    let msgs = messages(400);
    write_reference(
        &path,
        Style {
            compression: Some(mcap::Compression::Lz4),
            chunk_size: Some(2048),
            ..PLAIN
        },
        &msgs,
    );
    let offsets = chunk_offsets(&path);
    let third = offsets[2];
    // opcode, length, start, end, uncompressed size, then the CRC.
    let crc_at = third as usize + 1 + 8 + 8 + 8 + 8;
    let bad = copy_with(&path, &dir.path().join("crc.mcap"), |b| b[crc_at] ^= 0x55);
    let mut reader = open_file(&bad, &ReadOptions::default()).unwrap();
    let (before, err) = read_all(&mut reader).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("crc.mcap") && text.contains("CRC mismatch"),
        "{text}"
    );
    assert!(text.contains(&format!("byte offset {third}")), "{text}");
    check_matches(&before, &msgs[..before.len()], &TOPICS);

    let mut skipping = open_mcap(&[bad], &mcap_options(OnError::Skip)).unwrap();
    let records = read_all(&mut skipping).unwrap();
    assert_eq!(skipping.skipped(), 1);
    assert!(records.len() < msgs.len() && records.len() > before.len());

    // Without a summary (scanned), the same.
    let scanned = dir.path().join("scan.mcap");
    write_reference(
        &scanned,
        Style {
            compression: Some(mcap::Compression::Zstd),
            chunk_size: Some(2048),
            summary: false,
            ..PLAIN
        },
        &msgs,
    );
    let bytes = std::fs::read(&scanned).unwrap();
    // The second chunk record: the first 0x06 opcode after the first one's end.
    let first = bytes.windows(1).position(|w| w[0] == 0x06).unwrap();
    let len = u64::from_le_bytes(bytes[first + 1..first + 9].try_into().unwrap()) as usize;
    let second = first + 9 + len;
    assert_eq!(bytes[second], 0x06);
    let bad = copy_with(&scanned, &dir.path().join("scan-crc.mcap"), |b| {
        b[second + 33] ^= 1
    });
    let mut reader = open_file(&bad, &ReadOptions::default()).unwrap();
    let (_, err) = read_all(&mut reader).unwrap_err();
    assert!(
        err.to_string().contains("CRC mismatch")
            && err.to_string().contains(&format!("byte offset {second}")),
        "{err}"
    );
}

/// A message whose log time is more than i64::MAX past the first, in a file
/// whose index and statistics say it is not (fuzz mcap_reader, CI of
/// 648ab28): an error at that message, not a negative time.
#[test]
fn a_time_past_the_index_beyond_i64_is_an_error_not_a_negative_time() {
    let dir = TempDir::new("mcap-far");
    let path = dir.path().join("far.mcap");
    let far = T0 + (1 << 63) + 5;
    let mut msgs = messages(3);
    msgs[2].log_time = far;
    msgs[2].publish_time = msgs[1].log_time;
    write_reference(&path, PLAIN, &msgs);
    let damaged = copy_with(&path, &dir.path().join("damaged.mcap"), |b| {
        let far_bytes = far.to_le_bytes();
        let at: Vec<usize> = (0..b.len() - 8)
            .filter(|&i| b[i..i + 8] == far_bytes)
            .collect();
        // The chunk's end time, the message, its index entry, the chunk
        // index's end time, the statistics' end time.
        assert_eq!(at.len(), 5, "{at:?}");
        let near = (msgs[1].log_time + 1).to_le_bytes();
        for (k, &i) in at.iter().enumerate() {
            if k != 1 {
                b[i..i + 8].copy_from_slice(&near);
            }
        }
    });
    for on_error in [OnError::Fail, OnError::Skip] {
        let mut reader =
            open_mcap(std::slice::from_ref(&damaged), &mcap_options(on_error)).unwrap();
        let mut times = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..10 {
            match reader.next_record() {
                Ok(Some(r)) => times.push(r.time_ns),
                Ok(None) => break,
                Err(e) => errors.push(e.to_string()),
            }
        }
        assert_eq!(times, [0, 1_000_000], "{on_error:?}");
        if on_error == OnError::Skip {
            assert_eq!((errors.len(), reader.skipped()), (0, 1));
        } else {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("damaged.mcap") && e.contains(&far.to_string())),
                "{errors:?}"
            );
        }
    }
}

#[test]
fn bad_magic_and_other_formats_say_what_they_are() {
    let dir = TempDir::new("mcap-magic");
    let path = dir.path().join("m.mcap");
    write_reference(&path, PLAIN, &messages(10));
    let bad = copy_with(&path, &dir.path().join("bad.mcap"), |b| b[1] = b'X');
    // No longer MCAP by content: read as MCL, which says the line is no record.
    let err = open_file(&bad, &ReadOptions::default())
        .map(|mut r| read_all(&mut r).map(|v| v.len()))
        .err();
    let _ = err; // whatever MCL makes of it, it is no panic
                 // ReadMcap on it says it is not MCAP, and where.
    let err = open_mcap(&[bad], &McapOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("bad.mcap")
            && err.contains("not an MCAP file")
            && err.contains("byte offset 0"),
        "{err}"
    );
    // A pcap file cut inside its header: read as a capture, which says so.
    let pcap = copy_with(&path, &dir.path().join("c.pcap"), |b| {
        *b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0];
    });
    let err = open_path(&pcap, &ReadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("c.pcap") && !err.contains("MCAP"), "{err}");
}

/// xorshift: reproducible damage.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn random_damage_never_panics() {
    let dir = TempDir::new("mcap-random");
    let path = dir.path().join("full.mcap");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (k, compression) in [
        None,
        Some(mcap::Compression::Lz4),
        Some(mcap::Compression::Zstd),
    ]
    .into_iter()
    .enumerate()
    {
        write_reference(
            &path,
            Style {
                compression,
                chunk_size: Some(1024),
                summary: k != 1,
                ..PLAIN
            },
            &messages(200),
        );
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        for _ in 0..60 {
            let flips = 1 + rng(&mut seed) % 4;
            let damaged = copy_with(&path, &dir.path().join("r.mcap"), |b| {
                for _ in 0..flips {
                    let at = 8 + (rng(&mut seed) as usize) % (len - 8);
                    b[at] = rng(&mut seed) as u8;
                }
            });
            for on_error in [OnError::Fail, OnError::Skip] {
                for time in [McapTime::Log, McapTime::Publish] {
                    let options = McapOptions {
                        time,
                        ..mcap_options(on_error)
                    };
                    if let Ok(mut reader) = open_mcap(std::slice::from_ref(&damaged), &options) {
                        let _ = read_all(&mut reader);
                        let _ = reader.seek(50_000_000);
                        let _ = read_all(&mut reader);
                    }
                }
            }
        }
    }
}

#[test]
fn netreplay_writes_mcap_the_reference_reader_reads() {
    let dir = TempDir::new("mcap-write");
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let path = dir.path().join(format!("{compression:?}.mcap"));
        let mut w = McapWriter::create(
            &path,
            &McapWriteOptions {
                compression,
                chunk_size: 4096,
            },
        )
        .unwrap();
        for i in 0..500u64 {
            let (t, topic) = if i % 2 == 0 {
                (Some("A"), "/x")
            } else {
                (None, "")
            };
            w.write(t, topic, "msgpack", T0 + i * 1000, &[0x91, i as u8 & 0x7f])
                .unwrap();
        }
        w.close().unwrap();
        // The reference reader: messages, channels, schemas, summary.
        let bytes = std::fs::read(&path).unwrap();
        let read: Vec<_> = mcap::MessageStream::new(&bytes)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(read.len(), 500);
        assert_eq!(read[0].channel.schema.as_ref().unwrap().name, "A");
        assert_eq!(read[0].channel.message_encoding, "msgpack");
        assert!(read[1].channel.schema.is_none());
        assert_eq!(read[499].log_time, T0 + 499_000);
        let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
        assert_eq!(summary.stats.unwrap().message_count, 500);
        assert!(summary.chunk_indexes.len() > 1);
        // Existing files are not overwritten.
        assert!(McapWriter::create(&path, &McapWriteOptions::default()).is_err());
    }
}

/// (time, topic, type, payload) of everything `path` holds, with raw streams.
fn contents(path: &Path) -> Vec<(i64, String, Option<String>, Vec<u8>)> {
    let mut reader = open_path(
        path,
        &ReadOptions {
            include_raw: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    let types: Vec<_> = reader
        .streams()
        .iter()
        .map(|s| s.message_type.clone())
        .collect();
    read_all(&mut reader)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.time_ns,
                r.topic.to_string(),
                types[r.stream as usize].clone(),
                r.payload,
            )
        })
        .collect()
}

#[test]
fn mcl_to_mcap_to_mcl_keeps_types_topics_payloads_and_times() {
    use netreplay_core::engine::{convert, ConvertOptions};
    let dir = TempDir::new("mcap-convert");
    let original = common::fixture_dir();
    let before = contents(&original);
    assert!(
        before.iter().any(|r| r.2.is_none()),
        "the fixture has a raw stream"
    );
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let options = ConvertOptions {
            mcap: McapWriteOptions {
                compression,
                chunk_size: 512,
            },
            ..ConvertOptions::default()
        };
        let mcap_path = dir.path().join(format!("{compression:?}.mcap"));
        let summary = convert(&original, &mcap_path, &options).unwrap();
        assert_eq!(summary.messages as usize, before.len());
        // Read as MCAP: the same, times from the first message.
        let as_mcap = contents(&mcap_path);
        let first = before[0].0;
        let shifted: Vec<_> = before
            .iter()
            .map(|r| (r.0 - first, r.1.clone(), r.2.clone(), r.3.clone()))
            .collect();
        let brief = |v: &[(i64, String, Option<String>, Vec<u8>)]| -> Vec<(i64, Option<String>)> {
            v.iter().map(|r| (r.0, r.2.clone())).collect()
        };
        assert_eq!(brief(&as_mcap), brief(&shifted));
        assert_eq!(as_mcap, shifted);
        // And back: exactly the original, header included.
        let back = dir.path().join(format!("{compression:?}-back"));
        let summary = convert(&mcap_path, &back, &options).unwrap();
        assert_eq!(summary.messages as usize, before.len());
        assert_eq!(contents(&back), before);
        let header = open_path(&back, &ReadOptions::default())
            .unwrap()
            .header()
            .cloned()
            .unwrap();
        let original_header = open_path(&original, &ReadOptions::default())
            .unwrap()
            .header()
            .cloned()
            .unwrap();
        assert_eq!(header.created, original_header.created);
    }
    // One type to one .log file.
    let single = dir.path().join("a.mcap");
    convert(
        &original.join("UnitTestMessageA.log"),
        &single,
        &ConvertOptions::default(),
    )
    .unwrap();
    let log = dir.path().join("a-back.log");
    convert(&single, &log, &ConvertOptions::default()).unwrap();
    assert_eq!(
        contents(&log),
        contents(&original.join("UnitTestMessageA.log"))
    );
    // Several types cannot go to one file; other encodings not to MCL.
    let err = convert(
        &dir.path().join("Zstd.mcap"),
        &dir.path().join("x.log"),
        &ConvertOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("message types"), "{err}");
    let reference = dir.path().join("ref.mcap");
    write_reference(&reference, PLAIN, &messages(9));
    let err = convert(
        &reference,
        &dir.path().join("ref-back"),
        &ConvertOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'json'") || err.to_string().contains("'cdr'"),
        "{err}"
    );
    // MCL to MCL is no conversion.
    let err = convert(&original, &dir.path().join("y"), &ConvertOptions::default()).unwrap_err();
    assert!(err.to_string().contains(".mcap"), "{err}");
}

#[test]
fn publish_time_plays_by_publish_time_reordered_seeks_and_windows() {
    let dir = TempDir::new("mcap-publish");
    let path = dir.path().join("latency.mcap");
    // Each channel with its own latency (publish = log − latency): in log
    // order the publish times go back and forth.
    let latency = [5_000_000u64, 200_000, 30_000_000];
    let mut msgs = messages(600);
    for m in &mut msgs {
        m.publish_time = m.log_time - latency[m.channel as usize - 1];
    }
    write_reference(&path, PLAIN, &msgs);
    let publish = McapOptions {
        time: McapTime::Publish,
        ..McapOptions::default()
    };
    let mut reader = open_mcap(std::slice::from_ref(&path), &publish).unwrap();
    let got = read_all(&mut reader).unwrap();
    let mut want: Vec<(u64, u16, usize)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.publish_time, m.channel, i))
        .collect();
    want.sort();
    let base = want[0].0;
    assert_eq!(
        reader.streams()[0].time_base_ns,
        base,
        "the first publish time"
    );
    assert_eq!(got.len(), msgs.len());
    for (r, (publish_time, _, i)) in got.iter().zip(&want) {
        assert_eq!(r.time_ns as u64, publish_time - base);
        assert_eq!(r.payload, msgs[*i].payload);
    }
    assert!(got.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    // In log order they are not: the reordering did something.
    let mut by_log = open_mcap(std::slice::from_ref(&path), &McapOptions::default()).unwrap();
    let log_order = read_all(&mut by_log).unwrap();
    assert_ne!(
        log_order
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<_>>(),
        got.iter().map(|r| r.payload.clone()).collect::<Vec<_>>()
    );

    // A seek: the first message published at or after t.
    let t = 250_000_000i64;
    reader.seek(t).unwrap();
    let after = read_all(&mut reader).unwrap();
    let expected: Vec<_> = got.iter().filter(|r| r.time_ns >= t).collect();
    assert_eq!(after.len(), expected.len());
    assert!(after
        .iter()
        .zip(&expected)
        .all(|(a, b)| a.payload == b.payload));
    reader.reset().unwrap();
    assert_eq!(read_all(&mut reader).unwrap().len(), msgs.len());

    // A window, by publish time.
    let windowed = McapOptions {
        time: McapTime::Publish,
        window: TimeWindow {
            min_ns: Some(100_000_000),
            max_ns: Some(200_000_000),
        },
        ..McapOptions::default()
    };
    let mut w = open_mcap(std::slice::from_ref(&path), &windowed).unwrap();
    let inside = read_all(&mut w).unwrap();
    let expected: Vec<_> = got
        .iter()
        .filter(|r| (100_000_000..=200_000_000).contains(&r.time_ns))
        .collect();
    assert_eq!(inside.len(), expected.len());
    assert!(inside
        .iter()
        .zip(&expected)
        .all(|(a, b)| a.payload == b.payload));
    assert!(PUBLISH_REORDER_NS > latency[2]);
}
