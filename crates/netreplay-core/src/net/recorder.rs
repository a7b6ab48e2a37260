//! The network recorder (MCL's `LogNetwork`): a [`Listener`] whose
//! messages are written by a [`Recorder`] into a recording directory.

use std::path::{Path, PathBuf};

use crate::format::mcl::{Recorder, RecorderOptions, RecorderStream};
use crate::net::listener::{Handler, Listener, ListenerOptions, ListenerStats, Received};
use crate::{Error, Result};

/// The listener handler of a [`NetworkRecorder`].
pub struct RecordingHandler {
    recorder: Recorder,
    error: Option<Error>,
    write_errors: u64,
}

impl Handler for RecordingHandler {
    fn on_message(&mut self, message: &Received<'_>) -> bool {
        match self.recorder.write(
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
        if let Err(e) = self.recorder.flush() {
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
        let (addresses, streams): (Vec<String>, Vec<RecorderStream>) = sources.into_iter().unzip();
        let recorder = Recorder::create(options, &streams)?;
        let directory = recorder.directory().to_path_buf();
        let handler = RecordingHandler {
            recorder,
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
        let files = handler.recorder.close()?;
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
