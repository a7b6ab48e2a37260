//! N-API binding of netreplay-core: thin `#[napi]` classes, error mapping and
//! batched thread-safe delivery to JS. No engine logic lives here.

mod bench;
mod delivery;
mod errors;
mod net;
mod options;
mod player;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use netreplay_core::engine::{
    convert, open_directory, open_file, open_mcap, open_pcap, summarize, BufferData, CaptureInfo,
    ConvertOptions, ConvertSummary, LogReader, LogSummary, Queue, RingProducer, Scheduler, Slot,
};
use netreplay_core::format::detect::Format;
use netreplay_core::format::mcl;
use netreplay_core::format::pcap::CaptureFormat;
use netreplay_core::format::RecordSource;
use netreplay_core::net::UdpSinkStats;
use netreplay_core::{PlayerSinks, Record, StreamInfo, StreamTable};

use crate::delivery::{js_delivery, record_handover, DeliveryState, ErrorInfo, ReplayCallback};
use crate::errors::{to_napi, Code};
use crate::net::{lateness_js, udp_stats_js, UdpStatsJs};
use crate::options::{BufferOptionsJs, ReaderOptions, SchedulerOptionsJs};

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
    /// The payloads' encoding: absent for MCL (msgpack), else the MCAP
    /// channel's message encoding; "bytes" for a capture's datagrams.
    pub encoding: Option<String>,
    pub schema: Option<SchemaJs>,
    /// The absolute time (ns) elapsed time 0 stands for: MCAP's first log
    /// time, a capture's first frame; 0 for MCL.
    pub time_base_ns: BigInt,
}

/// An MCAP channel's schema.
#[napi(object)]
pub struct SchemaJs {
    pub name: String,
    pub encoding: String,
    pub data: Buffer,
}

#[napi(object)]
pub struct NativeRecord {
    pub elapsed_time: f64,
    pub stream: u32,
    pub topic: String,
    pub payload: Buffer,
}

/// What a capture among a reader's inputs holds (`ReadPcap`).
#[napi(object)]
pub struct CaptureInfoJs {
    /// "pcap" or "pcapng".
    pub format: String,
    /// The first frame's time, ns since the epoch; a record's absolute time
    /// is this plus its elapsed time.
    pub base_ns: Option<BigInt>,
    pub first_stream: u32,
    pub frames: f64,
    pub datagrams: f64,
    pub filtered: f64,
    pub not_udp: f64,
    pub fragments: f64,
    pub truncated: f64,
    pub malformed: f64,
    pub link_type: f64,
    pub untimed: f64,
    /// The damage to the file's structure, if any (reading stops there).
    pub damage: Option<String>,
    /// The original destinations (`ip:port`), one per stream from `firstStream`.
    pub destinations: Vec<String>,
}

fn capture_to_js(c: &CaptureInfo) -> CaptureInfoJs {
    let n = &c.counts;
    CaptureInfoJs {
        format: match c.format {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::Pcapng => "pcapng",
        }
        .into(),
        base_ns: c.base_ns.map(BigInt::from),
        first_stream: c.first_stream,
        frames: n.frames as f64,
        datagrams: n.datagrams as f64,
        filtered: n.filtered as f64,
        not_udp: n.not_udp as f64,
        fragments: n.fragments as f64,
        truncated: n.truncated as f64,
        malformed: n.malformed as f64,
        link_type: n.link_type as f64,
        untimed: n.untimed as f64,
        damage: c.damage.clone(),
        destinations: c.destinations.iter().map(|a| a.to_string()).collect(),
    }
}

fn record_to_js(record: Record) -> NativeRecord {
    NativeRecord {
        elapsed_time: record.time_ns as f64 / 1e9,
        stream: record.stream,
        topic: record.topic.to_string(),
        payload: record.payload.into(),
    }
}

#[napi(object)]
pub struct TopicSummaryJs {
    pub stream: u32,
    pub topic: String,
    pub count: f64,
    pub first_time: f64,
    pub last_time: f64,
    pub largest_gap: f64,
    pub bytes: f64,
}

#[napi(object)]
pub struct LogSummaryJs {
    pub topics: Vec<TopicSummaryJs>,
    pub count: f64,
    pub bytes: f64,
    /// First and last record times, seconds; absent without records.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    pub skipped: f64,
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

fn summary_to_js(s: LogSummary) -> LogSummaryJs {
    LogSummaryJs {
        topics: s
            .topics
            .into_iter()
            .map(|t| TopicSummaryJs {
                stream: t.stream,
                topic: t.topic.to_string(),
                count: t.count as f64,
                first_time: seconds(t.first_ns),
                last_time: seconds(t.last_ns),
                largest_gap: seconds(t.largest_gap_ns),
                bytes: t.bytes as f64,
            })
            .collect(),
        count: s.count as f64,
        bytes: s.bytes as f64,
        first_time: s.span_ns.map(|(first, _)| seconds(first)),
        last_time: s.span_ns.map(|(_, last)| seconds(last)),
        skipped: s.skipped as f64,
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
pub struct NativeLogReader {
    reader: Option<LogReader>,
    streams: Vec<StreamInfo>,
    headers: Vec<Option<mcl::Header>>,
    captures: Vec<CaptureInfo>,
}

#[napi]
impl NativeLogReader {
    /// `kind` is "file", "directory" or "pcap".
    #[napi(constructor, catch_unwind)]
    pub fn new(kind: String, path: String, options: Option<ReaderOptions>) -> Result<Self, Code> {
        let path = PathBuf::from(path);
        let reader = match kind.as_str() {
            "file" => open_file(&path, &options::read_options(options)?),
            "directory" => open_directory(&path, &options::read_options(options)?),
            "pcap" => open_pcap(&path, &options::pcap_options(options)?),
            other => {
                return Err(to_napi(netreplay_core::Error::invalid(
                    "kind",
                    format!("must be 'file', 'directory' or 'pcap', got '{other}'"),
                )))
            }
        }
        .map_err(to_napi)?;
        Ok(Self::of(reader))
    }

    /// `ReadMcap`: MCAP files read as one, merged by log time.
    #[napi(factory, catch_unwind)]
    pub fn mcap(paths: Vec<String>, options: Option<ReaderOptions>) -> Result<Self, Code> {
        let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
        let reader = open_mcap(&paths, &options::mcap_options(options)?).map_err(to_napi)?;
        Ok(Self::of(reader))
    }

    fn of(reader: LogReader) -> Self {
        NativeLogReader {
            streams: reader.streams().to_vec(),
            headers: reader.headers().to_vec(),
            captures: reader.captures().to_vec(),
            reader: Some(reader),
        }
    }

    /// The captures among the inputs, with their counts.
    #[napi(getter, catch_unwind)]
    pub fn captures(&self) -> Vec<CaptureInfoJs> {
        self.captures.iter().map(capture_to_js).collect()
    }

    /// Several logs read as one, merged in time order (ties by input order):
    /// takes over `inputs`' readers.
    #[napi(factory, catch_unwind)]
    pub fn merge(inputs: Vec<&mut NativeLogReader>) -> Result<Self, Code> {
        // Check first that every input still has its reader: none is taken
        // if one cannot be.
        if inputs.iter().any(|r| r.reader.is_none()) {
            return Err(Error::new(
                Code::State,
                "a reader merged already belongs to another BufferData or Replay",
            ));
        }
        let readers: Vec<LogReader> = inputs
            .into_iter()
            .map(|r| r.take())
            .collect::<Result<_, _>>()?;
        Ok(Self::of(LogReader::merge(readers)))
    }

    /// Hand the native reader over (to a buffer or a player).
    pub(crate) fn take(&mut self) -> Result<LogReader, Code> {
        self.reader.take().ok_or_else(|| {
            Error::new(
                Code::State,
                "this reader already belongs to another BufferData or Replay",
            )
        })
    }

    fn reader(&mut self) -> Result<&mut LogReader, Code> {
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

    /// Reads on to the end, counting per (stream, topic) without decoding
    /// payloads (blocks: a 2 GB log takes seconds), or the error met.
    #[napi(catch_unwind)]
    pub fn summarize(&mut self) -> Result<Either<LogSummaryJs, ErrorInfo>, Code> {
        Ok(match summarize(self.reader()?) {
            Ok(summary) => Either::A(summary_to_js(summary)),
            Err(err) => Either::B(ErrorInfo::from(&err)),
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
                encoding: s.encoding.clone(),
                schema: s.schema.as_ref().map(|schema| SchemaJs {
                    name: schema.name.clone(),
                    encoding: schema.encoding.clone(),
                    data: schema.data.clone().into(),
                }),
                time_base_ns: BigInt::from(s.time_base_ns),
            })
            .collect()
    }
}

/// The format of the file at `path` by its content: "mcl", "mcap", "pcap"
/// or "pcapng"; null when it is not a file that can be read.
#[napi(catch_unwind)]
pub fn detect_format(path: String) -> Option<String> {
    let path = PathBuf::from(path);
    if !path.is_file() {
        return None;
    }
    let format = netreplay_core::format::detect::detect_file(&path).ok()?;
    Some(
        match format {
            Format::Mcl => "mcl",
            Format::Mcap => "mcap",
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
        .into(),
    )
}

#[napi(object)]
#[derive(Default)]
pub struct ConvertOptionsJs {
    /// MCAP output: chunk compression "zstd" (default), "lz4" or "none".
    pub compression: Option<String>,
    /// MCAP output: uncompressed bytes per chunk (default 1 MiB).
    pub chunk_size: Option<f64>,
    /// "fail" (default) or "skip": malformed input records.
    pub on_error: Option<String>,
}

#[napi(object)]
pub struct ConvertSummaryJs {
    pub messages: f64,
    pub files: Vec<String>,
    pub skipped: f64,
}

/// Converting on a libuv worker thread (`convertLog`).
pub struct ConvertTask {
    input: PathBuf,
    output: PathBuf,
    options: ConvertOptions,
}

impl Task for ConvertTask {
    type Output = std::result::Result<ConvertSummary, netreplay_core::Error>;
    type JsValue = Either<ConvertSummaryJs, ErrorInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        // No panic may unwind out of the worker thread into libuv.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            convert(&self.input, &self.output, &self.options)
        }))
        .map_err(|_| napi::Error::from_reason("netreplay: internal error (panic) in convert"))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Ok(summary) => Either::A(ConvertSummaryJs {
                messages: summary.messages as f64,
                files: summary
                    .files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                skipped: summary.skipped as f64,
            }),
            Err(err) => Either::B(ErrorInfo::from(&err)),
        })
    }
}

/// `convert`: an MCL log (file, split set, directory) to MCAP when `output`
/// ends in `.mcap`, an MCAP file to MCL otherwise; resolves with what was
/// written, or a description of the error.
#[napi(catch_unwind)]
pub fn convert_log(
    input: String,
    output: String,
    options: Option<ConvertOptionsJs>,
) -> Result<AsyncTask<ConvertTask>, Code> {
    let options = options.unwrap_or_default();
    let read = options::read_options(Some(ReaderOptions {
        on_error: options.on_error,
        ..ReaderOptions::default()
    }))?;
    Ok(AsyncTask::new(ConvertTask {
        input: PathBuf::from(input),
        output: PathBuf::from(output),
        options: ConvertOptions {
            mcap: options::mcap_write_options(options.compression.as_deref(), options.chunk_size)?,
            on_error: read.on_error,
        },
    }))
}

enum Producer {
    /// A native thread reads a native source.
    Native(Box<BufferData>),
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
        reader: &mut NativeLogReader,
        options: Option<BufferOptionsJs>,
    ) -> Result<Self, Code> {
        // Checked before the reader is taken: a bad option loses nothing.
        let options = options::buffer_options(options)?;
        let source = reader.take()?;
        let streams = source.streams().to_vec();
        let buffer = BufferData::new(Box::new(source), options).map_err(to_napi)?;
        Ok(NativeBuffer {
            producer: Producer::Native(Box::new(buffer)),
            streams,
        })
    }

    /// A buffer that JS fills with `push` (for readers written in JS).
    #[napi(factory, catch_unwind)]
    pub fn external(options: Option<BufferOptionsJs>) -> Result<Self, Code> {
        let options = options::buffer_options(options)?;
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
        let mut slot = self.queue().pop().map_err(to_napi)?;
        // A BufferData plays one pass: a seam cannot come, and would carry
        // nothing for JS.
        while let Some(Slot::Seam(_)) = slot {
            slot = self.queue().pop().map_err(to_napi)?;
        }
        Ok(slot.and_then(|slot| match slot {
            Slot::Record(r) | Slot::Backfill(r) => Some(PoppedSlot {
                kind: "record".into(),
                record: Some(record_to_js(r)),
                error: None,
            }),
            Slot::End => Some(PoppedSlot {
                kind: "end".into(),
                record: None,
                error: None,
            }),
            Slot::Error(e) => Some(PoppedSlot {
                kind: "error".into(),
                record: None,
                error: Some(ErrorInfo::from(&e)),
            }),
            Slot::Seam(_) => None,
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
        let time_ns = options::seconds_to_ns("elapsedTime", elapsed_time)?;
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

/// Deliveries handed to JS and not yet acknowledged.
#[napi(object)]
pub struct PendingJs {
    pub batches: f64,
    pub messages: f64,
    pub bytes: f64,
}

#[napi(object)]
#[derive(Clone)]
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
    /// Lateness where records are delivered, in seconds: when JS received
    /// them (JS delivery), else the engine's handover.
    pub lateness: LatenessSummary,
    /// The engine's handover lateness (deadline to the sinks), in seconds.
    pub handover_lateness: LatenessSummary,
    /// Records that sinks under the "drop" lag policy dropped.
    pub dropped: f64,
    /// The anchor in force; null before the first record and at infinite speed.
    pub anchor: Option<AnchorJs>,
    /// Seconds before a deadline the scheduler's waits stop sleeping and
    /// spin: learned from its wake-ups, unless `spinMargin` fixed it.
    pub spin_margin: f64,
    /// Whether the kernel gave the scheduler thread a short time slice
    /// (Linux 6.12+), so that it preempts busy threads when it wakes.
    pub timing_slice: bool,
    /// Whether the scheduler thread waits in the real-time class (SCHED_FIFO,
    /// priority 1) in this run, or did at the end of the last: see the
    /// `realtime` option.
    pub realtime: bool,
}

impl SchedulerStats {
    fn of(scheduler: &Scheduler, js_sink: Option<usize>) -> Self {
        let stats = scheduler.stats();
        let sinks = scheduler.sink_stats();
        let handover = lateness_js(stats.lateness.summary());
        SchedulerStats {
            delivered: stats.delivered.get() as f64,
            late: stats.late.get() as f64,
            lateness: js_sink.map_or(handover.clone(), |i| {
                lateness_js(sinks[i].lateness.summary())
            }),
            handover_lateness: handover,
            dropped: sinks.iter().map(|s| s.dropped.get()).sum::<u64>() as f64,
            anchor: stats.anchor().map(|a| AnchorJs {
                wall_ns: a.wall_ns as f64,
                log_ns: a.log_ns as f64,
            }),
            spin_margin: stats.spin_margin_ns.load(Ordering::Relaxed) as f64 / 1e9,
            timing_slice: stats.timing_slice.load(Ordering::Relaxed),
            realtime: stats.realtime.load(Ordering::Relaxed),
        }
    }
}

impl PendingJs {
    fn of(d: &DeliveryState) -> Self {
        PendingJs {
            batches: d.in_flight.load(Ordering::Acquire) as f64,
            messages: d.in_flight_records.load(Ordering::Acquire) as f64,
            bytes: d.in_flight_bytes.load(Ordering::Acquire) as f64,
        }
    }
}

/// JS received `data` (a batch) at `arrived_ns` (CLOCK_MONOTONIC, read by
/// JS on arrival): record how late its records were at the JS sink (index
/// `js_sink` of `scheduler`'s sinks).
fn record_js_handover(scheduler: &Scheduler, js_sink: Option<usize>, data: &[u8], arrived_ns: i64) {
    if let Some(i) = js_sink {
        record_handover(data, arrived_ns, &scheduler.sink_stats()[i].lateness);
    }
}

fn closed() -> Error<Code> {
    Error::new(Code::State, "this ScheduleBroadcasts is closed")
}

/// `ScheduleBroadcasts`: plays a buffer's queue to JS on a native thread.
#[napi]
pub struct NativeScheduler {
    scheduler: Option<Scheduler>,
    delivery: Arc<DeliveryState>,
    js_sink: Option<usize>,
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
        let mut options = options.unwrap_or_default();
        let scheduler_options = options::scheduler_options(&options)?;
        let delivery = js_delivery(&mut options, on_batch)?;
        let table = match &buffer.producer {
            Producer::External { streams, .. } => Some(streams.clone()),
            Producer::Native(_) => None,
        };
        let (sinks, udp) = PlayerSinks::build(delivery.sinks, &buffer.streams, table)
            .map_err(to_napi)?
            .into_parts();
        let scheduler =
            Scheduler::new(buffer.queue(), sinks, scheduler_options).map_err(to_napi)?;
        Ok(NativeScheduler {
            scheduler: Some(scheduler),
            delivery: delivery.state,
            js_sink: delivery.js_sink,
            udp: udp.into_iter().next(),
        })
    }

    fn inner(&mut self) -> Result<&mut Scheduler, Code> {
        self.scheduler.as_mut().ok_or_else(closed)
    }

    #[napi(catch_unwind)]
    pub fn start(&mut self) -> Result<bool, Code> {
        self.inner()?.start().map_err(to_napi)
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

    /// JS received this batch at `arrived_ns` (its hrtime on arrival):
    /// records lateness at the JS sink.
    #[napi(catch_unwind)]
    pub fn handed(&self, data: &[u8], arrived_ns: f64) {
        if let Some(s) = &self.scheduler {
            record_js_handover(s, self.js_sink, data, arrived_ns as i64);
        }
    }

    /// What JS holds unacknowledged: batches, records and bytes.
    #[napi(catch_unwind)]
    pub fn pending(&self) -> PendingJs {
        PendingJs::of(&self.delivery)
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
        let speed = options::speed(speed)?;
        self.inner()?.set_speed(speed);
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn stats(&mut self) -> Result<SchedulerStats, Code> {
        let js_sink = self.js_sink;
        Ok(SchedulerStats::of(self.inner()?, js_sink))
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
