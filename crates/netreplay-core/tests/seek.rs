//! Seeking the MCL readers (`RecordSource::seek`, `time_range`): files,
//! split sets, directories and time windows; ties, the ends, seeks both
//! ways, malformed lines, and a binary search fast on a large log.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use netreplay_core::engine::{open_directory, open_file, MergeReader};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::{OnError, RecordSource, TimeWindow};
use netreplay_core::{Error, Record};

fn opts() -> ReadOptions {
    ReadOptions::default()
}

fn window(min_ns: Option<i64>, max_ns: Option<i64>) -> ReadOptions {
    ReadOptions {
        window: TimeWindow { min_ns, max_ns },
        ..ReadOptions::default()
    }
}

fn times(records: &[Record]) -> Vec<i64> {
    records.iter().map(|r| r.time_ns).collect()
}

/// The records a seek to `t` must give: those of the full read from the
/// first with time >= t on (the full read is in time order, ties in the
/// stable order, so they are its suffix).
fn suffix(full: &[Record], t: i64) -> &[Record] {
    &full[full.partition_point(|r| r.time_ns < t)..]
}

/// Seek to `t` and read to the end: the suffix of `full` from `t`.
fn assert_seek(reader: &mut dyn RecordSource, full: &[Record], t: i64) {
    reader.seek(t).unwrap();
    assert!(reader.is_data_pending(), "t {t}");
    let got = drain(reader).unwrap();
    assert_eq!(got, suffix(full, t), "t {t}");
    assert!(!reader.is_data_pending(), "t {t}");
}

/// xorshift: deterministic "random" numbers without a dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// `n` records of type `ty` in time order from `start_ns`: runs of equal
/// times, gaps from a microsecond to seconds.
fn irregular_records(seed: &mut u64, ty: &str, n: u32, start_ns: i64) -> Vec<Gen> {
    let mut t = start_ns;
    (0..n)
        .map(|i| {
            t += [0, 0, 1_000, 10 * MS, 250 * MS, 3 * SEC][rng(seed) as usize % 6];
            Gen::new(t, ty, i)
        })
        .collect()
}

/// The body lines of `records`, with blank lines, comment lines and CRLF
/// line ends among them.
fn irregular_body(seed: &mut u64, records: &[Gen]) -> String {
    let mut text = String::new();
    for r in records {
        match rng(seed) % 8 {
            0 => text.push('\n'),
            1 => text.push_str("# a comment: 1.0 '' 80\n"),
            2 => text.push_str("   \t\r\n"),
            _ => {}
        }
        let line = record_line(r.time_ns, &r.topic, &r.payload);
        if rng(seed) % 3 == 0 {
            text.push_str(line.trim_end_matches('\n'));
            text.push_str("\r\n");
        } else {
            text.push_str(&line);
        }
    }
    text
}

/// A typed log of `records` written the irregular way.
fn write_irregular(seed: &mut u64, path: &Path, ty: &str, records: &[Gen]) {
    let text = header(Some(ty), CREATED).0 + &irregular_body(seed, records);
    std::fs::write(path, text).unwrap();
}

/// A split set `<prefix>_00N.log` of `records` in `parts` parts written the
/// irregular way, cut at random places (a run of equal times may span two
/// parts; a part may be empty).
fn write_irregular_split(
    seed: &mut u64,
    dir: &Path,
    prefix: &str,
    ty: &str,
    records: &[Gen],
    parts: usize,
) -> Vec<PathBuf> {
    let mut cuts: Vec<usize> = (1..parts)
        .map(|_| rng(seed) as usize % (records.len() + 1))
        .collect();
    cuts.sort();
    cuts.insert(0, 0);
    cuts.push(records.len());
    (0..parts)
        .map(|i| {
            let path = dir.join(format!("{prefix}_{i:03}.log"));
            let mut text = if i == 0 {
                header(Some(ty), CREATED).0
            } else {
                String::new()
            };
            text.push_str(&irregular_body(seed, &records[cuts[i]..cuts[i + 1]]));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// 400 targets in random order: at, just before and just after record
/// times, anywhere in between, and the ends.
fn targets(seed: &mut u64, full: &[Record]) -> Vec<i64> {
    let mut out = vec![i64::MIN, -1, 0, i64::MAX];
    let (Some(first), Some(last)) = (full.first(), full.last()) else {
        return out;
    };
    out.extend([first.time_ns, last.time_ns, last.time_ns + 1]);
    let span = (last.time_ns - first.time_ns).max(1) as u64;
    while out.len() < 400 {
        let at = full[rng(seed) as usize % full.len()].time_ns;
        out.push(match rng(seed) % 4 {
            0 => at - 1,
            1 => at + 1,
            2 => first.time_ns + (rng(seed) % span) as i64,
            _ => at,
        });
    }
    for i in (1..out.len()).rev() {
        out.swap(i, rng(seed) as usize % (i + 1));
    }
    out
}

/// For each target: read a random number of records (so seeks go both
/// ways, from anywhere), seek, read to the end, compare with the suffix.
fn check_random_seeks(seed: &mut u64, reader: &mut dyn RecordSource, full: &[Record]) {
    let targets = targets(seed, full);
    for (i, t) in targets.into_iter().enumerate() {
        let ahead = rng(seed) as usize % (full.len() + 2);
        for _ in 0..ahead {
            if reader.next_record().unwrap().is_none() {
                break;
            }
        }
        // Every few seeks, a full read first: seeks from the end too.
        if i % 7 == 0 {
            drain(reader).unwrap();
        }
        assert_seek(reader, full, t);
    }
}

// ------------------------------------------------------------ one file

#[test]
fn seek_to_a_record_between_records_and_past_either_end() {
    let dir = TempDir::new("seek-file");
    let path = dir.join("f.log");
    write_typed(&path, "F", &gen_records("F", 10, 0, 10 * MS));
    let mut reader = open_file(&path, &opts()).unwrap();
    let full = drain(&mut reader).unwrap();
    assert_eq!(full.len(), 10);

    reader.seek(30 * MS).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().time_ns, 30 * MS);
    reader.seek(35 * MS).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().time_ns, 40 * MS);
    reader.seek(-SEC).unwrap();
    assert_eq!(drain(&mut reader).unwrap(), full);
    reader.seek(90 * MS + 1).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    assert!(!reader.is_data_pending());
    // After the end, and after a seek past it, a seek back reads again.
    reader.seek(90 * MS).unwrap();
    assert!(reader.is_data_pending());
    assert_eq!(times(&drain(&mut reader).unwrap()), [90 * MS]);
    for t in [0, 5 * MS, 10 * MS, 45 * MS, 89 * MS, 90 * MS, 91 * MS] {
        assert_seek(&mut reader, &full, t);
    }
}

#[test]
fn a_seek_to_a_run_of_equal_times_lands_on_its_first_record() {
    let dir = TempDir::new("seek-ties");
    let path = dir.join("t.log");
    let t = |ms: i64, i: u32| Gen::new(ms * MS, "T", i);
    let records = vec![
        t(0, 0),
        t(10, 1),
        t(10, 2),
        t(10, 3),
        t(20, 4),
        t(20, 5),
        t(30, 6),
    ];
    write_typed(&path, "T", &records);
    let mut reader = open_file(&path, &opts()).unwrap();
    let full = drain(&mut reader).unwrap();
    for (at, first) in [(10, 1), (5, 1), (11, 4), (20, 4), (30, 6)] {
        reader.seek(at * MS).unwrap();
        let got = reader.next_record().unwrap().unwrap();
        assert_eq!(got.payload, records[first].payload, "seek to {at} ms");
        assert_seek(&mut reader, &full, at * MS);
    }
}

#[test]
fn seek_then_read_to_the_end_is_the_suffix_of_a_full_read() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let dir = TempDir::new("seek-property-file");
    let path = dir.join("p.log");
    let records = irregular_records(&mut seed, "P", 3000, 0);
    write_irregular(&mut seed, &path, "P", &records);
    let mut reader = open_file(&path, &opts()).unwrap();
    let full = drain(&mut reader).unwrap();
    assert_eq!(full.len(), 3000);
    check_random_seeks(&mut seed, &mut reader, &full);
}

// ------------------------------------------------------------ split sets

#[test]
fn seek_across_the_parts_of_a_split_set() {
    let dir = TempDir::new("seek-split");
    let all = gen_records("S", 9, 0, 10 * MS);
    write_split_set(dir.path(), "S", "S", &all);
    let mut reader = open_file(&dir.join("S"), &opts()).unwrap();
    let full = drain(&mut reader).unwrap();
    assert_eq!(full.len(), 9);
    // Parts hold 0-20, 30-50, 60-80 ms: into part 2 of 3, at its first
    // record, at the last of part 1, between parts, and back.
    for t in [40, 30, 20, 25, 60, 55, 80, 0, 81] {
        assert_seek(&mut reader, &full, t * MS);
    }
}

#[test]
fn seeks_in_split_sets_with_ties_across_parts_and_empty_parts() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..6 {
        let dir = TempDir::new("seek-property-split");
        let records = irregular_records(&mut seed, "S", 600, round * SEC);
        let parts = write_irregular_split(&mut seed, dir.path(), "S", "S", &records, 5);
        let mut reader = open_file(&dir.join("S"), &opts()).unwrap();
        assert_eq!(reader.streams()[0].files, parts);
        let full = drain(&mut reader).unwrap();
        assert_eq!(full.len(), 600);
        check_random_seeks(&mut seed, &mut reader, &full);
    }
}

// ------------------------------------------------------------ directories

#[test]
fn seek_in_a_directory_keeps_ties_in_input_order() {
    let dir = TempDir::new("seek-dir-ties");
    let rec = |t: i64, ty: &str, i: u32| Gen::new(t, ty, i);
    let a = vec![rec(0, "A", 0), rec(SEC, "A", 1), rec(SEC, "A", 2)];
    let b = vec![rec(SEC, "B", 0), rec(SEC, "B", 1), rec(2 * SEC, "B", 2)];
    let c = vec![rec(0, "C", 0), rec(SEC, "C", 1)];
    write_typed(&dir.join("c.log"), "C", &c);
    write_typed(&dir.join("b.log"), "B", &b);
    write_typed(&dir.join("a.log"), "A", &a);
    let mut reader = open_directory(dir.path(), &opts()).unwrap();
    let full = drain(&mut reader).unwrap();
    reader.seek(SEC).unwrap();
    let got: Vec<(u32, Vec<u8>)> = drain(&mut reader)
        .unwrap()
        .into_iter()
        .map(|r| (r.stream, r.payload))
        .collect();
    let want = vec![
        (0, a[1].payload.clone()),
        (0, a[2].payload.clone()),
        (1, b[0].payload.clone()),
        (1, b[1].payload.clone()),
        (2, c[1].payload.clone()),
        (1, b[2].payload.clone()),
    ];
    assert_eq!(got, want);
    for t in [-1, 0, 1, SEC - 1, SEC, SEC + 1, 2 * SEC, 2 * SEC + 1] {
        assert_seek(&mut reader, &full, t);
    }
}

#[test]
fn seeks_in_a_directory_of_files_and_split_sets() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let dir = TempDir::new("seek-property-dir");
    let a = irregular_records(&mut seed, "A", 1200, 0);
    let b = irregular_records(&mut seed, "B", 900, 5 * SEC);
    let c = irregular_records(&mut seed, "C", 700, 0);
    write_irregular(&mut seed, &dir.join("A.log"), "A", &a);
    write_irregular_split(&mut seed, dir.path(), "B", "B", &b, 4);
    write_irregular(&mut seed, &dir.join("C.log"), "C", &c);
    let mut reader = open_directory(dir.path(), &opts()).unwrap();
    assert_eq!(reader.streams().len(), 3);
    let full = drain(&mut reader).unwrap();
    assert_eq!(full.len(), 2800);
    check_random_seeks(&mut seed, &mut reader, &full);
}

// ------------------------------------------------------------ time windows

#[test]
fn a_windowed_reader_seeks_within_its_window() {
    let dir = TempDir::new("seek-window");
    let path = dir.join("w.log");
    write_typed(&path, "W", &gen_records("W", 10, 0, 10 * MS));
    let mut reader = open_file(&path, &window(Some(25 * MS), Some(65 * MS))).unwrap();
    let full = drain(&mut reader).unwrap();
    assert_eq!(times(&full), [30 * MS, 40 * MS, 50 * MS, 60 * MS]);
    // Before the window: its first record; past it: nothing.
    reader.seek(0).unwrap();
    assert_eq!(drain(&mut reader).unwrap(), full);
    reader.seek(45 * MS).unwrap();
    assert_eq!(times(&drain(&mut reader).unwrap()), [50 * MS, 60 * MS]);
    reader.seek(66 * MS).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    for t in [
        i64::MIN,
        25 * MS,
        30 * MS,
        31 * MS,
        60 * MS,
        61 * MS,
        i64::MAX,
    ] {
        assert_seek(&mut reader, &full, t);
    }
}

/// A reader without seek (the trait's default): only reads and rewinds.
struct Unseekable(VecSource);

impl RecordSource for Unseekable {
    fn next_record(&mut self) -> netreplay_core::Result<Option<netreplay_core::Record>> {
        self.0.next_record()
    }
    fn reset(&mut self) -> netreplay_core::Result<()> {
        self.0.reset()
    }
    fn is_data_pending(&self) -> bool {
        self.0.is_data_pending()
    }
    fn streams(&self) -> &[netreplay_core::StreamInfo] {
        self.0.streams()
    }
}

#[test]
fn a_merge_of_readers_that_cannot_seek_says_so() {
    let source = Box::new(Unseekable(VecSource::new(numbered(3, MS))));
    let mut merge = MergeReader::new(vec![source], TimeWindow::default());
    match merge.seek(MS) {
        Err(Error::State(message)) => assert!(message.contains("cannot seek"), "{message}"),
        other => panic!("expected a state error, got {other:?}"),
    }
    assert_eq!(merge.time_range().unwrap(), None);
}

// ------------------------------------------------------------ malformed lines

/// A typed log of 10 records at 10 ms steps with malformed lines after the
/// 3rd and the 7th record: one whose time does not parse (seeks pass it
/// over), one whose payload does not; returns the path and those lines'
/// numbers and byte offsets.
fn write_with_bad_lines(dir: &TempDir, name: &str) -> (PathBuf, [(u64, u64); 2]) {
    let good = gen_records("M", 10, 0, 10 * MS);
    let mut text = header(Some("M"), CREATED).0;
    let mut bad = Vec::new();
    for (i, g) in good.iter().enumerate() {
        text.push_str(&record_line(g.time_ns, "", &g.payload));
        let junk = match i {
            2 => "   0.0x000    ''    80\n",
            6 => "     0.06500    ''    zz\n",
            _ => continue,
        };
        text.push('\n');
        bad.push((text.matches('\n').count() as u64 + 1, text.len() as u64));
        text.push_str(junk);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (path, [bad[0], bad[1]])
}

#[test]
fn a_malformed_line_after_a_seek_names_its_line() {
    let dir = TempDir::new("seek-malformed");
    let (path, bad) = write_with_bad_lines(&dir, "m.log");
    let mut reader = open_file(&path, &opts()).unwrap();
    // (seek to, records before the error, which malformed line). Lines
    // whose time does not parse between the last record before t and the
    // first from t are read after the seek.
    let cases = [
        (0, 3, 0),
        (25 * MS, 0, 0),
        (30 * MS, 0, 0),
        (35 * MS, 3, 1),
        (65 * MS, 0, 1),
    ];
    for (t, before, which) in cases {
        reader.seek(t).unwrap();
        let (got, err) = drain_until_error(&mut reader);
        assert_eq!(got.len(), before, "t {t}");
        match err {
            Some(Error::Malformed {
                path: p,
                line,
                byte_offset,
                ..
            }) => {
                assert_eq!(p, path);
                assert_eq!((line, byte_offset), bad[which], "t {t}");
            }
            other => panic!("t {t}: expected Malformed, got {other:?}"),
        }
    }
    // Past both: no error.
    reader.seek(66 * MS).unwrap();
    assert_eq!(drain(&mut reader).unwrap().len(), 3);
}

#[test]
fn a_malformed_line_in_a_later_part_names_its_line_in_that_part() {
    let dir = TempDir::new("seek-malformed-split");
    let mut text = header(Some("M"), CREATED).0;
    let records = gen_records("M", 6, 0, 10 * MS);
    for r in &records[..3] {
        text.push_str(&record_line(r.time_ns, "", &r.payload));
    }
    std::fs::write(dir.join("M_000.log"), text).unwrap();
    let mut part = String::new();
    for r in &records[3..] {
        part.push_str(&record_line(r.time_ns, "", &r.payload));
    }
    part.push_str("\n# trailing junk:\n     0.06000    ''    zz\n");
    std::fs::write(dir.join("M_001.log"), part).unwrap();
    let mut reader = open_file(&dir.join("M"), &opts()).unwrap();
    for t in [0, 40 * MS, 60 * MS] {
        reader.seek(t).unwrap();
        match drain_until_error(&mut reader).1 {
            Some(Error::Malformed { path, line, .. }) => {
                assert_eq!(path, dir.join("M_001.log"));
                assert_eq!(line, 6, "t {t}");
            }
            other => panic!("t {t}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn malformed_lines_after_a_seek_are_skipped_and_counted() {
    let dir = TempDir::new("seek-skip");
    let (path, _) = write_with_bad_lines(&dir, "s.log");
    let skip = ReadOptions {
        on_error: OnError::Skip,
        ..ReadOptions::default()
    };
    let mut reader = open_file(&path, &skip).unwrap();
    let full = drain(&mut reader).unwrap();
    assert_eq!(full.len(), 10);
    assert_eq!(reader.skipped(), 2);
    // (seek to, malformed lines read from there)
    let mut skipped = reader.skipped();
    let cases = [
        (0, 2),
        (25 * MS, 2),
        (30 * MS, 2),
        (35 * MS, 1),
        (65 * MS, 1),
        (66 * MS, 0),
    ];
    for (t, bad) in cases {
        assert_seek(&mut reader, &full, t);
        assert_eq!(reader.skipped() - skipped, bad, "t {t}");
        skipped = reader.skipped();
    }
}

// ------------------------------------------------------------ time_range

#[test]
fn time_range_of_files_split_sets_directories_and_windows() {
    let dir = TempDir::new("seek-range");
    let path = dir.join("F.log");
    write_typed(&path, "F", &gen_records("F", 10, 5 * MS, 10 * MS));
    let mut file = open_file(&path, &opts()).unwrap();
    assert_eq!(file.time_range().unwrap(), Some((5 * MS, 95 * MS)));
    // The read position stays where it was.
    let first = file.next_record().unwrap().unwrap();
    assert_eq!(first.time_ns, 5 * MS);
    assert_eq!(file.time_range().unwrap(), Some((5 * MS, 95 * MS)));
    assert_eq!(file.next_record().unwrap().unwrap().time_ns, 15 * MS);

    let split = TempDir::new("seek-range-split");
    write_split_set(split.path(), "S", "S", &gen_records("S", 9, SEC, MS));
    let mut set = open_file(&split.join("S"), &opts()).unwrap();
    assert_eq!(set.time_range().unwrap(), Some((SEC, SEC + 8 * MS)));
    assert_eq!(drain(&mut set).unwrap().len(), 9);

    // A directory: the earliest first and the latest last of its streams.
    write_typed(&dir.join("G.log"), "G", &gen_records("G", 3, 0, SEC));
    let mut both = open_directory(dir.path(), &opts()).unwrap();
    assert_eq!(both.time_range().unwrap(), Some((0, 2 * SEC)));

    // Windows clamp the range; one that misses every record leaves none.
    let windowed = |min, max| {
        open_directory(dir.path(), &window(min, max))
            .unwrap()
            .time_range()
            .unwrap()
    };
    assert_eq!(windowed(Some(MS), Some(SEC)), Some((MS, SEC)));
    assert_eq!(windowed(None, Some(50 * MS)), Some((0, 50 * MS)));
    assert_eq!(windowed(Some(3 * SEC), None), None);

    // Headers, comments and malformed lines are passed over at both ends.
    let odd = dir.join("odd");
    std::fs::create_dir(&odd).unwrap();
    let text = header(Some("O"), CREATED).0
        + "\n bad\n"
        + &record_line(7 * MS, "", &[0x80])
        + &record_line(9 * MS, "", &[0x80])
        + "# the end\r\n\n";
    std::fs::write(odd.join("O.log"), text).unwrap();
    let mut reader = open_file(&odd.join("O.log"), &opts()).unwrap();
    assert_eq!(reader.time_range().unwrap(), Some((7 * MS, 9 * MS)));
    let empty = odd.join("E.log");
    std::fs::write(&empty, header(Some("E"), CREATED).0).unwrap();
    assert_eq!(
        open_file(&empty, &opts()).unwrap().time_range().unwrap(),
        None
    );
}

// ------------------------------------------------------------ a large log

/// A typed log of about `bytes` bytes: lines of about 1 KiB at 1 ms steps.
fn write_large(path: &Path, bytes: usize) -> (usize, i64) {
    use std::io::Write as _;
    // A msgpack bin 16 of 480 bytes, as hex.
    let mut payload = vec![0xc5, 0x01, 0xdd];
    payload.extend((0..477u32).map(|i| i as u8));
    let hex = to_hex(&payload);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    out.write_all(header(Some("Big"), CREATED).0.as_bytes())
        .unwrap();
    let line_len = record_line(0, "", &payload).len();
    let lines = bytes / line_len;
    for k in 0..lines {
        let t = k as i64 * MS;
        writeln!(out, "{:>12}    ''          {hex}", secs(t)).unwrap();
    }
    out.flush().unwrap();
    (lines, (lines as i64 - 1) * MS)
}

#[test]
fn seeking_a_200_mb_log_is_a_binary_search() {
    let dir = TempDir::new("seek-large");
    let path = dir.join("Big.log");
    let (lines, last) = write_large(&path, 200 << 20);
    let mut reader = open_file(&path, &opts()).unwrap();
    let started = Instant::now();
    assert_eq!(reader.time_range().unwrap(), Some((0, last)));
    let range_took = started.elapsed();
    let mut took = Vec::new();
    for t in [
        last / 2,
        last - 7 * MS,
        3 * MS,
        last,
        last / 3 + MS / 2,
        0,
        last + 1,
    ] {
        let started = Instant::now();
        reader.seek(t).unwrap();
        let next = reader.next_record().unwrap();
        took.push(started.elapsed());
        // The record is the first at or after t (1 ms steps from 0).
        let want = (t + MS - 1) / MS * MS;
        assert_eq!(
            next.map(|r| r.time_ns),
            (want <= last).then_some(want),
            "t {t}"
        );
    }
    eprintln!(
        "{lines} lines, {} MB: time_range {range_took:?}, seek + first read {took:?}",
        std::fs::metadata(&path).unwrap().len() >> 20
    );
    // Well under 10 ms on a quiet machine; the bound allows a noisy one.
    let bound = Duration::from_millis(50);
    assert!(range_took < bound, "time_range took {range_took:?}");
    for d in &took {
        assert!(*d < bound, "a seek took {d:?}: {took:?}");
    }
}
