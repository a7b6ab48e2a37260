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

/// The scheduling slice asked for the timing thread: the kernel's shortest.
pub const TIMING_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of `sched_setattr(2)` (not in the libc crate).
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Ask for a short scheduling slice ([`TIMING_SLICE_NS`]) for this thread,
/// keeping its normal policy and nice value. Since Linux 6.12 a fair-class
/// thread's `sched_runtime` is its slice, and a shorter slice gives an
/// earlier virtual deadline: woken, the thread preempts a CPU hog at once
/// instead of queueing behind the hog's slice (milliseconds), and a hog
/// cannot keep it off the CPU while it spins the last microseconds of a wait,
/// as long as it uses less than its fair share. No privilege is needed.
/// Older kernels ignore the field; returns whether the kernel kept the slice
/// (read back).
pub fn set_timing_slice() -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            runtime: TIMING_SLICE_NS,
            ..SchedAttr::default()
        };
        // SAFETY: the current thread's own nice value is read back and kept;
        // `attr` is a valid sched_attr of the size it declares, read by the
        // kernel only during the calls, which affect only this thread (tid 0).
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if *libc::__errno_location() == 0 {
                attr.nice = nice;
            }
            if libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) != 0 {
                return false;
            }
            let mut read = SchedAttr::default();
            let size = std::mem::size_of::<SchedAttr>() as u32;
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut read as *mut SchedAttr,
                size,
                0,
            ) == 0
                && read.runtime == TIMING_SLICE_NS
        }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// The real-time priority asked for the timing thread: the lowest, above
/// every normal thread and below any other real-time one (audio, IRQ
/// threads), so it cannot delay them.
pub const REALTIME_PRIORITY: i32 = 1;

/// Move this thread to `SCHED_FIFO` at [`REALTIME_PRIORITY`]: a woken
/// real-time thread runs at once, before any normal one, however busy the
/// CPU (a fair-class thread, even with the short slice, waits behind a CPU
/// hog for milliseconds under load). Fails without `CAP_SYS_NICE` or an
/// `RLIMIT_RTPRIO` of at least 1, or in a cgroup with no real-time budget;
/// the kernel's real-time throttling still leaves other threads 5 % of each
/// CPU if this one never sleeps.
pub fn set_realtime_priority() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param {
            sched_priority: REALTIME_PRIORITY,
        };
        // SAFETY: `param` is a valid sched_param read by the kernel only
        // during the call, which affects only the calling thread (pid 0).
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(target_os = "linux")]
/// Whether this process may use the real-time class, from what the kernel
/// says of it rather than by trying: `CAP_SYS_NICE` in the effective set or
/// a real-time priority limit, and a real-time budget. Tests compare
/// [`set_realtime_priority`] with it.
pub fn may_be_realtime() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut limit) };
    // A real-time budget of 0, system-wide or for a cgroup v1 `cpu`
    // hierarchy, refuses the class to every thread.
    let budget = |path: &str| std::fs::read_to_string(path).map_or(true, |v| v.trim() != "0");
    (caps & (1 << 23) != 0 || limit.rlim_cur >= REALTIME_PRIORITY as libc::rlim_t)
        && budget("/proc/sys/kernel/sched_rt_runtime_us")
        && budget("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")
}

#[cfg(not(target_os = "linux"))]
pub fn may_be_realtime() -> bool {
    false
}

/// Back to the normal class (its nice value kept), with the timing slice
/// ([`set_timing_slice`], whose result this returns).
pub fn set_normal_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: as in `set_realtime_priority`; leaving the real-time class
        // needs no privilege.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    }
    set_timing_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this thread is in the real-time class now.
    fn is_realtime() -> bool {
        #[cfg(target_os = "linux")]
        // SAFETY: reads the calling thread's policy only.
        return unsafe { libc::sched_getscheduler(0) } == libc::SCHED_FIFO;
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The kernel release's (major, minor), e.g. (6, 18).
    fn kernel() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .trim()
            .split(['.', '-'])
            .map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    #[test]
    fn a_thread_enters_the_realtime_class_when_permitted_and_leaves_it() {
        std::thread::spawn(|| {
            assert!(!is_realtime());
            match set_realtime_priority() {
                Ok(()) => {
                    assert!(is_realtime());
                    // SAFETY: reads the calling thread's parameters only.
                    let mut param = libc::sched_param { sched_priority: -1 };
                    unsafe { libc::sched_getparam(0, &mut param) };
                    assert_eq!(param.sched_priority, REALTIME_PRIORITY);
                    set_normal_priority();
                    assert!(!is_realtime());
                }
                Err(err) => {
                    // Only a process that may not, or a cgroup without a
                    // real-time budget (which still says EPERM).
                    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
                    assert!(!is_realtime());
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_process_that_may_be_realtime_is() {
        if !cfg!(target_os = "linux") || !super::may_be_realtime() {
            return;
        }
        let entered = std::thread::spawn(|| set_realtime_priority().is_ok())
            .join()
            .unwrap();
        assert!(
            entered,
            "CAP_SYS_NICE or RLIMIT_RTPRIO, yet SCHED_FIFO refused"
        );
    }

    #[test]
    fn the_timing_slice_is_kept_on_kernels_that_have_custom_slices() {
        // On a thread of its own: the slice is the thread's, not the test runner's.
        let kept = std::thread::spawn(|| {
            // SAFETY: getpriority on the calling thread only reads.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let kept = set_timing_slice();
            // SAFETY: as above.
            let after = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            assert_eq!(nice, after, "the nice value is kept");
            kept
        })
        .join()
        .unwrap();
        if cfg!(target_os = "linux") && kernel() >= (6, 12) {
            assert!(kept, "Linux {:?} has custom slices", kernel());
        }
    }
}
