//! Reading an MCAP file: the `mcap` crate's sans-io indexed reader over the
//! memory-mapped file, fed with blocks this module loads and checks
//! ([`super::blocks`]).
//!
//! A file with a summary is read through its chunk index: seeking and time
//! windows skip whole chunks without reading them, topics given up front
//! skip chunks that hold none of them. A file without one (a writer that
//! crashed) is scanned once when opened, which finds its channels and
//! builds the same index, so it then reads and seeks the same way.
//!
//! Mapping (README, "Formats"): topic = channel topic, type = schema name
//! (none for a schemaless channel), payload = the message bytes untouched,
//! time = `log_time` − the first message's `log_time` ([`StreamInfo::time_base_ns`]
//! keeps that base, so absolute times come back exactly). Messages with equal
//! log times go by channel id, then by their order in the file within a
//! chunk; equal times on one channel split across chunks come in the order
//! the `mcap` crate's indexed reader loads the chunks (it does not say
//! which message came from where, so file order cannot be restored).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::records::ChunkIndex;
use mcap::sans_io::{IndexedReadEvent, IndexedReader, IndexedReaderOptions};
use memmap2::Mmap;

use super::blocks::{self, Block, BlockSource, Damage, Inflater, RECORD_PREFIX};
use crate::format::detect::MCAP_MAGIC;
use crate::format::source::{OnError, RecordSource, TimeWindow};
use crate::sys::GuardedMap;
use crate::{Error, Record, Result, Schema, StreamInfo, MAX_TIME_NS};

pub(crate) const MAGIC_LEN: usize = MCAP_MAGIC.len();
/// Where the indexed reader asks for block `i`'s bytes: the data offset of a
/// chunk index whose start offset is `i` and compression is none.
const DATA_OFFSET_OF_BLOCK_0: u64 = 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8;

/// Which of a message's times it is played by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum McapTime {
    /// `log_time`: when it was recorded (the file's order and index).
    #[default]
    Log,
    /// `publish_time`: when it was sent. The file is read in log-time order
    /// and reordered by publish time within [`PUBLISH_REORDER_NS`]; a message
    /// published longer than that before it was logged comes late (out of
    /// order), and seeks and time windows go by the chunk index's log times,
    /// which bound publish times from above.
    Publish,
}

/// How far publish times may lag log times and still be played in order.
pub const PUBLISH_REORDER_NS: u64 = 500_000_000;

/// Options of reading MCAP files.
#[derive(Debug, Clone, Default)]
pub struct McapOptions {
    /// Elapsed times (from the first message of all files read together).
    pub window: TimeWindow,
    pub on_error: OnError,
    /// Read only the channels of these topics (exact names), skipping the
    /// chunks that hold none of them.
    pub topics: Option<Vec<String>>,
    /// Log time (default) or publish time.
    pub time: McapTime,
}

/// A message read, with what orders it among its equals.
struct Read {
    /// The time it is played by (log or publish time), absolute, as the file has it.
    stamp: u64,
    /// Its log time: how far the file has been read.
    log_time: u64,
    channel: u16,
    record: Record,
}

/// One MCAP file, read in log-time order ([`RecordSource`]).
pub struct McapFile {
    path: PathBuf,
    map: Option<GuardedMap>,
    blocks: Vec<Block>,
    /// The blocks as the indexed reader's summary (one chunk index each).
    summary: mcap::Summary,
    /// Channel id → its stream and topic.
    channels: HashMap<u16, (u32, Arc<str>)>,
    streams: Vec<StreamInfo>,
    /// Log times of the first and last message; `None` without messages.
    times: Option<(u64, u64)>,
    metadata: Vec<mcap::records::Metadata>,
    base_ns: u64,
    options: McapOptions,
    reader: Option<IndexedReader>,
    /// Read from this elapsed time on (a seek).
    from_ns: Option<i64>,
    inflater: Inflater,
    /// Messages of one log time, in their order; `ahead` is the first after them.
    group: VecDeque<Record>,
    ahead: Option<Read>,
    /// An error met looking ahead, reported after the messages before it.
    deferred: Option<Error>,
    ended: bool,
    skipped: u64,
    /// Publish time: messages read and not yet given, by (publish time,
    /// channel, order read), and the log time read up to.
    reordering: BTreeMap<(u64, u16, u64), Record>,
    read_count: u64,
    read_to_log: u64,
    /// The buffer `fill_group` gathers a log time's messages in.
    scratch: Vec<Read>,
    /// The log time of the last message read: a damaged chunk index (one
    /// whose times do not cover its chunk's) could otherwise send time back.
    last_log_time: Option<u64>,
}

impl McapFile {
    /// Open `path`: its summary (or a scan without one). Elapsed times count
    /// from its first message until [`McapFile::set_base`] says otherwise.
    pub fn open(path: &Path, options: &McapOptions) -> Result<McapFile> {
        let file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, &e))?;
        if meta.is_dir() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: "is a directory, not an MCAP file".into(),
            });
        }
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the map is read-only and stays inside this reader
            // (records copy their bytes); a file cut while mapped is guarded
            // (its vanished pages read as zeros and set `truncated`, checked
            // after each block is read).
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, &e))?;
            Some(GuardedMap::new(map))
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        if !bytes.starts_with(MCAP_MAGIC) {
            return Err(malformed(
                path,
                0,
                format!(
                    "not an MCAP file: it does not start with the MCAP magic ({} bytes long)",
                    bytes.len()
                ),
            ));
        }
        let mut inflater = Inflater::default();
        let (blocks, defined, times, metadata) = match usable_summary(bytes) {
            Some(summary) => {
                let metadata = summary
                    .metadata_indexes
                    .iter()
                    .filter(|i| metadata_fits(bytes, i.offset))
                    .filter_map(|i| mcap::read::metadata(bytes, i).ok())
                    .collect();
                let (blocks, defined, times) = from_summary(summary, bytes.len() as u64);
                (blocks, defined, times, metadata)
            }
            None => {
                let scan = blocks::scan(bytes, &mut inflater);
                let times = scan
                    .blocks
                    .iter()
                    .filter(|b| !matches!(b.source, BlockSource::Damaged(_)))
                    .fold(None, |acc: Option<(u64, u64)>, b| {
                        Some(acc.map_or((b.start_time, b.end_time), |(f, l)| {
                            (f.min(b.start_time), l.max(b.end_time))
                        }))
                    });
                (
                    scan.blocks,
                    scan.channels.channels,
                    times,
                    scan.channels.metadata,
                )
            }
        };
        if map.as_ref().is_some_and(GuardedMap::truncated) {
            return Err(shrank(path));
        }
        let mut ids: Vec<u16> = defined.keys().copied().collect();
        ids.sort_unstable();
        let channels = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, (i as u32, Arc::from(defined[id].topic.as_str()))))
            .collect();
        let streams = ids
            .iter()
            .map(|id| stream_info(&defined[id], path))
            .collect();
        let summary = index_of(&blocks, defined);
        let mut file = McapFile {
            path: path.to_path_buf(),
            map,
            blocks,
            summary,
            channels,
            streams,
            times,
            metadata,
            base_ns: 0,
            options: options.clone(),
            reader: None,
            from_ns: None,
            inflater,
            group: VecDeque::new(),
            ahead: None,
            deferred: None,
            ended: false,
            skipped: 0,
            reordering: BTreeMap::new(),
            read_count: 0,
            read_to_log: 0,
            scratch: Vec::new(),
            last_log_time: None,
        };
        if options.time == McapTime::Publish {
            file.times = file.publish_times()?;
        }
        file.set_base(file.times.map_or(0, |t| t.0))?;
        Ok(file)
    }

    /// The first publish time (the least in the first reorder window) and
    /// the last log time, which bounds the last publish time.
    fn publish_times(&mut self) -> Result<Option<(u64, u64)>> {
        let Some((first_log, last_log)) = self.times else {
            return Ok(None);
        };
        let window = self.options.window;
        self.options.window = TimeWindow {
            min_ns: None,
            max_ns: Some(PUBLISH_REORDER_NS.min(MAX_TIME_NS as u64) as i64),
        };
        self.base_ns = first_log;
        self.rewind(None);
        let mut first = None::<u64>;
        // Damage is reported when the messages are read; here it ends the probe.
        while let Ok(Some(r)) = self.next_read() {
            first = Some(first.map_or(r.stamp, |f| f.min(r.stamp)));
        }
        self.options.window = window;
        self.rewind(None);
        Ok(Some((first.unwrap_or(first_log).min(first_log), last_log)))
    }

    /// The file's metadata record named `name` (the first, if several).
    pub fn metadata(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.metadata
            .iter()
            .find(|m| m.name == name)
            .map(|m| &m.metadata)
    }

    /// The time (log or publish, as read) of its first message, `None`
    /// without messages.
    pub fn first_time(&self) -> Option<u64> {
        self.times.map(|t| t.0)
    }

    /// Count elapsed time from `base_ns` (several files read together share
    /// the earliest first message); rewinds.
    pub fn set_base(&mut self, base_ns: u64) -> Result<()> {
        if let Some((_, last)) = self.times {
            if last.saturating_sub(base_ns) > MAX_TIME_NS as u64 {
                return Err(Error::Layout {
                    path: self.path.clone(),
                    reason: format!(
                        "its messages span more than {} s from the first one read with it",
                        MAX_TIME_NS / 1_000_000_000
                    ),
                });
            }
        }
        self.base_ns = base_ns;
        for s in &mut self.streams {
            s.time_base_ns = base_ns;
        }
        self.rewind(None);
        Ok(())
    }

    fn rewind(&mut self, from_ns: Option<i64>) {
        self.reader = None;
        self.from_ns = from_ns;
        self.group.clear();
        self.ahead = None;
        self.deferred = None;
        self.ended = false;
        self.reordering.clear();
        self.read_to_log = 0;
        self.last_log_time = None;
    }

    /// Elapsed ns to an absolute log time, clamped to the u64 range.
    fn absolute(&self, elapsed: i64) -> u64 {
        (self.base_ns as i128 + elapsed as i128).clamp(0, u64::MAX as i128) as u64
    }

    /// A reader from the seek position (or the window's start) to the window's end.
    fn make_reader(&self) -> Result<Option<IndexedReader>> {
        let mut options = IndexedReaderOptions::new();
        let from = match (self.from_ns, self.options.window.min_ns) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // A position past every u64 log time has nothing after it (clamped,
        // it would take the messages at u64::MAX).
        if from.is_some_and(|t| self.base_ns as i128 + t as i128 > u64::MAX as i128) {
            return Ok(None);
        }
        let from = from.map(|t| self.absolute(t));
        // Publish times trail log times: read up to a reorder window further.
        let slack = match self.options.time {
            McapTime::Log => 0,
            McapTime::Publish => PUBLISH_REORDER_NS,
        };
        let to = self.options.window.max_ns.map(|t| {
            if t < -(self.base_ns.min(i64::MAX as u64) as i64) {
                None // before every possible time
            } else {
                Some(self.absolute(t).saturating_add(slack))
            }
        });
        if let Some(from) = from {
            options = options.starting_at(from);
        }
        match to {
            Some(None) => return Ok(None),
            Some(Some(to)) => {
                if from.is_some_and(|f| f > to) {
                    return Ok(None);
                }
                options = options.ending_at(to);
            }
            None => {}
        }
        if let Some(topics) = &self.options.topics {
            options = options.include_topics(topics.iter().cloned());
        }
        IndexedReader::new_with_options(&self.summary, options)
            .map(Some)
            .map_err(|e| malformed(&self.path, 0, format!("its chunk index is unusable: {e}")))
    }

    /// The next message in log-time order (ties in file order), or a
    /// damaged block's error.
    fn next_read(&mut self) -> Result<Option<Read>> {
        if self.ended {
            return Ok(None);
        }
        if self.reader.is_none() {
            match self.make_reader()? {
                Some(r) => self.reader = Some(r),
                None => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
        let McapFile {
            path,
            map,
            blocks,
            channels,
            base_ns,
            reader,
            inflater,
            ended,
            options,
            last_log_time,
            ..
        } = self;
        let reader = reader.as_mut().expect("made above");
        let file: &[u8] = map.as_deref().unwrap_or(&[]);
        loop {
            let event = match reader.next_event() {
                None => {
                    *ended = true;
                    return Ok(None);
                }
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    // Blocks are checked before the reader sees them: this is
                    // not expected, and the reader cannot go on after it.
                    *ended = true;
                    return Err(malformed(path, 0, format!("reading the chunk index: {e}")));
                }
            };
            match event {
                IndexedReadEvent::ReadChunkRequest { offset, .. } => {
                    let i = (offset - DATA_OFFSET_OF_BLOCK_0) as usize;
                    let block = &blocks[i];
                    let loaded = load(file, block, inflater);
                    let damage = match loaded {
                        Ok(bytes) => {
                            let inserted = reader.insert_chunk_record_data(offset, bytes);
                            if map.as_ref().is_some_and(GuardedMap::truncated) {
                                *ended = true;
                                return Err(shrank(path));
                            }
                            match inserted {
                                Ok(()) => continue,
                                Err(e) => {
                                    *ended = true;
                                    return Err(malformed(
                                        path,
                                        block_offset(block),
                                        format!("chunk not taken by the reader: {e}"),
                                    ));
                                }
                            }
                        }
                        Err(damage) => damage,
                    };
                    // The block is given as one padding record of its size,
                    // so the reader goes on after it.
                    let inserted = padding(indexed_size(block) as usize)
                        .map_err(|e| e.to_string())
                        .and_then(|p| {
                            reader
                                .insert_chunk_record_data(offset, &p)
                                .map_err(|e| e.to_string())
                        });
                    if let Err(e) = inserted {
                        *ended = true;
                        return Err(malformed(
                            path,
                            damage.offset,
                            format!("{}; reading stops here ({e})", damage.reason),
                        ));
                    }
                    return Err(malformed(path, damage.offset, damage.reason));
                }
                IndexedReadEvent::Message { header, data } => {
                    if let Some(last) = *last_log_time {
                        if header.log_time < last {
                            return Err(malformed(
                                path,
                                0,
                                format!(
                                    "a message on channel {} at log time {} comes after one at {}: \
                                     the chunk index does not cover its chunk's times",
                                    header.channel_id, header.log_time, last
                                ),
                            ));
                        }
                    }
                    *last_log_time = Some(header.log_time);
                    let Some((stream, topic)) = channels.get(&header.channel_id) else {
                        return Err(malformed(
                            path,
                            0,
                            format!(
                                "a message at log time {} refers to channel {}, which the file \
                                 does not define",
                                header.log_time, header.channel_id
                            ),
                        ));
                    };
                    let (stamp, played) = match options.time {
                        McapTime::Log => (header.log_time, header.log_time),
                        // One published before the base (more than a reorder
                        // window before it was logged) is played at the base.
                        McapTime::Publish => {
                            (header.publish_time, header.publish_time.max(*base_ns))
                        }
                    };
                    // Compared unsigned: a damaged index can let through a
                    // time more than i64::MAX past the base.
                    let elapsed = played.wrapping_sub(*base_ns);
                    if played < *base_ns || elapsed > MAX_TIME_NS as u64 {
                        return Err(malformed(
                            path,
                            0,
                            format!(
                                "a message on channel {} has log time {}, outside the file's \
                                 indexed range from {}",
                                header.channel_id, header.log_time, base_ns
                            ),
                        ));
                    }
                    return Ok(Some(Read {
                        stamp,
                        log_time: header.log_time,
                        channel: header.channel_id,
                        record: Record {
                            time_ns: elapsed as i64,
                            stream: *stream,
                            topic: topic.clone(),
                            payload: {
                                let mut payload = crate::record::payload_buffer(data.len());
                                payload.extend_from_slice(data);
                                payload
                            },
                        },
                    }));
                }
            }
        }
    }

    /// [`McapFile::next_read`] under the error policy: with `skip`, errors
    /// are counted and reading goes on.
    fn next_or_skip(&mut self) -> Result<Option<Read>> {
        loop {
            match self.next_read() {
                Err(e) if self.options.on_error == OnError::Skip && !self.ended => {
                    self.skipped += 1;
                    let _ = e;
                }
                other => return other,
            }
        }
    }

    /// Publish time: the next message by publish time, once no message
    /// still to be read can come before it (a reorder window read past it),
    /// within the seek position and the window.
    fn next_by_publish_time(&mut self) -> Result<Option<Record>> {
        let from = match (self.from_ns, self.options.window.min_ns) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let to = self.options.window.max_ns;
        loop {
            if let Some((&(stamp, _, _), _)) = self.reordering.first_key_value() {
                let safe =
                    self.ended || stamp.saturating_add(PUBLISH_REORDER_NS) < self.read_to_log;
                if safe || self.deferred.is_some() {
                    return Ok(self.reordering.pop_first().map(|(_, r)| r));
                }
            }
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
            if self.ended {
                return Ok(None);
            }
            match self.next_or_skip() {
                Ok(Some(r)) => {
                    self.read_to_log = self.read_to_log.max(r.log_time);
                    let t = r.record.time_ns;
                    if from.is_none_or(|f| t >= f) && to.is_none_or(|m| t <= m) {
                        self.read_count += 1;
                        self.reordering
                            .insert((r.stamp, r.channel, self.read_count), r.record);
                    }
                }
                Ok(None) => self.ended = true,
                // Given after the messages read before it.
                Err(e) => self.deferred = Some(e),
            }
        }
    }

    /// Fill `group` with the messages of the next log time, by channel id.
    fn fill_group(&mut self) -> Result<()> {
        let first = match self.ahead.take() {
            Some(r) => r,
            None => match self.next_or_skip()? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        // One reused buffer: a group is most often one message.
        let mut group = std::mem::take(&mut self.scratch);
        group.clear();
        group.push(first);
        loop {
            match self.next_or_skip() {
                Ok(Some(r)) if r.log_time == group[0].log_time => group.push(r),
                Ok(Some(r)) => {
                    self.ahead = Some(r);
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    self.deferred = Some(e);
                    break;
                }
            }
        }
        // Stable: equal channels keep their order in the file.
        if group.len() > 1 {
            group.sort_by_key(|r| r.channel);
        }
        self.group.extend(group.drain(..).map(|r| r.record));
        self.scratch = group;
        Ok(())
    }
}

fn block_offset(block: &Block) -> u64 {
    match &block.source {
        BlockSource::Chunk { offset } => *offset,
        BlockSource::Run { start, .. } => *start,
        BlockSource::Damaged(d) => d.offset,
    }
}

/// A block's records, checked.
fn load<'a>(
    file: &'a [u8],
    block: &Block,
    inflater: &'a mut Inflater,
) -> std::result::Result<&'a [u8], Damage> {
    match &block.source {
        BlockSource::Chunk { offset } => {
            let (header, bytes) = inflater.chunk(file, *offset)?;
            if header.uncompressed_size != indexed_size(block) {
                return Err(Damage {
                    offset: *offset,
                    reason: format!(
                        "the chunk holds {} bytes, the chunk index says {}",
                        header.uncompressed_size, block.size
                    ),
                });
            }
            Ok(bytes)
        }
        // Scanned (and framed) when the file was opened.
        BlockSource::Run { start, end } => Ok(&file[*start as usize..*end as usize]),
        BlockSource::Damaged(d) => Err(d.clone()),
    }
}

/// The size the indexed reader is told block `b` has: a block too small to
/// hold a record, or larger than any chunk read, cannot be padded and is
/// given as empty (its load still reports what is wrong).
fn indexed_size(b: &Block) -> u64 {
    if b.size < RECORD_PREFIX as u64 || b.size > blocks::MAX_CHUNK_BYTES {
        0
    } else {
        b.size
    }
}

/// `size` bytes of records the reader skips: one record of an unused
/// opcode (`size` is 0 or at least [`RECORD_PREFIX`], see [`indexed_size`]).
fn padding(size: usize) -> std::result::Result<Vec<u8>, std::collections::TryReserveError> {
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size)?;
    bytes.resize(size, 0);
    if size >= RECORD_PREFIX {
        bytes[1..9].copy_from_slice(&((size - RECORD_PREFIX) as u64).to_le_bytes());
    }
    Ok(bytes)
}

/// The file's summary, when it has one with a chunk index for its
/// messages; `None` sends the file to a scan.
fn usable_summary(bytes: &[u8]) -> Option<mcap::Summary> {
    if bytes.len() < 2 * MAGIC_LEN || !bytes.ends_with(MCAP_MAGIC) {
        return None;
    }
    summary_lengths_fit(bytes)?;
    let summary = mcap::Summary::read(bytes).ok()??;
    let messages = summary.stats.as_ref().map(|s| s.message_count);
    // Messages outside chunks (an unchunked file) are not in the chunk index.
    if summary.chunk_indexes.is_empty() && messages != Some(0) {
        return None;
    }
    Some(summary)
}

/// Every record of the summary section frames, and its length prefixes
/// stay inside it ([`blocks::lengths_fit`]); `None` sends the file to a scan.
fn summary_lengths_fit(bytes: &[u8]) -> Option<()> {
    // The footer: opcode, length 20, summary start, summary offset start, CRC.
    const FOOTER: usize = 1 + 8 + 20;
    let footer_at = bytes.len().checked_sub(MAGIC_LEN + FOOTER)?;
    let start = u64::from_le_bytes(bytes.get(footer_at + 9..footer_at + 17)?.try_into().ok()?);
    if start == 0 {
        return Some(()); // no summary section: the crate reads none
    }
    let mut at = usize::try_from(start).ok().filter(|&s| s <= footer_at)?;
    while at < footer_at {
        let (opcode, body, next) = blocks::record_at(&bytes[..footer_at], at).ok()?;
        blocks::lengths_fit(opcode, body).ok()?;
        at = next;
    }
    Some(())
}

/// Whether the metadata record an index points at frames and its length
/// prefixes stay inside it (see [`summary_lengths_fit`]).
fn metadata_fits(bytes: &[u8], offset: u64) -> bool {
    usize::try_from(offset).is_ok_and(|at| {
        blocks::record_at(bytes, at).is_ok_and(|(opcode, body, _)| {
            opcode == mcap::records::op::METADATA && blocks::lengths_fit(opcode, body).is_ok()
        })
    })
}

type Defined = HashMap<u16, Arc<mcap::Channel<'static>>>;

fn from_summary(
    summary: mcap::Summary,
    file_len: u64,
) -> (Vec<Block>, Defined, Option<(u64, u64)>) {
    let blocks: Vec<Block> = summary
        .chunk_indexes
        .iter()
        .map(|c| Block {
            source: BlockSource::Chunk {
                offset: c.chunk_start_offset,
            },
            start_time: c.message_start_time,
            end_time: c.message_end_time,
            // A size its compressed bytes cannot hold is damage (reported
            // when the chunk loads); it is not reserved or padded to.
            size: if c.uncompressed_size
                > blocks::max_uncompressed(&c.compression, c.compressed_size.min(file_len))
            {
                0
            } else {
                c.uncompressed_size
            },
            channels: c.message_index_offsets.keys().copied().collect(),
        })
        .collect();
    let times = match &summary.stats {
        Some(s) if s.message_count > 0 => Some((s.message_start_time, s.message_end_time)),
        Some(_) => None,
        None => blocks.iter().fold(None, |acc: Option<(u64, u64)>, b| {
            Some(acc.map_or((b.start_time, b.end_time), |(f, l)| {
                (f.min(b.start_time), l.max(b.end_time))
            }))
        }),
    };
    (blocks, summary.channels, times)
}

/// The indexed reader's view of `blocks`: chunk `i` is block `i`,
/// uncompressed (this module decompresses).
fn index_of(blocks: &[Block], channels: Defined) -> mcap::Summary {
    let chunk_indexes = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let size = indexed_size(b);
            ChunkIndex {
                message_start_time: b.start_time,
                message_end_time: b.end_time,
                chunk_start_offset: i as u64,
                chunk_length: 0,
                message_index_offsets: b
                    .channels
                    .iter()
                    .map(|c| (*c, 0))
                    .collect::<BTreeMap<_, _>>(),
                message_index_length: 0,
                compression: String::new(),
                compressed_size: size,
                uncompressed_size: size,
            }
        })
        .collect();
    mcap::Summary {
        stats: None,
        channels,
        schemas: HashMap::new(),
        chunk_indexes,
        attachment_indexes: Vec::new(),
        metadata_indexes: Vec::new(),
    }
}

fn stream_info(channel: &mcap::Channel<'static>, path: &Path) -> StreamInfo {
    StreamInfo {
        message_type: channel.schema.as_ref().map(|s| s.name.clone()),
        files: vec![path.to_path_buf()],
        encoding: Some(channel.message_encoding.clone()),
        schema: channel.schema.as_ref().map(|s| {
            Arc::new(Schema {
                name: s.name.clone(),
                encoding: s.encoding.clone(),
                data: s.data.to_vec(),
            })
        }),
        time_base_ns: 0,
    }
}

fn malformed(path: &Path, offset: u64, reason: String) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        line: 0,
        byte_offset: offset,
        reason,
        snippet: String::new(),
    }
}

fn shrank(path: &Path) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        message: "file shrank while being read".into(),
    }
}

impl RecordSource for McapFile {
    fn next_record(&mut self) -> Result<Option<Record>> {
        if self.options.time == McapTime::Publish {
            return self.next_by_publish_time();
        }
        if self.group.is_empty() {
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
            self.fill_group()?;
        }
        Ok(self.group.pop_front())
    }

    fn reset(&mut self) -> Result<()> {
        self.rewind(None);
        Ok(())
    }

    /// By the chunk index: the reader starts at the first chunk that can
    /// hold a time ≥ `t_ns`; nothing before it is read.
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        self.rewind(Some(t_ns));
        Ok(())
    }

    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        let Some((first, last)) = self.times else {
            return Ok(None);
        };
        // Saturating: damaged statistics may put the end before the start.
        let elapsed = |t: u64| t.saturating_sub(self.base_ns).min(MAX_TIME_NS as u64) as i64;
        let (first, last) = (elapsed(first), elapsed(last));
        let window = self.options.window;
        let first = window.min_ns.map_or(first, |m| first.max(m));
        let last = window.max_ns.map_or(last, |m| last.min(m));
        Ok((first <= last).then_some((first, last)))
    }

    fn is_data_pending(&self) -> bool {
        !self.group.is_empty()
            || !self.reordering.is_empty()
            || self.ahead.is_some()
            || self.deferred.is_some()
            || !self.ended
    }

    fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Several MCAP files read as one source: times count from the earliest
/// first message of them all, so they merge by absolute log time.
pub fn open_files(paths: &[PathBuf], options: &McapOptions) -> Result<Vec<McapFile>> {
    let mut files = paths
        .iter()
        .map(|p| McapFile::open(p, options))
        .collect::<Result<Vec<_>>>()?;
    if let Some(base) = files.iter().filter_map(McapFile::first_time).min() {
        for f in &mut files {
            f.set_base(base)?;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A file with every kind of summary record: schema, channel, chunk
    /// index, statistics, metadata and attachment indexes, summary offsets.
    fn full_file() -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = mcap::WriteOptions::new().create(&mut buf).unwrap();
        let schema = w.add_schema("S", "jsonschema", b"{}").unwrap();
        let channel = w
            .add_channel(
                schema,
                "/t",
                "json",
                &BTreeMap::from([("k".into(), "v".into())]),
            )
            .unwrap();
        for i in 0..10u64 {
            let header = mcap::records::MessageHeader {
                channel_id: channel,
                sequence: i as u32,
                log_time: 1000 + i,
                publish_time: 1000 + i,
            };
            w.write_to_known_channel(&header, b"{}").unwrap();
        }
        w.write_metadata(&mcap::records::Metadata {
            name: "m".into(),
            metadata: BTreeMap::from([("a".into(), "b".into())]),
        })
        .unwrap();
        w.attach(&mcap::Attachment {
            log_time: 1,
            create_time: 1,
            name: "file".into(),
            media_type: "text/plain".into(),
            data: std::borrow::Cow::Borrowed(b"hi"),
        })
        .unwrap();
        w.finish().unwrap();
        drop(w);
        buf.into_inner()
    }

    #[test]
    fn a_whole_summary_passes_the_length_check_and_a_damaged_prefix_does_not() {
        let bytes = full_file();
        assert!(
            summary_lengths_fit(&bytes).is_some(),
            "every summary record kind fits"
        );
        assert!(usable_summary(&bytes).is_some());
        // [was: a chunk index whose compression string claims 0xf0000000
        // bytes made the mcap crate reserve 4 GiB (fuzz mcap_reader)]
        let summary_start = u64::from_le_bytes(
            bytes[bytes.len() - 28..bytes.len() - 20]
                .try_into()
                .unwrap(),
        ) as usize;
        let mut at = summary_start;
        let mut damaged = bytes.clone();
        loop {
            let (opcode, _, next) = blocks::record_at(&bytes, at).unwrap();
            if opcode == mcap::records::op::CHUNK_INDEX {
                // After the 32 fixed bytes, the map's length, the map, 8 bytes: the string's length.
                let body = at + 9;
                let map_len =
                    u32::from_le_bytes(bytes[body + 32..body + 36].try_into().unwrap()) as usize;
                let string_len_at = body + 36 + map_len + 8;
                damaged[string_len_at..string_len_at + 4]
                    .copy_from_slice(&0xf000_0000u32.to_le_bytes());
                break;
            }
            at = next;
        }
        assert!(summary_lengths_fit(&damaged).is_none());
        assert!(
            usable_summary(&damaged).is_none(),
            "the file is scanned instead"
        );
    }
}
