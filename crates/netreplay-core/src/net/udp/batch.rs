//! Batched sends at infinite speed, and of records due together.
//!
//! At infinite speed (Linux) no deadline is at stake, so records delivered
//! by a scheduler are queued per destination and handed to the kernel up to
//! [`BATCH`] datagrams per `sendmmsg`: one syscall instead of one per
//! datagram. So are timed records that the scheduler marks as followed by
//! one due too ([`Delivery::more_due`](crate::engine::Delivery::more_due)):
//! a burst of equal times goes out in one call, sent with its last record.
//! The queue is sent when a destination has [`BATCH`] datagrams or
//! [`BATCH_BYTES`] bytes queued, and at every
//! [`Sink::flush`](crate::engine::Sink::flush) (which the scheduler calls
//! when the ring runs dry, before each wait and when a run ends). Counts and
//! failures are the per-datagram path's, with two differences (bursts'
//! too): a `fail_on_error` failure is
//! reported after the delivery whose flush met it (records delivered in
//! between count as `suppressed`), and an asynchronous error (ECONNREFUSED
//! from an earlier datagram's ICMP) that hits a datagram after the first of
//! a `sendmmsg` call is dropped by the kernel, so that datagram is sent
//! again instead of counted as failed. Under `LagPolicy::Drop` each
//! `sendmmsg` is made with `MSG_DONTWAIT`, and a record that finds no room
//! is dropped and counted, as in send.rs.

use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::format::wire::{EncodeError, Encoder};
use crate::net::udp::routing::Destination;
use crate::net::udp::send::{Failure, OnFull, Sender};
use crate::net::udp::stats::FailureKind;
use crate::sys::now_ns;
use crate::Record;

/// Datagrams per `sendmmsg` call, and queued per destination before one.
/// 128 measured best on a 2-core machine (32 and 64 slower, 256 and 512 no
/// faster): the gain is less the syscalls saved than the ring drained and
/// refilled in bursts instead of one record at a time.
pub const BATCH: usize = 128;
/// Bytes queued per destination before a flush; larger payloads are sent
/// at once rather than copied (their copy would cost more than the
/// syscalls saved).
pub const BATCH_BYTES: usize = 256 << 10;
/// Batching needs `sendmmsg`; elsewhere every record is sent at once.
pub(super) const BATCHING: bool = cfg!(target_os = "linux");

/// A record queued for a batched send.
struct Queued {
    /// Delivery order across destinations: under `fail_on_error`, records
    /// after the failing one must not go out, whatever their destination.
    seq: u64,
    time_ns: i64,
    /// When it was due (a timed record): its lateness is counted when sent.
    deadline_ns: Option<i64>,
    topic: Arc<str>,
    /// Its datagrams: `first..first + count` in [`Batch::ends`].
    first: usize,
    count: usize,
}

/// What is queued for one destination. The buffers keep their capacity, so
/// queuing allocates nothing once they have grown.
#[derive(Default)]
struct Batch {
    /// The queued datagrams, back to back.
    bytes: Vec<u8>,
    /// End of each queued datagram in `bytes`.
    ends: Vec<usize>,
    records: Vec<Queued>,
    /// The first record the flush in progress has not handled yet.
    head: usize,
}

impl Batch {
    fn start(&self, datagram: usize) -> usize {
        if datagram == 0 {
            0
        } else {
            self.ends[datagram - 1]
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.records.clear();
        self.head = 0;
    }
}

/// Sends datagrams `range` of a batch (`bytes`, `ends`) in order, up to
/// [`BATCH`] of them, with send flags: how many were sent, or the error of
/// the first one if none was. A function pointer so unit tests can stand in
/// for the kernel.
pub(super) type SendMany =
    fn(&Destination, &[u8], &[usize], Range<usize>, libc::c_int) -> io::Result<usize>;

/// The batches of every destination (same index as the destinations).
pub(super) struct Batches {
    batches: Vec<Batch>,
    /// Records queued in all batches.
    pub(super) queued: usize,
    next_seq: u64,
    pub(super) send_many: SendMany,
}

impl Batches {
    pub(super) fn new(destinations: usize) -> Self {
        Batches {
            batches: (0..destinations).map(|_| Batch::default()).collect(),
            queued: 0,
            next_seq: 0,
            send_many,
        }
    }

    /// A batch for a destination opened since (same index).
    pub(super) fn add_destination(&mut self) {
        self.batches.push(Batch::default());
    }

    /// Encode a record into its destination's batch; send the batches once
    /// that one is full.
    pub(super) fn queue(
        &mut self,
        out: &mut Sender,
        encoder: &mut Encoder,
        index: usize,
        record: &Record,
        deadline_ns: Option<i64>,
        on_full: OnFull<'_>,
    ) {
        let batch = &mut self.batches[index];
        let (bytes_before, first) = (batch.bytes.len(), batch.ends.len());
        let result = encoder.encode(&record.topic, &record.payload, |datagram| {
            batch.bytes.extend_from_slice(datagram);
            batch.ends.push(batch.bytes.len());
            Ok::<(), Infallible>(())
        });
        match result {
            Ok(count) => {
                batch.records.push(Queued {
                    seq: self.next_seq,
                    time_ns: record.time_ns,
                    deadline_ns,
                    topic: record.topic.clone(),
                    first,
                    count,
                });
                self.next_seq += 1;
                self.queued += 1;
                if batch.ends.len() >= BATCH || batch.bytes.len() >= BATCH_BYTES {
                    self.flush(out, on_full);
                }
            }
            Err(EncodeError::Wire(e)) => {
                batch.bytes.truncate(bytes_before);
                batch.ends.truncate(first);
                // The failure comes after the records queued before it.
                self.flush(out, on_full);
                if out.stats.failed.load(Ordering::Relaxed) {
                    out.stats.suppressed.add(1);
                    return;
                }
                let failure = Failure {
                    dest: &out.destinations[index],
                    time_ns: record.time_ns,
                    topic: &record.topic,
                    kind: FailureKind::Invalid,
                    reason: e.to_string(),
                };
                failure.count(&out.stats, out.fail_on_error, &mut out.error);
            }
            Err(EncodeError::Emit(never)) => match never {},
        }
    }

    /// Send everything queued.
    pub(super) fn flush(&mut self, out: &mut Sender, on_full: OnFull<'_>) {
        if self.queued == 0 {
            return;
        }
        loop {
            // The destination with the oldest queued record, and the oldest
            // record queued elsewhere.
            let mut oldest: Option<(u64, usize)> = None;
            let mut next_oldest = u64::MAX;
            for (i, b) in self.batches.iter().enumerate() {
                let Some(q) = b.records.get(b.head) else {
                    continue;
                };
                match oldest {
                    Some((seq, _)) if seq < q.seq => next_oldest = next_oldest.min(q.seq),
                    _ => {
                        if let Some((seq, _)) = oldest {
                            next_oldest = next_oldest.min(seq);
                        }
                        oldest = Some((q.seq, i));
                    }
                }
            }
            let Some((_, index)) = oldest else {
                break;
            };
            // Under fail_on_error, send in delivery order across
            // destinations, so that nothing delivered after a failure goes
            // out; otherwise order only matters per destination.
            let limit = if out.fail_on_error {
                next_oldest
            } else {
                u64::MAX
            };
            self.send_run(out, index, limit, on_full);
        }
        for b in &mut self.batches {
            b.clear();
        }
        self.queued = 0;
    }

    /// Send the queued records of destination `index` up to sequence
    /// `limit`, counting each as the per-datagram path would.
    fn send_run(&mut self, out: &mut Sender, index: usize, limit: u64, on_full: OnFull<'_>) {
        let Sender {
            destinations,
            stats,
            send_timeout,
            fail_on_error,
            error,
            ..
        } = out;
        let Batches {
            batches, send_many, ..
        } = self;
        let dest = &destinations[index];
        let batch = &mut batches[index];
        let end = batch.head + batch.records[batch.head..].partition_point(|q| q.seq < limit);
        let last = batch.records[end - 1].first + batch.records[end - 1].count;
        let mut r = batch.head;
        // The next datagram to send.
        let mut d = batch.records[r].first;
        // After a short count, the rest of that call's datagrams go one per
        // call: the kernel dropped the error that cut it short, and a
        // call of one reports its datagram's error.
        let mut one_by_one_until = 0;
        let mut waiting_since: Option<Instant> = None;
        // When the last call returned: read once a call, by its first timed
        // record (none at infinite speed).
        let mut sent_at: Option<i64> = None;
        while r < end {
            let q = &batch.records[r];
            if d >= q.first + q.count {
                stats.records_sent.add(1);
                if q.count > 1 {
                    stats.fragmented.add(1);
                }
                if let Some(deadline) = q.deadline_ns {
                    stats
                        .lateness
                        .record(*sent_at.get_or_insert_with(now_ns) - deadline);
                }
                r += 1;
                continue;
            }
            let upto = if d < one_by_one_until {
                d + 1
            } else {
                last.min(d + BATCH)
            };
            let flags = on_full.flags();
            let result = match send_many(dest, &batch.bytes, &batch.ends, d..upto, flags) {
                Ok(0) => Err(io::Error::other("sendmmsg sent nothing")),
                other => other,
            };
            match result {
                Ok(n) => {
                    if n < upto - d {
                        one_by_one_until = upto;
                    }
                    stats.datagrams.add(n as u64);
                    stats
                        .bytes
                        .add((batch.ends[d + n - 1] - batch.start(d)) as u64);
                    d += n;
                    waiting_since = None;
                    sent_at = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if FailureKind::of(&e) == FailureKind::WouldBlock
                        && !on_full.stops_waiting(
                            *waiting_since.get_or_insert_with(Instant::now),
                            *send_timeout,
                        ) => {}
                Err(e) if on_full.dropped(&e) => {
                    // No room for datagram `d` under Drop: its record is
                    // dropped (the rest of it is not sent), the next one tried.
                    waiting_since = None;
                    r += 1;
                    d = batch.records.get(r).map_or(last, |q| q.first);
                }
                Err(e) => {
                    // Datagram `d` failed: so does its record; the rest of
                    // the record is not sent.
                    let failure = Failure {
                        dest,
                        time_ns: q.time_ns,
                        topic: &q.topic,
                        kind: FailureKind::of(&e),
                        reason: e.to_string(),
                    };
                    failure.count(stats, *fail_on_error, error);
                    waiting_since = None;
                    r += 1;
                    if *fail_on_error {
                        batch.head = r;
                        for b in batches.iter_mut() {
                            stats.suppressed.add((b.records.len() - b.head) as u64);
                            b.head = b.records.len();
                        }
                        return;
                    }
                    d = batch.records.get(r).map_or(last, |q| q.first);
                }
            }
        }
        batch.head = end;
    }
}

/// [`SendMany`] with one `sendmmsg`.
#[cfg(target_os = "linux")]
fn send_many(
    dest: &Destination,
    bytes: &[u8],
    ends: &[usize],
    range: Range<usize>,
    flags: libc::c_int,
) -> io::Result<usize> {
    let target = (!dest.connected).then_some(&dest.target);
    crate::sys::send_many::<BATCH>(&dest.socket, target, bytes, ends, range, flags)
}

/// [`SendMany`] without `sendmmsg`: one datagram per call (unused while
/// [`BATCHING`] is off).
#[cfg(not(target_os = "linux"))]
fn send_many(
    dest: &Destination,
    bytes: &[u8],
    ends: &[usize],
    range: Range<usize>,
    flags: libc::c_int,
) -> io::Result<usize> {
    let start = if range.start == 0 {
        0
    } else {
        ends[range.start - 1]
    };
    crate::net::udp::send::send_once(dest, &bytes[start..ends[range.start]], flags).map(|()| 1)
}

/// Batching at infinite speed and of bursts, and the lag policy, against a
/// stand-in for the kernel.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::Speed;
    use crate::engine::control::{Control, LagPolicy, Waiter};
    use crate::engine::sink::Delivery;
    use crate::engine::sink::Sink;
    use crate::engine::stats::SinkStats;
    use crate::format::wire::WireOptions;
    use crate::net::udp::tests::streams;
    use crate::net::udp::{Route, UdpSink, UdpSinkOptions};
    use crate::Error;
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A datagram containing this byte fails at every attempt (as EMSGSIZE).
    const FAIL_ALWAYS: u8 = 0xee;
    /// A datagram containing this byte fails at its first attempt only (as an
    /// ICMP error reported once: ECONNREFUSED).
    const FAIL_ONCE: u8 = 0xef;
    /// A datagram containing this byte finds the socket buffer full at every
    /// attempt (EAGAIN).
    const FULL: u8 = 0xed;

    thread_local! {
        /// (destination port, datagram) in the order "sent".
        static SENT: RefCell<Vec<(u16, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
        /// Datagrams per call.
        static CALLS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        static FAILED_ONCE: RefCell<HashSet<Vec<u8>>> = RefCell::new(HashSet::new());
        /// Send flags per call.
        static FLAGS: RefCell<Vec<libc::c_int>> = const { RefCell::new(Vec::new()) };
        /// EAGAIN errors returned (a datagram marked FULL that cut a
        /// `sendmmsg` short is not reported: the call returns a count).
        static EAGAINS: RefCell<usize> = const { RefCell::new(0) };
    }

    /// The error the fake kernel meets sending `datagram`, if any.
    fn fake_errno(datagram: &[u8]) -> Option<i32> {
        if datagram.contains(&FAIL_ALWAYS) {
            Some(libc::EMSGSIZE)
        } else if datagram.contains(&FULL) {
            Some(libc::EAGAIN)
        } else if datagram.contains(&FAIL_ONCE)
            && FAILED_ONCE.with(|f| f.borrow_mut().insert(datagram.to_vec()))
        {
            Some(libc::ECONNREFUSED)
        } else {
            None
        }
    }

    /// `sendmmsg` as the kernel does it: datagrams in order up to the first
    /// failure, whose error is reported only if it is the first datagram.
    fn fake_send_many(
        dest: &Destination,
        bytes: &[u8],
        ends: &[usize],
        range: Range<usize>,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let n = range.len().min(BATCH);
        CALLS.with(|c| c.borrow_mut().push(n));
        FLAGS.with(|f| f.borrow_mut().push(flags));
        for (k, i) in (range.start..range.start + n).enumerate() {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let datagram = &bytes[start..ends[i]];
            if let Some(errno) = fake_errno(datagram) {
                return if k == 0 { Err(reported(errno)) } else { Ok(k) };
            }
            SENT.with(|s| s.borrow_mut().push((dest.addr.port(), datagram.to_vec())));
        }
        Ok(n)
    }

    fn take_sent() -> Vec<(u16, Vec<u8>)> {
        SENT.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    fn reported(errno: i32) -> io::Error {
        if errno == libc::EAGAIN {
            EAGAINS.with(|n| *n.borrow_mut() += 1);
        }
        io::Error::from_raw_os_error(errno)
    }

    /// `send` as the kernel does it.
    fn fake_send_one(dest: &Destination, datagram: &[u8], flags: libc::c_int) -> io::Result<()> {
        FLAGS.with(|f| f.borrow_mut().push(flags));
        if let Some(errno) = fake_errno(datagram) {
            return Err(reported(errno));
        }
        SENT.with(|s| s.borrow_mut().push((dest.addr.port(), datagram.to_vec())));
        Ok(())
    }

    fn take_calls() -> Vec<usize> {
        CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    fn take_flags() -> Vec<libc::c_int> {
        FLAGS.with(|f| std::mem::take(&mut *f.borrow_mut()))
    }

    fn take_eagains() -> usize {
        EAGAINS.with(|n| std::mem::take(&mut *n.borrow_mut()))
    }

    const INFINITE: Delivery = Delivery {
        run: 0,
        deadline_ns: None,
        lateness_ns: 0,
        time_ns: 0,
        pass: 0,
        backfill: false,
        more_due: false,
    };

    /// A sink on the fake kernel: stream 0 ("A") to port 9001, stream 1
    /// ("B") to port 9002.
    fn fake_sink(fail_on_error: bool, mtu: usize) -> UdpSink {
        let route = |t: &str, port: u16| Route {
            message_type: Some(t.into()),
            topic: None,
            destination: format!("udp://127.0.0.1:{port}"),
        };
        let mut sink = UdpSink::new(
            UdpSinkOptions {
                routes: vec![route("A", 9001), route("B", 9002)],
                fail_on_error,
                wire: WireOptions {
                    mtu,
                    ..WireOptions::default()
                },
                ..UdpSinkOptions::default()
            },
            &streams(),
        )
        .unwrap();
        sink.batches.send_many = fake_send_many;
        sink.sender.send_one = fake_send_one;
        take_sent();
        take_calls();
        take_flags();
        take_eagains();
        sink
    }

    /// Record `i` of stream 0: a msgpack uint16, distinct per `i`, whose
    /// bytes are never a marker.
    fn numbered(i: usize) -> Record {
        Record {
            time_ns: i as i64,
            stream: 0,
            topic: "t".into(),
            payload: vec![0xcd, (i / 200) as u8, (i % 200) as u8],
        }
    }

    /// A bin payload of `n` bytes spanning several datagrams at a small MTU,
    /// `marker` as its last byte.
    fn long(i: usize, n: usize, marker: u8) -> Record {
        let mut payload = vec![0xc5, (n >> 8) as u8, n as u8];
        payload.extend((0..n).map(|k| (k % 100) as u8));
        *payload.last_mut().unwrap() = marker;
        Record {
            payload,
            ..numbered(i)
        }
    }

    fn encoded(mtu: usize, records: &[Record]) -> Vec<Vec<u8>> {
        let mut encoder = Encoder::new(WireOptions {
            mtu,
            ..WireOptions::default()
        })
        .unwrap();
        let mut out = Vec::new();
        for r in records {
            encoder
                .encode(&r.topic, &r.payload, |d| {
                    out.push(d.to_vec());
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        out
    }

    fn deliver_all(sink: &mut UdpSink, records: &[Record]) {
        for r in records {
            sink.deliver_record(r, INFINITE, true, OnFull::Wait(None));
        }
    }

    #[test]
    fn batches_send_every_datagram_in_order() {
        let mtu = 64;
        let mut sink = fake_sink(false, mtu);
        let n = 2 * BATCH + 22;
        let mut records: Vec<Record> = (0..n).map(numbered).collect();
        records[70] = long(70, 500, 0x42);
        deliver_all(&mut sink, &records);
        // Full batches went out on their own; the rest waits for a flush.
        assert!(sink.batches.queued > 0);
        let sent_before_flush = take_sent().len();
        assert!(sent_before_flush >= BATCH, "{sent_before_flush}");
        sink.flush_queued(OnFull::Wait(None));
        assert_eq!(sink.batches.queued, 0);
        assert_eq!(
            sent_before_flush + take_sent().len(),
            encoded(mtu, &records).len()
        );
        let calls = take_calls();
        assert!(calls.iter().all(|&n| n <= BATCH));
        let expected = encoded(mtu, &records);
        let total: usize = calls.iter().sum();
        assert_eq!(total, expected.len());
        assert!(calls.len() <= expected.len() / BATCH + 2, "{calls:?}");
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records, s.records_sent, s.fragmented, s.send_failures),
            (n as u64, n as u64, 1, 0)
        );
        assert_eq!(s.datagrams as usize, expected.len());
        assert_eq!(
            s.bytes as usize,
            expected.iter().map(Vec::len).sum::<usize>()
        );
        assert_eq!(s.lateness.count, 0);

        // The same records again: the buffers are reused, and the datagrams
        // are exactly the encoder's, in order.
        deliver_all(&mut sink, &records);
        sink.flush_queued(OnFull::Wait(None));
        let sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_failure_inside_a_batch_is_counted_like_a_single_send() {
        let mtu = 64;
        let mut sink = fake_sink(false, mtu);
        let n = BATCH + 36;
        let mut records: Vec<Record> = (0..n).map(numbered).collect();
        // Fails inside the first call: the kernel reports a short count.
        records[10].payload = vec![0xcc, FAIL_ALWAYS];
        // A fragmented record whose last fragment fails: its first ones are
        // sent and counted, as one send at a time would.
        records[30] = long(30, 300, FAIL_ALWAYS);
        // Fails at the start of a call: the kernel reports its error.
        records[40].payload = vec![0xcc, FAIL_ALWAYS];
        deliver_all(&mut sink, &records);
        sink.flush_queued(OnFull::Wait(None));
        let s = sink.stats().snapshot();
        assert_eq!((s.too_big, s.send_failures), (3, 3));
        assert_eq!((s.records_sent, s.fragmented), (n as u64 - 3, 0));
        assert!(!s.failed && sink.take_error().is_none());
        assert!(s
            .last_error
            .unwrap()
            .contains("record at 0.000000 s on topic 't'"));
        let fragments = encoded(mtu, &records[30..31]);
        let expected: Vec<Vec<u8>> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| ![10, 30, 40].contains(i))
            .flat_map(|(_, r)| encoded(mtu, std::slice::from_ref(r)))
            .collect();
        let sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
        // The failed record's fragments before the failing one went out,
        // after record 29 and before 31.
        let at = sent.iter().position(|d| *d == fragments[0]).unwrap();
        let sent_fragments = fragments.len() - 1;
        assert_eq!(sent[at..at + sent_fragments], fragments[..sent_fragments]);
        let mut without: Vec<Vec<u8>> = sent.clone();
        without.drain(at..at + sent_fragments);
        assert_eq!(without, expected);
        assert_eq!(s.datagrams as usize, sent.len());
        assert_eq!(s.bytes as usize, sent.iter().map(Vec::len).sum::<usize>());
        // After the short count, that call's other datagrams went one per
        // call (each reports its own error); later calls are full again.
        let calls = take_calls();
        assert_eq!(calls[0], BATCH);
        assert!(calls[1..BATCH - 10].iter().all(|&n| n == 1), "{calls:?}");
        assert!(calls.iter().filter(|&&n| n > 1).count() >= 2, "{calls:?}");
    }

    #[test]
    fn an_error_reported_once_is_counted_at_the_start_of_a_call() {
        let mut sink = fake_sink(false, 1000);
        let mut records: Vec<Record> = (0..10).map(numbered).collect();
        records[0].payload = vec![0xcc, FAIL_ONCE];
        // Not first in its call: the kernel drops its error, and it is sent
        // again (the one difference from sending one at a time).
        records[5].payload = vec![0xcd, FAIL_ONCE, 5];
        deliver_all(&mut sink, &records);
        sink.flush_queued(OnFull::Wait(None));
        let s = sink.stats().snapshot();
        assert_eq!((s.refused, s.records_sent, s.datagrams), (1, 9, 9));
        // Record 0 failed alone; the call after it came back short at 5,
        // and 5..10 went one per call.
        assert_eq!(take_calls(), vec![10, 9, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn fail_on_error_stops_at_the_failing_record_across_destinations() {
        let mut sink = fake_sink(true, 1000);
        // Alternating destinations; record 7 (stream 1) fails.
        let mut records: Vec<Record> = (0..40)
            .map(|i| Record {
                stream: (i % 2) as u32,
                ..numbered(i)
            })
            .collect();
        records[7].payload = vec![0xcc, FAIL_ALWAYS];
        deliver_all(&mut sink, &records);
        assert!(!sink.has_failed(), "nothing sent yet");
        sink.flush_queued(OnFull::Wait(None));
        assert!(sink.has_failed());
        let expected: Vec<(u16, Vec<u8>)> = records[..7]
            .iter()
            .map(|r| {
                let port = 9001 + r.stream as u16;
                (port, encoded(1000, std::slice::from_ref(r)).remove(0))
            })
            .collect();
        assert_eq!(take_sent(), expected, "in delivery order, none after 7");
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records, s.records_sent, s.too_big, s.suppressed),
            (40, 7, 1, 32)
        );
        match sink.take_error() {
            Some(Error::Network { url, message }) => {
                assert_eq!(url, "udp://127.0.0.1:9002");
                assert!(message.contains("TooBig"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Later records are suppressed at once, not queued.
        deliver_all(&mut sink, &records[..3]);
        assert_eq!(
            (sink.batches.queued, sink.stats().snapshot().suppressed),
            (0, 35)
        );
    }

    #[test]
    fn an_invalid_record_fails_after_the_records_before_it() {
        let mut sink = fake_sink(true, 1000);
        let mut records: Vec<Record> = (0..10).map(numbered).collect();
        records[4].payload = vec![0x92];
        deliver_all(&mut sink, &records);
        assert!(sink.has_failed());
        assert_eq!(take_sent().len(), 4);
        let s = sink.stats().snapshot();
        assert_eq!((s.records_sent, s.invalid, s.suppressed), (4, 1, 5));
        assert!(sink.take_error().is_some());
    }

    #[test]
    fn a_record_sent_at_once_goes_after_the_queued_ones() {
        // As when the speed drops from Infinity mid-run: the queue goes first.
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut sink = UdpSink::new(
            UdpSinkOptions {
                destination: Some(format!("udp://{}", receiver.local_addr().unwrap())),
                ..UdpSinkOptions::default()
            },
            &[],
        )
        .unwrap();
        let records: Vec<Record> = (0..6).map(numbered).collect();
        deliver_all(&mut sink, &records[..5]);
        assert_eq!(sink.batches.queued, 5);
        let timed = Delivery {
            run: 0,
            deadline_ns: Some(now_ns()),
            lateness_ns: 0,
            ..Delivery::default()
        };
        sink.deliver_record(&records[5], timed, false, OnFull::Wait(None));
        assert_eq!(sink.batches.queued, 0);
        let mut buf = [0u8; 64];
        for expected in encoded(1000, &records) {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(buf[..n], expected);
        }
        let s = sink.stats().snapshot();
        assert_eq!((s.records_sent, s.datagrams, s.lateness.count), (6, 6, 1));
    }

    /// Timed records the scheduler marks as followed by one due too go out
    /// in one call, each counted sent and its lateness measured; a timed
    /// record not so marked is sent at once.
    #[test]
    fn a_timed_burst_goes_in_one_call() {
        let mut sink = fake_sink(false, 1000);
        let control = Control::new(Speed::new(1.0).unwrap());
        let sink_stats = SinkStats::default();
        let waiter = Waiter::new(&control, LagPolicy::Wait, &sink_stats);
        let records: Vec<Record> = (0..11).map(numbered).collect();
        let due = now_ns();
        for (i, r) in records.iter().enumerate() {
            let delivery = Delivery {
                deadline_ns: Some(due),
                more_due: i < 9,
                ..Delivery::default()
            };
            sink.deliver(r, delivery, waiter);
            if i == 8 {
                assert!(take_sent().is_empty(), "queued until the last of the burst");
            }
        }
        // The tenth went with the nine before it, in one call; the eleventh,
        // not marked and with nothing queued, by itself (not a `sendmmsg`).
        assert_eq!(take_calls(), vec![10]);
        let sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
        assert_eq!(sent, encoded(1000, &records));
        let s = sink.stats().snapshot();
        assert_eq!(
            (s.records_sent, s.datagrams, s.lateness.count),
            (11, 11, 11)
        );
    }

    /// Records 0..20 of stream 0, every fifth (5, 10, 15) finding the socket
    /// buffer full; record 12 is fragmented at `mtu` 64 with its last
    /// fragment finding it full.
    fn some_full() -> Vec<Record> {
        let mut records: Vec<Record> = (0..20).map(numbered).collect();
        for i in [5, 10, 15] {
            records[i].payload = vec![0xcc, FULL];
        }
        records[12] = long(12, 300, FULL);
        records
    }

    /// Deliver `records` through a sink under `lag`, the way a scheduler
    /// does (`batch`: at infinite speed), then flush; what the waiter
    /// counted as dropped.
    fn play(sink: &mut UdpSink, records: &[Record], batch: bool, lag: LagPolicy) -> u64 {
        let control = Control::new(Speed::new(f64::INFINITY).unwrap());
        let sink_stats = SinkStats::default();
        let waiter = Waiter::new(&control, lag, &sink_stats);
        let delivery = if batch {
            INFINITE
        } else {
            Delivery {
                run: 0,
                deadline_ns: Some(now_ns()),
                lateness_ns: 0,
                ..Delivery::default()
            }
        };
        for r in records {
            sink.deliver_record(r, delivery, batch, OnFull::of(waiter));
        }
        sink.flush_queued(OnFull::of(waiter));
        sink_stats.dropped.get()
    }

    #[test]
    fn under_drop_a_full_socket_buffer_drops_the_record_at_once() {
        let records = some_full();
        for batch in [true, false] {
            let mut sink = fake_sink(false, 64);
            let dropped = play(&mut sink, &records, batch, LagPolicy::Drop);
            let s = sink.stats().snapshot();
            assert_eq!(dropped, 4, "batch {batch}");
            assert_eq!((s.records, s.records_sent), (20, 16), "batch {batch}");
            assert_eq!((s.send_failures, s.would_block), (0, 0), "batch {batch}");
            assert!(s.last_error.is_none(), "a drop is not a failure");
            // One EAGAIN per full record: no retry, no wait.
            assert_eq!(take_eagains(), 4, "batch {batch}");
            assert!(
                take_flags().iter().all(|&f| f == libc::MSG_DONTWAIT),
                "every send of a Drop sink is non-blocking"
            );
            // The records that fit went out in order; of record 12, the
            // fragments before the full one.
            let fragments = encoded(64, &records[12..13]);
            let expected: Vec<Vec<u8>> = records
                .iter()
                .enumerate()
                .filter(|(i, _)| ![5, 10, 15, 12].contains(i))
                .flat_map(|(_, r)| encoded(64, std::slice::from_ref(r)))
                .collect();
            let mut sent: Vec<Vec<u8>> = take_sent().into_iter().map(|(_, d)| d).collect();
            let at = sent.iter().position(|d| *d == fragments[0]).unwrap();
            let partial: Vec<Vec<u8>> = sent.drain(at..at + fragments.len() - 1).collect();
            assert_eq!(partial, fragments[..fragments.len() - 1]);
            assert_eq!(sent, expected, "batch {batch}");
        }
    }

    #[test]
    fn under_wait_a_full_socket_buffer_waits_then_fails() {
        let records = some_full();
        for batch in [true, false] {
            let mut sink = fake_sink(false, 64);
            sink.sender.send_timeout = Duration::from_millis(5);
            let dropped = play(&mut sink, &records, batch, LagPolicy::Wait);
            let s = sink.stats().snapshot();
            assert_eq!(dropped, 0, "batch {batch}");
            assert_eq!(
                (s.records_sent, s.would_block, s.send_failures),
                (16, 4, 4),
                "batch {batch}"
            );
            assert!(take_eagains() > 4, "it tried again while waiting");
            assert!(take_flags().iter().all(|&f| f == 0), "blocking sends");
        }
    }
}
