//! Log and wire formats: parsing and formatting, no timing and no threads.
//! Format detection by content (`detect`), the MCL text log, MCAP, MCL datagrams (over a msgpack reader that never
//! decodes), fragment reassembly, and the reader trait every log format
//! implements.

pub mod detect;
pub mod mcap;
pub mod mcl;
mod msgpack;
pub mod pcap;
pub mod reassembly;
pub(crate) mod source;
pub mod wire;
pub(crate) mod wire_error;

pub use source::{OnError, RecordSource, TimeWindow};
