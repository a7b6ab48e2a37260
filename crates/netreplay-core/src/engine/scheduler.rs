//! `ScheduleBroadcasts`: the consumer thread that hands each record to the
//! sinks at its absolute deadline (DESIGN.md, "Timing semantics").

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::buffer::{Queue, QueueClaim};
use crate::engine::clock::{now_ns, Anchor, Speed, BUSY_WAIT_NS};
use crate::engine::control::{Control, LagPolicy, Waiter};
use crate::engine::ring::Slot;
use crate::engine::sink::{Delivery, Outcome, Sink};
use crate::engine::stats::{ReplayStats, SinkStats};
use crate::engine::thread::StateThread;
use crate::sys::set_precise_timer_slack;
use crate::{Error, Record, Result};

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

/// State carried from one run of the thread to the next (pause/resume).
struct Worker {
    sinks: Vec<SinkEntry>,
    /// The record taken from the ring but not yet delivered.
    held: Option<Record>,
    /// Logical (log) time reached when the last run stopped.
    position: Option<i64>,
    /// The last run saw the end of the data (or an error).
    ended: bool,
    /// The queue epoch `held`/`position` belong to: the run number every
    /// delivery and outcome carries.
    epoch: u64,
    /// How the last run ended (its run is `epoch`).
    outcome: Option<Outcome>,
}

impl Worker {
    fn flush(&mut self, control: &Control) {
        for entry in &mut self.sinks {
            let waiter = Waiter::new(control, entry.lag, &entry.stats);
            entry.sink.flush(waiter);
        }
    }

    /// An error a sink raised to stop the replay (`failOnError`); batching
    /// sinks find theirs when they flush, not only when a record is delivered.
    fn sink_error(&mut self) -> Option<Error> {
        self.sinks.iter_mut().find_map(|s| s.sink.take_error())
    }

    fn run(&mut self, claim: &QueueClaim, control: &Control, stats: &ReplayStats) -> Outcome {
        set_precise_timer_slack();
        if self.ended {
            return Outcome::End;
        }
        let run_start = now_ns();
        let mut consumer = claim.consumer();
        let mut speed = control.speed();
        control.speed_changed.store(false, Ordering::Release);
        // Resume: logical time continues from where it froze.
        let mut anchor = self.position.map(|log_ns| Anchor {
            wall_ns: now_ns(),
            log_ns,
        });
        let publish = |anchor: Option<Anchor>, speed: Speed| {
            stats.set_anchor(anchor.filter(|_| !speed.is_max()));
        };
        publish(anchor, speed);
        let mut last_delivered = self.position;
        let logical_now = |anchor: &Anchor, speed: Speed, last: Option<i64>| {
            if speed.is_max() {
                last.unwrap_or(anchor.log_ns)
            } else {
                anchor.logical_at(now_ns(), speed)
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
                        wall_ns: now_ns(),
                        log_ns: logical_now(&a, speed, last_delivered),
                    });
                }
                speed = new_speed;
                publish(anchor, speed);
            }
            let record = match self.held.take() {
                Some(record) => record,
                None => match consumer.pop() {
                    Some(Slot::Record(record)) => record,
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
                        continue;
                    }
                },
            };
            // Once anchored, infinite speed needs no clock: a read per record
            // was a tenth of the loop.
            let mut now = if speed.is_max() && anchor.is_some() {
                0
            } else {
                now_ns()
            };
            // A fresh run starts on its first record: due now, not late.
            let a = match anchor {
                Some(a) => a,
                None => {
                    let a = Anchor {
                        wall_ns: now,
                        log_ns: record.time_ns,
                    };
                    anchor = Some(a);
                    publish(anchor, speed);
                    a
                }
            };
            // At infinite speed there is no deadline to wait for or be late for.
            let deadline = a.deadline(record.time_ns, speed);
            if let Some(due) = deadline {
                if now < due {
                    self.flush(control);
                    if let Some(err) = self.sink_error() {
                        break Outcome::Error(err);
                    }
                    if !control.wait_until(due) {
                        self.held = Some(record);
                        continue;
                    }
                    now = now_ns();
                } else if now > due {
                    stats.late.add(1);
                }
            }
            let delivery = Delivery {
                run: self.epoch,
                deadline_ns: deadline,
                lateness_ns: deadline.map_or(0, |due| now.saturating_sub(due)),
            };
            let lateness_ns = delivery.lateness_ns;
            for entry in &mut self.sinks {
                let waiter = Waiter::new(control, entry.lag, &entry.stats);
                entry.sink.deliver(&record, delivery, waiter);
            }
            stats.delivered.add(1);
            stats.lateness.record(lateness_ns);
            last_delivered = Some(record.time_ns);
            if let Some(err) = self.sink_error() {
                break Outcome::Error(err);
            }
        };
        match &outcome {
            Outcome::Stopped => {
                if let Some(a) = anchor {
                    let mut pos = logical_now(&a, speed, last_delivered);
                    if let Some(held) = &self.held {
                        pos = pos.min(held.time_ns);
                    }
                    self.position = Some(pos);
                }
            }
            Outcome::End | Outcome::Error(_) => self.ended = true,
        }
        outcome
    }
}

/// Options of [`Scheduler`].
#[derive(Debug, Clone, Copy)]
pub struct SchedulerOptions {
    pub speed: Speed,
    /// Waits up to this long are spun through (see
    /// [`spin_window`](crate::engine::spin_window)). `None`: [`BUSY_WAIT_NS`],
    /// or 0 when a sink hands records to another thread
    /// ([`Sink::wakes_a_thread`]): a thread spinning on one core makes the
    /// thread it wakes queue behind it (the kernel places a wakee next to
    /// its waker) for up to a time slice, milliseconds.
    pub busy_wait_ns: Option<i64>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            speed: Speed::new(1.0).expect("1 is a speed"),
            busy_wait_ns: None,
        }
    }
}

/// Plays a queue to sinks on a native thread (MCL's ScheduleBroadcasts).
pub struct Scheduler {
    claim: Arc<QueueClaim>,
    control: Arc<Control>,
    stats: Arc<ReplayStats>,
    sink_stats: Vec<Arc<SinkStats>>,
    worker: StateThread<Worker>,
}

impl Scheduler {
    /// Attach to `queue` as its only consumer.
    pub fn new(queue: &Queue, sinks: Vec<SinkEntry>, options: SchedulerOptions) -> Result<Self> {
        let claim = Arc::new(queue.claim()?);
        let control = Control::new(options.speed);
        let busy_wait_ns = options.busy_wait_ns.unwrap_or_else(|| {
            if sinks.iter().any(|s| s.sink.wakes_a_thread()) {
                0
            } else {
                BUSY_WAIT_NS
            }
        });
        control
            .busy_wait_ns
            .store(busy_wait_ns.max(0), Ordering::Relaxed);
        Ok(Scheduler {
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
                    ended: false,
                    epoch: queue.epoch(),
                    outcome: None,
                },
            ),
        })
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

    /// Spin through waits up to `ns` instead of sleeping (default
    /// [`BUSY_WAIT_NS`]; 0 sleeps before every wait). Takes effect at the next wait.
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
        if self.is_alive() {
            return Ok(false);
        }
        let epoch = self.claim.queue().epoch();
        let worker = self.worker.idle_mut()?;
        if worker.epoch != epoch {
            worker.held = None;
            worker.position = None;
            worker.ended = false;
            worker.epoch = epoch;
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
        self.control.stop.store(false, Ordering::Release);
        self.control.finished.store(false, Ordering::Release);
        let (claim, control, stats) =
            (self.claim.clone(), self.control.clone(), self.stats.clone());
        self.worker.spawn(move |mut worker| {
            *control.thread.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(std::thread::current());
            let mut outcome = worker.run(&claim, &control, &stats);
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
        self.reposition(None)?;
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
    pub fn reposition(&mut self, position: Option<i64>) -> Result<()> {
        self.stop()?;
        let epoch = self.claim.queue().epoch();
        let worker = self.worker.idle_mut()?;
        worker.held = None;
        worker.position = position;
        worker.ended = false;
        worker.epoch = epoch;
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
