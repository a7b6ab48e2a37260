//! Running lateness statistics, written by one thread and read by any.
//!
//! A log-linear histogram (32 sub-buckets per power of two: ≤ 3% error) of
//! lock-free counters: the scheduler thread is the only writer, so it uses
//! plain loads and stores, never a read-modify-write or a lock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub use crate::counter::Counter;
use crate::engine::clock::Anchor;

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB;

fn bucket_of(value: u64) -> usize {
    if value < (2 * SUB) as u64 {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS + 1
    let shift = exp - SUB_BITS;
    let mantissa = (value >> shift) as usize; // in [SUB, 2*SUB)
    shift as usize * SUB + mantissa
}

/// Lower bound of a bucket's range, and its width.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < 2 * SUB {
        return (index as u64, 1);
    }
    let shift = (index / SUB - 1) as u32;
    let mantissa = (index % SUB + SUB) as u64;
    (mantissa << shift, 1 << shift)
}

/// Histogram of non-negative nanosecond values.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    max: AtomicI64,
    sum: AtomicI64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            max: AtomicI64::new(0),
            sum: AtomicI64::new(0),
        }
    }
}

/// A summary of a histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Histogram {
    /// Record one value. Single writer only: concurrent writers lose counts.
    pub fn record(&self, value_ns: i64) {
        let v = value_ns.max(0);
        let b = &self.counts[bucket_of(v as u64)];
        b.store(b.load(Relaxed) + 1, Relaxed);
        self.total.store(self.total.load(Relaxed) + 1, Relaxed);
        self.sum
            .store(self.sum.load(Relaxed).saturating_add(v), Relaxed);
        if v > self.max.load(Relaxed) {
            self.max.store(v, Relaxed);
        }
    }

    pub fn clear(&self) {
        for c in self.counts.iter() {
            c.store(0, Relaxed);
        }
        self.total.store(0, Relaxed);
        self.max.store(0, Relaxed);
        self.sum.store(0, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// The value below which a fraction `q` of the recorded values fall
    /// (bucket midpoint, capped at the maximum seen).
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Relaxed);
            if seen >= rank {
                let (low, width) = bucket_range(i);
                let mid = low as f64 + (width as f64 - 1.0) / 2.0;
                return mid.min(self.max.load(Relaxed) as f64);
            }
        }
        self.max.load(Relaxed) as f64
    }

    pub fn summary(&self) -> Summary {
        let count = self.count();
        Summary {
            count,
            mean: if count == 0 {
                0.0
            } else {
                self.sum.load(Relaxed) as f64 / count as f64
            },
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max.load(Relaxed) as f64,
        }
    }
}

/// What a scheduler reports about a replay.
#[derive(Default)]
pub struct ReplayStats {
    /// Records handed to the sinks.
    pub delivered: Counter,
    /// Records whose deadline had passed when the scheduler reached them.
    pub late: Counter,
    /// Handover lateness: actual − scheduled time, per record.
    pub lateness: Histogram,
    /// The anchor in force, so that callers can compute any record's
    /// deadline themselves (timing tests, the bench harness). Written only
    /// when the scheduler (re)anchors — a run's first record, a resume, a
    /// speed change — so a lock costs nothing on the per-record path.
    anchor: Mutex<Option<Anchor>>,
    /// Where the playback is, for progress reports.
    pub position: Position,
    /// The scheduler's spin margin now (ns): how long before a deadline its
    /// waits stop sleeping (learned, unless fixed by an option).
    pub spin_margin_ns: AtomicI64,
    /// Whether the kernel gave the scheduler thread its short slice
    /// ([`crate::sys::set_timing_slice`]) in the last run.
    pub timing_slice: std::sync::atomic::AtomicBool,
    /// Whether the scheduler thread waits in the real-time class
    /// ([`crate::engine::Realtime`]) in this run, or did at the end of the last.
    pub realtime: std::sync::atomic::AtomicBool,
}

/// Where a scheduler is on its timeline, published for progress reports
/// (plain stores by the scheduler thread; any thread reads).
#[derive(Default)]
pub struct Position {
    /// Log time and timeline time of the last record delivered (valid once
    /// `delivered` is set).
    pub log_ns: AtomicI64,
    pub tau_ns: AtomicI64,
    /// Its reported time (continuous across loops with continuous time).
    pub reported_ns: AtomicI64,
    pub delivered: std::sync::atomic::AtomicBool,
    /// The pass playing, counting from 0.
    pub pass: AtomicU64,
    /// Waiting out a delay or a start time before a pass's first record.
    pub delayed: std::sync::atomic::AtomicBool,
    /// Lateness of the last record delivered.
    pub lag_ns: AtomicI64,
    /// The virtual clock's reading (virtual time only).
    pub virtual_now_ns: AtomicI64,
}

impl Position {
    pub fn clear(&self) {
        self.delivered.store(false, Relaxed);
        self.pass.store(0, Relaxed);
        self.delayed.store(false, Relaxed);
        self.lag_ns.store(0, Relaxed);
    }

    /// A record was delivered.
    pub(crate) fn delivered(&self, log_ns: i64, tau_ns: i64, reported_ns: i64, lag_ns: i64) {
        self.log_ns.store(log_ns, Relaxed);
        self.tau_ns.store(tau_ns, Relaxed);
        self.reported_ns.store(reported_ns, Relaxed);
        self.lag_ns.store(lag_ns, Relaxed);
        self.delivered.store(true, Relaxed);
    }

    /// The log, timeline and reported times of the last record delivered.
    pub fn last(&self) -> Option<(i64, i64, i64)> {
        self.delivered.load(Relaxed).then(|| {
            (
                self.log_ns.load(Relaxed),
                self.tau_ns.load(Relaxed),
                self.reported_ns.load(Relaxed),
            )
        })
    }
}

impl ReplayStats {
    pub fn clear(&self) {
        self.delivered.clear();
        self.late.clear();
        self.lateness.clear();
        self.set_anchor(None);
        self.position.clear();
    }

    pub fn set_anchor(&self, anchor: Option<Anchor>) {
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) = anchor;
    }

    /// The log time `log_ns` plays at `wall_ns` (CLOCK_MONOTONIC); None
    /// before the first record of a replay, or at infinite speed.
    pub fn anchor(&self) -> Option<Anchor> {
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the engine counts for each sink, readable from any thread.
#[derive(Default)]
pub struct SinkStats {
    /// Records this sink dropped under [`LagPolicy::Drop`](crate::engine::LagPolicy).
    pub dropped: Counter,
    /// Lateness where the sink hands records on, when it measures it (the
    /// JS sink: when its callback receives a batch). One writer.
    pub lateness: Histogram,
}

impl SinkStats {
    pub fn clear(&self) {
        self.dropped.clear();
        self.lateness.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 4, i64::MAX as u64]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "v={v} b={b}");
            let (low, width) = bucket_range(b);
            assert!(low <= v && v - low < width, "v={v} low={low} width={width}");
            last = b;
        }
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 1000); // 1 µs .. 1 ms
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500_000.0).abs() / 500_000.0 < 0.03, "{s:?}");
        assert!((s.p99 - 990_000.0).abs() / 990_000.0 < 0.03, "{s:?}");
        assert_eq!(s.max, 1_000_000.0);
        assert!((s.mean - 500_500.0).abs() < 1.0);
        h.record(-5); // early counts as zero
        assert_eq!(h.quantile(0.0), 0.0);
        h.clear();
        assert_eq!(h.summary(), Summary::default());
    }
}
