//! The unit that flows through the engine.

use std::path::PathBuf;
use std::sync::Arc;

/// One logged message. `payload` holds the logged bytes untouched (msgpack for MCL).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Elapsed time as logged, in integer nanoseconds.
    pub time_ns: i64,
    /// Index of the stream in the source's [`StreamInfo`] table.
    pub stream: u32,
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
}

impl Record {
    /// Bytes this record holds on the heap; the ring's byte bound counts this.
    pub fn heap_size(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
}

/// One stream of a source: a file or split set holding one message type.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// Message type from the header (`>>> Type`); `None` for raw data or no header.
    pub message_type: Option<String>,
    /// The files of the stream, in read order.
    pub files: Vec<PathBuf>,
}
