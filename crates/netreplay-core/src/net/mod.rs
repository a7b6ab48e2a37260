//! Networking: endpoint URLs, the UDP sink, the listener and the network
//! recorder.

pub(crate) mod clock;
pub(crate) mod endpoint;
pub(crate) mod listener;
pub(crate) mod recorder;
pub(crate) mod udp;

pub use clock::{clock_payload, ClockSink, CLOCK_TOPIC};
pub use endpoint::{Endpoint, Interface};
pub use listener::{
    ChannelHandler, Handler, Listener, ListenerOptions, ListenerSnapshot, ListenerStats, Received,
    ReceivedMessage,
};
pub use recorder::{
    NetworkRecorder, RecordingFormat, RecordingHandler, RecordingSummary, MCAP_RECORDING,
};
pub use udp::{
    FailureKind, Readdress, Route, UdpSink, UdpSinkOptions, UdpSinkSnapshot, UdpSinkStats, BATCH,
    BATCH_BYTES, DEFAULT_HOP_LIMIT,
};
