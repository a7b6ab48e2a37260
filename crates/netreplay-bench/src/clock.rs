//! CLOCK_MONOTONIC readings and the CLOCK_REALTIME→CLOCK_MONOTONIC conversion.
//!
//! SO_TIMESTAMPNS stamps datagrams with CLOCK_REALTIME, but the engine's
//! deadlines are CLOCK_MONOTONIC; the two differ by an offset that NTP may
//! slew while a benchmark runs.

const NS_PER_SEC: i64 = 1_000_000_000;

/// Mono–real–mono reads per offset measurement; the narrowest one wins, so a
/// preemption in the middle of one read does not spoil the result.
const OFFSET_ROUNDS: usize = 20;

fn read_clock(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and the callers pass only
    // CLOCK_MONOTONIC and CLOCK_REALTIME, which always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * NS_PER_SEC + ts.tv_nsec
}

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn mono_ns() -> i64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on CLOCK_REALTIME (since the Unix epoch).
pub fn real_ns() -> i64 {
    read_clock(libc::CLOCK_REALTIME)
}

/// Nanoseconds of a `timespec`, e.g. a kernel timestamp.
pub fn timespec_ns(ts: &libc::timespec) -> i64 {
    ts.tv_sec * NS_PER_SEC + ts.tv_nsec
}

/// One measurement of CLOCK_REALTIME − CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetSample {
    /// Monotonic time of the measurement (midpoint of its bracket).
    pub mono_ns: i64,
    /// Realtime minus monotonic, in ns.
    pub offset_ns: i64,
    /// Width of the mono–mono bracket around the realtime read: the
    /// measurement's uncertainty.
    pub bracket_ns: i64,
}

/// One mono–real–mono read.
fn bracket_once() -> OffsetSample {
    let before = mono_ns();
    let real = real_ns();
    let after = mono_ns();
    let mid = before + (after - before) / 2;
    OffsetSample {
        mono_ns: mid,
        offset_ns: real - mid,
        bracket_ns: after - before,
    }
}

/// Measure the offset, keeping the narrowest of [`OFFSET_ROUNDS`] brackets.
pub fn measure_offset() -> OffsetSample {
    let mut best = bracket_once();
    for _ in 1..OFFSET_ROUNDS {
        let sample = bracket_once();
        if sample.bracket_ns < best.bracket_ns {
            best = sample;
        }
    }
    best
}

/// Realtime→monotonic conversion with the offset interpolated linearly
/// between two measurements, which follows an NTP slew during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealToMono {
    pub start: OffsetSample,
    pub end: OffsetSample,
}

impl RealToMono {
    /// The CLOCK_MONOTONIC time of CLOCK_REALTIME time `real_ns`. Times
    /// outside the two measurements use the nearer measurement's offset
    /// rather than extrapolating the drift.
    pub fn to_mono(&self, real_ns: i64) -> i64 {
        let (start, end) = (self.start, self.end);
        let span = i128::from(end.mono_ns) - i128::from(start.mono_ns);
        // The start offset locates the time well enough to pick the
        // interpolation weight: drift is microseconds at most over a run.
        let approx_mono = i128::from(real_ns) - i128::from(start.offset_ns);
        let offset = if span <= 0 || approx_mono <= i128::from(start.mono_ns) {
            i128::from(start.offset_ns)
        } else if approx_mono >= i128::from(end.mono_ns) {
            i128::from(end.offset_ns)
        } else {
            let drift = i128::from(end.offset_ns) - i128::from(start.offset_ns);
            let elapsed = approx_mono - i128::from(start.mono_ns);
            i128::from(start.offset_ns) + drift * elapsed / span
        };
        // Both terms are within i64 range and the result lies between two
        // valid conversions, so the narrowing cannot overflow in practice;
        // saturate rather than wrap if it ever did.
        let mono = i128::from(real_ns) - offset;
        mono.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mono_ns: i64, offset_ns: i64) -> OffsetSample {
        OffsetSample {
            mono_ns,
            offset_ns,
            bracket_ns: 0,
        }
    }

    #[test]
    fn offset_matches_the_clocks() {
        let sample = measure_offset();
        assert!(sample.bracket_ns >= 0);
        assert!(sample.bracket_ns < 1_000_000, "{sample:?}");
        let real = real_ns();
        let mono = mono_ns();
        assert!((real - mono - sample.offset_ns).abs() < 1_000_000);
    }

    #[test]
    fn conversion_interpolates_the_drift() {
        // Offset 1000 at mono 0, 1100 at mono 1000: +0.1 ns per ns.
        let conv = RealToMono {
            start: sample(0, 1000),
            end: sample(1000, 1100),
        };
        assert_eq!(conv.to_mono(1000), 0);
        assert_eq!(conv.to_mono(1500), 450);
        assert_eq!(conv.to_mono(2100), 1000);
        // Outside the run: the nearer offset, no extrapolation.
        assert_eq!(conv.to_mono(500), -500);
        assert_eq!(conv.to_mono(3000), 1900);
    }

    #[test]
    fn conversion_without_span_uses_the_start_offset() {
        let conv = RealToMono {
            start: sample(10, 5),
            end: sample(10, 7),
        };
        assert_eq!(conv.to_mono(100), 95);
    }
}
