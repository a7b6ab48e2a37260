//! UdpSink → Listener round trips over real loopback sockets.

mod net_common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use net_common::*;
use netreplay_core::buffer::Queue;
use netreplay_core::clock::{now_ns, Speed};
use netreplay_core::listener::{Listener, ListenerOptions, ReceivedMessage};
use netreplay_core::ring::Slot;
use netreplay_core::scheduler::{Scheduler, SchedulerOptions};
use netreplay_core::sink::{Delivery, Outcome};
use netreplay_core::udp::{FailureKind, Route, UdpSink, UdpSinkOptions};
use netreplay_core::{Error, Record};

const BIG_RCVBUF: Option<usize> = Some(4 << 20);

fn listen(
    url: &str,
) -> (
    Listener<netreplay_core::listener::ChannelHandler>,
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

fn now() -> Delivery {
    Delivery {
        deadline_ns: now_ns(),
        lateness_ns: 0,
    }
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
    let sink = UdpSink::new(
        UdpSinkOptions {
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
        },
        &streams,
    )
    .unwrap();
    let stats = sink.stats().clone();
    let (queue, mut producer) = Queue::new(64, 1 << 20).unwrap();
    for r in &records {
        assert!(producer.push(Slot::Record(r.clone())).is_ok());
    }
    assert!(producer.push(Slot::End).is_ok());
    // 10x speed: the 1 s recording plays in about 100 ms.
    let mut scheduler = Scheduler::new(
        &queue,
        vec![Box::new(sink)],
        SchedulerOptions {
            speed: Speed::new(10.0).unwrap(),
        },
    )
    .unwrap();
    scheduler.start().unwrap();
    assert!(wait_for(Duration::from_secs(10), || !scheduler.is_alive()));
    assert_eq!(scheduler.last_outcome().unwrap(), Some(&Outcome::End));
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
    let s = stats.snapshot();
    assert_eq!((s.records_sent, s.unrouted, s.send_failures), (20, 0, 0));
    assert_eq!(s.lateness.count, 20);
    assert!(s.lateness.p50 < 50e6, "{:?}", s.lateness);
    drop(scheduler);
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
        Some(Error::Io { path, message }) => {
            assert_eq!(path.to_str(), Some(dest.as_str()));
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
