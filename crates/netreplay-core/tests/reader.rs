//! The MCL reader: the fixture recording, generated logs (split sets, missing
//! headers, ties, malformed lines, empty files, bad paths) and a file that
//! shrinks while it is being read.

mod common;

use std::path::PathBuf;

use common::*;
use netreplay_core::engine::{open_directory, open_file};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::TimeWindow;
use netreplay_core::format::{OnError, RecordSource};
use netreplay_core::{Error, Record};

const A: &str = "UnitTestMessageA";
const B: &str = "UnitTestMessageB";

fn opts() -> ReadOptions {
    ReadOptions::default()
}

fn window(min_ns: Option<i64>, max_ns: Option<i64>) -> ReadOptions {
    ReadOptions {
        window: TimeWindow { min_ns, max_ns },
        ..ReadOptions::default()
    }
}

fn skip() -> ReadOptions {
    ReadOptions {
        on_error: OnError::Skip,
        ..ReadOptions::default()
    }
}

fn times(records: &[Record]) -> Vec<i64> {
    records.iter().map(|r| r.time_ns).collect()
}

fn as_gen(records: &[Record]) -> Vec<Gen> {
    records
        .iter()
        .map(|r| Gen {
            time_ns: r.time_ns,
            topic: r.topic.to_string(),
            payload: r.payload.clone(),
        })
        .collect()
}

/// What the fixture directory must yield: (time, stream, payload) with the
/// given stream index for each file.
fn expected_fixture(files: &[(&str, u32)]) -> Vec<(i64, u32, Vec<u8>)> {
    let mut all: Vec<(i64, u32, Vec<u8>)> = files
        .iter()
        .flat_map(|(name, stream)| {
            parse_fixture(&fixture(name))
                .into_iter()
                .map(move |(t, p)| (t, *stream, p))
        })
        .collect();
    // Stable sort: ties keep the order of `files` (file-name order).
    all.sort_by_key(|(t, _, _)| *t);
    all
}

fn triples(records: &[Record]) -> Vec<(i64, u32, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.time_ns, r.stream, r.payload.clone()))
        .collect()
}

// ---------------------------------------------------------------- fixtures

#[test]
fn fixture_directory_yields_the_20_typed_records_in_time_order() {
    let mut reader = open_directory(&fixture_dir(), &opts()).unwrap();
    let streams = reader.streams().to_vec();
    assert_eq!(streams.len(), 2, "raw stream must be skipped: {streams:?}");
    assert_eq!(streams[0].message_type.as_deref(), Some(A));
    assert_eq!(streams[0].files, vec![fixture("UnitTestMessageA.log")]);
    assert_eq!(streams[1].message_type.as_deref(), Some(B));
    assert_eq!(streams[1].files, vec![fixture("UnitTestMessageB.log")]);

    let records = drain(&mut reader).unwrap();
    assert_eq!(records.len(), 20);
    let want_times: Vec<i64> = (0..10)
        .map(|k| k * 10 * MS)
        .chain((1..=10).map(|k| k * 100 * MS))
        .collect();
    assert_eq!(times(&records), want_times);
    for (i, r) in records.iter().enumerate() {
        let (stream, name) = if i < 10 { (0, A) } else { (1, B) };
        assert_eq!(r.stream, stream, "record {i}");
        assert_eq!(&*r.topic, "", "record {i}");
        // A typed payload is a msgpack map whose `name` is the type (fixstr 0xb0 + 16 bytes).
        let mut tail = vec![0xa4];
        tail.extend_from_slice(b"name");
        tail.push(0xb0);
        tail.extend_from_slice(name.as_bytes());
        assert!(r.payload.ends_with(&tail), "record {i}: {:02x?}", r.payload);
        assert_eq!(r.payload[0], 0x83, "record {i}: a 3-entry map");
    }
    // Payload bytes are exactly the hex of the files.
    assert_eq!(
        triples(&records),
        expected_fixture(&[("UnitTestMessageA.log", 0), ("UnitTestMessageB.log", 1)])
    );
    // One literal check, independent of the helper's parsing.
    assert_eq!(
        to_hex(&records[1].payload),
        "83a974696d657374616d70cb3f847ae147ae147ba464617461cb3f847ae147ae147ba46e616d65b0556e6974546573744d65737361676541"
    );
    assert_eq!(reader.next_record().unwrap(), None, "stays at the end");
    assert_eq!(reader.skipped(), 0);
}

#[test]
fn fixture_directory_with_raw_gives_30_records() {
    let options = ReadOptions {
        include_raw: true,
        ..ReadOptions::default()
    };
    let mut reader = open_directory(&fixture_dir(), &options).unwrap();
    let streams = reader.streams().to_vec();
    assert_eq!(streams.len(), 3);
    // Name order: RawUnitTestData < UnitTestMessageA < UnitTestMessageB.
    assert_eq!(streams[0].message_type, None, "raw stream has no type");
    assert_eq!(streams[0].files, vec![fixture("RawUnitTestData.log")]);
    assert_eq!(streams[1].message_type.as_deref(), Some(A));
    assert_eq!(streams[2].message_type.as_deref(), Some(B));
    assert!(reader.headers()[0].as_ref().unwrap().raw);
    assert!(!reader.headers()[1].as_ref().unwrap().raw);

    let records = drain(&mut reader).unwrap();
    assert_eq!(records.len(), 30);
    let want = expected_fixture(&[
        ("RawUnitTestData.log", 0),
        ("UnitTestMessageA.log", 1),
        ("UnitTestMessageB.log", 2),
    ]);
    assert_eq!(triples(&records), want);
    // The tie at 1.0 s: raw (first file by name) before B.
    let at_one: Vec<u32> = records
        .iter()
        .filter(|r| r.time_ns == SEC)
        .map(|r| r.stream)
        .collect();
    assert_eq!(at_one, vec![0, 2]);
    assert_eq!(to_hex(&records.last().unwrap().payload)[..6], *"dc0051");
    assert_eq!(records.last().unwrap().time_ns, 10 * SEC);
}

#[test]
fn fixture_time_window_is_inclusive() {
    let mut reader =
        open_directory(&fixture_dir(), &window(Some(50 * MS), Some(300 * MS))).unwrap();
    let records = drain(&mut reader).unwrap();
    assert_eq!(
        times(&records),
        vec![
            50 * MS,
            60 * MS,
            70 * MS,
            80 * MS,
            90 * MS,
            100 * MS,
            200 * MS,
            300 * MS
        ]
    );
    assert_eq!(
        records.iter().map(|r| r.stream).collect::<Vec<_>>(),
        vec![0, 0, 0, 0, 0, 1, 1, 1]
    );

    let only_min =
        drain(&mut open_directory(&fixture_dir(), &window(Some(900 * MS), None)).unwrap()).unwrap();
    assert_eq!(times(&only_min), vec![900 * MS, SEC]);

    let only_max =
        drain(&mut open_directory(&fixture_dir(), &window(None, Some(10 * MS))).unwrap()).unwrap();
    assert_eq!(times(&only_max), vec![0, 10 * MS]);

    // Between two records: nothing.
    let empty =
        drain(&mut open_directory(&fixture_dir(), &window(Some(91 * MS), Some(99 * MS))).unwrap())
            .unwrap();
    assert!(empty.is_empty(), "{empty:?}");

    // Exactly one instant.
    let one =
        drain(&mut open_directory(&fixture_dir(), &window(Some(SEC), Some(SEC))).unwrap()).unwrap();
    assert_eq!(times(&one), vec![SEC]);
    assert_eq!(one[0].stream, 1);

    // The window applies to open_file too.
    let file = drain(
        &mut open_file(
            &fixture("UnitTestMessageB.log"),
            &window(Some(250 * MS), Some(450 * MS)),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(times(&file), vec![300 * MS, 400 * MS]);
}

#[test]
fn fixture_open_file_reads_one_file() {
    let mut reader = open_file(&fixture("UnitTestMessageB.log"), &opts()).unwrap();
    assert_eq!(reader.streams().len(), 1);
    assert_eq!(reader.streams()[0].message_type.as_deref(), Some(B));
    let records = drain(&mut reader).unwrap();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.stream == 0 && r.topic.is_empty()));
    assert_eq!(
        triples(&records),
        expected_fixture(&[("UnitTestMessageB.log", 0)])
    );

    // A raw file opened on its own is read (include_raw is a directory matter).
    let raw = drain(&mut open_file(&fixture("RawUnitTestData.log"), &opts()).unwrap()).unwrap();
    assert_eq!(raw.len(), 10);
    assert_eq!(raw[0].payload, vec![0x90]);
    assert_eq!(raw[1].payload, vec![0x91, 0x00]);
}

#[test]
fn fixture_headers() {
    let a = open_file(&fixture("UnitTestMessageA.log"), &opts()).unwrap();
    let h = a.header().expect("A has a header");
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(
        h.revision.as_deref(),
        Some("ffff000000000000000000000000000000000000")
    );
    assert_eq!(h.created.as_deref(), Some("1970-01-01 00:00:00"));
    assert_eq!(h.message_type.as_deref(), Some(A));
    assert!(!h.raw);

    let raw = open_file(&fixture("RawUnitTestData.log"), &opts()).unwrap();
    let h = raw.header().expect("raw has a header");
    assert!(h.raw);
    assert_eq!(h.message_type, None);
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.revision.as_deref(), Some(""), "empty revision");
    assert_eq!(h.created.as_deref(), Some("1970-01-01 00:00:00"));
    assert_eq!(raw.streams()[0].message_type, None);

    let dir = open_directory(&fixture_dir(), &opts()).unwrap();
    let types: Vec<Option<String>> = dir
        .headers()
        .iter()
        .map(|h| h.as_ref().unwrap().message_type.clone())
        .collect();
    assert_eq!(types, vec![Some(A.to_string()), Some(B.to_string())]);
    assert_eq!(dir.header().unwrap().message_type.as_deref(), Some(A));
}

#[test]
fn fixture_reset_rewinds_and_data_pending() {
    let mut reader = open_directory(&fixture_dir(), &opts()).unwrap();
    assert!(reader.is_data_pending(), "pending before the first read");
    let first: Vec<Record> = (0..7)
        .map(|_| reader.next_record().unwrap().unwrap())
        .collect();
    assert!(reader.is_data_pending());
    reader.reset().unwrap();
    assert!(reader.is_data_pending(), "pending after reset");
    let all = drain(&mut reader).unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(&all[..7], &first[..]);
    assert!(!reader.is_data_pending(), "not pending at the end");
    assert_eq!(reader.next_record().unwrap(), None);

    // Reset after the end: the same 20 again.
    reader.reset().unwrap();
    assert!(reader.is_data_pending());
    assert_eq!(drain(&mut reader).unwrap(), all);

    // Reset with a window keeps the window.
    let mut windowed = open_directory(&fixture_dir(), &window(Some(95 * MS), None)).unwrap();
    let once = drain(&mut windowed).unwrap();
    windowed.reset().unwrap();
    assert_eq!(drain(&mut windowed).unwrap(), once);
    assert_eq!(once.len(), 10);

    // A single file resets as well.
    let mut file = open_file(&fixture("UnitTestMessageA.log"), &opts()).unwrap();
    let once = drain(&mut file).unwrap();
    assert!(!file.is_data_pending());
    file.reset().unwrap();
    assert!(file.is_data_pending());
    assert_eq!(drain(&mut file).unwrap(), once);
}

// ------------------------------------------------------- generated: layout

#[test]
fn split_set_is_one_stream_via_open_file() {
    let dir = TempDir::new("split-file");
    let all = gen_records("Split", 9, 0, 10 * MS);
    let parts = write_split_set(dir.path(), "Prefix", "Split", &all);
    // Decoys: another prefix that starts the same, and a file being written.
    write_typed(
        &dir.join("Prefixed_000.log"),
        "Other",
        &gen_records("Other", 3, 0, MS),
    );
    write_log(
        &dir.join("Prefix_003.tmp"),
        None,
        &gen_records("Split", 2, SEC, MS),
    );

    let mut reader = open_file(&dir.join("Prefix"), &opts()).unwrap();
    assert_eq!(reader.streams().len(), 1);
    assert_eq!(reader.streams()[0].files, parts);
    assert_eq!(reader.streams()[0].message_type.as_deref(), Some("Split"));
    let header = reader.header().expect("first part's header");
    assert_eq!(header.created.as_deref(), Some(CREATED));
    let records = drain(&mut reader).unwrap();
    assert_eq!(as_gen(&records), all);
    assert!(records.iter().all(|r| r.stream == 0));

    // reset goes back to the first part.
    reader.reset().unwrap();
    assert_eq!(as_gen(&drain(&mut reader).unwrap()), all);

    // One part of the set can still be opened as a file.
    let middle = drain(&mut open_file(&parts[1], &opts()).unwrap()).unwrap();
    assert_eq!(as_gen(&middle), all[3..6].to_vec());
}

#[test]
fn split_set_in_a_directory() {
    let dir = TempDir::new("split-dir");
    let split = gen_records("Split", 9, 0, 10 * MS);
    let parts = write_split_set(dir.path(), "Prefix", "Split", &split);
    let zeta = gen_records("Zeta", 5, 5 * MS, 20 * MS);
    write_typed(&dir.join("Zeta.log"), "Zeta", &zeta);

    let mut reader = open_directory(dir.path(), &opts()).unwrap();
    let streams = reader.streams().to_vec();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].files, parts);
    assert_eq!(streams[0].message_type.as_deref(), Some("Split"));
    assert_eq!(streams[1].files, vec![dir.join("Zeta.log")]);
    let records = drain(&mut reader).unwrap();

    let mut want: Vec<(i64, u32, Vec<u8>)> = split
        .iter()
        .map(|g| (g.time_ns, 0, g.payload.clone()))
        .chain(zeta.iter().map(|g| (g.time_ns, 1, g.payload.clone())))
        .collect();
    want.sort_by_key(|w| w.0);
    assert_eq!(triples(&records), want);
}

#[test]
fn later_split_parts_may_repeat_a_header() {
    let dir = TempDir::new("split-headers");
    let all = gen_records("Split", 6, 0, MS);
    write_typed(&dir.join("P_000.log"), "Split", &all[..3]);
    // A repeated header (even a different one) in a later part is skipped.
    write_log(
        &dir.join("P_001.log"),
        Some((Some("Split"), "other")),
        &all[3..],
    );
    let mut reader = open_file(&dir.join("P"), &opts()).unwrap();
    assert_eq!(reader.header().unwrap().created.as_deref(), Some(CREATED));
    assert_eq!(as_gen(&drain(&mut reader).unwrap()), all);
    // In a directory only the first part's `created` counts.
    let mut reader = open_directory(dir.path(), &opts()).unwrap();
    assert_eq!(as_gen(&drain(&mut reader).unwrap()), all);
}

#[test]
fn headerless_single_file_via_open_file() {
    let dir = TempDir::new("headerless");
    let path = dir.join("bare.log");
    let recs = gen_records("Bare", 4, 0, 250 * MS);
    write_log(&path, None, &recs);
    let mut reader = open_file(&path, &opts()).unwrap();
    assert_eq!(reader.header(), None);
    assert_eq!(reader.streams()[0].message_type, None);
    assert_eq!(as_gen(&drain(&mut reader).unwrap()), recs);
}

#[test]
fn headerless_file_in_a_directory_is_a_layout_error_naming_it() {
    let dir = TempDir::new("bare-in-dir");
    write_typed(&dir.join("A.log"), "A", &gen_records("A", 2, 0, MS));
    let bare = dir.join("B.log");
    write_log(&bare, None, &gen_records("B", 2, 0, MS));
    let err = open_directory(dir.path(), &opts())
        .err()
        .expect("must fail");
    match &err {
        Error::Layout { path, reason } => {
            assert_eq!(path, &bare);
            assert!(reason.contains("no MCL header"), "{reason}");
        }
        other => panic!("expected a Layout error, got {other:?}"),
    }
    assert!(err.to_string().contains("B.log"), "{err}");

    // Alone in its directory, too.
    let alone = TempDir::new("bare-alone");
    let bare = alone.join("only.log");
    write_log(&bare, None, &gen_records("B", 2, 0, MS));
    match open_directory(alone.path(), &opts()).err() {
        Some(Error::Layout { path, reason }) => {
            assert_eq!(path, bare);
            assert!(reason.contains("no MCL header"), "{reason}");
        }
        other => panic!("expected a Layout error, got {other:?}"),
    }
}

#[test]
fn mismatched_created_in_a_directory_is_a_layout_error() {
    let dir = TempDir::new("created");
    write_log(
        &dir.join("A.log"),
        Some((Some("A"), "2024-01-01 00:00:00")),
        &gen_records("A", 2, 0, MS),
    );
    write_log(
        &dir.join("B.log"),
        Some((Some("B"), "2024-01-01 00:00:01")),
        &gen_records("B", 2, 0, MS),
    );
    let err = open_directory(dir.path(), &opts())
        .err()
        .expect("must fail");
    match &err {
        Error::Layout { path, reason } => {
            assert_eq!(path, &dir.join("B.log"));
            assert!(reason.contains("2024-01-01 00:00:00"), "{reason}");
            assert!(reason.contains("2024-01-01 00:00:01"), "{reason}");
        }
        other => panic!("expected a Layout error, got {other:?}"),
    }
}

#[test]
fn ties_keep_file_name_order_then_record_order() {
    let dir = TempDir::new("ties");
    let rec = |t: i64, ty: &str, i: u32| Gen::new(t, ty, i);
    let a = vec![rec(0, "A", 0), rec(0, "A", 1), rec(SEC, "A", 2)];
    let b = vec![rec(0, "B", 0), rec(SEC, "B", 1), rec(SEC, "B", 2)];
    let c = vec![rec(0, "C", 0), rec(SEC, "C", 1)];
    // Written in reverse name order, so that directory order cannot help.
    write_typed(&dir.join("c.log"), "C", &c);
    write_typed(&dir.join("b.log"), "B", &b);
    write_typed(&dir.join("a.log"), "A", &a);

    let records = drain(&mut open_directory(dir.path(), &opts()).unwrap()).unwrap();
    let got: Vec<(i64, u32, Vec<u8>)> = triples(&records);
    let want = vec![
        (0, 0, a[0].payload.clone()),
        (0, 0, a[1].payload.clone()),
        (0, 1, b[0].payload.clone()),
        (0, 2, c[0].payload.clone()),
        (SEC, 0, a[2].payload.clone()),
        (SEC, 1, b[1].payload.clone()),
        (SEC, 1, b[2].payload.clone()),
        (SEC, 2, c[1].payload.clone()),
    ];
    assert_eq!(got, want);
}

#[test]
fn topics_are_decoded() {
    let dir = TempDir::new("topics");
    let path = dir.join("t.log");
    let text = format!(
        "{}     0.1    'cam/front'    80\n     0.2    'cam/front'    01\n     0.3    \"it's\"    02\n     0.4    ''    03\n",
        header(Some("T"), CREATED).0
    );
    std::fs::write(&path, text).unwrap();
    let records = drain(&mut open_file(&path, &opts()).unwrap()).unwrap();
    let topics: Vec<&str> = records.iter().map(|r| &*r.topic).collect();
    assert_eq!(topics, vec!["cam/front", "cam/front", "it's", ""]);
    assert_eq!(records[2].payload, vec![0x02]);
}

// --------------------------------------------------- generated: malformed

/// A typed log with two good records, then `bad`, then one good record.
/// Returns the path, the good records, the bad line's number and byte offset.
fn write_with_bad_line(dir: &TempDir, name: &str, bad: &str) -> (PathBuf, Vec<Gen>, u64, u64) {
    let good = gen_records("M", 3, 0, 10 * MS);
    let (head, head_lines) = header(Some("M"), CREATED);
    let mut text = head;
    text.push_str(&record_line(good[0].time_ns, "", &good[0].payload));
    text.push_str(&record_line(good[1].time_ns, "", &good[1].payload));
    let offset = text.len() as u64;
    text.push_str(bad);
    text.push('\n');
    text.push_str(&record_line(
        good[2].time_ns + 20 * MS,
        "",
        &good[2].payload,
    ));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let mut expect = good;
    expect[2].time_ns += 20 * MS;
    (path, expect, head_lines + 3, offset)
}

const BAD_LINES: &[(&str, &str, &str)] = &[
    // (case, line, what the reason mentions)
    ("bad-hex", "     0.02000    ''          83zz00", "hex"),
    ("odd-hex", "     0.02000    ''          83a", "odd"),
    ("bad-time", "     0.0x000    ''          8300", "time"),
    ("missing-payload", "     0.02000    ''", "payload"),
    ("missing-columns", "     0.02000", "missing"),
    ("unquoted-topic", "     0.02000    topic     8300", "topic"),
    // Valid hex, but not one msgpack value: a never-used byte, a map cut
    // inside its key, an array short of its elements, a value and more.
    (
        "never-used-byte",
        "     0.02000    ''          c1c1c1",
        "msgpack",
    ),
    ("cut-map", "     0.02000    ''          81a37365", "msgpack"),
    ("short-array", "     0.02000    ''          9301", "msgpack"),
    (
        "trailing-bytes",
        "     0.02000    ''          0102",
        "msgpack",
    ),
    // Outside the one range of log times that the writer also keeps to.
    (
        "time-out-of-range",
        "9223372035.9    ''          01",
        "time",
    ),
];

#[test]
fn malformed_lines_name_file_line_and_snippet() {
    for (case, bad, mention) in BAD_LINES {
        let dir = TempDir::new(case);
        let (path, good, line_no, offset) = write_with_bad_line(&dir, "m.log", bad);
        let mut reader = open_file(&path, &opts()).unwrap();
        let (before, err) = drain_until_error(&mut reader);
        // Records before the malformed line come first.
        assert_eq!(as_gen(&before), good[..2].to_vec(), "{case}");
        let err = err.unwrap_or_else(|| panic!("{case}: no error"));
        match &err {
            Error::Malformed {
                path: p,
                line,
                byte_offset,
                reason,
                snippet,
            } => {
                assert_eq!(p, &path, "{case}");
                assert_eq!(*line, line_no, "{case}");
                assert_eq!(*byte_offset, offset, "{case}");
                assert!(snippet.contains(bad.trim()), "{case}: snippet {snippet:?}");
                assert!(
                    reason.to_lowercase().contains(mention),
                    "{case}: reason {reason:?} should mention {mention}"
                );
            }
            other => panic!("{case}: expected Malformed, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("{}:{}", path.display(), line_no)),
            "{case}: {text}"
        );
    }
}

#[test]
fn malformed_lines_are_skipped_and_counted_on_request() {
    for (case, bad, _) in BAD_LINES {
        let dir = TempDir::new(case);
        let (path, good, _, _) = write_with_bad_line(&dir, "m.log", bad);
        let mut reader = open_file(&path, &skip()).unwrap();
        assert_eq!(reader.skipped(), 0);
        let records = drain(&mut reader).expect("skip mode does not fail");
        assert_eq!(as_gen(&records), good, "{case}");
        assert_eq!(reader.skipped(), 1, "{case}");
    }
    // Several bad lines, in a directory.
    let dir = TempDir::new("skip-dir");
    let (_, good, _, _) = write_with_bad_line(&dir, "a.log", "zzz");
    let (_, _, _, _) = write_with_bad_line(&dir, "b.log", "     1.0 '' 8");
    let mut reader = open_directory(dir.path(), &skip()).unwrap();
    let records = drain(&mut reader).unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(reader.skipped(), 2);
    assert_eq!(as_gen(&records[..1]), good[..1].to_vec());
}

#[test]
fn malformed_line_in_a_directory_after_the_records_before_it() {
    let dir = TempDir::new("malformed-dir");
    let (path, good, line_no, _) =
        write_with_bad_line(&dir, "a.log", "     0.02000    ''          xx");
    let b = vec![Gen::new(5 * MS, "B", 0), Gen::new(500 * MS, "B", 1)];
    write_typed(&dir.join("b.log"), "B", &b);
    let mut reader = open_directory(dir.path(), &opts()).unwrap();
    let (before, err) = drain_until_error(&mut reader);
    let got: Vec<(i64, u32)> = before.iter().map(|r| (r.time_ns, r.stream)).collect();
    assert_eq!(got, vec![(0, 0), (5 * MS, 1), (10 * MS, 0)]);
    assert_eq!(before[2].payload, good[1].payload);
    match err {
        Some(Error::Malformed { path: p, line, .. }) => {
            assert_eq!(p, path);
            assert_eq!(line, line_no);
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn crlf_and_blank_lines_are_accepted() {
    let dir = TempDir::new("crlf");
    let path = dir.join("crlf.log");
    let recs = gen_records("C", 3, 0, MS);
    let mut text = header(Some("C"), CREATED).0.replace('\n', "\r\n");
    for r in &recs {
        text.push_str("\r\n   \r\n");
        text.push_str(&record_line(r.time_ns, "", &r.payload).replace('\n', "\r\n"));
    }
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        as_gen(&drain(&mut open_file(&path, &opts()).unwrap()).unwrap()),
        recs
    );
}

// ------------------------------------------------- generated: edge cases

#[test]
fn empty_file_has_no_records_and_no_error() {
    let dir = TempDir::new("empty");
    let path = dir.join("empty.log");
    std::fs::write(&path, "").unwrap();
    let mut reader = open_file(&path, &opts()).unwrap();
    assert_eq!(reader.header(), None);
    assert_eq!(drain(&mut reader).unwrap(), vec![]);
    reader.reset().unwrap();
    assert_eq!(drain(&mut reader).unwrap(), vec![]);

    // A header and nothing else.
    let path = dir.join("header-only.log");
    write_typed(&path, "H", &[]);
    let mut reader = open_file(&path, &opts()).unwrap();
    assert!(reader.header().is_some());
    assert_eq!(drain(&mut reader).unwrap(), vec![]);

    // A typed file with no records in a directory next to others.
    write_typed(&dir.join("other.log"), "O", &gen_records("O", 2, 0, MS));
    std::fs::remove_file(dir.join("empty.log")).unwrap();
    let records = drain(&mut open_directory(dir.path(), &opts()).unwrap()).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.stream == 1));
}

#[test]
fn directory_without_logs_is_an_error() {
    let dir = TempDir::new("nologs");
    let err = open_directory(dir.path(), &opts())
        .err()
        .expect("empty dir");
    assert!(
        matches!(&err, Error::Layout { path, .. } if path == dir.path()),
        "{err:?}"
    );
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    write_typed(&dir.join("A_000.tmp"), "A", &gen_records("A", 2, 0, MS));
    std::fs::create_dir(dir.join("sub.log")).unwrap();
    let err = open_directory(dir.path(), &opts()).err().expect("no .log");
    assert!(
        matches!(&err, Error::Layout { path, .. } if path == dir.path()),
        "{err:?}"
    );
}

#[test]
fn missing_path_is_an_io_error_naming_it() {
    let dir = TempDir::new("missing");
    let missing = dir.join("nope.log");
    let err = open_file(&missing, &opts()).err().expect("missing file");
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.log"), "{err}");

    let missing_dir = dir.join("nodir");
    let err = open_directory(&missing_dir, &opts())
        .err()
        .expect("missing dir");
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &missing_dir),
        "{err:?}"
    );
    assert!(err.to_string().contains("nodir"), "{err}");

    // A prefix in a directory that does not exist.
    let deep = dir.join("nodir").join("Prefix");
    let err = open_file(&deep, &opts()).err().expect("missing prefix");
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &deep),
        "{err:?}"
    );

    // A directory given to open_file.
    let err = open_file(dir.path(), &opts()).err().expect("a directory");
    assert!(matches!(&err, Error::Io { .. }), "{err:?}");
}

// ------------------------------------------------------------ truncation

const TRUNCATE_ENV: &str = "NETREPLAY_TEST_TRUNCATE_FILE";
const TRUNCATE_LEN_ENV: &str = "NETREPLAY_TEST_TRUNCATE_LEN";

/// The work of `truncated_file_gives_an_error_not_a_crash`, run in a child
/// process so that a SIGBUS shows as a failed test instead of killing the
/// whole test binary. Does nothing when run directly.
#[test]
#[ignore = "helper: run in a child process by truncated_file_gives_an_error_not_a_crash"]
fn truncate_child() {
    let Ok(path) = std::env::var(TRUNCATE_ENV) else {
        return;
    };
    let new_len: u64 = std::env::var(TRUNCATE_LEN_ENV).unwrap().parse().unwrap();
    let path = PathBuf::from(path);
    let original = std::fs::metadata(&path).unwrap().len();
    let mut reader = open_file(&path, &opts()).unwrap();
    let mut seen = 0u64;
    for _ in 0..5 {
        reader.next_record().unwrap().expect("a record");
        seen += 1;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(new_len)
        .unwrap();
    eprintln!("child: truncated {original} -> {new_len} bytes after {seen} records");
    let mut after = 0u64;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                after += 1;
                assert!(
                    r.payload.len() == 10,
                    "garbage record after truncation: {r:?}"
                );
                assert!(after < 1_000_000, "runaway");
            }
            Ok(None) => panic!("end of data without an error after {after} more records"),
            Err(e) => {
                eprintln!("child: error after {after} more records: {e}");
                assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
                println!("TRUNCATE-CHILD-OK");
                return;
            }
        }
    }
}

fn run_truncation(new_len: u64) {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("truncate");
    let path = dir.join("big.log");
    // ~2.5 MiB of records, each with a 10-byte payload.
    let mut text = header(Some("Big"), CREATED).0;
    let mut k: u32 = 0;
    while text.len() < (5 << 20) / 2 {
        // A msgpack bin of 8 bytes: the number, then filler.
        let mut payload = vec![0xc4, 8];
        payload.extend_from_slice(&k.to_be_bytes());
        payload.extend_from_slice(&[0xab; 4]);
        text.push_str(&record_line(i64::from(k) * MS, "", &payload));
        k += 1;
    }
    std::fs::write(&path, &text).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 2 << 20);

    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "truncate_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TRUNCATE_ENV, &path)
        .env(TRUNCATE_LEN_ENV, new_len.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(signal) = output.status.signal() {
        panic!(
            "the reader CRASHED with signal {signal}{} when the file shrank to {new_len} bytes \
             while being read.\nchild stderr:\n{stderr}",
            if signal == libc::SIGBUS {
                " (SIGBUS)"
            } else {
                ""
            }
        );
    }
    assert!(
        output.status.success() && stdout.contains("TRUNCATE-CHILD-OK"),
        "child failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

#[test]
fn truncated_file_gives_an_error_not_a_crash() {
    run_truncation(100);
}

#[test]
fn file_truncated_to_zero_gives_an_error_not_a_crash() {
    run_truncation(0);
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A split set of 1,100 parts is read one part at a time (it used to map
/// every part up front, past the SIGBUS guard's 1,024 slots), and a cut in
/// its part 1,099 while that part is read is an error naming it.
#[test]
fn a_split_set_of_1100_parts_opens_one_part_at_a_time() {
    let dir = TempDir::new("split-1100");
    let all = gen_records("Many", 2200, 0, MS);
    let mut parts = Vec::new();
    for (i, chunk) in all.chunks(2).enumerate() {
        let path = dir.join(&format!("Many_{i:04}.log"));
        let header = (i == 0).then_some((Some("Many"), CREATED));
        write_log(&path, header, chunk);
        parts.push(path);
    }
    let before = open_descriptors();
    let mut reader = open_file(&dir.join("Many"), &opts()).unwrap();
    assert_eq!(reader.streams()[0].files, parts);
    // Other tests of this binary run beside this one: a bound, not an equality.
    assert!(open_descriptors() < before + 20, "parts opened up front");
    let mut got = Vec::new();
    while got.len() < 2198 {
        got.push(reader.next_record().unwrap().expect("a record"));
    }
    assert!(open_descriptors() < before + 20, "finished parts stay open");
    // Part 1,099 is open (the merge has read ahead into it): cut it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&parts[1099])
        .unwrap()
        .set_len(0)
        .unwrap();
    let (rest, err) = drain_until_error(&mut reader);
    // What was read before the cut, and nothing else.
    got.extend(rest);
    assert!(got.len() < 2200, "read past the cut");
    match err {
        Some(Error::Io { path, message }) => {
            assert_eq!(path, parts[1099]);
            assert!(message.contains("shrank"), "{message}");
        }
        other => panic!("expected the shrink error, got {other:?}"),
    }
    assert_eq!(as_gen(&got), all[..got.len()].to_vec());
    // A rewind starts again at part 0; a part deleted meanwhile is named.
    std::fs::remove_file(&parts[1]).unwrap();
    reader.reset().unwrap();
    let (first, err) = drain_until_error(&mut reader);
    assert_eq!(first.len(), 2);
    match err {
        Some(Error::Io { path, .. }) => assert_eq!(path, parts[1]),
        other => panic!("expected the missing part, got {other:?}"),
    }
}

/// A part cut before the reader reaches it — on a line boundary, where the
/// part would read as a shorter, valid file — is reported, not lost.
#[test]
fn a_split_part_cut_before_it_is_opened_is_reported() {
    let dir = TempDir::new("split-cut-ahead");
    let all = gen_records("Cut", 9, 0, 10 * MS);
    let parts = write_split_set(dir.path(), "Cut", "Cut", &all);
    let mut reader = open_file(&dir.join("Cut"), &opts()).unwrap();
    let first = reader.next_record().unwrap().unwrap();
    // Part 2 loses its last line: what remains is a valid, shorter log.
    let text = std::fs::read_to_string(&parts[2]).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 1;
    std::fs::write(&parts[2], &text[..cut]).unwrap();
    let (rest, err) = drain_until_error(&mut reader);
    let mut got = vec![first];
    got.extend(rest);
    assert_eq!(
        as_gen(&got),
        all[..6].to_vec(),
        "parts 0 and 1, then the error"
    );
    match err {
        Some(Error::Io { path, message }) => {
            assert_eq!(path, parts[2]);
            assert!(message.contains("shrank"), "{message}");
        }
        other => panic!("expected the shrink error, got {other:?}"),
    }
}
