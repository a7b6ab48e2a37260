//! `UdpSink`: sends records as MCL datagrams from the scheduler thread.
//!
//! Sockets are blocking, with a short send timeout. A UDP send normally
//! returns in microseconds (it only copies into the socket buffer); it waits
//! only when that buffer is full — at high rates or infinite speed — and
//! then waiting is the right thing: it paces the replay to what the network
//! takes instead of throwing datagrams away (as a non-blocking socket would
//! on EAGAIN). The wait is cut into short slices so a stop request gets
//! through, and bounded by `send_timeout`, after which the record counts as
//! a `would_block` failure.
//!
//! Each destination has its own socket, connected when the kernel allows it
//! (a connected UDP socket reports ICMP "port unreachable" as ECONNREFUSED on
//! a later send, and skips a route lookup per datagram); a destination that
//! cannot be connected (no route yet) is sent to with `sendto` instead.
//!
//! Send errors never stop the sink: they are counted by kind. With
//! `fail_on_error`, the first failure is kept for [`UdpSink::take_error`]
//! and later records are not sent (counted as `suppressed`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::clock::now_ns;
use crate::endpoint::{set_multicast_if_v4_index, socket_error, Endpoint, Interface};
use crate::scheduler::Control;
use crate::sink::{Delivery, Sink};
use crate::stats::{Counter, Histogram, Summary};
use crate::wire::{EncodeError, Encoder, WireOptions};
use crate::{Error, Record, Result, StreamInfo};

/// MCL's `ALLOWED_MULTICAST_HOPS`.
pub const DEFAULT_HOP_LIMIT: u32 = 3;
/// One blocking send waits at most this long before looking at stop requests.
const SEND_SLICE: Duration = Duration::from_millis(20);

/// Sends records of a message type and/or topic to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Message type (the stream's `>>> Type`); `None` matches any type.
    pub message_type: Option<String>,
    /// Topic; `None` matches any topic.
    pub topic: Option<String>,
    /// `udp://host:port`.
    pub destination: String,
}

/// Options of [`UdpSink`].
#[derive(Debug, Clone)]
pub struct UdpSinkOptions {
    /// Where records that match no route go; `None`: they are not sent
    /// (counted as `unrouted`).
    pub destination: Option<String>,
    /// Precedence: type and topic, then topic only, then type only, then
    /// the default destination.
    pub routes: Vec<Route>,
    /// Multicast TTL (IPv4) / hop limit (IPv6), 0..=255; 0 keeps datagrams
    /// on this host.
    pub hop_limit: u32,
    /// TTL / hop limit of unicast datagrams; `None`: the system default.
    pub unicast_hops: Option<u32>,
    /// Outgoing interface of multicast: name, index, or (IPv4) address.
    pub interface: Option<String>,
    /// Deliver multicast to listeners on this host too (MCL relies on it).
    pub multicast_loop: bool,
    pub wire: WireOptions,
    /// `SO_SNDBUF`; `None`: the system default.
    pub send_buffer_bytes: Option<usize>,
    /// The longest wait for room in a full socket buffer.
    pub send_timeout: Duration,
    /// Stop sending at the first failure and report it (see [`UdpSink::take_error`]).
    pub fail_on_error: bool,
}

impl Default for UdpSinkOptions {
    fn default() -> Self {
        UdpSinkOptions {
            destination: None,
            routes: Vec::new(),
            hop_limit: DEFAULT_HOP_LIMIT,
            unicast_hops: None,
            interface: None,
            multicast_loop: true,
            wire: WireOptions::default(),
            send_buffer_bytes: None,
            send_timeout: Duration::from_secs(1),
            fail_on_error: false,
        }
    }
}

/// Kinds of send failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The socket buffer stayed full for `send_timeout` (EAGAIN).
    WouldBlock,
    /// ENOBUFS: the interface queue is full.
    NoBuffers,
    /// EMSGSIZE: the datagram is larger than the path allows.
    TooBig,
    /// ECONNREFUSED: nobody listens at a unicast destination.
    Refused,
    /// No route, host or network unreachable or down.
    Unreachable,
    /// The payload is not one msgpack value, or the topic does not fit the MTU.
    Invalid,
    Other,
}

impl FailureKind {
    fn of(err: &io::Error) -> FailureKind {
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => FailureKind::WouldBlock,
            Some(libc::ENOBUFS) => FailureKind::NoBuffers,
            Some(libc::EMSGSIZE) => FailureKind::TooBig,
            Some(libc::ECONNREFUSED) => FailureKind::Refused,
            Some(
                libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EADDRNOTAVAIL,
            ) => FailureKind::Unreachable,
            _ if err.kind() == io::ErrorKind::WouldBlock => FailureKind::WouldBlock,
            _ => FailureKind::Other,
        }
    }
}

/// Statistics of a [`UdpSink`]: written by the scheduler thread only,
/// readable from any thread.
#[derive(Default)]
pub struct UdpSinkStats {
    /// Records handed to the sink.
    pub records: Counter,
    /// Records whose every datagram was sent.
    pub records_sent: Counter,
    pub datagrams: Counter,
    pub bytes: Counter,
    /// Records sent as fragments.
    pub fragmented: Counter,
    /// Records that matched no route and no default destination.
    pub unrouted: Counter,
    /// Records not sent after a failure under `fail_on_error`.
    pub suppressed: Counter,
    pub would_block: Counter,
    pub no_buffers: Counter,
    pub too_big: Counter,
    pub refused: Counter,
    pub unreachable: Counter,
    pub invalid: Counter,
    pub other: Counter,
    /// Send lateness: time after the last datagram of a record was sent −
    /// the record's deadline (not recorded at infinite speed).
    pub lateness: Histogram,
    failed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`UdpSinkStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UdpSinkSnapshot {
    pub records: u64,
    pub records_sent: u64,
    pub datagrams: u64,
    pub bytes: u64,
    pub fragmented: u64,
    pub unrouted: u64,
    pub suppressed: u64,
    pub would_block: u64,
    pub no_buffers: u64,
    pub too_big: u64,
    pub refused: u64,
    pub unreachable: u64,
    pub invalid: u64,
    pub other: u64,
    /// Sum of the failure counts.
    pub send_failures: u64,
    /// In nanoseconds.
    pub lateness: Summary,
    /// `fail_on_error` stopped the sink.
    pub failed: bool,
    /// The last failure, described (destination and reason).
    pub last_error: Option<String>,
}

impl UdpSinkStats {
    fn counter(&self, kind: FailureKind) -> &Counter {
        match kind {
            FailureKind::WouldBlock => &self.would_block,
            FailureKind::NoBuffers => &self.no_buffers,
            FailureKind::TooBig => &self.too_big,
            FailureKind::Refused => &self.refused,
            FailureKind::Unreachable => &self.unreachable,
            FailureKind::Invalid => &self.invalid,
            FailureKind::Other => &self.other,
        }
    }

    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.counter(kind).get()
    }

    pub fn snapshot(&self) -> UdpSinkSnapshot {
        let s = UdpSinkSnapshot {
            records: self.records.get(),
            records_sent: self.records_sent.get(),
            datagrams: self.datagrams.get(),
            bytes: self.bytes.get(),
            fragmented: self.fragmented.get(),
            unrouted: self.unrouted.get(),
            suppressed: self.suppressed.get(),
            would_block: self.would_block.get(),
            no_buffers: self.no_buffers.get(),
            too_big: self.too_big.get(),
            refused: self.refused.get(),
            unreachable: self.unreachable.get(),
            invalid: self.invalid.get(),
            other: self.other.get(),
            send_failures: 0,
            lateness: self.lateness.summary(),
            failed: self.failed.load(Ordering::Acquire),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        UdpSinkSnapshot {
            send_failures: s.would_block
                + s.no_buffers
                + s.too_big
                + s.refused
                + s.unreachable
                + s.invalid
                + s.other,
            ..s
        }
    }

    /// Zero the counts. Racy against a running sink (counts in flight may
    /// survive); meant for between runs.
    pub fn clear(&self) {
        for c in [
            &self.records,
            &self.records_sent,
            &self.datagrams,
            &self.bytes,
            &self.fragmented,
            &self.unrouted,
            &self.suppressed,
            &self.would_block,
            &self.no_buffers,
            &self.too_big,
            &self.refused,
            &self.unreachable,
            &self.invalid,
            &self.other,
        ] {
            c.clear();
        }
        self.lateness.clear();
    }

    fn note_error(&self, text: impl FnOnce() -> String) {
        // Never block the scheduler on a reader: skip the note if it is busy.
        if let Ok(mut slot) = self.last_error.try_lock() {
            *slot = Some(text());
        }
    }
}

struct Destination {
    url: String,
    addr: SocketAddr,
    target: SockAddr,
    socket: Socket,
    connected: bool,
}

fn open_destination(
    endpoint: &Endpoint,
    options: &UdpSinkOptions,
    interface: Option<Interface>,
) -> Result<Destination> {
    let url = endpoint.url.as_str();
    let addr = endpoint.addr;
    let fail = |action: &str, e: io::Error| socket_error(url, action, &e);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail("create a UDP socket", e))?;
    socket
        .set_write_timeout(Some(SEND_SLICE))
        .map_err(|e| fail("set the send timeout", e))?;
    if let Some(size) = options.send_buffer_bytes {
        socket
            .set_send_buffer_size(size)
            .map_err(|e| fail("set the send buffer size", e))?;
    }
    let ip = addr.ip();
    if ip.is_multicast() {
        if addr.is_ipv4() {
            socket
                .set_multicast_ttl_v4(options.hop_limit)
                .map_err(|e| fail("set the multicast TTL", e))?;
            socket
                .set_multicast_loop_v4(options.multicast_loop)
                .map_err(|e| fail("set multicast loopback", e))?;
            match interface {
                Some(Interface::Ipv4(a)) => socket.set_multicast_if_v4(&a),
                Some(Interface::Index(i)) => set_multicast_if_v4_index(&socket, i),
                None => Ok(()),
            }
            .map_err(|e| fail("select the multicast interface", e))?;
        } else {
            socket
                .set_multicast_hops_v6(options.hop_limit)
                .map_err(|e| fail("set the multicast hop limit", e))?;
            socket
                .set_multicast_loop_v6(options.multicast_loop)
                .map_err(|e| fail("set multicast loopback", e))?;
            match interface {
                Some(Interface::Index(i)) => socket
                    .set_multicast_if_v6(i)
                    .map_err(|e| fail("select the multicast interface", e))?,
                Some(Interface::Ipv4(a)) => {
                    return Err(Error::invalid(
                        "interface",
                        format!(
                            "'{a}' is an IPv4 address; IPv6 multicast to '{url}' needs an interface name or index"
                        ),
                    ))
                }
                None => {}
            }
        }
    } else if let Some(hops) = options.unicast_hops {
        if addr.is_ipv4() {
            socket.set_ttl_v4(hops)
        } else {
            socket.set_unicast_hops_v6(hops)
        }
        .map_err(|e| fail("set the unicast hop limit", e))?;
    }
    let target = SockAddr::from(addr);
    let connected = socket.connect(&target).is_ok();
    Ok(Destination {
        url: url.to_string(),
        addr,
        target,
        socket,
        connected,
    })
}

/// The routes of one stream (message type).
struct StreamRoutes {
    /// Topic → destination.
    by_topic: HashMap<Box<str>, usize>,
    /// For the stream's other topics.
    fallback: Option<usize>,
}

/// Where each record goes.
struct Routing {
    default: Option<usize>,
    /// Per stream index.
    streams: Vec<StreamRoutes>,
    /// For records of unknown streams.
    by_topic: HashMap<Box<str>, usize>,
}

impl Routing {
    fn route(&self, stream: u32, topic: &str) -> Option<usize> {
        match self.streams.get(stream as usize) {
            Some(s) => s.by_topic.get(topic).copied().or(s.fallback),
            None => self.by_topic.get(topic).copied().or(self.default),
        }
    }
}

/// Sends each record as MCL datagrams; see the module documentation.
pub struct UdpSink {
    destinations: Vec<Destination>,
    routing: Routing,
    encoder: Encoder,
    stats: Arc<UdpSinkStats>,
    send_timeout: Duration,
    fail_on_error: bool,
    error: Option<Error>,
}

impl UdpSink {
    /// Open sockets for every destination (resolving host names now).
    /// `streams` is the source's stream table: it maps a record's `stream`
    /// to its message type for routing.
    pub fn new(options: UdpSinkOptions, streams: &[StreamInfo]) -> Result<UdpSink> {
        options.wire.validate()?;
        if options.hop_limit > 255 {
            return Err(Error::invalid(
                "hopLimit",
                format!("must be 0..=255, got {}", options.hop_limit),
            ));
        }
        if options.unicast_hops.is_some_and(|h| h == 0 || h > 255) {
            return Err(Error::invalid("unicastHops", "must be 1..=255"));
        }
        if options.send_timeout.is_zero() {
            return Err(Error::invalid("sendTimeout", "must be > 0"));
        }
        if options.destination.is_none() && options.routes.is_empty() {
            return Err(Error::invalid(
                "destination",
                "a UDP sink needs a destination or at least one route",
            ));
        }
        let interface = options
            .interface
            .as_deref()
            .map(Interface::parse)
            .transpose()?;
        let mut destinations: Vec<Destination> = Vec::new();
        let mut open = |url: &str, name: &'static str| -> Result<usize> {
            let endpoint = Endpoint::parse(url, name, false)?;
            if let Some(i) = destinations.iter().position(|d| d.addr == endpoint.addr) {
                return Ok(i);
            }
            destinations.push(open_destination(&endpoint, &options, interface)?);
            Ok(destinations.len() - 1)
        };
        let default = options
            .destination
            .as_deref()
            .map(|u| open(u, "destination"))
            .transpose()?;
        let mut by_topic: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_type: HashMap<&str, usize> = HashMap::new();
        let mut by_type_topic: HashMap<(&str, &str), usize> = HashMap::new();
        for route in &options.routes {
            let d = open(&route.destination, "routes")?;
            match (route.message_type.as_deref(), route.topic.as_deref()) {
                (None, None) => {
                    return Err(Error::invalid(
                        "routes",
                        format!(
                            "the route to '{}' names neither a message type nor a topic",
                            route.destination
                        ),
                    ))
                }
                (None, Some(topic)) => {
                    by_topic.insert(topic.into(), d);
                }
                (Some(t), None) => {
                    by_type.insert(t, d);
                }
                (Some(t), Some(topic)) => {
                    by_type_topic.insert((t, topic), d);
                }
            }
        }
        let streams = streams
            .iter()
            .map(|s| {
                let mut topics = by_topic.clone();
                let mut fallback = default;
                if let Some(t) = s.message_type.as_deref() {
                    for ((rt, topic), d) in &by_type_topic {
                        if *rt == t {
                            topics.insert((*topic).into(), *d);
                        }
                    }
                    if let Some(d) = by_type.get(t) {
                        fallback = Some(*d);
                    }
                }
                StreamRoutes {
                    by_topic: topics,
                    fallback,
                }
            })
            .collect();
        let encoder = Encoder::new(options.wire)?;
        Ok(UdpSink {
            destinations,
            routing: Routing {
                default,
                streams,
                by_topic,
            },
            encoder,
            stats: Arc::default(),
            send_timeout: options.send_timeout,
            fail_on_error: options.fail_on_error,
            error: None,
        })
    }

    /// The statistics, shared: read them from any thread.
    pub fn stats(&self) -> &Arc<UdpSinkStats> {
        &self.stats
    }

    /// The destinations, as (URL, resolved address), without duplicates.
    pub fn destinations(&self) -> Vec<(String, SocketAddr)> {
        self.destinations
            .iter()
            .map(|d| (d.url.clone(), d.addr))
            .collect()
    }

    /// Where a record of `stream` on `topic` goes.
    pub fn route(&self, stream: u32, topic: &str) -> Option<SocketAddr> {
        self.routing
            .route(stream, topic)
            .map(|i| self.destinations[i].addr)
    }

    /// Under `fail_on_error`: the failure that stopped the sink, once.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Whether `fail_on_error` stopped the sink.
    pub fn has_failed(&self) -> bool {
        self.stats.failed.load(Ordering::Acquire)
    }

    /// Send again after a `fail_on_error` stop.
    pub fn clear_failure(&mut self) {
        self.error = None;
        self.stats.failed.store(false, Ordering::Release);
    }

    /// Send one record now, outside a scheduler (never interrupted).
    pub fn send(&mut self, record: &Record, delivery: Delivery) {
        self.send_inner(record, delivery, &|| false);
    }

    fn send_inner(&mut self, record: &Record, delivery: Delivery, stop: &dyn Fn() -> bool) {
        let UdpSink {
            destinations,
            routing,
            encoder,
            stats,
            send_timeout,
            fail_on_error,
            error,
        } = self;
        stats.records.add(1);
        if stats.failed.load(Ordering::Relaxed) {
            stats.suppressed.add(1);
            return;
        }
        let Some(index) = routing.route(record.stream, &record.topic) else {
            stats.unrouted.add(1);
            return;
        };
        let dest = &destinations[index];
        let result = encoder.encode(&record.topic, &record.payload, |datagram| {
            send_datagram(dest, datagram, *send_timeout, stop)?;
            stats.datagrams.add(1);
            stats.bytes.add(datagram.len() as u64);
            Ok::<(), io::Error>(())
        });
        let (kind, reason) = match result {
            Ok(n) => {
                stats.records_sent.add(1);
                if n > 1 {
                    stats.fragmented.add(1);
                }
                if delivery.deadline_ns != i64::MIN {
                    stats.lateness.record(now_ns() - delivery.deadline_ns);
                }
                return;
            }
            Err(EncodeError::Wire(e)) => (FailureKind::Invalid, e.to_string()),
            Err(EncodeError::Emit(e)) => (FailureKind::of(&e), e.to_string()),
        };
        stats.counter(kind).add(1);
        let describe = || {
            format!(
                "record at {:.6} s on topic '{}' to {}: {}",
                record.time_ns as f64 / 1e9,
                record.topic,
                dest.url,
                reason
            )
        };
        stats.note_error(describe);
        if *fail_on_error {
            stats.failed.store(true, Ordering::Release);
            *error = Some(Error::Io {
                path: dest.url.clone().into(),
                message: format!("cannot send ({kind:?}): {}", describe()),
            });
        }
    }
}

/// Send one datagram, waiting (in slices, so `stop` is seen) while the
/// socket buffer is full, up to `timeout`.
fn send_datagram(
    dest: &Destination,
    datagram: &[u8],
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let mut started: Option<Instant> = None;
    loop {
        let result = if dest.connected {
            dest.socket.send(datagram)
        } else {
            dest.socket.send_to(datagram, &dest.target)
        };
        match result {
            Ok(n) if n == datagram.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "sent {n} of {} bytes",
                    datagram.len()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if FailureKind::of(&e) == FailureKind::WouldBlock => {
                let since = *started.get_or_insert_with(Instant::now);
                if stop() || since.elapsed() >= timeout {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl Sink for UdpSink {
    fn deliver(&mut self, record: &Record, delivery: Delivery, control: &Control) {
        self.send_inner(record, delivery, &|| control.stop_requested());
    }

    fn take_error(&mut self) -> Option<Error> {
        UdpSink::take_error(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::path::PathBuf;

    fn streams() -> Vec<StreamInfo> {
        ["A", "B"]
            .iter()
            .map(|t| StreamInfo {
                message_type: Some(t.to_string()),
                files: vec![PathBuf::from(format!("{t}.log"))],
            })
            .collect()
    }

    fn record(stream: u32, topic: &str) -> Record {
        Record {
            time_ns: 0,
            stream,
            topic: topic.into(),
            payload: vec![0x01],
        }
    }

    #[test]
    fn routes_take_precedence_in_order() {
        let opts = UdpSinkOptions {
            destination: Some("udp://127.0.0.1:9001".into()),
            routes: vec![
                Route {
                    message_type: Some("A".into()),
                    topic: None,
                    destination: "udp://127.0.0.1:9002".into(),
                },
                Route {
                    message_type: None,
                    topic: Some("x".into()),
                    destination: "udp://127.0.0.1:9003".into(),
                },
                Route {
                    message_type: Some("A".into()),
                    topic: Some("x".into()),
                    destination: "udp://127.0.0.1:9004".into(),
                },
                Route {
                    message_type: Some("B".into()),
                    topic: None,
                    destination: "udp://127.0.0.1:9001/".into(),
                },
            ],
            ..UdpSinkOptions::default()
        };
        let sink = UdpSink::new(opts, &streams()).unwrap();
        let port = |s: u32, t: &str| sink.route(s, t).map(|a| a.port());
        assert_eq!(port(0, ""), Some(9002));
        assert_eq!(port(0, "x"), Some(9004));
        assert_eq!(port(1, "x"), Some(9003));
        assert_eq!(port(1, ""), Some(9001));
        assert_eq!(port(7, "x"), Some(9003));
        assert_eq!(port(7, "y"), Some(9001));
        // Duplicate addresses share one socket.
        assert_eq!(sink.destinations().len(), 4);
    }

    #[test]
    fn bad_options_are_rejected() {
        let err = |opts: UdpSinkOptions| UdpSink::new(opts, &[]).err().unwrap().to_string();
        assert!(err(UdpSinkOptions::default()).contains("needs a destination"));
        let with = |f: fn(&mut UdpSinkOptions)| {
            let mut o = UdpSinkOptions {
                destination: Some("udp://127.0.0.1:9".into()),
                ..UdpSinkOptions::default()
            };
            f(&mut o);
            o
        };
        assert!(err(with(|o| o.hop_limit = 256)).contains("hopLimit"));
        assert!(err(with(|o| o.wire.mtu = 10)).contains("mtu"));
        assert!(
            err(with(|o| o.destination = Some("udp://127.0.0.1:x".into())))
                .contains("not a number")
        );
        assert!(err(with(|o| o.interface = Some("nosuchif0".into()))).contains("nosuchif0"));
        assert!(err(with(|o| o.routes.push(Route {
            message_type: None,
            topic: None,
            destination: "udp://127.0.0.1:9".into()
        })))
        .contains("neither"));
    }

    #[test]
    fn unrouted_and_invalid_records_are_counted() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = UdpSinkOptions {
            routes: vec![Route {
                message_type: Some("A".into()),
                topic: None,
                destination: format!("udp://{}", receiver.local_addr().unwrap()),
            }],
            ..UdpSinkOptions::default()
        };
        let mut sink = UdpSink::new(opts, &streams()).unwrap();
        let delivery = Delivery {
            deadline_ns: now_ns(),
            lateness_ns: 0,
        };
        sink.send(&record(1, ""), delivery);
        let mut bad = record(0, "");
        bad.payload = vec![0x92];
        sink.send(&bad, delivery);
        sink.send(&record(0, "t"), delivery);
        let s = sink.stats().snapshot();
        assert_eq!(
            (
                s.records,
                s.unrouted,
                s.invalid,
                s.records_sent,
                s.datagrams
            ),
            (3, 1, 1, 1, 1)
        );
        assert_eq!(s.lateness.count, 1);
        assert!(s.last_error.unwrap().contains("truncated"));
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x92, 0xa1, b't', 0x01]);
    }
}
