//! netreplay-core: the replay engine without any N-API dependency.
//!
//! Data flow (DESIGN.md): a [`format::RecordSource`] (e.g. the MCL reader)
//! feeds an [`engine::BufferData`] producer thread, which fills a bounded
//! SPSC ring; an [`engine::Scheduler`] thread pops records, waits for each
//! record's absolute deadline and hands it to its [`engine::Sink`]s. A
//! [`Player`] owns all of it for one playback.
//!
//! Layers, each depending only on those before it: [`sys`] (OS calls),
//! [`format`](mod@format) (log and wire formats, no timing), [`engine`] (timing and
//! threads), [`net`] (sockets), then [`player`], which builds a playback
//! from one config. `.ci/check-layers` fails on an import against that order.

mod counter;
mod error;
mod record;

pub mod engine;
pub mod format;
pub mod net;
pub mod player;
pub mod sys;

pub use counter::Counter;
pub use error::{Error, Result};
pub use player::{
    PlaybackOptions, Player, PlayerConfig, PlayerSinks, PlayerSource, PlayerState, Progress,
    Pushed, PushedEnd, SinkConfig, SinkKind,
};
pub use record::{
    is_log_time, log_time_from_seconds, payload_buffer, Record, Schema, StreamInfo, StreamTable,
    MAX_TIME_NS,
};
