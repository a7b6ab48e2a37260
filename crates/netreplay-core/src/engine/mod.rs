//! Timing and threads: the clock, the ring, the producer (`BufferData`),
//! the scheduler and its sinks, statistics, the merge of several readers,
//! the summary of a log (`info`), and converting logs between formats.

pub(crate) mod buffer;
pub(crate) mod clock;
pub(crate) mod control;
pub(crate) mod convert;
pub(crate) mod log_summary;
pub(crate) mod merge;
pub(crate) mod open;
pub(crate) mod pass;
pub(crate) mod ring;
pub(crate) mod scheduler;
pub(crate) mod selection;
pub(crate) mod sink;
pub(crate) mod stats;
pub(crate) mod thread;
pub(crate) mod timeline;

pub use buffer::{BufferData, BufferOptions, Queue, DEFAULT_MAX_BYTES, MAX_LENGTH};
pub use clock::{
    now_ns, Anchor, Speed, SpinMargin, INITIAL_SPIN_MARGIN_NS, MAX_SPIN_MARGIN_NS,
    MIN_SPIN_MARGIN_NS,
};
pub use control::{LagPolicy, Waiter};
pub use convert::{convert, ConvertOptions, ConvertSummary, MCL_METADATA};
pub use log_summary::{summarize, LogSummary, TopicSummary};
pub use merge::MergeReader;
pub use open::{
    open_directory, open_file, open_mcap, open_path, open_pcap, CaptureInfo, LogReader,
};
pub use pass::{PassInfo, PassPlan};
pub use ring::{ring, RingConsumer, RingProducer, Slot};
pub use scheduler::{Goal, Realtime, Scheduler, SchedulerOptions, SinkEntry};
pub use selection::{Pattern, Selection};
pub use sink::{Delivery, NullSink, Outcome, Sink, TimelineEvent};
pub use stats::{Histogram, Position, ReplayStats, SinkStats, Summary};
pub use timeline::{Pace, TimelineOptions};
