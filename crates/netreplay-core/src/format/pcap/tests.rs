//! The reader over captures built here byte by byte (the ava suite reads
//! tcpdump's own files).

use super::packet::linktype;
use super::packet::tests::{ethernet_of, ipv4_udp};
use super::*;
use std::io::Write;

/// A pcap file: (time ns since the epoch, frame) per packet.
pub(crate) fn pcap_file(
    linktype: u32,
    nanos: bool,
    big_endian: bool,
    frames: &[(i64, Vec<u8>)],
) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u32b(65535));
    out.extend_from_slice(&u32b(linktype));
    for (t, frame) in frames {
        let frac = if nanos {
            t % 1_000_000_000
        } else {
            t % 1_000_000_000 / 1000
        };
        out.extend_from_slice(&u32b((t / 1_000_000_000) as u32));
        out.extend_from_slice(&u32b(frac as u32));
        out.extend_from_slice(&u32b(frame.len() as u32));
        out.extend_from_slice(&u32b(frame.len() as u32));
        out.extend_from_slice(frame);
    }
    out
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let len = (12 + padded) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A pcapng file: interfaces (link type, if_tsresol) and packets
/// (interface, time in that interface's units, frame).
pub(crate) fn pcapng_file(interfaces: &[(u16, u8)], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    for &(lt, tsresol) in interfaces {
        let mut idb = lt.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        // if_tsresol (code 9, length 1), then opt_endofopt.
        idb.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
        out.extend(block(1, &idb));
    }
    for (iface, ts, frame) in packets {
        let mut epb = iface.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(frame);
        out.extend(block(6, &epb));
    }
    out
}

pub(crate) struct TempCapture(pub(crate) PathBuf);

impl TempCapture {
    pub(crate) fn new(name: &str, bytes: &[u8]) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("netreplay-pcap-{}-{n}-{name}", std::process::id()));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        TempCapture(path)
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const T0: i64 = 1_700_000_000_000_000_000;

fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    ethernet_of(
        &ipv4_udp([127, 0, 0, 1], [127, 0, 0, 1], (40000, dst_port), payload),
        &[],
    )
}

fn read_all(reader: &mut PcapReader) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r);
    }
    out
}

fn open(bytes: &[u8], options: &PcapOptions) -> (TempCapture, PcapReader) {
    let file = TempCapture::new("t.pcap", bytes);
    let reader = PcapReader::open(&file.0, options).unwrap();
    (file, reader)
}

#[test]
fn pcap_in_both_resolutions_and_byte_orders() {
    for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
        let frames = vec![
            (T0 + 123_456_789, udp_frame(26000, b"one")),
            (T0 + 1_123_456_789, udp_frame(26001, b"two")),
        ];
        let (_f, mut r) = open(&pcap_file(1, nanos, be, &frames), &PcapOptions::default());
        let records = read_all(&mut r);
        let gap = 1_000_000_000;
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].time_ns, records[1].time_ns), (0, gap));
        assert_eq!(
            r.base_ns(),
            Some(if nanos {
                T0 + 123_456_789
            } else {
                T0 + 123_456_000
            })
        );
        assert_eq!(&*records[0].topic, "127.0.0.1:26000");
        assert_eq!(records[1].payload, b"two");
        assert_eq!((records[0].stream, records[1].stream), (0, 1));
        assert_eq!(r.streams().len(), 2);
        assert_eq!(r.format(), CaptureFormat::Pcap);
    }
    // ns resolution keeps ns.
    let frames = vec![(T0, udp_frame(1, b"a")), (T0 + 1, udp_frame(1, b"b"))];
    let (_f, mut r) = open(&pcap_file(1, true, false, &frames), &PcapOptions::default());
    assert_eq!(read_all(&mut r)[1].time_ns, 1);
}

#[test]
fn pcapng_interfaces_with_their_own_link_types_and_resolutions() {
    let raw = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 9], (1, 7000), b"raw");
    // Interface 0: Ethernet, µs (default 6); interface 1: raw IP, ns (9).
    let packets = vec![
        (0, 1_700_000_000_000_000u64, udp_frame(26000, b"eth")),
        (1, 1_700_000_000_000_500_000u64, raw.clone()),
        (0, 1_700_000_000_001_000u64, udp_frame(26000, b"eth2")),
    ];
    let bytes = pcapng_file(&[(1, 6), (101, 9)], &packets);
    let (_f, mut r) = open(&bytes, &PcapOptions::default());
    assert_eq!(r.format(), CaptureFormat::Pcapng);
    let records = read_all(&mut r);
    let times: Vec<i64> = records.iter().map(|r| r.time_ns).collect();
    assert_eq!(times, vec![0, 500_000, 1_000_000]);
    assert_eq!(&*records[1].topic, "10.0.0.9:7000");
    assert_eq!(records[2].payload, b"eth2");
    // A packet of an interface never described is damage, with its offset.
    let bad = pcapng_file(&[(1, 6)], &[(3, 0, udp_frame(1, b"x"))]);
    let (_f, mut r) = open(&bad, &PcapOptions::default());
    let err = r.next_record().unwrap_err().to_string();
    assert!(
        err.contains("interface 3") && err.contains("byte offset"),
        "{err}"
    );
}

#[test]
fn skips_are_counted_per_reason() {
    let mut tcp = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], (1, 2), b"tcp");
    tcp[9] = 6;
    let mut frag = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], (1, 2), b"frag");
    frag[6] = 0x20;
    let full = ipv4_udp(
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        (1, 2),
        b"cut short by the snaplen",
    );
    let frames = vec![
        (T0, ethernet_of(&tcp, &[])),
        (T0 + 1000, ethernet_of(&frag, &[])),
        (T0 + 2000, ethernet_of(&full[..full.len() - 4], &[])),
        (T0 + 3000, udp_frame(9, b"ok")),
        (T0 + 4000, vec![0; 6]),
    ];
    let (_f, mut r) = open(
        &pcap_file(1, false, false, &frames),
        &PcapOptions::default(),
    );
    let c = r.counts().clone();
    assert_eq!(
        (
            c.frames,
            c.datagrams,
            c.not_udp,
            c.fragments,
            c.truncated,
            c.malformed
        ),
        (5, 1, 1, 1, 1, 1)
    );
    assert_eq!(r.skipped(), 4);
    let records = read_all(&mut r);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].time_ns, 3_000,
        "time from the first frame, whatever it was"
    );
    // An unknown link type: every frame counted as such.
    let (_f, r) = open(
        &pcap_file(147, false, false, &frames),
        &PcapOptions::default(),
    );
    assert_eq!(r.counts().link_type, 5);
}

#[test]
fn filters_are_pushed_into_the_reader() {
    let frames: Vec<_> = (0..10)
        .map(|i| {
            (
                T0 + i * 1_000_000,
                udp_frame(26000 + (i % 2) as u16, &[i as u8]),
            )
        })
        .collect();
    let bytes = pcap_file(1, false, false, &frames);
    let opts = |f: fn(&mut PcapOptions)| {
        let mut o = PcapOptions::default();
        f(&mut o);
        o
    };
    let (_f, mut r) = open(
        &bytes,
        &opts(|o| o.filter = Some("udp dst port 26001".into())),
    );
    let got: Vec<u8> = read_all(&mut r).iter().map(|r| r.payload[0]).collect();
    assert_eq!(got, vec![1, 3, 5, 7, 9]);
    assert_eq!((r.counts().filtered, r.streams().len()), (5, 1));
    let (_f, mut r) = open(&bytes, &opts(|o| o.dst_ports = vec![26000]));
    assert_eq!(read_all(&mut r).len(), 5);
    let (_f, mut r) = open(&bytes, &opts(|o| o.src = Some("127.0.0.1:40000".into())));
    assert_eq!(read_all(&mut r).len(), 10);
    let (_f, mut r) = open(&bytes, &opts(|o| o.src = Some("10.0.0.1".into())));
    assert_eq!(read_all(&mut r).len(), 0);
    let file = TempCapture::new("f.pcap", &bytes);
    let bad = PcapOptions {
        filter: Some("dst port x".into()),
        ..PcapOptions::default()
    };
    let err = PcapReader::open(&file.0, &bad).err().unwrap().to_string();
    assert!(err.contains("'x' at position 9"), "{err}");
    let bad = PcapOptions {
        src: Some("nowhere".into()),
        ..PcapOptions::default()
    };
    assert!(PcapReader::open(&file.0, &bad)
        .err()
        .unwrap()
        .to_string()
        .contains("'src'"));
}

#[test]
fn seek_window_and_range() {
    let n = 1000;
    let frames: Vec<_> = (0..n)
        .map(|i| {
            (
                T0 + i * 1_000_000,
                udp_frame(5000, &(i as u32).to_le_bytes()),
            )
        })
        .collect();
    let bytes = pcap_file(1, false, false, &frames);
    let (_f, mut r) = open(&bytes, &PcapOptions::default());
    assert_eq!(r.time_range().unwrap(), Some((0, (n - 1) * 1_000_000)));
    for t in [0, 1, 500_000_000, 640_000_000, 998_000_000] {
        r.seek(t).unwrap();
        let first = r.next_record().unwrap().unwrap();
        assert_eq!(
            first.time_ns,
            (t + 999_999) / 1_000_000 * 1_000_000,
            "seek {t}"
        );
        let next = r.next_record().unwrap().unwrap();
        assert_eq!(next.time_ns, first.time_ns + 1_000_000);
    }
    r.seek(5_000_000_000).unwrap();
    assert_eq!(r.next_record().unwrap(), None);
    assert!(!r.is_data_pending());
    r.reset().unwrap();
    assert_eq!(read_all(&mut r).len(), n as usize);

    let window = PcapOptions {
        window: TimeWindow {
            min_ns: Some(100_000_000),
            max_ns: Some(199_000_000),
        },
        ..PcapOptions::default()
    };
    let (_f, mut r) = open(&bytes, &window);
    assert_eq!(r.time_range().unwrap(), Some((100_000_000, 199_000_000)));
    assert_eq!(read_all(&mut r).len(), 100);
    r.seek(0).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().time_ns, 100_000_000);
}

#[test]
fn damage_is_an_error_naming_file_frame_and_offset_or_a_counted_skip() {
    let frames: Vec<_> = (0..3)
        .map(|i| (T0 + i * 1000, udp_frame(1, b"abc")))
        .collect();
    let bytes = pcap_file(1, false, false, &frames);
    let frame_len = 16 + frames[0].1.len();
    // Cut at every byte of the last frame.
    for cut in (bytes.len() - frame_len + 1)..bytes.len() {
        let (file, mut r) = open(&bytes[..cut], &PcapOptions::default());
        assert_eq!(read_all_ok(&mut r), 2, "cut {cut}");
        let err = r.next_record().unwrap_err().to_string();
        let offset = bytes.len() - frame_len;
        assert!(err.contains(&file.0.display().to_string()), "{err}");
        assert!(
            err.contains(&format!("byte offset {offset}")) && err.contains("cut short"),
            "{err}"
        );
        assert!(r.damage().is_some());
        let skip = PcapOptions {
            on_error: OnError::Skip,
            ..PcapOptions::default()
        };
        let (_f, mut r) = open(&bytes[..cut], &skip);
        assert_eq!(read_all(&mut r).len(), 2);
        assert_eq!(r.skipped(), 1);
    }
    // Bad magic, empty file, a header cut short: errors at open.
    for (bytes, says) in [
        (
            &b"#-- MCL_LOG, not a capture"[..],
            "not a pcap or pcapng file",
        ),
        (&b""[..], "shorter than any header"),
        (&bytes[..10], "pcap header"),
    ] {
        let file = TempCapture::new("bad.pcap", bytes);
        let err = PcapReader::open(&file.0, &PcapOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(says) && err.contains("bad.pcap"), "{err}");
    }
}

/// Records read until the first error.
fn read_all_ok(reader: &mut PcapReader) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = reader.next_record() {
        n += 1;
        if n > 1_000_000 {
            break;
        }
    }
    // The error comes once; read it again for the caller.
    reader.cursor = reader.start.clone();
    for _ in 0..n {
        reader.next_record().unwrap();
    }
    n
}

#[test]
fn sniffs_by_magic() {
    assert_eq!(
        sniff(&pcap_file(1, false, false, &[])),
        Some(CaptureFormat::Pcap)
    );
    assert_eq!(
        sniff(&pcap_file(1, true, true, &[])),
        Some(CaptureFormat::Pcap)
    );
    assert_eq!(sniff(&pcapng_file(&[], &[])), Some(CaptureFormat::Pcapng));
    assert_eq!(sniff(b"     0.01000    ''   80"), None);
    assert_eq!(sniff(b"ab"), None);
    let _ = linktype::ETHERNET;
}
