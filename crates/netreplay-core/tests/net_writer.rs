//! The MCL log writer: byte-identical to MCL's files, round trips through
//! the reader, splitting, crash safety, and recording from the network.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::net::*;
use common::*;
use netreplay_core::engine::now_ns;
use netreplay_core::engine::Delivery;
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::mcl::{
    format_created, HeaderStyle, Recorder, RecorderOptions, RecorderStream, TimeOrigin, WriteFile,
    WriteOptions,
};
use netreplay_core::net::ListenerOptions;
use netreplay_core::net::NetworkRecorder;
use netreplay_core::net::{Route, UdpSink, UdpSinkOptions};
use netreplay_core::{Error, Record};

fn read_file(path: &Path) -> Vec<Record> {
    read_all(netreplay_core::engine::open_file(path, &ReadOptions::default()).unwrap()).0
}

/// Rewrite a fixture log with the writer; the bytes must be identical.
fn rewrite_fixture(name: &str, style: HeaderStyle, revision: &str) {
    let fixture = fixture_dir().join(format!("{name}.log"));
    let reader = netreplay_core::engine::open_file(&fixture, &ReadOptions::default()).unwrap();
    let header = reader.header().unwrap().clone();
    assert_eq!(header.revision.as_deref(), Some(revision));
    let (records, _) = read_all(reader);
    let dir = TempDir::new("writer-fixture");
    let mut writer = WriteFile::create(
        dir.path().join(name),
        WriteOptions {
            message_type: header.message_type.clone(),
            revision: revision.into(),
            created: header.created.clone().unwrap(),
            header_style: style,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    for r in &records {
        writer.write_record(r).unwrap();
    }
    let files = writer.close().unwrap();
    assert_eq!(files, vec![dir.path().join(format!("{name}.log"))]);
    let ours = std::fs::read(&files[0]).unwrap();
    let theirs = std::fs::read(&fixture).unwrap();
    assert!(
        ours == theirs,
        "{name}: not byte-identical\n--- ours ---\n{}\n--- MCL ---\n{}",
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
}

#[test]
fn byte_identical_to_unit_test_message_a() {
    rewrite_fixture(
        "UnitTestMessageA",
        HeaderStyle::Legacy,
        "ffff000000000000000000000000000000000000",
    );
}

#[test]
fn byte_identical_to_unit_test_message_b() {
    rewrite_fixture(
        "UnitTestMessageB",
        HeaderStyle::Legacy,
        "ffff000000000000000000000000000000000000",
    );
}

#[test]
fn byte_identical_to_raw_unit_test_data() {
    rewrite_fixture("RawUnitTestData", HeaderStyle::Mcl, "");
}

#[test]
fn a_recording_round_trips_through_the_reader() {
    let (records, streams) = fixture_records(true);
    let dir = TempDir::new("writer-roundtrip");
    let recorder_streams: Vec<RecorderStream> = streams
        .iter()
        .map(|s| {
            let file = s.files[0]
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            RecorderStream {
                name: file,
                message_type: s.message_type.clone(),
            }
        })
        .collect();
    let mut recorder = Recorder::create(
        RecorderOptions {
            directory: Some(dir.path().join("copy")),
            created: Some("1970-01-01 00:00:00".into()),
            ..RecorderOptions::default()
        },
        &recorder_streams,
    )
    .unwrap();
    for r in &records {
        recorder.write_record(r).unwrap();
    }
    let files = recorder.close().unwrap();
    assert_eq!(files.len(), 3);
    let options = ReadOptions {
        include_raw: true,
        ..ReadOptions::default()
    };
    let (again, again_streams) = read_all(
        netreplay_core::engine::open_directory(&dir.path().join("copy"), &options).unwrap(),
    );
    assert_eq!(again, records);
    assert_eq!(
        again_streams
            .iter()
            .map(|s| &s.message_type)
            .collect::<Vec<_>>(),
        streams.iter().map(|s| &s.message_type).collect::<Vec<_>>()
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn typed(i: i64) -> Record {
    // {"data": i}
    record(
        0,
        i * 100_000_000,
        "",
        vec![0x81, 0xa4, b'd', b'a', b't', b'a', i as u8],
    )
}

#[test]
fn split_by_entries_as_mcl() {
    let dir = TempDir::new("writer-split");
    let prefix = dir.path().join("Msg");
    let mut w = WriteFile::create(
        &prefix,
        WriteOptions {
            message_type: Some("Msg".into()),
            created: "2015-06-01 12:14:56.123456".into(),
            max_entries: Some(3),
            ..WriteOptions::default()
        },
    )
    .unwrap();
    assert!(
        names(dir.path()).is_empty(),
        "nothing before the first record"
    );
    let records: Vec<Record> = (0..7).map(typed).collect();
    for (i, r) in records.iter().enumerate() {
        w.write_record(r).unwrap();
        // The part being written is a .tmp; finished parts are .log.
        let expect_tmp = format!("Msg_{:03}.tmp", i / 3);
        assert!(
            names(dir.path()).contains(&expect_tmp),
            "{:?}",
            names(dir.path())
        );
    }
    assert_eq!(
        names(dir.path()),
        ["Msg_000.log", "Msg_001.log", "Msg_002.tmp"]
    );
    let files = w.close().unwrap();
    assert_eq!(
        names(dir.path()),
        ["Msg_000.log", "Msg_001.log", "Msg_002.log"]
    );
    assert_eq!(files.len(), 3);
    // Only the first part has the header; each has at most 3 entries.
    let text: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(text[0].starts_with("#---"));
    assert!(!text[1].contains('#') && !text[2].contains('#'));
    assert_eq!(text[1].lines().count(), 3);
    assert_eq!(text[2].lines().count(), 1);
    // Read back as one split set.
    assert_eq!(read_file(&prefix), records);
}

#[test]
fn split_by_time_as_mcl() {
    let dir = TempDir::new("writer-split-time");
    let prefix = dir.path().join("T");
    let mut w = WriteFile::create(
        &prefix,
        WriteOptions {
            max_time_ns: Some(250_000_000),
            ..WriteOptions::default()
        },
    )
    .unwrap();
    // Records every 0.1 s: a part holds records within 0.25 s of its first.
    let records: Vec<Record> = (0..8).map(typed).collect();
    for r in &records {
        w.write_record(r).unwrap();
    }
    let files = w.close().unwrap();
    let counts: Vec<usize> = files.iter().map(|f| read_file_lines(f)).collect();
    assert_eq!(counts, vec![3, 3, 2]);
    assert_eq!(read_file(&prefix), records);
}

fn read_file_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

#[test]
fn a_crash_leaves_a_readable_tmp() {
    let dir = TempDir::new("writer-crash");
    let mut w = WriteFile::create(dir.path().join("C"), WriteOptions::default()).unwrap();
    let records: Vec<Record> = (0..5).map(typed).collect();
    for r in &records {
        w.write_record(r).unwrap();
    }
    let tmp = w.current_path().unwrap();
    // A crash: no close, no destructor.
    std::mem::forget(w);
    assert_eq!(names(dir.path()), ["C.tmp"]);
    assert_eq!(read_file(&tmp), records, "every complete line is there");

    // With batching, a crash loses the batch but never leaves half a line.
    let mut w = WriteFile::create(
        dir.path().join("D"),
        WriteOptions {
            flush_bytes: 1 << 20,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    for r in &records {
        w.write_record(r).unwrap();
    }
    let tmp = w.current_path().unwrap();
    assert!(read_file(&tmp).is_empty());
    w.flush().unwrap();
    assert_eq!(read_file(&tmp), records);
    // A clean close (here: drop) loses nothing and renames.
    w.write_record(&typed(9)).unwrap();
    drop(w);
    assert_eq!(read_file(&dir.path().join("D.log")).len(), 6);
}

#[test]
fn never_overwrites_and_validates() {
    let dir = TempDir::new("writer-validate");
    std::fs::write(dir.path().join("X.log"), "old").unwrap();
    let err = WriteFile::create(dir.path().join("X"), WriteOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("never overwritten"), "{err}");
    let bad = |prefix: PathBuf, options: WriteOptions| {
        WriteFile::create(prefix, options)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(bad(dir.path().to_path_buf(), WriteOptions::default()).contains("is a directory"));
    assert!(bad(dir.path().join("a.log"), WriteOptions::default()).contains("extension"));
    assert!(
        bad(dir.path().join("no/such/dir/p"), WriteOptions::default()).contains("does not exist")
    );
    let zero = WriteOptions {
        max_entries: Some(0),
        ..WriteOptions::default()
    };
    assert!(bad(dir.path().join("p"), zero).contains("maxEntries"));
    let spaced = WriteOptions {
        message_type: Some("A B".into()),
        ..WriteOptions::default()
    };
    assert!(bad(dir.path().join("p"), spaced).contains("messageType"));
    // A writer that received nothing leaves nothing.
    let w = WriteFile::create(dir.path().join("Empty"), WriteOptions::default()).unwrap();
    assert!(w.close().unwrap().is_empty());
    assert_eq!(names(dir.path()), ["X.log"]);
}

#[test]
fn recorder_makes_an_mcl_directory() {
    let root = TempDir::new("recorder");
    let origin = TimeOrigin {
        monotonic_ns: 1_000_000_000,
        unix_us: 1_433_160_896_000_000,
    };
    let mut rec = Recorder::create_at(
        RecorderOptions {
            root: root.path().to_path_buf(),
            hostname: Some("testhost".into()),
            ..RecorderOptions::default()
        },
        &[RecorderStream::of_type("A"), RecorderStream::of_type("B")],
        origin,
    )
    .unwrap();
    let dir = rec.directory().to_path_buf();
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.ends_with("_testhost") && name.len() == 15 + 9,
        "{name}"
    );
    assert_eq!(&name[8..9], "T");
    rec.write(1, 1_500_000_000, "", &[0x01]).unwrap();
    rec.write(0, 1_250_000_000, "t", &[0x02]).unwrap();
    assert!(rec.write(2, 0, "", &[0x01]).is_err());
    let files = rec.close().unwrap();
    assert_eq!(names(&dir), ["A.log", "B.log"]);
    assert_eq!(files.len(), 2);
    let a = std::fs::read_to_string(dir.join("A.log")).unwrap();
    assert!(
        a.contains("#     -- created     2015-06-01 12:14:56\n"),
        "{a}"
    );
    assert!(a.ends_with("     0.25000    't'         02\n"), "{a}");
    let (records, _) =
        read_all(netreplay_core::engine::open_directory(&dir, &ReadOptions::default()).unwrap());
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].time_ns, 500_000_000);
    let err = Recorder::create(
        RecorderOptions {
            root: root.path().join("missing"),
            ..RecorderOptions::default()
        },
        &[RecorderStream::of_type("A")],
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Io { .. }));
    assert_eq!(format_created(origin.unix_us), "2015-06-01 12:14:56");
}

#[test]
fn network_recording_of_a_replay() {
    // Replay the fixture to two addresses (one per message type, as in
    // MCL), record them with a NetworkRecorder, read the recording back.
    let root = TempDir::new("netrec");
    let (records, streams) = fixture_records(false);
    let rec = NetworkRecorder::start(
        vec![
            (
                "udp://127.0.0.1:0".into(),
                RecorderStream::of_type("UnitTestMessageA"),
            ),
            (
                "udp://[::1]:0".into(),
                RecorderStream::of_type("UnitTestMessageB"),
            ),
        ],
        ListenerOptions {
            recv_buffer_bytes: Some(4 << 20),
            tick: Duration::from_millis(20),
            ..ListenerOptions::default()
        },
        RecorderOptions {
            root: root.path().to_path_buf(),
            ..RecorderOptions::default()
        },
    )
    .unwrap();
    let addrs = rec.local_addrs().to_vec();
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            routes: ["UnitTestMessageA", "UnitTestMessageB"]
                .iter()
                .zip(&addrs)
                .map(|(t, a)| Route {
                    message_type: Some(t.to_string()),
                    topic: None,
                    destination: format!("udp://{a}"),
                })
                .collect(),
            ..UdpSinkOptions::default()
        },
        &streams,
    )
    .unwrap();
    for r in &records {
        sink.send(
            r,
            Delivery {
                run: 0,
                deadline_ns: Some(now_ns()),
                lateness_ns: 0,
                ..Delivery::default()
            },
        );
    }
    let stats = rec.listener_stats().clone();
    wait_for("20 messages", Duration::from_secs(5), || {
        stats.messages.get() == 20
    });
    let dir = rec.directory().to_path_buf();
    // While recording, the files are .tmp.
    wait_for("two .tmp files", Duration::from_secs(5), || {
        names(&dir) == ["UnitTestMessageA.tmp", "UnitTestMessageB.tmp"]
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.files.len(), 2);
    assert_eq!(summary.write_errors, 0);
    assert_eq!(
        names(&dir),
        ["UnitTestMessageA.log", "UnitTestMessageB.log"]
    );
    let reader = netreplay_core::engine::open_directory(&dir, &ReadOptions::default()).unwrap();
    let created: Vec<_> = reader
        .headers()
        .iter()
        .map(|h| h.as_ref().unwrap().created.clone().unwrap())
        .collect();
    assert_eq!(created[0], created[1], "one time origin for the recording");
    let (got, got_streams) = read_all(reader);
    assert_eq!(got.len(), 20);
    for name in ["UnitTestMessageA", "UnitTestMessageB"] {
        let pick = |rs: &[Record], ss: &[netreplay_core::StreamInfo]| -> Vec<Vec<u8>> {
            let i = ss
                .iter()
                .position(|s| s.message_type.as_deref() == Some(name))
                .unwrap() as u32;
            rs.iter()
                .filter(|r| r.stream == i)
                .map(|r| r.payload.clone())
                .collect()
        };
        assert_eq!(pick(&got, &got_streams), pick(&records, &streams), "{name}");
    }
    assert!(got.iter().all(|r| r.time_ns >= 0));
}

#[test]
fn network_recording_to_mcap() {
    use netreplay_core::format::mcap::{Compression, McapWriteOptions};
    use netreplay_core::net::{RecordingFormat, MCAP_RECORDING};
    // As above, into one MCAP file; read back by content from the directory.
    let root = TempDir::new("netrec-mcap");
    let (records, streams) = fixture_records(false);
    let rec = NetworkRecorder::start_as(
        vec![
            (
                "udp://127.0.0.1:0".into(),
                RecorderStream::of_type("UnitTestMessageA"),
            ),
            (
                "udp://[::1]:0".into(),
                RecorderStream::of_type("UnitTestMessageB"),
            ),
        ],
        ListenerOptions {
            recv_buffer_bytes: Some(4 << 20),
            tick: Duration::from_millis(20),
            ..ListenerOptions::default()
        },
        RecorderOptions {
            root: root.path().to_path_buf(),
            ..RecorderOptions::default()
        },
        RecordingFormat::Mcap(McapWriteOptions {
            compression: Compression::Lz4,
            chunk_size: 256,
        }),
    )
    .unwrap();
    let addrs = rec.local_addrs().to_vec();
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            routes: ["UnitTestMessageA", "UnitTestMessageB"]
                .iter()
                .zip(&addrs)
                .map(|(t, a)| Route {
                    message_type: Some(t.to_string()),
                    topic: None,
                    destination: format!("udp://{a}"),
                })
                .collect(),
            ..UdpSinkOptions::default()
        },
        &streams,
    )
    .unwrap();
    for r in &records {
        sink.send(
            r,
            Delivery {
                run: 0,
                deadline_ns: Some(now_ns()),
                lateness_ns: 0,
                ..Delivery::default()
            },
        );
    }
    let stats = rec.listener_stats().clone();
    wait_for("20 messages", Duration::from_secs(5), || {
        stats.messages.get() == 20
    });
    let dir = rec.directory().to_path_buf();
    // Finished chunks are on disk while recording: a copy taken now (as a
    // kill would leave it) reads, all but its missing end.
    std::thread::sleep(Duration::from_millis(1300));
    let live = std::fs::read(dir.join(MCAP_RECORDING)).unwrap();
    let summary = rec.stop().unwrap();
    assert_eq!(summary.files, [dir.join(MCAP_RECORDING)]);
    assert_eq!(summary.write_errors, 0);
    let reader = netreplay_core::engine::open_directory(&dir, &ReadOptions::default()).unwrap();
    let (got, got_streams) = read_all(reader);
    assert_eq!(got.len(), 20);
    assert!(got_streams
        .iter()
        .all(|s| s.encoding.as_deref() == Some("msgpack")));
    // Receive times as epoch ns: within this test's run.
    let epoch_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let base = got_streams[0].time_base_ns;
    assert!(
        base < epoch_now && base > epoch_now - 60_000_000_000,
        "{base}"
    );
    for name in ["UnitTestMessageA", "UnitTestMessageB"] {
        let pick = |rs: &[Record], ss: &[netreplay_core::StreamInfo]| -> Vec<Vec<u8>> {
            let ids: Vec<u32> = ss
                .iter()
                .enumerate()
                .filter(|(_, s)| s.message_type.as_deref() == Some(name))
                .map(|(i, _)| i as u32)
                .collect();
            rs.iter()
                .filter(|r| ids.contains(&r.stream))
                .map(|r| r.payload.clone())
                .collect()
        };
        assert_eq!(pick(&got, &got_streams), pick(&records, &streams), "{name}");
    }
    // The copy taken while recording: every message (the idle flush wrote
    // the chunk out), then the missing end said, or skipped and counted.
    let cut = dir.join("live-copy.mcap");
    std::fs::write(&cut, live).unwrap();
    let mut reader = netreplay_core::engine::open_file(&cut, &ReadOptions::default()).unwrap();
    let mut n = 0;
    let err = loop {
        match netreplay_core::format::RecordSource::next_record(&mut reader) {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("the missing end is reported"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 20);
    assert!(err.to_string().contains("without its data end"), "{err}");
}
