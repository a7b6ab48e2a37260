//! pcap and pcapng captures as record sources: the UDP datagrams of a
//! capture, with their capture times.
//!
//! The mapping (README, "Formats"):
//! - time = the frame's capture time − the first frame's (any frame, so a
//!   filter does not move the origin); the first frame's absolute time is
//!   [`PcapReader::base_ns`] (ns since the epoch);
//! - topic = the original destination `ip:port` (`10.0.0.2:26000`,
//!   `[::1]:26000`), so topic filters, remaps and routes apply, and the UDP
//!   sink can send each datagram where it was going;
//! - stream = one per destination, in order of first appearance, of no
//!   message type (the payload is raw bytes, not msgpack);
//! - payload = the UDP payload bytes, untouched.
//!
//! Opening maps the file and reads it once (headers only, no payload copy):
//! that finds the destinations (the streams), the counts per skip reason,
//! the time range, where the file is damaged, and a sparse index (every
//! [`INDEX_EVERY`] datagrams) that seeks by bisection. Frames that are not
//! UDP (TCP, ARP, ...), fragments (not reassembled), datagrams the snaplen
//! cut, headers that do not parse, frames of link types not decoded and
//! pcapng simple packet blocks (no timestamp) are skipped and counted
//! ([`CaptureCounts`]); only damage to the file's structure (a block cut
//! short, a bad length) is an error, under [`OnError`], at the point the
//! reading reaches it.

mod capture;
pub mod filter;
pub mod packet;

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap};

use crate::format::source::{OnError, RecordSource, TimeWindow};
use crate::sys::GuardedMap;
use crate::{Error, Record, Result, StreamInfo};

/// The [`StreamInfo::encoding`] of a capture's streams: the UDP payload
/// bytes as captured, not decoded.
pub const DATAGRAM_ENCODING: &str = "bytes";

pub use capture::{sniff, CaptureFormat};
use capture::{Bad, Cursor, Item, Layout, NotFrame};
pub use filter::Filter;
use packet::Skip;

/// The format of the file at `path` by its first bytes; `None` when it is
/// not a capture or cannot be read (the MCL reader then says why).
pub fn sniff_path(path: &Path) -> Option<CaptureFormat> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = File::open(path).ok()?;
    file.read_exact(&mut magic).ok()?;
    sniff(&magic)
}

/// Datagrams between two marks of the seek index.
pub const INDEX_EVERY: u64 = 64;

/// Options of reading a capture.
#[derive(Debug, Clone, Default)]
pub struct PcapOptions {
    pub window: TimeWindow,
    pub on_error: OnError,
    /// A BPF-style expression ([`filter`]).
    pub filter: Option<String>,
    /// Only datagrams to these destination ports (any of them).
    pub dst_ports: Vec<u16>,
    /// Only datagrams from this source: `ip`, or `ip:port` (`[v6]:port`).
    pub src: Option<String>,
}

impl PcapOptions {
    /// The one filter all three options make; `None`: everything passes.
    pub fn compile(&self) -> Result<Option<Filter>> {
        let mut all = Filter::True;
        if let Some(text) = &self.filter {
            all = all.and(Filter::parse("filter", text)?);
        }
        let ports = self
            .dst_ports
            .iter()
            .map(|&p| Filter::Ports(filter::Dir::Dst, p, p));
        if let Some(ports) = Filter::any_of(ports) {
            all = all.and(ports);
        }
        if let Some(src) = &self.src {
            all = all.and(source_filter(src)?);
        }
        Ok((all != Filter::True).then_some(all))
    }
}

fn source_filter(src: &str) -> Result<Filter> {
    use filter::Dir::Src;
    if let Ok(addr) = src.parse::<SocketAddr>() {
        return Ok(Filter::Host(Src, addr.ip()).and(Filter::Ports(Src, addr.port(), addr.port())));
    }
    let ip = src.trim_start_matches('[').trim_end_matches(']');
    ip.parse().map(|ip| Filter::Host(Src, ip)).map_err(|_| {
        Error::invalid(
            "src",
            format!("must be an IP address or ip:port ([v6]:port), got '{src}'"),
        )
    })
}

/// What a capture holds, counted when it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Frames (packet records or blocks) read.
    pub frames: u64,
    /// UDP datagrams that pass the filter: the records.
    pub datagrams: u64,
    /// UDP datagrams the filter left out.
    pub filtered: u64,
    /// Frames that are not UDP over IPv4/IPv6.
    pub not_udp: u64,
    /// IPv4 or IPv6 fragments (not reassembled).
    pub fragments: u64,
    /// Datagrams the capture's snaplen cut short.
    pub truncated: u64,
    /// Frames whose headers do not parse.
    pub malformed: u64,
    /// Frames of a link type not decoded.
    pub link_type: u64,
    /// pcapng simple packet blocks (no timestamp).
    pub untimed: u64,
}

impl CaptureCounts {
    /// Frames skipped for any reason but the filter.
    pub fn skipped(&self) -> u64 {
        self.not_udp
            + self.fragments
            + self.truncated
            + self.malformed
            + self.link_type
            + self.untimed
    }

    fn count(&mut self, skip: Skip) {
        match skip {
            Skip::NotUdp => self.not_udp += 1,
            Skip::Fragment => self.fragments += 1,
            Skip::Truncated => self.truncated += 1,
            Skip::Malformed => self.malformed += 1,
            Skip::LinkType => self.link_type += 1,
        }
    }
}

/// Where the reader can resume: a seek index mark.
#[derive(Debug, Clone)]
struct Mark {
    cursor: Cursor,
    /// The latest time (elapsed ns) of any datagram up to the end of this
    /// mark's group: captures are nearly but not always time-ordered, so
    /// the bisection is over this running maximum.
    max_until_end: i64,
}

/// A datagram found at a cursor.
struct Found {
    time_ns: i64,
    dst: SocketAddr,
    payload: (usize, usize),
    frame: (usize, usize),
}

/// The UDP datagrams of one pcap or pcapng file; see the module documentation.
pub struct PcapReader {
    path: PathBuf,
    format: CaptureFormat,
    map: Option<GuardedMap>,
    layout: Layout,
    start: Cursor,
    cursor: Cursor,
    filter: Option<Filter>,
    window: TimeWindow,
    on_error: OnError,
    base_ns: Option<i64>,
    streams: Vec<StreamInfo>,
    topics: Vec<Arc<str>>,
    by_dst: HashMap<SocketAddr, u32>,
    index: Vec<Mark>,
    /// Where the file's structure is damaged: reading stops there.
    damage: Option<Bad>,
    /// The frame number of the damage (from 1).
    damage_frame: u64,
    counts: CaptureCounts,
    range: Option<(i64, i64)>,
    /// A record read ahead by a seek.
    held: Option<Record>,
    pending: bool,
    /// Damage skipped under [`OnError::Skip`] (once per pass).
    skipped_damage: u64,
}

fn hex_snippet(bytes: &[u8], at: usize) -> String {
    bytes
        .get(at..)
        .unwrap_or(&[])
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl PcapReader {
    /// Open and index `path`. A file that is not a capture, or whose header
    /// is damaged, is an error naming it.
    pub fn open(path: &Path, options: &PcapOptions) -> Result<PcapReader> {
        let filter = options.compile()?;
        let file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, &e))?;
        if meta.is_dir() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: "is a directory, not a capture file".into(),
            });
        }
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the map is read-only and never handed out beyond this
            // reader (records copy their payloads); a file that shrinks under
            // it reads as zeros through the SIGBUS guard, checked after each
            // frame (`check_truncated`).
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, &e))?;
            let _ = map.advise(Advice::Sequential);
            Some(GuardedMap::new(map))
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let malformed = |bad: Bad, frame: u64| Error::Malformed {
            path: path.to_path_buf(),
            line: frame,
            byte_offset: bad.offset as u64,
            snippet: hex_snippet(bytes, bad.offset),
            reason: bad.reason,
        };
        let (layout, start) = Layout::open(bytes).map_err(|b| malformed(b, 0))?;
        let format = sniff(bytes).unwrap_or(CaptureFormat::Pcap);
        let mut reader = PcapReader {
            path: path.to_path_buf(),
            format,
            layout,
            cursor: start.clone(),
            start,
            filter,
            window: options.window,
            on_error: options.on_error,
            base_ns: None,
            streams: Vec::new(),
            topics: Vec::new(),
            by_dst: HashMap::new(),
            index: Vec::new(),
            damage: None,
            damage_frame: 0,
            counts: CaptureCounts::default(),
            range: None,
            held: None,
            pending: true,
            skipped_damage: 0,
            map,
        };
        reader.scan()?;
        Ok(reader)
    }

    /// Read the whole file once: streams, counts, range, damage, index.
    fn scan(&mut self) -> Result<()> {
        let bytes: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let mut cursor = self.start.clone();
        let mut counts = CaptureCounts::default();
        let mut base = None;
        let mut max_time = i64::MIN;
        loop {
            let before = cursor.clone();
            let found = match next_datagram(
                &self.layout,
                bytes,
                &mut cursor,
                &self.filter,
                &mut counts,
                &mut base,
            ) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(bad) => {
                    self.damage = Some(bad);
                    self.damage_frame = counts.frames + 1;
                    break;
                }
            };
            if (counts.datagrams - 1) % INDEX_EVERY == 0 {
                self.index.push(Mark {
                    cursor: before,
                    max_until_end: i64::MIN,
                });
            }
            max_time = max_time.max(found.time_ns);
            if let Some(mark) = self.index.last_mut() {
                mark.max_until_end = max_time;
            }
            if !self.by_dst.contains_key(&found.dst) {
                self.by_dst.insert(found.dst, self.streams.len() as u32);
                // Its time base is set below, once the first frame is known.
                self.streams.push(StreamInfo {
                    message_type: None,
                    files: vec![self.path.clone()],
                    encoding: Some(DATAGRAM_ENCODING.into()),
                    ..StreamInfo::default()
                });
                self.topics.push(found.dst.to_string().into());
            }
            if self.in_window(found.time_ns) {
                self.range = Some(match self.range {
                    None => (found.time_ns, found.time_ns),
                    Some((lo, hi)) => (lo.min(found.time_ns), hi.max(found.time_ns)),
                });
            }
        }
        self.check_truncated()?;
        self.counts = counts;
        self.base_ns = base;
        let time_base_ns = base.map_or(0, |b| u64::try_from(b).unwrap_or(0));
        for stream in &mut self.streams {
            stream.time_base_ns = time_base_ns;
        }
        Ok(())
    }

    fn in_window(&self, t: i64) -> bool {
        self.window.min_ns.is_none_or(|min| t >= min)
            && self.window.max_ns.is_none_or(|max| t <= max)
    }

    fn check_truncated(&self) -> Result<()> {
        if self.map.as_ref().is_some_and(GuardedMap::truncated) {
            return Err(Error::Io {
                path: self.path.clone(),
                message: "file shrank while being read".into(),
            });
        }
        Ok(())
    }

    /// pcap or pcapng.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The first frame's capture time, ns since the epoch (`None`: no frame).
    /// A record's absolute time is this plus its `time_ns`.
    pub fn base_ns(&self) -> Option<i64> {
        self.base_ns
    }

    /// What the capture holds, per reason.
    pub fn counts(&self) -> &CaptureCounts {
        &self.counts
    }

    /// The damage to the file's structure, if any: an error naming the
    /// file, the frame number and the byte offset.
    pub fn damage(&self) -> Option<Error> {
        self.damage.as_ref().map(|bad| self.damage_error(bad))
    }

    /// The original destination of each stream, in stream order.
    pub fn destinations(&self) -> Vec<SocketAddr> {
        let mut by_stream: Vec<_> = self.by_dst.iter().map(|(a, s)| (*s, *a)).collect();
        by_stream.sort();
        by_stream.into_iter().map(|(_, a)| a).collect()
    }

    fn damage_error(&self, bad: &Bad) -> Error {
        Error::Malformed {
            path: self.path.clone(),
            line: self.damage_frame,
            byte_offset: bad.offset as u64,
            reason: bad.reason.clone(),
            snippet: hex_snippet(self.map.as_deref().unwrap_or(&[]), bad.offset),
        }
    }

    fn record(&self, found: &Found) -> Record {
        let bytes: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let stream = self.by_dst.get(&found.dst).copied().unwrap_or(0);
        let frame = &bytes[found.frame.0..found.frame.1];
        let mut payload = crate::record::payload_buffer(found.payload.1 - found.payload.0);
        payload.extend_from_slice(&frame[found.payload.0..found.payload.1]);
        Record {
            time_ns: found.time_ns,
            stream,
            topic: self.topics[stream as usize].clone(),
            payload,
        }
    }

    /// The next datagram in the window, from the cursor.
    fn read_next(&mut self) -> Result<Option<Record>> {
        let bytes: &[u8] = self.map.as_deref().unwrap_or(&[]);
        let mut scratch = CaptureCounts::default();
        let mut base = self.base_ns;
        loop {
            let step = next_datagram(
                &self.layout,
                bytes,
                &mut self.cursor,
                &self.filter,
                &mut scratch,
                &mut base,
            );
            self.check_truncated()?;
            match step {
                Ok(Some(found)) if self.in_window(found.time_ns) => {
                    return Ok(Some(self.record(&found)))
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(bad) => {
                    // Reading goes no further than the damage, either way.
                    self.cursor.pos = bytes.len();
                    match self.on_error {
                        OnError::Fail => return Err(self.damage_error(&bad)),
                        OnError::Skip => {
                            self.skipped_damage += 1;
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}

/// The next datagram that passes `filter`, counting every frame on the way
/// into `counts`; `base` takes the first frame's time. `Ok(None)` at the end.
fn next_datagram(
    layout: &Layout,
    bytes: &[u8],
    cursor: &mut Cursor,
    filter: &Option<Filter>,
    counts: &mut CaptureCounts,
    base: &mut Option<i64>,
) -> std::result::Result<Option<Found>, Bad> {
    loop {
        let frame = match layout.next(bytes, cursor)? {
            None => return Ok(None),
            Some(Item::NotFrame(NotFrame::Other)) => continue,
            Some(Item::NotFrame(NotFrame::Untimed)) => {
                counts.frames += 1;
                counts.untimed += 1;
                continue;
            }
            Some(Item::Frame(frame)) => frame,
        };
        counts.frames += 1;
        let base = *base.get_or_insert(frame.time_ns);
        let udp = match packet::decode(frame.linktype, frame.data) {
            Ok(udp) => udp,
            Err(skip) => {
                counts.count(skip);
                continue;
            }
        };
        if filter
            .as_ref()
            .is_some_and(|f| !f.matches(&udp.src, &udp.dst))
        {
            counts.filtered += 1;
            continue;
        }
        counts.datagrams += 1;
        // `data` borrows from `bytes`: its offset there locates the payload.
        let start = frame.data.as_ptr() as usize - bytes.as_ptr() as usize;
        return Ok(Some(Found {
            time_ns: frame.time_ns.saturating_sub(base),
            dst: udp.dst,
            payload: udp.payload,
            frame: (start, start + frame.data.len()),
        }));
    }
}

impl RecordSource for PcapReader {
    fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(held) = self.held.take() {
            return Ok(Some(held));
        }
        let next = self.read_next()?;
        if next.is_none() {
            self.pending = false;
        }
        Ok(next)
    }

    fn reset(&mut self) -> Result<()> {
        self.cursor = self.start.clone();
        self.held = None;
        self.pending = true;
        Ok(())
    }

    fn seek(&mut self, t_ns: i64) -> Result<()> {
        let t = self.window.min_ns.map_or(t_ns, |min| t_ns.max(min));
        // The first group whose running maximum reaches t holds the first
        // datagram at or after t; none does: the end.
        let group = self.index.partition_point(|m| m.max_until_end < t);
        self.held = None;
        self.pending = true;
        let Some(mark) = self.index.get(group) else {
            let end = self.map.as_ref().map_or(0, |m| m.len());
            self.cursor.pos = end;
            self.pending = false;
            return Ok(());
        };
        self.cursor = mark.cursor.clone();
        loop {
            match self.read_next()? {
                Some(r) if r.time_ns >= t => {
                    self.held = Some(r);
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    self.pending = false;
                    return Ok(());
                }
            }
        }
    }

    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        Ok(self.range)
    }

    fn is_data_pending(&self) -> bool {
        self.pending
    }

    fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    fn skipped(&self) -> u64 {
        self.counts.skipped() + self.skipped_damage
    }
}

/// The reader over captures built here byte by byte (the ava suite reads
/// tcpdump's own files).
#[cfg(test)]
mod tests {
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
    pub(crate) fn pcapng_file(
        interfaces: &[(u16, u8)],
        packets: &[(u32, u64, Vec<u8>)],
    ) -> Vec<u8> {
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
            let path = std::env::temp_dir()
                .join(format!("netreplay-pcap-{}-{n}-{name}", std::process::id()));
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
}
