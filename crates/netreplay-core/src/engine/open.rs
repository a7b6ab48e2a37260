//! Opening a log: the MCL streams of a file, split set or directory, merged
//! in time order (`ReadFile`, `ReadDirectory`); a pcap/pcapng capture
//! (`ReadPcap`, or a file whose magic says so).

use std::path::Path;

use crate::engine::merge::MergeReader;
use crate::format::mcl::{self, Header, MclStream, ReadOptions};
use crate::format::pcap::{self, CaptureCounts, CaptureFormat, PcapOptions, PcapReader};
use crate::format::source::{RecordSource, TimeWindow};
use crate::{Record, Result, StreamInfo};

/// The reader behind `ReadFile` and `ReadDirectory`: a time-ordered merge of
/// MCL streams that keeps each stream's header.
pub struct MclReader {
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

impl MclReader {
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
    pub fn merge(readers: Vec<MclReader>) -> Self {
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
        MclReader {
            merge: MergeReader::new(boxed, TimeWindow::default()),
            headers,
            captures,
        }
    }

    fn from_streams(streams: Vec<MclStream>, window: TimeWindow) -> Self {
        let headers = streams.iter().map(|s| s.header().cloned()).collect();
        let boxed = streams
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn RecordSource>)
            .collect();
        MclReader {
            merge: MergeReader::new(boxed, window),
            headers,
            captures: Vec::new(),
        }
    }
}

impl RecordSource for MclReader {
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
pub fn open_path(path: &Path, options: &ReadOptions) -> Result<MclReader> {
    if path.is_dir() {
        open_directory(path, options)
    } else {
        open_file(path, options)
    }
}

/// `ReadFile`: one file, or the split set `<path>_NNN.log` when `path` is a prefix.
/// A capture (by its magic bytes) goes to [`open_pcap`] with the same
/// window and error policy.
pub fn open_file(path: &Path, options: &ReadOptions) -> Result<MclReader> {
    if pcap::sniff_path(path).is_some() {
        let pcap_options = PcapOptions {
            window: options.window,
            on_error: options.on_error,
            ..PcapOptions::default()
        };
        return open_pcap(path, &pcap_options);
    }
    let stream = MclStream::open(&mcl::file_parts(path)?, options.on_error)?;
    Ok(MclReader::from_streams(vec![stream], options.window))
}

/// `ReadDirectory`: every stream of a recording, merged in time order.
pub fn open_directory(dir: &Path, options: &ReadOptions) -> Result<MclReader> {
    let streams = mcl::directory_streams(dir, options)?;
    Ok(MclReader::from_streams(streams, options.window))
}

/// `ReadPcap`: the UDP datagrams of a pcap or pcapng capture
/// ([`crate::format::pcap`]), one stream per original destination. The
/// window applies in the capture's reader (captures need not be
/// time-ordered), not in the merge.
pub fn open_pcap(path: &Path, options: &PcapOptions) -> Result<MclReader> {
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
    Ok(MclReader {
        merge: MergeReader::new(vec![Box::new(reader)], TimeWindow::default()),
        headers,
        captures: vec![info],
    })
}
