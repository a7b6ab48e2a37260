//! The blocks of an MCAP file's data section, each a stretch of message
//! records the indexed reader loads as one chunk: the chunks of the file's
//! summary, or, without a usable summary, what a scan of the file finds
//! (chunks, runs of records outside chunks, and the damage between them).
//!
//! Loading a block is where every check happens: record lengths against
//! the file's size, the chunk header, decompression to exactly the size
//! the header gives, the CRC of the uncompressed bytes, and the framing of
//! the records inside. The indexed reader then only ever sees bytes that
//! frame, so it cannot fail (or panic) on them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use mcap::records::{op, ChunkHeader};

use super::lz4::Lz4Frames;
use crate::format::detect::MCAP_MAGIC;

/// Most bytes a chunk may claim uncompressed: a damaged header must not make
/// the reader reserve terabytes.
pub(crate) const MAX_CHUNK_BYTES: u64 = 1 << 32;
/// opcode (u8) and record length (u64).
pub(crate) const RECORD_PREFIX: usize = 9;
/// channel id, sequence, log time, publish time.
pub(crate) const MESSAGE_HEADER_BYTES: usize = 22;

/// What was wrong where: the byte offset in the file, and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Damage {
    pub offset: u64,
    pub reason: String,
}

impl Damage {
    fn at(offset: u64, reason: impl Into<String>) -> Self {
        Damage {
            offset,
            reason: reason.into(),
        }
    }
}

/// Where a block's records come from.
#[derive(Debug, Clone)]
pub(crate) enum BlockSource {
    /// The chunk record at this offset.
    Chunk { offset: u64 },
    /// Records outside any chunk, `start..end` of the file, read as they are.
    Run { start: u64, end: u64 },
    /// A stretch a scan found damaged: loading it reports this.
    Damaged(Damage),
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub source: BlockSource,
    /// Log times of the first and last message (inclusive).
    pub start_time: u64,
    pub end_time: u64,
    /// The uncompressed bytes of its records; 0 for a damaged block.
    pub size: u64,
    /// The channels with messages in the block, when known (for topic filters).
    pub channels: Vec<u16>,
}

/// One record of a buffer: its opcode, body, and the offset after it.
pub(crate) fn record_at(bytes: &[u8], at: usize) -> Result<(u8, &[u8], usize), String> {
    let rest = bytes.len() - at.min(bytes.len());
    if rest < RECORD_PREFIX {
        return Err(format!(
            "record cut short: {rest} bytes left, a record needs at least {RECORD_PREFIX}"
        ));
    }
    let opcode = bytes[at];
    let len = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().expect("8 bytes"));
    let body_start = at + RECORD_PREFIX;
    let available = (bytes.len() - body_start) as u64;
    if len > available {
        return Err(format!(
            "{} record cut short: its length is {len} bytes, {available} remain",
            opcode_name(opcode)
        ));
    }
    let end = body_start + len as usize;
    Ok((opcode, &bytes[body_start..end], end))
}

/// A field of a record body, as the MCAP spec lays it out: `Fixed(n)`
/// bytes, or a `Prefixed` string, byte array or map (a u32 length, then
/// that many bytes).
#[derive(Clone, Copy)]
enum Field {
    Fixed(usize),
    Prefixed,
}

/// The layout of the records the `mcap` crate parses from a summary or a
/// scan, up to their last length-prefixed field.
fn layout(opcode: u8) -> &'static [Field] {
    use Field::{Fixed, Prefixed};
    match opcode {
        // Its records' length is a u64 the crate borrows by, not reserves.
        op::CHUNK => &[Fixed(28), Prefixed],
        op::SCHEMA => &[Fixed(2), Prefixed, Prefixed, Prefixed],
        op::CHANNEL => &[Fixed(4), Prefixed, Prefixed, Prefixed],
        op::CHUNK_INDEX => &[Fixed(32), Prefixed, Fixed(8), Prefixed],
        op::ATTACHMENT_INDEX => &[Fixed(40), Prefixed, Prefixed],
        op::METADATA_INDEX => &[Fixed(16), Prefixed],
        op::METADATA => &[Prefixed, Prefixed],
        op::STATISTICS => &[Fixed(42), Prefixed],
        _ => &[],
    }
}

/// Whether every length prefix of a record body stays inside it: the
/// `mcap` crate reserves what a prefix says before it reads, so a damaged
/// prefix in a small file would ask for gigabytes.
pub(crate) fn lengths_fit(opcode: u8, body: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    for field in layout(opcode) {
        let need = match field {
            Field::Fixed(n) => *n,
            Field::Prefixed => {
                let Some(prefix) = body.get(at..at + 4) else {
                    return Err(format!("{} record cut short", opcode_name(opcode)));
                };
                at += 4;
                u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize
            }
        };
        if need > body.len() - at.min(body.len()) {
            return Err(format!(
                "{} record: a field of {need} bytes at byte {at} of its {} bytes",
                opcode_name(opcode),
                body.len()
            ));
        }
        at += need;
    }
    Ok(())
}

pub(crate) fn opcode_name(opcode: u8) -> String {
    match opcode {
        op::HEADER => "header".into(),
        op::FOOTER => "footer".into(),
        op::SCHEMA => "schema".into(),
        op::CHANNEL => "channel".into(),
        op::MESSAGE => "message".into(),
        op::CHUNK => "chunk".into(),
        op::MESSAGE_INDEX => "message index".into(),
        op::CHUNK_INDEX => "chunk index".into(),
        op::DATA_END => "data end".into(),
        other => format!("opcode 0x{other:02x}"),
    }
}

/// The log time of a message record's body, or why it has none.
pub(crate) fn message_log_time(body: &[u8]) -> Result<(u16, u64), String> {
    if body.len() < MESSAGE_HEADER_BYTES {
        return Err(format!(
            "message record of {} bytes, shorter than its {MESSAGE_HEADER_BYTES}-byte header",
            body.len()
        ));
    }
    let channel = u16::from_le_bytes([body[0], body[1]]);
    let log_time = u64::from_le_bytes(body[6..14].try_into().expect("8 bytes"));
    Ok((channel, log_time))
}

/// Reusable decompression state.
#[derive(Default)]
pub(crate) struct Inflater {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    lz4: Option<Lz4Frames>,
    buffer: Vec<u8>,
}

/// A chunk's header and its compressed bytes, from the chunk record at
/// `offset` of `file`.
fn chunk_record(file: &[u8], offset: u64) -> Result<(ChunkHeader, &[u8]), Damage> {
    let at = usize::try_from(offset)
        .ok()
        .filter(|&at| at <= file.len())
        .ok_or_else(|| {
            Damage::at(
                offset,
                format!(
                    "chunk offset past the end of the file ({} bytes)",
                    file.len()
                ),
            )
        })?;
    let (opcode, body, _) = record_at(file, at).map_err(|r| Damage::at(offset, r))?;
    if opcode != op::CHUNK {
        return Err(Damage::at(
            offset,
            format!(
                "expected a chunk record, found a {} record",
                opcode_name(opcode)
            ),
        ));
    }
    lengths_fit(op::CHUNK, body).map_err(|r| Damage::at(offset, r))?;
    match mcap::parse_record(op::CHUNK, body) {
        Ok(mcap::records::Record::Chunk {
            header,
            data: Cow::Borrowed(data),
        }) => Ok((header, data)),
        Ok(_) => Err(Damage::at(offset, "chunk record did not parse as one")),
        Err(e) => Err(Damage::at(offset, format!("malformed chunk header: {e}"))),
    }
}

impl Inflater {
    /// The uncompressed records of the chunk record at `offset`, checked:
    /// decompressed to the size its header gives, CRC (unless 0, "none"),
    /// records framed. Also returns its header.
    pub(crate) fn chunk<'a>(
        &'a mut self,
        file: &'a [u8],
        offset: u64,
    ) -> Result<(ChunkHeader, &'a [u8]), Damage> {
        let (header, data) = chunk_record(file, offset)?;
        let size = header.uncompressed_size;
        if size > MAX_CHUNK_BYTES {
            return Err(Damage::at(
                offset,
                format!(
                    "chunk claims {size} bytes uncompressed, more than the {MAX_CHUNK_BYTES} read"
                ),
            ));
        }
        let size = size as usize;
        check_claimed_size(&header.compression, data, size)
            .map_err(|reason| Damage::at(offset, reason))?;
        let bytes: &[u8] = match header.compression.as_str() {
            "" => data,
            "zstd" => {
                self.buffer.clear();
                self.buffer
                    .try_reserve_exact(size)
                    .map_err(|e| Damage::at(offset, format!("chunk of {size} bytes: {e}")))?;
                let zstd = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| Damage::at(offset, format!("zstd: {e}")))?,
                    ),
                };
                zstd.decompress_to_buffer(data, &mut self.buffer)
                    .map_err(|e| {
                        Damage::at(offset, format!("zstd chunk does not decompress: {e}"))
                    })?;
                &self.buffer
            }
            "lz4" => {
                let frames = match &mut self.lz4 {
                    Some(f) => f,
                    None => self.lz4.insert(
                        Lz4Frames::new().map_err(|e| Damage::at(offset, format!("lz4: {e}")))?,
                    ),
                };
                if let Err(e) = frames.decompress(data, &mut self.buffer, size) {
                    // A context left mid-frame is not reused.
                    self.lz4 = None;
                    return Err(Damage::at(
                        offset,
                        format!("lz4 chunk does not decompress: {e}"),
                    ));
                }
                &self.buffer
            }
            other => {
                return Err(Damage::at(
                    offset,
                    format!("chunk compression '{other}' is not supported (zstd, lz4 or none)"),
                ))
            }
        };
        if bytes.len() != size {
            return Err(Damage::at(
                offset,
                format!(
                    "chunk decompresses to {} bytes, its header says {size}",
                    bytes.len()
                ),
            ));
        }
        if header.uncompressed_crc != 0 {
            let crc = crc32fast::hash(bytes);
            if crc != header.uncompressed_crc {
                return Err(Damage::at(
                    offset,
                    format!(
                        "chunk CRC mismatch: the header has 0x{:08x}, the data 0x{crc:08x}",
                        header.uncompressed_crc
                    ),
                ));
            }
        }
        check_framing(bytes).map_err(|(inner, reason)| {
            Damage::at(
                offset,
                format!("at byte {inner} of the chunk's records: {reason}"),
            )
        })?;
        Ok((header, bytes))
    }
}

/// Most bytes one byte of lz4 can stand for (a match of 255 bytes per
/// length byte), and of zstd (an RLE block: 128 KiB from its 4 bytes).
const LZ4_MAX_RATIO: usize = 255;
const ZSTD_MAX_RATIO: usize = 1 << 15;

/// The most bytes `compressed` bytes of a chunk in `compression` can
/// decompress to (uncompressed: themselves).
pub(crate) fn max_uncompressed(compression: &str, compressed: u64) -> u64 {
    match compression {
        "lz4" => compressed
            .saturating_mul(LZ4_MAX_RATIO as u64)
            .saturating_add(64),
        "zstd" => compressed
            .saturating_mul(ZSTD_MAX_RATIO as u64)
            .saturating_add(1 << 17),
        _ => compressed,
    }
}

/// The uncompressed size a chunk header claims, checked against what its
/// compressed bytes can hold before that much memory is reserved for it:
/// a damaged header must not make a small file ask for gigabytes.
fn check_claimed_size(compression: &str, data: &[u8], size: usize) -> Result<(), String> {
    if compression == "zstd" {
        // A frame that gives its size must agree with the header.
        if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(data) {
            if n != size as u64 {
                return Err(format!(
                    "its zstd frame holds {n} bytes, its header says {size}"
                ));
            }
        }
    }
    if !matches!(compression, "lz4" | "zstd") {
        return Ok(()); // uncompressed: its size is checked against its bytes
    }
    if size as u64 > max_uncompressed(compression, data.len() as u64) {
        return Err(format!(
            "chunk header says {size} bytes uncompressed, more than its {} {compression} bytes can hold",
            data.len()
        ));
    }
    Ok(())
}

/// Every record of `bytes` fits in it, and every message has its header.
fn check_framing(bytes: &[u8]) -> Result<(), (usize, String)> {
    let mut at = 0;
    while at < bytes.len() {
        let (opcode, body, next) = record_at(bytes, at).map_err(|r| (at, r))?;
        if opcode == op::MESSAGE {
            message_log_time(body).map_err(|r| (at, r))?;
        }
        at = next;
    }
    Ok(())
}

/// Schemas and channels as a file defines them.
#[derive(Default)]
pub(crate) struct Channels {
    pub schemas: HashMap<u16, Arc<mcap::Schema<'static>>>,
    pub channels: HashMap<u16, Arc<mcap::Channel<'static>>>,
    pub metadata: Vec<mcap::records::Metadata>,
}

impl Channels {
    /// Take in a schema or channel record (others are ignored).
    fn define(&mut self, opcode: u8, body: &[u8]) -> Result<(), String> {
        if ![op::SCHEMA, op::CHANNEL, op::METADATA].contains(&opcode) {
            return Ok(());
        }
        lengths_fit(opcode, body)?;
        match mcap::parse_record(opcode, body).map_err(|e| format!("{e}"))? {
            // Schema id 0 means "no schema" and is not defined.
            mcap::records::Record::Schema { header, data } if header.id != 0 => {
                self.schemas.entry(header.id).or_insert_with(|| {
                    Arc::new(mcap::Schema {
                        id: header.id,
                        name: header.name,
                        encoding: header.encoding,
                        data: Cow::Owned(data.into_owned()),
                    })
                });
            }
            mcap::records::Record::Channel(c) => {
                let schema = self.schemas.get(&c.schema_id).cloned();
                self.channels.entry(c.id).or_insert_with(|| {
                    Arc::new(mcap::Channel {
                        id: c.id,
                        topic: c.topic,
                        schema,
                        message_encoding: c.message_encoding,
                        metadata: c.metadata,
                    })
                });
            }
            mcap::records::Record::Metadata(m) => self.metadata.push(m),
            _ => {}
        }
        Ok(())
    }
}

/// Message times and channels seen in a stretch of records.
#[derive(Default)]
struct Span {
    times: Option<(u64, u64)>,
    channels: Vec<u16>,
}

impl Span {
    fn add(&mut self, channel: u16, log_time: u64) {
        self.times = Some(match self.times {
            None => (log_time, log_time),
            Some((a, b)) => (a.min(log_time), b.max(log_time)),
        });
        if !self.channels.contains(&channel) {
            self.channels.push(channel);
        }
    }
}

/// What a scan of a file without a usable summary found.
pub(crate) struct Scan {
    pub blocks: Vec<Block>,
    pub channels: Channels,
}

/// Walk the data section of `file` (after its magic) record by record,
/// decompressing and checking every chunk: the blocks, channels and the
/// damage, in file order. A file that ends without its data end or footer
/// (a writer that crashed or was killed) gets a damaged block at its end,
/// after the rest; every complete chunk before it is read.
pub(crate) fn scan(file: &[u8], inflater: &mut Inflater) -> Scan {
    let mut blocks = Vec::new();
    let mut channels = Channels::default();
    let mut last_time = 0u64;
    // The run of records outside chunks being gathered: its start, messages.
    let mut run: Option<(usize, Span)> = None;
    let mut at = MCAP_MAGIC.len();
    let close_run = |run: &mut Option<(usize, Span)>, end: usize, blocks: &mut Vec<Block>| {
        if let Some((start, span)) = run.take() {
            if let Some((first, last)) = span.times {
                blocks.push(Block {
                    source: BlockSource::Run {
                        start: start as u64,
                        end: end as u64,
                    },
                    start_time: first,
                    end_time: last,
                    size: (end - start) as u64,
                    channels: span.channels,
                });
            }
        }
    };
    let damaged = |offset: usize, reason: String, time: u64| Block {
        source: BlockSource::Damaged(Damage::at(offset as u64, reason)),
        start_time: time,
        end_time: time,
        size: 0,
        channels: Vec::new(),
    };
    loop {
        if at >= file.len() {
            close_run(&mut run, at, &mut blocks);
            blocks.push(damaged(
                at,
                "the file ends without its data end and footer records (its writer did not \
                 finish); the complete records before were read"
                    .into(),
                last_time,
            ));
            break;
        }
        let (opcode, body, next) = match record_at(file, at) {
            Ok(r) => r,
            Err(reason) => {
                close_run(&mut run, at, &mut blocks);
                blocks.push(damaged(at, reason, last_time));
                break;
            }
        };
        match opcode {
            op::CHUNK => {
                close_run(&mut run, at, &mut blocks);
                match inflater.chunk(file, at as u64) {
                    Ok((header, records)) => {
                        let mut span = Span::default();
                        let mut inner = 0;
                        while inner < records.len() {
                            // Framing was checked by `chunk`.
                            let Ok((opcode, body, after)) = record_at(records, inner) else {
                                break;
                            };
                            if opcode == op::MESSAGE {
                                if let Ok((channel, t)) = message_log_time(body) {
                                    span.add(channel, t);
                                }
                            } else if let Err(reason) = channels.define(opcode, body) {
                                blocks.push(damaged(
                                    at,
                                    format!(
                                        "{} record in the chunk: {reason}",
                                        opcode_name(opcode)
                                    ),
                                    last_time,
                                ));
                            }
                            inner = after;
                        }
                        if let Some((first, last)) = span.times {
                            last_time = last_time.max(last);
                            blocks.push(Block {
                                source: BlockSource::Chunk { offset: at as u64 },
                                start_time: first,
                                end_time: last,
                                size: header.uncompressed_size,
                                channels: span.channels,
                            });
                        }
                    }
                    Err(damage) => {
                        blocks.push(damaged(at, damage.reason, last_time));
                    }
                }
            }
            op::MESSAGE => match message_log_time(body) {
                Ok((channel, t)) => {
                    last_time = last_time.max(t);
                    run.get_or_insert_with(|| (at, Span::default()))
                        .1
                        .add(channel, t);
                }
                Err(reason) => {
                    close_run(&mut run, at, &mut blocks);
                    blocks.push(damaged(at, reason, last_time));
                }
            },
            op::DATA_END | op::FOOTER => {
                close_run(&mut run, at, &mut blocks);
                break;
            }
            _ => {
                if let Err(reason) = channels.define(opcode, body) {
                    close_run(&mut run, at, &mut blocks);
                    blocks.push(damaged(
                        at,
                        format!("malformed {} record: {reason}", opcode_name(opcode)),
                        last_time,
                    ));
                }
            }
        }
        at = next;
    }
    Scan { blocks, channels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_size_the_compressed_bytes_cannot_hold_is_damage_not_a_reservation() {
        // [was: a damaged header made Inflater::chunk reserve 2.7 GB (fuzz mcap_reader)]
        let data = vec![7u8; 10_000];
        let zstd = zstd::bulk::compress(&data, 3).unwrap();
        assert!(check_claimed_size("zstd", &zstd, data.len()).is_ok());
        let e = check_claimed_size("zstd", &zstd, 2_768_240_743).unwrap_err();
        assert!(e.contains("zstd frame holds 10000 bytes"), "{e}");
        let mut lz4 = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        std::io::Write::write_all(&mut lz4, &data).unwrap();
        let (lz4, done) = lz4.finish();
        done.unwrap();
        assert!(check_claimed_size("lz4", &lz4, data.len()).is_ok());
        let e = check_claimed_size("lz4", &lz4, 2_768_240_743).unwrap_err();
        assert!(e.contains("more than its"), "{e}");
        // Without a size in the frame, the ratio bounds it.
        let e = check_claimed_size("zstd", &[0u8; 20], 1 << 31).unwrap_err();
        assert!(e.contains("more than its 20 zstd bytes"), "{e}");
        assert!(
            check_claimed_size("", &data, 1 << 40).is_ok(),
            "none: checked elsewhere"
        );
    }
}
