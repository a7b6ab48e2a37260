//! Opening a log: the MCL streams of a file, split set or directory, MCAP
//! files, or a pcap/pcapng capture, merged in time order (`ReadFile`,
//! `ReadDirectory`, `ReadMcap`, `ReadPcap`). A file's format is told by its
//! content ([`detect`]).

use std::path::{Path, PathBuf};

use crate::engine::merge::MergeReader;
use crate::format::detect::{self, Format};
use crate::format::mcap::{self as mcap_format, McapOptions};
use crate::format::mcl::{self, Header, MclStream, ReadOptions};
use crate::format::pcap::{CaptureCounts, CaptureFormat, PcapOptions, PcapReader};
use crate::format::source::{RecordSource, TimeWindow};
use crate::{Record, Result, StreamInfo};

/// The reader behind `ReadFile`, `ReadDirectory` and `ReadMcap`: a
/// time-ordered merge of MCL streams (keeping each stream's header) or of
/// MCAP files (whose channels have no header).
pub struct LogReader {
    merge: MergeReader,
    headers: Vec<Option<Header>>,
    /// The captures among the inputs, in input order.
    captures: Vec<CaptureInfo>,
}

/// What a capture read through [`open_pcap`] holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureInfo {
    pub format: CaptureFormat,
    /// The first frame's time, ns since the epoch.
    pub base_ns: Option<i64>,
    pub counts: CaptureCounts,
    /// The first of its streams in the reader's stream table.
    pub first_stream: u32,
    /// The damage to the file's structure, if any (reading stops there).
    pub damage: Option<String>,
    /// The original destinations, one per stream from `first_stream` on.
    pub destinations: Vec<std::net::SocketAddr>,
}

impl LogReader {
    /// Header of the first stream (the file's, for `ReadFile`).
    pub fn header(&self) -> Option<&Header> {
        self.headers.first().and_then(|h| h.as_ref())
    }

    pub fn headers(&self) -> &[Option<Header>] {
        &self.headers
    }

    /// The captures among the inputs (none for MCL logs).
    pub fn captures(&self) -> &[CaptureInfo] {
        &self.captures
    }

    /// Several logs read as one, merged in time order: ties go by input
    /// order, then each input's own order (a directory stays one input).
    pub fn merge(readers: Vec<LogReader>) -> Self {
        let headers = readers.iter().flat_map(|r| r.headers.clone()).collect();
        let mut captures = Vec::new();
        let mut first_stream = 0;
        for r in &readers {
            captures.extend(r.captures.iter().map(|c| CaptureInfo {
                first_stream: c.first_stream + first_stream,
                ..c.clone()
            }));
            first_stream += r.streams().len() as u32;
        }
        let boxed = readers
            .into_iter()
            .map(|r| Box::new(r) as Box<dyn RecordSource>)
            .collect();
        LogReader {
            merge: MergeReader::new(boxed, TimeWindow::default()),
            headers,
            captures,
        }
    }

    /// MCAP files read as one (their times share one base: see
    /// [`mcap_format::open_files`]).
    fn from_mcap(files: Vec<mcap_format::McapFile>, window: TimeWindow) -> Self {
        let headers = files
            .iter()
            .flat_map(|f| vec![None; f.streams().len()])
            .collect();
        let boxed = files
            .into_iter()
            .map(|f| Box::new(f) as Box<dyn RecordSource>)
            .collect();
        LogReader {
            merge: MergeReader::new(boxed, window),
            headers,
            captures: Vec::new(),
        }
    }

    fn from_streams(streams: Vec<MclStream>, window: TimeWindow) -> Self {
        let headers = streams.iter().map(|s| s.header().cloned()).collect();
        let boxed = streams
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn RecordSource>)
            .collect();
        LogReader {
            merge: MergeReader::new(boxed, window),
            headers,
            captures: Vec::new(),
        }
    }
}

impl RecordSource for LogReader {
    fn next_record(&mut self) -> Result<Option<Record>> {
        self.merge.next_record()
    }
    fn reset(&mut self) -> Result<()> {
        self.merge.reset()
    }
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        self.merge.seek(t_ns)
    }
    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        self.merge.time_range()
    }
    fn is_data_pending(&self) -> bool {
        self.merge.is_data_pending()
    }
    fn streams(&self) -> &[StreamInfo] {
        self.merge.streams()
    }
    fn skipped(&self) -> u64 {
        self.merge.skipped()
    }
}

/// A recording directory, a log file, or a split-set prefix: whichever
/// `path` is.
pub fn open_path(path: &Path, options: &ReadOptions) -> Result<LogReader> {
    if path.is_dir() {
        open_directory(path, options)
    } else {
        open_file(path, options)
    }
}

/// `ReadFile`: one file of whichever format its content says (MCL, MCAP, or
/// a capture, which goes to [`open_pcap`] with the same window and error
/// policy), or the MCL split set `<path>_NNN.log` when `path` is a prefix.
pub fn open_file(path: &Path, options: &ReadOptions) -> Result<LogReader> {
    let format = if path.is_file() {
        detect::detect_file(path)?
    } else {
        Format::Mcl // a split-set prefix, or a path that does not exist (said below)
    };
    match format {
        Format::Mcl => {
            let stream = MclStream::open(&mcl::file_parts(path)?, options.on_error)?;
            Ok(LogReader::from_streams(vec![stream], options.window))
        }
        Format::Mcap => open_mcap(
            &[path.to_path_buf()],
            &McapOptions {
                window: options.window,
                on_error: options.on_error,
                ..McapOptions::default()
            },
        ),
        Format::Pcap | Format::Pcapng => open_pcap(
            path,
            &PcapOptions {
                window: options.window,
                on_error: options.on_error,
                ..PcapOptions::default()
            },
        ),
    }
}

/// `ReadMcap`: MCAP files merged in log-time order, times from the first
/// message of them all. Equal log times go by channel id, then order in
/// the file within a chunk, within a file; across files by the order of `paths`.
pub fn open_mcap(paths: &[PathBuf], options: &McapOptions) -> Result<LogReader> {
    if paths.is_empty() {
        return Err(crate::Error::invalid(
            "paths",
            "give at least one MCAP file",
        ));
    }
    let files = mcap_format::open_files(paths, options)?;
    Ok(LogReader::from_mcap(files, options.window))
}

/// `ReadDirectory`: every stream of a recording, merged in time order; a
/// directory holding MCAP files (by content: an MCAP recording, a rosbag2
/// directory) is its MCAP files, read as one in name order.
pub fn open_directory(dir: &Path, options: &ReadOptions) -> Result<LogReader> {
    let mcap_files = mcap_files_in(dir)?;
    if !mcap_files.is_empty() {
        return open_mcap(
            &mcap_files,
            &McapOptions {
                window: options.window,
                on_error: options.on_error,
                ..McapOptions::default()
            },
        );
    }
    let streams = mcl::directory_streams(dir, options)?;
    Ok(LogReader::from_streams(streams, options.window))
}

/// The MCAP files of `dir` (by their magic), in name order.
fn mcap_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| crate::Error::io(dir, &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| crate::Error::io(dir, &e))?.path();
        if path.is_file() && detect::detect_file(&path)? == Format::Mcap {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `ReadPcap`: the UDP datagrams of a pcap or pcapng capture
/// ([`crate::format::pcap`]), one stream per original destination. The
/// window applies in the capture's reader (captures need not be
/// time-ordered), not in the merge.
pub fn open_pcap(path: &Path, options: &PcapOptions) -> Result<LogReader> {
    let reader = PcapReader::open(path, options)?;
    let info = CaptureInfo {
        format: reader.format(),
        base_ns: reader.base_ns(),
        counts: reader.counts().clone(),
        first_stream: 0,
        damage: reader.damage().map(|e| e.to_string()),
        destinations: reader.destinations(),
    };
    let headers = vec![None; reader.streams().len()];
    Ok(LogReader {
        merge: MergeReader::new(vec![Box::new(reader)], TimeWindow::default()),
        headers,
        captures: vec![info],
    })
}
