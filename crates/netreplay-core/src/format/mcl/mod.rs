//! MCL text logs: header, records, split sets and directories (DESIGN.md).
//!
//! Files are memory-mapped and decoded lazily, one line per call: opening a
//! log reads its header only, never the whole file.
//!
//! One file per concern, each parser next to its formatter: `header`
//! (the `#` block), `line` (a record line), `hex` (the payload column),
//! `layout` (split-set names, the files of a stream or a directory),
//! `reader` (mapped files, one stream) and `writer` (log files and
//! recordings). The paths other crates use are re-exported here.

mod header;
mod hex;
mod layout;
mod line;
mod reader;
mod writer;

pub use header::{format_created, header_text, parse_header, Header, HeaderStyle, COMMENT_BLOCK};
pub use hex::decode_hex;
pub use layout::{directory_streams, file_parts};
pub use line::{format_elapsed, format_line, format_topic, parse_time_ns, parse_topic};
pub use reader::{MclStream, ReadOptions};
pub use writer::{
    hostname, local_timestamp, recording_directory, Recorder, RecorderOptions, RecorderStream,
    TimeOrigin, WriteFile, WriteOptions,
};
