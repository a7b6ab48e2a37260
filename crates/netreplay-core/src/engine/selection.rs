//! Which records a playback plays, and under which topic: topic and type
//! filters and topic remapping, applied in the producer so that a filtered
//! record costs no ring space.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Error, Record, Result};

/// A topic or type name to match: exactly, or by a regular expression
/// (searched anywhere in the name, as JS `RegExp.test` does).
#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    Regex(regex::Regex),
}

impl Pattern {
    /// A regular expression given as option `name`; an error naming the
    /// option and the pattern when it does not compile.
    pub fn regex(name: &'static str, source: &str, ignore_case: bool) -> Result<Pattern> {
        regex::RegexBuilder::new(source)
            .case_insensitive(ignore_case)
            .build()
            .map(Pattern::Regex)
            .map_err(|err| {
                Error::invalid(
                    name,
                    format!("/{source}/ is not a regular expression netreplay can use: {err}"),
                )
            })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Regex(re) => re.is_match(name),
        }
    }
}

/// Topic and type filters and topic renames. Empty include lists admit
/// everything; an exclusion wins over an inclusion. A raw stream's type is
/// matched as `None`, the name MCL writes for it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub topics: Vec<Pattern>,
    pub exclude_topics: Vec<Pattern>,
    pub types: Vec<Pattern>,
    pub exclude_types: Vec<Pattern>,
    /// Topic renames `(from, to)`, applied after the topic filters (which
    /// see the logged topics).
    pub remap: Vec<(String, String)>,
}

fn admitted(name: &str, include: &[Pattern], exclude: &[Pattern]) -> bool {
    (include.is_empty() || include.iter().any(|p| p.matches(name)))
        && !exclude.iter().any(|p| p.matches(name))
}

impl Selection {
    /// Whether it admits every record unchanged.
    pub fn is_everything(&self) -> bool {
        self.topics.is_empty()
            && self.exclude_topics.is_empty()
            && self.types.is_empty()
            && self.exclude_types.is_empty()
            && self.remap.is_empty()
    }

    pub fn validate(&self) -> Result<()> {
        for (i, (from, _)) in self.remap.iter().enumerate() {
            if self.remap[..i].iter().any(|(f, _)| f == from) {
                return Err(Error::invalid(
                    "remap",
                    format!("renames topic '{from}' twice"),
                ));
            }
        }
        Ok(())
    }

    fn admits_type(&self, message_type: Option<&str>) -> bool {
        admitted(
            message_type.unwrap_or("None"),
            &self.types,
            &self.exclude_types,
        )
    }
}

/// A [`Selection`] applied record by record, with its decisions cached per
/// stream and per topic (a few of each in practice): one lookup a record.
#[derive(Debug)]
pub struct SelectionFilter {
    selection: Selection,
    /// Per stream index: whether its type is admitted (`None`: not asked yet).
    streams: Vec<Option<bool>>,
    /// Per logged topic: `None` filtered out, else the topic to deliver.
    topics: HashMap<Arc<str>, Option<Arc<str>>>,
    last: Option<(Arc<str>, Option<Arc<str>>)>,
}

impl SelectionFilter {
    pub fn new(selection: Selection) -> Self {
        SelectionFilter {
            selection,
            streams: Vec::new(),
            topics: HashMap::new(),
            last: None,
        }
    }

    /// Admit `record` (renaming its topic) or not; `message_type` is its
    /// stream's type.
    pub fn admit(&mut self, record: &mut Record, message_type: Option<&str>) -> bool {
        if self.selection.is_everything() {
            return true;
        }
        let stream = record.stream as usize;
        if self.streams.len() <= stream {
            self.streams.resize(stream + 1, None);
        }
        let by_type =
            *self.streams[stream].get_or_insert_with(|| self.selection.admits_type(message_type));
        if !by_type {
            return false;
        }
        let decision = match &self.last {
            Some((topic, decision)) if Arc::ptr_eq(topic, &record.topic) => decision.clone(),
            _ => {
                let selection = &self.selection;
                let decision = self
                    .topics
                    .entry(record.topic.clone())
                    .or_insert_with(|| {
                        let logged = &record.topic;
                        admitted(logged, &selection.topics, &selection.exclude_topics).then(|| {
                            match selection.remap.iter().find(|(from, _)| **from == **logged) {
                                Some((_, to)) => Arc::from(to.as_str()),
                                None => logged.clone(),
                            }
                        })
                    })
                    .clone();
                self.last = Some((record.topic.clone(), decision.clone()));
                decision
            }
        };
        match decision {
            Some(topic) => {
                record.topic = topic;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stream: u32, topic: &str) -> Record {
        Record {
            time_ns: 0,
            stream,
            topic: Arc::from(topic),
            payload: vec![0xc0],
        }
    }

    #[test]
    fn filters_and_renames() {
        let selection = Selection {
            topics: vec![
                Pattern::Exact("a".into()),
                Pattern::regex("topics", "^sensor/", false).unwrap(),
            ],
            exclude_topics: vec![Pattern::Exact("sensor/bad".into())],
            exclude_types: vec![Pattern::Exact("Noise".into())],
            remap: vec![("a".into(), "renamed".into())],
            ..Selection::default()
        };
        selection.validate().unwrap();
        let mut filter = SelectionFilter::new(selection);
        let mut r = record(0, "a");
        assert!(filter.admit(&mut r, Some("Pose")));
        assert_eq!(&*r.topic, "renamed");
        let mut r = record(0, "sensor/imu");
        assert!(filter.admit(&mut r, Some("Pose")));
        assert_eq!(&*r.topic, "sensor/imu");
        assert!(!filter.admit(&mut record(0, "sensor/bad"), Some("Pose")));
        assert!(!filter.admit(&mut record(0, "b"), Some("Pose")));
        assert!(!filter.admit(&mut record(1, "a"), Some("Noise")));
        // Cached per topic: the same answer the second time.
        let mut r = record(0, "a");
        assert!(filter.admit(&mut r, Some("Pose")));
        assert_eq!(&*r.topic, "renamed");
    }

    #[test]
    fn raw_streams_match_none_and_bad_patterns_are_named() {
        let selection = Selection {
            types: vec![Pattern::Exact("None".into())],
            ..Selection::default()
        };
        let mut filter = SelectionFilter::new(selection);
        assert!(filter.admit(&mut record(0, ""), None));
        assert!(!filter.admit(&mut record(1, ""), Some("Pose")));
        let err = Pattern::regex("excludeTopics", "a(?=b)", false).unwrap_err();
        assert!(err.to_string().contains("excludeTopics"), "{err}");
        assert!(err.to_string().contains("a(?=b)"), "{err}");
        let twice = Selection {
            remap: vec![("a".into(), "b".into()), ("a".into(), "c".into())],
            ..Selection::default()
        };
        assert!(twice.validate().unwrap_err().to_string().contains("'a'"));
        assert!(Pattern::regex("topics", "IMU", true)
            .unwrap()
            .matches("/imu"));
    }
}
