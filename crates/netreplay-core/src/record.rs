//! The unit that flows through the engine.

use std::path::PathBuf;
use std::sync::Arc;

/// The range of log times: ±9·10⁹ s (≈ 285 years) of elapsed time. The
/// reader accepts exactly this range and the writer writes only this range,
/// so every log written can be read back; it also keeps the difference of
/// any two times within i64 nanoseconds' reach of the deadline maths.
pub const MAX_TIME_NS: i64 = 9_000_000_000 * 1_000_000_000;

/// Whether `ns` is a log time ([`MAX_TIME_NS`]).
pub fn is_log_time(ns: i64) -> bool {
    (-MAX_TIME_NS..=MAX_TIME_NS).contains(&ns)
}

/// Seconds given by a user to a log time in nanoseconds; an error naming
/// `name` and the value when it is not finite or out of [`MAX_TIME_NS`].
pub fn log_time_from_seconds(name: &'static str, seconds: f64) -> crate::Result<i64> {
    if !seconds.is_finite() || seconds.abs() > (MAX_TIME_NS / 1_000_000_000) as f64 {
        return Err(not_a_log_time(name, seconds));
    }
    Ok((seconds * 1e9).round() as i64)
}

/// The error for `seconds` given as `name`, out of the range of log times.
pub(crate) fn not_a_log_time(name: &'static str, seconds: f64) -> crate::Error {
    let limit = (MAX_TIME_NS / 1_000_000_000) as f64;
    crate::Error::invalid(
        name,
        format!("must be a finite number of seconds within ±{limit:e}, got {seconds}"),
    )
}

/// One logged message. `payload` holds the logged bytes untouched (msgpack for MCL).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Elapsed time as logged, in integer nanoseconds.
    pub time_ns: i64,
    /// Index of the stream in the source's [`StreamInfo`] table.
    pub stream: u32,
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
}

impl Record {
    /// Bytes this record holds on the heap; the ring's byte bound counts
    /// this. The payload's capacity, not its length: a reused buffer may be
    /// larger than the payload it holds.
    pub fn heap_size(&self) -> usize {
        self.payload.capacity() + self.topic.len()
    }
}

/// The most spare payload buffers a thread keeps.
pub const SPARE_PAYLOADS: usize = 256;
/// The largest buffer worth keeping: past it, an allocation costs little
/// beside filling the buffer, and keeping it would hold its memory idle.
pub const MAX_SPARE_CAPACITY: usize = 64 << 10;

std::thread_local! {
    /// Payload buffers the consumer gave back, for the readers on this
    /// thread (a producer's, or the one pushing a JS reader's records) to
    /// fill again: a warm replay then allocates nothing per record. Empty
    /// on every other thread.
    static SPARES: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer for a payload of `len` bytes: a spare one when this
/// thread has one, else a new one. Readers make every payload with it.
pub fn payload_buffer(len: usize) -> Vec<u8> {
    match SPARES.with_borrow_mut(Vec::pop) {
        Some(mut spare) => {
            spare.clear();
            if spare.capacity() < len && len <= MAX_SPARE_CAPACITY {
                // Grown to the next power of two: the spares of payloads
                // of varied sizes converge on sizes that fit the next one
                // instead of regrowing each time. A new buffer is exact, so
                // payloads of one size are counted at their size.
                spare.reserve_exact(len.next_power_of_two());
            } else {
                spare.reserve_exact(len);
            }
            spare
        }
        None => Vec::with_capacity(len),
    }
}

/// Whether this thread has no spare payload buffer left.
pub fn needs_spare_payloads() -> bool {
    SPARES.with_borrow(Vec::is_empty)
}

/// Keep the buffers `next` gives as this thread's spares, up to
/// [`SPARE_PAYLOADS`].
pub fn keep_spare_payloads(mut next: impl FnMut() -> Option<Vec<u8>>) {
    SPARES.with_borrow_mut(|spares| {
        spares.reserve_exact(SPARE_PAYLOADS.saturating_sub(spares.len()));
        while spares.len() < SPARE_PAYLOADS {
            match next() {
                Some(spare) => spares.push(spare),
                None => break,
            }
        }
    });
}

/// Drop this thread's spares (a producer that stops gives their memory back).
pub fn drop_spare_payloads() {
    SPARES.with_borrow_mut(|spares| *spares = Vec::new());
}

/// The message types of a source whose streams appear as it is read (a
/// reader written in JS): the producer defines each stream before its first
/// record is pushed; sinks that route by type look new ones up.
#[derive(Debug, Default)]
pub struct StreamTable(std::sync::Mutex<Vec<Option<String>>>);

impl StreamTable {
    /// The index of the stream of `message_type`, defined now if new.
    pub fn define(&self, message_type: Option<&str>) -> u32 {
        let mut types = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = types.iter().position(|t| t.as_deref() == message_type) {
            return i as u32;
        }
        types.push(message_type.map(str::to_owned));
        (types.len() - 1) as u32
    }

    /// The types of the streams from index `from` on.
    pub fn types_from(&self, from: usize) -> Vec<Option<String>> {
        let types = self.0.lock().unwrap_or_else(|p| p.into_inner());
        types.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }
}

/// One stream of a source: a file or split set holding one message type
/// (MCL), or one channel of an MCAP file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo {
    /// Message type from the header (`>>> Type`), or the MCAP channel's
    /// schema name; `None` for raw data, no header, or a schemaless channel.
    pub message_type: Option<String>,
    /// The files of the stream, in read order.
    pub files: Vec<PathBuf>,
    /// How the payloads are encoded: `None` for MCL (msgpack), else the MCAP
    /// channel's message encoding (`msgpack`, `json`, `cdr`, `protobuf`, ...),
    /// or `bytes` for a capture's datagrams.
    pub encoding: Option<String>,
    /// The MCAP channel's schema; `None` for MCL and schemaless channels.
    pub schema: Option<Arc<Schema>>,
    /// The absolute time (ns; for MCAP the epoch ns of the first message)
    /// that elapsed time 0 stands for: a record was logged at
    /// `time_base_ns + time_ns`. For a capture, its first frame's epoch ns;
    /// 0 for MCL, whose times are elapsed only.
    pub time_base_ns: u64,
}

/// An MCAP schema, as the file has it: users decode payloads of encodings
/// netreplay does not (cdr, protobuf, ros1, ...) with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub name: String,
    /// `ros2msg`, `protobuf`, `jsonschema`, ... (empty for none).
    pub encoding: String,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_buffers_reuse_this_threads_spares() {
        // A thread of its own: its spares are its own.
        std::thread::spawn(|| {
            assert!(needs_spare_payloads());
            let fresh = payload_buffer(100);
            assert!(fresh.is_empty() && fresh.capacity() >= 100);
            let mut spare = Vec::with_capacity(64);
            spare.extend_from_slice(b"old bytes");
            let address = spare.as_ptr();
            let mut given = Some(spare);
            keep_spare_payloads(|| given.take());
            assert!(!needs_spare_payloads());
            let reused = payload_buffer(40);
            assert_eq!(reused.as_ptr(), address, "the spare, not a new buffer");
            assert!(reused.is_empty(), "cleared");
            assert!(needs_spare_payloads());
            // A spare too small for the payload grows to fit it.
            let mut given = Some(Vec::with_capacity(8));
            keep_spare_payloads(|| given.take());
            assert!(payload_buffer(1000).capacity() >= 1000);
            let mut given = Some(Vec::with_capacity(8));
            keep_spare_payloads(|| given.take());
            drop_spare_payloads();
            assert!(needs_spare_payloads());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn log_times_have_one_range() {
        assert!(is_log_time(MAX_TIME_NS) && is_log_time(-MAX_TIME_NS) && is_log_time(0));
        assert!(!is_log_time(MAX_TIME_NS + 1) && !is_log_time(i64::MIN));
        assert_eq!(log_time_from_seconds("t", 9e9).unwrap(), MAX_TIME_NS);
        assert_eq!(log_time_from_seconds("t", -1.5).unwrap(), -1_500_000_000);
        for bad in [1e300, -9.000001e9, f64::NAN, f64::INFINITY] {
            let err = log_time_from_seconds("elapsedTime", bad).unwrap_err();
            assert!(err.to_string().contains("'elapsedTime'"), "{err}");
        }
    }
}
