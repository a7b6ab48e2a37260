//! What the machine does to a timing thread, independently of netreplay:
//! how late sleeps wake up, and how long a thread that never sleeps is kept
//! off its core. These bound what any scheduler can achieve here, and they
//! decide between sleeping and spinning.

use std::time::{Duration, Instant};

/// Overshoot (ns) of `count` sleeps of `sleep` each, with the timer slack at
/// 1 ns so that the kernel does not add its default 50 µs.
pub fn sleep_overshoots(sleep: Duration, count: usize) -> Vec<u64> {
    set_timer_slack_1ns();
    let mut overshoots = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        std::thread::sleep(sleep);
        let slept = start.elapsed();
        overshoots.push(slept.saturating_sub(sleep).as_nanos() as u64);
    }
    overshoots
}

/// Gaps (ns) longer than `threshold` between consecutive clock readings of a
/// thread that spins for `duration`: the times it did not run.
pub fn spin_stalls(duration: Duration, threshold: Duration) -> Vec<u64> {
    let start = Instant::now();
    let readings = std::iter::from_fn(|| {
        let elapsed = start.elapsed();
        (elapsed < duration).then_some(elapsed.as_nanos() as u64)
    });
    gaps_over(readings, threshold.as_nanos() as u64)
}

/// The gaps between consecutive readings that exceed `threshold_ns`.
pub fn gaps_over(readings: impl Iterator<Item = u64>, threshold_ns: u64) -> Vec<u64> {
    let mut last = None;
    let mut gaps = Vec::new();
    for now in readings {
        if let Some(before) = last {
            let gap: u64 = now - before;
            if gap > threshold_ns {
                gaps.push(gap);
            }
        }
        last = Some(now);
    }
    gaps
}

fn set_timer_slack_1ns() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// `{"p50":…,"p99":…,"p999":…,"max":…,"over250us":…}` in µs (nearest rank).
pub fn summary_json(mut values_ns: Vec<u64>) -> String {
    values_ns.sort_unstable();
    let n = values_ns.len();
    let pick = |q: f64| {
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        values_ns[rank - 1] as f64 / 1e3
    };
    let over = values_ns.iter().filter(|&&v| v > 250_000).count();
    format!(
        "{{\"count\":{n},\"p50\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1},\"over250us\":{over}}}",
        pick(0.5),
        pick(0.99),
        pick(0.999),
        pick(1.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_never_wake_early() {
        let overshoots = sleep_overshoots(Duration::from_micros(200), 50);
        assert_eq!(overshoots.len(), 50);
        // A sleep that woke early would have saturated to 0 overshoot; a
        // real one is late by at least the wake-up path.
        assert!(overshoots.iter().any(|&o| o > 0));
    }

    #[test]
    fn gaps_over_the_threshold_are_the_stalls() {
        let readings = [0u64, 10, 20, 5_020, 5_030, 9_000, 9_001];
        assert_eq!(gaps_over(readings.into_iter(), 1_000), vec![5_000, 3_970]);
        assert!(gaps_over(readings.into_iter(), 10_000).is_empty());
        // A live spin of 20 ms ends on time and reports only long gaps.
        let start = Instant::now();
        let stalls = spin_stalls(Duration::from_millis(20), Duration::from_micros(100));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(stalls.iter().all(|&g| g > 100_000));
    }

    #[test]
    fn summary_uses_nearest_rank() {
        let values: Vec<u64> = (1..=1000).map(|v| v * 1000).collect();
        assert_eq!(
            summary_json(values),
            "{\"count\":1000,\"p50\":500.0,\"p99\":990.0,\"p999\":999.0,\"max\":1000.0,\"over250us\":750}"
        );
        assert_eq!(
            summary_json(vec![]),
            "{\"count\":0,\"p50\":0.0,\"p99\":0.0,\"p999\":0.0,\"max\":0.0,\"over250us\":0}"
        );
    }
}
