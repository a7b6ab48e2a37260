//! netreplay-core: the replay engine without any N-API dependency.
//!
//! Data flow (see DESIGN.md): a [`source::RecordSource`] (e.g. the MCL reader)
//! feeds a [`buffer::BufferData`] producer thread, which fills a bounded SPSC
//! [`ring`]; a [`scheduler::Scheduler`] thread pops records, waits for each
//! record's absolute deadline ([`clock`]) and hands it to its [`sink`]s.

pub mod buffer;
pub mod clock;
pub mod endpoint;
pub mod error;
pub mod listener;
pub mod mapguard;
pub mod mcl;
pub mod merge;
pub mod reassembly;
pub mod record;
pub mod ring;
pub mod scheduler;
pub mod sink;
pub mod source;
pub mod stats;
pub mod udp;
pub mod wire;
pub mod writer;

pub use error::{Error, Result};
pub use record::{Record, StreamInfo};
