//! BufferData on its own: filling, the ready latch, stop/start without loss,
//! reset, the end and error slots, data-pending semantics.

mod common;

use std::time::Duration;

use common::*;
use netreplay_core::engine::Slot;
use netreplay_core::engine::{open_directory, open_file};
use netreplay_core::engine::{BufferData, BufferOptions, Queue};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::{OnError, RecordSource};
use netreplay_core::{Error, Record};

const T: Duration = Duration::from_secs(10);

fn buffer(records: Vec<Record>, length: usize) -> BufferData {
    BufferData::new(
        Box::new(VecSource::new(records)),
        BufferOptions {
            length,
            ..BufferOptions::default()
        },
    )
    .unwrap()
}

/// Pop one slot, waiting for the producer if the ring is momentarily empty.
fn pop_wait(queue: &Queue) -> Slot {
    let start = std::time::Instant::now();
    loop {
        if let Some(slot) = queue.pop().unwrap() {
            return slot;
        }
        assert!(start.elapsed() < T, "no slot within {T:?}");
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn record(slot: Slot) -> Record {
    match slot {
        Slot::Record(r) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

/// Pop records until the end slot; panics on an error slot.
fn pop_to_end(queue: &Queue) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        match pop_wait(queue) {
            Slot::Record(r) => out.push(number_of(&r)),
            Slot::End => return out,
            Slot::Error(e) => panic!("error slot: {e}"),
            other => panic!("unexpected slot {other:?}"),
        }
    }
}

#[test]
fn fills_to_length_then_ready_latches() {
    let mut buf = buffer(numbered(100, MS), 10);
    assert!(!buf.is_ready(), "not ready before start");
    assert!(!buf.is_data_pending(), "not pending before start");
    assert_eq!(buf.queue().size(), 0);
    assert_eq!(buf.queue().capacity(), 10);

    assert!(buf.start().unwrap(), "first start starts");
    assert!(!buf.start().unwrap(), "second start is a no-op");
    assert!(buf.is_data_pending(), "pending right after start");
    wait_for("ready", T, || buf.is_ready());
    // Full, and it stays at the bound.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(buf.queue().size(), 10);
    assert!(buf.is_alive(), "producer waits on the full ring");
    assert!(buf.is_data_pending());

    // Take records one by one: the latch holds while the ring drains.
    let first = record(buf.queue().pop().unwrap().expect("a record"));
    assert_eq!(number_of(&first), 0);
    assert_eq!(first.time_ns, 0);
    assert!(buf.is_ready());
    let mut got = vec![0];
    got.extend(pop_to_end(buf.queue()));
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(buf.is_ready());
    // Nothing after the end slot.
    assert!(buf.queue().pop().unwrap().is_none());
    wait_for("not pending after the end", T, || !buf.is_data_pending());
    wait_for("producer exits after the end", T, || !buf.is_alive());
    assert!(buf.queue().pop().unwrap().is_none());
    assert_eq!(buf.queue().size(), 0);
}

#[test]
fn ring_is_bounded_by_bytes() {
    // 4-byte payloads, empty topic: 40 bytes hold 10 records.
    let mut buf = BufferData::new(
        Box::new(VecSource::new(numbered(50, MS))),
        BufferOptions {
            length: 1000,
            max_bytes: 40,
        },
    )
    .unwrap();
    buf.start().unwrap();
    wait_for("ready", T, || buf.is_ready());
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(buf.queue().size(), 10);
    assert_eq!(buf.queue().bytes(), 40);
    assert_eq!(pop_to_end(buf.queue()), (0..50).collect::<Vec<_>>());
    assert_eq!(buf.queue().bytes(), 0);
}

/// The producer refills a full ring once a quarter of it is free, not at
/// every free slot: it wakes once per quarter of the ring, not per record.
#[test]
fn a_full_ring_is_refilled_when_a_quarter_is_free() {
    let mut buf = buffer(numbered(1_000, MS), 100);
    buf.start().unwrap();
    wait_for("ready", T, || buf.is_ready());
    let mut got = Vec::new();
    for _ in 0..24 {
        got.push(number_of(&record(pop_wait(buf.queue()))));
    }
    // The producer polls at least every millisecond: 30 ms is ample time
    // to see a refill that should not happen.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(buf.queue().size(), 76, "no refill before a quarter is free");
    got.push(number_of(&record(pop_wait(buf.queue()))));
    wait_for("refilled", T, || buf.queue().size() == 100);
    got.extend(pop_to_end(buf.queue()));
    assert_eq!(
        got,
        (0..1_000).collect::<Vec<_>>(),
        "nothing lost or repeated"
    );
}

#[test]
fn small_source_is_ready_at_its_end() {
    let mut buf = buffer(numbered(3, MS), 10);
    buf.start().unwrap();
    wait_for("ready at the end of the data", T, || buf.is_ready());
    wait_for("not pending", T, || !buf.is_data_pending());
    assert_eq!(buf.queue().size(), 4, "3 records and the end slot");
    assert_eq!(pop_to_end(buf.queue()), vec![0, 1, 2]);

    // An empty source: the first slot is the end.
    let mut empty = buffer(vec![], 4);
    empty.start().unwrap();
    assert!(matches!(pop_wait(empty.queue()), Slot::End));
    assert!(empty.queue().pop().unwrap().is_none());
}

#[test]
fn stop_start_cycles_lose_and_repeat_nothing() {
    let n = 1000u32;
    let mut buf = buffer(numbered(n, MS), 4);
    let mut got: Vec<u32> = Vec::new();
    let mut ended = false;
    let mut cycles = 0u32;
    while !ended {
        cycles += 1;
        assert!(cycles < 10_000, "no progress");
        buf.start().unwrap();
        // Take a few while the producer runs.
        for _ in 0..(cycles % 5) {
            match pop_wait(buf.queue()) {
                Slot::Record(r) => got.push(number_of(&r)),
                Slot::End => {
                    ended = true;
                    break;
                }
                Slot::Error(e) => panic!("{e}"),
                other => panic!("unexpected slot {other:?}"),
            }
        }
        if ended {
            break;
        }
        // Let the ring fill up, so the producer holds a record it could not
        // push when it is stopped.
        wait_for("full or ended", T, || {
            buf.queue().size() == 4 || !buf.is_data_pending()
        });
        if cycles % 3 != 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        buf.stop().unwrap();
        assert!(!buf.is_alive());
        // Take a few while stopped: nothing new may arrive meanwhile.
        let size = buf.queue().size();
        for _ in 0..(1 + cycles % 3).min(size as u32) {
            match buf.queue().pop().unwrap().expect("a slot while stopped") {
                Slot::Record(r) => got.push(number_of(&r)),
                Slot::End => {
                    ended = true;
                    break;
                }
                Slot::Error(e) => panic!("{e}"),
                other => panic!("unexpected slot {other:?}"),
            }
        }
        if !ended {
            assert_eq!(
                buf.queue().size(),
                size.saturating_sub((1 + cycles % 3) as usize),
                "the producer is stopped"
            );
        }
    }
    assert!(cycles > 50, "the test should stop the producer many times");
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "after {cycles} cycles");
    buf.stop().unwrap();
    assert!(buf.queue().pop().unwrap().is_none());
}

#[test]
fn stop_is_idempotent_and_keeps_pending() {
    let mut buf = buffer(numbered(100, MS), 4);
    assert!(!buf.stop().unwrap(), "stop before start");
    buf.start().unwrap();
    wait_for("ready", T, || buf.is_ready());
    assert!(buf.stop().unwrap());
    assert!(!buf.stop().unwrap());
    assert!(buf.is_ready(), "the latch survives stop");
    assert!(buf.is_data_pending(), "stop does not end the data");
    assert_eq!(buf.skipped(), Some(0));
    buf.start().unwrap();
    assert_eq!(pop_to_end(buf.queue()), (0..100).collect::<Vec<_>>());
}

#[test]
fn reset_flushes_and_starts_again_from_the_first_record() {
    let mut buf = buffer(numbered(50, MS), 8);
    buf.start().unwrap();
    wait_for("ready", T, || buf.is_ready());
    for want in 0..5 {
        assert_eq!(number_of(&record(pop_wait(buf.queue()))), want);
    }
    let epoch = buf.queue().epoch();
    // Reset while the producer runs.
    buf.reset().unwrap();
    assert!(!buf.is_alive());
    assert_eq!(buf.queue().size(), 0, "ring flushed");
    assert_eq!(buf.queue().bytes(), 0);
    assert!(buf.queue().epoch() > epoch, "a new epoch");
    assert!(!buf.is_ready(), "latch cleared");
    assert!(!buf.is_data_pending(), "not pending after reset");
    assert!(buf.queue().pop().unwrap().is_none());

    buf.start().unwrap();
    assert_eq!(pop_to_end(buf.queue()), (0..50).collect::<Vec<_>>());

    // Reset after the end, then again.
    wait_for("stopped", T, || !buf.is_alive());
    buf.reset().unwrap();
    assert!(!buf.is_data_pending());
    buf.start().unwrap();
    assert!(buf.is_data_pending());
    assert_eq!(pop_to_end(buf.queue()), (0..50).collect::<Vec<_>>());
}

#[test]
fn reset_rewinds_an_mcl_source() {
    let reader = open_directory(&fixture_dir(), &ReadOptions::default()).unwrap();
    let mut buf = BufferData::new(
        Box::new(reader),
        BufferOptions {
            length: 3,
            ..BufferOptions::default()
        },
    )
    .unwrap();
    buf.start().unwrap();
    let mut first_pass = Vec::new();
    for _ in 0..12 {
        first_pass.push(record(pop_wait(buf.queue())));
    }
    buf.reset().unwrap();
    buf.start().unwrap();
    let mut all = Vec::new();
    loop {
        match pop_wait(buf.queue()) {
            Slot::Record(r) => all.push(r),
            Slot::End => break,
            Slot::Error(e) => panic!("{e}"),
            other => panic!("unexpected slot {other:?}"),
        }
    }
    assert_eq!(all.len(), 20);
    assert_eq!(&all[..12], &first_pass[..]);
    assert_eq!((all[0].time_ns, all[0].stream), (0, 0));
    assert_eq!((all[19].time_ns, all[19].stream), (SEC, 1));
}

#[test]
fn data_pending_semantics() {
    let mut buf = buffer(numbered(20, MS), 4);
    assert!(!buf.is_data_pending(), "false before start");
    buf.start().unwrap();
    assert!(buf.is_data_pending(), "true while reading");
    wait_for("ready", T, || buf.is_ready());
    std::thread::sleep(Duration::from_millis(10));
    assert!(buf.is_data_pending(), "true while blocked on a full ring");
    let got = pop_to_end(buf.queue());
    assert_eq!(got.len(), 20);
    wait_for("false after exhaustion", T, || !buf.is_data_pending());
    buf.stop().unwrap();
    buf.start().unwrap();
    assert!(
        !buf.is_data_pending(),
        "a restart after exhaustion has nothing pending"
    );
    assert!(buf.queue().pop().unwrap().is_none(), "no second end slot");
    buf.reset().unwrap();
    assert!(!buf.is_data_pending(), "false after reset");
    buf.start().unwrap();
    assert!(buf.is_data_pending(), "true again after reset and start");
}

#[test]
fn a_source_error_becomes_the_last_slot() {
    let err = Error::State("boom".into());
    let source = VecSource::failing_after(numbered(10, MS), 3, err.clone());
    let mut buf = BufferData::new(
        Box::new(source),
        BufferOptions {
            length: 16,
            ..BufferOptions::default()
        },
    )
    .unwrap();
    buf.start().unwrap();
    for want in 0..3 {
        assert_eq!(number_of(&record(pop_wait(buf.queue()))), want);
    }
    match pop_wait(buf.queue()) {
        Slot::Error(e) => assert_eq!(e, err),
        other => panic!("expected the error slot, got {other:?}"),
    }
    wait_for("not pending", T, || !buf.is_data_pending());
    wait_for("producer exits", T, || !buf.is_alive());
    assert!(
        buf.queue().pop().unwrap().is_none(),
        "nothing after an error"
    );
    assert!(buf.is_ready());
}

#[test]
fn malformed_mcl_line_reaches_the_queue_after_the_records_before_it() {
    let dir = TempDir::new("buffer-malformed");
    let path = dir.join("m.log");
    let good = gen_records("M", 2, 0, MS);
    write_log_with_bad_line(&path, &good, "   0.5   ''   nothex\n", SEC);

    let mut buf = BufferData::new(
        Box::new(open_file(&path, &ReadOptions::default()).unwrap()),
        BufferOptions::default(),
    )
    .unwrap();
    buf.start().unwrap();
    assert_eq!(record(pop_wait(buf.queue())).payload, good[0].payload);
    assert_eq!(record(pop_wait(buf.queue())).payload, good[1].payload);
    match pop_wait(buf.queue()) {
        Slot::Error(Error::Malformed { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected a Malformed error slot, got {other:?}"),
    }

    // Under OnError::Skip: three records, one skipped, counted.
    let options = ReadOptions {
        on_error: OnError::Skip,
        ..ReadOptions::default()
    };
    let mut buf = BufferData::new(
        Box::new(open_file(&path, &options).unwrap()),
        BufferOptions::default(),
    )
    .unwrap();
    buf.start().unwrap();
    let mut n = 0;
    loop {
        match pop_wait(buf.queue()) {
            Slot::Record(_) => n += 1,
            Slot::End => break,
            Slot::Error(e) => panic!("{e}"),
            other => panic!("unexpected slot {other:?}"),
        }
    }
    assert_eq!(n, 3);
    buf.stop().unwrap();
    assert_eq!(buf.skipped(), Some(1));
}

#[test]
fn invalid_options_are_rejected() {
    let bad_length = BufferData::new(
        Box::new(VecSource::new(vec![])),
        BufferOptions {
            length: 0,
            ..BufferOptions::default()
        },
    );
    assert!(matches!(
        bad_length.err(),
        Some(Error::InvalidArgument { .. })
    ));
    let bad_bytes = BufferData::new(
        Box::new(VecSource::new(vec![])),
        BufferOptions {
            length: 4,
            max_bytes: 0,
        },
    );
    assert!(matches!(
        bad_bytes.err(),
        Some(Error::InvalidArgument { .. })
    ));
}

#[test]
fn dropping_a_running_buffer_joins_its_thread() {
    let mut buf = buffer(numbered(100_000, 1), 16);
    buf.start().unwrap();
    wait_for("ready", T, || buf.is_ready());
    let queue = buf.queue().clone();
    let started = std::time::Instant::now();
    drop(buf);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The queue outlives the buffer and still holds what was buffered.
    assert_eq!(queue.size(), 16);
    assert_eq!(number_of(&record(queue.pop().unwrap().unwrap())), 0);
}

/// Notes which thread read the first record.
struct FirstReader {
    inner: VecSource,
    thread: std::sync::Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>,
}

impl RecordSource for FirstReader {
    fn next_record(&mut self) -> netreplay_core::Result<Option<Record>> {
        self.thread
            .lock()
            .unwrap()
            .get_or_insert(std::thread::current().id());
        self.inner.next_record()
    }
    fn reset(&mut self) -> netreplay_core::Result<()> {
        self.inner.reset()
    }
    fn is_data_pending(&self) -> bool {
        self.inner.is_data_pending()
    }
    fn streams(&self) -> &[netreplay_core::StreamInfo] {
        self.inner.streams()
    }
}

#[test]
fn start_reads_the_first_record_on_the_callers_thread() {
    let thread = std::sync::Arc::default();
    let source = FirstReader {
        inner: VecSource::new(numbered(100, MS)),
        thread: std::sync::Arc::clone(&thread),
    };
    let mut buf = BufferData::new(Box::new(source), BufferOptions::default()).unwrap();
    assert!(buf.start().unwrap());
    // Whenever the new thread first runs, the first record is already there.
    assert_eq!(*thread.lock().unwrap(), Some(std::thread::current().id()));
    match buf.queue().pop().unwrap() {
        Some(Slot::Record(r)) => assert_eq!(number_of(&r), 0),
        other => panic!("expected record 0 at once, got {other:?}"),
    }
    assert_eq!(pop_to_end(buf.queue()), (1..100).collect::<Vec<_>>());
}
