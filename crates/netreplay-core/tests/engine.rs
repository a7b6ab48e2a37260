//! The scheduler driving real sinks: timing at several speeds, pause/resume,
//! speed changes, a starved ring, the end and error outcomes, statistics.
//!
//! Timing tests run one at a time (see `serial`), so that they do not compete
//! with each other for the CPU.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::*;
use netreplay_core::engine::SinkEntry;
use netreplay_core::engine::{now_ns, Speed};
use netreplay_core::engine::{open_directory, open_file};
use netreplay_core::engine::{BufferData, BufferOptions, Queue};
use netreplay_core::engine::{Delivery, NullSink, Outcome, Sink};
use netreplay_core::engine::{RingProducer, Slot};
use netreplay_core::engine::{Scheduler, SchedulerOptions, Waiter};
use netreplay_core::engine::{INITIAL_SPIN_MARGIN_NS, MAX_SPIN_MARGIN_NS, MIN_SPIN_MARGIN_NS};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::{Error, Record};

const T: Duration = Duration::from_secs(20);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn speed(v: f64) -> SchedulerOptions {
    SchedulerOptions {
        speed: Speed::new(v).unwrap(),
        ..Default::default()
    }
}

/// The fixture directory (20 records over 1.0 s), buffered and ready.
fn fixture_buffer() -> BufferData {
    let reader = open_directory(&fixture_dir(), &ReadOptions::default()).unwrap();
    let mut buf = BufferData::new(Box::new(reader), BufferOptions::default()).unwrap();
    buf.start().unwrap();
    wait_for("buffer ready", T, || buf.is_ready());
    buf
}

/// The fixture's times in order: A at 0.00..0.09 s, B at 0.1..1.0 s.
fn fixture_times() -> Vec<i64> {
    (0..10)
        .map(|k| k * 10 * MS)
        .chain((1..=10).map(|k| k * 100 * MS))
        .collect()
}

/// A queue holding `records` then the end, as a producer would leave it.
fn queued(records: Vec<Record>) -> Queue {
    let (queue, mut producer) = Queue::new(records.len() + 1, 1 << 20).unwrap();
    for r in records {
        producer.push(Slot::Record(r)).unwrap();
    }
    producer.push(Slot::End).unwrap();
    queue
}

fn wait_end(s: &Scheduler) {
    wait_for("the scheduler to finish", T, || !s.is_alive());
}

fn sleep_until(wall_ns: i64) {
    let left = wall_ns - now_ns();
    if left > 0 {
        std::thread::sleep(Duration::from_nanos(left as u64));
    }
}

fn assert_near(what: &str, got_ns: i64, want_ns: i64, tol_ns: i64) {
    assert!(
        (got_ns - want_ns).abs() <= tol_ns,
        "{what}: {:.4} s, expected {:.4} s ± {:.4}",
        secs_f(got_ns),
        secs_f(want_ns),
        secs_f(tol_ns)
    );
}

/// Deliveries are never early, and the deadlines are absolute: the gap
/// between two deadlines is the gap between the log times divided by speed.
fn check_deadlines(seen: &[Seen], speed: f64) {
    for s in seen {
        assert!(
            s.wall_ns >= s.delivery.deadline_ns.unwrap(),
            "record at {} delivered before its deadline",
            s.time_ns
        );
        assert!(s.delivery.lateness_ns >= 0, "{s:?}");
    }
    for pair in seen.windows(2) {
        let log_gap = (pair[1].time_ns - pair[0].time_ns) as f64 / speed;
        let wall_gap =
            (pair[1].delivery.deadline_ns.unwrap() - pair[0].delivery.deadline_ns.unwrap()) as f64;
        assert!(
            (wall_gap - log_gap).abs() <= 1.0,
            "deadline gap {wall_gap} ns for a log gap of {log_gap} ns"
        );
    }
}

fn play_fixture_at(v: f64) -> (Collected, i64, Scheduler, BufferData) {
    let buf = fixture_buffer();
    let out = Collected::default();
    let mut s =
        Scheduler::new(buf.queue(), vec![SinkEntry::new(out.sink(false))], speed(v)).unwrap();
    let t0 = now_ns();
    assert!(s.start().unwrap());
    wait_end(&s);
    (out, t0, s, buf)
}

/// Records due at one instant reach the sinks marked as a burst: each but
/// the last says the next is due too (so a batching sink sends them in one
/// call), and the sinks are flushed before the scheduler waits for the next.
#[test]
fn a_burst_is_delivered_as_one_batch() {
    let _serial = serial();
    let bursts = 3;
    let size = 4;
    // 200 ms apart: a scheduler late by that much on a loaded machine would
    // find the next burst due too.
    let records: Vec<Record> = numbered(bursts * size, 0)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.time_ns = (i as i64 / i64::from(size)) * 200 * MS;
            r
        })
        .collect();
    let out = Collected::default();
    let queue = queued(records);
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(false))], speed(1.0)).unwrap();
    assert!(s.start().unwrap());
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(seen.len(), (bursts * size) as usize);
    let marks: Vec<bool> = seen.iter().map(|x| x.delivery.more_due).collect();
    let expected: Vec<bool> = (0..bursts * size).map(|i| i % size != size - 1).collect();
    assert_eq!(marks, expected, "each record of a burst but its last");
    // Before each wait for the next burst, and at the end.
    assert!(out.flushes.load(Ordering::Relaxed) >= u64::from(bursts));
    for x in &seen {
        assert_eq!(
            x.delivery.deadline_ns,
            seen[(x.time_ns / (200 * MS)) as usize * size as usize]
                .delivery
                .deadline_ns
        );
    }
    // A steady schedule has no bursts.
    let out = Collected::default();
    let queue = queued(numbered(5, 50 * MS));
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(false))], speed(1.0)).unwrap();
    assert!(s.start().unwrap());
    wait_end(&s);
    assert!(out.seen().iter().all(|x| !x.delivery.more_due));
}

#[test]
fn fixture_at_speed_1_plays_in_one_second() {
    let _serial = serial();
    let (out, t0, mut s, _buf) = play_fixture_at(1.0);
    let seen = out.seen();
    assert_eq!(
        seen.iter().map(|s| s.time_ns).collect::<Vec<_>>(),
        fixture_times()
    );
    assert_eq!(
        seen.iter().map(|s| s.stream).collect::<Vec<_>>(),
        [vec![0; 10], vec![1; 10]].concat()
    );
    assert!(seen[0].wall_ns - t0 < 50 * MS, "first record promptly");
    assert_near("speed 1 duration", seen[19].wall_ns - t0, SEC, 100 * MS);
    assert_near(
        "first to last",
        seen[19].wall_ns - seen[0].wall_ns,
        SEC,
        60 * MS,
    );
    check_deadlines(&seen, 1.0);
    // The published anchor gives every record's deadline: the first record's
    // time played when it was taken.
    let anchor = s.stats().anchor().expect("anchored on the first record");
    assert_eq!(anchor.log_ns, 0);
    assert_eq!(Some(anchor.wall_ns), seen[0].delivery.deadline_ns);
    let one = Speed::new(1.0).unwrap();
    for x in &seen {
        assert_eq!(anchor.deadline(x.time_ns, one), x.delivery.deadline_ns);
    }
    // Each record near its own time, not only the last.
    for x in &seen {
        assert_near(
            "record time",
            x.wall_ns - seen[0].wall_ns,
            x.time_ns,
            60 * MS,
        );
    }
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    assert_eq!(out.outcomes(), vec![Outcome::End]);
    // Statistics count every record.
    let stats = s.stats();
    assert_eq!(stats.delivered.get(), 20);
    let summary = stats.lateness.summary();
    assert_eq!(summary.count, 20);
    assert!(summary.mean >= 0.0);
    assert!(summary.max < (50 * MS) as f64, "{summary:?}");
    assert!(stats.late.get() <= 20);
    // Starting again after the end does nothing more.
    s.start().unwrap();
    wait_end(&s);
    assert_eq!(out.len(), 20);
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
}

#[test]
fn fixture_at_speed_4_plays_in_a_quarter_second() {
    let _serial = serial();
    let (out, t0, mut s, _buf) = play_fixture_at(4.0);
    let seen = out.seen();
    assert_eq!(
        seen.iter().map(|s| s.time_ns).collect::<Vec<_>>(),
        fixture_times()
    );
    assert_near("speed 4 duration", seen[19].wall_ns - t0, 250 * MS, 80 * MS);
    check_deadlines(&seen, 4.0);
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    assert_eq!(s.stats().lateness.summary().count, 20);
}

#[test]
fn infinite_speed_delivers_200k_records_in_order_once() {
    let _serial = serial();
    let n: u32 = 200_000;
    let dir = TempDir::new("200k");
    let path = dir.join("big.log");
    let mut text = header(Some("Big"), CREATED).0;
    for k in 0..n {
        // 100 µs apart: 20 s of log time, played as fast as possible.
        text.push_str(&record_line(
            i64::from(k) * 100_000,
            "",
            &msgpack_payload("Big", k),
        ));
    }
    std::fs::write(&path, text).unwrap();

    let reader = open_file(&path, &ReadOptions::default()).unwrap();
    let mut buf = BufferData::new(Box::new(reader), BufferOptions::default()).unwrap();
    buf.start().unwrap();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(true))],
        speed(f64::INFINITY),
    )
    .unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    wait_end(&s);
    let elapsed = now_ns() - t0;
    let seen = out.seen();
    assert_eq!(seen.len(), n as usize);
    for (k, x) in seen.iter().enumerate() {
        assert_eq!(x.time_ns, k as i64 * 100_000, "record {k}");
        assert_eq!(x.payload, msgpack_payload("Big", k as u32), "record {k}");
        assert_eq!(x.delivery.lateness_ns, 0);
    }
    assert!(
        elapsed < 5 * SEC,
        "as fast as possible: {:.3} s",
        secs_f(elapsed)
    );
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    let stats = s.stats();
    assert_eq!(stats.delivered.get(), u64::from(n));
    assert_eq!(stats.lateness.summary().count, u64::from(n));
    assert_eq!(
        stats.late.get(),
        0,
        "records have no deadline at infinite speed, so none is late"
    );
}

#[test]
fn pause_then_resume_continues_where_it_was() {
    let _serial = serial();
    let buf = fixture_buffer();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(1.0),
    )
    .unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    // Pause between the records at 0.5 and 0.6 s.
    sleep_until(t0 + 550 * MS);
    assert!(s.stop().unwrap(), "was running");
    let t_stop = now_ns();
    assert!(!s.is_alive());
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::Stopped));
    let before = out.len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(out.len(), before, "nothing delivered while paused");
    let t_resume = now_ns();
    assert!(s.start().unwrap());
    wait_end(&s);

    let seen = out.seen();
    assert_eq!(
        seen.iter().map(|s| s.time_ns).collect::<Vec<_>>(),
        fixture_times(),
        "nothing lost or repeated across the pause"
    );
    assert!(
        (13..=17).contains(&before),
        "{before} records before a pause at 0.55 s"
    );
    let paused = t_resume - t_stop;
    assert_near(
        "total with a 0.5 s pause",
        seen[19].wall_ns - t0,
        SEC + 500 * MS,
        150 * MS,
    );
    assert_near(
        "total minus the pause",
        seen[19].wall_ns - t0 - paused,
        SEC,
        100 * MS,
    );
    // The first record after resume waits only for the rest of its gap (the
    // position at pause was about 0.55 s), not for the position itself.
    let first = &seen[before];
    let position = t_stop - t0;
    let rest = (first.time_ns - position).max(0);
    let waited = first.wall_ns - t_resume;
    assert!(waited >= 0);
    assert!(
        waited <= rest + 60 * MS,
        "first record after resume took {:.3} s (rest of its gap: {:.3} s)",
        secs_f(waited),
        secs_f(rest)
    );
    // Logical time was frozen during the pause: records after it keep their
    // spacing from the first one after resume.
    for x in &seen[before..] {
        assert_near(
            "after resume",
            x.wall_ns - first.wall_ns,
            x.time_ns - first.time_ns,
            60 * MS,
        );
    }
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    assert_eq!(out.outcomes(), vec![Outcome::Stopped, Outcome::End]);
    assert_eq!(s.stats().delivered.get(), 20);
    assert_eq!(s.stats().lateness.summary().count, 20);
}

#[test]
fn pause_while_waiting_keeps_the_held_record() {
    let _serial = serial();
    // Two records 400 ms apart: pause during the wait for the second.
    let queue = queued(numbered(2, 400 * MS));
    let out = Collected::default();
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(true))], speed(1.0)).unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    sleep_until(t0 + 300 * MS);
    s.stop().unwrap();
    assert_eq!(out.len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let t_resume = now_ns();
    s.start().unwrap();
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(seen.len(), 2, "the held record is not lost");
    assert_eq!(number_of_seen(&seen[1]), 1);
    // 100 ms of its gap were left.
    assert_near(
        "rest of the gap",
        seen[1].wall_ns - t_resume,
        100 * MS,
        50 * MS,
    );
}

fn number_of_seen(x: &Seen) -> u32 {
    u32::from_be_bytes(x.payload[..4].try_into().unwrap())
}

#[test]
fn speed_change_mid_run() {
    let _serial = serial();
    let buf = fixture_buffer();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(1.0),
    )
    .unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    sleep_until(t0 + 400 * MS);
    let t_change = now_ns();
    s.set_speed(Speed::new(4.0).unwrap());
    assert_eq!(s.speed().get(), 4.0);
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(
        seen.iter().map(|s| s.time_ns).collect::<Vec<_>>(),
        fixture_times()
    );
    let switch = t_change - t0;
    assert_near(
        "1 -> 4 at 0.4 s",
        seen[19].wall_ns - t0,
        switch + (SEC - switch) / 4,
        80 * MS,
    );
    assert_near("about 0.55 s", seen[19].wall_ns - t0, 550 * MS, 100 * MS);
    // The published anchor is the one after the change: it gives the
    // deadlines of the records played at speed 4, to the nanosecond.
    let anchor = s.stats().anchor().expect("an anchor while a replay is on");
    assert!(anchor.wall_ns >= t_change && anchor.log_ns > 300 * MS);
    let four = Speed::new(4.0).unwrap();
    for x in seen.iter().filter(|x| x.time_ns >= anchor.log_ns) {
        assert_eq!(anchor.deadline(x.time_ns, four), x.delivery.deadline_ns);
    }
    // No jump at the change: the record at 0.5 s comes 0.1/4 s after it.
    let half = seen.iter().find(|x| x.time_ns == 500 * MS).unwrap();
    assert_near(
        "record at 0.5 s",
        half.wall_ns - t0,
        switch + (500 * MS - switch) / 4,
        50 * MS,
    );
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
}

#[test]
fn speed_change_to_infinity_flushes_the_rest_at_once() {
    let _serial = serial();
    let buf = fixture_buffer();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(1.0),
    )
    .unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    sleep_until(t0 + 250 * MS);
    let t_change = now_ns();
    s.set_speed(Speed::new(f64::INFINITY).unwrap());
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(seen.len(), 20);
    assert!(
        seen[19].wall_ns - t_change < 40 * MS,
        "the rest should go out at once, took {:.3} s",
        secs_f(seen[19].wall_ns - t_change)
    );
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    assert_eq!(s.stats().anchor(), None, "no deadlines at infinite speed");
}

#[test]
fn speed_change_while_paused_applies_on_resume() {
    let _serial = serial();
    let buf = fixture_buffer();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(1.0),
    )
    .unwrap();
    let t0 = now_ns();
    s.start().unwrap();
    sleep_until(t0 + 150 * MS);
    s.stop().unwrap();
    s.set_speed(Speed::new(2.0).unwrap());
    let t_resume = now_ns();
    s.start().unwrap();
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(seen.len(), 20);
    // 0.85 s of log time left at speed 2.
    assert_near(
        "resumed at speed 2",
        seen[19].wall_ns - t_resume,
        425 * MS,
        80 * MS,
    );
}

#[test]
fn a_second_scheduler_on_the_same_queue_is_a_state_error() {
    let _serial = serial();
    let buf = fixture_buffer();
    let first = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(Box::new(NullSink::default()))],
        speed(1.0),
    )
    .unwrap();
    let second = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(Box::new(NullSink::default()))],
        speed(1.0),
    );
    assert!(
        matches!(second.as_ref().err(), Some(Error::State(_))),
        "second consumer must fail"
    );
    assert!(buf.queue().is_claimed());
    // Records cannot be taken from a claimed queue either.
    assert!(matches!(buf.queue().pop(), Err(Error::State(_))));
    drop(second);
    // The first one is still attached; once dropped, the queue is free again.
    drop(first);
    assert!(!buf.queue().is_claimed());
    let third = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(Box::new(NullSink::default()))],
        speed(1.0),
    );
    assert!(third.is_ok());
}

fn push_wait(producer: &mut RingProducer, slot: Slot) {
    let mut slot = slot;
    loop {
        match producer.push(slot) {
            Ok(()) => return,
            Err(back) => {
                slot = back;
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

/// Records 0..10, 10 ms apart, with a 200 ms stall of the producer after the
/// fifth. Returns what the sink saw and the scheduler.
fn starved_run(v: f64) -> (Collected, Scheduler, usize) {
    let (queue, mut producer) = Queue::new(16, 1 << 20).unwrap();
    let (gap_tx, gap_rx) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let records = numbered(10, 10 * MS);
        for r in &records[..5] {
            push_wait(&mut producer, Slot::Record(r.clone()));
        }
        gap_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        resume_rx.recv().unwrap();
        for r in &records[5..] {
            push_wait(&mut producer, Slot::Record(r.clone()));
            std::thread::sleep(Duration::from_millis(1));
        }
        push_wait(&mut producer, Slot::End);
    });
    let out = Collected::default();
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(true))], speed(v)).unwrap();
    s.start().unwrap();
    gap_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // In the middle of the gap: still playing, waiting for data.
    assert!(s.is_alive(), "a starved ring must not end the replay");
    let during_gap = out.len();
    resume_tx.send(()).unwrap();
    feeder.join().unwrap();
    wait_end(&s);
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
    (out, s, during_gap)
}

#[test]
fn starved_ring_does_not_end_the_replay() {
    let _serial = serial();
    for v in [f64::INFINITY, 1.0] {
        let (out, s, during_gap) = starved_run(v);
        assert_eq!(during_gap, 5, "speed {v}: the first five before the gap");
        let seen = out.seen();
        assert_eq!(
            seen.iter().map(number_of_seen).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>(),
            "speed {v}"
        );
        assert_eq!(s.stats().delivered.get(), 10);
        assert_eq!(s.stats().lateness.summary().count, 10);
        if v == 1.0 {
            // The records after the gap were due during it: late, sent at once.
            assert!(
                s.stats().late.get() >= 5,
                "speed 1: {}",
                s.stats().late.get()
            );
            assert!(seen[5].delivery.lateness_ns > 100 * MS);
        }
    }
}

#[test]
fn an_error_slot_stops_the_run_after_the_records_before_it() {
    let _serial = serial();
    let (queue, mut producer) = Queue::new(16, 1 << 20).unwrap();
    let records = numbered(6, 5 * MS);
    for r in &records[..3] {
        producer.push(Slot::Record(r.clone())).unwrap();
    }
    let err = Error::State("producer failed".into());
    producer.push(Slot::Error(err.clone())).unwrap();
    for r in &records[3..] {
        producer.push(Slot::Record(r.clone())).unwrap();
    }
    producer.push(Slot::End).unwrap();

    let out = Collected::default();
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(true))], speed(1.0)).unwrap();
    s.start().unwrap();
    wait_end(&s);
    assert_eq!(
        out.seen().iter().map(number_of_seen).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        s.last_outcome().unwrap(),
        Some(&Outcome::Error(err.clone()))
    );
    assert_eq!(out.outcomes(), vec![Outcome::Error(err.clone())]);
    assert_eq!(s.stats().delivered.get(), 3);
    // A finished run does not go on past the error.
    s.start().unwrap();
    wait_end(&s);
    assert_eq!(out.len(), 3);
}

#[test]
fn malformed_log_ends_the_replay_with_its_error() {
    let _serial = serial();
    let dir = TempDir::new("engine-malformed");
    let path = dir.join("m.log");
    let good = gen_records("M", 3, 0, 10 * MS);
    write_log_with_bad_line(&path, &good, "   0.05   ''   8g\n", 60 * MS);
    let mut buf = BufferData::new(
        Box::new(open_file(&path, &ReadOptions::default()).unwrap()),
        BufferOptions::default(),
    )
    .unwrap();
    buf.start().unwrap();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(1.0),
    )
    .unwrap();
    s.start().unwrap();
    wait_end(&s);
    assert_eq!(out.len(), 3);
    match s.last_outcome().unwrap() {
        Some(Outcome::Error(Error::Malformed { path: p, line, .. })) => {
            assert_eq!(p, &path);
            assert_eq!(*line, header(Some("M"), CREATED).1 + 4);
        }
        other => panic!("expected a Malformed outcome, got {other:?}"),
    }
}

#[test]
fn buffer_reset_replays_from_the_start() {
    let _serial = serial();
    let mut buf = fixture_buffer();
    let out = Collected::default();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(out.sink(false))],
        speed(f64::INFINITY),
    )
    .unwrap();
    s.start().unwrap();
    wait_end(&s);
    assert_eq!(out.len(), 20);
    assert_eq!(s.stats().delivered.get(), 20);
    buf.reset().unwrap();
    buf.start().unwrap();
    s.start().unwrap();
    wait_end(&s);
    let seen = out.seen();
    assert_eq!(seen.len(), 40);
    let times: Vec<i64> = seen.iter().map(|x| x.time_ns).collect();
    assert_eq!(&times[..20], &times[20..]);
    assert_eq!(s.stats().delivered.get(), 20, "stats start again");
    assert_eq!(s.last_outcome().unwrap(), Some(&Outcome::End));
}

#[test]
fn several_sinks_each_get_every_record() {
    let _serial = serial();
    let buf = fixture_buffer();
    let a = Collected::default();
    let b = Collected::default();
    let sinks: Vec<Box<dyn Sink>> = vec![a.sink(false), b.sink(false)];
    let mut s = Scheduler::new(
        buf.queue(),
        sinks.into_iter().map(SinkEntry::new).collect(),
        speed(f64::INFINITY),
    )
    .unwrap();
    s.start().unwrap();
    wait_end(&s);
    let ta: Vec<i64> = a.seen().iter().map(|x| x.time_ns).collect();
    let tb: Vec<i64> = b.seen().iter().map(|x| x.time_ns).collect();
    assert_eq!(ta, fixture_times());
    assert_eq!(ta, tb);
    assert_eq!(a.outcomes(), vec![Outcome::End]);
    assert_eq!(b.outcomes(), vec![Outcome::End]);
}

#[test]
fn stop_of_an_idle_scheduler_is_a_no_op() {
    let _serial = serial();
    let buf = fixture_buffer();
    let mut s = Scheduler::new(
        buf.queue(),
        vec![SinkEntry::new(Box::new(NullSink::default()))],
        speed(1.0),
    )
    .unwrap();
    assert!(!s.stop().unwrap());
    assert_eq!(s.last_outcome().unwrap(), None);
    assert!(s.start().unwrap());
    assert!(!s.start().unwrap(), "already running");
    assert!(s.stop().unwrap());
}

#[test]
fn low_rate_replay_does_not_burn_a_core() {
    let _serial = serial();
    // Two records 600 ms apart: the scheduler should sleep, not spin.
    let queue = queued(numbered(2, 600 * MS));
    let out = Collected::default();
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(false))], speed(1.0)).unwrap();
    let cpu0 = process_cpu_ns();
    s.start().unwrap();
    wait_end(&s);
    let cpu = process_cpu_ns() - cpu0;
    assert_eq!(out.len(), 2);
    assert!(
        cpu < 150 * MS,
        "a 0.6 s wait used {:.3} s of CPU",
        secs_f(cpu)
    );
}

/// A CPU-time clock's reading, ns.
fn cpu_clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec * SEC + ts.tv_nsec
}

fn process_cpu_ns() -> i64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread.
fn thread_cpu_ns() -> i64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Records the scheduler thread's own CPU time at each delivery.
struct ThreadCpu(Arc<Mutex<Vec<(i64, i64)>>>);

impl Sink for ThreadCpu {
    fn deliver(&mut self, _: &Record, _: Delivery, _: Waiter<'_>) {
        self.0.lock().unwrap().push((now_ns(), thread_cpu_ns()));
    }
}

/// Share of one core the scheduler thread used between its first and last
/// delivery, playing `n` records `step_ns` apart.
fn scheduler_cpu_share(n: u32, step_ns: i64, busy_wait_ns: Option<i64>) -> f64 {
    let queue = queued(numbered(n, step_ns));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sink: Box<dyn Sink> = Box::new(ThreadCpu(samples.clone()));
    // A fixed margin: a learned one grows with the machine's wake-up
    // lateness, which a busy test machine can make as long as the waits.
    let options = SchedulerOptions {
        spin_margin_ns: Some(100_000),
        ..speed(1.0)
    };
    let mut s = Scheduler::new(&queue, vec![SinkEntry::new(sink)], options).unwrap();
    if let Some(ns) = busy_wait_ns {
        s.set_busy_wait(ns);
    }
    s.start().unwrap();
    wait_end(&s);
    let samples = samples.lock().unwrap();
    assert_eq!(samples.len(), n as usize);
    let (wall0, cpu0) = samples[0];
    let (wall1, cpu1) = samples[samples.len() - 1];
    (cpu1 - cpu0) as f64 / (wall1 - wall0) as f64
}

#[test]
fn waits_sleep_but_their_margin_and_busy_wait_spins_short_ones() {
    let _serial = serial();
    // 1 ms apart: the thread sleeps all but the spin margin (0.1 ms).
    let slept = scheduler_cpu_share(300, MS, None);
    assert!(
        slept < 0.5,
        "1 ms waits: the scheduler used {slept:.2} of a core"
    );
    // 20 ms apart: even less.
    let long = scheduler_cpu_share(26, 20 * MS, None);
    assert!(
        long < 0.15,
        "20 ms waits: the scheduler used {long:.2} of a core"
    );
    // busyWait 1.5 ms: 1 ms waits are spun whole.
    let spun = scheduler_cpu_share(300, MS, Some(3 * MS / 2));
    assert!(
        spun > 0.5,
        "1 ms waits with busy waiting: the scheduler used {spun:.2} of a core"
    );
}

/// The scheduler's spin margin, as its stats publish it, after playing `n`
/// records 1 ms apart with `margin_ns` fixed (or learned).
fn spin_margin_after(n: u32, margin_ns: Option<i64>) -> (i64, bool) {
    let queue = queued(numbered(n, MS));
    let options = SchedulerOptions {
        spin_margin_ns: margin_ns,
        ..speed(1.0)
    };
    let mut s = Scheduler::new(
        &queue,
        vec![SinkEntry::new(Box::new(NullSink::default()))],
        options,
    )
    .unwrap();
    s.start().unwrap();
    wait_end(&s);
    let stats = s.stats();
    (
        stats.spin_margin_ns.load(Ordering::Relaxed),
        stats.timing_slice.load(Ordering::Relaxed),
    )
}

#[test]
fn the_spin_margin_is_learned_or_fixed_and_always_bounded() {
    let _serial = serial();
    let (fixed, _) = spin_margin_after(50, Some(70_000));
    assert_eq!(fixed, 70_000);
    // Learned: moved from where it started, within its bounds.
    let (learned, _) = spin_margin_after(400, None);
    assert_ne!(learned, INITIAL_SPIN_MARGIN_NS, "the margin never moved");
    assert!(
        (MIN_SPIN_MARGIN_NS..=MAX_SPIN_MARGIN_NS).contains(&learned),
        "{learned} ns"
    );
    let err = SchedulerOptions {
        spin_margin_ns: Some(-1),
        ..speed(1.0)
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("'spinMargin'"), "{err}");
}

/// Two records whose deadlines lie beyond the clock's range: the first plays
/// at once, the second never does (not "at once, with garbage lateness"), and
/// stop still ends the run promptly.
fn plays_only_the_first(records: Vec<Record>, v: f64) {
    let _serial = serial();
    let queue = queued(records);
    let collected = Collected::default();
    let mut s = Scheduler::new(
        &queue,
        vec![SinkEntry::new(collected.sink(false))],
        speed(v),
    )
    .unwrap();
    s.start().unwrap();
    wait_for("the first record", T, || collected.len() == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(collected.len(), 1, "the far record was played");
    let stop_at = now_ns();
    s.stop().unwrap();
    assert!(now_ns() - stop_at < 100 * MS, "stop took too long");
    let first = &collected.seen()[0];
    assert!(first.delivery.lateness_ns.abs() < 1_000 * MS);
    assert_eq!(s.stats().lateness.count(), 1);
}

#[test]
fn a_log_spanning_centuries_does_not_overflow_the_deadline() {
    let at = |t: i64| Record {
        time_ns: t,
        stream: 0,
        topic: "".into(),
        payload: vec![0xc0],
    };
    // −9e9 s then 9e9 s, and 0 then 9223372035.9 s: both parse.
    plays_only_the_first(
        vec![
            at(-9_000_000_000 * 1_000 * MS),
            at(9_000_000_000 * 1_000 * MS),
        ],
        1.0,
    );
    plays_only_the_first(vec![at(0), at(9_223_372_035_900_000_000)], 1.0);
    plays_only_the_first(vec![at(0), at(9_223_372_035_900_000_000)], 3.0);
}

#[test]
fn a_tiny_speed_makes_the_next_record_due_out_of_reach() {
    // At 1e-14 the fixture's 10 ms gaps are 30 000 years: only the first plays.
    plays_only_the_first(numbered(20, 10 * MS), 1e-14);
    plays_only_the_first(numbered(2, 1), f64::from_bits(1));
}

#[test]
fn a_start_after_the_end_without_a_rewind_does_not_report_the_end_again() {
    let _serial = serial();
    let queue = queued(numbered(3, MS));
    let collected = Collected::default();
    let mut s = Scheduler::new(
        &queue,
        vec![SinkEntry::new(collected.sink(false))],
        speed(1.0),
    )
    .unwrap();
    assert!(s.start().unwrap());
    wait_end(&s);
    // Paused after the end (the owner had not seen it yet), then resumed.
    assert!(!s.stop().unwrap());
    assert!(!s.start().unwrap(), "nothing left to play");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(collected.outcomes(), vec![Outcome::End]);
    assert_eq!(collected.len(), 3);
    // After a rewind there is a run to start again.
    s.rewind().unwrap();
    assert!(s.start().unwrap());
    assert!(s.stop().unwrap());
}

/// The policies (`/proc/self/task/*/stat`, field 41) of this process's
/// scheduler threads: what the kernel says, not what the scheduler reports.
fn scheduler_thread_policies() -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "netreplay-sched" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The fields after the command, which is in parentheses: state is 3.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if let Some(policy) = after.split_whitespace().nth(41 - 3) {
            policies.push(policy.parse().unwrap_or(u32::MAX));
        }
    }
    policies
}

/// The scheduler thread waits in the real-time class when asked for (and
/// the process may), never at infinite speed, and leaves it when the speed
/// becomes infinite; asked for as required and refused, the run fails and
/// says why. `auto` (the default) takes it when permitted on two CPUs.
#[test]
#[cfg(target_os = "linux")]
fn the_realtime_class_is_taken_for_timed_waits_only() {
    use netreplay_core::engine::Realtime;
    use netreplay_core::sys::may_be_realtime;
    let _serial = serial();
    let may = may_be_realtime();
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    // (realtime in the first 100 ms at speed `v`, its thread's policy,
    // realtime after the speed became infinite, the outcome)
    let run = |realtime: Realtime, v: f64| {
        let buf = fixture_buffer();
        let out = Collected::default();
        let options = SchedulerOptions {
            realtime,
            ..speed(v)
        };
        let mut s =
            Scheduler::new(buf.queue(), vec![SinkEntry::new(out.sink(false))], options).unwrap();
        s.start().unwrap();
        sleep_until(now_ns() + 100 * MS);
        let during = s.stats().realtime.load(Ordering::Relaxed);
        let policies = scheduler_thread_policies();
        s.set_speed(Speed::new(f64::INFINITY).unwrap());
        wait_end(&s);
        let after = s.stats().realtime.load(Ordering::Relaxed);
        (during, policies, after, s.last_outcome().unwrap().cloned())
    };
    const SCHED_FIFO: u32 = 1;

    let (during, policies, after, outcome) = run(Realtime::On, 1.0);
    if may {
        assert!(during, "required and permitted");
        assert!(policies.contains(&SCHED_FIFO), "policies {policies:?}");
        assert!(!after, "left at infinite speed");
        assert_eq!(outcome, Some(Outcome::End));
    } else {
        assert!(!during);
        match outcome {
            Some(Outcome::Error(Error::State(reason))) => {
                assert!(
                    reason.contains("realtime") && reason.contains("CAP_SYS_NICE"),
                    "{reason}"
                )
            }
            other => panic!("required and refused, yet {other:?}"),
        }
    }

    let (during, _, after, outcome) = run(Realtime::Auto, 1.0);
    assert_eq!(during, may && two_cpus, "auto");
    assert!(!after);
    assert_eq!(outcome, Some(Outcome::End));

    let (during, _, _, outcome) = run(Realtime::Off, 1.0);
    assert!(!during, "off");
    assert_eq!(outcome, Some(Outcome::End));

    // Nothing waits at infinite speed: not even a required class is taken.
    let (during, _, _, outcome) = run(Realtime::On, f64::INFINITY);
    assert!(!during, "infinite speed");
    assert_eq!(outcome, Some(Outcome::End));

    // (realtime after 100 ms, records delivered) of `n` records `gap_ns`
    // apart, the class required.
    let steady = |n: u32, gap_ns: i64| {
        let out = Collected::default();
        let queue = queued(numbered(n, gap_ns));
        let options = SchedulerOptions {
            realtime: Realtime::On,
            ..speed(1.0)
        };
        let mut s = Scheduler::new(&queue, vec![SinkEntry::new(out.sink(false))], options).unwrap();
        s.start().unwrap();
        sleep_until(now_ns() + 100 * MS);
        let during = s.stats().realtime.load(Ordering::Relaxed);
        wait_end(&s);
        (during, out.seen().len() as u32)
    };
    if may {
        // At 100 kHz every wait is spun whole, never slept: the thread
        // leaves the class once awake for 2 ms, so that it cannot hold its
        // CPU away from every other thread for the whole replay.
        assert_eq!(steady(30_000, 10_000), (false, 30_000), "100 kHz");
        // At 5 kHz, where the normal class spins every wait whole until its
        // margin has shrunk below 100 µs, the real-time class sleeps half of
        // each: it stays in the class.
        assert_eq!(steady(2_000, 200_000), (true, 2_000), "5 kHz");
    }
}
