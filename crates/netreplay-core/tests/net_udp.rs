//! UdpSink → Listener round trips over real loopback sockets.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::net::*;
use common::*;
use netreplay_core::engine::Outcome;
use netreplay_core::engine::Queue;
use netreplay_core::engine::Slot;
use netreplay_core::engine::Speed;
use netreplay_core::engine::{LagPolicy, SinkEntry};
use netreplay_core::engine::{Scheduler, SchedulerOptions};
use netreplay_core::format::wire::{Encoder, WireOptions};
use netreplay_core::net::{FailureKind, Route, UdpSink, UdpSinkOptions, UdpSinkSnapshot};
use netreplay_core::net::{Listener, ListenerOptions, ReceivedMessage};
use netreplay_core::{Error, Record};

const BIG_RCVBUF: Option<usize> = Some(4 << 20);

fn listen(
    url: &str,
) -> (
    Listener<netreplay_core::net::ChannelHandler>,
    Receiver<ReceivedMessage>,
) {
    Listener::channel(
        ListenerOptions {
            addresses: vec![url.into()],
            recv_buffer_bytes: BIG_RCVBUF,
            ..ListenerOptions::default()
        },
        1024,
    )
    .unwrap()
}

fn receive(rx: &Receiver<ReceivedMessage>, n: usize) -> Vec<ReceivedMessage> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("message {i} of {n} not received: {e}"))
        })
        .collect()
}

fn round_trip(listen_url: &str) {
    let (listener, rx) = listen(listen_url);
    let dest = format!("udp://{}", listener.local_addrs()[0]);
    let (records, streams) = fixture_records(true);
    assert_eq!(records.len(), 30);
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            destination: Some(dest.clone()),
            ..UdpSinkOptions::default()
        },
        &streams,
    )
    .unwrap();
    for r in &records {
        sink.send(r, now());
    }
    let got = receive(&rx, records.len());
    for (r, m) in records.iter().zip(&got) {
        assert_eq!(m.topic, &*r.topic);
        assert_eq!(m.payload, r.payload, "payload bytes pass verbatim");
        assert_eq!(m.fragments, 1);
        assert!(m.received_at_ns > 0);
    }
    let s = sink.stats().snapshot();
    assert_eq!((s.records, s.records_sent, s.datagrams), (30, 30, 30));
    assert_eq!(s.send_failures, 0);
    assert_eq!(s.lateness.count, 30);
    let l = listener.stats().snapshot();
    assert_eq!((l.datagrams, l.messages, l.garbage), (30, 30, 0));
    listener.stop().unwrap();
}

#[test]
fn round_trip_ipv4_loopback() {
    round_trip("udp://127.0.0.1:0");
}

#[test]
fn round_trip_ipv6_loopback() {
    round_trip("udp://[::1]:0");
}

fn fragmented(listen_url: &str) {
    let (listener, rx) = listen(listen_url);
    let dest = format!("udp://{}", listener.local_addrs()[0]);
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            destination: Some(dest),
            ..UdpSinkOptions::default()
        },
        &[],
    )
    .unwrap();
    let payload = big_payload(200_000, 7);
    sink.send(&record(0, 0, "big", payload.clone()), now());
    sink.send(&record(0, 1, "small", vec![0x2a]), now());
    let got = receive(&rx, 2);
    assert_eq!(got[0].topic, "big");
    assert_eq!(got[0].fragments, 4);
    assert!(
        got[0].payload == payload,
        "200 kB payload reassembled byte-exact"
    );
    assert_eq!(got[1].payload, vec![0x2a]);
    let s = sink.stats().snapshot();
    assert_eq!((s.records_sent, s.fragmented, s.datagrams), (2, 1, 5));
    let l = listener.stats().snapshot();
    assert_eq!(
        (l.fragments, l.reassembled, l.reassembly_dropped),
        (4, 1, 0)
    );
    assert_eq!((l.pending_messages, l.pending_bytes), (0, 0));
    listener.stop().unwrap();
}

#[test]
fn fragmented_200k_ipv4() {
    fragmented("udp://127.0.0.1:0");
}

#[test]
fn fragmented_200k_ipv6() {
    fragmented("udp://[::1]:0");
}

#[test]
fn routes_by_message_type_through_a_scheduler() {
    let (la, rx_a) = listen("udp://127.0.0.1:0");
    let (lb, rx_b) = listen("udp://[::1]:0");
    let (records, streams) = fixture_records(false);
    let options = UdpSinkOptions {
        routes: vec![
            Route {
                message_type: Some("UnitTestMessageA".into()),
                topic: None,
                destination: format!("udp://{}", la.local_addrs()[0]),
            },
            Route {
                message_type: Some("UnitTestMessageB".into()),
                topic: None,
                destination: format!("udp://{}", lb.local_addrs()[0]),
            },
        ],
        ..UdpSinkOptions::default()
    };
    // 10x speed: the 1 s recording plays in about 100 ms.
    let (outcome, s) = replay_udp(&records, &streams, options, 10.0);
    assert_eq!(outcome, Outcome::End);
    let a = receive(&rx_a, 10);
    let b = receive(&rx_b, 10);
    let of_type = |name: &str| -> Vec<&Record> {
        let i = streams
            .iter()
            .position(|s| s.message_type.as_deref() == Some(name))
            .unwrap() as u32;
        records.iter().filter(|r| r.stream == i).collect()
    };
    for (sent, got) in [
        (of_type("UnitTestMessageA"), &a),
        (of_type("UnitTestMessageB"), &b),
    ] {
        for (s, g) in sent.iter().zip(got) {
            assert_eq!(g.payload, s.payload);
        }
    }
    // Timing: the B records arrive spaced by ~10 ms (0.1 s at 10x).
    let spacing = (b[9].received_at_ns - b[0].received_at_ns) as f64 / 9.0;
    assert!(
        (5e6..20e6).contains(&spacing),
        "mean spacing {spacing} ns, expected ~10 ms"
    );
    assert_eq!((s.records_sent, s.unrouted, s.send_failures), (20, 0, 0));
    assert_eq!(s.lateness.count, 20);
    assert!(s.lateness.p50 < 50e6, "{:?}", s.lateness);
    la.stop().unwrap();
    lb.stop().unwrap();
}

#[test]
fn refused_sends_are_counted_and_fail_on_error_stops() {
    // A port that nobody listens on: bind, note the port, close.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dest = format!("udp://127.0.0.1:{port}");
    let r = record(0, 0, "", vec![0x01]);
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            destination: Some(dest.clone()),
            ..UdpSinkOptions::default()
        },
        &[],
    )
    .unwrap();
    // The ICMP "port unreachable" of one send is reported by a later one.
    for _ in 0..6 {
        sink.send(&r, now());
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = sink.stats().snapshot();
    assert!(s.refused >= 1, "{s:?}");
    assert_eq!(sink.stats().failures(FailureKind::Refused), s.refused);
    assert_eq!(s.records, 6);
    assert!(!s.failed && sink.take_error().is_none());
    assert!(s.last_error.unwrap().contains(&dest));

    let mut strict = UdpSink::new(
        UdpSinkOptions {
            destination: Some(dest.clone()),
            fail_on_error: true,
            ..UdpSinkOptions::default()
        },
        &[],
    )
    .unwrap();
    let mut sent = 0;
    while !strict.has_failed() && sent < 20 {
        strict.send(&r, now());
        sent += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(strict.has_failed());
    match strict.take_error() {
        Some(Error::Network { url, message }) => {
            assert_eq!(url, dest);
            assert!(message.contains("Refused"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(strict.take_error().is_none());
    strict.send(&r, now());
    let s = strict.stats().snapshot();
    assert_eq!(s.suppressed, 1);
    assert!(s.failed);
    strict.clear_failure();
    strict.send(&r, now());
    assert_eq!(strict.stats().snapshot().suppressed, 1);
}

#[test]
fn construction_errors_name_the_url() {
    let err = |url: &str| {
        UdpSink::new(
            UdpSinkOptions {
                destination: Some(url.into()),
                ..UdpSinkOptions::default()
            },
            &[],
        )
        .err()
        .unwrap()
    };
    for (url, why) in [
        ("udp://no-such-host.invalid:26000", "cannot resolve host"),
        ("udp://127.0.0.1:99999", "outside 1..=65535"),
        ("udp://127.0.0.1:port", "not a number"),
        ("http://127.0.0.1:80", "udp://host:port"),
        ("udp://ff15::1:26000", "brackets"),
        ("udp://[ff15::1", "']'"),
    ] {
        match err(url) {
            Error::InvalidArgument { name, reason } => {
                assert_eq!(name, "destination");
                assert!(reason.contains(url) && reason.contains(why), "{reason}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn ipv4_multicast_on_loopback() {
    // TTL 0 and interface lo: the datagrams never leave this host.
    let group = "udp://239.255.77.13:0";
    let (listener, rx) = Listener::channel(
        ListenerOptions {
            addresses: vec![group.into()],
            interface: Some("lo".into()),
            recv_buffer_bytes: BIG_RCVBUF,
            ..ListenerOptions::default()
        },
        64,
    )
    .unwrap();
    let port = listener.local_addrs()[0].port();
    let mut sink = UdpSink::new(
        UdpSinkOptions {
            destination: Some(format!("udp://239.255.77.13:{port}")),
            interface: Some("lo".into()),
            hop_limit: 0,
            ..UdpSinkOptions::default()
        },
        &[],
    )
    .unwrap();
    let payload = big_payload(100_000, 3);
    sink.send(&record(0, 0, "mc", payload.clone()), now());
    let got = receive(&rx, 1);
    assert_eq!(got[0].payload, payload);
    assert_eq!(got[0].topic, "mc");
    listener.stop().unwrap();
}

/// Collects raw datagrams on a thread, to compare bytes with the encoder's.
struct RawReceiver {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl RawReceiver {
    fn bind(addr: &str) -> RawReceiver {
        use socket2::{Domain, Protocol, Socket, Type};
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let socket =
            Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.bind(&addr.into()).unwrap();
        set_big_recv_buffer(&socket, 16 << 20);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let socket: std::net::UdpSocket = socket.into();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    // Quiet after the sender finished: everything is in.
                    Err(_) if stopped.load(std::sync::atomic::Ordering::Acquire) => break got,
                    Err(_) => {}
                }
            }
        });
        RawReceiver { addr, stop, thread }
    }

    fn url(&self) -> String {
        format!("udp://{}", self.addr)
    }

    /// Every datagram received, once the sender has finished.
    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// SO_RCVBUFFORCE where allowed (root), else as much as `rmem_max` allows:
/// the receivers here must not drop a burst.
fn set_big_recv_buffer(socket: &socket2::Socket, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let size = bytes as libc::c_int;
        // SAFETY: a valid socket fd, and a pointer to a c_int with its size.
        let forced = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        } == 0;
        if forced {
            return;
        }
    }
    socket.set_recv_buffer_size(bytes).unwrap();
}

/// Play `records` to a UDP sink through a scheduler at `speed`.
fn replay_udp(
    records: &[Record],
    streams: &[netreplay_core::StreamInfo],
    options: UdpSinkOptions,
    speed: f64,
) -> (Outcome, UdpSinkSnapshot) {
    let (outcome, stats, _) = replay_udp_lag(records, streams, options, speed, LagPolicy::Wait);
    (outcome, stats)
}

/// [`replay_udp`] with a lag policy; also what the engine counted as
/// dropped.
fn replay_udp_lag(
    records: &[Record],
    streams: &[netreplay_core::StreamInfo],
    options: UdpSinkOptions,
    speed: f64,
    lag: LagPolicy,
) -> (Outcome, UdpSinkSnapshot, u64) {
    let sink = UdpSink::new(options, streams).unwrap();
    let stats = sink.stats().clone();
    let (queue, mut producer) = Queue::new(records.len() + 1, 1 << 30).unwrap();
    for r in records {
        assert!(producer.push(Slot::Record(r.clone())).is_ok());
    }
    assert!(producer.push(Slot::End).is_ok());
    let mut scheduler = Scheduler::new(
        &queue,
        vec![SinkEntry::with_lag(Box::new(sink), lag)],
        SchedulerOptions {
            speed: Speed::new(speed).unwrap(),
            ..Default::default()
        },
    )
    .unwrap();
    scheduler.start().unwrap();
    wait_for("the end of the replay", Duration::from_secs(20), || {
        !scheduler.is_alive()
    });
    let outcome = scheduler.last_outcome().unwrap().unwrap().clone();
    let dropped = scheduler.sink_stats()[0].dropped.get();
    (outcome, stats.snapshot(), dropped)
}

/// What the per-datagram path sends for `records`: the encoder's datagrams.
fn wire_datagrams<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(WireOptions::default()).unwrap();
    let mut out = Vec::new();
    for r in records {
        encoder
            .encode(&r.topic, &r.payload, |d| {
                out.push(d.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap();
    }
    out
}

/// 1000 + 7 records (not a multiple of the batch) on four topics, of
/// varying sizes, with a fragmented payload that is batched (200 kB) and one
/// that is sent on its own (300 kB) in the middle.
fn mixed_records() -> Vec<Record> {
    let topics = ["imu", "odom", "scan", "gps"];
    (0..1007u32)
        .map(|i| {
            let payload = match i {
                500 => big_payload(200_000, 5),
                800 => big_payload(300_000, 9),
                _ => {
                    let mut p = vec![0xc4, (20 + i % 50) as u8];
                    p.extend_from_slice(&i.to_be_bytes());
                    p.resize(2 + (20 + i % 50) as usize, i as u8);
                    p
                }
            };
            record(0, i as i64 * 1000, topics[i as usize % 4], payload)
        })
        .collect()
}

fn same_counts(a: &UdpSinkSnapshot, b: &UdpSinkSnapshot) {
    let counts = |s: &UdpSinkSnapshot| {
        (
            s.records,
            s.records_sent,
            s.datagrams,
            s.bytes,
            s.fragmented,
            s.unrouted,
            s.send_failures,
            s.other,
            s.unreachable,
        )
    };
    assert_eq!(counts(a), counts(b));
}

fn batched_like_single_sends(bind: &str) {
    let records = mixed_records();
    let expected = wire_datagrams(&records);
    assert_eq!(expected.len(), 1007 - 2 + 4 + 6);
    let mut runs = Vec::new();
    // Infinite speed batches; speed 1 sends each record at its deadline.
    for speed in [f64::INFINITY, 1.0] {
        let rx = RawReceiver::bind(bind);
        let options = UdpSinkOptions {
            destination: Some(rx.url()),
            ..UdpSinkOptions::default()
        };
        let (outcome, stats) = replay_udp(&records, &[], options, speed);
        assert_eq!(outcome, Outcome::End);
        let got = rx.finish();
        assert_eq!(got.len(), expected.len(), "speed {speed}");
        assert!(got == expected, "speed {speed}: datagrams differ");
        runs.push(stats);
    }
    let (batched, single) = (&runs[0], &runs[1]);
    same_counts(batched, single);
    assert_eq!(
        (
            batched.records_sent,
            batched.fragmented,
            batched.send_failures
        ),
        (1007, 2, 0)
    );
    assert_eq!(batched.datagrams as usize, expected.len());
    assert_eq!(
        batched.bytes as usize,
        expected.iter().map(Vec::len).sum::<usize>()
    );
    // No deadline, no lateness at infinite speed.
    assert_eq!((batched.lateness.count, single.lateness.count), (0, 1007));
}

#[test]
fn infinite_speed_batches_send_what_single_sends_send_ipv4() {
    batched_like_single_sends("127.0.0.1:0");
}

#[test]
fn infinite_speed_batches_send_what_single_sends_ipv6() {
    batched_like_single_sends("[::1]:0");
}

#[test]
fn failures_inside_a_batch_are_counted_and_fail_on_error_stops() {
    // Broadcast without SO_BROADCAST: every send to it fails (EACCES; or
    // unreachable without a route), while the other records go through.
    let bad = "udp://255.255.255.255:9";
    let mut records = mixed_records();
    records.retain(|r| r.payload.len() < 1000);
    for (i, r) in records.iter_mut().enumerate() {
        if i % 100 == 50 {
            r.topic = "bad".into();
        }
    }
    let good: Vec<&Record> = records.iter().filter(|r| &*r.topic != "bad").collect();
    let options = |rx: &RawReceiver, fail_on_error: bool| UdpSinkOptions {
        destination: Some(rx.url()),
        routes: vec![Route {
            message_type: None,
            topic: Some("bad".into()),
            destination: bad.into(),
        }],
        fail_on_error,
        ..UdpSinkOptions::default()
    };

    let mut runs = Vec::new();
    for speed in [f64::INFINITY, 1.0] {
        let rx = RawReceiver::bind("127.0.0.1:0");
        let (outcome, stats) = replay_udp(&records, &[], options(&rx, false), speed);
        assert_eq!(outcome, Outcome::End);
        assert!(rx.finish() == wire_datagrams(good.iter().copied()));
        assert_eq!(stats.send_failures, 10, "{stats:?}");
        assert_eq!(stats.records_sent as usize, good.len());
        assert!(stats.last_error.as_deref().unwrap().contains(bad));
        runs.push(stats);
    }
    same_counts(&runs[0], &runs[1]);

    // fail_on_error: nothing after the first failure goes out, and the
    // replay ends with it.
    for speed in [f64::INFINITY, 1.0] {
        let rx = RawReceiver::bind("127.0.0.1:0");
        let (outcome, stats) = replay_udp(&records, &[], options(&rx, true), speed);
        match &outcome {
            Outcome::Error(Error::Network { url, message }) => {
                assert_eq!(url, bad);
                assert!(
                    message.contains("record at 0.000050 s on topic 'bad'"),
                    "{message}"
                );
            }
            other => panic!("speed {speed}: {other:?}"),
        }
        assert!(
            rx.finish() == wire_datagrams(&records[..50]),
            "speed {speed}"
        );
        assert!(stats.failed);
        assert_eq!((stats.records_sent, stats.send_failures), (50, 1));
        // Batched, records delivered after the failing one and before the
        // flush that met it count as suppressed.
        assert_eq!(stats.suppressed, stats.records - 51);
    }
}

/// A failure met by the flush after the last record (batched at infinite
/// speed) must still end the replay with the error, though no delivery
/// follows it.
#[test]
fn a_failure_in_the_last_batch_ends_the_replay_with_the_error() {
    let rx = RawReceiver::bind("127.0.0.1:0");
    let mut records: Vec<Record> = mixed_records().into_iter().take(10).collect();
    records[5].topic = "bad".into();
    let options = UdpSinkOptions {
        destination: Some(rx.url()),
        routes: vec![Route {
            message_type: None,
            topic: Some("bad".into()),
            destination: "udp://255.255.255.255:9".into(),
        }],
        fail_on_error: true,
        ..UdpSinkOptions::default()
    };
    let (outcome, stats) = replay_udp(&records, &[], options, f64::INFINITY);
    assert!(stats.failed);
    assert_eq!(rx.finish().len(), 5);
    assert!(matches!(outcome, Outcome::Error(_)), "{outcome:?}");
}

/// Generates `n` records of `payload_len`-byte msgpack bin payloads, 1 µs apart.
struct Synthetic {
    n: u64,
    next: u64,
    topic: std::sync::Arc<str>,
    payload_len: usize,
    streams: Vec<netreplay_core::StreamInfo>,
}

impl netreplay_core::format::RecordSource for Synthetic {
    fn next_record(&mut self) -> netreplay_core::Result<Option<Record>> {
        if self.next == self.n {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        let body = self.payload_len - 2;
        let mut payload = Vec::with_capacity(self.payload_len);
        payload.extend_from_slice(&[0xc4, body as u8]);
        payload.extend_from_slice(&i.to_be_bytes());
        payload.resize(self.payload_len, i as u8);
        Ok(Some(Record {
            time_ns: i as i64 * 1000,
            stream: 0,
            topic: self.topic.clone(),
            payload,
        }))
    }
    fn reset(&mut self) -> netreplay_core::Result<()> {
        self.next = 0;
        Ok(())
    }
    fn is_data_pending(&self) -> bool {
        self.next < self.n
    }
    fn streams(&self) -> &[netreplay_core::StreamInfo] {
        &self.streams
    }
}

/// Throughput of BufferData → Scheduler → UdpSink at speed Infinity to a
/// loopback receiver thread. Run with
/// `cargo test --release -p netreplay-core --test net_udp -- --ignored --nocapture udp_throughput`.
/// `THROUGHPUT_RING=1000001` reads every record before the replay (no reader
/// thread competing for a core); `THROUGHPUT_THREAD_CPU=1` prints each
/// thread's CPU time.
#[test]
#[ignore = "measurement"]
fn udp_throughput_at_infinity() {
    use netreplay_core::engine::{BufferData, BufferOptions};
    use socket2::{Domain, Protocol, Socket, Type};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const N: u64 = 1_000_000;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    set_big_recv_buffer(&socket, 64 << 20);
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let receiver: std::net::UdpSocket = socket.into();
    let done = Arc::new(AtomicBool::new(false));
    let rx_thread = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("udp-receiver".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                let mut n = 0u64;
                loop {
                    match receiver.recv(&mut buf) {
                        Ok(_) => n += 1,
                        Err(_) if done.load(Ordering::Acquire) => break,
                        Err(_) => {}
                    }
                }
                // How often the receiver slept: each sleep costs the sender a wakeup.
                let sleeps = std::fs::read_to_string("/proc/thread-self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    });
                (n, sleeps)
            })
            .unwrap()
    };

    let streams = vec![netreplay_core::StreamInfo {
        message_type: Some("Bench".into()),
        files: vec![],
        ..netreplay_core::StreamInfo::default()
    }];
    let source = Synthetic {
        n: N,
        next: 0,
        topic: "bench/throughput".into(),
        payload_len: 100,
        streams: streams.clone(),
    };
    let length: usize = std::env::var("THROUGHPUT_RING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut buffer = BufferData::new(
        Box::new(source),
        BufferOptions {
            length,
            ..BufferOptions::default()
        },
    )
    .unwrap();
    let sink = UdpSink::new(
        UdpSinkOptions {
            destination: Some(format!("udp://{addr}")),
            ..UdpSinkOptions::default()
        },
        &streams,
    )
    .unwrap();
    let stats = sink.stats().clone();
    let mut scheduler = Scheduler::new(
        buffer.queue(),
        vec![SinkEntry::new(Box::new(sink))],
        SchedulerOptions {
            speed: Speed::new(f64::INFINITY).unwrap(),
            ..Default::default()
        },
    )
    .unwrap();
    buffer.start().unwrap();
    wait_for("a full buffer", Duration::from_secs(10), || {
        buffer.is_ready()
    });
    let start = Instant::now();
    scheduler.start().unwrap();
    // CPU time per thread, sampled while they live.
    let mut cpu = std::collections::BTreeMap::new();
    let mut polls = 0u32;
    while scheduler.is_alive() {
        std::thread::sleep(Duration::from_micros(200));
        polls += 1;
        if polls % 100 == 0 && std::env::var_os("THROUGHPUT_THREAD_CPU").is_some() {
            for entry in std::fs::read_dir("/proc/self/task").unwrap() {
                let Ok(stat) = std::fs::read_to_string(entry.unwrap().path().join("stat")) else {
                    continue;
                };
                let (name, rest) = stat.split_once(") ").unwrap();
                let f: Vec<&str> = rest.split(' ').collect();
                let name = name.split_once('(').unwrap().1.to_string();
                cpu.insert(name, (f[11].to_string(), f[12].to_string()));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for (name, (user, sys)) in &cpu {
        println!("{name:>16}: user {user} sys {sys} ticks");
    }
    assert_eq!(scheduler.last_outcome().unwrap(), Some(&Outcome::End));
    done.store(true, Ordering::Release);
    let (got, sleeps) = rx_thread.join().unwrap();
    let s = stats.snapshot();
    assert_eq!((s.records, s.datagrams, s.send_failures), (N, N, 0));
    println!(
        "udp_throughput_at_infinity: {N} datagrams of {} bytes in {elapsed:.3} s: sent {:.0}/s, received {got} ({:.1} %), {:.0}/s, receiver slept {sleeps:?} times",
        s.bytes / N,
        N as f64 / elapsed,
        got as f64 * 100.0 / N as f64,
        got as f64 / elapsed,
    );
}

/// Plays `n` records of `payload_len` bytes (one datagram each) at infinite
/// speed to `destination` from a sink with the smallest send buffer, under
/// `lag`: the outcome, the sink's counts, the dropped count, and how long
/// the run took.
fn lag_run(
    destination: &str,
    n: usize,
    payload_len: usize,
    lag: LagPolicy,
    send_timeout: Duration,
) -> (Outcome, UdpSinkSnapshot, u64, Duration) {
    let records: Vec<Record> = (0..n)
        .map(|i| record(0, i as i64 * 1000, "lag", big_payload(payload_len, i as u8)))
        .collect();
    let options = UdpSinkOptions {
        destination: Some(destination.into()),
        // The kernel's minimum (about 4.5 kB): less than one datagram.
        send_buffer_bytes: Some(1),
        send_timeout,
        ..UdpSinkOptions::default()
    };
    let start = std::time::Instant::now();
    let (outcome, s, dropped) = replay_udp_lag(&records, &[], options, f64::INFINITY, lag);
    (outcome, s, dropped, start.elapsed())
}

/// Under Drop, what the sink cannot send without waiting is dropped and
/// counted (not failed); under Wait nothing is dropped. Loopback hands each
/// datagram to the receiving socket within the send call (and drops it
/// there if that socket is full), so the sender's buffer never stays full
/// and this run drops nothing on Linux; `lag_policy_where_sends_block`
/// shows drops where sends do block.
#[test]
fn lag_policy_on_loopback_counts_every_record_once() {
    // Bound and never read: its receive buffer fills at once.
    let idle = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = format!("udp://{}", idle.local_addr().unwrap());
    let n = 500;
    let (outcome, s, dropped, elapsed) =
        lag_run(&dest, n, 59_000, LagPolicy::Drop, Duration::from_secs(1));
    assert_eq!(outcome, Outcome::End);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(s.send_failures, 0, "{s:?}");
    assert_eq!(s.datagrams, s.records_sent, "one datagram per record");
    assert_eq!(dropped + s.datagrams, n as u64, "{s:?}, dropped {dropped}");

    let (outcome, s, dropped, _) =
        lag_run(&dest, n, 59_000, LagPolicy::Wait, Duration::from_secs(1));
    assert_eq!(outcome, Outcome::End);
    assert_eq!(dropped, 0);
    assert_eq!((s.records_sent, s.send_failures), (n as u64, 0), "{s:?}");
}

/// The same where a send does block: `NETREPLAY_BLOCKING_DEST=udp://ip:port`
/// names an address on a local network that no host answers (its datagrams
/// wait in the neighbour queue for address resolution, holding the send
/// buffer: EAGAIN). For example, on a host with 192.0.2.2/24 on eth0:
/// `NETREPLAY_BLOCKING_DEST=udp://192.0.2.77:9 cargo test -p netreplay-core
/// --test net_udp -- --ignored lag_policy_where_sends_block`.
#[test]
#[ignore = "needs NETREPLAY_BLOCKING_DEST: an unanswered on-link address"]
fn lag_policy_where_sends_block() {
    let dest = std::env::var("NETREPLAY_BLOCKING_DEST")
        .expect("NETREPLAY_BLOCKING_DEST=udp://<unanswered on-link ip>:<port>");
    let n = 2000;
    let (outcome, s, dropped, elapsed) =
        lag_run(&dest, n, 1000, LagPolicy::Drop, Duration::from_secs(1));
    println!("drop: {elapsed:?}, dropped {dropped}, {s:?}");
    assert_eq!(outcome, Outcome::End);
    assert!(elapsed < Duration::from_secs(1), "never waits: {elapsed:?}");
    assert!(dropped > 0, "no send blocked: {s:?}");
    assert_eq!(s.send_failures, 0, "{s:?}");
    assert_eq!(dropped + s.records_sent, n as u64, "{s:?}");

    // Wait: each blocked record waits out its send timeout, then fails.
    let n = 20;
    let timeout = Duration::from_millis(50);
    let (outcome, s, dropped, elapsed) = lag_run(&dest, n, 1000, LagPolicy::Wait, timeout);
    println!("wait: {elapsed:?}, dropped {dropped}, {s:?}");
    assert_eq!(outcome, Outcome::End);
    assert_eq!(dropped, 0);
    assert!(s.would_block > 0, "{s:?}");
    assert!(elapsed >= timeout * s.would_block as u32, "{elapsed:?}");
}
