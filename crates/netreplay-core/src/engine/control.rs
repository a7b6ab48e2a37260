//! Requests to a running scheduler thread (stop, speed), and the narrow
//! handle sinks get to honour them while they wait.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::Duration;

use crate::engine::clock::{now_ns, Speed, SpinMargin};
use crate::engine::stats::SinkStats;

/// The longest a waiting scheduler sleeps without looking at its control
/// flags; control changes also wake it at once (unpark).
const MAX_PARK: Duration = Duration::from_millis(20);

/// What a sink that cannot take a record may do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LagPolicy {
    /// Wait until it can: the replay slows down, nothing is lost.
    #[default]
    Wait,
    /// Drop what it cannot take now, and count it; the other sinks keep
    /// their timing.
    Drop,
}

/// A sink's view of the scheduler's controls: whether it may wait, and a
/// sleep that a stop or speed change cuts short. Sinks get this, never the
/// scheduler's own controls.
#[derive(Clone, Copy)]
pub struct Waiter<'a> {
    control: &'a Control,
    lag: LagPolicy,
    stats: &'a SinkStats,
}

impl<'a> Waiter<'a> {
    pub(crate) fn new(control: &'a Control, lag: LagPolicy, stats: &'a SinkStats) -> Self {
        Waiter {
            control,
            lag,
            stats,
        }
    }

    /// The sink dropped `n` records it could not take (under
    /// [`LagPolicy::Drop`]); counted in its [`SinkStats`].
    pub fn count_dropped(&self, n: u64) {
        self.stats.dropped.add(n);
    }

    /// The sink's lag policy.
    pub fn lag(&self) -> LagPolicy {
        self.lag
    }

    /// A stop was requested: a waiting sink should hand over what it holds
    /// and return.
    pub fn stop_requested(&self) -> bool {
        self.control.stop_requested()
    }

    /// Sleep up to `max` for room, if this sink may wait: false (at once)
    /// under [`LagPolicy::Drop`] or once a stop was requested.
    pub fn wait(&self, max: Duration) -> bool {
        if self.lag == LagPolicy::Drop || self.control.stop_requested() {
            return false;
        }
        self.control.park(max);
        true
    }
}

/// Requests from the owner to the running scheduler thread.
pub(crate) struct Control {
    pub(crate) stop: AtomicBool,
    /// Set by the scheduler thread once its run has ended (it is then only
    /// reporting the outcome to its sinks and exiting).
    pub(crate) finished: AtomicBool,
    pub(crate) speed_bits: AtomicU64,
    pub(crate) speed_changed: AtomicBool,
    /// Waits up to this long are spun whole (see [`SpinMargin::spin_window`]).
    pub(crate) busy_wait_ns: AtomicI64,
    /// Records a step or burst still has to deliver at once.
    pub(crate) immediate_left: AtomicU64,
    pub(crate) thread: Mutex<Option<Thread>>,
}

impl Control {
    pub(crate) fn new(speed: Speed) -> Self {
        Control {
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            speed_bits: AtomicU64::new(speed.get().to_bits()),
            speed_changed: AtomicBool::new(false),
            busy_wait_ns: AtomicI64::new(0),
            immediate_left: AtomicU64::new(0),
            thread: Mutex::new(None),
        }
    }

    pub fn speed(&self) -> Speed {
        Speed::new(f64::from_bits(self.speed_bits.load(Ordering::Acquire))).expect("validated")
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.stop_requested() || self.speed_changed.load(Ordering::Acquire)
    }

    pub(crate) fn wake(&self) {
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }

    /// Sleep up to `max` on the scheduler thread; control changes cut it short.
    pub fn park(&self, max: Duration) {
        if !self.interrupted() {
            std::thread::park_timeout(max);
        }
    }

    /// Wait for `deadline`: sleep until `margin` before it, then spin. Tells
    /// `margin` how late the sleep that was meant to end there woke (not the
    /// sleeps cut short at [`MAX_PARK`], nor one a control change ended).
    /// False if interrupted by stop or a speed change first. `before_sleep`
    /// runs before each sleep (never when the wait is spun whole); with
    /// `realtime`, each sleep is in the real-time class (see
    /// [`SpinMargin::spin_window`]).
    pub fn wait_until(
        &self,
        deadline: i64,
        margin: &mut SpinMargin,
        realtime: bool,
        mut before_sleep: impl FnMut(),
    ) -> bool {
        let busy_wait_ns = self.busy_wait_ns.load(Ordering::Relaxed);
        let spin = margin.spin_window(deadline.saturating_sub(now_ns()), busy_wait_ns, realtime);
        let wake_at = deadline.saturating_sub(spin);
        loop {
            if self.interrupted() {
                return false;
            }
            let now = now_ns();
            let remaining = deadline.saturating_sub(now);
            if remaining <= 0 {
                return true;
            }
            if now < wake_at {
                let sleep = Duration::from_nanos((wake_at - now) as u64);
                let last = sleep <= MAX_PARK;
                before_sleep();
                std::thread::park_timeout(sleep.min(MAX_PARK));
                if last && !self.interrupted() {
                    let woke = now_ns();
                    // Woken early (an unpark token): not a measure of lateness.
                    if woke >= wake_at {
                        margin.observe(woke - wake_at);
                    }
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }
}
