//! What a log holds, per (stream, topic), read in one pass without decoding
//! payloads: the `info` command's data.

use std::collections::HashMap;
use std::sync::Arc;

use crate::format::RecordSource;
use crate::Result;

/// One (stream, topic) of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSummary {
    /// Index in the source's stream table.
    pub stream: u32,
    pub topic: Arc<str>,
    pub count: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    /// The longest time between two consecutive records of this topic (0 for one record).
    pub largest_gap_ns: i64,
    /// Payload bytes in all.
    pub bytes: u64,
}

/// A whole log (within the reader's time window).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogSummary {
    /// In the order each (stream, topic) first appears.
    pub topics: Vec<TopicSummary>,
    pub count: u64,
    pub bytes: u64,
    /// First and last record times; `None` without records.
    pub span_ns: Option<(i64, i64)>,
    /// Malformed records skipped (under `OnError::Skip`).
    pub skipped: u64,
}

/// Reads `source` from where it is to its end.
pub fn summarize(source: &mut dyn RecordSource) -> Result<LogSummary> {
    let mut summary = LogSummary::default();
    // Keyed by topic text per stream: one hash per record, no allocation
    // (the record's topic is an Arc shared with the reader's interning).
    let mut index: HashMap<(u32, Arc<str>), usize> = HashMap::new();
    while let Some(record) = source.next_record()? {
        let bytes = record.payload.len() as u64;
        summary.count += 1;
        summary.bytes += bytes;
        summary.span_ns = Some(match summary.span_ns {
            None => (record.time_ns, record.time_ns),
            Some((first, last)) => (first.min(record.time_ns), last.max(record.time_ns)),
        });
        let key = (record.stream, record.topic);
        let slot = match index.get(&key) {
            Some(&i) => i,
            None => {
                summary.topics.push(TopicSummary {
                    stream: key.0,
                    topic: key.1.clone(),
                    count: 0,
                    first_ns: record.time_ns,
                    last_ns: record.time_ns,
                    largest_gap_ns: 0,
                    bytes: 0,
                });
                index.insert(key, summary.topics.len() - 1);
                summary.topics.len() - 1
            }
        };
        let topic = &mut summary.topics[slot];
        topic.largest_gap_ns = topic.largest_gap_ns.max(record.time_ns - topic.last_ns);
        topic.count += 1;
        topic.bytes += bytes;
        topic.last_ns = topic.last_ns.max(record.time_ns);
        topic.first_ns = topic.first_ns.min(record.time_ns);
    }
    summary.skipped = source.skipped();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Record, StreamInfo};

    struct Records(Vec<Record>, Vec<StreamInfo>);

    impl RecordSource for Records {
        fn next_record(&mut self) -> Result<Option<Record>> {
            Ok(if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0))
            })
        }
        fn reset(&mut self) -> Result<()> {
            Ok(())
        }
        fn is_data_pending(&self) -> bool {
            !self.0.is_empty()
        }
        fn streams(&self) -> &[StreamInfo] {
            &self.1
        }
    }

    fn record(time_ns: i64, stream: u32, topic: &str, len: usize) -> Record {
        Record {
            time_ns,
            stream,
            topic: topic.into(),
            payload: vec![0; len],
        }
    }

    #[test]
    fn counts_spans_gaps_and_bytes_per_stream_and_topic() {
        let mut source = Records(
            vec![
                record(0, 0, "a", 3),
                record(10, 1, "a", 1),
                record(15, 0, "b", 2),
                record(40, 0, "a", 5),
                record(45, 0, "a", 5),
            ],
            vec![],
        );
        let s = summarize(&mut source).unwrap();
        assert_eq!((s.count, s.bytes, s.span_ns), (5, 16, Some((0, 45))));
        let keys: Vec<_> = s.topics.iter().map(|t| (t.stream, &*t.topic)).collect();
        assert_eq!(keys, [(0, "a"), (1, "a"), (0, "b")]);
        let a = &s.topics[0];
        assert_eq!(
            (a.count, a.first_ns, a.last_ns, a.largest_gap_ns, a.bytes),
            (3, 0, 45, 40, 13)
        );
        assert_eq!(s.topics[2].largest_gap_ns, 0);
    }

    #[test]
    fn an_empty_source_has_no_span() {
        let s = summarize(&mut Records(vec![], vec![])).unwrap();
        assert_eq!((s.count, s.span_ns, s.topics.len()), (0, None, 0));
    }
}
