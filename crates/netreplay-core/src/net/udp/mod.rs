//! `UdpSink`: sends records as MCL datagrams — or, `raw`, their payloads as
//! they are (a capture's) — from the scheduler thread.
//!
//! One concern per file: [`routing`] (where a record goes, one socket per
//! destination), [`address`] (where it goes by the address its topic names:
//! a capture's original destinations, or rewritten ones), [`send`] (one datagram at a time, waiting for room in a full
//! socket buffer, and what a failed record counts), [`batch`] (`sendmmsg`
//! batches at infinite speed), [`stats`] (the counts). This file holds the
//! sink itself: its options, and the choice per record between sending now
//! and queuing.

mod address;
mod batch;
mod routing;
mod send;
mod stats;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::control::Waiter;
use crate::engine::sink::{Delivery, Outcome, Sink};
use crate::format::wire::{Encoder, WireOptions};
use crate::net::endpoint::Interface;
use crate::net::udp::address::AddressRouting;
use crate::net::udp::batch::{Batches, BATCHING};
use crate::net::udp::routing::{Routing, SocketOptions};
use crate::net::udp::send::{send_once, OnFull, Sender};
use crate::record::StreamTable;
use crate::{Error, Record, Result, StreamInfo};

pub use address::Readdress;
pub use batch::{BATCH, BATCH_BYTES};
pub use routing::Route;
pub use stats::{FailureKind, UdpSinkSnapshot, UdpSinkStats};

/// MCL's `ALLOWED_MULTICAST_HOPS`.
pub const DEFAULT_HOP_LIMIT: u32 = 3;

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
    /// Send each payload as it is, one datagram (at most 65507 bytes), not
    /// as MCL datagrams: a capture's UDP payloads. `wire` does not apply.
    pub raw: bool,
    /// Route by the address each record's topic names (a capture's
    /// original destination): the map, then `destination`, then that
    /// address ([`address`]). Not with `routes`.
    pub readdress: Option<Readdress>,
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
            raw: false,
            readdress: None,
        }
    }
}

/// Sends each record as MCL datagrams; see the module documentation.
pub struct UdpSink {
    routing: Routing,
    /// With [`UdpSinkOptions::readdress`]: routing by topic address instead.
    by_address: Option<AddressRouting>,
    encoder: Encoder,
    sender: Sender,
    batches: Batches,
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
        if options.destination.is_none() && options.routes.is_empty() && options.readdress.is_none()
        {
            return Err(Error::invalid(
                "destination",
                "a UDP sink needs a destination or at least one route",
            ));
        }
        if options.readdress.is_some() && !options.routes.is_empty() {
            return Err(Error::invalid(
                "routes",
                "routes by type and topic and routing by the topics' addresses (a capture's destinations, 'map') exclude each other",
            ));
        }
        let interface = options
            .interface
            .as_deref()
            .map(Interface::parse)
            .transpose()?;
        let socket = SocketOptions {
            hop_limit: options.hop_limit,
            unicast_hops: options.unicast_hops,
            interface,
            multicast_loop: options.multicast_loop,
            send_buffer_bytes: options.send_buffer_bytes,
        };
        let (mut destinations, routing) = Routing::open(
            options.destination.as_deref(),
            &options.routes,
            streams,
            &socket,
        )?;
        let by_address = options
            .readdress
            .as_ref()
            .map(|r| {
                let default = options.destination.as_ref().map(|_| 0);
                AddressRouting::new(r, default, &mut destinations, socket.clone())
            })
            .transpose()?;
        let encoder = if options.raw {
            Encoder::raw()
        } else {
            Encoder::new(options.wire)?
        };
        Ok(UdpSink {
            batches: Batches::new(destinations.len()),
            routing,
            by_address,
            encoder,
            sender: Sender {
                destinations,
                stats: Arc::default(),
                send_timeout: options.send_timeout,
                fail_on_error: options.fail_on_error,
                error: None,
                send_one: send_once,
            },
        })
    }

    /// The statistics, shared: read them from any thread.
    pub fn stats(&self) -> &Arc<UdpSinkStats> {
        &self.sender.stats
    }

    /// The destinations, as (URL, resolved address), without duplicates.
    pub fn destinations(&self) -> Vec<(String, SocketAddr)> {
        self.sender
            .destinations
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
        self.route_index(stream, topic)
            .map(|i| self.sender.destinations[i].addr)
    }

    /// The destination index of a record, by type and topic or by the
    /// address its topic names.
    fn route_index(&mut self, stream: u32, topic: &str) -> Option<usize> {
        let Some(by_address) = &mut self.by_address else {
            return self.routing.route(stream, topic);
        };
        let batches = &mut self.batches;
        match by_address.route(topic, &mut self.sender.destinations, |_| {
            batches.add_destination()
        }) {
            Ok(index) => index,
            Err(e) => {
                self.sender.stats.note_error(|| e.to_string());
                None
            }
        }
    }

    /// Under `fail_on_error`: the failure that stopped the sink, once.
    pub fn take_error(&mut self) -> Option<Error> {
        self.sender.error.take()
    }

    /// Whether `fail_on_error` stopped the sink.
    pub fn has_failed(&self) -> bool {
        self.sender.stats.failed.load(Ordering::Acquire)
    }

    /// Send again after a `fail_on_error` stop.
    pub fn clear_failure(&mut self) {
        self.sender.error = None;
        self.sender.stats.failed.store(false, Ordering::Release);
    }

    /// Send one record now, outside a scheduler (never interrupted).
    pub fn send(&mut self, record: &Record, delivery: Delivery) {
        self.deliver_record(record, delivery, false, OnFull::Wait(None));
    }

    /// Send (or, with `batch`, queue) one record; `on_full` says whether
    /// to wait for room in a full socket buffer, or to drop.
    fn deliver_record(
        &mut self,
        record: &Record,
        delivery: Delivery,
        batch: bool,
        on_full: OnFull<'_>,
    ) {
        self.sender.stats.records.add(1);
        if self.sender.stats.failed.load(Ordering::Relaxed) {
            self.sender.stats.suppressed.add(1);
            return;
        }
        let Some(index) = self.route_index(record.stream, &record.topic) else {
            self.sender.stats.unrouted.add(1);
            return;
        };
        if batch && record.payload.len() <= BATCH_BYTES {
            self.batches.queue(
                &mut self.sender,
                &mut self.encoder,
                index,
                record,
                delivery.deadline_ns,
                on_full,
            );
            return;
        }
        // What was queued before goes first.
        self.flush_queued(on_full);
        if self.sender.stats.failed.load(Ordering::Relaxed) {
            self.sender.stats.suppressed.add(1);
            return;
        }
        self.sender
            .send_now(&mut self.encoder, index, record, delivery, on_full);
    }

    /// Send everything queued.
    fn flush_queued(&mut self, on_full: OnFull<'_>) {
        self.batches.flush(&mut self.sender, on_full);
    }
}

impl Sink for UdpSink {
    fn deliver(&mut self, record: &Record, delivery: Delivery, waiter: Waiter<'_>) {
        // No deadline at infinite speed: batch. A timed record goes at once,
        // unless it is part of a burst (records due together): one due with
        // the next is queued, and the last is queued and sends them all.
        let timed = delivery.deadline_ns.is_some();
        let ends_burst = timed && !delivery.more_due && self.batches.queued > 0;
        let batch = BATCHING && (!timed || delivery.more_due || ends_burst);
        self.deliver_record(record, delivery, batch, OnFull::of(waiter));
        if ends_burst {
            self.flush_queued(OnFull::of(waiter));
        }
    }

    fn flush(&mut self, waiter: Waiter<'_>) {
        self.flush_queued(OnFull::of(waiter));
    }

    fn finish(&mut self, _run: u64, _outcome: &Outcome) {
        // The scheduler flushed with the waiter just before: nothing is
        // queued here unless the sink is driven by hand.
        self.flush_queued(OnFull::Wait(None));
    }

    fn take_error(&mut self) -> Option<Error> {
        UdpSink::take_error(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::now_ns;
    use std::net::UdpSocket;
    use std::path::PathBuf;

    /// Streams 0 ("A") and 1 ("B").
    pub(super) fn streams() -> Vec<StreamInfo> {
        ["A", "B"]
            .iter()
            .map(|t| StreamInfo {
                message_type: Some(t.to_string()),
                files: vec![PathBuf::from(format!("{t}.log"))],
                ..StreamInfo::default()
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
            ..Delivery::default()
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
