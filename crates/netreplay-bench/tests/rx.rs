//! The receiver over real loopback sockets, through the library and the binary.
#![cfg(target_os = "linux")]

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use netreplay_bench::clock::mono_ns;
use netreplay_bench::{decode_records, Receiver, Reception, RxOptions, NO_SEQ};

/// Allowed distance of a kernel rx time from its send bracket: covers the
/// realtime→monotonic conversion error, which is far smaller in practice.
const TOLERANCE_NS: i64 = 2_000_000;

fn options(expect: u64) -> RxOptions {
    RxOptions {
        expect,
        idle: Duration::from_millis(300),
        first_timeout: Duration::from_secs(20),
        ..RxOptions::default()
    }
}

/// Bind a receiver and run `receive` on a thread; returns its address.
fn spawn_receiver(opts: RxOptions) -> (SocketAddr, thread::JoinHandle<Reception>) {
    let mut receiver = Receiver::bind(opts).expect("bind the receiver");
    let addr = receiver.local_addr();
    assert_ne!(addr.port(), 0);
    let handle = thread::spawn(move || receiver.receive().expect("receive"));
    (addr, handle)
}

fn datagram(seq: u32, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xab; len - 4];
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes
}

#[test]
fn kernel_timestamps_fall_within_each_send() {
    const COUNT: u32 = 200;
    let (addr, handle) = spawn_receiver(options(u64::from(COUNT)));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sends = Vec::new();
    for seq in 0..COUNT {
        let payload = datagram(seq, 8 + (seq as usize % 100));
        let before = mono_ns();
        sender.send_to(&payload, addr).unwrap();
        let after = mono_ns();
        sends.push((before, after, payload.len()));
        // Spread the sends so neighbouring brackets do not overlap much.
        thread::sleep(Duration::from_micros(200));
    }
    let reception = handle.join().unwrap();

    assert_eq!(reception.summary.received, u64::from(COUNT));
    assert_eq!(
        reception.summary.no_timestamp, 0,
        "loopback should carry SO_TIMESTAMPNS"
    );
    assert!(reception.summary.bracket_ns >= 0);
    assert_eq!(reception.arrivals.len(), COUNT as usize);
    let mut gaps = Vec::new();
    let mut outside = 0;
    for (i, arrival) in reception.arrivals.iter().enumerate() {
        assert_eq!(arrival.seq, i as u32, "loopback keeps order");
        let (before, after, len) = sends[i];
        assert_eq!(arrival.len as usize, len);
        assert!(
            arrival.rx_ns >= before - TOLERANCE_NS && arrival.rx_ns <= after + TOLERANCE_NS,
            "seq {i}: rx {} outside send [{before}, {after}] ± {TOLERANCE_NS}",
            arrival.rx_ns
        );
        gaps.push(arrival.rx_ns - before);
        if arrival.rx_ns < before || arrival.rx_ns > after {
            outside += 1;
        }
    }
    gaps.sort_unstable();
    eprintln!(
        "send->rx_ns gap: min {} ns, median {} ns, max {} ns; {outside} outside the exact \
         send bracket; drift {} ns, bracket {} ns",
        gaps[0],
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1],
        reception.summary.offset_drift_ns,
        reception.summary.bracket_ns
    );
}

#[test]
fn stops_after_idle_time_without_expect() {
    let mut receiver = Receiver::bind(options(0)).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Queued datagrams keep their kernel timestamps, so sending before
    // receiving is fine here.
    for seq in 0..5 {
        sender
            .send_to(&datagram(seq, 16), receiver.local_addr())
            .unwrap();
    }
    let started = Instant::now();
    let reception = receiver.receive().unwrap();
    let elapsed = started.elapsed();

    let seqs: Vec<u32> = reception.arrivals.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert_eq!(reception.summary.received, 5);
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn stops_after_first_timeout_with_nothing() {
    let mut receiver = Receiver::bind(RxOptions {
        first_timeout: Duration::from_millis(200),
        ..options(3)
    })
    .unwrap();
    let started = Instant::now();
    let reception = receiver.receive().unwrap();
    let elapsed = started.elapsed();
    assert!(reception.arrivals.is_empty());
    assert_eq!(reception.summary.received, 0);
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// Whether the receiver's buffer holds `count` small datagrams, whose
/// loopback skbs take about 1 KiB each; without CAP_NET_ADMIN
/// net.core.rmem_max may cap it far below the requested 64 MiB.
fn holds_burst(receiver: &Receiver, count: usize) -> bool {
    let usable = receiver.rcvbuf_bytes().unwrap() / 2;
    if usable < count * 2048 {
        eprintln!("receive buffer {usable} bytes is too small for a burst of {count}; skipped");
        return false;
    }
    true
}

#[test]
fn burst_arrives_whole_and_expect_stops_exactly() {
    const EXPECT: u32 = 5_000;
    const SENT: u32 = EXPECT + 50;
    let mut receiver = Receiver::bind(options(u64::from(EXPECT))).unwrap();
    if !holds_burst(&receiver, SENT as usize) {
        return;
    }
    let addr = receiver.local_addr();
    let handle = thread::spawn(move || receiver.receive().expect("receive"));
    let sender = thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        let start = mono_ns();
        for seq in 0..SENT {
            match socket.send(&datagram(seq, 120)) {
                Ok(_) => {}
                // The receiver closes once it has EXPECT; the port
                // unreachable that follows refuses the surplus sends.
                Err(e) if seq >= EXPECT && e.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(e) => panic!("send of seq {seq}: {e}"),
            }
        }
        (start, mono_ns())
    });
    let (start, end) = sender.join().unwrap();
    let reception = handle.join().unwrap();

    assert_eq!(reception.summary.received, u64::from(EXPECT));
    assert_eq!(reception.arrivals.len(), EXPECT as usize);
    assert_eq!(reception.summary.no_timestamp, 0);
    let mut last_ns = i64::MIN;
    for (i, arrival) in reception.arrivals.iter().enumerate() {
        assert_eq!(arrival.seq, i as u32, "all distinct and in order");
        assert_eq!(arrival.len, 120);
        assert!(
            arrival.rx_ns >= last_ns,
            "seq {i}: rx {} before the previous {last_ns}",
            arrival.rx_ns
        );
        assert!(
            arrival.rx_ns >= start - TOLERANCE_NS && arrival.rx_ns <= end + TOLERANCE_NS,
            "seq {i}: rx {} outside the burst [{start}, {end}] ± {TOLERANCE_NS}",
            arrival.rx_ns
        );
        last_ns = arrival.rx_ns;
    }
}

#[test]
fn expect_takes_exactly_n_of_a_longer_queue() {
    // Everything is queued before receiving, so every batch could take more
    // than the datagrams still missing.
    const EXPECT: u32 = 100;
    let mut receiver = Receiver::bind(options(u64::from(EXPECT))).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..EXPECT + 50 {
        sender
            .send_to(&datagram(seq, 16), receiver.local_addr())
            .unwrap();
    }
    let reception = receiver.receive().unwrap();
    let seqs: Vec<u32> = reception.arrivals.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (0..EXPECT).collect::<Vec<_>>());
    assert_eq!(reception.summary.received, u64::from(EXPECT));
    assert_eq!(reception.summary.no_timestamp, 0);
}

#[test]
fn short_datagrams_have_no_seq() {
    let (addr, handle) = spawn_receiver(options(3));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(&[1, 2, 3], addr).unwrap();
    sender.send_to(&[], addr).unwrap();
    sender.send_to(&[0, 0, 0, 9], addr).unwrap();
    let reception = handle.join().unwrap();
    let got: Vec<(u32, u32)> = reception.arrivals.iter().map(|a| (a.seq, a.len)).collect();
    assert_eq!(got, [(NO_SEQ, 3), (NO_SEQ, 0), (9, 4)]);
    assert_eq!(reception.summary.no_timestamp, 0);
}

#[test]
fn binds_ipv6_when_available() {
    let opts = RxOptions {
        addr: "[::1]:0".parse().unwrap(),
        ..options(1)
    };
    let Ok(sender) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback; skipped");
        return;
    };
    let (addr, handle) = spawn_receiver(opts);
    assert!(addr.is_ipv6());
    sender.send_to(&datagram(42, 8), addr).unwrap();
    let reception = handle.join().unwrap();
    assert_eq!(reception.arrivals[0].seq, 42);
    assert_eq!(reception.summary.no_timestamp, 0);
}

#[test]
fn zero_timeouts_are_refused() {
    let error = Receiver::bind(RxOptions {
        idle: Duration::ZERO,
        ..options(0)
    })
    .err()
    .expect("idle 0 must be refused");
    assert!(error.to_string().contains("idle"), "{error}");
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netreplay-bench"))
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("netreplay-bench-{}-{name}", std::process::id()))
}

#[test]
fn binary_end_to_end() {
    let out = temp_path("e2e.bin");
    let mut child = binary()
        .args([
            "rx",
            "--port",
            "0",
            "--expect",
            "3",
            "--first-timeout-ms",
            "20000",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first
        .trim()
        .strip_prefix("{\"port\":")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("first line {first:?}"));

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = mono_ns();
    for seq in [7u32, 8, 9] {
        sender
            .send_to(&datagram(seq, 12), ("127.0.0.1", port))
            .unwrap();
    }
    let end = mono_ns();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");

    assert_eq!(rest.lines().count(), 1, "{rest:?}");
    let last = rest.trim();
    assert!(
        last.starts_with("{\"received\":3,\"noTimestamp\":0,\"offsetDriftNs\":"),
        "{last}"
    );
    assert!(
        last.contains(",\"bracketNs\":") && last.ends_with('}'),
        "{last}"
    );

    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(bytes.len(), 3 * 16);
    let arrivals = decode_records(&bytes).unwrap();
    let got: Vec<(u32, u32)> = arrivals.iter().map(|a| (a.seq, a.len)).collect();
    assert_eq!(got, [(7, 12), (8, 12), (9, 12)]);
    for arrival in &arrivals {
        assert!(arrival.rx_ns >= start - TOLERANCE_NS && arrival.rx_ns <= end + TOLERANCE_NS);
    }
}

fn run_failing(args: &[&str]) -> String {
    let output = binary().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn binary_rejects_bad_arguments_with_status_2() {
    let out = temp_path("unused.bin");
    let out = out.to_str().unwrap();
    let stderr = run_failing(&["rx", "--port", "notanumber", "--out", out]);
    assert!(
        stderr.contains("--port") && stderr.contains("\"notanumber\""),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let stderr = run_failing(&["rx", "--bind", "999.1.1.1", "--out", out]);
    assert!(stderr.contains("\"999.1.1.1\""), "{stderr}");

    let stderr = run_failing(&["rx", "--out", "/nonexistent-dir/x.bin"]);
    assert!(stderr.contains("/nonexistent-dir/x.bin"), "{stderr}");

    // A port already taken: the bind itself fails.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let stderr = run_failing(&["rx", "--port", &port, "--out", out]);
    assert!(
        stderr.contains(&format!("bind 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !std::path::Path::new(out).exists(),
        "no output file after a failed bind"
    );

    assert!(run_failing(&[]).contains("usage:"));
}

#[test]
fn binary_help() {
    let output = binary().args(["rx", "--help"]).output().unwrap();
    assert!(output.status.success());
    let usage = String::from_utf8(output.stdout).unwrap();
    assert!(usage.starts_with("usage: netreplay-bench rx"), "{usage}");
}
