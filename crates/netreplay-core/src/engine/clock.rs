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

/// Bounds of the learned spin margin. Below 5 µs the clock reads and the
/// futex return alone eat it; above 2 ms spinning costs more than any
/// sleep's lateness is worth, and an outlier must not make it grow further.
pub const MIN_SPIN_MARGIN_NS: i64 = 5_000;
pub const MAX_SPIN_MARGIN_NS: i64 = 2_000_000;
/// The margin a scheduler starts with: a sleep on a quiet machine wakes
/// within it nearly always (README, "Performance"), so the first waits are
/// on time; it converges down (or up) from there.
pub const INITIAL_SPIN_MARGIN_NS: i64 = 200_000;
/// The share of sleeps the margin is to cover.
const MARGIN_QUANTILE: f64 = 0.995;
/// Relative step of each update: a sleep that overshoots the margin grows it
/// by ×(1 + GAIN·q), one that does not shrinks it by ×(1 − GAIN·(1 − q)).
/// In equilibrium about 0.6% of sleeps overshoot (a running p99.4), and the
/// margin halves in about 280 sleeps once wake-ups get prompt again.
const MARGIN_GAIN: f64 = 0.5;

/// How long before a deadline a scheduler stops sleeping and spins: a
/// running high quantile of this thread's measured wake-up overshoot
/// (stochastic quantile tracking in log space: scale-free, O(1), robust to
/// one outlier, which moves it by one step whatever its size), bounded by
/// [`MIN_SPIN_MARGIN_NS`]..[`MAX_SPIN_MARGIN_NS`]; or a fixed margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpinMargin {
    ns: f64,
    adaptive: bool,
}

impl SpinMargin {
    /// A margin learned from the sleeps it is told of, from [`INITIAL_SPIN_MARGIN_NS`].
    pub fn adaptive() -> Self {
        SpinMargin {
            ns: INITIAL_SPIN_MARGIN_NS as f64,
            adaptive: true,
        }
    }

    /// Always `ns` (≥ 0), whatever the sleeps do.
    pub fn fixed(ns: i64) -> Self {
        SpinMargin {
            ns: ns.max(0) as f64,
            adaptive: false,
        }
    }

    pub fn ns(&self) -> i64 {
        self.ns as i64
    }

    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// A sleep meant to end `margin` before its deadline woke `overshoot_ns`
    /// after it was meant to (≤ 0: on time or early).
    pub fn observe(&mut self, overshoot_ns: i64) {
        if !self.adaptive {
            return;
        }
        let factor = if overshoot_ns as f64 > self.ns {
            1.0 + MARGIN_GAIN * MARGIN_QUANTILE
        } else {
            1.0 - MARGIN_GAIN * (1.0 - MARGIN_QUANTILE)
        };
        self.ns = (self.ns * factor).clamp(MIN_SPIN_MARGIN_NS as f64, MAX_SPIN_MARGIN_NS as f64);
    }

    /// How long before the deadline a wait of `wait_ns` stops sleeping: all
    /// of it (a spin) when it is at most `busy_wait_ns`, or short
    /// ([`SPIN_WHOLE_NS`]) and within two margins, which a sleep would
    /// likely overshoot; else the margin, but at most [`MAX_SPIN_SHARE`] of
    /// the wait. That cap keeps the thread a sleeper on a noisy machine,
    /// whose learned margin can grow as long as the waits: a thread that
    /// spins most of the time is treated as a CPU hog and queued behind
    /// other hogs for whole slices (measured: 1 kHz p99 8 ms under one busy
    /// process per core, the margin uncapped), while one that sleeps most
    /// of the time is woken at once.
    ///
    /// In the real-time class (`realtime`), a short wait of at least
    /// [`REALTIME_MIN_SLEEP_NS`] is slept for its first half instead of spun
    /// whole: a real-time thread wakes promptly whatever the load, and one
    /// that spun every wait would hold its CPU (so it leaves the class after
    /// a while, and is then preempted under load for milliseconds). And a
    /// margin too large for the waits is tested by those sleeps, so it can
    /// shrink; spun whole, they would tell it nothing. A fixed margin is
    /// the user's: kept as it is.
    pub fn spin_window(&self, wait_ns: i64, busy_wait_ns: i64, realtime: bool) -> i64 {
        let margin = self.ns();
        if wait_ns <= busy_wait_ns {
            wait_ns
        } else if wait_ns <= SPIN_WHOLE_NS.min(margin.saturating_mul(2)) {
            if realtime && self.adaptive && wait_ns >= REALTIME_MIN_SLEEP_NS {
                wait_ns / 2
            } else {
                wait_ns
            }
        } else {
            margin.min((wait_ns as f64 * MAX_SPIN_SHARE) as i64)
        }
    }
}

/// The shortest wait the real-time class sleeps half of when the margin
/// would spin it whole ([`SpinMargin::spin_window`]): its half is about the
/// 99th percentile of a real-time thread's wake-up overshoot measured here
/// (27-29 µs, with and without a busy process per core; 2.4 ms in the normal
/// class under that load), so such a sleep is seldom late. Rates of 20 kHz
/// and more are spun whole.
pub const REALTIME_MIN_SLEEP_NS: i64 = 50_000;

/// Waits up to this long are spun whole when a sleep would likely overshoot
/// them: rates of 5 kHz and more keep the scheduler's core busy.
pub const SPIN_WHOLE_NS: i64 = 200_000;
/// The largest share of a longer wait that is spun.
pub const MAX_SPIN_SHARE: f64 = 0.25;

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

    /// Overshoots drawn from a fixed distribution, reproducibly (xorshift).
    fn overshoots(n: usize, seed: u64, draw: impl Fn(f64) -> i64) -> Vec<i64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                draw((x >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    /// The share of `series` above the margin as it stands after the first `warm` samples.
    fn exceed_share(margin: &mut SpinMargin, series: &[i64], warm: usize) -> f64 {
        let mut over = 0;
        for (i, &o) in series.iter().enumerate() {
            if i >= warm && o > margin.ns() {
                over += 1;
            }
            margin.observe(o);
        }
        over as f64 / (series.len() - warm) as f64
    }

    #[test]
    fn the_margin_converges_on_a_high_quantile_of_the_overshoot() {
        // Exponential overshoots, mean 20 µs: p99.4 ≈ 102 µs.
        let exp = |u: f64| (-20_000.0 * (1.0 - u).ln()) as i64;
        let series = overshoots(40_000, 7, exp);
        let mut m = SpinMargin::adaptive();
        let share = exceed_share(&mut m, &series, 5_000);
        assert!(
            (0.002..0.012).contains(&share),
            "{share} of sleeps overshot"
        );
        assert!((60_000..180_000).contains(&m.ns()), "margin {} ns", m.ns());
        // Wake-ups that get 10× worse: the margin follows them up, fast.
        let worse = overshoots(2_000, 8, |u| 10 * exp(u));
        let share = exceed_share(&mut m, &worse, 200);
        assert!(share < 0.03, "{share} overshot after the change");
        assert!(m.ns() > 500_000, "margin {} ns", m.ns());
        // And back down once they are prompt again.
        let prompt = overshoots(5_000, 9, |u| exp(u) / 10);
        exceed_share(&mut m, &prompt, 0);
        assert!(m.ns() < 30_000, "margin {} ns", m.ns());
    }

    #[test]
    fn the_margin_stays_within_its_bounds() {
        let mut m = SpinMargin::adaptive();
        // Huge outliers move it one step each, never past the bound.
        m.observe(i64::MAX);
        assert_eq!(m.ns(), (INITIAL_SPIN_MARGIN_NS as f64 * 1.4975) as i64);
        for _ in 0..100 {
            m.observe(i64::MAX);
        }
        assert_eq!(m.ns(), MAX_SPIN_MARGIN_NS);
        // Always on time (or early): down to the floor, no lower.
        for _ in 0..20_000 {
            m.observe(i64::MIN);
        }
        assert_eq!(m.ns(), MIN_SPIN_MARGIN_NS);
        // A fixed margin ignores what it is told.
        let mut f = SpinMargin::fixed(50_000);
        f.observe(10_000_000);
        assert_eq!(f.ns(), 50_000);
        assert_eq!(SpinMargin::fixed(-3).ns(), 0);
    }

    #[test]
    fn the_realtime_class_sleeps_half_a_short_wait_the_margin_would_spin_whole() {
        let mut m = SpinMargin::adaptive();
        // 100 µs, within two margins of 200 µs.
        assert_eq!(m.spin_window(100_000, 0, false), 100_000);
        assert_eq!(m.spin_window(100_000, 0, true), 50_000);
        // Too short to sleep, and busyWait's waits: spun whole.
        let short = REALTIME_MIN_SLEEP_NS - 1;
        assert_eq!(m.spin_window(short, 0, true), short);
        assert_eq!(m.spin_window(100_000, 150_000, true), 100_000);
        // A wait the margin sleeps anyway: no different.
        assert_eq!(m.spin_window(1_000_000, 0, true), 200_000);
        // A fixed margin is kept.
        assert_eq!(
            SpinMargin::fixed(80_000).spin_window(100_000, 0, true),
            100_000
        );
        // Those sleeps teach the margin: woken 10 µs late each, it shrinks
        // until the normal class too would sleep 100 µs waits.
        let sleeps = (1..)
            .take_while(|_| {
                let spun_whole = m.spin_window(100_000, 0, false) == 100_000;
                m.observe(10_000);
                spun_whole
            })
            .count();
        assert!((400..700).contains(&sleeps), "{sleeps} sleeps");
        assert!(m.ns() < 50_000);
    }

    #[test]
    fn short_waits_are_spun_whole_and_at_most_a_quarter_of_long_ones() {
        let m = SpinMargin::fixed(80_000);
        // Within busyWait: spun whole.
        assert_eq!(m.spin_window(1_000_000, 1_500_000, false), 1_000_000);
        // Longer: the margin.
        assert_eq!(m.spin_window(1_000_000, 0, false), 80_000);
        assert_eq!(m.spin_window(10_000_000_000, 0, false), 80_000);
        // Within two margins and short: a sleep would overshoot it.
        assert_eq!(m.spin_window(150_000, 0, false), 150_000);
        // Short but beyond two margins: sleep, spin at most a quarter.
        let small = SpinMargin::fixed(20_000);
        assert_eq!(small.spin_window(100_000, 0, false), 20_000);
        assert_eq!(
            SpinMargin::fixed(50_000).spin_window(100_000, 0, false),
            100_000
        );
        assert_eq!(
            SpinMargin::fixed(30_000).spin_window(100_000, 0, false),
            25_000
        );
        // A margin as long as the wait (a noisy machine): a quarter of it,
        // however large the margin, once the wait is not short.
        let big = SpinMargin::fixed(MAX_SPIN_MARGIN_NS);
        assert_eq!(big.spin_window(1_000_000, 0, false), 250_000);
        assert_eq!(big.spin_window(SPIN_WHOLE_NS, 0, false), SPIN_WHOLE_NS);
        assert_eq!(
            big.spin_window(SPIN_WHOLE_NS + 4, 0, false),
            (SPIN_WHOLE_NS + 4) / 4
        );
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
