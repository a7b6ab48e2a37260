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
                self.streams.push(StreamInfo {
                    message_type: None,
                    files: vec![self.path.clone()],
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
        Record {
            time_ns: found.time_ns,
            stream,
            topic: self.topics[stream as usize].clone(),
            payload: frame[found.payload.0..found.payload.1].to_vec(),
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

#[cfg(test)]
mod tests;
