//! MCAP files (<https://mcap.dev>), through the `mcap` crate: `reader` (the
//! indexed reader over the memory map), `blocks` (what it reads: chunks
//! from the summary or found by a scan, each checked when loaded) and
//! `writer`.

mod blocks;
mod lz4;
mod reader;
mod writer;

pub use reader::{open_files, McapFile, McapOptions, McapTime, PUBLISH_REORDER_NS};
pub use writer::{Compression, McapWriteOptions, McapWriter, DEFAULT_CHUNK_SIZE, MSGPACK};
