//! Monotonic time and the deadline arithmetic of DESIGN.md.
//!
//! Times are integer nanoseconds on CLOCK_MONOTONIC — the clock behind
//! Node's `process.hrtime`, so JS can compare its own readings with ours.

/// A speed factor: finite and > 0, or infinite for "as fast as possible".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed(f64);

impl Speed {
    pub fn new(value: f64) -> crate::Result<Self> {
        if value.is_nan() || value <= 0.0 {
            return Err(crate::Error::invalid(
                "speed",
                format!("must be a number > 0 or Infinity, got {value}"),
            ));
        }
        Ok(Speed(value))
    }
    pub fn get(self) -> f64 {
        self.0
    }
    pub fn is_max(self) -> bool {
        self.0.is_infinite()
    }
}

/// Ties logged time to wall time: the log instant `log_ns` plays at `wall_ns`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub wall_ns: i64,
    pub log_ns: i64,
}

pub use crate::sys::now_ns;

/// `value` clamped into the range of deadlines and logical times.
fn saturate(value: i128) -> i64 {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// `ns · factor` (or `ns / factor`), rounded, as i128; an infinite or
/// out-of-range product saturates (the caller clamps it into i64).
fn scale(ns: i128, factor: f64, divide: bool) -> i128 {
    let scaled = if divide {
        ns as f64 / factor
    } else {
        ns as f64 * factor
    };
    // `as` saturates at the i128 bounds, and infinities go to them.
    scaled.round() as i128
}

impl Anchor {
    /// The absolute deadline of a record logged at `t`:
    /// `wall + (t − log) / speed`; `None` (always due) at infinite speed.
    ///
    /// The maths is done in i128 and saturates: a record due beyond the
    /// clock's range (≈ 292 years of uptime — a tiny speed, or a log spanning
    /// centuries) gets `i64::MAX`, i.e. it is never due in practice, and
    /// pause, stop, seek and speed changes still act at once; one due before
    /// the range gets the earliest deadline and goes out at once, late.
    pub fn deadline(&self, t: i64, speed: Speed) -> Option<i64> {
        if speed.is_max() {
            return None;
        }
        let delta = i128::from(t) - i128::from(self.log_ns);
        let offset = if speed.0 == 1.0 {
            delta
        } else {
            scale(delta, speed.0, true)
        };
        Some(saturate(i128::from(self.wall_ns).saturating_add(offset)))
    }

    /// The log time that plays at wall time `now` (saturating, as [`Anchor::deadline`]).
    pub fn logical_at(&self, now: i64, speed: Speed) -> i64 {
        if speed.is_max() {
            return self.log_ns;
        }
        let elapsed = i128::from(now) - i128::from(self.wall_ns);
        // Exact at speed 1, as the deadline: through f64 a large elapsed
        // time would lose its low bits (found by fuzzing).
        let offset = if speed.0 == 1.0 {
            elapsed
        } else {
            scale(elapsed, speed.0, false)
        };
        saturate(i128::from(self.log_ns).saturating_add(offset))
    }
}

/// Waits up to this long are spun through, never slept. A sleep of any
/// length wakes late by tens of µs, and about one in a thousand by 0.5–4 ms
/// on a VM whose idle vCPU the host must reschedule (measured: README,
/// "Performance"); no spin shorter than the wait hides that. So high rates
/// keep the scheduler's core busy; low rates do not.
pub const BUSY_WAIT_NS: i64 = 1_500_000;
/// Bounds of the spin that ends a longer wait: at least the usual sleep
/// overshoot, and at most 4% of the wait, so long gaps cost little CPU.
const MIN_SPIN_NS: i64 = 250_000;
const MAX_SPIN_NS: i64 = 2_000_000;

/// How long before the deadline a wait of `wait_ns` stops sleeping and spins;
/// the whole wait when it is at most `busy_wait_ns`.
pub fn spin_window(wait_ns: i64, busy_wait_ns: i64) -> i64 {
    if wait_ns <= busy_wait_ns {
        wait_ns
    } else {
        (wait_ns / 25).clamp(MIN_SPIN_NS, MAX_SPIN_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_domain() {
        assert!(Speed::new(0.0).is_err());
        assert!(Speed::new(-1.0).is_err());
        assert!(Speed::new(f64::NAN).is_err());
        assert!(Speed::new(f64::INFINITY).unwrap().is_max());
        assert_eq!(Speed::new(2.5).unwrap().get(), 2.5);
    }

    #[test]
    fn deadlines_are_absolute() {
        let a = Anchor {
            wall_ns: 1_000,
            log_ns: 500,
        };
        let one = Speed::new(1.0).unwrap();
        let four = Speed::new(4.0).unwrap();
        assert_eq!(a.deadline(500, one), Some(1_000));
        assert_eq!(a.deadline(1_500, one), Some(2_000));
        assert_eq!(a.deadline(4_500, four), Some(2_000));
        assert_eq!(a.deadline(1_500, Speed::new(f64::INFINITY).unwrap()), None);
        // No drift: the millionth deadline is exact, not a sum of sleeps.
        assert_eq!(
            a.deadline(500 + 1_000_000 * 1_000_000, one),
            Some(1_000 + 1_000_000_000_000)
        );
    }

    #[test]
    fn logical_time_follows_the_speed() {
        let a = Anchor {
            wall_ns: 100,
            log_ns: 100,
        };
        let two = Speed::new(2.0).unwrap();
        assert_eq!(a.logical_at(150, two), 200);
        assert_eq!(a.deadline(200, two), Some(150));
    }

    #[test]
    fn huge_spans_saturate_instead_of_wrapping() {
        let one = Speed::new(1.0).unwrap();
        // A log from −9e9 s to 9e9 s: the second record is due in 570 years,
        // beyond the clock's range: never, not at once.
        let a = Anchor {
            wall_ns: 1_000,
            log_ns: -9_000_000_000_000_000_000,
        };
        assert_eq!(a.deadline(9_000_000_000_000_000_000, one), Some(i64::MAX));
        assert_eq!(
            a.deadline(i64::MAX, Speed::new(1.5).unwrap()),
            Some(i64::MAX)
        );
        // Far in the past: the earliest deadline.
        let b = Anchor {
            wall_ns: -1,
            log_ns: i64::MAX,
        };
        assert_eq!(b.deadline(i64::MIN, one), Some(i64::MIN));
        assert_eq!(
            b.deadline(i64::MIN, Speed::new(0.5).unwrap()),
            Some(i64::MIN)
        );
        assert_eq!(b.logical_at(i64::MIN, Speed::new(2.0).unwrap()), i64::MIN);
        assert_eq!(a.logical_at(i64::MAX, Speed::new(1e300).unwrap()), i64::MAX);
        // Exact at speed 1 however large (the fuzzer's case).
        let c = Anchor {
            wall_ns: 807,
            log_ns: -9_223_372_036_854_775_807,
        };
        assert_eq!(c.logical_at(-9_223_372_036_854_775_807, one), i64::MIN);
        assert_eq!(c.logical_at(1_000_000_807, one), -9_223_372_035_854_775_807);
    }

    #[test]
    fn tiny_speeds_put_the_next_record_out_of_reach() {
        let a = Anchor {
            wall_ns: 5_000,
            log_ns: 0,
        };
        // 10 ms of log at speed 1e-14 is 1e12 s away: saturated, not wrapped.
        let slow = Speed::new(1e-14).unwrap();
        assert_eq!(a.deadline(10_000_000, slow), Some(i64::MAX));
        assert_eq!(a.deadline(0, slow), Some(5_000));
        // The smallest positive speed still gives a defined answer.
        let least = Speed::new(f64::from_bits(1)).unwrap();
        assert_eq!(a.deadline(1, least), Some(i64::MAX));
        assert_eq!(a.deadline(-1, least), Some(i64::MIN));
        assert_eq!(a.logical_at(i64::MAX, least), 0);
    }

    #[test]
    fn deadlines_are_monotone_in_log_time() {
        let a = Anchor {
            wall_ns: 123,
            log_ns: -77,
        };
        for speed in [1e-14, 0.3, 1.0, 7.0, 1e12] {
            let speed = Speed::new(speed).unwrap();
            let times = [
                i64::MIN,
                -9_000_000_000_000_000_000,
                -1,
                0,
                1,
                1 << 40,
                i64::MAX,
            ];
            for w in times.windows(2) {
                assert!(a.deadline(w[0], speed) <= a.deadline(w[1], speed));
            }
        }
    }

    #[test]
    fn spin_window_spins_short_waits_and_little_of_long_ones() {
        let busy = BUSY_WAIT_NS;
        assert_eq!(spin_window(1_000_000, busy), 1_000_000);
        assert_eq!(spin_window(busy, busy), busy);
        assert_eq!(spin_window(busy + 1, busy), MIN_SPIN_NS);
        // A 10 ms gap spins 0.4 ms of it (4%); a long gap at most 2 ms.
        assert_eq!(spin_window(10_000_000, busy), 400_000);
        assert_eq!(spin_window(10_000_000_000, busy), MAX_SPIN_NS);
        // Busy waiting off: every wait sleeps first.
        assert_eq!(spin_window(1_000_000, 0), MIN_SPIN_NS);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
