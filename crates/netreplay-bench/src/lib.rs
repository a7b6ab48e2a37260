//! netreplay-bench: measuring tools for the replay engine.
//!
//! The `rx` receiver records, for every UDP datagram, the kernel's software
//! receive timestamp converted to CLOCK_MONOTONIC nanoseconds, so a benchmark
//! can compare it with the monotonic send deadlines the engine scheduled.
//! Kernel timestamps exclude the receiver's own scheduling latency, which a
//! user-space clock reading after the receive call would add.

pub mod args;
pub mod blast;
pub mod clock;
#[cfg(target_os = "linux")]
mod rx;
#[cfg(unix)]
pub mod sum;
pub mod wake;

#[cfg(target_os = "linux")]
pub use rx::{Receiver, RxError};

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Bytes per record in the output file: u32 seq, u32 len, i64 rx_mono_ns (LE).
pub const RECORD_LEN: usize = 16;

/// Default requested SO_RCVBUF: big enough that a burst is not dropped while
/// the receiver is descheduled.
pub const DEFAULT_RCVBUF: usize = 64 << 20;

/// `seq` of a datagram too short to carry one.
pub const NO_SEQ: u32 = u32::MAX;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Last 4 bytes of the datagram as a big-endian u32, or [`NO_SEQ`].
    pub seq: u32,
    /// Datagram length in bytes.
    pub len: u32,
    /// Receive time in CLOCK_MONOTONIC nanoseconds.
    pub rx_ns: i64,
}

impl Arrival {
    pub fn to_le_bytes(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..8].copy_from_slice(&self.len.to_le_bytes());
        out[8..16].copy_from_slice(&self.rx_ns.to_le_bytes());
        out
    }

    pub fn from_le_bytes(bytes: &[u8; RECORD_LEN]) -> Self {
        let [s0, s1, s2, s3, l0, l1, l2, l3, t @ ..] = *bytes;
        Arrival {
            seq: u32::from_le_bytes([s0, s1, s2, s3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            rx_ns: i64::from_le_bytes(t),
        }
    }
}

/// The sequence number a sender put in the last 4 bytes of `datagram`.
pub fn seq_of(datagram: &[u8]) -> u32 {
    match datagram.last_chunk::<4>() {
        Some(tail) => u32::from_be_bytes(*tail),
        None => NO_SEQ,
    }
}

/// The output file's contents: the records back to back, in arrival order.
pub fn encode_records(arrivals: &[Arrival]) -> Vec<u8> {
    let mut out = Vec::with_capacity(arrivals.len() * RECORD_LEN);
    for arrival in arrivals {
        out.extend_from_slice(&arrival.to_le_bytes());
    }
    out
}

/// Parse an output file; `None` if its length is not a multiple of [`RECORD_LEN`].
pub fn decode_records(bytes: &[u8]) -> Option<Vec<Arrival>> {
    if bytes.len() % RECORD_LEN != 0 {
        return None;
    }
    let records = bytes.chunks_exact(RECORD_LEN);
    Some(
        records
            .map(|record| {
                let mut fixed = [0u8; RECORD_LEN];
                fixed.copy_from_slice(record);
                Arrival::from_le_bytes(&fixed)
            })
            .collect(),
    )
}

/// What the receiver binds to and when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxOptions {
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Stop after this many datagrams; 0 means no limit.
    pub expect: u64,
    /// Stop when nothing arrived for this long after the first datagram. Must be > 0.
    pub idle: Duration,
    /// Stop when nothing at all arrived for this long. Must be > 0.
    pub first_timeout: Duration,
    /// Requested receive buffer in bytes (at most `i32::MAX`).
    pub rcvbuf: usize,
}

impl Default for RxOptions {
    fn default() -> Self {
        RxOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            expect: 0,
            idle: Duration::from_millis(2000),
            first_timeout: Duration::from_millis(120_000),
            rcvbuf: DEFAULT_RCVBUF,
        }
    }
}

/// Totals of one receive run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxSummary {
    pub received: u64,
    /// Datagrams without a kernel timestamp, stamped after `recvmsg` instead.
    pub no_timestamp: u64,
    /// End minus start of (CLOCK_REALTIME − CLOCK_MONOTONIC), in ns.
    pub offset_drift_ns: i64,
    /// Widest mono–real–mono bracket of the two offset measurements: the
    /// uncertainty of the realtime→monotonic conversion.
    pub bracket_ns: i64,
}

impl RxSummary {
    /// The final stdout line of `rx`, without the newline.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"received\":{},\"noTimestamp\":{},\"offsetDriftNs\":{},\"bracketNs\":{}}}",
            self.received, self.no_timestamp, self.offset_drift_ns, self.bracket_ns
        )
    }
}

/// Result of `Receiver::receive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reception {
    /// In arrival order.
    pub arrivals: Vec<Arrival>,
    pub summary: RxSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_the_big_endian_tail() {
        assert_eq!(seq_of(&[9, 9, 0, 0, 1, 2]), 0x0000_0102);
        assert_eq!(seq_of(&[0xde, 0xad, 0xbe, 0xef]), 0xdead_beef);
        assert_eq!(seq_of(&[1, 2, 3]), NO_SEQ);
        assert_eq!(seq_of(&[]), NO_SEQ);
    }

    #[test]
    fn records_round_trip_little_endian() {
        let arrivals = [
            Arrival {
                seq: 1,
                len: 2,
                rx_ns: -3,
            },
            Arrival {
                seq: u32::MAX,
                len: 65_507,
                rx_ns: i64::MAX,
            },
        ];
        let bytes = encode_records(&arrivals);
        assert_eq!(bytes.len(), 32);
        assert_eq!(
            &bytes[0..16],
            &[1, 0, 0, 0, 2, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(decode_records(&bytes).as_deref(), Some(&arrivals[..]));
        assert_eq!(decode_records(&bytes[..20]), None);
    }

    #[test]
    fn summary_json() {
        let summary = RxSummary {
            received: 3,
            no_timestamp: 0,
            offset_drift_ns: -12,
            bracket_ns: 40,
        };
        assert_eq!(
            summary.to_json(),
            r#"{"received":3,"noTimestamp":0,"offsetDriftNs":-12,"bracketNs":40}"#
        );
    }
}
