//! `ScheduleBroadcasts`: the consumer thread that hands each record to the
//! sinks at its absolute deadline (DESIGN.md, "Timing semantics").

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::buffer::{Queue, QueueClaim};
use crate::clock::{now_ns, set_precise_timer_slack, spin_window, Anchor, Speed, BUSY_WAIT_NS};
use crate::ring::Slot;
use crate::sink::{Delivery, Outcome, Sink};
use crate::stats::ReplayStats;
use crate::{Error, Record, Result};

/// The longest a waiting scheduler sleeps without looking at its control
/// flags; control changes also wake it at once (unpark).
const MAX_PARK: Duration = Duration::from_millis(20);
/// How long a fresh run waits awake for its first record before sleeping.
const START_SPIN_NS: i64 = 5_000_000;
/// Sleep while the ring is starved: short, so a late producer costs little.
const STARVED_PARK: Duration = Duration::from_micros(200);

/// Requests from the owner to the running scheduler thread.
pub struct Control {
    stop: AtomicBool,
    speed_bits: AtomicU64,
    speed_changed: AtomicBool,
    /// Waits up to this long are spun through (see [`spin_window`]).
    busy_wait_ns: AtomicI64,
    thread: Mutex<Option<Thread>>,
}

impl Control {
    fn new(speed: Speed) -> Self {
        Control {
            stop: AtomicBool::new(false),
            speed_bits: AtomicU64::new(speed.get().to_bits()),
            speed_changed: AtomicBool::new(false),
            busy_wait_ns: AtomicI64::new(BUSY_WAIT_NS),
            thread: Mutex::new(None),
        }
    }

    pub fn speed(&self) -> Speed {
        Speed::new(f64::from_bits(self.speed_bits.load(Ordering::Acquire))).expect("validated")
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn interrupted(&self) -> bool {
        self.stop_requested() || self.speed_changed.load(Ordering::Acquire)
    }

    fn wake(&self) {
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

    /// Wait for `deadline`: sleep coarsely, then spin the last stretch.
    /// False if interrupted by stop or a speed change first.
    pub fn wait_until(&self, deadline: i64) -> bool {
        let spin = spin_window(
            deadline.saturating_sub(now_ns()),
            self.busy_wait_ns.load(Ordering::Relaxed),
        );
        loop {
            if self.interrupted() {
                return false;
            }
            let remaining = deadline.saturating_sub(now_ns());
            if remaining <= 0 {
                return true;
            }
            if remaining > spin {
                let sleep = Duration::from_nanos((remaining - spin) as u64);
                std::thread::park_timeout(sleep.min(MAX_PARK));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// State carried from one run of the thread to the next (pause/resume).
struct Worker {
    sinks: Vec<Box<dyn Sink>>,
    /// The record taken from the ring but not yet delivered.
    held: Option<Record>,
    /// Logical (log) time reached when the last run stopped.
    position: Option<i64>,
    /// The last run saw the end of the data (or an error).
    ended: bool,
    /// The queue epoch `held`/`position` belong to.
    epoch: u64,
}

impl Worker {
    fn flush(&mut self, control: &Control) {
        for sink in &mut self.sinks {
            sink.flush(control);
        }
    }

    /// An error a sink raised to stop the replay (`failOnError`); batching
    /// sinks find theirs when they flush, not only when a record is delivered.
    fn sink_error(&mut self) -> Option<Error> {
        self.sinks.iter_mut().find_map(|s| s.take_error())
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
            let deadline = a.deadline(record.time_ns, speed);
            if now < deadline {
                self.flush(control);
                if let Some(err) = self.sink_error() {
                    break Outcome::Error(err);
                }
                if !control.wait_until(deadline) {
                    self.held = Some(record);
                    continue;
                }
                now = now_ns();
            } else if now > deadline && !speed.is_max() {
                // At infinite speed there is no deadline to be late for.
                stats.late.add(1);
            }
            let lateness_ns = if speed.is_max() {
                0
            } else {
                now.saturating_sub(deadline)
            };
            let delivery = Delivery {
                deadline_ns: deadline,
                lateness_ns,
            };
            for sink in &mut self.sinks {
                sink.deliver(&record, delivery, control);
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
}

/// Plays a queue to sinks on a native thread (MCL's ScheduleBroadcasts).
pub struct Scheduler {
    claim: Arc<QueueClaim>,
    control: Arc<Control>,
    stats: Arc<ReplayStats>,
    idle: Option<Worker>,
    thread: Option<JoinHandle<(Worker, Outcome)>>,
    last_outcome: Option<Outcome>,
}

impl Scheduler {
    /// Attach to `queue` as its only consumer.
    pub fn new(
        queue: &Queue,
        sinks: Vec<Box<dyn Sink>>,
        options: SchedulerOptions,
    ) -> Result<Self> {
        let claim = Arc::new(queue.claim()?);
        Ok(Scheduler {
            claim,
            control: Arc::new(Control::new(options.speed)),
            stats: Arc::default(),
            idle: Some(Worker {
                sinks,
                held: None,
                position: None,
                ended: false,
                epoch: queue.epoch(),
            }),
            thread: None,
            last_outcome: None,
        })
    }

    pub fn stats(&self) -> &Arc<ReplayStats> {
        &self.stats
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

    /// Start or resume; false if already running, or if the run has ended
    /// (until a rewind or a buffer reset). After the queue was flushed
    /// (buffer reset), starts from the beginning.
    pub fn start(&mut self) -> Result<bool> {
        if self.is_alive() {
            return Ok(false);
        }
        self.join()?;
        let mut worker = self.idle.take().ok_or_else(Self::lost)?;
        let epoch = self.claim.queue().epoch();
        if worker.epoch != epoch {
            worker.held = None;
            worker.position = None;
            worker.ended = false;
            worker.epoch = epoch;
            self.stats.clear();
        }
        if worker.ended {
            // The run already ended and reported it: a start without a
            // rewind has nothing to play and must not report the end twice.
            self.idle = Some(worker);
            return Ok(false);
        }
        self.control.stop.store(false, Ordering::Release);
        let (claim, control, stats) =
            (self.claim.clone(), self.control.clone(), self.stats.clone());
        let spawned = std::thread::Builder::new()
            .name("netreplay-scheduler".into())
            .spawn(move || {
                *control.thread.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::thread::current());
                let mut outcome = worker.run(&claim, &control, &stats);
                worker.flush(&control);
                // The final flush may fail what the run delivered last.
                if outcome == Outcome::End {
                    if let Some(err) = worker.sink_error() {
                        outcome = Outcome::Error(err);
                    }
                }
                for sink in &mut worker.sinks {
                    sink.finish(&outcome);
                }
                *control.thread.lock().unwrap_or_else(|p| p.into_inner()) = None;
                (worker, outcome)
            });
        match spawned {
            Ok(handle) => {
                self.thread = Some(handle);
                Ok(true)
            }
            Err(err) => Err(Error::State(format!(
                "cannot start the scheduler thread: {err}"
            ))),
        }
    }

    /// Stop (pause), keeping the position and the record in hand; false if
    /// it was not running.
    pub fn stop(&mut self) -> Result<bool> {
        let was_alive = self.is_alive();
        self.control.stop.store(true, Ordering::Release);
        self.control.wake();
        self.join()?;
        Ok(was_alive)
    }

    fn join(&mut self) -> Result<()> {
        if let Some(handle) = self.thread.take() {
            let (worker, outcome) = handle.join().map_err(|_| Self::lost())?;
            self.idle = Some(worker);
            self.last_outcome = Some(outcome);
        }
        Ok(())
    }

    fn lost() -> Error {
        Error::State("the scheduler thread failed; its sinks are lost".into())
    }

    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// How the last finished run ended (joins a thread that ended by itself).
    pub fn last_outcome(&mut self) -> Result<Option<&Outcome>> {
        if !self.is_alive() {
            self.join()?;
        }
        Ok(self.last_outcome.as_ref())
    }

    /// Forget the position: the next start plays from the queue's next record
    /// as a fresh replay.
    pub fn rewind(&mut self) -> Result<()> {
        self.stop()?;
        if let Some(worker) = &mut self.idle {
            worker.held = None;
            worker.position = None;
            worker.ended = false;
        }
        self.stats.clear();
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
