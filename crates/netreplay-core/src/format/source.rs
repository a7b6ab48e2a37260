//! The reader trait every log format implements; the engine knows only this.

use crate::{Record, Result, StreamInfo};

/// Inclusive bounds on elapsed time, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeWindow {
    pub min_ns: Option<i64>,
    pub max_ns: Option<i64>,
}

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
    /// Position at the first record with time >= `t_ns` (ties in the
    /// stable order); past the last record, at the end. A reader with an
    /// index or sorted bytes seeks without decoding from the start.
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        let _ = t_ns;
        Err(crate::Error::State("this reader cannot seek".into()))
    }
    /// The times of the first and last records (within the reader's time
    /// window), `None` when it has none or cannot tell without reading
    /// everything. Leaves the read position where it was.
    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        Ok(None)
    }
    /// Whether more records may follow (false once the end was reached).
    fn is_data_pending(&self) -> bool;
    /// The streams records refer to through [`Record::stream`].
    fn streams(&self) -> &[StreamInfo];
    /// Malformed records skipped so far under [`OnError::Skip`].
    fn skipped(&self) -> u64 {
        0
    }
}
