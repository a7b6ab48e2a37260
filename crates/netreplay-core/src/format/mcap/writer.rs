//! Writing MCAP files with `mcap::Writer`: one channel per (type, topic),
//! schema name = MCL type (a schemaless channel for raw data), message
//! encoding `msgpack`, chunked, with a summary and chunk index at close.
//!
//! Chunks are built in memory and written whole (no seeking back into the
//! file), so a writer killed mid-way leaves every finished chunk intact; the
//! reader then reads them all and reports the missing end.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;
use mcap::write::NoSeek;

use crate::{Error, Result};

/// Chunk compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    Lz4,
    #[default]
    Zstd,
}

impl Compression {
    pub fn parse(name: &str) -> Result<Compression> {
        match name {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(Error::invalid(
                "compression",
                format!("must be 'zstd', 'lz4' or 'none', got '{other}'"),
            )),
        }
    }
}

/// Options of [`McapWriter`].
#[derive(Debug, Clone, PartialEq)]
pub struct McapWriteOptions {
    pub compression: Compression,
    /// Uncompressed bytes per chunk before a new one starts.
    pub chunk_size: u64,
}

pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;

impl Default for McapWriteOptions {
    fn default() -> Self {
        McapWriteOptions {
            compression: Compression::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// The message encoding of everything netreplay writes (MCL payloads).
pub const MSGPACK: &str = "msgpack";

type Sink = NoSeek<BufWriter<File>>;

/// Writes messages to one new MCAP file.
pub struct McapWriter {
    path: PathBuf,
    writer: Option<mcap::Writer<Sink>>,
    /// (type, topic) → channel id.
    /// Channel ids per message type (`None`: raw data; a log has a few types),
    /// then by topic: looked up per message with the borrowed names, so
    /// writing a message allocates nothing.
    channels: Vec<(Option<String>, HashMap<String, u16>)>,
    sequence: u32,
    messages: u64,
}

fn mcap_error(path: &Path, e: mcap::McapError) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        message: format!("writing MCAP: {e}"),
    }
}

impl McapWriter {
    /// Create `path` (which must not exist: files are never overwritten).
    pub fn create(path: impl Into<PathBuf>, options: &McapWriteOptions) -> Result<McapWriter> {
        let path = path.into();
        if options.chunk_size == 0 {
            return Err(Error::invalid("chunkSize", "must be > 0"));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, &e))?;
        let compression = match options.compression {
            Compression::None => None,
            Compression::Lz4 => Some(mcap::Compression::Lz4),
            Compression::Zstd => Some(mcap::Compression::Zstd),
        };
        let writer = mcap::WriteOptions::new()
            .compression(compression)
            .chunk_size(Some(options.chunk_size))
            .disable_seeking(true)
            .library(concat!("netreplay ", env!("CARGO_PKG_VERSION")))
            .create(NoSeek::new(BufWriter::with_capacity(1 << 20, file)))
            .map_err(|e| mcap_error(&path, e))?;
        Ok(McapWriter {
            path,
            writer: Some(writer),
            channels: Vec::new(),
            sequence: 0,
            messages: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn messages(&self) -> u64 {
        self.messages
    }

    fn writer(&mut self) -> Result<&mut mcap::Writer<Sink>> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::State("this MCAP writer is closed".into()))
    }

    /// The channel of (`message_type`, `topic`), added now if new: channels
    /// added first get the lower ids, which go first among equal log times.
    pub fn channel(
        &mut self,
        message_type: Option<&str>,
        topic: &str,
        encoding: &str,
    ) -> Result<u16> {
        let known = self
            .channels
            .iter()
            .find(|(t, _)| t.as_deref() == message_type)
            .and_then(|(_, topics)| topics.get(topic));
        if let Some(id) = known {
            return Ok(*id);
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::State("this MCAP writer is closed".into()))?;
        // Schema id 0: a schemaless channel (raw data).
        let schema = match message_type {
            Some(t) => writer
                .add_schema(t, "", &[])
                .map_err(|e| mcap_error(&self.path, e))?,
            None => 0,
        };
        let id = writer
            .add_channel(schema, topic, encoding, &BTreeMap::new())
            .map_err(|e| mcap_error(&self.path, e))?;
        match self
            .channels
            .iter_mut()
            .find(|(t, _)| t.as_deref() == message_type)
        {
            Some((_, topics)) => topics.insert(topic.to_owned(), id),
            None => {
                let topics = HashMap::from([(topic.to_owned(), id)]);
                self.channels
                    .push((message_type.map(str::to_owned), topics));
                None
            }
        };
        Ok(id)
    }

    /// Write one message logged at `log_time_ns`, encoded `encoding`.
    pub fn write(
        &mut self,
        message_type: Option<&str>,
        topic: &str,
        encoding: &str,
        log_time_ns: u64,
        payload: &[u8],
    ) -> Result<()> {
        let channel_id = self.channel(message_type, topic, encoding)?;
        let header = MessageHeader {
            channel_id,
            sequence: self.sequence,
            log_time: log_time_ns,
            publish_time: log_time_ns,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let written = self.writer()?.write_to_known_channel(&header, payload);
        written.map_err(|e| mcap_error(&self.path, e))?;
        self.messages += 1;
        Ok(())
    }

    /// Write a metadata record (`name`, key-value pairs).
    pub fn write_metadata(&mut self, name: &str, metadata: BTreeMap<String, String>) -> Result<()> {
        let path = self.path.clone();
        self.writer()?
            .write_metadata(&mcap::records::Metadata {
                name: name.into(),
                metadata,
            })
            .map_err(|e| mcap_error(&path, e))
    }

    /// Finish the chunk being filled and write it out.
    pub fn flush(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.writer()?.flush().map_err(|e| mcap_error(&path, e))
    }

    /// Write the summary, chunk index and footer; the file is complete.
    pub fn close(mut self) -> Result<PathBuf> {
        self.finish()?;
        Ok(self.path.clone())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(|e| mcap_error(&self.path, e))?;
            let sink = w.into_inner();
            sink.into_inner()
                .into_inner()
                .map_err(|e| Error::io(&self.path, e.error()))?;
        }
        Ok(())
    }
}

impl Drop for McapWriter {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
