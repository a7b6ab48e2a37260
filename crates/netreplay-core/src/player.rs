//! One playback: the reader, the producer thread, the ring, the scheduler
//! thread and the sinks, built from one [`PlayerConfig`] (DESIGN.md, "The
//! Player"). Every operation is a request that wakes a waiting thread at
//! once; the run number ([`Player::run`]) is carried on every delivery and
//! outcome, so "which run is current" is known here only.

use std::sync::Arc;

use crate::engine::{
    BufferData, BufferOptions, LagPolicy, NullSink, Outcome, Queue, RingProducer, Scheduler,
    SchedulerOptions, Sink, SinkEntry, SinkStats, Slot, Speed,
};
use crate::format::RecordSource;
use crate::net::{UdpSink, UdpSinkOptions, UdpSinkStats};
use crate::{Error, Record, Result, StreamInfo, StreamTable};

/// What a sink is.
pub enum SinkKind {
    /// MCL datagrams over UDP, sent from the scheduler thread.
    Udp(Box<UdpSinkOptions>),
    /// Discards records (engine throughput).
    Null,
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
    pub sinks: Vec<SinkConfig>,
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
    Native(BufferData),
    External {
        queue: Queue,
        ring: RingProducer,
        streams: Arc<StreamTable>,
    },
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
        Player::with_sinks(source, config.buffer, config.scheduler, sinks)
    }

    /// Build a playback with sinks built already (by [`PlayerSinks::build`]
    /// for the source's streams): whoever owns the source can check every
    /// option before handing the source over, so a bad one loses nothing.
    pub fn with_sinks(
        source: PlayerSource,
        buffer: BufferOptions,
        scheduler: SchedulerOptions,
        sinks: PlayerSinks,
    ) -> Result<Player> {
        buffer.validate()?;
        let producer = match source {
            PlayerSource::Reader(source) => Producer::Native(BufferData::new(source, buffer)?),
            PlayerSource::External => {
                let (queue, ring) = Queue::new(buffer.length, buffer.max_bytes)?;
                let streams = sinks.table.clone().ok_or_else(|| {
                    Error::State("sinks for an external source need its stream table".into())
                })?;
                Producer::External {
                    queue,
                    ring,
                    streams,
                }
            }
        };
        let scheduler = Scheduler::new(producer.queue(), sinks.entries, scheduler)?;
        Ok(Player {
            scheduler,
            producer,
            state: PlayerState::Idle,
            udp: sinks.udp,
        })
    }

    /// The current run: bumped by every stop (rewind), seek and restart
    /// after the end. Deliveries and outcomes of older runs are stale.
    pub fn run(&self) -> u64 {
        self.producer.queue().epoch()
    }

    pub fn state(&mut self) -> PlayerState {
        if self.state == PlayerState::Playing && !self.scheduler.is_alive() {
            // The scheduler thread ended by itself: end of data or error.
            if let Ok(Some(Outcome::End | Outcome::Error(_))) = self.scheduler.last_outcome() {
                self.state = PlayerState::Ended;
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
        if let Producer::Native(buffer) = &mut self.producer {
            buffer.start()?;
        }
        self.scheduler.start()?;
        self.state = PlayerState::Playing;
        Ok(true)
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
            Producer::External { queue, .. } => {
                queue.flush()?;
            }
        }
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
        match &mut self.producer {
            Producer::Native(buffer) => {
                buffer.stop()?;
                let t = match buffer.time_range()? {
                    Some((first, last)) => t_ns.clamp(first, last),
                    None => t_ns,
                };
                buffer.seek(t)?;
            }
            Producer::External { queue, .. } => {
                queue.flush()?;
            }
        }
        self.scheduler.reposition(None)?;
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
        if let Producer::Native(buffer) = &mut self.producer {
            buffer.close()?;
        }
        self.state = PlayerState::Closed;
        Ok(())
    }

    fn external(&mut self) -> Result<(&mut RingProducer, &Arc<StreamTable>)> {
        match &mut self.producer {
            Producer::External { ring, streams, .. } => Ok((ring, streams)),
            Producer::Native(_) => Err(Error::State(
                "this replay reads a native reader; records cannot be pushed to it".into(),
            )),
        }
    }

    /// External source: the stream index of records of `message_type`
    /// (`None`: raw), defined now if new, so routes by type apply to them.
    pub fn define_stream(&mut self, message_type: Option<&str>) -> Result<u32> {
        Ok(self.external()?.1.define(message_type))
    }

    /// External source: push one record; false when the ring is full.
    pub fn push(&mut self, record: Record) -> Result<bool> {
        Ok(self.external()?.0.push(Slot::Record(record)).is_ok())
    }

    /// External source: push the end (or an error) after the last record;
    /// false when the ring is full.
    pub fn push_end(&mut self, error: Option<Error>) -> Result<bool> {
        let slot = error.map_or(Slot::End, Slot::Error);
        Ok(self.external()?.0.push(slot).is_ok())
    }
}
