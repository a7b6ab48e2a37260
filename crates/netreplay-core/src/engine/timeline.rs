//! The scheduler's timeline: the time deadlines are computed from. It is the
//! log's time, except where a playback reshapes it — gaps capped
//! (`maxGap`), a fixed rate that ignores the logged times, loop seams that
//! continue it — so that deadlines stay absolute through all of them.

use crate::engine::ring::PassInfo;
use crate::{Error, Record, Result};

/// How records are paced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pace {
    /// By their logged times, scaled by the speed.
    #[default]
    Log,
    /// A fixed rate of messages per second, whatever their times.
    MessagesPerSecond(f64),
    /// A fixed rate of payload bytes per second: a record is due once the
    /// payloads before it have gone out at that rate.
    BytesPerSecond(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TimelineOptions {
    pub pace: Pace,
    /// No gap between consecutive records is longer than this.
    pub max_gap_ns: Option<i64>,
    /// Timeline added between the last record of a pass and the first of
    /// the next, after one gap.
    pub loop_delay_ns: i64,
    /// Report each pass's times continuing the last one's:
    /// `t + k·(span + gap + loopDelay)` in pass k.
    pub continuous_time: bool,
}

impl TimelineOptions {
    pub fn validate(&self) -> Result<()> {
        let rate = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    name,
                    format!("must be a finite number > 0, got {v}"),
                ))
            }
        };
        match self.pace {
            Pace::Log => {}
            Pace::MessagesPerSecond(v) => rate("rate.messagesPerSecond", v)?,
            Pace::BytesPerSecond(v) => rate("rate.bytesPerSecond", v)?,
        }
        if let Some(gap) = self.max_gap_ns {
            if gap < 0 {
                return Err(Error::invalid(
                    "maxGap",
                    format!("must be >= 0 s, got {} s", gap as f64 / 1e9),
                ));
            }
            if self.pace != Pace::Log {
                return Err(Error::invalid(
                    "maxGap",
                    "conflicts with 'rate': a fixed rate has no gaps from the log to cap",
                ));
            }
        }
        if self.loop_delay_ns < 0 {
            return Err(Error::invalid(
                "loopDelay",
                format!("must be >= 0 s, got {} s", self.loop_delay_ns as f64 / 1e9),
            ));
        }
        Ok(())
    }
}

/// Maps each record to its timeline time, incrementally.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    options: TimelineOptions,
    /// Log time and timeline time of the last record mapped.
    last: Option<(i64, i64)>,
    /// Fixed rate: the timeline time counted from, and records and payload
    /// bytes since it (so the n-th deadline is exact, not a sum of steps).
    base: i64,
    count: u64,
    bytes: u128,
    last_size: u64,
    /// The step to the next record after a seam.
    seam_step: Option<i64>,
    /// The next record starts anew (after a seek): it is due at its anchor.
    jump: bool,
    /// The pass of the records mapped now, counting from 0.
    pass: u64,
    /// Added to log times as they are reported (continuous time).
    offset_ns: i64,
}

impl Timeline {
    pub fn new(options: TimelineOptions) -> Self {
        Timeline {
            options,
            ..Timeline::default()
        }
    }

    /// Back to the start of the first pass.
    pub fn reset(&mut self) {
        *self = Timeline::new(self.options);
    }

    /// A seek: the pass goes on, the next record is a fresh start.
    pub fn jump(&mut self) {
        self.jump = true;
        self.seam_step = None;
    }

    pub fn pass(&self) -> u64 {
        self.pass
    }

    fn cap(&self, gap: i64) -> i64 {
        self.options.max_gap_ns.map_or(gap, |max| gap.min(max))
    }

    /// The timeline time of the next record.
    pub fn map(&mut self, record: &Record) -> i64 {
        let t = record.time_ns;
        let tau = match self.last {
            None => {
                self.base = t;
                self.count = 0;
                self.bytes = 0;
                t
            }
            Some((_, last_tau)) if self.jump => {
                self.base = last_tau;
                self.count = 0;
                self.bytes = 0;
                last_tau
            }
            Some((last_t, last_tau)) => match self.options.pace {
                Pace::Log => {
                    let step = self
                        .seam_step
                        .unwrap_or_else(|| self.cap(t.saturating_sub(last_t)));
                    last_tau.saturating_add(step)
                }
                Pace::MessagesPerSecond(rate) => {
                    self.base = self.base.saturating_add(self.seam_step.unwrap_or(0));
                    self.count += 1;
                    self.base
                        .saturating_add((self.count as f64 * 1e9 / rate).round() as i64)
                }
                Pace::BytesPerSecond(rate) => {
                    self.base = self.base.saturating_add(self.seam_step.unwrap_or(0));
                    self.bytes += u128::from(self.last_size);
                    self.base
                        .saturating_add((self.bytes as f64 * 1e9 / rate).round() as i64)
                }
            },
        };
        self.jump = false;
        self.seam_step = None;
        self.last = Some((t, tau));
        self.last_size = record.payload.len() as u64;
        tau
    }

    /// A pass ended: the next record is the first of the next pass, due one
    /// gap (capped) plus the loop delay after the last one.
    pub fn seam(&mut self, info: &PassInfo) {
        let delay = self.options.loop_delay_ns;
        self.seam_step = Some(match self.options.pace {
            Pace::Log => self.cap(info.gap_ns).saturating_add(delay),
            _ => delay,
        });
        self.pass = info.pass + 1;
        if self.options.continuous_time {
            let period = info
                .span_ns
                .saturating_add(info.gap_ns)
                .saturating_add(delay);
            self.offset_ns = self.offset_ns.saturating_add(period);
        }
    }

    /// The time reported for a record logged at `t` in the current pass.
    pub fn reported(&self, t: i64) -> i64 {
        t.saturating_add(self.offset_ns)
    }

    /// The log time (of the current pass) at timeline time `tau`: the last
    /// record's, plus the timeline elapsed since it.
    pub fn log_at(&self, tau: i64) -> i64 {
        match self.last {
            Some((t, last_tau)) => t.saturating_add(tau.saturating_sub(last_tau)),
            None => tau,
        }
    }

    /// The timeline time at which reported time `reported` falls, given the
    /// next record (mapped to `tau`, logged at `t`): `tau` less the log time
    /// between them.
    pub fn tau_of_reported(&self, reported: i64, t: i64, tau: i64) -> i64 {
        tau.saturating_sub(self.reported(t).saturating_sub(reported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(t: i64, size: usize) -> Record {
        Record {
            time_ns: t,
            stream: 0,
            topic: Arc::from(""),
            payload: vec![0; size],
        }
    }

    #[test]
    fn log_pace_caps_gaps_and_continues_over_seams() {
        let mut tl = Timeline::new(TimelineOptions {
            max_gap_ns: Some(100),
            loop_delay_ns: 7,
            continuous_time: true,
            ..TimelineOptions::default()
        });
        assert_eq!(tl.map(&rec(1000, 1)), 1000);
        assert_eq!(tl.map(&rec(1010, 1)), 1010);
        assert_eq!(tl.map(&rec(5000, 1)), 1110);
        tl.seam(&PassInfo {
            pass: 0,
            span_ns: 4000,
            gap_ns: 2000,
        });
        // One (capped) gap plus the loop delay after the last record.
        assert_eq!(tl.map(&rec(1000, 1)), 1217);
        assert_eq!(tl.reported(1000), 1000 + 4000 + 2000 + 7);
        assert_eq!(tl.pass(), 1);
        tl.jump();
        assert_eq!(tl.map(&rec(3000, 1)), 1217);
        assert_eq!(tl.map(&rec(3050, 1)), 1267);
    }

    #[test]
    fn fixed_rates_count_from_a_base_without_drift() {
        let mut tl = Timeline::new(TimelineOptions {
            pace: Pace::MessagesPerSecond(3.0),
            ..TimelineOptions::default()
        });
        tl.map(&rec(0, 1));
        let mut last = 0;
        for _ in 0..300_000 {
            last = tl.map(&rec(0, 1));
        }
        // 300,000 records at 3/s: exactly 100,000 s, not a sum of rounded steps.
        assert_eq!(last, 100_000_000_000_000);
        let mut bytes = Timeline::new(TimelineOptions {
            pace: Pace::BytesPerSecond(1000.0),
            ..TimelineOptions::default()
        });
        assert_eq!(bytes.map(&rec(5, 500)), 5);
        assert_eq!(bytes.map(&rec(9, 250)), 5 + 500_000_000);
        assert_eq!(bytes.map(&rec(9, 1)), 5 + 750_000_000);
    }

    #[test]
    fn conflicts_and_domains_are_named() {
        let both = TimelineOptions {
            pace: Pace::MessagesPerSecond(10.0),
            max_gap_ns: Some(1),
            ..TimelineOptions::default()
        };
        assert!(both.validate().unwrap_err().to_string().contains("'rate'"));
        let bad = TimelineOptions {
            pace: Pace::BytesPerSecond(f64::NAN),
            ..TimelineOptions::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rate.bytesPerSecond"));
    }
}
