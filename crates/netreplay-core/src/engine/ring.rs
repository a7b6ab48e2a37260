//! Bounded single-producer single-consumer ring of [`Slot`]s, bounded by
//! count (rtrb's wait-free ring) and by payload bytes (one shared counter).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use crate::{Error, Record};

/// What the scheduler needs of a pass that ended to time the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassInfo {
    /// The pass that ended, counting from 0.
    pub pass: u64,
    /// Log time from the pass's first record to its last.
    pub span_ns: i64,
    /// The mean gap between its records (0 with fewer than two): the gap
    /// that separates its last record from the next pass's first.
    pub gap_ns: i64,
}

/// What travels through the ring: records, then exactly one end marker or
/// error, so the consumer sees the end in order, after the last record.
#[derive(Debug)]
pub enum Slot {
    Record(Record),
    /// The last record of its (type, topic) before the position, delivered
    /// first and at once (backfill), before the records of a pass.
    Backfill(Record),
    /// One pass (loop) ended here and the next begins with the next record.
    Seam(PassInfo),
    /// The producer reached the end of the data.
    End,
    /// The producer met an error; records before it were all pushed.
    Error(Error),
}

impl Slot {
    fn heap_size(&self) -> usize {
        match self {
            Slot::Record(r) | Slot::Backfill(r) => r.heap_size(),
            _ => 0,
        }
    }
}

/// What one side of the ring has counted so far: written by that side only
/// (plain stores, no read-modify-write) and read by the other side rarely.
/// Counters shared by both sides, each updated by both on every record,
/// moved their cache line between the two cores each time: the ring's two
/// threads passed 2–3 M records/s, empty ones included.
#[derive(Debug, Default)]
#[repr(align(128))] // two cache lines: an adjacent-line prefetch stays off the other side's
struct SideCounts {
    /// Slots pushed (producer), or popped (consumer), ever.
    slots: AtomicUsize,
    /// Their payload bytes ([`Slot::heap_size`]).
    bytes: AtomicUsize,
    /// Capacity of the spare payload buffers given back (consumer), or taken
    /// back (producer), ever: the difference is bounded by `max_bytes`.
    spare_bytes: AtomicUsize,
}

/// What one side counted less what the other took: `pushed - popped` for
/// what the ring holds (SeqCst loads, see `has_refill_room`). A slot is
/// counted pushed just after it is published, so a reader racing a push may
/// see it popped first: the difference saturates at 0.
fn held(pushed: &AtomicUsize, popped: &AtomicUsize) -> usize {
    let popped = popped.load(Ordering::SeqCst);
    pushed.load(Ordering::SeqCst).saturating_sub(popped)
}

#[derive(Debug)]
pub struct RingShared {
    capacity: usize,
    max_bytes: usize,
    /// Written by the producer only.
    pushed: SideCounts,
    /// Written by the consumer only.
    popped: SideCounts,
    /// Set while the producer is parked in [`RingShared::park_until_refill_room`]:
    /// the consumer then unparks it once there is room, so a producer behind a
    /// slow consumer wakes once a quarter ring, not on a timer.
    producer_waiting: AtomicBool,
    producer: Mutex<Option<Thread>>,
}

impl RingShared {
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
    /// Payload bytes held now (exact when one side is idle).
    pub fn bytes(&self) -> usize {
        held(&self.pushed.bytes, &self.popped.bytes)
    }
    /// Slots held now (exact when one side is idle).
    pub fn len(&self) -> usize {
        held(&self.pushed.slots, &self.popped.slots)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether a producer that found the ring full should fill it again: the
    /// consumer has taken a quarter of it, by count and by bytes, or all of it.
    pub fn has_refill_room(&self) -> bool {
        // SeqCst loads (in `held`): with the consumer's SeqCst store of its
        // count and the flag, no wake-up is lost (see `park_until_refill_room`).
        let len = self.len();
        len == 0
            || (len + (self.capacity / 4).max(1) <= self.capacity
                && self.bytes() <= self.max_bytes - self.max_bytes / 4)
    }

    /// Park the calling thread (the producer) until the consumer has made
    /// refill room, it is unparked (a stop), or `limit` passes.
    pub fn park_until_refill_room(&self, limit: Duration) {
        *self.producer.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current());
        // The flag is set before the room is tested and the consumer
        // stores its count before it tests the flag, all SeqCst: either
        // this test sees the room or the consumer sees the flag and unparks.
        self.producer_waiting.store(true, Ordering::SeqCst);
        if !self.has_refill_room() {
            std::thread::park_timeout(limit);
        }
        self.producer_waiting.store(false, Ordering::Relaxed);
    }

    /// Called by the consumer after a pop that found the producer waiting.
    fn wake_producer(&self) {
        if self.has_refill_room() && self.producer_waiting.swap(false, Ordering::AcqRel) {
            if let Some(thread) = &*self.producer.lock().unwrap_or_else(|p| p.into_inner()) {
                thread.unpark();
            }
        }
    }
}

/// Add `n` to a counter only this thread writes.
fn bump(counter: &AtomicUsize, n: usize, order: Ordering) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), order);
}

pub struct RingProducer {
    inner: rtrb::Producer<Slot>,
    shared: Arc<RingShared>,
    spares: rtrb::Consumer<Vec<u8>>,
    /// The consumer's byte count when last read: the producer's view of the
    /// bytes held is then at least the true one, and the count is read again
    /// only when that view says the ring is full.
    popped_bytes_seen: usize,
}

pub struct RingConsumer {
    inner: rtrb::Consumer<Slot>,
    shared: Arc<RingShared>,
    /// Payload buffers of delivered records, back to the producer's readers
    /// to fill again: the ring's records then cost no allocation once warm.
    spares: rtrb::Producer<Vec<u8>>,
    /// The producer's count of spare bytes taken back when last read (as
    /// [`RingProducer::popped_bytes_seen`], for the spares' bound).
    spares_taken_seen: usize,
}

/// A ring of at most `capacity` slots and `max_bytes` payload bytes. A single
/// record larger than `max_bytes` still passes when the ring is empty, so no
/// record can block the stream for ever.
pub fn ring(capacity: usize, max_bytes: usize) -> (RingProducer, RingConsumer) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    // As many spares as records: a producer refilling a drained ring then
    // finds a buffer for each record.
    let (spares_in, spares_out) = rtrb::RingBuffer::new(capacity);
    let shared = Arc::new(RingShared {
        capacity,
        max_bytes,
        pushed: SideCounts::default(),
        popped: SideCounts::default(),
        producer_waiting: AtomicBool::new(false),
        producer: Mutex::new(None),
    });
    (
        RingProducer {
            inner: producer,
            shared: shared.clone(),
            spares: spares_out,
            popped_bytes_seen: 0,
        },
        RingConsumer {
            inner: consumer,
            shared,
            spares: spares_in,
            spares_taken_seen: 0,
        },
    )
}

impl RingProducer {
    /// Push, or give the slot back when the ring is full (by count or bytes).
    pub fn push(&mut self, slot: Slot) -> Result<(), Slot> {
        let size = slot.heap_size();
        let pushed = &self.shared.pushed;
        let pushed_bytes = pushed.bytes.load(Ordering::Relaxed);
        let mut held = pushed_bytes.wrapping_sub(self.popped_bytes_seen);
        if held > 0 && held.saturating_add(size) > self.shared.max_bytes {
            self.popped_bytes_seen = self.shared.popped.bytes.load(Ordering::Acquire);
            held = pushed_bytes.wrapping_sub(self.popped_bytes_seen);
            if held > 0 && held.saturating_add(size) > self.shared.max_bytes {
                return Err(slot);
            }
        }
        self.inner
            .push(slot)
            .map_err(|rtrb::PushError::Full(slot)| slot)?;
        // Counted after publishing: a reader of `len` or `bytes` that races
        // this sees the slot a moment late, never a count below zero.
        pushed
            .bytes
            .store(pushed_bytes.wrapping_add(size), Ordering::Release);
        bump(&pushed.slots, 1, Ordering::Release);
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// A payload buffer the consumer gave back, if one is waiting.
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        let spare = self.spares.pop().ok()?;
        bump(
            &self.shared.pushed.spare_bytes,
            spare.capacity(),
            Ordering::Release,
        );
        Some(spare)
    }

    pub fn shared(&self) -> &Arc<RingShared> {
        &self.shared
    }
}

impl RingConsumer {
    pub fn pop(&mut self) -> Option<Slot> {
        let slot = self.inner.pop().ok()?;
        let popped = &self.shared.popped;
        bump(&popped.bytes, slot.heap_size(), Ordering::Release);
        // SeqCst, then the flag: see `park_until_refill_room`.
        bump(&popped.slots, 1, Ordering::SeqCst);
        if self.shared.producer_waiting.load(Ordering::SeqCst) {
            self.shared.wake_producer();
        }
        Some(slot)
    }

    /// The next slot if it is a record; any other slot stays for [`pop`].
    ///
    /// [`pop`]: RingConsumer::pop
    pub fn pop_record(&mut self) -> Option<Record> {
        if !matches!(self.inner.peek(), Ok(Slot::Record(_))) {
            return None;
        }
        // This is the only consumer: the slot peeked is the slot popped.
        match self.pop() {
            Some(Slot::Record(record)) => Some(record),
            _ => None,
        }
    }

    /// Give a delivered record's payload buffer back to the producer; it is
    /// dropped instead when it is large, or the spares hold `max_bytes`.
    pub fn recycle(&mut self, payload: Vec<u8>) {
        let capacity = payload.capacity();
        if capacity == 0 || capacity > crate::record::MAX_SPARE_CAPACITY {
            return;
        }
        let given = &self.shared.popped.spare_bytes;
        let given_bytes = given.load(Ordering::Relaxed);
        let max = self.shared.max_bytes;
        if given_bytes.wrapping_sub(self.spares_taken_seen) + capacity > max {
            self.spares_taken_seen = self.shared.pushed.spare_bytes.load(Ordering::Acquire);
            if given_bytes.wrapping_sub(self.spares_taken_seen) + capacity > max {
                return;
            }
        }
        // Counted before it is published, so that the producer's count of
        // what it took back never passes this one.
        given.store(given_bytes.wrapping_add(capacity), Ordering::Release);
        if self.spares.push(payload).is_err() {
            given.store(given_bytes, Ordering::Release);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.slots()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Drop everything in the ring; returns how many slots were dropped.
    pub fn clear(&mut self) -> usize {
        let mut n = 0;
        while self.pop().is_some() {
            n += 1;
        }
        n
    }

    pub fn shared(&self) -> &Arc<RingShared> {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: i64, n: usize) -> Slot {
        Slot::Record(Record {
            time_ns: t,
            stream: 0,
            topic: "".into(),
            payload: vec![0; n],
        })
    }

    /// Push, yielding while the ring is full.
    fn push_yielding(p: &mut RingProducer, mut slot: Slot) {
        while let Err(back) = p.push(slot) {
            slot = back;
            std::thread::yield_now();
        }
    }

    fn time_of(slot: Slot) -> i64 {
        match slot {
            Slot::Record(r) => r.time_ns,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn pop_record_leaves_other_slots() {
        let (mut p, mut c) = ring(4, usize::MAX);
        assert!(c.pop_record().is_none());
        p.push(rec(1, 8)).unwrap();
        p.push(Slot::End).unwrap();
        assert_eq!(c.pop_record().map(|r| r.time_ns), Some(1));
        assert_eq!(p.shared().bytes(), 0, "a record popped so is counted out");
        assert!(c.pop_record().is_none());
        assert!(matches!(c.pop(), Some(Slot::End)), "the end stays for pop");
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_count_fifo() {
        let (mut p, mut c) = ring(3, usize::MAX);
        for t in 0..3 {
            p.push(rec(t, 1)).unwrap();
        }
        assert!(p.push(rec(3, 1)).is_err());
        assert_eq!(c.len(), 3);
        assert_eq!(time_of(c.pop().unwrap()), 0);
        p.push(rec(3, 1)).unwrap();
        let rest: Vec<i64> = std::iter::from_fn(|| c.pop()).map(time_of).collect();
        assert_eq!(rest, vec![1, 2, 3]);
    }

    #[test]
    fn bounded_by_bytes_but_never_stuck() {
        let (mut p, mut c) = ring(100, 10);
        p.push(rec(0, 6)).unwrap();
        let back = p.push(rec(1, 6)).unwrap_err();
        assert_eq!(p.shared().bytes(), 6);
        c.pop().unwrap();
        assert_eq!(c.shared().bytes(), 0);
        // Larger than the whole bound, but the ring is empty: it passes.
        p.push(rec(2, 50)).unwrap();
        drop(back);
        assert_eq!(c.clear(), 1);
    }

    #[test]
    fn refill_room_is_a_free_quarter_by_count_and_by_bytes() {
        let (mut p, mut c) = ring(8, usize::MAX);
        for t in 0..8 {
            p.push(rec(t, 1)).unwrap();
        }
        assert!(!p.shared().has_refill_room());
        c.pop().unwrap();
        assert!(
            !p.shared().has_refill_room(),
            "one free slot is not a quarter"
        );
        c.pop().unwrap();
        assert!(p.shared().has_refill_room(), "two of eight are");

        let (mut p, mut c) = ring(100, 100);
        for t in 0..4 {
            p.push(rec(t, 25)).unwrap();
        }
        assert!(p.push(rec(4, 1)).is_err(), "full by bytes");
        assert!(!p.shared().has_refill_room());
        c.pop().unwrap();
        assert!(p.shared().has_refill_room(), "a quarter of the bytes free");

        // A ring too small to have a quarter refills at each free slot.
        let (mut p, mut c) = ring(2, usize::MAX);
        p.push(rec(0, 1)).unwrap();
        p.push(rec(1, 1)).unwrap();
        assert!(!p.shared().has_refill_room());
        c.pop().unwrap();
        assert!(p.shared().has_refill_room());
    }

    #[test]
    fn end_marker_keeps_order() {
        let (mut p, mut c) = ring(4, usize::MAX);
        p.push(rec(0, 1)).unwrap();
        p.push(Slot::End).unwrap();
        assert!(matches!(c.pop(), Some(Slot::Record(_))));
        assert!(matches!(c.pop(), Some(Slot::End)));
        assert!(c.pop().is_none());
    }

    #[test]
    fn spsc_across_threads_loses_nothing() {
        let (mut p, mut c) = ring(64, 1 << 20);
        let n = 200_000;
        let producer = std::thread::spawn(move || {
            for t in 0..n {
                push_yielding(&mut p, rec(t, t as usize % 7));
            }
        });
        let mut expected = 0;
        while expected < n {
            match c.pop() {
                Some(slot) => {
                    assert_eq!(time_of(slot), expected);
                    expected += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(c.shared().bytes(), 0);
    }

    #[test]
    fn the_bounds_hold_while_both_sides_run() {
        // Each side counts on its own and reads the other's count only when
        // its view is full: the bounds must hold all the same.
        const MAX_BYTES: usize = 4096;
        let (mut p, mut c) = ring(64, MAX_BYTES);
        let n = 100_000;
        let producer = std::thread::spawn(move || {
            for t in 0..n {
                let size = 1 + (t as usize * 37) % 700;
                let mut payload = p.take_spare().unwrap_or_default();
                payload.clear();
                payload.resize(size, 0);
                let slot = Slot::Record(Record {
                    time_ns: t,
                    stream: 0,
                    topic: "".into(),
                    payload,
                });
                push_yielding(&mut p, slot);
                let shared = p.shared();
                // Every payload is below the bound, so none passes it alone.
                assert!(shared.bytes() <= MAX_BYTES, "{} bytes held", shared.bytes());
                assert!(shared.len() <= 64);
                let spares = held(&shared.popped.spare_bytes, &shared.pushed.spare_bytes);
                assert!(spares <= MAX_BYTES, "{spares} bytes of spares");
            }
        });
        let mut expected = 0;
        while expected < n {
            match c.pop() {
                Some(Slot::Record(record)) => {
                    assert_eq!(record.time_ns, expected);
                    expected += 1;
                    c.recycle(record.payload);
                }
                Some(other) => panic!("not a record: {other:?}"),
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!((c.shared().len(), c.shared().bytes()), (0, 0));
    }

    #[test]
    fn a_parked_producer_is_woken_by_the_pop_that_makes_refill_room() {
        let (mut p, mut c) = ring(8, usize::MAX);
        for t in 0..8 {
            p.push(rec(t, 1)).unwrap();
        }
        let shared = p.shared().clone();
        let parked = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            shared.park_until_refill_room(Duration::from_secs(30));
            (t0.elapsed(), shared.has_refill_room())
        });
        // Give it time to park; one pop is not a quarter of the ring.
        std::thread::sleep(Duration::from_millis(200));
        c.pop().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!parked.is_finished(), "woken before there was room");
        c.pop().unwrap();
        let (waited, room) = parked.join().unwrap();
        assert!(room);
        assert!(
            waited < Duration::from_secs(10),
            "the pop that made room did not wake it: {waited:?}"
        );
    }

    #[test]
    fn parking_with_room_already_made_returns_at_once() {
        let (mut p, _c) = ring(8, usize::MAX);
        p.push(rec(0, 1)).unwrap();
        let t0 = std::time::Instant::now();
        p.shared().park_until_refill_room(Duration::from_secs(30));
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn delivered_payload_buffers_come_back_to_the_producer_within_bounds() {
        let (mut p, mut c) = ring(4, 1000);
        let buffer = Vec::<u8>::with_capacity(300);
        let address = buffer.as_ptr();
        c.recycle(buffer);
        let back = p.take_spare().expect("the recycled buffer");
        assert_eq!(back.as_ptr(), address, "the same buffer, not a copy");
        assert!(p.take_spare().is_none());
        // Large buffers are not kept; nor more than `max_bytes` of spares.
        c.recycle(Vec::with_capacity(crate::record::MAX_SPARE_CAPACITY + 1));
        assert!(p.take_spare().is_none());
        for _ in 0..4 {
            c.recycle(Vec::with_capacity(300));
        }
        let kept = std::iter::from_fn(|| p.take_spare()).count();
        assert_eq!(kept, 3, "300 + 300 + 300 <= 1000 bytes of spares");
        // Taking them gives their bytes back to the bound.
        c.recycle(Vec::with_capacity(900));
        assert_eq!(p.take_spare().map(|b| b.capacity() >= 900), Some(true));
    }

    #[test]
    fn the_byte_bound_counts_what_a_reused_buffer_holds() {
        let mut payload = Vec::with_capacity(512);
        payload.push(0xc0);
        let slot = Slot::Record(Record {
            time_ns: 0,
            stream: 0,
            topic: "".into(),
            payload,
        });
        let (mut p, _c) = ring(4, 1000);
        p.push(slot).unwrap();
        assert!(p.shared().bytes() >= 512, "one payload byte in 512 held");
    }
}
