//! Time-ordered k-way merge of record sources, with a time window.

use crate::format::source::{RecordSource, TimeWindow};
use crate::{Error, Record, Result, StreamInfo};

struct Input {
    source: Box<dyn RecordSource>,
    head: Option<Record>,
    exhausted: bool,
    /// The index of the input's first stream in the merged stream table.
    first_stream: u32,
}

/// Merges several sources into one stream ordered by time. Ties keep input
/// order (inputs are given in file-name order), then each input's own order.
/// Each input is assumed time-ordered, as MCL writes them; a record past
/// `max_ns` ends its input.
pub struct MergeReader {
    inputs: Vec<Input>,
    streams: Vec<StreamInfo>,
    window: TimeWindow,
    primed: bool,
    /// An error met while looking ahead, reported after the record in hand.
    deferred: Option<Error>,
}

impl MergeReader {
    /// The merged stream table is the inputs' tables one after another;
    /// record `stream` ids are renumbered into it.
    pub fn new(sources: Vec<Box<dyn RecordSource>>, window: TimeWindow) -> Self {
        let streams: Vec<StreamInfo> = sources
            .iter()
            .flat_map(|s| s.streams().iter().cloned())
            .collect();
        let mut first_stream = 0u32;
        let inputs = sources
            .into_iter()
            .map(|source| {
                let input = Input {
                    first_stream,
                    head: None,
                    exhausted: false,
                    source,
                };
                first_stream += input.source.streams().len() as u32;
                input
            })
            .collect();
        MergeReader {
            inputs,
            streams,
            window,
            primed: false,
            deferred: None,
        }
    }

    fn refill(&mut self, index: usize) -> Result<()> {
        let window = self.window;
        let input = &mut self.inputs[index];
        while !input.exhausted {
            match input.source.next_record()? {
                None => input.exhausted = true,
                Some(mut record) => {
                    if window.max_ns.is_some_and(|max| record.time_ns > max) {
                        input.exhausted = true;
                    } else if window.min_ns.is_none_or(|min| record.time_ns >= min) {
                        record.stream += input.first_stream;
                        input.head = Some(record);
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

impl RecordSource for MergeReader {
    fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        if !self.primed {
            for i in 0..self.inputs.len() {
                if self.inputs[i].head.is_none() {
                    self.refill(i)?;
                }
            }
            self.primed = true;
        }
        // Few inputs in practice (one per message type): a linear scan beats a heap.
        let mut best: Option<(usize, i64)> = None;
        for (i, input) in self.inputs.iter().enumerate() {
            if let Some(head) = &input.head {
                if best.is_none_or(|(_, t)| head.time_ns < t) {
                    best = Some((i, head.time_ns));
                }
            }
        }
        let Some((index, _)) = best else {
            return Ok(None);
        };
        let record = self.inputs[index].head.take();
        // An error refilling is reported on the next call, after this record.
        if let Err(err) = self.refill(index) {
            self.primed = false;
            self.deferred = Some(err);
        }
        Ok(record)
    }

    fn reset(&mut self) -> Result<()> {
        for input in &mut self.inputs {
            input.source.reset()?;
            input.head = None;
            input.exhausted = false;
        }
        self.primed = false;
        self.deferred = None;
        Ok(())
    }

    /// Every input is sought to `t_ns`, or to the window's start if that is
    /// later; the records in hand are dropped. Ties then keep input order,
    /// as in a read from the start. Past the window's end, the inputs end
    /// at their first record. After an error some inputs may not have
    /// moved: seek again or reset.
    fn seek(&mut self, t_ns: i64) -> Result<()> {
        let t_ns = self.window.min_ns.map_or(t_ns, |min| t_ns.max(min));
        self.primed = false;
        self.deferred = None;
        for input in &mut self.inputs {
            input.head = None;
            input.exhausted = false;
        }
        for input in &mut self.inputs {
            input.source.seek(t_ns)?;
        }
        Ok(())
    }

    /// The inputs' earliest first and latest last times, clamped to the
    /// window: a bound of the window stands for the first or last record
    /// inside it, which is not looked for. `None` when nothing overlaps.
    fn time_range(&mut self) -> Result<Option<(i64, i64)>> {
        let mut range: Option<(i64, i64)> = None;
        for input in &mut self.inputs {
            if let Some((first, last)) = input.source.time_range()? {
                range = Some(match range {
                    None => (first, last),
                    Some((f, l)) => (f.min(first), l.max(last)),
                });
            }
        }
        let Some((first, last)) = range else {
            return Ok(None);
        };
        let first = self.window.min_ns.map_or(first, |min| first.max(min));
        let last = self.window.max_ns.map_or(last, |max| last.min(max));
        Ok((first <= last).then_some((first, last)))
    }

    fn is_data_pending(&self) -> bool {
        self.deferred.is_some() || self.inputs.iter().any(|i| i.head.is_some() || !i.exhausted)
    }

    fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    fn skipped(&self) -> u64 {
        self.inputs.iter().map(|i| i.source.skipped()).sum()
    }
}
