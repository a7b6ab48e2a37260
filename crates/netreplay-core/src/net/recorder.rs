//! The network recorder (MCL's `LogNetwork`): a [`Listener`] whose
//! messages are written by a [`Recorder`] into a recording directory, or
//! into one MCAP file in it.

use std::path::{Path, PathBuf};

use crate::format::mcap::{McapWriteOptions, McapWriter, MSGPACK};
use crate::format::mcl::{
    recording_directory, Recorder, RecorderOptions, RecorderStream, TimeOrigin,
};
use crate::net::listener::{Handler, Listener, ListenerOptions, ListenerStats, Received};
use crate::sys::now_ns;
use crate::{Error, Result};

/// What a recording writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RecordingFormat {
    /// MCL logs, one file set per source.
    #[default]
    Mcl,
    /// One MCAP file, [`MCAP_RECORDING`] in the recording directory: one
    /// channel per (type, topic), schema name = type, encoding `msgpack`,
    /// log time = receive time (epoch ns).
    Mcap(McapWriteOptions),
}

/// The file name of an MCAP recording in its directory.
pub const MCAP_RECORDING: &str = "recording.mcap";
/// An idle MCAP recorder writes out the chunk it fills at most this often:
/// what a kill can lose while traffic is sparse, without tiny chunks.
const MCAP_IDLE_FLUSH_NS: i64 = 1_000_000_000;

/// An MCAP recording: the writer, the sources' types, the time origin.
struct McapRecording {
    writer: McapWriter,
    types: Vec<Option<String>>,
    origin: TimeOrigin,
    flushed_at_ns: i64,
    unflushed: bool,
}

enum Writer {
    Mcl(Recorder),
    Mcap(Box<McapRecording>),
}

impl Writer {
    fn write(
        &mut self,
        stream: usize,
        received_at_ns: i64,
        topic: &str,
        payload: &[u8],
    ) -> Result<()> {
        match self {
            Writer::Mcl(r) => r.write(stream, received_at_ns, topic, payload),
            Writer::Mcap(m) => {
                let m = &mut **m;
                let message_type = m.types.get(stream).ok_or_else(|| {
                    Error::invalid(
                        "stream",
                        format!("{stream} is not a stream of this recording"),
                    )
                })?;
                let since = received_at_ns.saturating_sub(m.origin.monotonic_ns) as i128;
                let log_time =
                    (i128::from(m.origin.unix_us) * 1000 + since).clamp(0, u64::MAX as i128);
                m.unflushed = true;
                m.writer.write(
                    message_type.as_deref(),
                    topic,
                    MSGPACK,
                    log_time as u64,
                    payload,
                )
            }
        }
    }

    fn on_idle(&mut self) -> Result<()> {
        match self {
            Writer::Mcl(r) => r.flush(),
            Writer::Mcap(m) => {
                let now = now_ns();
                if m.unflushed && now - m.flushed_at_ns >= MCAP_IDLE_FLUSH_NS {
                    m.flushed_at_ns = now;
                    m.unflushed = false;
                    m.writer.flush()?;
                }
                Ok(())
            }
        }
    }

    fn close(self) -> Result<Vec<PathBuf>> {
        match self {
            Writer::Mcl(r) => r.close(),
            Writer::Mcap(m) => Ok(vec![m.writer.close()?]),
        }
    }
}

/// The listener handler of a [`NetworkRecorder`].
pub struct RecordingHandler {
    writer: Writer,
    error: Option<Error>,
    write_errors: u64,
}

impl Handler for RecordingHandler {
    fn on_message(&mut self, message: &Received<'_>) -> bool {
        match self.writer.write(
            message.socket,
            message.received_at_ns,
            message.topic,
            message.payload,
        ) {
            Ok(()) => true,
            Err(e) => {
                self.write_errors += 1;
                self.error.get_or_insert(e);
                false
            }
        }
    }

    fn on_idle(&mut self) {
        if let Err(e) = self.writer.on_idle() {
            self.error.get_or_insert(e);
        }
    }
}

/// Records network traffic to files: a [`Listener`] whose address `i`
/// feeds stream `i` of a [`Recorder`] (MCL's `LogNetwork`, where each
/// message type has its own address).
pub struct NetworkRecorder {
    listener: Listener<RecordingHandler>,
    directory: PathBuf,
}

/// What a finished recording produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub directory: PathBuf,
    pub files: Vec<PathBuf>,
    /// Messages that could not be written (the first error fails `stop`).
    pub write_errors: u64,
}

impl NetworkRecorder {
    /// Listen on `sources` (`udp://` URL and the stream it records into).
    /// `listen.addresses` is replaced by the sources' URLs.
    pub fn start(
        sources: Vec<(String, RecorderStream)>,
        listen: ListenerOptions,
        options: RecorderOptions,
    ) -> Result<NetworkRecorder> {
        Self::start_as(sources, listen, options, RecordingFormat::Mcl)
    }

    /// [`NetworkRecorder::start`], writing `format`.
    pub fn start_as(
        sources: Vec<(String, RecorderStream)>,
        listen: ListenerOptions,
        options: RecorderOptions,
        format: RecordingFormat,
    ) -> Result<NetworkRecorder> {
        let (addresses, streams): (Vec<String>, Vec<RecorderStream>) = sources.into_iter().unzip();
        let (writer, directory) = match format {
            RecordingFormat::Mcl => {
                let recorder = Recorder::create(options, &streams)?;
                let directory = recorder.directory().to_path_buf();
                (Writer::Mcl(recorder), directory)
            }
            RecordingFormat::Mcap(mcap) => {
                if streams.is_empty() {
                    return Err(Error::invalid(
                        "streams",
                        "a recording needs at least one stream",
                    ));
                }
                let origin = TimeOrigin::now();
                let directory = recording_directory(&options, origin)?;
                let writer = McapWriter::create(directory.join(MCAP_RECORDING), &mcap)?;
                let recording = McapRecording {
                    writer,
                    types: streams.iter().map(|s| s.message_type.clone()).collect(),
                    origin,
                    flushed_at_ns: origin.monotonic_ns,
                    unflushed: false,
                };
                (Writer::Mcap(Box::new(recording)), directory)
            }
        };
        let handler = RecordingHandler {
            writer,
            error: None,
            write_errors: 0,
        };
        let listener = Listener::start(
            ListenerOptions {
                addresses,
                ..listen
            },
            handler,
        )?;
        Ok(NetworkRecorder {
            listener,
            directory,
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub fn listener_stats(&self) -> &std::sync::Arc<ListenerStats> {
        self.listener.stats()
    }

    pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
        self.listener.local_addrs()
    }

    /// Stop listening and finish every file.
    pub fn stop(self) -> Result<RecordingSummary> {
        let handler = self.listener.stop()?;
        let files = handler.writer.close()?;
        if let Some(e) = handler.error {
            return Err(e);
        }
        Ok(RecordingSummary {
            directory: self.directory,
            files,
            write_errors: handler.write_errors,
        })
    }
}
