//! The Player: one playback with start, pause, stop, seek, speed and close,
//! one run number on every delivery, and sinks with their lag policy.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{numbered, wait_for, Collected, VecSource};
use netreplay_core::engine::{now_ns, Delivery, LagPolicy, SchedulerOptions, Sink, Speed, Waiter};
use netreplay_core::{
    Player, PlayerConfig, PlayerSource, PlayerState, Record, SinkConfig, SinkKind,
};

const MS: i64 = 1_000_000;
const LONG: Duration = Duration::from_secs(10);

fn player(records: Vec<Record>, speed: f64, sinks: Vec<SinkConfig>) -> Player {
    Player::new(
        PlayerSource::Reader(Box::new(VecSource::new(records))),
        PlayerConfig {
            scheduler: SchedulerOptions {
                speed: Speed::new(speed).unwrap(),
                ..Default::default()
            },
            sinks,
            ..Default::default()
        },
    )
    .unwrap()
}

fn collect(out: &Collected) -> SinkConfig {
    SinkConfig::new(SinkKind::Custom(out.sink(true)))
}

/// The numbers (see `numbered`) of the records a sink received, in order.
fn numbers(out: &Collected) -> Vec<u32> {
    out.seen()
        .iter()
        .map(|s| u32::from_be_bytes(s.payload[..4].try_into().unwrap()))
        .collect()
}

#[test]
fn plays_every_record_once_in_order_then_ends() {
    let out = Collected::default();
    let mut p = player(numbered(200, 0), f64::INFINITY, vec![collect(&out)]);
    let run = p.run();
    assert!(p.start().unwrap());
    assert!(!p.start().unwrap(), "a second start while playing");
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(numbers(&out), (0..200).collect::<Vec<_>>());
    assert!(out.seen().iter().all(|s| s.delivery.run == run));
    // After the end, start does nothing; restart plays again from the
    // start, as a new run.
    assert!(!p.start().unwrap());
    assert!(p.restart().unwrap());
    wait_for("the second end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(out.len(), 400);
    assert!(p.run() > run);
    assert!(out.seen()[200..].iter().all(|s| s.delivery.run == p.run()));
}

#[test]
fn pause_keeps_the_position_and_stop_rewinds() {
    let out = Collected::default();
    let mut p = player(numbered(100, 20 * MS), 1.0, vec![collect(&out)]);
    p.start().unwrap();
    wait_for("a few records", LONG, || out.len() >= 5);
    assert!(p.pause().unwrap());
    assert_eq!(p.state(), PlayerState::Paused);
    let at_pause = out.len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(out.len(), at_pause, "nothing while paused");
    p.start().unwrap();
    wait_for("more records", LONG, || out.len() >= at_pause + 3);
    let got = numbers(&out);
    assert_eq!(
        got,
        (0..got.len() as u32).collect::<Vec<_>>(),
        "nothing lost or repeated"
    );
    let run = p.run();
    assert!(p.stop().unwrap());
    assert_eq!(p.state(), PlayerState::Idle);
    assert_eq!(p.run(), run + 1, "a rewind is a new run");
    let before = out.len();
    p.set_speed(Speed::new(f64::INFINITY).unwrap());
    p.start().unwrap();
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(numbers(&out)[before..], (0..100).collect::<Vec<_>>()[..]);
}

/// Records at 0, 10, 20, ... ms with a tie of three at 500 ms.
fn with_tie() -> Vec<Record> {
    let mut records = numbered(100, 10 * MS);
    for r in &mut records[51..53] {
        r.time_ns = 500 * MS;
    }
    records
}

#[test]
fn seek_while_playing_goes_on_from_the_first_record_at_or_after_t_due_at_once() {
    let out = Collected::default();
    let mut p = player(with_tie(), 1.0, vec![collect(&out)]);
    p.start().unwrap();
    wait_for("a few records", LONG, || out.len() >= 3);
    let called = now_ns();
    p.seek(495 * MS).unwrap();
    let run = p.run();
    assert_eq!(p.state(), PlayerState::Playing);
    wait_for("records after the seek", LONG, || {
        out.seen().iter().filter(|s| s.delivery.run == run).count() >= 5
    });
    let after: Vec<_> = out
        .seen()
        .into_iter()
        .filter(|s| s.delivery.run == run)
        .collect();
    // The first of the tie at 500 ms, then its ties in order, then 530 ms...
    let first: Vec<u32> = after
        .iter()
        .map(|s| s.time_ns as u32 / MS as u32)
        .take(5)
        .collect();
    assert_eq!(first, vec![500, 500, 500, 530, 540]);
    let due = after[0].delivery.deadline_ns.unwrap();
    assert!(
        due >= called && due - called < 50 * MS,
        "the first record after a seek is due at the seek: {} ms after the call",
        (due - called) / MS
    );
    // The timing goes on from there: 530 ms is due 30 ms after 500 ms.
    assert_eq!(after[3].delivery.deadline_ns.unwrap() - due, 30 * MS);
    p.close().unwrap();
}

#[test]
fn seek_while_paused_moves_and_stays_paused() {
    let out = Collected::default();
    let mut p = player(numbered(100, 10 * MS), 1.0, vec![collect(&out)]);
    p.start().unwrap();
    wait_for("a record", LONG, || !out.seen().is_empty());
    p.pause().unwrap();
    let before = out.len();
    p.seek(700 * MS).unwrap();
    assert_eq!(p.state(), PlayerState::Paused);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(out.len(), before, "a seek while paused delivers nothing");
    // [was: null until the resume delivered a record]
    assert_eq!(
        p.progress().position_ns,
        Some(700 * MS),
        "paused, the position is where the seek went"
    );
    p.start().unwrap();
    wait_for("records after the resume", LONG, || out.len() >= before + 2);
    assert_eq!(out.seen()[before].time_ns, 700 * MS);
    p.close().unwrap();
}

#[test]
fn seek_outside_the_log_clamps_to_its_ends() {
    let out = Collected::default();
    let mut records = numbered(10, 10 * MS);
    records[9].time_ns = records[8].time_ns; // the last time is a tie of two
    let mut p = player(records, f64::INFINITY, vec![collect(&out)]);
    p.seek(-5_000 * MS).unwrap();
    assert_eq!(p.state(), PlayerState::Idle);
    p.start().unwrap();
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(numbers(&out), (0..10).collect::<Vec<_>>());
    p.seek(1_000_000 * MS).unwrap();
    let before = out.len();
    assert!(
        p.start().unwrap(),
        "a seek after the end positions a new run"
    );
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(
        numbers(&out)[before..],
        [8, 9],
        "past the end: the last records"
    );
}

#[test]
fn seek_then_stop_then_start_plays_from_the_beginning() {
    let out = Collected::default();
    let mut p = player(numbered(20, 0), f64::INFINITY, vec![collect(&out)]);
    p.seek(0).unwrap();
    p.seek(0).unwrap();
    p.seek(10).unwrap();
    p.stop().unwrap();
    p.start().unwrap();
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(numbers(&out), (0..20).collect::<Vec<_>>());
}

#[test]
fn every_operation_wakes_a_waiting_scheduler_at_once() {
    let out = Collected::default();
    let mut records = numbered(3, 0);
    records[2].time_ns = 3_600_000 * MS; // an hour away
    let mut p = player(records, 1.0, vec![collect(&out)]);
    p.start().unwrap();
    wait_for("two records", LONG, || out.len() == 2);
    std::thread::sleep(Duration::from_millis(30)); // asleep in the long wait
    let mut worst = Duration::ZERO;
    let mut time = |f: &mut dyn FnMut(&mut Player)| {
        let t = Instant::now();
        f(&mut p);
        worst = worst.max(t.elapsed());
    };
    time(&mut |p| assert!(p.pause().unwrap()));
    time(&mut |p| assert!(p.start().unwrap()));
    time(&mut |p| p.seek(MS).unwrap());
    time(&mut |p| p.set_speed(Speed::new(2.0).unwrap()));
    time(&mut |p| assert!(p.stop().unwrap()));
    time(&mut |p| p.close().unwrap());
    // Each takes microseconds on a quiet machine; a loaded 2-core VM can
    // delay a thread's wake-up by tens of milliseconds.
    eprintln!("slowest of pause, start, seek, speed, stop, close during a wait: {worst:?}");
    assert!(
        worst < Duration::from_millis(200),
        "slowest operation {worst:?}"
    );
}

#[test]
fn close_releases_and_refuses_further_operations() {
    let out = Collected::default();
    let mut p = player(numbered(10, 0), 1.0, vec![collect(&out)]);
    p.close().unwrap();
    p.close().unwrap();
    assert_eq!(p.state(), PlayerState::Closed);
    assert!(p.start().is_err());
    assert!(p.seek(0).is_err());
}

/// A sink that cannot take records while its gate is shut: it waits as its
/// policy allows, and drops (counted) when it may not wait.
struct Gate {
    open: Arc<AtomicBool>,
    taken: Collected,
}

impl Sink for Gate {
    fn deliver(&mut self, record: &Record, delivery: Delivery, waiter: Waiter<'_>) {
        while !self.open.load(Ordering::Acquire) {
            if !waiter.wait(Duration::from_millis(1)) {
                if waiter.lag() == LagPolicy::Drop {
                    waiter.count_dropped(1);
                    return;
                }
                break; // a stop request: take it now
            }
        }
        self.taken.seen.lock().unwrap().push(common::Seen {
            time_ns: record.time_ns,
            topic: record.topic.to_string(),
            stream: record.stream,
            wall_ns: now_ns(),
            delivery,
            payload: Vec::new(),
        });
    }
}

fn gated(lag: LagPolicy) -> (Player, Collected, Collected, Arc<AtomicBool>) {
    let (timely, taken) = (Collected::default(), Collected::default());
    let open = Arc::new(AtomicBool::new(false));
    let gate = Gate {
        open: open.clone(),
        taken: taken.clone(),
    };
    let p = player(
        numbered(50, 2 * MS),
        1.0,
        vec![
            collect(&timely),
            SinkConfig {
                kind: SinkKind::Custom(Box::new(gate)),
                lag,
            },
        ],
    );
    (p, timely, taken, open)
}

#[test]
fn a_sink_under_drop_drops_what_it_cannot_take_and_the_others_keep_their_timing() {
    let (mut p, timely, taken, open) = gated(LagPolicy::Drop);
    p.start().unwrap();
    wait_for("ten records", LONG, || timely.len() >= 10);
    open.store(true, Ordering::Release);
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    let dropped = p.sink_stats()[1].dropped.get();
    assert!(dropped >= 10, "dropped {dropped}");
    assert_eq!(
        dropped as usize + taken.len(),
        50,
        "every record taken or counted"
    );
    assert_eq!(p.sink_stats()[0].dropped.get(), 0);
    assert_eq!(timely.len(), 50);
    let worst = timely
        .seen()
        .iter()
        .map(|s| s.delivery.lateness_ns)
        .max()
        .unwrap();
    assert!(
        worst < 100 * MS,
        "the other sink kept its timing: worst {} ms late",
        worst / MS
    );
}

#[test]
fn a_sink_under_wait_slows_the_replay_and_loses_nothing() {
    let (mut p, timely, taken, open) = gated(LagPolicy::Wait);
    p.start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(timely.len() <= 1, "the replay waits for the slow sink");
    open.store(true, Ordering::Release);
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(taken.len(), 50);
    assert_eq!(p.sink_stats()[1].dropped.get(), 0);
    let worst = timely
        .seen()
        .iter()
        .map(|s| s.delivery.lateness_ns)
        .max()
        .unwrap();
    assert!(
        worst >= 150 * MS,
        "the wait shows as lateness: {} ms",
        worst / MS
    );
}
