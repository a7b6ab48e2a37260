//! What a [`UdpSink`](super::UdpSink) counts: records, datagrams, bytes, and
//! failures by kind. Send errors never stop the sink: they are counted here.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::engine::stats::{Histogram, Summary};
use crate::Counter;

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
    pub(super) fn of(err: &io::Error) -> FailureKind {
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

/// Statistics of a [`UdpSink`](super::UdpSink): written by the scheduler thread only,
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
    /// `fail_on_error` stopped the sink.
    pub(super) failed: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
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
    pub(super) fn counter(&self, kind: FailureKind) -> &Counter {
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

    pub(super) fn note_error(&self, text: impl FnOnce() -> String) {
        // Never block the scheduler on a reader: skip the note if it is busy.
        if let Ok(mut slot) = self.last_error.try_lock() {
            *slot = Some(text());
        }
    }
}
