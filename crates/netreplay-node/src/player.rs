//! `NativePlayer`: one playback owned by core's `Player` — the TS `Replay`
//! adds events, iteration and promises over it, nothing of timing.

use std::sync::Arc;

use napi_derive::napi;
use netreplay_core::net::UdpSinkOptions;
use netreplay_core::{
    Error as CoreError, Player, PlayerSinks, PlayerSource, PlayerState, Progress, Pushed,
    PushedEnd, Record, SinkConfig, SinkKind, StreamInfo, StreamTable,
};

use crate::delivery::{js_delivery, DeliveryState, ReplayCallback};
use crate::errors::to_napi;
use crate::net::{udp_stats_js, UdpStatsJs};
use crate::options::{self, PlayerOptionsJs, Result};
use crate::{record_js_handover, NativeLogReader, PendingJs, SchedulerStats};

#[napi]
pub struct NativePlayer {
    player: Player,
    delivery: Arc<DeliveryState>,
    js_sink: Option<usize>,
}

impl NativePlayer {
    /// Check every option and build the sinks for `streams` first, then
    /// take the source (`take`): a bad option loses nothing.
    fn build(
        streams: &[StreamInfo],
        take: impl FnOnce() -> Result<PlayerSource>,
        options: Option<PlayerOptionsJs>,
        on_batch: ReplayCallback,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let buffer = options::buffer_options(options.buffer)?;
        let mut schedule = options.schedule.unwrap_or_default();
        let mut scheduler = options::scheduler_options(&schedule)?;
        let mut playback_js = options.playback.unwrap_or_default();
        let clock_destination = playback_js.clock_destination.take();
        if clock_destination.is_some() && playback_js.clock_hz.is_none() {
            return Err(options::invalid(
                "clock.destination",
                "needs a clock rate: clock: { hz, destination }",
            ));
        }
        let playback = options::playback_options(Some(playback_js), &mut scheduler)?;
        let mut delivery = js_delivery(&mut schedule, on_batch)?;
        if let Some(destination) = clock_destination {
            let clock = UdpSinkOptions {
                destination: Some(destination),
                ..UdpSinkOptions::default()
            };
            // After the record sinks: a tick never delays a record.
            delivery
                .sinks
                .push(SinkConfig::new(SinkKind::Clock(Box::new(clock))));
        }
        let source = take()?;
        let table = matches!(source, PlayerSource::External).then(Arc::<StreamTable>::default);
        let sinks = PlayerSinks::build(delivery.sinks, streams, table).map_err(to_napi)?;
        let player =
            Player::with_sinks(source, buffer, scheduler, playback, sinks).map_err(to_napi)?;
        Ok(NativePlayer {
            player,
            delivery: delivery.state,
            js_sink: delivery.js_sink,
        })
    }
}

#[napi]
impl NativePlayer {
    /// A playback of a native reader (which it takes over). Every option is
    /// checked before the reader is taken: a bad one loses nothing.
    #[napi(factory, catch_unwind)]
    pub fn from_reader(
        reader: &mut NativeLogReader,
        options: Option<PlayerOptionsJs>,
        #[napi(
            ts_arg_type = "(data: Buffer, count: number, newTopics: string[], event: string | null, error: ErrorInfo | null, run: number) => void"
        )]
        on_batch: ReplayCallback,
    ) -> Result<Self> {
        let streams = reader.streams.clone();
        Self::build(
            &streams,
            || Ok(PlayerSource::Reader(Box::new(reader.take()?))),
            options,
            on_batch,
        )
    }

    /// A playback of records JS pushes (readers written in JS).
    #[napi(factory, catch_unwind)]
    pub fn external(
        options: Option<PlayerOptionsJs>,
        #[napi(
            ts_arg_type = "(data: Buffer, count: number, newTopics: string[], event: string | null, error: ErrorInfo | null, run: number) => void"
        )]
        on_batch: ReplayCallback,
    ) -> Result<Self> {
        Self::build(&[], || Ok(PlayerSource::External), options, on_batch)
    }

    /// Play or resume. False if playing, or if the run has ended.
    #[napi(catch_unwind)]
    pub fn start(&mut self) -> Result<bool> {
        self.player.start().map_err(to_napi)
    }

    /// Rewind and play from the start.
    #[napi(catch_unwind)]
    pub fn restart(&mut self) -> Result<bool> {
        self.player.restart().map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn pause(&mut self) -> Result<bool> {
        self.player.pause().map_err(to_napi)
    }

    /// Stop and rewind; false if it was neither playing nor paused.
    #[napi(catch_unwind)]
    pub fn stop(&mut self) -> Result<bool> {
        self.player.stop().map_err(to_napi)
    }

    /// Paused: deliver the next `n` records at once and stay paused.
    #[napi(catch_unwind)]
    pub fn step(&mut self, n: f64) -> Result<bool> {
        let n = options::count("n", n)?;
        self.player.step(n).map_err(to_napi)
    }

    /// The next `n` records as fast as possible, then the timing goes on.
    #[napi(catch_unwind)]
    pub fn burst(&mut self, n: f64) -> Result<bool> {
        let n = options::count("n", n)?;
        self.player.burst(n).map_err(to_napi)
    }

    /// Deliver everything up to `time` seconds at the current speed, then pause.
    #[napi(catch_unwind)]
    pub fn play_until(&mut self, time: f64) -> Result<bool> {
        let t = options::log_time("time", time)?;
        self.player.play_until(t).map_err(to_napi)
    }

    /// Virtual time: deliver everything up to `time` seconds at once, paused after.
    #[napi(catch_unwind)]
    pub fn advance_to(&mut self, time: f64) -> Result<bool> {
        let t = options::log_time("time", time)?;
        self.player.advance_to(t).map_err(to_napi)
    }

    /// Virtual time: advance the clock by `dt` seconds.
    #[napi(catch_unwind)]
    pub fn advance_by(&mut self, dt: f64) -> Result<bool> {
        let dt = options::log_time("dt", dt)?;
        self.player.advance_by(dt).map_err(to_napi)
    }

    /// Where the playback is (see core's `Progress`).
    #[napi(catch_unwind)]
    pub fn progress(&mut self) -> ProgressJs {
        ProgressJs::from(self.player.progress())
    }

    /// Go to the first record at or after `time` seconds (clamped to the log).
    #[napi(catch_unwind)]
    pub fn seek(&mut self, time: f64) -> Result<()> {
        let t = options::log_time("time", time)?;
        self.player.seek(t).map_err(to_napi)
    }

    /// "idle", "playing", "paused", "ended" or "closed".
    #[napi(getter, catch_unwind)]
    pub fn state(&mut self) -> String {
        state_name(self.player.state()).into()
    }

    /// The current run (batches carry theirs; one of another run is stale).
    #[napi(getter, catch_unwind)]
    pub fn run(&self) -> u32 {
        self.player.run() as u32
    }

    #[napi(getter, catch_unwind)]
    pub fn speed(&self) -> f64 {
        self.player.speed().get()
    }

    #[napi(setter, catch_unwind)]
    pub fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.player.set_speed(options::speed(speed)?);
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn ack(&self, records: u32, bytes: f64) {
        self.delivery.ack(records as usize, bytes as usize);
    }

    /// JS received this batch at `arrived_ns` (its hrtime on arrival):
    /// records lateness at the JS sink.
    #[napi(catch_unwind)]
    pub fn handed(&self, data: &[u8], arrived_ns: f64) {
        record_js_handover(
            self.player.scheduler(),
            self.js_sink,
            data,
            arrived_ns as i64,
        );
    }

    #[napi(catch_unwind)]
    pub fn pending(&self) -> PendingJs {
        PendingJs::of(&self.delivery)
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> SchedulerStats {
        SchedulerStats::of(self.player.scheduler(), self.js_sink)
    }

    /// Malformed records the native reader skipped (null while it reads).
    #[napi(catch_unwind)]
    pub fn skipped(&self) -> Option<f64> {
        self.player.skipped().map(|n| n as f64)
    }

    #[napi(catch_unwind)]
    pub fn udp_stats(&self) -> Option<UdpStatsJs> {
        self.player.udp_stats().first().map(|s| udp_stats_js(s))
    }

    /// Stop both threads and release the reader; safe to call twice.
    #[napi(catch_unwind)]
    pub fn close(&mut self) -> Result<()> {
        self.player.close().map_err(to_napi)
    }

    /// The stream index of records of `message_type` pushed from JS.
    #[napi(catch_unwind)]
    pub fn define_stream(&mut self, message_type: Option<String>) -> Result<u32> {
        self.player
            .define_stream(message_type.as_deref())
            .map_err(to_napi)
    }

    /// Push one record from JS: "taken", "full" (push it again later) or
    /// "passEnded" (past the pass's end: push the end).
    #[napi(catch_unwind)]
    pub fn push(
        &mut self,
        elapsed_time: f64,
        stream: u32,
        topic: String,
        payload: &[u8],
    ) -> Result<String> {
        let record = Record {
            time_ns: options::seconds_to_ns("elapsedTime", elapsed_time)?,
            stream,
            topic: Arc::from(topic),
            payload: {
                let mut buffer = netreplay_core::payload_buffer(payload.len());
                buffer.extend_from_slice(payload);
                buffer
            },
        };
        Ok(match self.player.push(record).map_err(to_napi)? {
            Pushed::Taken => "taken",
            Pushed::Full => "full",
            Pushed::PassEnded => "passEnded",
        }
        .into())
    }

    /// The reader ended (or failed): "ended", "rewind" (another pass: push
    /// the reader's records again from its start) or "full" (try again).
    #[napi(catch_unwind)]
    pub fn push_end(&mut self, error: Option<String>) -> Result<String> {
        let next = self
            .player
            .push_end(error.map(CoreError::State))
            .map_err(to_napi)?;
        Ok(match next {
            PushedEnd::Full => "full",
            PushedEnd::Ended => "ended",
            PushedEnd::Rewind => "rewind",
        }
        .into())
    }

    /// Push what the end left queued behind a full ring; true once all went.
    #[napi(catch_unwind)]
    pub fn push_queued(&mut self) -> Result<bool> {
        self.player.push_queued().map_err(to_napi)
    }
}

fn state_name(state: PlayerState) -> &'static str {
    match state {
        PlayerState::Idle => "idle",
        PlayerState::Playing => "playing",
        PlayerState::Paused => "paused",
        PlayerState::Ended => "ended",
        PlayerState::Closed => "closed",
    }
}

/// A progress report for JS: times in seconds.
#[napi(object)]
pub struct ProgressJs {
    pub state: String,
    pub delayed: bool,
    /// Log time reached in the current pass (null before the first record).
    pub position: Option<f64>,
    /// The time reported there (continuous across loops with continuousTime).
    pub time: Option<f64>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// The pass playing, from 0, and how many there are (null: for ever).
    pub pass: f64,
    pub passes: Option<f64>,
    pub delivered: f64,
    pub dropped: f64,
    /// Lateness of the last record delivered, seconds.
    pub lag: f64,
}

impl From<Progress> for ProgressJs {
    fn from(p: Progress) -> Self {
        let s = |ns: i64| ns as f64 / 1e9;
        ProgressJs {
            state: state_name(p.state).into(),
            delayed: p.delayed,
            position: p.position_ns.map(s),
            time: p.time_ns.map(s),
            start: p.start_ns.map(s),
            end: p.end_ns.map(s),
            pass: p.pass as f64,
            passes: p.passes.map(|n| n as f64),
            delivered: p.delivered as f64,
            dropped: p.dropped as f64,
            lag: s(p.lag_ns),
        }
    }
}
