//! Every option object JS passes, and its conversion to core options. Core's
//! `Default`s are the defaults for anything JS leaves out; this module maps
//! JS shapes (seconds, strings, numbers) onto core types.

use std::path::PathBuf;
use std::time::Duration;

use napi_derive::napi;
use netreplay_core::engine::{
    BufferOptions, LagPolicy, Pace, Pattern, Realtime, SchedulerOptions, Selection, Speed,
    TimelineOptions,
};
use netreplay_core::format::mcap::{
    Compression, McapOptions, McapTime, McapWriteOptions, DEFAULT_CHUNK_SIZE,
};
use netreplay_core::format::mcl::{
    format_created, HeaderStyle, ReadOptions, RecorderOptions, TimeOrigin, WriteOptions,
};
use netreplay_core::format::pcap::PcapOptions;
use netreplay_core::format::reassembly::ReassemblyOptions;
use netreplay_core::format::wire::{RawEncoding, WireOptions};
use netreplay_core::format::{OnError, TimeWindow};
use netreplay_core::net::{ListenerOptions, Readdress, RecordingFormat, Route, UdpSinkOptions};
use netreplay_core::{
    log_time_from_seconds, Error as CoreError, PlaybackOptions, SinkConfig, SinkKind,
};

use crate::errors::{to_napi, Code};

pub type Result<T> = napi::Result<T, Code>;

/// A finite number of seconds as nanoseconds.
pub fn seconds_to_ns(name: &'static str, seconds: f64) -> Result<i64> {
    if !seconds.is_finite() {
        return Err(invalid(
            name,
            format!("must be a finite number of seconds, got {seconds}"),
        ));
    }
    Ok((seconds * 1e9).round() as i64)
}

/// A log time in seconds (elapsed time, seek target) as nanoseconds.
pub fn log_time(name: &'static str, seconds: f64) -> Result<i64> {
    log_time_from_seconds(name, seconds).map_err(to_napi)
}

pub fn speed(value: f64) -> Result<Speed> {
    Speed::new(value).map_err(to_napi)
}

/// `'wait'` (default) or `'drop'`.
pub fn lag(name: &'static str, value: Option<&str>) -> Result<LagPolicy> {
    match value {
        None | Some("wait") => Ok(LagPolicy::Wait),
        Some("drop") => Ok(LagPolicy::Drop),
        Some(other) => Err(invalid(
            name,
            format!("must be 'wait' or 'drop', got '{other}'"),
        )),
    }
}

#[napi(object)]
#[derive(Default)]
pub struct ReaderOptions {
    pub min_time: Option<f64>,
    pub max_time: Option<f64>,
    pub include_raw: Option<bool>,
    /// "fail" (default) or "skip".
    pub on_error: Option<String>,
    /// Captures only: a BPF-style filter (`udp dst port 26000 and src host 10.0.0.1`).
    pub filter: Option<String>,
    /// Captures only: destination ports to keep (any of them).
    pub dst_ports: Option<Vec<u32>>,
    /// Captures only: the source to keep, `ip` or `ip:port`.
    pub src: Option<String>,
    /// MCAP only (`ReadMcap`): read only these topics (exact names); chunks
    /// holding none of them are skipped unread.
    pub topics: Option<Vec<String>>,
    /// MCAP only (`ReadMcap`): "log" (default) or "publish": the time
    /// messages are played by.
    pub timestamp: Option<String>,
}

/// The options of reading MCAP files (`ReadMcap`).
pub fn mcap_options(options: Option<ReaderOptions>) -> Result<McapOptions> {
    let options = options.unwrap_or_default();
    let topics = options.topics.clone();
    let time = match options.timestamp.as_deref() {
        None | Some("log") => McapTime::Log,
        Some("publish") => McapTime::Publish,
        Some(other) => {
            return Err(invalid(
                "timestamp",
                format!("must be 'log' or 'publish', got '{other}'"),
            ))
        }
    };
    let read = read_options(Some(ReaderOptions {
        topics: None,
        timestamp: None,
        ..options
    }))?;
    Ok(McapOptions {
        window: read.window,
        on_error: read.on_error,
        topics,
        time,
    })
}

/// The options of reading a capture (`ReadPcap`).
pub fn pcap_options(options: Option<ReaderOptions>) -> Result<PcapOptions> {
    let options = options.unwrap_or_default();
    let dst_ports = options
        .dst_ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            u16::try_from(p)
                .map_err(|_| invalid("dstPort", format!("must be a port 0..=65535, got {p}")))
        })
        .collect::<Result<Vec<u16>>>()?;
    let (filter, src) = (options.filter.clone(), options.src.clone());
    let read = read_options(Some(ReaderOptions {
        filter: None,
        dst_ports: None,
        src: None,
        ..options
    }))?;
    Ok(PcapOptions {
        window: read.window,
        on_error: read.on_error,
        filter,
        dst_ports,
        src,
    })
}

pub fn read_options(options: Option<ReaderOptions>) -> Result<ReadOptions> {
    let options = options.unwrap_or_default();
    for (name, given) in [
        ("filter", options.filter.is_some()),
        ("dstPort", options.dst_ports.is_some()),
        ("src", options.src.is_some()),
    ] {
        if given {
            return Err(invalid(name, "applies to captures (pcap, pcapng) only"));
        }
    }
    for (name, given) in [
        ("topics", options.topics.is_some()),
        ("timestamp", options.timestamp.is_some()),
    ] {
        if given {
            return Err(invalid(name, "applies to MCAP files (ReadMcap) only"));
        }
    }
    let defaults = ReadOptions::default();
    let on_error = match options.on_error.as_deref() {
        None => defaults.on_error,
        Some("fail") => OnError::Fail,
        Some("skip") => OnError::Skip,
        Some(other) => {
            return Err(invalid(
                "onError",
                format!("must be 'fail' or 'skip', got '{other}'"),
            ))
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
    Ok(ReadOptions {
        window,
        include_raw: options.include_raw.unwrap_or(defaults.include_raw),
        on_error,
    })
}

#[napi(object)]
#[derive(Default)]
pub struct BufferOptionsJs {
    pub length: Option<u32>,
    pub max_bytes: Option<f64>,
}

pub fn buffer_options(options: Option<BufferOptionsJs>) -> Result<BufferOptions> {
    let options = options.unwrap_or_default();
    let defaults = BufferOptions::default();
    let max_bytes = match options.max_bytes {
        None => defaults.max_bytes,
        Some(b) if b.is_finite() && b >= 1.0 => b as usize,
        Some(b) => {
            return Err(invalid(
                "maxBytes",
                format!("must be a number >= 1, got {b}"),
            ))
        }
    };
    let options = BufferOptions {
        length: options.length.map_or(defaults.length, |n| n as usize),
        max_bytes,
    };
    options.validate().map_err(to_napi)?;
    Ok(options)
}

/// How records reach JS, and the other sinks of a replay.
#[napi(object)]
#[derive(Default)]
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
    /// Waits up to this many seconds are spun through.
    pub busy_wait: Option<f64>,
    /// Seconds before a deadline a wait stops sleeping (default: learned).
    pub spin_margin: Option<f64>,
    /// JS delivery's lag policy: "wait" (default) or "drop".
    pub lag: Option<String>,
    /// The scheduler thread's class: "auto" (default), "on" or "off".
    pub realtime: Option<String>,
}

pub fn scheduler_options(options: &SchedulerOptionsJs) -> Result<SchedulerOptions> {
    let defaults = SchedulerOptions::default();
    Ok(SchedulerOptions {
        speed: options
            .speed
            .map(speed)
            .transpose()?
            .unwrap_or(defaults.speed),
        busy_wait_ns: match options.busy_wait {
            Some(seconds) => Some(seconds_to_ns("busyWait", seconds)?),
            None => defaults.busy_wait_ns,
        },
        spin_margin_ns: options
            .spin_margin
            .map(|seconds| seconds_to_ns("spinMargin", seconds))
            .transpose()?,
        realtime: match options.realtime.as_deref() {
            None | Some("auto") => Realtime::Auto,
            Some("on") => Realtime::On,
            Some("off") => Realtime::Off,
            Some(other) => {
                return Err(invalid(
                    "realtime",
                    format!("must be true, false or 'auto', got {other:?}"),
                ))
            }
        },
        ..defaults
    })
}

/// A replay's options: the buffer's, the scheduler's and the timeline's.
#[napi(object)]
#[derive(Default)]
pub struct PlayerOptionsJs {
    pub buffer: Option<BufferOptionsJs>,
    pub schedule: Option<SchedulerOptionsJs>,
    pub playback: Option<PlaybackOptionsJs>,
}

/// A topic or type to match: `exact`, or a regular expression `regex`
/// (a JS RegExp's source) with its `i` flag as `ignoreCase`.
#[napi(object)]
pub struct PatternJs {
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub ignore_case: Option<bool>,
}

#[napi(object)]
pub struct RemapJs {
    pub from: String,
    pub to: String,
}

/// What of the log a replay plays, and how its timeline is shaped (the
/// TS `ReplayOptions` of the same names; seconds as everywhere).
#[napi(object)]
#[derive(Default)]
pub struct PlaybackOptionsJs {
    pub start_offset: Option<f64>,
    pub duration: Option<f64>,
    /// Log time (seconds) at which each pass ends.
    pub until: Option<f64>,
    pub limit: Option<f64>,
    pub start_paused: Option<bool>,
    pub delay: Option<f64>,
    /// Passes in all; 0: for ever (`loop: true`).
    pub passes: Option<f64>,
    pub loop_delay: Option<f64>,
    pub continuous_time: Option<bool>,
    pub max_gap: Option<f64>,
    pub messages_per_second: Option<f64>,
    pub bytes_per_second: Option<f64>,
    /// CLOCK_REALTIME ns since the epoch, as decimal digits (a bigint's).
    pub start_at: Option<String>,
    pub clock_hz: Option<f64>,
    /// `udp://host:port` to send a clock datagram to at each tick.
    pub clock_destination: Option<String>,
    pub virtual_time: Option<bool>,
    pub topics: Option<Vec<PatternJs>>,
    pub exclude_topics: Option<Vec<PatternJs>>,
    pub types: Option<Vec<PatternJs>>,
    pub exclude_types: Option<Vec<PatternJs>>,
    pub remap: Option<Vec<RemapJs>>,
    pub backfill: Option<bool>,
}

/// Seconds of log time, or of a duration (any sign: core checks the domain).
fn opt_log_time(name: &'static str, value: Option<f64>) -> Result<Option<i64>> {
    value.map(|s| log_time(name, s)).transpose()
}

fn patterns(name: &'static str, list: Option<Vec<PatternJs>>) -> Result<Vec<Pattern>> {
    list.unwrap_or_default()
        .into_iter()
        .map(|p| match (p.exact, p.regex) {
            (Some(exact), None) => Ok(Pattern::Exact(exact)),
            (None, Some(source)) => {
                Pattern::regex(name, &source, p.ignore_case.unwrap_or(false)).map_err(to_napi)
            }
            _ => Err(invalid(name, "each pattern is a string or a RegExp")),
        })
        .collect()
}

/// An integer >= 0 given as a JS number.
fn whole(name: &'static str, n: f64) -> Result<u64> {
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > 2f64.powi(53) {
        return Err(invalid(name, format!("must be an integer >= 0, got {n}")));
    }
    Ok(n as u64)
}

/// The playback's options into core's: the timeline and timing options go
/// to the scheduler's, the rest to the playback's.
pub fn playback_options(
    options: Option<PlaybackOptionsJs>,
    scheduler: &mut SchedulerOptions,
) -> Result<PlaybackOptions> {
    let o = options.unwrap_or_default();
    let pace = match (o.messages_per_second, o.bytes_per_second) {
        (None, None) => Pace::Log,
        (Some(pps), None) => Pace::MessagesPerSecond(pps),
        (None, Some(bps)) => Pace::BytesPerSecond(bps),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "rate",
                "give messagesPerSecond or bytesPerSecond, not both",
            ))
        }
    };
    scheduler.timeline = TimelineOptions {
        pace,
        max_gap_ns: opt_log_time("maxGap", o.max_gap)?,
        loop_delay_ns: opt_log_time("loopDelay", o.loop_delay)?.unwrap_or(0),
        continuous_time: o.continuous_time.unwrap_or(false),
    };
    scheduler.delay_ns = opt_log_time("delay", o.delay)?.unwrap_or(0);
    scheduler.limit = o.limit.map(|n| whole("limit", n)).transpose()?;
    scheduler.clock_period_ns = match o.clock_hz {
        None => None,
        Some(hz) if hz.is_finite() && hz > 0.0 && hz <= 10_000.0 => Some((1e9 / hz).round() as i64),
        Some(hz) => {
            return Err(invalid(
                "clock",
                format!("must be a rate in Hz, > 0 and <= 10000, got {hz}"),
            ))
        }
    };
    scheduler.virtual_time = o.virtual_time.unwrap_or(false);
    let start_at_unix_ns = o
        .start_at
        .map(|digits| {
            digits.parse::<i128>().map_err(|_| {
                invalid(
                    "startAt",
                    format!("must be a Date or epoch nanoseconds as a bigint, got '{digits}'"),
                )
            })
        })
        .transpose()?;
    let passes = match o.passes {
        None => Some(1),
        Some(n) => match whole("loop", n)? {
            0 => None,
            n => Some(n),
        },
    };
    Ok(PlaybackOptions {
        start_offset_ns: opt_log_time("startOffset", o.start_offset)?,
        duration_ns: opt_log_time("duration", o.duration)?,
        until_ns: opt_log_time("until", o.until)?,
        passes,
        backfill: o.backfill.unwrap_or(false),
        selection: Selection {
            topics: patterns("topics", o.topics)?,
            exclude_topics: patterns("excludeTopics", o.exclude_topics)?,
            types: patterns("types", o.types)?,
            exclude_types: patterns("excludeTypes", o.exclude_types)?,
            remap: o
                .remap
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.from, r.to))
                .collect(),
        },
        start_paused: o.start_paused.unwrap_or(false),
        start_at_unix_ns,
    })
}

pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> napi::Error<Code> {
    to_napi(CoreError::invalid(name, message.into()))
}

/// A finite number of seconds > 0 as a duration.
pub(crate) fn seconds(name: &'static str, s: f64) -> Result<Duration> {
    if !s.is_finite() || s <= 0.0 {
        return Err(invalid(
            name,
            format!("must be a finite number of seconds > 0, got {s}"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// An integer >= 1.
pub(crate) fn count(name: &'static str, n: f64) -> Result<u64> {
    if !n.is_finite() || n < 1.0 || n.fract() != 0.0 {
        return Err(invalid(name, format!("must be an integer >= 1, got {n}")));
    }
    Ok(n as u64)
}

// ---------------------------------------------------------------- UDP sink

#[napi(object)]
pub struct UdpRouteJs {
    /// Message type (the log's `>>> Type`); absent: any type.
    #[napi(js_name = "type")]
    pub message_type: Option<String>,
    /// Topic; absent: any topic.
    pub topic: Option<String>,
    /// `udp://host:port`.
    pub destination: String,
}

#[napi(object)]
pub struct UdpOptionsJs {
    /// Where records that match no route go.
    pub destination: Option<String>,
    pub routes: Option<Vec<UdpRouteJs>>,
    /// Multicast TTL / hop limit, 0..=255 (default 3).
    pub hop_limit: Option<u32>,
    /// TTL / hop limit of unicast datagrams (default: the system's).
    pub unicast_hops: Option<u32>,
    /// Outgoing multicast interface: name, index or (IPv4) address.
    pub interface: Option<String>,
    /// Multicast loopback to this host (default true).
    pub multicast_loop: Option<bool>,
    /// Largest datagram in bytes (default 60000).
    pub mtu: Option<u32>,
    /// Topics and fragments as msgpack "raw" exactly as MCL/Python 2 sent them.
    pub legacy_encoding: Option<bool>,
    /// Check each payload is one msgpack value before sending (default true).
    pub validate_payload: Option<bool>,
    pub send_buffer_bytes: Option<u32>,
    /// Longest wait for room in a full socket buffer, seconds (default 1).
    pub send_timeout: Option<f64>,
    /// Stop the replay with an error at the first send failure (default false).
    pub fail_on_error: Option<bool>,
    /// "wait" (default: the replay slows down, nothing is lost) or "drop"
    /// (a datagram that cannot be sent at once is dropped and counted).
    pub lag: Option<String>,
    /// Payloads as they are, one datagram each (a capture's), not MCL datagrams.
    pub raw: Option<bool>,
    /// Route by the address each topic names (a capture's original
    /// destination); default: with `raw` and no `routes`.
    pub by_address: Option<bool>,
    /// With `byAddress`: original `ip:port` or `*:port` → `udp://host:port`.
    pub map: Option<Vec<UdpMapJs>>,
}

#[napi(object)]
pub struct UdpMapJs {
    /// `ip:port`, `[v6]:port` or `*:port`.
    pub original: String,
    /// `udp://host:port`.
    pub destination: String,
}

/// The UDP sink's config: its options (core's defaults for what JS leaves
/// out) and its lag policy.
pub(crate) fn udp_sink_config(options: UdpOptionsJs) -> Result<SinkConfig> {
    let lag = lag("udp.lag", options.lag.as_deref())?;
    let defaults = UdpSinkOptions::default();
    let routes: Vec<Route> = options
        .routes
        .unwrap_or_default()
        .into_iter()
        .map(|r| Route {
            message_type: r.message_type,
            topic: r.topic,
            destination: r.destination,
        })
        .collect();
    let wire = WireOptions {
        mtu: options.mtu.map_or(defaults.wire.mtu, |m| m as usize),
        raw_encoding: if options.legacy_encoding.unwrap_or(false) {
            RawEncoding::Legacy
        } else {
            RawEncoding::Bin
        },
        validate_payload: options
            .validate_payload
            .unwrap_or(defaults.wire.validate_payload),
        ..defaults.wire
    };
    let send_timeout = match options.send_timeout {
        Some(s) => seconds("sendTimeout", s)?,
        None => defaults.send_timeout,
    };
    let raw = options.raw.unwrap_or(defaults.raw);
    let map = options.map.unwrap_or_default();
    let by_address = options
        .by_address
        .unwrap_or((raw && routes.is_empty()) || !map.is_empty());
    let readdress = by_address.then(|| Readdress {
        map: map
            .into_iter()
            .map(|m| (m.original, m.destination))
            .collect(),
    });
    let options = UdpSinkOptions {
        destination: options.destination,
        routes,
        hop_limit: options.hop_limit.unwrap_or(defaults.hop_limit),
        unicast_hops: options.unicast_hops,
        interface: options.interface,
        multicast_loop: options.multicast_loop.unwrap_or(defaults.multicast_loop),
        wire,
        send_buffer_bytes: options.send_buffer_bytes.map(|b| b as usize),
        send_timeout,
        fail_on_error: options.fail_on_error.unwrap_or(defaults.fail_on_error),
        raw,
        readdress,
    };
    Ok(SinkConfig {
        kind: SinkKind::Udp(Box::new(options)),
        lag,
    })
}

// ---------------------------------------------------------------- listener

#[napi(object)]
pub struct ListenerOptionsJs {
    /// `udp://` URLs to bind (multicast groups are joined); port 0: a free port.
    pub addresses: Vec<String>,
    /// Interface for multicast groups: name, index or (IPv4) address.
    pub interface: Option<String>,
    /// SO_REUSEADDR (default: on for multicast, off for unicast).
    pub reuse_address: Option<bool>,
    pub recv_buffer_bytes: Option<u32>,
    /// Incomplete fragmented messages kept at once (default 64).
    pub max_pending: Option<u32>,
    /// Bytes of fragments kept at once (default 64 MiB).
    pub max_reassembly_bytes: Option<f64>,
    /// Seconds an incomplete message is kept (default 2).
    pub reassembly_timeout: Option<f64>,
    pub max_fragments: Option<u32>,
    /// Seconds between housekeeping rounds when idle (default: the core's,
    /// 0.02).
    pub tick: Option<f64>,
    /// Most messages per batch to JS (default 1024).
    pub max_batch: Option<u32>,
    /// Most batches not yet acknowledged by JS; beyond, messages are dropped
    /// and counted (default 64).
    pub max_pending_batches: Option<u32>,
}

pub(crate) struct NetOptions {
    pub addresses: Vec<String>,
    pub interface: Option<String>,
    pub reuse_address: Option<bool>,
    pub recv_buffer_bytes: Option<u32>,
    pub max_pending: Option<u32>,
    pub max_reassembly_bytes: Option<f64>,
    pub reassembly_timeout: Option<f64>,
    pub max_fragments: Option<u32>,
    pub tick: Option<f64>,
}

/// What JS leaves undefined takes the core's default.
pub(crate) fn listener_options(o: NetOptions) -> Result<ListenerOptions> {
    let defaults = ListenerOptions::default();
    let d = defaults.reassembly;
    let reassembly = ReassemblyOptions {
        max_pending: o.max_pending.map_or(d.max_pending, |n| n as usize),
        max_bytes: match o.max_reassembly_bytes {
            Some(b) => count("maxReassemblyBytes", b)? as usize,
            None => d.max_bytes,
        },
        timeout_ns: match o.reassembly_timeout {
            Some(s) => seconds("reassemblyTimeout", s)?.as_nanos() as i64,
            None => d.timeout_ns,
        },
        max_fragments: o.max_fragments.unwrap_or(d.max_fragments),
    };
    Ok(ListenerOptions {
        addresses: o.addresses,
        interface: o.interface.or(defaults.interface),
        reuse_address: o.reuse_address.or(defaults.reuse_address),
        recv_buffer_bytes: o
            .recv_buffer_bytes
            .map(|b| b as usize)
            .or(defaults.recv_buffer_bytes),
        reassembly,
        tick: match o.tick {
            Some(s) => seconds("tick", s)?,
            None => defaults.tick,
        },
    })
}

// ---------------------------------------------------------------- writers

fn header_style(legacy: Option<bool>) -> HeaderStyle {
    if legacy.unwrap_or(false) {
        HeaderStyle::Legacy
    } else {
        HeaderStyle::Mcl
    }
}

#[napi(object)]
#[derive(Default)]
pub struct WriteOptionsJs {
    /// `>>> Type` of the header; absent: `None` (raw data).
    pub message_type: Option<String>,
    pub revision: Option<String>,
    /// The header's `created`; absent: now (UTC), as MCL writes it.
    pub created: Option<String>,
    /// Entries per file before a new part `<prefix>_NNN.log` starts.
    pub max_entries: Option<f64>,
    /// Seconds per file before a new part starts.
    pub max_time: Option<f64>,
    /// Blank header lines as `# ` (MCL's typed fixture logs) instead of `#`.
    pub legacy_header: Option<bool>,
    /// Keep whole lines until this many bytes wait (default 0: write each).
    pub flush_bytes: Option<u32>,
    /// fsync each part before renaming it to `.log`.
    pub sync_on_close: Option<bool>,
}

fn max_time_ns(max_time: Option<f64>) -> Result<Option<i64>> {
    max_time
        .map(|s| seconds("maxTime", s).map(|d| d.as_nanos() as i64))
        .transpose()
}

/// MCL's `WriteFile` options; what JS leaves out is MCL's behaviour.
pub fn write_options(options: Option<WriteOptionsJs>) -> Result<WriteOptions> {
    let o = options.unwrap_or_default();
    let defaults = WriteOptions::default();
    Ok(WriteOptions {
        message_type: o.message_type,
        revision: o.revision.unwrap_or_default(),
        created: o
            .created
            .unwrap_or_else(|| format_created(TimeOrigin::now().unix_us)),
        max_entries: o.max_entries.map(|n| count("maxEntries", n)).transpose()?,
        max_time_ns: max_time_ns(o.max_time)?,
        header_style: header_style(o.legacy_header),
        flush_bytes: o.flush_bytes.map_or(defaults.flush_bytes, |n| n as usize),
        sync_on_close: o.sync_on_close.unwrap_or(defaults.sync_on_close),
    })
}

#[napi(object)]
pub struct RecordSourceJs {
    /// `udp://` URL to listen on.
    pub url: String,
    /// Message type recorded there (`>>> Type`); absent: raw (`None`).
    pub message_type: Option<String>,
    /// File prefix in the recording directory (default: the type).
    pub name: Option<String>,
}

#[napi(object)]
pub struct RecorderOptionsJs {
    /// Where the recording directory `<YYYYmmddTHHMMSS>_<host>` is made.
    pub root: Option<String>,
    /// Write into exactly this directory instead (created if missing).
    pub directory: Option<String>,
    pub revision: Option<String>,
    pub created: Option<String>,
    pub max_entries: Option<f64>,
    pub max_time: Option<f64>,
    pub legacy_header: Option<bool>,
    pub flush_bytes: Option<u32>,
    pub sync_on_close: Option<bool>,
    pub hostname: Option<String>,
    pub interface: Option<String>,
    pub reuse_address: Option<bool>,
    pub recv_buffer_bytes: Option<u32>,
    pub reassembly_timeout: Option<f64>,
    /// "mcl" (default: MCL logs, one file set per source) or "mcap" (one
    /// `recording.mcap`).
    pub format: Option<String>,
    /// MCAP only: chunk compression "zstd" (default), "lz4" or "none".
    pub compression: Option<String>,
    /// MCAP only: uncompressed bytes per chunk (default 1 MiB).
    pub chunk_size: Option<f64>,
}

/// MCAP chunking and compression, as JS gives them.
pub fn mcap_write_options(
    compression: Option<&str>,
    chunk_size: Option<f64>,
) -> Result<McapWriteOptions> {
    let chunk_size = match chunk_size {
        None => DEFAULT_CHUNK_SIZE,
        Some(n) if n.is_finite() && n >= 1.0 && n.fract() == 0.0 => n as u64,
        Some(n) => {
            return Err(invalid(
                "chunkSize",
                format!("must be a whole number of bytes >= 1, got {n}"),
            ))
        }
    };
    Ok(McapWriteOptions {
        compression: compression
            .map(Compression::parse)
            .transpose()
            .map_err(to_napi)?
            .unwrap_or_default(),
        chunk_size,
    })
}

/// The network recorder's format: MCL, or MCAP with its chunking.
pub fn recording_format(options: &RecorderOptionsJs) -> Result<RecordingFormat> {
    let mcap = mcap_write_options(options.compression.as_deref(), options.chunk_size)?;
    match options.format.as_deref() {
        None | Some("mcl") => {
            for (name, given) in [
                ("compression", options.compression.is_some()),
                ("chunkSize", options.chunk_size.is_some()),
            ] {
                if given {
                    return Err(invalid(name, "applies to format 'mcap' only"));
                }
            }
            Ok(RecordingFormat::Mcl)
        }
        Some("mcap") => Ok(RecordingFormat::Mcap(mcap)),
        Some(other) => Err(invalid(
            "format",
            format!("must be 'mcl' or 'mcap', got '{other}'"),
        )),
    }
}

/// The network recorder's listener and recording options.
pub fn recorder_options(options: RecorderOptionsJs) -> Result<(ListenerOptions, RecorderOptions)> {
    if options.root.is_none() && options.directory.is_none() {
        return Err(invalid("root", "a recording needs a root or a directory"));
    }
    let listen = listener_options(NetOptions {
        addresses: Vec::new(),
        interface: options.interface,
        reuse_address: options.reuse_address,
        recv_buffer_bytes: options.recv_buffer_bytes,
        max_pending: None,
        max_reassembly_bytes: None,
        reassembly_timeout: options.reassembly_timeout,
        max_fragments: None,
        tick: None,
    })?;
    let defaults = RecorderOptions::default();
    let record = RecorderOptions {
        root: options.root.map(PathBuf::from).unwrap_or_default(),
        directory: options.directory.map(PathBuf::from),
        revision: options.revision.unwrap_or_default(),
        created: options.created,
        max_entries: options
            .max_entries
            .map(|n| count("maxEntries", n))
            .transpose()?,
        max_time_ns: max_time_ns(options.max_time)?,
        header_style: header_style(options.legacy_header),
        flush_bytes: options
            .flush_bytes
            .map_or(defaults.flush_bytes, |n| n as usize),
        sync_on_close: options.sync_on_close.unwrap_or(defaults.sync_on_close),
        hostname: options.hostname,
    };
    Ok((listen, record))
}
