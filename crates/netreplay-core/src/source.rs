//! The reader trait every log format implements; the engine knows only this.

use crate::{Record, Result, StreamInfo};

/// What to do with a record that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Return the error; the replay stops after the records before it.
    #[default]
    Fail,
    /// Skip the record and count it (see [`RecordSource::skipped`]).
    Skip,
}

/// A time-ordered stream of records that can be rewound.
pub trait RecordSource: Send {
    /// The next record, `Ok(None)` at the end of the data.
    fn next_record(&mut self) -> Result<Option<Record>>;
    /// Rewind to the first record.
    fn reset(&mut self) -> Result<()>;
    /// Whether more records may follow (false once the end was reached).
    fn is_data_pending(&self) -> bool;
    /// The streams records refer to through [`Record::stream`].
    fn streams(&self) -> &[StreamInfo];
    /// Malformed records skipped so far under [`OnError::Skip`].
    fn skipped(&self) -> u64 {
        0
    }
}
