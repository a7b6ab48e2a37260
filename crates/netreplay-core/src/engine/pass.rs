//! Passes over a log: where each starts and ends, how many there are, which
//! records they play, and the backfill before a position — decided record by
//! record in the producer (sans I/O: the native producer and the path that
//! JS readers push through share it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

pub use crate::engine::ring::PassInfo;
use crate::engine::ring::Slot;
use crate::engine::selection::{Selection, SelectionFilter};
use crate::{Error, Record, Result};

/// The passes of a playback.
#[derive(Debug, Clone)]
pub struct PassPlan {
    /// Each pass starts at the first record at or after this log time
    /// (`None`: at the first record).
    pub start_ns: Option<i64>,
    /// A pass ends after the last record at or before this log time.
    pub end_ns: Option<i64>,
    /// How many passes in all; `None`: for ever.
    pub passes: Option<u64>,
    /// At a seek, a start offset or a seam, first deliver the last record
    /// of each (type, topic) before the position.
    pub backfill: bool,
    pub selection: Selection,
}

impl Default for PassPlan {
    fn default() -> Self {
        PassPlan {
            start_ns: None,
            end_ns: None,
            passes: Some(1),
            backfill: false,
            selection: Selection::default(),
        }
    }
}

impl PassPlan {
    pub fn validate(&self) -> Result<()> {
        if self.passes == Some(0) {
            return Err(Error::invalid(
                "loop",
                "must be true, false or an integer >= 1, got 0",
            ));
        }
        if let (Some(start), Some(end)) = (self.start_ns, self.end_ns) {
            if end < start {
                return Err(Error::invalid(
                    "until",
                    format!(
                        "ends the playback at {} s, before it starts ({} s)",
                        end as f64 / 1e9,
                        start as f64 / 1e9
                    ),
                ));
            }
        }
        self.selection.validate()
    }
}

/// Where the source must be put for the cursor's next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePosition {
    /// Rewound to its first record.
    Start,
    /// At its first record at or after this time.
    At(i64),
}

/// What became of one record offered to the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Queued to play (after any backfill queued with it).
    Queued,
    /// Not played: filtered out, or before the position.
    Skipped,
    /// Past the pass's end: the pass ends (the record is not played).
    PassEnded,
}

/// The state of the passes as the producer reads them.
#[derive(Debug)]
pub struct PassCursor {
    plan: PassPlan,
    filter: SelectionFilter,
    pass: u64,
    /// Records before this log time are not played (the pass's start or a
    /// seek target); with backfill, the last of each (stream, topic) is kept.
    target: Option<i64>,
    backfill: HashMap<(u32, Arc<str>), (u64, Record)>,
    read_order: u64,
    /// The current pass was read from its start (not entered by a seek).
    from_start: bool,
    first: Option<i64>,
    last: i64,
    played: u64,
    /// The geometry of a pass read whole: every pass has it.
    whole: Option<PassInfo>,
}

impl PassCursor {
    pub fn new(plan: PassPlan) -> Self {
        let filter = SelectionFilter::new(plan.selection.clone());
        let target = plan.start_ns;
        PassCursor {
            plan,
            filter,
            pass: 0,
            target,
            backfill: HashMap::new(),
            read_order: 0,
            from_start: true,
            first: None,
            last: 0,
            played: 0,
            whole: None,
        }
    }

    /// Go to log time `t` in pass `pass` (a seek), or (`None`) to the start
    /// of pass `pass` (a rewind: pass 0). Returns where the source must go:
    /// with backfill, to its start, since the records before the position
    /// are read for it.
    pub fn position(&mut self, t: Option<i64>, pass: u64) -> SourcePosition {
        self.pass = pass;
        self.from_start = t.is_none();
        self.first = None;
        self.played = 0;
        self.backfill.clear();
        self.target = match (t, self.plan.start_ns) {
            (Some(t), Some(start)) => Some(t.max(start)),
            (t, start) => t.or(start),
        };
        self.source_position()
    }

    /// Whether the next record to play may be far into the source: records
    /// before it are read for backfill, or filtered out.
    pub fn reads_ahead(&self) -> bool {
        (self.plan.backfill && self.target.is_some()) || !self.plan.selection.is_everything()
    }

    fn source_position(&self) -> SourcePosition {
        match self.target {
            Some(t) if !self.plan.backfill => SourcePosition::At(t),
            _ => SourcePosition::Start,
        }
    }

    /// Offer the next record read (of a stream of `message_type`); what is
    /// to be played is appended to `out`.
    pub fn offer(
        &mut self,
        mut record: Record,
        message_type: Option<&str>,
        out: &mut VecDeque<Slot>,
    ) -> Offered {
        if self.plan.end_ns.is_some_and(|end| record.time_ns > end) {
            return Offered::PassEnded;
        }
        if !self.filter.admit(&mut record, message_type) {
            return Offered::Skipped;
        }
        if self.target.is_some_and(|t| record.time_ns < t) {
            if self.plan.backfill {
                self.read_order += 1;
                let key = (record.stream, record.topic.clone());
                self.backfill.insert(key, (self.read_order, record));
            }
            return Offered::Skipped;
        }
        self.target = None;
        self.flush_backfill(out);
        self.first.get_or_insert(record.time_ns);
        self.last = record.time_ns;
        self.played += 1;
        out.push_back(Slot::Record(record));
        Offered::Queued
    }

    /// Queue the backfill kept, in time order (ties in read order).
    fn flush_backfill(&mut self, out: &mut VecDeque<Slot>) {
        if self.backfill.is_empty() {
            return;
        }
        let mut kept: Vec<_> = self.backfill.drain().map(|(_, v)| v).collect();
        kept.sort_by_key(|(order, r)| (r.time_ns, *order));
        out.extend(kept.into_iter().map(|(_, r)| Slot::Backfill(r)));
    }

    /// At a pass's end, whether its geometry (span, mean gap) is unknown:
    /// the pass was entered by a seek and no whole pass was read yet. The
    /// owner then reads a whole pass through [`PassCursor::measure`] before
    /// [`PassCursor::end_pass`], so that every seam is one true gap.
    pub fn needs_measure(&self) -> bool {
        self.whole.is_none() && !self.from_start && self.played > 0
    }

    /// Where the source must go to read a pass from its start.
    pub fn pass_start(&self) -> SourcePosition {
        match self.plan.start_ns {
            Some(start) => SourcePosition::At(start),
            None => SourcePosition::Start,
        }
    }

    /// Measure a whole pass from the records `next` reads from
    /// [`PassCursor::pass_start`] (with their stream's type): what would be
    /// played, without playing it or keeping it.
    pub fn measure<'a>(
        &mut self,
        mut next: impl FnMut() -> Result<Option<(Record, Option<&'a str>)>>,
    ) -> Result<()> {
        let (mut first, mut last, mut count) = (None, 0, 0u64);
        while let Some((mut record, message_type)) = next()? {
            if self.plan.end_ns.is_some_and(|end| record.time_ns > end) {
                break;
            }
            if self
                .plan
                .start_ns
                .is_some_and(|start| record.time_ns < start)
                || !self.filter.admit(&mut record, message_type)
            {
                continue;
            }
            first.get_or_insert(record.time_ns);
            last = record.time_ns;
            count += 1;
        }
        let span = last.saturating_sub(first.unwrap_or(last));
        self.whole = (count > 0).then_some(PassInfo {
            pass: 0,
            span_ns: span,
            gap_ns: if count >= 2 {
                span / (count as i64 - 1)
            } else {
                0
            },
        });
        Ok(())
    }

    /// The source is exhausted or the pass ended: queue what is left of
    /// the backfill and, when another pass follows, its seam. Returns where
    /// the source must go for the next pass, or `None` when the passes are
    /// over (the caller queues the end). A pass that played nothing ends
    /// the passes, so that a filter admitting nothing cannot loop for ever.
    pub fn end_pass(&mut self, out: &mut VecDeque<Slot>) -> Option<SourcePosition> {
        self.flush_backfill(out);
        let played = self.played;
        let info = self.info();
        if self.from_start && played > 0 && self.whole.is_none() {
            self.whole = Some(info);
        }
        let more = self.plan.passes.is_none_or(|n| self.pass + 1 < n);
        if !more || played == 0 {
            return None;
        }
        out.push_back(Slot::Seam(PassInfo {
            pass: self.pass,
            ..self.whole.unwrap_or(info)
        }));
        Some(self.position(None, self.pass + 1))
    }

    fn info(&self) -> PassInfo {
        let first = self.first.unwrap_or(self.last);
        let span = self.last.saturating_sub(first);
        PassInfo {
            pass: self.pass,
            span_ns: span,
            gap_ns: if self.played >= 2 {
                span / (self.played as i64 - 1)
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: i64, topic: &str) -> Record {
        Record {
            time_ns: t,
            stream: 0,
            topic: Arc::from(topic),
            payload: vec![0xc0],
        }
    }

    fn times(out: &VecDeque<Slot>) -> Vec<(char, i64)> {
        out.iter()
            .map(|s| match s {
                Slot::Record(r) => ('r', r.time_ns),
                Slot::Backfill(r) => ('b', r.time_ns),
                Slot::Seam(i) => ('s', i.gap_ns),
                _ => ('e', 0),
            })
            .collect()
    }

    #[test]
    fn a_window_with_backfill_and_two_passes() {
        let plan = PassPlan {
            start_ns: Some(20),
            end_ns: Some(40),
            passes: Some(2),
            backfill: true,
            ..PassPlan::default()
        };
        let mut cursor = PassCursor::new(plan);
        let mut out = VecDeque::new();
        assert_eq!(cursor.position(None, 0), SourcePosition::Start);
        let log = [
            (0, "a"),
            (10, "b"),
            (15, "a"),
            (20, "c"),
            (30, "c"),
            (40, "a"),
            (50, "a"),
        ];
        for pass in 0..2 {
            for (t, topic) in log {
                if cursor.offer(rec(t, topic), None, &mut out) == Offered::PassEnded {
                    break;
                }
            }
            let next = cursor.end_pass(&mut out);
            assert_eq!(next.is_some(), pass == 0);
        }
        let one = [('b', 10), ('b', 15), ('r', 20), ('r', 30), ('r', 40)];
        let mut expected = one.to_vec();
        expected.push(('s', 10));
        expected.extend(one);
        assert_eq!(times(&out), expected);
    }

    #[test]
    fn a_pass_that_plays_nothing_ends_the_loop() {
        let plan = PassPlan {
            passes: None,
            selection: Selection {
                topics: vec![crate::engine::selection::Pattern::Exact("x".into())],
                ..Selection::default()
            },
            ..PassPlan::default()
        };
        let mut cursor = PassCursor::new(plan);
        let mut out = VecDeque::new();
        assert_eq!(cursor.offer(rec(0, "a"), None, &mut out), Offered::Skipped);
        assert_eq!(cursor.end_pass(&mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn a_seek_positions_the_source_and_keeps_the_pass() {
        let mut cursor = PassCursor::new(PassPlan {
            passes: None,
            ..PassPlan::default()
        });
        assert_eq!(cursor.position(Some(7), 3), SourcePosition::At(7));
        assert_eq!(cursor.pass, 3);
        assert!(PassPlan {
            passes: Some(0),
            ..PassPlan::default()
        }
        .validate()
        .is_err());
    }
}
