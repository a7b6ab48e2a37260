//! The monotonic clock and the timer slack of the calling thread.

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clocks asked for
    // (MONOTONIC, REALTIME) always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn now_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The CLOCK_MONOTONIC instant of `unix_ns` (CLOCK_REALTIME, ns since the
/// epoch), converted once: the realtime clock is read between two
/// monotonic readings and paired with their midpoint, so the conversion
/// errs by at most half the (sub-µs) span of the readings.
pub fn monotonic_of_realtime(unix_ns: i128) -> i64 {
    let before = now_ns();
    let real = clock_ns(libc::CLOCK_REALTIME);
    let after = now_ns();
    let mid = i128::from(before) + (i128::from(after) - i128::from(before)) / 2;
    (mid + unix_ns - i128::from(real)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Lower this thread's timer slack to 1 ns: the default 50 µs slack makes
/// every sleep late by up to that much.
pub fn set_precise_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
