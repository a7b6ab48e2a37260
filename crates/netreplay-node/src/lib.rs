//! N-API binding of netreplay-core: thin `#[napi]` classes, error mapping and
//! batched thread-safe delivery to JS. No engine logic lives here.

mod bench;
mod delivery;
mod errors;
mod net;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use netreplay_core::engine::MclReader;
use netreplay_core::engine::{BufferData, BufferOptions, Queue, DEFAULT_MAX_BYTES};
use netreplay_core::engine::{RingProducer, Slot};
use netreplay_core::engine::{Scheduler, SchedulerOptions};
use netreplay_core::engine::{Speed, BUSY_WAIT_NS};
use netreplay_core::format::mcl::{self, ReadOptions};
use netreplay_core::format::TimeWindow;
use netreplay_core::format::{OnError, RecordSource};
use netreplay_core::StreamTable;
use netreplay_core::{Record, StreamInfo};

use crate::delivery::{
    DeliveryState, ErrorInfo, JsSink, ReplayCallback, DEFAULT_MAX_IN_FLIGHT_BATCHES,
};
use crate::errors::{to_napi, Code};
use crate::net::{lateness_js, udp_sink, udp_stats_js, EventsOnly, UdpOptionsJs, UdpStatsJs};
use netreplay_core::engine::SinkEntry;
use netreplay_core::net::UdpSinkStats;

fn seconds_to_ns(name: &'static str, seconds: f64) -> Result<i64, Code> {
    if !seconds.is_finite() {
        return Err(to_napi(netreplay_core::Error::invalid(
            name,
            format!("must be a finite number of seconds, got {seconds}"),
        )));
    }
    Ok((seconds * 1e9).round() as i64)
}

#[napi(object)]
pub struct ReaderOptions {
    pub min_time: Option<f64>,
    pub max_time: Option<f64>,
    pub include_raw: Option<bool>,
    /// "fail" (default) or "skip".
    pub on_error: Option<String>,
}

#[napi(object)]
pub struct HeaderInfo {
    pub version: Option<String>,
    pub revision: Option<String>,
    pub created: Option<String>,
    pub message_type: Option<String>,
    pub raw: bool,
}

#[napi(object)]
pub struct StreamDescription {
    pub message_type: Option<String>,
    pub files: Vec<String>,
    pub header: Option<HeaderInfo>,
}

#[napi(object)]
pub struct NativeRecord {
    pub elapsed_time: f64,
    pub stream: u32,
    pub topic: String,
    pub payload: Buffer,
}

fn record_to_js(record: Record) -> NativeRecord {
    NativeRecord {
        elapsed_time: record.time_ns as f64 / 1e9,
        stream: record.stream,
        topic: record.topic.to_string(),
        payload: record.payload.into(),
    }
}

fn header_to_js(h: &mcl::Header) -> HeaderInfo {
    HeaderInfo {
        version: h.version.clone(),
        revision: h.revision.clone(),
        created: h.created.clone(),
        message_type: h.message_type.clone(),
        raw: h.raw,
    }
}

/// An MCL reader (`ReadFile` / `ReadDirectory`). Handing it to a buffer moves
/// the native reader there; this object then only keeps its description.
#[napi]
pub struct NativeMclReader {
    reader: Option<MclReader>,
    streams: Vec<StreamInfo>,
    headers: Vec<Option<mcl::Header>>,
}

#[napi]
impl NativeMclReader {
    /// `kind` is "file" or "directory".
    #[napi(constructor, catch_unwind)]
    pub fn new(kind: String, path: String, options: Option<ReaderOptions>) -> Result<Self, Code> {
        let options = options.unwrap_or(ReaderOptions {
            min_time: None,
            max_time: None,
            include_raw: None,
            on_error: None,
        });
        let on_error = match options.on_error.as_deref() {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(other) => {
                return Err(to_napi(netreplay_core::Error::invalid(
                    "onError",
                    format!("must be 'fail' or 'skip', got '{other}'"),
                )))
            }
        };
        let window = TimeWindow {
            min_ns: options
                .min_time
                .map(|s| seconds_to_ns("minTime", s))
                .transpose()?,
            max_ns: options
                .max_time
                .map(|s| seconds_to_ns("maxTime", s))
                .transpose()?,
        };
        let read_options = ReadOptions {
            window,
            include_raw: options.include_raw.unwrap_or(false),
            on_error,
        };
        let path = PathBuf::from(path);
        let reader = match kind.as_str() {
            "file" => netreplay_core::engine::open_file(&path, &read_options),
            "directory" => netreplay_core::engine::open_directory(&path, &read_options),
            other => {
                return Err(to_napi(netreplay_core::Error::invalid(
                    "kind",
                    format!("must be 'file' or 'directory', got '{other}'"),
                )))
            }
        }
        .map_err(to_napi)?;
        Ok(NativeMclReader {
            streams: reader.streams().to_vec(),
            headers: reader.headers().to_vec(),
            reader: Some(reader),
        })
    }

    fn reader(&mut self) -> Result<&mut MclReader, Code> {
        self.reader.as_mut().ok_or_else(|| {
            Error::new(
                Code::State,
                "this reader was handed to a BufferData, which now reads it",
            )
        })
    }

    /// The next record, null at the end of the data, or a description of
    /// the error met reading it (structured, so JS can say file and line).
    #[napi(catch_unwind)]
    pub fn read(&mut self) -> Result<Option<Either<NativeRecord, ErrorInfo>>, Code> {
        Ok(match self.reader()?.next_record() {
            Ok(next) => next.map(|r| Either::A(record_to_js(r))),
            Err(err) => Some(Either::B(ErrorInfo::from(&err))),
        })
    }

    #[napi(catch_unwind)]
    pub fn is_data_pending(&mut self) -> Result<bool, Code> {
        Ok(self.reader()?.is_data_pending())
    }

    #[napi(catch_unwind)]
    pub fn reset(&mut self) -> Result<(), Code> {
        self.reader()?.reset().map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn skipped(&mut self) -> Result<f64, Code> {
        Ok(self.reader()?.skipped() as f64)
    }

    #[napi(getter, catch_unwind)]
    pub fn streams(&self) -> Vec<StreamDescription> {
        self.streams
            .iter()
            .zip(&self.headers)
            .map(|(s, h)| StreamDescription {
                message_type: s.message_type.clone(),
                files: s.files.iter().map(|p| p.display().to_string()).collect(),
                header: h.as_ref().map(header_to_js),
            })
            .collect()
    }
}

#[napi(object)]
pub struct BufferOptionsJs {
    pub length: Option<u32>,
    pub max_bytes: Option<f64>,
}

fn buffer_options(options: Option<BufferOptionsJs>) -> Result<BufferOptions, Code> {
    let options = options.unwrap_or(BufferOptionsJs {
        length: None,
        max_bytes: None,
    });
    let max_bytes = match options.max_bytes {
        None => DEFAULT_MAX_BYTES,
        Some(b) if b.is_finite() && b >= 1.0 => b as usize,
        Some(b) => {
            return Err(to_napi(netreplay_core::Error::invalid(
                "maxBytes",
                format!("must be a number >= 1, got {b}"),
            )))
        }
    };
    Ok(BufferOptions {
        length: options
            .length
            .map_or(BufferOptions::default().length, |n| n as usize),
        max_bytes,
    })
}

enum Producer {
    /// A native thread reads a native source.
    Native(BufferData),
    /// JS pushes records (readers written in JS); see `push`. Streams are
    /// defined as their types appear (`defineStream`).
    External {
        queue: Queue,
        producer: RingProducer,
        streams: Arc<StreamTable>,
    },
}

/// `BufferData`: a bounded ring and its producer.
#[napi]
pub struct NativeBuffer {
    producer: Producer,
    /// The source's stream table (empty for JS-filled buffers), for routing.
    streams: Vec<StreamInfo>,
}

#[napi(object)]
pub struct PoppedSlot {
    /// "record", "end" or "error".
    pub kind: String,
    pub record: Option<NativeRecord>,
    pub error: Option<ErrorInfo>,
}

#[napi]
impl NativeBuffer {
    /// A buffer filled by a native thread from `reader` (which it takes over).
    #[napi(factory, catch_unwind)]
    pub fn from_reader(
        reader: &mut NativeMclReader,
        options: Option<BufferOptionsJs>,
    ) -> Result<Self, Code> {
        let options = buffer_options(options)?;
        // Checked before the reader is taken: a bad option loses nothing.
        options.validate().map_err(to_napi)?;
        let source = reader.reader.take().ok_or_else(|| {
            Error::new(
                Code::State,
                "this reader already belongs to another BufferData",
            )
        })?;
        let streams = source.streams().to_vec();
        let buffer = BufferData::new(Box::new(source), options).map_err(to_napi)?;
        Ok(NativeBuffer {
            producer: Producer::Native(buffer),
            streams,
        })
    }

    /// A buffer that JS fills with `push` (for readers written in JS).
    #[napi(factory, catch_unwind)]
    pub fn external(options: Option<BufferOptionsJs>) -> Result<Self, Code> {
        let options = buffer_options(options)?;
        let (queue, producer) = Queue::new(options.length, options.max_bytes).map_err(to_napi)?;
        Ok(NativeBuffer {
            producer: Producer::External {
                queue,
                producer,
                streams: Arc::default(),
            },
            streams: Vec::new(),
        })
    }

    pub(crate) fn queue(&self) -> &Queue {
        match &self.producer {
            Producer::Native(b) => b.queue(),
            Producer::External { queue, .. } => queue,
        }
    }

    fn native(&mut self) -> Result<&mut BufferData, Code> {
        match &mut self.producer {
            Producer::Native(b) => Ok(b),
            Producer::External { .. } => Err(Error::new(
                Code::State,
                "this buffer is filled from JS; it has no native producer",
            )),
        }
    }

    #[napi(catch_unwind)]
    pub fn start(&mut self) -> Result<bool, Code> {
        self.native()?.start().map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<bool, Code> {
        self.native()?.stop().map_err(to_napi)
    }

    /// Stop and release the reader (files, descriptors, mappings) at once;
    /// safe to call twice.
    #[napi(catch_unwind)]
    pub fn close(&mut self) -> Result<(), Code> {
        match &mut self.producer {
            Producer::Native(b) => b.close().map_err(to_napi),
            Producer::External { .. } => Ok(()),
        }
    }

    /// Native: stop, flush, rewind. External: flush only (JS rewinds its reader).
    #[napi(catch_unwind)]
    pub fn reset(&mut self) -> Result<(), Code> {
        match &mut self.producer {
            Producer::Native(b) => b.reset().map_err(to_napi),
            Producer::External { queue, .. } => queue.flush().map(drop).map_err(to_napi),
        }
    }

    #[napi(catch_unwind)]
    pub fn is_alive(&self) -> bool {
        matches!(&self.producer, Producer::Native(b) if b.is_alive())
    }

    #[napi(catch_unwind)]
    pub fn is_data_pending(&self) -> bool {
        matches!(&self.producer, Producer::Native(b) if b.is_data_pending())
    }

    #[napi(catch_unwind)]
    pub fn is_ready(&self) -> bool {
        matches!(&self.producer, Producer::Native(b) if b.is_ready())
    }

    #[napi(getter, catch_unwind)]
    pub fn size(&self) -> u32 {
        self.queue().size() as u32
    }

    #[napi(getter, catch_unwind)]
    pub fn capacity(&self) -> u32 {
        self.queue().capacity() as u32
    }

    #[napi(getter, catch_unwind)]
    pub fn bytes(&self) -> f64 {
        self.queue().bytes() as f64
    }

    #[napi(getter, catch_unwind)]
    pub fn max_bytes(&self) -> f64 {
        self.queue().max_bytes() as f64
    }

    /// Take one slot from the ring (only when no scheduler is attached).
    #[napi(catch_unwind)]
    pub fn pop(&self) -> Result<Option<PoppedSlot>, Code> {
        let slot = self.queue().pop().map_err(to_napi)?;
        Ok(slot.map(|slot| match slot {
            Slot::Record(r) => PoppedSlot {
                kind: "record".into(),
                record: Some(record_to_js(r)),
                error: None,
            },
            Slot::End => PoppedSlot {
                kind: "end".into(),
                record: None,
                error: None,
            },
            Slot::Error(e) => PoppedSlot {
                kind: "error".into(),
                record: None,
                error: Some(ErrorInfo::from(&e)),
            },
        }))
    }

    fn external_producer(&mut self) -> Result<&mut RingProducer, Code> {
        match &mut self.producer {
            Producer::External { producer, .. } => Ok(producer),
            Producer::Native(_) => Err(Error::new(
                Code::State,
                "this buffer has a native producer; records cannot be pushed from JS",
            )),
        }
    }

    /// The stream index of records of `message_type` (null: raw) pushed from
    /// JS, defined now if new: routes by type then apply to them.
    #[napi(catch_unwind)]
    pub fn define_stream(&mut self, message_type: Option<String>) -> Result<u32, Code> {
        match &self.producer {
            Producer::External { streams, .. } => Ok(streams.define(message_type.as_deref())),
            Producer::Native(_) => Err(Error::new(
                Code::State,
                "this buffer has a native reader, whose streams are known",
            )),
        }
    }

    /// Push one record from JS; false when the ring is full (try again later).
    #[napi(catch_unwind)]
    pub fn push(
        &mut self,
        elapsed_time: f64,
        stream: u32,
        topic: String,
        payload: &[u8],
    ) -> Result<bool, Code> {
        let time_ns = seconds_to_ns("elapsedTime", elapsed_time)?;
        let record = Record {
            time_ns,
            stream,
            topic: Arc::from(topic),
            payload: payload.to_vec(),
        };
        Ok(self.external_producer()?.push(Slot::Record(record)).is_ok())
    }

    /// Push the end marker (or an error) after the last record; false when full.
    #[napi(catch_unwind)]
    pub fn push_end(&mut self, error: Option<String>) -> Result<bool, Code> {
        let slot = match error {
            None => Slot::End,
            Some(message) => Slot::Error(netreplay_core::Error::State(message)),
        };
        Ok(self.external_producer()?.push(slot).is_ok())
    }
}

#[napi(object)]
pub struct SchedulerOptionsJs {
    pub speed: Option<f64>,
    /// Most batches handed to JS but not yet processed (backpressure bound).
    pub max_pending_batches: Option<u32>,
    /// Most records in one batch.
    pub max_batch: Option<u32>,
    /// Also broadcast over UDP, from the scheduler thread.
    pub udp: Option<UdpOptionsJs>,
    /// Deliver records to JS (default true); false still reports end/error.
    pub js: Option<bool>,
    /// Waits up to this many seconds are spun through (validated in TS).
    pub busy_wait: Option<f64>,
}

/// Deliveries handed to JS and not yet acknowledged.
#[napi(object)]
pub struct PendingJs {
    pub batches: f64,
    pub messages: f64,
    pub bytes: f64,
}

#[napi(object)]
pub struct LatenessSummary {
    pub count: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Ties log time to CLOCK_MONOTONIC: log time `log_ns` (ns from the log's
/// origin) plays at `wall_ns`; a record logged at t is due at
/// `wall_ns + (t − log_ns) / speed`.
#[napi(object)]
pub struct AnchorJs {
    pub wall_ns: f64,
    pub log_ns: f64,
}

#[napi(object)]
pub struct SchedulerStats {
    pub delivered: f64,
    pub late: f64,
    /// Handover lateness, in seconds.
    pub lateness: LatenessSummary,
    /// The anchor in force; null before the first record and at infinite speed.
    pub anchor: Option<AnchorJs>,
}

fn parse_speed(speed: f64) -> Result<Speed, Code> {
    Speed::new(speed).map_err(to_napi)
}

fn closed() -> Error<Code> {
    Error::new(Code::State, "this ScheduleBroadcasts is closed")
}

/// `ScheduleBroadcasts`: plays a buffer's queue to JS on a native thread.
#[napi]
pub struct NativeScheduler {
    scheduler: Option<Scheduler>,
    delivery: Arc<DeliveryState>,
    udp: Option<Arc<UdpSinkStats>>,
}

#[napi]
impl NativeScheduler {
    /// `onBatch` receives batches of records in order (layout in
    /// `delivery.rs`); each must be acknowledged with `ack()` once consumed.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        buffer: &NativeBuffer,
        options: Option<SchedulerOptionsJs>,
        #[napi(
            ts_arg_type = "(data: Buffer, count: number, newTopics: string[], event: string | null, error: ErrorInfo | null, run: number) => void"
        )]
        on_batch: ReplayCallback,
    ) -> Result<Self, Code> {
        let options = options.unwrap_or(SchedulerOptionsJs {
            speed: None,
            max_pending_batches: None,
            max_batch: None,
            udp: None,
            js: None,
            busy_wait: None,
        });
        let speed = parse_speed(options.speed.unwrap_or(1.0))?;
        let delivery = Arc::new(DeliveryState::default());
        let sink = JsSink::new(
            on_batch,
            delivery.clone(),
            options
                .max_pending_batches
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT_BATCHES)
                .max(1) as usize,
            options.max_batch.unwrap_or(4096).max(1) as usize,
        );
        let mut sinks: Vec<SinkEntry> = Vec::with_capacity(2);
        let mut udp = None;
        if let Some(udp_options) = options.udp {
            let mut sink = udp_sink(udp_options, &buffer.streams)?;
            if let Producer::External { streams, .. } = &buffer.producer {
                sink = sink.with_stream_table(streams.clone());
            }
            udp = Some(sink.stats().clone());
            // First: the network sees the deadline before JS delivery.
            sinks.push(SinkEntry::new(Box::new(sink)));
        }
        if options.js.unwrap_or(true) {
            sinks.push(SinkEntry::new(Box::new(sink)));
        } else {
            sinks.push(SinkEntry::new(Box::new(EventsOnly(sink))));
        }
        let scheduler = Scheduler::new(
            buffer.queue(),
            sinks,
            SchedulerOptions {
                speed,
                ..Default::default()
            },
        )
        .map_err(to_napi)?;
        // A thread spinning on one core makes the JS thread it wakes queue
        // behind it (the kernel places a wakee next to its waker) for up to
        // a time slice, milliseconds: with JS delivery, sleep by default.
        let busy_wait = match options.busy_wait {
            Some(seconds) => seconds_to_ns("busyWait", seconds)?,
            None if options.js.unwrap_or(true) => 0,
            None => BUSY_WAIT_NS,
        };
        scheduler.set_busy_wait(busy_wait);
        Ok(NativeScheduler {
            scheduler: Some(scheduler),
            delivery,
            udp,
        })
    }

    fn inner(&mut self) -> Result<&mut Scheduler, Code> {
        self.scheduler.as_mut().ok_or_else(closed)
    }

    #[napi(catch_unwind)]
    pub fn start(&mut self) -> Result<bool, Code> {
        let scheduler = self.scheduler.as_mut().ok_or_else(closed)?;
        if scheduler.is_alive() {
            return Ok(false);
        }
        scheduler.start().map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<bool, Code> {
        self.inner()?.stop().map_err(to_napi)
    }

    /// The current run number (batches carry the run they belong to).
    #[napi(getter, catch_unwind)]
    pub fn run(&self) -> u32 {
        self.scheduler.as_ref().map_or(0, |s| s.run() as u32)
    }

    /// JS consumed a batch of `records` records in `bytes` bytes (its
    /// count and its buffer's length): lets the scheduler send more.
    #[napi(catch_unwind)]
    pub fn ack(&self, records: u32, bytes: f64) {
        self.delivery.ack(records as usize, bytes as usize);
    }

    /// What JS holds unacknowledged: batches, records and bytes.
    #[napi(catch_unwind)]
    pub fn pending(&self) -> PendingJs {
        let d = &self.delivery;
        PendingJs {
            batches: d.in_flight.load(Ordering::Acquire) as f64,
            messages: d.in_flight_records.load(Ordering::Acquire) as f64,
            bytes: d.in_flight_bytes.load(Ordering::Acquire) as f64,
        }
    }

    /// Forget the position (after the buffer was reset, or to replay afresh).
    #[napi(catch_unwind)]
    pub fn rewind(&mut self) -> Result<(), Code> {
        self.inner()?.rewind().map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn is_alive(&self) -> bool {
        self.scheduler.as_ref().is_some_and(|s| s.is_alive())
    }

    #[napi(getter, catch_unwind)]
    pub fn speed(&mut self) -> Result<f64, Code> {
        Ok(self.inner()?.speed().get())
    }

    #[napi(setter, catch_unwind)]
    pub fn set_speed(&mut self, speed: f64) -> Result<(), Code> {
        let speed = parse_speed(speed)?;
        self.inner()?.set_speed(speed);
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn stats(&mut self) -> Result<SchedulerStats, Code> {
        let stats = self.inner()?.stats().clone();
        Ok(SchedulerStats {
            delivered: stats.delivered.get() as f64,
            late: stats.late.get() as f64,
            lateness: lateness_js(stats.lateness.summary()),
            anchor: stats.anchor().map(|a| AnchorJs {
                wall_ns: a.wall_ns as f64,
                log_ns: a.log_ns as f64,
            }),
        })
    }

    /// Statistics of the UDP sink; null without one.
    #[napi(catch_unwind)]
    pub fn udp_stats(&self) -> Option<UdpStatsJs> {
        self.udp.as_deref().map(udp_stats_js)
    }

    /// Stop the thread and release the queue; safe to call twice.
    #[napi(catch_unwind)]
    pub fn close(&mut self) -> Result<(), Code> {
        if let Some(mut s) = self.scheduler.take() {
            s.stop().map_err(to_napi)?;
        }
        Ok(())
    }
}
