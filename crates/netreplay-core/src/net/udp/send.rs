//! Sending a record one datagram at a time, and counting a record that
//! could not be sent.
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
//! With `fail_on_error`, the first failure is kept for
//! [`UdpSink::take_error`](super::UdpSink::take_error) and later records are
//! not sent (counted as `suppressed`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::sink::Delivery;
use crate::format::wire::{EncodeError, Encoder};
use crate::net::udp::routing::Destination;
use crate::net::udp::stats::{FailureKind, UdpSinkStats};
use crate::sys::now_ns;
use crate::{Error, Record};

/// The sockets, and what every send counts into: shared by the per-record
/// path (here) and the batched one (batch.rs).
pub(super) struct Sender {
    /// Per destination index of the routing.
    pub(super) destinations: Vec<Destination>,
    pub(super) stats: Arc<UdpSinkStats>,
    pub(super) send_timeout: Duration,
    pub(super) fail_on_error: bool,
    /// Under `fail_on_error`: the failure that stopped the sink, until taken.
    pub(super) error: Option<Error>,
}

impl Sender {
    /// Send a record now, one datagram at a time.
    pub(super) fn send_now(
        &mut self,
        encoder: &mut Encoder,
        index: usize,
        record: &Record,
        delivery: Delivery,
        stop: &dyn Fn() -> bool,
    ) {
        let Sender {
            destinations,
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
}

/// A record that could not be sent.
pub(super) struct Failure<'a> {
    pub(super) dest: &'a Destination,
    pub(super) time_ns: i64,
    pub(super) topic: &'a str,
    pub(super) kind: FailureKind,
    pub(super) reason: String,
}

impl Failure<'_> {
    /// Count it; under `fail_on_error`, stop the sink with it.
    pub(super) fn count(
        self,
        stats: &UdpSinkStats,
        fail_on_error: bool,
        error: &mut Option<Error>,
    ) {
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
pub(super) fn send_once(dest: &Destination, datagram: &[u8]) -> io::Result<()> {
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
