//! The JS sink: records go to JS in batches through one thread-safe function.
//!
//! A batch is one Buffer of records laid end to end, little-endian:
//!   f64 elapsed seconds (as reported: continuous across loops with
//!   continuous time) | f64 lateness ns | f64 deadline ns (CLOCK_MONOTONIC,
//!   or the virtual clock; NaN at infinite speed, in a step or burst, and for
//!   backfill) | u32 stream | u32 topic id | u32 pass | u32 flags (bit 0:
//!   backfill) | u32 payload length | payload bytes
//! A batch with no records may carry an event instead: "clock" (data: f64
//! reported seconds), "loop" (data: f64 pass), "paused", "end", "error",
//! "stopped".
//! Topic ids index a table JS builds from each batch's `newTopics`. One JS
//! crossing per batch, no JS object made natively: the TS layer decodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use netreplay_core::engine::{Delivery, Outcome, Sink, TimelineEvent};
use netreplay_core::engine::{Histogram, LagPolicy, Waiter};
use netreplay_core::{Error as CoreError, Record};

use netreplay_core::{SinkConfig, SinkKind};

use crate::errors::code_of;
use crate::net::EventsOnly;
use crate::options::{udp_sink_config, Result as NapiResult, SchedulerOptionsJs};

pub const RECORD_HEADER_BYTES: usize = 44;
/// Offset of the payload length in a record's header.
const LENGTH_AT: usize = 40;
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Room past [`MAX_BATCH_BYTES`] the next batch is allocated with: a batch
/// is sent once a record takes it past the bound, so it ends up to one
/// record longer.
const BATCH_SLACK_BYTES: usize = 64 << 10;

/// The capacity of the batch after one of `last_len` bytes: the same length,
/// so that a batch like it fills without reallocating (a realloc of a
/// megabyte batch copies it, and its doubled capacity was then shrunk again,
/// another copy), but no more than a full batch and its slack.
fn next_batch_capacity(last_len: usize) -> usize {
    last_len.min(MAX_BATCH_BYTES + BATCH_SLACK_BYTES)
}
/// Most records, and batch bytes, handed to JS and not yet acknowledged:
/// what a consumer that falls behind (an async iterator not pulling) can
/// hold, whatever the batch sizes. A batch larger than the room left waits
/// until JS has caught up, or goes alone when nothing is in flight.
pub const MAX_IN_FLIGHT_RECORDS: usize = 8192;
pub const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;
/// Default bound on unacknowledged batches: high enough that batches of
/// one record (a slow replay) can fill the record bound too.
pub const DEFAULT_MAX_IN_FLIGHT_BATCHES: u32 = 1024;
/// Default most records in one batch.
pub const DEFAULT_MAX_BATCH: u32 = 4096;
/// Poll interval while JS is behind (bounded in-flight batches, records, bytes).
const BACKPRESSURE_PARK: Duration = Duration::from_micros(200);

/// An engine error described for JS (a running replay's `error` event).
#[napi(object)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub path: Option<String>,
    pub line: Option<f64>,
    pub byte_offset: Option<f64>,
    pub snippet: Option<String>,
}

impl From<&CoreError> for ErrorInfo {
    fn from(err: &CoreError) -> Self {
        let mut info = ErrorInfo {
            code: code_of(err).as_ref().to_string(),
            message: err.to_string(),
            path: None,
            line: None,
            byte_offset: None,
            snippet: None,
        };
        match err {
            CoreError::Malformed {
                path,
                line,
                byte_offset,
                snippet,
                ..
            } => {
                info.path = Some(path.display().to_string());
                info.line = Some(*line as f64);
                info.byte_offset = Some(*byte_offset as f64);
                info.snippet = Some(snippet.clone());
            }
            CoreError::Io { path, .. } | CoreError::Layout { path, .. } => {
                info.path = Some(path.display().to_string());
            }
            CoreError::Network { url, .. } => info.path = Some(url.clone()),
            _ => {}
        }
        info
    }
}

/// (data, record count, new topics, event: "end" | "error" | "stopped" | null,
/// error, run number)
pub type BatchArgs = FnArgs<(
    Buffer,
    u32,
    Vec<String>,
    Option<String>,
    Option<ErrorInfo>,
    u32,
)>;

/// Shared between the sink (scheduler thread) and the JS object (main thread).
#[derive(Default)]
pub struct DeliveryState {
    /// Batches sent to JS and not yet acknowledged with `ack()`.
    pub in_flight: AtomicUsize,
    /// Their records and bytes (the batch buffers' lengths).
    pub in_flight_records: AtomicUsize,
    pub in_flight_bytes: AtomicUsize,
}
impl DeliveryState {
    /// A batch of `records` records in `bytes` bytes went to JS.
    fn add(&self, records: usize, bytes: usize) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.in_flight_records.fetch_add(records, Ordering::AcqRel);
        self.in_flight_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// JS consumed a batch of `records` records in `bytes` bytes.
    pub fn ack(&self, records: usize, bytes: usize) {
        let sub = |counter: &AtomicUsize, n: usize| {
            let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.in_flight, 1);
        sub(&self.in_flight_records, records);
        sub(&self.in_flight_bytes, bytes);
    }
}

/// Weak: a replay does not by itself keep Node alive; the TS layer holds the
/// event loop open while it plays.
pub type ReplayCallback = ThreadsafeFunction<BatchArgs, (), BatchArgs, Status, false, true>;

/// Slots of [`JsSink`]'s topic cache: a power of two.
const TOPIC_SLOTS: usize = 64;
/// A topic, and its id in the table JS builds.
type TopicSlot = Option<(Arc<str>, u32)>;

pub struct JsSink {
    callback: ReplayCallback,
    data: Vec<u8>,
    /// The length of the last batch of records: the next batch's capacity,
    /// so that a batch grows without reallocating (and copying) itself.
    capacity_hint: usize,
    count: u32,
    topic_ids: HashMap<Arc<str>, u32>,
    /// Topic ids by the address of a record's topic: readers intern topics,
    /// so this hits without hashing or comparing the text. Each slot holds
    /// its Arc, so an address cannot be reused for another topic while
    /// cached; a miss falls back to `topic_ids` (by text).
    topic_cache: Box<[TopicSlot; TOPIC_SLOTS]>,
    new_topics: Vec<String>,
    state: Arc<DeliveryState>,
    max_in_flight: usize,
    max_batch: usize,
    /// The run of the records in hand (all of a batch belong to one run).
    run: u64,
}

impl JsSink {
    pub fn new(
        callback: ReplayCallback,
        state: Arc<DeliveryState>,
        max_in_flight: usize,
        max_batch: usize,
    ) -> Self {
        JsSink {
            callback,
            data: Vec::new(),
            capacity_hint: 0,
            count: 0,
            topic_ids: HashMap::new(),
            topic_cache: Box::new(std::array::from_fn(|_| None)),
            new_topics: Vec::new(),
            state,
            max_in_flight,
            max_batch,
            run: 0,
        }
    }

    fn topic_id(&mut self, topic: &Arc<str>) -> u32 {
        // The low bits of a heap address are alignment: skip them.
        let slot = (Arc::as_ptr(topic) as *const u8 as usize >> 4) & (TOPIC_SLOTS - 1);
        if let Some((cached, id)) = &self.topic_cache[slot] {
            if Arc::ptr_eq(cached, topic) {
                return *id;
            }
        }
        let next = self.topic_ids.len() as u32;
        let id = *self.topic_ids.entry(topic.clone()).or_insert_with(|| {
            self.new_topics.push(topic.to_string());
            next
        });
        self.topic_cache[slot] = Some((topic.clone(), id));
        id
    }

    /// Send the batch (and an event). Waits while JS is `max_in_flight`
    /// unacknowledged batches behind, unless a stop is requested: then one
    /// more batch is queued, so nothing is lost and memory stays bounded.
    /// (Under the drop policy the batch never holds more than JS has room
    /// for: see `deliver`.)
    fn send(
        &mut self,
        waiter: Option<Waiter<'_>>,
        event: Option<String>,
        error: Option<ErrorInfo>,
    ) {
        self.send_with(waiter, event, error, None);
    }

    /// [`JsSink::send`], with an event's value as the batch's data when it
    /// has no records.
    fn send_with(
        &mut self,
        waiter: Option<Waiter<'_>>,
        event: Option<String>,
        error: Option<ErrorInfo>,
        value: Option<f64>,
    ) {
        if self.count == 0 && event.is_none() {
            return;
        }
        if let (0, Some(value)) = (self.count, value) {
            self.data.clear();
            self.data.extend_from_slice(&value.to_le_bytes());
        }
        if let Some(waiter) = waiter {
            while self.js_is_behind() && waiter.wait(BACKPRESSURE_PARK) {}
        }
        let (records, bytes) = (self.count as usize, self.data.len());
        if records > 0 {
            self.capacity_hint = next_batch_capacity(bytes);
        }
        let mut data = std::mem::take(&mut self.data);
        // A batch smaller than the hint gives back the room it did not use:
        // JS may hold many batches, bounded by their lengths.
        if data.capacity() > bytes + bytes / 2 + 4096 {
            data.shrink_to_fit();
        }
        let args: BatchArgs = FnArgs::from((
            data.into(),
            self.count,
            std::mem::take(&mut self.new_topics),
            event,
            error,
            // Runs are compared for equality only: wrapping is harmless.
            self.run as u32,
        ));
        self.count = 0;
        self.state.add(records, bytes);
        let status = self
            .callback
            .call(args, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            // Node is shutting down: nobody will acknowledge it.
            self.state.ack(records, bytes);
        }
    }

    /// Whether the batch in hand must wait for JS to acknowledge earlier ones.
    fn js_is_behind(&self) -> bool {
        self.exceeds(self.count as usize, self.data.len())
    }

    /// Whether a batch of `records` records in `bytes` bytes would exceed
    /// the in-flight bounds now.
    fn exceeds(&self, records: usize, bytes: usize) -> bool {
        let s = &self.state;
        let in_records = s.in_flight_records.load(Ordering::Acquire);
        let in_bytes = s.in_flight_bytes.load(Ordering::Acquire);
        s.in_flight.load(Ordering::Acquire) >= self.max_in_flight
            || (in_records > 0 && in_records + records > MAX_IN_FLIGHT_RECORDS)
            || (in_bytes > 0 && in_bytes + bytes > MAX_IN_FLIGHT_BYTES)
    }
}

impl Sink for JsSink {
    fn deliver(&mut self, record: &Record, delivery: Delivery, waiter: Waiter<'_>) {
        let size = RECORD_HEADER_BYTES + record.payload.len();
        if waiter.lag() == LagPolicy::Drop
            && self.exceeds(self.count as usize + 1, self.data.len() + size)
        {
            // JS has no room for it: under the drop policy the replay does
            // not wait for JS, the record is counted instead.
            waiter.count_dropped(1);
            return;
        }
        self.run = delivery.run;
        let payload: &[u8] = &record.payload;
        let topic = self.topic_id(&record.topic);
        let deadline = delivery.deadline_ns.map_or(f64::NAN, |d| d as f64);
        // The header is made whole, then copied once: one capacity check
        // a record instead of one a field.
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header[0..8].copy_from_slice(&(delivery.time_ns as f64 / 1e9).to_le_bytes());
        header[8..16].copy_from_slice(&(delivery.lateness_ns as f64).to_le_bytes());
        header[16..24].copy_from_slice(&deadline.to_le_bytes());
        header[24..28].copy_from_slice(&record.stream.to_le_bytes());
        header[28..32].copy_from_slice(&topic.to_le_bytes());
        header[32..36].copy_from_slice(&(delivery.pass as u32).to_le_bytes());
        header[36..40].copy_from_slice(&u32::from(delivery.backfill).to_le_bytes());
        header[LENGTH_AT..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        if self.data.capacity() == 0 {
            self.data = Vec::with_capacity(self.capacity_hint.max(size));
        }
        self.data.reserve(size);
        self.data.extend_from_slice(&header);
        self.data.extend_from_slice(payload);
        self.count += 1;
        if self.count as usize >= self.max_batch || self.data.len() >= MAX_BATCH_BYTES {
            self.send(Some(waiter), None, None);
        }
    }

    fn flush(&mut self, waiter: Waiter<'_>) {
        self.send(Some(waiter), None, None);
    }

    fn event(&mut self, run: u64, event: TimelineEvent, waiter: Waiter<'_>) {
        // The records before it go first, in their own batch.
        self.send(Some(waiter), None, None);
        self.run = run;
        let (name, value) = match event {
            TimelineEvent::Clock { time_ns } => ("clock", time_ns as f64 / 1e9),
            TimelineEvent::Loop { pass } => ("loop", pass as f64),
        };
        self.send_with(None, Some(name.to_string()), None, Some(value));
    }

    fn finish(&mut self, run: u64, outcome: &Outcome) {
        self.run = run;
        let (event, error) = match outcome {
            Outcome::End => ("end", None),
            Outcome::Error(err) => ("error", Some(ErrorInfo::from(err))),
            Outcome::Stopped => ("stopped", None),
            Outcome::Paused => ("paused", None),
        };
        self.send(None, Some(event.to_string()), error);
    }
}

/// Record in `lateness` how late each record of a batch (in the layout
/// above) reached JS: `handed_at_ns` − its deadline. Records without a
/// deadline (infinite speed) count as on time.
pub fn record_handover(data: &[u8], handed_at_ns: i64, lateness: &Histogram) {
    let mut at = 0;
    while at + RECORD_HEADER_BYTES <= data.len() {
        let field = |offset: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&data[at + offset..at + offset + 8]);
            f64::from_le_bytes(bytes)
        };
        let deadline = field(16);
        let late = if deadline.is_nan() {
            0
        } else {
            handed_at_ns.saturating_sub(deadline as i64)
        };
        lateness.record(late);
        let mut len = [0u8; 4];
        len.copy_from_slice(&data[at + LENGTH_AT..at + LENGTH_AT + 4]);
        at += RECORD_HEADER_BYTES + u32::from_le_bytes(len) as usize;
    }
}

/// A replay's sinks as JS asked for them: the UDP sink first (the network
/// sees the deadline before JS delivery), then JS delivery — or, with
/// `js: false`, a sink that reports only the end of a run.
pub struct JsDelivery {
    pub sinks: Vec<SinkConfig>,
    pub state: Arc<DeliveryState>,
    /// The index of the JS sink in `sinks`, when records go to JS.
    pub js_sink: Option<usize>,
}

pub fn js_delivery(
    options: &mut SchedulerOptionsJs,
    callback: ReplayCallback,
) -> NapiResult<JsDelivery> {
    let state = Arc::new(DeliveryState::default());
    let sink = JsSink::new(
        callback,
        state.clone(),
        options
            .max_pending_batches
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT_BATCHES)
            .max(1) as usize,
        options.max_batch.unwrap_or(DEFAULT_MAX_BATCH).max(1) as usize,
    );
    let mut sinks = Vec::with_capacity(2);
    if let Some(udp) = options.udp.take() {
        sinks.push(udp_sink_config(udp)?);
    }
    let lag = crate::options::lag("lag", options.lag.as_deref())?;
    let js_sink = if options.js.unwrap_or(true) {
        sinks.push(SinkConfig {
            kind: SinkKind::Custom(Box::new(sink)),
            lag,
        });
        Some(sinks.len() - 1)
    } else {
        sinks.push(SinkConfig::new(SinkKind::Custom(Box::new(EventsOnly(
            sink,
        )))));
        None
    };
    Ok(JsDelivery {
        sinks,
        state,
        js_sink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch is sent once a record takes it past the bound: the next one
    /// must hold a batch that long, or its last record reallocates (copies)
    /// it. Measured on 1 KB records (`bench/js-rss.ts`): 0.60 -> 0.86 M/s.
    #[test]
    fn the_next_batch_holds_one_like_the_last() {
        let full = MAX_BATCH_BYTES + 2_000;
        assert_eq!(next_batch_capacity(full), full);
        assert_eq!(next_batch_capacity(300), 300);
        // A huge record does not make every later batch huge.
        assert_eq!(
            next_batch_capacity(50 << 20),
            MAX_BATCH_BYTES + BATCH_SLACK_BYTES
        );
    }
}
