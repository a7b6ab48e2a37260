//! Playback control on the timeline: windows, limits, loops and their seams,
//! capped gaps, fixed rates, delays, start times, steps, bursts, playUntil,
//! clock ticks, virtual time, filters, remapping, backfill and several
//! inputs. Most run on the virtual clock, where every deadline is exact.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{numbered, wait_for, Collected, Seen, VecSource};
use netreplay_core::engine::{
    MergeReader, Pace, Pattern, SchedulerOptions, Selection, Speed, TimelineEvent, TimelineOptions,
};
use netreplay_core::format::{RecordSource, TimeWindow};
use netreplay_core::{
    PlaybackOptions, Player, PlayerConfig, PlayerSource, PlayerState, Record, SinkConfig, SinkKind,
};

const MS: i64 = 1_000_000;
const LONG: Duration = Duration::from_secs(10);

fn build(
    records: Vec<Record>,
    scheduler: SchedulerOptions,
    playback: PlaybackOptions,
) -> netreplay_core::Result<(Player, Collected)> {
    let out = Collected::default();
    let player = Player::new(
        PlayerSource::Reader(Box::new(VecSource::new(records))),
        PlayerConfig {
            scheduler,
            playback,
            sinks: vec![SinkConfig::new(SinkKind::Custom(out.sink(true)))],
            ..Default::default()
        },
    )?;
    Ok((player, out))
}

fn virtual_player(
    records: Vec<Record>,
    timeline: TimelineOptions,
    playback: PlaybackOptions,
) -> (Player, Collected) {
    let scheduler = SchedulerOptions {
        virtual_time: true,
        timeline,
        ..Default::default()
    };
    build(records, scheduler, playback).unwrap()
}

fn number(s: &Seen) -> u32 {
    u32::from_be_bytes(s.payload[..4].try_into().unwrap())
}

fn numbers(out: &Collected) -> Vec<u32> {
    out.seen().iter().map(number).collect()
}

fn deadlines(out: &Collected) -> Vec<i64> {
    out.seen()
        .iter()
        .map(|s| s.delivery.deadline_ns.unwrap())
        .collect()
}

fn gaps(values: &[i64]) -> Vec<i64> {
    values.windows(2).map(|w| w[1] - w[0]).collect()
}

fn play_to_end(p: &mut Player) {
    p.start().unwrap();
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
}

fn wait_paused(p: &mut Player) {
    wait_for("the pause", LONG, || {
        p.state() == PlayerState::Paused && !p.scheduler().is_alive()
    });
}

/// Records whose topics cycle through `topics`, `step_ns` apart, numbered.
fn topical(n: u32, step_ns: i64, topics: &[&str]) -> Vec<Record> {
    let mut records = numbered(n, step_ns);
    for (i, r) in records.iter_mut().enumerate() {
        r.topic = Arc::from(topics[i % topics.len()]);
    }
    records
}

#[test]
fn virtual_time_plays_at_once_with_exact_deadlines_and_no_lateness() {
    let (mut p, out) = virtual_player(
        numbered(50, 7 * MS),
        TimelineOptions::default(),
        PlaybackOptions::default(),
    );
    let started = Instant::now();
    play_to_end(&mut p);
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting");
    assert_eq!(numbers(&out), (0..50).collect::<Vec<_>>());
    assert!(gaps(&deadlines(&out)).iter().all(|&g| g == 7 * MS));
    assert!(out.seen().iter().all(|s| s.delivery.lateness_ns == 0));
}

#[test]
fn start_offset_duration_and_until_bound_each_pass() {
    let records = numbered(100, 10 * MS);
    let window = |offset: Option<i64>, duration: Option<i64>, until: Option<i64>| {
        let (mut p, out) = virtual_player(
            records.clone(),
            TimelineOptions::default(),
            PlaybackOptions {
                start_offset_ns: offset,
                duration_ns: duration,
                until_ns: until,
                ..Default::default()
            },
        );
        play_to_end(&mut p);
        let n = numbers(&out);
        (n[0], *n.last().unwrap(), n.len())
    };
    assert_eq!(window(Some(200 * MS), None, None), (20, 99, 80));
    assert_eq!(window(Some(200 * MS), Some(300 * MS), None), (20, 50, 31));
    assert_eq!(
        window(Some(200 * MS), Some(300 * MS), Some(400 * MS)),
        (20, 40, 21)
    );
    assert_eq!(window(None, None, Some(55 * MS)), (0, 5, 6));
    // The first record after the offset is due at once, not 200 ms late.
    let (mut p, out) = virtual_player(
        records,
        TimelineOptions::default(),
        PlaybackOptions {
            start_offset_ns: Some(205 * MS),
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    assert_eq!(out.seen()[0].delivery.deadline_ns, Some(0));
}

#[test]
fn limit_ends_after_n_messages_across_loops() {
    let scheduler = SchedulerOptions {
        virtual_time: true,
        limit: Some(25),
        ..Default::default()
    };
    let (mut p, out) = build(
        numbered(10, MS),
        scheduler,
        PlaybackOptions {
            passes: None,
            ..Default::default()
        },
    )
    .unwrap();
    play_to_end(&mut p);
    assert_eq!(out.len(), 25);
    assert_eq!(out.seen()[24].delivery.pass, 2);
    assert_eq!(number(&out.seen()[24]), 4);
    assert!(p.restart().unwrap(), "restart counts the limit again");
    wait_for("the second end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(out.len(), 50);
}

#[test]
fn a_loop_seam_is_one_gap_plus_the_loop_delay_and_times_continue() {
    let (mut p, out) = virtual_player(
        numbered(10, 10 * MS),
        TimelineOptions {
            loop_delay_ns: 5 * MS,
            continuous_time: true,
            ..Default::default()
        },
        PlaybackOptions {
            passes: Some(3),
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    let seen = out.seen();
    assert_eq!(seen.len(), 30);
    let g = gaps(&deadlines(&out));
    for (i, gap) in g.iter().enumerate() {
        let seam = i == 9 || i == 19;
        assert_eq!(*gap, if seam { 15 * MS } else { 10 * MS }, "gap {i}");
    }
    // Pass k reports t + k·(span 90 ms + gap 10 ms + loop delay 5 ms).
    for (i, s) in seen.iter().enumerate() {
        let k = (i / 10) as i64;
        assert_eq!(s.delivery.pass, k as u64);
        assert_eq!(s.delivery.time_ns, s.time_ns + k * 105 * MS);
    }
    let loops: Vec<_> = out
        .events()
        .into_iter()
        .filter(|(_, e)| matches!(e, TimelineEvent::Loop { .. }))
        .collect();
    assert_eq!(
        loops,
        vec![
            (10, TimelineEvent::Loop { pass: 1 }),
            (20, TimelineEvent::Loop { pass: 2 })
        ]
    );
}

#[test]
fn without_continuous_time_each_loop_reports_the_logged_times() {
    let (mut p, out) = virtual_player(
        numbered(4, MS),
        TimelineOptions::default(),
        PlaybackOptions {
            passes: Some(2),
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    let times: Vec<_> = out.seen().iter().map(|s| s.delivery.time_ns).collect();
    assert_eq!(times, vec![0, MS, 2 * MS, 3 * MS, 0, MS, 2 * MS, 3 * MS]);
    assert_eq!(gaps(&deadlines(&out))[3], MS, "the seam is one gap");
}

#[test]
fn max_gap_caps_every_gap_exactly() {
    let mut records = numbered(4, MS);
    records[2].time_ns = 1_000 * MS;
    records[3].time_ns = 1_001 * MS;
    let (mut p, out) = virtual_player(
        records,
        TimelineOptions {
            max_gap_ns: Some(10 * MS),
            ..Default::default()
        },
        PlaybackOptions::default(),
    );
    play_to_end(&mut p);
    assert_eq!(gaps(&deadlines(&out)), vec![MS, 10 * MS, MS]);
    // The logged times are reported unchanged.
    assert_eq!(out.seen()[2].delivery.time_ns, 1_000 * MS);
}

#[test]
fn fixed_rates_ignore_the_logged_times() {
    let mut records = numbered(1000, 0);
    for (i, r) in records.iter_mut().enumerate() {
        r.time_ns = (i as i64 * 7919) % 1000 * MS / 10 + i as i64; // irregular, increasing-ish
    }
    records.sort_by_key(|r| r.time_ns);
    let (mut p, out) = virtual_player(
        records.clone(),
        TimelineOptions {
            pace: Pace::MessagesPerSecond(3000.0),
            ..Default::default()
        },
        PlaybackOptions::default(),
    );
    play_to_end(&mut p);
    let d = deadlines(&out);
    for (i, deadline) in d.iter().enumerate() {
        // The n-th message is due n/3000 s after the first, rounded once.
        assert_eq!(deadline - d[0], (i as f64 * 1e9 / 3000.0).round() as i64);
    }
    // Bytes per second: 4-byte payloads at 4000 B/s are 1 ms apart.
    let (mut p, out) = virtual_player(
        records,
        TimelineOptions {
            pace: Pace::BytesPerSecond(4000.0),
            ..Default::default()
        },
        PlaybackOptions::default(),
    );
    play_to_end(&mut p);
    assert!(gaps(&deadlines(&out)).iter().all(|&g| g == MS));
}

#[test]
fn start_paused_then_steps_then_plays_on_with_the_timing() {
    let (mut p, out) = virtual_player(
        numbered(10, 10 * MS),
        TimelineOptions::default(),
        PlaybackOptions {
            start_paused: true,
            ..Default::default()
        },
    );
    assert!(p.start().unwrap());
    assert_eq!(p.state(), PlayerState::Paused);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(out.len(), 0, "paused on the first record");
    assert!(p.step(3).unwrap());
    wait_paused(&mut p);
    assert_eq!(numbers(&out), vec![0, 1, 2]);
    assert!(
        out.seen().iter().all(|s| s.delivery.deadline_ns.is_none()),
        "steps go out at once"
    );
    // Resumed, the next record keeps its gap from the last one stepped.
    play_to_end(&mut p);
    assert_eq!(numbers(&out), (0..10).collect::<Vec<_>>());
    let d: Vec<i64> = out.seen()[3..]
        .iter()
        .map(|s| s.delivery.deadline_ns.unwrap())
        .collect();
    assert!(gaps(&d).iter().all(|&g| g == 10 * MS));
    assert!(
        matches!(p.step(1), Ok(false)),
        "nothing to step after the end"
    );
}

#[test]
fn step_while_playing_is_a_state_error() {
    let scheduler = SchedulerOptions::default();
    let (mut p, _out) = build(
        numbered(100, 50 * MS),
        scheduler,
        PlaybackOptions::default(),
    )
    .unwrap();
    p.start().unwrap();
    let err = p.step(1).unwrap_err();
    assert!(err.to_string().contains("pause() first"), "{err}");
    p.close().unwrap();
}

#[test]
fn step_crosses_a_loop_seam() {
    let (mut p, out) = virtual_player(
        numbered(5, MS),
        TimelineOptions::default(),
        PlaybackOptions {
            passes: Some(2),
            ..Default::default()
        },
    );
    assert!(p.step(7).unwrap());
    wait_paused(&mut p);
    assert_eq!(numbers(&out), vec![0, 1, 2, 3, 4, 0, 1]);
    assert_eq!(out.events(), vec![(5, TimelineEvent::Loop { pass: 1 })]);
    assert!(p.step(10).unwrap());
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(out.len(), 10, "the last pass ends the steps");
}

#[test]
fn play_until_delivers_everything_up_to_t_then_start_goes_on() {
    let (mut p, out) = virtual_player(
        numbered(100, 10 * MS),
        TimelineOptions::default(),
        PlaybackOptions::default(),
    );
    assert!(p.play_until(255 * MS).unwrap());
    wait_paused(&mut p);
    assert_eq!(numbers(&out), (0..=25).collect::<Vec<_>>());
    assert_eq!(p.progress().position_ns, Some(255 * MS));
    play_to_end(&mut p);
    assert_eq!(numbers(&out), (0..100).collect::<Vec<_>>());
    // The virtual clock stood still while paused: no gap is longer.
    assert!(gaps(&deadlines(&out)).iter().all(|&g| g == 10 * MS));
}

#[test]
fn advance_to_and_by_move_a_paused_virtual_clock() {
    let (mut p, out) = virtual_player(
        numbered(20, 100 * MS),
        TimelineOptions::default(),
        PlaybackOptions::default(),
    );
    assert!(p.advance_to(250 * MS).unwrap());
    wait_paused(&mut p);
    assert_eq!(numbers(&out), vec![0, 1, 2]);
    assert!(p.advance_by(250 * MS).unwrap());
    wait_paused(&mut p);
    assert_eq!(numbers(&out), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(
        deadlines(&out),
        (0..6).map(|k| k * 100 * MS).collect::<Vec<_>>()
    );
    assert_eq!(p.progress().position_ns, Some(500 * MS));
    // Only a virtual clock can be advanced by hand.
    let (mut real, _) = build(
        numbered(2, MS),
        SchedulerOptions::default(),
        PlaybackOptions::default(),
    )
    .unwrap();
    assert!(real
        .advance_by(MS)
        .unwrap_err()
        .to_string()
        .contains("time: 'virtual'"));
}

#[test]
fn clock_ticks_carry_logical_time_between_records() {
    let scheduler = SchedulerOptions {
        virtual_time: true,
        clock_period_ns: Some(250 * MS),
        ..Default::default()
    };
    let (mut p, out) = build(
        numbered(11, 100 * MS),
        scheduler,
        PlaybackOptions::default(),
    )
    .unwrap();
    play_to_end(&mut p);
    let ticks: Vec<_> = out
        .events()
        .into_iter()
        .filter_map(|(seen, e)| match e {
            TimelineEvent::Clock { time_ns } => Some((seen, time_ns / MS)),
            _ => None,
        })
        .collect();
    assert_eq!(ticks, vec![(3, 250), (5, 500), (8, 750), (10, 1000)]);
}

#[test]
fn burst_goes_at_once_then_the_timing_is_re_anchored_at_the_new_speed() {
    let (mut p, out) = build(
        numbered(40, 60 * MS),
        SchedulerOptions::default(),
        PlaybackOptions::default(),
    )
    .unwrap();
    p.start().unwrap();
    wait_for("two records", LONG, || out.len() >= 2);
    assert!(p.burst(5).unwrap());
    p.set_speed(Speed::new(2.0).unwrap());
    wait_for("the burst and two more", LONG, || out.len() >= 9);
    p.pause().unwrap();
    let seen = out.seen();
    let burst: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.delivery.deadline_ns.is_none())
        .collect();
    assert_eq!(burst.len(), 5, "five records at once");
    let first = seen
        .iter()
        .position(|s| s.delivery.deadline_ns.is_none())
        .unwrap();
    let numbers: Vec<u32> = seen.iter().map(number).collect();
    assert_eq!(
        numbers,
        (0..seen.len() as u32).collect::<Vec<_>>(),
        "nothing skipped"
    );
    let span = burst.last().unwrap().wall_ns - burst[0].wall_ns;
    assert!(span < 100 * MS, "a burst took {span} ns");
    // After it, deadlines are one gap apart at speed 2 (30 ms), the first one
    // gap after the burst's last record: re-anchored, not catching up.
    let after = &seen[first + 5..];
    let due = |s: &Seen| s.delivery.deadline_ns.unwrap();
    assert_eq!(due(&after[1]) - due(&after[0]), 30 * MS);
    let first_due = due(&after[0]) - burst.last().unwrap().wall_ns;
    assert!(
        (25 * MS..=60 * MS).contains(&first_due),
        "due {first_due} ns after the burst"
    );
}

#[test]
fn a_delay_comes_before_the_first_record_and_a_pause_keeps_what_is_left() {
    let scheduler = SchedulerOptions {
        delay_ns: 300 * MS,
        ..Default::default()
    };
    let (mut p, out) = build(numbered(3, MS), scheduler, PlaybackOptions::default()).unwrap();
    let started = Instant::now();
    p.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(p.progress().delayed);
    assert!(p.pause().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(out.len(), 0, "nothing during the delay or the pause");
    let resumed = Instant::now();
    p.start().unwrap();
    wait_for("the records", LONG, || out.len() == 3);
    let waited = resumed.elapsed();
    // About 200 ms were left of the delay.
    assert!(
        waited >= Duration::from_millis(150),
        "resumed after {waited:?}"
    );
    assert!(waited < Duration::from_millis(290) || started.elapsed() > Duration::from_secs(2));
}

#[test]
fn a_delay_comes_before_each_loop() {
    let scheduler = SchedulerOptions {
        virtual_time: true,
        delay_ns: 1_000 * MS,
        ..Default::default()
    };
    let (mut p, out) = build(
        numbered(3, MS),
        scheduler,
        PlaybackOptions {
            passes: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    play_to_end(&mut p);
    let d = deadlines(&out);
    assert_eq!(d[0], 1_000 * MS);
    assert_eq!(gaps(&d), vec![MS, MS, 1_001 * MS, MS, MS]);
}

#[test]
fn at_infinite_speed_a_pause_during_the_delay_keeps_what_is_left_of_it() {
    // [was: the resumed run delivered at once, the rest of the delay lost]
    let (mut p, out) = build(
        numbered(3, MS),
        SchedulerOptions {
            speed: Speed::new(f64::INFINITY).unwrap(),
            delay_ns: 600 * MS,
            ..Default::default()
        },
        PlaybackOptions::default(),
    )
    .unwrap();
    p.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    p.pause().unwrap();
    assert_eq!(out.len(), 0, "nothing before the delay is out");
    std::thread::sleep(Duration::from_millis(300));
    let resumed = Instant::now();
    p.start().unwrap();
    wait_for("the end", LONG, || p.state() == PlayerState::Ended);
    assert_eq!(out.len(), 3);
    // About 500 ms were left; the 300 ms paused do not count.
    let waited = resumed.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "the rest of the delay was waited out after the resume: {waited:?}"
    );
}

#[test]
fn at_infinite_speed_a_delay_and_a_start_time_still_hold_the_first_record_back() {
    let delayed = SchedulerOptions {
        speed: Speed::new(f64::INFINITY).unwrap(),
        delay_ns: 300 * MS,
        ..Default::default()
    };
    let (mut p, out) = build(
        numbered(3, MS),
        delayed,
        PlaybackOptions {
            passes: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    play_to_end(&mut p);
    assert_eq!(out.len(), 6);
    // Before each of the two passes.
    assert!(
        started.elapsed() >= Duration::from_millis(590),
        "{:?}",
        started.elapsed()
    );

    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let (mut p, out) = build(
        numbered(3, MS),
        SchedulerOptions {
            speed: Speed::new(f64::INFINITY).unwrap(),
            ..Default::default()
        },
        PlaybackOptions {
            start_at_unix_ns: Some(now_unix + 300_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    play_to_end(&mut p);
    assert_eq!(out.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn start_at_in_the_past_starts_at_once_late_and_in_the_future_can_be_stopped() {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let (mut p, out) = build(
        numbered(5, MS),
        SchedulerOptions::default(),
        PlaybackOptions {
            start_at_unix_ns: Some(now_unix - 1_000_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    play_to_end(&mut p);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(out.len(), 5);
    assert!(
        out.seen().iter().all(|s| s.delivery.lateness_ns > 900 * MS),
        "counted late"
    );
    assert_eq!(p.scheduler().stats().late.get(), 5);

    let (mut p, out) = build(
        numbered(5, MS),
        SchedulerOptions::default(),
        PlaybackOptions {
            start_at_unix_ns: Some(now_unix + 3_600_000_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    p.start().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(p.progress().delayed);
    let stopping = Instant::now();
    assert!(p.stop().unwrap());
    assert!(stopping.elapsed() < Duration::from_millis(500));
    assert_eq!(out.len(), 0);
}

#[test]
fn start_at_is_met_on_the_monotonic_clock() {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let at = now_unix + 200_000_000;
    let (mut p, out) = build(
        numbered(2, MS),
        SchedulerOptions::default(),
        PlaybackOptions {
            start_at_unix_ns: Some(at),
            ..Default::default()
        },
    )
    .unwrap();
    play_to_end(&mut p);
    let first = &out.seen()[0];
    let unix_at_delivery = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
        - i128::from(netreplay_core::engine::now_ns() - first.wall_ns);
    let error_ms = (unix_at_delivery - at) as f64 / 1e6;
    assert!(
        error_ms.abs() < 50.0,
        "first record {error_ms} ms from startAt"
    );
}

#[test]
fn filters_and_remap_apply_before_the_ring() {
    let selection = Selection {
        topics: vec![
            Pattern::Exact("a".into()),
            Pattern::regex("topics", "^c", false).unwrap(),
        ],
        exclude_topics: vec![Pattern::Exact("cx".into())],
        remap: vec![("a".into(), "alpha".into())],
        ..Default::default()
    };
    let (mut p, out) = virtual_player(
        topical(12, MS, &["a", "b", "c", "cx"]),
        TimelineOptions::default(),
        PlaybackOptions {
            selection,
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    let seen: Vec<(u32, String)> = out
        .seen()
        .iter()
        .map(|s| (number(s), s.topic.clone()))
        .collect();
    let expected: Vec<(u32, String)> = [
        (0, "alpha"),
        (2, "c"),
        (4, "alpha"),
        (6, "c"),
        (8, "alpha"),
        (10, "c"),
    ]
    .iter()
    .map(|(n, t)| (*n, t.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        p.scheduler().stats().delivered.get(),
        6,
        "filtered records never reach the scheduler"
    );
    // Type filters: the VecSource's one stream is of type "Vec".
    let (mut p, out) = virtual_player(
        topical(4, MS, &["a"]),
        TimelineOptions::default(),
        PlaybackOptions {
            selection: Selection {
                exclude_types: vec![Pattern::Exact("Vec".into())],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    assert_eq!(out.len(), 0);
}

#[test]
fn backfill_at_a_start_offset_with_filters() {
    let (mut p, out) = virtual_player(
        topical(12, 10 * MS, &["a", "b", "c"]),
        TimelineOptions::default(),
        PlaybackOptions {
            start_offset_ns: Some(55 * MS),
            backfill: true,
            selection: Selection {
                exclude_topics: vec![Pattern::Exact("b".into())],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    play_to_end(&mut p);
    let seen = out.seen();
    let tagged: Vec<(u32, bool)> = seen
        .iter()
        .map(|s| (number(s), s.delivery.backfill))
        .collect();
    // a3 and c5 are the last a and c before 55 ms; b is filtered out.
    assert_eq!(
        tagged,
        vec![
            (3, true),
            (5, true),
            (6, false),
            (8, false),
            (9, false),
            (11, false)
        ]
    );
    assert!(seen[..2].iter().all(|s| s.delivery.deadline_ns.is_none()));
    assert_eq!(
        p.scheduler().stats().delivered.get(),
        4,
        "backfill is not counted as played"
    );
}

#[test]
fn backfill_at_a_seek_and_at_each_seam() {
    let (mut p, out) = virtual_player(
        topical(9, 10 * MS, &["a", "b", "c"]),
        TimelineOptions::default(),
        PlaybackOptions {
            start_offset_ns: Some(30 * MS),
            passes: Some(2),
            backfill: true,
            ..Default::default()
        },
    );
    p.seek(75 * MS).unwrap();
    assert!(p.step(1).unwrap());
    wait_paused(&mut p);
    let tagged = |out: &Collected| -> Vec<(u32, bool)> {
        out.seen()
            .iter()
            .map(|s| (number(s), s.delivery.backfill))
            .collect()
    };
    // Before 75 ms: c5 (50), a6 (60), b7 (70); then 8 plays.
    assert_eq!(
        tagged(&out),
        vec![(5, true), (6, true), (7, true), (8, false)]
    );
    play_to_end(&mut p);
    // The next pass starts at 30 ms with a0, b1, c2 backfilled.
    assert_eq!(
        tagged(&out)[4..].to_vec(),
        vec![
            (0, true),
            (1, true),
            (2, true),
            (3, false),
            (4, false),
            (5, false),
            (6, false),
            (7, false),
            (8, false)
        ]
    );
}

#[test]
fn a_seek_inside_a_loop_stays_in_its_pass() {
    let (mut p, out) = virtual_player(
        numbered(10, 10 * MS),
        TimelineOptions {
            continuous_time: true,
            ..Default::default()
        },
        PlaybackOptions {
            passes: Some(3),
            ..Default::default()
        },
    );
    p.step(12).unwrap();
    wait_paused(&mut p);
    p.seek(50 * MS).unwrap();
    play_to_end(&mut p);
    let seen = out.seen();
    let tail: Vec<(u64, u32)> = seen[12..]
        .iter()
        .map(|s| (s.delivery.pass, number(s)))
        .collect();
    let mut expected: Vec<(u64, u32)> = (5..10).map(|n| (1, n)).collect();
    expected.extend((0..10).map(|n| (2, n)));
    assert_eq!(tail, expected);
    assert_eq!(
        seen[12].delivery.time_ns,
        50 * MS + 100 * MS,
        "continuous time of pass 1"
    );
}

#[test]
fn several_inputs_merge_in_time_with_ties_in_input_order() {
    let a = VecSource::new(numbered(3, 10 * MS));
    let mut b_records = numbered(3, 10 * MS);
    for r in &mut b_records {
        r.payload = (100 + u32::from_be_bytes(r.payload[..4].try_into().unwrap()))
            .to_be_bytes()
            .to_vec();
    }
    let b = VecSource::new(b_records);
    let mut c_records = numbered(1, 0);
    c_records[0].time_ns = 15 * MS;
    let c = VecSource::new(c_records);
    // An input of two streams (b and c merged) keeps both in the table.
    let bc: Box<dyn RecordSource> = Box::new(MergeReader::new(
        vec![Box::new(b), Box::new(c)],
        TimeWindow::default(),
    ));
    let mut merged = MergeReader::new(vec![Box::new(a), bc], TimeWindow::default());
    assert_eq!(merged.streams().len(), 3);
    let mut got = Vec::new();
    while let Some(r) = merged.next_record().unwrap() {
        got.push((
            r.time_ns / MS,
            r.stream,
            u32::from_be_bytes(r.payload[..4].try_into().unwrap()),
        ));
    }
    assert_eq!(
        got,
        vec![
            (0, 0, 0),
            (0, 1, 100),
            (10, 0, 1),
            (10, 1, 101),
            (15, 2, 0),
            (20, 0, 2),
            (20, 1, 102)
        ]
    );
}

#[test]
fn conflicting_and_bad_options_are_named() {
    let err = |scheduler: SchedulerOptions, playback: PlaybackOptions| {
        build(numbered(3, MS), scheduler, playback)
            .err()
            .expect("an error")
            .to_string()
    };
    let rate_and_gap = SchedulerOptions {
        timeline: TimelineOptions {
            pace: Pace::MessagesPerSecond(10.0),
            max_gap_ns: Some(MS),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(err(rate_and_gap, PlaybackOptions::default()).contains("'maxGap'"));
    let rate_and_speed = SchedulerOptions {
        speed: Speed::new(2.0).unwrap(),
        timeline: TimelineOptions {
            pace: Pace::BytesPerSecond(1e6),
            ..Default::default()
        },
        ..Default::default()
    };
    let message = err(rate_and_speed, PlaybackOptions::default());
    assert!(
        message.contains("'speed'") && message.contains("'rate'"),
        "{message}"
    );
    let paused_at = PlaybackOptions {
        start_paused: true,
        start_at_unix_ns: Some(0),
        ..Default::default()
    };
    assert!(err(SchedulerOptions::default(), paused_at).contains("'startPaused'"));
    let virtual_at = PlaybackOptions {
        start_at_unix_ns: Some(0),
        ..Default::default()
    };
    let virtual_time = SchedulerOptions {
        virtual_time: true,
        ..Default::default()
    };
    assert!(err(virtual_time, virtual_at).contains("'virtual'"));
    let backwards = PlaybackOptions {
        start_offset_ns: Some(50 * MS),
        until_ns: Some(10 * MS),
        ..Default::default()
    };
    assert!(err(SchedulerOptions::default(), backwards).contains("'until'"));
    let no_loop = PlaybackOptions {
        passes: Some(0),
        ..Default::default()
    };
    assert!(err(SchedulerOptions::default(), no_loop).contains("'loop'"));
    let negative_delay = SchedulerOptions {
        delay_ns: -1,
        ..Default::default()
    };
    assert!(err(negative_delay, PlaybackOptions::default()).contains("'delay'"));
    // A reader pushed from outside has no first record to count an offset from.
    let external = Player::new(
        PlayerSource::External,
        PlayerConfig {
            playback: PlaybackOptions {
                start_offset_ns: Some(MS),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert!(external
        .err()
        .unwrap()
        .to_string()
        .contains("'startOffset'"));
}
