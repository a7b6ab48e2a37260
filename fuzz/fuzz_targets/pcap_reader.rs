//! pcap and pcapng captures from arbitrary bytes (or from small valid
//! captures built here, then damaged by input-chosen edits), read with an
//! input-chosen BPF-style filter. The reader and the filter parser must
//! never panic, reading must end, and what is read must be consistent:
//! each payload a slice of the file, the same records under both error
//! policies, after a rewind and, from the seek point, after a seek; the
//! filtered records a subsequence of the unfiltered ones; the counts adding
//! up. Captures need not be in time order, and the reader does not promise
//! it: times are not checked for order.
//!
//! Input: byte 0 is flags (bit 0: a built capture, else raw; bit 1: a
//! filter; bit 2: the filter text repeated), then, with a filter, its
//! length (a byte) and text, then with bit 2 a repeat count (a byte, times
//! 64), then either the capture (raw) or a template number and edits.
//!
//! With `NETREPLAY_FUZZ_SEEDS=<dir>` in the environment, the first run
//! writes seed inputs there (every template, raw and built, and a few
//! filters): `fuzz/run.sh` seeds the corpus so.

#![no_main]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netreplay_core::engine::{open_pcap, LogReader};
use netreplay_core::format::pcap::{Filter, PcapOptions};
use netreplay_core::format::{OnError, RecordSource};
use netreplay_core::{Error, Record};

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("netreplay-fuzz-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

// ------------------------------------------------------------- templates

fn ipv4_udp(dst: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&[10, 0, 0, 1]);
    p.extend_from_slice(&dst);
    udp_header(&mut p, ports, payload);
    p
}

fn ipv6_udp(dst_last: u8, ports: (u16, u16), payload: &[u8], next: u8) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut p = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, next, 64];
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, dst_last]);
    if next == 0 {
        // A hop-by-hop header (8 bytes) before UDP.
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    }
    udp_header(&mut p, ports, payload);
    p
}

fn udp_header(p: &mut Vec<u8>, ports: (u16, u16), payload: &[u8]) {
    let ulen = 8 + payload.len();
    p.extend_from_slice(&ports.0.to_be_bytes());
    p.extend_from_slice(&ports.1.to_be_bytes());
    p.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
    p.extend_from_slice(payload);
}

fn ethernet(ip: &[u8], vlan: bool) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if vlan {
        f.extend_from_slice(&[0x81, 0, 0, 5]);
    }
    f.extend_from_slice(if ip[0] >> 4 == 6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(if ip[0] >> 4 == 6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = if ip[0] >> 4 == 6 { vec![0x86, 0xdd] } else { vec![0x08, 0x00] };
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// A pcap file: time (ns since the epoch), captured bytes, original length.
fn pcap(linktype: u32, nanos: bool, big_endian: bool, frames: &[(u64, Vec<u8>, usize)]) -> Vec<u8> {
    let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u32b(65535));
    out.extend_from_slice(&u32b(linktype));
    for (t, frame, len) in frames {
        let frac = if nanos { t % 1_000_000_000 } else { t % 1_000_000_000 / 1000 };
        out.extend_from_slice(&u32b((t / 1_000_000_000) as u32));
        out.extend_from_slice(&u32b(frac as u32));
        out.extend_from_slice(&u32b(frame.len() as u32));
        out.extend_from_slice(&u32b(*len as u32));
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
/// (interface, timestamp in its units, frame); `None` makes a simple
/// packet block.
fn pcapng(interfaces: &[(u16, u8)], packets: &[(Option<u32>, u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    for &(lt, tsresol) in interfaces {
        let mut idb = lt.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
        out.extend(block(1, &idb));
    }
    for (iface, ts, frame) in packets {
        let Some(iface) = iface else {
            let mut spb = (frame.len() as u32).to_le_bytes().to_vec();
            spb.extend_from_slice(frame);
            out.extend(block(3, &spb));
            continue;
        };
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

const T0: u64 = 1_700_000_000_000_000_000;

/// Small valid captures: both byte orders and resolutions, every link type
/// decoded, IPv4 and IPv6, a fragment, a cut frame, a TCP frame, times
/// going back, more datagrams than one seek index mark holds, pcapng with
/// two interfaces and a simple packet block.
fn templates() -> &'static [Vec<u8>] {
    static T: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    T.get_or_init(|| {
        let v4 = |port: u16, p: &[u8]| ipv4_udp([10, 0, 0, 2], (40000, port), p);
        let v6 = |port: u16, p: &[u8]| ipv6_udp(2, (40000, port), p, 17);
        let mut frag = v4(26000, b"fragment");
        frag[6] = 0x20; // more fragments
        let mut tcp = v4(80, b"tcp");
        tcp[9] = 6;
        let cut = ethernet(&v4(26000, b"cut short by the snaplen"), false);
        let eth = |ip: Vec<u8>| ethernet(&ip, false);
        let whole = |t: u64, f: Vec<u8>| {
            let n = f.len();
            (t, f, n)
        };
        let mixed = vec![
            whole(T0, eth(v4(26000, b"one"))),
            whole(T0 + 1_000, ethernet(&v4(26001, b"vlan"), true)),
            whole(T0 + 2_000, eth(v6(26000, b"six"))),
            whole(T0 + 3_000, eth(ipv6_udp(3, (1, 2), b"hop", 0))),
            whole(T0 + 4_000, eth(frag)),
            whole(T0 + 5_000, eth(tcp)),
            (T0 + 6_000, cut[..cut.len() - 6].to_vec(), cut.len()),
            whole(T0 - 9_000, eth(v4(26000, b"earlier"))),
            whole(T0 + 7_000, eth(v4(26002, b""))),
        ];
        let many: Vec<_> = (0..70u64)
            .map(|i| {
                let back = if i % 7 == 3 { 5_000_000 } else { 0 };
                whole(
                    T0 + i * 1_000_000 - back,
                    eth(v4(26000 + (i % 3) as u16, &[i as u8])),
                )
            })
            .collect();
        let ips = || vec![v4(26000, b"a"), v6(26001, b"b"), v4(26002, b"c")];
        let on = |f: fn(&[u8]) -> Vec<u8>| -> Vec<(u64, Vec<u8>, usize)> {
            ips()
                .into_iter()
                .enumerate()
                .map(|(i, ip)| whole(T0 + i as u64 * 1000, f(&ip)))
                .collect()
        };
        vec![
            pcap(1, false, false, &mixed),
            pcap(1, true, false, &mixed),
            pcap(1, false, true, &mixed),
            pcap(1, true, true, &mixed),
            pcap(1, false, false, &many),
            pcap(113, false, false, &on(sll)),
            pcap(276, true, false, &on(sll2)),
            pcap(101, false, true, &on(<[u8]>::to_vec)),
            pcap(228, false, false, &on(<[u8]>::to_vec)[..1]),
            pcap(0, false, false, &on(|ip| [&[2, 0, 0, 0][..], ip].concat())),
            pcap(147, false, false, &on(<[u8]>::to_vec)),
            pcap(1, false, false, &[]),
            pcapng(
                &[(1, 6), (101, 9)],
                &[
                    (Some(0), T0 / 1000, eth(v4(26000, b"eth"))),
                    (Some(1), T0 + 500_000, v6(26001, b"raw")),
                    (None, 0, eth(v4(26000, b"simple"))),
                    (Some(0), T0 / 1000 + 1, eth(v4(26000, b"eth2"))),
                    (Some(1), T0 - 1, v4(26003, b"back")),
                ],
            ),
            pcapng(&[(1, 0x83)], &[(Some(0), T0 / 125_000_000, eth(v4(1, b"2^-3 s")))]),
        ]
    })
}

// ------------------------------------------------------------------ input

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Byte edits to `file`: overwrite, xor, truncate, insert, a u32 written
/// (both byte orders), a range cut out.
fn damage(file: &mut Vec<u8>, bytes: &mut Bytes) {
    for _ in 0..8 {
        if bytes.0.is_empty() {
            return;
        }
        let op = bytes.u8();
        let at = if file.is_empty() {
            0
        } else {
            bytes.u16() as usize % file.len()
        };
        match op % 6 {
            0 if !file.is_empty() => file[at] = bytes.u8(),
            1 if !file.is_empty() => file[at] ^= 1 << (bytes.u8() % 8),
            2 => file.truncate(at),
            3 => {
                let n = bytes.u8() as usize % 16;
                let ins = bytes.take(n).to_vec();
                file.splice(at..at, ins);
            }
            4 => {
                let v = [bytes.u8(), bytes.u8(), bytes.u8(), bytes.u8()];
                let end = (at + 4).min(file.len());
                file[at..end].copy_from_slice(&v[..end - at]);
            }
            5 => {
                let end = (at + bytes.u8() as usize).min(file.len());
                file.drain(at..end);
            }
            _ => {}
        }
    }
}

// ----------------------------------------------------------------- checks

struct Pass {
    records: Vec<Record>,
    errors: usize,
}

/// Read to the end. Every record and every error uses up at least a frame
/// header of the file, so `len` bounds the calls.
fn read_all(reader: &mut LogReader, file: &[u8], what: &str) -> Pass {
    let mut pass = Pass {
        records: Vec::new(),
        errors: 0,
    };
    let destinations = reader.captures()[0].destinations.clone();
    for _ in 0..file.len() / 12 + 4 {
        match reader.next_record() {
            Ok(Some(r)) => {
                let stream = r.stream as usize;
                assert!(stream < reader.streams().len(), "{what}: stream {stream}");
                let dst: SocketAddr = r.topic.parse().expect("topic is ip:port");
                assert_eq!(destinations[stream], dst, "{what}: stream and topic");
                assert!(r.payload.len() <= 65535 - 8, "{what}: payload {}", r.payload.len());
                assert!(
                    r.payload.is_empty() || file.windows(r.payload.len()).any(|w| w == r.payload),
                    "{what}: payload of {} bytes not in the file",
                    r.payload.len()
                );
                pass.records.push(r);
            }
            Ok(None) => {
                assert!(!reader.is_data_pending(), "{what}: pending after the end");
                assert!(matches!(reader.next_record(), Ok(None)), "{what}: end not sticky");
                return pass;
            }
            Err(Error::Malformed { byte_offset, .. }) => {
                assert!((byte_offset as usize) < file.len(), "{what}: error offset");
                pass.errors += 1;
            }
            Err(other) => panic!("{what}: unexpected error: {other}"),
        }
    }
    panic!("{what}: no end after {} calls", file.len() / 12 + 4);
}

fn open(path: &Path, on_error: OnError, filter: Option<&str>) -> netreplay_core::Result<LogReader> {
    open_pcap(
        path,
        &PcapOptions {
            on_error,
            filter: filter.map(str::to_owned),
            ..PcapOptions::default()
        },
    )
}

fn key(r: &Record) -> (i64, &str, &[u8]) {
    (r.time_ns, &r.topic, &r.payload)
}

/// Both policies, a rewind, seeks and the counts; the records under `Skip`.
fn check_capture(path: &Path, file: &[u8], filter: Option<&str>, seed: u64) -> Option<Vec<Record>> {
    let mut fail = match open(path, OnError::Fail, filter) {
        Ok(reader) => reader,
        Err(Error::Malformed { byte_offset, .. }) => {
            assert_eq!(byte_offset, 0, "open fails only on the file header");
            assert!(open(path, OnError::Skip, filter).is_err(), "opens under Skip only");
            return None;
        }
        Err(Error::InvalidArgument { .. }) => {
            assert!(filter.is_some(), "invalid argument without a filter");
            return None;
        }
        Err(other) => panic!("unexpected open error: {other}"),
    };
    let failed = read_all(&mut fail, file, "fail");
    let info = fail.captures()[0].clone();
    assert_eq!(failed.errors, usize::from(info.damage.is_some()), "errors vs damage");
    let mut reader = open(path, OnError::Skip, filter).expect("opens under Fail, so under Skip");
    let skip = read_all(&mut reader, file, "skip");
    assert_eq!(skip.errors, 0, "errors under Skip");
    assert!(failed.records == skip.records, "records differ between policies");

    // Counts: every frame once; the datagrams are the records.
    let c = &info.counts;
    assert_eq!(c.frames, c.datagrams + c.filtered + c.skipped(), "{c:?}");
    assert_eq!(c.datagrams, skip.records.len() as u64, "{c:?}");
    assert_eq!(reader.skipped(), c.skipped() + u64::from(info.damage.is_some()));
    assert_eq!(info.destinations.len(), reader.streams().len());
    assert_eq!(info.base_ns.is_some(), c.frames > c.untimed, "base_ns {:?}", info.base_ns);

    // The range: the least and greatest time (captures need not be in order).
    let times: Vec<i64> = skip.records.iter().map(|r| r.time_ns).collect();
    let range = times.iter().min().copied().zip(times.iter().max().copied());
    assert_eq!(reader.time_range().expect("time_range"), range);

    reader.reset().expect("reset");
    let again = read_all(&mut reader, file, "after reset");
    assert!(again.records == skip.records, "records differ after reset");

    // A seek: the records from the first one (in file order) at or after t.
    let picks = [
        i64::MIN,
        i64::MAX,
        0,
        times.get(seed as usize % times.len().max(1)).copied().unwrap_or(1),
        times.get((seed >> 8) as usize % times.len().max(1)).map_or(-1, |t| t + 1),
        times.iter().max().map_or(2, |t| t - 1),
    ];
    for k in 0..2 {
        let t = picks[(seed >> (16 + 4 * k)) as usize % picks.len()];
        reader.seek(t).expect("seek");
        let after = read_all(&mut reader, file, "after seek");
        let from = times.iter().position(|&x| x >= t).unwrap_or(times.len());
        let got: Vec<_> = after.records.iter().map(key).collect();
        let want: Vec<_> = skip.records[from..].iter().map(key).collect();
        assert!(got == want, "seek to {t}: {} records, want {}", got.len(), want.len());
    }
    Some(skip.records)
}

fn write_seeds(dir: &Path) {
    let mut k = 0;
    let mut put = |bytes: &[u8]| {
        std::fs::write(dir.join(format!("seed-{k}")), bytes).expect("write seed");
        k += 1;
    };
    let filters = [
        "udp dst port 26000",
        "ip6 or (src host 10.0.0.1 and not portrange 1-100)",
        "dst host fe80::2 || port 26002",
        "! ip && dst portrange 26000-26001",
    ];
    for (i, t) in templates().iter().enumerate() {
        put(&[&[0u8][..], t].concat());
        put(&[1, i as u8]);
        let f = filters[i % filters.len()];
        put(&[&[3u8, f.len() as u8][..], f.as_bytes(), &[i as u8]].concat());
    }
    put(&[6, 2, b'!', b'(', 1, 0]);
}

fuzz_target!(|data: &[u8]| {
    static SEEDS: OnceLock<()> = OnceLock::new();
    SEEDS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("NETREPLAY_FUZZ_SEEDS") {
            write_seeds(Path::new(&dir));
        }
    });
    let mut bytes = Bytes(data);
    let flags = bytes.u8();
    let filter = (flags & 2 != 0).then(|| {
        let n = bytes.u8() as usize;
        let text = String::from_utf8_lossy(bytes.take(n)).into_owned();
        if flags & 4 != 0 {
            text.repeat(1 + bytes.u8() as usize * 64)
        } else {
            text
        }
    });
    let parsed = filter.as_deref().map(|text| Filter::parse("filter", text));
    let file = if flags & 1 == 0 {
        bytes.0.to_vec()
    } else {
        let t = templates();
        let mut file = t[bytes.u8() as usize % t.len()].clone();
        damage(&mut file, &mut bytes);
        file
    };
    let seed = data
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let path = scratch().join("one.pcap");
    std::fs::write(&path, &file).expect("write");

    let all = check_capture(&path, &file, None, seed);
    let Some(Ok(_)) = parsed else {
        // A filter that does not parse fails the open, and only so.
        if let Some(Err(_)) = parsed {
            assert!(open(&path, OnError::Skip, filter.as_deref()).is_err());
        }
        return;
    };
    let some = check_capture(&path, &file, filter.as_deref(), seed);
    // What a filter lets through is a part of everything, in order.
    if let (Some(all), Some(some)) = (all, some) {
        let mut rest = all.iter().map(key);
        for r in &some {
            let k = key(r);
            assert!(rest.any(|a| a == k), "a filtered record not among all records");
        }
    }
});
