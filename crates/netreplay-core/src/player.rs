//! One playback: the reader, the producer thread, the ring, the scheduler
//! thread and the sinks, built from one [`PlayerConfig`] (DESIGN.md, "The
//! Player"). Every operation is a request that wakes a waiting thread at
//! once; the run number ([`Player::run`]) is carried on every delivery and
//! outcome, so "which run is current" is known here only.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::engine::pass::{Offered, PassCursor};
use crate::engine::{
    BufferData, BufferOptions, Goal, LagPolicy, NullSink, Outcome, PassPlan, Queue, RingProducer,
    Scheduler, SchedulerOptions, Selection, Sink, SinkEntry, SinkStats, Slot, Speed,
};
use crate::format::RecordSource;
use crate::net::{ClockSink, UdpSink, UdpSinkOptions, UdpSinkStats};
use crate::{Error, Record, Result, StreamInfo, StreamTable};

/// What a sink is.
pub enum SinkKind {
    /// MCL datagrams over UDP, sent from the scheduler thread.
    Udp(Box<UdpSinkOptions>),
    /// Discards records (engine throughput).
    Null,
    /// Clock ticks as MCL datagrams (see [`ClockSink`]).
    Clock(Box<UdpSinkOptions>),
    /// A sink built elsewhere (the binding's JS delivery).
    Custom(Box<dyn Sink>),
}

/// One sink of a playback and its lag policy.
pub struct SinkConfig {
    pub kind: SinkKind,
    pub lag: LagPolicy,
}

impl SinkConfig {
    pub fn new(kind: SinkKind) -> Self {
        SinkConfig {
            kind,
            lag: LagPolicy::default(),
        }
    }
}

/// Everything a playback is built from. Sinks get each record in the order
/// given.
#[derive(Default)]
pub struct PlayerConfig {
    pub buffer: BufferOptions,
    pub scheduler: SchedulerOptions,
    pub playback: PlaybackOptions,
    pub sinks: Vec<SinkConfig>,
}

/// What of the log a playback plays, and when it begins (DESIGN.md,
/// "Timeline semantics"). Times relative to the log are resolved against
/// its first record when the player is built.
#[derive(Debug, Clone)]
pub struct PlaybackOptions {
    /// Each pass starts this long after the first record.
    pub start_offset_ns: Option<i64>,
    /// Each pass lasts this long (of log time) from its start.
    pub duration_ns: Option<i64>,
    /// Each pass ends at this log time.
    pub until_ns: Option<i64>,
    /// Passes in all (`loop: n`); `None`: for ever (`loop: true`).
    pub passes: Option<u64>,
    pub backfill: bool,
    pub selection: Selection,
    /// The first `start` leaves the playback paused on its first record.
    pub start_paused: bool,
    /// The first record of the first playback is due at this instant of
    /// CLOCK_REALTIME (ns since the epoch), converted once to the monotonic
    /// clock.
    pub start_at_unix_ns: Option<i128>,
}

impl Default for PlaybackOptions {
    fn default() -> Self {
        PlaybackOptions {
            start_offset_ns: None,
            duration_ns: None,
            until_ns: None,
            passes: Some(1),
            backfill: false,
            selection: Selection::default(),
            start_paused: false,
            start_at_unix_ns: None,
        }
    }
}

impl PlaybackOptions {
    /// The passes of a log whose first record is at `first_ns`.
    fn plan(&self, first_ns: Option<i64>, scheduler: &SchedulerOptions) -> Result<PassPlan> {
        if let Some(offset) = self.start_offset_ns {
            if offset < 0 {
                return Err(Error::invalid(
                    "startOffset",
                    format!("must be >= 0 s, got {} s", offset as f64 / 1e9),
                ));
            }
        }
        if let Some(duration) = self.duration_ns {
            if duration < 0 {
                return Err(Error::invalid(
                    "duration",
                    format!("must be >= 0 s, got {} s", duration as f64 / 1e9),
                ));
            }
        }
        if self.start_paused && self.start_at_unix_ns.is_some() {
            return Err(Error::invalid(
                "startAt",
                "conflicts with 'startPaused': a paused playback has no instant to start at",
            ));
        }
        if scheduler.virtual_time && self.start_at_unix_ns.is_some() {
            return Err(Error::invalid(
                "startAt",
                "conflicts with time: 'virtual': the virtual clock has no wall-clock instant",
            ));
        }
        let relative = self.start_offset_ns.is_some() || self.duration_ns.is_some();
        let first = match first_ns {
            Some(first) => Some(first),
            None if relative => {
                return Err(Error::invalid(
                    if self.start_offset_ns.is_some() { "startOffset" } else { "duration" },
                    "needs a log whose first record is known before it plays (a log path, ReadFile or ReadDirectory); a reader written in JS can use 'until'",
                ))
            }
            None => None,
        };
        let start = self
            .start_offset_ns
            .zip(first)
            .map(|(offset, first)| first.saturating_add(offset));
        let from = start.or(first);
        let by_duration = self
            .duration_ns
            .zip(from)
            .map(|(d, from)| from.saturating_add(d));
        let end = match (self.until_ns, by_duration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let plan = PassPlan {
            start_ns: start,
            end_ns: end,
            passes: self.passes,
            backfill: self.backfill,
            selection: self.selection.clone(),
        };
        plan.validate()?;
        Ok(plan)
    }
}

/// A progress report (see [`Player::progress`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub state: PlayerState,
    /// Waiting out a delay or a start time before a pass's first record.
    pub delayed: bool,
    /// The log time reached in the current pass (`None` before the first
    /// record).
    pub position_ns: Option<i64>,
    /// The time reported there (continuous across loops with continuous time).
    pub time_ns: Option<i64>,
    /// Where each pass starts and ends (log time), when known.
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// The pass playing (from 0) and how many there are (`None`: for ever).
    pub pass: u64,
    pub passes: Option<u64>,
    pub delivered: u64,
    /// Records the sinks dropped under the drop policy.
    pub dropped: u64,
    /// Lateness of the last record delivered.
    pub lag_ns: i64,
}

/// Where a player's records come from.
pub enum PlayerSource {
    /// A native reader, read by the producer thread.
    Reader(Box<dyn RecordSource>),
    /// Records pushed by the owner ([`Player::push`]), for readers written
    /// in JS; their streams are defined as their types appear.
    External,
}

/// Where a playback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerState {
    /// Not started, or stopped (rewound), or sought while not playing.
    Idle,
    Playing,
    Paused,
    /// The run reached the end of the data, or failed.
    Ended,
    Closed,
}

enum Producer {
    Native(Box<BufferData>),
    External {
        queue: Queue,
        ring: RingProducer,
        streams: Arc<StreamTable>,
        /// The passes, applied to the records pushed.
        cursor: Box<PassCursor>,
        /// Slots decided by the cursor and not yet in the ring.
        queued: VecDeque<Slot>,
        /// The streams' types as far as known here, for the type filters:
        /// the table is asked (locked) only for a stream not seen yet.
        types: Vec<Option<String>>,
    },
}

/// What became of a record pushed by the owner of an external source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Taken (to be played, or filtered out).
    Taken,
    /// The ring is full: push it again later.
    Full,
    /// Past the end of the pass: not taken; push the end ([`Player::push_end`]).
    PassEnded,
}

/// What the owner of an external source does after pushing the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushedEnd {
    /// The ring is full: push the end again later.
    Full,
    /// The playback ends there.
    Ended,
    /// Another pass follows: rewind the reader and push its records again.
    Rewind,
}

impl Producer {
    fn queue(&self) -> &Queue {
        match self {
            Producer::Native(b) => b.queue(),
            Producer::External { queue, .. } => queue,
        }
    }
}

/// A playback's sinks, built in config order, with the UDP sinks'
/// statistics and, for an external source, the stream table they route by.
pub struct PlayerSinks {
    entries: Vec<SinkEntry>,
    udp: Vec<Arc<UdpSinkStats>>,
    table: Option<Arc<StreamTable>>,
}

impl PlayerSinks {
    /// Build sinks for records of `streams` — or, for an external source
    /// (`table`), of the streams the table defines as they appear.
    pub fn build(
        configs: Vec<SinkConfig>,
        streams: &[StreamInfo],
        table: Option<Arc<StreamTable>>,
    ) -> Result<PlayerSinks> {
        let mut udp = Vec::new();
        let mut entries = Vec::with_capacity(configs.len());
        for config in configs {
            let built: Box<dyn Sink> = match config.kind {
                SinkKind::Udp(options) => {
                    let mut sink = UdpSink::new(*options, streams)?;
                    if let Some(table) = &table {
                        sink = sink.with_stream_table(table.clone());
                    }
                    udp.push(sink.stats().clone());
                    Box::new(sink)
                }
                SinkKind::Null => Box::new(NullSink::default()),
                SinkKind::Clock(options) => {
                    let sink = ClockSink::new(*options)?;
                    udp.push(sink.udp().stats().clone());
                    Box::new(sink)
                }
                SinkKind::Custom(sink) => sink,
            };
            entries.push(SinkEntry::with_lag(built, config.lag));
        }
        Ok(PlayerSinks {
            entries,
            udp,
            table,
        })
    }

    /// The built sinks and the UDP sinks' statistics (for a scheduler
    /// built by hand, as MCL's ScheduleBroadcasts).
    pub fn into_parts(self) -> (Vec<SinkEntry>, Vec<Arc<UdpSinkStats>>) {
        (self.entries, self.udp)
    }
}

pub struct Player {
    // Declared first: dropped (stopped) before the producer it consumes.
    scheduler: Scheduler,
    producer: Producer,
    state: PlayerState,
    udp: Vec<Arc<UdpSinkStats>>,
    plan: PassPlan,
    /// The log's first and last record times, when known.
    range: Option<(i64, i64)>,
    /// `startPaused` still applies (to the first start).
    start_paused: bool,
    virtual_time: bool,
    /// Where the last advance went (virtual time): the next `advance_by`
    /// counts from there.
    advanced_to: Option<i64>,
}

impl Player {
    /// Build a playback from one config.
    pub fn new(source: PlayerSource, config: PlayerConfig) -> Result<Player> {
        let streams = match &source {
            PlayerSource::Reader(reader) => reader.streams().to_vec(),
            PlayerSource::External => Vec::new(),
        };
        let table = matches!(source, PlayerSource::External).then(Arc::<StreamTable>::default);
        let sinks = PlayerSinks::build(config.sinks, &streams, table)?;
        Player::with_sinks(
            source,
            config.buffer,
            config.scheduler,
            config.playback,
            sinks,
        )
    }

    /// Build a playback with sinks built already (by [`PlayerSinks::build`]
    /// for the source's streams): whoever owns the source can check every
    /// option before handing the source over, so a bad one loses nothing.
    pub fn with_sinks(
        source: PlayerSource,
        buffer: BufferOptions,
        scheduler: SchedulerOptions,
        playback: PlaybackOptions,
        sinks: PlayerSinks,
    ) -> Result<Player> {
        buffer.validate()?;
        scheduler.validate()?;
        let (producer, plan, range) = match source {
            PlayerSource::Reader(mut source) => {
                let range = source.time_range()?;
                let plan = playback.plan(range.map(|(first, _)| first), &scheduler)?;
                let buffer = BufferData::with_plan(source, buffer, plan.clone())?;
                (Producer::Native(Box::new(buffer)), plan, range)
            }
            PlayerSource::External => {
                let plan = playback.plan(None, &scheduler)?;
                let (queue, ring) = Queue::new(buffer.length, buffer.max_bytes)?;
                let streams = sinks.table.clone().ok_or_else(|| {
                    Error::State("sinks for an external source need its stream table".into())
                })?;
                let producer = Producer::External {
                    queue,
                    ring,
                    streams,
                    cursor: Box::new(PassCursor::new(plan.clone())),
                    queued: VecDeque::new(),
                    types: Vec::new(),
                };
                (producer, plan, None)
            }
        };
        let virtual_time = scheduler.virtual_time;
        let mut scheduler = Scheduler::new(producer.queue(), sinks.entries, scheduler)?;
        scheduler.set_start_at(
            playback
                .start_at_unix_ns
                .map(crate::sys::monotonic_of_realtime),
        )?;
        Ok(Player {
            scheduler,
            producer,
            state: PlayerState::Idle,
            udp: sinks.udp,
            plan,
            range,
            start_paused: playback.start_paused,
            virtual_time,
            advanced_to: None,
        })
    }

    /// The current run: bumped by every stop (rewind), seek and restart
    /// after the end. Deliveries and outcomes of older runs are stale.
    pub fn run(&self) -> u64 {
        self.producer.queue().epoch()
    }

    pub fn state(&mut self) -> PlayerState {
        if matches!(self.state, PlayerState::Playing | PlayerState::Paused)
            && !self.scheduler.is_alive()
        {
            // The scheduler thread ended by itself: end of data or error, or
            // a step, burst or playUntil reached its goal.
            match self.scheduler.last_outcome() {
                Ok(Some(Outcome::End | Outcome::Error(_))) => self.state = PlayerState::Ended,
                Ok(Some(Outcome::Paused)) => self.state = PlayerState::Paused,
                _ => {}
            }
        }
        self.state
    }

    fn check_open(&self) -> Result<()> {
        if self.state == PlayerState::Closed {
            return Err(Error::State("this replay is closed".into()));
        }
        Ok(())
    }

    /// Play, or resume after a pause. False if already playing, or if the
    /// run has ended: its owner may not have seen the end yet (JS learns it
    /// from the last batch), so starting again from the beginning is asked
    /// for explicitly, with [`Player::restart`].
    pub fn start(&mut self) -> Result<bool> {
        self.check_open()?;
        if matches!(self.state(), PlayerState::Playing | PlayerState::Ended) {
            return Ok(false);
        }
        self.start_producer()?;
        if std::mem::take(&mut self.start_paused) && self.state == PlayerState::Idle {
            // Ready on the first record (the ring fills), not playing.
            self.state = PlayerState::Paused;
            return Ok(true);
        }
        // A step still delivering is cut short: playing delivers the rest.
        self.scheduler.stop()?;
        self.scheduler.start()?;
        self.state = PlayerState::Playing;
        Ok(true)
    }

    fn start_producer(&mut self) -> Result<()> {
        if let Producer::Native(buffer) = &mut self.producer {
            buffer.start()?;
        }
        Ok(())
    }

    /// Run the scheduler for `goal` from where it stands (stopping a run in
    /// progress first); false after the end.
    fn run_goal(&mut self, goal: Goal) -> Result<bool> {
        self.check_open()?;
        if self.state() == PlayerState::Ended {
            return Ok(false);
        }
        self.scheduler.stop()?;
        self.start_producer()?;
        self.start_paused = false;
        self.scheduler.start_with(goal)
    }

    /// Paused (or not started): deliver the next `n` records at once and
    /// stay paused. A step still delivering adds its remainder. False after
    /// the end; a state error while playing.
    pub fn step(&mut self, n: u64) -> Result<bool> {
        self.check_open()?;
        if self.state() == PlayerState::Playing {
            return Err(Error::State(
                "step() needs a paused replay: pause() first".into(),
            ));
        }
        let left = if self.scheduler.is_alive() {
            self.scheduler.stop()?;
            self.scheduler.immediate_left()
        } else {
            0
        };
        let started = self.run_goal(Goal::Immediate {
            n: n.saturating_add(left),
            then_pause: true,
        })?;
        if started {
            self.state = PlayerState::Paused;
        }
        Ok(started)
    }

    /// Deliver the next `n` records as fast as possible; playing, the timing
    /// then goes on re-anchored on the last of them; paused, it stays paused
    /// (a step).
    pub fn burst(&mut self, n: u64) -> Result<bool> {
        if self.state() != PlayerState::Playing {
            return self.step(n);
        }
        self.run_goal(Goal::Immediate {
            n,
            then_pause: false,
        })
    }

    /// Deliver every record up to reported time `t_ns` at the current speed,
    /// then pause there (nothing is skipped). False after the end.
    pub fn play_until(&mut self, t_ns: i64) -> Result<bool> {
        let started = self.run_goal(Goal::Until(t_ns))?;
        if started {
            self.state = PlayerState::Playing;
        }
        Ok(started)
    }

    /// Virtual time: deliver every record up to reported time `t_ns` at
    /// once, and leave the virtual clock there, paused.
    pub fn advance_to(&mut self, t_ns: i64) -> Result<bool> {
        self.check_virtual("advanceTo")?;
        self.advanced_to = Some(t_ns);
        self.play_until(t_ns)
    }

    /// Virtual time: [`Player::advance_to`] `dt_ns` after where the clock
    /// is (or where the last advance goes).
    pub fn advance_by(&mut self, dt_ns: i64) -> Result<bool> {
        self.check_virtual("advanceBy")?;
        if dt_ns < 0 {
            return Err(Error::invalid(
                "dt",
                format!(
                    "must be >= 0 s: a clock does not go back, got {} s",
                    dt_ns as f64 / 1e9
                ),
            ));
        }
        let from = match self.advanced_to {
            Some(t) => Some(t),
            None => self
                .scheduler
                .playhead()
                .map(|(_, reported)| reported)
                .or(self.plan.start_ns)
                .or(self.range.map(|(first, _)| first)),
        };
        let from = from.ok_or_else(|| {
            Error::State(
                "advanceBy() has no position to count from yet: use advanceTo() first".into(),
            )
        })?;
        self.advance_to(from.saturating_add(dt_ns))
    }

    fn check_virtual(&self, what: &str) -> Result<()> {
        if !self.virtual_time {
            return Err(Error::State(format!(
                "{what}() moves a virtual clock: build the replay with time: 'virtual'"
            )));
        }
        Ok(())
    }

    /// Where the playback is, for progress reports.
    pub fn progress(&mut self) -> Progress {
        let state = self.state();
        let stats = self.scheduler.stats();
        let playhead = self.scheduler.playhead();
        Progress {
            state,
            delayed: state == PlayerState::Playing
                && stats
                    .position
                    .delayed
                    .load(std::sync::atomic::Ordering::Relaxed),
            position_ns: playhead.map(|(log, _)| log),
            time_ns: playhead.map(|(_, reported)| reported),
            start_ns: self.plan.start_ns.or(self.range.map(|(first, _)| first)),
            end_ns: match (self.plan.end_ns, self.range) {
                (Some(end), Some((_, last))) => Some(end.min(last)),
                (end, range) => end.or(range.map(|(_, last)| last)),
            },
            pass: stats
                .position
                .pass
                .load(std::sync::atomic::Ordering::Relaxed),
            passes: self.plan.passes,
            delivered: stats.delivered.get(),
            dropped: self.sink_stats().iter().map(|s| s.dropped.get()).sum(),
            lag_ns: stats
                .position
                .lag_ns
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Rewind and play from the start (after the end, or at any time).
    pub fn restart(&mut self) -> Result<bool> {
        self.check_open()?;
        self.scheduler.stop()?;
        self.rewind()?;
        self.state = PlayerState::Idle;
        self.start()
    }

    /// Freeze where it is; `start` continues at once. False if not playing.
    pub fn pause(&mut self) -> Result<bool> {
        self.check_open()?;
        if self.state() != PlayerState::Playing {
            return Ok(false);
        }
        self.scheduler.stop()?;
        self.state = PlayerState::Paused;
        Ok(true)
    }

    /// Stop and rewind to the first record. False if it was neither playing
    /// nor paused.
    pub fn stop(&mut self) -> Result<bool> {
        self.check_open()?;
        let was = matches!(self.state(), PlayerState::Playing | PlayerState::Paused);
        self.scheduler.stop()?;
        self.rewind()?;
        self.state = PlayerState::Idle;
        Ok(was)
    }

    fn rewind(&mut self) -> Result<()> {
        match &mut self.producer {
            Producer::Native(buffer) => buffer.reset()?,
            Producer::External {
                queue,
                cursor,
                queued,
                ..
            } => {
                queue.flush()?;
                queued.clear();
                cursor.position(None, 0);
            }
        }
        self.advanced_to = None;
        self.scheduler.rewind()
    }

    /// Go to the first record with time >= `t_ns`, clamped to the log's
    /// first and last records: the next record delivered is that one, due
    /// at once (logical time is re-anchored on it); what was queued is
    /// dropped. Playing, it plays on from there; paused, it stays paused;
    /// otherwise the next `start` plays from there. For an external source
    /// the owner repositions its reader after this call.
    pub fn seek(&mut self, t_ns: i64) -> Result<()> {
        self.check_open()?;
        let state = self.state();
        self.scheduler.stop()?;
        let pass = self.scheduler.pass();
        let (start, end) = (self.plan.start_ns, self.plan.end_ns);
        let clamp = |t: i64, range: Option<(i64, i64)>| {
            let (mut low, mut high) = range.unwrap_or((i64::MIN, i64::MAX));
            low = start.map_or(low, |s| low.max(s));
            high = end.map_or(high, |e| high.min(e));
            if low <= high {
                t.clamp(low, high)
            } else {
                t
            }
        };
        let target = match &mut self.producer {
            Producer::Native(buffer) => {
                buffer.stop()?;
                let t = clamp(t_ns, buffer.time_range()?);
                buffer.seek_in_pass(t, pass)?;
                t
            }
            Producer::External {
                queue,
                cursor,
                queued,
                ..
            } => {
                queue.flush()?;
                queued.clear();
                let t = clamp(t_ns, None);
                cursor.position(Some(t), pass);
                t
            }
        };
        self.advanced_to = None;
        self.scheduler.reposition(None, Some(target))?;
        match state {
            PlayerState::Playing => {
                if let Producer::Native(buffer) = &mut self.producer {
                    buffer.start()?;
                }
                self.scheduler.start()?;
            }
            PlayerState::Paused => {
                // Paused keeps the ring full, ready for the resume.
                if let Producer::Native(buffer) = &mut self.producer {
                    buffer.start()?;
                }
            }
            _ => self.state = PlayerState::Idle,
        }
        Ok(())
    }

    pub fn speed(&self) -> Speed {
        self.scheduler.speed()
    }

    /// Change speed; playing, it re-anchors at the current logical time.
    pub fn set_speed(&self, speed: Speed) {
        self.scheduler.set_speed(speed);
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Each sink's counters, in config order.
    pub fn sink_stats(&self) -> &[Arc<SinkStats>] {
        self.scheduler.sink_stats()
    }

    /// The UDP sinks' statistics, in config order.
    pub fn udp_stats(&self) -> &[Arc<UdpSinkStats>] {
        &self.udp
    }

    /// Records skipped as malformed by a native reader (while its producer
    /// is stopped: paused at the end, or idle).
    pub fn skipped(&self) -> Option<u64> {
        match &self.producer {
            Producer::Native(b) => b.skipped(),
            Producer::External { .. } => None,
        }
    }

    /// Stop both threads and release the reader at once; safe to call twice.
    pub fn close(&mut self) -> Result<()> {
        if self.state == PlayerState::Closed {
            return Ok(());
        }
        self.scheduler.stop()?;
        match &mut self.producer {
            Producer::Native(buffer) => buffer.close()?,
            // The spares this (pushing) thread kept go with the playback.
            Producer::External { .. } => crate::record::drop_spare_payloads(),
        }
        self.state = PlayerState::Closed;
        Ok(())
    }

    /// External source: the stream index of records of `message_type`
    /// (`None`: raw), defined now if new, so routes by type apply to them.
    pub fn define_stream(&mut self, message_type: Option<&str>) -> Result<u32> {
        match &self.producer {
            Producer::External { streams, .. } => Ok(streams.define(message_type)),
            Producer::Native(_) => Err(not_external()),
        }
    }

    /// External source: push one record through the passes (window,
    /// filters, backfill) into the ring.
    pub fn push(&mut self, record: Record) -> Result<Pushed> {
        let Producer::External {
            ring,
            streams,
            cursor,
            queued,
            types,
            ..
        } = &mut self.producer
        else {
            return Err(not_external());
        };
        if !drain(ring, queued) {
            return Ok(Pushed::Full);
        }
        // The pushing thread makes its payloads with `payload_buffer`: the
        // delivered records' buffers come back to it as they do to a
        // native producer.
        if crate::record::needs_spare_payloads() {
            crate::record::keep_spare_payloads(|| ring.take_spare());
        }
        let stream = record.stream as usize;
        if stream >= types.len() {
            types.extend(streams.types_from(types.len()));
        }
        let message_type = types.get(stream).and_then(|t| t.as_deref());
        let offered = cursor.offer(record, message_type, queued);
        drain(ring, queued);
        Ok(match offered {
            Offered::PassEnded => Pushed::PassEnded,
            Offered::Queued | Offered::Skipped => Pushed::Taken,
        })
    }

    /// External source: the reader has no more records (or failed, with
    /// `error`). Says whether the playback ends or another pass follows.
    pub fn push_end(&mut self, error: Option<Error>) -> Result<PushedEnd> {
        let Producer::External {
            ring,
            cursor,
            queued,
            ..
        } = &mut self.producer
        else {
            return Err(not_external());
        };
        if !drain(ring, queued) {
            return Ok(PushedEnd::Full);
        }
        let next = match error {
            Some(err) => {
                queued.push_back(Slot::Error(err));
                PushedEnd::Ended
            }
            None => match cursor.end_pass(queued) {
                Some(_) => PushedEnd::Rewind,
                None => {
                    queued.push_back(Slot::End);
                    PushedEnd::Ended
                }
            },
        };
        drain(ring, queued);
        Ok(next)
    }

    /// External source: push what is queued (after [`PushedEnd::Ended`]
    /// left some behind a full ring); true once nothing is left.
    pub fn push_queued(&mut self) -> Result<bool> {
        match &mut self.producer {
            Producer::External { ring, queued, .. } => Ok(drain(ring, queued)),
            Producer::Native(_) => Err(not_external()),
        }
    }
}

fn not_external() -> Error {
    Error::State("this replay reads a native reader; records cannot be pushed to it".into())
}

/// Move queued slots into the ring while it has room; true once all went.
fn drain(ring: &mut RingProducer, queued: &mut VecDeque<Slot>) -> bool {
    while let Some(slot) = queued.pop_front() {
        if let Err(slot) = ring.push(slot) {
            queued.push_front(slot);
            return false;
        }
    }
    true
}
