//! Where the scheduler hands records at their deadline.

use crate::engine::control::Waiter;
use crate::{Error, Record};

/// Timing of one handover, in CLOCK_MONOTONIC nanoseconds (or the virtual
/// clock's, with virtual time).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Delivery {
    /// The run the record belongs to (the queue's epoch: bumped by every
    /// rewind and seek), so a consumer can tell a stale record.
    pub run: u64,
    /// When the record was due; `None` at infinite speed.
    pub deadline_ns: Option<i64>,
    /// Actual − scheduled handover time (0 at infinite speed).
    pub lateness_ns: i64,
    /// The time reported for the record: its log time, continued across
    /// loops with continuous time.
    pub time_ns: i64,
    /// The pass (loop) it belongs to, counting from 0.
    pub pass: u64,
    /// Delivered ahead of the position as the last of its (type, topic)
    /// before it (backfill), at once.
    pub backfill: bool,
    /// The next record is due by now too (a burst, or a replay behind its
    /// schedule): a sink may queue this one and send both together, since
    /// the scheduler flushes the sinks before it next waits.
    pub more_due: bool,
}

/// What happens on the timeline besides records, in order with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimelineEvent {
    /// Pass `pass` (counting from 0) begins: `pass` loops are complete.
    Loop { pass: u64 },
    /// A clock tick: the reported logical time now.
    Clock { time_ns: i64 },
}

/// How a scheduler run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The producer signalled the end of the data.
    End,
    /// The producer met an error; every record before it was delivered.
    Error(Error),
    /// `stop()` was called (pause); the run can resume.
    Stopped,
    /// The run paused itself: a step, burst or playUntil reached its goal.
    Paused,
}

/// A destination for records. All calls come from the scheduler thread.
pub trait Sink: Send {
    /// Hand one record over, at its deadline. Must not block for long; a sink
    /// that has to wait (backpressure) waits through `waiter`, which says
    /// whether it may (its [`LagPolicy`](crate::engine::LagPolicy)) and cuts
    /// the wait short for a stop request.
    fn deliver(&mut self, record: &Record, delivery: Delivery, waiter: Waiter<'_>);
    /// Hand over anything batched. Called before every wait and when a run ends.
    fn flush(&mut self, _waiter: Waiter<'_>) {}
    /// A timeline event of run `run`, after the records before it.
    fn event(&mut self, _run: u64, _event: TimelineEvent, _waiter: Waiter<'_>) {}
    /// Run `run` ended (after a final `flush`).
    fn finish(&mut self, _run: u64, _outcome: &Outcome) {}
    /// An error that must stop the replay (a sink asked to fail on errors);
    /// checked after each delivery.
    fn take_error(&mut self) -> Option<Error> {
        None
    }
}

/// Discards records: for throughput measurement of the engine itself.
#[derive(Default)]
pub struct NullSink {
    pub count: u64,
}

impl Sink for NullSink {
    fn deliver(&mut self, _record: &Record, _delivery: Delivery, _waiter: Waiter<'_>) {
        self.count += 1;
    }
}
