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
//! Under [`LagPolicy::Drop`] a sink never waits: each send is made with
//! `MSG_DONTWAIT` (the socket stays blocking for the other policy), and a
//! record that finds no room (EAGAIN, ENOBUFS) is dropped and counted in the
//! sink's [`SinkStats`](crate::engine::SinkStats) `dropped` — not a failure,
//! not retried. A fragmented record whose later fragment finds no room is
//! dropped too, after its earlier fragments went out (a listener discards
//! the incomplete message at its reassembly timeout).
//!
//! With `fail_on_error`, the first failure is kept for
//! [`UdpSink::take_error`](super::UdpSink::take_error) and later records are
//! not sent (counted as `suppressed`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::control::{LagPolicy, Waiter};
use crate::engine::sink::Delivery;
use crate::format::wire::{EncodeError, Encoder};
use crate::net::udp::routing::Destination;
use crate::net::udp::stats::{FailureKind, UdpSinkStats};
use crate::sys::now_ns;
use crate::{Error, Record};

/// What a send does when the socket buffer is full.
#[derive(Clone, Copy)]
pub(super) enum OnFull<'a> {
    /// Wait for room, up to the send timeout; a stop request seen through
    /// the waiter (none outside a scheduler) cuts the wait short, and the
    /// record counts as a `would_block` failure.
    Wait(Option<Waiter<'a>>),
    /// Never wait: drop the record and count it through the waiter.
    Drop(Waiter<'a>),
}

impl<'a> OnFull<'a> {
    /// What the waiter's lag policy asks for.
    pub(super) fn of(waiter: Waiter<'a>) -> Self {
        match waiter.lag() {
            LagPolicy::Wait => OnFull::Wait(Some(waiter)),
            LagPolicy::Drop => OnFull::Drop(waiter),
        }
    }

    /// Whether a send that would block stops waiting (at once under Drop).
    fn give_up(self) -> bool {
        match self {
            OnFull::Wait(waiter) => waiter.is_some_and(|w| w.stop_requested()),
            OnFull::Drop(_) => true,
        }
    }

    /// Send flags: under Drop, the call itself must not block.
    pub(super) fn flags(self) -> libc::c_int {
        match self {
            OnFull::Wait(_) => 0,
            OnFull::Drop(_) => libc::MSG_DONTWAIT,
        }
    }

    /// Under Drop, a send that failed with `err` for want of room drops its
    /// record: counted, and true. False for any other case (a failure).
    pub(super) fn dropped(self, err: &io::Error) -> bool {
        match self {
            OnFull::Drop(waiter)
                if matches!(
                    FailureKind::of(err),
                    FailureKind::WouldBlock | FailureKind::NoBuffers
                ) =>
            {
                waiter.count_dropped(1);
                true
            }
            _ => false,
        }
    }

    /// The wait for room gives up (under Wait: at a stop request or after
    /// `timeout` since `since`).
    pub(super) fn stops_waiting(self, since: Instant, timeout: Duration) -> bool {
        self.give_up() || since.elapsed() >= timeout
    }
}

/// Sends one datagram with send flags: [`send_once`]. A function pointer so
/// unit tests can stand in for the kernel.
pub(super) type SendOne = fn(&Destination, &[u8], libc::c_int) -> io::Result<()>;

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
    pub(super) send_one: SendOne,
}

impl Sender {
    /// Send a record now, one datagram at a time.
    pub(super) fn send_now(
        &mut self,
        encoder: &mut Encoder,
        index: usize,
        record: &Record,
        delivery: Delivery,
        on_full: OnFull<'_>,
    ) {
        let Sender {
            destinations,
            stats,
            send_timeout,
            fail_on_error,
            error,
            send_one,
        } = self;
        let dest = &destinations[index];
        let result = encoder.encode(&record.topic, &record.payload, |datagram| {
            send_datagram(*send_one, dest, datagram, *send_timeout, on_full)?;
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
            Err(EncodeError::Emit(e)) if on_full.dropped(&e) => return,
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

/// Send one datagram, waiting (in slices, so a stop request is seen) while
/// the socket buffer is full, up to `timeout`; under Drop, not at all.
fn send_datagram(
    send_one: SendOne,
    dest: &Destination,
    datagram: &[u8],
    timeout: Duration,
    on_full: OnFull<'_>,
) -> io::Result<()> {
    let mut started: Option<Instant> = None;
    loop {
        match send_one(dest, datagram, on_full.flags()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if FailureKind::of(&e) == FailureKind::WouldBlock => {
                let since = *started.get_or_insert_with(Instant::now);
                if on_full.stops_waiting(since, timeout) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One `send`/`sendto` of one datagram, with `flags` (`MSG_*`).
pub(super) fn send_once(dest: &Destination, datagram: &[u8], flags: libc::c_int) -> io::Result<()> {
    let n = if dest.connected {
        dest.socket.send_with_flags(datagram, flags)
    } else {
        dest.socket
            .send_to_with_flags(datagram, &dest.target, flags)
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
