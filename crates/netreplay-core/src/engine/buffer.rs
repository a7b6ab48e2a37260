//! `BufferData`: a producer thread keeping the ring full, and the [`Queue`]
//! handle through which the ring is consumed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use crate::engine::pass::{Offered, PassCursor, PassPlan, SourcePosition};
use crate::engine::ring::{ring, RingConsumer, RingProducer, RingShared, Slot};
use crate::engine::thread::StateThread;
use crate::format::RecordSource;
use crate::record;
use crate::{Error, Result};

/// Default bound on the payload bytes held in a ring.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// How many times a producer that found the ring full yields before it
/// parks: at infinite speed the consumer frees a quarter ring within a few.
const YIELDS_BEFORE_PARK: u32 = 8;
/// The longest a parked producer sleeps: the consumer or a stop unparks it
/// sooner; this only bounds a wake-up that was somehow missed.
const PRODUCER_PARK_LIMIT: Duration = Duration::from_millis(100);

struct QueueInner {
    consumer: Mutex<RingConsumer>,
    ring: Arc<RingShared>,
    /// Bumped by every flush: a scheduler holding a position from an older
    /// epoch starts again from the beginning.
    epoch: AtomicU64,
    /// Set while a scheduler is attached: the ring has one consumer.
    claimed: AtomicBool,
}

/// The consumer side of a ring, shareable: a scheduler claims it, or records
/// can be taken one by one when no scheduler is attached.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<QueueInner>,
}

/// The sole consumer's claim on a [`Queue`]; released on drop.
pub struct QueueClaim {
    queue: Queue,
}

/// The most records a ring may hold. Its slots are allocated up front
/// (about a hundred bytes each), so a bound keeps an absurd `length` from
/// aborting the process on a failed allocation; past a few thousand records
/// a longer ring buys nothing (`maxBytes` bounds the payloads).
pub const MAX_LENGTH: usize = 1 << 20;

/// The domain of a ring's size (`length`, `maxBytes`).
fn check_ring_size(capacity: usize, max_bytes: usize) -> Result<()> {
    if capacity == 0 || capacity > MAX_LENGTH {
        return Err(Error::invalid(
            "length",
            format!("must be an integer between 1 and {MAX_LENGTH}, got {capacity}"),
        ));
    }
    if max_bytes == 0 {
        return Err(Error::invalid("maxBytes", "must be an integer > 0"));
    }
    Ok(())
}

impl Queue {
    /// A new ring; returns the queue and the ring's producer side.
    pub fn new(capacity: usize, max_bytes: usize) -> Result<(Queue, RingProducer)> {
        check_ring_size(capacity, max_bytes)?;
        let (producer, consumer) = ring(capacity, max_bytes);
        let queue = Queue {
            inner: Arc::new(QueueInner {
                ring: consumer.shared().clone(),
                consumer: Mutex::new(consumer),
                epoch: AtomicU64::new(0),
                claimed: AtomicBool::new(false),
            }),
        };
        Ok((queue, producer))
    }

    pub fn capacity(&self) -> usize {
        self.inner.ring.capacity()
    }

    pub fn max_bytes(&self) -> usize {
        self.inner.ring.max_bytes()
    }

    /// Payload bytes held now.
    pub fn bytes(&self) -> usize {
        self.inner.ring.bytes()
    }

    /// Slots held now (approximate while both threads run).
    pub fn size(&self) -> usize {
        self.inner.ring.len()
    }

    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// Become the queue's only consumer.
    pub fn claim(&self) -> Result<QueueClaim> {
        self.inner
            .claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| {
                Error::State(
                    "this queue already has a consumer (a ScheduleBroadcasts); close it first"
                        .into(),
                )
            })?;
        Ok(QueueClaim {
            queue: self.clone(),
        })
    }

    pub fn is_claimed(&self) -> bool {
        self.inner.claimed.load(Ordering::Acquire)
    }

    /// Take one slot when no scheduler consumes the queue.
    pub fn pop(&self) -> Result<Option<Slot>> {
        if self.is_claimed() {
            return Err(Error::State(
                "this queue is consumed by a ScheduleBroadcasts; records cannot be taken from it"
                    .into(),
            ));
        }
        Ok(self.lock_idle()?.pop())
    }

    /// Drop everything buffered and start a new epoch.
    pub fn flush(&self) -> Result<usize> {
        let dropped = self.lock_idle()?.clear();
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(dropped)
    }

    fn lock_idle(&self) -> Result<MutexGuard<'_, RingConsumer>> {
        match self.inner.consumer.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::State(
                "the queue is being consumed by a running ScheduleBroadcasts; stop it first".into(),
            )),
        }
    }
}

impl QueueClaim {
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Exclusive access to the ring for a scheduler run.
    pub fn consumer(&self) -> MutexGuard<'_, RingConsumer> {
        self.queue
            .inner
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for QueueClaim {
    fn drop(&mut self) {
        self.queue.inner.claimed.store(false, Ordering::Release);
    }
}

/// Flags the producer thread shares with its owner.
#[derive(Default)]
struct BufferFlags {
    stop: AtomicBool,
    data_pending: AtomicBool,
    ready: AtomicBool,
}

/// What the producer thread owns while it runs, and gives back when it stops.
struct Producer {
    source: Box<dyn RecordSource>,
    ring: RingProducer,
    /// A slot read but not yet pushed: kept across stop/start, never dropped.
    pending: Option<Slot>,
    ended: bool,
    /// The passes: window, loops, filters, backfill.
    cursor: Box<PassCursor>,
    /// Slots decided by the cursor and not yet handed out (backfill, seams).
    queued: VecDeque<Slot>,
    /// The type of each of the source's streams, for the type filters.
    types: Vec<Option<String>>,
}

/// Records pushed between two yields of the producer's core while it fills
/// the ring: after a start (the one long burst of work in a timed replay) and
/// after each wait for room (a quarter of the ring). A burst must not hold a
/// core for a whole time slice (milliseconds) when the scheduler or the JS
/// thread is woken onto it. A producer that never waits (infinite speed, a
/// fast sink) is the bottleneck and yields only during its first fill.
const YIELD_EVERY: usize = 64;

/// What one step of the producer did.
enum Step {
    Pushed,
    Full,
    Done,
}

impl Producer {
    fn run(mut self, flags: &BufferFlags) -> Producer {
        let mut burst = self.ring.shared().capacity();
        let mut pushed = 0usize;
        while !flags.stop.load(Ordering::Acquire) {
            match self.step(flags) {
                Step::Pushed => {
                    pushed += 1;
                    if pushed < burst && pushed % YIELD_EVERY == 0 {
                        std::thread::yield_now();
                    }
                }
                Step::Full => {
                    self.wait_for_room(flags);
                    pushed = 0;
                    burst = self.ring.shared().capacity() - self.ring.shared().len();
                }
                Step::Done => break,
            }
        }
        // A stopped producer may resume on another thread.
        record::drop_spare_payloads();
        self
    }

    /// After a failed push, wait until a quarter of the ring is free, not
    /// just one slot: the producer then wakes once per quarter instead of
    /// once per record. At infinite speed to a UDP sink, where the ring
    /// stays full, waking per record kept a fifth of a core in `sched_yield`
    /// and the process used 4.5 µs of CPU per datagram; now 4.0 µs.
    /// Past a few yields it parks until the consumer unparks it: polling
    /// on a timer woke a producer behind a 1 kHz replay about 1,000 times a
    /// second (a quarter of the replay's CPU).
    fn wait_for_room(&self, flags: &BufferFlags) {
        let shared = self.ring.shared();
        let mut yields = 0;
        loop {
            if yields < YIELDS_BEFORE_PARK {
                std::thread::yield_now();
                yields += 1;
            } else {
                shared.park_until_refill_room(PRODUCER_PARK_LIMIT);
            }
            if shared.has_refill_room() || flags.stop.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// The next slot to push: what the cursor queued, else the next record
    /// it plays, else the end of a pass (a seam, or the end).
    fn next_slot(&mut self) -> Slot {
        loop {
            if let Some(slot) = self.queued.pop_front() {
                return slot;
            }
            if self.ended {
                // Only after an error that was queued behind records.
                return Slot::End;
            }
            match self.source.next_record() {
                Ok(Some(record)) => {
                    let message_type = self
                        .types
                        .get(record.stream as usize)
                        .and_then(|t| t.as_deref());
                    match self.cursor.offer(record, message_type, &mut self.queued) {
                        Offered::Queued | Offered::Skipped => continue,
                        Offered::PassEnded => {}
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    // Records before the error were pushed; nothing after it is.
                    self.ended = true;
                    self.queued.push_back(Slot::Error(err));
                    continue;
                }
            }
            if self.cursor.needs_measure() {
                // Entered by a seek: read one whole pass for its geometry.
                if let Err(err) = self.measure_pass() {
                    self.ended = true;
                    self.queued.push_back(Slot::Error(err));
                    continue;
                }
            }
            match self.cursor.end_pass(&mut self.queued) {
                Some(position) => {
                    if let Err(err) = self.position_source(position) {
                        self.ended = true;
                        self.queued.push_back(Slot::Error(err));
                    }
                }
                None => {
                    self.ended = true;
                    self.queued.push_back(Slot::End);
                }
            }
        }
    }

    /// Read a whole pass from its start, for its geometry only (see
    /// [`PassCursor::needs_measure`]); the caller positions the source next.
    fn measure_pass(&mut self) -> Result<()> {
        self.position_source(self.cursor.pass_start())?;
        let (source, types) = (&mut self.source, &self.types);
        self.cursor.measure(|| {
            Ok(source.next_record()?.map(|record| {
                let message_type = types.get(record.stream as usize).and_then(|t| t.as_deref());
                (record, message_type)
            }))
        })
    }

    fn position_source(&mut self, position: SourcePosition) -> Result<()> {
        match position {
            SourcePosition::Start => self.source.reset(),
            SourcePosition::At(t) => self.source.seek(t),
        }
    }

    /// Read one slot (or take the pending one) and push it.
    fn step(&mut self, flags: &BufferFlags) -> Step {
        let slot = match self.pending.take() {
            Some(slot) => slot,
            None if self.ended && self.queued.is_empty() => return Step::Done,
            None => {
                if record::needs_spare_payloads() {
                    record::keep_spare_payloads(|| self.ring.take_spare());
                }
                self.next_slot()
            }
        };
        let last = matches!(slot, Slot::End | Slot::Error(_));
        match self.ring.push(slot) {
            Ok(()) => {
                if last {
                    flags.data_pending.store(false, Ordering::Release);
                    flags.ready.store(true, Ordering::Release);
                } else if self.ring.is_full() {
                    flags.ready.store(true, Ordering::Release);
                }
                Step::Pushed
            }
            Err(slot) => {
                self.pending = Some(slot);
                flags.ready.store(true, Ordering::Release);
                Step::Full
            }
        }
    }
}

/// Options of [`BufferData`].
#[derive(Debug, Clone, Copy)]
pub struct BufferOptions {
    /// Ring capacity in records.
    pub length: usize,
    /// Ring capacity in payload bytes.
    pub max_bytes: usize,
}

impl BufferOptions {
    /// Check the options before anything is built from them.
    pub fn validate(&self) -> Result<()> {
        check_ring_size(self.length, self.max_bytes)
    }
}

impl Default for BufferOptions {
    fn default() -> Self {
        BufferOptions {
            length: 5000,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Reads a source on a native thread into a bounded ring (MCL's BufferData).
pub struct BufferData {
    queue: Queue,
    flags: Arc<BufferFlags>,
    producer: StateThread<Producer>,
    closed: bool,
}

impl BufferData {
    pub fn new(source: Box<dyn RecordSource>, options: BufferOptions) -> Result<Self> {
        BufferData::with_plan(source, options, PassPlan::default())
    }

    /// A producer that plays `plan`'s passes of `source`: its window,
    /// loops, filters and backfill.
    pub fn with_plan(
        mut source: Box<dyn RecordSource>,
        options: BufferOptions,
        plan: PassPlan,
    ) -> Result<Self> {
        plan.validate()?;
        let (queue, ring) = Queue::new(options.length, options.max_bytes)?;
        let types = source
            .streams()
            .iter()
            .map(|s| s.message_type.clone())
            .collect();
        let mut cursor = Box::new(PassCursor::new(plan));
        if let SourcePosition::At(t) = cursor.position(None, 0) {
            source.seek(t)?;
        }
        Ok(BufferData {
            queue,
            flags: Arc::default(),
            producer: StateThread::new(
                "buffer",
                "its reader is",
                Producer {
                    source,
                    ring,
                    pending: None,
                    ended: false,
                    cursor,
                    queued: VecDeque::new(),
                    types,
                },
            ),
            closed: false,
        })
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Start (or resume) buffering; false if already buffering.
    pub fn start(&mut self) -> Result<bool> {
        if self.is_alive() {
            return Ok(false);
        }
        let flags = self.flags.clone();
        let producer = self.idle_producer()?;
        flags.stop.store(false, Ordering::Release);
        flags.data_pending.store(
            !producer.ended || producer.pending.is_some() || !producer.queued.is_empty(),
            Ordering::Release,
        );
        // Read the first record here, on the caller's thread: a scheduler
        // started next finds it at once, however late the new thread first
        // runs (a new thread on an idle vCPU can wait milliseconds). Not
        // when reaching it may mean reading far (backfill, filters): the
        // caller may be JS's event loop.
        if producer.ring.shared().is_empty() && !producer.cursor.reads_ahead() {
            producer.step(&flags);
        }
        self.producer.spawn(move |producer| producer.run(&flags))?;
        Ok(true)
    }

    /// Stop buffering, keeping the read position and every record read; false
    /// if it was not buffering.
    pub fn stop(&mut self) -> Result<bool> {
        let was_alive = self.is_alive();
        self.flags.stop.store(true, Ordering::Release);
        self.producer.unpark();
        self.producer.join()?;
        Ok(was_alive)
    }

    /// Stop, and release the source now — its files, descriptors and
    /// mappings — rather than when this object is dropped (for a JS owner,
    /// at garbage collection). What was buffered is dropped too when no
    /// scheduler holds the queue. Safe to call twice; a later start or
    /// reset is a state error.
    pub fn close(&mut self) -> Result<()> {
        self.stop()?;
        if self.producer.release()? {
            self.flags.data_pending.store(false, Ordering::Release);
        }
        self.closed = true;
        let _ = self.queue.flush();
        Ok(())
    }

    /// The idle producer, or the error saying why there is none.
    fn idle_producer(&mut self) -> Result<&mut Producer> {
        if self.closed {
            return Err(Error::State("this BufferData is closed".into()));
        }
        self.producer.idle_mut()
    }

    /// Stop and flush the ring (a new epoch): the first step of a reset or
    /// a seek. Returns the idle producer, its pending record dropped.
    fn stop_and_flush(&mut self) -> Result<&mut Producer> {
        self.stop()?;
        self.idle_producer()?;
        self.queue.flush()?;
        self.flags.ready.store(false, Ordering::Release);
        self.flags.data_pending.store(false, Ordering::Release);
        let producer = self.idle_producer()?;
        producer.pending = None;
        producer.ended = false;
        producer.queued.clear();
        Ok(producer)
    }

    /// Stop, flush the ring and rewind to the start of the first pass.
    pub fn reset(&mut self) -> Result<()> {
        let producer = self.stop_and_flush()?;
        let position = producer.cursor.position(None, 0);
        producer.position_source(position)
    }

    /// Stop, flush the ring and position the source at its first record
    /// with time >= `t_ns` (see [`RecordSource::seek`]). Buffering stays
    /// stopped until the next `start`.
    pub fn seek(&mut self, t_ns: i64) -> Result<()> {
        self.seek_in_pass(t_ns, 0)
    }

    /// [`BufferData::seek`] within pass `pass` (of a loop): the passes
    /// after it are still to come.
    pub fn seek_in_pass(&mut self, t_ns: i64, pass: u64) -> Result<()> {
        let producer = self.stop_and_flush()?;
        let position = producer.cursor.position(Some(t_ns), pass);
        producer.position_source(position)
    }

    /// The times of the source's first and last records (see
    /// [`RecordSource::time_range`]); the producer must be stopped.
    pub fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        self.idle_producer()?.source.time_range()
    }

    pub fn is_alive(&self) -> bool {
        self.producer.is_alive()
    }

    /// MCL's meaning: true from `start()` until the source is exhausted.
    pub fn is_data_pending(&self) -> bool {
        self.flags.data_pending.load(Ordering::Acquire)
    }

    /// Latches true once the ring was full or the data exhausted; cleared by reset.
    pub fn is_ready(&self) -> bool {
        self.flags.ready.load(Ordering::Acquire)
    }

    /// Records skipped as malformed by the source (available while stopped).
    pub fn skipped(&self) -> Option<u64> {
        self.producer.idle().map(|p| p.source.skipped())
    }
}

impl Drop for BufferData {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
