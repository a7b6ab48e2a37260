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
//!
//! At infinite speed (Linux) no deadline is at stake, so records delivered
//! by a scheduler are queued per destination and handed to the kernel up to
//! [`BATCH`] datagrams per `sendmmsg`: one syscall instead of one per
//! datagram. The queue is sent when a destination has [`BATCH`] datagrams
//! or [`BATCH_BYTES`] bytes queued, and at every [`Sink::flush`] (which the
//! scheduler calls when the ring runs dry and when a run ends). Counts and
//! failures are the per-datagram path's, with two differences: a
//! `fail_on_error` failure is reported after the delivery whose flush met it
//! (records delivered in between count as `suppressed`), and an
//! asynchronous error (ECONNREFUSED from an earlier datagram's ICMP) that
//! hits a datagram after the first of a `sendmmsg` call is dropped by the
//! kernel, so that datagram is sent again instead of counted as failed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::engine::control::{LagPolicy, Waiter};
use crate::engine::sink::{Delivery, Outcome, Sink};
use crate::engine::stats::{Histogram, Summary};
use crate::format::wire::{EncodeError, Encoder, WireOptions};
use crate::net::endpoint::{socket_error, Endpoint, Interface};
use crate::record::StreamTable;
use crate::sys::now_ns;
use crate::sys::set_multicast_if_v4_index;
use crate::Counter;
use crate::{Error, Record, Result, StreamInfo};

/// MCL's `ALLOWED_MULTICAST_HOPS`.
pub const DEFAULT_HOP_LIMIT: u32 = 3;
/// One blocking send waits at most this long before looking at stop requests.
const SEND_SLICE: Duration = Duration::from_millis(20);
/// Datagrams per `sendmmsg` call, and queued per destination before one.
/// 128 measured best on a 2-core machine (32 and 64 slower, 256 and 512 no
/// faster): the gain is less the syscalls saved than the ring drained and
/// refilled in bursts instead of one record at a time.
pub const BATCH: usize = 128;
/// Bytes queued per destination before a flush; larger payloads are sent
/// at once rather than copied (their copy would cost more than the
/// syscalls saved).
pub const BATCH_BYTES: usize = 256 << 10;
/// Batching needs `sendmmsg`; elsewhere every record is sent at once.
const BATCHING: bool = cfg!(target_os = "linux");

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
    /// Routes by type, and by type and topic, for streams defined later.
    by_type: HashMap<Box<str>, usize>,
    by_type_topic: Vec<(Box<str>, Box<str>, usize)>,
    /// Where streams defined as the source is read appear.
    table: Option<Arc<StreamTable>>,
}

impl Routing {
    fn routes_of(&self, message_type: Option<&str>) -> StreamRoutes {
        let mut by_topic = self.by_topic.clone();
        let mut fallback = self.default;
        if let Some(t) = message_type {
            for (rt, topic, d) in &self.by_type_topic {
                if **rt == *t {
                    by_topic.insert(topic.clone(), *d);
                }
            }
            if let Some(d) = self.by_type.get(t) {
                fallback = Some(*d);
            }
        }
        StreamRoutes { by_topic, fallback }
    }

    fn route(&mut self, stream: u32, topic: &str) -> Option<usize> {
        let index = stream as usize;
        if index >= self.streams.len() {
            // A stream defined since: once per stream, not per record.
            if let Some(table) = &self.table {
                for t in table.types_from(self.streams.len()) {
                    let routes = self.routes_of(t.as_deref());
                    self.streams.push(routes);
                }
            }
        }
        match self.streams.get(index) {
            Some(s) => s.by_topic.get(topic).copied().or(s.fallback),
            None => self.by_topic.get(topic).copied().or(self.default),
        }
    }
}

/// A record queued for a batched send.
struct Queued {
    /// Delivery order across destinations: under `fail_on_error`, records
    /// after the failing one must not go out, whatever their destination.
    seq: u64,
    time_ns: i64,
    topic: Arc<str>,
    /// Its datagrams: `first..first + count` in [`Batch::ends`].
    first: usize,
    count: usize,
}

/// What is queued for one destination. The buffers keep their capacity, so
/// queuing allocates nothing once they have grown.
#[derive(Default)]
struct Batch {
    /// The queued datagrams, back to back.
    bytes: Vec<u8>,
    /// End of each queued datagram in `bytes`.
    ends: Vec<usize>,
    records: Vec<Queued>,
    /// The first record the flush in progress has not handled yet.
    head: usize,
}

impl Batch {
    fn start(&self, datagram: usize) -> usize {
        if datagram == 0 {
            0
        } else {
            self.ends[datagram - 1]
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.records.clear();
        self.head = 0;
    }
}

/// Sends datagrams `range` of a batch (`bytes`, `ends`) in order, up to
/// [`BATCH`] of them: how many were sent, or the error of the first one if
/// none was. A function pointer so unit tests can stand in for the kernel.
type SendMany = fn(&Destination, &[u8], &[usize], Range<usize>) -> io::Result<usize>;

/// Sends each record as MCL datagrams; see the module documentation.
pub struct UdpSink {
    destinations: Vec<Destination>,
    routing: Routing,
    encoder: Encoder,
    stats: Arc<UdpSinkStats>,
    send_timeout: Duration,
    fail_on_error: bool,
    error: Option<Error>,
    /// Per destination (same index).
    batches: Vec<Batch>,
    /// Records queued in all batches.
    queued: usize,
    next_seq: u64,
    send_many: SendMany,
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
        let mut by_type: HashMap<Box<str>, usize> = HashMap::new();
        let mut by_type_topic: Vec<(Box<str>, Box<str>, usize)> = Vec::new();
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
                    by_type.insert(t.into(), d);
                }
                (Some(t), Some(topic)) => {
                    // A later route of the same type and topic wins, as before.
                    by_type_topic.retain(|(rt, rtopic, _)| (&**rt, &**rtopic) != (t, topic));
                    by_type_topic.push((t.into(), topic.into(), d));
                }
            }
        }
        let mut routing = Routing {
            default,
            streams: Vec::new(),
            by_topic,
            by_type,
            by_type_topic,
            table: None,
        };
        routing.streams = streams
            .iter()
            .map(|s| routing.routes_of(s.message_type.as_deref()))
            .collect();
        let encoder = Encoder::new(options.wire)?;
        Ok(UdpSink {
            batches: destinations.iter().map(|_| Batch::default()).collect(),
            destinations,
            routing,
            encoder,
            stats: Arc::default(),
            send_timeout: options.send_timeout,
            fail_on_error: options.fail_on_error,
            error: None,
            queued: 0,
            next_seq: 0,
            send_many,
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

    /// Route records of streams defined in `table` after this sink was made
    /// (a source read from JS) by their types too.
    pub fn with_stream_table(mut self, table: Arc<StreamTable>) -> Self {
        self.routing.table = Some(table);
        self
    }

    /// Where a record of `stream` on `topic` goes.
    pub fn route(&mut self, stream: u32, topic: &str) -> Option<SocketAddr> {
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
        self.deliver_record(record, delivery, false, &|| false);
    }

    /// Send (or, with `batch`, queue) one record. `stop` cuts waits for
    /// room in a full socket buffer short.
    fn deliver_record(
        &mut self,
        record: &Record,
        delivery: Delivery,
        batch: bool,
        stop: &dyn Fn() -> bool,
    ) {
        self.stats.records.add(1);
        if self.stats.failed.load(Ordering::Relaxed) {
            self.stats.suppressed.add(1);
            return;
        }
        let Some(index) = self.routing.route(record.stream, &record.topic) else {
            self.stats.unrouted.add(1);
            return;
        };
        if batch && record.payload.len() <= BATCH_BYTES {
            self.queue(index, record, stop);
            return;
        }
        // What was queued before goes first.
        self.flush_queued(stop);
        if self.stats.failed.load(Ordering::Relaxed) {
            self.stats.suppressed.add(1);
            return;
        }
        self.send_now(index, record, delivery, stop);
    }

    fn send_now(
        &mut self,
        index: usize,
        record: &Record,
        delivery: Delivery,
        stop: &dyn Fn() -> bool,
    ) {
        let UdpSink {
            destinations,
            encoder,
            stats,
            send_timeout,
            fail_on_error,
            error,
            ..
        } = self;
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
                if let Some(deadline) = delivery.deadline_ns {
                    stats.lateness.record(now_ns() - deadline);
                }
                return;
            }
            Err(EncodeError::Wire(e)) => (FailureKind::Invalid, e.to_string()),
            Err(EncodeError::Emit(e)) => (FailureKind::of(&e), e.to_string()),
        };
        let failure = Failure {
            dest,
            time_ns: record.time_ns,
            topic: &record.topic,
            kind,
            reason,
        };
        failure.count(stats, *fail_on_error, error);
    }

    /// Encode a record into its destination's batch; send the batches once
    /// that one is full.
    fn queue(&mut self, index: usize, record: &Record, stop: &dyn Fn() -> bool) {
        let batch = &mut self.batches[index];
        let (bytes_before, first) = (batch.bytes.len(), batch.ends.len());
        let result = self
            .encoder
            .encode(&record.topic, &record.payload, |datagram| {
                batch.bytes.extend_from_slice(datagram);
                batch.ends.push(batch.bytes.len());
                Ok::<(), Infallible>(())
            });
        match result {
            Ok(count) => {
                batch.records.push(Queued {
                    seq: self.next_seq,
                    time_ns: record.time_ns,
                    topic: record.topic.clone(),
                    first,
                    count,
                });
                self.next_seq += 1;
                self.queued += 1;
                if batch.ends.len() >= BATCH || batch.bytes.len() >= BATCH_BYTES {
                    self.flush_queued(stop);
                }
            }
            Err(EncodeError::Wire(e)) => {
                batch.bytes.truncate(bytes_before);
                batch.ends.truncate(first);
                // The failure comes after the records queued before it.
                self.flush_queued(stop);
                if self.stats.failed.load(Ordering::Relaxed) {
                    self.stats.suppressed.add(1);
                    return;
                }
                let failure = Failure {
                    dest: &self.destinations[index],
                    time_ns: record.time_ns,
                    topic: &record.topic,
                    kind: FailureKind::Invalid,
                    reason: e.to_string(),
                };
                failure.count(&self.stats, self.fail_on_error, &mut self.error);
            }
            Err(EncodeError::Emit(never)) => match never {},
        }
    }

    /// Send everything queued.
    fn flush_queued(&mut self, stop: &dyn Fn() -> bool) {
        if self.queued == 0 {
            return;
        }
        loop {
            // The destination with the oldest queued record, and the oldest
            // record queued elsewhere.
            let mut oldest: Option<(u64, usize)> = None;
            let mut next_oldest = u64::MAX;
            for (i, b) in self.batches.iter().enumerate() {
                let Some(q) = b.records.get(b.head) else {
                    continue;
                };
                match oldest {
                    Some((seq, _)) if seq < q.seq => next_oldest = next_oldest.min(q.seq),
                    _ => {
                        if let Some((seq, _)) = oldest {
                            next_oldest = next_oldest.min(seq);
                        }
                        oldest = Some((q.seq, i));
                    }
                }
            }
            let Some((_, index)) = oldest else {
                break;
            };
            // Under fail_on_error, send in delivery order across
            // destinations, so that nothing delivered after a failure goes
            // out; otherwise order only matters per destination.
            let limit = if self.fail_on_error {
                next_oldest
            } else {
                u64::MAX
            };
            self.send_run(index, limit, stop);
        }
        for b in &mut self.batches {
            b.clear();
        }
        self.queued = 0;
    }

    /// Send the queued records of destination `index` up to sequence
    /// `limit`, counting each as the per-datagram path would.
    fn send_run(&mut self, index: usize, limit: u64, stop: &dyn Fn() -> bool) {
        let UdpSink {
            destinations,
            stats,
            send_timeout,
            fail_on_error,
            error,
            batches,
            send_many,
            ..
        } = self;
        let dest = &destinations[index];
        let batch = &mut batches[index];
        let end = batch.head + batch.records[batch.head..].partition_point(|q| q.seq < limit);
        let last = batch.records[end - 1].first + batch.records[end - 1].count;
        let mut r = batch.head;
        // The next datagram to send.
        let mut d = batch.records[r].first;
        // After a short count, the rest of that call's datagrams go one per
        // call: the kernel dropped the error that cut it short, and a
        // call of one reports its datagram's error.
        let mut one_by_one_until = 0;
        let mut waiting_since: Option<Instant> = None;
        while r < end {
            let q = &batch.records[r];
            if d >= q.first + q.count {
                stats.records_sent.add(1);
                if q.count > 1 {
                    stats.fragmented.add(1);
                }
                r += 1;
                continue;
            }
            let upto = if d < one_by_one_until {
                d + 1
            } else {
                last.min(d + BATCH)
            };
            let result = match send_many(dest, &batch.bytes, &batch.ends, d..upto) {
                Ok(0) => Err(io::Error::other("sendmmsg sent nothing")),
                other => other,
            };
            match result {
                Ok(n) => {
                    if n < upto - d {
                        one_by_one_until = upto;
                    }
                    stats.datagrams.add(n as u64);
                    stats
                        .bytes
                        .add((batch.ends[d + n - 1] - batch.start(d)) as u64);
                    d += n;
                    waiting_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if FailureKind::of(&e) == FailureKind::WouldBlock
                        && !stop()
                        && waiting_since.get_or_insert_with(Instant::now).elapsed()
                            < *send_timeout => {}
                Err(e) => {
                    // Datagram `d` failed: so does its record; the rest of
                    // the record is not sent.
                    let failure = Failure {
                        dest,
                        time_ns: q.time_ns,
                        topic: &q.topic,
                        kind: FailureKind::of(&e),
                        reason: e.to_string(),
                    };
                    failure.count(stats, *fail_on_error, error);
                    waiting_since = None;
                    r += 1;
                    if *fail_on_error {
                        batch.head = r;
                        for b in batches.iter_mut() {
                            stats.suppressed.add((b.records.len() - b.head) as u64);
                            b.head = b.records.len();
                        }
                        return;
                    }
                    d = batch.records.get(r).map_or(last, |q| q.first);
                }
            }
        }
        batch.head = end;
    }
}

/// A record that could not be sent.
struct Failure<'a> {
    dest: &'a Destination,
    time_ns: i64,
    topic: &'a str,
    kind: FailureKind,
    reason: String,
}

impl Failure<'_> {
    /// Count it; under `fail_on_error`, stop the sink with it.
    fn count(self, stats: &UdpSinkStats, fail_on_error: bool, error: &mut Option<Error>) {
        stats.counter(self.kind).add(1);
        let describe = || {
            format!(
                "record at {:.6} s on topic '{}' to {}: {}",
                self.time_ns as f64 / 1e9,
                self.topic,
                self.dest.url,
                self.reason
            )
        };
        stats.note_error(describe);
        if fail_on_error {
            stats.failed.store(true, Ordering::Release);
            *error = Some(Error::Network {
                url: self.dest.url.clone(),
                message: format!("cannot send ({:?}): {}", self.kind, describe()),
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
        match send_once(dest, datagram) {
            Ok(()) => return Ok(()),
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

/// One `send`/`sendto` of one datagram.
fn send_once(dest: &Destination, datagram: &[u8]) -> io::Result<()> {
    let n = if dest.connected {
        dest.socket.send(datagram)
    } else {
        dest.socket.send_to(datagram, &dest.target)
    }?;
    if n == datagram.len() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "sent {n} of {} bytes",
            datagram.len()
        )))
    }
}

/// [`SendMany`] with one `sendmmsg`.
#[cfg(target_os = "linux")]
fn send_many(
    dest: &Destination,
    bytes: &[u8],
    ends: &[usize],
    range: Range<usize>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = range.len().min(BATCH);
    // SAFETY: iovec is plain data; all zeros is a valid (empty) value.
    let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    for (iov, i) in iovecs.iter_mut().zip(range.start..range.start + n) {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        let datagram = &bytes[start..ends[i]];
        // The kernel only reads through iov_base on send.
        iov.iov_base = datagram.as_ptr().cast_mut().cast();
        iov.iov_len = datagram.len();
    }
    // SAFETY: mmsghdr is plain data; all zeros is a valid value (null
    // pointers, no control data, no flags).
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let iov_base = iovecs.as_mut_ptr();
    for (k, header) in headers.iter_mut().take(n).enumerate() {
        let hdr = &mut header.msg_hdr;
        hdr.msg_iov = iov_base.wrapping_add(k);
        hdr.msg_iovlen = 1;
        if !dest.connected {
            hdr.msg_name = dest.target.as_ptr().cast_mut().cast();
            hdr.msg_namelen = dest.target.len();
        }
    }
    // `headers[..n]` are initialized; each points to one iovec in `iovecs`
    // over a live slice of `bytes`, and to `dest.target` when unconnected.
    // SAFETY: all of these outlive the call, the kernel writes only each
    // header's `msg_len`, and the fd is the open socket `dest` owns.
    let sent = unsafe {
        libc::sendmmsg(
            dest.socket.as_raw_fd(),
            headers.as_mut_ptr(),
            n as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// [`SendMany`] without `sendmmsg`: one datagram per call (unused while
/// [`BATCHING`] is off).
#[cfg(not(target_os = "linux"))]
fn send_many(
    dest: &Destination,
    bytes: &[u8],
    ends: &[usize],
    range: Range<usize>,
) -> io::Result<usize> {
    let start = if range.start == 0 {
        0
    } else {
        ends[range.start - 1]
    };
    send_once(dest, &bytes[start..ends[range.start]]).map(|()| 1)
}

/// Whether a send that would block stops waiting: at a stop request, and
/// at once under [`LagPolicy::Drop`] (the datagram is not sent).
fn give_up(waiter: Waiter<'_>) -> bool {
    waiter.lag() == LagPolicy::Drop || waiter.stop_requested()
}

impl Sink for UdpSink {
    fn deliver(&mut self, record: &Record, delivery: Delivery, waiter: Waiter<'_>) {
        // No deadline at infinite speed: batch. Otherwise timing comes first.
        let batch = BATCHING && delivery.deadline_ns.is_none();
        self.deliver_record(record, delivery, batch, &|| give_up(waiter));
    }

    fn flush(&mut self, waiter: Waiter<'_>) {
        self.flush_queued(&|| give_up(waiter));
    }

    fn finish(&mut self, _run: u64, _outcome: &Outcome) {
        self.flush_queued(&|| false);
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
        let mut sink = UdpSink::new(opts.clone(), &streams()).unwrap();
        let mut port = |s: u32, t: &str| sink.route(s, t).map(|a| a.port());
        assert_eq!(port(0, ""), Some(9002));
        assert_eq!(port(0, "x"), Some(9004));
        assert_eq!(port(1, "x"), Some(9003));
        assert_eq!(port(1, ""), Some(9001));
        assert_eq!(port(7, "x"), Some(9003));
        assert_eq!(port(7, "y"), Some(9001));
        // Duplicate addresses share one socket.
        assert_eq!(sink.destinations().len(), 4);

        // Streams defined after the sink was made (a source read from JS)
        // are routed by their types as soon as they appear.
        let table = Arc::new(StreamTable::default());
        let mut late = UdpSink::new(opts, &[])
            .unwrap()
            .with_stream_table(table.clone());
        assert_eq!(
            late.route(0, "").map(|a| a.port()),
            Some(9001),
            "unknown: default"
        );
        assert_eq!(table.define(Some("B")), 0);
        assert_eq!(table.define(Some("A")), 1);
        assert_eq!(table.define(Some("B")), 0, "defined once");
        assert_eq!(late.route(1, "x").map(|a| a.port()), Some(9004));
        assert_eq!(late.route(1, "").map(|a| a.port()), Some(9002));
        assert_eq!(late.route(0, "").map(|a| a.port()), Some(9001));
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
            run: 0,
            deadline_ns: Some(now_ns()),
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

    // ---- batching at infinite speed, against a stand-in for the kernel ----

    use std::cell::RefCell;
    use std::collections::HashSet;

    /// A datagram containing this byte fails at every attempt (as EMSGSIZE).
    const FAIL_ALWAYS: u8 = 0xee;
    /// A datagram containing this byte fails at its first attempt only (as an
    /// ICMP error reported once: ECONNREFUSED).
    const FAIL_ONCE: u8 = 0xef;

    thread_local! {
        /// (destination port, datagram) in the order "sent".
        static SENT: RefCell<Vec<(u16, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
        /// Datagrams per call.
        static CALLS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        static FAILED_ONCE: RefCell<HashSet<Vec<u8>>> = RefCell::new(HashSet::new());
    }

    /// `sendmmsg` as the kernel does it: datagrams in order up to the first
    /// failure, whose error is reported only if it is the first datagram.
    fn fake_send_many(
        dest: &Destination,
        bytes: &[u8],
        ends: &[usize],
        range: Range<usize>,
    ) -> io::Result<usize> {
        let n = range.len().min(BATCH);
        CALLS.with(|c| c.borrow_mut().push(n));
        for (k, i) in (range.start..range.start + n).enumerate() {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let datagram = &bytes[start..ends[i]];
            let errno = if datagram.contains(&FAIL_ALWAYS) {
                Some(libc::EMSGSIZE)
            } else if datagram.contains(&FAIL_ONCE)
                && FAILED_ONCE.with(|f| f.borrow_mut().insert(datagram.to_vec()))
            {
                Some(libc::ECONNREFUSED)
            } else {
                None
            };
            if let Some(errno) = errno {
                return if k == 0 {
                    Err(io::Error::from_raw_os_error(errno))
                } else {
                    Ok(k)
                };
            }
            SENT.with(|s| s.borrow_mut().push((dest.addr.port(), datagram.to_vec())));
        }
        Ok(n)
    }

    fn take_sent() -> Vec<(u16, Vec<u8>)> {
        SENT.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    fn take_calls() -> Vec<usize> {
        CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    const INFINITE: Delivery = Delivery {
        run: 0,
        deadline_ns: None,
        lateness_ns: 0,
    };

    /// A sink on the fake kernel: stream 0 ("A") to port 9001, stream 1
    /// ("B") to port 9002.
    fn fake_sink(fail_on_error: bool, mtu: usize) -> UdpSink {
        let route = |t: &str, port: u16| Route {
            message_type: Some(t.into()),
            topic: None,
            destination: format!("udp://127.0.0.1:{port}"),
        };
        let mut sink = UdpSink::new(
            UdpSinkOptions {
                routes: vec![route("A", 9001), route("B", 9002)],
                fail_on_error,
                wire: WireOptions {
                    mtu,
                    ..WireOptions::default()
                },
                ..UdpSinkOptions::default()
            },
            &streams(),
        )
        .unwrap();
        sink.send_many = fake_send_many;
        take_sent();
        take_calls();
        sink
    }

    /// Record `i` of stream 0: a msgpack uint16, distinct per `i`, whose
    /// bytes are never a marker.
    fn numbered(i: usize) -> Record {
        Record {
            time_ns: i as i64,
            stream: 0,
            topic: "t".into(),
            payload: vec![0xcd, (i / 200) as u8, (i % 200) as u8],
        }
    }

    /// A bin payload of `n` bytes spanning several datagrams at a small MTU,
    /// `marker` as its last byte.
    fn long(i: usize, n: usize, marker: u8) -> Record {
        let mut payload = vec![0xc5, (n >> 8) as u8, n as u8];
        payload.extend((0..n).map(|k| (k % 100) as u8));
        *payload.last_mut().unwrap() = marker;
        Record {
            payload,
            ..numbered(i)
        }
    }

    fn encoded(mtu: usize, records: &[Record]) -> Vec<Vec<u8>> {
        let mut encoder = Encoder::new(WireOptions {
            mtu,
            ..WireOptions::default()
        })
        .unwrap();
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

    fn deliver_all(sink: &mut UdpSink, records: &[Record]) {
        for r in records {
            sink.deliver_record(r, INFINITE, true, &|| false);
        }
    }

    #[test]
    fn batches_send_every_datagram_in_order() {
        let mtu = 64;
        let mut sink = fake_sink(false, mtu);
        let n = 2 * BATCH + 22;
        let mut records: Vec<Record> = (0..n).map(numbered).collect();
        records[70] = long(70, 500, 0x42);
        deliver_all(&mut sink, &records);
        // Full batches went out on their own; the rest waits for a flush.
        assert!(sink.queued > 0);
        let sent_before_flush = take_sent().len();
        assert!(sent_before_flush >= BATCH, "{sent_before_flush}");
        sink.flush_queued(&|| false);
        assert_eq!(sink.queued, 0);
        assert_eq!(
            sent_before_flush + take_sent().len(),
            encoded(mtu, &records).len()
        );
        let calls = take_calls();
        assert!(calls.iter().all(|&n| n <= BATCH));
        let expected = encoded(mtu, &records);
        let total: usize = calls.iter().sum();
        assert_eq!(total, expected.len());
        assert!(calls.len() <= expected.len() / BATCH + 2, "{calls:?}");
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records, s.records_sent, s.fragmented, s.send_failures),
            (n as u64, n as u64, 1, 0)
        );
        assert_eq!(s.datagrams as usize, expected.len());
        assert_eq!(
            s.bytes as usize,
            expected.iter().map(Vec::len).sum::<usize>()
        );
        assert_eq!(s.lateness.count, 0);

        // The same records again: the buffers are reused, and the datagrams
        // are exactly the encoder's, in order.
        deliver_all(&mut sink, &records);
        sink.flush_queued(&|| false);
        let sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_failure_inside_a_batch_is_counted_like_a_single_send() {
        let mtu = 64;
        let mut sink = fake_sink(false, mtu);
        let n = BATCH + 36;
        let mut records: Vec<Record> = (0..n).map(numbered).collect();
        // Fails inside the first call: the kernel reports a short count.
        records[10].payload = vec![0xcc, FAIL_ALWAYS];
        // A fragmented record whose last fragment fails: its first ones are
        // sent and counted, as one send at a time would.
        records[30] = long(30, 300, FAIL_ALWAYS);
        // Fails at the start of a call: the kernel reports its error.
        records[40].payload = vec![0xcc, FAIL_ALWAYS];
        deliver_all(&mut sink, &records);
        sink.flush_queued(&|| false);
        let s = sink.stats().snapshot();
        assert_eq!((s.too_big, s.send_failures), (3, 3));
        assert_eq!((s.records_sent, s.fragmented), (n as u64 - 3, 0));
        assert!(!s.failed && sink.take_error().is_none());
        assert!(s
            .last_error
            .unwrap()
            .contains("record at 0.000000 s on topic 't'"));
        let fragments = encoded(mtu, &records[30..31]);
        let expected: Vec<Vec<u8>> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| ![10, 30, 40].contains(i))
            .flat_map(|(_, r)| encoded(mtu, std::slice::from_ref(r)))
            .collect();
        let sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
        // The failed record's fragments before the failing one went out,
        // after record 29 and before 31.
        let at = sent.iter().position(|d| *d == fragments[0]).unwrap();
        let sent_fragments = fragments.len() - 1;
        assert_eq!(sent[at..at + sent_fragments], fragments[..sent_fragments]);
        let mut without: Vec<Vec<u8>> = sent.clone();
        without.drain(at..at + sent_fragments);
        assert_eq!(without, expected);
        assert_eq!(s.datagrams as usize, sent.len());
        assert_eq!(s.bytes as usize, sent.iter().map(Vec::len).sum::<usize>());
        // After the short count, that call's other datagrams went one per
        // call (each reports its own error); later calls are full again.
        let calls = take_calls();
        assert_eq!(calls[0], BATCH);
        assert!(calls[1..BATCH - 10].iter().all(|&n| n == 1), "{calls:?}");
        assert!(calls.iter().filter(|&&n| n > 1).count() >= 2, "{calls:?}");
    }

    #[test]
    fn an_error_reported_once_is_counted_at_the_start_of_a_call() {
        let mut sink = fake_sink(false, 1000);
        let mut records: Vec<Record> = (0..10).map(numbered).collect();
        records[0].payload = vec![0xcc, FAIL_ONCE];
        // Not first in its call: the kernel drops its error, and it is sent
        // again (the one difference from sending one at a time).
        records[5].payload = vec![0xcd, FAIL_ONCE, 5];
        deliver_all(&mut sink, &records);
        sink.flush_queued(&|| false);
        let s = sink.stats().snapshot();
        assert_eq!((s.refused, s.records_sent, s.datagrams), (1, 9, 9));
        // Record 0 failed alone; the call after it came back short at 5,
        // and 5..10 went one per call.
        assert_eq!(take_calls(), vec![10, 9, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn fail_on_error_stops_at_the_failing_record_across_destinations() {
        let mut sink = fake_sink(true, 1000);
        // Alternating destinations; record 7 (stream 1) fails.
        let mut records: Vec<Record> = (0..40)
            .map(|i| Record {
                stream: (i % 2) as u32,
                ..numbered(i)
            })
            .collect();
        records[7].payload = vec![0xcc, FAIL_ALWAYS];
        deliver_all(&mut sink, &records);
        assert!(!sink.has_failed(), "nothing sent yet");
        sink.flush_queued(&|| false);
        assert!(sink.has_failed());
        let expected: Vec<(u16, Vec<u8>)> = records[..7]
            .iter()
            .map(|r| {
                let port = 9001 + r.stream as u16;
                (port, encoded(1000, std::slice::from_ref(r)).remove(0))
            })
            .collect();
        assert_eq!(take_sent(), expected, "in delivery order, none after 7");
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records, s.records_sent, s.too_big, s.suppressed),
            (40, 7, 1, 32)
        );
        match sink.take_error() {
            Some(Error::Network { url, message }) => {
                assert_eq!(url, "udp://127.0.0.1:9002");
                assert!(message.contains("TooBig"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Later records are suppressed at once, not queued.
        deliver_all(&mut sink, &records[..3]);
        assert_eq!((sink.queued, sink.stats().snapshot().suppressed), (0, 35));
    }

    #[test]
    fn an_invalid_record_fails_after_the_records_before_it() {
        let mut sink = fake_sink(true, 1000);
        let mut records: Vec<Record> = (0..10).map(numbered).collect();
        records[4].payload = vec![0x92];
        deliver_all(&mut sink, &records);
        assert!(sink.has_failed());
        assert_eq!(take_sent().len(), 4);
        let s = sink.stats().snapshot();
        assert_eq!((s.records_sent, s.invalid, s.suppressed), (4, 1, 5));
        assert!(sink.take_error().is_some());
    }

    #[test]
    fn a_record_sent_at_once_goes_after_the_queued_ones() {
        // As when the speed drops from Infinity mid-run: the queue goes first.
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut sink = UdpSink::new(
            UdpSinkOptions {
                destination: Some(format!("udp://{}", receiver.local_addr().unwrap())),
                ..UdpSinkOptions::default()
            },
            &[],
        )
        .unwrap();
        let records: Vec<Record> = (0..6).map(numbered).collect();
        deliver_all(&mut sink, &records[..5]);
        assert_eq!(sink.queued, 5);
        let timed = Delivery {
            run: 0,
            deadline_ns: Some(now_ns()),
            lateness_ns: 0,
        };
        sink.deliver_record(&records[5], timed, false, &|| false);
        assert_eq!(sink.queued, 0);
        let mut buf = [0u8; 64];
        for expected in encoded(1000, &records) {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(buf[..n], expected);
        }
        let s = sink.stats().snapshot();
        assert_eq!((s.records_sent, s.datagrams, s.lateness.count), (6, 6, 1));
    }
}
