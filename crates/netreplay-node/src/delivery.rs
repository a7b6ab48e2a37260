//! The JS sink: records go to JS in batches through one thread-safe function.
//!
//! A batch is one Buffer of records laid end to end, little-endian:
//!   f64 elapsed seconds | f64 lateness ns | f64 deadline ns (CLOCK_MONOTONIC,
//!   NaN at infinite speed) | u32 stream | u32 topic id | u32 payload length |
//!   payload bytes
//! Topic ids index a table JS builds from each batch's `newTopics`. One JS
//! crossing per batch, no JS object made natively: the TS layer decodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use netreplay_core::scheduler::Control;
use netreplay_core::sink::{Delivery, Outcome, Sink};
use netreplay_core::{Error as CoreError, Record};

use crate::errors::code_of;

pub const RECORD_HEADER_BYTES: usize = 36;
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Most records, and batch bytes, handed to JS and not yet acknowledged:
/// what a consumer that falls behind (an async iterator not pulling) can
/// hold, whatever the batch sizes. A batch larger than the room left waits
/// until JS has caught up, or goes alone when nothing is in flight.
pub const MAX_IN_FLIGHT_RECORDS: usize = 8192;
pub const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;
/// Default bound on unacknowledged batches: high enough that batches of
/// one record (a slow replay) can fill the record bound too.
pub const DEFAULT_MAX_IN_FLIGHT_BATCHES: u32 = 1024;
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
    /// Number of the current scheduler run, so JS can drop batches of a run
    /// it has stopped and rewound.
    pub run: AtomicU32,
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

pub struct JsSink {
    callback: ReplayCallback,
    data: Vec<u8>,
    count: u32,
    topic_ids: HashMap<Arc<str>, u32>,
    last_topic: Option<(Arc<str>, u32)>,
    new_topics: Vec<String>,
    state: Arc<DeliveryState>,
    max_in_flight: usize,
    max_batch: usize,
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
            count: 0,
            topic_ids: HashMap::new(),
            last_topic: None,
            new_topics: Vec::new(),
            state,
            max_in_flight,
            max_batch,
        }
    }

    fn topic_id(&mut self, topic: &Arc<str>) -> u32 {
        if let Some((last, id)) = &self.last_topic {
            if Arc::ptr_eq(last, topic) || **last == **topic {
                return *id;
            }
        }
        let next = self.topic_ids.len() as u32;
        let id = *self.topic_ids.entry(topic.clone()).or_insert_with(|| {
            self.new_topics.push(topic.to_string());
            next
        });
        self.last_topic = Some((topic.clone(), id));
        id
    }

    /// Send the batch (and an event). Waits while JS is `max_in_flight`
    /// unacknowledged batches behind, unless a stop is requested: then one
    /// more batch is queued, so nothing is lost and memory stays bounded.
    fn send(&mut self, control: Option<&Control>, event: Option<String>, error: Option<ErrorInfo>) {
        if self.count == 0 && event.is_none() {
            return;
        }
        if let Some(control) = control {
            while self.js_is_behind() && !control.stop_requested() {
                control.park(BACKPRESSURE_PARK);
            }
        }
        let (records, bytes) = (self.count as usize, self.data.len());
        let data = std::mem::take(&mut self.data);
        let args: BatchArgs = FnArgs::from((
            data.into(),
            self.count,
            std::mem::take(&mut self.new_topics),
            event,
            error,
            self.state.run.load(Ordering::Acquire),
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
        let s = &self.state;
        let records = s.in_flight_records.load(Ordering::Acquire);
        let bytes = s.in_flight_bytes.load(Ordering::Acquire);
        s.in_flight.load(Ordering::Acquire) >= self.max_in_flight
            || (records > 0 && records + self.count as usize > MAX_IN_FLIGHT_RECORDS)
            || (bytes > 0 && bytes + self.data.len() > MAX_IN_FLIGHT_BYTES)
    }
}

impl Sink for JsSink {
    fn deliver(&mut self, record: &Record, delivery: Delivery, control: &Control) {
        let topic = self.topic_id(&record.topic);
        let deadline = if delivery.deadline_ns == i64::MIN {
            f64::NAN
        } else {
            delivery.deadline_ns as f64
        };
        self.data
            .reserve(RECORD_HEADER_BYTES + record.payload.len());
        self.data
            .extend_from_slice(&(record.time_ns as f64 / 1e9).to_le_bytes());
        self.data
            .extend_from_slice(&(delivery.lateness_ns as f64).to_le_bytes());
        self.data.extend_from_slice(&deadline.to_le_bytes());
        self.data.extend_from_slice(&record.stream.to_le_bytes());
        self.data.extend_from_slice(&topic.to_le_bytes());
        self.data
            .extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
        self.data.extend_from_slice(&record.payload);
        self.count += 1;
        if self.count as usize >= self.max_batch || self.data.len() >= MAX_BATCH_BYTES {
            self.send(Some(control), None, None);
        }
    }

    fn flush(&mut self, control: &Control) {
        self.send(Some(control), None, None);
    }

    fn finish(&mut self, outcome: &Outcome) {
        let (event, error) = match outcome {
            Outcome::End => ("end", None),
            Outcome::Error(err) => ("error", Some(ErrorInfo::from(err))),
            Outcome::Stopped => ("stopped", None),
        };
        self.send(None, Some(event.to_string()), error);
    }
}
