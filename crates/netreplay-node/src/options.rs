//! Every option object JS passes, and its conversion to core options. Core's
//! `Default`s are the defaults and core checks every domain rule; this
//! module only maps JS shapes (seconds, strings) onto core types.

use napi_derive::napi;
use netreplay_core::engine::{BufferOptions, LagPolicy, SchedulerOptions, Speed};
use netreplay_core::format::mcl::ReadOptions;
use netreplay_core::format::{OnError, TimeWindow};
use netreplay_core::{log_time_from_seconds, Error as CoreError};

use crate::errors::{to_napi, Code};
use crate::net::UdpOptionsJs;

pub type Result<T> = napi::Result<T, Code>;

fn invalid(name: &'static str, reason: String) -> napi::Error<Code> {
    to_napi(CoreError::invalid(name, reason))
}

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
}

pub fn read_options(options: Option<ReaderOptions>) -> Result<ReadOptions> {
    let options = options.unwrap_or_default();
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
    /// JS delivery's lag policy: "wait" (default) or "drop".
    pub lag: Option<String>,
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
    })
}

/// A replay's options: the buffer's and the scheduler's.
#[napi(object)]
#[derive(Default)]
pub struct PlayerOptionsJs {
    pub buffer: Option<BufferOptionsJs>,
    pub schedule: Option<SchedulerOptionsJs>,
}
