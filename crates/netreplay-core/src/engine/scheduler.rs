//! `ScheduleBroadcasts`: the consumer thread that hands each record to the
//! sinks at its absolute deadline (DESIGN.md, "Timing semantics").

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::buffer::{Queue, QueueClaim};
use crate::engine::clock::{now_ns, Anchor, Speed, SpinMargin};
use crate::engine::control::{Control, LagPolicy, Waiter};
use crate::engine::ring::{RingConsumer, Slot};
use crate::engine::sink::{Delivery, Outcome, Sink, TimelineEvent};
use crate::engine::stats::{ReplayStats, SinkStats};
use crate::engine::thread::StateThread;
use crate::engine::timeline::{Pace, Timeline, TimelineOptions};
use crate::sys::{
    set_normal_priority, set_precise_timer_slack, set_realtime_priority, set_timing_slice,
    REALTIME_PRIORITY,
};
use crate::{Error, Record, Result};

/// The longest fixed spin margin accepted (`spinMargin`).
pub const MAX_SPIN_MARGIN_OPTION_NS: i64 = 100_000_000;
/// How long a fresh run waits awake for its first record before sleeping.
const START_SPIN_NS: i64 = 5_000_000;
/// Sleep while the ring is starved: short, so a late producer costs little.
const STARVED_PARK: Duration = Duration::from_micros(200);

/// A sink as the scheduler holds it: with its lag policy and its counters.
pub struct SinkEntry {
    pub sink: Box<dyn Sink>,
    pub lag: LagPolicy,
    pub stats: Arc<SinkStats>,
}

impl SinkEntry {
    /// A sink with the default policy ([`LagPolicy::Wait`]).
    pub fn new(sink: Box<dyn Sink>) -> Self {
        SinkEntry::with_lag(sink, LagPolicy::Wait)
    }

    pub fn with_lag(sink: Box<dyn Sink>, lag: LagPolicy) -> Self {
        SinkEntry {
            sink,
            lag,
            stats: Arc::default(),
        }
    }
}

/// What a run of the scheduler thread is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Play on (start, resume).
    Play,
    /// Deliver the next `n` records at once, then pause (`then_pause`: a
    /// step) or play on with the timing re-anchored on the last (a burst).
    Immediate { n: u64, then_pause: bool },
    /// Play at speed until reported time `t_ns`, then pause there.
    Until(i64),
}

/// A record taken from the ring and mapped to the timeline.
struct Held {
    record: Record,
    tau: i64,
}

/// State carried from one run of the thread to the next (pause/resume).
struct Worker {
    sinks: Vec<SinkEntry>,
    /// The record taken from the ring but not yet delivered.
    held: Option<Held>,
    /// Timeline time reached when the last run stopped.
    position: Option<i64>,
    /// The log time a seek went to, reported as the position until a run
    /// takes its first record (a seek while paused takes none).
    sought: Option<i64>,
    /// The last run saw the end of the data (or an error).
    ended: bool,
    /// The queue epoch `held`/`position` belong to: the run number every
    /// delivery and outcome carries.
    epoch: u64,
    /// How the last run ended (its run is `epoch`).
    outcome: Option<Outcome>,
    timeline: Timeline,
    /// The delay before a pass's first record is still to be added.
    delay_pending: bool,
    /// At infinite speed, what was left of a delay or start time (the gate)
    /// when a pause cut it short: the resumed run waits that out first.
    gate_left_ns: Option<i64>,
    /// The wall-clock instant (CLOCK_MONOTONIC) the first record of a fresh
    /// playback is due; used once.
    start_at: Option<i64>,
    /// Records delivered since the start (the limit counts them).
    delivered: u64,
    /// The virtual clock's reading, with virtual time.
    virtual_now: i64,
    /// How long before a deadline a wait stops sleeping; learned across
    /// runs (pause/resume) of this scheduler.
    margin: SpinMargin,
    class: ThreadClass,
    plan: Timing,
}

/// The timing options a worker keeps.
#[derive(Debug, Clone, Copy)]
struct Timing {
    delay_ns: i64,
    limit: Option<u64>,
    clock_period_ns: Option<i64>,
    virtual_time: bool,
    realtime: Realtime,
}

/// How long the scheduler thread may stay awake in the real-time class
/// (spinning through short waits, or catching up) before it leaves it.
const REALTIME_AWAKE_LIMIT_NS: i64 = 2_000_000;

/// The scheduler thread's class as a run goes: real-time while it sleeps
/// between records, the normal class once it has been awake for
/// [`REALTIME_AWAKE_LIMIT_NS`] (rates of 20 kHz and more spin every wait
/// whole, see [`crate::engine::clock::REALTIME_MIN_SLEEP_NS`]), back to real-time
/// before its next sleep. A real-time thread that
/// never sleeps holds its CPU away from every normal thread: at 10 kHz it
/// starved a receiver in the same process, which lost datagrams.
#[derive(Debug, Default)]
struct ThreadClass {
    /// Whether this run may wait in the real-time class (wanted, and the
    /// kernel let it in).
    may: bool,
    /// Whether the thread is in it now.
    realtime: bool,
    /// When the thread last woke from a sleep (CLOCK_MONOTONIC).
    awake_since: i64,
}

impl ThreadClass {
    /// About to sleep: into the real-time class, if this run may.
    fn before_sleep(&mut self, stats: &ReplayStats) {
        if self.may && !self.realtime {
            self.realtime = set_realtime_priority().is_ok();
            self.may = self.realtime;
            stats.realtime.store(self.realtime, Ordering::Relaxed);
            if self.realtime {
                stats.timing_slice.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Awake at `now` since `awake_since`: out of the real-time class once
    /// awake too long.
    fn check_awake(&mut self, now: i64, stats: &ReplayStats) {
        if self.realtime && now.saturating_sub(self.awake_since) > REALTIME_AWAKE_LIMIT_NS {
            self.leave(stats);
        }
    }

    /// Back to the normal class, with the short slice.
    fn leave(&mut self, stats: &ReplayStats) {
        let slice = set_normal_priority();
        self.realtime = false;
        stats.realtime.store(false, Ordering::Relaxed);
        stats.timing_slice.store(slice, Ordering::Relaxed);
    }
}

/// Whether the scheduler thread waits in the real-time class
/// ([`set_realtime_priority`]) while a timed replay plays. Never at infinite
/// speed or on a virtual clock, where nothing waits and a real-time thread
/// would only hold a CPU away from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Realtime {
    /// The normal class, with the short slice.
    Off,
    /// The real-time class if the process may enter it and has two CPUs or
    /// more (one would be shared with the rest of the process); else `Off`.
    #[default]
    Auto,
    /// The real-time class, or the run fails with the reason.
    On,
}

/// Clock ticks: absolute, one period apart.
struct Ticker {
    period: i64,
    next: i64,
}

impl Worker {
    /// Put this thread in the class a run at `speed` waits in (see
    /// [`Realtime`]) and publish which it is in; an error only when the
    /// real-time class was required and refused.
    fn take_class(&mut self, speed: Speed, stats: &ReplayStats) -> Result<()> {
        let waits = !speed.is_max() && !self.plan.virtual_time;
        let wanted = waits
            && match self.plan.realtime {
                Realtime::Off => false,
                Realtime::Auto => std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2),
                Realtime::On => true,
            };
        let class = &mut self.class;
        if wanted && !class.realtime {
            match set_realtime_priority() {
                Ok(()) => {
                    class.realtime = true;
                    class.awake_since = now_ns();
                }
                Err(err) if self.plan.realtime == Realtime::On => {
                    return Err(Error::State(format!(
                        "realtime: the scheduler thread cannot enter the real-time class \
                         (SCHED_FIFO, priority {REALTIME_PRIORITY}): {err}; it needs CAP_SYS_NICE \
                         or a real-time priority limit of {REALTIME_PRIORITY} or more \
                         (ulimit -r), or let 'realtime' be 'auto'"
                    )));
                }
                Err(_) => {}
            }
        }
        class.may = wanted && class.realtime;
        if !wanted && class.realtime {
            class.leave(stats);
        } else {
            let slice = !class.realtime && set_timing_slice();
            stats.realtime.store(class.realtime, Ordering::Relaxed);
            stats.timing_slice.store(slice, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Back to a fresh playback: the first pass, nothing delivered.
    fn fresh(&mut self) {
        self.held = None;
        self.position = None;
        self.sought = None;
        self.gate_left_ns = None;
        self.ended = false;
        self.timeline.reset();
        self.delay_pending = self.plan.delay_ns > 0;
        self.delivered = 0;
    }

    fn now(&self) -> i64 {
        if self.plan.virtual_time {
            self.virtual_now
        } else {
            now_ns()
        }
    }

    fn flush(&mut self, control: &Control) {
        for entry in &mut self.sinks {
            let waiter = Waiter::new(control, entry.lag, &entry.stats);
            entry.sink.flush(waiter);
        }
    }

    fn event(&mut self, control: &Control, event: TimelineEvent) {
        for entry in &mut self.sinks {
            let waiter = Waiter::new(control, entry.lag, &entry.stats);
            entry.sink.event(self.epoch, event, waiter);
        }
    }

    /// An error a sink raised to stop the replay (`failOnError`); batching
    /// sinks find theirs when they flush, not only when a record is delivered.
    fn sink_error(&mut self) -> Option<Error> {
        self.sinks.iter_mut().find_map(|s| s.sink.take_error())
    }

    fn deliver(&mut self, record: &Record, delivery: Delivery, control: &Control) {
        for entry in &mut self.sinks {
            let waiter = Waiter::new(control, entry.lag, &entry.stats);
            entry.sink.deliver(record, delivery, waiter);
        }
    }

    /// Take the next record from the ring and hold it; whether it is due by
    /// `now` on this anchor too. False if the next slot is not a record
    /// (it stays in the ring).
    fn hold_next_if_due(
        &mut self,
        consumer: &mut RingConsumer,
        anchor: Anchor,
        speed: Speed,
        now: i64,
    ) -> bool {
        // The record being delivered was taken from `held`.
        debug_assert!(self.held.is_none(), "a record is held already");
        let Some(record) = consumer.pop_record() else {
            return false;
        };
        let tau = self.timeline.map(&record);
        self.held = Some(Held { record, tau });
        anchor.deadline(tau, speed).is_some_and(|due| due <= now)
    }

    /// The reported time at timeline time `tau`.
    fn reported_at(&self, tau: i64) -> i64 {
        self.timeline.reported(self.timeline.log_at(tau))
    }

    /// Emit the clock ticks due by `now`.
    fn tick(
        &mut self,
        ticker: &mut Option<Ticker>,
        anchor: Option<Anchor>,
        speed: Speed,
        now: i64,
        control: &Control,
    ) {
        let (Some(t), Some(a)) = (ticker.as_mut(), anchor) else {
            return;
        };
        if now < t.next {
            return;
        }
        let at = t.next;
        // Missed ticks are not made up: one tick, then the next one due.
        let behind = (now - t.next) / t.period + 1;
        t.next = t.next.saturating_add(behind.saturating_mul(t.period));
        let tau = if speed.is_max() {
            a.log_ns
        } else {
            a.logical_at(at, speed)
        };
        let time_ns = self.reported_at(tau);
        self.flush(control);
        self.event(control, TimelineEvent::Clock { time_ns });
    }

    /// Wait for `deadline`, emitting clock ticks on the way; false if a stop
    /// or speed change came first.
    fn wait(
        &mut self,
        control: &Control,
        stats: &ReplayStats,
        deadline: i64,
        ticker: &mut Option<Ticker>,
        anchor: Option<Anchor>,
        speed: Speed,
    ) -> bool {
        loop {
            let until = ticker.as_ref().map_or(deadline, |t| t.next.min(deadline));
            if self.plan.virtual_time {
                if control.interrupted() {
                    return false;
                }
                self.virtual_now = self.virtual_now.max(until);
            } else {
                let mut slept = false;
                // A run that may be real-time sleeps in the class.
                let realtime = self.class.may;
                let reached = control.wait_until(until, &mut self.margin, realtime, || {
                    slept = true;
                    self.class.before_sleep(stats);
                });
                // A wait spun whole is checked with its record (`check_awake`).
                if slept {
                    self.class.awake_since = now_ns();
                }
                stats
                    .spin_margin_ns
                    .store(self.margin.ns(), Ordering::Relaxed);
                if !reached {
                    return false;
                }
            }
            let now = self.now();
            self.tick(ticker, anchor, speed, now, control);
            if now >= deadline {
                return true;
            }
        }
    }

    fn run(
        &mut self,
        claim: &QueueClaim,
        control: &Control,
        stats: &ReplayStats,
        goal: Goal,
    ) -> Outcome {
        set_precise_timer_slack();
        // A new thread each run: in the normal class.
        self.class = ThreadClass::default();
        if let Err(err) = self.take_class(control.speed(), stats) {
            return Outcome::Error(err);
        }
        stats
            .spin_margin_ns
            .store(self.margin.ns(), Ordering::Relaxed);
        if self.ended {
            return Outcome::End;
        }
        let run_start = now_ns();
        let mut consumer = claim.consumer();
        let mut speed = control.speed();
        control.speed_changed.store(false, Ordering::Release);
        // Resume: logical time continues from where it froze.
        let mut anchor = self.position.map(|log_ns| Anchor {
            wall_ns: self.now(),
            log_ns,
        });
        let publish = |anchor: Option<Anchor>, speed: Speed| {
            stats.set_anchor(anchor.filter(|_| !speed.is_max()));
        };
        publish(anchor, speed);
        let mut last_delivered = self.position;
        let mut immediate = match goal {
            Goal::Immediate { n, .. } => n,
            _ => 0,
        };
        control.immediate_left.store(immediate, Ordering::Relaxed);
        let until = match goal {
            Goal::Until(t) => Some(t),
            _ => None,
        };
        let mut ticker = self.plan.clock_period_ns.map(|period| Ticker {
            period,
            next: self.now().saturating_add(period),
        });
        let logical_now = |w: &Worker, anchor: &Anchor, speed: Speed, last: Option<i64>| {
            if speed.is_max() {
                last.unwrap_or(anchor.log_ns)
            } else {
                anchor.logical_at(w.now(), speed)
            }
        };
        let outcome = loop {
            if control.stop_requested() {
                break Outcome::Stopped;
            }
            if control.speed_changed.swap(false, Ordering::AcqRel) {
                let new_speed = control.speed();
                if let Some(a) = anchor {
                    anchor = Some(Anchor {
                        wall_ns: self.now(),
                        log_ns: logical_now(self, &a, speed, last_delivered),
                    });
                }
                speed = new_speed;
                publish(anchor, speed);
                if let Err(err) = self.take_class(speed, stats) {
                    break Outcome::Error(err);
                }
            }
            if ticker.is_some() {
                let now = self.now();
                self.tick(&mut ticker, anchor, speed, now, control);
            }
            let Held { record, tau } = match self.held.take() {
                Some(held) => held,
                None => match consumer.pop() {
                    Some(Slot::Record(record)) => {
                        let tau = self.timeline.map(&record);
                        Held { record, tau }
                    }
                    Some(Slot::Backfill(record)) => {
                        let delivery = Delivery {
                            run: self.epoch,
                            time_ns: self.timeline.reported(record.time_ns),
                            pass: self.timeline.pass(),
                            backfill: true,
                            ..Delivery::default()
                        };
                        self.deliver(&record, delivery, control);
                        consumer.recycle(record.payload);
                        continue;
                    }
                    Some(Slot::Seam(info)) => {
                        self.timeline.seam(&info);
                        self.delay_pending = self.plan.delay_ns > 0;
                        stats
                            .position
                            .pass
                            .store(self.timeline.pass(), Ordering::Relaxed);
                        self.flush(control);
                        self.event(
                            control,
                            TimelineEvent::Loop {
                                pass: self.timeline.pass(),
                            },
                        );
                        continue;
                    }
                    Some(Slot::End) => break Outcome::End,
                    Some(Slot::Error(err)) => break Outcome::Error(err),
                    None if anchor.is_none() && now_ns() - run_start < START_SPIN_NS => {
                        // The first record is on its way: wait awake, since a
                        // sleep can wake milliseconds late.
                        std::hint::spin_loop();
                        continue;
                    }
                    None => {
                        // Starved, not ended: hand over what is batched and wait.
                        self.flush(control);
                        if let Some(err) = self.sink_error() {
                            break Outcome::Error(err);
                        }
                        control.park(STARVED_PARK);
                        self.class.awake_since = now_ns();
                        continue;
                    }
                },
            };
            // Once anchored, infinite speed needs no clock: a read per record
            // was a tenth of the loop.
            let mut now = if speed.is_max() && anchor.is_some() {
                0
            } else {
                self.now()
            };
            // The delay before a pass's first record moves the timeline's
            // anchor: deadlines stay absolute, and a pause keeps what is left.
            let delay = if std::mem::take(&mut self.delay_pending) && immediate == 0 {
                self.plan.delay_ns
            } else {
                0
            };
            // At infinite speed nothing has a deadline, but a delay or a
            // start time still holds the record back until then (or what
            // was left of it when a pause cut it short).
            let mut gate = self
                .gate_left_ns
                .take()
                .map(|left| self.now().saturating_add(left));
            // A fresh run starts on its first record: due now (or at the
            // start time, after the delay), not late.
            let a = match anchor {
                Some(mut a) => {
                    a.wall_ns = a.wall_ns.saturating_add(delay);
                    anchor = Some(a);
                    if delay > 0 {
                        publish(anchor, speed);
                        if speed.is_max() {
                            gate = Some(self.now().saturating_add(delay));
                        }
                    }
                    a
                }
                None => {
                    let start_at = self.start_at.take();
                    let start = start_at.unwrap_or(now);
                    let a = Anchor {
                        wall_ns: start.saturating_add(delay),
                        log_ns: tau,
                    };
                    anchor = Some(a);
                    publish(anchor, speed);
                    if speed.is_max() && (start_at.is_some() || delay > 0) {
                        gate = Some(a.wall_ns);
                    }
                    a
                }
            };
            if let Some(t) = until {
                let reported = self.timeline.reported(record.time_ns);
                if reported > t {
                    // The goal is reached before this record: wait until the
                    // timeline reaches `t`, then pause there.
                    let floor = last_delivered.unwrap_or(a.log_ns).max(a.log_ns);
                    let tau_t = self
                        .timeline
                        .tau_of_reported(t, record.time_ns, tau)
                        .clamp(floor.min(tau), tau);
                    self.held = Some(Held { record, tau });
                    if let Some(due) = a.deadline(tau_t, speed) {
                        if now < due {
                            self.flush(control);
                            if !self.wait(control, stats, due, &mut ticker, anchor, speed) {
                                continue;
                            }
                        }
                    }
                    self.position = Some(tau_t);
                    break Outcome::Paused;
                }
            }
            // At infinite speed, or at once (step, burst), there is no
            // deadline to wait for or be late for.
            let deadline = if immediate > 0 {
                None
            } else if speed.is_max() {
                gate
            } else {
                a.deadline(tau, speed)
            };
            if let Some(due) = deadline {
                if now < due {
                    self.flush(control);
                    if let Some(err) = self.sink_error() {
                        break Outcome::Error(err);
                    }
                    stats
                        .position
                        .delayed
                        .store(delay > 0 || last_delivered.is_none(), Ordering::Relaxed);
                    let reached = self.wait(control, stats, due, &mut ticker, anchor, speed);
                    stats.position.delayed.store(false, Ordering::Relaxed);
                    if !reached {
                        if speed.is_max() {
                            self.gate_left_ns = Some(due.saturating_sub(self.now()).max(0));
                        }
                        self.held = Some(Held { record, tau });
                        continue;
                    }
                    now = self.now();
                } else if now > due {
                    stats.late.add(1);
                }
            }
            let lateness_ns = match deadline {
                Some(due) if !self.plan.virtual_time => now.saturating_sub(due),
                _ => 0,
            };
            if deadline.is_some() && !speed.is_max() {
                // Waits spun whole, or none (catching up): awake all along.
                self.class.check_awake(now, stats);
            }
            // Records due at one instant go to the sinks as one batch (one
            // sendmmsg for a burst): the next is taken now, and if it is due
            // too this one may be queued (at infinite speed sinks batch
            // anyway).
            let more_due = deadline.is_some()
                && !speed.is_max()
                && self.hold_next_if_due(&mut consumer, a, speed, now);
            let delivery = Delivery {
                run: self.epoch,
                deadline_ns: deadline,
                lateness_ns,
                time_ns: self.timeline.reported(record.time_ns),
                pass: self.timeline.pass(),
                backfill: false,
                more_due,
            };
            if last_delivered.is_none() {
                // Set before the thread ran, for a start time or delay.
                stats.position.delayed.store(false, Ordering::Relaxed);
            }
            self.deliver(&record, delivery, control);
            stats.delivered.add(1);
            stats.lateness.record(lateness_ns);
            stats
                .position
                .delivered(record.time_ns, tau, delivery.time_ns, lateness_ns);
            if self.plan.virtual_time {
                stats
                    .position
                    .virtual_now_ns
                    .store(self.virtual_now, Ordering::Relaxed);
            }
            last_delivered = Some(tau);
            self.delivered += 1;
            consumer.recycle(record.payload);
            if let Some(err) = self.sink_error() {
                break Outcome::Error(err);
            }
            if self.plan.limit.is_some_and(|limit| self.delivered >= limit) {
                break Outcome::End;
            }
            if immediate > 0 {
                immediate -= 1;
                control.immediate_left.store(immediate, Ordering::Relaxed);
                if immediate == 0 {
                    if matches!(
                        goal,
                        Goal::Immediate {
                            then_pause: true,
                            ..
                        }
                    ) {
                        self.position = Some(tau);
                        break Outcome::Paused;
                    }
                    // A burst is over: the timing goes on from its last record.
                    anchor = Some(Anchor {
                        wall_ns: self.now(),
                        log_ns: tau,
                    });
                    publish(anchor, speed);
                }
            }
        };
        match &outcome {
            Outcome::Stopped => {
                if let Some(a) = anchor {
                    let mut pos = logical_now(self, &a, speed, last_delivered);
                    if let Some(held) = &self.held {
                        pos = pos.min(held.tau);
                    }
                    self.position = Some(pos);
                }
            }
            Outcome::Paused => {}
            Outcome::End | Outcome::Error(_) => self.ended = true,
        }
        if self.plan.virtual_time {
            stats
                .position
                .virtual_now_ns
                .store(self.virtual_now, Ordering::Relaxed);
        }
        outcome
    }
}

/// Options of [`Scheduler`].
#[derive(Debug, Clone, Copy)]
pub struct SchedulerOptions {
    pub speed: Speed,
    /// Waits up to this long are spun whole (see
    /// [`SpinMargin::spin_window`]); `None`: 0, longer waits sleep until
    /// the spin margin before their deadline.
    pub busy_wait_ns: Option<i64>,
    /// How long before a deadline a wait stops sleeping and spins: `None`
    /// learns it from this thread's wake-ups ([`SpinMargin::adaptive`]).
    pub spin_margin_ns: Option<i64>,
    /// How records map to the timeline: pace, capped gaps, loop seams.
    pub timeline: TimelineOptions,
    /// Wall-clock time before the first record of each pass (not scaled by
    /// the speed; a pause keeps what is left of it).
    pub delay_ns: i64,
    /// End the playback after this many records (backfill not counted).
    pub limit: Option<u64>,
    /// Emit a clock tick ([`TimelineEvent::Clock`]) this often while playing.
    pub clock_period_ns: Option<i64>,
    /// Play on a virtual clock: no waiting, every record reported with the
    /// deadline it would have had and lateness 0.
    pub virtual_time: bool,
    /// Whether the scheduler thread waits in the real-time class.
    pub realtime: Realtime,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            speed: Speed::new(1.0).expect("1 is a speed"),
            busy_wait_ns: None,
            spin_margin_ns: None,
            timeline: TimelineOptions::default(),
            delay_ns: 0,
            limit: None,
            clock_period_ns: None,
            virtual_time: false,
            realtime: Realtime::Auto,
        }
    }
}

impl SchedulerOptions {
    /// Check every option's domain, naming the option and the value.
    pub fn validate(&self) -> Result<()> {
        self.timeline.validate()?;
        if self.timeline.pace != Pace::Log && self.speed.get() != 1.0 {
            return Err(Error::invalid(
                "speed",
                format!(
                    "conflicts with 'rate': a fixed rate sets the pace (got speed {}); \
                     change the speed once playing to scale the rate",
                    self.speed.get()
                ),
            ));
        }
        if self.delay_ns < 0 {
            return Err(Error::invalid(
                "delay",
                format!("must be >= 0 s, got {} s", self.delay_ns as f64 / 1e9),
            ));
        }
        if self.limit == Some(0) {
            return Err(Error::invalid("limit", "must be an integer >= 1, got 0"));
        }
        if let Some(margin) = self.spin_margin_ns {
            if !(0..=MAX_SPIN_MARGIN_OPTION_NS).contains(&margin) {
                return Err(Error::invalid(
                    "spinMargin",
                    format!(
                        "must be from 0 to {} s, got {} s",
                        MAX_SPIN_MARGIN_OPTION_NS as f64 / 1e9,
                        margin as f64 / 1e9
                    ),
                ));
            }
        }
        if let Some(period) = self.clock_period_ns {
            if period <= 0 {
                return Err(Error::invalid("clock", "must be a rate > 0 Hz"));
            }
        }
        Ok(())
    }
}

/// Plays a queue to sinks on a native thread (MCL's ScheduleBroadcasts).
pub struct Scheduler {
    /// Deadlines are on the worker's virtual clock (published in its stats).
    virtual_time: bool,
    claim: Arc<QueueClaim>,
    control: Arc<Control>,
    stats: Arc<ReplayStats>,
    sink_stats: Vec<Arc<SinkStats>>,
    worker: StateThread<Worker>,
}

impl Scheduler {
    /// Attach to `queue` as its only consumer.
    pub fn new(queue: &Queue, sinks: Vec<SinkEntry>, options: SchedulerOptions) -> Result<Self> {
        options.validate()?;
        let claim = Arc::new(queue.claim()?);
        let control = Control::new(options.speed);
        let busy_wait_ns = options.busy_wait_ns.unwrap_or(0);
        control
            .busy_wait_ns
            .store(busy_wait_ns.max(0), Ordering::Relaxed);
        Ok(Scheduler {
            virtual_time: options.virtual_time,
            claim,
            control: Arc::new(control),
            stats: Arc::default(),
            sink_stats: sinks.iter().map(|s| s.stats.clone()).collect(),
            worker: StateThread::new(
                "scheduler",
                "its sinks are",
                Worker {
                    sinks,
                    held: None,
                    position: None,
                    sought: None,
                    ended: false,
                    epoch: queue.epoch(),
                    outcome: None,
                    timeline: Timeline::new(options.timeline),
                    delay_pending: options.delay_ns > 0,
                    gate_left_ns: None,
                    start_at: None,
                    delivered: 0,
                    virtual_now: 0,
                    class: ThreadClass::default(),
                    margin: options
                        .spin_margin_ns
                        .map_or_else(SpinMargin::adaptive, SpinMargin::fixed),
                    plan: Timing {
                        delay_ns: options.delay_ns,
                        limit: options.limit,
                        clock_period_ns: options.clock_period_ns,
                        virtual_time: options.virtual_time,
                        realtime: options.realtime,
                    },
                },
            ),
        })
    }

    /// The first record of the next fresh playback is due at `wall_ns`
    /// (CLOCK_MONOTONIC), after any delay; one in the past is due at once
    /// and the records after it catch up, counted late.
    pub fn set_start_at(&mut self, wall_ns: Option<i64>) -> Result<()> {
        self.worker.idle_mut()?.start_at = wall_ns;
        Ok(())
    }

    /// The pass (loop) the scheduler is in, counting from 0.
    pub fn pass(&self) -> u64 {
        self.worker.idle().map_or(0, |w| w.timeline.pass())
    }

    /// Records a step or burst stopped early had still to deliver.
    pub fn immediate_left(&self) -> u64 {
        self.control.immediate_left.load(Ordering::Relaxed)
    }

    /// Where the playback is now: (log time in the current pass, reported
    /// time), moving with the clock while playing; `None` before the first
    /// record of a playback.
    pub fn playhead(&self) -> Option<(i64, i64)> {
        let last = self.stats.position.last();
        if let Some(worker) = self.worker.idle() {
            // Before the first record of a run (waiting out a delay, or
            // just sought), the position is that record's.
            let log = match (&worker.held, last) {
                (Some(held), None) => held.record.time_ns,
                _ => match (worker.position, last) {
                    (Some(tau), _) => worker.timeline.log_at(tau),
                    (None, Some((log, _, _))) => log,
                    (None, None) => worker.sought?,
                },
            };
            return Some((log, worker.timeline.reported(log)));
        }
        let (log, tau, reported) = last?;
        let ahead = match self.stats.anchor() {
            Some(anchor) => {
                let now = if self.virtual_time {
                    self.stats.position.virtual_now_ns.load(Ordering::Relaxed)
                } else {
                    now_ns()
                };
                anchor
                    .logical_at(now, self.speed())
                    .saturating_sub(tau)
                    .max(0)
            }
            None => 0,
        };
        Some((log.saturating_add(ahead), reported.saturating_add(ahead)))
    }

    pub fn stats(&self) -> &Arc<ReplayStats> {
        &self.stats
    }

    /// Each sink's counters, in the order the sinks were given.
    pub fn sink_stats(&self) -> &[Arc<SinkStats>] {
        &self.sink_stats
    }

    pub fn speed(&self) -> Speed {
        self.control.speed()
    }

    /// Spin through waits up to `ns` instead of sleeping (default 0: every
    /// wait longer than the spin margin sleeps first). Takes effect at the next wait.
    pub fn set_busy_wait(&self, ns: i64) {
        self.control
            .busy_wait_ns
            .store(ns.max(0), Ordering::Relaxed);
    }

    /// Change speed; a running replay re-anchors at the current logical time.
    pub fn set_speed(&self, speed: Speed) {
        self.control
            .speed_bits
            .store(speed.get().to_bits(), Ordering::Release);
        self.control.speed_changed.store(true, Ordering::Release);
        self.control.wake();
    }

    /// The run the scheduler plays (or played last): the queue epoch its
    /// position belongs to. Every delivery and outcome carries it.
    pub fn run(&self) -> u64 {
        self.claim.queue().epoch()
    }

    /// Start or resume; false if already running, or if the run has ended
    /// (until a rewind or a buffer reset). After the queue was flushed
    /// (buffer reset), starts from the beginning.
    pub fn start(&mut self) -> Result<bool> {
        self.start_with(Goal::Play)
    }

    /// Start a run for `goal` (see [`Goal`]); false as [`Scheduler::start`].
    pub fn start_with(&mut self, goal: Goal) -> Result<bool> {
        if self.is_alive() {
            return Ok(false);
        }
        let epoch = self.claim.queue().epoch();
        let worker = self.worker.idle_mut()?;
        if worker.epoch != epoch {
            worker.epoch = epoch;
            worker.fresh();
            self.stats.clear();
            for s in &self.sink_stats {
                s.clear();
            }
        }
        if worker.ended {
            // The run already ended and reported it: a start without a
            // rewind has nothing to play and must not report the end twice.
            return Ok(false);
        }
        // Known now, before the thread runs: a fresh playback with a start
        // time or a delay waits before its first record.
        let waits = worker.position.is_none()
            && (worker.start_at.is_some() || worker.delay_pending)
            && !matches!(goal, Goal::Immediate { .. });
        self.stats.position.delayed.store(waits, Ordering::Relaxed);
        self.control.stop.store(false, Ordering::Release);
        self.control.finished.store(false, Ordering::Release);
        let (claim, control, stats) =
            (self.claim.clone(), self.control.clone(), self.stats.clone());
        self.worker.spawn(move |mut worker| {
            *control.thread.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(std::thread::current());
            let mut outcome = worker.run(&claim, &control, &stats, goal);
            // From here on the run is over: an owner told of its end by a
            // sink (below) may start again at once, and must not find the
            // thread still "running".
            control.finished.store(true, Ordering::Release);
            worker.flush(&control);
            // The final flush may fail what the run delivered last.
            if outcome == Outcome::End {
                if let Some(err) = worker.sink_error() {
                    outcome = Outcome::Error(err);
                }
            }
            for entry in &mut worker.sinks {
                entry.sink.finish(worker.epoch, &outcome);
            }
            *control.thread.lock().unwrap_or_else(|p| p.into_inner()) = None;
            worker.outcome = Some(outcome);
            worker
        })?;
        Ok(true)
    }

    /// Stop (pause), keeping the position and the record in hand; false if
    /// it was not running.
    pub fn stop(&mut self) -> Result<bool> {
        let was_alive = self.is_alive();
        self.control.stop.store(true, Ordering::Release);
        self.control.wake();
        self.worker.join()?;
        Ok(was_alive)
    }

    /// True while a run plays (false once it has ended, even while its
    /// thread is still reporting the outcome to the sinks).
    pub fn is_alive(&self) -> bool {
        self.worker.is_alive() && !self.control.finished.load(Ordering::Acquire)
    }

    /// How the last finished run ended (joins a thread that ended by itself).
    pub fn last_outcome(&mut self) -> Result<Option<&Outcome>> {
        if !self.is_alive() {
            self.worker.join()?;
        }
        Ok(self.worker.idle().and_then(|w| w.outcome.as_ref()))
    }

    /// Forget the position: the next start plays from the queue's next record
    /// as a fresh replay.
    pub fn rewind(&mut self) -> Result<()> {
        self.reposition(None, None)?;
        self.worker.idle_mut()?.fresh();
        self.stats.clear();
        for s in &self.sink_stats {
            s.clear();
        }
        Ok(())
    }

    /// Stop, drop the record in hand, and take logical time to `position`
    /// (`None`: a fresh replay, anchored on its first record) in the
    /// queue's current epoch: the next start plays the queue from there,
    /// its first record due `(t − position) / speed` after the start.
    /// `sought` is the log time a seek went to: the position reported until
    /// a record is taken.
    pub fn reposition(&mut self, position: Option<i64>, sought: Option<i64>) -> Result<()> {
        self.stop()?;
        let epoch = self.claim.queue().epoch();
        let worker = self.worker.idle_mut()?;
        worker.held = None;
        worker.position = position;
        worker.sought = sought;
        worker.gate_left_ns = None;
        worker.ended = false;
        worker.epoch = epoch;
        worker.timeline.jump();
        worker.delay_pending = false;
        self.stats
            .position
            .delivered
            .store(false, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
