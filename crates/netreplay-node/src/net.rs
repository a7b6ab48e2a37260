//! The network half of the binding: UDP sink statistics, a listener
//! delivering received messages to JS in batches, and MCL log writers
//! (`WriteFile`, network recording). Their options are in `options.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use netreplay_core::engine::Summary;
use netreplay_core::engine::Waiter;
use netreplay_core::engine::{Delivery, Outcome, Sink};
use netreplay_core::format::mcl::{RecorderStream, WriteFile};
use netreplay_core::net::NetworkRecorder;
use netreplay_core::net::UdpSinkStats;
use netreplay_core::net::{Handler, Listener, ListenerSnapshot, ListenerStats, Received};
use netreplay_core::Record;

use crate::errors::{to_napi, Code};
use crate::options::{self, ListenerOptionsJs, RecordSourceJs, RecorderOptionsJs, WriteOptionsJs};
use crate::LatenessSummary;

pub(crate) fn lateness_js(s: Summary) -> LatenessSummary {
    LatenessSummary {
        count: s.count as f64,
        mean: s.mean / 1e9,
        p50: s.p50 / 1e9,
        p90: s.p90 / 1e9,
        p99: s.p99 / 1e9,
        p999: s.p999 / 1e9,
        max: s.max / 1e9,
    }
}

// ---------------------------------------------------------------- UDP sink

#[napi(object)]
pub struct UdpFailuresJs {
    pub would_block: f64,
    pub no_buffers: f64,
    pub too_big: f64,
    pub refused: f64,
    pub unreachable: f64,
    pub invalid: f64,
    pub other: f64,
}

#[napi(object)]
pub struct UdpStatsJs {
    /// Records handed to the sink.
    pub records: f64,
    /// Records whose every datagram was sent.
    pub records_sent: f64,
    pub datagrams: f64,
    pub bytes: f64,
    /// Records sent as fragments.
    pub fragmented: f64,
    /// Records that matched no route and no default destination.
    pub unrouted: f64,
    /// Records not sent after a failure under `failOnError`.
    pub suppressed: f64,
    /// Failed sends, all kinds.
    pub send_failures: f64,
    pub failures: UdpFailuresJs,
    /// Send time against the deadline, seconds.
    pub lateness: LatenessSummary,
    pub failed: bool,
    pub last_error: Option<String>,
}

pub(crate) fn udp_stats_js(stats: &UdpSinkStats) -> UdpStatsJs {
    let s = stats.snapshot();
    UdpStatsJs {
        records: s.records as f64,
        records_sent: s.records_sent as f64,
        datagrams: s.datagrams as f64,
        bytes: s.bytes as f64,
        fragmented: s.fragmented as f64,
        unrouted: s.unrouted as f64,
        suppressed: s.suppressed as f64,
        send_failures: s.send_failures as f64,
        failures: UdpFailuresJs {
            would_block: s.would_block as f64,
            no_buffers: s.no_buffers as f64,
            too_big: s.too_big as f64,
            refused: s.refused as f64,
            unreachable: s.unreachable as f64,
            invalid: s.invalid as f64,
            other: s.other as f64,
        },
        lateness: lateness_js(s.lateness),
        failed: s.failed,
        last_error: s.last_error,
    }
}

/// A sink that passes only the end of a run on (flush and finish), so a
/// replay without JS delivery still reports end and error to JS.
pub(crate) struct EventsOnly<S: Sink>(pub S);

impl<S: Sink> Sink for EventsOnly<S> {
    fn deliver(&mut self, _record: &Record, _delivery: Delivery, _waiter: Waiter<'_>) {}

    fn flush(&mut self, waiter: Waiter<'_>) {
        self.0.flush(waiter);
    }

    fn finish(&mut self, run: u64, outcome: &Outcome) {
        self.0.finish(run, outcome);
    }
}

// ---------------------------------------------------------------- listener

#[napi(object)]
pub struct ReceivedJs {
    pub topic: String,
    /// The msgpack encoding of the message, as sent.
    pub payload: Buffer,
    /// CLOCK_MONOTONIC ns when its (last) datagram was read.
    pub received_at: f64,
    /// Sender, `host:port`.
    pub source: String,
    /// Index of the listening address it came in on.
    pub address: u32,
    /// 1 for a whole datagram, else the number of fragments joined.
    pub fragments: u32,
}

/// Weak: the TS layer keeps the event loop alive while it listens.
pub type ListenerCallback =
    ThreadsafeFunction<Vec<ReceivedJs>, (), Vec<ReceivedJs>, Status, false, true>;

struct JsHandler {
    callback: ListenerCallback,
    batch: Vec<ReceivedJs>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    max_batch: usize,
}

impl JsHandler {
    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self
            .callback
            .call(batch, ThreadsafeFunctionCallMode::NonBlocking)
            != Status::Ok
        {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Handler for JsHandler {
    fn on_message(&mut self, m: &Received<'_>) -> bool {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight >= self.max_in_flight && self.batch.len() >= self.max_batch {
            return false;
        }
        self.batch.push(ReceivedJs {
            topic: m.topic.to_string(),
            payload: m.payload.to_vec().into(),
            received_at: m.received_at_ns as f64,
            source: m.source.to_string(),
            address: m.socket as u32,
            fragments: m.fragments,
        });
        // JS idle: hand over at once; else batch until it catches up.
        if in_flight == 0 || (self.batch.len() >= self.max_batch && in_flight < self.max_in_flight)
        {
            self.send();
        }
        true
    }

    fn on_idle(&mut self) {
        if self.in_flight.load(Ordering::Acquire) < self.max_in_flight {
            self.send();
        }
    }
}

#[napi(object)]
pub struct ListenerStatsJs {
    pub datagrams: f64,
    pub bytes: f64,
    /// Messages decoded (whole or reassembled).
    pub messages: f64,
    /// Datagrams that are not MCL (garbage, truncated msgpack).
    pub garbage: f64,
    /// Messages dropped because JS was too far behind.
    pub dropped: f64,
    pub recv_errors: f64,
    pub fragments: f64,
    pub reassembled: f64,
    pub duplicate_fragments: f64,
    /// Messages lost in reassembly (timed out, evicted, inconsistent).
    pub reassembly_dropped: f64,
    pub reassembly_timed_out: f64,
    pub pending_messages: f64,
    pub pending_bytes: f64,
    pub last_error: Option<String>,
}

fn listener_stats_js(s: ListenerSnapshot) -> ListenerStatsJs {
    ListenerStatsJs {
        datagrams: s.datagrams as f64,
        bytes: s.bytes as f64,
        messages: s.messages as f64,
        garbage: s.garbage as f64,
        dropped: s.handler_dropped as f64,
        recv_errors: s.recv_errors as f64,
        fragments: s.fragments as f64,
        reassembled: s.reassembled as f64,
        duplicate_fragments: s.duplicate_fragments as f64,
        reassembly_dropped: s.reassembly_dropped as f64,
        reassembly_timed_out: s.reassembly_timed_out as f64,
        pending_messages: s.pending_messages as f64,
        pending_bytes: s.pending_bytes as f64,
        last_error: s.last_error,
    }
}

/// `Listener`: receives MCL datagrams on a native thread and hands the
/// messages to JS in batches (each acknowledged with `ack()`).
#[napi]
pub struct NativeListener {
    listener: Option<Listener<JsHandler>>,
    stats: Arc<ListenerStats>,
    in_flight: Arc<AtomicUsize>,
    local: Vec<String>,
}

#[napi]
impl NativeListener {
    #[napi(constructor, catch_unwind)]
    pub fn new(
        options: ListenerOptionsJs,
        #[napi(ts_arg_type = "(messages: ReceivedJs[]) => void")] on_messages: ListenerCallback,
    ) -> Result<Self, Code> {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let handler = JsHandler {
            callback: on_messages,
            batch: Vec::new(),
            in_flight: in_flight.clone(),
            max_in_flight: options.max_pending_batches.unwrap_or(64).max(1) as usize,
            max_batch: options.max_batch.unwrap_or(1024).max(1) as usize,
        };
        let listen = options::listener_options(options::NetOptions {
            addresses: options.addresses,
            interface: options.interface,
            reuse_address: options.reuse_address,
            recv_buffer_bytes: options.recv_buffer_bytes,
            max_pending: options.max_pending,
            max_reassembly_bytes: options.max_reassembly_bytes,
            reassembly_timeout: options.reassembly_timeout,
            max_fragments: options.max_fragments,
            tick: options.tick,
        })?;
        let listener = Listener::start(listen, handler).map_err(to_napi)?;
        Ok(NativeListener {
            stats: listener.stats().clone(),
            local: listener
                .local_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            listener: Some(listener),
            in_flight,
        })
    }

    /// The bound addresses (`host:port`, with the actual port for port 0).
    #[napi(getter, catch_unwind)]
    pub fn local_addresses(&self) -> Vec<String> {
        self.local.clone()
    }

    /// JS consumed `batches` batches.
    #[napi(catch_unwind)]
    pub fn ack(&self, batches: u32) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(batches as usize))
            });
    }

    #[napi(catch_unwind)]
    pub fn is_running(&self) -> bool {
        self.listener.as_ref().is_some_and(|l| l.is_running())
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> ListenerStatsJs {
        listener_stats_js(self.stats.snapshot())
    }

    /// Stop the thread and close the sockets; false if already stopped.
    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<bool, Code> {
        match self.listener.take() {
            Some(l) => l.stop().map(|_| true).map_err(to_napi),
            None => Ok(false),
        }
    }
}

// ---------------------------------------------------------------- writers

fn paths(files: Vec<PathBuf>) -> Vec<String> {
    files.into_iter().map(|p| p.display().to_string()).collect()
}

fn closed_writer() -> napi::Error<Code> {
    napi::Error::new(Code::State, "this WriteFile is closed")
}

/// MCL's `WriteFile`: one message type's records to `<prefix>.log` or a
/// split set `<prefix>_000.log`, … (`.tmp` while written).
#[napi]
pub struct NativeWriteFile {
    inner: Option<WriteFile>,
}

#[napi]
impl NativeWriteFile {
    #[napi(constructor, catch_unwind)]
    pub fn new(prefix: String, options: Option<WriteOptionsJs>) -> Result<Self, Code> {
        let options = options::write_options(options)?;
        let inner = WriteFile::create(prefix, options).map_err(to_napi)?;
        Ok(NativeWriteFile { inner: Some(inner) })
    }

    fn inner(&mut self) -> Result<&mut WriteFile, Code> {
        self.inner.as_mut().ok_or_else(closed_writer)
    }

    /// Write one record: elapsed seconds, topic, msgpack payload bytes.
    #[napi(catch_unwind)]
    pub fn write(&mut self, elapsed_time: f64, topic: String, payload: &[u8]) -> Result<(), Code> {
        let ns =
            netreplay_core::log_time_from_seconds("elapsedTime", elapsed_time).map_err(to_napi)?;
        self.inner()?.write(ns, &topic, payload).map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn flush(&mut self) -> Result<(), Code> {
        self.inner()?.flush().map_err(to_napi)
    }

    /// Entries written so far.
    #[napi(getter, catch_unwind)]
    pub fn entries(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |w| w.entries() as f64)
    }

    /// The `.tmp` file being written, if any.
    #[napi(getter, catch_unwind)]
    pub fn current_path(&self) -> Option<String> {
        self.inner
            .as_ref()
            .and_then(|w| w.current_path())
            .map(|p| p.display().to_string())
    }

    /// Finish (rename to `.log`); returns every file written. Safe to call twice.
    #[napi(catch_unwind)]
    pub fn close(&mut self) -> Result<Vec<String>, Code> {
        match self.inner.take() {
            Some(w) => w.close().map(paths).map_err(to_napi),
            None => Ok(Vec::new()),
        }
    }
}

#[napi(object)]
pub struct RecordingSummaryJs {
    pub directory: String,
    pub files: Vec<String>,
    pub write_errors: f64,
    pub stats: ListenerStatsJs,
}

/// MCL's `LogNetwork`: listens on each source's address and writes what
/// arrives there into that source's file set, all with one time origin.
#[napi]
pub struct NativeRecorder {
    recorder: Option<NetworkRecorder>,
    stats: Arc<ListenerStats>,
    directory: String,
    local: Vec<String>,
}

#[napi]
impl NativeRecorder {
    #[napi(constructor, catch_unwind)]
    pub fn new(sources: Vec<RecordSourceJs>, options: RecorderOptionsJs) -> Result<Self, Code> {
        let mut used = Vec::new();
        let sources = sources
            .into_iter()
            .map(|s| {
                let name = s
                    .name
                    .or_else(|| s.message_type.clone())
                    .unwrap_or_else(|| "None".to_string());
                // Unnamed raw sources: None, None_1, …
                let mut unique = name.clone();
                let mut n = 0;
                while used.contains(&unique) {
                    n += 1;
                    unique = format!("{name}_{n}");
                }
                used.push(unique.clone());
                (
                    s.url,
                    RecorderStream {
                        name: unique,
                        message_type: s.message_type,
                    },
                )
            })
            .collect::<Vec<_>>();
        let format = options::recording_format(&options)?;
        let (listen, record) = options::recorder_options(options)?;
        let recorder =
            NetworkRecorder::start_as(sources, listen, record, format).map_err(to_napi)?;
        Ok(NativeRecorder {
            stats: recorder.listener_stats().clone(),
            directory: recorder.directory().display().to_string(),
            local: recorder
                .local_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            recorder: Some(recorder),
        })
    }

    /// The recording directory.
    #[napi(getter, catch_unwind)]
    pub fn directory(&self) -> String {
        self.directory.clone()
    }

    #[napi(getter, catch_unwind)]
    pub fn local_addresses(&self) -> Vec<String> {
        self.local.clone()
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> ListenerStatsJs {
        listener_stats_js(self.stats.snapshot())
    }

    /// Stop listening and finish every file (`.tmp` → `.log`).
    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<RecordingSummaryJs, Code> {
        let recorder = self
            .recorder
            .take()
            .ok_or_else(|| napi::Error::new(Code::State, "this recording is already stopped"))?;
        let summary = recorder.stop().map_err(to_napi)?;
        Ok(RecordingSummaryJs {
            directory: summary.directory.display().to_string(),
            files: paths(summary.files),
            write_errors: summary.write_errors as f64,
            stats: listener_stats_js(self.stats.snapshot()),
        })
    }
}
